"""Bead samples: sub-resolution beads at random positions, or spread over a tilted plane or a cylinder."""

from __future__ import annotations

from typing import Literal

import numpy as np

from widefield3d.errors import InputError
from widefield3d.sim.samples.checks import check_count, check_grid, check_non_negative, check_positive
from widefield3d.sim.samples.geometry import pick_separated, uniform_points
from widefield3d.sim.samples.sample import Sample


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
    shape, sp = check_grid(shape, spacing_um)
    diameter_um = check_positive("diameter_um", diameter_um)
    extent = np.asarray(shape) * sp
    if n_beads is None:
        n_beads = int(round(check_positive("density_per_1000um3", density_per_1000um3) * np.prod(extent) / 1000))
    n_beads = check_count("n_beads", n_beads)
    rng = np.random.default_rng(seed)
    lo = np.full(3, diameter_um / 2)
    hi = np.maximum(extent - sp - diameter_um / 2, lo)
    centres = pick_separated("beads", lambda k: uniform_points(rng, k, lo, hi), n_beads,
                             check_non_negative("min_separation_um", min_separation_um), float(np.prod(hi - lo)), 3)
    return Sample(_render_beads(shape, sp, centres, diameter_um), tuple(sp), "beads", centres_um=centres)


def _surface_sample(kind: str, shape, sp, surface_fn, slope_fn, *, n_beads, density_per_100um2, diameter_um,
                    min_separation_um, seed) -> Sample:
    """Beads spread uniformly over the area of the surface ``z = surface_fn(y, x)`` (µm), inside the grid.

    ``slope_fn(y, x)`` is the norm of the surface gradient; lateral positions are drawn with probability
    proportional to the area element ``sqrt(1 + slope^2)``, so the areal bead density is uniform on the surface.
    """
    diameter_um = check_positive("diameter_um", diameter_um)
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(shape[1]) * sp[1], np.arange(shape[2]) * sp[2], indexing="ij")
    surface = surface_fn(yy, xx)

    def usable(z, y, x):
        ok = np.isfinite(z) & (z >= diameter_um / 2) & (z <= (shape[0] - 1) * sp[0] - diameter_um / 2)
        return ok & (y >= 0) & (y <= (shape[1] - 1) * sp[1]) & (x >= 0) & (x <= (shape[2] - 1) * sp[2])

    area_el = np.where(usable(surface, yy, xx), np.sqrt(1 + np.nan_to_num(slope_fn(yy, xx)) ** 2), 0.0)
    if n_beads is None:
        area = float(area_el.sum() * sp[1] * sp[2])
        n_beads = int(round(check_positive("density_per_100um2", density_per_100um2) * area / 100))
    n_beads = check_count("n_beads", n_beads)
    if n_beads and not area_el.any():
        raise InputError(f"{kind}: the bead surface does not cross the grid")

    def draw(k):
        pix = rng.choice(area_el.size, size=k, p=area_el.ravel() / area_el.sum())
        jy, jx = np.unravel_index(pix, surface.shape)
        y = (jy + rng.random(k) - 0.5) * sp[1]
        x = (jx + rng.random(k) - 0.5) * sp[2]
        z = surface_fn(y, x)
        return np.stack([z, y, x], axis=1)[usable(z, y, x)]

    centres = pick_separated(f"{kind} beads", draw, n_beads, check_non_negative("min_separation_um", min_separation_um),
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
    shape, sp = check_grid(shape, spacing_um)
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
    shape, sp = check_grid(shape, spacing_um)
    radius = check_positive("radius_um", radius_um)
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
