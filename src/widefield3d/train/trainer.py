"""The adversarial training loop shared by Deep-Z, MFPINet and WFCON-Net.

A method supplies an :class:`AdversarialTask` (its generator, discriminator, a batch sampler and fixed validation
batches), a :class:`TrainerConfig` (the paper's update ratio, losses, learning rates) and its :class:`ModelFiles`
writer (:mod:`widefield3d.zoo`); :func:`train` runs the loop (an :class:`AdversarialTrainer`), keeps the generator
with the lowest validation metric in ``out_dir/weights.safetensors``, logs to ``out_dir/log.csv`` and writes a
resumable ``out_dir/checkpoint.pt``. See ``docs/training.md``.

One iteration = ``discriminator_steps`` discriminator updates, then ``generator_steps`` generator updates; every
update draws a fresh batch from ``task.sample_batch(rng)`` with the trainer's own numpy ``Generator``. The first
``warmup_iterations`` iterations train the generator on the pixel (+ extra) loss alone (the discriminator rests,
or with ``discriminator_in_warmup`` learns against those outputs); ``time_budget_minutes``
stops a run cleanly (validated, checkpointed, resumable) when its wall time is spent.

Started by ``torchrun`` on several processes (:mod:`widefield3d.train.ddp`), the same loop trains data-parallel:
each rank draws its own batches, the networks' gradients are averaged over the ranks, and rank 0 alone validates and
writes the files.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pydantic
import torch
from torch import Tensor, nn

from widefield3d.device import resolve_device
from widefield3d.errors import InputError
from widefield3d.progress import progress_bar
from widefield3d.train import ddp, losses
from widefield3d.train.checkpoint import load_checkpoint, save_checkpoint
from widefield3d.train.log import LOSS_PARTS, RunningMeans, TrainingLog
from widefield3d.train.prefetch import BatchPrefetcher
from widefield3d.train.resume import check_resumable, validation_fingerprint

CHECKPOINT_NAME = "checkpoint.pt"
TIMING_PARTS = ("data", "step", "validation", "checkpoint")
"""Where wall time goes (seconds): drawing and moving batches, the updates, validation, writing files."""
CHECKPOINT_FORMAT = 2
"""2 added the method config and a fingerprint of the validation data (checked on resume) and the timings."""


class TrainerConfig(pydantic.BaseModel):
    """Training hyper-parameters; the defaults are Deep-Z's (Wu et al. 2019, Methods)."""

    model_config = pydantic.ConfigDict(extra="forbid")

    iterations: int = pydantic.Field(
        10000, ge=1, description="one iteration = generator_steps G + discriminator_steps D updates")
    batch_size: int = pydantic.Field(
        5, ge=1, description="for the method's sample_batch; the loop itself does not use it")
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
    discriminator_in_warmup: bool = pydantic.Field(
        False, description="train the discriminator during the warm-up too, so that the adversarial term starts "
                           "against one that already tells targets from outputs (ours; see docs/training.md)")
    time_budget_minutes: float | None = pydantic.Field(
        None, gt=0, description="stop cleanly after this much wall time of this call (resumable); None = no limit")
    channels_last: bool = pydantic.Field(
        True, description="run 2D networks in channels_last memory format (faster CPU convolutions)")
    prefetch_batches: int | None = pydantic.Field(
        None, ge=0, description="training batches drawn ahead in a background thread (same batches, same order); "
                                "None = 2 on CUDA, 0 on CPU (where the thread would take cores from the updates)")
    init_from: str | None = pydantic.Field(
        None, min_length=1, description="fine-tuning: a shipped model's name (or a model folder) whose generator "
                                        "weights start the run (validated first, as iteration 0: the kept weights "
                                        "are never worse than them); the discriminator starts afresh; ignored "
                                        "when resuming from a checkpoint (its weights win)")


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


class ModelFiles(Protocol):
    """Where the trainer writes the model directory's ``config.json`` and best ``weights.safetensors``: the
    functions of :mod:`widefield3d.zoo` (every method passes ``model_files=zoo``), kept out of this layer."""

    def write_config(self, directory: str | Path, method: str, config: dict) -> object: ...

    def save_weights(self, directory: str | Path, module: nn.Module) -> object: ...

    def resolve_model(self, name_or_dir: str | Path, method: str | None = None) -> Path: ...

    def load_weights(self, module: nn.Module, directory: str | Path) -> object: ...


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


