"""Training speed of every trainable network: seconds, FLOPs and GFLOP/s per iteration, and what changes them.

Networks: Deep-Z generator + discriminator, MFPINet, WFCON-Net 3D and its 2D version, and the DIP U-Net (its
Pretr II pre-training update: supervised L2, Adam, no discriminator; a DIP reconstruction step is dominated by the
renderer and is timed by ``bench_volume.py``). Each at the shipped CPU size (widths, patch and batch of the
``model_zoo/*/config.json``; WFCON-Net 2D has no shipped model and takes the 3D model's settings) and at the paper
size (the config defaults).

- seconds per training iteration: ``discriminator_steps`` D updates, then ``generator_steps`` G updates, with the
  losses and optimisers of :func:`widefield3d.train.trainer.train`, on one fixed random batch (no data loading,
  validation or checkpoints), float32 on the CPU; median over ``--repeats`` after ``--warmup`` untimed ones;
- FLOPs per iteration: :class:`torch.utils.flop_counter.FlopCounterMode` over one iteration run on the meta device
  (shapes only: the convolutions and matrix products of the forward and backward passes);
- achieved GFLOP/s, the float32 ``torch.matmul`` rate of 2048 x 2048 matrices at the same thread count, measured in
  the same run (median of repeats before and after the networks), and their ratio;
- levers, as extra rows on the shipped CPU sizes, compared with that net's ``contiguous`` row as
  ``t_contiguous / t_lever`` (> 1: faster): ``channels_last`` (``channels_last_3d`` for 3D nets) for networks and
  batches; ``threads=N`` (``torch.set_num_threads``, 1 and 2); ``zero-padding``: a copy whose replicate-padded
  convolutions pad with zeros (measurement only: it changes the network); ``batch/patch``: the same pixels per
  batch as a quarter of the batch at twice the lateral size (or four times the batch at half the size);
  ``torch.compile`` of G and D, in a child process, skipped when its first iteration (compilation) takes longer
  than ``--compile-timeout`` s. bfloat16 is not tried (reported 3-7x slower than float32 on these CPUs; not
  measured here).

Paper sizes are too slow for whole iterations on a small CPU, and WFCON-Net 3D at its batch of 24 would need tens
of GB (estimate: a few GB of activations per sample): with ``--paper-steps N`` (default 1) each paper row times N
single D and N single G updates (after ``--warmup`` untimed ones) at a batch of at most ``--paper-batch`` samples,
composes the configured iteration and scales it linearly to the paper batch; such rows are flagged
``extrapolated``. Their FLOPs are counted at the paper batch, their GFLOP/s are those of the timed batch.

``--real-run``: a real short :func:`widefield3d.methods.deepz.train` with the shipped ``deepz-20x075`` settings
on two simulated fields (:func:`widefield3d.sim.dataset.simulate_dataset`, in a temporary directory), and the
share of its wall time spent drawing batches, in updates, validating and writing checkpoints (from
``TrainResult.timings``; a trainer without it gives only the totals).

Usage::

    nice python benchmarks/bench_training.py [--nets deepz,mfpi,wfcon3d,wfcon2d,dip] [--sizes cpu,paper]
        [--repeats 5] [--warmup 1] [--paper-steps 1] [--paper-batch 2] [--no-levers] [--compile-timeout 120]
        [--real-run] [--real-iterations 50] [--threads N] [--out benchmarks/results/training.json]
    nice python benchmarks/bench_training.py --quick   # smoke run at tiny sizes, writes training_quick.json

Prints a table and writes the JSON with the machine, the date and the command.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from widefield3d import io, zoo
from widefield3d.train import losses
from widefield3d.train.trainer import TrainerConfig

RESULTS = Path(__file__).parent / "results"
NETS = ("deepz", "mfpi", "wfcon3d", "wfcon2d", "dip")
SIZES = ("cpu", "paper")
GAN_LOSSES = {"lsgan": (losses.lsgan_generator_loss, losses.lsgan_discriminator_loss),
              "bce": (losses.bce_generator_loss, losses.bce_discriminator_loss)}
MIN_LATERAL = {"deepz": 64, "mfpi": 16, "wfcon3d": 32, "wfcon2d": 32, "dip": 8}
"""Smallest valid lateral patch side (target pixels) per net: divisible by its pooling, large enough for the Deep-Z
discriminator (64) and for WFCON-Net's instance norm at the coarsest level (2 x 2). ``--quick`` runs every net at
it, with a batch of ``QUICK_BATCH``."""
QUICK_BATCH = 4
COMPILE_TIMEOUT_RC = 3
"""Exit status of the torch.compile child when compiling took longer than allowed."""


@dataclass
class Setup:
    """A generator (and discriminator) at one size, with its trainer settings and batch geometry.

    ``batch`` counts samples as the method's config does (WFCON-Net 2D: crops of ``planes`` planes each);
    ``lateral`` is the target's lateral side in pixels; ``shapes(batch, lateral)`` gives the input and target
    tensor shapes.
    """

    net: str
    size: str
    source: str
    generator: nn.Module
    discriminator: nn.Module | None
    trainer: TrainerConfig
    extra: Callable | None
    batch: int
    lateral: int
    shapes: Callable[[int, int], tuple[tuple[int, ...], tuple[int, ...]]]
    quick: bool = False

    @property
    def spatial_dims(self) -> int:
        return len(self.shapes(1, self.lateral)[0]) - 2

    @property
    def steps(self) -> str:
        d = self.trainer.discriminator_steps if self.discriminator is not None else 0
        return f"{d} D + {self.trainer.generator_steps} G" if d else f"{self.trainer.generator_steps} G"


def _shipped(name: str, method: str) -> dict:
    return zoo.read_config(zoo.resolve_model(name, method), method)


def build(net: str, size: str, quick: bool = False) -> Setup:
    """The networks, trainer settings and batch geometry of ``net`` at ``size`` ("cpu": shipped, "paper")."""
    cpu = size == "cpu"
    if net == "deepz":
        from widefield3d.methods.deepz import DeepZConfig
        from widefield3d.nets.deepz import DeepZDiscriminator, DeepZGenerator

        cfg = DeepZConfig.model_validate(_shipped("deepz-20x075", "deepz")) if cpu else DeepZConfig()
        setup = Setup(net, size, "model_zoo/deepz-20x075" if cpu else "DeepZConfig()",
                      DeepZGenerator(cfg.network.width), DeepZDiscriminator(cfg.network.discriminator_width),
                      cfg.trainer, None, cfg.trainer.batch_size, cfg.data.patch_px,
                      lambda b, p: ((b, 2, p, p), (b, 1, p, p)))
    elif net == "mfpi":
        from widefield3d.methods.mfpi import MFPIConfig, build_networks

        cfg = MFPIConfig.model_validate(_shipped("mfpi-cytology-20x075", "mfpi")) if cpu else MFPIConfig()
        c, n = cfg.network.channels, cfg.network.planes
        setup = Setup(net, size, "model_zoo/mfpi-cytology-20x075" if cpu else "MFPIConfig()", *build_networks(cfg),
                      cfg.trainer, None, cfg.trainer.batch_size, cfg.data.patch_size,
                      lambda b, p: ((b, c, p // 2, p // 2), (b, c * n, p, p)))
    elif net in ("wfcon3d", "wfcon2d"):
        from widefield3d.methods.wfcon import PairedStacks, WFConConfig, make_task

        network = net[-2:]
        cfg = WFConConfig.model_validate(_shipped("wfcon-60x14-tissue", "wfcon")) if cpu else WFConConfig()
        cfg = cfg.model_copy(update={"network": cfg.network.model_copy(update={"kind": network})})
        crop = cfg.data.crop_zyx
        planes = 4 if quick and network == "3d" else crop[0]
        stacks = [np.zeros((planes, 16, 16), np.float32)] * 2  # make_task only crops them for validation batches
        data = cfg.data.model_copy(update={"crop_zyx": (planes, 16, 16), "validation_crops": 1})
        task = make_task(PairedStacks(["a", "b"], stacks, stacks, (cfg.data.z_step_um, 1.0, 1.0)),
                         cfg.model_copy(update={"data": data}))
        shapes = ((lambda b, p: ((b, 1, planes, p, p),) * 2) if network == "3d"
                  else (lambda b, p: ((b * planes, 1, p, p),) * 2))
        source = f"model_zoo/wfcon-60x14-tissue{', network 2d' if network == '2d' else ''}" if cpu else \
            f"WFConConfig(network.kind='{network}')"
        setup = Setup(net, size, source, task.generator, task.discriminator, cfg.trainer, task.extra_generator_loss,
                      cfg.trainer.batch_size, crop[1], shapes)
    elif net == "dip":
        from widefield3d.methods.volume import DenoiserConfig
        from widefield3d.nets.dip import DipUNet

        cfg = DenoiserConfig.model_validate(_shipped("dip-ellipsoid-denoise", "volume-dip")) if cpu \
            else DenoiserConfig()
        depth, batch = cfg.data.shape[0], cfg.trainer.batch_size
        trainer = TrainerConfig(batch_size=batch, generator_steps=1, discriminator_steps=0,
                                lr_generator=cfg.trainer.lr, pixel_weight=1.0, pixel_loss="l2")
        setup = Setup(net, size, "model_zoo/dip-ellipsoid-denoise (pretraining)" if cpu else "DenoiserConfig()",
                      DipUNet(cfg.network), None, trainer, None, batch, cfg.data.shape[1],
                      lambda b, p: ((b, 1, depth, p, p),) * 2)
    else:
        raise ValueError(f"unknown net {net!r}; choose from {', '.join(NETS)}")
    if quick:
        setup.batch, setup.lateral, setup.quick = QUICK_BATCH, MIN_LATERAL[net], True
    return setup


class Updates:
    """The D and G updates of :func:`widefield3d.train.trainer.train`, on one fixed batch ``(x, y)``.

    ``optimise=False`` skips the optimisers (for FLOP counting on the meta device).
    """

    def __init__(self, setup: Setup, x: torch.Tensor, y: torch.Tensor, optimise: bool = True):
        cfg = setup.trainer
        self.setup, self.x, self.y = setup, x, y
        self.gen_loss, self.disc_loss = GAN_LOSSES[cfg.gan_loss]
        setup.generator.train()
        self.opt_g = (torch.optim.Adam(setup.generator.parameters(), lr=cfg.lr_generator, betas=cfg.adam_betas)
                      if optimise else None)
        self.opt_d = None
        if setup.discriminator is not None:
            setup.discriminator.train()
            if optimise:
                self.opt_d = torch.optim.Adam(setup.discriminator.parameters(), lr=cfg.lr_discriminator,
                                              betas=cfg.adam_betas)

    @staticmethod
    def _update(optimiser, loss: torch.Tensor) -> None:
        if optimiser is not None:
            optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if optimiser is not None:
            optimiser.step()

    def d_step(self) -> None:
        """D on a real batch and on detached generator outputs."""
        g, d = self.setup.generator, self.setup.discriminator
        d.requires_grad_(True)
        with torch.no_grad():
            fake = g(self.x)
        self._update(self.opt_d, self.disc_loss(d(self.y), d(fake.detach())))

    def g_step(self) -> None:
        """G by pixel + adversarial (+ extra) loss; gradients flow through a frozen D."""
        cfg, d = self.setup.trainer, self.setup.discriminator
        fake = self.setup.generator(self.x)
        loss = cfg.pixel_weight * losses.pixel_loss(fake, self.y, cfg.pixel_loss)
        if d is not None:
            d.requires_grad_(False)
            loss = loss + cfg.adversarial_weight * self.gen_loss(d(fake))
        if self.setup.extra is not None:
            loss = loss + self.setup.extra(fake, self.y).float()
        self._update(self.opt_g, loss)

    def iteration(self) -> None:
        if self.setup.discriminator is not None:
            for _ in range(self.setup.trainer.discriminator_steps):
                self.d_step()
        for _ in range(self.setup.trainer.generator_steps):
            self.g_step()


def _memory_format(setup: Setup, channels_last: bool) -> torch.memory_format:
    if not channels_last:
        return torch.contiguous_format
    return torch.channels_last if setup.spatial_dims == 2 else torch.channels_last_3d


def random_batch(setup: Setup, batch: int, lateral: int, memory_format=torch.contiguous_format):
    """Uniform random input and target of the configured shapes (float32, seeded)."""
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.rand(shape, generator=generator).contiguous(memory_format=memory_format)
                 for shape in setup.shapes(batch, lateral))


def timed(fn: Callable[[], None], repeats: int, warmup: int = 1) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


@functools.lru_cache(maxsize=None)
def iteration_flops(net: str, size: str, quick: bool, batch: int, lateral: int) -> float:
    """FLOPs of one iteration (FlopCounterMode on the meta device: shapes only, nothing computed)."""
    with torch.device("meta"):
        setup = build(net, size, quick)
        x, y = (torch.empty(shape) for shape in setup.shapes(batch, lateral))
    with FlopCounterMode(display=False) as counter:
        Updates(setup, x, y, optimise=False).iteration()
    return float(counter.get_total_flops())


def matmul_rates(threads: int, repeats: int) -> list[float]:
    """GFLOP/s of ``repeats`` float32 2048 x 2048 ``torch.matmul`` calls (after one warm-up) at ``threads``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        return [2 * 2048**3 / s / 1e9 for s in timed(lambda: torch.matmul(a, b), repeats)]
    finally:
        torch.set_num_threads(previous)


