"""WFCON-Net (Optica 2021): a wide-field z-stack in, a confocal-like z-stack out, through a 3D GAN.

Start here: :func:`train` fits a model on paired stacks, :func:`load` opens a trained or shipped model,
:func:`confocal` runs it on a stack of any size (also exported as ``widefield3d.confocal``).

Data: a folder with ``widefield/`` and ``confocal/`` sub-folders holding stacks of the same fields under the
same file names (ZYX, any format :func:`widefield3d.io.read` reads), as written by
``widefield3d simulate dataset --preset wfcon-60x14-tissue``. Every stack is normalised to [0, 1] by its own
percentiles (:attr:`WFConConfig.norm_percentiles`, clipped); training draws random ``crop_zyx`` crops (paper:
12 x 256 x 256) of random training fields, flipped along Y and X and rotated by multiples of 90 degrees
in the YX plane. The last ``validation_fields`` fields (sorted by name) are held out for model selection.

Losses (paper eq. 1): LSGAN ``+ lambda * L1 + zeta * perceptual`` with lambda = 2, zeta = 0.01; the
perceptual features come from the discriminator (default, feature matching), a local VGG-16 file, or none
(:mod:`widefield3d.nets.features`). The paper gives no optimiser settings; the trainer's Deep-Z defaults
(Adam 1e-4 / 3e-5, six generator and three discriminator updates per iteration) are used with the paper's
batch size 24 and 6000 iterations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from widefield3d.errors import InputError
from widefield3d.train.trainer import TrainerConfig

__all__ = ["WFConConfig", "WFConModel", "build_discriminator", "build_generator", "confocal", "interpolate_z", "load",
           "load_pairs", "normalise", "percentile_range", "train"]

METHOD = "wfcon"


def _paper_trainer() -> TrainerConfig:
    return TrainerConfig(iterations=6000, batch_size=24, gan_loss="lsgan", adversarial_weight=1.0, pixel_weight=2.0,
                         pixel_loss="l1")


class WFConConfig(BaseModel):
    """Network, data and training settings of WFCON-Net; defaults are the paper's (choices marked as such)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field("", description="one line shown by `widefield3d models`")
    network: Literal["3d", "2d"] = Field("3d", description="3D network, or its 2D version applied plane by plane")
    width_multiplier: float = Field(1.0, gt=0, description="generator channels = 32 * this * 2**level (choice)")
    depth: int = Field(4, ge=1, description="down-sampling blocks")
    pool_z_levels: int = Field(2, ge=0, description="3D: first down-sampling blocks that also pool Z (choice)")
    discriminator_width_multiplier: float = Field(1.0, gt=0, description="1: Deep-Z's 48 ... 3072 channels")
    gan: bool = Field(True, description="False: no discriminator (the L1-only ablation)")
    perceptual: str = Field("discriminator", description="'discriminator', 'vgg16:PATH' (local weights) or 'none'")
    perceptual_weight: float = Field(0.01, ge=0, description="zeta")
    vgg_layers: tuple[str, ...] = Field(("relu2_2",), description="VGG-16 feature layers (Johnson et al.)")
    crop_zyx: tuple[int, int, int] = Field((12, 256, 256), description="training crop, planes x pixels x pixels")
    augment: bool = Field(True, description="random flips (Y, X) and 90-degree rotations (YX)")
    norm_percentiles: tuple[float, float] = Field((0.1, 99.9), description="per-stack [0, 1] scaling (choice)")
    z_step_um: float = Field(0.5, gt=0, description="z step of the training stacks (µm)")
    validation_fields: int = Field(1, ge=1, description="last fields held out for model selection")
    validation_crops: int = Field(8, ge=1)
    tile_zyx: tuple[int, int, int] = Field((48, 256, 256), description="inference tile (choice)")
    halo_zyx: tuple[int, int, int] = Field((8, 32, 32), description="inference tile context (choice)")
    blend_zyx: tuple[int, int, int] = Field((4, 16, 16), description="inference tile cross-fade (choice)")
    trainer: TrainerConfig = Field(default_factory=_paper_trainer, description="batch 24, 6000 iterations, "
                                   "LSGAN, lambda = pixel_weight = 2")

    @pydantic.field_validator("perceptual")
    @classmethod
    def _perceptual(cls, value: str) -> str:
        if value in ("discriminator", "none") or (value.startswith("vgg16:") and len(value) > 6):
            return value
        raise ValueError(f"perceptual={value!r} must be 'discriminator', 'vgg16:PATH' or 'none'")

    @pydantic.model_validator(mode="after")
    def _consistent(self):
        if self.perceptual == "discriminator" and not self.gan and self.perceptual_weight > 0:
            raise ValueError("perceptual='discriminator' needs gan=True (feature matching uses the discriminator)")
        if self.pool_z_levels > self.depth:
            raise ValueError(f"pool_z_levels={self.pool_z_levels} exceeds depth={self.depth}")
        divisor = self.divisor_zyx
        bad = [c for c, d in zip(self.crop_zyx, divisor) if c % d or c < d]
        if bad:
            raise ValueError(f"crop_zyx={self.crop_zyx} must be positive multiples of {divisor}")
        lo, hi = self.norm_percentiles
        if not 0 <= lo < hi <= 100:
            raise ValueError(f"norm_percentiles={self.norm_percentiles} must satisfy 0 <= low < high <= 100")
        return self

    @property
    def divisor_zyx(self) -> tuple[int, int, int]:
        """Crop sizes must be multiples of these (the generator's pooling), per axis Z, Y, X."""
        z = 2 ** min(self.pool_z_levels, self.depth) if self.network == "3d" else 1
        return (z, 2**self.depth, 2**self.depth)


