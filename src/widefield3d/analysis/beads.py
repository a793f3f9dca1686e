"""Bead analysis of Deep-Z (Wu et al. 2019, Methods "Measurement of the lateral and axial FWHM values"):
lateral and axial FWHM of isolated sub-resolution beads by 2D Gaussian fits.

As in the paper:

* detection: the image is thresholded and its connected components are found; each bead is cut out as a
  ``window_px x window_px`` region (30 x 30 pixels) around its peak;
* lateral width: a 2D Gaussian ``A exp(-(x - xc)^2 / (2 sx^2) - (y - yc)^2 / (2 sy^2))`` is fitted to that
  region (the paper used Matlab ``lsqcurvefit``; here :func:`scipy.optimize.curve_fit`), and
  ``FWHM_lateral = 2 sqrt(2 ln 2) (sx dx + sy dy) / 2``;
* axial width: another 2D Gaussian in ``(x, z)`` is fitted to the x-z slice through ``y = yc`` over all planes
  of the stack, and ``FWHM_axial = 2 sqrt(2 ln 2) sz dz``.

Choices where the paper is silent (see docs/prep.md): the Gaussians carry a constant offset (the camera
background is not zero); the threshold is the triangle threshold of the lightly smoothed image (the method the
paper uses for its normalisation); a stack is searched on its maximum-intensity projection and a bead's
lateral fit is made on its brightest plane; a bead is kept only if no other component's peak lies inside its
window (isolated beads, as the paper's figures use), and only if its window lies inside the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import curve_fit
from skimage.filters import threshold_triangle

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.analysis.resolution import FWHM_PER_SIGMA
from widefield3d.errors import InputError

COLUMNS = ("bead", "z_um", "y_um", "x_um", "plane", "fwhm_x_um", "fwhm_y_um", "fwhm_lateral_um", "fwhm_axial_um",
           "r2_lateral", "r2_axial")
"""Columns of a bead table (one dict per bead); see :func:`measure_beads`."""


def _gaussian_2d(coords, amplitude, c0, c1, s0, s1, offset):
    u, v = coords
    return amplitude * np.exp(-((u - c0) ** 2) / (2 * s0 * s0) - ((v - c1) ** 2) / (2 * s1 * s1)) + offset


def fit_gaussian_2d(patch: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares fit of a 2D Gaussian with offset to ``patch``.

    Returns
    -------
    params : ndarray
        ``(amplitude, c0, c1, s0, s1, offset)``; centres and sigmas in pixels along the patch's axes 0 and 1.
    r2 : float
        Coefficient of determination of the fit (1 is perfect).

    Raises
    ------
    InputError
        If the fit does not converge.
    """
    p = np.asarray(patch, dtype=np.float64)
    n0, n1 = p.shape
    u, v = np.meshgrid(np.arange(n0, dtype=np.float64), np.arange(n1, dtype=np.float64), indexing="ij")
    lo, hi = float(np.percentile(p, 10)), float(p.max())
    i0, i1 = np.unravel_index(int(np.argmax(p)), p.shape)
    above = p - lo > 0.5 * (hi - lo)
    s_guess = max(0.7, math.sqrt(above.sum() / math.pi) / 1.18)  # half-maximum radius -> sigma
    guess = (hi - lo, i0, i1, s_guess, s_guess, lo)
    bounds = ([0, -0.5, -0.5, 0.2, 0.2, -np.inf], [np.inf, n0 - 0.5, n1 - 0.5, 2 * n0, 2 * n1, np.inf])
    try:
        params, _ = curve_fit(_gaussian_2d, (u.ravel(), v.ravel()), p.ravel(), p0=guess, bounds=bounds,
                              maxfev=2000)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"Gaussian fit did not converge ({exc})") from None
    model = _gaussian_2d((u.ravel(), v.ravel()), *params)
    total = float(np.sum((p.ravel() - p.mean()) ** 2))
    r2 = 1.0 - float(np.sum((p.ravel() - model) ** 2)) / total if total > 0 else math.nan
    return params, r2


