"""The command line end to end on small simulated data, and its one-line errors (exit status 2)."""

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import one_line_error, run

from widefield3d import io, zoo
from widefield3d.errors import InputError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))



def test_simulate_psf_sample_acquire_evaluate(tmp_path, capsys):
    psf = tmp_path / "psf.ome.tif"
    assert run(["simulate", "psf", "-o", psf, "--na", "0.75", "--dxy", "0.1", "--dz", "0.5", "--shape", "5,33,33"]) == 0
    with tifffile.TiffFile(psf) as tif:
        assert tif.series[0].shape == (5, 33, 33)
    truth = tmp_path / "beads.ome.tif"
    assert run(["simulate", "sample", "--kind", "beads", "-o", truth, "--shape", "12,64,64",
                "--spacing", "0.5,0.1625,0.1625", "--seed", "1"]) == 0
    out = tmp_path / "stack.ome.tif"
    assert run(["simulate", "acquire", truth, "-o", out, "--preset", "deepz-20x075", "--z", "1:5:1",
                "--photons", "500"]) == 0
    stack = io.read(out)
    clean = io.read(tmp_path / "stack_clean.ome.tif")
    gt = io.read(tmp_path / "stack_truth.ome.tif")
    assert stack.data.shape == clean.data.shape == gt.data.shape == (5, 32, 32)
    assert stack.spacing_um["X"] == pytest.approx(0.325) and stack.spacing_um["Z"] == pytest.approx(1.0)
    csv_path = tmp_path / "m.csv"
    assert run(["evaluate", tmp_path / "stack_clean.ome.tif", tmp_path / "stack_clean.ome.tif", "--per-plane",
                "-o", csv_path]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 6 and float(rows[0]["ssim"]) == pytest.approx(1.0) and float(rows[0]["mae"]) == 0.0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["info", "missing.tif"], "missing.tif"),
        (["simulate", "sample", "--kind", "unicorns", "-o", "x.ome.tif"], "unknown sample"),
        (["simulate", "psf", "-o", "p.ome.tif", "--shape", "4,33,33"], "odd"),
        (["simulate", "psf", "-o", "p.ome.tif", "--na", "1.2"], "immersion"),
        (["simulate", "dataset", "--preset", "nope", "-o", "d"], "unknown dataset preset"),
        (["simulate", "psf", "-o", "p.xyz"], "xyz"),
        (["simulate", "acquire", "missing.ome.tif", "-o", "p.ome.tif", "--z", "1"], "missing.ome.tif"),
        (["simulate", "acquire", "missing.ome.tif", "-o", "p.ome.tif", "--z", "5:1:1"], "START:STOP:STEP"),
        (["train", "wfcon", "--data", ".", "-o", "p.model", "--init", "wfcon-60x14-tissue"], "differs"),
        (["train", "mfpi", "--data", ".", "-o", "p.model", "--init", "deepz-20x075"], "for 'mfpi'"),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    one_line_error(capsys, words)
    assert not any(p.name.startswith("p.") for p in tmp_path.iterdir())


def test_init_ignores_the_discriminator_settings(tmp_path):
    """A fine-tune starts its discriminator afresh, so ``--init`` accepts a run whose discriminator differs."""
    from widefield3d.methods import deepz
    from widefield3d.verbs._training_options import check_init

    shipped = deepz.DeepZConfig.validated(zoo.read_config(zoo.resolve_model("deepzplus-63x14-confocal", "deepz")), "")
    network = shipped.network.model_copy(update={"discriminator_bias_init": 0.0, "discriminator_width": 0.25})
    check_init(shipped.model_copy(update={"network": network, "trainer": shipped.trainer.model_copy(
        update={"init_from": "deepzplus-63x14-confocal"})}))
    wider = shipped.network.model_copy(update={"width": 0.5})
    with pytest.raises(InputError, match="differs"):
        check_init(shipped.model_copy(update={"network": wider, "trainer": shipped.trainer.model_copy(
            update={"init_from": "deepzplus-63x14-confocal"})}))


def test_evaluate_refuses_shape_mismatch(tmp_path, capsys):
    io.write(tmp_path / "a.npy", io.Image(np.zeros((4, 8), np.float32), axes="YX", spacing_um={}))
    io.write(tmp_path / "b.npy", io.Image(np.zeros((4, 9), np.float32), axes="YX", spacing_um={}))
    assert run(["evaluate", tmp_path / "a.npy", tmp_path / "b.npy"]) == 2
    assert "shape" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# the error contract: usage errors, Ctrl-C (issue 14, items 0 and 1)


