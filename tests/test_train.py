"""The shared adversarial trainer: losses against hand-computed values, learning a toy task, files, resume, errors."""

from __future__ import annotations

import csv
import math
import os
import signal
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from widefield3d import zoo
from widefield3d.errors import InputError
from widefield3d.train import losses
from widefield3d.train.checkpoint import load_checkpoint
from widefield3d.train.prefetch import BatchPrefetcher
from widefield3d.train.trainer import AdversarialTask, TrainerConfig, train
from widefield3d.zoo import load_weights, read_config

# --- losses -------------------------------------------------------------------------------------------------------

REAL = torch.tensor([0.9, 0.2])
FAKE = torch.tensor([0.1, 0.6])


def test_lsgan_losses_by_hand():
    # D: ((0.9-1)^2 + (0.2-1)^2)/2 + (0.1^2 + 0.6^2)/2 = 0.325 + 0.185
    assert losses.lsgan_discriminator_loss(REAL, FAKE).item() == pytest.approx(0.51, abs=1e-6)
    # G: ((0.1-1)^2 + (0.6-1)^2)/2
    assert losses.lsgan_generator_loss(FAKE).item() == pytest.approx(0.485, abs=1e-6)


def test_bce_losses_by_hand_and_float32():
    d = -(math.log(0.9) + math.log(0.2)) / 2 - (math.log(0.9) + math.log(0.4)) / 2
    assert losses.bce_discriminator_loss(REAL, FAKE).item() == pytest.approx(d, rel=1e-6)
    assert losses.bce_generator_loss(FAKE).item() == pytest.approx(-(math.log(0.1) + math.log(0.6)) / 2, rel=1e-6)
    # saturated scores stay finite (clamped at EPS) and half-precision scores give a float32 loss
    assert losses.bce_generator_loss(torch.zeros(3)).item() == pytest.approx(-math.log(losses.EPS), rel=1e-4)
    loss = losses.bce_discriminator_loss(torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bfloat16))
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())


def test_multiscale_pixel_loss_by_hand():
    fake, target = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    fake[0, 0, 0, 0], target[0, 0, 0, 1] = 1.0, 1.0  # a spot placed one pixel off
    assert losses.multiscale_pixel_loss(fake, target, "l1", (1,)).item() == pytest.approx(2 / 16)
    assert losses.multiscale_pixel_loss(fake, target, "l1", (2,)).item() == pytest.approx(0.0)  # same 2x2 block
    assert losses.multiscale_pixel_loss(fake, target, "l1", (1, 2)).item() == pytest.approx(1 / 16)
    # 3D batches pool Y and X only: a spot one plane off is not forgiven
    f3, t3 = torch.zeros(1, 1, 2, 4, 4), torch.zeros(1, 1, 2, 4, 4)
    f3[0, 0, 0, 0, 0], t3[0, 0, 1, 0, 0] = 1.0, 1.0
    assert losses.multiscale_pixel_loss(f3, t3, "l1", (2,)).item() == pytest.approx(2 * 0.25 / 8)
    with pytest.raises(ValueError):
        TrainerConfig(pixel_scales=(0,))


def test_pixel_losses_by_hand():
    fake, target = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 2.0, 2.0])
    assert losses.pixel_loss(fake, target, "l1").item() == pytest.approx(1.0)
    assert losses.pixel_loss(fake, target, "l2").item() == pytest.approx(5 / 3)
    assert losses.mean_absolute_error(fake, target) == pytest.approx(1.0)


# --- a toy task: learn "scale by 2 and blur" on 16x16 images ------------------------------------------------------

KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16 * 2


def _pair(rng: np.random.Generator, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(rng.random((n, 1, 16, 16), dtype=np.float32))
    return x, F.conv2d(x, KERNEL[None, None], padding=1)


def _task(*, discriminator: bool = True, on_sample=None, extra=None) -> AdversarialTask:
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    disc = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 1), nn.Sigmoid()) if discriminator else None
    validation = [_pair(np.random.default_rng(1000 + i)) for i in range(2)]

    def sample(rng):
        if on_sample is not None:
            on_sample()
        return _pair(rng)

    return AdversarialTask(generator, disc, sample, validation, extra_generator_loss=extra)


