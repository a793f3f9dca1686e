"""Sample phantoms: 3D fluorescence densities (or stain concentrations) on a fine grid, with their ground truth.

Every generator takes a grid ``shape=(Z, Y, X)`` and ``spacing_um=(dz, dy, dx)`` (µm) and a ``seed``, and returns a
:class:`Sample`. Grid conventions:

* voxel ``(k, j, i)`` has its centre at ``(k*dz, j*dy, i*dx)`` µm, so the first plane is at ``z = 0``;
* ``z`` grows away from the objective, into the sample (see ``DESIGN.md``);
* densities are float32, non-negative, with their peak near 1 (the absolute scale is set later by the camera's
  photon budget, :mod:`widefield3d.sim.camera`);
* lengths in every argument are µm, angles are degrees.

Beside the density, a sample keeps the ground truth the generator knows exactly: object centres (``centres_um``), the
bead surface of the tilted/curved bead samples (``surface_um``), the stain absorbance of the cytology slab, and for
thick tissue the scattering mean free path that :mod:`widefield3d.sim.acquisition` may use to add out-of-focus haze.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from widefield3d.errors import InputError

SAMPLE_KINDS = ("beads", "nuclei", "worm", "filaments", "tissue", "tilted-beads", "curved-beads", "cytology")

#: Ruifrok & Johnston (2001) optical-density colour vectors (R, G, B) of hematoxylin and eosin, unit length.
RUIFROK_HE = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]], dtype=np.float64)
RUIFROK_HE /= np.linalg.norm(RUIFROK_HE, axis=1, keepdims=True)
#: The same vectors by stain name, as the channel names of a cytology sample.
STAIN_ABSORBANCE_RGB = {"hematoxylin": RUIFROK_HE[0], "eosin": RUIFROK_HE[1]}


@dataclass
class Sample:
    """A phantom on a regular grid.

    Attributes
    ----------
    density : ndarray of float32
        ``(Z, Y, X)`` fluorescence density >= 0 with its peak near 1; for ``cytology`` ``(S, Z, Y, X)`` stain
        concentrations (see ``absorbance_rgb``).
    spacing_um : tuple of float
        ``(dz, dy, dx)`` of the grid, µm.
    kind : str
        One of :data:`SAMPLE_KINDS`.
    channel_names : list of str, optional
        Names of the ``S`` stains of a cytology sample (``["hematoxylin", "eosin"]``).
    absorbance_rgb : ndarray, optional
        ``(S, 3)`` base-10 optical density per unit concentration for R, G, B: the unit Ruifrok-Johnston stain
        vectors. The optical density of a path is ``sum_s absorbance_rgb[s] * od_per_um * sum_z density[s, z] * dz``,
        where the stain strength ``od_per_um`` (optical density per µm at unit concentration) is a parameter of
        the bright-field acquisition, not of the sample.
    surface_um : ndarray, optional
        ``(Y, X)`` true z (µm from the first plane) of the surface that carries the beads of ``tilted-beads`` and
        ``curved-beads``; NaN where the surface does not exist (outside a cylinder).
    centres_um : ndarray, optional
        ``(N, 3)`` true ``(z, y, x)`` centres (µm) of the beads, nuclei or cells.
    scattering_length_um : float, optional
        Scattering mean free path of a thick sample (``tissue``), µm; None for clear samples.
    """

    density: np.ndarray
    spacing_um: tuple[float, float, float]
    kind: str
    channel_names: list[str] | None = None
    absorbance_rgb: np.ndarray | None = None
    surface_um: np.ndarray | None = None
    centres_um: np.ndarray | None = None
    scattering_length_um: float | None = None

    def __post_init__(self):
        self.spacing_um = tuple(float(d) for d in self.spacing_um)

    @property
    def extent_um(self) -> tuple[float, float, float]:
        """``(Z*dz, Y*dy, X*dx)``: size of the grid in µm."""
        zyx = self.density.shape[-3:]
        return tuple(float(n * d) for n, d in zip(zyx, self.spacing_um))


# ----------------------------------------------------------------------------------------------- validation


def check_shape(shape) -> tuple[int, int, int]:
    """``shape`` as 3 positive ints ``(Z, Y, X)``, or a one-line :class:`InputError`."""
    try:
        ok = len(shape) == 3 and all(int(n) == n and n > 0 for n in shape)
    except TypeError:
        ok = False
    if not ok:
        raise InputError(f"shape must be 3 positive integers (Z, Y, X), got {shape!r}")
    return tuple(int(n) for n in shape)


def _grid(shape, spacing_um) -> tuple[tuple[int, int, int], np.ndarray]:
    """Validated ``shape`` (3 ints) and ``spacing_um`` (3 floats, as an array)."""
    shape = check_shape(shape)
    try:
        sp = np.asarray(spacing_um, dtype=np.float64)
    except (TypeError, ValueError):
        sp = np.zeros(0)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing_um must be 3 positive numbers (dz, dy, dx) in µm, got {spacing_um!r}")
    return shape, sp


def _positive(name: str, value) -> float:
    if not (isinstance(value, (int, float, np.number)) and np.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _non_negative(name: str, value, upper: float = np.inf) -> float:
    if not (isinstance(value, (int, float, np.number)) and 0 <= value <= upper):
        raise InputError(f"{name} must be a number in [0, {upper}], got {value!r}")
    return float(value)


def _count(name: str, value) -> int:
    if not (isinstance(value, (int, np.integer)) and value >= 0):
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _range(name: str, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a pair (low, high), got {value!r}") from None
    if not (0 < lo <= hi and np.isfinite(hi)):
        raise InputError(f"{name} must satisfy 0 < low <= high, got {value!r}")
    return lo, hi


# ----------------------------------------------------------------------------------------------- geometry


def _random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
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


def _pick_separated(what: str, draw: Callable[[int], np.ndarray], n: int, min_sep_um: float, room: float,
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


def _uniform_points(rng, n: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo + (hi - lo) * rng.random((n, 3))


def _soft_step(d_um, width_um: float) -> np.ndarray:
    """1 inside, 0 outside a surface at signed distance ``d_um`` (positive outside), blurred by ``width_um``.

    A logistic profile ``0.5 (1 - tanh(0.851 d / width))``, within 1 % of a step blurred by a Gaussian of standard
    deviation ``width_um`` (and several times cheaper than ``erfc``); float32 in, float32 out.
    """
    return np.float32(0.5) - np.float32(0.5) * np.tanh(d_um * np.float32(0.851 / width_um))


def _patch(centre_um, half_um, sp, shape, z_block: tuple[int, int] | None = None):
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


def _quadratic(m: np.ndarray, offs) -> np.ndarray:
    """``v^T m v`` on the grid of offsets ``v = (z, y, x)`` (broadcast as three 2D partial sums)."""
    z, y, x = offs
    zy = m[0, 0] * z[:, None] ** 2 + 2 * m[0, 1] * z[:, None] * y[None, :]
    zx = 2 * m[0, 2] * z[:, None] * x[None, :]
    yx = m[1, 1] * y[:, None] ** 2 + m[2, 2] * x[None, :] ** 2 + 2 * m[1, 2] * y[:, None] * x[None, :]
    zy, zx, yx = (a.astype(np.float32) for a in (zy, zx, yx))
    out = zy[:, :, None] + zx[:, None, :]
    out += yx[None, :, :]
    return out


def _ellipsoid_metrics(semi_axes: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """``M = R diag(1/a^2) R^T`` so that ``v^T M v = 1`` on the ellipsoid surface."""
    return np.einsum("nij,nj,nkj->nik", rotations, 1.0 / semi_axes**2, rotations)


def _render_ellipsoids(
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

    The profile across the surface is :func:`_soft_step` of width ``edge_um`` with ``d`` the distance to the surface
    measured along the ray from the centre (exact for spheres). ``texture(shape)``, if given, multiplies each object
    by a random field of the patch's shape.
    """
    metrics = _ellipsoid_metrics(semi_axes, rotations)
    for c, a, m, v in zip(centres, semi_axes, metrics, values):
        half = np.sqrt(np.diag(np.linalg.inv(m))) + 3 * edge_um  # bounding box of the rotated ellipsoid
        sl, offs = _patch(c, half, sp, out.shape)
        if sl is None:
            continue
        rho = np.sqrt(_quadratic(m, offs))
        r = np.sqrt(offs[0][:, None, None] ** 2 + offs[1][None, :, None] ** 2 + offs[2][None, None, :] ** 2)
        radius_along_ray = np.where(rho > 1e-6, r / np.maximum(rho, 1e-6), a.min())
        obj = np.float32(v) * _soft_step((rho - 1) * radius_along_ray, edge_um)
        if texture is not None:
            obj *= texture(obj.shape)
        if combine == "max":
            np.maximum(out[sl], obj, out=out[sl])
        else:
            out[sl] += obj


