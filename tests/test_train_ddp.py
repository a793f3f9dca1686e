"""Data-parallel training (torch DDP) through the shared trainer: 2 CPU processes on the gloo backend.

The ranks are started the way ``torchrun`` starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT in
their environment; the trainer joins the group itself) on the toy task of ``test_train.py``. Checked: gradients are
averaged over the ranks (3 iterations on fixed per-rank batches equal one process on both batches), the ranks draw
different batches (rank 0 the single-process ones), end with identical weights that moved from the initial ones,
also after a resume, only rank 0 writes files, the saved model reproduces the best validation score, and rank 0's
time budget stops rank 1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from widefield3d import zoo
from widefield3d.train import losses
from widefield3d.train.checkpoint import load_checkpoint
from widefield3d.train.trainer import AdversarialTask, TrainerConfig, train

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16 * 2


def _pair(rng: np.random.Generator, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(rng.random((n, 1, 16, 16), dtype=np.float32))
    return x, F.conv2d(x, KERNEL[None, None], padding=1)


def _networks() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    disc = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 1), nn.Sigmoid())
    return generator, disc


def _validation() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [_pair(np.random.default_rng(1000 + i)) for i in range(2)]


def _fixed_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One fixed batch per rank (no random draws), for the gradient-averaging check."""
    return [_pair(np.random.default_rng(50 + r), n=3) for r in range(2)]


def _fixed_task(batch: tuple[torch.Tensor, torch.Tensor]) -> AdversarialTask:
    generator, disc = _networks()
    return AdversarialTask(generator, disc, lambda rng: batch, _validation())


FIXED_CONFIG = dict(iterations=3, generator_steps=1, discriminator_steps=1, lr_generator=1e-2, lr_discriminator=1e-2,
                    pixel_weight=1.0, validate_every=3, checkpoint_every=3, device="cpu")
TOY_CONFIG = dict(iterations=12, generator_steps=2, discriminator_steps=1, lr_generator=3e-3, lr_discriminator=1e-3,
                  pixel_weight=1.0, validate_every=4, checkpoint_every=4, device="cpu")