def zero_padding(setup: Setup) -> int:
    """Switch replicate-padded convolutions of G and D to zero padding in place; returns how many were switched."""
    switched = 0
    for net in (setup.generator, setup.discriminator):
        for m in net.modules() if net is not None else ():
            if isinstance(m, nn.modules.conv._ConvNd) and m.padding_mode == "replicate":
                m.padding_mode = "zeros"
                switched += 1
    return switched


def measure(setup: Setup, *, lever: str, threads: int, batch: int, lateral: int, repeats: int, warmup: int,
            channels_last: bool = False, per_step: bool = False, paper_batch: int | None = None) -> dict:
    """One row: seconds and FLOPs per iteration of ``setup`` at ``batch`` x ``lateral``.

    ``per_step`` times single D and G updates and composes the iteration; ``paper_batch`` (> ``batch``) scales
    the result linearly to that batch. Both mark the row ``extrapolated``.
    """
    cfg = setup.trainer
    d_steps = cfg.discriminator_steps if setup.discriminator is not None else 0
    memory_format = _memory_format(setup, channels_last)
    for net in (setup.generator, setup.discriminator):
        if net is not None:
            net.to(memory_format=memory_format)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        updates = Updates(setup, *random_batch(setup, batch, lateral, memory_format))
        row = {"net": setup.net, "size": setup.size, "lever": lever, "source": setup.source, "threads": threads,
               "batch": batch, "configured_batch": paper_batch or batch, "lateral_px": lateral,
               "x_shape": list(setup.shapes(batch, lateral)[0]), "steps": setup.steps}
        if per_step:
            d = timed(updates.d_step, repeats, warmup) if d_steps else []
            g = timed(updates.g_step, repeats, warmup)
            row.update(d_step_s=d, g_step_s=g)
            seconds = (d_steps * statistics.median(d) if d_steps else 0.0) + cfg.generator_steps * statistics.median(g)
        else:
            row["times_s"] = timed(updates.iteration, repeats, warmup)
            seconds = statistics.median(row["times_s"])
    finally:
        torch.set_num_threads(previous)
    flops = iteration_flops(setup.net, setup.size, setup.quick, batch, lateral)
    scale = (paper_batch or batch) / batch
    row.update(seconds_per_iteration=seconds * scale,
               gflop_per_iteration=iteration_flops(setup.net, setup.size, setup.quick, paper_batch or batch,
                                                   lateral) / 1e9,
               gflops_per_s=flops / seconds / 1e9, extrapolated=per_step or scale != 1)
    if row["extrapolated"]:
        updated = "D and G" if d_steps else "G"
        how = f"{repeats} timed {updated} updates" if per_step else f"{repeats} timed iterations"
        row["note"] = f"extrapolated: {how} at batch {batch}" + (f", x{scale:g} to batch {paper_batch}"
                                                                  if scale != 1 else "")
    return row