def _smooth_noise(rng, shape, sigma_px) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field smoothed by ``sigma_px`` (per axis)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_px, mode="wrap")
    return f / max(float(f.std()), 1e-12)


# ----------------------------------------------------------------------------------------------- beads


def _render_beads(shape, sp, centres: np.ndarray, diameter_um: float) -> np.ndarray:
    """Spheres of uniform fluorophore rendered with partial volume, each integrating to the same total.

    Each voxel a bead touches is sampled on a sub-voxel grid (at least 4 points per axis and a spacing of at most
    an eighth of the diameter) with an anti-aliased edge (a linear ramp one sub-sample wide); the bead is
    then normalised so that its sum over voxels is ``max(1, V_bead / V_voxel)``: a sub-voxel bead is a point source of
    unit integrated signal, a bead larger than a voxel has unit concentration. The normalisation happens before
    clipping at the grid border, so a bead that leaves the grid loses the part outside.
    """
    out = np.zeros(shape, dtype=np.float32)
    if len(centres) == 0:
        return out
    radius = diameter_um / 2
    n_sub = np.maximum(4, np.ceil(8 * sp / diameter_um)).astype(int)
    ramp = float(np.max(sp / n_sub))  # sub-samples are at most d/8 apart, so some always fall inside the sphere
    reach = radius + ramp / 2  # beyond this distance from the centre a sub-sample is empty
    n_vox = np.ceil(2 * reach / sp).astype(int) + 1  # voxels per axis that the bead can touch
    vox_off = np.stack(np.meshgrid(*[np.arange(n) for n in n_vox], indexing="ij"), -1).reshape(-1, 3)  # (P, 3)
    subs = [((np.arange(n) + 0.5) / n - 0.5) * d for n, d in zip(n_sub, sp)]  # sub-sample offsets in a voxel, µm
    total = max(1.0, (np.pi / 6) * diameter_um**3 / float(np.prod(sp)))
    chunk = max(1, 2_000_000 // int(np.prod(n_vox * n_sub)))
    grid_shape = np.asarray(shape)
    for start in range(0, len(centres), chunk):
        c = centres[start : start + chunk]
        cvox = np.floor((c - reach) / sp + 0.5).astype(int)  # (N, 3) first voxel each bead touches
        # squared distance to the bead centre along each axis, (N, voxels, sub-samples), then summed on the 3D grid
        sq = [(((cvox[:, k, None] + np.arange(n_vox[k])) * sp[k] - c[:, k, None])[:, :, None] + subs[k]) ** 2
              for k in range(3)]
        sz, sy, sx = (q.astype(np.float32) for q in sq)
        d2 = sz[:, :, :, None, None, None, None] + sy[:, None, None, :, :, None, None] + sx[:, None, None, None, None]
        weight = np.clip(np.float32(0.5 + radius / ramp) - np.sqrt(d2) / np.float32(ramp), 0, 1)
        frac = weight.sum(axis=(2, 4, 6), dtype=np.float64).reshape(len(c), -1)  # (N, P) in vox_off order
        frac *= total / frac.sum(axis=1, keepdims=True)
        idx = cvox[:, None, :] + vox_off[None]
        inside = np.all((idx >= 0) & (idx < grid_shape), axis=2)
        flat = np.ravel_multi_index(tuple(idx[inside].T), shape)
        np.add.at(out.reshape(-1), flat, frac[inside].astype(np.float32))
    return out


def beads(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    density_per_1000um3: float = 1.0,
    n_beads: int | None = None,
    diameter_um: float = 0.3,
    min_separation_um: float = 1.0,
    seed: int = 0,
) -> Sample:
    """Sub-resolution fluorescent beads at random positions (a PSF calibration sample).

    Parameters
    ----------
    shape, spacing_um
        Grid ``(Z, Y, X)`` and its ``(dz, dy, dx)`` in µm.
    density_per_1000um3 : float
        Mean number of beads per 1000 µm³ (used when ``n_beads`` is None).
    n_beads : int, optional
        Exact number of beads.
    diameter_um : float
        Bead diameter, µm (rendered with partial volume, see below).
    min_separation_um : float
        Minimum centre-to-centre distance, µm (isolated beads, as wanted for PSF measurement).
    seed : int
        Random seed.

    Returns
    -------
    Sample
        Every bead integrates to the same signal, ``max(1, V_bead / V_voxel)``, whatever its sub-voxel position;
        bead centres (µm) lie at least one radius inside the grid and are in ``centres_um``.
    """
    shape, sp = _grid(shape, spacing_um)
    diameter_um = _positive("diameter_um", diameter_um)
    extent = np.asarray(shape) * sp
    if n_beads is None:
        n_beads = int(round(_positive("density_per_1000um3", density_per_1000um3) * np.prod(extent) / 1000))
    n_beads = _count("n_beads", n_beads)
    rng = np.random.default_rng(seed)
    lo = np.full(3, diameter_um / 2)
    hi = np.maximum(extent - sp - diameter_um / 2, lo)
    centres = _pick_separated("beads", lambda k: _uniform_points(rng, k, lo, hi), n_beads,
                              _non_negative("min_separation_um", min_separation_um), float(np.prod(hi - lo)), 3)
    return Sample(_render_beads(shape, sp, centres, diameter_um), tuple(sp), "beads", centres_um=centres)


def _surface_sample(kind: str, shape, sp, surface_fn, slope_fn, *, n_beads, density_per_100um2, diameter_um,
                    min_separation_um, seed) -> Sample:
    """Beads spread uniformly over the area of the surface ``z = surface_fn(y, x)`` (µm), inside the grid.

    ``slope_fn(y, x)`` is the norm of the surface gradient; lateral positions are drawn with probability
    proportional to the area element ``sqrt(1 + slope^2)``, so the areal bead density is uniform on the surface.
    """
    diameter_um = _positive("diameter_um", diameter_um)
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(shape[1]) * sp[1], np.arange(shape[2]) * sp[2], indexing="ij")
    surface = surface_fn(yy, xx)

    def usable(z, y, x):
        ok = np.isfinite(z) & (z >= diameter_um / 2) & (z <= (shape[0] - 1) * sp[0] - diameter_um / 2)
        return ok & (y >= 0) & (y <= (shape[1] - 1) * sp[1]) & (x >= 0) & (x <= (shape[2] - 1) * sp[2])

    area_el = np.where(usable(surface, yy, xx), np.sqrt(1 + np.nan_to_num(slope_fn(yy, xx)) ** 2), 0.0)
    if n_beads is None:
        area = float(area_el.sum() * sp[1] * sp[2])
        n_beads = int(round(_positive("density_per_100um2", density_per_100um2) * area / 100))
    n_beads = _count("n_beads", n_beads)
    if n_beads and not area_el.any():
        raise InputError(f"{kind}: the bead surface does not cross the grid")

    def draw(k):
        pix = rng.choice(area_el.size, size=k, p=area_el.ravel() / area_el.sum())
        jy, jx = np.unravel_index(pix, surface.shape)
        y = (jy + rng.random(k) - 0.5) * sp[1]
        x = (jx + rng.random(k) - 0.5) * sp[2]
        z = surface_fn(y, x)
        return np.stack([z, y, x], axis=1)[usable(z, y, x)]

    centres = _pick_separated(f"{kind} beads", draw, n_beads, _non_negative("min_separation_um", min_separation_um),
                              float(area_el.sum() * sp[1] * sp[2]), 2)
    density = _render_beads(shape, sp, centres, diameter_um)
    return Sample(density, tuple(sp), kind, surface_um=surface.astype(np.float32), centres_um=centres)


