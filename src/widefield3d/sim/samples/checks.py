"""Checks of the arguments every sample generator shares (grid, lengths in µm, counts, ranges), each failing with
a one-line :class:`~widefield3d.errors.InputError`."""

from __future__ import annotations

import numpy as np

from widefield3d.errors import InputError


def check_shape(shape) -> tuple[int, int, int]:
    """``shape`` as 3 positive ints ``(Z, Y, X)``, or a one-line :class:`InputError`."""
    try:
        ok = len(shape) == 3 and all(int(n) == n and n > 0 for n in shape)
    except TypeError:
        ok = False
    if not ok:
        raise InputError(f"shape must be 3 positive integers (Z, Y, X), got {shape!r}")
    z, y, x = (int(n) for n in shape)
    return z, y, x


def check_grid(shape, spacing_um) -> tuple[tuple[int, int, int], np.ndarray]:
    """Validated ``shape`` (3 ints) and ``spacing_um`` (3 floats, as an array)."""
    shape = check_shape(shape)
    try:
        sp = np.asarray(spacing_um, dtype=np.float64)
    except (TypeError, ValueError):
        sp = np.zeros(0)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing_um must be 3 positive numbers (dz, dy, dx) in µm, got {spacing_um!r}")
    return shape, sp


def check_positive(name: str, value) -> float:
    """``value`` as a float if it is a positive finite number, else a one-line :class:`InputError` naming ``name``."""
    if not (isinstance(value, (int, float, np.number)) and np.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_non_negative(name: str, value, upper: float = np.inf) -> float:
    """``value`` as a float if it lies in ``[0, upper]``, else a one-line :class:`InputError`."""
    if not (isinstance(value, (int, float, np.number)) and 0 <= value <= upper):
        raise InputError(f"{name} must be a number in [0, {upper}], got {value!r}")
    return float(value)


def check_count(name: str, value) -> int:
    """``value`` as an int if it is a non-negative integer, else a one-line :class:`InputError`."""
    if not (isinstance(value, (int, np.integer)) and value >= 0):
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_range(name: str, value) -> tuple[float, float]:
    """``value`` as a pair ``(low, high)`` with ``0 < low <= high``, else a one-line :class:`InputError`."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (0 < lo <= hi and np.isfinite(hi)):
        raise InputError(f"{name} must satisfy 0 < low <= high, got {value!r}")
    return lo, hi
