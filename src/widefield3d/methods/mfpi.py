"""MFPINet (Ma et al.): all N focal planes at 2x lateral resolution from one low-resolution wide-field image.

Start here to train or run MFPINet (the method contract of :mod:`widefield3d.methods._base`):

* :class:`Config` (= :class:`MFPIConfig`) -- network, data and training settings; the defaults are the paper's.
* :func:`degrade` -- the paper's low-resolution input: bicubic down-sampling by 2, then a 5 x 5 Gaussian blur
  with sigma 3 (pixels of the low-resolution grid).
* :func:`train` -- train on a folder of focal stacks (any format :mod:`widefield3d.io` reads; N planes per field)
  or a simulated ``mfpi-cytology-20x075`` dataset, through the shared adversarial trainer.
* :func:`load` and :func:`multifocal` -- run a trained or shipped model on an image of any size (tiled; whole
  slides are written to OME-Zarr strip by strip); the result is an :class:`widefield3d.io.Image` with spacing.
* :func:`plane_metrics` -- PSNR, SSIM, MSE, MAE per focal plane on the 8-bit scale the paper reports.

Intensities: inputs and targets are mapped linearly from ``[0, white_level]`` (255 for 8-bit RGB) to
``[-1, 1]`` (``x / white_level * 2 - 1``); predictions are mapped back to ``[0, white_level]``.

References
----------
Ma, J., Liu, S., Cheng, S., Liu, X., Chen, L., Zeng, S. "Reconstruct high-resolution multi-focal plane images from
a single 2D wide field image" (MFPINet). (The paper's text in ``shared/seeds/000_*.txt`` gives no venue or DOI.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.methods._base import LoadedModel, MethodConfig
from widefield3d.prep.augment import random_dihedral
from widefield3d.train.trainer import TrainerConfig

if TYPE_CHECKING:
    import torch

    from widefield3d.nets.mfpi import MFPIGenerator
    from widefield3d.train.trainer import TrainResult

METHOD: Final = "mfpi"
SCALE = 2
"""Lateral up-sampling factor of MFPINet (pixel shuffle x2)."""


def epoch_schedule(patches_per_epoch: int = 15000, *, epochs: float = 20, batch_size: int = 4, lr: float = 1e-4,
                   lr_halve_every_epochs: float = 2, adversarial_weight: float = 0.01, validations_per_epoch: int = 1,
                   **trainer: Any) -> dict[str, Any]:
    """The paper's training in epochs -> :class:`TrainerConfig` settings: BCE GAN, L1 + 0.01 adversarial, 1:1
    updates, Adam ``lr`` for G and D halved every 2 epochs, 20 epochs of 15000 patches (3 slides x 5000), batch 4
    (not given in the paper). ``trainer`` passes further TrainerConfig fields (seed, device, ...)."""
    per_epoch = max(1, math.ceil(patches_per_epoch / batch_size))
    every = max(1, per_epoch // validations_per_epoch)
    return {"iterations": max(1, round(epochs * per_epoch)), "batch_size": batch_size, "generator_steps": 1,
            "discriminator_steps": 1, "lr_generator": lr, "lr_discriminator": lr,
            "lr_halve_every": max(1, round(lr_halve_every_epochs * per_epoch)), "gan_loss": "bce",
            "adversarial_weight": adversarial_weight, "pixel_weight": 1.0, "pixel_loss": "l1",
            "validate_every": every, "checkpoint_every": every, **trainer}


class MFPINetworkConfig(BaseModel):
    """Generator and discriminator of MFPINet."""

    model_config = ConfigDict(extra="forbid")

    planes: int = Field(11, ge=1, description="focal planes N produced in one pass")
    channels: int = Field(3, ge=1, description="colour channels C (3: RGB, 1: gray)")
    width: float = Field(1.0, gt=0, description="channel multiplier of generator and discriminator (1.0 = paper)")
    gan: bool = Field(True, description="False: no discriminator, the generator learns the L1 term alone (ablation)")
    global_skip: bool = Field(False, description="True: predict a residual on the bicubic up-sampled input, zero "
                              "at the start (not in the paper; docs/mfpi.md); False: the paper's Tanh output")


class MFPIDataConfig(BaseModel):
    """Training pairs: lengths in pixels of the high-resolution (target) grid unless stated; optics in µm."""

    model_config = ConfigDict(extra="forbid")

    white_level: float = Field(255.0, gt=0, description="intensity mapped to +1 (0 maps to -1); 255 for 8-bit")
    blur_size: int = Field(5, ge=1, description="Gaussian blur window (low-resolution pixels), odd")
    blur_sigma: float = Field(3.0, gt=0, description="Gaussian blur sigma (low-resolution pixels)")
    patch_size: int = Field(768, ge=16, description="training patch side, high-resolution pixels (multiple of 16)")
    augment: bool = Field(True, description="random flips and 90-degree rotations of training patches")
    validation_fraction: float = Field(0.1, gt=0, lt=1, description="share of fields held out for validation")
    patches_per_epoch: int = Field(15000, ge=1, description="paper: 3 training slides x 5000 patches")
    z_step_um: float | None = Field(None, gt=0, description="focal step; None: read from the training stacks")
    pixel_um: float | None = Field(None, gt=0, description="high-resolution pixel; None: from the training stacks")


_FLAT = {"network": ("planes", "channels", "width"),
         "data": tuple(MFPIDataConfig.model_fields),
         "schedule": ("epochs", "batch_size", "lr", "lr_halve_every_epochs", "adversarial_weight",
                      "validations_per_epoch", "warmup_iterations", "time_budget_minutes", "seed", "device")}
"""Where the keys of the flat config (before ``schema_version``) went; the schedule became ``trainer``."""


class MFPIConfig(MethodConfig):
    """MFPINet settings. Defaults are the paper's values; ``network.width``, ``data.patch_size`` etc. scale it to a
    CPU. ``provenance`` (filled by :func:`train`): the training and validation fields and the data folder's name."""

    method: Literal["mfpi"] = METHOD
    network: MFPINetworkConfig = MFPINetworkConfig()
    data: MFPIDataConfig = MFPIDataConfig()
    trainer: TrainerConfig = Field(default_factory=lambda: TrainerConfig(**epoch_schedule()))

    @property
    def iterations_per_epoch(self) -> int:
        return max(1, math.ceil(self.data.patches_per_epoch / self.trainer.batch_size))

    @classmethod
    def migrate(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The flat config of the first MFPINet models -> network / data / trainer / provenance. Its epoch
        schedule becomes trainer settings (:func:`epoch_schedule`); a ``trainer`` block it carries wins."""
        raw = dict(raw)
        data_dir = raw.pop("data") if isinstance(raw.get("data"), str) else None
        moved = {part: {k: raw.pop(k) for k in keys if k in raw} for part, keys in _FLAT.items()}
        raw["network"] = {**moved["network"], **raw.get("network", {})}
        if "adversarial" in raw:
            raw["network"]["gan"] = raw.pop("adversarial")
        raw["data"] = {**moved["data"], **raw.get("data", {})}
        if moved["schedule"]:
            raw["trainer"] = {**epoch_schedule(raw["data"].get("patches_per_epoch", 15000), **moved["schedule"]),
                              **raw.get("trainer", {})}
        provenance: dict[str, Any] = {k: raw.pop(k) for k in ("training_fields", "validation_fields") if k in raw}
        if data_dir is not None:
            provenance["data_dir"] = data_dir
        if provenance:
            raw["provenance"] = {**provenance, **raw.get("provenance", {})}
        return raw


Config = MFPIConfig
"""The method contract's name for this method's config."""


# ------------------------------------------------------------------------------------------------ data


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """Normalised 1D Gaussian window ``exp(-x^2 / (2 sigma^2))``, ``x = -(size//2) .. size//2`` (float64)."""
    x = np.arange(size) - size // 2
    k = np.exp(-(x**2) / (2.0 * sigma**2))
    return k / k.sum()


def degrade(image, *, blur_size: int = 5, blur_sigma: float = 3.0) -> np.ndarray:
    """The paper's low-resolution input from a high-resolution image: bicubic down-sampling by 2, then blur.

    Bicubic as OpenCV's ``INTER_CUBIC`` and :func:`torch.nn.functional.interpolate` (Keys kernel, a = -0.75,
    half-pixel centres, no anti-aliasing, edge pixels repeated); then a separable ``blur_size`` x ``blur_size``
    Gaussian of ``blur_sigma`` low-resolution pixels with mirrored borders (OpenCV's default
    ``BORDER_REFLECT_101``). Computed in float32, not clipped or rounded.

    Parameters
    ----------
    image : array_like
        ``(..., Y, X)`` with even ``Y`` and ``X`` (e.g. ``CYX`` RGB), any real dtype.

    Returns
    -------
    numpy.ndarray
        ``(..., Y/2, X/2)`` float32.
    """
    import torch
    import torch.nn.functional as F

    a = np.asarray(image)
    if a.ndim < 2 or a.shape[-1] % 2 or a.shape[-2] % 2 or min(a.shape[-2:]) < 2 * blur_size:
        raise InputError(f"degrade: needs (..., Y, X) with even Y, X >= {2 * blur_size}, got shape {a.shape}")
    if blur_size % 2 == 0:
        raise InputError(f"degrade: blur_size={blur_size} must be odd")
    lead = a.shape[:-2]
    x = torch.from_numpy(a.reshape(-1, 1, *a.shape[-2:]).astype(np.float32))
    x = F.interpolate(x, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=False)
    k = torch.from_numpy(gaussian_kernel(blur_size, blur_sigma).astype(np.float32))
    r = blur_size // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
    return x.numpy().reshape(*lead, *x.shape[-2:])


def to_unit(x, white_level: float) -> np.ndarray:
    """Intensities ``[0, white_level]`` -> ``[-1, 1]`` (float32)."""
    return (np.asarray(x, np.float32) * np.float32(2.0 / white_level) - np.float32(1.0)).astype(np.float32)


def from_unit(x, white_level: float) -> np.ndarray:
    """``[-1, 1]`` -> intensities ``[0, white_level]`` (float32); the inverse of :func:`to_unit`."""
    return ((np.asarray(x, np.float32) + np.float32(1.0)) * np.float32(white_level / 2.0)).astype(np.float32)


@dataclass
class FocalStacks:
    """Training fields: ``stacks[i]`` is ``(C, N, Y, X)`` in file units, ``names[i]`` its file name."""

    stacks: list[np.ndarray]
    names: list[str]
    z_step_um: float
    pixel_um: float


def stack_files(data_dir) -> list[Path]:
    """The focal-stack files of a training folder.

    A simulated dataset (``dataset.json`` from ``widefield3d simulate dataset``) contributes its noisy camera
    images in ``brightfield/``; any other folder contributes every file with an extension :mod:`widefield3d.io`
    reads (not recursive, hidden files skipped), sorted by name.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputError(f"{root}: training data folder not found")
    if (root / "dataset.json").is_file():
        root = root / "brightfield"
        if not root.is_dir():
            raise InputError(f"{root.parent}: simulated dataset without a brightfield/ folder (not a bright-field preset)")
    files = sorted(p for p in root.iterdir()
                   if not p.name.startswith(".") and p.name.lower().endswith(io.SUPPORTED_EXTENSIONS))
    if not files:
        raise InputError(f"{root}: no image files ({', '.join(io.SUPPORTED_EXTENSIONS)})")
    return files


def read_stacks(data_dir, planes: int, channels: int) -> FocalStacks:
    """Read every focal stack of ``data_dir`` (see :func:`stack_files`) as ``(C, N, Y, X)``."""
    stacks, names, spacings = [], [], []
    for path in stack_files(data_dir):
        image = io.read(path)
        if "T" in image.axes:
            image = image.as_axes(image.axes.replace("T", ""))
        image = image.as_axes("CZYX")
        c, n, ny, nx = image.data.shape
        if n != planes or c != channels:
            raise InputError(f"{path}: has {c} channels x {n} planes, the config asks for {channels} x {planes}")
        stacks.append(image.data)
        names.append(path.name)
        spacings.append(image.spacing_zyx)
    dz, dy, _ = np.median(np.array(spacings), axis=0)
    return FocalStacks(stacks, names, float(dz), float(dy))


class PatchSampler:
    """Training pairs: a low-resolution middle plane and the N high-resolution planes, both in [-1, 1].

    The input of each field is degraded once from its whole middle plane (so no blur border effects inside
    a field); a patch is a random aligned crop (even offsets) of input and target, randomly flipped and
    rotated by multiples of 90 degrees when ``config.data.augment``.
    """

    def __init__(self, stacks: list[np.ndarray], config: MFPIConfig):
        self.data, self.batch_size = config.data, config.trainer.batch_size
        p = self.data.patch_size
        if p % 16:
            raise InputError(f"patch_size={p} must be a multiple of 16 (2 x the network divisor 8)")
        for s in stacks:
            if min(s.shape[-2:]) < p:
                raise InputError(f"a field of {s.shape[-2]} x {s.shape[-1]} pixels is smaller than "
                                 f"patch_size={p}; choose a smaller patch_size")
        self.targets = [to_unit(s, self.data.white_level) for s in stacks]
        middle = config.network.planes // 2
        self.inputs = [to_unit(degrade(s[:, middle, : s.shape[2] // 2 * 2, : s.shape[3] // 2 * 2],
                                       blur_size=self.data.blur_size, blur_sigma=self.data.blur_sigma),
                               self.data.white_level)
                       for s in stacks]

    def crop(self, field: int, y: int, x: int) -> tuple[np.ndarray, np.ndarray]:
        """Input ``(C, P/2, P/2)`` and target ``(C*N, P, P)`` of the patch whose target starts at (y, x), even."""
        p, t = self.data.patch_size, self.targets[field]
        target = t[:, :, y : y + p, x : x + p].reshape(-1, p, p)
        return self.inputs[field][:, y // 2 : (y + p) // 2, x // 2 : (x + p) // 2], target

    def sample(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One augmented batch ``(B, C, P/2, P/2)``, ``(B, C*N, P, P)`` (float32 tensors)."""
        import torch

        xs, ys = [], []
        for _ in range(self.batch_size):
            field = int(rng.integers(len(self.targets)))
            ny, nx = self.targets[field].shape[-2:]
            y = 2 * int(rng.integers((ny - self.data.patch_size) // 2 + 1))
            x = 2 * int(rng.integers((nx - self.data.patch_size) // 2 + 1))
            a, b = self.crop(field, y, x)
            if self.data.augment:
                a, b = random_dihedral(rng, a, b)
            xs.append(np.ascontiguousarray(a))
            ys.append(np.ascontiguousarray(b))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))

    def centre_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Centre patches of every field, in batches of ``batch_size`` (fixed validation set)."""
        import torch

        pairs = []
        for field, t in enumerate(self.targets):
            ny, nx = t.shape[-2:]
            pairs.append(self.crop(field, (ny - self.data.patch_size) // 4 * 2, (nx - self.data.patch_size) // 4 * 2))
        b = self.batch_size
        return [(torch.from_numpy(np.stack([a for a, _ in pairs[i : i + b]])),
                 torch.from_numpy(np.stack([t for _, t in pairs[i : i + b]]))) for i in range(0, len(pairs), b)]


def split_fields(n: int, validation_fraction: float) -> tuple[list[int], list[int]]:
    """Training and validation field indices: the last ``max(1, round(n * fraction))`` fields validate."""
    if n < 2:
        raise InputError(f"training needs at least 2 fields (1 for validation), found {n}")
    n_val = min(n - 1, max(1, round(n * validation_fraction)))
    return list(range(n - n_val)), list(range(n - n_val, n))


# ------------------------------------------------------------------------------------------------ training


def build_networks(config: MFPIConfig) -> tuple[MFPIGenerator, torch.nn.Module | None]:
    """Generator and discriminator (None without ``network.gan``) of the configured size (random weights)."""
    from widefield3d.nets.mfpi import MFPIDiscriminator, MFPIGenerator

    net = config.network
    generator = MFPIGenerator(net.planes, net.channels, net.width, net.global_skip)
    return generator, MFPIDiscriminator(net.planes * net.channels, net.width) if net.gan else None


def make_task(data: FocalStacks, config: MFPIConfig):
    """The :class:`~widefield3d.train.trainer.AdversarialTask` of MFPINet on these fields, and the names of the
    training and validation fields: the last ``data.validation_fraction`` of the fields validate."""
    import torch

    from widefield3d.train.trainer import AdversarialTask

    fit, val = split_fields(len(data.stacks), config.data.validation_fraction)
    sampler = PatchSampler([data.stacks[i] for i in fit], config)
    validation = PatchSampler([data.stacks[i] for i in val], config).centre_batches()
    torch.manual_seed(config.trainer.seed)  # the initial weights, too, follow the seed
    generator, discriminator = build_networks(config)
    task = AdversarialTask(generator, discriminator, sampler.sample, validation)
    return task, [data.names[i] for i in fit], [data.names[i] for i in val]


def train(data_dir, out_dir, config: MFPIConfig | None = None, *, resume: bool = False,
          progress: bool = True) -> TrainResult:
    """Train MFPINet on the focal stacks of ``data_dir`` (see :func:`stack_files`); the model goes to ``out_dir``.

    The last ``data.validation_fraction`` of the fields (by name) are held out; the generator with the lowest
    validation MAE (in [-1, 1] units) is kept in ``out_dir/weights.safetensors`` with ``config.json``.
    ``network.gan=False`` trains the generator on the L1 term alone (ablation). ``resume`` continues a killed run.
    The initial weights and the batches follow ``trainer.seed``.
    """
    from widefield3d import zoo
    from widefield3d.train.trainer import train as run

    config = config or MFPIConfig()
    stacks = read_stacks(data_dir, config.network.planes, config.network.channels)
    config = config.model_copy(update={"data": config.data.model_copy(update={
        "z_step_um": config.data.z_step_um or stacks.z_step_um, "pixel_um": config.data.pixel_um or stacks.pixel_um})})
    task, training_fields, validation_fields = make_task(stacks, config)
    provenance = {"training_fields": training_fields, "validation_fields": validation_fields,
                  "data_dir": Path(data_dir).resolve().name}  # no machine path
    method_config = config.model_copy(update={"provenance": provenance}).model_dump(mode="json")
    return run(task, config.trainer, out_dir, resume=resume, progress=progress,
               method_config=method_config, model_files=zoo)


# ------------------------------------------------------------------------------------------------ inference


@dataclass
class MFPIModel(LoadedModel):
    """A loaded MFPINet: the generator (eval mode, CPU), its config and the model directory."""

    config: MFPIConfig

    @property
    def z_offsets_um(self) -> np.ndarray:
        """Focal offsets of the output planes from the input (middle) plane, µm."""
        n, dz = self.config.network.planes, self.config.data.z_step_um or 1.0
        return (np.arange(n) - n // 2) * dz


def load(name_or_dir) -> MFPIModel:
    """Load a trained model directory or a shipped model by name (``widefield3d models`` lists them)."""
    from widefield3d import zoo

    path, config = MFPIConfig.read(name_or_dir)
    generator, _ = build_networks(config)
    zoo.load_weights(generator, path)
    return MFPIModel(generator.eval(), config, path)


def _intensity_network(generator: MFPIGenerator, white_level: float):
    """The generator wrapped to take and return intensities in ``[0, white_level]`` (for tiled inference)."""
    from torch import nn

    class IntensityMFPI(nn.Module):
        ndim, scale = 2, SCALE
        in_channels, out_channels = generator.in_channels, generator.out_channels
        downsampling_factor, receptive_radius = generator.downsampling_factor, generator.receptive_radius

        def __init__(self):
            super().__init__()
            self.net = generator

        def forward(self, x):
            return (self.net(x * (2.0 / white_level) - 1.0) + 1.0) * (white_level / 2.0)

    return IntensityMFPI()


class _StackWriter:
    """Writable view that predict_tiled fills as ``(C*N, Y, X)`` while storing ``(C, N, Y, X)`` (or ``(N, Y, X)``)
    in ``target``, rounded and clipped when ``target`` has an integer dtype."""

    def __init__(self, target, channels: int, planes: int, white_level: float):
        self.target, self.channels, self.planes, self.white = target, channels, planes, white_level
        self.shape = (channels * planes, *target.shape[-2:])
        self.dtype = np.dtype(target.dtype)

    def __setitem__(self, key, value) -> None:
        if key[0] != slice(None):
            raise InputError("internal: MFPINet output is written whole-channel strips only")
        value = np.asarray(value, np.float32).reshape(self.channels, self.planes, *value.shape[-2:])
        if self.dtype.kind in "ui":
            value = np.clip(np.rint(value), 0, min(self.white, np.iinfo(self.dtype).max)).astype(self.dtype)
        if len(self.target.shape) == 3:
            value = value[0]
        self.target[(slice(None),) * (len(self.target.shape) - 2) + tuple(key[1:])] = value


def _as_input(image) -> io.Image:
    """An Image with axes CYX from a path, an io.Image or an array ``(Y, X)`` / ``(C, Y, X)``."""
    if isinstance(image, (str, Path)):
        image = io.read(image, lazy=True)
    elif not isinstance(image, io.Image):
        if not hasattr(image, "shape") or len(image.shape) not in (2, 3):
            raise InputError(f"multifocal: image must be a (Y, X) or (C, Y, X) array, an io.Image or a path, "
                             f"got {getattr(image, 'shape', type(image).__name__)}")
        image = io.Image(image, "YX" if len(image.shape) == 2 else "CYX")
    for axis in "TZ":
        if axis in image.axes and image.data.shape[image.axes.index(axis)] != 1:
            raise InputError(f"multifocal: expects one 2D image, got axes '{image.axes}' with shape "
                             f"{tuple(image.data.shape)} (more than one {axis})")
    return image.as_axes("CYX" if "C" in image.axes else "YX").as_axes("CYX")


def multifocal(image, *, model, device: str = "auto", tile: int | tuple[int, int] = 512, halo: int | None = None,
               out=None, progress: bool = True, batch_size: int | None = None) -> io.Image:
    """All focal planes at 2x lateral resolution from one low-resolution image (MFPINet).

    Parameters
    ----------
    image : path, io.Image or array
        One 2D image, gray ``(Y, X)`` or colour ``(C, Y, X)`` (any axes order for an Image or file), in the
        intensity units the model was trained on (``[0, white_level]``, e.g. 8-bit RGB). A path is read lazily
        (OME-Zarr/TIFF), so whole slides never load whole.
    model : str, path or MFPIModel
        A shipped model name (e.g. ``"mfpi-cytology-20x075"``), a trained model directory, or :func:`load`'s result.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    tile : int or (int, int)
        Largest network input window (input pixels; per axis Y, X if a pair) of the tiled inference.
    halo : int, optional
        Context per tile side (input pixels); default the network's receptive radius (146), which makes the
        tiled result equal to a whole-image pass. Smaller is faster and leaner, with cross-faded differences.
    out : path, optional
        ``.ome.zarr`` (written strip by strip: bounded memory for whole slides) or any other format
        :func:`widefield3d.io.write` takes; written atomically (nothing is left on error).
    progress : bool
        Rich progress bar over tiles.
    batch_size : int, optional
        Tiles per network call: fewer hold less memory (at ``tile=512`` and the paper's width about 0.8 GB of
        activations per tile). Default: 1 on the CPU (a 20,000 px wide slide then peaks at ~2 GB instead of
        ~4.9 GB with 4; docs/tiling.md), 4 on a GPU.

    Returns
    -------
    io.Image
        ``CZYX`` (``ZYX`` for a gray model): N planes at ``z_step_um`` spacing, ``2 Y x 2 X`` pixels of half the
        input's lateral spacing (an array input is taken to have the model's training pixel, ``2 * pixel_um``).
        Values in the input's units; the input's integer dtype (rounded, clipped) or float32. Lazy (zarr-backed)
        when ``out`` is an OME-Zarr.

    Examples
    --------
    >>> import numpy as np
    >>> planes = multifocal(np.full((3, 16, 16), 128, np.uint8), model="mfpi-cytology-20x075", tile=16, halo=0,
    ...                     device="cpu", progress=False)
    >>> planes.axes, planes.data.shape, planes.data.dtype
    ('CZYX', (3, 11, 32, 32), dtype('uint8'))
    """
    from widefield3d.device import resolve_device
    from widefield3d.tiling import predict_tiled

    torch_device = resolve_device(device, "multifocal")
    if batch_size is None:
        batch_size = 1 if torch_device.type == "cpu" else 4
    m = model if isinstance(model, MFPIModel) else load(model)
    net, data = m.config.network, m.config.data
    array_input = not isinstance(image, (str, Path, io.Image))
    src = _as_input(image)
    c, ny, nx = src.data.shape
    if c != net.channels:
        name = m.path.name if m.path is not None else "given"
        raise InputError(f"multifocal: the image has {c} channels, the model {name} takes {net.channels}")
    _, dy, dx = src.spacing_zyx
    if array_input:
        dy = dx = 2 * (data.pixel_um or 0.5)
    spacing = (data.z_step_um or 1.0, dy / SCALE, dx / SCALE)
    dtype = np.dtype(src.data.dtype)
    dtype = dtype if dtype.kind in "ui" else np.dtype(np.float32)
    axes = "CZYX" if net.channels > 1 else "ZYX"
    shape = (net.channels, net.planes, ny * SCALE, nx * SCALE)[4 - len(axes):]
    names = src.channel_names if net.channels > 1 else None
    network = _intensity_network(m.generator, data.white_level)

    def run(target) -> None:
        writer = _StackWriter(target, net.channels, net.planes, data.white_level)
        predict_tiled(network, src.data, tile=tile, halo=halo, scale=SCALE, out=writer, device=torch_device,
                      progress=progress, batch_size=batch_size)

    if out is not None and str(out).lower().endswith((".zarr", ".ome.zarr")):
        out = Path(out)
        with io.atomic_output(out) as tmp:
            run(io.create_ome_zarr(tmp, shape, dtype, axes, spacing, channel_names=names, name=out.name))
        return io.read(out, lazy=True)
    result = np.empty(shape, dtype)
    run(result)
    stack = io.Image(result, axes, spacing, names)
    if out is not None:
        io.write(out, stack)
    return stack


# ------------------------------------------------------------------------------------------------ evaluation


def quantise(x, white_level: float = 255.0) -> np.ndarray:
    """Round and clip to ``[0, white_level]`` (the 8-bit scale of the paper's metrics), float64."""
    return np.clip(np.rint(np.asarray(x, np.float64)), 0, white_level)


def plane_metrics(pred, gt, *, white_level: float = 255.0) -> list[dict]:
    """PSNR (dB), SSIM, MSE and MAE of each focal plane of ``(C, N, Y, X)`` stacks (RGB pooled; SSIM per colour
    channel and averaged), after rounding both to the integer scale ``[0, white_level]``; rows ``{"plane": z, ...}``.
    """
    from widefield3d.analysis.metrics import evaluate

    p, g = quantise(pred, white_level), quantise(gt, white_level)
    if p.ndim == 3:
        p, g = p[None], g[None]
    rows = []
    for z in range(p.shape[1]):
        row = evaluate(p[:, z], g[:, z], data_range=white_level, channel_axis=0)[0]
        rows.append({"plane": z, **{k: row[k] for k in ("psnr", "ssim", "mse", "mae")}})
    return rows


def bicubic_upsample(lowres: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The bicubic baseline: ``(C, y, x)`` -> ``(C, *shape)`` (torch bicubic, half-pixel centres), float32."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(lowres, np.float32)[None])
    return F.interpolate(x, size=shape, mode="bicubic", align_corners=False)[0].numpy()
