"""WFCON-Net: architecture, feature extractors, data pipeline, a tiny training run, inference and the CLI."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from conftest import run

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.methods import wfcon as W
from widefield3d.nets.features import DiscriminatorFeatures, VGG16Features, perceptual_loss
from widefield3d.nets.wfcon import DISCRIMINATOR_CHANNELS, ResidualBlock, WFConDiscriminator, WFConGenerator
from widefield3d.tiling import frozen_norms, image_norm_statistics, predict_tiled
from widefield3d.train.trainer import TrainerConfig

torch.set_num_threads(1)



def tiny_field(seed: int, shape=(16, 32, 32)) -> tuple[np.ndarray, np.ndarray]:
    """A toy thick-sample pair: confocal = sharp points; wide-field = 3D blur + broad out-of-focus haze."""
    r = np.random.default_rng(seed)
    t = np.zeros(shape, np.float32)
    t[tuple(r.integers(0, s, 40) for s in shape)] = 1
    cf = ndimage.gaussian_filter(t, (0.6, 1.0, 1.0), mode="wrap")
    wf = ndimage.gaussian_filter(t, 2.0, mode="wrap") + 0.3 * ndimage.gaussian_filter(t, (4, 8, 8), mode="wrap")
    return (wf / wf.max()).astype(np.float32), (cf / cf.max()).astype(np.float32)


def write_pairs(folder, n=4, shape=(16, 32, 32)):
    for i in range(n):
        wf, cf = tiny_field(i, shape)
        for name, a in (("widefield", wf), ("confocal", cf)):
            counts = (a * 1000 + 50).astype(np.uint16)
            io.write(folder / name / f"f{i}.ome.tif", io.Image(counts, "ZYX", (0.5, 0.1, 0.1)))
    return folder


TINY = dict(network={"width_multiplier": 0.25, "discriminator_width_multiplier": 1 / 16},
            data={"crop_zyx": (8, 32, 32), "validation_crops": 2})


def confocal(*args, **kw) -> np.ndarray:
    """The pixels of :func:`W.confocal`'s Image."""
    return W.confocal(*args, **kw).data


def tiny_trainer(iterations=20, **kw):
    return TrainerConfig(iterations=iterations, batch_size=2, pixel_weight=2.0, validate_every=iterations,
                         checkpoint_every=iterations, device="cpu", generator_steps=1, discriminator_steps=1,
                         lr_generator=1e-3, **kw)


# ------------------------------------------------------------------------------------------------ architecture


def test_generator_blocks_and_shapes_3d():
    g = WFConGenerator(width_multiplier=0.25)
    assert len(g.down) == 4 and len(g.up) == 4
    assert [p.kernel_size for p in g.pools] == [(2, 2, 2), (2, 2, 2), (1, 2, 2), (1, 2, 2)]
    assert all(isinstance(p, nn.MaxPool3d) for p in g.pools)
    for block in [g.inc, *g.down, *g.up]:
        convs = [m for m in block.modules() if isinstance(m, nn.Conv3d) and m.kernel_size == (3, 3, 3)]
        assert len(convs) == 2 and isinstance(block.norm, nn.InstanceNorm3d)
    assert all(u.mode == "nearest" for u in g.upsamples)
    assert all(c.stride == (1, 1, 1) and c.kernel_size == (3, 3, 3) for c in g.up_convs)
    assert [b.conv1.out_channels for b in g.down] == [16, 32, 64, 128]
    assert g.downsampling_factor == (4, 16, 16)
    y = g(torch.rand(2, 1, 12, 32, 48))
    assert y.shape == (2, 1, 12, 32, 48) and y.dtype == torch.float32
    with pytest.raises(InputError, match="multiple"):
        g(torch.rand(1, 1, 10, 32, 32))


