"""Deep-Z networks (paper layout), the refocus API (planes, stacks, surfaces, time series, range refusal) and the
`refocus` / `train deepz` command lines."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import write_tiny_deepz

from widefield3d import io
from widefield3d.cli import main
from widefield3d.errors import InputError
from widefield3d.methods import deepz
from widefield3d.nets import deepz as deepz_nets
from widefield3d.nets.deepz import DeepZDiscriminator, DeepZGenerator, _conv3
from widefield3d.tiling import predict_tiled


def _convs(module):
    return [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


def test_generator_has_the_paper_channels():
    g = DeepZGenerator()
    down = [(b.conv1.out_channels, b.conv2.out_channels) for b in g.down]
    assert down == [(25, 48), (72, 96), (144, 192), (288, 384), (576, 768)]
    up = [(b.conv3.out_channels, b.conv4.out_channels) for b in g.up]
    assert up == [(72, 48), (144, 96), (288, 192), (576, 384)]
    assert g.down[0].conv1.in_channels == 2 and g.head.in_channels == 48 and g.head.out_channels == 1
    assert [u.in_channels for u in g.upconv] == [96, 192, 384, 768]  # transposed convolutions from level k+1
    assert all(c.padding_mode == "replicate" for c in _convs(g) if isinstance(c, torch.nn.Conv2d))
    assert all(torch.all(c.bias == 0.1) for c in _convs(g))
    assert g.downsampling_factor == 16 and g.receptive_radius == 108


def test_discriminator_has_the_paper_layout():
    d = DeepZDiscriminator()
    convs = _convs(d)
    assert [c.out_channels for c in convs] == [48, 96, 96, 192, 192, 384, 384, 768, 768, 1536, 1536, 3072]
    assert [c.stride[0] for c in convs] == [1, 2] * 6
    fc = [m for m in d.fc if isinstance(m, torch.nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fc] == [(3072, 3072), (3072, 1)]
    assert [m.negative_slope for m in d.modules() if isinstance(m, torch.nn.LeakyReLU)] == [0.01] * 13
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert all(torch.all(m.bias == 0.1) for m in layers)


def test_discriminator_bias_init_is_a_config_field():
    """``network.discriminator_bias_init`` reaches every layer of the discriminator; the generator keeps 0.1."""
    config = deepz.DeepZConfig.model_validate(
        {"network": {"width": 0.125, "discriminator_width": 0.0625, "discriminator_bias_init": 0.0}})
    g, d = deepz.build_networks(config)
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 14 and all(torch.all(m.bias == 0) for m in layers)
    assert all(torch.all(c.bias == 0.1) for c in _convs(g))



def test_discriminator_without_sigmoid_returns_the_logits():
    """``network.discriminator_sigmoid: false`` drops only the last sigmoid: same weights, scores = logits."""
    torch.manual_seed(0)
    config = deepz.DeepZConfig.model_validate(
        {"network": {"width": 0.125, "discriminator_width": 0.0625, "discriminator_sigmoid": False}})
    _, plain = deepz.build_networks(config)
    paper = DeepZDiscriminator(width=0.0625)
    paper.load_state_dict(plain.state_dict())
    x = torch.randn(3, 1, 64, 64) * 5
    torch.testing.assert_close(paper(x), torch.sigmoid(plain(x)))
    assert plain(x).abs().max() > 1 or not torch.all((plain(x) > 0) & (plain(x) < 1))

def test_film_conditioning_starts_as_the_paper_network():
    """With conditioning='film' the modulation starts at zero: the output equals the paper network's with the same
    convolution weights; the DPM still drives every block once the modulation is trained."""
    torch.manual_seed(0)
    paper = DeepZGenerator(width=0.0625)
    film = DeepZGenerator(width=0.0625, conditioning="film")
    film.load_state_dict(paper.state_dict(), strict=False)
    x = torch.randn(2, 2, 32, 48)
    torch.testing.assert_close(film(x), paper(x), rtol=0, atol=0)
    extra = sum(p.numel() for n, p in film.named_parameters() if n.startswith("film"))
    assert 0 < extra < 0.2 * sum(p.numel() for p in paper.parameters())
    with pytest.raises(InputError, match="conditioning"):
        DeepZGenerator(width=0.0625, in_channels=1, conditioning="film")


def test_inference_shortcuts_equal_the_training_forward():
    """Without gradients the network adds the residual in place, computes a flat plane's FiLM once per image and
    skips the replicate-padded copies; the outputs equal the autograd forward's, for flat and per-pixel DPMs, with
    the input left unchanged."""
    torch.manual_seed(0)
    g = DeepZGenerator(width=0.0625, conditioning="film")
    for m in (*g.film_down, *g.film_up):  # a trained-like modulation instead of the zero start
        torch.nn.init.normal_(m.out.weight, std=0.3)
    image = torch.randn(3, 1, 32, 48)
    flat = torch.cat([image, torch.tensor([-0.5, 0.0, 0.8]).view(3, 1, 1, 1).expand(3, 1, 32, 48)], dim=1)
    tilted = torch.cat([image, torch.linspace(-1, 1, 48).expand(3, 1, 32, 48)], dim=1)
    for x in (flat, tilted):
        before = x.clone()
        with torch.enable_grad():
            trained = g(x)
        with torch.no_grad():
            inferred = g(x)
        torch.testing.assert_close(inferred, trained.detach(), rtol=0, atol=1e-5)
        assert torch.equal(x, before)


@pytest.mark.parametrize("stride", [1, 2])
def test_replicate_convolution_without_the_padded_copy_is_exact(stride):
    """In inference the 3x3 convolutions pad with zeros and recompute the border pixels from replicate-padded
    strips: the output equals replicate padding + convolution, in the input's memory format, for odd, even and
    tiny sizes."""
    torch.manual_seed(0)
    conv = _conv3(5, 4, stride)
    for shape in [(1, 5, 1, 1), (1, 5, 1, 4), (2, 5, 2, 2), (2, 5, 2, 3), (1, 5, 3, 3), (2, 5, 3, 2), (2, 5, 4, 5),
                  (2, 5, 17, 33), (2, 5, 18, 32)]:
        for memory_format in (torch.contiguous_format, torch.channels_last):
            x = torch.randn(shape).contiguous(memory_format=memory_format)
            with torch.no_grad():
                out = conv(x)
                expected = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), conv.weight, conv.bias, stride)
            torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
            assert out.is_contiguous(memory_format=memory_format) == expected.is_contiguous(memory_format=memory_format)
            assert out.is_contiguous() == expected.is_contiguous()


def test_inference_convolutions_equal_the_training_forward():
    """Whole networks (stride 1 and 2, odd sizes on the deeper levels): inference equals the autograd forward."""
    torch.manual_seed(0)
    g = DeepZGenerator(width=0.25, conditioning="film")
    for m in (*g.film_down, *g.film_up):
        torch.nn.init.normal_(m.out.weight, std=0.3)
    d = DeepZDiscriminator(width=0.0625)
    image = torch.randn(2, 1, 48, 80)
    x = torch.cat([image, torch.linspace(-1, 1, 80).expand(2, 1, 48, 80)], dim=1)
    for net, inp in ((g, x), (g, x.contiguous(memory_format=torch.channels_last)), (d, image)):
        with torch.enable_grad():
            trained = net(inp)
        with torch.no_grad():
            inferred = net(inp)
        torch.testing.assert_close(inferred, trained.detach(), rtol=0, atol=1e-5)


def test_state_dict_is_the_plain_convolutions_one(monkeypatch):
    """Shipped checkpoints stay loadable: the same parameter names and shapes as with plain nn.Conv2d."""
    torch.manual_seed(0)
    ours = [DeepZGenerator(width=0.25, conditioning="film"), DeepZDiscriminator(width=0.0625)]
    monkeypatch.setattr(deepz_nets, "_conv3", lambda c_in, c_out, stride=1: torch.nn.Conv2d(
        c_in, c_out, 3, stride=stride, padding=1, padding_mode="replicate"))
    plain = [DeepZGenerator(width=0.25, conditioning="film"), DeepZDiscriminator(width=0.0625)]
    assert type(plain[0].head) is torch.nn.Conv2d and type(ours[0].head) is not torch.nn.Conv2d
    for a, b in zip(ours, plain):
        assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
        b.load_state_dict(a.state_dict())


def test_shapes_and_width():
    g, d = DeepZGenerator(width=0.125), DeepZDiscriminator(width=0.0625)
    y = g(torch.randn(3, 2, 64, 96))
    assert y.shape == (3, 1, 64, 96)
    s = d(torch.randn(3, 1, 64, 64))
    assert s.shape == (3,) and torch.all((s > 0) & (s < 1))
    assert sum(p.numel() for p in g.parameters()) < 0.02 * sum(p.numel() for p in DeepZGenerator().parameters())
    with pytest.raises(InputError, match="width"):
        DeepZGenerator(width=0)


@pytest.mark.parametrize("conditioning", ["input", "film"])
def test_receptive_radius_is_exact_and_tiling_is_seamless(conditioning):
    torch.manual_seed(0)
    g = DeepZGenerator(width=0.0625, conditioning=conditioning).eval()
    for name, param in g.named_parameters():
        if name.startswith("film"):  # the modulation starts at zero: give it weights so that it reaches the output
            torch.nn.init.normal_(param, std=0.3)
    x = torch.randn(1, 2, 288, 288, requires_grad=True)
    reach = 0
    for phase in range(16):
        x.grad = None
        q = 144 + phase
        g(x)[0, 0, q, 144].backward()
        rows = np.nonzero(x.grad[0].abs().sum((0, 2)).numpy())[0]
        reach = max(reach, q - rows.min(), rows.max() - q)
    assert reach == g.receptive_radius
    image = np.random.default_rng(0).normal(size=(2, 150, 170)).astype(np.float32)
    tiled = predict_tiled(g, image, tile=256, blend=16, progress=False)
    pad = 112  # reflect-pad by >= the radius on both sides (multiple of 16 in total), one forward pass, crop
    padded = np.pad(image, ((0, 0), (pad, 384 - 150 - pad), (pad, 400 - 170 - pad)), mode="reflect")
    with torch.inference_mode():
        whole = g(torch.from_numpy(padded)[None])[0, :, pad:pad + 150, pad:pad + 170].numpy()
    assert np.abs(tiled - whole).max() < 1e-4


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A randomly initialised small Deep-Z model saved as a model directory (range +-10 µm, 0.325 µm pixels)."""
    return write_tiny_deepz(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def model(model_dir):
    return deepz.load(model_dir)


def refocus(*args, **kw) -> np.ndarray:
    """The pixels of :func:`deepz.refocus`'s Image."""
    return deepz.refocus(*args, **kw).data


def test_refocus_returns_an_image_with_spacing(model):
    kw = dict(model=model, progress=False, device="cpu")
    stack = deepz.refocus(_image(), [-2.0, 0.0, 2.0], **kw)
    assert stack.axes == "ZYX" and stack.spacing_zyx == pytest.approx((2.0, 0.325, 0.325))
    frames = deepz.refocus(np.stack([_image(), _image(seed=1)]), 1.0, mip=True, **kw)
    assert frames.axes == "TYX" and frames.data.shape == (2, 40, 56)
    descending = deepz.refocus(_image(), [2.0, 0.0, -2.0], **kw)  # planes in the order asked, spacing positive
    assert descending.spacing_zyx[0] == 2.0 and np.array_equal(descending.data, stack.data[::-1])
    assert deepz.refocus(_image(), [1.0, 1.0], **kw).spacing_zyx[0] == 1.0


def _image(shape=(40, 56), seed=0):
    rng = np.random.default_rng(seed)
    img = rng.poisson(20, shape).astype(np.float32)
    img[10:14, 20:25] += 500
    return img


def test_refocus_shapes_for_every_surface(model):
    img = _image()
    kw = dict(model=model, progress=False, device="cpu")
    assert refocus(img, 3.5, **kw).shape == (40, 56)
    assert refocus(img, **kw).shape == (40, 56)
    assert refocus(img, [-2, 0, 2], **kw).shape == (3, 40, 56)
    assert refocus(img, np.arange(-10, 10.1, 0.5), **kw, planes_per_pass=16).shape == (41, 40, 56)
    for surface in ({"tilt_deg": 1.5}, {"tilt_deg": -3, "tilt_axis": "y"}, {"cylinder_radius_um": 500.0},
                    {"sinusoid": (5.0, 4.0)}, {"dpm": np.linspace(-5, 5, 56)[None].repeat(40, 0)}):
        assert refocus(img, **surface, **kw).shape == (40, 56)
        assert refocus(img, [-1.0, 1.0], **surface, **kw).shape == (2, 40, 56)
    assert refocus(img, [-2, 0, 2], mip=True, **kw).shape == (40, 56)


def test_stack_batching_equals_single_planes(model):
    img = _image()
    kw = dict(model=model, progress=False, device="cpu")
    stack = refocus(img, [-4.0, 1.0, 7.5], planes_per_pass=2, **kw)
    for z, plane in zip([-4.0, 1.0, 7.5], stack):
        np.testing.assert_allclose(plane, refocus(img, z, **kw), rtol=1e-4, atol=1e-3)
    # the DPM enters the network divided by the trained range: a non-uniform DPM equal to z everywhere is a plane
    np.testing.assert_allclose(refocus(img, dpm=np.full(img.shape, 7.5), **kw), stack[2], rtol=1e-4, atol=1e-3)


def test_surface_via_planes_interpolates_flat_planes(model):
    img = _image()
    kw = dict(model=model, progress=False, device="cpu")
    flat = refocus(img, [1.0, 1.25, 1.5, 1.75, 2.0], **kw)
    # a DPM on the plane grid (k * 0.25 µm) gives those planes exactly; one between two planes their linear mix
    dpm = np.full(img.shape, 1.5, np.float32)
    dpm[:, 28:] = 1.6
    out = refocus(img, dpm=dpm, surface_via="planes", surface_step_um=0.25, **kw)
    np.testing.assert_allclose(out[:, :28], flat[2][:, :28], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out[:, 28:], (0.6 * flat[2] + 0.4 * flat[3])[:, 28:], rtol=1e-4, atol=1e-3)
    # a tilted plane with a z offset: each pixel between the two flat planes around its depth; a stack of two
    tilted = refocus(img, [0.0, 1.0], tilt_deg=1.0, surface_via="planes", surface_step_um=0.5, **kw)
    depth = deepz.surface_dpm(img.shape, 0.325, tilt_deg=1.0) + 1.0
    grid = np.arange(-0.5, 1.6, 0.5)
    planes = refocus(img, grid, **kw)
    below = np.clip(np.floor((depth - grid[0]) / 0.5).astype(int), 0, len(grid) - 2)
    weight = (depth - grid[below]) / 0.5
    expected = np.take_along_axis(planes, below[None], 0)[0] * (1 - weight) \
        + np.take_along_axis(planes, below[None] + 1, 0)[0] * weight
    np.testing.assert_allclose(tilted[1], expected, rtol=1e-4, atol=1e-3)
    # no surface: the mode changes nothing; bad settings are refused
    np.testing.assert_array_equal(refocus(img, 2.0, surface_via="planes", **kw), refocus(img, 2.0, **kw))
    with pytest.raises(InputError, match="surface_via"):
        refocus(img, tilt_deg=1.0, surface_via="stack", **kw)
    with pytest.raises(InputError, match="surface_step_um"):
        refocus(img, tilt_deg=1.0, surface_via="planes", surface_step_um=0.0, **kw)


def test_surface_dpms():
    tilt = deepz.surface_dpm((11, 21), 0.5, tilt_deg=45.0)  # about x: depth grows with y, 0 at the centre row
    np.testing.assert_allclose(tilt[:, 0], (np.arange(11) - 5) * 0.5, atol=1e-5)
    assert np.all(tilt == tilt[:, :1])
    cyl = deepz.surface_dpm((3, 21), 1.0, cylinder_radius_um=20.0)  # axis along y: sag grows with |x|
    assert cyl[1, 10] == 0 and cyl[1, 0] == pytest.approx(20 - np.sqrt(400 - 100), rel=1e-5)
    sine = deepz.surface_dpm((2, 40), 0.5, sinusoid=(10.0, 4.0))
    assert sine.max() == pytest.approx(4.0, abs=0.05) and np.allclose(sine[:, :20], sine[:, 20:], atol=1e-5)
    with pytest.raises(InputError, match="at most one surface"):
        deepz.surface_dpm((4, 4), 1.0, tilt_deg=1.0, sinusoid=(3.0, 1.0))
    with pytest.raises(InputError, match="half the field"):
        deepz.surface_dpm((4, 64), 1.0, cylinder_radius_um=10.0)


def test_range_is_refused_unless_allowed(model):
    img = _image()
    kw = dict(model=model, progress=False, device="cpu")
    with pytest.raises(InputError, match="trained range"):
        refocus(img, [-12.0, 0.0], **kw)
    with pytest.raises(InputError, match="trained range"):
        refocus(img, 8.0, sinusoid=(10.0, 4.0), **kw)  # 8 + 4 > 10
    assert refocus(img, 12.0, allow_extrapolation=True, **kw).shape == img.shape


def test_time_series(model):
    frames = np.stack([_image(seed=s) for s in range(3)])
    kw = dict(model=model, progress=False, device="cpu")
    out = refocus(frames, [-1.0, 0.0, 1.0], **kw)
    assert out.shape == (3, 3, 40, 56)
    np.testing.assert_allclose(out[1], refocus(frames[1], [-1.0, 0.0, 1.0], **kw), rtol=1e-5, atol=1e-3)
    assert refocus(frames, [-1.0, 1.0], mip=True, **kw).shape == (3, 40, 56)
    assert refocus(io.Image(frames.transpose(1, 2, 0), "YXT"), 2.0, **kw).shape == (3, 40, 56)
    with pytest.raises(InputError, match="YX or TYX"):
        refocus(io.Image(frames, "ZYX"), 1.0, **kw)


def test_output_is_in_input_units(model):
    img = _image()
    kw = dict(model=model, progress=False, device="cpu")
    a = refocus(img, 1.0, **kw)
    b = refocus(img * 3 + 100, 1.0, **kw)  # normalisation from the image itself: affine changes carry through
    np.testing.assert_allclose(b, a * 3 + 100, rtol=1e-3, atol=0.05)


def test_calibrated_refocus_feeds_the_calibrated_dpm(model_dir, tmp_path):
    """A calibration that focuses every depth 1 µm further gives the uncalibrated output at z + 1, for planes,
    a surface through the DPM and a surface through flat planes; a model without one is refused."""
    import shutil

    from widefield3d.methods.deepz_calibration import DepthCalibration, write_depth_calibration

    calibrated_dir = tmp_path / "calibrated"
    shutil.copytree(model_dir, calibrated_dir)
    write_depth_calibration(calibrated_dir, DepthCalibration(depth_um=(-5.0, 5.0), dpm_um=(-4.0, 6.0), n_beads=0))
    model, calibrated = deepz.load(model_dir), deepz.load(calibrated_dir)
    image = _image()
    for z, kw in ((np.array([-2.0, 0.0, 2.5]), {}), (0.5, {"tilt_deg": 2.0}),
                  (0.5, {"tilt_deg": 2.0, "surface_via": "planes", "surface_step_um": 0.5})):
        want = refocus(image, z + 1.0, model=model, device="cpu", progress=False, **kw)
        got = refocus(image, z, model=calibrated, calibrated=True, device="cpu", progress=False, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    with pytest.raises(InputError, match="no depth calibration"):
        refocus(image, 0.0, model=model, calibrated=True, progress=False)
    with pytest.raises(InputError, match="beyond the model's trained range"):  # depth 9.5 needs DPM 10.5
        refocus(image, 9.5, model=calibrated, calibrated=True, progress=False)


def test_cli_refocus(tmp_path, model_dir):
    src = tmp_path / "in.ome.tif"
    io.write(src, io.Image(_image().astype(np.uint16), "YX", (1.0, 0.325, 0.325)))
    out = tmp_path / "out.ome.tif"
    main(["refocus", str(src), "-o", str(out), "--model", str(model_dir), "--z", "-2:2:1", "--mip", "--device", "cpu"])
    stack = io.read(out)
    wide = tmp_path / "wide.ome.tif"  # 448 px wide: --tile 288 cuts it into several windows, seamlessly
    io.write(wide, io.Image(np.tile(_image(), (1, 8)).astype(np.uint16), "YX", (1.0, 0.325, 0.325)))
    for tile in ("288", "1024"):
        main(["refocus", str(wide), "-o", str(tmp_path / f"t{tile}.ome.tif"), "--model", str(model_dir), "--z", "2",
              "--tile", tile, "--device", "cpu"])
    np.testing.assert_allclose(io.read(tmp_path / "t288.ome.tif").data, io.read(tmp_path / "t1024.ome.tif").data,
                               rtol=1e-5, atol=1e-3)
    assert stack.axes == "ZYX" and stack.data.shape == (5, 40, 56) and stack.spacing_um["Z"] == pytest.approx(1.0)
    assert io.read(tmp_path / "out_mip.ome.tif").data.shape == (40, 56)
    dpm = tmp_path / "dpm.npy"
    io.write(dpm, io.Image(np.full((40, 56), 2.0, np.float32), "YX"))
    main(["refocus", str(src), "-o", str(tmp_path / "s.ome.tif"), "--model", str(model_dir), "--dpm", str(dpm)])
    np.testing.assert_allclose(io.read(tmp_path / "s.ome.tif").data, stack.data[4], rtol=1e-4, atol=1e-2)
    main(["refocus", str(src), "-o", str(tmp_path / "p.ome.tif"), "--model", str(model_dir), "--tilt", "1",
          "--surface-via", "planes", "--surface-step", "0.5", "--device", "cpu"])
    np.testing.assert_allclose(io.read(tmp_path / "p.ome.tif").data, deepz.refocus(
        io.read(src), model=str(model_dir), tilt_deg=1.0, surface_via="planes", surface_step_um=0.5, device="cpu",
        progress=False).data, rtol=1e-5, atol=1e-3)
    # --reference: normalise against a stack's EDF (or one plane) instead of the input itself
    ref = tmp_path / "ref.ome.tif"
    ref_stack = np.stack([_image(seed=s) * f for s, f in ((3, 0.5), (4, 2.0), (5, 1.0))]).astype(np.float32)
    io.write(ref, io.Image(ref_stack, "ZYX", (1.0, 0.325, 0.325)))
    main(["refocus", str(src), "-o", str(tmp_path / "r.ome.tif"), "--model", str(model_dir), "--z", "-2:2:1",
          "--reference", str(ref), "--device", "cpu"])
    loaded = deepz.load(model_dir)
    norm = deepz.reference_normalisation(ref_stack, loaded)
    assert norm.scale != deepz.reference_normalisation(_image(), loaded).scale
    np.testing.assert_allclose(io.read(tmp_path / "r.ome.tif").data, deepz.refocus(
        io.read(src), np.arange(-2.0, 2.5), model=loaded, normalisation=norm, device="cpu", progress=False).data,
        rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("args,message", [
    (["--z", "11"], "trained range"),
    (["--z", "a:b"], "START:STOP:STEP"),
    ([], "give --z"),
    (["--tilt", "1", "--sinusoid", "5,1"], "at most one surface"),
    (["--sinusoid", "5"], "PERIOD_UM,AMPLITUDE_UM"),
    (["--dpm", "missing.npy"], "not found"),
    (["--z", "1", "--device", "tpu"], "device"),
    (["--tilt", "1", "--surface-via", "planes", "--surface-step", "0"], "--surface-step"),
    (["--z", "1", "--tile", "8"], "--tile=8"),
    (["--z", "1", "--reference", "missing.tif"], "not found"),
    (["--z", "1", "--reference", "const.npy"], "const.npy: the image is constant"),
])
def test_cli_refocus_bad_inputs(tmp_path, model_dir, capsys, args, message):
    src = tmp_path / "in.ome.tif"
    io.write(src, io.Image(_image().astype(np.uint16), "YX"))
    io.write(tmp_path / "const.npy", io.Image(np.ones((8, 8), np.float32), "YX"))
    out = tmp_path / "out.ome.tif"
    with pytest.raises(SystemExit) as exc:
        main(["refocus", str(src), "-o", str(out), "--model", str(model_dir), *[
            str(tmp_path / a) if a.endswith((".tif", ".npy")) else a for a in args]])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_cli_bad_model_and_image(tmp_path, model_dir, capsys):
    stack, plane = tmp_path / "stack.ome.tif", tmp_path / "plane.ome.tif"
    io.write(stack, io.Image(np.ones((3, 16, 16), np.float32), "ZYX"))
    io.write(plane, io.Image(_image(), "YX"))
    for image, args, message in ((plane, ["--model", "no-such-model"], "no such directory"),
                                 (plane, ["--model", str(tmp_path)], "not a model directory"),
                                 (stack, ["--model", str(model_dir)], "got axes ZYX"),
                                 (tmp_path / "none.tif", ["--model", str(model_dir)], "not found")):
        with pytest.raises(SystemExit):
            main(["refocus", str(image), "-o", str(tmp_path / "o.tif"), "--z", "1", *args])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def test_cli_train_bad_inputs(tmp_path, capsys):
    bad = tmp_path / "cfg.yaml"
    bad.write_text("network: {width: -1}\n")
    for args, message in ((["--data", str(tmp_path / "none")], "not found"),
                          (["--data", str(tmp_path), "--config", str(bad)], "width"),
                          (["--data", str(tmp_path), "--config", str(tmp_path / "nope.yaml")], "not found")):
        with pytest.raises(SystemExit) as exc:
            main(["train", "deepz", *args, "-o", str(tmp_path / "m")])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_refocus_reads_a_file_with_its_pixel_size(model, tmp_path):
    img = _image()
    path = tmp_path / "plane.ome.tif"
    io.write(path, io.Image(img, "YX", (1.0, 0.325, 0.325)))
    kw = dict(model=model, progress=False, device="cpu")
    np.testing.assert_allclose(refocus(path, [-2, 2], **kw), refocus(img, [-2, 2], **kw), atol=1e-5)