class _RecordingFiles:
    """:mod:`widefield3d.zoo` as the trainer's ``model_files``, noting each write."""

    def __init__(self, writes: list[str]):
        self.writes = writes

    def write_config(self, directory, method, config):
        self.writes.append("config.json")
        return zoo.write_config(directory, method, config)

    def save_weights(self, directory, module):
        self.writes.append("weights.safetensors")
        return zoo.save_weights(directory, module)

    resolve_model = staticmethod(zoo.resolve_model)
    load_weights = staticmethod(zoo.load_weights)


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def _rank_main(rank: int, port: int, root: str) -> None:
    """One rank, started like torchrun starts it; writes what it saw to ``root/rank<r>.pt``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)  # 2 ranks on 2 cores
    import widefield3d.train.trainer as trainer_module

    writes: list[str] = []
    save = trainer_module.save_checkpoint
    trainer_module.save_checkpoint = lambda path, state: (writes.append(Path(path).name), save(path, state))[1]
    write_row = trainer_module.TrainingLog.write
    trainer_module.TrainingLog.write = lambda self, row: (writes.append("log row"), write_row(self, row))[0]
    files = _RecordingFiles(writes)
    root_dir, seen = Path(root), {}
    out: dict = {"writes": writes}

    # 1. gradient averaging: fixed batches, 3 iterations with D and G updates
    task = _fixed_task(_fixed_batches()[rank])
    train(task, TrainerConfig(**FIXED_CONFIG), root_dir / "fixed", model_files=files, progress=False)
    out["fixed_g"], out["fixed_d"] = _state(task.generator), _state(task.discriminator)

    # 2. a short real run: own batches, validation, best weights, checkpoints, config.json, log
    generator, disc = _networks()
    out["initial_g"] = _state(generator)

    def sample(rng):
        batch = _pair(rng)
        seen.setdefault("first_batch", batch[0])
        return batch

    task = AdversarialTask(generator, disc, sample, _validation())
    result = train(task, TrainerConfig(**TOY_CONFIG), root_dir / "toy", model_files=files, progress=False,
                   method_config={"method": "toy"})
    out["toy_g"], out["toy_d"], out["first_batch"] = _state(generator), _state(disc), seen["first_batch"]
    out["toy_result"] = json.dumps({k: getattr(result, k) for k in ("best_metric", "best_iteration",
                                                                    "iterations_done", "stopped_by_budget")})

    # 3. resume a copy of it to 16 iterations: every rank reads rank 0's checkpoint, rank 1 draws its own batches
    if rank == 0:
        shutil.copytree(root_dir / "toy", root_dir / "resumed")
    torch.distributed.barrier()
    generator, disc = _networks()
    resumed = {}

    def sample_resumed(rng):
        batch = _pair(rng)
        resumed.setdefault("first_batch", batch[0])
        return batch

    task = AdversarialTask(generator, disc, sample_resumed, _validation())
    result = train(task, TrainerConfig(**{**TOY_CONFIG, "iterations": 16}), root_dir / "resumed", model_files=files,
                   progress=False, method_config={"method": "toy"}, resume=True)
    out["resumed_g"], out["resumed_first_batch"] = _state(generator), resumed["first_batch"]
    out["resumed_iterations"] = result.iterations_done

    # 4. rank 0's time budget (spent after the first iteration) stops rank 1, which has none
    budget = {"time_budget_minutes": 1e-6} if rank == 0 else {}
    result = train(_fixed_task(_fixed_batches()[rank]), TrainerConfig(**{**FIXED_CONFIG, **budget}),
                   root_dir / "budget", model_files=files, progress=False)
    out["budget_result"] = (result.iterations_done, result.stopped_by_budget)
    torch.save(out, root_dir / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """Run :func:`_rank_main` on 2 gloo ranks; their records and the shared output folder."""
    import torch.multiprocessing as mp

    root = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_rank_main, args=(_free_port(), str(root)), nprocs=2, start_method="spawn")
    return root, [torch.load(root / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _assert_equal_states(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_gradients_are_averaged_over_the_ranks(ranks, tmp_path):
    """3 DDP iterations (D and G updates, Adam) with batch b0 on rank 0 and b1 on rank 1 equal 3 single-process
    iterations on the batch b0 + b1: DDP averages the gradients, the mean losses are means over the global batch."""
    _, (r0, r1) = ranks
    both = tuple(torch.cat(parts) for parts in zip(*_fixed_batches(), strict=True))
    reference, alone = _fixed_task(both), _fixed_task(_fixed_batches()[0])
    for name, task in (("both", reference), ("alone", alone)):  # single-process runs in this process
        train(task, TrainerConfig(**FIXED_CONFIG), tmp_path / name, model_files=zoo, progress=False)
    for name, net in (("fixed_g", reference.generator), ("fixed_d", reference.discriminator)):
        _assert_equal_states(r0[name], r1[name])  # the ranks agree bit for bit
        ref = _state(net)
        for k, v in r0[name].items():
            torch.testing.assert_close(v, ref[k], rtol=1e-5, atol=1e-6)
    # ... which a rank training on its own batch alone would not give (the check can fail)
    gap = max((r0["fixed_g"][k] - v).abs().max().item() for k, v in _state(alone.generator).items())
    assert gap > 1e-3, gap


def test_ranks_draw_own_batches_and_end_with_the_same_weights(ranks):
    _, (r0, r1) = ranks
    # rank 0 draws the single-process batches (seed 0), rank 1 others (seed 1)
    assert torch.equal(r0["first_batch"], _pair(np.random.default_rng(0))[0])
    assert not torch.equal(r0["first_batch"], r1["first_batch"])
    _assert_equal_states(r0["toy_g"], r1["toy_g"])
    _assert_equal_states(r0["toy_d"], r1["toy_d"])
    moved = max((r0["toy_g"][k] - v).abs().max().item() for k, v in r0["initial_g"].items())
    assert moved > 1e-3, moved
    assert json.loads(r0["toy_result"]) == json.loads(r1["toy_result"])  # rank 1 returns rank 0's best
    assert json.loads(r0["toy_result"])["iterations_done"] == 12
    # resumed from rank 0's checkpoint: same weights on both ranks, moved on, batches still different
    assert r0["resumed_iterations"] == r1["resumed_iterations"] == 16
    _assert_equal_states(r0["resumed_g"], r1["resumed_g"])
    assert max((r0["resumed_g"][k] - v).abs().max().item() for k, v in r0["toy_g"].items()) > 1e-4
    assert not torch.equal(r0["resumed_first_batch"], r1["resumed_first_batch"])


def test_only_rank0_writes_and_the_saved_model_predicts(ranks):
    root, (r0, r1) = ranks
    assert r1["writes"] == []
    # fixed run: no config, 1 validation and checkpoint; toy run: config.json, 3 validations and checkpoints (4, 8,
    # 12); resumed: config.json, 1 (16); budget run: 1
    assert r0["writes"].count("checkpoint.pt") == r0["writes"].count("log row") == 1 + 3 + 1 + 1
    assert r0["writes"].count("config.json") == 2
    toy = root / "toy"
    assert sorted(p.name for p in toy.iterdir()) == ["checkpoint.pt", "config.json", "log.csv",
                                                     "weights.safetensors"]
    checkpoint = load_checkpoint(toy / "checkpoint.pt")
    assert checkpoint["iteration"] == 12
    _assert_equal_states({k: v.contiguous() for k, v in checkpoint["generator"].items()}, r0["toy_g"])
    # the best weights load into a fresh generator and reproduce the best validation score
    generator, _ = _networks()
    zoo.load_weights(generator, toy)
    with torch.no_grad():
        mae = float(np.mean([losses.mean_absolute_error(generator(x), y) for x, y in _validation()]))
        untrained = float(np.mean([losses.mean_absolute_error(_networks()[0](x), y) for x, y in _validation()]))
    best = json.loads(r0["toy_result"])["best_metric"]
    assert mae == pytest.approx(best, rel=1e-5) and mae < untrained / 2, (mae, best, untrained)


def test_rank0_time_budget_stops_every_rank(ranks):
    _, (r0, r1) = ranks
    assert r0["budget_result"] == r1["budget_result"] == (1, True)


# --- the launcher: torchrun -m widefield3d train ... ---------------------------------------------------------------


@pytest.mark.slow
def test_torchrun_trains_mfpi_on_two_ranks(tmp_path):
    """``torchrun --nproc-per-node 2 -m widefield3d train mfpi`` (gloo, CPU) on 3 random RGB focal stacks: both ranks
    finish with rank 0's result, rank 0 alone writes the model, which loads and predicts."""
    import subprocess
    import sys

    from widefield3d import io
    from widefield3d.methods import mfpi

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for i in range(3):  # 3 channels x 11 planes (the default network), 2 fields train, 1 validates
        stack = rng.integers(0, 256, (3, 11, 64, 64), dtype=np.uint8)
        io.write(data / f"f{i}.ome.tif", io.Image(stack, "CZYX", {"Z": 2.7, "Y": 0.243, "X": 0.243}))
    settings = {"width": 0.0625, "patch_size": 32, "batch_size": 2, "epochs": 1, "patches_per_epoch": 8,
                "validations_per_epoch": 2, "device": "cpu", "seed": 0}
    (tmp_path / "cfg.json").write_text(json.dumps(settings))
    out = tmp_path / "model"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(_free_port()), "-m", "widefield3d", "train", "mfpi", "--data", str(data),
               "-o", str(out), "--config", str(tmp_path / "cfg.json")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert text.count("training on 2 ranks (torch DDP, gloo): each update draws batch_size=2 per rank, 4 in all") == 1
    reports = [line for line in text.splitlines() if line.startswith("trained ")]
    assert len(reports) == 2 and reports[0].split(" s")[1] == reports[1].split(" s")[1], reports  # rank 0's best
    assert "trained 4 iterations" in reports[0]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json", "log.csv",
                                                     "weights.safetensors"]
    assert load_checkpoint(out / "checkpoint.pt")["iteration"] == 4
    planes = mfpi.multifocal(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8), model=out, device="cpu")
    assert planes.data.shape == (3, 11, 64, 64) and np.isfinite(planes.data).all()
