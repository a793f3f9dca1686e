"""Nuclei samples: ellipsoidal nuclei scattered through the volume (``nuclei``) or inside a worm's body (``worm``)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from widefield3d.sim.samples.checks import check_count, check_grid, check_non_negative, check_positive, check_range
from widefield3d.sim.samples.geometry import (
    pick_separated,
    random_ellipsoids,
    render_ellipsoids,
    soft_step,
    uniform_points,
)
from widefield3d.sim.samples.sample import Sample


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
    shape, sp = check_grid(shape, spacing_um)
    dmin, dmax = check_range("diameter_range_um", diameter_range_um)
    bmin, bmax = check_range("brightness_range", brightness_range)
    edge = check_positive("edge_um", edge_um)
    extent = np.asarray(shape) * sp
    if n_nuclei is None:
        mean_volume = np.pi / 6 * ((dmin + dmax) / 2) ** 3
        fraction = check_positive("volume_fraction", volume_fraction)
        n_nuclei = max(1, int(round(fraction * np.prod(extent) / mean_volume)))
    n_nuclei = check_count("n_nuclei", n_nuclei)
    rng = np.random.default_rng(seed)
    centres = pick_separated("nuclei", lambda k: uniform_points(rng, k, np.zeros(3), extent - sp), n_nuclei,
                             (dmin + dmax) / 2, float(np.prod(extent)), 3)
    semi, rot = random_ellipsoids(rng, len(centres), (dmin, dmax))
    out = np.zeros(shape, dtype=np.float32)
    render_ellipsoids(out, sp, centres, semi, rot, rng.uniform(bmin, bmax, len(centres)), edge)
    return Sample(out, tuple(sp), "nuclei", centres_um=centres)


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
    brightness_range: tuple[float, float] = (0.6, 1.0),
    autofluorescence: float = 0.05,
    edge_um: float = 0.3,
    seed: int = 0,
) -> Sample:
    """A C. elegans-like worm: a tube of ``diameter_um`` along a smooth random curve, holding fluorescent nuclei.

    The body's centre line lies in the middle plane of the z extent and crosses the lateral field; the body glows
    faintly (``autofluorescence``) and holds nuclei (diameters in ``nucleus_diameter_um``, brightness uniform in
    ``brightness_range``) at uniformly random, non-overlapping positions inside it, hence at random depths.

    Nucleus count: ``n_nuclei`` if given; otherwise a random 150-300 per 120 µm of body, scaled down in proportion
    to the body volume inside the grid when less than 120 µm of a full body fits (a small field, or a z extent
    thinner than the body, which is then cut by the grid). Centres (µm) are in ``centres_um``.
    """
    shape, sp = check_grid(shape, spacing_um)
    radius = check_positive("diameter_um", diameter_um) / 2
    nd_min, nd_max = check_range("nucleus_diameter_um", nucleus_diameter_um)
    bmin, bmax = check_range("brightness_range", brightness_range)
    edge = check_positive("edge_um", edge_um)
    autofluorescence = check_non_negative("autofluorescence", autofluorescence, 1.0)
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
    body = np.float32(autofluorescence) * soft_step(dist - np.float32(radius), edge)

    if n_nuclei is None:
        body_volume = float(np.count_nonzero(dist < radius)) * float(np.prod(sp))
        n_full = rng.integers(150, 301)
        n_nuclei = int(round(n_full * min(1.0, body_volume / (np.pi * radius**2 * 120.0))))
    n_nuclei = check_count("n_nuclei", n_nuclei)
    # candidate centres uniform in the voxels where a whole nucleus fits inside the body
    inner = np.flatnonzero(dist < radius - nd_max / 2)

    def draw(k):
        pick = rng.choice(inner, size=k)
        return (np.stack(np.unravel_index(pick, shape), axis=1) + rng.random((k, 3)) - 0.5) * sp

    centres = pick_separated("worm nuclei", draw, n_nuclei, nd_max, inner.size * float(np.prod(sp)), 3)
    semi, rot = random_ellipsoids(rng, len(centres), (nd_min, nd_max))
    nuc = np.zeros(shape, dtype=np.float32)
    render_ellipsoids(nuc, sp, centres, semi, rot, rng.uniform(bmin, bmax, len(centres)), edge)
    return Sample(np.maximum(body, nuc), tuple(sp), "worm", centres_um=centres)
