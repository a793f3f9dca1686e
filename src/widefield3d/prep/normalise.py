"""Stack normalisation of Deep-Z (Wu et al. 2019, Methods "Image pre-processing and training data preparation").

A reference image (the extended-depth-of-field image of a stack, or the input image itself when there is no
stack) fixes two numbers that are then applied to every plane of the stack:

1. a triangle threshold (Zack et al. 1977) splits the reference into background and foreground pixels;
2. the mean of the background pixels is the background level, subtracted;
3. the scale is chosen so that ``saturate_fraction`` (1%) of the foreground pixels, background subtracted,
   are greater than one;
4. each plane becomes ``(plane - background) / scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.filters import threshold_triangle

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.errors import InputError


@dataclass(frozen=True)
class Normalisation:
    """An affine intensity normalisation ``(x - background) / scale``.

    Attributes
    ----------
    background : float
        Level subtracted (camera units of the reference).
    scale : float
        Divisor applied after the subtraction (> 0).
    """

    background: float
    scale: float

    def apply(self, x) -> np.ndarray:
        """``(x - background) / scale`` as float32, for an array of any shape."""
        return ((np.asarray(x, dtype=np.float32) - np.float32(self.background)) / np.float32(self.scale)).astype(
            np.float32, copy=False
        )


def triangle_foreground(image: np.ndarray) -> tuple[np.ndarray, float]:
    """Foreground pixels (``image > t``) and the triangle threshold ``t`` (skimage, 256 bins).

    Raises
    ------
    InputError
        If the image is constant (no histogram to split).
    """
    if float(image.max()) <= float(image.min()):
        raise InputError("reference: the image is constant, there is no foreground to find")
    t = float(threshold_triangle(image))
    return image > t, t


def triangle_normalisation(reference, saturate_fraction: float = 0.01) -> Normalisation:
    """Background and scale from a reference image, as Deep-Z normalises its stacks.

    Parameters
    ----------
    reference : array_like
        2D reference, usually the EDF image of the stack (:func:`widefield3d.prep.edf.extended_depth_of_field`),
        or the single input image when there is no stack.
    saturate_fraction : float
        Fraction of the foreground pixels (background subtracted) that end above 1 (the paper: 1%).

    Returns
    -------
    Normalisation
        ``background`` is the mean of the pixels at or below the triangle threshold; ``scale`` is the
        ``1 - saturate_fraction`` quantile of the foreground pixels minus that background.

    Raises
    ------
    InputError
        If the reference is not a finite 2D image, is constant, or its foreground is not above its background.
    """
    ref = as_finite_array("reference", reference, ndim=2).astype(np.float64)
    if not 0 < saturate_fraction < 1:
        raise InputError(f"saturate_fraction: must lie in (0, 1), got {saturate_fraction!r}")
    foreground, _ = triangle_foreground(ref)
    if foreground.all() or not foreground.any():
        raise InputError("reference: the triangle threshold leaves no background or no foreground")
    background = float(ref[~foreground].mean())
    scale = float(np.quantile(ref[foreground] - background, 1.0 - saturate_fraction))
    if not scale > 0:
        raise InputError("reference: the foreground is not brighter than the background")
    return Normalisation(background=background, scale=scale)


def edf_normalisation(stack, saturate_fraction: float = 0.01) -> tuple[Normalisation, np.ndarray]:
    """The paper's normalisation of a ``ZYX`` stack: :func:`triangle_normalisation` of its EDF image.

    Returns the normalisation and the (unnormalised) EDF image, float32, camera units of the stack.
    """
    from widefield3d.prep.edf import extended_depth_of_field

    edf = extended_depth_of_field(stack)
    return triangle_normalisation(edf, saturate_fraction=saturate_fraction), edf
