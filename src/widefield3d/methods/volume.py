"""Volume reconstruction from a bright-field focal stack (Azevedo et al. 2024, after Yamaguchi et al. 2020).

A stack of ``L`` bright-field images focused ``z_res_um`` apart (normalised so that empty background is 1) is
explained by a volume of ``L`` layers of voxel transmittances through the ray model of
:mod:`widefield3d.optics.brightfield`. Two ways to find the volume:

- ``"iterative"`` (Yamaguchi): Adam (lr 5e-3) on the log-transmittance, loss = L1 between rendered and observed
  stack + ``mu`` (1e-3) x total variation of the transmittance; log-transmittance is kept <= 0 (transmittance <= 1).
- ``"dip"`` (Deep Image Prior): a 3D U-Net (:mod:`widefield3d.nets.dip`) maps a fixed random volume to the
  transmittance; its weights are fitted by Adam (lr 1e-3) to the L1 loss, no explicit regulariser. Before that the
  network is started in one of three ways (``pretrained``): ``"none"`` fits the constant 0.75 for 500 steps (L2);
  ``"ellipsoid-fit"`` (Pretr I) fits one random-ellipsoid volume from the same input for 750 steps (L2);
  ``"ellipsoid-denoise"`` (Pretr II) loads weights trained to denoise ellipsoid volumes (:func:`pretrain_denoiser`,
  shipped as the zoo model ``dip-ellipsoid-denoise``).

Both stop early with ES-WMV (Wang et al. 2022, :class:`WindowedVariance`): the variance of the last ``es_window``
iterates is tracked; when its minimum has not improved for ``es_patience`` steps the run stops and returns the
iterate that ended the minimum-variance window.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from widefield3d.device import resolve_device
from widefield3d.errors import InputError
from widefield3d.nets.dip import DipNetConfig, DipUNet
from widefield3d.optics.brightfield import BrightfieldRenderer
from widefield3d.sim.phantoms import ellipsoid_volume

METHOD = "volume-dip"
"""The ``method`` of a DIP model's config.json."""

DEFAULT_DENOISER = "dip-ellipsoid-denoise"
"""Zoo name of the shipped Pretr II weights."""


