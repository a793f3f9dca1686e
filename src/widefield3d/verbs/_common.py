"""What the command-line verbs share: the console, parsing of triples, companion-file names, reading a
z-stack, and naming API parameters by their flags in error lines."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from rich.console import Console

from widefield3d.errors import InputError

console = Console(stderr=True)
"""Where the verbs report what they wrote (stderr, so that stdout stays clean for tables and paths)."""


def parse_triple(text: str, name: str, cast=float) -> tuple:
    """'a,b,c' -> (a, b, c), finite numbers (``cast`` each); ``name`` is the flag named in the error."""
    try:
        values = tuple(cast(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{name}: expected three comma-separated numbers Z,Y,X, got {text!r}") from None
    if len(values) != 3:
        raise InputError(f"{name}: expected three comma-separated numbers Z,Y,X, got {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{name}: expected finite numbers, got {text!r}")
    return values


def image_suffix(path: Path) -> str:
    """The image extension of ``path`` as written, compound ones whole (``.ome.tif``, ``.ome.zarr``; see
    :data:`widefield3d.io.SUPPORTED_EXTENSIONS`), else its last suffix."""
    from widefield3d.io import SUPPORTED_EXTENSIONS

    name = path.name
    for ext in SUPPORTED_EXTENSIONS:
        if name.lower().endswith(ext):
            return name[-len(ext):]
    return path.suffix


def tagged(output: Path, tag: str) -> Path:
    """The companion file ``OUT_tag`` beside ``output``, with the same image extension (``a.ome.tif`` ->
    ``a_clean.ome.tif``)."""
    ext = image_suffix(output)
    return output.with_name(f"{output.name[: len(output.name) - len(ext)]}_{tag}{ext}")


def read_zyx(path: Path, what: str = "a z-stack", *, require_z: bool = False):
    """The image in ``path`` as one ZYX stack (an ``io.Image``): singleton axes dropped, a missing Z axis added
    (refused with ``require_z``). Anything else is an InputError naming the file and ``what`` it needs."""
    from widefield3d import io

    image = io.read(path)
    if "Z" in image.axes or not require_z:
        try:
            return image.as_axes("ZYX")
        except InputError:
            pass
    raise InputError(f"{path}: needs {what} (ZYX), got axes {image.axes} shape {tuple(image.data.shape)}")


@contextlib.contextmanager
def naming_flags(flags: Mapping[str, str]) -> Iterator[None]:
    """Within the block, an InputError that names an API parameter names its flag instead.

    The library's messages name Python parameters (``tilt_deg: 95 degrees is outside [-89, 89]``); a command maps
    those it exposes (``{"tilt_deg": "--tilt"}``) so that its error line names what the user typed. Only whole
    names are replaced, never part of a word or of a file name.
    """
    try:
        yield
    except InputError as err:
        text = str(err)
        for name, flag in flags.items():
            text = re.sub(rf"(?<![\w./\\-]){re.escape(name)}(?![\w/\\-]|\.\w)", flag, text)
        if text == str(err):
            raise
        raise InputError(text) from err
