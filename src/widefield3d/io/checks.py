"""Checks of arrays and image metadata (dtype, dimensions, axes, spacing, channel names), shared across widefield3d.

Each raises :class:`~widefield3d.errors.InputError` with one line naming the file or argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np

from widefield3d.errors import InputError

AXES = "TCZYX"
"""Allowed axis letters, in the canonical order of images read back."""
SPATIAL_AXES = "ZYX"


def check_ndim(data: Any, allowed: Iterable[int], name: str) -> None:
    """Raise InputError unless ``data.ndim`` is one of ``allowed`` (see :func:`widefield3d.io.require_ndim`)."""
    allowed = sorted(set(allowed))
    if data.ndim not in allowed:
        contiguous = len(allowed) > 2 and allowed == list(range(allowed[0], allowed[-1] + 1))
        wanted = f"{allowed[0]}-D to {allowed[-1]}-D" if contiguous else " or ".join(f"{n}-D" for n in allowed)
        raise InputError(f"{name}: expected a {wanted} array, got {data.ndim}-D with shape {tuple(data.shape)}")


def check_array(data: Any, name: str, *, ndim: Iterable[int] = (1, 2, 3, 4, 5), check_values: bool = True) -> None:
    """Raise InputError if ``data`` cannot be an image: wrong dtype, number of dimensions, size or values.

    Checks, in order: a real numeric dtype (integers or floats; bool, complex, object and strings are refused),
    ``data.ndim in ndim``, no zero-size dimension, and (when ``check_values``) no NaN or Inf.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
    name : str
        The file or argument named in the message.
    ndim : iterable of int
        Accepted numbers of dimensions (default 1 to 5).
    check_values : bool
        Look for NaN/Inf. On a dask array this reads every chunk once.
    """
    dtype = check_dtype(data.dtype, name)
    check_ndim(data, ndim, name)
    if 0 in data.shape:
        raise InputError(f"{name}: empty array (shape {tuple(data.shape)} has a zero-size dimension)")
    if check_values and dtype.kind == "f":
        finite = da.isfinite(data) if isinstance(data, da.Array) else np.isfinite(data)
        n_bad = int(np.asarray((~finite).sum()))
        if n_bad:
            raise InputError(f"{name}: contains {n_bad} NaN/Inf values; clean or mask them first")


def check_dtype(dtype: Any, name: str) -> np.dtype:
    """``dtype`` as a numpy dtype if it is a real number type (integers or floats), else raise InputError."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise InputError(f"{name}: dtype bool is not supported; store masks as uint8 (mask.astype(np.uint8))")
    if dtype.kind not in "iuf":
        raise InputError(f"{name}: dtype {dtype} is not a real number type; use uint8, uint16, int16, float32 "
                         "or float64")
    return dtype


def check_letters(axes: Any, name: str) -> str:
    """Return ``axes`` if it is a non-empty string of unique letters from ``TCZYX``, else raise InputError."""
    if not isinstance(axes, str) or not axes:
        raise InputError(f"{name}: axes must be a non-empty string over {AXES} such as 'ZYX', got {axes!r}")
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        raise InputError(f"{name}: axes '{axes}' contain {''.join(unknown)!r}; use letters from {AXES}")
    repeated = sorted({a for a in axes if axes.count(a) > 1})
    if repeated:
        raise InputError(f"{name}: axes '{axes}' repeat {''.join(repeated)!r}")
    return axes


def check_axes(axes: Any, shape: Sequence[int], name: str) -> str:
    """Return ``axes`` if it is a valid axes string for data of this shape, else raise InputError.

    Valid means unique letters from ``TCZYX``, one per dimension.
    """
    check_letters(axes, name)
    if len(axes) != len(shape):
        raise InputError(f"{name}: axes '{axes}' name {len(axes)} dimensions but the data have {len(shape)} "
                         f"(shape {tuple(shape)})")
    return axes


def canonical_axes(axes: str) -> str:
    """The letters of ``axes`` in ``TCZYX`` order, e.g. ``'YXC'`` -> ``'CYX'``."""
    return "".join(a for a in AXES if a in axes)


def spacing_dict(spacing: Mapping[str, float] | Sequence[float] | None, name: str) -> dict[str, float]:
    """Spacing as ``{'Z': dz, 'Y': dy, 'X': dx}`` (µm) from a mapping or a ``(dz, dy, dx)`` sequence."""
    if spacing is None:
        return {}
    if not isinstance(spacing, Mapping):
        values = list(spacing)
        if len(values) != 3:
            raise InputError(f"{name}: spacing must be a mapping over Z, Y, X or a (dz, dy, dx) triple, "
                             f"got {spacing!r}")
        spacing = dict(zip(SPATIAL_AXES, values))
    result = {}
    for key, value in spacing.items():
        axis = str(key).upper()
        if axis not in SPATIAL_AXES:
            raise InputError(f"{name}: spacing key {key!r} is not one of Z, Y, X")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{name}: spacing of {axis} must be a number of µm, got {value!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name}: spacing of {axis} must be a positive finite number of µm, got {value}")
        result[axis] = value
    return result


def check_channel_names(names: Any, axes: str, shape: Sequence[int], name: str) -> list[str] | None:
    """``names`` as a list with one string per index of the C axis (one if there is none), or None."""
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{name}: channel_names must be a list of strings, got {names!r}")
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    if len(names) != n_channels:
        raise InputError(f"{name}: {len(names)} channel names for {n_channels} channel(s) "
                         f"(axes '{axes}', shape {tuple(shape)})")
    return list(names)
