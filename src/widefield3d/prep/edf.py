"""Extended depth of field (EDF): one all-in-focus image from a z-stack.

Deep-Z made its reference images with the ImageJ plugin "Extended Depth of Field" (Forster, Van De Ville,
Berent, Sage & Unser 2004, EPFL BIG). That plugin offers Sobel, variance, real-wavelet and complex-wavelet
focus measures; this module implements its variance method, which needs no wavelet library:

1. focus measure: the local variance of each plane in a ``window_px`` square window;
2. topology: for every pixel the plane of highest local variance (the height map of the in-focus surface);
3. the topology is smoothed with a median filter of ``smooth_px`` (the plugin's topology smoothing), which
   removes isolated wrong picks in flat background where the variance is only noise;
4. each output pixel is taken from its plane of the smoothed topology.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from widefield3d.errors import InputError


def as_stack(stack, name: str = "stack") -> np.ndarray:
    """``stack`` as a finite float32 ``ZYX`` array (at least one plane), or InputError naming ``name``."""
    arr = np.asarray(stack)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise InputError(f"{name}: must be a non-empty 3D (Z, Y, X) array, got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: contains NaN or infinite values")
    return arr


def local_variance(image: np.ndarray, window_px: int) -> np.ndarray:
    """Variance of ``image`` (2D, or the last two axes) in a ``window_px`` square window, float32."""
    size = (1,) * (image.ndim - 2) + (window_px, window_px)
    img = image.astype(np.float32, copy=False)
    mean = ndimage.uniform_filter(img, size=size, mode="reflect")
    mean_sq = ndimage.uniform_filter(img * img, size=size, mode="reflect")
    return np.maximum(mean_sq - mean * mean, 0)


def focus_topology(stack, window_px: int = 9, smooth_px: int = 9) -> np.ndarray:
    """Index of the in-focus plane of every pixel (int ``YX``), by local variance with median smoothing.

    Parameters
    ----------
    stack : array_like
        ``(Z, Y, X)`` stack.
    window_px : int
        Side of the square window of the local variance (pixels, >= 2).
    smooth_px : int
        Side of the median filter applied to the height map (pixels; 1 switches smoothing off).
    """
    s = as_stack(stack)
    if window_px < 2 or smooth_px < 1:
        raise InputError(f"window_px must be >= 2 and smooth_px >= 1, got {window_px} and {smooth_px}")
    top = np.argmax(local_variance(s, window_px), axis=0)
    if smooth_px > 1:
        top = ndimage.median_filter(top, size=smooth_px, mode="nearest")
    return top


def extended_depth_of_field(stack, window_px: int = 9, smooth_px: int = 9) -> np.ndarray:
    """All-in-focus image of a stack (the variance method of the ImageJ EDF plugin).

    Parameters
    ----------
    stack : array_like
        ``(Z, Y, X)`` stack, aligned (:func:`widefield3d.prep.align.align_stack`).
    window_px, smooth_px : int
        Local-variance window and height-map median filter, pixels (see :func:`focus_topology`).

    Returns
    -------
    ndarray of float32
        ``(Y, X)`` image; each pixel is the stack value at its in-focus plane.
    """
    s = as_stack(stack)
    top = focus_topology(s, window_px, smooth_px)
    return np.take_along_axis(s, top[None], axis=0)[0]
