"""The adversarial training loop shared by Deep-Z, MFPINet and WFCON-Net.

A method supplies an :class:`AdversarialTask` (its generator, discriminator, a batch sampler and fixed validation
batches) and a :class:`TrainerConfig` (the paper's update ratio, losses, learning rates); :func:`train` runs the
loop, keeps the generator with the lowest validation metric in ``out_dir/weights.safetensors``, logs to
``out_dir/log.csv`` and writes a resumable ``out_dir/checkpoint.pt``. See ``docs/training.md``.

One iteration = ``discriminator_steps`` discriminator updates, then ``generator_steps`` generator updates; every
update draws a fresh batch from ``task.sample_batch(rng)`` with the trainer's own numpy ``Generator``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
import torch
from torch import Tensor, nn

from widefield3d.device import resolve_device
from widefield3d.errors import InputError
from widefield3d.train import losses
from widefield3d.train.checkpoint import load_checkpoint, save_checkpoint

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.csv"
RESUMABLE_FIELDS = ("iterations", "device")
"""TrainerConfig fields that may change when a run is resumed."""

LOSS_PARTS = ("loss_g", "loss_d", "g_adv", "g_pixel", "g_extra", "d_real", "d_fake")
"""Running means logged between validations: total G and D losses, the G loss terms (unweighted adversarial and
pixel terms, the already-weighted extra term) and the mean discriminator scores on real and fake batches."""
LOG_COLUMNS = ("iteration", "seconds", *LOSS_PARTS, "lr", "lr_d", "val_metric", "best")


class TrainerConfig(pydantic.BaseModel):
    """Training hyper-parameters; the defaults are Deep-Z's (Wu et al. 2019, Methods)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    iterations: int = pydantic.Field(10000, ge=1, description="one iteration = generator_steps G + discriminator_steps D updates")
    batch_size: int = pydantic.Field(5, ge=1, description="for the method's sample_batch; the loop itself does not use it")
    generator_steps: int = pydantic.Field(6, ge=1)
    discriminator_steps: int = pydantic.Field(3, ge=0)
    lr_generator: float = pydantic.Field(1e-4, gt=0)
    lr_discriminator: float = pydantic.Field(3e-5, gt=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_halve_every: int | None = pydantic.Field(None, ge=1, description="iterations; None = constant learning rate")
    gan_loss: Literal["lsgan", "bce"] = "lsgan"
    adversarial_weight: float = pydantic.Field(1.0, ge=0)
    pixel_weight: float = pydantic.Field(0.02, ge=0)
    pixel_loss: Literal["l1", "l2"] = "l1"
    validate_every: int = pydantic.Field(50, ge=1, description="iterations")
    checkpoint_every: int = pydantic.Field(50, ge=1, description="iterations")
    seed: int = 0
    device: str = "auto"
    amp: bool = pydantic.Field(True, description="bfloat16 autocast on CUDA; ignored on CPU")


@dataclass
class AdversarialTask:
    """What a method gives the loop.

    ``sample_batch(rng)`` returns one (augmented) training batch ``(inputs, targets)`` as CPU float32 tensors;
    ``validation`` is a fixed sequence of such batches. ``extra_generator_loss(fake, target)`` returns an
    already-weighted term added to the generator loss (e.g. WFCON-Net's perceptual loss). ``validation_metric
    (fake, target)`` returns a float, lower is better (default: mean absolute error). With ``discriminator=None``
    the generator is trained on the pixel and extra terms only and no discriminator step runs.
    """

    generator: nn.Module
    discriminator: nn.Module | None
    sample_batch: Callable[[np.random.Generator], tuple[Tensor, Tensor]]
    validation: Sequence[tuple[Tensor, Tensor]]
    extra_generator_loss: Callable[[Tensor, Tensor], Tensor] | None = None
    validation_metric: Callable[[Tensor, Tensor], float] | None = None


@dataclass
class TrainResult:
    """Outcome of :func:`train`: the best validation metric, the iteration that reached it, the iterations done
    (including those of resumed runs), training seconds (summed over resumed runs) and the CSV log's path."""

    best_metric: float
    best_iteration: int
    iterations_done: int
    seconds: float
    log_path: Path


_GAN_LOSSES = {
    "lsgan": (losses.lsgan_generator_loss, losses.lsgan_discriminator_loss),
    "bce": (losses.bce_generator_loss, losses.bce_discriminator_loss),
}


class _Running:
    """Sums and counts of the loss parts since the last validation."""

    def __init__(self, state: dict | None = None):
        self.reset()
        if state:
            self.sums.update(state["sums"])
            self.counts.update(state["counts"])

    def reset(self) -> None:
        self.sums = dict.fromkeys(LOSS_PARTS, 0.0)
        self.counts = dict.fromkeys(LOSS_PARTS, 0)

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.sums[key] += value
            self.counts[key] += 1

    def mean(self, key: str) -> float:
        return self.sums[key] / self.counts[key] if self.counts[key] else math.nan

    def state(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[dict]:
    """Turn the first Ctrl-C into a flag that the loop checks after each iteration (a second one interrupts at
    once). Only in the main thread, where Python delivers signals; elsewhere the flag never rises."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _config_differences(saved: dict, config: TrainerConfig) -> list[str]:
    now = config.model_dump(mode="json")
    return [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in now
            if k not in RESUMABLE_FIELDS and saved.get(k) != now[k]]


def _tensorboard(out_dir: Path, purge_step: int):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir), purge_step=purge_step)


def _prepare_log(path: Path, resume_iteration: int | None) -> None:
    """Start a fresh log, or keep only the rows up to the resumed checkpoint's iteration."""
    from widefield3d.io import atomic_output

    rows = []
    if resume_iteration is not None and path.is_file():
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= resume_iteration]
    with atomic_output(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def train(task: AdversarialTask, config: TrainerConfig, out_dir: str | Path, *, resume: bool = False,
          progress: bool = True, method_config: dict | None = None) -> TrainResult:
    """Train ``task.generator`` (against ``task.discriminator``) and keep the best generator by validation.

    Parameters
    ----------
    task : AdversarialTask
        Networks, batch sampler and validation batches of the method. The networks are moved to the device and
        trained in place; afterwards ``task.generator`` holds the *last* weights (the best are in
        ``out_dir/weights.safetensors``).
    config : TrainerConfig
        Update ratio, losses, optimiser, validation and checkpoint intervals, seed, device.
    out_dir : path
        Receives ``checkpoint.pt`` (every ``checkpoint_every`` iterations, at the end and on Ctrl-C),
        ``weights.safetensors`` (best generator so far), ``log.csv`` (one row per validation), ``config.json``
        (if ``method_config`` is given) and TensorBoard events (if ``torch.utils.tensorboard`` imports).
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` (same batches, same random numbers, so the weights equal those of
        an uninterrupted run). Only ``iterations`` and ``device`` may differ from the checkpoint's config. Without
        a checkpoint the run starts from scratch. ``resume=False`` with an existing checkpoint raises InputError.
    progress : bool
        Show a rich progress bar on stderr.
    method_config : dict, optional
        The method's configuration; must contain ``"method"`` (e.g. ``"deepz"``). Written with the trainer
        config (under ``"trainer"``) to ``config.json`` by :func:`widefield3d.zoo.write_config`.

    Returns
    -------
    TrainResult
    """
    from widefield3d import zoo

    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if ckpt_path.exists() and not resume:
        raise InputError(f"{ckpt_path}: exists; pass --resume or choose another directory")
    checkpoint = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    device = resolve_device(config.device, where="TrainerConfig.device")
    generator, discriminator = task.generator.to(device).train(), task.discriminator
    if discriminator is not None:
        discriminator.to(device).train()
    metric = task.validation_metric or losses.mean_absolute_error
    if len(task.validation) == 0:
        raise InputError("AdversarialTask.validation: no validation batches")

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_generator, betas=config.adam_betas)
    opt_d = (torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator, betas=config.adam_betas)
             if discriminator is not None else None)
    optimisers = [o for o in (opt_g, opt_d) if o is not None]
    schedulers = ([torch.optim.lr_scheduler.StepLR(o, step_size=config.lr_halve_every, gamma=0.5) for o in optimisers]
                  if config.lr_halve_every else [])
    state: dict[str, Any] = {"iteration": 0, "best_metric": math.inf, "best_iteration": -1, "seconds": 0.0}
    running = _Running()

    if checkpoint is not None:
        differences = _config_differences(json.loads(checkpoint["trainer_config"]), config)
        if differences:
            raise InputError(f"{ckpt_path}: trainer config differs from the checkpoint's ({'; '.join(differences)});"
                             " only iterations and device may change on resume")
        if (checkpoint["discriminator"] is None) != (discriminator is None):
            raise InputError(f"{ckpt_path}: the checkpoint was trained "
                             f"{'without' if checkpoint['discriminator'] is None else 'with'} a discriminator")
        generator.load_state_dict(checkpoint["generator"])
        opt_g.load_state_dict(checkpoint["optimizer_g"])
        if discriminator is not None:
            discriminator.load_state_dict(checkpoint["discriminator"])
            opt_d.load_state_dict(checkpoint["optimizer_d"])
        for scheduler, saved in zip(schedulers, checkpoint["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        rng.bit_generator.state = json.loads(checkpoint["numpy_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if device.type == "cuda" and len(checkpoint["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        state.update({k: checkpoint[k] for k in state})
        running = _Running(checkpoint["running"])

    if method_config is not None:
        if "method" not in method_config:
            raise InputError("train: method_config needs a 'method' entry (e.g. 'deepz')")
        zoo.write_config(out_dir, method_config["method"],
                         {**method_config, "trainer": config.model_dump(mode="json")})
    log_path = out_dir / LOG_NAME
    _prepare_log(log_path, state["iteration"] if checkpoint is not None else None)
    writer = _tensorboard(out_dir, purge_step=state["iteration"])

    gen_loss, disc_loss = _GAN_LOSSES[config.gan_loss]
    use_amp = device.type == "cuda" and config.amp

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    def batch() -> tuple[Tensor, Tensor]:
        x, y = task.sample_batch(rng)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def discriminator_step() -> None:
        x, y = batch()
        with torch.no_grad(), autocast():
            fake = generator(x)
        with autocast():
            real_score, fake_score = discriminator(y), discriminator(fake.detach())
        loss = disc_loss(real_score, fake_score)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        running.add(loss_d=loss.item(), d_real=real_score.float().mean().item(),
                    d_fake=fake_score.float().mean().item())

    def generator_step() -> None:
        x, y = batch()
        parts = {}
        with autocast():
            fake = generator(x)
            pixel = losses.pixel_loss(fake, y, config.pixel_loss)
            loss = config.pixel_weight * pixel
            parts["g_pixel"] = pixel
            if discriminator is not None:
                adv = gen_loss(discriminator(fake))
                loss = loss + config.adversarial_weight * adv
                parts["g_adv"] = adv
            if task.extra_generator_loss is not None:
                extra = task.extra_generator_loss(fake, y).float()
                loss = loss + extra
                parts["g_extra"] = extra
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        running.add(loss_g=loss.item(), **{k: v.item() for k, v in parts.items()})

    def validate() -> float:
        generator.eval()
        try:
            values = []
            with torch.no_grad():
                for x, y in task.validation:
                    with autocast():
                        fake = generator(x.to(device))
                    values.append(float(metric(fake.float(), y.to(device))))
        finally:
            generator.train()
        return float(np.mean(values))

    def save() -> None:
        save_checkpoint(ckpt_path, {
            "format": 1,
            **state,
            "trainer_config": config.model_dump_json(),
            "generator": generator.state_dict(),
            "discriminator": discriminator.state_dict() if discriminator is not None else None,
            "optimizer_g": opt_g.state_dict(),
            "optimizer_d": opt_d.state_dict() if opt_d is not None else None,
            "schedulers": [s.state_dict() for s in schedulers],
            "numpy_rng": json.dumps(rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
            "running": running.state(),
        })

    def log_validation(value: float) -> None:
        improved = state["best_iteration"] < 0 or (math.isfinite(value) and not value >= state["best_metric"])
        if improved:
            state["best_metric"], state["best_iteration"] = value, state["iteration"]
            zoo.save_weights(out_dir, generator)
        row = {"iteration": state["iteration"], "seconds": round(state["seconds"], 3),
               **{k: running.mean(k) for k in LOSS_PARTS}, "lr": opt_g.param_groups[0]["lr"],
               "lr_d": opt_d.param_groups[0]["lr"] if opt_d is not None else math.nan,
               "val_metric": value, "best": state["best_metric"]}
        with log_path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_COLUMNS).writerow(row)
        if writer is not None:
            for key, v in row.items():
                if key != "iteration" and isinstance(v, float) and math.isfinite(v):
                    writer.add_scalar(key, v, state["iteration"])
        running.reset()

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[status]}"), console=Console(stderr=True), disable=not progress)
    last_val = math.nan
    shown = {"loss_g": math.nan, "loss_d": math.nan}
    saved_at = state["iteration"] if checkpoint is not None else -1
    try:
        with _deferred_sigint() as sigint, bar:
            bar_task = bar.add_task("train", total=config.iterations, completed=state["iteration"], status="")
            while state["iteration"] < config.iterations:
                start = time.perf_counter()
                if discriminator is not None:
                    discriminator.requires_grad_(True)
                    for _ in range(config.discriminator_steps):
                        discriminator_step()
                    discriminator.requires_grad_(False)  # G steps need gradients through D, not of D
                for _ in range(config.generator_steps):
                    generator_step()
                for scheduler in schedulers:
                    scheduler.step()
                state["iteration"] += 1
                state["seconds"] += time.perf_counter() - start
                it = state["iteration"]
                if it % config.validate_every == 0 or it == config.iterations:
                    last_val = validate()
                    log_validation(last_val)
                if it % config.checkpoint_every == 0 or it == config.iterations or sigint["stop"]:
                    save()
                    saved_at = it
                if running.counts["loss_g"]:
                    shown = {k: running.mean(k) for k in ("loss_g", "loss_d")}
                bar.update(bar_task, completed=it,
                           status=f"G {shown['loss_g']:.4g}  D {shown['loss_d']:.4g}  val {last_val:.4g}")
                if sigint["stop"]:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        if saved_at != state["iteration"]:
            save()  # interrupted inside an iteration: the weights include its partial updates
        raise
    finally:
        if discriminator is not None:
            discriminator.requires_grad_(True)
        if writer is not None:
            writer.close()
    if saved_at != state["iteration"]:
        save()
    return TrainResult(state["best_metric"], state["best_iteration"], state["iteration"], state["seconds"], log_path)