def compile_worker(net: str, quick: bool, repeats: int, warmup: int, timeout: float) -> None:
    """Child process of the torch.compile lever: print one JSON line, or exit with COMPILE_TIMEOUT_RC."""
    setup = build(net, "cpu", quick)
    setup.generator = torch.compile(setup.generator)
    if setup.discriminator is not None:
        setup.discriminator = torch.compile(setup.discriminator)
    updates = Updates(setup, *random_batch(setup, setup.batch, setup.lateral))
    watchdog = threading.Timer(timeout, os._exit, args=(COMPILE_TIMEOUT_RC,))
    watchdog.daemon = True
    watchdog.start()
    first = timed(updates.iteration, 1, warmup=0)[0]  # compiles every graph: G with and without grad, D in both modes
    watchdog.cancel()
    print(json.dumps({"first_iteration_s": first, "times_s": timed(updates.iteration, repeats, warmup)}))


def compile_row(setup: Setup, threads: int, repeats: int, warmup: int, timeout: float) -> dict:
    """The torch.compile lever of ``setup`` (shipped size), timed in a child process."""
    row = {"net": setup.net, "size": setup.size, "lever": "torch.compile", "source": setup.source,
           "threads": threads, "batch": setup.batch, "lateral_px": setup.lateral,
           "x_shape": list(setup.shapes(setup.batch, setup.lateral)[0]), "steps": setup.steps, "extrapolated": False}
    command = [sys.executable, str(Path(__file__).resolve()), "--compile-worker", setup.net, "--threads",
               str(threads), "--repeats", str(repeats), "--warmup", str(warmup), "--compile-timeout", str(timeout)] + \
        (["--quick"] if setup.quick else [])
    try:
        child = subprocess.run(command, capture_output=True, text=True, timeout=timeout + 600)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"no result within {timeout + 600:g} s"}
    if child.returncode == COMPILE_TIMEOUT_RC:
        return {**row, "error": f"skipped: compiling took longer than {timeout:g} s"}
    if child.returncode:
        lines = child.stderr.strip().splitlines() or [f"exit status {child.returncode}"]
        return {**row, "error": f"failed: {lines[-1][:300]}"}
    result = json.loads(child.stdout.strip().splitlines()[-1])
    seconds = statistics.median(result["times_s"])
    flops = iteration_flops(setup.net, setup.size, setup.quick, setup.batch, setup.lateral)
    return {**row, "times_s": result["times_s"], "seconds_per_iteration": seconds,
            "gflop_per_iteration": flops / 1e9, "gflops_per_s": flops / seconds / 1e9,
            "compile_first_iteration_s": result["first_iteration_s"],
            "note": f"first iteration (compiling) {result['first_iteration_s']:.1f} s"}


