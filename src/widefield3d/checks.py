"""Checks that every command runs before it computes: where its outputs go, that no input is overwritten, and
that the work fits in memory.

Each check raises :class:`~widefield3d.errors.InputError` with one line naming the file or argument, so a
command fails in its first second instead of after the compute (the command line prints that line and exits 2).

>>> check_output("out/virtual.ome.tif", inputs=["plane.ome.tif"])          # doctest: +SKIP
>>> check_memory(estimate_bytes((201, 2048, 2048)), "--z", allow_large=False)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from widefield3d.errors import InputError
from widefield3d.memory import available_memory

__all__ = [
    "MAX_PLANES",
    "available_memory",
    "check_memory",
    "check_model_dir",
    "check_output",
    "check_planes",
    "estimate_bytes",
    "naming_files",
    "parse_range",
    "warn_pixel_mismatch",
]

MAX_PLANES = 2000
"""Most planes a range argument (``--z``) may make without ``--allow-large``: a typo in the step (0.0001 for 0.1)
should not start 200,001 planes."""

ALLOW_LARGE = "--allow-large"

_FILE_KINDS = {"csv": (".csv",), "json": (".json",), "png": (".png",), "zip": (".zip",)}


def check_output(path: str | os.PathLike[str], *, kind: str = "image", inputs: Iterable = (),
                 name: str = "-o") -> Path:
    """Raise InputError unless ``path`` can be written as an output of this ``kind`` without losing an input.

    Checks, in order: the extension (``kind='image'``: one :func:`widefield3d.io.write` knows; ``'csv'``,
    ``'json'``, ``'png'``: that suffix; ``'dir'``: a folder, which must not be an existing file), that an
    existing ``path`` is not a folder where a file goes, that ``path`` is none of ``inputs`` (and holds none of
    them, for folder outputs such as OME-Zarr), and that the nearest existing folder above it is a folder, not a
    file, and is writable (missing folders are created when the output is written).

    Parameters
    ----------
    path : str or Path
        The output.
    kind : {'image', 'dir', 'csv', 'json', 'png', 'zip'}
    inputs : iterable of str or Path (None entries are skipped)
        Files or folders the command reads.
    name : str
        The option that names the output, for the message.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    label = f"{name} {path}" if name else str(path)
    if kind == "image":
        from widefield3d import io

        try:
            fmt = io.format_of(path)
        except InputError as err:
            raise InputError(f"{name} {err}" if name else str(err)) from None
        folder_output = fmt == "OME-Zarr"
    elif kind == "dir":
        folder_output = True
    elif kind in _FILE_KINDS:
        if not path.name.lower().endswith(_FILE_KINDS[kind]):
            raise InputError(f"{label}: must be a {' or '.join(_FILE_KINDS[kind])} file")
        folder_output = False
    else:
        raise ValueError(f"check_output: unknown kind {kind!r}")
    if path.is_dir() and not folder_output:
        raise InputError(f"{label}: is a folder; give a file name")
    if path.exists() and not path.is_dir() and folder_output:
        raise InputError(f"{label}: is a file; give a folder name")
    _check_not_an_input(path, label, inputs)
    _check_parent(path, label)
    return path


def check_model_dir(path: str | os.PathLike[str], *, resume: bool, name: str = "-o") -> Path:
    """Raise InputError unless ``path`` can take a training run: :func:`check_output` for a folder, and no
    checkpoint of an earlier run there unless ``resume`` (the trainer refuses it too, but only after preparing the
    data; this says it first)."""
    from widefield3d.train.trainer import CHECKPOINT_NAME

    path = check_output(path, kind="dir", name=name)
    checkpoint = path / CHECKPOINT_NAME
    if checkpoint.exists() and not resume:
        raise InputError(f"{checkpoint}: exists; pass --resume or choose another directory")
    return path


def _check_not_an_input(path: Path, label: str, inputs: Iterable) -> None:
    target = _resolved(path)
    for given in inputs:
        if given is None:
            continue
        source = Path(given)
        same = _samefile(path, source) or target == _resolved(source)
        if same or (path.is_dir() and _resolved(source).is_relative_to(target)):
            what = "is" if same else "holds"
            raise InputError(f"{label}: {what} the input {source}; writing it would destroy the input (choose "
                             "another output name)")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return path.absolute()


