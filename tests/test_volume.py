"""Volume reconstruction: early stopping, the two methods on tiny volumes, the DIP starts, the CLI round trip."""

import numpy as np
import pytest
import tifffile
import torch

from conftest import run

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.methods.volume import (
    DenoiserConfig,
    VolumeConfig,
    WindowedVariance,
    load,
    reconstruct,
    solve,
    start_network,
    train,
)
from widefield3d.nets.dip import DipNetConfig
from widefield3d.optics.brightfield import brightfield_stack
from widefield3d.sim.samples.transmittance import BENCHMARK_VOLUMES, benchmark_volume, cell_volume, ellipsoid_volume

OPTICS = dict(na=0.75, xy_res_um=0.92, z_res_um=1.0, aperture_samples=5)
SMALL_NET = DipNetConfig(channels=(8, 16))


def test_es_wmv_stops_after_the_flattest_window():
    # iterates move along a parabola: the window of 11 iterates centred on its vertex (t = 150) varies least
    stopper = WindowedVariance(window=11, patience=40)
    stopped_at = None
    for t in range(400):
        if stopper.update(torch.full((2, 3), ((t - 150) / 100.0) ** 2)):
            stopped_at = t
            break
    assert stopper.best_iteration == 155  # the window 145..155 is symmetric about the vertex
    assert stopped_at == 195  # patience: 40 iterates without a new minimum
    assert float(stopper.best[0, 0]) == pytest.approx(0.05**2)


def test_phantoms_are_in_the_papers_range():
    assert len(BENCHMARK_VOLUMES) == 13
    for name in BENCHMARK_VOLUMES:
        v = benchmark_volume(name, (5, 12, 12))
        assert v.dtype == np.float32 and v.shape == (5, 12, 12)
        assert v.min() == pytest.approx(0.7, abs=1e-6) and v.max() <= 1.0
    e = ellipsoid_volume((5, 12, 12), 3)
    assert 0.7 - 1e-6 <= e.min() < e.max() <= 1.0
    assert np.array_equal(e, ellipsoid_volume((5, 12, 12), 3))


@pytest.fixture(scope="module")
def tiny():
    truth = benchmark_volume("heptane", (5, 12, 12))
    return truth, brightfield_stack(truth, **OPTICS)


def test_iterative_reconstruction_reaches_a_stated_psnr(tiny):
    truth, stack = tiny
    result = solve(stack, VolumeConfig(solver="iterative", steps=150, early_stop=False, **OPTICS), truth=truth,
                   progress=False, device="cpu")
    assert result.history["psnr"][0] < 15  # starts from the constant 0.75
    assert result.psnr > 33
    assert result.transmittance.shape == truth.shape and result.transmittance.max() <= 1.0


@pytest.mark.slow
def test_dip_reconstruction_reaches_a_stated_psnr(tiny):
    truth, stack = tiny
    config = VolumeConfig(solver="dip", steps=150, early_stop=False, net=SMALL_NET, constant_steps=100, dip_lr=1e-2,
                          **OPTICS)
    result = solve(stack, config, truth=truth, progress=False, device="cpu")
    assert result.history["psnr"][0] < 15
    assert result.psnr > 30
    # the rendered reconstruction explains the stack
    assert np.mean(np.abs(brightfield_stack(result.transmittance, **OPTICS) - stack)) < 0.02


def test_reconstruct_returns_an_image_with_spacing(tiny):
    truth, stack = tiny
    config = VolumeConfig(solver="iterative", steps=2, **OPTICS)
    volume = reconstruct(io.Image(stack, "ZYX", (1.0, 0.92, 0.92)), config, progress=False, device="cpu")
    assert volume.axes == "ZYX" and volume.spacing_zyx == pytest.approx((1.0, 0.92, 0.92))
    np.testing.assert_array_equal(volume.data, solve(stack, config, progress=False, device="cpu").transmittance)


def test_noisy_stacks_may_dip_below_zero(tiny):
    """Centred Gaussian noise on a dark stack gives negative readings; they are data, not an error."""
    truth, stack = tiny
    noisy = stack - stack.min() - 0.01  # darkest pixel at -0.01
    result = solve(noisy, VolumeConfig(solver="iterative", steps=2, aperture_samples=5), progress=False, device="cpu")
    assert result.transmittance.shape == truth.shape and np.all(np.isfinite(result.transmittance))
    one_step = VolumeConfig(solver="iterative", steps=1)
    with pytest.raises(InputError, match="finite"):
        solve(np.where(noisy > 0.5, np.nan, noisy), one_step, progress=False)
    with pytest.raises(InputError, match="flat-field"):
        solve(noisy - 2.0, one_step, progress=False)