def batch_patch(setup: Setup) -> tuple[int, int]:
    """The same pixels per batch: a quarter of the batch at twice the lateral size, or 4x the batch at half."""
    if setup.batch % 4 == 0:
        return setup.batch // 4, setup.lateral * 2
    return setup.batch * 4, setup.lateral // 2


def net_rows(net: str, size: str, args, default_threads: int, log: Callable[[str], None]) -> list[dict]:
    """The rows of one net at one size: the contiguous baseline and, at the CPU size, the levers."""
    setup = build(net, size, args.quick)
    log(f"{net} {size}: contiguous")
    if size == "paper":
        b = min(setup.batch, args.paper_batch) if args.paper_batch else setup.batch
        per_step = args.paper_steps > 0
        return [measure(setup, lever="contiguous", threads=default_threads, batch=b, lateral=setup.lateral,
                        repeats=args.paper_steps if per_step else args.repeats, warmup=args.warmup,
                        per_step=per_step, paper_batch=setup.batch)]
    common = {"lateral": setup.lateral, "batch": setup.batch, "repeats": args.repeats, "warmup": args.warmup}
    rows = [measure(setup, lever="contiguous", threads=default_threads, **common)]
    if not args.levers:
        return rows
    name = "channels_last" if setup.spatial_dims == 2 else "channels_last_3d"
    log(f"{net} {size}: {name}")
    rows.append(measure(build(net, size, args.quick), lever=name, threads=default_threads, channels_last=True,
                        **common))
    for threads in sorted({1, 2} - {default_threads}):
        log(f"{net} {size}: threads={threads}")
        rows.append(measure(build(net, size, args.quick), lever=f"threads={threads}", threads=threads, **common))
    padded = build(net, size, args.quick)
    if zero_padding(padded):
        log(f"{net} {size}: zero-padding")
        rows.append(measure(padded, lever="zero-padding", threads=default_threads, **common))
    b, lateral = batch_patch(setup)
    log(f"{net} {size}: batch/patch {b} x {lateral} px")
    rows.append(measure(build(net, size, args.quick), lever="batch/patch", threads=default_threads,
                        **{**common, "batch": b, "lateral": lateral}))
    if args.compile_timeout > 0:
        log(f"{net} {size}: torch.compile (child process, limit {args.compile_timeout:g} s)")
        rows.append(compile_row(setup, default_threads, args.repeats, args.warmup, args.compile_timeout))
    base = rows[0]["seconds_per_iteration"]
    for row in rows:
        if "seconds_per_iteration" in row:
            row["speedup_vs_contiguous"] = base / row["seconds_per_iteration"]
    return rows


