"""Where a stack is in focus: the sharpest plane, and the SSIM focus curve against an EDF image.

Deep-Z centres each training crop on the plane of highest standard deviation (the same criterion as the
microscope's auto-focus). Deep-Z+ matches the axial zero of a wide-field and a confocal stack by comparing
every plane with the stack's EDF image by SSIM, fitting a second-order polynomial through the four highest
points of that focus curve, and taking the peak of the fit as the zero.
"""

from __future__ import annotations

import numpy as np

from widefield3d.analysis.metrics import as_finite_array, ssim
from widefield3d.errors import InputError
from widefield3d.prep.edf import as_stack, extended_depth_of_field
from widefield3d.prep.normalise import triangle_normalisation


def sharpest_plane(stack) -> int:
    """Index of the plane with the highest standard deviation of intensity."""
    s = as_stack(stack)
    return int(np.argmax(s.reshape(s.shape[0], -1).std(axis=1)))


def focus_curve(stack, reference) -> np.ndarray:
    """SSIM of every plane against a reference image (usually the EDF), after normalising both.

    Both are normalised by :func:`widefield3d.prep.normalise.triangle_normalisation` of the reference (as the
    paper normalises the stack), and compared with ``data_range = 1`` (the normalised foreground span).

    Returns
    -------
    ndarray of float64
        ``(Z,)`` SSIM values in [-1, 1].
    """
    s = as_stack(stack)
    ref = as_finite_array("reference", reference, ndim=2)
    if ref.shape != s.shape[1:]:
        raise InputError(f"reference: shape {ref.shape} differs from the planes of the stack {s.shape[1:]}")
    norm = triangle_normalisation(ref)
    r = norm.apply(ref)
    return np.array([ssim(norm.apply(plane), r, data_range=1.0) for plane in s])


def focus_zero(stack, z_um, reference=None) -> float:
    """Depth (µm) of the SSIM focus-curve maximum, from a quadratic fit through its four best points.

    Parameters
    ----------
    stack : array_like
        ``(Z, Y, X)`` stack.
    z_um : array_like
        ``(Z,)`` depth of each plane, µm.
    reference : array_like, optional
        Reference image; default the stack's EDF (:func:`widefield3d.prep.edf.extended_depth_of_field`).

    Returns
    -------
    float
        Vertex of the parabola, µm. If the four points are not concave (no maximum) or the vertex falls
        outside their span, the depth of the best plane is returned instead.
    """
    s = as_stack(stack)
    z = np.asarray(z_um, dtype=np.float64)
    if z.shape != (s.shape[0],) or not np.all(np.isfinite(z)):
        raise InputError(f"z_um: needs one finite depth per plane ({s.shape[0]}), got shape {z.shape}")
    if s.shape[0] < 4:
        raise InputError(f"stack: a focus fit needs at least 4 planes, got {s.shape[0]}")
    curve = focus_curve(s, extended_depth_of_field(s) if reference is None else reference)
    best = np.argsort(curve)[-4:]
    a, b, _ = np.polyfit(z[best], curve[best], 2)
    top = float(z[best[-1]])
    if a >= 0:
        return top
    vertex = -b / (2 * a)
    return float(vertex) if z[best].min() <= vertex <= z[best].max() else top
