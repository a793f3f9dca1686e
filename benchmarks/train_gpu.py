"""One-shot GPU training of every shipped learned model, in one run of at most ``--budget-minutes`` (default 9).

For a borrowed GPU machine (one H200, 16 CPU cores, no internet; ~15 minutes in all, start-up included). The run:

1. simulates a fresh training dataset for each model (the presets its zoo README names, dataset seed
   :data:`DATA_SEED`; the held-out sets of ``benchmarks/bench_*.py`` and the zoo READMEs use seeds 0, 1 and 9001), one
   field per task on all CPU cores (``ProcessPoolExecutor``, workers at nice 10), in the layout
   :func:`widefield3d.sim.dataset.simulate_dataset` writes. The first field of each dataset runs alone (it fills
   the on-disk PSF cache the others then read); fields are handed to the first dataset (in ``--models`` order)
   still short of its target, so datasets complete one after another and the first model trains early.
2. trains each model as soon as its dataset is complete, one model at a time on the GPU, while the other
   datasets are still being simulated: the method's own ``train()`` (data preparation, then the shared adversarial
   loop), from the shipped ``config.json`` with the GPU settings of :data:`GPU_PLANS`.
3. checks and reports: each model folder ``--out/<name>/`` holds ``config.json``, ``weights.safetensors`` (best
   validation score), ``log.csv`` and ``train_gpu.log``; each file must be below 16 MiB and the weights must load
   with the method's ``load()``; ``checkpoint.pt`` files are deleted; ``--out/summary.json`` and a printed table
   sum it up (``--out/run.log`` keeps the printed lines).

Time split (fractions of ``--budget-minutes``, measured from the start of the script):

- simulation: fields are started until 40% (:data:`SIM_END`; later only for a dataset still below its minimum); a
  dataset closes when it has its target number of fields, or after 40% once its running fields are done;
- training: until 93% (:data:`TRAIN_END`). When a model reaches the training loop (after its data preparation) it
  gets ``(time left until 93%) * weight / (sum of the weights of the models not trained yet)`` seconds, at least
  :data:`MIN_SLOT_S`, as ``TrainerConfig.time_budget_minutes`` (the trainer stops after the iteration that spends
  it, validates, keeps the best weights and writes its checkpoint); a model whose data preparation took long
  thus shortens every remaining slot alike;
- the last 7%: loading checks, summary, clean-up. The optional DIP pre-training (``--models`` must name
  ``dip-ellipsoid-denoise``) has no time budget: it runs first, while the first datasets are being simulated.

Usage::

    python benchmarks/train_gpu.py --out DIR [--models a,b] [--device cuda|cpu|auto] [--workers N]
        [--budget-minutes 9] [--data DIR] [--smoke]

``--smoke``: tiny fields, networks and iteration counts (:data:`SMOKE_PLANS`), for a CPU check in about a minute.
``--data DIR`` keeps the simulated data there (fields already there are reused); by default they go to a
temporary folder that is deleted at the end. Exit status 0 when every model produced loadable weights below
16 MiB, 1 otherwise, 2 for a bad argument.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

SIZE_LIMIT = 16 * 2**20
"""Bytes; every file of a model folder must stay below this (the zoo ships the folder in the package)."""
HEADER_ALLOWANCE = 64 * 2**10
"""Bytes kept free below :data:`SIZE_LIMIT` for the safetensors header when the width is chosen."""
DATA_SEED = 11
"""Dataset seed of the simulated training data (field ``i`` gets ``DATA_SEED * 100003 + i``, as in
``simulate_dataset``); the held-out evaluation sets use dataset seeds 0, 1 and 9001."""
SIM_END = 0.40
TRAIN_END = 0.93
MIN_SLOT_S = 15.0
"""Seconds of training a model gets even when earlier phases overran."""
DIP = "dip-ellipsoid-denoise"


@dataclass(frozen=True)
class Plan:
    """How one model is trained by this script (lengths in pixels unless stated)."""

    method: str  # "deepz", "mfpi", "wfcon" or "volume-dip"
    description: str
    width: float  # generator width multiplier (shrunk until the weights fit in SIZE_LIMIT); DIP: unused (1.0)
    discriminator_width: float | None
    patch: int | tuple[int, int, int]  # deepz patch_px, mfpi patch_size, wfcon crop_zyx, DIP volume shape
    batch: int
    iterations: int  # upper bound: the time slot usually stops training first; DIP: epochs
    validate_every: int
    warmup: int  # warmup_iterations: first iterations on the pixel loss alone
    weight: float = 1.0  # share of the training time
    dataset: str | None = None  # DATASET_PRESETS name
    fields: int = 0  # fields to simulate
    min_fields: int = 0  # fewest fields worth training on (after the simulation deadline, fields are only started
    # for a dataset below this)
    preset_update: dict = field(default_factory=dict)  # DatasetPreset fields changed for this run
    extra: dict = field(default_factory=dict)  # further config changes (nested dicts merge)


GPU_PLANS: dict[str, Plan] = {
    # Deep-Z: the shipped recipe (multi-scale L2 on clean targets, FiLM DPM conditioning; docs/deepz.md, "The overfit
    # test"), pixel loss only (warm-up = the whole run), on the paper's batch 20 and 256 px patches of 256 px fields;
    # width 0.375 (10 MiB, 2.25x the CPU variant's compute at inference); no plane alignment (simulated stacks need
    # none). The largest share of the time: Deep-Z is the flagship.
    "deepz-20x075": Plan(
        "deepz", "Deep-Z, simulated 20x/0.75 air, 0.325 um pixels, +-10 um, beads + worm nuclei",
        width=0.375, discriminator_width=0.125, patch=256, batch=20, iterations=100000, validate_every=100,
        warmup=100000, weight=2.0, dataset="deepz-20x075", fields=32, min_fields=4, extra={"data": {"align": False}}),
    # Deep-Z+: the shipped CPU recipe (the only one measured to beat the old model on held-out fields: width 0.25,
    # the DPM as an input channel, L1 + 0.02 LSGAN from the start, two generator steps per discriminator step;
    # Deep-Z's FiLM + multi-scale L2 recipe scored 0.66 mean SSIM from scratch, docs/deepz.md) on the paper's
    # batch 20 and 256 px patches, so ``--init`` can continue the shipped weights; the preset's 256 px fields share
    # one pixel and z grid (no lateral or axial registration: the focus-curve centring alone is off by 2.2 µm std on
    # these thick fields, docs/deepz.md).
    "deepzplus-63x14-confocal": Plan(
        "deepz", "Deep-Z+, simulated 63x/1.4 oil wide-field -> confocal, 0.103 um pixels, +-3 um, filaments + nuclei",
        width=0.25, discriminator_width=0.125, patch=256, batch=20, iterations=100000, validate_every=100,
        warmup=0, weight=1.5, dataset="deepzplus-63x14", fields=24, min_fields=4,
        extra={"data": {"align": False, "registration": "none", "axial": "none", "max_fields": None}}),
    # MFPINet: the paper's width (1.0, 9 MiB) with the shipped model's network (its global skip, docs/mfpi.md) and
    # learning rate; patches of the whole 256 px field (paper 768); batch 4 (code default, the paper gives none);
    # the lr halved as shipped.
    "mfpi-cytology-20x075": Plan(
        "mfpi", "MFPINet, simulated 20x/0.75 H&E cytology", width=1.0, discriminator_width=None, patch=256, batch=4,
        iterations=20000, validate_every=100, warmup=1000, weight=0.8, dataset="mfpi-cytology-20x075", fields=24,
        min_fields=4),
    # WFCON-Net: paper batch 24 and 12-plane crops; 128 px fields (a 256 px field costs minutes to simulate).
    "wfcon-60x14-tissue": Plan(
        "wfcon", "WFCON-Net 3D, simulated 60x/1.4 oil thick scattering tissue, 0.5 um steps", width=0.375,
        discriminator_width=0.125, patch=(12, 128, 128), batch=24, iterations=6000, validate_every=25, warmup=300,
        weight=1.0, dataset="wfcon-60x14-tissue", fields=24, min_fields=4, preset_update={"field_px": 128}),
    # DIP Pretr II (opt-in): the paper's 1000 volumes, batch 20, 5 epochs, at the reconstruction size 11x128x128.
    DIP: Plan("volume-dip", "DIP U-Net pre-trained to denoise random-ellipsoid transmittance volumes (Pretr II)",
              width=1.0, discriminator_width=None, patch=(11, 128, 128), batch=20, iterations=5, validate_every=1,
              warmup=0, extra={"data": {"n_volumes": 1000}}),
}
DEFAULT_MODELS = tuple(name for name in GPU_PLANS if name != DIP)

_SMOKE_DEEPZ = {"data": {"align": False, "planes_each_side": 3, "targets_per_input": 2}, "validation_max_pairs": 8}
SMOKE_PLANS: dict[str, Plan] = {
    "deepz-20x075": Plan(
        "deepz", "smoke test", width=0.0625, discriminator_width=0.03125, patch=32, batch=2, iterations=3,
        validate_every=3, warmup=1, dataset="deepz-20x075", fields=2, min_fields=2,
        preset_update={"field_px": 32, "sample_depth_um": 6.0, "z_range_um": (-1.5, 1.5)}, extra=_SMOKE_DEEPZ),
    "deepzplus-63x14-confocal": Plan(
        "deepz", "smoke test", width=0.0625, discriminator_width=0.03125, patch=32, batch=2, iterations=3,
        validate_every=3, warmup=1, dataset="deepzplus-63x14", fields=2, min_fields=2,
        preset_update={"field_px": 32, "sample_depth_um": 4.0, "z_range_um": (-0.6, 0.6)}, extra=_SMOKE_DEEPZ),
    "mfpi-cytology-20x075": Plan(
        "mfpi", "smoke test", width=0.0625, discriminator_width=None, patch=32, batch=2, iterations=3,
        validate_every=3, warmup=1, dataset="mfpi-cytology-20x075", fields=2, min_fields=2,
        preset_update={"field_px": 32, "sample_depth_um": 14.4, "z_range_um": (-2.7, 2.7)},
        extra={"network": {"planes": 3}, "epochs": 3}),
    "wfcon-60x14-tissue": Plan(
        "wfcon", "smoke test", width=0.0625, discriminator_width=0.03125, patch=(4, 32, 32), batch=2, iterations=3,
        validate_every=3, warmup=1, dataset="wfcon-60x14-tissue", fields=2, min_fields=2,
        preset_update={"field_px": 32, "sample_depth_um": 6.0, "z_range_um": (-1.0, 0.5)},
        extra={"data": {"validation_crops": 2}}),
    DIP: Plan("volume-dip", "smoke test", width=1.0, discriminator_width=None, patch=(3, 16, 16), batch=2,
              iterations=1, validate_every=1, warmup=0,
              extra={"data": {"n_volumes": 4}, "network": {"channels": [2, 4]}}),
}


# ---------------------------------------------------------------------------------------------------- configs


def _merge(base: dict, update: dict) -> dict:
    """``base`` with ``update`` applied; nested dicts are merged, anything else replaced."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _shipped(name: str, config_class) -> dict:
    """The shipped ``config.json`` of ``name`` in the current config shape, without ``provenance`` (filled again
    by training) or the trainer's ``init_from`` (the model it was fine-tuned from; ``--init`` decides here)."""
    from widefield3d import zoo

    return config_class.model_validate(zoo.read_config(zoo.ZOO_DIR / name)).model_dump(
        mode="json", exclude={"provenance": True, "trainer": {"init_from"}})