def real_run(iterations: int, every: int | None = None) -> dict:
    """A real short Deep-Z training (shipped CPU settings) on two simulated fields; where its wall time goes.

    ``every``: validation and checkpoint interval in iterations (default: the shipped model's).
    """
    from widefield3d.methods import deepz
    from widefield3d.sim.dataset import simulate_dataset

    cfg = deepz.DeepZConfig.model_validate(_shipped("deepz-20x075", "deepz"))
    every = every or cfg.trainer.validate_every
    trainer = cfg.trainer.model_copy(update={"iterations": iterations, "validate_every": every,
                                             "checkpoint_every": every, "device": "cpu"})
    cfg = cfg.model_copy(update={"trainer": trainer, "provenance": {}})
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        start = time.perf_counter()
        data = simulate_dataset("deepz-20x075", Path(tmp) / "data", n=2, seed=0, progress=False)
        simulate_s = time.perf_counter() - start
        start = time.perf_counter()
        result = deepz.train(data, Path(tmp) / "model", cfg, progress=False)
        wall = time.perf_counter() - start
    out = {"model": "deepz-20x075", "fields": 2, "iterations": iterations, "validate_every": every,
           "checkpoint_every": every, "batch": trainer.batch_size, "threads": torch.get_num_threads(),
           "simulate_s": simulate_s, "train_wall_s": wall, "train_result_seconds": result.seconds}
    timings = getattr(result, "timings", None)
    if timings:
        parts = {k: float(v) for k, v in timings.items()}
        parts["other"] = wall - sum(parts.values())
        note = "other = building the training pairs, the networks and the files outside the loop"
    else:
        parts = {"updates": result.seconds, "rest": wall - result.seconds}
        note = ("TrainResult has no timings, so only totals: updates = TrainResult.seconds (G/D updates, batches "
                "drawn inside); rest = pair building, validation, checkpoints and files")
    return {**out, "timings_s": parts, "shares": {k: v / wall for k, v in parts.items()}, "note": note}


