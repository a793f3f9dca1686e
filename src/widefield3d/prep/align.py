"""Rigid alignment of the planes of a z-stack (what StackReg does for Deep-Z).

Deep-Z aligned every stack with the ImageJ plugin StackReg (Thevenaz, Ruttimann & Unser 1998) in its
rigid-body mode, correcting the shift and rotation that the stage introduces between planes. As StackReg does,
each plane is registered to its neighbour *after* that neighbour has been aligned, so the correction
propagates outwards, here from the middle plane (which stays fixed) towards both ends. StackReg minimises the
squared intensity difference over translation and rotation with a coarse-to-fine Levenberg-Marquardt search;
here the translation is first found by phase correlation (skimage, 1/10 pixel) and then translation and
rotation are refined together by Gauss-Newton least squares on lightly smoothed images, over the inner part
of the field (outside it, pixels come from beyond the image edge).

``method="stackreg"`` registers each plane pair with pystackreg (the ImageJ StackReg/TurboReg code, rigid body;
optional: ``pip install widefield3d[stackreg]``) instead; the order of the chain, the resampling and the output are
the same.

Transform convention: a plane point ``q = (y, x)`` moves to ``p = R(angle) (q - c) + c + (dy, dx)`` in the
aligned plane, with ``c`` the centre of the plane and ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` acting on
``(y, x)``. :func:`rigid_warp` applies such a transform.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from widefield3d.errors import InputError
from widefield3d.prep.edf import as_stack

ALIGN_METHODS = ("rigid", "stackreg")
"""Plane registrations of :func:`align_stack`: phase correlation + Gauss-Newton (ours), or pystackreg."""


def _affine(shape: tuple[int, int], angle_deg: float, dy: float, dx: float) -> tuple[np.ndarray, np.ndarray]:
    """Matrix and offset for :func:`scipy.ndimage.affine_transform` (output -> input coordinates)."""
    a = np.radians(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = (np.asarray(shape, dtype=np.float64) - 1) / 2
    inv = rot.T
    return inv, c - inv @ (c + np.array([dy, dx]))


def rigid_warp(image, angle_deg: float, dy: float, dx: float, *, order: int = 3) -> np.ndarray:
    """Rotate ``image`` (2D) by ``angle_deg`` about its centre, then shift it by ``(dy, dx)`` pixels.

    Pixels that come from outside the image take the nearest edge value. Returns float32.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise InputError(f"image: must be 2D, got shape {img.shape}")
    matrix, offset = _affine(img.shape, angle_deg, dy, dx)
    return ndimage.affine_transform(img, matrix, offset, order=order, mode="nearest").astype(np.float32)


def register_rigid(moving: np.ndarray, fixed: np.ndarray, *, smooth_px: float = 1.0, margin: float = 0.1,
                   iterations: int = 30, tolerance: float = 1e-4) -> tuple[float, float, float]:
    """``(angle_deg, dy, dx)`` that aligns ``moving`` onto ``fixed`` (both 2D, same shape).

    Phase correlation gives the starting shift; Gauss-Newton on the squared difference over the inner
    field then refines rotation and shift together (the Jacobian is the warped image gradient times the
    derivative of the sampling coordinates).

    Parameters
    ----------
    moving, fixed : ndarray
        2D images.
    smooth_px : float
        Gaussian sigma applied to both before registering, pixels (0: none).
    margin : float
        Fraction of each side left out of the cost (pixels there may come from beyond the edge).
    iterations : int
        Most Gauss-Newton steps.
    tolerance : float
        Stop when a step moves no pixel of the field by more than this (pixels).
    """
    mov = moving.astype(np.float64)
    fix = fixed.astype(np.float64)
    if smooth_px:
        mov, fix = ndimage.gaussian_filter(mov, smooth_px), ndimage.gaussian_filter(fix, smooth_px)
    shift, _, _ = phase_cross_correlation(fix, mov, upsample_factor=10, normalization=None)
    ny, nx = fix.shape
    my, mx = int(margin * ny), int(margin * nx)
    inner = (slice(my, ny - my), slice(mx, nx - mx))
    target = fix[inner].ravel()
    grad_y, grad_x = np.gradient(mov)
    c = (np.array(fix.shape, dtype=np.float64) - 1) / 2
    grid = np.indices(fix.shape, dtype=np.float64)
    py, px = grid[0][inner].ravel() - c[0], grid[1][inner].ravel() - c[1]
    radius = float(np.hypot(*c))
    params = np.array([0.0, float(shift[0]), float(shift[1])])  # angle (rad), dy, dx
    for _ in range(iterations):
        matrix, offset = _affine(fix.shape, np.degrees(params[0]), params[1], params[2])
        sampled = [ndimage.affine_transform(im, matrix, offset, order=1, mode="nearest")[inner].ravel()
                   for im in (mov, grad_y, grad_x)]
        r = sampled[0] - target
        # q = R^T (p - c - t) + c;  dq/dt = -R^T;  dq/da = dR^T/da (p - c - t)
        a = params[0]
        cos, sin = np.cos(a), np.sin(a)
        uy, ux = py - params[1], px - params[2]
        dqy_da = -sin * uy + cos * ux
        dqx_da = -cos * uy - sin * ux
        gy, gx = sampled[1], sampled[2]
        jac = np.stack([gy * dqy_da + gx * dqx_da,
                        -(gy * cos + gx * sin),
                        -(-gy * sin + gx * cos)], axis=1)
        # least squares, not the normal equations: a featureless plane (flat Jacobian) gives a zero step
        step = np.linalg.lstsq(jac, -r, rcond=None)[0]
        params += step
        if abs(step[0]) * radius + np.hypot(step[1], step[2]) < tolerance:
            break
    return float(np.degrees(params[0])), float(params[1]), float(params[2])


