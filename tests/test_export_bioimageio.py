"""`widefield3d export bioimageio`: packages of tiny models pass bioimage.io's test and reproduce widefield3d's
predict functions (torchscript without widefield3d), on inputs of other sizes too; bad inputs fail with one line
and leave no file.

Offline: the packages hold no URLs or GitHub names, and every description is loaded from a local path.
"""

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import one_line_error, run, write_tiny_deepz

from widefield3d import zoo

pytestmark = [pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")]  # shape checks at trace time
NEEDS_BIOIMAGEIO = pytest.mark.skipif(
    importlib.util.find_spec("bioimageio.core") is None,
    reason="bioimageio.core is not installed (the bioimageio extra: pip install -e '.[bioimageio]', as make test does)")


@pytest.fixture(autouse=True)
def _offline_and_private(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BIOIMAGEIO_CACHE_PATH", str(tmp_path / "bioimageio-cache"))
    monkeypatch.setenv("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")  # the package's own test still checks its files


# ---------------------------------------------------------------------------------------------------------------
# tiny models (random weights: the export is judged on reproducing widefield3d, not on quality)


def _save(folder: Path, module, config) -> Path:
    zoo.write_config(folder, config.method, config.model_dump(mode="json"))
    zoo.save_weights(folder, module)
    return folder


def tiny_film_deepz(folder: Path) -> Path:
    """As conftest's ``write_tiny_deepz``, with the DPM also modulating every block (FiLM), range +-4 µm."""
    import torch

    from widefield3d.methods import deepz

    config = deepz.Config(description="tiny Deep-Z, FiLM (tests)", provenance={"pixel_um": 0.5},
                          network={"width": 0.04, "discriminator_width": 0.04, "conditioning": "film"},
                          data={"range_um": 4.0})
    torch.manual_seed(0)
    return _save(folder, deepz.build_networks(config)[0], config)


def tiny_mfpi(folder: Path, global_skip: bool = False) -> Path:
    import torch

    from widefield3d.methods import mfpi

    config = mfpi.Config(description="tiny MFPINet (tests)", network={"planes": 3, "channels": 3, "width": 0.0625,
                                                                      "global_skip": global_skip},
                         data={"pixel_um": 0.25, "z_step_um": 2.0})
    torch.manual_seed(0)
    generator = mfpi.build_networks(config)[0]
    if global_skip:  # a residual that is not zero, so both branches are compared
        torch.nn.init.normal_(generator.srr[-1].weight, std=0.05)
    return _save(folder, generator, config)


def tiny_wfcon(folder: Path, kind: str = "3d") -> Path:
    import torch

    from widefield3d.methods import wfcon

    config = wfcon.Config(description="tiny WFCON-Net (tests)", provenance={"pixel_um": 0.1},
                          network={"kind": kind, "width_multiplier": 0.125, "depth": 2, "pool_z_levels": 1,
                                   "discriminator_width_multiplier": 0.0625, "tile_zyx": (32, 128, 128),
                                   "halo_zyx": (2, 8, 8), "blend_zyx": (1, 4, 4)},
                          data={"crop_zyx": (4, 16, 16), "z_step_um": 0.5})
    torch.manual_seed(0)
    return _save(folder, wfcon.build_networks(config)[0], config)


def _rdf(package: Path) -> dict:
    with zipfile.ZipFile(package) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def _passes_bioimageio_test(package: Path, weight_format: str = "torchscript") -> None:
    """The written zip itself (not only the description the export tested in memory) passes bioimageio.core's test
    (one weight format: the export tested both)."""
    from bioimageio.core import test_model

    summary = test_model(package.resolve(), weight_format=weight_format)  # a local path: never looked up online
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", failed


def _valid(package: Path) -> None:
    """The written zip is a valid bioimage.io description (format and file hashes; no inference)."""
    from bioimageio.spec import load_description

    descr = load_description(package.resolve(), perform_io_checks=True)
    assert descr.validation_summary.status == "valid-format", descr.validation_summary.format()


TORCHSCRIPT_ALONE = """
import sys
sys.modules["widefield3d"] = None  # the torchscript weights must not need widefield3d
import numpy as np, torch
model = torch.jit.load(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]))
with torch.no_grad():
    np.save(sys.argv[3], model(x).numpy())
"""


def _torchscript(package: Path, x: np.ndarray, tmp_path: Path) -> np.ndarray:
    """The package's ``model.pt`` on ``x`` (already preprocessed), in a Python without widefield3d."""
    with zipfile.ZipFile(package) as z:
        z.extract("model.pt", tmp_path)
    np.save(tmp_path / "x.npy", np.ascontiguousarray(x, np.float32))
    subprocess.run([sys.executable, "-c", TORCHSCRIPT_ALONE, tmp_path / "model.pt", tmp_path / "x.npy",
                    tmp_path / "y.npy"], check=True, capture_output=True)
    return np.load(tmp_path / "y.npy")


def _blobs(shape, seed: int) -> np.ndarray:
    from widefield3d.export._methods import _blobs

    rng = np.random.default_rng(seed)
    return (100 + 900 * _blobs(shape, rng, max(20, int(np.prod(shape) / 400)), 2.0)
            + rng.normal(0, 5, shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# the packaged networks (no bioimage.io needed): widefield3d's predict, in eager mode and as torchscript


def _packaged(kind: str, tmp_path: Path):
    """(packaged network, its input, widefield3d's prediction in the packaged network's units)."""
    from widefield3d.export.packaged import DeepZPackaged, MFPIPackaged, WFConPackaged
    from widefield3d.methods import deepz, mfpi, wfcon
    from widefield3d.prep.normalise import Normalisation

    rng = np.random.default_rng(7)
    if kind == "deepz-film":
        model = deepz.load(tiny_film_deepz(tmp_path / kind))
        net = DeepZPackaged(width=0.04, conditioning="film", z_um=[-1.0, 1.5], range_um=4.0, context=108)
        image = rng.random((40, 56), np.float32)
        expected = deepz.refocus(image, [-1.0, 1.5], model=model, normalisation=Normalisation(0.0, 1.0),
                                 denormalise=False, device="cpu", progress=False).data[None, None]
        x = image[None, None]
    elif kind in ("mfpi", "mfpi-skip"):
        model = mfpi.load(tiny_mfpi(tmp_path / kind, global_skip=kind == "mfpi-skip"))
        net = MFPIPackaged(planes=3, channels=3, width=0.0625, context=146, global_skip=kind == "mfpi-skip")
        image = rng.uniform(0, 255, (3, 20, 28)).astype(np.float32)
        expected = mfpi.multifocal(image, model=model, device="cpu", progress=False).data[None] / 127.5 - 1
        x = (image / 127.5 - 1)[None]
    else:  # the 2D WFCON-Net, plane by plane
        model = wfcon.load(tiny_wfcon(tmp_path / kind, kind="2d"))
        net = WFConPackaged(ndim=2, width_multiplier=0.125, depth=2, context=(0, 0, 0))
        stack = _blobs((3, 24, 40), seed=8)
        expected = wfcon.confocal(stack, model=model, device="cpu", progress=False).data[None, None]
        x = wfcon.normalise(stack)[None, None]
    net.load_state_dict(model.generator.state_dict())
    return net.eval(), x, expected


@pytest.mark.parametrize("kind", ["deepz-film", "mfpi", "mfpi-skip", "wfcon-2d"])
def test_packaged_network_and_its_torchscript_equal_predict(tmp_path, kind):
    import torch

    from widefield3d.export.packaged import torchscript

    net, x, expected = _packaged(kind, tmp_path)
    with torch.no_grad():
        eager = net(torch.from_numpy(x)).numpy()
        scripted = torchscript(net, torch.from_numpy(x[..., :16, :16]).contiguous())(torch.from_numpy(x)).numpy()
    if kind == "wfcon-2d":
        eager, scripted = np.clip(eager, 0, 1), np.clip(scripted, 0, 1)
    assert eager.shape == expected.shape
    np.testing.assert_allclose(eager, expected, atol=1e-5)
    np.testing.assert_allclose(scripted, eager, atol=1e-5)  # traced on another size than it runs on


# ---------------------------------------------------------------------------------------------------------------
# packages


@NEEDS_BIOIMAGEIO
def test_deepz_package_passes_and_reproduces_refocus(tmp_path, capsys):
    from widefield3d.methods.deepz import refocus
    from widefield3d.prep.normalise import Normalisation

    model = write_tiny_deepz(tmp_path / "tiny-deepz")  # range +-10 µm
    out = tmp_path / "pkg" / "deepz.zip"
    assert run(["export", "bioimageio", model, "-o", out, "--z", "-4:4:8", "--author", "Test Author"]) == 0
    assert "wrote" in capsys.readouterr().err and out.is_file()
    assert not [p for p in out.parent.iterdir() if p != out]  # no temporaries left
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
    assert {"rdf.yaml", "model.pt", "weights.pt", "README.md", "config.json", "test_image.npy",
            "test_refocused.npy", "cover.png"} <= names
    rdf = _rdf(out)
    (image,), (refocused,) = rdf["inputs"], rdf["outputs"]
    assert [a.get("halo") for a in refocused["axes"][-2:]] == [112, 112]  # receptive radius 108, divisor 16
    assert image["axes"][-1]["size"] == {"min": 240, "step": 16}  # >= 2 x halo
    assert refocused["axes"][2] == {"type": "space", "id": "z", "size": 2, "scale": 8.0, "unit": "micrometer"}
    architecture = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert architecture["callable"] == "DeepZPackaged" and architecture["kwargs"]["z_um"] == [-4.0, 4.0]
    assert rdf["authors"] == [{"name": "Test Author"}]
    _passes_bioimageio_test(out)

    # another size than the test tensors', through torch alone, against widefield3d's refocus
    scale_range = image["preprocessing"][1]["kwargs"]
    plane = _blobs((256, 272), seed=3)
    low, high = np.percentile(plane, [scale_range["min_percentile"], scale_range["max_percentile"]])
    norm = Normalisation(background=float(low), scale=float(high - low) + float(scale_range["eps"]))
    ours = refocus(plane, [-4.0, 4.0], model=model, normalisation=norm, denormalise=False, device="cpu",
                   progress=False).data
    theirs = _torchscript(out, norm.apply(plane)[None, None], tmp_path)
    assert theirs.shape == (1, 1, 2, 256, 272)
    np.testing.assert_allclose(theirs[0, 0], ours, rtol=1e-4, atol=1e-4 * np.abs(ours).max())


def _exported(tmp_path: Path, write_model, name: str):
    """A tiny model written by ``write_model``, its package, and the package's one input and output description."""
    from widefield3d.export import export_bioimageio

    model = write_model(tmp_path / f"tiny-{name}")
    out = export_bioimageio(model, tmp_path / f"{name}.zip")
    rdf = _rdf(out)
    (tensor_in,), (tensor_out,) = rdf["inputs"], rdf["outputs"]
    return model, out, tensor_in, tensor_out


@NEEDS_BIOIMAGEIO
def test_mfpi_package_passes_and_reproduces_multifocal(tmp_path):
    from widefield3d.methods.mfpi import multifocal

    model, out, lowres, stack = _exported(tmp_path, tiny_mfpi, "mfpi")
    assert [a.get("id", a["type"]) for a in stack["axes"]] == ["batch", "channel", "z", "y", "x"]
    assert stack["axes"][-1]["halo"] == 304 and lowres["axes"][-1]["size"]["min"] == 312  # radius 146 -> 152 in
    assert stack["axes"][1]["channel_names"] == ["red", "green", "blue"]
    _valid(out)
    rng = np.random.default_rng(4)
    image = rng.uniform(0, 255, (3, 40, 56)).astype(np.float32)
    ours = multifocal(image, model=model, device="cpu", progress=False).data
    theirs = _torchscript(out, (image * (2 / 255) - 1)[None], tmp_path)
    np.testing.assert_allclose((theirs[0] + 1) * 127.5, ours, rtol=1e-4, atol=1e-3)


@NEEDS_BIOIMAGEIO
def test_wfcon_package_passes_and_reproduces_confocal(tmp_path):
    from widefield3d.methods.wfcon import confocal, normalise

    model, out, widefield, conf = _exported(tmp_path, tiny_wfcon, "wfcon")
    assert not any("halo" in a for a in conf["axes"])  # instance norms: the stack is passed whole
    assert [p["id"] for p in widefield["preprocessing"]] == ["ensure_dtype", "scale_range", "clip", "ensure_dtype"]
    _passes_bioimageio_test(out, "pytorch_state_dict")
    stack = _blobs((12, 40, 48), seed=5)
    ours = confocal(stack, model=model, device="cpu", progress=False).data
    theirs = _torchscript(out, normalise(stack)[None, None], tmp_path)
    np.testing.assert_allclose(np.clip(theirs[0, 0], 0, 1), ours, atol=1e-4)


@NEEDS_BIOIMAGEIO
@pytest.mark.slow  # about 40 s on 2 busy cores
def test_package_of_a_shipped_model(tmp_path):
    """A shipped Deep-Z+ model with one refocus plane (the smallest shipped export)."""
    from widefield3d.export import export_bioimageio

    out = export_bioimageio("deepzplus-63x14-confocal", tmp_path / "deepzplus.zip", z_um=[1.0])
    rdf = _rdf(out)
    assert rdf["name"] == "widefield3d deepzplus-63x14-confocal"
    assert rdf["cite"][0]["doi"] == "10.1038/s41592-019-0622-5"
    with zipfile.ZipFile(out) as z:
        config = json.loads(z.read("config.json"))
    assert config["network"]["width"] == 0.25 and config["data"]["target"] == "confocal"


# ---------------------------------------------------------------------------------------------------------------
# bad inputs: one line, exit 2, nothing written


@pytest.mark.parametrize(
    "argv, words",
    [
        (["export", "bioimageio", "no-such-model", "-o", "p.zip"], "no such directory or shipped model"),
        (["export", "bioimageio", "deepz-20x075", "-o", "p.tif"], "must be a .zip file"),
        (["export", "bioimageio", "dip-ellipsoid-denoise", "-o", "p.zip"], "cannot be exported"),
        (["export", "bioimageio", "deepz-20x075", "-o", "p.zip", "--z", "1:0:1"], "START:STOP:STEP"),
        (["export", "bioimageio", "deepz-20x075", "-o", "p.zip", "--test-input", "missing.tif"], "missing.tif"),
        pytest.param(["export", "bioimageio", "mfpi-cytology-20x075", "-o", "p.zip", "--z", "1"],
                     "--z: refocus distances apply", marks=NEEDS_BIOIMAGEIO),
        pytest.param(["export", "bioimageio", "deepzplus-63x14-confocal", "-o", "p.zip", "--z", "5"],
                     "--z: DPM spans", marks=NEEDS_BIOIMAGEIO),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    one_line_error(capsys, words)
    assert not list(tmp_path.glob("p.*"))


def test_unwritable_output_path(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert run(["export", "bioimageio", "deepz-20x075", "-o", blocker / "p.zip"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere
            assert run(["export", "bioimageio", "deepz-20x075", "-o", locked / "p.zip"]) == 2
            assert "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


@NEEDS_BIOIMAGEIO
def test_a_package_failing_the_test_is_not_written(tmp_path, monkeypatch, capsys):
    import bioimageio.core

    class Failed:
        status = "failed"
        details = [type("Detail", (), {"status": "failed", "name": "Reproduce test outputs",
                                       "errors": [type("Error", (), {"msg": "outputs differ\nby a lot"})()]})()]

    monkeypatch.setattr(bioimageio.core, "test_model", lambda descr, **kwargs: Failed())
    out = tmp_path / "p.zip"
    out.write_bytes(b"an earlier package")
    assert run(["export", "bioimageio", write_tiny_deepz(tmp_path / "m"), "-o", out, "--z", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "failed bioimage.io's test: Reproduce test outputs: outputs differ by a lot" in err
    assert len(err.splitlines()) == 1
    assert out.read_bytes() == b"an earlier package"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "p.zip"]  # no temporaries


def test_without_bioimageio_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bioimageio.core", None)  # import bioimageio.core raises ImportError
    assert run(["export", "bioimageio", "deepz-20x075", "-o", tmp_path / "p.zip"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'widefield3d[bioimageio]'" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())
