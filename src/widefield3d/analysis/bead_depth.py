"""Depth of a bead from one wide-field image, by least-squares fit to a library of PSF planes.

The classical answer to "is the depth of a point in a single plane?": the defocused PSF of an index-mismatched
objective changes shape with defocus and differs above and below focus, so the PSF plane that best explains
a bead's image gives its depth. Every library plane, shifted laterally over a small grid of sub-pixel
offsets, is fitted to the window around the bead with a free amplitude (>= 0) and a free constant background
(linear least squares, closed form); the depth with the smallest residual is refined by a parabola through it
and its two neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.errors import InputError


@dataclass(frozen=True)
class PsfLibrary:
    """Shifted PSF templates, cut to the fitting window.

    Attributes
    ----------
    templates : ndarray of float32
        ``(S * Z, W * W)`` flattened templates, shift-major (template ``s * Z + k``: shift ``s``, depth ``k``).
    z_um : ndarray
        ``(Z,)`` bead depth of each library plane relative to the focal plane, µm.
    shifts_yx_px : ndarray
        ``(S, 2)`` lateral offset of the bead from the window centre in each template, pixels.
    window_px : int
        Side ``W`` of the fitting window (odd), pixels.
    sums, variances : ndarray of float64
        ``(S * Z,)`` sum of each template and its sum of squared deviations from its mean.
    """

    templates: np.ndarray
    z_um: np.ndarray
    shifts_yx_px: np.ndarray
    window_px: int
    sums: np.ndarray
    variances: np.ndarray


def psf_library(planes, z_um, window_px: int = 41, *, max_shift_px: float = 1.5,
                shift_step_px: float = 0.5) -> PsfLibrary:
    """Cut a stack of PSF planes into shifted, flattened templates for :func:`fit_bead_depth`.

    Parameters
    ----------
    planes : array_like
        ``(Z, L, L)`` PSF planes with the point at the centre pixel, ``L`` odd and at least
        ``window_px + 2 ceil(max_shift_px)``.
    z_um : array_like
        ``(Z,)`` bead depth of each plane relative to the focal plane, µm, increasing, evenly spaced.
    window_px : int
        Side of the fitting window, pixels (odd).
    max_shift_px, shift_step_px : float
        Lateral offsets of the bead from the window centre tried on each axis: ``-max .. +max`` in steps, pixels
        (sub-pixel shifts by the Fourier shift theorem).

    Returns
    -------
    PsfLibrary
    """
    p = as_finite_array("planes", planes, ndim=3)
    z = as_finite_array("z_um", z_um, ndim=1)
    n = p.shape[1]
    margin = int(np.ceil(max_shift_px))
    if len(z) != len(p) or len(z) < 3 or np.any(np.diff(z) <= 0):
        raise InputError(f"z_um: needs one increasing depth per plane (at least 3), got {len(z)} for {len(p)} planes")
    if window_px < 3 or window_px % 2 == 0 or n != p.shape[2] or n % 2 == 0 or n < window_px + 2 * margin:
        raise InputError(f"planes: need square odd planes of at least {window_px + 2 * margin} px for an odd "
                         f"{window_px} px window shifted by {max_shift_px} px, got {p.shape[1:]}")
    if not (shift_step_px > 0 and max_shift_px >= 0):
        raise InputError(f"shift_step_px must be > 0 and max_shift_px >= 0, got {shift_step_px}, {max_shift_px}")
    offsets = np.arange(-max_shift_px, max_shift_px + shift_step_px / 2, shift_step_px)
    shifts = np.array([(dy, dx) for dy in offsets for dx in offsets])
    spectrum = np.fft.fft2(p)
    lo = (n - window_px) // 2
    cut = slice(lo, lo + window_px)
    templates = [np.fft.ifft2(ndimage.fourier_shift(spectrum, (0.0, dy, dx))).real[:, cut, cut]
                 for dy, dx in shifts]
    flat = np.stack(templates).reshape(len(shifts) * len(z), window_px * window_px)
    variances = ((flat - flat.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return PsfLibrary(flat.astype(np.float32), z, shifts, int(window_px), flat.sum(axis=1), variances)


def fit_bead_depth(window, library: PsfLibrary) -> dict:
    """Fit one bead's window to every template of a PSF library (free amplitude >= 0 and background).

    Parameters
    ----------
    window : array_like
        ``(W, W)`` image around the bead, its centre pixel nearest the bead (any linear intensity units).
    library : PsfLibrary
        Templates from :func:`psf_library`.

    Returns
    -------
    dict
        ``z_um`` (depth, parabola-refined between library planes, µm), ``z_grid_um`` (best library plane, µm),
        ``shift_yx_px`` (best offset from the window centre, pixels), ``amplitude``, ``background`` (window units)
        and ``rss`` (residual sum of squares of the best fit).
    """
    w = as_finite_array("window", window, ndim=2)
    if w.shape != (library.window_px, library.window_px):
        raise InputError(f"window: must be {library.window_px} x {library.window_px} pixels, got {w.shape}")
    centred = w.ravel() - w.mean()
    tw = (library.templates @ centred.astype(np.float32)).astype(np.float64)  # sum of t (w - mean w)
    t_var = library.variances
    amplitude = np.where((tw > 0) & (t_var > 0), tw / np.where(t_var > 0, t_var, 1.0), 0.0)
    w_var = float(centred @ centred)
    rss = w_var - amplitude * tw
    nz = len(library.z_um)
    per_depth = rss.reshape(-1, nz).min(axis=0)
    k = int(np.argmin(per_depth))
    z = float(library.z_um[k])
    if 0 < k < nz - 1:
        a, b, c = per_depth[k - 1 : k + 2]
        curvature = a - 2 * b + c
        if curvature > 0:
            z += 0.5 * (a - c) / curvature * float(library.z_um[k + 1] - library.z_um[k])
    best = int(np.argmin(rss))
    s = best // nz
    background = float(w.mean() - amplitude[best] * library.sums[best] / centred.size)
    return {"z_um": z, "z_grid_um": float(library.z_um[k]), "shift_yx_px": library.shifts_yx_px[s].tolist(),
            "amplitude": float(amplitude[best]), "background": background, "rss": float(rss[best])}


def bead_depths(image, centres_yx_px, library: PsfLibrary) -> np.ndarray:
    """Depth of each bead of a single image by :func:`fit_bead_depth` (NaN where its window leaves the image).

    Parameters
    ----------
    image : array_like
        ``(Y, X)`` wide-field image of isolated beads.
    centres_yx_px : array_like
        ``(N, 2)`` bead positions, pixels (the window is centred on the nearest pixel).
    library : PsfLibrary

    Returns
    -------
    ndarray of float
        ``(N,)`` depths relative to the focal plane, µm.
    """
    img = as_finite_array("image", image, ndim=2)
    centres = np.rint(np.asarray(centres_yx_px, dtype=np.float64)).astype(int).reshape(-1, 2)
    half = library.window_px // 2
    out = np.full(len(centres), np.nan)
    for i, (y, x) in enumerate(centres):
        if half <= y < img.shape[0] - half and half <= x < img.shape[1] - half:
            out[i] = fit_bead_depth(img[y - half : y + half + 1, x - half : x + half + 1], library)["z_um"]
    return out
