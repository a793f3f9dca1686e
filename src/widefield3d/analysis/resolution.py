"""Resolution measures: FWHM of profiles, PSFs and beads, and axial asymmetry of a PSF.

All widths and positions are returned in micrometres when a spacing in µm is given
(``spacing_um=(dz, dy, dx)`` for ``ZYX`` stacks, ``(dy, dx)`` for ``YX`` images); 1D
functions take one ``spacing`` and return widths in its units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.optimize import curve_fit
from skimage.feature import peak_local_max

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.errors import InputError

Baseline = float | Literal["min"]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...


def _spacing(spacing, ndim: int, name: str = "spacing_um") -> tuple[float, ...]:
    values = np.atleast_1d(np.asarray(spacing, dtype=np.float64))
    if values.ndim != 1 or values.size != ndim:
        raise InputError(f"{name}: needs {ndim} values for {ndim}D input, got {spacing!r}")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InputError(f"{name}: every value must be positive and finite, got {spacing!r}")
    return tuple(float(v) for v in values)


def _subtract_baseline(profile: np.ndarray, baseline: Baseline) -> np.ndarray:
    if isinstance(baseline, str):
        if baseline != "min":
            raise InputError(f"baseline: must be a number or 'min', got {baseline!r}")
        return profile - profile.min()
    return profile - float(baseline)


def _profile(profile, name: str = "profile") -> np.ndarray:
    p = as_finite_array(name, profile, ndim=1)
    if p.size < 3:
        raise InputError(f"{name}: needs at least 3 samples, got {p.size}")
    return p


def _parabolic_peak(values: np.ndarray, i: int) -> tuple[float, float]:
    """Sub-sample position and height of the maximum at index ``i``.

    The vertex of the parabola through the samples ``i - 1, i, i + 1`` (offset clipped to half a
    sample); the sample itself at the ends or where the three samples are not concave.
    """
    if i == 0 or i == values.size - 1:
        return float(i), float(values[i])
    left, mid, right = values[i - 1], values[i], values[i + 1]
    curvature = left - 2.0 * mid + right
    if curvature >= 0:
        return float(i), float(mid)
    offset = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    return i + offset, float(mid - 0.25 * (left - right) * offset)


def fwhm_1d(profile, spacing: float = 1.0, *, baseline: Baseline = 0.0) -> float:
    """Full width at half maximum of a single-peaked profile.

    The baseline is subtracted; the maximum is the vertex of the parabola through the highest
    sample and its two neighbours (so a peak between samples is not underestimated); the two
    half-maximum crossings nearest to the highest sample are found by linear interpolation
    between neighbouring samples (sub-sample accurate).

    Accuracy on a sampled Gaussian of standard deviation ``sigma`` (in samples), worst case over
    sub-sample peak positions: within 1% for ``sigma >= 2``, about 3-4% at ``sigma = 1``
    (linear interpolation of the convex flanks overestimates the width); use
    :func:`gaussian_fit_fwhm` for coarser sampling.

    Parameters
    ----------
    profile : array_like
        1D intensities, at least 3 samples.
    spacing : float
        Distance between samples (e.g. µm); the width is returned in the same unit.
    baseline : float or "min"
        Background level subtracted first (default 0); ``"min"`` uses the profile minimum.

    Returns
    -------
    float
        FWHM in units of ``spacing``.

    Raises
    ------
    InputError
        If the peak does not rise above the baseline, or the profile does not fall below half
        maximum on both sides of the peak (peak cut by the edge).
    """
    spacing = _spacing(spacing, 1, "spacing")[0]
    p = _subtract_baseline(_profile(profile), baseline)
    i = int(np.argmax(p))
    if p[i] <= 0:
        raise InputError("profile: the peak does not rise above the baseline")
    half = _parabolic_peak(p, i)[1] / 2.0
    below = np.nonzero(p[:i] <= half)[0]
    if below.size == 0:
        raise InputError("profile: does not fall to half maximum left of the peak (peak cut by the edge)")
    j = below[-1]  # p[j] <= half < p[j + 1]
    left = j + (half - p[j]) / (p[j + 1] - p[j])
    below = np.nonzero(p[i + 1 :] <= half)[0]
    if below.size == 0:
        raise InputError("profile: does not fall to half maximum right of the peak (peak cut by the edge)")
    k = i + 1 + below[0]  # p[k - 1] > half >= p[k]
    right = k - 1 + (p[k - 1] - half) / (p[k - 1] - p[k])
    return float((right - left) * spacing)


def gaussian_fit_fwhm(profile, spacing: float = 1.0) -> float:
    """FWHM of a Gaussian-plus-offset least-squares fit to a (noisy) profile.

    Fits ``a exp(-(x - mu)^2 / (2 s^2)) + b`` with :func:`scipy.optimize.curve_fit` and returns
    ``2 sqrt(2 ln 2) |s|``. Suited to noisy bead profiles, where :func:`fwhm_1d` follows noise.

    Parameters
    ----------
    profile : array_like
        1D intensities, at least 4 samples (one per fitted parameter).
    spacing : float
        Distance between samples (e.g. µm); the width is returned in the same unit.

    Returns
    -------
    float
        FWHM in units of ``spacing``.

    Raises
    ------
    InputError
        If the fit does not converge or gives no finite width.
    """
    spacing = _spacing(spacing, 1, "spacing")[0]
    p = _profile(profile)
    if p.size < 4:
        raise InputError(f"profile: a Gaussian fit needs at least 4 samples, got {p.size}")
    x = np.arange(p.size) * spacing
    lo, hi = float(p.min()), float(p.max())
    if hi <= lo:
        raise InputError("profile: is constant, there is no peak to fit")
    try:
        s0 = fwhm_1d(p, spacing, baseline="min") / FWHM_PER_SIGMA
    except InputError:
        s0 = p.size * spacing / 4.0
    guess = (hi - lo, float(x[np.argmax(p)]), s0, lo)
    try:
        (_, _, s, _), _ = curve_fit(_gaussian, x, p, p0=guess, maxfev=5000)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"profile: Gaussian fit did not converge ({exc})") from None
    if not math.isfinite(s) or s == 0:
        raise InputError("profile: Gaussian fit gave no finite width")
    return float(FWHM_PER_SIGMA * abs(s))


def _gaussian(x, a, mu, s, b):
    return a * np.exp(-((x - mu) ** 2) / (2.0 * s * s)) + b


def _refined_peak(volume: np.ndarray, refine: bool) -> tuple[float, ...]:
    """Position (in voxels) of the brightest voxel, refined per axis by a parabola if asked."""
    peak = np.unravel_index(int(np.argmax(volume)), volume.shape)
    if not refine:
        return tuple(float(i) for i in peak)
    position = []
    for axis, i in enumerate(peak):
        line: list[int | slice] = [int(i) for i in peak]
        line[axis] = slice(None)
        position.append(_parabolic_peak(volume[tuple(line)], int(i))[0])
    return tuple(position)


def _line_through(volume: np.ndarray, centre: Sequence[float], axis: int) -> np.ndarray:
    """Profile along ``axis`` through the (sub-voxel) ``centre``, by linear interpolation."""
    n = volume.shape[axis]
    coords = [np.full(n, c) for c in centre]
    coords[axis] = np.arange(n, dtype=np.float64)
    return map_coordinates(volume, coords, order=1, mode="nearest")


def psf_fwhm(
    psf, spacing_um: Sequence[float], *, refine: bool = True, baseline: Baseline = 0.0
) -> tuple[float, ...]:
    """FWHM of a PSF along each axis through its brightest voxel.

    Parameters
    ----------
    psf : array_like
        3D ``(Z, Y, X)`` or 2D ``(Y, X)`` intensity PSF.
    spacing_um : sequence of float
        Voxel size ``(dz, dy, dx)`` (or ``(dy, dx)``) in µm.
    refine : bool
        Refine the peak to sub-voxel precision (parabola per axis) and take the profiles through
        that point by linear interpolation; False uses the lines through the brightest voxel.
    baseline : float or "min"
        Passed to :func:`fwhm_1d` for each profile.

    Returns
    -------
    tuple of float
        ``(fwhm_z, fwhm_y, fwhm_x)`` (or ``(fwhm_y, fwhm_x)``) in µm.
    """
    volume = as_finite_array("psf", psf, ndim=(2, 3))
    spacing = _spacing(spacing_um, volume.ndim)
    centre = _refined_peak(volume, refine)
    return tuple(
        fwhm_1d(_line_through(volume, centre, axis), spacing[axis], baseline=baseline)
        for axis in range(volume.ndim)
    )


def bead_fwhm(
    stack,
    spacing_um: Sequence[float],
    *,
    window_um: float | Sequence[float],
    centres: Sequence[Sequence[int]] | None = None,
    threshold_rel: float = 0.3,
    fit: Literal["gaussian", "linear"] = "gaussian",
) -> list[dict]:
    """Lateral and axial FWHM of every bead in a ``ZYX`` stack.

    For each bead, the three axis-aligned profiles through its centre voxel are cut to the
    window and measured by :func:`gaussian_fit_fwhm` (default) or :func:`fwhm_1d` with
    ``baseline="min"``. A profile that cannot be measured (fit fails, bead at the edge) gives NaN
    in that bead's row instead of stopping the whole table.

    Parameters
    ----------
    stack : array_like
        3D ``(Z, Y, X)`` image of sparse sub-resolution beads on a dark background.
    spacing_um : sequence of float
        Voxel size ``(dz, dy, dx)`` in µm.
    window_um : float or sequence of float
        Full extent ``(z, y, x)`` in µm of the box measured around each bead (one number: the
        same in all axes). It should hold the bead's tails but no neighbour.
    centres : sequence of (z, y, x) int, optional
        Bead centres in voxels. By default they are detected as local maxima
        (:func:`skimage.feature.peak_local_max`), brightest first, above ``threshold_rel`` of
        the stack maximum and separated by at least the smallest half-window counted in voxels.
    threshold_rel : float
        Relative detection threshold, used only when ``centres`` is None.
    fit : "gaussian" or "linear"
        Width estimator (see above).

    Returns
    -------
    list of dict
        One row per bead: ``bead`` (index), ``z``, ``y``, ``x`` (voxels), ``fwhm_z_um``,
        ``fwhm_y_um``, ``fwhm_x_um`` and ``fwhm_lateral_um`` (mean of y and x), widths in µm.
        The rows can be written with :func:`widefield3d.analysis.metrics.write_metrics_csv`.
    """
    volume = as_finite_array("stack", stack, ndim=3)
    spacing = _spacing(spacing_um, 3)
    window = _spacing(window_um if np.ndim(window_um) else (window_um,) * 3, 3, "window_um")
    half = [max(1, int(round(w / (2.0 * s)))) for w, s in zip(window, spacing)]
    if fit not in ("gaussian", "linear"):
        raise InputError(f"fit: must be 'gaussian' or 'linear', got {fit!r}")
    measure = gaussian_fit_fwhm if fit == "gaussian" else _fwhm_above_min
    if centres is None:
        found = peak_local_max(
            volume, min_distance=min(half), threshold_rel=threshold_rel, exclude_border=False
        )
    else:
        found = np.asarray(centres)
        if found.ndim != 2 or found.shape[1] != 3 or found.dtype.kind not in "iu":
            raise InputError(f"centres: must be integer (z, y, x) voxel triples, got array of shape {found.shape}")
        if np.any(found < 0) or np.any(found >= np.array(volume.shape)):
            raise InputError(f"centres: a centre lies outside the stack of shape {volume.shape}")
    rows = []
    for n, centre in enumerate(found):
        widths = []
        for axis in range(3):
            index: list[int | slice] = [int(c) for c in centre]
            at = int(centre[axis])
            index[axis] = slice(max(0, at - half[axis]), at + half[axis] + 1)
            try:
                widths.append(measure(volume[tuple(index)], spacing[axis]))
            except InputError:
                widths.append(math.nan)
        z, y, x = (int(c) for c in centre)
        rows.append(
            {
                "bead": n,
                "z": z,
                "y": y,
                "x": x,
                "fwhm_z_um": widths[0],
                "fwhm_y_um": widths[1],
                "fwhm_x_um": widths[2],
                "fwhm_lateral_um": 0.5 * (widths[1] + widths[2]),
            }
        )
    return rows


def _fwhm_above_min(profile: np.ndarray, spacing: float) -> float:
    return fwhm_1d(profile, spacing, baseline="min")


def _axial_pairs(psf, spacing_um, window_um: float | None, baseline: Baseline):
    """Axial profile sampled symmetrically about its sub-sample peak.

    Returns the offsets ``d`` (planes, 1..K) from the peak ``z0``, the intensities
    ``I(z0 + d)``, ``I(z0 - d)`` and ``I(z0)``, and ``dz`` in µm.
    """
    volume = as_finite_array("psf", psf, ndim=3)
    dz = _spacing(spacing_um, 3)[0]
    _, y, x = np.unravel_index(int(np.argmax(volume)), volume.shape)
    profile = _subtract_baseline(volume[:, y, x], baseline)
    if profile.size < 3:
        raise InputError(f"psf: needs at least 3 planes, got shape {volume.shape}")
    z = np.arange(profile.size, dtype=np.float64)
    z0 = _parabolic_peak(profile, int(np.argmax(profile)))[0]
    if window_um is None:
        try:
            window_um = 3.0 * fwhm_1d(profile, dz)
        except InputError as exc:
            raise InputError(f"psf: axial FWHM for the default window failed ({exc}); give window_um") from None
    elif not (math.isfinite(window_um) and window_um > 0):
        raise InputError(f"window_um: must be a positive number of µm, got {window_um!r}")
    k_max = min(int(math.floor(window_um / dz)), int(math.floor(z0)), int(math.floor(z[-1] - z0)))
    if k_max < 1:
        raise InputError("psf: the axial peak is too close to the first or last plane to compare both sides")
    d = np.arange(1, k_max + 1, dtype=np.float64)
    upper = np.interp(z0 + d, z, profile)
    lower = np.interp(z0 - d, z, profile)
    centre = float(np.interp(z0, z, profile))
    return d, upper, lower, centre, dz


def axial_asymmetry(
    psf, spacing_um: Sequence[float], *, window_um: float | None = None, baseline: Baseline = 0.0
) -> float:
    """How asymmetric a 3D PSF is about its focus (0 symmetric, towards 1 one-sided).

    The axial intensity profile ``I(z)`` is taken through the lateral position of the brightest
    voxel, its peak ``z0`` is refined to sub-sample precision by a parabola through the three
    samples around the maximum, and

        A = sum_d |I(z0 + d) - I(z0 - d)| / sum_d (I(z0 + d) + I(z0 - d)),

    with ``d = k dz`` for ``k = 1..K`` and ``I`` linearly interpolated between planes. ``K``
    covers ``|d| <= window_um`` but is cut where either side leaves the stack (the sum stays
    symmetric). ``A = 0`` for a profile symmetric about a sample (for a peak between samples,
    the parabola and linear interpolation leave a small residual); ``A = 1`` when
    ``I(z0 - d) = 0`` for every ``d`` (a sharp one-sided edge gives somewhat less, since the
    parabola moves ``z0`` a little into the dark side).

    Parameters
    ----------
    psf : array_like
        3D ``(Z, Y, X)`` intensity PSF, background removed (or use ``baseline``).
    spacing_um : sequence of float
        Voxel size ``(dz, dy, dx)`` in µm.
    window_um : float, optional
        Largest ``|d|`` in µm; default three times the axial FWHM of the profile.
    baseline : float or "min"
        Subtracted from the axial profile first (default 0; "min": its minimum).

    Returns
    -------
    float
        A, dimensionless, in [0, 1] for non-negative profiles.
    """
    _, upper, lower, _, _ = _axial_pairs(psf, spacing_um, window_um, baseline)
    total = float(np.sum(upper + lower))
    if total <= 0:
        raise InputError("psf: the axial profile around the peak has no positive intensity")
    return float(np.sum(np.abs(upper - lower)) / total)


def axial_centroid_shift(
    psf, spacing_um: Sequence[float], *, window_um: float | None = None, baseline: Baseline = 0.0
) -> float:
    """Signed offset of the axial profile's centroid from its peak, in µm.

    Uses the same profile, peak ``z0`` and symmetric window as :func:`axial_asymmetry`:

        shift = dz * sum_d d (I(z0 + d) - I(z0 - d)) / (I(z0) + sum_d (I(z0 + d) + I(z0 - d))),

    with ``d`` in planes. Positive when more light lies at larger z (deeper, away from the
    objective), negative when it lies towards the objective, 0 for a symmetric profile.

    Parameters
    ----------
    psf : array_like
        3D ``(Z, Y, X)`` intensity PSF, background removed (or use ``baseline``).
    spacing_um : sequence of float
        Voxel size ``(dz, dy, dx)`` in µm.
    window_um : float, optional
        Largest ``|d|`` in µm; default three times the axial FWHM of the profile.
    baseline : float or "min"
        Subtracted from the axial profile first.

    Returns
    -------
    float
        Centroid minus peak position, in µm.
    """
    d, upper, lower, centre, dz = _axial_pairs(psf, spacing_um, window_um, baseline)
    total = centre + float(np.sum(upper + lower))
    if total <= 0:
        raise InputError("psf: the axial profile around the peak has no positive intensity")
    return float(dz * np.sum(d * (upper - lower)) / total)
