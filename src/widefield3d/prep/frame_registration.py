"""Frame-to-frame registration of a video (paper: feature-based registration with a projective transformation).

Each frame is matched to the reference frame by ORB features and a RANSAC projective fit
(:func:`widefield3d.prep.projective.register_projective`). Small, blurred fields give few reliable features, so
the fit is checked: the frame is also aligned by a sub-pixel translation (phase correlation, a special projective
transform), and whichever of the two warps correlates better with the reference is kept.
"""

from __future__ import annotations

import numpy as np
from skimage.registration import phase_cross_correlation

from widefield3d.errors import InputError
from widefield3d.prep.projective import register_projective, warp_projective


def register_video(video: np.ndarray, *, channel: int = 1, reference: int = 0, n_keypoints: int = 500,
                   min_inliers: int = 10) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Warp every frame onto the reference frame by a projective transform found on one channel.

    Parameters
    ----------
    video : ndarray, ``(T, C, Y, X)`` or ``(T, C, Z, Y, X)``
        A two-channel video; for stacks the features come from the maximum projection over Z and every plane is
        warped the same way.
    channel : int
        Channel whose features are matched (the nuclei, which do not change over time).
    reference : int
        Frame that the others are mapped onto.
    n_keypoints, min_inliers : int
        See :func:`widefield3d.prep.projective.register_projective`.

    Returns
    -------
    registered : ndarray of float32, same shape as ``video``
    homographies : ndarray, ``(T, 3, 3)``
        Per frame: reference pixel ``(x, y, 1)`` -> that frame's pixel (identity for the reference frame).
    failed : list of int
        Frames where the feature fit failed or aligned worse than the translation (which is then used).
    """
    video = np.asarray(video)
    if video.ndim not in (4, 5):
        raise InputError(f"register_video: expected (T, C, Y, X) or (T, C, Z, Y, X), got shape {video.shape}")
    n_t = video.shape[0]
    if not (0 <= reference < n_t and 0 <= channel < video.shape[1]):
        raise InputError(f"register_video: reference frame {reference} or channel {channel} out of range "
                         f"for shape {video.shape}")

    def features_image(t):
        image = video[t, channel].astype(np.float32)
        return image.max(axis=0) if image.ndim == 3 else image

    fixed = features_image(reference)
    margin = 2
    core = (slice(margin, -margin), slice(margin, -margin))

    def overlap(h, image):
        warped = warp_projective(image, h, fixed.shape)[core]
        return float(np.corrcoef(warped.ravel(), fixed[core].ravel())[0, 1])

    out = np.empty(video.shape, np.float32)
    homographies = np.tile(np.eye(3), (n_t, 1, 1))
    failed = []
    for t in range(n_t):
        if t != reference:
            image = features_image(t)
            shift, _, _ = phase_cross_correlation(fixed, image, upsample_factor=20)
            translation = np.array([[1, 0, -shift[1]], [0, 1, -shift[0]], [0, 0, 1.0]])
            try:
                projective = register_projective(image, fixed, n_keypoints=n_keypoints, min_inliers=min_inliers)
                use_features = overlap(projective, image) >= overlap(translation, image)
            except InputError:
                use_features = False
            homographies[t] = projective if use_features else translation
            if not use_features:
                failed.append(t)
        for c in range(video.shape[1]):
            out[t, c] = (video[t, c].astype(np.float32) if t == reference
                         else warp_projective(video[t, c], homographies[t], video.shape[-2:]))
    return out, homographies, failed
