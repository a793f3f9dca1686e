"""Volume reconstruction from a bright-field focal stack (Azevedo et al. 2024, after Yamaguchi et al. 2020).

A stack of ``L`` bright-field images focused ``z_res_um`` apart (normalised so that empty background is 1) is
explained by a volume of ``L`` layers of voxel transmittances through the ray model of
:mod:`widefield3d.optics.brightfield`. Two solvers find the volume (:class:`VolumeConfig` ``solver``):

- ``"iterative"`` (:class:`IterativeSolver`, Yamaguchi): Adam (lr 5e-3) on the log-transmittance, loss = L1
  between rendered and observed stack + ``mu`` (1e-3) x total variation of the transmittance; log-transmittance is
  kept <= 0 (transmittance <= 1).
- ``"dip"`` (:class:`DipSolver`, Deep Image Prior): a 3D U-Net (:mod:`widefield3d.nets.dip`) maps a fixed random
  volume to the transmittance; its weights are fitted by Adam (lr 1e-3) to the L1 loss, no explicit regulariser.
  Before that the network is started in one of three ways (``pretrained``): ``"none"`` fits the constant
  ``initial_transmittance`` (0.75) for 500 steps (L2);
  ``"ellipsoid-fit"`` (Pretr I) fits one random-ellipsoid volume from the same input for 750 steps (L2);
  ``"ellipsoid-denoise"`` (Pretr II) loads weights trained to denoise ellipsoid volumes (:func:`train`, shipped as
  the zoo model ``dip-ellipsoid-denoise``).

Both stop early with ES-WMV (Wang et al. 2022, :class:`WindowedVariance`): the variance of the last ``es_window``
iterates is tracked; when its minimum has not improved for ``es_patience`` steps the run stops and returns the
iterate that ended the minimum-variance window.

The method contract (:mod:`widefield3d.methods._base`): :func:`reconstruct` is the predict function (an
:class:`widefield3d.io.Image` with spacing; :func:`solve` gives the run's details too); the trained model of this
method is the Pretr II denoiser: :class:`Config` (= :class:`DenoiserConfig`), :func:`train`, :func:`load`.

References
----------
Azevedo, C., Santra, S., Kumawat, S., Nagahara, H., Morooka, K. "Deep Volume Reconstruction from Multi-focus
Microscopic Images." MICCAI (Open Access version, MICCAI Society; final version on SpringerLink). (The paper's text
in ``shared/seeds/003_*.txt`` gives no DOI of its own.)
"""

from __future__ import annotations

import abc
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from widefield3d import io
from widefield3d.device import resolve_device
from widefield3d.errors import InputError
from widefield3d.methods._base import LoadedModel, MethodConfig
from widefield3d.nets.dip import DipNetConfig, DipUNet
from widefield3d.optics.brightfield import BrightfieldRenderer
from widefield3d.progress import progress_bar
from widefield3d.sim.samples.transmittance import ellipsoid_volume

METHOD: Final = "volume-dip"
"""The ``method`` of a DIP model's config.json."""

DEFAULT_DENOISER = "dip-ellipsoid-denoise"
"""Zoo name of the shipped Pretr II weights."""


class VolumeConfig(BaseModel):
    """Everything a reconstruction uses; defaults are the paper's values (choices where it is silent: docs/volume.md).

    Lengths in µm; ``initial_transmittance`` is the start of both solvers (the constant the DIP network is first
    fitted to with ``pretrained="none"``).
    """

    model_config = ConfigDict(extra="forbid")

    solver: Literal["dip", "iterative"] = "dip"
    # imaging model
    na: float = Field(0.75, ge=0.0, lt=1.0)
    xy_res_um: float = Field(0.92, gt=0)
    z_res_um: float = Field(1.0, gt=0)
    aperture_samples: int = Field(25, ge=1)
    ray_model: Literal["exact", "paper"] = "exact"  # optics.brightfield.RayModel; "paper": the authors' ray set
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
    terms = [torch.mean(torch.abs(torch.diff(volume, dim=d))) for d in (-3, -2, -1) if volume.shape[d] > 1]
    return sum(terms[1:], terms[0]) if terms else volume.new_zeros(())


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


def start_network(shape, config: VolumeConfig, device) -> tuple[DipUNet, torch.Tensor]:
    """Network and fixed input for a DIP run, initialised as ``config.pretrained`` says (Pretr II: the denoiser's
    network, whose size ``config.net`` must then be; :func:`solve` sees to that)."""
    torch.manual_seed(config.seed)
    net = load(config.denoiser).generator if config.pretrained == "ellipsoid-denoise" else DipUNet(config.net)
    net = net.to(device)
    z = dip_input(shape, config, device)
    if config.pretrained == "none":
        target = torch.full(shape, config.initial_transmittance, device=device)
        _fit_target(net, z, target, config.constant_steps, config.dip_lr)
    elif config.pretrained == "ellipsoid-fit":
        target = torch.as_tensor(ellipsoid_volume(shape, config.seed), device=device)
        _fit_target(net, z, target, config.fit_steps, config.dip_lr)
    return net, z


