"""Thick tissue samples: densely packed cells labelled in nucleus, cytoplasm and membrane, with a scattering length."""

from __future__ import annotations

import numpy as np

from widefield3d.errors import InputError
from widefield3d.sim.samples.checks import check_grid, check_non_negative, check_positive
from widefield3d.sim.samples.geometry import ellipsoid_metrics, patch, quadratic, random_rotations, soft_step
from widefield3d.sim.samples.sample import Sample


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
    inside = soft_step((rho1 - 1) * r_cell, membrane_um)
    out += background.astype(np.float32) * (1 - inside)
    cyto_voxel = cyto[label]
    out += inside * cyto_voxel
    rho1 -= np.float32(nucleus_fraction)
    rho1 *= r_cell
    out += soft_step(rho1, membrane_um) * (nuc[label] - cyto_voxel)
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
    shape, sp = check_grid(shape, spacing_um)
    thickness = check_positive("thickness_um", thickness_um)
    pitch = check_positive("cell_diameter_um", cell_diameter_um)
    fn = check_positive("nucleus_fraction", nucleus_fraction)
    if fn >= 1:
        raise InputError(f"nucleus_fraction must be below 1, got {nucleus_fraction!r}")
    w = check_positive("membrane_um", membrane_um)
    scattering = check_positive("scattering_length_um", scattering_length_um)
    for name, level in [("nucleus_level", nucleus_level), ("cytoplasm_level", cytoplasm_level),
                        ("membrane_level", membrane_level), ("background", background)]:
        check_non_negative(name, level)
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
    rot = random_rotations(rng, n)
    metrics = ellipsoid_metrics(semi, rot)

    cyto = (cytoplasm_level * rng.uniform(0.7, 1.3, n)).astype(np.float32)
    nuc_level = (nucleus_level * rng.uniform(0.7, 1.0, n)).astype(np.float32)
    z = np.arange(shape[0]) * sp[0]
    background_z = background * soft_step(z_top - z, w) * soft_step(z - z_bot, w)
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
            sl, offs = patch(centres[i], half[i], sp, shape, (k0, k1))
            if sl is None:
                continue
            r2 = quadratic(metrics[i], offs)
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