class AdversarialTrainer:
    """One training run: :meth:`__init__` sets up (or restores) the networks, optimisers and random numbers,
    :meth:`run` trains. Arguments as :func:`train`, the usual way in; nothing is written before :meth:`run`."""

    def __init__(self, task: AdversarialTask, config: TrainerConfig, out_dir: str | Path, *, model_files: ModelFiles,
                 resume: bool = False, method_config: dict | None = None,
                 resumable_method_keys: Sequence[str] = ()):
        self.wall_start = time.perf_counter()  # the time budget counts from here
        minutes = config.time_budget_minutes
        self.budget_s = minutes * 60 if minutes is not None else math.inf
        self.task, self.config, self.out_dir = task, config, Path(out_dir)
        self.model_files, self.method_config = model_files, method_config
        self.ckpt_path = self.out_dir / CHECKPOINT_NAME
        if self.ckpt_path.exists() and not resume:
            raise InputError(f"{self.ckpt_path}: exists; pass --resume or choose another directory")
        if method_config is not None and "method" not in method_config:
            raise InputError("train: method_config needs a 'method' entry (e.g. 'deepz')")
        checkpoint = load_checkpoint(self.ckpt_path) if resume and self.ckpt_path.exists() else None
        self.device = ddp.setup(resolve_device(config.device, where="TrainerConfig.device"))
        self.rank, self.world_size = ddp.world()
        self.is_main = self.rank == 0  # the rank that validates and writes files (the only one in one process)
        self.generator, self.discriminator = task.generator, task.discriminator
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        if len(task.validation) == 0:
            raise InputError("AdversarialTask.validation: no validation batches")
        four_d = task.validation[0][0].ndim == 4
        for net in (self.generator, self.discriminator):
            if net is not None:
                net.to(self.device).train()
                if four_d:
                    net.to(memory_format=self.memory_format)  # type: ignore[call-overload]  # not in torch's stubs
        self.metric = task.validation_metric or losses.mean_absolute_error
        self.fingerprint = validation_fingerprint(task.validation)
        self.gen_loss, self.disc_loss = _GAN_LOSSES[config.gan_loss]
        self.use_amp = self.device.type == "cuda" and config.amp
        depth = config.prefetch_batches
        self.prefetch_depth = (2 if self.device.type == "cuda" else 0) if depth is None else depth
        self.prefetcher: BatchPrefetcher | None = None  # while run() runs, if prefetch_depth > 0

        if config.init_from is not None and checkpoint is None:
            method = method_config.get("method") if method_config is not None else None
            model_files.load_weights(self.generator, model_files.resolve_model(config.init_from, method))

        torch.manual_seed(config.seed + self.rank)  # several ranks: each draws its own batches
        self.rng = np.random.default_rng(config.seed + self.rank)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_generator, betas=config.adam_betas)
        self.opt_d = (torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_discriminator,
                                       betas=config.adam_betas) if self.discriminator is not None else None)
        self.schedulers = ([torch.optim.lr_scheduler.StepLR(o, step_size=config.lr_halve_every, gamma=0.5)
                            for o in (self.opt_g, self.opt_d) if o is not None] if config.lr_halve_every else [])
        self.iteration, self.best_metric, self.best_iteration, self.seconds = 0, math.inf, -1, 0.0
        self.timings = dict.fromkeys(TIMING_PARTS, 0.0)
        self.running = RunningMeans()
        self.resumed = checkpoint is not None
        if checkpoint is not None:
            check_resumable(self.ckpt_path, checkpoint, config, method_config, fingerprint=self.fingerprint,
                            with_discriminator=self.discriminator is not None,
                            free_method_keys=resumable_method_keys)
            self._restore(checkpoint)
        # the networks as the updates call them: in DistributedDataParallel on several ranks (same parameters)
        self.g_train: nn.Module = self.generator
        self.d_train: nn.Module | None = self.discriminator
        if self.world_size > 1:
            self.g_train = ddp.wrap(self.generator, self.device)
            if self.discriminator is not None:
                self.d_train = ddp.wrap(self.discriminator, self.device)
        self._saved_at = self.iteration if self.resumed else -1  # iteration of the last checkpoint written
        self._last_val = math.nan
        self._shown = {"loss_g": math.nan, "loss_d": math.nan}  # running losses on the progress bar
        self.log = TrainingLog(self.out_dir)

    # ---------------------------------------------------------------------------------------------- set-up, resume

    def _restore(self, checkpoint: dict) -> None:
        """Load weights, optimiser and schedule states, random number states, counters and running sums."""
        self.generator.load_state_dict(checkpoint["generator"])
        self.opt_g.load_state_dict(checkpoint["optimizer_g"])
        if self.discriminator is not None and self.opt_d is not None:
            self.discriminator.load_state_dict(checkpoint["discriminator"])
            self.opt_d.load_state_dict(checkpoint["optimizer_d"])
        for scheduler, saved in zip(self.schedulers, checkpoint["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        self.rng.bit_generator.state = json.loads(checkpoint["numpy_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if self.rank > 0:  # the checkpoint holds rank 0's streams; the other ranks continue on streams made from it
            bits = self.rng.bit_generator
            assert isinstance(bits, np.random.PCG64)  # numpy.random.default_rng's
            self.rng = np.random.Generator(bits.jumped(self.rank))
            torch.manual_seed(int(np.random.SeedSequence([self.config.seed, self.rank,
                                                          checkpoint["iteration"]]).generate_state(1)[0]))
        if self.device.type == "cuda" and len(checkpoint["cuda_rng"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        self.iteration, self.best_metric = checkpoint["iteration"], checkpoint["best_metric"]
        self.best_iteration, self.seconds = checkpoint["best_iteration"], checkpoint["seconds"]
        self.timings.update(checkpoint.get("timings") or {})
        self.running = RunningMeans(checkpoint["running"])

    # ------------------------------------------------------------------------------------------------ the updates

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.use_amp else contextlib.nullcontext()

    def _to_device(self, t: Tensor) -> Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=self.memory_format) if t.ndim == 4 else t

    def _batch(self) -> tuple[Tensor, Tensor]:
        """A fresh training batch on the device (its time counts as ``data``)."""
        t0 = time.perf_counter()
        x, y = self.prefetcher.next() if self.prefetcher is not None else self.task.sample_batch(self.rng)
        x, y = self._to_device(x), self._to_device(y)
        self.timings["data"] += time.perf_counter() - t0
        return x, y

    def _adversarial(self) -> bool:
        """Whether the coming iteration trains against the discriminator (there is one, and the warm-up is over)."""
        return self.discriminator is not None and self.iteration >= self.config.warmup_iterations

    def _d_step(self) -> None:
        """One discriminator update on a fresh batch, against the generator's detached output."""
        assert self.d_train is not None and self.opt_d is not None
        x, y = self._batch()
        with torch.no_grad(), self._autocast():
            fake = self.generator(x)
        with self._autocast():
            real_score, fake_score = self.d_train(y), self.d_train(fake.detach())
        loss = self.disc_loss(real_score, fake_score)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        self.running.add(loss_d=loss.item(), d_real=real_score.float().mean().item(),
                         d_fake=fake_score.float().mean().item())

    def _g_step(self, adversarial: bool) -> None:
        """One generator update on a fresh batch: pixel term, adversarial term (if ``adversarial``), extra term."""
        config = self.config
        x, y = self._batch()
        parts = {}
        with self._autocast():
            fake = self.g_train(x)
            pixel = losses.multiscale_pixel_loss(fake, y, config.pixel_loss, config.pixel_scales)
            loss = config.pixel_weight * pixel
            parts["g_pixel"] = pixel
            if adversarial:
                assert self.discriminator is not None
                adv = self.gen_loss(self.discriminator(fake))
                loss = loss + config.adversarial_weight * adv
                parts["g_adv"] = adv
            if self.task.extra_generator_loss is not None:
                extra = self.task.extra_generator_loss(fake, y).float()
                loss = loss + extra
                parts["g_extra"] = extra
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.running.add(loss_g=loss.item(), **{k: v.item() for k, v in parts.items()})

    def _iteration(self, adversarial: bool) -> None:
        """D updates (unless resting in the warm-up), G updates, one step of the learning-rate schedules; counts its
        time."""
        start = time.perf_counter()
        data_before = self.timings["data"]
        if adversarial or (self.discriminator is not None and self.config.discriminator_in_warmup):
            assert self.discriminator is not None
            self.discriminator.requires_grad_(True)
            for _ in range(self.config.discriminator_steps):
                self._d_step()
            self.discriminator.requires_grad_(False)  # G steps need gradients through D, not of D
        for _ in range(self.config.generator_steps):
            self._g_step(adversarial)
        with warnings.catch_warnings():  # during the warm-up D's schedule advances while D rests
            warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
            for scheduler in self.schedulers:
                scheduler.step()
        self.iteration += 1
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        self.timings["step"] += elapsed - (self.timings["data"] - data_before)

    # ------------------------------------------------------------------------------------ validation and files

    def _validate(self) -> float:
        """The validation metric of the generator (eval mode, no gradients), averaged over the batches."""
        t0 = time.perf_counter()
        self.generator.eval()
        try:
            values = []
            with torch.no_grad():
                for x, y in self.task.validation:
                    with self._autocast():
                        fake = self.generator(self._to_device(x))
                    values.append(float(self.metric(fake.float(), y.to(self.device))))
        finally:
            self.generator.train()
            self.timings["validation"] += time.perf_counter() - t0
        return float(np.mean(values))

    def _keep_if_best(self, value: float) -> None:
        """Save the generator's weights when ``value`` beats the best so far (or is the first)."""
        if self.best_iteration < 0 or (math.isfinite(value) and not value >= self.best_metric):
            t0 = time.perf_counter()
            self.best_metric, self.best_iteration = value, self.iteration
            self.model_files.save_weights(self.out_dir, self.generator)
            self.timings["checkpoint"] += time.perf_counter() - t0

    def _validate_keep_log(self) -> None:
        """Validate the generator now, keep its weights if they are the best so far, and log the row."""
        self._last_val = self._validate()
        self._keep_if_best(self._last_val)
        self._log(self._last_val)

    def _log(self, value: float) -> None:
        """Log one row: running means since the last one, learning rates, validation ``value``, best so far."""
        row = {"iteration": self.iteration, "seconds": round(self.seconds, 3),
               **{k: self.running.mean(k) for k in LOSS_PARTS}, "lr": self.opt_g.param_groups[0]["lr"],
               "lr_d": self.opt_d.param_groups[0]["lr"] if self.opt_d is not None else math.nan,
               "val_metric": value, "best": self.best_metric}
        self.log.write(row)
        self.running.reset()

    def _checkpoint(self) -> None:
        """Write the full training state to ``checkpoint.pt`` (atomically; rank 0's, by rank 0 alone)."""
        if not self.is_main:
            self._saved_at = self.iteration
            return
        t0 = time.perf_counter()
        save_checkpoint(self.ckpt_path, {
            "format": CHECKPOINT_FORMAT,
            "iteration": self.iteration, "best_metric": self.best_metric, "best_iteration": self.best_iteration,
            "seconds": self.seconds,
            "trainer_config": self.config.model_dump_json(),
            "method_config": json.dumps(self.method_config, default=str) if self.method_config is not None else None,
            "validation_fingerprint": self.fingerprint,
            "timings": dict(self.timings),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict() if self.discriminator is not None else None,
            "optimizer_g": self.opt_g.state_dict(),
            "optimizer_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "schedulers": [s.state_dict() for s in self.schedulers],
            "numpy_rng": json.dumps(self._rng_state()),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "running": self.running.state(),
        })
        self.timings["checkpoint"] += time.perf_counter() - t0
        self._saved_at = self.iteration

    def _rng_state(self) -> Mapping[str, Any]:
        """The numpy generator's state before the next training batch (batches drawn ahead not counted)."""
        return self.prefetcher.rng_state() if self.prefetcher is not None else self.rng.bit_generator.state

    def _stop_prefetching(self) -> None:
        """Stop the prefetch thread and rewind the generator to the batches handed out."""
        if self.prefetcher is not None:
            state = self.prefetcher.rng_state()
            self.prefetcher.close()
            self.prefetcher = None
            self.rng.bit_generator.state = state

    # ------------------------------------------------------------------------------------ budget and progress

    def _elapsed_s(self) -> float:
        """Wall seconds since the trainer was made (the start of :func:`train`)."""
        return time.perf_counter() - self.wall_start

    def _status(self, adversarial: bool, first_iteration: int) -> str:
        """The progress bar's text: speed of this call, phase, running losses, validation, budget left."""
        if self.running.counts["loss_g"]:
            self._shown = {k: self.running.mean(k) for k in ("loss_g", "loss_d")}
        rate = (self.iteration - first_iteration) / max(self._elapsed_s(), 1e-9)
        left = (f"  budget {max(0.0, self.budget_s - self._elapsed_s()) / 60:.0f} min left"
                if math.isfinite(self.budget_s) else "")
        phase = "warm-up  " if self.discriminator is not None and not adversarial else ""
        return (f"{rate:.2f} it/s  {phase}G {self._shown['loss_g']:.4g}  D {self._shown['loss_d']:.4g}  "
                f"val {self._last_val:.4g} (best {self.best_metric:.4g} @ {self.best_iteration}){left}")

    # ------------------------------------------------------------------------------------------------- the loop

    def run(self, progress: bool = True) -> TrainResult:
        """Write ``config.json`` and start the log, then train to ``config.iterations`` (or until the time budget
        is spent, or Ctrl-C) with validation, best weights and checkpoints on the way. ``progress``: rich bar."""
        from rich.console import Console

        config = self.config
        console = Console(stderr=True, quiet=not self.is_main)  # several ranks: rank 0 speaks for all
        if self.resumed:
            console.print(f"resuming {self.out_dir} from iteration {self.iteration} of {config.iterations} "
                          f"(best validation {self.best_metric:.4g} at iteration {self.best_iteration})",
                          soft_wrap=True)
        if self.world_size > 1:
            console.print(f"training on {self.world_size} ranks (torch DDP, {ddp.backend()}): each update draws "
                          f"batch_size={config.batch_size} per rank, {self.world_size * config.batch_size} in all",
                          soft_wrap=True)
        if self.method_config is not None and self.is_main:
            self.model_files.write_config(self.out_dir, self.method_config["method"],
                                          {**self.method_config, "trainer": config.model_dump(mode="json")})
        if self.is_main:
            self.log.open(self.iteration, self.resumed)
        if config.init_from is not None and not self.resumed and self.is_main:
            # fine-tuning: the starting weights are a candidate (iteration 0), so a run that only makes them worse
            # (a fresh Adam's first updates are lr-sized for every parameter) keeps them
            self._validate_keep_log()

        bar = progress_bar("training", "bar", "count", "remaining", "{task.fields[status]}",
                           enabled=progress and self.is_main, transient=False, console=console)
        first_iteration, stopped_by_budget = self.iteration, False
        if self.prefetch_depth > 0:
            self.prefetcher = BatchPrefetcher(self.task.sample_batch, self.rng, self.prefetch_depth,
                                              pin=self.device.type == "cuda")
        try:
            with _deferred_sigint() as sigint, bar:
                bar_task = bar.add_task("train", total=config.iterations, completed=self.iteration, status="")
                while self.iteration < config.iterations:
                    adversarial = self._adversarial()
                    self._iteration(adversarial)
                    it = self.iteration
                    stopped_by_budget = self._elapsed_s() >= self.budget_s and it < config.iterations
                    stop = sigint
                    if self.world_size > 1:  # all ranks stop together: at rank 0's budget, at any rank's Ctrl-C
                        stopped_by_budget, interrupted = ddp.any_rank(self.device, stopped_by_budget and self.is_main,
                                                                      sigint["stop"])
                        stop = {"stop": interrupted}
                    if self.is_main and (it % config.validate_every == 0 or it == config.iterations
                                         or stopped_by_budget):
                        self._validate_keep_log()
                    if (it % config.checkpoint_every == 0 or it == config.iterations or stop["stop"]
                            or stopped_by_budget):
                        self._checkpoint()
                    bar.update(bar_task, completed=it, status=self._status(adversarial, first_iteration))
                    if stop["stop"]:
                        raise KeyboardInterrupt
                    if stopped_by_budget:
                        if self.is_main:  # the budget is rank 0's (ranks take its decision)
                            console.print(f"time budget of {config.time_budget_minutes:g} min spent at iteration "
                                          f"{it} of {config.iterations}; checkpoint written (continue with "
                                          "--resume)", soft_wrap=True)
                        break
        except KeyboardInterrupt:
            if self._saved_at != self.iteration:
                self._checkpoint()  # interrupted inside an iteration: the weights include its partial updates
            raise
        finally:
            self._stop_prefetching()
            if self.discriminator is not None:
                self.discriminator.requires_grad_(True)
            self.log.close()
        if self._saved_at != self.iteration:
            self._checkpoint()
        if self.world_size > 1:  # every rank returns rank 0's result, once its files are written
            self.best_metric, self.best_iteration = ddp.from_rank0((self.best_metric, self.best_iteration))
        return TrainResult(self.best_metric, self.best_iteration, self.iteration, self.seconds, self.log.path,
                           stopped_by_budget, dict(self.timings))


def train(task: AdversarialTask, config: TrainerConfig, out_dir: str | Path, *, model_files: ModelFiles,
          resume: bool = False, progress: bool = True, method_config: dict | None = None,
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
    model_files : ModelFiles
        Writes ``config.json`` and ``weights.safetensors``; the methods pass :mod:`widefield3d.zoo`.
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
        config (under ``"trainer"``) to ``config.json`` by ``model_files.write_config``.
    resumable_method_keys : sequence of str
        Dotted ``method_config`` keys that may change on resume besides
        :data:`widefield3d.train.resume.METHOD_KEYS_FREE_ON_RESUME` (e.g. a flat config's copies of trainer fields).

    Returns
    -------
    TrainResult
    """
    return AdversarialTrainer(task, config, out_dir, model_files=model_files, resume=resume,
                              method_config=method_config, resumable_method_keys=resumable_method_keys).run(progress)