class VolumeConfig(BaseModel):
    """Everything a reconstruction uses; defaults are the paper's values (choices where it is silent: docs/volume.md)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["dip", "iterative"] = "dip"
    # imaging model
    na: float = Field(0.75, ge=0.0, lt=1.0)
    xy_res_um: float = Field(0.92, gt=0)
    z_res_um: float = Field(1.0, gt=0)
    aperture_samples: int = Field(25, ge=1)
    # optimisation
    steps: int = Field(30000, ge=1)
    early_stop: bool = True
    es_window: int = Field(100, ge=2)
    es_patience: int = Field(1000, ge=1)
    seed: int = 0
    # iterative (Yamaguchi)
    iterative_lr: float = Field(5e-3, gt=0)
    tv_weight: float = Field(1e-3, ge=0)
    initial_transmittance: float = Field(0.75, gt=0, le=1)
    # Deep Image Prior
    dip_lr: float = Field(1e-3, gt=0)
    pretrained: Literal["none", "ellipsoid-fit", "ellipsoid-denoise"] = "none"
    constant_steps: int = Field(500, ge=0)
    fit_steps: int = Field(750, ge=0)
    denoiser: str = DEFAULT_DENOISER
    net: DipNetConfig = DipNetConfig()
    input_range: tuple[float, float] = (0.7, 1.0)


class WindowedVariance:
    """ES-WMV early stopping: minimum of the windowed moving variance of the iterates, with patience.

    ``update(x)`` takes iterate ``t`` (a tensor) and returns True once the variance of the last ``window`` iterates
    has not reached a new minimum for ``patience`` further iterates. ``best`` is the iterate that ended the
    minimum-variance window, ``best_iteration`` its index (0-based), ``variances`` one value per full window
    (mean over the window of the squared distance to the window mean, per voxel).
    """

    def __init__(self, window: int = 100, patience: int = 1000):
        if window < 2 or patience < 1:
            raise InputError(f"ES-WMV: window={window} must be >= 2 and patience={patience} >= 1")
        self.window, self.patience = window, patience
        self._queue: deque[torch.Tensor] = deque()
        self._sum: torch.Tensor | None = None
        self._sum_sq = 0.0
        self.t = -1
        self.best: torch.Tensor | None = None
        self.best_iteration = -1
        self.best_variance = math.inf
        self.variances: list[float] = []

    def update(self, x: torch.Tensor) -> bool:
        x = x.detach().to(torch.float64)
        self.t += 1
        self._queue.append(x)
        self._sum = x.clone() if self._sum is None else self._sum.add_(x)
        self._sum_sq += float(torch.sum(x * x))
        if len(self._queue) > self.window:
            old = self._queue.popleft()
            self._sum.sub_(old)
            self._sum_sq -= float(torch.sum(old * old))
        if len(self._queue) < self.window:
            return False
        n = self.window
        variance = max(self._sum_sq / n - float(torch.sum(self._sum * self._sum)) / n**2, 0.0) / x.numel()
        self.variances.append(variance)
        if variance < self.best_variance:
            self.best_variance, self.best_iteration, self.best = variance, self.t, x.clone()
        return self.t - self.best_iteration >= self.patience


@dataclass
class VolumeResult:
    """A reconstruction: the transmittance volume ``(L, H, W)`` in [0, 1] (float32) and how it was reached.

    ``iteration`` is the step whose iterate was returned (ES-WMV's choice, else the last), ``iterations`` the steps
    run; ``history`` has per step ``loss`` (L1 data term), ``es_variance`` (from the first full window) and, when the
    truth was given, ``psnr`` (dB, data range 1). ES-WMV also runs when ``early_stop`` is off: ``es_stop`` is the step
    at which it would have stopped (None if never), ``es_iteration`` the iterate it selects then (or at the end; None
    if no window filled), ``es_seconds`` the time to its stop.
    """

    transmittance: np.ndarray
    iteration: int
    iterations: int
    stopped_early: bool
    seconds: float
    config: VolumeConfig
    history: dict[str, list[float]] = field(default_factory=dict)
    es_stop: int | None = None
    es_iteration: int | None = None
    es_seconds: float | None = None

    @property
    def best_psnr(self) -> float | None:
        return max(self.history["psnr"]) if self.history.get("psnr") else None

    @property
    def psnr(self) -> float | None:
        """PSNR of the returned volume (dB), if the truth was given."""
        return self.history["psnr"][self.iteration] if self.history.get("psnr") else None


def _check_stack(stack, name: str = "stack") -> np.ndarray:
    data = np.asarray(stack)
    if data.ndim != 3 or data.shape[0] < 2 or min(data.shape) < 1:
        raise InputError(f"{name}: expected a focal stack ZYX of at least 2 images (one per layer), got shape "
                         f"{data.shape}")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise InputError(f"{name}: expected real intensities, got dtype {data.dtype}")
    data = data.astype(np.float32)
    if not np.all(np.isfinite(data)):
        raise InputError(f"{name}: intensities must be finite (no NaN or inf)")
    if data.max() > 2.0 or data.min() < -1.0:
        raise InputError(f"{name}: values in [{data.min():g}, {data.max():g}]; normalise the stack so that empty "
                         "background is 1 (divide by a flat-field image)")
    return data


def total_variation(volume: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring voxels along Z, Y and X (anisotropic TV), summed over axes."""
    return sum(torch.mean(torch.abs(torch.diff(volume, dim=d))) for d in (-3, -2, -1) if volume.shape[d] > 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(torch.mean((a.double() - b.double()) ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


def dip_input(shape, config: VolumeConfig, device) -> torch.Tensor:
    """The fixed random input ``(1, in_channels, Z, Y, X)``: uniform noise over ``input_range``."""
    g = torch.Generator().manual_seed(config.seed)
    lo, hi = config.input_range
    noise = lo + (hi - lo) * torch.rand((1, config.net.in_channels, *shape), generator=g)
    return noise.to(device)


def _fit_target(net: DipUNet, z: torch.Tensor, target: torch.Tensor, steps: int, lr: float) -> None:
    """Fit ``net(z)`` to ``target`` by L2 for ``steps`` Adam steps (the constant start and Pretr I)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = torch.mean((net(z)[0, 0] - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def load_denoiser(name_or_dir: str | Path = DEFAULT_DENOISER) -> tuple[DipUNet, dict]:
    """The Pretr II network (weights + its config.json) from a zoo name or a model directory."""
    from widefield3d import zoo

    directory = zoo.resolve_model(name_or_dir, METHOD)
    config = zoo.read_config(directory, METHOD)
    net = DipUNet(DipNetConfig(**config["net"]))
    return zoo.load_weights(net, directory), config


def start_network(shape, config: VolumeConfig, device) -> tuple[DipUNet, torch.Tensor]:
    """Network and fixed input for a DIP run, initialised as ``config.pretrained`` says."""
    torch.manual_seed(config.seed)
    if config.pretrained == "ellipsoid-denoise":
        net, saved = load_denoiser(config.denoiser)
        config.net = net.config
    else:
        net = DipUNet(config.net)
    net = net.to(device)
    z = dip_input(shape, config, device)
    if config.pretrained == "none":
        target = torch.full(shape, 0.75, device=device)
        _fit_target(net, z, target, config.constant_steps, config.dip_lr)
    elif config.pretrained == "ellipsoid-fit":
        target = torch.as_tensor(ellipsoid_volume(shape, config.seed), device=device)
        _fit_target(net, z, target, config.fit_steps, config.dip_lr)
    return net, z


def reconstruct(stack, method: Literal["dip", "iterative"] = "dip", *, truth=None, progress: bool = True,
                device: str = "auto", **options) -> VolumeResult:
    """Reconstruct a transmittance volume from a bright-field focal stack.

    Parameters
    ----------
    stack : array_like, shape (L, H, W)
        Focal stack, one image focused on each layer of the volume (``z_res_um`` apart), normalised so that empty
        background is 1.
    method : {"dip", "iterative"}
        Deep Image Prior or Yamaguchi's iterative optimisation.
    truth : array_like, optional
        Ground-truth volume: the PSNR of every iterate is recorded in ``history`` (benchmarks).
    progress : bool
        Show a progress bar.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    **options
        Any :class:`VolumeConfig` field: ``na``, ``xy_res_um``, ``z_res_um``, ``aperture_samples``, ``steps``,
        ``pretrained`` (``"none" | "ellipsoid-fit" | "ellipsoid-denoise"``), ``early_stop``, ``es_window``,
        ``es_patience``, ``seed``, ``net`` (a :class:`DipNetConfig`), learning rates, ...

    Returns
    -------
    VolumeResult
    """
    config = VolumeConfig(method=method, **options)
    data = _check_stack(stack)
    gt = None if truth is None else _check_stack(truth, "truth")
    if gt is not None and gt.shape != data.shape:
        raise InputError(f"truth: shape {gt.shape} differs from the stack's {data.shape}")
    dev = resolve_device(device, "reconstruct")
    shape = data.shape
    t0 = time.perf_counter()
    renderer = BrightfieldRenderer(shape[0], config.na, config.xy_res_um, config.z_res_um, config.aperture_samples)
    observed = torch.as_tensor(data, device=dev)
    gt_t = None if gt is None else torch.as_tensor(gt, device=dev)

    if config.method == "iterative":
        log_t = torch.full(shape, math.log(config.initial_transmittance), device=dev, requires_grad=True)
        params, lr = [log_t], config.iterative_lr

        def estimate():
            return torch.exp(log_t)

        def loss_of(alpha):
            rendered = renderer.render_log(log_t)
            data_term = torch.mean(torch.abs(rendered - observed))
            return data_term, data_term + config.tv_weight * total_variation(alpha)

        def after_step():
            with torch.no_grad():
                log_t.clamp_(max=0.0)
    else:
        net, z = start_network(shape, config, dev)
        params, lr = list(net.parameters()), config.dip_lr

        logits = None

        def estimate():
            nonlocal logits
            logits = net.logits(z)[0, 0]
            return torch.sigmoid(logits)

        def loss_of(alpha):
            # log(sigmoid) from the logits: its gradient survives where alpha rounds to 1 in float32
            rendered = renderer.render_log(torch.nn.functional.logsigmoid(logits))
            data_term = torch.mean(torch.abs(rendered - observed))
            return data_term, data_term

        def after_step():
            pass

    opt = torch.optim.Adam(params, lr=lr)
    stopper = WindowedVariance(config.es_window, config.es_patience)
    history: dict[str, list[float]] = {"loss": [], "es_variance": []}
    if gt_t is not None:
        history["psnr"] = []
    last, es_stop, es_iteration, es_seconds = None, None, None, None
    bar = _progress(progress)
    with bar:
        task = bar.add_task(f"{config.method} reconstruction", total=config.steps)
        for step in range(config.steps):
            alpha = estimate()
            data_term, loss = loss_of(alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            after_step()
            last = alpha.detach()
            history["loss"].append(float(data_term.detach()))
            if gt_t is not None:
                history["psnr"].append(_psnr(last, gt_t))
            stop = stopper.update(last)
            if stopper.variances:
                history["es_variance"].append(stopper.variances[-1])
            bar.update(task, advance=1, description=f"{config.method} L1 {history['loss'][-1]:.2e}"
                       + (f" PSNR {history['psnr'][-1]:.2f} dB" if gt_t is not None else ""))
            if stop and es_stop is None:
                es_stop, es_iteration, es_seconds = step, stopper.best_iteration, time.perf_counter() - t0
                if config.early_stop:
                    break
    if config.early_stop and stopper.best is not None:
        chosen, iteration = stopper.best, stopper.best_iteration
    else:
        chosen, iteration = last, len(history["loss"]) - 1
    volume = chosen.clamp(0, 1).to("cpu", torch.float32).numpy()
    return VolumeResult(volume, iteration, len(history["loss"]), es_stop is not None and config.early_stop,
                        time.perf_counter() - t0, config, history, es_stop=es_stop,
                        es_iteration=es_iteration if es_stop is not None else
                        (stopper.best_iteration if stopper.best_iteration >= 0 else None),
                        es_seconds=es_seconds)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled, transient=False)


class DenoiserConfig(BaseModel):
    """Pretr II: supervised denoising of random-ellipsoid volumes (paper: 1000 volumes, batch 20, 5 epochs, L2).

    ``shape`` and ``noise_sigma`` are not given in the paper (its supplement): the network is fully convolutional, so
    volumes smaller than the 128 x 128 x 11 reconstructions keep CPU training short; the noise range covers the
    DIP input (uniform over [0.7, 1], standard deviation 0.087 around 0.85).
    """

    model_config = ConfigDict(extra="forbid")

    n_volumes: int = Field(1000, ge=1)
    batch_size: int = Field(20, ge=1)
    epochs: int = Field(5, ge=1)
    shape: tuple[int, int, int] = (11, 128, 128)
    noise_sigma: tuple[float, float] = (0.02, 0.1)
    lr: float = Field(1e-3, gt=0)
    net: DipNetConfig = DipNetConfig()
    seed: int = 0


def pretrain_denoiser(out_dir: str | Path, config: DenoiserConfig | None = None, *, device: str = "auto",
                      progress: bool = True) -> Path:
    """Train the Pretr II network and write ``out_dir/{config.json, weights.safetensors}``; returns ``out_dir``.

    Inputs are ellipsoid volumes plus Gaussian noise of a standard deviation drawn per volume from ``noise_sigma``,
    targets the clean volumes, loss L2, Adam.
    """
    from rich.progress import track

    from widefield3d import zoo

    config = config or DenoiserConfig()
    dev = resolve_device(device, "pretrain_denoiser")
    out = Path(out_dir)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    t0 = time.perf_counter()
    clean = np.stack([ellipsoid_volume(config.shape, rng) for _ in track(
        range(config.n_volumes), description="ellipsoid volumes", disable=not progress)])
    net = DipUNet(config.net).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    n_batches = math.ceil(config.n_volumes / config.batch_size)
    epoch_losses = []
    for epoch in track(range(config.epochs), description="Pretr II epochs", disable=not progress):
        order = rng.permutation(config.n_volumes)
        total = 0.0
        for b in range(n_batches):
            target = torch.as_tensor(clean[order[b * config.batch_size:(b + 1) * config.batch_size]], device=dev)
            sigma = torch.as_tensor(rng.uniform(*config.noise_sigma, size=(len(target), 1, 1, 1)),
                                    dtype=torch.float32, device=dev)
            noisy = target + sigma * torch.randn_like(target)
            loss = torch.mean((net(noisy[:, None])[:, 0] - target) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(target)
        epoch_losses.append(total / config.n_volumes)
    zoo.write_config(out, METHOD, {
        "description": "DIP U-Net pre-trained to denoise random-ellipsoid transmittance volumes (Pretr II)",
        "net": config.net.model_dump(mode="json"),
        "pretraining": config.model_dump(mode="json"),
        "epoch_mse": epoch_losses,
        "seconds": round(time.perf_counter() - t0, 1),
    })
    zoo.save_weights(out, net)
    return out