def register_stackreg(moving: np.ndarray, fixed: np.ndarray, *, smooth_px: float = 1.0
                      ) -> tuple[float, float, float]:
    """``(angle_deg, dy, dx)`` that aligns ``moving`` onto ``fixed`` (2D, same shape), found by pystackreg's
    rigid-body TurboReg (coarse-to-fine least squares, as ImageJ StackReg); ``smooth_px`` as in
    :func:`register_rigid`."""
    mov = moving.astype(np.float64)
    fix = fixed.astype(np.float64)
    if smooth_px:
        mov, fix = ndimage.gaussian_filter(mov, smooth_px), ndimage.gaussian_filter(fix, smooth_px)
    m = _stackreg().register(fix, mov)
    # m maps output (x, y, 1) to input (x, y) as skimage's warp does; in (y, x): q = A p + b with A = R^T and
    # b = c - R^T (c + t)
    rot = np.array([[m[1, 1], m[0, 1]], [m[1, 0], m[0, 0]]])
    c = (np.asarray(fix.shape, dtype=np.float64) - 1) / 2
    dy, dx = rot @ (c - np.array([m[1, 2], m[0, 2]])) - c
    return float(np.degrees(np.arctan2(rot[1, 0], rot[0, 0]))), float(dy), float(dx)


def _stackreg():
    """A rigid-body ``pystackreg.StackReg``; InputError saying what to install if pystackreg is missing."""
    try:
        from pystackreg import StackReg
    except ImportError:
        raise InputError("align method 'stackreg' needs pystackreg, which is not installed; "
                         "pip install widefield3d[stackreg]") from None
    return StackReg(StackReg.RIGID_BODY)


def check_align_method(method: str) -> None:
    """InputError unless ``method`` is one of :data:`ALIGN_METHODS` and can run here (pystackreg installed)."""
    if method not in ALIGN_METHODS:
        raise InputError(f"method: must be one of {', '.join(map(repr, ALIGN_METHODS))}, got {method!r}")
    if method == "stackreg":
        _stackreg()


def align_stack(stack, *, reference_plane: int | None = None, smooth_px: float = 1.0,
                method: str = "rigid") -> tuple[np.ndarray, np.ndarray]:
    """Align every plane of a ``ZYX`` stack rigidly to its aligned neighbour, starting from the middle.

    Parameters
    ----------
    stack : array_like
        ``(Z, Y, X)`` stack.
    reference_plane : int, optional
        Plane that stays fixed (default the middle, ``Z // 2``).
    smooth_px : float
        Gaussian sigma used for the registration only (the output planes are not smoothed), pixels.
    method : {'rigid', 'stackreg'}
        Registration of each plane pair: :func:`register_rigid` or :func:`register_stackreg` (pystackreg).

    Returns
    -------
    aligned : ndarray of float32
        ``(Z, Y, X)`` aligned stack (cubic-spline resampling; edges extended with the nearest value).
    transforms : ndarray of float64
        ``(Z, 3)`` ``(angle_deg, dy_px, dx_px)`` applied to each original plane (see the module docstring for
        the convention); the reference plane's row is zero.
    """
    check_align_method(method)
    register = register_stackreg if method == "stackreg" else register_rigid
    s = as_stack(stack)
    n = s.shape[0]
    ref = n // 2 if reference_plane is None else int(reference_plane)
    if not 0 <= ref < n:
        raise InputError(f"reference_plane: must lie in [0, {n - 1}], got {reference_plane}")
    if min(s.shape[1:]) < 8:
        raise InputError(f"stack: planes of shape {s.shape[1:]} are too small to register")
    aligned = np.empty_like(s)
    transforms = np.zeros((n, 3))
    aligned[ref] = s[ref]
    for order in (range(ref + 1, n), range(ref - 1, -1, -1)):
        for k in order:
            previous = k - 1 if k > ref else k + 1
            transforms[k] = register(s[k], aligned[previous], smooth_px=smooth_px)
            aligned[k] = rigid_warp(s[k], *transforms[k])
    return aligned, transforms