# ------------------------------------------------------------------------------------------------ report


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_average": list(os.getloadavg())}


def print_rows(console: Console, rows: list[dict], matmul: dict) -> None:
    table = Table(title="seconds and FLOPs per training iteration (float32, CPU)")
    for name, justify in (("net", "left"), ("size", "left"), ("lever", "left"), ("thr", "right"),
                          ("input", "left"), ("iteration", "left"), ("s/iter", "right"), ("GFLOP/iter", "right"),
                          ("GFLOP/s", "right"), ("% matmul", "right"), ("vs contig.", "right"), ("note", "left")):
        table.add_column(name, justify=justify)
    for r in rows:
        shape = "x".join(map(str, r["x_shape"]))
        if "seconds_per_iteration" not in r:
            table.add_row(r["net"], r["size"], r["lever"], str(r["threads"]), shape, r["steps"], *["-"] * 5,
                          r["error"])
            continue
        rate = matmul[str(r["threads"])]["median_gflops_per_s"]
        speedup = r.get("speedup_vs_contiguous")
        table.add_row(r["net"], r["size"], r["lever"], str(r["threads"]), shape, r["steps"],
                      f"{r['seconds_per_iteration']:.3g}", f"{r['gflop_per_iteration']:.4g}",
                      f"{r['gflops_per_s']:.1f}", f"{100 * r['gflops_per_s'] / rate:.0f}",
                      "" if speedup is None else f"{speedup:.2f}", r.get("note", ""))
    console.print(table)
    console.print("matmul 2048 x 2048 float32: " + ", ".join(
        f"{t} thread{'s' if t != '1' else ''} {m['median_gflops_per_s']:.1f} GFLOP/s" for t, m in matmul.items()))