def tilted_beads(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    angle_deg: float = 10.0,
    axis: Literal["x", "y"] = "x",
    z0_um: float | None = None,
    density_per_100um2: float = 2.0,
    n_beads: int | None = None,
    diameter_um: float = 0.3,
    min_separation_um: float = 1.0,
    seed: int = 0,
) -> Sample:
    """Beads on a plane through the centre of the field, tilted by ``angle_deg`` about ``axis``.

    The plane is ``z = z0 + tan(angle) * (y - y_c)`` for ``axis="x"`` and ``z = z0 + tan(angle) * (x - x_c)`` for
    ``axis="y"``, with ``(y_c, x_c)`` the centre of the field: a positive angle puts the beads deeper (farther from the
    objective) at larger y (resp. x). ``z0_um`` defaults to the middle of the z extent. ``surface_um`` holds the plane.
    Beads are spread uniformly over the plane's area (``density_per_100um2`` per 100 µm² unless ``n_beads``); only
    the part of the plane inside the grid carries beads.
    """
    shape, sp = _grid(shape, spacing_um)
    if axis not in ("x", "y"):
        raise InputError(f"axis must be 'x' or 'y', got {axis!r}")
    if not (isinstance(angle_deg, (int, float, np.number)) and -89.0 <= angle_deg <= 89.0):
        raise InputError(f"angle_deg must be a number in [-89, 89] degrees, got {angle_deg!r}")
    z0 = (shape[0] - 1) * sp[0] / 2 if z0_um is None else float(z0_um)
    slope = np.tan(np.radians(angle_deg))
    yc, xc = (shape[1] - 1) * sp[1] / 2, (shape[2] - 1) * sp[2] / 2

    def surface(y, x):
        return z0 + slope * (y - yc if axis == "x" else x - xc)

    return _surface_sample("tilted-beads", shape, sp, surface, lambda y, x: np.full(y.shape, abs(slope)),
                           n_beads=n_beads, density_per_100um2=density_per_100um2, diameter_um=diameter_um,
                           min_separation_um=min_separation_um, seed=seed)