def test_generator_2d_version_same_design():
    g = WFConGenerator(ndim=2, width_multiplier=0.25)
    assert all(isinstance(p, nn.MaxPool2d) for p in g.pools) and isinstance(g.inc.norm, nn.InstanceNorm2d)
    assert g.downsampling_factor == (16, 16)
    assert g(torch.rand(3, 1, 32, 32)).shape == (3, 1, 32, 32)


def test_residual_block_is_identity_plus_branch():
    block = ResidualBlock(3, 4, 4)
    x = torch.randn(1, 4, 4, 8, 8)
    with torch.no_grad():
        block.norm.bias.zero_()
        block.norm.weight.zero_()  # branch -> ReLU(0) = 0: only the residual mapping is left
    torch.testing.assert_close(block(x), x)
    widen = ResidualBlock(3, 2, 4)
    assert isinstance(widen.skip, nn.Conv3d) and widen.skip.kernel_size == (1, 1, 1)


def test_receptive_radius_bounds_the_convolutional_reach():
    g = WFConGenerator(ndim=2, width_multiplier=0.125, depth=3)
    for block in [g.inc, *g.down, *g.up]:
        block.norm = nn.Identity()  # instance norm couples all pixels; the radius is the convolutions' reach
    r = g.receptive_radius[0]
    n = -(-(2 * r + 40) // 8) * 8
    x = torch.rand(1, 1, n, n, requires_grad=True)
    g(x)[0, 0, n // 2, n // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
    reach = int(max(n // 2 - rows.min(), rows.max() - n // 2))
    assert reach <= r and reach >= r - 8  # an upper bound, tight up to the pooling grid


def test_discriminator_is_3d_deepz():
    d = WFConDiscriminator(width_multiplier=1 / 16)
    assert len(d.blocks) == 6
    for block, (c1, c2) in zip(d.blocks, [(3, 6), (6, 12), (12, 24), (24, 48), (48, 96), (96, 192)]):
        conv1, act, conv2, _ = block
        assert conv1.out_channels == c1 and conv2.out_channels == c2 and conv2.stride == (2, 2, 2)
        assert conv1.padding_mode == "replicate" and act.negative_slope == 0.01
    assert isinstance(d.fc[-1], nn.Sigmoid) and d.fc[0].in_features == 192
    torch.testing.assert_close(d.blocks[0][0].bias, torch.full((3,), 0.1))
    score = d(torch.rand(3, 1, 12, 32, 32))
    assert score.shape == (3, 1) and bool(((score > 0) & (score < 1)).all())
    assert len(d.features(torch.rand(1, 1, 12, 32, 32))) == 6
    assert DISCRIMINATOR_CHANNELS[0] == (48, 96) and DISCRIMINATOR_CHANNELS[-1] == (1536, 3072)  # Deep-Z's widths


# ------------------------------------------------------------------------------------------------ features


def test_vgg16_local_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    src = VGG16Features(("relu1_2", "relu2_2"))
    for p in src.parameters():
        p.data.normal_(0, 0.05)
    state = {k: v.contiguous() for k, v in src.state_dict().items() if k.startswith("features.")}
    save_file(state, str(tmp_path / "vgg.safetensors"))
    torch.save({**state, "classifier.0.weight": torch.zeros(2, 2)}, tmp_path / "vgg.pth")  # torchvision-like
    x = torch.rand(2, 1, 32, 32)
    expected = src(x)
    for name in ("vgg.safetensors", "vgg.pth"):
        got = VGG16Features.from_file(tmp_path / name, ("relu1_2", "relu2_2"))(x)
        assert [t.shape[1] for t in got] == [64, 128]
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b)
    with pytest.raises(InputError, match="not VGG-16"):
        VGG16Features(("relu3_1",)).load(tmp_path / "vgg.safetensors")  # needs deeper layers than saved
    with pytest.raises(InputError, match="unknown layer"):
        VGG16Features(("conv9",))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable"):
        VGG16Features.from_file(tmp_path / "junk.pth")


def test_perceptual_loss_volumes_plane_by_plane_and_discriminator_features():
    vgg = VGG16Features(("relu1_2",))
    a, b = torch.rand(2, 1, 3, 16, 16), torch.rand(2, 1, 3, 16, 16)
    planes = [perceptual_loss(vgg, a[:, :, z], b[:, :, z]) for z in range(3)]
    torch.testing.assert_close(perceptual_loss(vgg, a, b), torch.stack(planes).mean(), rtol=1e-5, atol=1e-7)
    assert float(perceptual_loss(vgg, a, a)) == 0.0

    d = WFConDiscriminator(width_multiplier=1 / 16)
    feats = DiscriminatorFeatures(d)
    assert list(feats.parameters()) == []  # the discriminator is used, not owned
    fake = torch.rand(1, 1, 8, 32, 32, requires_grad=True)
    loss = perceptual_loss(feats, fake, torch.rand(1, 1, 8, 32, 32))
    loss.backward()
    assert loss.item() > 0 and fake.grad.abs().sum().item() > 0


# ------------------------------------------------------------------------------------------------ data


def test_normalise_and_crops(tmp_path):
    x = np.linspace(0, 1000, 1000).reshape(10, 10, 10)
    n = W.normalise(x, (0.0, 100.0))
    assert n.dtype == np.float32 and n.min() == 0.0 and n.max() == 1.0
    assert abs(W.normalise(x, (10.0, 90.0)).mean() - 0.5) < 1e-3
    with pytest.raises(InputError, match="constant"):
        W.normalise(np.ones((4, 4, 4)))

    write_pairs(tmp_path / "d", n=3)
    cfg = W.WFConConfig(**TINY, trainer=tiny_trainer())
    pairs = W.load_pairs(tmp_path / "d", cfg)
    assert pairs.names == ["f0.ome.tif", "f1.ome.tif", "f2.ome.tif"] and pairs.spacing_um == (0.5, 0.1, 0.1)
    assert all(0 <= a.min() and a.max() <= 1 for a in pairs.widefield + pairs.confocal)
    # augmentation moves input and target together: with identical stacks every crop pair is equal
    same = W.PairedStacks(["a"], [pairs.confocal[0]], [pairs.confocal[0].copy()], pairs.spacing_um)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(12):
        x, y = W._crop(same, [0], rng, cfg.data.crop_zyx, augment=True)
        assert x.shape == (8, 32, 32) and np.array_equal(x, y)
        seen.add(x.tobytes())
    assert len(seen) > 3
    task = W.make_task(pairs, cfg)
    xb, yb = task.sample_batch(rng)
    assert xb.shape == yb.shape == (2, 1, 8, 32, 32) and xb.dtype == torch.float32
    planes_2d = cfg.model_copy(update={"network": cfg.network.model_copy(update={"kind": "2d"})})
    xb, yb = W.make_task(pairs, planes_2d).sample_batch(rng)
    assert xb.shape == (16, 1, 32, 32)


def test_data_errors(tmp_path):
    cfg = W.WFConConfig(**TINY)
    with pytest.raises(InputError, match="widefield/ and confocal/"):
        W.load_pairs(tmp_path, cfg)
    write_pairs(tmp_path / "d", n=2, shape=(6, 32, 32))
    with pytest.raises(InputError, match="smaller than crop"):
        W.load_pairs(tmp_path / "d", cfg)
    (tmp_path / "d" / "confocal" / "f1.ome.tif").unlink()
    with pytest.raises(InputError, match="no confocal stack"):
        small_crop = cfg.data.model_copy(update={"crop_zyx": (4, 32, 32)})
        W.load_pairs(tmp_path / "d", cfg.model_copy(update={"data": small_crop}))
    with pytest.raises(ValueError, match="multiples"):
        W.WFConConfig(data={"crop_zyx": (10, 256, 256)})
    with pytest.raises(ValueError, match="needs gan=True"):
        W.WFConConfig(network={"gan": False})


def test_paper_defaults():
    cfg = W.WFConConfig()
    assert cfg.data.crop_zyx == (12, 256, 256) and cfg.network.perceptual_weight == 0.01
    assert cfg.trainer.pixel_weight == 2.0 and cfg.trainer.gan_loss == "lsgan" and cfg.trainer.batch_size == 24
    assert cfg.trainer.iterations == 6000 and cfg.trainer.adversarial_weight == 1.0


def test_interpolate_z_restores_linear_profiles():
    z = np.arange(9, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32)
    np.testing.assert_allclose(W.interpolate_z(z[::2], 2.0), z, atol=1e-6)
    np.testing.assert_allclose(W.interpolate_z(z[::4], 4.0), z, atol=1e-6)
    assert W.interpolate_z(z, 1.0).shape == z.shape


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """20 iterations of the full GAN (LSGAN + 2 L1 + 0.01 discriminator feature matching) on 3 toy fields."""
    folder = write_pairs(tmp_path_factory.mktemp("wfcon") / "data", n=4)
    out = folder.parent / "model"
    result = W.train(folder, out, W.WFConConfig(**TINY, trainer=tiny_trainer(20)), progress=False)
    return folder, out, result


@pytest.mark.slow
def test_tiny_training_beats_the_widefield_input(trained):
    folder, out, result = trained
    assert result.iterations_done == 20 and (out / "weights.safetensors").is_file()
    model = W.load(out)
    assert model.config.data.z_step_um == 0.5 and model.config.network.perceptual == "discriminator"
    wf = io.read(folder / "widefield" / "f3.ome.tif").data  # the held-out validation field
    gt = W.normalise(io.read(folder / "confocal" / "f3.ome.tif").data)
    pred = confocal(wf, model=model, device="cpu", progress=False)
    identity = float(np.sqrt(np.mean((W.normalise(wf) - gt) ** 2)))
    err = float(np.sqrt(np.mean((pred - gt) ** 2)))
    assert identity > 0.2 and err < 0.5 * identity  # measured: 0.202 -> 0.085 (0.089 with reflected context)


@pytest.mark.slow
def test_tiled_confocal_matches_whole_volume(trained):
    folder, out, _ = trained
    model = W.load(out)
    wf = io.read(folder / "widefield" / "f3.ome.tif").data
    wf = np.concatenate([wf, wf[::-1]], axis=0)[:, :, :]  # 32 planes
    wf = np.concatenate([wf, wf[:, ::-1]], axis=1)  # 32 x 64 x 32
    x = W.normalise(wf)
    with torch.no_grad():
        whole = model.generator(torch.from_numpy(x)[None, None]).numpy()[0, 0].clip(0, 1)
    geometry = {"tile_zyx": (24, 64, 32), "halo_zyx": (4, 16, 0), "blend_zyx": (4, 16, 0)}
    small = model.config.model_copy(update={"network": model.config.network.model_copy(update=geometry)})
    tiled = confocal(wf, model=W.WFConModel(model.generator, small), device="cpu", progress=False)
    assert tiled.shape == whole.shape
    # the halo is far below the convolutional reach (66, 122, 122): close, not equal (measured 0.017; 0.037 with
    # reflected context at the border, 0.026 with that and each tile's own norm statistics, against a mean change
    # of 0.15 that the network makes to its input)
    diff = float(np.mean(np.abs(tiled - whole)))
    assert diff < 0.025 and diff < 0.15 * float(np.mean(np.abs(whole - x)))


def _whole_volume_pass(g: WFConGenerator, x: np.ndarray) -> np.ndarray:
    """Reference: one pass over the reflection-padded volume (padded as ``predict_tiled`` pads), every instance
    norm normalised by its input's statistics over the volume's own voxels."""
    lo = [-(-r // d) * d for r, d in zip(g.receptive_radius, g.downsampling_factor)]
    pads = [(p, -(-(n + p + r) // d) * d - n - p) for n, p, r, d in zip(x.shape, lo, g.receptive_radius,
                                                                            g.downsampling_factor)]
    xp = torch.from_numpy(np.pad(x, pads, mode="reflect"))[None, None]

    def volume_statistics(module, args, _):
        h = args[0]
        box = tuple(slice(p * m // t, -(-(p + n) * m // t)) for p, n, m, t in zip(lo, x.shape, h.shape[2:],
                                                                                  xp.shape[2:]))
        v = h[(slice(None), slice(None), *box)]
        mean, var = v.mean(dim=(0, 2, 3, 4), keepdim=True), v.var(dim=(0, 2, 3, 4), unbiased=False, keepdim=True)
        w, b = module.weight.view(1, -1, 1, 1, 1), module.bias.view(1, -1, 1, 1, 1)
        return (h - mean) / torch.sqrt(var + module.eps) * w + b

    handles = [m.register_forward_hook(volume_statistics) for m in g.modules() if isinstance(m, nn.InstanceNorm3d)]
    try:
        with torch.no_grad():
            y = g(xp)[0, 0].numpy()
    finally:
        for h in handles:
            h.remove()
    return y[tuple(slice(p, p + n) for p, n in zip(lo, x.shape))]


def _random_volume(shape, seed=0) -> np.ndarray:
    """Uniform [0, 1) voxels with 2 % each set to 0 and 1: the 0.1 / 99.9 percentiles are 0 and 1, so
    ``normalise(x) == x``."""
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    x.flat[::50], x.flat[1::50] = 0, 1
    return x


def _plain_forward(g: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return g(torch.from_numpy(x)[None, None])[0, 0].numpy()


def _tiny_wfcon(g: WFConGenerator, tile, halo, blend) -> W.WFConModel:
    cfg = W.WFConConfig(network={"width_multiplier": 0.125, "depth": g.depth, "pool_z_levels": g.pool_z_levels,
                                 "tile_zyx": tile, "halo_zyx": halo, "blend_zyx": blend})
    return W.WFConModel(g, cfg)


@pytest.mark.parametrize("border", ["zeros", "reflect"])
def test_tiled_equals_whole_volume(border):
    torch.manual_seed(0)
    g = WFConGenerator(width_multiplier=0.125, depth=1, pool_z_levels=1).eval()  # radius (10, 10, 10), 3 norms
    x = _random_volume((16, 20, 20))
    # "zeros": one plain pass of the network; "reflect": one pass over the reflection-padded volume, every
    # instance norm normalised by the statistics of the volume's own voxels
    whole = _plain_forward(g, x) if border == "zeros" else _whole_volume_pass(g, x)
    geometry = dict(tile=28, blend=2, border=border, progress=False)  # halo = radius: 3 x 3 x 3 tiles
    stats = image_norm_statistics(g, x[None], tile=28, batch_size=5, border=border)
    assert len(stats) == 3  # input block, 1 down, 1 up
    with frozen_norms(stats):
        tiled = predict_tiled(g, x[None], **geometry)[0]
    assert np.abs(tiled - whole).max() < 1e-4  # measured 1.2e-6 (zeros), 1.5e-6 (reflect)
    tile_statistics = predict_tiled(g, x[None], **geometry)[0]
    assert np.abs(tile_statistics - whole).max() > 0.1  # each tile normalised by its own: measured 1.1, 0.39
    if border == "zeros":  # what confocal does (input normalised first, output clipped to [0, 1])
        model = _tiny_wfcon(g, (28, 28, 28), g.receptive_radius, (2, 2, 2))
        out = confocal(x, model=model, device="cpu", progress=False)
        np.testing.assert_allclose(out, np.clip(whole, 0, 1), atol=1e-4)


def test_norm_statistics_reuse_the_previous_pass_without_changing_anything(monkeypatch):
    """Each statistics pass returns the kept outputs of the modules the previous pass completed instead of
    recomputing them: the statistics are bit-equal to recomputing every pass, the tiled output equal to 1e-6,
    and far fewer convolutions run."""
    torch.manual_seed(3)
    g = WFConGenerator(width_multiplier=0.125, depth=2, pool_z_levels=1).eval()  # 5 instance norms
    x = _random_volume((20, 40, 40))[None]
    geometry = dict(tile=(16, 32, 32), halo=(4, 8, 8), border="zeros")  # 3 x 3 x 3 windows
    convolutions = []
    conv_forward = nn.Conv3d._conv_forward
    monkeypatch.setattr(nn.Conv3d, "_conv_forward",
                        lambda self, *args: convolutions.append(1) or conv_forward(self, *args))
    runs = {}
    for cache_bytes in (0, 1 << 30):
        convolutions.clear()
        stats = image_norm_statistics(g, x, cache_bytes=cache_bytes, **geometry)
        with frozen_norms(stats):
            runs[cache_bytes] = stats, len(convolutions), predict_tiled(g, x, blend=2, progress=False, **geometry)
    (plain, plain_convs, plain_out), (kept, kept_convs, kept_out) = runs.values()
    assert len(plain) == len(kept) == 5
    for module, (mean, var) in plain.items():
        assert torch.equal(kept[module][0], mean) and torch.equal(kept[module][1], var)
    assert np.abs(kept_out - plain_out).max() <= 1e-6
    # convolutions of statistics and output: measured 335 against 552 (statistics alone: 119 against 336)
    assert kept_convs < 0.7 * plain_convs


def test_whole_volume_confocal_is_the_plain_forward_pass():
    torch.manual_seed(1)
    g = WFConGenerator(width_multiplier=0.125).eval()  # the shipped architecture (depth 4), narrower
    x = _random_volume((8, 32, 48))
    model = _tiny_wfcon(g, (48, 256, 256), (8, 32, 32), (4, 16, 16))  # the shipped geometry: one tile
    out = confocal(x, model=model, device="cpu", progress=False)
    whole = np.clip(_plain_forward(g, x), 0, 1)
    assert np.abs(out - whole).max() < 1e-4  # measured 5e-7; 0.61 with reflected context (before)
    assert 0.05 < whole.mean() < 0.95 and whole.std() > 1e-3  # not all clipped


def test_confocal_denormalise_follows_the_input_scale():
    torch.manual_seed(2)
    g = WFConGenerator(width_multiplier=0.125, depth=1, pool_z_levels=1).eval()
    model = _tiny_wfcon(g, (48, 256, 256), (0, 0, 0), (0, 0, 0))
    x = np.random.default_rng(3).gamma(2.0, 50.0, (8, 16, 16)).astype(np.float32) + 300  # camera-like counts
    lo, hi = np.percentile(x, model.config.data.norm_percentiles)
    y = confocal(x, model=model, device="cpu", progress=False)
    camera = confocal(x, model=model, denormalise=True, device="cpu", progress=False)
    np.testing.assert_allclose(camera, y * (hi - lo) + lo, rtol=1e-6)
    assert camera.max() - camera.min() > 0.2 * (hi - lo)
    scaled = confocal(10 * x + 100, model=model, denormalise=True, device="cpu", progress=False)
    np.testing.assert_allclose(scaled, 10 * camera + 100, rtol=0, atol=1e-3 * 10 * (hi - lo))


@pytest.mark.slow
def test_confocal_interpolates_coarse_z_steps(trained):
    folder, out, _ = trained
    wf = io.read(folder / "widefield" / "f3.ome.tif").data
    assert confocal(wf[::2], model=out, z_step_um=1.0, device="cpu", progress=False).shape == (15, 32, 32)
    with pytest.raises(InputError, match="z_step_um"):
        W.confocal(wf, model=out, z_step_um=0.0, progress=False)


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.slow
def test_cli_confocal_and_bad_inputs(trained, tmp_path):
    folder, model, _ = trained
    stack = folder / "widefield" / "f3.ome.tif"
    out = tmp_path / "out.ome.tif"
    assert run(["confocal", stack, "-o", out, "--model", model, "--device", "cpu"]) == 0
    image = io.read(out)
    assert image.data.shape == (16, 32, 32) and image.spacing_zyx == pytest.approx((0.5, 0.1, 0.1))
    for argv, message in (
        (["confocal", tmp_path / "missing.tif", "-o", tmp_path / "a.ome.tif", "--model", model], "file not found"),
        (["confocal", stack, "-o", tmp_path / "a.xyz", "--model", model], "unknown image extension"),
        (["confocal", stack, "-o", tmp_path / "a.ome.tif", "--model", "no-such-model"], "no such directory"),
        (["confocal", stack, "-o", tmp_path / "a.ome.tif", "--model", folder], "not a model directory"),
    ):
        assert run(argv) == 2
        assert not (tmp_path / "a.ome.tif").exists() and not (tmp_path / "a.xyz").exists()
    plane = tmp_path / "plane.ome.tif"
    io.write(plane, io.Image(np.ones((2, 8, 8), np.float32), "CYX"))
    assert run(["confocal", plane, "-o", tmp_path / "a.ome.tif", "--model", model]) == 2
    assert not (tmp_path / "a.ome.tif").exists()


@pytest.mark.slow
def test_confocal_denormalise_returns_the_input_scale(trained, tmp_path):
    folder, out, _ = trained
    model = W.load(out)
    path = folder / "widefield" / "f3.ome.tif"
    stack = io.read(path).data  # counts 50 ... 1050
    lo, hi = np.percentile(stack.astype(np.float32), model.config.data.norm_percentiles)
    y = confocal(stack, model=model, device="cpu", progress=False)
    camera = confocal(stack, model=model, denormalise=True, device="cpu", progress=False)
    assert camera.dtype == np.float32 and 40 < lo < hi < 1100
    np.testing.assert_allclose(camera, y * (hi - lo) + lo, rtol=1e-6)
    assert camera.min() >= lo - 1e-3 and camera.max() > lo + 0.2 * (hi - lo)  # measured: 87 ... 441
    result = tmp_path / "camera.ome.tif"
    assert run(["confocal", path, "-o", result, "--model", out, "--device", "cpu", "--denormalise"]) == 0
    np.testing.assert_allclose(io.read(result).data, camera, rtol=1e-6)


def test_cli_train_errors_leave_nothing(tmp_path, capsys):
    write_pairs(tmp_path / "d", n=2, shape=(6, 32, 32))
    out = tmp_path / "m"
    assert run(["train", "wfcon", "--data", tmp_path / "nope", "-o", out]) == 2
    assert run(["train", "wfcon", "--data", tmp_path / "d", "-o", out, "--perceptual", "vgg"]) == 2
    assert run(["train", "wfcon", "--data", tmp_path / "d", "-o", out]) == 2  # 6 planes < 12-plane crops
    assert "smaller than crop_zyx" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("crop_zyx: [4, 32, 32]\nwidth_multiplier: [1\n")
    assert run(["train", "wfcon", "--data", tmp_path / "d", "-o", out, "--config", tmp_path / "c.yaml"]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_confocal_reads_a_file(trained, tmp_path):
    folder, out, _ = trained
    model = W.load(out)
    path = folder / "widefield" / "f3.ome.tif"
    from_file = confocal(path, model=model, device="cpu", progress=False)
    from_array = confocal(io.read(path).data, model=model, device="cpu", progress=False)
    np.testing.assert_array_equal(from_file, from_array)