def _config(**kw) -> TrainerConfig:
    base = dict(iterations=8, generator_steps=2, discriminator_steps=1, lr_generator=3e-3, lr_discriminator=1e-3,
                validate_every=4, checkpoint_every=4, device="cpu")
    return TrainerConfig(**{**base, **kw})


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _validation_mae(generator: nn.Module, task: AdversarialTask) -> float:
    with torch.no_grad():
        return float(np.mean([losses.mean_absolute_error(generator(x), y) for x, y in task.validation]))


def test_training_learns_and_writes_files(tmp_path):
    task = _task()
    before = _validation_mae(task.generator, task)
    cfg = _config(iterations=60, pixel_weight=1.0, validate_every=10, checkpoint_every=30)
    result = train(task, cfg, tmp_path, progress=False, model_files=zoo, method_config={"method": "toy", "width": 8})
    # the generator learns the blur: validation MAE falls at least 8x below the untrained network's (measured: 13x)
    assert result.best_metric < before / 8, (before, result.best_metric)
    assert result.iterations_done == 60 and 10 <= result.best_iteration <= 60
    for name in ("checkpoint.pt", "weights.safetensors", "log.csv", "config.json"):
        assert (tmp_path / name).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    config = read_config(tmp_path, "toy")
    assert config["width"] == 8 and config["trainer"]["iterations"] == 60
    rows = _rows(result.log_path)
    assert [r["iteration"] for r in rows] == [10, 20, 30, 40, 50, 60]
    assert min(r["val_metric"] for r in rows) == pytest.approx(result.best_metric)
    # logged totals are the weighted sums of the logged parts (running means of linear combinations)
    for r in rows:
        assert r["loss_g"] == pytest.approx(r["g_adv"] + r["g_pixel"], rel=1e-5)
        assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1
    # the best weights reload into a fresh generator and reproduce the logged best metric
    fresh = _task()
    load_weights(fresh.generator, tmp_path)
    assert _validation_mae(fresh.generator, fresh) == pytest.approx(result.best_metric, rel=1e-6)


def test_resume_after_ctrl_c_matches_uninterrupted_run(tmp_path):
    straight = train(_task(), _config(), tmp_path / "a", progress=False, model_files=zoo)
    calls = {"n": 0}

    def ctrl_c_in_iteration_3():  # 3 batches per iteration; the 8th batch is drawn inside iteration 3
        calls["n"] += 1
        if calls["n"] == 8:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(_task(on_sample=ctrl_c_in_iteration_3), _config(), tmp_path / "b", progress=False, model_files=zoo)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["iteration"] == 3  # the iteration was finished first
    resumed = train(_task(), _config(), tmp_path / "b", resume=True, progress=False, model_files=zoo)
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("a", "b"))
    assert b["iteration"] == a["iteration"] == 8
    for net in ("generator", "discriminator"):
        for key, value in a[net].items():
            torch.testing.assert_close(b[net][key], value, rtol=0, atol=1e-6)
    assert resumed.best_metric == pytest.approx(straight.best_metric, rel=1e-6)
    # the log has the same rows (running means survive the interruption), apart from the wall-clock column
    log_a, log_b = (_rows(tmp_path / d / "log.csv") for d in ("a", "b"))
    assert [r["iteration"] for r in log_b] == [4, 8]
    for ra, rb in zip(log_a, log_b, strict=True):
        assert {k: v for k, v in rb.items() if k != "seconds"} == pytest.approx(
            {k: v for k, v in ra.items() if k != "seconds"}, rel=1e-6, nan_ok=True)
    # going on to more iterations is allowed: iterations may change on resume
    longer = train(_task(), _config(iterations=10), tmp_path / "b", resume=True, progress=False, model_files=zoo)
    assert longer.iterations_done == 10


def test_hard_interrupt_still_leaves_a_checkpoint(tmp_path):
    calls = {"n": 0}

    def interrupt_in_iteration_2():
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_task(on_sample=interrupt_in_iteration_2), _config(), tmp_path, progress=False, model_files=zoo)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert train(_task(), _config(iterations=2), tmp_path, resume=True, progress=False,
                 model_files=zoo).iterations_done == 2


