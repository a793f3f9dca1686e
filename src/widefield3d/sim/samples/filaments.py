"""Filament samples: microtubule-like curves, thinner than a voxel, rendered as partial-volume line integrals."""

from __future__ import annotations

import numpy as np

from widefield3d.sim.samples.checks import check_count, check_grid, check_non_negative, check_positive, check_range
from widefield3d.sim.samples.sample import Sample


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
    shape, sp = check_grid(shape, spacing_um)
    lmin, lmax = check_range("length_range_um", length_range_um)
    pmin, pmax = check_range("persistence_range_um", persistence_range_um)
    slab = check_positive("slab_um", slab_um)
    z_excursion_um = check_non_negative("z_excursion_um", z_excursion_um)
    extent = np.asarray(shape) * sp
    if n_filaments is None:
        n_filaments = int(round(extent[1] * extent[2] / 200.0))
    n = check_count("n_filaments", n_filaments)
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
