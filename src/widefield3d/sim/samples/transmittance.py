"""Transmittance volumes for bright-field volume reconstruction: a 13-volume benchmark and random ellipsoids.

Azevedo et al. (2024) benchmark 13 Open SciVis volumes (Aneurism ... Pancreas) rescaled to 50 x 50 x 11 or
128 x 128 x 11 and normalised to transmittance in [0.7, 1]. Those files cannot be shipped or downloaded here, so
:data:`BENCHMARK_VOLUMES` are 13 procedural stand-ins of the same kinds of structure and complexity, each named after
the scivis volume it imitates. Each is defined in continuous normalised coordinates (x, y in [-1, 1], z in [-1, 1]
over the layers) and sampled onto any grid, so the 50 x 50 and 128 x 128 versions are the same object at two
resolutions, like the paper's rescaled volumes.

Every volume is an absorption density ``a`` in [0, 1] turned into transmittance ``1 - 0.3 * a / max(a)`` (so the
background is 1, fully transparent, and the darkest voxel 0.7).

:func:`ellipsoid_volume` draws the random-ellipsoid volumes used to pre-train the Deep Image Prior network (Pretr I
and II; ellipsoids are good building blocks of cell-like shapes, Barbano et al. 2022).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from widefield3d.errors import InputError
from widefield3d.sim.samples.checks import check_shape

T_MIN = 0.7
"""Lowest transmittance of the benchmark and pre-training volumes (the paper's normalisation to [0.7, 1])."""


def _coords(shape):
    """Normalised coordinates ``z, y, x`` of the voxel centres (broadcastable), each spanning [-1, 1]."""
    nz, ny, nx = shape
    axis = [(np.arange(n) + 0.5) / n * 2.0 - 1.0 for n in (nz, ny, nx)]
    return axis[0][:, None, None], axis[1][None, :, None], axis[2][None, None, :]


def _soft(d, width):
    """1 inside (d < 0), 0 outside, logistic edge of ``width`` (normalised units)."""
    return 0.5 - 0.5 * np.tanh(d / width)


def _ellipsoid(z, y, x, centre, semi, edge=0.04, angle=0.0):
    """Soft ellipsoid (rotated by ``angle`` radians about z)."""
    dz, dy, dx = z - centre[0], y - centre[1], x - centre[2]
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    rho = np.sqrt((dz / semi[0]) ** 2 + (v / semi[1]) ** 2 + (u / semi[2]) ** 2)
    return _soft((rho - 1.0) * min(semi), edge)


def _tube(z, y, x, path: np.ndarray, radius, edge=0.03):
    """Soft tube of ``radius`` around a polyline ``path`` (N, 3) in (z, y, x) normalised units; z is squashed 4x."""
    pts = np.stack(np.broadcast_arrays(z, y, x), axis=-1).reshape(-1, 3)
    scale = np.array([0.25, 1.0, 1.0])  # the volume is ~10x wider than deep: tubes stay a few layers thick
    best = np.full(len(pts), np.inf)
    for a, b in zip(path[:-1], path[1:]):
        ab = (b - a) * scale
        ap = (pts - a) * scale
        t = np.clip(ap @ ab / max(ab @ ab, 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(ap - t[:, None] * ab, axis=1))
    shape = np.broadcast_shapes(np.shape(z), np.shape(y), np.shape(x))
    return _soft(best.reshape(shape) - radius, edge)


def _texture(shape, rng, sigma):
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (field - field.min()) / max(np.ptp(field), 1e-12)


def _curve(rng, n, amplitude=0.5, z_amp=0.6):
    t = np.linspace(-0.9, 0.9, n)
    y = amplitude * np.sin(3 * t + rng.uniform(0, 6.28)) * rng.uniform(0.5, 1)
    z = z_amp * np.sin(2 * t + rng.uniform(0, 6.28))
    return np.stack([z, y, t], axis=1)


def aneurism(shape, rng):
    """Branching vessel tree with a bulge (cf. Aneurism)."""
    z, y, x = _coords(shape)
    trunk = np.array([[0.0, -0.9, -0.6], [0.2, -0.2, -0.2], [0.0, 0.3, 0.1], [-0.3, 0.9, 0.2]])
    a = _tube(z, y, x, trunk, 0.07)
    for start in trunk[1:3]:
        branch = np.stack([start, start + [rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.4), rng.uniform(0.4, 0.7)]])
        a = np.maximum(a, _tube(z, y, x, branch, 0.045))
    return np.maximum(a, _ellipsoid(z, y, x, (0.1, 0.05, -0.05), (0.5, 0.16, 0.16)))


def backpack(shape, rng):
    """Cluttered small objects of different densities (cf. Backpack)."""
    z, y, x = _coords(shape)
    a = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape))
    for _ in range(25):
        c = rng.uniform([-0.6, -0.8, -0.8], [0.6, 0.8, 0.8])
        semi = rng.uniform([0.2, 0.04, 0.04], [0.5, 0.18, 0.18])
        a = np.maximum(a, rng.uniform(0.3, 1.0) * _ellipsoid(z, y, x, c, semi, 0.02, rng.uniform(0, np.pi)))
    return a