def _method_config(name: str, plan: Plan, width: float, device: str):
    """The method's config: the shipped ``config.json`` with the plan's settings (``width`` as given)."""
    description = (f"{plan.description} (benchmarks/train_gpu.py: width {width:g}, {_patch_text(plan.patch)} "
                   f"patches, batch {plan.batch})")
    trainer = {"batch_size": plan.batch, "iterations": plan.iterations, "validate_every": plan.validate_every,
               "warmup_iterations": plan.warmup, "device": device}
    if plan.method == "deepz":
        from widefield3d.methods.deepz import DeepZConfig

        update = {"description": description, "network": {"width": width, "discriminator_width":
                  plan.discriminator_width}, "data": {"patch_px": plan.patch, "max_fields": None}, "trainer": trainer}
        return DeepZConfig.model_validate(_merge(_merge(_shipped(name, DeepZConfig), update), plan.extra))
    if plan.method == "mfpi":
        from widefield3d.methods.mfpi import MFPIConfig, epoch_schedule

        extra = dict(plan.extra)
        epochs = extra.pop("epochs", None)  # run length in the shipped model's epochs unless given
        shipped = MFPIConfig.model_validate(_merge(_shipped(name, MFPIConfig), extra))
        per_epoch_shipped, shipped_trainer = shipped.iterations_per_epoch, shipped.trainer
        epochs = epochs or shipped_trainer.iterations / per_epoch_shipped
        per_epoch = max(1, round(plan.iterations / epochs))  # epochs and lr halving as shipped
        schedule = epoch_schedule(
            per_epoch * plan.batch, epochs=epochs, batch_size=plan.batch, lr=shipped_trainer.lr_generator,
            lr_halve_every_epochs=(shipped_trainer.lr_halve_every or per_epoch_shipped) / per_epoch_shipped,
            adversarial_weight=shipped_trainer.adversarial_weight,
            validations_per_epoch=max(1, per_epoch // plan.validate_every), warmup_iterations=plan.warmup,
            seed=shipped_trainer.seed, device=device)
        update = {"description": description, "network": {"width": width},
                  "data": {"patch_size": plan.patch, "patches_per_epoch": per_epoch * plan.batch, "z_step_um": None,
                           "pixel_um": None}, "trainer": schedule}
        return MFPIConfig.model_validate(_merge(shipped.model_dump(mode="json"), update))
    if plan.method == "wfcon":
        from widefield3d.methods.wfcon import WFConConfig

        update = {"description": description, "network": {"width_multiplier": width,
                  "discriminator_width_multiplier": plan.discriminator_width}, "data": {"crop_zyx": plan.patch},
                  "trainer": trainer}
        return WFConConfig.model_validate(_merge(_merge(_shipped(name, WFConConfig), update), plan.extra))
    from widefield3d.methods.volume import DenoiserConfig

    return DenoiserConfig.model_validate(_merge({"data": {"shape": plan.patch}, "trainer": {
        "batch_size": plan.batch, "epochs": plan.iterations}}, plan.extra))


def _patch_text(patch) -> str:
    return "x".join(map(str, patch)) if isinstance(patch, tuple) else f"{patch} px"


def _generator(plan: Plan, config):
    """The (untrained) generator the config describes, as the method's ``load()`` builds it."""
    if plan.method == "deepz":
        from widefield3d.methods.deepz import build_networks as deepz_networks

        return deepz_networks(config)[0]
    if plan.method == "mfpi":
        from widefield3d.methods.mfpi import build_networks

        return build_networks(config)[0]
    if plan.method == "wfcon":
        from widefield3d.methods.wfcon import build_networks as wfcon_networks

        return wfcon_networks(config)[0]
    from widefield3d.nets.dip import DipUNet

    return DipUNet(config.network)


def state_bytes(module) -> int:
    """Bytes of a module's state dict (parameters and buffers) as stored in ``weights.safetensors``."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def fitted_config(name: str, plan: Plan, device: str) -> tuple[object, float, int]:
    """The method config with the plan's width, shrunk in steps of 1/64 until the generator's weights fit in
    :data:`SIZE_LIMIT` (minus :data:`HEADER_ALLOWANCE`); returns the config, its width and the weight bytes.
    Raises ValueError when no width fits (DIP has no width: its network must fit as it is)."""
    width = plan.width
    while True:
        config = _method_config(name, plan, width, device)
        size = state_bytes(_generator(plan, config))
        if size <= SIZE_LIMIT - HEADER_ALLOWANCE:
            return config, width, size
        if plan.method == "volume-dip" or width <= 1 / 64:
            raise ValueError(f"{name}: {size / 2**20:.1f} MiB of weights at width {width:g}, over the 16 MiB limit")
        width = round(width - 1 / 64, 6)


# ---------------------------------------------------------------------------------------------------- simulation


def _worker_init() -> None:
    """Simulation workers: low priority (training comes first) and one thread for the libraries that read these
    variables when they load (numba, OpenMP, BLAS); :func:`simulate_one` sets torch's threads."""
    os.nice(10)
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _field_files(preset, stem: str) -> list[str]:
    """Paths (relative to the dataset folder) of one field's files, as ``simulate_dataset`` writes them."""
    folders = [*preset.modalities, *(f"{m}_clean" for m in preset.modalities), "truth"]
    return [f"{folder}/{stem}" for folder in folders]


def simulate_one(preset, index: int, seed: int, staging: str) -> dict:
    """Simulate field ``index`` of ``preset`` (a DatasetPreset) with ``seed`` and write its files under
    ``staging`` in the ``simulate_dataset`` layout; returns its manifest entry plus the seconds it took."""
    import torch

    from widefield3d import io
    from widefield3d.sim.dataset import simulate_field

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    acqs = simulate_field(preset, index, seed)
    stem = f"field_{index:04d}.ome.tif"
    staging = Path(staging)
    for modality, acq in acqs.items():
        io.write(staging / modality / stem, acq.as_image("noisy"))
        io.write(staging / f"{modality}_clean" / stem, acq.as_image("clean"))
    io.write(staging / "truth" / stem, next(iter(acqs.values())).as_image("truth"))
    return {"name": stem, "kind": preset.kinds[index % len(preset.kinds)], "seed": seed,
            "seconds": round(time.perf_counter() - t0, 2)}


@dataclass
class Dataset:
    """Simulation state of one model's dataset (``root`` = its folder)."""

    name: str
    preset_name: str
    preset: object  # DatasetPreset
    target: int
    minimum: int
    root: Path
    fields: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    next_index: int = 0
    running: int = 0
    closed: bool = False
    started: float | None = None
    seconds: float = 0.0  # wall time from the first submitted field to closing
    cpu_seconds: float = 0.0  # sum of the fields' simulation times

    @property
    def warm(self) -> bool:
        return bool(self.fields)


class Simulation(threading.Thread):
    """Simulates the datasets on a process pool in the background; puts each dataset's name on ``ready`` when it
    closes (see the module doc for when). Fields are written to ``.staging/`` first and moved in on success, so a
    dataset folder only ever holds complete fields (a dataset closed for failures drops its running ones)."""

    def __init__(self, datasets: list[Dataset], workers: int, deadline: float, log):
        super().__init__(daemon=True)
        self.datasets, self.workers, self.deadline, self.log = datasets, workers, deadline, log
        self.ready: queue.Queue[str] = queue.Queue()
        self.halt = threading.Event()
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_init)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # never leave the main thread waiting
            self.log(f"simulation stopped: {type(err).__name__}: {err}")
            for d in self.datasets:
                if not d.closed:
                    d.failures.append(f"simulation stopped: {err}")
                    self._close(d)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the pool now: pending fields are cancelled, running ones killed."""
        workers = list((self.pool._processes or {}).values())  # this pool's own, taken before shutdown drops them
        self.pool.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.kill()

    def _reuse(self, d: Dataset) -> None:
        """Count the fields already complete in ``d.root`` (``--data`` given again) as done."""
        while d.next_index < d.target:
            stem = f"field_{d.next_index:04d}.ome.tif"
            if not all((d.root / f).exists() for f in _field_files(d.preset, stem)):
                return
            d.fields.append({"name": stem, "kind": d.preset.kinds[d.next_index % len(d.preset.kinds)],
                             "seed": DATA_SEED * 100003 + d.next_index, "seconds": 0.0})
            d.next_index += 1

    def _next(self, after_deadline: bool) -> Dataset | None:
        """The dataset the next free worker should simulate for: the first (in ``--models`` order) that is open,
        warm (or with nothing running yet) and still short of its target (after the deadline: of its minimum).
        Datasets are thus completed one after another and the first model trains early (filling them all
        evenly kept the GPU idle for the whole simulation phase in the first GPU run)."""
        def short(d):
            return (d.minimum if after_deadline else d.target) - len(d.fields) - d.running

        return next((d for d in self.datasets if not d.closed and short(d) > 0 and (d.warm or d.running == 0)), None)

    def _close(self, d: Dataset) -> None:
        from widefield3d.optics.microscope import preset as microscope
        from widefield3d.sim.dataset import stack_depths

        d.closed = True
        d.seconds = time.monotonic() - d.started if d.started else 0.0
        if d.fields:
            m = microscope(d.preset.microscope)
            manifest = {"preset": d.preset_name, "seed": DATA_SEED, "n": len(d.fields),
                        "definition": d.preset.model_dump(mode="json"), "microscope": m.model_dump(mode="json"),
                        "z_um": stack_depths(d.preset, m).tolist(), "fields": sorted(d.fields, key=lambda f: f["name"]),
                        "written_by": "benchmarks/train_gpu.py"}
            (d.root / "dataset.json").write_text(json.dumps(manifest, indent=2))
        self.log(f"{d.name}: dataset closed with {len(d.fields)} fields in {d.seconds:.0f} s "
                 f"({d.cpu_seconds:.0f} CPU s){'; ' + d.failures[-1] if d.failures else ''}")
        self.ready.put(d.name)

    def _loop(self) -> None:
        futures = {}
        for d in self.datasets:
            d.root.mkdir(parents=True, exist_ok=True)
            self._reuse(d)
            if len(d.fields) >= d.target:
                self._close(d)
        while not self.halt.is_set():
            late = time.monotonic() >= self.deadline
            if late:
                for d in self.datasets:
                    if not d.closed and not d.running and len(d.fields) >= d.minimum:
                        self._close(d)
            while len(futures) < self.workers and (d := self._next(late)) is not None:
                index, d.next_index = d.next_index, d.next_index + 1
                d.started = d.started or time.monotonic()
                d.running += 1
                staging = d.root / ".staging" / f"field_{index:04d}"
                futures[self.pool.submit(simulate_one, d.preset, index, DATA_SEED * 100003 + index,
                                         str(staging))] = (d, index)
            if all(d.closed for d in self.datasets):
                return
            finished, _ = wait(futures, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in finished:
                d, index = futures.pop(future)
                d.running -= 1
                if d.closed:
                    continue
                try:
                    entry = future.result()
                except Exception as err:
                    d.failures.append(f"field {index} failed: {type(err).__name__}: {err}")
                    self.log(f"{d.name}: {d.failures[-1]}")
                    if len(d.failures) > 3:
                        self._close(d)
                    continue
                staging = d.root / ".staging" / f"field_{index:04d}"
                for rel in _field_files(d.preset, entry["name"]):
                    (d.root / rel).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / rel, d.root / rel)
                shutil.rmtree(staging)
                d.fields.append(entry)
                d.cpu_seconds += entry["seconds"]
                if len(d.fields) >= d.target:
                    self._close(d)


# ---------------------------------------------------------------------------------------------------- training


@contextlib.contextmanager
def trainer_hook(slot, record: dict, init: Path | None = None):
    """While a method's ``train()`` runs, enter the shared training loop through a wrapper that records when the
    loop starts (the end of the method's data preparation) and gives the run its time then: ``slot()`` seconds as
    ``TrainerConfig.time_budget_minutes`` (the trainer stops cleanly after the iteration that spends it, validated
    and checkpointed), and one checkpoint at the end only; with ``init`` (a ``weights.safetensors`` of the same
    network) the generator starts from those weights (``TrainerConfig.init_from``: validated as iteration 0, so
    the kept weights are never worse than the start). The method's ``train()`` looks the loop up when it is
    called, so the wrapper reaches every method."""
    from widefield3d.train import trainer

    real = trainer.train

    def hooked(task, config, out_dir, **kwargs):
        record["prep_s"] = round(time.monotonic() - record["start"], 1)
        minutes = round(slot() / 60, 4)
        config = trainer.TrainerConfig.model_validate(
            {**config.model_dump(), "time_budget_minutes": minutes, "checkpoint_every": config.iterations,
             "init_from": None if init is None else str(init.parent)})
        method_config = kwargs.get("method_config")
        if method_config is not None and "time_budget_minutes" in method_config:  # MFPINet's flat config
            kwargs["method_config"] = {**method_config, "time_budget_minutes": minutes}
        record["slot_s"] = round(minutes * 60, 1)
        if init is not None:  # the trainer loads it and validates it first (kept if training only worsens it)
            record["init"] = init.parent.name
        loop_start = time.monotonic()
        try:
            return real(task, config, out_dir, **kwargs)
        finally:
            record["train_s"] = round(time.monotonic() - loop_start, 1)

    trainer.train = hooked
    try:
        yield
    finally:
        trainer.train = real


def train_model(plan: Plan, config, data_dir: Path, out_dir: Path, slot, device: str, init: Path | None = None
                ) -> dict:
    """Train one model with its method's ``train()`` (DIP: without data), its generator starting from ``init``
    weights if given; returns timings and result."""
    start = time.monotonic()
    if plan.method == "volume-dip":
        from widefield3d.methods import volume

        volume.train(out_dir, config, device=device, progress=False)
        return {"train_s": round(time.monotonic() - start, 1)}
    from widefield3d.methods import deepz, mfpi, wfcon

    record = {"start": start}
    with trainer_hook(slot, record, init):
        result = {"deepz": deepz, "mfpi": mfpi, "wfcon": wfcon}[plan.method].train(data_dir, out_dir, config,
                                                                                   progress=False)
    del record["start"]
    return {**record, "best_metric": result.best_metric, "best_iteration": result.best_iteration,
            "iterations_done": result.iterations_done, "stopped_by_budget": result.stopped_by_budget,
            "timings_s": {k: round(v, 1) for k, v in (result.timings or {}).items()}}


# ---------------------------------------------------------------------------------------------------- checks


def load_check(plan: Plan, directory: Path) -> str:
    """'ok' if :func:`widefield3d.zoo.load_model` opens the model folder as a ``plan.method`` model, else the error
    in one line."""
    from widefield3d import zoo

    try:
        method = zoo.load_model(directory).method
        if method != plan.method:
            return f"a {method!r} model, not {plan.method!r}"
    except Exception as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return "ok"


def write_dip_log(directory: Path) -> None:
    """DIP pre-training keeps its per-epoch loss in config.json; write it as log.csv like the trainer's."""
    from widefield3d import zoo

    losses = zoo.read_config(directory, "volume-dip")["provenance"]["epoch_mse"]
    rows = ["epoch,train_mse", *(f"{i + 1},{v!r}" for i, v in enumerate(losses))]
    (directory / "log.csv").write_text("\n".join(rows) + "\n")


def finish(name: str, plan: Plan, directory: Path, row: dict) -> dict:
    """Delete the checkpoint, check sizes and loading, write ``train_gpu.log``; returns the summary row."""
    (directory / "checkpoint.pt").unlink(missing_ok=True)
    problems = [row["status"]] if row.get("status") else []
    if not (directory / "weights.safetensors").is_file():
        problems.append("no weights.safetensors (no validation ran)")
    else:
        loaded = load_check(plan, directory)
        if loaded != "ok":
            problems.append(f"load() failed: {loaded}")
    sizes = {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}
    problems += [f"{f} is {s / 2**20:.1f} MiB (limit 16)" for f, s in sizes.items() if s >= SIZE_LIMIT]
    row.update(files={f: round(s / 2**20, 3) for f, s in sizes.items()},
               weights_mib=round(sizes.get("weights.safetensors", 0) / 2**20, 2),
               status="ok" if not problems else "; ".join(problems))
    lines = [f"{name}: {plan.description}", f"written by benchmarks/train_gpu.py on {time.strftime('%Y-%m-%d %H:%M')}"]
    lines += [f"{k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in row.items() if k != "model"]
    (directory / "train_gpu.log").write_text("\n".join(lines) + "\n")
    return row


SUMMARY_COLUMNS = (("model", "model", 26), ("fields", "fields", 6), ("width", "width", 6), ("patch", "patch", 11),
                   ("batch", "batch", 5), ("iterations_done", "iters", 6), ("prep_s", "prep s", 6),
                   ("train_s", "train s", 7), ("best_metric", "best val", 9), ("weights_mib", "MiB", 5),
                   ("status", "status", 0))


def summary_table(rows: list[dict]) -> str:
    def cell(value, width):
        text = f"{value:.4g}" if isinstance(value, float) else ("-" if value is None else str(value))
        return text.ljust(width) if width else text

    lines = ["  ".join(cell(title, w) for _, title, w in SUMMARY_COLUMNS)]
    lines += ["  ".join(cell(row.get(key), w) for key, _, w in SUMMARY_COLUMNS) for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per model)")
    parser.add_argument("--models", help=f"comma-separated subset (default: {','.join(DEFAULT_MODELS)}; also {DIP})")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu", "auto"))
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="simulation processes")
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="wall time of the whole run")
    parser.add_argument("--data", type=Path, help="keep the simulated data here (default: a temporary folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny settings: a CPU check of the whole script")
    parser.add_argument("--data-seed", type=int, default=DATA_SEED, help="dataset seed of the simulated fields")
    parser.add_argument("--init", type=Path, help="continue training: start each model's generator from "
                        "INIT/<model>/weights.safetensors where that file exists (same network settings)")
    args = parser.parse_args(argv)
    plans = SMOKE_PLANS if args.smoke else GPU_PLANS
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else list(DEFAULT_MODELS)
    unknown = [n for n in names if n not in plans]
    if unknown or not names:
        parser.error(f"--models: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(plans)}")
    if args.workers < 1 or not args.budget_minutes > 0:
        parser.error("--workers must be >= 1 and --budget-minutes > 0")
    busy = [n for n in names if (args.out / n).exists() and any((args.out / n).iterdir())]
    if busy:
        parser.error(f"--out: {args.out / busy[0]} exists and is not empty; choose another --out")
    return args, {n: plans[n] for n in names}