def curved_beads(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    radius_um: float = 100.0,
    axis: Literal["x", "y"] = "y",
    bulge: Literal["toward", "away"] = "toward",
    z0_um: float | None = None,
    density_per_100um2: float = 2.0,
    n_beads: int | None = None,
    diameter_um: float = 0.3,
    min_separation_um: float = 1.0,
    seed: int = 0,
) -> Sample:
    """Beads on a cylinder of radius ``radius_um`` whose axis runs along ``axis`` through the field centre.

    With ``u`` the lateral coordinate across the cylinder (x for ``axis="y"``, y for ``axis="x"``) measured from the
    field centre, the surface is ``z = z0 + s * (R - sqrt(R^2 - u^2))`` for ``|u| < R``: with ``bulge="toward"``
    (``s = +1``, default) the apex at ``u = 0`` is the point closest to the objective and the surface curves away
    from it (deeper) towards the sides, like beads on the outside of a fibre seen from its near side; with
    ``bulge="away"`` (``s = -1``) the apex is the deepest point, like beads lining the inside of a tube's far wall.
    ``z0_um`` (the apex depth) defaults to the value that centres the arc across the field in z, moved if needed so
    that the apex stays inside the grid (then the arc leaves the grid towards the sides).
    ``surface_um`` holds the surface (NaN where ``|u| >= R``).
    """
    shape, sp = _grid(shape, spacing_um)
    radius = _positive("radius_um", radius_um)
    if axis not in ("x", "y"):
        raise InputError(f"axis must be 'x' or 'y', got {axis!r}")
    if bulge not in ("toward", "away"):
        raise InputError(f"bulge must be 'toward' or 'away', got {bulge!r}")
    sign = 1.0 if bulge == "toward" else -1.0
    yc, xc = (shape[1] - 1) * sp[1] / 2, (shape[2] - 1) * sp[2] / 2
    u_edge = min(radius, ((shape[2] - 1) * sp[2] if axis == "y" else (shape[1] - 1) * sp[1]) / 2)
    sag = radius - np.sqrt(radius**2 - u_edge**2)
    z_last = (shape[0] - 1) * sp[0]
    if z0_um is None:  # centre the visible arc in z, but keep the apex inside the grid when the arc is deeper
        z0 = float(np.clip(z_last / 2 - sign * sag / 2, 0.1 * z_last, 0.9 * z_last))
    else:
        z0 = float(z0_um)

    def across(y, x):
        return x - xc if axis == "y" else y - yc

    def surface(y, x):
        u = across(y, x)
        with np.errstate(invalid="ignore"):
            return np.where(np.abs(u) < radius, z0 + sign * (radius - np.sqrt(radius**2 - u**2)), np.nan)

    def slope(y, x):
        u = np.abs(across(y, x))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(u < radius, u / np.sqrt(radius**2 - u**2), np.nan)

    return _surface_sample("curved-beads", shape, sp, surface, slope, n_beads=n_beads,
                           density_per_100um2=density_per_100um2, diameter_um=diameter_um,
                           min_separation_um=min_separation_um, seed=seed)


# ----------------------------------------------------------------------------------------------- nuclei


def _random_ellipsoids(rng, n, diameters_um: tuple[float, float]):
    semi = rng.uniform(*diameters_um, size=(n, 3)) / 2
    return semi, _random_rotations(rng, n)


def nuclei(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    n_nuclei: int | None = None,
    volume_fraction: float = 0.1,
    diameter_range_um: tuple[float, float] = (3.0, 8.0),
    edge_um: float = 0.3,
    brightness_range: tuple[float, float] = (0.5, 1.0),
    seed: int = 0,
) -> Sample:
    """Blurred ellipsoidal nuclei at random positions, their centres at least a mean diameter apart.

    Each nucleus has three random axis lengths (diameters) in ``diameter_range_um``, a random orientation, a random
    brightness in ``brightness_range`` and a soft edge (a step blurred by ``edge_um``). Without ``n_nuclei``,
    the count fills ``volume_fraction`` of the grid (at least one nucleus). Centres (µm) are in ``centres_um``.
    """
    shape, sp = _grid(shape, spacing_um)
    dmin, dmax = _range("diameter_range_um", diameter_range_um)
    bmin, bmax = _range("brightness_range", brightness_range)
    edge = _positive("edge_um", edge_um)
    extent = np.asarray(shape) * sp
    if n_nuclei is None:
        mean_volume = np.pi / 6 * ((dmin + dmax) / 2) ** 3
        n_nuclei = max(1, int(round(_positive("volume_fraction", volume_fraction) * np.prod(extent) / mean_volume)))
    n_nuclei = _count("n_nuclei", n_nuclei)
    rng = np.random.default_rng(seed)
    centres = _pick_separated("nuclei", lambda k: _uniform_points(rng, k, np.zeros(3), extent - sp), n_nuclei,
                              (dmin + dmax) / 2, float(np.prod(extent)), 3)
    semi, rot = _random_ellipsoids(rng, len(centres), (dmin, dmax))
    out = np.zeros(shape, dtype=np.float32)
    _render_ellipsoids(out, sp, centres, semi, rot, rng.uniform(bmin, bmax, len(centres)), edge)
    return Sample(out, tuple(sp), "nuclei", centres_um=centres)


