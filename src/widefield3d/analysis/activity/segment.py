"""Neuron centroids and 3D masks from the nuclear channel (paper Methods: median projection over time, local
maxima = centroids, watershed from the centroids = masks)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from widefield3d.errors import InputError


def _radius_px(radius_um: float, spacing_um) -> np.ndarray:
    return np.floor(float(radius_um) / np.asarray(spacing_um, float) + 1e-9).astype(int)


def median_projection(stacks: np.ndarray) -> np.ndarray:
    """Median over time (axis 0) of ``(T, Z, Y, X)`` stacks: ``(Z, Y, X)`` float32."""
    stacks = np.asarray(stacks)
    if stacks.ndim != 4:
        raise InputError(f"median_projection: expected (T, Z, Y, X), got shape {stacks.shape}")
    return np.median(stacks, axis=0).astype(np.float32)


def smooth(volume: np.ndarray, spacing_um, sigma_um: tuple[float, float] = (0.5, 0.3)) -> np.ndarray:
    """Gaussian smoothing of a ``(Z, Y, X)`` volume by ``sigma_um = (axial, lateral)`` µm."""
    sigma = np.array([sigma_um[0], sigma_um[1], sigma_um[1]]) / np.asarray(spacing_um, float)
    sigma[np.array(volume.shape) == 1] = 0
    return ndimage.gaussian_filter(np.asarray(volume, np.float32), sigma)


def local_contrast(smoothed: np.ndarray, peaks: np.ndarray, spacing_um, box_um: tuple[float, float] = (4.0, 3.0),
                   percentile: float = 20.0) -> np.ndarray:
    """``1 - background / peak`` at each peak ``(N, 3)`` of a ``(Z, Y, X)`` volume: ``background`` is the
    ``percentile`` of the volume in a box of +-``box_um`` (axial, lateral; µm) around the peak (clipped at the edges).

    0: the peak does not stand above its surroundings; 0.3: it is 1.43 times their ``percentile``.
    """
    peaks = np.asarray(peaks, int).reshape(-1, 3)
    half = [int(_radius_px(r, s)) for r, s in zip((box_um[0], box_um[1], box_um[1]), spacing_um)]
    out = np.empty(len(peaks))
    for i, p in enumerate(peaks):
        box = smoothed[tuple(slice(max(c - h, 0), c + h + 1) for c, h in zip(p, half))]
        peak = float(smoothed[tuple(p)])
        out[i] = 1 - float(np.percentile(box, percentile)) / peak if peak > 0 else 0.0
    return out


def find_centroids(smoothed: np.ndarray, spacing_um, *, min_distance_um: tuple[float, float] = (2.0, 1.2),
                   threshold: float | None = None, min_contrast: float = 0.0) -> np.ndarray:
    """Local maxima of the smoothed nuclear channel: neuron centroids, ``(N, 3)`` voxel indices ``(z, y, x)``.

    Parameters
    ----------
    smoothed : ndarray, ``(Z, Y, X)``
        The nuclear channel (e.g. its median over time) after :func:`smooth`; ``Z = 1`` for a 2D analysis.
    spacing_um : (dz, dy, dx)
    min_distance_um : (axial, lateral)
        A maximum must be the largest value within this ellipsoid (µm).
    threshold : float, optional
        Lowest accepted peak value; default Otsu's threshold of ``smoothed``.
    min_contrast : float
        Lowest accepted :func:`local_contrast` (0: every maximum above ``threshold``).
    """
    smoothed = np.asarray(smoothed, np.float32)
    if smoothed.ndim != 3:
        raise InputError(f"find_centroids: expected (Z, Y, X), got shape {smoothed.shape}")
    rz, ry, rx = (int(_radius_px(r, s)) for r, s in zip((min_distance_um[0], *min_distance_um[1:] * 2), spacing_um))
    if smoothed.shape[0] == 1:
        rz = 0
    zz, yy, xx = np.ogrid[-rz:rz + 1, -ry:ry + 1, -rx:rx + 1]
    footprint = (zz / max(rz, 1)) ** 2 + (yy / max(ry, 1)) ** 2 + (xx / max(rx, 1)) ** 2 <= 1
    if threshold is None:
        threshold = float(threshold_otsu(smoothed)) if np.ptp(smoothed) > 0 else float(smoothed.max()) + 1
    peaks = peak_local_max(smoothed, footprint=footprint, threshold_abs=threshold, exclude_border=False)
    if min_contrast > 0 and len(peaks):
        peaks = peaks[local_contrast(smoothed, peaks, spacing_um) >= min_contrast]
    return peaks


def watershed_masks(smoothed: np.ndarray, centroids: np.ndarray, spacing_um, *, max_radius_um: float = 2.5,
                    threshold: float | None = None) -> np.ndarray:
    """3D watershed of the inverted smoothed nuclear channel (as :func:`find_centroids`) from the centroids: one
    label per neuron.

    Label ``i + 1`` belongs to ``centroids[i]``. Voxels below ``threshold`` (default Otsu's, as
    :func:`find_centroids`) or farther than ``max_radius_um`` from every centroid belong to no neuron (0).

    Returns
    -------
    ndarray of int32, ``(Z, Y, X)``
    """
    smoothed = np.asarray(smoothed, np.float32)
    centroids = np.asarray(centroids, int).reshape(-1, 3)
    markers = np.zeros(smoothed.shape, np.int32)
    if len(centroids) == 0:
        return markers
    markers[tuple(centroids.T)] = np.arange(1, len(centroids) + 1)
    if threshold is None:
        threshold = float(threshold_otsu(smoothed)) if np.ptp(smoothed) > 0 else float(smoothed.min())
    near = ndimage.distance_transform_edt(markers == 0, sampling=spacing_um) <= max_radius_um
    mask = near & (smoothed >= threshold)
    mask[tuple(centroids.T)] = True
    return watershed(-smoothed, markers, mask=mask).astype(np.int32)