def _samefile(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_parent(path: Path, label: str) -> None:
    folder = path.absolute().parent
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{label}: {folder} is a file, not a folder")
    if not _writable(folder):
        raise InputError(f"{label}: the folder {folder} is not writable")


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (permissions and read-only file systems; root passes chmod)."""
    return os.access(folder, os.W_OK | os.X_OK)


@contextlib.contextmanager
def naming_files(names: Mapping[str, str | os.PathLike[str] | None]) -> Iterator[None]:
    """Within the block, an InputError about a generic argument of the API names the user's file instead.

    The methods work on arrays and name their arguments ("reference: the image is constant ..."); a command knows
    which file that argument came from. ``names`` maps argument names to files.

    Examples
    --------
    >>> with naming_files({"reference": "plane.ome.tif"}):  # doctest: +SKIP
    ...     refocus(array, ...)   # InputError "plane.ome.tif: the image is constant, ..."
    """
    try:
        yield
    except InputError as err:
        text = str(err)
        for argument, path in names.items():
            if path is not None and text.startswith(f"{argument}: "):
                raise InputError(f"{path}: {text[len(argument) + 2:]}") from err
        raise


def warn_pixel_mismatch(image_um: float, model_um: float | None, path, model: str, *,
                        tolerance: float = 0.1) -> bool:
    """Warn when an image's pixel size differs from the model's training pixel size by more than ``tolerance``
    (relative): a network learns features at its training scale. Returns whether it warned."""
    import warnings

    if model_um is None or not (model_um > 0 and image_um > 0):
        return False
    if abs(image_um / model_um - 1) <= tolerance:
        return False
    warnings.warn(f"{path}: pixel size {image_um:g} µm differs from the {model_um:g} µm that {model} was trained "
                  f"on by {abs(image_um / model_um - 1):.0%}; resample the image to {model_um:g} µm for results "
                  "the model can be trusted with", UserWarning, stacklevel=2)
    return True


# ---------------------------------------------------------------------------------------------------------------
# size of the work


def estimate_bytes(shape: Sequence[int], *, itemsize: int = 4, copies: float = 1.0) -> int:
    """Bytes of ``copies`` arrays of ``shape`` with ``itemsize`` bytes per value (float32: 4)."""
    return int(math.prod(int(n) for n in shape) * itemsize * copies)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.3g} MiB"


def check_memory(n_bytes: int, what: str, *, allow_large: bool = False) -> None:
    """Raise InputError if the work needs more memory than is available (unless ``allow_large``).

    Parameters
    ----------
    n_bytes : int
        The work's estimated peak memory (e.g. from :func:`estimate_bytes`).
    what : str
        The file or argument that sets the size, named in the message (e.g. ``'--shape 1000,10000,10000'``).
    allow_large : bool
        Skip the check (``--allow-large``); an allocation that then fails still ends with one line.
    """
    if allow_large:
        return
    available = available_memory()
    if available is not None and n_bytes > available:
        raise InputError(f"{what}: needs about {_gib(n_bytes)} of memory but {_gib(available)} is available; "
                         f"use a smaller size, or pass {ALLOW_LARGE} to try anyway")


def check_planes(n_planes: int, what: str, *, allow_large: bool = False) -> None:
    """Raise InputError if a range makes more than :data:`MAX_PLANES` planes (unless ``allow_large``)."""
    if n_planes > MAX_PLANES and not allow_large:
        raise InputError(f"{what}: {n_planes} planes, more than {MAX_PLANES}; check the step, or pass "
                         f"{ALLOW_LARGE} to compute them all")


def parse_range(text: str, name: str = "--z", *, allow_large: bool = False) -> np.ndarray:
    """'start:stop:step' (inclusive of stop) or a single number -> focal depths in µm.

    Refuses NaN and infinite values and, unless ``allow_large``, more than :data:`MAX_PLANES`
    planes (a mistyped step), before any array is made.
    """
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise InputError(f"{name}: expected START:STOP:STEP or a number (µm), got {text!r}") from None
    if not all(math.isfinite(p) for p in parts):
        raise InputError(f"{name}: expected finite numbers of µm, got {text!r}")
    if len(parts) == 1:
        return np.array(parts)
    if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
        raise InputError(f"{name}: expected START:STOP:STEP with STOP >= START and STEP > 0, got {text!r}")
    start, stop, step = parts
    steps = (stop - start) / step
    if not math.isfinite(steps) or steps > 1e12:
        raise InputError(f"{name}: START:STOP:STEP {text!r} makes an impossible number of planes")
    n_planes = math.floor(steps + 1e-9) + 1
    check_planes(n_planes, f"{name} {text}", allow_large=allow_large)
    return start + step * np.arange(n_planes)