# ----------------------------------------------------------------------------------------------- worm


def _undulating_curve(rng, extent_yx: np.ndarray, step_um: float) -> np.ndarray:
    """A smooth random planar curve (µm, ``(n, 2)`` as ``(y, x)``) crossing the field near its centre.

    The heading undulates sinusoidally (C. elegans' sinusoidal posture) around a random direction, plus a slow random
    drift; the curve runs 1.5 field diagonals long, centred near the field centre.
    """
    diag = float(np.hypot(*extent_yx))
    length = 1.5 * diag
    s = np.arange(-length / 2, length / 2, step_um)
    wavelength = rng.uniform(0.6, 1.2) * diag
    heading = (rng.uniform(0, 2 * np.pi) + rng.uniform(0.2, 0.5) * np.sin(2 * np.pi * s / wavelength
               + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.1) * s / diag)
    pts = np.cumsum(np.stack([np.sin(heading), np.cos(heading)], axis=1) * step_um, axis=0)
    pts -= pts[len(pts) // 2]
    return pts + extent_yx / 2 + rng.uniform(-0.15, 0.15, 2) * extent_yx


def worm(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    diameter_um: float = 20.0,
    n_nuclei: int | None = None,
    nucleus_diameter_um: tuple[float, float] = (2.0, 3.0),
    autofluorescence: float = 0.05,
    edge_um: float = 0.3,
    seed: int = 0,
) -> Sample:
    """A C. elegans-like worm: a tube of ``diameter_um`` along a smooth random curve, holding fluorescent nuclei.

    The body's centre line lies in the middle plane of the z extent and crosses the lateral field; the body glows
    faintly (``autofluorescence``) and holds nuclei (diameters in ``nucleus_diameter_um``, brightness 0.6-1) at
    uniformly random, non-overlapping positions inside it, hence at random depths.

    Nucleus count: ``n_nuclei`` if given; otherwise a random 150-300 per 120 µm of body, scaled down in proportion
    to the body volume inside the grid when less than 120 µm of a full body fits (a small field, or a z extent
    thinner than the body, which is then cut by the grid). Centres (µm) are in ``centres_um``.
    """
    shape, sp = _grid(shape, spacing_um)
    radius = _positive("diameter_um", diameter_um) / 2
    nd_min, nd_max = _range("nucleus_diameter_um", nucleus_diameter_um)
    edge = _positive("edge_um", edge_um)
    autofluorescence = _non_negative("autofluorescence", autofluorescence, 1.0)
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape) * sp
    # lateral distance to the centre line: 2D Euclidean distance transform on a grid padded by the body radius
    pad = np.ceil((radius + 3 * edge) / sp[1:]).astype(int) + 1
    curve = _undulating_curve(rng, extent[1:], 0.5 * float(sp[1:].min()))
    pix = np.rint(curve / sp[1:]).astype(int) + pad
    padded = np.array(shape[1:]) + 2 * pad
    pix = pix[np.all((pix >= 0) & (pix < padded), axis=1)]
    not_curve = np.ones(padded, dtype=bool)
    not_curve[pix[:, 0], pix[:, 1]] = False
    d_lat = ndimage.distance_transform_edt(not_curve, sampling=sp[1:])[pad[0] : pad[0] + shape[1],
                                                                          pad[1] : pad[1] + shape[2]]
    z_mid = (shape[0] - 1) * sp[0] / 2
    dz = np.arange(shape[0]) * sp[0] - z_mid
    dist = np.sqrt(d_lat[None].astype(np.float32) ** 2 + (dz[:, None, None] ** 2).astype(np.float32))
    body = np.float32(autofluorescence) * _soft_step(dist - np.float32(radius), edge)

    if n_nuclei is None:
        body_volume = float(np.count_nonzero(dist < radius)) * float(np.prod(sp))
        n_full = rng.integers(150, 301)
        n_nuclei = int(round(n_full * min(1.0, body_volume / (np.pi * radius**2 * 120.0))))
    n_nuclei = _count("n_nuclei", n_nuclei)
    # candidate centres uniform in the voxels where a whole nucleus fits inside the body
    inner = np.flatnonzero(dist < radius - nd_max / 2)

    def draw(k):
        pick = rng.choice(inner, size=k)
        return (np.stack(np.unravel_index(pick, shape), axis=1) + rng.random((k, 3)) - 0.5) * sp

    centres = _pick_separated("worm nuclei", draw, n_nuclei, nd_max, inner.size * float(np.prod(sp)), 3)
    semi, rot = _random_ellipsoids(rng, len(centres), (nd_min, nd_max))
    nuc = np.zeros(shape, dtype=np.float32)
    _render_ellipsoids(nuc, sp, centres, semi, rot, rng.uniform(0.6, 1.0, len(centres)), edge)
    return Sample(np.maximum(body, nuc), tuple(sp), "worm", centres_um=centres)


# ----------------------------------------------------------------------------------------------- filaments


