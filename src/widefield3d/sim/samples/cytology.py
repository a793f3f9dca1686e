"""Cytology samples for bright-field (RGB) imaging: H&E stain concentrations of cells on a slide."""

from __future__ import annotations

import numpy as np

from widefield3d.sim.samples.checks import check_grid, check_non_negative, check_positive, check_range
from widefield3d.sim.samples.geometry import random_rotations, render_ellipsoids, smooth_noise, uniform_points
from widefield3d.sim.samples.sample import Sample

#: Ruifrok & Johnston (2001) optical-density colour vectors (R, G, B) of hematoxylin and eosin, unit length.
RUIFROK_HE = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]], dtype=np.float64)
RUIFROK_HE /= np.linalg.norm(RUIFROK_HE, axis=1, keepdims=True)
#: The same vectors by stain name, as the channel names of a cytology sample.
STAIN_ABSORBANCE_RGB = {"hematoxylin": RUIFROK_HE[0], "eosin": RUIFROK_HE[1]}


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
    shape, sp = check_grid(shape, spacing_um)
    cmin, cmax = check_range("cell_diameter_um", cell_diameter_um)
    nmin, nmax = check_range("nucleus_diameter_um", nucleus_diameter_um)
    depth = check_positive("depth_um", depth_um)
    cov = check_positive("coverage", coverage)
    cluster_fraction = check_non_negative("cluster_fraction", cluster_fraction, 1.0)
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape) * sp
    n_cells = int(round(cov * extent[1] * extent[2] / (np.pi / 4 * ((cmin + cmax) / 2) ** 2)))
    n_clustered = int(round(cluster_fraction * n_cells))
    z_lo = max(0.0, (extent[0] - depth) / 2)
    z_hi = min(extent[0] - sp[0], z_lo + depth)
    lo, hi = np.array([z_lo, 0.0, 0.0]), np.array([z_hi, extent[1] - sp[1], extent[2] - sp[2]])
    # cluster members scatter around a few cluster seeds; the rest are isolated
    sizes: list[int] = []
    while sum(sizes) < n_clustered:
        sizes.append(int(rng.integers(3, 9)))
    seeds = uniform_points(rng, len(sizes), lo, hi)
    members = [s + rng.normal(0, 1, (k, 3)) * np.array([depth / 6, cmax * 0.6, cmax * 0.6])
               for s, k in zip(seeds, sizes)]
    centres = np.concatenate(members + [uniform_points(rng, max(n_cells - n_clustered, 0), lo, hi)])[:n_cells]
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
    nuc_rot = random_rotations(rng, n)
    edge = 0.3

    def chromatin(patch_shape):
        return 0.55 + 0.45 * np.clip(0.5 + 0.35 * smooth_noise(rng, patch_shape, 0.5 / sp), 0, 1)

    eosin = np.zeros(shape, dtype=np.float32)
    render_ellipsoids(eosin, sp, centres, cell_semi, rot, rng.uniform(0.3, 0.6, n), edge, combine="add")
    hema = np.zeros(shape, dtype=np.float32)
    render_ellipsoids(hema, sp, nuc_centres, nuc_semi, nuc_rot, rng.uniform(0.6, 1.0, n), edge, combine="add",
                      texture=chromatin)
    eosin *= 1 - 0.7 * np.clip(hema, 0, 1)
    density = np.stack([hema, eosin])
    return Sample(density, tuple(sp), "cytology", channel_names=["hematoxylin", "eosin"],
                  absorbance_rgb=RUIFROK_HE.astype(np.float32), centres_um=centres)