def beechnut(shape, rng):
    """Thick textured shell (cf. Beechnut)."""
    z, y, x = _coords(shape)
    outer = _ellipsoid(z, y, x, (0, 0, 0), (0.9, 0.75, 0.6), 0.03, 0.4)
    inner = _ellipsoid(z, y, x, (0, 0, 0), (0.6, 0.55, 0.4), 0.03, 0.4)
    return (outer - inner).clip(0, 1) * (0.5 + 0.5 * _texture(outer.shape, rng, (1, 3, 3)))


def teapot(shape, rng):
    """Smooth solid body with a handle and spout (cf. Teapot)."""
    z, y, x = _coords(shape)
    body = _ellipsoid(z, y, x, (0, 0, 0), (0.8, 0.45, 0.55))
    ring = np.sqrt((np.sqrt(y**2 + (x - 0.6) ** 2) - 0.2) ** 2 + (z / 4) ** 2)
    handle = _soft(ring - 0.05, 0.02) * (x > 0.55)
    spout = _tube(z, y, x, np.array([[0.0, 0.0, -0.5], [0.3, -0.1, -0.85]]), 0.06)
    return np.maximum(np.maximum(body * 0.8, handle), spout)


def chameleon(shape, rng):
    """Elongated textured body with a curled tail (cf. Chameleon)."""
    z, y, x = _coords(shape)
    body = _ellipsoid(z, y, x, (0, 0.1, -0.15), (0.7, 0.3, 0.5), 0.03, 0.2)
    t = np.linspace(0, 1.6 * np.pi, 20)
    tail = np.stack([0.3 * np.sin(t), 0.1 + 0.35 * np.sin(t) - 0.05 * t, 0.3 + 0.3 * np.cos(t) + 0.1 * t], axis=1)
    a = np.maximum(body * (0.6 + 0.4 * _texture(body.shape, rng, (1, 1.5, 1.5))), _tube(z, y, x, tail, 0.05))
    return a


def heptane(shape, rng):
    """Smooth overlapping Gaussian blobs (cf. Heptane: a smooth density field)."""
    z, y, x = _coords(shape)
    a = 0.0
    for _ in range(7):
        c = rng.uniform([-0.5, -0.6, -0.6], [0.5, 0.6, 0.6])
        s = rng.uniform(0.15, 0.35)
        a = a + np.exp(-(((z - c[0]) / (3 * s)) ** 2 + ((y - c[1]) / s) ** 2 + ((x - c[2]) / s) ** 2))
    return a


def engine(shape, rng):
    """Blocky mechanical parts with cylindrical bores (cf. Engine)."""
    z, y, x = _coords(shape)
    box = _soft(np.maximum(np.maximum(np.abs(x) - 0.7, np.abs(y) - 0.5), np.abs(z) - 0.7), 0.02)
    a = box * 0.6
    for cx in (-0.4, 0.0, 0.4):
        a = a * (1 - _soft(np.sqrt((x - cx) ** 2 + (y - 0.1) ** 2) - 0.13, 0.02))
    a = np.maximum(a, _soft(np.maximum(np.abs(x) - 0.8, np.abs(y + 0.7) - 0.08) + 0 * z, 0.02))
    return a