def filaments(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    n_filaments: int | None = None,
    length_range_um: tuple[float, float] = (10.0, 40.0),
    persistence_range_um: tuple[float, float] = (5.0, 20.0),
    slab_um: float = 3.0,
    z_excursion_um: float = 0.7,
    z_centre_um: float | None = None,
    seed: int = 0,
) -> Sample:
    """Microtubule-like filaments: smooth random curves, ~25 nm thick, mostly in a thin slab.

    Each filament is a 2D worm-like chain in (y, x) (heading angle variance ``s / Lp`` over a length ``s``, ``Lp`` drawn
    per filament from ``persistence_range_um``) starting at a random point of the field; its depth is a random offset
    within ``slab_um`` around ``z_centre_um`` (default: the middle of the z extent) plus gentle sinusoidal excursions
    of rms amplitude ``z_excursion_um`` (wavelengths 15-50 µm). Parts leaving the grid are dropped. Without
    ``n_filaments`` there is one filament per 200 µm² of field.

    A 25 nm filament is far thinner than a voxel, so it is rendered as a line: each voxel receives the length of
    filament inside it (a partial-volume line integral, computed by binning 1/8-voxel steps), divided by ``dx``;
    a filament running along x thus has density ~1.
    """
    shape, sp = _grid(shape, spacing_um)
    lmin, lmax = _range("length_range_um", length_range_um)
    pmin, pmax = _range("persistence_range_um", persistence_range_um)
    slab = _positive("slab_um", slab_um)
    z_excursion_um = _non_negative("z_excursion_um", z_excursion_um)
    extent = np.asarray(shape) * sp
    if n_filaments is None:
        n_filaments = int(round(extent[1] * extent[2] / 200.0))
    n = _count("n_filaments", n_filaments)
    rng = np.random.default_rng(seed)
    z_c = (shape[0] - 1) * sp[0] / 2 if z_centre_um is None else float(z_centre_um)
    ds = float(sp.min()) / 8
    s = np.arange(int(np.ceil(lmax / ds))) * ds  # (L,)
    lengths = rng.uniform(lmin, lmax, n)
    lp = rng.uniform(pmin, pmax, n)
    heading = rng.uniform(0, 2 * np.pi, (n, 1)) + np.cumsum(
        rng.normal(0, 1, (n, len(s))) * np.sqrt(ds / lp)[:, None], axis=1)
    yx = rng.uniform(0, 1, (n, 1, 2)) * (extent[1:] - sp[1:]) + np.cumsum(
        np.stack([np.sin(heading), np.cos(heading)], axis=-1) * ds, axis=1)
    n_waves = 3
    amp = rng.normal(0, z_excursion_um / np.sqrt(n_waves / 2), (n, n_waves, 1))
    lam = rng.uniform(15, 50, (n, n_waves, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, n_waves, 1))
    z = z_c + rng.uniform(-slab / 2, slab / 2, (n, 1)) + (amp * np.sin(2 * np.pi * s / lam + phase)).sum(axis=1)
    pts = np.concatenate([z[..., None], yx], axis=-1)[s[None, :] < lengths[:, None]]  # (M, 3)
    idx = np.rint(pts / sp).astype(int)
    idx = idx[np.all((idx >= 0) & (idx < np.array(shape)), axis=1)]
    out = np.zeros(shape, dtype=np.float32)
    np.add.at(out.reshape(-1), np.ravel_multi_index(tuple(idx.T), shape), np.float32(ds / sp[2]))
    return Sample(out, tuple(sp), "filaments")


# ----------------------------------------------------------------------------------------------- tissue


