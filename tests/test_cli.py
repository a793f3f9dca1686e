"""The command line end to end on small simulated data, and its one-line errors (exit status 2)."""

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import run

from widefield3d import io
from widefield3d.cli import main, parse_range


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WIDEFIELD3D_CACHE", str(tmp_path / "cache"))



def test_parse_range_is_inclusive():
    np.testing.assert_allclose(parse_range("-1:1:0.5"), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(parse_range("2.5"), [2.5])


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
    ],
)
def test_cli_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert not any(p.name.startswith("p.") for p in tmp_path.iterdir())


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
        (["export"], "No such command 'export'"),
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
