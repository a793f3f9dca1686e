"""What a format reader found, and the metadata every format shares: the widefield3d record (exact axes, shape,
spacing in µm, channel names), length units, and how the spacing of a file is settled."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from widefield3d.errors import InputError
from widefield3d.io.checks import AXES, SPATIAL_AXES, spacing_dict

RECORD_KEY = "widefield3d"
"""Marks our JSON record in every format (OME MapAnnotation namespace, ImageJ property, PNG text key, ...)."""
_UM_PER_UNIT = {
    "µm": 1.0, "\u03bcm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "\\u00b5m": 1.0, "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "mm": 1e3, "millimeter": 1e3,
    "millimetre": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6,
    "å": 1e-4, "angstrom": 1e-4, "inch": 25400.0,
}


@dataclass
class Parsed:
    """What a format reader found, before the common checks: data in file layout and the known metadata."""

    data: Any
    axes: str | None  # None: guess from the shape
    spacing: dict[str, float]  # known values only
    channel_names: list[str] | None = None
    record: dict[str, Any] | None = None


def to_um(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to µm (None for an unknown unit); no unit means µm."""
    factor = 1.0 if unit is None else _UM_PER_UNIT.get(unit.strip().lower())
    return None if factor is None else float(value) * factor


def record_json(axes: str, shape: Sequence[int], spacing: Mapping[str, float], names: list[str] | None) -> str:
    """The exact metadata record for an array of ``shape`` handed to a format library with ``axes``."""
    return json.dumps({RECORD_KEY: 1, "axes": axes, "shape": [int(s) for s in shape],
                       "spacing_um": dict(spacing), "channel_names": names})


def parse_record(text: str | bytes | None, path: Path) -> dict[str, Any] | None:
    """The record if ``text`` is one (other programs' comments give None); raise if ours is damaged."""
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or RECORD_KEY not in record:
        return None
    try:
        record["axes"] = str(record["axes"])
        record["shape"] = [int(s) for s in record["shape"]]
        record["spacing_um"] = spacing_dict(record.get("spacing_um"), "record")
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: corrupt widefield3d metadata record ({exc})") from exc
    return record


def guess_axes(shape: Sequence[int]) -> str:
    """Axes for data without usable axes metadata: 3-D or 4-D with 3 or 4 last -> (Z)YXC, else TCZYX's tail."""
    if len(shape) in (3, 4) and shape[-1] in (3, 4):
        return "ZYXC"[-len(shape):]
    return AXES[-len(shape):]


def merge_spacing(known: dict[str, float], exact: dict[str, float]) -> dict[str, float]:
    """Known spacing, refined by the record's exact values where they agree (1e-6 relative)."""
    merged = dict(known)
    for axis, value in exact.items():
        if axis not in known or math.isclose(known[axis], value, rel_tol=1e-6):
            merged[axis] = value
    return merged


def usable_spacing(spacing: dict[str, float], path: Path) -> dict[str, float]:
    """The file's pixel sizes that are positive finite numbers; a warning for each other one (then unknown)."""
    usable = {}
    for axis, value in spacing.items():
        if math.isfinite(value) and value > 0:
            usable[axis] = value
        else:
            warnings.warn(f"{path}: ignoring the pixel size {axis} = {value:g} of its metadata (not a positive "
                          "number of µm)", UserWarning, stacklevel=3)
    return usable


_WARNED_SPACING: set[str] = set()


def warn_unknown_spacing(path: Path, axes: str, shape: Sequence[int], spacing: Mapping[str, float]) -> None:
    """Warn (once per file and process) that spatial axes without a pixel size in the file are taken as 1 µm."""
    unknown = [a for a, n in zip(axes, shape) if a in SPATIAL_AXES and a not in spacing and (n > 1 or a != "Z")]
    key = str(path.absolute())
    if unknown and key not in _WARNED_SPACING:
        _WARNED_SPACING.add(key)
        warnings.warn(f"{path}: no pixel size for {', '.join(unknown)} in the file; taken as 1 µm", UserWarning,
                      stacklevel=3)


def record_fits(record: dict[str, Any], shape: Sequence[int], axes: str | None, path: Path) -> bool:
    """Whether the record describes these data: the same sizes, and the same axes as the format's own metadata
    where it has axes (singletons aside). Where they contradict each other, the format's fields win (another
    program changed them) and a warning says so."""
    sizes = [n for n in record["shape"] if n != 1]
    if sizes != [n for n in shape if n != 1]:
        return False
    if axes is None or len(axes) != len(shape):
        return True
    ours = "".join(a for a, n in zip(str(record["axes"]), record["shape"]) if n != 1)
    theirs = "".join(a for a, n in zip(axes, shape) if n != 1)
    if ours != theirs:
        warnings.warn(f"{path}: the widefield3d record says axes '{record['axes']}' but the file's metadata say "
                      f"'{axes}'; using the file's", UserWarning, stacklevel=4)
        return False
    return True