def _jittered_grid(rng, lo: np.ndarray, hi: np.ndarray, pitch: float, jitter: float) -> np.ndarray:
    """Cell centres on a grid of ``pitch`` µm filling the box ``[lo, hi]``, each moved by up to ``jitter * pitch``."""
    counts = np.maximum(np.rint((hi - lo) / pitch), 1).astype(int)
    steps = (hi - lo) / counts
    axes = [lo[k] + (np.arange(counts[k]) + 0.5) * steps[k] for k in range(3)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return centres + rng.uniform(-jitter, jitter, centres.shape) * steps


def _label_cells(best, second, label, radii, nucleus_fraction, membrane_um, levels) -> np.ndarray:
    """Fluorescence of tissue voxels from their nearest and second-nearest normalised cell distances squared.

    ``levels`` is ``(cytoplasm per cell, nucleus per cell, membrane level, extracellular background)``. Voxels in no
    cell's reach have ``best = inf`` and get only the background.
    """
    cyto, nuc, membrane, background = levels
    r_cell = radii[label]
    rho1 = np.sqrt(best)
    # distance (µm) to the nearest membrane: inside a cell (rho1 < 1) a face shared with a neighbour (the bisector
    # rho1 = rho2) or the free surface rho = 1, whichever is closer; outside every cell the free surface
    with np.errstate(invalid="ignore"):  # inf - inf where no cell reaches: fmin/fmax then keep the finite terms
        face = np.sqrt(second)
        face -= rho1
        face *= np.float32(0.5)
        np.fmin(face, 1 - rho1, out=face)
        np.fmax(face, rho1 - 1, out=face)
    face *= r_cell
    np.square(face, out=face)
    face *= np.float32(-0.5 / membrane_um**2)
    out = np.exp(face, out=face)
    out *= np.float32(membrane)
    inside = _soft_step((rho1 - 1) * r_cell, membrane_um)
    out += background.astype(np.float32) * (1 - inside)
    cyto_voxel = cyto[label]
    out += inside * cyto_voxel
    rho1 -= np.float32(nucleus_fraction)
    rho1 *= r_cell
    out += _soft_step(rho1, membrane_um) * (nuc[label] - cyto_voxel)
    return out


def tissue(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    thickness_um: float = 40.0,
    cell_diameter_um: float = 10.0,
    nucleus_fraction: float = 0.5,
    membrane_um: float = 0.3,
    nucleus_level: float = 1.0,
    cytoplasm_level: float = 0.15,
    membrane_level: float = 0.4,
    background: float = 0.03,
    scattering_length_um: float = 100.0,
    seed: int = 0,
) -> Sample:
    """Thick tissue: densely packed cells through ``thickness_um`` of depth, labelled in nucleus, cytoplasm, membrane.

    Cell centres sit on a jittered grid of pitch ``cell_diameter_um`` filling the tissue slab (centred in z, or the
    whole z extent if thinner than ``thickness_um``). Each cell is an ellipsoid of random orientation and size
    (0.6-0.75 pitch, axes varied +-15 %), so neighbours overlap; a voxel belongs to the cell of smallest normalised
    ellipsoidal distance ``rho`` (a weighted Voronoi partition), and lies outside every cell (extracellular space)
    where ``rho > 1``. The labelling is: nucleus (``rho < nucleus_fraction``, soft edge, brightness varying 0.7-1 per
    cell) at ``nucleus_level``, cytoplasm at ``cytoplasm_level`` x 0.7-1.3 per cell, a Gaussian membrane of width
    ``membrane_um`` on the cell boundaries (shared faces and free surfaces) at ``membrane_level``, and a faint diffuse
    ``background`` in the extracellular space of the slab. The result is scaled to peak 1.

    The scattering haze is not in the density; ``scattering_length_um`` (the scattering mean free path) is stored on
    the sample for :mod:`widefield3d.sim.acquisition` to use.
    """
    shape, sp = _grid(shape, spacing_um)
    thickness = _positive("thickness_um", thickness_um)
    pitch = _positive("cell_diameter_um", cell_diameter_um)
    fn = _positive("nucleus_fraction", nucleus_fraction)
    if fn >= 1:
        raise InputError(f"nucleus_fraction must be below 1, got {nucleus_fraction!r}")
    w = _positive("membrane_um", membrane_um)
    scattering = _positive("scattering_length_um", scattering_length_um)
    for name, level in [("nucleus_level", nucleus_level), ("cytoplasm_level", cytoplasm_level),
                        ("membrane_level", membrane_level), ("background", background)]:
        _non_negative(name, level)
    extent = np.asarray(shape) * sp
    rng = np.random.default_rng(seed)
    z_top = max(0.0, (extent[0] - thickness) / 2)
    z_bot = min(extent[0], z_top + thickness)
    lo = np.array([z_top, -pitch / 2, -pitch / 2])
    hi = np.array([z_bot, extent[1] + pitch / 2, extent[2] + pitch / 2])
    centres = _jittered_grid(rng, lo, hi, pitch, 0.25)
    n = len(centres)
    radii = pitch * rng.uniform(0.6, 0.75, n)
    semi = radii[:, None] * rng.uniform(0.85, 1.15, (n, 3))
    rot = _random_rotations(rng, n)
    metrics = _ellipsoid_metrics(semi, rot)

    cyto = (cytoplasm_level * rng.uniform(0.7, 1.3, n)).astype(np.float32)
    nuc_level = (nucleus_level * rng.uniform(0.7, 1.0, n)).astype(np.float32)
    z = np.arange(shape[0]) * sp[0]
    background_z = background * _soft_step(z_top - z, w) * _soft_step(z - z_bot, w)
    # each cell's patch reaches rho = rho_max along the ellipsoid's axes: past the membrane of a free surface
    rho_max = 1.0 + 3 * w / radii.min()
    half = np.sqrt(np.diagonal(np.linalg.inv(metrics), axis1=1, axis2=2)) * rho_max  # (n, 3) µm
    radii32 = radii.astype(np.float32)
    out = np.empty(shape, dtype=np.float32)
    depth = 16  # planes per block: the block's work arrays stay small and are reused
    best = np.empty((depth, *shape[1:]), dtype=np.float32)  # rho^2 of the nearest cell
    second = np.empty_like(best)  # rho^2 of the second nearest
    label = np.empty(best.shape, dtype=np.int32)
    for k0 in range(0, shape[0], depth):
        k1 = min(k0 + depth, shape[0])
        best.fill(np.inf)
        second.fill(np.inf)
        label.fill(-1)
        for i in np.flatnonzero((centres[:, 0] + half[:, 0] >= k0 * sp[0]) & (centres[:, 0] - half[:, 0] < k1 * sp[0])):
            sl, offs = _patch(centres[i], half[i], sp, shape, (k0, k1))
            if sl is None:
                continue
            r2 = _quadratic(metrics[i], offs)
            b, s2, lab = best[sl], second[sl], label[sl]
            lab[r2 < b] = i
            np.minimum(s2, np.maximum(b, r2), out=s2)  # the new second nearest is min(second, max(nearest, this))
            np.minimum(b, r2, out=b)
        for k in range(k0, k1, 2):  # two planes at a time keep the temporaries in cache
            zs = slice(k - k0, min(k + 2, k1) - k0)
            out[k : k + 2] = _label_cells(best[zs], second[zs], label[zs], radii32, fn, w,
                                          (cyto, nuc_level, membrane_level, background_z[k : k + 2, None, None]))
    out /= max(float(out.max()), 1e-12)
    inside_grid = np.all((centres >= 0) & (centres < extent), axis=1)
    return Sample(out, tuple(sp), "tissue", centres_um=centres[inside_grid], scattering_length_um=scattering)


# ----------------------------------------------------------------------------------------------- cytology


def cytology(
    shape: tuple[int, int, int],
    spacing_um: tuple[float, float, float],
    *,
    coverage: float = 0.35,
    cell_diameter_um: tuple[float, float] = (10.0, 20.0),
    nucleus_diameter_um: tuple[float, float] = (5.0, 10.0),
    depth_um: float = 30.0,
    cluster_fraction: float = 0.4,
    seed: int = 0,
) -> Sample:
    """An H&E-stained cytology preparation for bright-field (RGB) imaging: ``(2, Z, Y, X)`` stain concentrations.

    Cells (lateral diameters in ``cell_diameter_um``, flattened to 0.4-0.7 of that in z) carry an eosin-stained
    cytoplasm and a hematoxylin-dense nucleus (diameters in ``nucleus_diameter_um``, off-centre by up to a quarter of
    the free space) with a chromatin texture (0.5 µm-correlated granularity); the cytoplasm is weaker where the
    nucleus is. Cells cover about ``coverage`` of the field's area, are spread over ``depth_um`` of depth (centred in
    z), and a ``cluster_fraction`` of them gather in small clusters (3-8 cells). Overlapping cells add their stain.

    Concentrations peak near 1 (more where cells overlap); ``absorbance_rgb`` holds the unit Ruifrok-Johnston H&E
    vectors (see :class:`Sample` for how the acquisition turns them into optical density).
    """
    shape, sp = _grid(shape, spacing_um)
    cmin, cmax = _range("cell_diameter_um", cell_diameter_um)
    nmin, nmax = _range("nucleus_diameter_um", nucleus_diameter_um)
    depth = _positive("depth_um", depth_um)
    cov = _positive("coverage", coverage)
    cluster_fraction = _non_negative("cluster_fraction", cluster_fraction, 1.0)
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape) * sp
    n_cells = int(round(cov * extent[1] * extent[2] / (np.pi / 4 * ((cmin + cmax) / 2) ** 2)))
    n_clustered = int(round(cluster_fraction * n_cells))
    z_lo = max(0.0, (extent[0] - depth) / 2)
    z_hi = min(extent[0] - sp[0], z_lo + depth)
    lo, hi = np.array([z_lo, 0.0, 0.0]), np.array([z_hi, extent[1] - sp[1], extent[2] - sp[2]])
    # cluster members scatter around a few cluster seeds; the rest are isolated
    sizes = []
    while sum(sizes) < n_clustered:
        sizes.append(int(rng.integers(3, 9)))
    seeds = _uniform_points(rng, len(sizes), lo, hi)
    members = [s + rng.normal(0, 1, (k, 3)) * np.array([depth / 6, cmax * 0.6, cmax * 0.6])
               for s, k in zip(seeds, sizes)]
    centres = np.concatenate(members + [_uniform_points(rng, max(n_cells - n_clustered, 0), lo, hi)])[:n_cells]
    centres = np.clip(centres, lo, hi)
    n = len(centres)
    cell_d = rng.uniform(cmin, cmax, n)
    cell_semi = np.stack([cell_d * rng.uniform(0.4, 0.7, n), cell_d * rng.uniform(0.85, 1.15, n),
                          cell_d * rng.uniform(0.85, 1.15, n)], axis=1) / 2
    rot_z = rng.uniform(0, 2 * np.pi, n)  # cells lie flat: rotate about z only
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0] = 1
    rot[:, 1, 1] = rot[:, 2, 2] = np.cos(rot_z)
    rot[:, 1, 2] = -np.sin(rot_z)
    rot[:, 2, 1] = np.sin(rot_z)
    nuc_d = np.minimum(rng.uniform(nmin, nmax, n), 0.8 * cell_d)
    nuc_semi = np.minimum(nuc_d[:, None] / 2 * rng.uniform(0.85, 1.15, (n, 3)), 0.8 * cell_semi)
    free = np.maximum(cell_semi - nuc_semi, 0)
    nuc_centres = centres + np.einsum("nij,nj->ni", rot, rng.uniform(-0.25, 0.25, (n, 3)) * free)
    nuc_rot = _random_rotations(rng, n)
    edge = 0.3

    def chromatin(patch_shape):
        return 0.55 + 0.45 * np.clip(0.5 + 0.35 * _smooth_noise(rng, patch_shape, 0.5 / sp), 0, 1)

    eosin = np.zeros(shape, dtype=np.float32)
    _render_ellipsoids(eosin, sp, centres, cell_semi, rot, rng.uniform(0.3, 0.6, n), edge, combine="add")
    hema = np.zeros(shape, dtype=np.float32)
    _render_ellipsoids(hema, sp, nuc_centres, nuc_semi, nuc_rot, rng.uniform(0.6, 1.0, n), edge, combine="add",
                       texture=chromatin)
    eosin *= 1 - 0.7 * np.clip(hema, 0, 1)
    density = np.stack([hema, eosin])
    return Sample(density, tuple(sp), "cytology", channel_names=["hematoxylin", "eosin"],
                  absorbance_rgb=RUIFROK_HE.astype(np.float32), centres_um=centres)


# ----------------------------------------------------------------------------------------------- dispatch

_GENERATORS: dict[str, Callable[..., Sample]] = {
    "beads": beads,
    "nuclei": nuclei,
    "worm": worm,
    "filaments": filaments,
    "tissue": tissue,
    "tilted-beads": tilted_beads,
    "curved-beads": curved_beads,
    "cytology": cytology,
}


def make_sample(kind: str, shape: tuple[int, int, int], spacing_um: tuple[float, float, float], seed: int = 0,
                **kwargs) -> Sample:
    """Generate a phantom of ``kind`` (one of :data:`SAMPLE_KINDS`); ``kwargs`` go to that kind's generator."""
    if kind not in _GENERATORS:
        raise InputError(f"sample kind must be one of {', '.join(SAMPLE_KINDS)}; got {kind!r}")
    generator = _GENERATORS[kind]
    accepted = set(inspect.signature(generator).parameters) - {"shape", "spacing_um", "seed"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise InputError(f"sample kind {kind!r} takes no {', '.join(unknown)}; it takes {', '.join(sorted(accepted))}")
    return generator(shape, spacing_um, seed=seed, **kwargs)