def test_existing_checkpoint_and_changed_config_are_refused(tmp_path):
    train(_task(), _config(iterations=2), tmp_path, progress=False, model_files=zoo)
    with pytest.raises(InputError, match="exists; pass --resume"):
        train(_task(), _config(iterations=2), tmp_path, progress=False, model_files=zoo)
    with pytest.raises(InputError, match="lr_generator"):
        train(_task(), _config(iterations=4, lr_generator=1e-2), tmp_path, resume=True, progress=False, model_files=zoo)
    with pytest.raises(InputError, match="without a discriminator|with a discriminator"):
        train(_task(discriminator=False), _config(iterations=4), tmp_path, resume=True, progress=False, model_files=zoo)


def test_supervised_only_with_extra_term(tmp_path):
    def extra(fake, target):
        return 0.5 * (fake - target).pow(2).mean()

    task = _task(discriminator=False, extra=extra)
    before = _validation_mae(task.generator, task)
    result = train(task, _config(iterations=20, pixel_weight=1.0, validate_every=10), tmp_path, progress=False,
                   model_files=zoo)
    rows = _rows(result.log_path)
    for r in rows:
        assert math.isnan(r["loss_d"]) and math.isnan(r["g_adv"]) and math.isnan(r["lr_d"])
        assert r["g_extra"] > 0 and r["loss_g"] == pytest.approx(r["g_pixel"] + r["g_extra"], rel=1e-5)
    assert result.best_metric < before / 4  # measured: 6.2x


def test_learning_rate_halving_and_bce(tmp_path):
    cfg = _config(iterations=6, validate_every=2, lr_halve_every=2, gan_loss="bce", pixel_weight=1.0)
    result = train(_task(), cfg, tmp_path, progress=False, model_files=zoo)
    rows = _rows(result.log_path)
    assert [r["lr"] for r in rows] == pytest.approx([3e-3 / 2, 3e-3 / 4, 3e-3 / 8])
    assert [r["lr_d"] for r in rows] == pytest.approx([1e-3 / 2, 1e-3 / 4, 1e-3 / 8])
    assert all(math.isfinite(r["loss_d"]) and r["loss_d"] > 0 for r in rows)


def test_model_files_go_through_the_given_writer(tmp_path):
    calls = []

    class Recorder:  # stands in for widefield3d.zoo, which the methods pass
        def write_config(self, directory, method, config):
            calls.append(("config", directory, method, config["trainer"]["iterations"]))

        def save_weights(self, directory, module):
            calls.append(("weights", directory, len(module.state_dict())))

    result = train(_task(), _config(iterations=4, validate_every=1), tmp_path, progress=False, model_files=Recorder(),
                   method_config={"method": "toy"})
    best = [r["best"] for r in _rows(result.log_path)]
    improvements = 1 + sum(b < a for a, b in zip(best, best[1:]))
    # config.json once at the start (with the trainer block), the generator (2 convolutions) at each new best
    assert calls == [("config", tmp_path, "toy", 4)] + [("weights", tmp_path, 4)] * improvements
    assert not (tmp_path / "config.json").exists() and not (tmp_path / "weights.safetensors").exists()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        TrainerConfig(iterations=0)
    with pytest.raises(ValueError):
        TrainerConfig(gan_loss="wgan")
    with pytest.raises(ValueError):
        TrainerConfig(learning_rate=1e-3)  # unknown field


# --- budget, warm-up, reproducibility, resume checks ---------------------------------------------------------------


def _generator_weights(out_dir) -> dict:
    return load_checkpoint(out_dir / "checkpoint.pt")["generator"]


def test_two_identical_runs_give_bit_identical_weights(tmp_path):
    for d in ("a", "b"):
        train(_task(), _config(), tmp_path / d, progress=False, model_files=zoo)
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("a", "b"))
    for net in ("generator", "discriminator"):
        for key, value in a[net].items():
            assert torch.equal(b[net][key], value), (net, key)


