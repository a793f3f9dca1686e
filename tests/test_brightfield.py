"""Yamaguchi's bright-field ray model: the fast renderer against a slow, plainly written reference."""

import math

import numpy as np
import pytest
import torch

from widefield3d.errors import InputError
from widefield3d.optics import brightfield_stack as exported
from widefield3d.optics.brightfield import BrightfieldRenderer, brightfield_stack, pupil_slopes, ray_taps


def reference_slopes(na, n):
    """Pupil grid points inside the disc -> slopes, written out longhand."""
    slopes = []
    for i in range(n):
        for k in range(n):
            q = -1.0 + 2.0 * i / (n - 1) if n > 1 else 0.0
            p = -1.0 + 2.0 * k / (n - 1) if n > 1 else 0.0
            if q * q + p * p <= 1.0 + 1e-12:
                sy, sx = na * q, na * p
                cz = math.sqrt(1.0 - sy * sy - sx * sx)
                slopes.append((sy / cz, sx / cz))
    return slopes


def authors_slopes(na, n, n_layers, dz):
    """The authors' ray set: a cone of diameter tan(theta_max) (2L - 1) dz across a (2L - 1)-layer box, split into
    n x n square cells; the rays run from the centres of the cells inside the circle, through the box centre."""
    diameter = na / math.sqrt(1 - na * na) * (2 * n_layers - 1) * dz
    cell = diameter / n
    slopes = []
    for i in range(n):
        for k in range(n):
            y, x = (i + 0.5) * cell - diameter / 2, (k + 0.5) * cell - diameter / 2
            if x * x + y * y <= (diameter / 2) ** 2:
                slopes.append((y / ((2 * n_layers - 1) * dz / 2), x / ((2 * n_layers - 1) * dz / 2)))
    return slopes


def chord_in_box(zf, yf, xf, ty, tx, box):
    """Length along z of the part of the line (yf + ty (z - zf), xf + tx (z - zf)) inside an axis-aligned box."""
    (z0, z1), (y0, y1), (x0, x1) = box
    lo, hi = z0, z1
    for start, tan, a, b in ((yf, ty, y0, y1), (xf, tx, x0, x1)):
        if tan == 0.0:
            if not a <= start <= b:
                return 0.0
            continue
        za, zb = zf + (a - start) / tan, zf + (b - start) / tan
        lo, hi = max(lo, min(za, zb)), min(hi, max(za, zb))
    return max(0.0, hi - lo)


def reference_stack(alpha, na, dxy, dz, n, focus_layers=None, model="exact"):
    """For each focus layer, pixel and ray: product over every voxel of alpha ** (chord length / dz), or with the
    authors' rays (``model="paper"``) of alpha ** (chord length in µm); the pixel is the mean over rays."""
    n_layers, h, w = alpha.shape
    focus_layers = range(n_layers) if focus_layers is None else focus_layers
    slopes = reference_slopes(na, n) if model == "exact" else authors_slopes(na, n, n_layers, dz)
    unit = dz if model == "exact" else 1.0
    out = np.zeros((len(focus_layers), h, w))
    for f, s in enumerate(focus_layers):
        for y in range(h):
            for x in range(w):
                zf, yf, xf = (s + 0.5) * dz, (y + 0.5) * dxy, (x + 0.5) * dxy
                total = 0.0
                for ty, tx in slopes:
                    secant = math.sqrt(1.0 + ty * ty + tx * tx)
                    light = 1.0
                    for k in range(n_layers):
                        for i in range(h):
                            for j in range(w):
                                box = ((k * dz, (k + 1) * dz), (i * dxy, (i + 1) * dxy), (j * dxy, (j + 1) * dxy))
                                d = chord_in_box(zf, yf, xf, ty, tx, box) * secant / unit
                                light *= alpha[k, i, j] ** d
                    total += light
                out[f, y, x] = total / len(slopes)
    return out


@pytest.mark.parametrize("engine", ["kernel", "torch"])
@pytest.mark.parametrize(
    "shape, na, dxy, dz, n, focus",
    [
        ((3, 5, 6), 0.75, 0.92, 1.0, 5, None),  # paper geometry, coarse pupil
        ((4, 4, 5), 0.3, 0.5, 1.0, 7, None),  # low NA, finer pupil
        ((3, 5, 4), 0.9, 0.4, 1.5, 4, None),  # steep rays leave the volume sideways; even grid: no axial ray
        ((5, 4, 4), 0.6, 1.0, 0.7, 3, [1, 3]),  # focus on a subset of layers
    ],
)
def test_fast_renderer_matches_reference(shape, na, dxy, dz, n, focus, engine):
    rng = np.random.default_rng(sum(shape) + n)
    alpha = rng.uniform(0.2, 1.0, shape)
    expected = reference_stack(alpha, na, dxy, dz, n, focus)
    renderer = BrightfieldRenderer(shape[0], na, dxy, dz, n, focus, engine=engine)
    with torch.no_grad():
        fast = renderer(torch.as_tensor(alpha)).numpy()
        fast32 = renderer(torch.as_tensor(alpha, dtype=torch.float32)).numpy()
    assert fast.dtype == np.float64
    assert np.max(np.abs(fast - expected)) < 1e-6
    assert fast32.dtype == np.float32 and np.max(np.abs(fast32 - expected)) < 1e-5


