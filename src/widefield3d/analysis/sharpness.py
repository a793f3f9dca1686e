"""Gradient sharpness of image patches, per depth (WFCON-Net paper, Fig. 1 and Fig. 5b).

The paper measures sharpness as the image gradient ``|dI/dx| + |dI/dy|`` of 32 x 32 patches; at each depth the
patch with the largest gradient stands for the signal and the one with the smallest for the background. Here a
patch's sharpness is the mean of ``|dI/dx| + |dI/dy|`` (forward differences, in intensity units per pixel) over
the patch, on a grid of non-overlapping patches (a partial patch at the right/bottom border is dropped).
"""

from __future__ import annotations

import numpy as np

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.errors import InputError

__all__ = ["patch_sharpness", "sharpness_per_depth"]


def patch_sharpness(image, patch: int = 32) -> np.ndarray:
    """Mean gradient magnitude ``|dI/dx| + |dI/dy|`` of each ``patch`` x ``patch`` tile of a 2D image.

    Parameters
    ----------
    image : array_like
        2D image (YX), any real dtype; computed in float64.
    patch : int
        Side of the square, non-overlapping patches, in pixels (paper: 32).

    Returns
    -------
    numpy.ndarray
        ``(Y // patch, X // patch)`` sharpness values, in intensity units per pixel.
    """
    img = as_finite_array("patch_sharpness: image", image, ndim=2).astype(np.float64)
    if not isinstance(patch, (int, np.integer)) or patch < 2:
        raise InputError(f"patch_sharpness: patch={patch!r} must be an integer >= 2")
    ny, nx = (n // patch for n in img.shape)
    if ny == 0 or nx == 0:
        raise InputError(f"patch_sharpness: image {img.shape} is smaller than one {patch} x {patch} patch")
    gx = np.zeros_like(img)
    gy = np.zeros_like(img)
    gx[:, :-1] = np.abs(np.diff(img, axis=1))
    gy[:-1, :] = np.abs(np.diff(img, axis=0))
    grad = (gx + gy)[: ny * patch, : nx * patch]
    return grad.reshape(ny, patch, nx, patch).mean(axis=(1, 3))


def sharpness_per_depth(stack, patch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Signal and background sharpness of every plane of a ZYX stack (paper Fig. 5b).

    Returns
    -------
    signal, background : numpy.ndarray
        ``(Z,)`` each: the largest and the smallest patch sharpness (:func:`patch_sharpness`) of each plane.
    """
    vol = as_finite_array("sharpness_per_depth: stack", stack, ndim=3)
    maps = [patch_sharpness(plane, patch) for plane in vol]
    return np.array([m.max() for m in maps]), np.array([m.min() for m in maps])
