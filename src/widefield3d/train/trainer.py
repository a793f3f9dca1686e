"""The adversarial training loop shared by Deep-Z, MFPINet and WFCON-Net.

A method supplies an :class:`AdversarialTask` (its generator, discriminator, a batch sampler and fixed validation
batches) and a :class:`TrainerConfig` (the paper's update ratio, losses, learning rates); :func:`train` runs the
loop, keeps the generator with the lowest validation metric in ``out_dir/weights.safetensors``, logs to
``out_dir/log.csv`` and writes a resumable ``out_dir/checkpoint.pt``. See ``docs/training.md``.

One iteration = ``discriminator_steps`` discriminator updates, then ``generator_steps`` generator updates; every
update draws a fresh batch from ``task.sample_batch(rng)`` with the trainer's own numpy ``Generator``. The first
``warmup_iterations`` iterations train the generator on the pixel (+ extra) loss alone; ``time_budget_minutes``
stops a run cleanly (validated, checkpointed, resumable) when its wall time is spent.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import signal
import threading
import time
import warnings
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
RESUMABLE_FIELDS = ("iterations", "device", "time_budget_minutes", "channels_last")
"""TrainerConfig fields that may change when a run is resumed."""

LOSS_PARTS = ("loss_g", "loss_d", "g_adv", "g_pixel", "g_extra", "d_real", "d_fake")
"""Running means logged between validations: total G and D losses, the G loss terms (unweighted adversarial and
pixel terms, the already-weighted extra term) and the mean discriminator scores on real and fake batches."""
LOG_COLUMNS = ("iteration", "seconds", *LOSS_PARTS, "lr", "lr_d", "val_metric", "best")
TIMING_PARTS = ("data", "step", "validation", "checkpoint")
"""Where wall time goes (seconds): drawing and moving batches, the updates, validation, writing files."""
CHECKPOINT_FORMAT = 2
"""2 added the method config and a fingerprint of the validation data (checked on resume) and the timings."""


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
    pixel_scales: tuple[pydantic.PositiveInt, ...] = pydantic.Field(
        (1,), min_length=1, description="pixel loss averaged over these lateral average-pooling factors "
                                        "(1 = per pixel, the papers; e.g. (1, 2, 4, 8) for sparse samples)")
    validate_every: int = pydantic.Field(50, ge=1, description="iterations")
    checkpoint_every: int = pydantic.Field(50, ge=1, description="iterations")
    seed: int = 0
    device: str = "auto"
    amp: bool = pydantic.Field(True, description="bfloat16 autocast on CUDA; ignored on CPU")
    warmup_iterations: int = pydantic.Field(
        0, ge=0, description="first iterations with the pixel (+ extra) loss only, no discriminator (0 = the paper)")
    time_budget_minutes: float | None = pydantic.Field(
        None, gt=0, description="stop cleanly after this much wall time of this call (resumable); None = no limit")
    channels_last: bool = pydantic.Field(
        True, description="run 2D networks in channels_last memory format (faster CPU convolutions)")


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
    (including those of resumed runs), training seconds (summed over resumed runs), the CSV log's path, whether
    the time budget ended the run, and where the wall time went."""

    best_metric: float
    best_iteration: int
    iterations_done: int
    seconds: float
    log_path: Path
    stopped_by_budget: bool = False
    timings: dict[str, float] | None = None
    """Wall seconds per :data:`TIMING_PARTS` entry, summed over resumed runs."""


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
    default = TrainerConfig.model_fields
    return [f"{k}: {saved.get(k, default[k].default)!r} -> {now[k]!r}" for k in now
            if k not in RESUMABLE_FIELDS and saved.get(k, default[k].default) != now[k]]


METHOD_KEYS_FREE_ON_RESUME = ("trainer", "widefield3d_version", "provenance.data_dir")
"""Method-config entries (dotted paths) that may change on resume: the trainer's own (checked separately), the
package version and the data directory's path (data may move; changed data show in the validation fingerprint)."""


