"""Foreground mask of a fluorescence (EDF) image, the regions Deep-Z crops its training patches from.

The paper applies "a geodesic dilation with fixed thresholds" to the EDF image. Read as a hysteresis: the
pixels above a high threshold are seeds, and geodesic dilation to stability (morphological reconstruction,
:func:`skimage.morphology.reconstruction`) grows them inside the region above a low threshold, so a dim
object touching a bright one joins the mask while isolated dim noise does not. The high threshold is the
triangle threshold; the low one lies ``low_fraction`` of the way from the background mean up to it. A final
plain dilation by ``dilation_px`` keeps the blurred rim around each object (the out-of-focus planes of a
crop spread wider than the in-focus EDF).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import disk, reconstruction

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.errors import InputError
from widefield3d.prep.normalise import triangle_foreground


def foreground_mask(image, dilation_px: int = 8, *, low_fraction: float = 0.5, smooth_px: float = 1.0) -> np.ndarray:
    """Pixels that hold sample fluorescence above the background.

    Parameters
    ----------
    image : array_like
        2D fluorescence image (an EDF image).
    dilation_px : int
        Radius of the disc by which the reconstructed mask is finally dilated, pixels (0: none).
    low_fraction : float
        Low threshold = background mean + ``low_fraction`` * (triangle threshold - background mean), in [0, 1].
    smooth_px : float
        Sigma of a Gaussian applied before thresholding (pixels; 0: none), so single noisy pixels seed nothing.

    Returns
    -------
    ndarray of bool
        ``(Y, X)`` mask.
    """
    img = as_finite_array("image", image, ndim=2)
    if dilation_px < 0 or not 0 <= low_fraction <= 1 or smooth_px < 0:
        raise InputError(f"dilation_px >= 0, low_fraction in [0, 1], smooth_px >= 0 needed; got "
                         f"{dilation_px}, {low_fraction}, {smooth_px}")
    if smooth_px > 0:
        img = ndimage.gaussian_filter(img, smooth_px)
    seeds, high = triangle_foreground(img)
    background = float(img[~seeds].mean()) if not seeds.all() else float(img.min())
    low = background + low_fraction * (high - background)
    limit = img > low
    grown = reconstruction(seeds.astype(np.uint8), limit.astype(np.uint8), method="dilation").astype(bool)
    if dilation_px > 0:
        grown = ndimage.binary_dilation(grown, structure=disk(dilation_px))
    return grown