class _Solver(abc.ABC):
    """What :func:`solve` runs: Adam on ``parameters`` with ``lr``; per step ``estimate()``, ``loss()``, a step,
    ``project()``. The loss is the L1 between rendered and observed stack (+ ``tv_weight`` x total variation)."""

    parameters: list[torch.Tensor]
    lr: float

    def __init__(self, renderer: BrightfieldRenderer, observed: torch.Tensor, tv_weight: float):
        self.renderer, self.observed, self.tv_weight = renderer, observed, tv_weight

    @abc.abstractmethod
    def estimate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The current transmittance volume and its logarithm (each solver defines its variables)."""

    def loss(self, transmittance: torch.Tensor, log_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L1 data term, loss to minimise)``."""
        data_term = torch.mean(torch.abs(self.renderer.render_log(log_t) - self.observed))
        return data_term, data_term + self.tv_weight * total_variation(transmittance)

    def project(self) -> None:
        """Bring the variables back into their domain after a step (nothing to do by default)."""
        return None


class IterativeSolver(_Solver):
    """Yamaguchi's reconstruction: the log-transmittance itself is the variable (``iterative_lr``), the loss has
    the ``tv_weight`` term, and the log-transmittance is kept <= 0 (transmittance <= 1)."""

    def __init__(self, shape, config: VolumeConfig, renderer: BrightfieldRenderer, observed: torch.Tensor):
        super().__init__(renderer, observed, config.tv_weight)
        self.log_t = torch.full(shape, math.log(config.initial_transmittance), device=observed.device,
                                requires_grad=True)
        self.parameters, self.lr = [self.log_t], config.iterative_lr

    def estimate(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.exp(self.log_t), self.log_t

    def project(self) -> None:
        with torch.no_grad():
            self.log_t.clamp_(max=0.0)


class DipSolver(_Solver):
    """Deep Image Prior: the weights of a 3D U-Net that maps a fixed random volume to the transmittance are the
    variables (``dip_lr``), started as ``config.pretrained`` says (:func:`start_network`); no regulariser."""

    def __init__(self, shape, config: VolumeConfig, renderer: BrightfieldRenderer, observed: torch.Tensor):
        super().__init__(renderer, observed, 0.0)
        self.net, self.z = start_network(shape, config, observed.device)
        self.parameters, self.lr = list(self.net.parameters()), config.dip_lr

    def estimate(self) -> tuple[torch.Tensor, torch.Tensor]:
        # log(sigmoid) from the logits: its gradient survives where the transmittance rounds to 1 in float32
        logits = self.net.logits(self.z)[0, 0]
        return torch.sigmoid(logits), torch.nn.functional.logsigmoid(logits)


def solve(stack, config: VolumeConfig | None = None, *, truth=None, progress: bool = True,
          device: str = "auto", callback: Callable[[int, float], bool] | None = None,
          on_iterate: Callable[[int, torch.Tensor], None] | None = None) -> VolumeResult:
    """Reconstruct a transmittance volume from a bright-field focal stack, with the run's history.

    Parameters
    ----------
    stack : array_like, shape (L, H, W)
        Focal stack, one image focused on each layer of the volume (``z_res_um`` apart), normalised so that empty
        background is 1.
    config : VolumeConfig, optional
        Solver, optics, steps and early stopping (default: the paper's DIP settings).
    truth : array_like, optional
        Ground-truth volume: the PSNR of every iterate is recorded in ``history`` (benchmarks).
    progress : bool
        Show a progress bar.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:N]"``.
    callback : callable, optional
        Called after every step as ``callback(step, l1_loss)`` (e.g. by a GUI's progress bar); a true return value
        stops the run there, and the result is chosen as after an early stop.
    on_iterate : callable, optional
        Called after every step as ``on_iterate(step, iterate)`` with the transmittance iterate (a detached tensor
        on the run's device, not to be modified): benchmarks evaluate further stopping rules on the same run.

    Returns
    -------
    VolumeResult
    """
    config = config or VolumeConfig()
    data = _check_stack(stack)
    gt = None if truth is None else _check_stack(truth, "truth")
    if gt is not None and gt.shape != data.shape:
        raise InputError(f"truth: shape {gt.shape} differs from the stack's {data.shape}")
    if config.solver == "dip" and config.pretrained == "ellipsoid-denoise":
        config = config.model_copy(update={"net": load(config.denoiser).config.network})
    dev = resolve_device(device, "reconstruct")
    shape = data.shape
    t0 = time.perf_counter()
    renderer = BrightfieldRenderer(shape[0], config.na, config.xy_res_um, config.z_res_um, config.aperture_samples,
                                   model=config.ray_model)
    observed = torch.as_tensor(data, device=dev)
    gt_t = None if gt is None else torch.as_tensor(gt, device=dev)
    solver = (IterativeSolver if config.solver == "iterative" else DipSolver)(shape, config, renderer, observed)
    opt = torch.optim.Adam(solver.parameters, lr=solver.lr)
    stopper = WindowedVariance(config.es_window, config.es_patience)
    history: dict[str, list[float]] = {"loss": [], "es_variance": []}
    if gt_t is not None:
        history["psnr"] = []
    last, es_stop, es_iteration, es_seconds = None, None, None, None
    with progress_bar("{task.description}", "bar", "count", "elapsed", enabled=progress, transient=False) as bar:
        task = bar.add_task(f"{config.solver} reconstruction", total=config.steps)
        for step in range(config.steps):
            alpha, log_alpha = solver.estimate()
            data_term, loss = solver.loss(alpha, log_alpha)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            solver.project()
            last = alpha.detach()
            history["loss"].append(float(data_term.detach()))
            if gt_t is not None:
                history["psnr"].append(_psnr(last, gt_t))
            if on_iterate is not None:
                on_iterate(step, last)
            stop = stopper.update(last)
            if stopper.variances:
                history["es_variance"].append(stopper.variances[-1])
            bar.update(task, advance=1, description=f"{config.solver} L1 {history['loss'][-1]:.2e}"
                       + (f" PSNR {history['psnr'][-1]:.2f} dB" if gt_t is not None else ""))
            if stop and es_stop is None:
                es_stop, es_iteration, es_seconds = step, stopper.best_iteration, time.perf_counter() - t0
                if config.early_stop:
                    break
            if callback is not None and callback(step, history["loss"][-1]):
                break
    chosen: torch.Tensor | None = last
    iteration = len(history["loss"]) - 1
    if config.early_stop and stopper.best is not None:
        chosen, iteration = stopper.best, stopper.best_iteration
    assert chosen is not None  # steps >= 1
    volume = chosen.clamp(0, 1).to("cpu", torch.float32).numpy()
    return VolumeResult(volume, iteration, len(history["loss"]), es_stop is not None and config.early_stop,
                        time.perf_counter() - t0, config, history, es_stop=es_stop,
                        es_iteration=es_iteration if es_stop is not None else
                        (stopper.best_iteration if stopper.best_iteration >= 0 else None),
                        es_seconds=es_seconds)


def reconstruct(stack, config: VolumeConfig | None = None, *, progress: bool = True,
                device: str = "auto", callback: Callable[[int, float], bool] | None = None) -> io.Image:
    """The transmittance volume of a bright-field focal stack (:func:`solve` without the run's details).

    Parameters
    ----------
    stack : array_like (L, H, W) or io.Image
        Focal stack normalised so that empty background is 1; an Image is brought to ZYX and, without a
        ``config``, its spacing gives ``z_res_um`` and ``xy_res_um``.
    config : VolumeConfig, optional
        Default: the paper's DIP settings.
    progress, device, callback
        As :func:`solve`.

    Returns
    -------
    io.Image
        ``ZYX`` transmittance in [0, 1] (float32), spacing ``(z_res_um, xy_res_um, xy_res_um)`` µm.

    Examples
    --------
    >>> import numpy as np, widefield3d
    >>> from widefield3d.methods.volume import VolumeConfig
    >>> volume = widefield3d.reconstruct(np.full((3, 8, 8), 0.9, np.float32),
    ...                                  VolumeConfig(solver="iterative", steps=2), progress=False)
    >>> volume.axes, volume.data.shape, volume.spacing_zyx
    ('ZYX', (3, 8, 8), (1.0, 0.92, 0.92))
    """
    if isinstance(stack, io.Image):
        image = stack.as_axes("ZYX")
        dz, _, dx = image.spacing_zyx
        config, stack = config or VolumeConfig(z_res_um=dz, xy_res_um=dx), image.data
    config = config or VolumeConfig()
    result = solve(stack, config, progress=progress, device=device, callback=callback)
    return io.Image(result.transmittance, "ZYX", (config.z_res_um, config.xy_res_um, config.xy_res_um))


class DenoiserData(BaseModel):
    """The Pretr II training volumes: random ellipsoids plus Gaussian noise of a standard deviation drawn per volume
    from ``noise_sigma`` (shape Z, Y, X in voxels)."""

    model_config = ConfigDict(extra="forbid")

    n_volumes: int = Field(1000, ge=1)
    shape: tuple[int, int, int] = (11, 128, 128)
    noise_sigma: tuple[float, float] = (0.02, 0.1)


class DenoiserTrainer(BaseModel):
    """Pretr II optimisation: L2 loss, Adam."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(20, ge=1)
    epochs: int = Field(5, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0


class DenoiserConfig(MethodConfig):
    """Pretr II: supervised denoising of random-ellipsoid volumes (paper: 1000 volumes, batch 20, 5 epochs, L2).

    ``data.shape`` and ``data.noise_sigma`` are not given in the paper (its supplement): the network is fully
    convolutional, so volumes smaller than the 128 x 128 x 11 reconstructions keep CPU training short; the noise
    range covers the DIP input (uniform over [0.7, 1], standard deviation 0.087 around 0.85). ``provenance``
    (filled by :func:`train`): the mean squared error of each epoch and the training seconds.
    """

    method: Literal["volume-dip"] = METHOD
    description: str = "DIP U-Net pre-trained to denoise random-ellipsoid transmittance volumes (Pretr II)"
    network: DipNetConfig = DipNetConfig()
    data: DenoiserData = DenoiserData()
    trainer: DenoiserTrainer = DenoiserTrainer()

    @classmethod
    def migrate(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The first denoiser config (``net``, ``pretraining``, ``epoch_mse``, ``seconds`` at the top), or the flat
        settings of the former ``DenoiserConfig`` -> network / data / trainer / provenance."""
        raw = dict(raw)
        flat = {**raw.pop("pretraining", {}), **{k: raw.pop(k) for k in (*DenoiserData.model_fields,
                                                                          *DenoiserTrainer.model_fields) if k in raw}}
        if "net" in flat or "net" in raw:
            raw["network"] = raw.pop("net", flat.pop("net", None))
        for part, fields in (("data", DenoiserData.model_fields), ("trainer", DenoiserTrainer.model_fields)):
            raw[part] = {**{k: flat.pop(k) for k in list(flat) if k in fields}, **raw.get(part, {})}
        raw.update(flat)  # anything else is left for validation to refuse
        provenance = {k: raw.pop(k) for k in ("epoch_mse", "seconds") if k in raw}
        if provenance:
            raw["provenance"] = {**provenance, **raw.get("provenance", {})}
        return raw


Config = DenoiserConfig
"""The method contract's name for this method's config."""


def train(out_dir: str | Path, config: DenoiserConfig | None = None, *, device: str = "auto",
          progress: bool = True) -> Path:
    """Train the Pretr II network and write ``out_dir/{config.json, weights.safetensors}``; returns ``out_dir``.

    Inputs are ellipsoid volumes plus Gaussian noise of a standard deviation drawn per volume from
    ``data.noise_sigma``, targets the clean volumes, loss L2, Adam. (No data folder: the volumes are simulated.)
    """
    from rich.progress import track

    from widefield3d import zoo

    config = config or DenoiserConfig()
    data, opt_cfg = config.data, config.trainer
    dev = resolve_device(device, "train")
    out = Path(out_dir)
    rng = np.random.default_rng(opt_cfg.seed)
    torch.manual_seed(opt_cfg.seed)
    t0 = time.perf_counter()
    clean = np.stack([ellipsoid_volume(data.shape, rng) for _ in track(
        range(data.n_volumes), description="ellipsoid volumes", disable=not progress)])
    net = DipUNet(config.network).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=opt_cfg.lr)
    batch = opt_cfg.batch_size
    n_batches = math.ceil(data.n_volumes / batch)
    epoch_losses = []
    for epoch in track(range(opt_cfg.epochs), description="Pretr II epochs", disable=not progress):
        order = rng.permutation(data.n_volumes)
        total = 0.0
        for b in range(n_batches):
            target = torch.as_tensor(clean[order[b * batch:(b + 1) * batch]], device=dev)
            sigma = torch.as_tensor(rng.uniform(*data.noise_sigma, size=(len(target), 1, 1, 1)),
                                    dtype=torch.float32, device=dev)
            noisy = target + sigma * torch.randn_like(target)
            loss = torch.mean((net(noisy[:, None])[:, 0] - target) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(target)
        epoch_losses.append(total / data.n_volumes)
    provenance = {"epoch_mse": epoch_losses, "seconds": round(time.perf_counter() - t0, 1)}
    zoo.write_config(out, METHOD, config.model_copy(update={"provenance": provenance}).model_dump(mode="json"))
    zoo.save_weights(out, net)
    return out


def load(name_or_dir: str | Path = DEFAULT_DENOISER) -> LoadedModel:
    """The Pretr II network (CPU, in training mode: a DIP run fits it further) and its config from a zoo name or a
    model directory."""
    from widefield3d import zoo

    path, config = DenoiserConfig.read(name_or_dir)
    return LoadedModel(zoo.load_weights(DipUNet(config.network), path), config, path)
