"""Feature-based projective registration of two images (Deep-Z+: confocal onto wide-field).

The paper co-registered the wide-field and confocal EDF images "using a feature-based registration with
projective transformation performed in Matlab". Here: ORB key points and binary descriptors
(:class:`skimage.feature.ORB`), cross-checked nearest-neighbour matching with Lowe's ratio test, and a RANSAC
fit of a :class:`skimage.transform.ProjectiveTransform`, refined by least squares on the inliers.
Images are rescaled to [0, 1] by their 0.1-99.9 percentiles first, so the two modalities' intensities
need not agree.

Where the EDF images have too few key points (sparse or smooth samples: ORB finds 1-7 on our simulated 63x
filament fields, wide-field against confocal), :func:`register_translation` is the intensity-based alternative:
sub-pixel cross-correlation (:func:`skimage.registration.phase_cross_correlation` without phase normalisation)
of the band-passed images (difference of Gaussians, 1-4 px: removes the wide-field haze and the background so
the two modalities look alike), which needs no features; it recovers a shift, not a full homography. Measured on
8 simulated 256 px ``deepzplus-63x14`` fields (shared pixel grid, known shifts added): error 0.2-0.3 px typical, at
most 1.7 px, independent of the added shift: the wide-field and confocal EDF images of a 3D sample are not the
same picture, so some bias per field remains (phase normalisation gave 3 px median, up to 12 px).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.feature import ORB, match_descriptors
from skimage.measure import ransac
from skimage.registration import phase_cross_correlation
from skimage.transform import ProjectiveTransform, warp

from widefield3d.analysis.metrics import as_finite_array
from widefield3d.errors import InputError


def _unit(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [0.1, 99.9])
    return np.clip((image - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(image)


def _features(image: np.ndarray, n_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    orb = ORB(n_keypoints=n_keypoints, fast_threshold=0.02)
    try:
        orb.detect_and_extract(image)
    except RuntimeError:  # skimage raises when no key point survives
        return np.zeros((0, 2)), np.zeros((0, 256), dtype=bool)
    return orb.keypoints, orb.descriptors


def register_projective(moving, fixed, *, n_keypoints: int = 500, min_inliers: int = 10,
                        residual_px: float = 2.0, seed: int = 0) -> np.ndarray:
    """Homography that maps ``fixed`` pixel coordinates ``(x, y)`` onto ``moving`` ones.

    Parameters
    ----------
    moving, fixed : array_like
        2D images of the same scene (e.g. a confocal and a wide-field EDF image); sizes may differ.
    n_keypoints : int
        ORB key points per image.
    min_inliers : int
        Fewest RANSAC inliers accepted.
    residual_px : float
        RANSAC inlier distance, pixels.
    seed : int
        Seed of RANSAC's random sampling.

    Returns
    -------
    ndarray
        ``(3, 3)`` matrix ``H`` with ``[x_m, y_m, 1] ~ H [x_f, y_f, 1]``; feed it to :func:`warp_projective`.

    Raises
    ------
    InputError
        If fewer than ``min_inliers`` consistent matches are found.
    """
    mov = _unit(as_finite_array("moving", moving, ndim=2))
    fix = _unit(as_finite_array("fixed", fixed, ndim=2))
    kp_m, desc_m = _features(mov, n_keypoints)
    kp_f, desc_f = _features(fix, n_keypoints)
    if len(kp_m) < 4 or len(kp_f) < 4:
        raise InputError(f"registration: too few features (moving {len(kp_m)}, fixed {len(kp_f)})")
    matches = match_descriptors(desc_f, desc_m, cross_check=True, max_ratio=0.8)
    if len(matches) < min_inliers:
        raise InputError(f"registration: only {len(matches)} feature matches, need {min_inliers}")
    src = kp_f[matches[:, 0]][:, ::-1]  # (row, col) -> (x, y)
    dst = kp_m[matches[:, 1]][:, ::-1]
    model, inliers = ransac((src, dst), ProjectiveTransform, min_samples=4, residual_threshold=residual_px,
                            max_trials=2000, stop_probability=0.999, rng=seed)
    n_in = 0 if inliers is None else int(inliers.sum())
    if not model or n_in < min_inliers:
        raise InputError(f"registration: only {n_in} consistent matches, need {min_inliers}")
    refined = ProjectiveTransform.from_estimate(src[inliers], dst[inliers])
    matrix = refined.params if refined else model.params
    return matrix / matrix[2, 2]


def _band_pass(image: np.ndarray) -> np.ndarray:
    return gaussian_filter(image, 1.0) - gaussian_filter(image, 4.0)


def register_translation(moving, fixed, *, upsample: int = 20, min_correlation: float = 0.3) -> np.ndarray:
    """Translation that maps ``fixed`` pixel coordinates ``(x, y)`` onto ``moving`` ones, by sub-pixel
    cross-correlation of the band-passed images.

    Parameters
    ----------
    moving, fixed : array_like
        2D images of the same scene and size (e.g. a confocal and a wide-field EDF image).
    upsample : int
        Sub-pixel precision: 1 / ``upsample`` pixel.
    min_correlation : float
        Smallest accepted correlation of the two band-passed images after the shift (simulated wide-field vs
        confocal EDFs: 0.6-0.98; unrelated noise images: about 0.1 or less).

    Returns
    -------
    ndarray
        ``(3, 3)`` homography (a pure translation), as :func:`register_projective` returns.

    Raises
    ------
    InputError
        If the sizes differ or the shifted images do not correlate (no common structure).
    """
    mov = as_finite_array("moving", moving, ndim=2)
    fix = as_finite_array("fixed", fixed, ndim=2)
    if mov.shape != fix.shape:
        raise InputError(f"registration: translation needs equal image sizes, got {mov.shape} and {fix.shape}")
    mov, fix = _band_pass(_unit(mov)), _band_pass(_unit(fix))
    shift, _, _ = phase_cross_correlation(fix, mov, upsample_factor=upsample, normalization=None)
    matrix = np.eye(3)
    matrix[0, 2], matrix[1, 2] = -shift[1], -shift[0]  # fixed (x, y) + (-dx, -dy) -> moving
    aligned = warp_projective(mov, matrix, fix.shape)
    inner = (slice(int(abs(shift[0])) + 1, fix.shape[0] - int(abs(shift[0])) - 1),
             slice(int(abs(shift[1])) + 1, fix.shape[1] - int(abs(shift[1])) - 1))
    a, b = aligned[inner].ravel(), fix[inner].ravel()
    r = float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0 else 0.0
    if not r >= min_correlation:
        raise InputError(f"registration: the images do not correlate after the best shift (r = {r:.2f})")
    return matrix


def warp_projective(image, matrix, output_shape) -> np.ndarray:
    """Resample ``image`` onto a grid of ``output_shape`` through a homography (fixed -> moving coordinates).

    Parameters
    ----------
    image : array_like
        2D ``(Y, X)`` image or ``(Z, Y, X)`` stack (each plane warped the same way): the moving image.
    matrix : array_like
        ``(3, 3)`` homography from :func:`register_projective`, mapping output ``(x, y)`` to input ``(x, y)``.
    output_shape : tuple of int
        ``(Y, X)`` of the output grid (the fixed image); a stack keeps its Z.

    Returns
    -------
    ndarray of float32
        Warped image; pixels that map outside ``image`` are 0 (bilinear interpolation).
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise InputError(f"image: must be 2D or 3D (Z, Y, X), got shape {arr.shape}")
    h = np.asarray(matrix, dtype=np.float64)
    if h.shape != (3, 3) or not np.all(np.isfinite(h)):
        raise InputError(f"matrix: must be a finite 3x3 homography, got shape {h.shape}")
    shape = tuple(int(n) for n in output_shape)[-2:]
    transform = ProjectiveTransform(matrix=h)
    planes = arr[None] if arr.ndim == 2 else arr
    out = np.stack([warp(p.astype(np.float32), transform, output_shape=shape, order=1, preserve_range=True)
                    for p in planes]).astype(np.float32)
    return out[0] if arr.ndim == 2 else out