@pytest.mark.parametrize("engine", ["kernel", "torch"])
@pytest.mark.parametrize("shape, na, dxy, dz, n", [((3, 6, 5), 0.75, 0.92, 1.0, 5), ((4, 5, 5), 0.6, 0.5, 1.5, 4)])
def test_paper_model_matches_the_authors_ray_set(shape, na, dxy, dz, n, engine):
    """``model="paper"``: the authors' rays (cell centres, uniform in slope), lengths in µm, mean of intensities."""
    rng = np.random.default_rng(n)
    alpha = rng.uniform(0.3, 1.0, shape)
    expected = reference_stack(alpha, na, dxy, dz, n, model="paper")
    with torch.no_grad():
        fast = BrightfieldRenderer(shape[0], na, dxy, dz, n, engine=engine, model="paper")(torch.as_tensor(alpha))
    assert np.max(np.abs(fast.numpy() - expected)) < 1e-6
    # a different model: the exact one differs from it by far more than the tolerance
    assert np.max(np.abs(reference_stack(alpha, na, dxy, dz, n) - expected)) > 1e-2


@pytest.mark.parametrize("samples", [25, 24])
def test_the_engines_agree_on_a_paper_sized_stack(samples):
    """The CPU kernels (fast float32 exp, rays in pairs) and the torch shifted-layer sum on 11 x 40 x 44 voxels, 441
    rays (the last one without a partner) or 408 (24 x 24 grid)."""
    alpha = torch.rand(11, 40, 44, dtype=torch.float64) * 0.3 + 0.7
    stacks = {}
    for engine in ("kernel", "torch"):
        renderer = BrightfieldRenderer(11, aperture_samples=samples, engine=engine)
        with torch.no_grad():
            stacks[engine, 64] = renderer(alpha)
            stacks[engine, 32] = renderer(alpha.float())
    assert torch.max(torch.abs(stacks["kernel", 64] - stacks["torch", 64])) < 1e-12
    assert torch.max(torch.abs(stacks["kernel", 32].double() - stacks["torch", 64])) < 1e-6
    assert torch.max(torch.abs(stacks["torch", 32].double() - stacks["torch", 64])) < 1e-6
    grads = {}
    for engine, dtype in (("kernel", torch.float32), ("torch", torch.float64)):
        log_t = torch.log(alpha).to(dtype).requires_grad_()
        renderer = BrightfieldRenderer(11, aperture_samples=samples, engine=engine)
        (renderer.render_log(log_t) * torch.linspace(-1, 1, 44)).sum().backward()
        grads[engine] = log_t.grad.double()
    assert torch.max(torch.abs(grads["kernel"] - grads["torch"])) < 1e-5 * torch.max(torch.abs(grads["torch"]))