def test_time_budget_stops_cleanly_and_resumes_to_the_same_weights(tmp_path):
    straight = train(_task(), _config(), tmp_path / "a", progress=False, model_files=zoo)
    assert not straight.stopped_by_budget and straight.iterations_done == 8
    slow = _task(on_sample=lambda: time.sleep(0.05))  # 3 batches per iteration: >= 0.15 s each
    cut = train(slow, _config(time_budget_minutes=0.3 / 60), tmp_path / "b", progress=False, model_files=zoo)
    assert cut.stopped_by_budget and 1 <= cut.iterations_done < 8
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["iteration"] == cut.iterations_done
    assert (tmp_path / "b" / "weights.safetensors").is_file()
    assert _rows(cut.log_path)[-1]["iteration"] == cut.iterations_done  # validated at the stop
    assert cut.timings["data"] >= 0.15 * cut.iterations_done  # the sleeps count as data loading
    # the budget may change on resume; the resumed run reaches the uninterrupted run's weights
    done = train(_task(), _config(), tmp_path / "b", resume=True, progress=False, model_files=zoo)
    assert done.iterations_done == 8 and not done.stopped_by_budget
    a, b = (_generator_weights(tmp_path / d) for d in ("a", "b"))
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=1e-6)
    assert set(done.timings) == {"data", "step", "validation", "checkpoint"}


def test_prefetching_gives_the_same_weights_and_resumes_exactly(tmp_path):
    """Batches drawn ahead in a thread are the plain loop's batches in its order; a checkpoint written while
    batches wait in the queue stores the generator state before them, so a resumed run draws the same ones."""
    train(_task(), _config(), tmp_path / "plain", progress=False, model_files=zoo)
    train(_task(), _config(prefetch_batches=3), tmp_path / "ahead", progress=False, model_files=zoo)
    slow = _task(on_sample=lambda: time.sleep(0.05))
    cut = train(slow, _config(prefetch_batches=3, time_budget_minutes=0.3 / 60), tmp_path / "cut", progress=False,
                model_files=zoo)
    assert cut.stopped_by_budget and 1 <= cut.iterations_done < 8
    train(_task(), _config(prefetch_batches=2), tmp_path / "cut", resume=True, progress=False, model_files=zoo)
    plain = _generator_weights(tmp_path / "plain")
    for run in ("ahead", "cut"):
        for key, value in _generator_weights(tmp_path / run).items():
            assert torch.equal(plain[key], value), (run, key)


def test_prefetcher_hands_out_errors_and_stops():
    def failing(rng):
        raise RuntimeError("no more data")

    with BatchPrefetcher(failing, np.random.default_rng(0)) as ahead, pytest.raises(RuntimeError, match="no more"):
        ahead.next()
    rng = np.random.default_rng(5)
    start = rng.bit_generator.state
    with BatchPrefetcher(_pair, rng, depth=2) as ahead:
        first = ahead.next()
        after_first = ahead.rng_state()
    assert torch.equal(first[0], _pair(np.random.default_rng(5))[0])
    replay = np.random.default_rng(5)
    replay.bit_generator.state = start
    _pair(replay)
    assert replay.bit_generator.state == after_first


def test_warmup_trains_the_generator_alone_then_switches_to_the_gan(tmp_path):
    task = _task()
    d_before = {k: v.clone() for k, v in task.discriminator.state_dict().items()}
    cfg = _config(iterations=4, warmup_iterations=4, validate_every=2)
    result = train(task, cfg, tmp_path, progress=False, model_files=zoo)
    for key, value in task.discriminator.state_dict().items():
        assert torch.equal(value, d_before[key]), key  # no discriminator update during the warm-up
    for r in _rows(result.log_path):
        assert math.isnan(r["g_adv"]) and math.isnan(r["loss_d"])
        assert r["loss_g"] == pytest.approx(cfg.pixel_weight * r["g_pixel"], rel=1e-5)
    resumed = _task()
    longer = train(resumed, cfg.model_copy(update={"iterations": 8}), tmp_path, resume=True, progress=False,
                   model_files=zoo)
    rows = _rows(longer.log_path)
    assert [r["iteration"] for r in rows] == [2, 4, 6, 8]
    for r in rows[2:]:  # after the warm-up: the paper's adversarial loss and discriminator updates
        assert math.isfinite(r["g_adv"]) and math.isfinite(r["loss_d"])
    assert any(not torch.equal(v, d_before[k]) for k, v in resumed.discriminator.state_dict().items())


def test_discriminator_in_warmup_learns_while_the_generator_uses_the_pixel_loss_alone(tmp_path):
    task = _task()
    d_before = {k: v.clone() for k, v in task.discriminator.state_dict().items()}
    cfg = _config(iterations=4, warmup_iterations=4, validate_every=2, discriminator_in_warmup=True)
    result = train(task, cfg, tmp_path, progress=False, model_files=zoo)
    assert any(not torch.equal(v, d_before[k]) for k, v in task.discriminator.state_dict().items())
    for r in _rows(result.log_path):
        assert math.isnan(r["g_adv"]) and math.isfinite(r["loss_d"])  # D learns, G does not see it yet
        assert r["loss_g"] == pytest.approx(cfg.pixel_weight * r["g_pixel"], rel=1e-5)