def test_no_arguments_shows_the_help(capsys):
    assert run([]) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Usage" in text and "refocus" in text and "simulate" in text and "Traceback" not in text


@pytest.mark.parametrize(
    "argv, words",
    [
        (["unknown-verb"], "No such command 'unknown-verb'"),
        (["refocus", "--bogus"], "No such option: --bogus"),
        (["refocus", "p.tif", "-o", "x.tif", "--modle", "m"], "--model"),  # click's "did you mean"
        (["simulate", "psf", "-o", "p.ome.tif", "--na", "abc"], "'--na'"),
        (["simulate"], "psf"),  # a group without its command: its help
    ],
)
def test_usage_errors_are_clicks_short_message_and_exit_2(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert words in text and "Traceback" not in text
    if argv != ["simulate"]:
        assert text.count("Usage:") == 1 and len([line for line in text.splitlines() if line.strip()]) <= 4, text
    assert not list(tmp_path.iterdir())


def _interrupt(*args, **kwargs):
    """What Ctrl-C does: SIGINT, which Python's default handler turns into KeyboardInterrupt."""
    import signal

    # a shell starts background jobs with SIGINT ignored; a user's terminal has Python's default handler
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.raise_signal(signal.SIGINT)
    raise AssertionError("SIGINT did not interrupt")


def test_ctrl_c_exits_130_with_one_line(tmp_path, monkeypatch, capsys):
    import widefield3d.optics.psf

    monkeypatch.setattr(widefield3d.optics.psf, "psf", _interrupt)
    assert run(["simulate", "psf", "-o", tmp_path / "p.ome.tif", "--shape", "5,33,33"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert not list(tmp_path.iterdir())


def test_ctrl_c_while_writing_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    import tifffile as tf

    def half_written(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00partial")
        _interrupt()

    monkeypatch.setattr(tf, "imwrite", half_written)
    assert run(["simulate", "sample", "--kind", "beads", "-o", tmp_path / "s.ome.tif", "--shape", "4,32,32"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"
    assert not list(tmp_path.iterdir())  # neither the output nor its hidden temporary


def test_ctrl_c_during_training_exits_130(tmp_path, monkeypatch, capsys):
    """The trainer writes its checkpoint and re-raises KeyboardInterrupt; the command line turns it into 130."""
    import widefield3d.methods.deepz

    (tmp_path / "data").mkdir()
    monkeypatch.setattr(widefield3d.methods.deepz, "train", _interrupt)
    assert run(["train", "deepz", "--data", tmp_path / "data", "-o", tmp_path / "model"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"


# ---------------------------------------------------------------------------------------------------------------
# checks before any work: the input is never the output, the output location, the size (issue 14, items 2-4)


def _tree(folder):
    """Every file under ``folder`` with its bytes, to show that nothing changed."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_work(*args, **kwargs):
    raise AssertionError("the command started its work before checking its arguments")


@pytest.fixture()
def plane_files(tmp_path):
    plane = io.Image(np.random.default_rng(0).random((16, 16), dtype=np.float32), "YX", {"Y": 0.325, "X": 0.325})
    stack = io.Image(np.random.default_rng(1).random((4, 16, 16), dtype=np.float32), "ZYX", (0.5, 0.1625, 0.1625))
    for name, image in (("p.ome.tif", plane), ("p.ome.zarr", plane), ("p.tif", plane), ("s.ome.tif", stack),
                        ("s.ome.zarr", stack), ("s_truth.ome.tif", stack)):
        io.write(tmp_path / name, image)
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["refocus", "p.ome.tif", "-o", "p.ome.tif", "--model", "deepz-20x075", "--z", "1"],
        ["refocus", "p.ome.zarr", "-o", "./p.ome.zarr/", "--model", "deepz-20x075", "--z", "1"],
        ["refocus", "p.tif", "-o", "p.ome.tif", "--model", "deepz-20x075", "--z", "1", "--dpm", "p.ome.tif"],
        ["refocus", "p.ome.tif", "-o", "p.ome.tif", "--model", "deepz-20x075", "--z", "-1:1:1", "--mip"],
        ["confocal", "s.ome.tif", "-o", "s.ome.tif"],
        ["confocal", "s.ome.zarr", "-o", "s.ome.zarr"],
        ["multifocal", "s.ome.zarr", "-o", "s.ome.zarr"],
        ["reconstruct", "s.ome.tif", "-o", "s.ome.tif"],
        ["simulate", "acquire", "s.ome.tif", "-o", "s.ome.tif", "--z", "1"],
        ["simulate", "acquire", "s_truth.ome.tif", "-o", "s.ome.tif", "--z", "1"],  # OUT_truth is the input
        ["evaluate", "s.ome.tif", "s_truth.ome.tif", "-o", "s.ome.tif"],
    ],
)
def test_output_equal_to_input_is_refused_before_any_work(plane_files, monkeypatch, capsys, argv):
    import widefield3d.methods.deepz
    import widefield3d.methods.mfpi
    import widefield3d.methods.volume
    import widefield3d.methods.wfcon

    for module in (widefield3d.methods.deepz, widefield3d.methods.wfcon, widefield3d.methods.mfpi):
        monkeypatch.setattr(module, "load", _no_work)
    monkeypatch.setattr(widefield3d.methods.volume, "reconstruct", _no_work)
    monkeypatch.chdir(plane_files)
    before = _tree(plane_files)
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert ("input" in err or ".csv" in err) and "Traceback" not in err
    assert _tree(plane_files) == before


def test_output_under_a_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import widefield3d.sim.samples

    monkeypatch.setattr(widefield3d.sim.samples, "make_sample", _no_work)
    (tmp_path / "notes.txt").write_text("a file")
    assert run(["simulate", "sample", "--kind", "beads", "-o", tmp_path / "notes.txt" / "s.ome.tif"]) == 2
    err = capsys.readouterr().err.strip()
    assert "notes.txt is a file, not a folder" in err and len(err.splitlines()) == 1


def test_read_only_output_folder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import os

    import widefield3d.optics.psf

    monkeypatch.setattr(widefield3d.optics.psf, "psf", _no_work)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != locked and real_access(p, mode, **kw))
    assert run(["simulate", "psf", "-o", locked / "sub" / "p.ome.tif"]) == 2  # a missing folder: its parent counts
    err = capsys.readouterr().err.strip()
    assert f"the folder {locked} is not writable" in err and len(err.splitlines()) == 1
    assert not list(locked.iterdir())


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes to read-only folders")
def test_read_only_output_folder_really_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert run(["simulate", "psf", "-o", locked / "p.ome.tif", "--shape", "3,9,9"]) == 2
    finally:
        locked.chmod(0o755)
    assert "not writable" in capsys.readouterr().err


def test_os_errors_during_the_work_are_one_line(tmp_path, monkeypatch, capsys):
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(io, "write", refuse)
    assert run(["simulate", "sample", "--kind", "beads", "-o", tmp_path / "s.ome.tif", "--shape", "4,32,32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 's.ome.tif'}: Permission denied"


def test_memory_error_is_one_line(tmp_path, monkeypatch, capsys):
    import widefield3d.sim.samples

    def too_big(*args, **kwargs):
        raise MemoryError("Unable to allocate 373. GiB for an array with shape (1000, 10000, 10000)")

    monkeypatch.setattr(widefield3d.sim.samples, "make_sample", too_big)
    assert run(["simulate", "sample", "--kind", "beads", "-o", tmp_path / "s.ome.tif", "--shape", "4,32,32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: not enough memory") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["simulate", "sample", "--kind", "beads", "-o", "s2.ome.tif", "--shape", "1000,10000,10000"], "--shape"),
        (["simulate", "psf", "-o", "p.ome.tif", "--shape", "2001,2049,2049"], "--shape"),
        (["simulate", "acquire", "s.ome.tif", "-o", "a.ome.tif", "--z", "0:1999:1"], "s.ome.tif"),
        (["refocus", "p.ome.tif", "-o", "v.ome.tif", "--model", "deepz-20x075", "--z", "0:1999:1"], "p.ome.tif"),
    ],
)
def test_work_larger_than_memory_is_refused_before_any_work(plane_files, monkeypatch, capsys, argv, words):
    import widefield3d.checks
    import widefield3d.methods.deepz
    import widefield3d.optics.psf
    import widefield3d.sim.acquisition
    import widefield3d.sim.samples

    monkeypatch.setattr(widefield3d.checks, "available_memory", lambda: 2**20)  # 1 MiB
    for module, name in ((widefield3d.sim.samples, "make_sample"), (widefield3d.optics.psf, "psf"),
                         (widefield3d.sim.acquisition, "acquire"), (widefield3d.methods.deepz, "load")):
        monkeypatch.setattr(module, name, _no_work)
    monkeypatch.chdir(plane_files)
    before = _tree(plane_files)
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "1 MiB is available" in err and "--allow-large" in err and len(err.splitlines()) == 1
    assert _tree(plane_files) == before


def test_allow_large_skips_the_size_checks(tmp_path, monkeypatch):
    import widefield3d.checks

    monkeypatch.setattr(widefield3d.checks, "available_memory", lambda: 1024)
    out = tmp_path / "s.ome.tif"
    assert run(["simulate", "sample", "--kind", "beads", "-o", out, "--shape", "4,32,32"]) == 2
    assert run(["simulate", "sample", "--kind", "beads", "-o", out, "--shape", "4,32,32", "--allow-large"]) == 0
    assert io.read(out, lazy=True).data.shape == (4, 32, 32)


@pytest.mark.parametrize("z", ["nan:1:1", "0:inf:1", "-10:10:0.0001"])
@pytest.mark.parametrize("verb", ["refocus", "acquire"])
def test_bad_z_ranges_are_one_line_before_any_work(plane_files, monkeypatch, capsys, z, verb):
    import widefield3d.methods.deepz
    import widefield3d.sim.acquisition

    monkeypatch.setattr(widefield3d.methods.deepz, "load", _no_work)
    monkeypatch.setattr(widefield3d.sim.acquisition, "acquire", _no_work)
    monkeypatch.chdir(plane_files)
    argv = (["refocus", "p.ome.tif", "-o", "v.ome.tif", "--model", "deepz-20x075", f"--z={z}"] if verb == "refocus"
            else ["simulate", "acquire", "s.ome.tif", "-o", "a.ome.tif", f"--z={z}"])
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--z" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (plane_files / "v.ome.tif").exists() and not (plane_files / "a.ome.tif").exists()


def test_half_written_ome_zarr_is_one_line(tmp_path, capsys):
    path = io.write(tmp_path / "a.ome.zarr", io.Image(np.zeros((2, 8, 8), np.float32), "ZYX"), chunks=(1, 8, 8))
    next(p for p in (path / "s0" / "c").rglob("*") if p.is_file()).unlink()
    assert run(["confocal", path, "-o", tmp_path / "c.ome.tif"]) == 2
    err = capsys.readouterr().err.strip()
    assert "a.ome.zarr: incomplete OME-Zarr" in err and len(err.splitlines()) == 1


def test_warnings_and_errors_are_one_line_each(tmp_path, capsys):
    """A warning is one line too, and file names with brackets are printed as they are."""
    import tifffile as tf

    path = io.write(tmp_path / "[red]c.ome.tif", io.Image(np.ones((3, 8, 8), np.float32), "CYX"))
    with tf.TiffFile(path) as tif:
        xml = tif.ome_metadata
    tf.tiffcomment(path, xml.replace('SizeC="3"', 'SizeC="1"').replace('SizeZ="1"', 'SizeZ="3"').encode("utf-8"))
    assert run(["info", path]) == 0
    lines = capsys.readouterr().err.strip().splitlines()  # the record's axes, and no pixel size for the new Z axis
    assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines), lines
    assert "[red]c.ome.tif: the widefield3d record says axes 'CYX'" in lines[0] and "for Z" in lines[1]
    assert run(["info", tmp_path / "[red]missing.tif"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / '[red]missing.tif'}: file not found"


def test_interrupted_acquisition_set_lacks_its_main_file(plane_files, monkeypatch, capsys):
    """simulate acquire writes OUT last (and removes an old OUT first): OUT without _clean/_truth cannot happen,
    and an interrupted run cannot leave an old OUT beside new companions (issue 14, item 7)."""
    out = plane_files / "acq.ome.tif"
    argv = ["simulate", "acquire", plane_files / "s.ome.tif", "-o", out, "--z", "0:1:0.5", "--preset", "deepz-20x075"]
    assert run(argv) == 0
    real_write = io.write

    def interrupted(path, image, **kwargs):
        if Path(path) == out:
            _interrupt()
        return real_write(path, image, **kwargs)

    monkeypatch.setattr(io, "write", interrupted)
    assert run(argv) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"
    assert not out.exists() and (plane_files / "acq_truth.ome.tif").exists()
    assert not [p for p in plane_files.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("method", ["deepz", "mfpi", "wfcon"])
def test_training_output_is_checked_before_the_data_are_prepared(tmp_path, monkeypatch, capsys, method):
    """The 'checkpoint exists' refusal used to come after data preparation (issue 14, item 9)."""
    import importlib

    module = importlib.import_module(f"widefield3d.methods.{method}")
    monkeypatch.setattr(module, "train", _no_work)
    (tmp_path / "data").mkdir()
    model = tmp_path / "model"
    model.mkdir()
    (model / "checkpoint.pt").write_bytes(b"an earlier run")
    assert run(["train", method, "--data", tmp_path / "data", "-o", model]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {model / 'checkpoint.pt'}: exists; pass --resume or choose another directory"
    (tmp_path / "file").write_text("x")
    assert run(["train", method, "--data", tmp_path / "data", "-o", tmp_path / "file"]) == 2
    assert "is a file; give a folder name" in capsys.readouterr().err


def test_info_says_when_the_pixel_size_is_unknown(tmp_path, capsys):
    np.save(tmp_path / "raw.npy", np.ones((6, 8), np.float32))
    assert run(["info", tmp_path / "raw.npy"]) == 0
    captured = capsys.readouterr()
    expected = f"warning: {tmp_path / 'raw.npy'}: no pixel size for Y, X in the file; taken as 1 µm"
    assert captured.err.strip() == expected
    assert "Y=1 µm, X=1 µm" in captured.out


# ---------------------------------------------------------------------------------------------------------------
# issue 14, should fix: messages name the file, bad numbers, single planes, odd intensities


@pytest.fixture()
def odd_files(tmp_path):
    spacing = {"Y": 0.325, "X": 0.325}
    io.write(tmp_path / "const.ome.tif", io.Image(np.full((32, 32), 5, np.float32), "YX", spacing))
    io.write(tmp_path / "neg.ome.tif", io.Image(-1 - np.random.default_rng(0).random((32, 32), np.float32), "YX",
                                                spacing))
    io.write(tmp_path / "u64.ome.zarr", io.Image(np.arange(32 * 32, dtype=np.uint64).reshape(32, 32), "YX", spacing))
    io.write(tmp_path / "tzyx.ome.tif", io.Image(np.ones((2, 3, 16, 16), np.float32), "TZYX", (1, 0.1, 0.1)))
    io.write(tmp_path / "focal.ome.tif", io.Image(np.full((3, 16, 16), 100.0, np.float32), "ZYX", (1, 0.9, 0.9)))
    return tmp_path


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["refocus", "const.ome.tif", "-o", "r.ome.tif", "--model", "deepz-20x075", "--z", "1"],
         "const.ome.tif: the image is constant"),  # was "reference: the image is constant"
        (["beads", "const.ome.tif", "-o", "b.csv", "--threshold", "nan"], "--threshold: must be a finite number"),
        (["beads", "tzyx.ome.tif", "-o", "b.csv"], "tzyx.ome.tif: expects one plane (YX) or one z-stack (ZYX)"),
        (["reconstruct", "focal.ome.tif", "-o", "r.ome.tif", "--na", "0"], "--na: must be > 0"),
        (["reconstruct", "focal.ome.tif", "-o", "r.ome.tif"], "focal.ome.tif: values in [100, 100]"),
        (["confocal", "const.ome.tif", "-o", "c.ome.tif"], "const.ome.tif: needs a z-stack"),
    ],
)
def test_should_fix_messages(odd_files, monkeypatch, capsys, argv, expected):
    import widefield3d.methods.wfcon

    monkeypatch.setattr(widefield3d.methods.wfcon, "load", _no_work)
    monkeypatch.chdir(odd_files)
    before = _tree(odd_files)
    assert run(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: {expected}"), lines
    assert _tree(odd_files) == before


@pytest.mark.parametrize("name, expected", [("neg.ome.tif", "most pixels are negative"),
                                            ("u64.ome.zarr", "uint64 values are converted to float32")])
def test_refocus_says_when_an_image_does_not_look_like_intensities(odd_files, monkeypatch, capsys, name, expected):
    import widefield3d.methods.deepz

    def stop(*args, **kwargs):
        raise InputError("stopped before loading the model")

    monkeypatch.setattr(widefield3d.methods.deepz, "load", stop)
    assert run(["refocus", odd_files / name, "-o", odd_files / "r.ome.tif", "--model", "m", "--z", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: {odd_files / name}: {expected}" + err[0].split(expected, 1)[1],
                   "error: stopped before loading the model"]


def test_refocus_warns_when_the_pixel_size_is_not_the_models(odd_files, monkeypatch, capsys):
    from types import SimpleNamespace

    import widefield3d.methods.deepz

    def stop(*args, **kwargs):
        raise InputError("stopped before refocusing")

    monkeypatch.setattr(widefield3d.methods.deepz, "load", lambda name: SimpleNamespace(pixel_um=0.65, path="m"))
    monkeypatch.setattr(widefield3d.methods.deepz, "refocus", stop)
    assert run(["refocus", odd_files / "const.ome.tif", "-o", odd_files / "r.ome.tif", "--model", "m", "--z", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"warning: {odd_files / 'const.ome.tif'}: pixel size 0.325 µm differs from the 0.65 µm "
                             "that m was trained on by 50%") and err[1] == "error: stopped before refocusing"
