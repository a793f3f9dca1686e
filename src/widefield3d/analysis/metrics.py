"""Image-quality metrics of a prediction against its ground truth.

Plain functions on arrays in the style of :mod:`skimage.metrics`. Every metric takes the
prediction first and the ground truth second, checks that both are non-empty, numeric, finite
and of the same shape, and computes in float64 (inputs of any real dtype are accepted).

``data_range`` (the span of intensities a perfect image can take, in the images' own units)
must be stated for PSNR and SSIM: it is never guessed from the dtype. Give a positive number,
or the string ``"gt"`` meaning ``gt.max() - gt.min()`` of the ground truth passed in. ``None``
is refused with an :class:`~widefield3d.errors.InputError`.

:func:`evaluate` collects all metrics into rows (one dict per volume or plane) that
:func:`write_metrics_csv` writes atomically and :func:`format_table` shows with rich.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from rich.table import Table
from skimage.metrics import structural_similarity

from widefield3d.errors import InputError

DataRange = float | Literal["gt"]

_SSIM_WIN_SIZE = 7


def as_finite_array(name: str, a, *, ndim: int | Sequence[int] | None = None) -> np.ndarray:
    """Return ``a`` as a float64 array after checking it is usable as an image.

    Parameters
    ----------
    name : str
        Name of the argument, used in the error message.
    a : array_like
        Real-valued (bool, integer or float) array, non-empty and free of NaN/inf.
    ndim : int or sequence of int, optional
        Allowed number(s) of dimensions.

    Raises
    ------
    InputError
        One line naming ``name`` and what is wrong.
    """
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: must be a real numeric array, got dtype {arr.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{n}D" for n in allowed)
            raise InputError(f"{name}: must be {want}, got shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{name}: is empty (shape {arr.shape})")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    p = as_finite_array("pred", pred)
    g = as_finite_array("gt", gt)
    if p.shape != g.shape:
        raise InputError(f"pred and gt: shapes differ, {p.shape} vs {g.shape}")
    return p, g


def _resolve_data_range(data_range: DataRange | None, gt: np.ndarray) -> float:
    if data_range is None:
        raise InputError(
            "data_range: must be given explicitly (a positive number, or 'gt' for gt.max() - gt.min())"
        )
    if isinstance(data_range, str):
        if data_range != "gt":
            raise InputError(f"data_range: the only accepted string is 'gt', got {data_range!r}")
        value = float(gt.max() - gt.min())
        if value <= 0:
            raise InputError("data_range: 'gt' asks for gt.max() - gt.min(), but gt is constant")
        return value
    value = float(data_range)
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"data_range: must be a positive finite number, got {data_range!r}")
    return value


def mse(pred, gt) -> float:
    """Mean squared error, in squared intensity units."""
    p, g = _pair(pred, gt)
    return float(np.mean((p - g) ** 2))


def rmse(pred, gt) -> float:
    """Root mean squared error, in intensity units."""
    return math.sqrt(mse(pred, gt))


def mae(pred, gt) -> float:
    """Mean absolute error, in intensity units."""
    p, g = _pair(pred, gt)
    return float(np.mean(np.abs(p - g)))


def psnr(pred, gt, data_range: DataRange) -> float:
    """Peak signal-to-noise ratio ``10 log10(data_range**2 / mse)``, in dB.

    Parameters
    ----------
    pred, gt : array_like
        Prediction and ground truth of the same shape.
    data_range : float or "gt"
        Intensity span (same units as the images), or ``"gt"`` for ``gt.max() - gt.min()``.

    Returns
    -------
    float
        PSNR in dB; ``inf`` when ``pred`` equals ``gt``.
    """
    p, g = _pair(pred, gt)
    r = _resolve_data_range(data_range, g)
    err = float(np.mean((p - g) ** 2))
    if err == 0.0:
        return math.inf
    return 10.0 * math.log10(r * r / err)


def _ssim_win_size(shape: tuple[int, ...], win_size: int | None, name: str) -> int:
    """Window size for SSIM: the one given, or 7 reduced to the largest odd size that fits."""
    smallest = min(shape)
    if win_size is None:
        win_size = min(_SSIM_WIN_SIZE, smallest if smallest % 2 else smallest - 1)
        if win_size < 3:
            raise InputError(f"{name}: SSIM needs every spatial axis >= 3 samples, got shape {shape}")
        return win_size
    if win_size < 3 or win_size % 2 == 0 or win_size > smallest:
        raise InputError(
            f"win_size: must be odd, >= 3 and <= the smallest spatial axis ({smallest}), got {win_size}"
        )
    return win_size


def _normalise_axis(name: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise InputError(f"{name}: axis {axis} is out of range for {ndim}D input")
    return axis % ndim


def _ssim_checked(p: np.ndarray, g: np.ndarray, r: float, channel_axis: int | None, win_size: int | None) -> float:
    spatial = p.shape if channel_axis is None else p.shape[:channel_axis] + p.shape[channel_axis + 1 :]
    if len(spatial) < 2:
        raise InputError(f"pred: SSIM needs at least 2 spatial axes, got shape {p.shape}")
    w = _ssim_win_size(spatial, win_size, "pred")
    return float(structural_similarity(p, g, win_size=w, data_range=r, channel_axis=channel_axis))


def _planes(arr: np.ndarray, plane_axis: int):
    return (np.take(arr, i, axis=plane_axis) for i in range(arr.shape[plane_axis]))


def _axes_for_planes(ndim: int, plane_axis: int, channel_axis: int | None) -> tuple[int, int | None]:
    """Normalise ``plane_axis``/``channel_axis`` and return the channel axis inside one plane."""
    p = _normalise_axis("plane_axis", plane_axis, ndim)
    if channel_axis is None:
        return p, None
    c = _normalise_axis("channel_axis", channel_axis, ndim)
    if c == p:
        raise InputError(f"plane_axis and channel_axis: both are axis {p}")
    return p, c - 1 if c > p else c


def ssim(
    pred,
    gt,
    data_range: DataRange,
    *,
    per_plane: bool = False,
    plane_axis: int = 0,
    channel_axis: int | None = None,
    win_size: int | None = None,
) -> float:
    """Structural similarity (skimage ``structural_similarity``, uniform window).

    Parameters
    ----------
    pred, gt : array_like
        2D images or 3D volumes of the same shape (plus a channel axis if ``channel_axis``).
    data_range : float or "gt"
        Intensity span, or ``"gt"`` for ``gt.max() - gt.min()`` of the whole ``gt``.
    per_plane : bool
        False: SSIM over all spatial axes at once (3D SSIM for a volume). True: 2D SSIM of each
        plane along ``plane_axis``, averaged (per-plane values: :func:`evaluate`).
    plane_axis : int
        Axis that indexes the planes when ``per_plane`` (default 0, the Z of ``ZYX``).
    channel_axis : int, optional
        Channel axis (e.g. RGB); SSIM is computed per channel and averaged, as in skimage.
    win_size : int, optional
        Odd side of the SSIM window; default 7, reduced to the largest odd size that fits the
        smallest spatial axis (so thin stacks with 3-6 planes still get a 3D SSIM).

    Returns
    -------
    float
        SSIM in [-1, 1]; 1 for identical images.
    """
    p, g = _pair(pred, gt)
    r = _resolve_data_range(data_range, g)
    if not per_plane:
        c = None if channel_axis is None else _normalise_axis("channel_axis", channel_axis, p.ndim)
        return _ssim_checked(p, g, r, c, win_size)
    axis, c = _axes_for_planes(p.ndim, plane_axis, channel_axis)
    values = [_ssim_checked(pp, gp, r, c, win_size) for pp, gp in zip(_planes(p, axis), _planes(g, axis))]
    return float(np.mean(values))


def pearson(pred, gt) -> float:
    """Pearson correlation coefficient of all samples (dimensionless, in [-1, 1]).

    Returns NaN when either array is constant (the correlation is undefined).
    """
    p, g = _pair(pred, gt)
    dp = p - p.mean()
    dg = g - g.mean()
    denom = math.sqrt(float(np.sum(dp * dp)) * float(np.sum(dg * dg)))
    if denom == 0.0:
        return math.nan
    return float(np.sum(dp * dg) / denom)


def _row(plane: int | str, p: np.ndarray, g: np.ndarray, r: float, c: int | None, win_size: int | None) -> dict:
    err = p - g
    m = float(np.mean(err**2))
    return {
        "plane": plane,
        "mse": m,
        "rmse": math.sqrt(m),
        "mae": float(np.mean(np.abs(err))),
        "psnr": math.inf if m == 0.0 else 10.0 * math.log10(r * r / m),
        "ssim": _ssim_checked(p, g, r, c, win_size),
        "pearson": pearson(p, g),
    }


def evaluate(
    pred,
    gt,
    *,
    data_range: DataRange,
    per_plane: bool = False,
    plane_axis: int = 0,
    channel_axis: int | None = None,
    win_size: int | None = None,
) -> list[dict]:
    """All metrics of ``pred`` against ``gt``, as table rows.

    Parameters
    ----------
    pred, gt : array_like
        2D images or 3D volumes of the same shape (plus a channel axis if ``channel_axis``).
    data_range : float or "gt"
        Intensity span, or ``"gt"`` for ``gt.max() - gt.min()``. It is resolved once on the
        whole ``gt`` and used for every plane, so per-plane PSNRs are comparable.
    per_plane : bool
        Also give one row per plane along ``plane_axis`` (2D SSIM in those rows).
    plane_axis : int
        Axis that indexes the planes (default 0, the Z of ``ZYX``).
    channel_axis : int, optional
        Channel axis passed to SSIM; the other metrics pool all channels.
    win_size : int, optional
        SSIM window, see :func:`ssim`.

    Returns
    -------
    list of dict
        First the row ``{"plane": "all", "mse", "rmse", "mae", "psnr" (dB), "ssim", "pearson"}``
        for the whole input (3D SSIM for a volume), then with ``per_plane`` one row per plane
        whose ``"plane"`` is the plane index.
    """
    p, g = _pair(pred, gt)
    r = _resolve_data_range(data_range, g)
    c = None if channel_axis is None else _normalise_axis("channel_axis", channel_axis, p.ndim)
    if per_plane:
        spatial_ndim = p.ndim - (c is not None)
        if spatial_ndim != 3:
            raise InputError(f"per_plane: needs a 3D volume, got {spatial_ndim} spatial axes (shape {p.shape})")
        axis, c_plane = _axes_for_planes(p.ndim, plane_axis, channel_axis)
    rows = [_row("all", p, g, r, c, win_size)]
    if per_plane:
        for i, (pp, gp) in enumerate(zip(_planes(p, axis), _planes(g, axis))):
            rows.append(_row(i, pp, gp, r, c_plane, win_size))
    return rows


def _columns(rows: Sequence[dict], name: str) -> list[str]:
    if not rows:
        raise InputError(f"{name}: no rows to write")
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns


def write_metrics_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write metric rows to a CSV file atomically.

    The columns are the union of the rows' keys in first-seen order; floats are written at full
    precision (``inf``/``nan`` as such, readable back with ``float``). The file is written to a
    temporary sibling and renamed, so no partial file is left if anything fails.

    Parameters
    ----------
    rows : sequence of dict
        Rows as returned by :func:`evaluate` (any dicts of scalars work).
    path : str or path-like
        Destination ``.csv``; its folder must exist.

    Returns
    -------
    Path
        The written file.
    """
    columns = _columns(rows, "rows")
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def format_table(rows: Sequence[dict], title: str | None = None) -> Table:
    """A rich table of metric rows (floats shown with 4 significant digits)."""
    columns = _columns(rows, "rows")
    table = Table(title=title)
    for name in columns:
        table.add_column(name, justify="left" if name == "plane" else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(name, "")) for name in columns))
    return table


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
