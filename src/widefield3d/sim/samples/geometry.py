"""Geometry shared by the sample generators: random rotations and well-separated points, soft edges, ellipsoids
rendered into a grid (µm), and smooth random fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from widefield3d.errors import InputError


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 3, 3)`` uniformly random rotation matrices (QR of Gaussian matrices)."""
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def _separated(points: np.ndarray, min_dist_um: float) -> np.ndarray:
    """Keep points (in order) so that no two kept points are closer than ``min_dist_um``."""
    if min_dist_um <= 0 or len(points) < 2:
        return points
    pairs = cKDTree(points).query_pairs(min_dist_um, output_type="ndarray")
    keep = np.ones(len(points), dtype=bool)
    for i, j in pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]:
        if keep[i]:
            keep[j] = False
    return points[keep]


def pick_separated(what: str, draw: Callable[[int], np.ndarray], n: int, min_sep_um: float, room: float,
                   dim: int) -> np.ndarray:
    """``n`` random points (µm, ``(n, 3)``) at least ``min_sep_um`` apart, from candidates ``draw(k)``.

    ``room`` is the volume (``dim=3``) or area (``dim=2``) the candidates come from; a request beyond the packing
    fraction where random sequential addition jams (0.38 in 3D, 0.55 in 2D) is refused at once (one point always fits).
    """
    if n == 0:
        return np.zeros((0, 3))
    min_sep_um = float(min_sep_um)
    ball = np.pi / 6 * min_sep_um**3 if dim == 3 else np.pi / 4 * min_sep_um**2
    message = f"{what}: {n} do not fit in the available {'volume' if dim == 3 else 'area'} {min_sep_um} µm apart"
    if n > 1 and n * ball > (0.38 if dim == 3 else 0.55) * room:
        raise InputError(message)
    points = _separated(draw(3 * n + 100), min_sep_um)
    if len(points) < n:
        raise InputError(message)
    return points[:n]


def uniform_points(rng, n: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``(n, 3)`` points uniform in the box ``[lo, hi]`` (µm)."""
    return lo + (hi - lo) * rng.random((n, 3))


def soft_step(d_um, width_um: float) -> np.ndarray:
    """1 inside, 0 outside a surface at signed distance ``d_um`` (positive outside), blurred by ``width_um``.

    A logistic profile ``0.5 (1 - tanh(0.851 d / width))``, within 1 % of a step blurred by a Gaussian of standard
    deviation ``width_um`` (and several times cheaper than ``erfc``); float32 in, float32 out.
    """
    return np.float32(0.5) - np.float32(0.5) * np.tanh(d_um * np.float32(0.851 / width_um))


def patch(centre_um, half_um, sp, shape, z_block: tuple[int, int] | None = None):
    """Slices of the voxels within ``half_um`` of ``centre_um`` and their ``(z, y, x)`` offsets from the centre (µm).

    With ``z_block = (k0, k1)`` only planes ``k0 <= k < k1`` count and the z slice is relative to ``k0``.
    """
    k0, k1 = (0, shape[0]) if z_block is None else z_block
    lo = np.maximum(np.ceil((centre_um - half_um) / sp), (k0, 0, 0)).astype(int)
    hi = np.minimum(np.floor((centre_um + half_um) / sp) + 1, (k1, shape[1], shape[2])).astype(int)
    if np.any(hi <= lo):
        return None, None
    offs = [np.arange(a, b) * d - c for a, b, d, c in zip(lo, hi, sp, centre_um)]
    return (slice(lo[0] - k0, hi[0] - k0), slice(lo[1], hi[1]), slice(lo[2], hi[2])), offs


def quadratic(m: np.ndarray, offs) -> np.ndarray:
    """``v^T m v`` on the grid of offsets ``v = (z, y, x)`` (broadcast as three 2D partial sums)."""
    z, y, x = offs
    zy = m[0, 0] * z[:, None] ** 2 + 2 * m[0, 1] * z[:, None] * y[None, :]
    zx = 2 * m[0, 2] * z[:, None] * x[None, :]
    yx = m[1, 1] * y[:, None] ** 2 + m[2, 2] * x[None, :] ** 2 + 2 * m[1, 2] * y[:, None] * x[None, :]
    zy, zx, yx = (a.astype(np.float32) for a in (zy, zx, yx))
    out = zy[:, :, None] + zx[:, None, :]
    out += yx[None, :, :]
    return out


def ellipsoid_metrics(semi_axes: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """``M = R diag(1/a^2) R^T`` so that ``v^T M v = 1`` on the ellipsoid surface."""
    return np.einsum("nij,nj,nkj->nik", rotations, 1.0 / semi_axes**2, rotations)


def render_ellipsoids(
    out: np.ndarray,
    sp: np.ndarray,
    centres: np.ndarray,
    semi_axes: np.ndarray,
    rotations: np.ndarray,
    values: np.ndarray,
    edge_um: float,
    combine: Literal["max", "add"] = "max",
    texture: Callable[[tuple[int, ...]], np.ndarray] | None = None,
) -> None:
    """Draw soft-edged ellipsoids into ``out`` (in place).

    The profile across the surface is :func:`soft_step` of width ``edge_um`` with ``d`` the distance to the surface
    measured along the ray from the centre (exact for spheres). ``texture(shape)``, if given, multiplies each object
    by a random field of the patch's shape.
    """
    metrics = ellipsoid_metrics(semi_axes, rotations)
    for c, a, m, v in zip(centres, semi_axes, metrics, values):
        half = np.sqrt(np.diag(np.linalg.inv(m))) + 3 * edge_um  # bounding box of the rotated ellipsoid
        sl, offs = patch(c, half, sp, out.shape)
        if sl is None:
            continue
        rho = np.sqrt(quadratic(m, offs))
        r = np.sqrt(offs[0][:, None, None] ** 2 + offs[1][None, :, None] ** 2 + offs[2][None, None, :] ** 2)
        radius_along_ray = np.where(rho > 1e-6, r / np.maximum(rho, 1e-6), a.min())
        obj = np.float32(v) * soft_step((rho - 1) * radius_along_ray, edge_um)
        if texture is not None:
            obj *= texture(obj.shape)
        if combine == "max":
            np.maximum(out[sl], obj, out=out[sl])
        else:
            out[sl] += obj


def smooth_noise(rng, shape, sigma_px) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field smoothed by ``sigma_px`` (per axis)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    return f / max(float(f.std()), 1e-12)


def random_ellipsoids(rng, n, diameters_um: tuple[float, float]):
    """Semi-axes ``(n, 3)`` (µm, diameters uniform in ``diameters_um``) and random rotations ``(n, 3, 3)``."""
    semi = rng.uniform(*diameters_um, size=(n, 3)) / 2
    return semi, random_rotations(rng, n)