def test_resume_prints_its_iteration_and_refuses_changed_data(tmp_path, capsys):
    method = {"method": "toy", "data": {"patch_px": 16}, "provenance": {"data_dir": "/somewhere"}}
    train(_task(), _config(iterations=4), tmp_path, progress=False, model_files=zoo, method_config=method)
    capsys.readouterr()
    # the data directory's path may move; the iteration resumed from is printed
    moved = {**method, "provenance": {"data_dir": "/elsewhere"}}
    train(_task(), _config(iterations=6), tmp_path, resume=True, progress=False, model_files=zoo, method_config=moved)
    assert "from iteration 4" in capsys.readouterr().err
    config_before = (tmp_path / "config.json").read_text()
    with pytest.raises(InputError, match=r"data\.patch_px: 16 -> 32"):
        train(_task(), _config(iterations=8), tmp_path, resume=True, progress=False, model_files=zoo,
              method_config={**method, "data": {"patch_px": 32}})
    assert (tmp_path / "config.json").read_text() == config_before  # not rewritten by a refused resume
    other = _task()
    other.validation = [_pair(np.random.default_rng(7))]
    with pytest.raises(InputError, match="validation data differ"):
        train(other, _config(iterations=8), tmp_path, resume=True, progress=False, model_files=zoo,
              method_config=method)


def test_init_from_starts_the_generator_from_a_model_and_resume_keeps_its_own_weights(tmp_path):
    source = train(_task(), _config(iterations=60, pixel_weight=1.0, validate_every=10), tmp_path / "source",
                   progress=False, model_files=zoo, method_config={"method": "toy"})
    # a vanishing learning rate: after one update the generator still holds the source model's best weights
    tuned = _task()
    train(tuned, _config(iterations=1, validate_every=1, init_from=str(tmp_path / "source"), lr_generator=1e-12),
          tmp_path / "tuned", progress=False, model_files=zoo, method_config={"method": "toy"})
    assert _validation_mae(tuned.generator, tuned) == pytest.approx(source.best_metric, rel=1e-5)
    assert read_config(tmp_path / "tuned", "toy")["trainer"]["init_from"] == str(tmp_path / "source")
    # fine-tuning interrupted by its time budget and resumed ends where an uninterrupted fine-tuning ends
    cfg = _config(init_from=str(tmp_path / "source"))
    train(_task(), cfg, tmp_path / "a", progress=False, model_files=zoo, method_config={"method": "toy"})
    train(_task(), cfg.model_copy(update={"iterations": 4}), tmp_path / "b", progress=False, model_files=zoo,
          method_config={"method": "toy"})
    train(_task(), cfg, tmp_path / "b", resume=True, progress=False, model_files=zoo, method_config={"method": "toy"})
    a, b = (_generator_weights(tmp_path / d) for d in ("a", "b"))
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=1e-6)
    # the starting weights are validated first: a run that only makes them worse keeps them
    ruined = train(_task(), _config(iterations=3, validate_every=1, init_from=str(tmp_path / "source"),
                                    pixel_weight=1.0, lr_generator=50.0), tmp_path / "ruined", progress=False,
                   model_files=zoo, method_config={"method": "toy"})
    assert ruined.best_iteration == 0 and ruined.best_metric == pytest.approx(source.best_metric, rel=1e-5)
    kept, start = (load_file(tmp_path / d / "weights.safetensors") for d in ("ruined", "source"))
    assert kept.keys() == start.keys()
    for key, value in start.items():
        torch.testing.assert_close(kept[key], value, rtol=0, atol=0)
    # a model of another method or another network is refused with one line
    with pytest.raises(InputError, match="'other'"):
        train(_task(), cfg, tmp_path / "c", progress=False, model_files=zoo, method_config={"method": "other"})
    wide = _task()
    wide.generator = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 3, padding=1))
    with pytest.raises(InputError, match="weights"):
        train(wide, cfg, tmp_path / "d", progress=False, model_files=zoo, method_config={"method": "toy"})
