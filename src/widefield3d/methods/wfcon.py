"""WFCON-Net (Optica 2021): a wide-field z-stack in, a confocal-like z-stack out, through a 3D GAN.

Start here (the method contract of :mod:`widefield3d.methods._base`): :class:`Config` (= :class:`WFConConfig`)
holds the settings, :func:`train` fits a model on paired stacks, :func:`load` opens a trained or shipped model,
:func:`confocal` runs it on a stack of any size and returns an :class:`widefield3d.io.Image` (also exported as
``widefield3d.confocal``).

Data: a folder with ``widefield/`` and ``confocal/`` sub-folders holding stacks of the same fields under the
same file names (ZYX, any format :func:`widefield3d.io.read` reads), as written by
``widefield3d simulate dataset --preset wfcon-60x14-tissue``. Every stack is normalised to [0, 1] by its own
percentiles (``data.norm_percentiles``, clipped); training draws random ``crop_zyx`` crops (paper:
12 x 256 x 256) of random training fields, flipped along Y and X and rotated by multiples of 90 degrees
in the YX plane. The last ``validation_fields`` fields (sorted by name) are held out for model selection.

Losses (paper eq. 1): LSGAN ``+ lambda * L1 + zeta * perceptual`` with lambda = 2, zeta = 0.01; the
perceptual features come from the discriminator (default, feature matching), a local VGG-16 file, or none
(:mod:`widefield3d.nets.features`). The paper gives no optimiser settings; the trainer's Deep-Z defaults
(Adam 1e-4 / 3e-5, six generator and three discriminator updates per iteration) are used with the paper's
batch size 24 and 6000 iterations.

References
----------
"Teaching a wide-field microscope to produce confocal z-stacks" (WFCON-Net), Optica Publishing Group (2021).
The paper's text (``shared/seeds/001_*.txt``) gives no DOI of its own; its supplementary visualizations are
https://doi.org/10.6084/m9.figshare.16809895 and https://doi.org/10.6084/m9.figshare.16809928.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.methods._base import LoadedModel, MethodConfig
from widefield3d.train.trainer import TrainerConfig

__all__ = ["Config", "WFConConfig", "WFConModel", "build_networks", "confocal", "interpolate_z", "load",
           "load_pairs", "make_task", "normalise", "percentile_range", "train"]

METHOD: Final = "wfcon"

class WFConNetworkConfig(BaseModel):
    """The generator, the discriminator and the perceptual term, and how the generator runs over big stacks."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["3d", "2d"] = Field("3d", description="3D network, or its 2D version applied plane by plane")
    width_multiplier: float = Field(1.0, gt=0, description="generator channels = 32 * this * 2**level (choice)")
    depth: int = Field(4, ge=1, description="down-sampling blocks")
    pool_z_levels: int = Field(2, ge=0, description="3D: first down-sampling blocks that also pool Z (choice)")
    discriminator_width_multiplier: float = Field(1.0, gt=0, description="1: Deep-Z's 48 ... 3072 channels")
    gan: bool = Field(True, description="False: no discriminator (the L1-only ablation)")
    perceptual: str = Field("discriminator", description="'discriminator', 'vgg16:PATH' (local weights) or 'none'")
    perceptual_weight: float = Field(0.01, ge=0, description="zeta")
    vgg_layers: tuple[str, ...] = Field(("relu2_2",), description="VGG-16 feature layers (Johnson et al.)")
    tile_zyx: tuple[int, int, int] = Field((48, 256, 256), description="inference tile (choice)")
    halo_zyx: tuple[int, int, int] = Field((8, 32, 32), description="inference tile context (choice)")
    blend_zyx: tuple[int, int, int] = Field((4, 16, 16), description="inference tile cross-fade (choice)")

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
        return self

    @property
    def divisor_zyx(self) -> tuple[int, int, int]:
        """Crop sizes must be multiples of these (the generator's pooling), per axis Z, Y, X."""
        z = 2 ** min(self.pool_z_levels, self.depth) if self.kind == "3d" else 1
        return (z, 2**self.depth, 2**self.depth)