def detect_beads(image, *, window_px: int = 30, threshold: float | None = None, smooth_px: float = 1.0,
                 min_area_px: int = 3) -> np.ndarray:
    """Peaks ``(y, x)`` (pixels) of isolated beads in a 2D image, brightest first.

    Parameters
    ----------
    image : array_like
        2D image (for a stack, its maximum-intensity projection).
    window_px : int
        Side of the region measured around each bead; a bead whose window leaves the image, or holds the peak
        of another component, is dropped.
    threshold : float, optional
        Intensity threshold on the smoothed image; default its triangle threshold.
    smooth_px : float
        Gaussian sigma applied before thresholding and peak finding (pixels).
    min_area_px : int
        Components smaller than this (noise specks) are ignored.

    Returns
    -------
    ndarray of int
        ``(N, 2)`` peak pixels.
    """
    img = as_finite_array("image", image, ndim=2)
    if window_px < 5:
        raise InputError(f"window_px: must be at least 5, got {window_px}")
    smooth = ndimage.gaussian_filter(img, smooth_px) if smooth_px > 0 else img
    if threshold is None:
        if smooth.max() <= smooth.min():
            return np.zeros((0, 2), dtype=int)
        threshold = float(threshold_triangle(smooth))
    labels, n = ndimage.label(smooth > threshold)
    if n == 0:
        return np.zeros((0, 2), dtype=int)
    index = np.arange(1, n + 1)
    area = ndimage.sum_labels(np.ones_like(smooth), labels, index)
    peaks = np.array(ndimage.maximum_position(smooth, labels, index), dtype=int).reshape(-1, 2)
    heights = smooth[peaks[:, 0], peaks[:, 1]]
    peaks, heights = peaks[area >= min_area_px], heights[area >= min_area_px]
    half = window_px // 2
    inside = np.all((peaks >= half) & (peaks + window_px - half <= np.array(img.shape)), axis=1)
    if len(peaks) > 1:
        gap = np.abs(peaks[:, None, :] - peaks[None, :, :]).max(axis=2)
        np.fill_diagonal(gap, window_px)
        crowded = (gap <= half).any(axis=1)
    else:
        crowded = np.zeros(len(peaks), dtype=bool)
    keep = inside & ~crowded
    order = np.argsort(-heights[keep], kind="stable")
    return peaks[keep][order]


def _spacing3(spacing_um, ndim: int) -> tuple[float, float, float]:
    values = np.atleast_1d(np.asarray(spacing_um, dtype=np.float64))
    if values.size != ndim or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"spacing_um: needs {ndim} positive values for {ndim}D input, got {spacing_um!r}")
    if ndim != 3:
        return math.nan, float(values[0]), float(values[1])
    dz, dy, dx = (float(v) for v in values[-3:])
    return dz, dy, dx


def measure_beads(image, spacing_um: Sequence[float], *, window_px: int = 30, threshold: float | None = None,
                  smooth_px: float = 1.0, min_r2: float = 0.0) -> list[dict]:
    """Lateral (and, for a stack, axial) FWHM of every isolated bead, as in Deep-Z's Fig. 1 and 4.

    Parameters
    ----------
    image : array_like
        ``(Y, X)`` image or ``(Z, Y, X)`` stack of sub-resolution beads.
    spacing_um : sequence of float
        ``(dy, dx)`` or ``(dz, dy, dx)`` in µm.
    window_px : int
        Side of the square region fitted around each bead (paper: 30), pixels.
    threshold, smooth_px
        Detection settings (see :func:`detect_beads`), applied to the image or the stack's projection.
    min_r2 : float
        Beads whose lateral fit has a lower R² are left out.

    Returns
    -------
    list of dict
        One row per bead with the keys of :data:`COLUMNS`: fitted centre ``z_um, y_um, x_um`` (µm from the
        first plane/pixel; ``z_um`` NaN for a 2D image), the ``plane`` of the lateral fit, ``fwhm_x_um``,
        ``fwhm_y_um``, ``fwhm_lateral_um`` (their mean), ``fwhm_axial_um`` (NaN for 2D or if the fit fails),
        and the R² of the lateral and axial fits. Write it with
        :func:`widefield3d.analysis.metrics.write_metrics_csv`.
    """
    data = np.asarray(image)
    if data.ndim not in (2, 3):
        raise InputError(f"image: must be 2D (Y, X) or 3D (Z, Y, X), got shape {data.shape}")
    dz, dy, dx = _spacing3(spacing_um, data.ndim)
    stack = as_finite_array("image", data[None] if data.ndim == 2 else data, ndim=3)
    projection = stack.max(axis=0)
    peaks = detect_beads(projection, window_px=window_px, threshold=threshold, smooth_px=smooth_px)
    half = window_px // 2
    rows: list[dict[str, float]] = []
    for y, x in peaks:
        ys, xs = slice(y - half, y - half + window_px), slice(x - half, x - half + window_px)
        axial = ndimage.uniform_filter1d(stack[:, y - 1 : y + 2, x - 1 : x + 2].mean(axis=(1, 2)), 3)
        plane = int(np.argmax(axial))
        try:
            lat, r2 = fit_gaussian_2d(stack[plane, ys, xs])
        except InputError:
            continue
        if not r2 >= min_r2:
            continue
        yc, xc = y - half + lat[1], x - half + lat[2]
        fwhm_y, fwhm_x = FWHM_PER_SIGMA * lat[3] * dy, FWHM_PER_SIGMA * lat[4] * dx
        z_um = fwhm_z = r2_z = math.nan
        if data.ndim == 3 and stack.shape[0] >= 5:
            row_y = int(np.clip(round(yc), 0, stack.shape[1] - 1))
            try:
                ax, r2_z = fit_gaussian_2d(stack[:, row_y, xs])
                z_um, fwhm_z = ax[1] * dz, FWHM_PER_SIGMA * ax[3] * dz
            except InputError:
                pass
        rows.append({
            "bead": len(rows), "z_um": float(z_um), "y_um": float(yc * dy), "x_um": float(xc * dx), "plane": plane,
            "fwhm_x_um": float(fwhm_x), "fwhm_y_um": float(fwhm_y), "fwhm_lateral_um": float(0.5 * (fwhm_x + fwhm_y)),
            "fwhm_axial_um": float(fwhm_z), "r2_lateral": float(r2), "r2_axial": float(r2_z),
        })
    return rows