def main(argv=None) -> int:
    start = time.monotonic()
    args, plans = parse_args(argv)
    global DATA_SEED
    DATA_SEED = args.data_seed
    budget = args.budget_minutes * 60
    args.out.mkdir(parents=True, exist_ok=True)
    run_log = (args.out / "run.log").open("a")

    def log(message: str) -> None:
        line = f"[{time.monotonic() - start:6.1f} s] {message}"
        print(line, flush=True)
        run_log.write(line + "\n")
        run_log.flush()

    import torch

    from widefield3d.device import resolve_device
    from widefield3d.errors import InputError
    from widefield3d.sim.dataset import dataset_preset

    try:
        device = resolve_device(args.device, where="--device")
    except InputError as err:
        print(f"train_gpu: {err}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        log(f"device: {torch.cuda.get_device_name()}")
    log(f"budget {budget:.0f} s: simulation until {SIM_END * budget:.0f} s, training until {TRAIN_END * budget:.0f} s;"
        f" {args.workers} simulation workers; models: {', '.join(plans)}")

    data_root = args.data or Path(tempfile.mkdtemp(prefix="train_gpu-data-"))
    datasets = [Dataset(name, plan.dataset, dataset_preset(plan.dataset).model_copy(update=plan.preset_update),
                        plan.fields, plan.min_fields, data_root / name)
                for name, plan in plans.items() if plan.dataset]
    simulation = Simulation(datasets, args.workers, start + SIM_END * budget, log)
    simulation.start()
    waiting = {d.name for d in datasets}
    rows = {}

    def slot_for(name: str):
        def slot() -> float:
            left = start + TRAIN_END * budget - time.monotonic()
            share = plans[name].weight / sum(plans[n].weight for n in waiting | {name})
            return max(MIN_SLOT_S, left * share)
        return slot

    def train_one(name: str, data_dir: Path, slot) -> None:
        try:
            init = args.init / name / "weights.safetensors" if args.init else None
            rows[name].update(train_model(plans[name], configs[name], data_dir, args.out / name, slot, args.device,
                                          init if init is not None and init.is_file() else None))
        except Exception as err:  # one model's failure must not cost the others their GPU time
            rows[name]["status"] = f"training failed: {type(err).__name__}: {err}"
            log(f"{name}: {rows[name]['status']}")

    try:
        configs = {}
        for name, plan in plans.items():
            config, width, size = fitted_config(name, plan, args.device)
            configs[name] = config
            rows[name] = {"model": name, "method": plan.method, "width": None if plan.method == "volume-dip" else width,
                          "patch": _patch_text(plan.patch),
                          "batch": plan.batch, "iterations_max": plan.iterations, "warmup": plan.warmup,
                          "weight": plan.weight, "weights_bytes_planned": size, "device": args.device,
                          "budget_minutes": args.budget_minutes}
            dip = plan.method == "volume-dip"
            log(f"{name}: {f'channels {list(config.network.channels)}' if dip else f'width {width:g}'} "
                f"({size / 2**20:.2f} MiB of weights), {_patch_text(plan.patch)}, batch {plan.batch}, at most "
                f"{plan.iterations} {'epochs' if dip else 'iterations'}")
        if DIP in plans:
            log(f"{DIP}: pre-training")
            train_one(DIP, data_root, None)
            if (args.out / DIP / "config.json").is_file():
                write_dip_log(args.out / DIP)
                log(f"{DIP}: done in {rows[DIP]['train_s']} s")
        while waiting:
            wait_start = time.monotonic()
            name = simulation.ready.get()
            d = next(d for d in datasets if d.name == name)
            waiting.discard(name)
            rows[name].update(fields=len(d.fields), sim_s=round(d.seconds, 1), sim_cpu_s=round(d.cpu_seconds, 1),
                              data_wait_s=round(time.monotonic() - wait_start, 1), data_seed=DATA_SEED,
                              sim_failures=d.failures)
            if len(d.fields) < d.minimum:
                rows[name]["status"] = f"only {len(d.fields)} fields simulated (needs {d.minimum})"
                log(f"{name}: skipped, {rows[name]['status']}")
                continue
            log(f"{name}: preparing data and training")
            train_one(name, d.root, slot_for(name))
            r = rows[name]
            if "status" not in r:
                log(f"{name}: {r['iterations_done']} iterations in {r['train_s']} s (slot {r['slot_s']} s, "
                    f"{'stopped by it' if r['stopped_by_budget'] else 'all iterations done'}; data preparation "
                    f"{r['prep_s']} s); best validation {r['best_metric']:.4g} at iteration {r['best_iteration']}")
    finally:
        simulation.halt.set()
        simulation.join(timeout=10)
        simulation.shutdown()
        if args.data is None:
            shutil.rmtree(data_root, ignore_errors=True)
        for d in datasets:  # fields dropped when their dataset closed
            shutil.rmtree(d.root / ".staging", ignore_errors=True)

    summary = []
    for name, plan in plans.items():
        directory = args.out / name
        if rows[name].get("status") and not directory.is_dir():
            summary.append(rows[name])
            continue
        directory.mkdir(parents=True, exist_ok=True)
        summary.append(finish(name, plan, directory, rows[name]))
    total = time.monotonic() - start
    (args.out / "summary.json").write_text(json.dumps({"seconds": round(total, 1), "budget_s": budget,
                                                       "smoke": args.smoke, "models": summary}, indent=2))
    log(f"done in {total:.0f} s (budget {budget:.0f} s)\n{summary_table(summary)}")
    run_log.close()
    return 0 if all(r["status"] == "ok" for r in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