# ---------------------------------------------------------------------------------------------------------------
# networks


def build_generator(config: WFConConfig):
    """The generator the config describes (random weights)."""
    from widefield3d.nets.wfcon import WFConGenerator

    return WFConGenerator(ndim=3 if config.network == "3d" else 2, width_multiplier=config.width_multiplier,
                          depth=config.depth, pool_z_levels=config.pool_z_levels)


def build_discriminator(config: WFConConfig):
    """The Deep-Z(+) discriminator of the same dimensionality as the generator, or None without GAN."""
    if not config.gan:
        return None
    from widefield3d.nets.wfcon import WFConDiscriminator

    return WFConDiscriminator(ndim=3 if config.network == "3d" else 2,
                              width_multiplier=config.discriminator_width_multiplier)


def _perceptual_extractor(config: WFConConfig, discriminator):
    from widefield3d.nets.features import DiscriminatorFeatures, VGG16Features

    if config.perceptual == "none" or config.perceptual_weight == 0:
        return None
    if config.perceptual == "discriminator":
        return DiscriminatorFeatures(discriminator)
    return VGG16Features.from_file(config.perceptual.split(":", 1)[1], config.vgg_layers)


# ---------------------------------------------------------------------------------------------------------------
# data


def percentile_range(stack: np.ndarray, percentiles: tuple[float, float] = (0.1, 99.9)):
    """``(p_low, p_high)``: the intensities of the whole stack (input units) that :func:`normalise` maps to 0 and 1."""
    lo, hi = np.percentile(np.asarray(stack, dtype=np.float32), percentiles)
    if not hi > lo:
        raise InputError(f"normalise: the stack is constant ({lo:g}); nothing to scale to [0, 1]")
    return lo, hi


