"""Tiled inference equals whole-image inference; blending hides seams; reads and writes go by bands;
bad input is refused."""

import dask.array as da
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import zarr
from scipy.ndimage import gaussian_filter
from torch import nn

from widefield3d.errors import InputError
from widefield3d.nets.unet import UNet
from widefield3d.tiling import predict_tiled


def _net(seed=0, **kwargs) -> UNet:
    torch.manual_seed(seed)
    return UNet(**kwargs)


def _image(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _whole(model: UNet, image: np.ndarray) -> np.ndarray:
    """Untiled reference: reflect-pad by a multiple of the divisor >= receptive radius, one forward pass, crop."""
    d, r = model.downsampling_factor, model.receptive_radius
    lo = -(-r // d) * d
    pads = [(0, 0)] + [(lo, -(-(n + lo + r) // d) * d - n - lo) for n in image.shape[1:]]
    with torch.inference_mode():
        y = model.eval()(torch.from_numpy(np.pad(image, pads, mode="reflect"))[None])[0].numpy()
    f = model.upscale
    return y[(slice(None), *(slice(lo * s, (lo + n) * s) for n, s in zip(image.shape[1:], f)))]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_receptive_radius_is_the_exact_reach(depth):
    """The gradient of an output pixel w.r.t. the input reaches exactly receptive_radius pixels (worst phase)."""
    net = _net(depth=depth, in_channels=1, out_channels=1, width=4)
    x = torch.from_numpy(_image((1, 1, 192, 192))).requires_grad_(True)
    reach = 0
    for phase in range(net.downsampling_factor):
        x.grad = None
        q = 96 + phase
        net(x)[0, 0, q, 96].backward()
        rows = np.nonzero(x.grad[0, 0].abs().sum(1).numpy())[0]
        reach = max(reach, q - rows.min(), rows.max() - q)
    assert reach == net.receptive_radius == {1: 9, 2: 23, 3: 51}[depth]


@pytest.mark.parametrize("halo,blend", [(None, 0), (None, 16), (None, 32), (40, 8)])
def test_tiled_equals_whole_2d(halo, blend):
    net = _net(in_channels=1, out_channels=1, depth=2, width=8)
    image = _image((1, 300, 437))
    tiled = predict_tiled(net, image, tile=128, halo=halo, blend=blend, progress=False)
    assert tiled.shape == (1, 300, 437) and tiled.dtype == np.float32
    assert np.abs(tiled - _whole(net, image)).max() < 1e-5


def test_zero_border_equals_one_plain_pass():
    """border="zeros": the convolutions see zeros beyond the image, as in one pass over the unpadded image."""
    net = _net(in_channels=1, out_channels=1, depth=2, width=8)
    image = _image((1, 120, 172))  # multiples of the divisor 4; 3 x 5 tiles
    with torch.inference_mode():
        plain = net.eval()(torch.from_numpy(image)[None])[0].numpy()
    tiled = predict_tiled(net, image, tile=96, blend=8, border="zeros", progress=False)
    assert np.abs(tiled - plain).max() < 1e-5
    reflected = predict_tiled(net, image, tile=96, blend=8, progress=False)
    assert np.abs(reflected - plain).max() > 1e-3  # reflected context at the border (default): measured 0.02


def test_multichannel_and_upscaled_output():
    net = _net(in_channels=3, out_channels=11, depth=2, width=8, upscale=2)
    image = _image((3, 150, 97), seed=1)
    tiled = predict_tiled(net, image, tile=(96, 112), blend=8, scale=2, batch_size=3, progress=False)
    assert tiled.shape == (11, 300, 194)
    assert np.abs(tiled - _whole(net, image)).max() < 1e-5


@pytest.mark.parametrize("tile", [(32, 48, 48), (64, 48, 48)])  # strips along Z; Z in one window, strips along Y
def test_3d_unet_volume(tile):
    net = _net(in_channels=1, out_channels=2, ndim=3, depth=1, width=4)
    image = _image((1, 20, 70, 90), seed=2)
    tiled = predict_tiled(net, image, tile=tile, blend=4, progress=False)
    assert tiled.shape == (2, 20, 70, 90)
    assert np.abs(tiled - _whole(net, image)).max() < 1e-5


def test_image_smaller_than_halo_uses_repeated_reflection():
    net = _net(in_channels=1, out_channels=1, depth=2, width=4)
    image = _image((1, 5, 7), seed=3)
    assert np.abs(predict_tiled(net, image, progress=False) - _whole(net, image)).max() < 1e-5


def test_zarr_in_zarr_out(tmp_path):
    net = _net(in_channels=1, out_channels=2, depth=2, width=8)
    data = np.random.default_rng(4).integers(0, 4000, size=(1, 260, 300), dtype=np.uint16)
    source = zarr.create_array(store=tmp_path / "in.zarr", shape=data.shape, dtype="uint16", chunks=(1, 64, 64))
    source[:] = data
    target = zarr.create_array(store=tmp_path / "out.zarr", shape=(2, 260, 300), dtype="float32", chunks=(1, 50, 50))
    result = predict_tiled(net, source, tile=96, blend=8, out=target, progress=False)
    assert result is target
    expected = _whole(net, data.astype(np.float32))
    assert np.abs(zarr.open_array(tmp_path / "out.zarr")[:] - expected).max() < 1e-5 * np.abs(expected).max()


def test_dask_input():
    net = _net(in_channels=2, out_channels=1, depth=2, width=8)
    image = _image((2, 200, 170), seed=5)
    tiled = predict_tiled(net, da.from_array(image, chunks=(1, 64, 64)), tile=96, blend=8, progress=False)
    assert np.abs(tiled - _whole(net, image)).max() < 1e-5


class _ReadSpy:
    """Array-like over a numpy array that records how many elements each read returns."""

    def __init__(self, data):
        self.data, self.shape, self.dtype, self.reads = data, data.shape, data.dtype, []

    def __getitem__(self, key):
        self.reads.append(self.data[key].size)
        return self.data[key]


def test_input_is_read_in_bands_and_output_written_in_strips():
    net = _net(in_channels=1, out_channels=1, depth=2, width=4)
    source = _ReadSpy(_image((1, 300, 437), seed=6))
    writes = []

    class WriteSpy(np.ndarray):
        def __setitem__(self, key, value):
            writes.append(np.shape(value))
            super().__setitem__(key, value)

    out = np.zeros((1, 300, 437), np.float32).view(WriteSpy)
    predict_tiled(net, source, tile=128, blend=16, out=out, progress=False)
    # depth 2, halo 23: context 24 before; largest step 64 (24 + 64 + 16 + 23 <= 128) -> ceil((300 - 16) / 64) = 5
    # strips, step balanced to 60 (5 * 60 + 16 >= 300), window 124 (>= 24 + 60 + 16 + 23)
    assert len(source.reads) == len(writes) == 5
    assert max(source.reads) == 124 * 437  # one window-high band of the input at a time
    assert [w[1] for w in writes] == [60] * 5 and {w[2] for w in writes} == {437}
    assert np.abs(np.asarray(out) - _whole(net, source.data)).max() < 1e-5


def test_column_blocks_bound_reads_writes_and_buffers():
    """Strips are split into blocks of ``column_tiles`` tiles: same result, reads, writes and buffers bounded."""
    import tracemalloc

    net = _net(in_channels=1, out_channels=2, depth=2, width=4)
    image = _image((1, 300, 437), seed=8)
    whole_strips = predict_tiled(net, image, tile=128, blend=16, batch_size=2, progress=False)
    source = _ReadSpy(image)
    writes = []

    class WriteSpy(np.ndarray):
        def __setitem__(self, key, value):
            writes.append(np.shape(value))
            super().__setitem__(key, value)

    out = np.zeros((2, 300, 437), np.float32).view(WriteSpy)
    predict_tiled(net, source, tile=128, blend=16, batch_size=2, out=out, progress=False, column_tiles=2)
    np.testing.assert_array_equal(np.asarray(out), whole_strips)  # bit-equal (batches of the same tiles)
    # X: 7 tiles, step 64, window 128 -> blocks of 2, 2, 2, 1 tiles per strip of 5 (step 60, window 124)
    assert len(source.reads) == len(writes) == 5 * 4
    assert max(source.reads) == 124 * (128 + 64)
    assert [w[2] for w in writes[:4]] == [128, 128, 128, 437 - 3 * 128] and {w[1] for w in writes} == {60}

    wide = _image((1, 48, 960), seed=9)
    peaks = []
    for column_tiles in (2, 100):  # two tiles per block, or the whole width (2 strips of 40 tiles)
        target = np.empty((2, 48, 960), np.float32)
        tracemalloc.start()
        predict_tiled(net, wide, tile=48, halo=8, blend=8, out=target, progress=False, column_tiles=column_tiles)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # the numpy buffers (input band, output block, a blend-high carry line) shrink with the block
    assert peaks[0] < 0.5 * peaks[1]  # measured 0.22 MB against 0.82 MB


def test_column_blocks_equal_one_pass_and_hold_one_block_not_the_width():
    """Whole-slide shape (MFPINet-like: RGB in, many channels at 2x out): column blocks of one tile equal one
    whole-image pass to 1e-5, and the numpy working set is one block plus the carry line (``blend`` output rows
    of the full width): doubling the width adds only the carry line's growth."""
    import tracemalloc

    from widefield3d.tiling import _plan_axis

    net = _net(in_channels=3, out_channels=6, depth=2, width=4, upscale=2)
    image = _image((3, 100, 500), seed=11)
    blocked = predict_tiled(net, image, tile=96, blend=8, scale=2, column_tiles=1, progress=False)
    assert np.abs(blocked - _whole(net, image)).max() < 1e-5

    c_out, blend, scale, tile, halo = 6, 8, 2, 96, net.receptive_radius
    peaks = {}
    for width in (400, 800, 1600):  # the first run (not compared) takes the one-time allocations
        wide = _image((3, 100, width), seed=12)
        target = np.empty((c_out, 100 * scale, width * scale), np.float32)
        tracemalloc.start()
        predict_tiled(net, wide, tile=tile, blend=blend, scale=scale, out=target, progress=False, column_tiles=1,
                      batch_size=1)
        peaks[width] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rows, cols = (_plan_axis(a, n, tile, halo, blend, net.downsampling_factor, scale) for a, n in (("Y", 100),
                                                                                                   ("X", 800)))
    assert rows.count > 1 and cols.count > 8  # several strips, many one-tile blocks
    block = c_out * (rows.step + blend) * scale * (cols.step + blend) * scale * 4  # output block (bytes)
    tiles = 3 * rows.window * cols.window * 4 * 3 + c_out * rows.window * cols.window * scale**2 * 4 * 2
    carry = c_out * blend * scale * 800 * scale * 4  # carry line at width 800 (bytes)
    assert peaks[800] < 2 * (block + tiles) + carry  # measured 1.3 MB against a 4.8 MB bound
    assert peaks[1600] - peaks[800] < 1.5 * carry  # the carry line grows by 0.61 MB; a full-width strip by 3.1 MB


class _OneSidedMean(nn.Module):
    """Mean of the 16 x 16 pixels at and below/right of each pixel, zero beyond the input: all context on one side."""

    ndim = 2

    def forward(self, x):
        return F.avg_pool2d(F.pad(x, (0, 15, 0, 15)), 16, stride=1)


def test_blending_hides_seams_when_halo_is_too_small():
    """With halo 2 < radius 15 tiles miss context; blending must turn the resulting steps into smooth errors."""
    model = _OneSidedMean()
    image = (1 + 10 * gaussian_filter(_image((300, 437), seed=7), 8))[None].astype(np.float32)
    with torch.inference_mode():
        truth = model(torch.from_numpy(np.pad(image, ((0, 0), (0, 16), (0, 16)), mode="reflect"))[None])[0].numpy()
    truth = truth[:, :300, :437]
    true_step = max(np.abs(np.diff(truth, axis=a)).max() for a in (1, 2))

    def error_step_and_size(blend):
        error = predict_tiled(model, image, tile=64, halo=2, blend=blend, progress=False) - truth
        error = error[:, :-15, :-15]  # the far border misses context that no neighbouring tile can supply
        return max(np.abs(np.diff(error, axis=a)).max() for a in (1, 2)), np.abs(error).max()

    seam_step, seam_error = error_step_and_size(0)
    blended_step, blended_error = error_step_and_size(16)
    assert seam_step > 5 * true_step  # without blending the missing context shows as steps (seams)
    assert blended_step < 1.5 * true_step  # blended: error changes no faster than the image itself
    assert blended_error < 0.5 * seam_error


def test_cuda_matches_cpu_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    net = _net(in_channels=1, out_channels=1, depth=2, width=8)
    image = _image((1, 300, 437))
    cpu = predict_tiled(net, image, tile=128, progress=False)
    cuda = predict_tiled(net, image, tile=128, device="auto", progress=False)
    half = predict_tiled(net, image, tile=128, device="cuda", amp=True, progress=False)
    assert np.abs(cuda - cpu).max() < 1e-4
    assert np.abs(half - cpu).max() < 1e-2 * np.abs(cpu).max()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(image=np.zeros((1, 4, 64, 64), np.float32)), "axes the model expects"),
        (dict(image=np.zeros((2, 64, 64), np.float32)), "2 channels"),
        (dict(image=np.zeros((1, 64, 64), bool)), "not numeric"),
        (dict(image=np.zeros((1, 64, 64), complex)), "not numeric"),
        (dict(image=[[1.0]]), "must be a numpy, zarr or dask array"),
        (dict(tile=2), "smaller than the network divisor"),
        (dict(tile=64, blend=32), "too small for halo=23, blend=32"),
        (dict(tile=(128,)), "tile=(128,) must be"),
        (dict(halo=-1), "halo=-1 must be"),
        (dict(scale=0), "scale="),
        (dict(scale=2), "pass the model's up-scaling as scale="),
        (dict(batch_size=0), "batch_size=0"),
        (dict(column_tiles=0), "column_tiles=0"),
        (dict(out=np.zeros((1, 64, 65), np.float32)), "out must be a writable array of shape (C_out, 300, 437)"),
        (dict(out_channels=3), "returns 1 channels but 3"),
        (dict(device="tpu"), "device='tpu'"),
        (dict(border="mirror"), "border='mirror' must be 'reflect' or 'zeros'"),
        (dict(border="zeros", model="replicate"), "border='zeros' needs zero-padded convolutions"),
    ],
)
def test_bad_inputs_raise_input_error(kwargs, message):
    net = _net(in_channels=1, out_channels=1, depth=2, width=4)
    if kwargs.get("model") == "replicate":
        net.apply(lambda m: setattr(m, "padding_mode", "replicate") if isinstance(m, nn.Conv2d) else None)
        kwargs = dict(kwargs, model=net)
    kwargs = dict(model=net, image=np.zeros((1, 300, 437), np.float32), progress=False) | kwargs
    with pytest.raises(InputError) as info:
        predict_tiled(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