def test_early_stopping_returns_the_selected_iterate(tiny):
    truth, stack = tiny
    config = VolumeConfig(solver="iterative", steps=300, es_window=10, es_patience=20, **OPTICS)
    result = solve(stack, config, truth=truth, progress=False, device="cpu")
    assert result.stopped_early and result.iterations < 300
    assert result.iteration == result.iterations - 1 - 20
    assert result.psnr == result.history["psnr"][result.iteration]


def _bench_volume():
    """The benchmark script ``benchmarks/bench_volume.py`` as a module."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import bench_volume
    finally:
        sys.path.pop(0)
    return bench_volume


def test_benchmark_start_table_compares_within_a_learning_rate():
    """Runs at another DIP learning rate (``--dip-lr``, labelled "... (lr X)") are measured against the constant
    start at the same rate, in a table of their own."""
    def row(method, curve):
        return {"size": "4x4x3", "noise": 0.01, "steps": 4, "volume": "v", "method": method, "psnr_curve": curve,
                "psnr": curve[-1], "best_psnr": max(curve)}

    rows = [row("DIP", [10, 20, 30, 40]), row("DIP + Pretr II", [10, 10, 10, 10]),
            row("DIP (lr 0.001)", [10, 10, 10, 20]), row("DIP + Pretr II (lr 0.001)", [10, 20, 30, 40])]
    lines = _bench_volume().start_table(rows, checkpoints=(1,), reach=0.98).splitlines()
    assert sum(line.startswith("DIP starts (lr 0.001) (") for line in lines) == 1
    assert sum(line.startswith("DIP starts (4x4x3, ") for line in lines) == 1
    # columns: start | volumes | step 1 | last | step to 98 % of the constant start's best (never: the run's length)
    assert "| DIP + Pretr II | 1 | 10.00 | 10.00 | 4 (1 never) |" in lines
    assert "| DIP + Pretr II (lr 0.001) | 1 | 20.00 | 40.00 | 1 |" in lines  # 20 >= 0.98 x 20 at step 1


def test_benchmark_stopping_rules_agree_with_the_run(tiny, tmp_path):
    """bench_volume's extra ES rules, fed through ``on_iterate``, stop where the run's own rule stops; the figure of
    the curves and stops is written."""
    bench = _bench_volume()
    StoppingRules, es_figure = bench.StoppingRules, bench.es_figure
    truth, stack = tiny
    config = VolumeConfig(solver="iterative", steps=120, early_stop=False, es_window=10, es_patience=20, **OPTICS)
    rules = StoppingRules([(10, 20), (10, 1000)])
    result = solve(stack, config, truth=truth, progress=False, device="cpu", on_iterate=rules)
    summary = rules.summary(result.history["psnr"])
    assert result.es_stop is not None and result.iterations == 120
    assert summary["10:20"] == {"stop": result.es_stop, "iteration": result.es_iteration,
                                "psnr": result.history["psnr"][result.es_iteration]}
    never = summary["10:1000"]  # never stops: the minimum-variance iterate at the end
    assert never["stop"] is None and 9 <= never["iteration"] <= 119
    psnr = result.history["psnr"]
    row = {"volume": "tiny", "noise": 0.0, "best_step": int(np.argmax(psnr)), "best_psnr": max(psnr),
           "psnr_curve": psnr, "es_grid": summary}
    es_figure([row, row], tmp_path / "es.png")
    assert (tmp_path / "es.png").stat().st_size > 10_000


@pytest.mark.slow
def test_dip_starts(tmp_path):
    shape = (3, 8, 8)
    config = VolumeConfig(net=SMALL_NET, constant_steps=100, dip_lr=1e-2)
    net, z = start_network(shape, config, torch.device("cpu"))
    with torch.no_grad():
        assert torch.mean(torch.abs(net(z) - 0.75)) < 0.02  # fitted to c = 0.75 (about 0.25 off at the start)
    config = VolumeConfig(net=SMALL_NET, pretrained="ellipsoid-fit", fit_steps=100, dip_lr=1e-2)
    net, z = start_network(shape, config, torch.device("cpu"))
    target = torch.as_tensor(ellipsoid_volume(shape, 0))
    with torch.no_grad():
        start_error = torch.mean(torch.abs(net(z)[0, 0] - target))
    assert start_error < torch.mean(torch.abs(target - target.mean()))  # closer than the best constant
    # Pretr II: a (tiny) trained denoiser is written as a model and used as the start
    config = DenoiserConfig(network=SMALL_NET, data={"n_volumes": 4, "shape": shape},
                            trainer={"batch_size": 2, "epochs": 1})
    model = train(tmp_path / "denoiser", config, progress=False)
    denoiser = load(model)
    assert denoiser.config.method == "volume-dip" and denoiser.generator.config == SMALL_NET
    stack = brightfield_stack(ellipsoid_volume(shape, 1), **OPTICS)
    config = VolumeConfig(solver="dip", steps=3, pretrained="ellipsoid-denoise", denoiser=str(model), **OPTICS)
    result = solve(stack, config, progress=False, device="cpu")
    assert result.iterations == 3 and result.config.net == SMALL_NET


def test_shipped_denoiser_loads():
    denoiser = load()
    net = denoiser.generator
    assert denoiser.config.method == "volume-dip" and net.n_parameters() > 0
    out = net(torch.full((1, 1, 11, 20, 20), 0.85))
    assert out.shape == (1, 1, 11, 20, 20) and torch.all((out > 0) & (out < 1))


def test_cli_round_trip(tmp_path):
    truth = benchmark_volume("teapot", (5, 12, 12))
    volume_file = tmp_path / "volume.ome.tif"
    io.write(volume_file, io.Image(truth, axes="ZYX", spacing_um=(1.0, 0.92, 0.92)))
    stack_file = tmp_path / "stack.ome.tif"
    assert run(["simulate", "acquire", volume_file, "--modality", "brightfield", "-o", stack_file, "--na", "0.75",
                "--xy-res", "0.92", "--aperture-samples", "5", "--noise", "0.01", "--seed", "3"]) == 0
    stack, clean = io.read(stack_file), io.read(tmp_path / "stack_clean.ome.tif")
    assert stack.axes == "ZYX" and stack.spacing_um["Z"] == pytest.approx(1.0)
    assert stack.spacing_um["X"] == pytest.approx(0.92)
    np.testing.assert_allclose(clean.data, brightfield_stack(truth, **OPTICS), atol=1e-6)
    assert np.std(stack.data - clean.data) == pytest.approx(0.01, rel=0.2)
    out, figure = tmp_path / "recon.ome.tif", tmp_path / "recon.png"
    assert run(["reconstruct", stack_file, "-o", out, "--method", "iterative", "--na", "0.75", "--xy-res", "0.92",
                "--aperture-samples", "5", "--steps", "60", "--no-early-stop", "--figure", figure]) == 0
    recon = io.read(out)
    assert recon.data.shape == truth.shape and recon.spacing_um["Z"] == pytest.approx(1.0)
    assert np.mean((recon.data - truth) ** 2) < np.mean((0.75 - truth) ** 2) / 10
    assert figure.stat().st_size > 5000
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome


@pytest.mark.parametrize(
    "argv, words",
    [
        (["reconstruct", "{plane}", "-o", "v.ome.tif"], "ZYX"),
        (["reconstruct", "{stack}", "-o", "v.ome.tif", "--steps", "0"], "steps"),
        (["reconstruct", "{stack}", "-o", "v.ome.tif", "--na", "1.2"], "na"),
        (["reconstruct", "{stack}", "-o", "v.xyz"], "extension"),
        (["reconstruct", "{bright}", "-o", "v.ome.tif"], "flat-field"),
        (["simulate", "acquire", "{bright}", "--modality", "brightfield", "-o", "v.ome.tif"], "[0, 1]"),
    ],
)
def test_bad_inputs_one_line_no_output(tmp_path, monkeypatch, capsys, argv, words):
    monkeypatch.chdir(tmp_path)
    io.write(tmp_path / "plane.ome.tif", io.Image(np.ones((8, 8), np.float32), axes="YX"))
    io.write(tmp_path / "stack.ome.tif", io.Image(np.ones((3, 8, 8), np.float32), axes="ZYX"))
    io.write(tmp_path / "bright.ome.tif", io.Image(np.full((3, 8, 8), 200.0, np.float32), axes="ZYX"))
    names = {"{plane}": "plane.ome.tif", "{stack}": "stack.ome.tif", "{bright}": "bright.ome.tif"}
    assert run([names.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err
    assert not list(tmp_path.glob("v*"))


def test_demo_section(tmp_path):
    from widefield3d.demo.volume import demo_section
    from widefield3d.report import Report

    report = Report("volume demo")
    numbers = demo_section(report, tmp_path, progress=False, steps=10)
    html = report.write(tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and (tmp_path / "volume_dip.png").stat().st_size > 5000
    constant = -10 * np.log10(np.mean((cell_volume((11, 32, 32), 0) - 0.75) ** 2))
    assert numbers["iterative"]["PSNR (dB)"] > constant + 0.5  # 10 steps improve on the constant start
    assert numbers["DIP + Pretr II"]["steps"] == 10