def normalise(stack: np.ndarray, percentiles: tuple[float, float] = (0.1, 99.9), value_range=None) -> np.ndarray:
    """``(stack - p_low) / (p_high - p_low)`` clipped to [0, 1], float32; percentiles of the whole stack, or
    ``value_range = (p_low, p_high)`` from :func:`percentile_range`."""
    stack = np.asarray(stack, dtype=np.float32)
    lo, hi = percentile_range(stack, percentiles) if value_range is None else value_range
    return np.clip((stack - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


@dataclass
class PairedStacks:
    """Normalised wide-field and confocal stacks (ZYX float32 on [0, 1]) of the same fields, by file name."""

    names: list[str]
    widefield: list[np.ndarray]
    confocal: list[np.ndarray]
    spacing_um: tuple[float, float, float]


def load_pairs(data_dir: str | Path, config: WFConConfig) -> PairedStacks:
    """Read ``data_dir/widefield/*`` and ``data_dir/confocal/*`` (same names, same ZYX shapes), normalised."""
    from widefield3d import io

    data_dir = Path(data_dir)
    folders = [data_dir / "widefield", data_dir / "confocal"]
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{data_dir}: needs sub-folders widefield/ and confocal/ ({folder.name}/ is missing)")
    names = sorted(p.name for p in folders[0].iterdir() if p.suffix.lower() in (".tif", ".tiff", ".npy", ".zarr"))
    missing = [n for n in names if not (folders[1] / n).exists()]
    if not names or missing:
        raise InputError(f"{data_dir}: no wide-field stacks" if not names else
                         f"{folders[1] / missing[0]}: no confocal stack for this wide-field stack")
    pairs = PairedStacks([], [], [], (0.0, 0.0, 0.0))
    for name in names:
        wf, cf = (io.read(folder / name) for folder in folders)
        wf_data = np.asarray(wf.as_axes("ZYX").data)
        cf_data = np.asarray(cf.as_axes("ZYX").data)
        if wf_data.shape != cf_data.shape:
            raise InputError(f"{folders[1] / name}: shape {cf_data.shape} differs from the wide-field {wf_data.shape}")
        if any(s < c for s, c in zip(wf_data.shape, config.crop_zyx)):
            raise InputError(f"{folders[0] / name}: shape {wf_data.shape} is smaller than crop_zyx={config.crop_zyx}")
        pairs.names.append(name)
        pairs.widefield.append(normalise(wf_data, config.norm_percentiles))
        pairs.confocal.append(normalise(cf_data, config.norm_percentiles))
        pairs.spacing_um = wf.spacing_zyx
    return pairs


def _crop(pairs: PairedStacks, fields: list[int], rng: np.random.Generator, config: WFConConfig, augment: bool):
    """One random (wide-field, confocal) crop pair of ``crop_zyx`` from one of ``fields``, augmented."""
    i = fields[rng.integers(len(fields))]
    shape = pairs.widefield[i].shape
    start = [int(rng.integers(n - c + 1)) for n, c in zip(shape, config.crop_zyx)]
    box = tuple(slice(s, s + c) for s, c in zip(start, config.crop_zyx))
    x, y = pairs.widefield[i][box], pairs.confocal[i][box]
    if augment:
        k = int(rng.integers(4)) if config.crop_zyx[1] == config.crop_zyx[2] else 2 * int(rng.integers(2))
        flips = [axis for axis in (1, 2) if rng.random() < 0.5]
        x, y = (np.rot90(np.flip(a, flips) if flips else a, k, axes=(1, 2)) for a in (x, y))
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _as_batch(crops: list[tuple[np.ndarray, np.ndarray]], network: str):
    """Crops -> ``(B, 1, Z, Y, X)`` tensors, or ``(B * Z, 1, Y, X)`` planes for the 2D network."""
    import torch

    x = torch.from_numpy(np.stack([c[0] for c in crops])[:, None])
    y = torch.from_numpy(np.stack([c[1] for c in crops])[:, None])
    if network == "2d":
        x, y = (t.transpose(1, 2).reshape(-1, 1, *t.shape[3:]) for t in (x, y))
    return x, y


def _split(pairs: PairedStacks, config: WFConConfig) -> tuple[list[int], list[int]]:
    n = len(pairs.names)
    if n <= config.validation_fields:
        raise InputError(f"need more than validation_fields={config.validation_fields} fields, found {n}")
    return list(range(n - config.validation_fields)), list(range(n - config.validation_fields, n))


def make_task(pairs: PairedStacks, config: WFConConfig):
    """The :class:`~widefield3d.train.trainer.AdversarialTask` of WFCON-Net on these stacks."""
    import torch

    from widefield3d.nets.features import perceptual_loss
    from widefield3d.train.trainer import AdversarialTask

    train_fields, val_fields = _split(pairs, config)
    batch = config.trainer.batch_size
    val_rng = np.random.default_rng(12345)
    crops = [_crop(pairs, val_fields, val_rng, config, augment=False) for _ in range(config.validation_crops)]
    validation = [_as_batch(crops[i : i + 4], config.network) for i in range(0, len(crops), 4)]

    def sample_batch(rng: np.random.Generator):
        return _as_batch([_crop(pairs, train_fields, rng, config, config.augment) for _ in range(batch)],
                         config.network)

    torch.manual_seed(config.trainer.seed)  # repeatable initial weights
    generator, discriminator = build_generator(config), build_discriminator(config)
    extractor = _perceptual_extractor(config, discriminator)
    extra = None
    if extractor is not None:
        def extra(fake, target):
            return config.perceptual_weight * perceptual_loss(extractor.to(fake.device), fake, target)

    return AdversarialTask(generator, discriminator, sample_batch, validation, extra_generator_loss=extra)


def train(data_dir: str | Path, out_dir: str | Path, config: WFConConfig | None = None, *, resume: bool = False,
          progress: bool = True):
    """Train WFCON-Net on ``data_dir`` (see the module docstring) into the model directory ``out_dir``.

    Returns the :class:`~widefield3d.train.trainer.TrainResult`; ``out_dir`` receives config.json,
    weights.safetensors (best validation MAE), log.csv and checkpoint.pt (``resume=True`` continues it).
    """
    from widefield3d.train.trainer import train as run

    config = config or WFConConfig()
    pairs = load_pairs(data_dir, config)
    config = config.model_copy(update={"z_step_um": float(pairs.spacing_um[0])})
    task = make_task(pairs, config)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    method_config = {"method": METHOD, **config.model_dump(mode="json", exclude={"trainer"})}
    return run(task, config.trainer, out_dir, resume=resume, progress=progress, method_config=method_config)


# ---------------------------------------------------------------------------------------------------------------
# inference


@dataclass
class WFConModel:
    """A trained generator (eval mode, CPU) with the config it was trained with and its directory."""

    generator: object
    config: WFConConfig
    path: Path | None = None


def load(name_or_dir: str | Path) -> WFConModel:
    """Open a shipped model by name (e.g. ``"wfcon-60x14-tissue"``) or a trained model directory."""
    from widefield3d import zoo

    path = zoo.resolve_model(name_or_dir, METHOD)
    raw = zoo.read_config(path, METHOD)
    fields = {k: v for k, v in raw.items() if k not in ("method", "widefield3d_version")}
    try:
        config = WFConConfig.model_validate(fields)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        raise InputError(f"{path / zoo.CONFIG_NAME}: invalid WFCON-Net config "
                         f"({'.'.join(map(str, first['loc']))}: {first['msg']})") from None
    generator = zoo.load_weights(build_generator(config), path).eval()
    return WFConModel(generator, config, path)


def interpolate_z(stack: np.ndarray, factor: float) -> np.ndarray:
    """Linear interpolation along Z onto a grid ``factor`` times finer: ``n`` planes -> ``round((n-1)*factor)+1``.

    The paper's Fig. 9 study: stacks taken with a z step 2x or 4x the training step are interpolated to the
    training step before the network. Plane ``k`` of the output lies at input plane ``k / factor``; input
    planes are kept exactly where they fall on the new grid.
    """
    stack = np.asarray(stack, dtype=np.float32)
    if not factor > 0:
        raise InputError(f"interpolate_z: factor={factor!r} must be positive")
    n = stack.shape[0]
    pos = np.arange(int(round((n - 1) * factor)) + 1) / factor
    lo = np.clip(np.floor(pos + 1e-6).astype(int), 0, n - 1)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).astype(np.float32)[:, None, None]
    return ((1 - w) * stack[lo] + w * stack[hi]).astype(np.float32)


def confocal(stack, *, model: str | Path | WFConModel = "wfcon-60x14-tissue", z_step_um: float | None = None,
             denormalise: bool = False, device: str = "auto", progress: bool = True) -> np.ndarray:
    """A confocal-like z-stack from a wide-field z-stack.

    Parameters
    ----------
    stack : array-like, widefield3d.io.Image or path
        Wide-field ZYX stack (any numeric dtype, any size; an Image or file is brought to ZYX). Normalised to [0, 1] with the model's percentiles.
    model : str, Path or WFConModel
        A shipped model name, a model directory, or a loaded model.
    z_step_um : float, optional
        Z step of ``stack`` in µm; default: the model's training step (files without
        spacing metadata read as 1 µm, so the step is never guessed from them). A larger step (e.g. 2x or 4x) is first
        linearly interpolated to the training step (:func:`interpolate_z`), so the output has more planes.
    denormalise : bool
        Return ``y * (p_high - p_low) + p_low``: the [0, 1] output mapped back with the input's own normalisation
        (:func:`percentile_range`), i.e. on the input's camera scale. Default: the normalised [0, 1] scale.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    progress : bool
        Show a progress bar over tiles.

    Returns
    -------
    numpy.ndarray
        ``(Z', Y, X)`` float32 on the normalised [0, 1] scale of the confocal training targets (clipped; with
        ``denormalise``, mapped to ``[p_low, p_high]`` of the input), with
        ``Z' = round((Z - 1) * z_step_um / model z step) + 1`` planes at the model's z step.
    """
    from widefield3d import io
    from widefield3d.device import resolve_device
    from widefield3d.tiling import frozen_norms, image_norm_statistics, predict_tiled

    m = model if isinstance(model, WFConModel) else load(model)
    cfg = m.config
    if isinstance(stack, (str, Path)):
        stack = io.read(stack)
    if isinstance(stack, io.Image):
        stack = stack.as_axes("ZYX").data
    stack = np.asarray(stack)
    io.require_ndim(stack, (3,), "confocal: stack")
    io.check_array(stack, "confocal: stack", ndim=(3,))
    dev = resolve_device(device, where="confocal: device")
    value_range = percentile_range(stack, cfg.norm_percentiles)
    x = normalise(stack, value_range=value_range)
    if z_step_um is not None:
        if not z_step_um > 0:
            raise InputError(f"confocal: z_step_um={z_step_um!r} must be positive")
        factor = z_step_um / cfg.z_step_um
        if abs(factor - 1) > 1e-6:
            x = interpolate_z(x, factor)
    def tiled(volume: np.ndarray, tile, halo, blend, progress: bool) -> np.ndarray:
        # instance norms use the statistics of the whole volume (plane), so tiles agree with one pass
        stats = image_norm_statistics(m.generator, volume, tile=tile, halo=halo, batch_size=1, device=dev)
        with frozen_norms(stats):
            return predict_tiled(m.generator, volume, tile=tile, halo=halo, blend=blend, batch_size=1, device=dev,
                                 progress=progress, amp=dev.type == "cuda")[0]

    if cfg.network == "3d":
        out = tiled(x[None], cfg.tile_zyx, cfg.halo_zyx, cfg.blend_zyx, progress)
    else:
        out = np.stack([tiled(plane[None], cfg.tile_zyx[1:], cfg.halo_zyx[1:], cfg.blend_zyx[1:], False)
                        for plane in x])
    out = np.clip(out, 0.0, 1.0)
    if denormalise:
        lo, hi = value_range
        out = (out * (hi - lo) + lo).astype(np.float32)
    return out