class WFConDataConfig(BaseModel):
    """Training crops, intensity normalisation and the validation split."""

    model_config = ConfigDict(extra="forbid")

    crop_zyx: tuple[int, int, int] = Field((12, 256, 256), description="training crop, planes x pixels x pixels")
    augment: bool = Field(True, description="random flips (Y, X) and 90-degree rotations (YX)")
    norm_percentiles: tuple[float, float] = Field((0.1, 99.9), description="per-stack [0, 1] scaling (choice)")
    z_step_um: float = Field(0.5, gt=0, description="z step of the training stacks (µm)")
    validation_fields: int = Field(1, ge=1, description="last fields held out for model selection")
    validation_crops: int = Field(8, ge=1)

    @pydantic.field_validator("norm_percentiles")
    @classmethod
    def _percentiles(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 100:
            raise ValueError(f"norm_percentiles={value} must satisfy 0 <= low < high <= 100")
        return value


def _paper_trainer() -> TrainerConfig:
    return TrainerConfig(iterations=6000, batch_size=24, gan_loss="lsgan", adversarial_weight=1.0, pixel_weight=2.0,
                         pixel_loss="l1")


class WFConConfig(MethodConfig):
    """Network, data and training settings of WFCON-Net; defaults are the paper's (choices marked as such).
    ``provenance`` (filled by :func:`train`): the data folder's name and the training stacks' pixel size (µm)."""

    method: Literal["wfcon"] = METHOD
    network: WFConNetworkConfig = WFConNetworkConfig()
    data: WFConDataConfig = WFConDataConfig()
    trainer: TrainerConfig = Field(default_factory=_paper_trainer, description="batch 24, 6000 iterations, "
                                   "LSGAN, lambda = pixel_weight = 2")

    @pydantic.model_validator(mode="after")
    def _crop_fits_the_network(self):
        divisor = self.network.divisor_zyx
        if any(c % d or c < d for c, d in zip(self.data.crop_zyx, divisor)):
            raise ValueError(f"crop_zyx={self.data.crop_zyx} must be positive multiples of {divisor}")
        return self

    @classmethod
    def migrate(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The flat config of the first WFCON-Net models (``network`` was "3d" or "2d") -> network / data."""
        raw = dict(raw)
        network = {k: raw.pop(k) for k in WFConNetworkConfig.model_fields if k in raw and k != "kind"}
        if isinstance(raw.get("network"), str):
            network["kind"] = raw.pop("network")
        data = {k: raw.pop(k) for k in WFConDataConfig.model_fields if k in raw}
        return {**raw, "network": {**network, **raw.get("network", {})}, "data": {**data, **raw.get("data", {})}}


Config = WFConConfig
"""The method contract's name for this method's config."""


# ---------------------------------------------------------------------------------------------------------------
# networks


def build_networks(config: WFConConfig):
    """The generator and the Deep-Z(+) discriminator of the same dimensionality (None without ``network.gan``)
    the config describes (random weights)."""
    from widefield3d.nets.wfcon import WFConDiscriminator, WFConGenerator

    net = config.network
    ndim = 3 if net.kind == "3d" else 2
    generator = WFConGenerator(ndim=ndim, width_multiplier=net.width_multiplier, depth=net.depth,
                               pool_z_levels=net.pool_z_levels)
    return generator, WFConDiscriminator(ndim=ndim, width_multiplier=net.discriminator_width_multiplier) \
        if net.gan else None


def _perceptual_extractor(net: WFConNetworkConfig, discriminator):
    from widefield3d.nets.features import DiscriminatorFeatures, VGG16Features

    if net.perceptual == "none" or net.perceptual_weight == 0:
        return None
    if net.perceptual == "discriminator":
        return DiscriminatorFeatures(discriminator)
    return VGG16Features.from_file(net.perceptual.split(":", 1)[1], net.vgg_layers)


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
        crop = config.data.crop_zyx
        if any(s < c for s, c in zip(wf_data.shape, crop)):
            raise InputError(f"{folders[0] / name}: shape {wf_data.shape} is smaller than crop_zyx={crop}")
        pairs.names.append(name)
        pairs.widefield.append(normalise(wf_data, config.data.norm_percentiles))
        pairs.confocal.append(normalise(cf_data, config.data.norm_percentiles))
        pairs.spacing_um = wf.spacing_zyx
    return pairs


def _crop(pairs: PairedStacks, fields: list[int], rng: np.random.Generator, crop_zyx: tuple[int, int, int],
          augment: bool):
    """One random (wide-field, confocal) crop pair of ``crop_zyx`` from one of ``fields``, augmented."""
    i = fields[rng.integers(len(fields))]
    shape = pairs.widefield[i].shape
    start = [int(rng.integers(n - c + 1)) for n, c in zip(shape, crop_zyx)]
    box = tuple(slice(s, s + c) for s, c in zip(start, crop_zyx))
    x, y = pairs.widefield[i][box], pairs.confocal[i][box]
    if augment:
        k = int(rng.integers(4)) if crop_zyx[1] == crop_zyx[2] else 2 * int(rng.integers(2))
        flips = [axis for axis in (1, 2) if rng.random() < 0.5]
        x, y = (np.rot90(np.flip(a, tuple(flips)) if flips else a, k, axes=(1, 2)) for a in (x, y))
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _as_batch(crops: list[tuple[np.ndarray, np.ndarray]], network: str):
    """Crops -> ``(B, 1, Z, Y, X)`` tensors, or ``(B * Z, 1, Y, X)`` planes for the 2D network."""
    import torch

    x = torch.from_numpy(np.stack([c[0] for c in crops])[:, None])
    y = torch.from_numpy(np.stack([c[1] for c in crops])[:, None])
    if network == "2d":
        x, y = (t.transpose(1, 2).reshape(-1, 1, *t.shape[3:]) for t in (x, y))
    return x, y


def _split(pairs: PairedStacks, validation_fields: int) -> tuple[list[int], list[int]]:
    n = len(pairs.names)
    if n <= validation_fields:
        raise InputError(f"need more than validation_fields={validation_fields} fields, found {n}")
    return list(range(n - validation_fields)), list(range(n - validation_fields, n))


def make_task(pairs: PairedStacks, config: WFConConfig):
    """The :class:`~widefield3d.train.trainer.AdversarialTask` of WFCON-Net on these stacks."""
    import torch

    from widefield3d.nets.features import perceptual_loss
    from widefield3d.train.trainer import AdversarialTask

    data, net = config.data, config.network
    train_fields, val_fields = _split(pairs, data.validation_fields)
    batch = config.trainer.batch_size
    val_rng = np.random.default_rng(12345)
    crops = [_crop(pairs, val_fields, val_rng, data.crop_zyx, augment=False) for _ in range(data.validation_crops)]
    validation = [_as_batch(crops[i : i + 4], net.kind) for i in range(0, len(crops), 4)]

    def sample_batch(rng: np.random.Generator):
        return _as_batch([_crop(pairs, train_fields, rng, data.crop_zyx, data.augment) for _ in range(batch)],
                         net.kind)

    torch.manual_seed(config.trainer.seed)  # repeatable initial weights
    generator, discriminator = build_networks(config)
    extractor = _perceptual_extractor(net, discriminator)
    extra = None
    if extractor is not None:
        def extra(fake, target):
            return net.perceptual_weight * perceptual_loss(extractor.to(fake.device), fake, target)

    return AdversarialTask(generator, discriminator, sample_batch, validation, extra_generator_loss=extra)


def train(data_dir: str | Path, out_dir: str | Path, config: WFConConfig | None = None, *, resume: bool = False,
          progress: bool = True):
    """Train WFCON-Net on ``data_dir`` (see the module docstring) into the model directory ``out_dir``.

    Returns the :class:`~widefield3d.train.trainer.TrainResult`; ``out_dir`` receives config.json,
    weights.safetensors (best validation MAE), log.csv and checkpoint.pt (``resume=True`` continues it).
    """
    from widefield3d import zoo
    from widefield3d.train.trainer import train as run

    config = config or WFConConfig()
    pairs = load_pairs(data_dir, config)
    config = config.model_copy(update={"data": config.data.model_copy(update={"z_step_um": float(pairs.spacing_um[0])}),
                                       "provenance": {"data_dir": Path(data_dir).resolve().name,  # no machine path
                                                      "pixel_um": float(pairs.spacing_um[1])}})
    task = make_task(pairs, config)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    method_config = config.model_dump(mode="json")
    return run(task, config.trainer, out_dir, resume=resume, progress=progress, method_config=method_config,
               model_files=zoo)


# ---------------------------------------------------------------------------------------------------------------
# inference


@dataclass
class WFConModel(LoadedModel):
    """A trained generator (eval mode, CPU) with the config it was trained with and its directory."""

    config: WFConConfig


def load(name_or_dir: str | Path) -> WFConModel:
    """Open a shipped model by name (e.g. ``"wfcon-60x14-tissue"``) or a trained model directory."""
    from widefield3d import zoo

    path, config = WFConConfig.read(name_or_dir)
    generator = zoo.load_weights(build_networks(config)[0], path).eval()
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
             denormalise: bool = False, device: str = "auto", progress: bool = True) -> io.Image:
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
    io.Image
        ``ZYX``, float32 on the normalised [0, 1] scale of the confocal training targets (clipped; with
        ``denormalise``, mapped to ``[p_low, p_high]`` of the input), with
        ``Z' = round((Z - 1) * z_step_um / model z step) + 1`` planes at the model's z step; the lateral spacing
        is the input Image's (an array: the training stacks' pixel if recorded, else 1 µm).

    Notes
    -----
    The stack runs tile by tile (``network.tile_zyx``, ``halo_zyx``, ``blend_zyx``) as one pass of the
    generator over the whole stack would: every instance norm uses the statistics of the whole stack
    (:func:`widefield3d.tiling.image_norm_statistics`: one tiled pass per norm first, one pass in all for a
    stack that fits into one tile) and every convolution sees zeros beyond the stack's border
    (``border="zeros"``). A stack that fits into one tile, with sizes that are multiples of
    ``network.divisor_zyx``, gives the generator's plain forward pass; bigger stacks give it too where the halo
    reaches the generator's ``receptive_radius`` (else tiles lack context, cross-faded over ``blend_zyx``).

    Examples
    --------
    >>> import numpy as np
    >>> model = load("wfcon-60x14-tissue")
    >>> model.config.network.halo_zyx = (0, 0, 0)  # a tiny stack: one tile, no context needed
    >>> stack = np.random.default_rng(0).random((4, 16, 16), np.float32)
    >>> out = confocal(stack, model=model, z_step_um=0.5, device="cpu", progress=False)
    >>> out.axes, out.data.shape, [round(v, 4) for v in out.spacing_zyx]  # a plain array: the model's pixel size
    ('ZYX', (4, 16, 16), [0.5, 0.1083, 0.1083])
    """
    from widefield3d.device import resolve_device
    from widefield3d.tiling import frozen_norms, image_norm_statistics, predict_tiled

    m = model if isinstance(model, WFConModel) else load(model)
    net, data = m.config.network, m.config.data
    dy = dx = m.config.provenance.get("pixel_um", 1.0)
    if isinstance(stack, (str, Path)):
        stack = io.read(stack)
    if isinstance(stack, io.Image):
        stack = stack.as_axes("ZYX")
        _, dy, dx = stack.spacing_zyx
        stack = stack.data
    stack = np.asarray(stack)
    io.require_ndim(stack, (3,), "confocal: stack")
    io.check_array(stack, "confocal: stack", ndim=(3,))
    dev = resolve_device(device, where="confocal: device")
    value_range = percentile_range(stack, data.norm_percentiles)
    x = normalise(stack, value_range=value_range)
    if z_step_um is not None:
        if not z_step_um > 0:
            raise InputError(f"confocal: z_step_um={z_step_um!r} must be positive")
        factor = z_step_um / data.z_step_um
        if abs(factor - 1) > 1e-6:
            x = interpolate_z(x, factor)

    def tiled(volume: np.ndarray, tile, halo, blend, progress: bool) -> np.ndarray:
        # as one pass of the generator over the volume (plane): its instance norms use the whole volume's
        # statistics, and its convolutions see zeros beyond the volume's border
        geometry = dict(tile=tile, halo=halo, batch_size=1, device=dev, border="zeros")
        stats = image_norm_statistics(m.generator, volume, **geometry)
        with frozen_norms(stats):
            return predict_tiled(m.generator, volume, blend=blend, progress=progress, amp=dev.type == "cuda",
                                 **geometry)[0]

    if net.kind == "3d":
        out = tiled(x[None], net.tile_zyx, net.halo_zyx, net.blend_zyx, progress)
    else:
        out = np.stack([tiled(plane[None], net.tile_zyx[1:], net.halo_zyx[1:], net.blend_zyx[1:], False)
                        for plane in x])
    out = np.clip(out, 0.0, 1.0)
    if denormalise:
        lo, hi = value_range
        out = (out * (hi - lo) + lo).astype(np.float32)
    return io.Image(out, "ZYX", (data.z_step_um, dy, dx))
