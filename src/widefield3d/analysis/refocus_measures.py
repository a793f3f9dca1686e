"""Held-out measures that tell refocusing apart from denoising (issue 12): arrays in, numbers out.

A virtual stack refocused from one plane can beat the noisy scanned planes just by being smooth. These measures
compare it against the *clean* scanned stack and against the model's own ``dz = 0`` output, so that a denoiser
that ignores the refocus distance scores zero:

* :func:`refocus_gain_db`: per refocus distance, PSNR of the virtual plane minus PSNR of the ``dz = 0`` virtual
  plane, both against the clean plane at that distance, after one least-squares gain and offset that maps the
  whole virtual stack onto the clean stack;
* :func:`z_variation_ratio`: how much the virtual stack changes along z compared with the clean stack (a
  denoiser gives ~0, a refocusing model ~1);
* :func:`peak_depths` and :func:`depth_errors`: the depth of isolated beads as the plane where the virtual stack
  peaks, against their true depths.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from widefield3d.analysis.metrics import as_finite_array, psnr
from widefield3d.errors import InputError


def _pair(virtual, clean) -> tuple[np.ndarray, np.ndarray]:
    v = as_finite_array("virtual", virtual, ndim=3)
    c = as_finite_array("clean", clean, ndim=3)
    if v.shape != c.shape:
        raise InputError(f"virtual {v.shape} and clean {c.shape} must have the same (Z, Y, X) shape")
    return v, c


def _depths(z_um, n: int) -> np.ndarray:
    z = as_finite_array("z_um", z_um, ndim=1)
    if len(z) != n:
        raise InputError(f"z_um: needs one value per plane ({n}), got {len(z)}")
    return z


def gain_offset(pred, target) -> tuple[float, float]:
    """Least-squares ``(gain, offset)`` minimising ``sum((gain * pred + offset - target)**2)`` over all voxels."""
    p = np.asarray(pred, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    pc = p - p.mean()
    var = float(pc @ pc)
    gain = float(pc @ (t - t.mean())) / var if var > 0 else 0.0
    return gain, float(t.mean() - gain * p.mean())


def refocus_gain_db(virtual, clean, z_um, *, min_abs_dz_um: float = 2.0) -> dict:
    """PSNR gain of a virtual stack over its own ``dz = 0`` plane, against the clean scanned stack.

    Parameters
    ----------
    virtual : array_like
        ``(Z, Y, X)`` virtual stack refocused from the plane at ``z = 0`` (any linear intensity scale).
    clean : array_like
        ``(Z, Y, X)`` noise-free scanned stack at the same planes (any linear scale).
    z_um : array_like
        ``(Z,)`` refocus distance of each plane, µm; must contain 0.
    min_abs_dz_um : float
        Distances with ``|dz|`` below this are left out, µm.

    Returns
    -------
    dict
        ``z_um`` (the distances kept), ``gain_db`` (PSNR of the virtual plane minus PSNR of the ``dz = 0`` virtual
        plane, both against the clean plane at that distance, dB), ``psnr_virtual_db``, ``psnr_dz0_db``,
        ``gain_db_mean``, ``gain_db_min``, and the fitted ``gain`` and ``offset``. One least-squares gain/offset
        maps the whole virtual stack onto the clean stack; the PSNR data range is that of the clean stack.
    """
    v, c = _pair(virtual, clean)
    z = _depths(z_um, len(v))
    zero = np.flatnonzero(np.abs(z) < 1e-6)
    if zero.size != 1:
        raise InputError(f"z_um: needs exactly one plane at 0 µm (the input plane), got {z.tolist()}")
    far = np.flatnonzero(np.abs(z) >= min_abs_dz_um)
    if far.size == 0:
        raise InputError(f"z_um: no distance with |dz| >= {min_abs_dz_um} µm")
    gain, offset = gain_offset(v, c)
    fitted = gain * v + offset
    data_range = float(c.max() - c.min())
    if not data_range > 0:
        raise InputError("clean: the stack is constant, PSNR has no data range")
    at = [psnr(fitted[k], c[k], data_range) for k in far]
    still = [psnr(fitted[zero[0]], c[k], data_range) for k in far]
    diff = np.subtract(at, still)
    return {"z_um": z[far].tolist(), "gain_db": diff.tolist(), "psnr_virtual_db": at, "psnr_dz0_db": still,
            "gain_db_mean": float(diff.mean()), "gain_db_min": float(diff.min()), "gain": gain, "offset": offset}


def z_variation_ratio(virtual, clean, mask, *, smooth_px: int = 3) -> float:
    """Median over ``mask`` of the per-pixel standard deviation along z of ``virtual`` over that of ``clean``.

    Parameters
    ----------
    virtual, clean : array_like
        ``(Z, Y, X)`` stacks in the same intensity scale (e.g. both in the training normalisation).
    mask : array_like of bool
        ``(Y, X)`` pixels to measure (the foreground); pixels where ``clean`` does not vary are skipped.
    smooth_px : int
        Side of the lateral box filter applied to both stacks first, pixels (1: none).

    Returns
    -------
    float
        The median ratio: ~1 when the virtual stack changes along z as much as the scanned one, ~0 when it does
        not change (a denoiser).
    """
    v, c = _pair(virtual, clean)
    m = np.asarray(mask, dtype=bool)
    if m.shape != v.shape[1:]:
        raise InputError(f"mask: shape {m.shape} must be the stack's (Y, X) {v.shape[1:]}")
    size = (1, int(smooth_px), int(smooth_px))
    sv = ndimage.uniform_filter(v, size).std(axis=0)
    sc = ndimage.uniform_filter(c, size).std(axis=0)
    use = m & (sc > 1e-12 * max(float(sc.max()), 1e-300))
    if not use.any():
        raise InputError("mask: selects no pixel where the clean stack varies along z")
    return float(np.median(sv[use] / sc[use]))


def peak_depths(virtual, z_um, centres_yx_px, *, radius_px: int = 2, smooth_px: int = 3) -> np.ndarray:
    """Depth of each bead as the plane where the virtual stack peaks near its lateral position.

    Parameters
    ----------
    virtual : array_like
        ``(Z, Y, X)`` virtual stack.
    z_um : array_like
        ``(Z,)`` depth of each plane relative to the input plane, µm.
    centres_yx_px : array_like
        ``(N, 2)`` lateral bead positions, pixels (rounded to the nearest pixel).
    radius_px : int
        The peak is the maximum over a ``(2 r + 1)``-pixel square around each position in every plane.
    smooth_px : int
        Side of the lateral box filter applied to the stack first (1: none).

    Returns
    -------
    ndarray of float
        ``(N,)`` depths, µm (``z_um`` of the brightest plane).
    """
    v = as_finite_array("virtual", virtual, ndim=3)
    z = _depths(z_um, len(v))
    centres = np.rint(np.asarray(centres_yx_px, dtype=np.float64)).astype(int).reshape(-1, 2)
    if np.any(centres < 0) or np.any(centres >= np.array(v.shape[1:])):
        raise InputError(f"centres_yx_px: positions must lie inside the {v.shape[1:]} image")
    smooth = ndimage.uniform_filter(v, (1, int(smooth_px), int(smooth_px)))
    peaks = ndimage.maximum_filter(smooth, (1, 2 * radius_px + 1, 2 * radius_px + 1), mode="nearest")
    profiles = peaks[:, centres[:, 0], centres[:, 1]]
    return z[np.argmax(profiles, axis=0)]


def depth_errors(estimated_um, true_um) -> dict:
    """Summary of depth estimates against true depths (µm; NaN estimates count as failures).

    Returns
    -------
    dict
        ``n`` (beads), ``n_failed`` (NaN estimates), ``median_abs_error_um``, ``mean_abs_error_um`` and
        ``fraction_within_1um`` over the finite estimates, and ``peak_at_zero_fraction`` (estimates equal to 0 µm,
        what a model that does not refocus gives).
    """
    est = np.asarray(estimated_um, dtype=np.float64).ravel()
    true = np.asarray(true_um, dtype=np.float64).ravel()
    if est.shape != true.shape or est.size == 0:
        raise InputError(f"estimated_um ({est.size}) and true_um ({true.size}) must be equally long and non-empty")
    ok = np.isfinite(est)
    err = np.abs(est[ok] - true[ok])
    nan = float("nan")
    return {"n": int(est.size), "n_failed": int((~ok).sum()),
            "median_abs_error_um": float(np.median(err)) if err.size else nan,
            "mean_abs_error_um": float(err.mean()) if err.size else nan,
            "fraction_within_1um": float((err <= 1.0).mean()) if err.size else nan,
            "peak_at_zero_fraction": float((np.abs(est[ok]) < 1e-6).mean()) if err.size else nan}