def summarise(rows: Sequence[dict]) -> dict:
    """Bead count and median/mean/std of the lateral and axial FWHM (µm) of a bead table (NaN ignored)."""
    out: dict = {"n_beads": len(rows)}
    for key in ("fwhm_lateral_um", "fwhm_axial_um"):
        values = np.array([r[key] for r in rows], dtype=np.float64)
        values = values[np.isfinite(values)]
        name = key.removesuffix("_um")
        out[f"n_{name}"] = int(values.size)
        for stat, fn in (("median", np.median), ("mean", np.mean), ("std", np.std)):
            out[f"{name}_{stat}_um"] = float(fn(values)) if values.size else math.nan
    return out


def fwhm_histograms(tables: dict[str, Sequence[dict]], path, *, bins: int = 30, title: str | None = None):
    """Write a PNG of lateral (and, where measured, axial) FWHM histograms, one colour per table, atomically.

    Parameters
    ----------
    tables : dict of str to bead table
        Label -> rows of :func:`measure_beads` (e.g. ``{"scanned": ..., "Deep-Z": ...}``).
    path : str or path-like
        Output ``.png``.
    bins : int
        Histogram bins per panel (shared edges across tables).
    title : str, optional
        Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from widefield3d.io import atomic_output

    keys = [k for k in ("fwhm_lateral_um", "fwhm_axial_um")
            if any(np.isfinite(r[k]) for rows in tables.values() for r in rows)]
    if not keys:
        raise InputError("fwhm_histograms: no FWHM values to plot")
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = {label: np.array([r[key] for r in rows], dtype=float) for label, rows in tables.items()}
        values = {label: v[np.isfinite(v)] for label, v in values.items()}
        pooled = np.concatenate([v for v in values.values() if v.size] or [np.zeros(1)])
        edges: np.ndarray | int = bins
        low, high = np.percentile(pooled, [0.5, 99.5])
        log = bool(low > 0 and high > 4 * low)  # a long tail (e.g. defocused raw beads): log-spaced bins and axis
        if high > low:
            edges = np.geomspace(low, high, bins + 1) if log else np.linspace(low, high, bins + 1)
        for label, v in values.items():
            if v.size:
                ax.hist(v, bins=edges, alpha=0.55, label=f"{label}: median {np.median(v):.2f} µm, n={v.size}")
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(("lateral" if key == "fwhm_lateral_um" else "axial") + " FWHM (µm)")
        ax.set_ylabel("beads")
        ax.legend(fontsize=7, framealpha=0.7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