def foot(shape, rng):
    """Chains of elongated bones (cf. Foot)."""
    z, y, x = _coords(shape)
    a = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape))
    for k, yy in enumerate(np.linspace(-0.6, 0.6, 5)):
        for j, xx in enumerate((-0.55, -0.05, 0.4)):
            length = 0.22 - 0.04 * j
            bone = _ellipsoid(z, y, x, (0.2 * np.sin(k), yy + 0.05 * j, xx), (0.5, 0.07, length), 0.02, 0.1 * k)
            a = np.maximum(a, bone * (0.7 + 0.3 * (j == 0)))
    return a


def kingsnake(shape, rng):
    """A coiled tube with scale texture (cf. Kingsnake)."""
    z, y, x = _coords(shape)
    t = np.linspace(0, 3.5 * np.pi, 28)
    r = 0.8 - 0.15 * t / np.pi
    coil = np.stack([0.5 * np.sin(0.7 * t), r * np.sin(t), r * np.cos(t)], axis=1)
    snake = _tube(z, y, x, coil, 0.08)
    return snake * (0.6 + 0.4 * _texture(snake.shape, rng, (0.7, 1.0, 1.0)))


def lobster(shape, rng):
    """A segmented body with two claws (cf. Lobster)."""
    z, y, x = _coords(shape)
    a = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape))
    for i, xx in enumerate(np.linspace(-0.7, 0.3, 6)):
        a = np.maximum(a, _ellipsoid(z, y, x, (0, 0, xx), (0.6, 0.25 - 0.02 * i, 0.1), 0.02) * 0.8)
    for side in (-1, 1):
        arm = np.array([[0.0, side * 0.2, 0.3], [0.2, side * 0.5, 0.6], [0.0, side * 0.4, 0.85]])
        a = np.maximum(a, _tube(z, y, x, arm, 0.05))
        a = np.maximum(a, _ellipsoid(z, y, x, (0, side * 0.4, 0.8), (0.5, 0.12, 0.1), 0.02))
    return a


def mri(shape, rng):
    """Nested textured shells of a head (cf. MRI): skull, cortex texture, ventricles."""
    z, y, x = _coords(shape)
    skull = _ellipsoid(z, y, x, (0, 0, 0), (1.2, 0.85, 0.7), 0.02)
    brain = _ellipsoid(z, y, x, (0, 0, 0), (1.0, 0.75, 0.6), 0.02)
    ventricles = _ellipsoid(z, y, x, (0, 0, 0.05), (0.5, 0.25, 0.12), 0.03, 0.2)
    texture = _texture(brain.shape, rng, (0.8, 2.0, 2.0))
    return (skull - brain).clip(0, 1) + brain * 0.35 * (0.4 + 0.6 * texture) + ventricles * 0.5


def mrt_angio(shape, rng):
    """Thin tortuous vessels (cf. MRT Angio)."""
    z, y, x = _coords(shape)
    a = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape))
    for _ in range(6):
        a = np.maximum(a, _tube(z, y, x, _curve(rng, 12, z_amp=0.3), rng.uniform(0.015, 0.03), 0.012))
    return a


def pancreas(shape, rng):
    """A lobulated, finely textured organ (cf. Pancreas)."""
    z, y, x = _coords(shape)
    a = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape))
    for t in np.linspace(-0.7, 0.7, 6):
        c = (0.1 * np.sin(4 * t), 0.3 * np.sin(2 * t), t)
        a = np.maximum(a, _ellipsoid(z, y, x, c, (0.6, 0.2 + 0.05 * np.cos(3 * t), 0.22), 0.03, t))
    return a * (0.4 + 0.6 * _texture(a.shape, rng, (0.6, 1.2, 1.2)))


