"""Block-wise inference on a dask.distributed cluster (widefield3d.distributed, `predict-distributed`): equal to
whole-image inference, pyramid and scale metadata written, bad inputs refused with one line and nothing left."""

import importlib.util
import sys

import numpy as np
import pytest
import torch
import zarr

from conftest import run, write_tiny_deepz

from widefield3d import io, zoo
from widefield3d.distributed import plan_blocks, predict_distributed
from widefield3d.errors import InputError, Widefield3DError
from widefield3d.methods import deepz, mfpi

needs_distributed = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="dask.distributed is not installed (pip install 'widefield3d[distributed]'; `make test` installs it)")
CLUSTER = {"n_workers": 2, "processes": False, "progress": False}  # two worker threads, in-process: no network


@pytest.fixture(scope="module")
def deepz_dir(tmp_path_factory):
    """A random Deep-Z model of width 1/16 (receptive radius 108 px, divisor 16: halo 112 px)."""
    return write_tiny_deepz(tmp_path_factory.mktemp("deepz"))


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    """A 1024 x 1024 wide-field plane (0.325 µm pixels) with bright structures on a noisy background, as OME-Zarr."""
    rng = np.random.default_rng(0)
    data = (rng.random((1024, 1024)) * 100 + 10).astype(np.float32)
    data[200:500, 300:520] += 600
    data[700:760, 40:1000] += 300
    path = tmp_path_factory.mktemp("input") / "plane.ome.zarr"
    io.write(path, io.Image(data, "YX", {"Y": 0.325, "X": 0.325}))
    return path, data


def test_plan_blocks_tile_the_image_and_clip_the_halo():
    blocks = plan_blocks((1000, 700), 512, 112)
    assert [b.core for b in blocks] == [(0, 512, 0, 512), (0, 512, 512, 700), (512, 1000, 0, 512),
                                        (512, 1000, 512, 700)]
    assert [b.crop for b in blocks] == [(0, 624, 0, 624), (0, 624, 400, 700), (400, 1000, 0, 624),
                                        (400, 1000, 400, 700)]
    covered = np.zeros((1000, 700), int)
    for b in blocks:
        y0, y1, x0, x1 = b.core
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()