def test_float32_exp_of_the_kernels_is_far_below_8_bit_quantisation():
    """The kernels' vectorised float32 exp against float64 exp of the same float32 inputs: absolute error below 1.5e-7
    for every log-transmission <= 0 (an 8-bit stack in [0, 1] has steps of 1/255 = 3.9e-3), relative error below
    2.5e-7 on [-1, 0]; exactly 1 for nothing absorbed, finite and tiny far below the float32 range."""
    from numba import njit

    from widefield3d.optics.ray_kernels import _exp32

    @njit
    def exp32(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = _exp32(x[i])
        return out

    x = np.concatenate([np.linspace(-1, 0, 1_000_001, dtype=np.float32),
                        np.linspace(-88, -1, 1_000_001, dtype=np.float32),
                        np.array([-100.0, -1e4, -1e30], np.float32)])
    got, expected = exp32(x).astype(np.float64), np.exp(x.astype(np.float64))
    assert np.max(np.abs(got - expected)) < 1.5e-7
    near = x >= -1
    assert np.max(np.abs(got[near] / expected[near] - 1)) < 2.5e-7
    assert got[x == 0] == 1.0


def test_pupil_sampling_matches_the_paper_geometry():
    slopes = pupil_slopes(0.75, 25)
    assert np.allclose(slopes, reference_slopes(0.75, 25))
    assert len(slopes) == 441  # points of the 25 x 25 grid inside the unit disc
    assert np.isclose(np.hypot(*slopes.T).max(), 0.75 / math.sqrt(1 - 0.75**2))
    paper = pupil_slopes(0.75, 25, model="paper")
    assert np.allclose(paper, authors_slopes(0.75, 25, 11, 1.0))
    assert len(paper) == 489  # cell centres of the 25 x 25 grid inside the circle (the authors' ray count)
    assert np.isclose(np.abs(paper).max(), 0.96 * 0.75 / math.sqrt(1 - 0.75**2))  # outermost cell centre


@pytest.mark.parametrize("n_layers, na, dxy, dz", [(11, 0.75, 0.92, 1.0), (6, 0.95, 0.3, 2.0), (2, 0.0, 1.0, 1.0)])
def test_path_lengths_sum_to_the_length_inside_the_slab(n_layers, na, dxy, dz):
    taps = ray_taps(n_layers, na, dxy, dz, 9)
    secant = np.sqrt(1.0 + np.sum(taps.slopes**2, axis=1))
    assert np.all(taps.length > 0)
    for s in range(n_layers):
        inside = (taps.delta + s >= 0) & (taps.delta + s < n_layers)
        per_ray = np.bincount(taps.ray[inside], weights=taps.length[inside], minlength=taps.n_rays)
        np.testing.assert_allclose(per_ray, n_layers * secant, rtol=1e-12)  # in layer spacings
    # a straight ray crosses each voxel at most once
    keys = np.stack([taps.ray, taps.delta, taps.dy, taps.dx], axis=1)
    assert len(np.unique(keys, axis=0)) == len(keys)


def test_transparent_volume_renders_to_one_and_a_uniform_layer_to_the_secant_average():
    assert np.array_equal(brightfield_stack(np.ones((11, 16, 16))), np.ones((11, 16, 16)))
    a = 0.6
    volume = np.ones((3, 21, 21))
    volume[1] = a
    stack = brightfield_stack(volume, na=0.75, aperture_samples=25)
    secant = np.sqrt(1.0 + np.sum(pupil_slopes(0.75, 25) ** 2, axis=1))
    for s in range(3):  # every ray of the centre pixel crosses the whole layer: transmits a ** secant
        assert abs(stack[s, 10, 10] - np.mean(a**secant)) < 1e-12


@pytest.mark.parametrize("engine", ["kernel", "torch"])
def test_gradients_match_finite_differences(engine):
    renderer = BrightfieldRenderer(3, na=0.6, xy_res_um=0.8, z_res_um=1.0, aperture_samples=3, engine=engine)
    log_t = (-torch.rand(3, 3, 4, dtype=torch.float64) * 0.5).requires_grad_()
    assert torch.autograd.gradcheck(renderer.render_log, (log_t,), eps=1e-6, atol=1e-8)
    alpha = (0.5 + 0.5 * torch.rand(2, 3, 3, 4, dtype=torch.float64)).requires_grad_()  # batch of two volumes
    assert torch.autograd.gradcheck(renderer, (alpha,), eps=1e-6, atol=1e-8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    alpha = torch.rand(5, 16, 16, dtype=torch.float64) * 0.3 + 0.7
    renderer = BrightfieldRenderer(5, aperture_samples=9)
    assert torch.allclose(renderer(alpha.cuda()).cpu(), renderer(alpha), atol=1e-12)


def test_bad_inputs_are_one_line_errors():
    assert exported is brightfield_stack
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        brightfield_stack(np.full((2, 4, 4), 1.5))
    with pytest.raises(InputError, match="ZYX"):
        brightfield_stack(np.ones((4, 4)))
    with pytest.raises(InputError, match="na="):
        brightfield_stack(np.ones((2, 4, 4)), na=1.0)
    with pytest.raises(InputError, match="aperture_samples"):
        brightfield_stack(np.ones((2, 4, 4)), aperture_samples=0)
    with pytest.raises(InputError, match="evenly spaced"):
        brightfield_stack(np.ones((4, 4, 4)), focus_layers=[0, 1, 3])
    with pytest.raises(InputError, match="model="):
        brightfield_stack(np.ones((2, 4, 4)), model="yamaguchi")
    with pytest.raises(InputError, match="engine="):
        BrightfieldRenderer(2, engine="fast")
    with pytest.raises(InputError, match="float32/float64 CPU"):
        BrightfieldRenderer(2, engine="kernel")(torch.ones((2, 4, 4), dtype=torch.float16))