def _method_differences(saved: dict, now: dict, free: Sequence[str]) -> list[str]:
    """Differences between two method configs outside the dotted keys ``free``."""
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            key = f"{prefix}{k}"
            if key in free:
                continue
            out.update(flat(v, key + ".") if isinstance(v, dict) else {key: v})
        return out

    a, b = flat(saved), flat(now)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def validation_fingerprint(batches: Sequence[tuple[Tensor, Tensor]]) -> str:
    """SHA-256 of the validation batches' shapes and bytes: a resumed run must validate on the same data."""
    import hashlib

    digest = hashlib.sha256()
    for batch in batches:
        for t in batch:
            t = t.detach().to("cpu").contiguous()
            digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()


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
          progress: bool = True, method_config: dict | None = None,
          resumable_method_keys: Sequence[str] = ()) -> TrainResult:
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
        an uninterrupted run). Only ``iterations``, ``device``, ``time_budget_minutes`` and ``channels_last`` may
        differ from the checkpoint's config; a changed method config (outside ``trainer`` and the data path) or
        changed validation data is refused with InputError, since "best" would compare different validation sets.
        Without a checkpoint the run starts from scratch. ``resume=False`` with an existing checkpoint raises
        InputError.
    progress : bool
        Show a rich progress bar on stderr.
    method_config : dict, optional
        The method's configuration; must contain ``"method"`` (e.g. ``"deepz"``). Written with the trainer
        config (under ``"trainer"``) to ``config.json`` by :func:`widefield3d.zoo.write_config`.
    resumable_method_keys : sequence of str
        Dotted ``method_config`` keys that may change on resume besides :data:`METHOD_KEYS_FREE_ON_RESUME` (e.g.
        a flat config's copies of trainer fields).

    Returns
    -------
    TrainResult
    """
    from widefield3d import zoo

    out_dir = Path(out_dir)
    wall_start = time.perf_counter()
    ckpt_path = out_dir / CHECKPOINT_NAME
    if ckpt_path.exists() and not resume:
        raise InputError(f"{ckpt_path}: exists; pass --resume or choose another directory")
    if method_config is not None and "method" not in method_config:
        raise InputError("train: method_config needs a 'method' entry (e.g. 'deepz')")
    checkpoint = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    device = resolve_device(config.device, where="TrainerConfig.device")
    generator, discriminator = task.generator, task.discriminator
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    if len(task.validation) == 0:
        raise InputError("AdversarialTask.validation: no validation batches")
    four_d = task.validation[0][0].ndim == 4
    for net in (generator, discriminator):
        if net is not None:
            net.to(device).train()
            if four_d:
                net.to(memory_format=memory_format)
    metric = task.validation_metric or losses.mean_absolute_error
    fingerprint = validation_fingerprint(task.validation)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_generator, betas=config.adam_betas)
    opt_d = (torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator, betas=config.adam_betas)
             if discriminator is not None else None)
    optimisers = [o for o in (opt_g, opt_d) if o is not None]
    schedulers = ([torch.optim.lr_scheduler.StepLR(o, step_size=config.lr_halve_every, gamma=0.5) for o in optimisers]
                  if config.lr_halve_every else [])
    state: dict[str, Any] = {"iteration": 0, "best_metric": math.inf, "best_iteration": -1, "seconds": 0.0}
    timings = dict.fromkeys(TIMING_PARTS, 0.0)
    running = _Running()

    if checkpoint is not None:
        differences = _config_differences(json.loads(checkpoint["trainer_config"]), config)
        if differences:
            raise InputError(f"{ckpt_path}: trainer config differs from the checkpoint's ({'; '.join(differences)});"
                             f" only {', '.join(RESUMABLE_FIELDS)} may change on resume")
        saved_method = checkpoint.get("method_config")
        if saved_method is not None and method_config is not None:
            changed = _method_differences(json.loads(saved_method), method_config,
                                          (*METHOD_KEYS_FREE_ON_RESUME, *resumable_method_keys))
            if changed:
                raise InputError(f"{ckpt_path}: the method/data config differs from the checkpoint's "
                                 f"({'; '.join(changed[:4])}{'; ...' if len(changed) > 4 else ''}); start a new run")
        if checkpoint.get("validation_fingerprint", fingerprint) != fingerprint:
            raise InputError(f"{ckpt_path}: the validation data differ from the checkpoint's (changed training data "
                             "or data settings?); start a new run")
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
        timings.update(checkpoint.get("timings") or {})
        running = _Running(checkpoint["running"])

    from rich.console import Console

    console = Console(stderr=True)
    if checkpoint is not None:
        console.print(f"resuming {out_dir} from iteration {state['iteration']} of {config.iterations} "
                      f"(best validation {state['best_metric']:.4g} at iteration {state['best_iteration']})", soft_wrap=True)
    if method_config is not None:
        zoo.write_config(out_dir, method_config["method"],
                         {**method_config, "trainer": config.model_dump(mode="json")})
    log_path = out_dir / LOG_NAME
    _prepare_log(log_path, state["iteration"] if checkpoint is not None else None)
    writer = _tensorboard(out_dir, purge_step=state["iteration"])

    gen_loss, disc_loss = _GAN_LOSSES[config.gan_loss]
    use_amp = device.type == "cuda" and config.amp

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()

    def to_device(t: Tensor) -> Tensor:
        t = t.to(device, non_blocking=True)
        return t.contiguous(memory_format=memory_format) if t.ndim == 4 else t

    def batch() -> tuple[Tensor, Tensor]:
        t0 = time.perf_counter()
        x, y = task.sample_batch(rng)
        x, y = to_device(x), to_device(y)
        timings["data"] += time.perf_counter() - t0
        return x, y

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

    def generator_step(adversarial: bool) -> None:
        x, y = batch()
        parts = {}
        with autocast():
            fake = generator(x)
            pixel = losses.multiscale_pixel_loss(fake, y, config.pixel_loss, config.pixel_scales)
            loss = config.pixel_weight * pixel
            parts["g_pixel"] = pixel
            if adversarial:
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
        t0 = time.perf_counter()
        generator.eval()
        try:
            values = []
            with torch.no_grad():
                for x, y in task.validation:
                    with autocast():
                        fake = generator(to_device(x))
                    values.append(float(metric(fake.float(), y.to(device))))
        finally:
            generator.train()
            timings["validation"] += time.perf_counter() - t0
        return float(np.mean(values))

    def save() -> None:
        t0 = time.perf_counter()
        save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT,
            **state,
            "trainer_config": config.model_dump_json(),
            "method_config": json.dumps(method_config, default=str) if method_config is not None else None,
            "validation_fingerprint": fingerprint,
            "timings": dict(timings),
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
        timings["checkpoint"] += time.perf_counter() - t0

    def log_validation(value: float) -> None:
        improved = state["best_iteration"] < 0 or (math.isfinite(value) and not value >= state["best_metric"])
        if improved:
            t0 = time.perf_counter()
            state["best_metric"], state["best_iteration"] = value, state["iteration"]
            zoo.save_weights(out_dir, generator)
            timings["checkpoint"] += time.perf_counter() - t0
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

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    budget_s = config.time_budget_minutes * 60 if config.time_budget_minutes is not None else math.inf
    bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[status]}"), console=console, disable=not progress)
    last_val = math.nan
    shown = {"loss_g": math.nan, "loss_d": math.nan}
    saved_at = state["iteration"] if checkpoint is not None else -1
    first_iteration, stopped_by_budget = state["iteration"], False
    try:
        with _deferred_sigint() as sigint, bar:
            bar_task = bar.add_task("train", total=config.iterations, completed=state["iteration"], status="")
            while state["iteration"] < config.iterations:
                start = time.perf_counter()
                data_before = timings["data"]
                adversarial = discriminator is not None and state["iteration"] >= config.warmup_iterations
                if adversarial:
                    discriminator.requires_grad_(True)
                    for _ in range(config.discriminator_steps):
                        discriminator_step()
                    discriminator.requires_grad_(False)  # G steps need gradients through D, not of D
                for _ in range(config.generator_steps):
                    generator_step(adversarial)
                with warnings.catch_warnings():  # during the warm-up D's schedule advances while D rests
                    warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
                    for scheduler in schedulers:
                        scheduler.step()
                state["iteration"] += 1
                elapsed = time.perf_counter() - start
                state["seconds"] += elapsed
                timings["step"] += elapsed - (timings["data"] - data_before)
                it = state["iteration"]
                stopped_by_budget = time.perf_counter() - wall_start >= budget_s and it < config.iterations
                if it % config.validate_every == 0 or it == config.iterations or stopped_by_budget:
                    last_val = validate()
                    log_validation(last_val)
                if (it % config.checkpoint_every == 0 or it == config.iterations or sigint["stop"]
                        or stopped_by_budget):
                    save()
                    saved_at = it
                if running.counts["loss_g"]:
                    shown = {k: running.mean(k) for k in ("loss_g", "loss_d")}
                rate = (it - first_iteration) / max(time.perf_counter() - wall_start, 1e-9)
                left = (f"  budget {max(0.0, budget_s - (time.perf_counter() - wall_start)) / 60:.0f} min left"
                        if math.isfinite(budget_s) else "")
                phase = "warm-up  " if discriminator is not None and not adversarial else ""
                bar.update(bar_task, completed=it,
                           status=f"{rate:.2f} it/s  {phase}G {shown['loss_g']:.4g}  D {shown['loss_d']:.4g}  "
                                  f"val {last_val:.4g} (best {state['best_metric']:.4g} @ {state['best_iteration']})"
                                  f"{left}")
                if sigint["stop"]:
                    raise KeyboardInterrupt
                if stopped_by_budget:
                    console.print(f"time budget of {config.time_budget_minutes:g} min spent at iteration {it} of "
                                  f"{config.iterations}; checkpoint written (continue with --resume)", soft_wrap=True)
                    break
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
    return TrainResult(state["best_metric"], state["best_iteration"], state["iteration"], state["seconds"], log_path,
                       stopped_by_budget, dict(timings))
