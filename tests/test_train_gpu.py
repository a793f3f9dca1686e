"""benchmarks/train_gpu.py: the GPU settings fit the zoo's size limit, and the whole script (``--smoke`` on CPU)
simulates, trains, checks and reports every shipped learned model."""

import importlib
import json
import subprocess
import sys
import time
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "train_gpu.py"
MODELS = {"deepz-20x075": "deepz", "deepzplus-63x14-confocal": "deepz", "mfpi-cytology-20x075": "mfpi",
          "wfcon-60x14-tissue": "wfcon", "dip-ellipsoid-denoise": "volume-dip"}


@pytest.fixture(scope="module")
def train_gpu():
    sys.path.insert(0, str(SCRIPT.parent))  # spawned pool workers get this path too, to unpickle its functions
    yield importlib.import_module("train_gpu")
    sys.path.remove(str(SCRIPT.parent))
    del sys.modules["train_gpu"]


def test_gpu_plans_fit_below_16_mib(train_gpu):
    limit = train_gpu.SIZE_LIMIT - train_gpu.HEADER_ALLOWANCE
    for name, plan in train_gpu.GPU_PLANS.items():
        config, width, size = train_gpu.fitted_config(name, plan, "cpu")
        assert size <= limit, name
        if width < plan.width:  # shrunk: the next width up would not fit
            bigger = train_gpu._method_config(name, plan, width + 1 / 64, "cpu")
            assert train_gpu.state_bytes(train_gpu._generator(plan, bigger)) > limit, name
    deepz_config, deepz_width, _ = train_gpu.fitted_config("deepz-20x075", train_gpu.GPU_PLANS["deepz-20x075"], "cpu")
    assert deepz_width < 0.5 and deepz_config.network.width == deepz_width  # 0.5 would be 16.6 MiB
    assert deepz_config.data.registration == "projective" and deepz_config.data.max_fields is None
    assert train_gpu.DATA_SEED not in (0, 1, 9001)  # the held-out evaluation sets' dataset seeds


def test_shutdown_kills_running_workers(train_gpu):
    simulation = train_gpu.Simulation([], workers=1, deadline=time.monotonic(), log=print)
    simulation.pool.submit(time.sleep, 0).result(timeout=60)  # the worker is up
    future = simulation.pool.submit(time.sleep, 60)
    time.sleep(0.5)  # and has taken the task
    workers = list(simulation.pool._processes.values())  # this pool's only (other tests may leave processes)
    assert workers
    simulation.shutdown()
    for worker in workers:  # the pool's own thread reaps the killed worker too, so poll rather than join once
        deadline = time.monotonic() + 10
        while worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not worker.is_alive()  # killed, not left to sleep out its minute
    with pytest.raises((BrokenProcessPool, CancelledError)):
        future.result(timeout=10)


@pytest.mark.slow
def test_smoke_run_trains_every_model(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--workers", "2", "--out",
                           str(out), "--data", str(data), "--models", ",".join(MODELS)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["model"]: row for row in summary["models"]}
    assert set(rows) == set(MODELS)
    assert "deepz-20x075" in proc.stdout.splitlines()[-len(MODELS)]  # the printed table

    from widefield3d import zoo
    from widefield3d.methods import deepz, mfpi, volume, wfcon

    loaders = {"deepz": deepz.load, "mfpi": mfpi.load, "wfcon": wfcon.load, "volume-dip": volume.load}
    for name, method in MODELS.items():
        folder = out / name
        files = {p.name: p.stat().st_size for p in folder.iterdir()}
        assert {"config.json", "weights.safetensors", "log.csv", "train_gpu.log"} <= set(files), name
        assert "checkpoint.pt" not in files and max(files.values()) < 16 * 2**20, name
        assert rows[name]["status"] == "ok", name
        loaders[method](folder)  # the method's own loader accepts the folder
        if method == "volume-dip":
            continue
        row = rows[name]
        # validated at iterations 1 and 3; MFPINet's global skip starts at bicubic, which 3 updates may not beat
        assert row["iterations_done"] == 3 and row["best_iteration"] in (1, 3), name
        assert 0 < row["best_metric"] < 2 and row["fields"] == 2, name
        trainer = zoo.read_config(folder)["trainer"]
        assert trainer["warmup_iterations"] == 1 and trainer["time_budget_minutes"] == pytest.approx(
            row["slot_s"] / 60, abs=0.01), name
        manifest = json.loads((data / name / "dataset.json").read_text())
        assert [f["seed"] for f in manifest["fields"]] == [11 * 100003, 11 * 100003 + 1], name
    assert zoo.read_config(out / "mfpi-cytology-20x075")["network"]["width"] == 0.0625
    assert zoo.read_config(out / "wfcon-60x14-tissue")["data"]["crop_zyx"] == [4, 32, 32]

    # --init continues from those weights, validated first: the kept weights are never worse than the start
    again = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", "--workers", "2", "--out",
                            str(tmp_path / "out2"), "--data", str(data), "--init", str(out), "--models",
                            "deepz-20x075,mfpi-cytology-20x075"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for row in json.loads((tmp_path / "out2" / "summary.json").read_text())["models"]:
        assert row["status"] == "ok" and row["init"] == row["model"], row
        log = (tmp_path / "out2" / row["model"] / "log.csv").read_text().splitlines()
        header, first = log[0].split(","), dict(zip(log[0].split(","), log[1].split(","), strict=True))
        assert "val_metric" in header and first["iteration"] == "0", row["model"]
        assert row["best_metric"] <= float(first["val_metric"]) + 1e-9, row["model"]