@needs_distributed
def test_blocks_equal_whole_image_inference(deepz_dir, plane, tmp_path):
    source, data = plane
    out = tmp_path / "refocused.ome.zarr"
    # 2 x 2 blocks of 512 px, each read with a 112 px halo; tile 1024: one network window per block
    result = predict_distributed(deepz_dir, source, out, options={"z": 1.5, "denormalise": False, "tile": 1024},
                                 block=512, **CLUSTER)
    whole = deepz.refocus(data, 1.5, model=deepz_dir, denormalise=False, device="cpu", progress=False, tile=1280)
    assert result.axes == "YX" and result.data.shape == (1024, 1024)
    assert result.spacing_um == pytest.approx({"Y": 0.325, "X": 0.325})
    difference = np.abs(np.asarray(result.data) - whole.data)
    assert difference.max() < 1e-5, difference.max()
    assert np.abs(whole.data).max() > 0.1  # the comparison is not between two near-zero images

    group = zarr.open_group(str(out), mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["s0", "s1", "s2"]
    assert datasets[2]["coordinateTransformations"][0]["scale"] == pytest.approx([1.3, 1.3])
    s0, s1 = np.asarray(group["s0"]), np.asarray(group["s1"])
    np.testing.assert_allclose(s1, s0.reshape(512, 2, 512, 2).mean(axis=(1, 3)), rtol=0, atol=1e-6)
    window = group.attrs["ome"]["omero"]["channels"][0]["window"]
    assert window["min"] == pytest.approx(float(s0.min())) and window["max"] == pytest.approx(float(s0.max()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["refocused.ome.zarr"]


@needs_distributed
def test_mfpi_blocks_scale_2_equal_whole_image(tmp_path):
    torch.manual_seed(3)
    cfg = mfpi.MFPIConfig(network={"width": 1 / 16}, data={"z_step_um": 2.7, "pixel_um": 0.243})
    zoo.write_config(tmp_path / "m", "mfpi", cfg.model_dump(mode="json"))
    zoo.save_weights(tmp_path / "m", mfpi.build_networks(cfg)[0])
    rgb = np.random.default_rng(1).random((3, 320, 640)).astype(np.float32) * 255
    io.write(tmp_path / "rgb.ome.zarr", io.Image(rgb, "CYX", {"Y": 0.486, "X": 0.486}))
    # halo 152 px (receptive radius 146 on the 8 px grid): blocks of 320 px, two side by side
    result = predict_distributed(tmp_path / "m", tmp_path / "rgb.ome.zarr", tmp_path / "planes.ome.zarr", block=320,
                                 options={"tile": 1024}, pyramid=False, **CLUSTER)
    whole = mfpi.multifocal(io.Image(rgb, "CYX", {"Y": 0.486, "X": 0.486}), model=tmp_path / "m", device="cpu",
                            progress=False, tile=1024)
    assert result.axes == whole.axes == "CZYX" and result.data.shape == (3, 11, 640, 1280)
    assert result.spacing_zyx == pytest.approx(whole.spacing_zyx)
    assert result.spacing_zyx == pytest.approx((2.7, 0.243, 0.243))
    assert np.abs(np.asarray(result.data) - whole.data).max() < 1e-5 * 255 / 2  # 1e-5 of the network's [-1, 1]


@needs_distributed
def test_a_failing_block_leaves_no_output(deepz_dir, plane, tmp_path, monkeypatch):
    from widefield3d import distributed

    real = distributed._predict

    def failing(job, model, image):
        if image.data.shape[-1] > 64:  # a block, not the 32 px probe
            raise InputError("block failed on purpose")
        return real(job, model, image)

    monkeypatch.setattr(distributed, "_predict", failing)
    out = tmp_path / "never.ome.zarr"
    with pytest.raises(InputError, match="on purpose"):
        predict_distributed(deepz_dir, plane[0], out, block=512, **CLUSTER)
    assert list(tmp_path.iterdir()) == []


def test_without_dask_distributed_one_line(deepz_dir, plane, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(Widefield3DError, match=r"widefield3d\[distributed\]"):
        predict_distributed(deepz_dir, plane[0], tmp_path / "out.ome.zarr", block=512, **CLUSTER)
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_inputs_one_line_exit_2(deepz_dir, plane, tmp_path, capsys):
    source = plane[0]
    exists = tmp_path / "exists.ome.zarr"
    exists.mkdir()
    out = tmp_path / "out.ome.zarr"
    cases = [
        ([tmp_path / "missing.ome.zarr", "-o", out, "--model", deepz_dir], "file not found"),
        ([source, "-o", out, "--model", "no-such-model"], "no-such-model"),
        ([source, "-o", out, "--model", deepz_dir, "--block", "160"], "--block=160: smaller than twice the halo"),
        ([source, "-o", out, "--model", deepz_dir, "--block", "500"], "multiple of the network's divisor 16"),
        ([source, "-o", exists, "--model", deepz_dir], "exists"),
        ([source, "-o", tmp_path / "out.tif", "--model", deepz_dir], "writes OME-Zarr"),
        ([source, "-o", out, "--model", "wfcon-60x14-tissue"], "cannot run block-wise"),
        ([source, "-o", out, "--model", deepz_dir, "--scheduler", "nonsense://host"], "--scheduler"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert run(["predict-distributed", *argv]) == 2, argv
        message = capsys.readouterr().err.strip()
        assert words in message and "\n" not in message, (argv, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.ome.zarr"]
    assert list(exists.iterdir()) == []


def test_options_that_break_blocks_are_refused(deepz_dir, plane, tmp_path):
    for options, words in [({"tilt_deg": 5.0}, "placed relative to the whole image"),
                           ({"device": "cpu"}, "set by predict_distributed"),
                           ({"halo": 10}, "not an option of refocus")]:
        with pytest.raises(InputError, match=words):
            predict_distributed(deepz_dir, plane[0], tmp_path / "o.ome.zarr", options=options, **CLUSTER)
    assert list(tmp_path.iterdir()) == []


@needs_distributed
def test_cli_on_a_local_cluster_of_processes(deepz_dir, tmp_path, capsys):
    """The command's own LocalCluster: one worker process on 127.0.0.1 that loads the model itself."""
    rng = np.random.default_rng(2)
    data = (rng.random((256, 256)) * 50 + 10).astype(np.float32)
    data[60:140, 100:200] += 400
    io.write(tmp_path / "in.ome.zarr", io.Image(data, "YX", {"Y": 0.5, "X": 0.5}))
    out = tmp_path / "stack.ome.zarr"
    argv = ["predict-distributed", tmp_path / "in.ome.zarr", "-o", out, "--model", deepz_dir, "--z", "-1:1:1",
            "--block", "256", "--workers", "1", "--no-pyramid"]
    assert run(argv) == 0
    assert "wrote" in capsys.readouterr().err
    result = io.read(out)
    whole = deepz.refocus(data, [-1.0, 0.0, 1.0], model=deepz_dir, device="cpu", progress=False)
    assert result.axes == "ZYX" and result.data.shape == (3, 256, 256)
    assert result.spacing_um == pytest.approx({"Z": 1.0, "Y": 0.5, "X": 0.5})
    span = float(whole.data.max() - whole.data.min())
    assert np.abs(result.data - whole.data).max() < 1e-5 * span  # other torch threads: float rounding only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.ome.zarr", "stack.ome.zarr"]