def print_real_run(console: Console, real: dict) -> None:
    console.print(f"real Deep-Z run: {real['iterations']} iterations (validate and checkpoint every "
                  f"{real['validate_every']}), batch {real['batch']}, torch threads {real['threads']}; simulating the "
                  f"{real['fields']} fields took {real['simulate_s']:.1f} s")
    table = Table(title="where the wall time of deepz.train goes")
    table.add_column("part")
    table.add_column("s", justify="right")
    table.add_column("share %", justify="right")
    for part, seconds in real["timings_s"].items():
        table.add_row(part, f"{seconds:.2f}", f"{100 * real['shares'][part]:.1f}")
    table.add_row("wall", f"{real['train_wall_s']:.2f}", "100.0")
    console.print(table)
    console.print(real["note"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny batches and patches, one repeat")
    parser.add_argument("--nets", default=",".join(NETS), help=f"comma-separated subset of {','.join(NETS)}")
    parser.add_argument("--sizes", default=",".join(SIZES), help="cpu (shipped), paper, or both")
    parser.add_argument("--repeats", type=int, help="timed iterations per row (default 5; quick 1)")
    parser.add_argument("--warmup", type=int, help="untimed iterations (or updates) first (default 1; quick 0)")
    parser.add_argument("--paper-steps", type=int, default=1,
                        help="paper size: timed single D and G updates, extrapolated (0: whole iterations)")
    parser.add_argument("--paper-batch", type=int,
                        help="paper size: largest batch timed, scaled linearly to the paper batch (0: no cap; "
                             "default 2; quick 1)")
    parser.add_argument("--no-levers", dest="levers", action="store_false", help="only the contiguous rows")
    parser.add_argument("--compile-timeout", type=float,
                        help="seconds allowed to compile in the torch.compile lever; 0 skips it (default 120; "
                             "quick 0)")
    parser.add_argument("--real-run", action="store_true", help="also a real short deepz.train on simulated data")
    parser.add_argument("--real-iterations", type=int, help="iterations of the real run (default 50; quick 4)")
    parser.add_argument("--out", type=Path, help="JSON path (default results/training.json; quick "
                                                 "results/training_quick.json)")
    parser.add_argument("--threads", type=int,
                        help="torch threads of every row but the threads levers, and of the real run (default: "
                             "torch's own)")
    parser.add_argument("--compile-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 5
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    if args.paper_batch is None:
        args.paper_batch = 1 if args.quick else 2
    if args.compile_timeout is None:
        args.compile_timeout = 0 if args.quick else 120
    if args.compile_worker:
        compile_worker(args.compile_worker, args.quick, args.repeats, args.warmup, args.compile_timeout)
        return
    nets, sizes = args.nets.split(","), args.sizes.split(",")
    unknown = sorted(set(nets) - set(NETS)) + sorted(set(sizes) - set(SIZES))
    if unknown:
        parser.error(f"unknown --nets/--sizes entries: {', '.join(unknown)}")
    args.real_iterations = args.real_iterations or (4 if args.quick else 50)
    out = args.out or RESULTS / ("training_quick.json" if args.quick else "training.json")

    console = Console(width=220)
    default_threads = torch.get_num_threads()
    thread_counts = sorted({default_threads} | ({1, 2} if args.levers and "cpu" in sizes else set()))
    matmul_repeats = 2 if args.quick else 10
    result = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "command": shlex.join(["python", *sys.argv]), "machine": machine(),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k != "compile_worker"},
              "matmul": {str(t): {"before": matmul_rates(t, matmul_repeats)} for t in thread_counts}, "rows": []}

    def save() -> None:
        with io.atomic_output(out) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")

    t0 = time.perf_counter()
    for net in nets:
        for size in sizes:
            result["rows"] += net_rows(net, size, args, default_threads,
                                       lambda text: print(f"{time.perf_counter() - t0:6.1f} s  timing {text}",
                                                          file=sys.stderr, flush=True))
            save()
    for t in thread_counts:
        m = result["matmul"][str(t)]
        m["after"] = matmul_rates(t, matmul_repeats)
        m["median_gflops_per_s"] = statistics.median(m["before"] + m["after"])
    for row in result["rows"]:
        if "gflops_per_s" in row:
            row["matmul_gflops_per_s"] = result["matmul"][str(row["threads"])]["median_gflops_per_s"]
            row["fraction_of_matmul"] = row["gflops_per_s"] / row["matmul_gflops_per_s"]
    if args.real_run:
        print(f"real run: {args.real_iterations} iterations", file=sys.stderr, flush=True)
        result["real_run"] = real_run(args.real_iterations, 2 if args.quick else None)
    result["machine"]["load_average_end"] = list(os.getloadavg())
    save()
    if result["rows"]:
        print_rows(console, result["rows"], result["matmul"])
    if args.real_run:
        print_real_run(console, result["real_run"])
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