BENCHMARK_VOLUMES: dict[str, Callable] = {
    "aneurism": aneurism, "backpack": backpack, "beechnut": beechnut, "teapot": teapot, "chameleon": chameleon,
    "heptane": heptane, "engine": engine, "foot": foot, "kingsnake": kingsnake, "lobster": lobster, "mri": mri,
    "mrt-angio": mrt_angio, "pancreas": pancreas,
}
"""The 13 benchmark volumes, in the paper's Table 1 order; each ``f(shape, rng) -> absorption density``."""


def to_transmittance(absorption: np.ndarray, t_min: float = T_MIN) -> np.ndarray:
    """Map an absorption density ``>= 0`` to transmittance ``1 - (1 - t_min) * a / max(a)``, float32 in [t_min, 1]."""
    a = np.clip(np.asarray(absorption, dtype=np.float64), 0, None)
    peak = a.max()
    return (1.0 - (1.0 - t_min) * (a / peak if peak > 0 else a)).astype(np.float32)


def benchmark_volume(name: str, shape=(11, 128, 128), seed: int = 0) -> np.ndarray:
    """One of the 13 benchmark volumes: transmittance ``(Z, Y, X)`` in [0.7, 1], float32.

    The seed only varies random details (textures, clutter); the object's layout is fixed per name.
    """
    if name not in BENCHMARK_VOLUMES:
        raise InputError(f"unknown benchmark volume {name!r}; choose one of: {', '.join(BENCHMARK_VOLUMES)}")
    absorption = BENCHMARK_VOLUMES[name](check_shape(shape), np.random.default_rng(seed))
    return to_transmittance(np.broadcast_to(absorption, shape))


def ellipsoid_volume(shape, rng: np.random.Generator | int = 0, n_range=(3, 12)) -> np.ndarray:
    """A random volume of overlapping soft ellipsoids, transmittance in [0.7, 1] (float32, ``(Z, Y, X)``).

    ``n_range`` ellipsoids with random centres, semi-axes (0.1-0.5 of the half-width laterally, 0.2-0.8 axially),
    rotations about z and absorption strengths; overlapping absorption adds up, then is scaled to [0.7, 1].
    """
    rng = np.random.default_rng(rng)
    z, y, x = _coords(check_shape(shape))
    a = np.zeros(shape)
    for _ in range(int(rng.integers(n_range[0], n_range[1] + 1))):
        c = rng.uniform([-0.6, -0.8, -0.8], [0.6, 0.8, 0.8])
        semi = rng.uniform([0.2, 0.1, 0.1], [0.8, 0.5, 0.5])
        a += rng.uniform(0.2, 1.0) * _ellipsoid(z, y, x, c, semi, 0.03, rng.uniform(0, np.pi))
    return to_transmittance(a)


def cell_volume(shape=(11, 64, 64), seed: int = 0) -> np.ndarray:
    """A cell-like transmittance volume: a flattened cell with a dense nucleus, nucleolus and small vesicles."""
    rng = np.random.default_rng(seed)
    z, y, x = _coords(check_shape(shape))
    cell = _ellipsoid(z, y, x, (0, 0, 0), (0.7, 0.75, 0.85), 0.04, rng.uniform(0, np.pi))
    a = 0.25 * cell * (0.7 + 0.3 * _texture(cell.shape, rng, (1, 2, 2)))
    a += 0.5 * _ellipsoid(z, y, x, (0.1, 0.1, -0.15), (0.5, 0.3, 0.35), 0.03, 0.5)
    a += 0.4 * _ellipsoid(z, y, x, (0.2, 0.15, -0.1), (0.25, 0.08, 0.08), 0.02)
    for _ in range(8):
        r = rng.uniform(0.45, 0.7)
        phi = rng.uniform(0, 2 * np.pi)
        c = (rng.uniform(-0.4, 0.4), 0.75 * r * np.sin(phi), 0.85 * r * np.cos(phi))
        a += 0.35 * _ellipsoid(z, y, x, c, (0.3, 0.06, 0.06), 0.02)
    return to_transmittance(a)
