"""Deep-Z and Deep-Z+ (Wu et al., Nature Methods 2019): refocus one wide-field image onto planes or 3D surfaces.

The input image is appended with a digital propagation matrix (DPM): per pixel, the distance ``z_target -
z_input`` (µm, + = deeper) of the surface to refocus onto. A trained generator maps (image, DPM / range) to the
image on that surface; a list of distances gives a virtual z-stack. Deep-Z+ is the same network trained with
confocal targets, so that it refocuses a wide-field image into confocal-like sections.

The method contract (:mod:`widefield3d.methods._base`):

- :class:`Config` (= :class:`DeepZConfig`): network, data and trainer settings (paper defaults), saved as
  ``config.json``.
- :func:`train`: training pairs (:mod:`widefield3d.methods.deepz_data`) + the shared adversarial loop.
- :func:`load`, :func:`refocus`: inference through :func:`widefield3d.tiling.predict_tiled`, any image size; the
  result is an :class:`widefield3d.io.Image` with axes and spacing.
- :func:`surface_dpm`: the DPM of a plane, tilted plane, cylinder or sinusoidal surface.
- :func:`sample_at_depth`: a z-stack sampled along a surface (linear in z), e.g. the ground truth of a surface.

Intensities: the input is normalised as the paper does at test time (triangle threshold of the input image itself:
background subtracted, 1% of the foreground above 1), the network runs on normalised values, and the output is
mapped back to the input's units (``denormalise=True``) or left normalised.

References
----------
Wu, Y., et al. "Three-dimensional virtual refocusing of fluorescence microscopy images using deep learning."
Nature Methods (2019). (The paper's text in ``shared/seeds/004_*.txt`` gives no DOI of its own.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.methods._base import LoadedModel, MethodConfig
from widefield3d.methods.deepz_calibration import DepthCalibration, read_depth_calibration
from widefield3d.methods.deepz_data import DeepZDataConfig
from widefield3d.progress import progress_bar
from widefield3d.train.trainer import TrainerConfig

METHOD: Final = "deepz"
TILE_PX: Final = 768
"""Default inference window of :func:`refocus` (px): holds a 512 px image and its halo whole."""


class DeepZNetworkConfig(BaseModel):
    """Generator and discriminator size (1.0 = the paper's channel counts)."""

    model_config = ConfigDict(extra="forbid")

    width: float = Field(1.0, gt=0, le=4, description="generator channel multiplier (paper 1.0)")
    discriminator_width: float = Field(1.0, gt=0, le=4, description="discriminator channel multiplier (paper 1.0)")
    conditioning: Literal["input", "film"] = Field(
        "input", description="input: the DPM is an input channel (paper); film: it also modulates every block")
    discriminator_bias_init: float = Field(
        0.1, ge=0, le=1, description="initial value of the discriminator's biases (paper 0.1; 0 lets it learn on dim "
                                     "targets such as EDF-normalised confocal planes)")
    discriminator_sigmoid: bool = Field(
        True, description="end the discriminator with a sigmoid (paper); false: unbounded least-squares scores, "
                          "which cannot saturate")


class DeepZConfig(MethodConfig):
    """Everything that defines a Deep-Z model and its training (paper values as defaults).

    Deviations from the paper (a smaller width, patch or iteration count for CPU training) are explicit here and are
    saved with the model. ``provenance`` is filled by :func:`train` (pixel size and z step of the training stacks,
    number of pairs, data directory's name) and read by :func:`refocus` (the pixel size for surfaces). Besides the
    shared shape, Deep-Z records ``validation_max_pairs`` and ``normalisation`` (their place since the first models).
    """

    method: Literal["deepz"] = METHOD
    network: DeepZNetworkConfig = DeepZNetworkConfig()
    data: DeepZDataConfig = DeepZDataConfig()
    trainer: TrainerConfig = TrainerConfig(batch_size=20)
    validation_max_pairs: int | None = Field(
        None, ge=1, description="validate on at most this many pairs, spread evenly over the validation set "
                                "(None: all)")
    normalisation: dict = Field(
        default_factory=lambda: {"kind": "triangle", "reference_training": "EDF of each stack",
                                 "reference_inference": "the input image", "saturate_fraction": 0.01},
        description="how intensities were normalised (recorded; saturate_fraction follows data.saturate_fraction)")


Config = DeepZConfig
"""The method contract's name for this method's config."""


@dataclass
class DeepZModel(LoadedModel):
    """A loaded Deep-Z generator (:class:`widefield3d.nets.deepz.DeepZGenerator`) with its configuration and, if
    its directory has one, its depth calibration (:mod:`widefield3d.methods.deepz_calibration`)."""

    config: DeepZConfig
    depth_calibration: DepthCalibration | None = None

    @property
    def range_um(self) -> float:
        """Largest |DPM| (µm) the model was trained on."""
        return self.config.data.range_um

    @property
    def pixel_um(self) -> float | None:
        """Lateral pixel size (µm) of the training data, if recorded."""
        return self.config.provenance.get("pixel_um")

    @property
    def z_step_um(self) -> float | None:
        """Plane spacing (µm) of the training stacks (the DPMs it was trained on are its multiples), if recorded."""
        return self.config.provenance.get("z_step_um")

    @property
    def surface_step_um(self) -> float:
        """Default plane spacing (µm) of ``refocus(surface_via="planes")``: the training z step, else 0.5 µm."""
        return round(self.z_step_um or 0.5, 6)


def load(name_or_dir: str | Path) -> DeepZModel:
    """Load a shipped model by name (``widefield3d models``) or a trained model directory."""
    from widefield3d import zoo

    path, config = DeepZConfig.read(name_or_dir)
    generator, _ = build_networks(config)
    zoo.load_weights(generator, path)
    return DeepZModel(generator.eval(), config, path, read_depth_calibration(path))


# ----------------------------------------------------------------------------------------------------------------
# surfaces


def surface_dpm(shape: tuple[int, int], pixel_um: float, *, tilt_deg: float | None = None,
                tilt_axis: Literal["x", "y"] = "x", cylinder_radius_um: float | None = None,
                cylinder_axis: Literal["x", "y"] = "y", sinusoid: tuple[float, float] | None = None,
                dpm=None) -> np.ndarray:
    """Per-pixel refocus distance (µm) of one surface, relative to the input plane, before any z offset.

    At most one surface may be given; none gives zeros (a plane). Conventions follow the simulator's tilted and
    curved bead samples (:mod:`widefield3d.sim.samples`), so that a DPM equal to the sample's surface brings it into
    focus:

    - ``tilt_deg`` about ``tilt_axis``: ``tan(angle) * (y - y_c)`` for ``"x"``, ``tan(angle) * (x - x_c)`` for ``"y"``
      (a positive angle goes deeper at larger y, resp. x);
    - ``cylinder_radius_um`` R with its axis along ``cylinder_axis`` through the centre:
      ``sign(R) * (|R| - sqrt(R^2 - u^2))``, u across the axis; R > 0 = the apex is nearest (sides deeper);
    - ``sinusoid=(period_um, amplitude_um)``: ``amplitude * sin(2 pi x / period)`` along x (paper, Fig. S7);
    - ``dpm``: a ``(Y, X)`` array in µm, used as it is.

    Returns
    -------
    ndarray of float32, ``(Y, X)``, µm.
    """
    given = [name for name, v in (("tilt_deg", tilt_deg), ("cylinder_radius_um", cylinder_radius_um),
                                  ("sinusoid", sinusoid), ("dpm", dpm)) if v is not None]
    if len(given) > 1:
        raise InputError(f"refocus: give at most one surface, got {', '.join(given)}")
    ny, nx = shape
    if not (isinstance(pixel_um, (int, float)) and pixel_um > 0 and math.isfinite(pixel_um)):
        raise InputError(f"refocus: pixel size {pixel_um!r} µm must be a positive number")
    y = (np.arange(ny, dtype=np.float64) - (ny - 1) / 2) * pixel_um
    x = (np.arange(nx, dtype=np.float64) - (nx - 1) / 2) * pixel_um
    yy, xx = np.meshgrid(y, x, indexing="ij")
    if dpm is not None:
        surface = np.asarray(dpm, dtype=np.float64)
        if surface.shape != (ny, nx):
            raise InputError(f"dpm: shape {surface.shape} differs from the image's {(ny, nx)}")
        if not np.all(np.isfinite(surface)):
            raise InputError("dpm: contains NaN or infinite values")
    elif tilt_deg is not None:
        if tilt_axis not in ("x", "y"):
            raise InputError(f"tilt_axis: must be 'x' or 'y', got {tilt_axis!r}")
        if not -89 <= tilt_deg <= 89:
            raise InputError(f"tilt_deg: {tilt_deg} degrees is outside [-89, 89]")
        surface = math.tan(math.radians(tilt_deg)) * (yy if tilt_axis == "x" else xx)
    elif cylinder_radius_um is not None:
        if cylinder_axis not in ("x", "y"):
            raise InputError(f"cylinder_axis: must be 'x' or 'y', got {cylinder_axis!r}")
        r = abs(float(cylinder_radius_um))
        u = xx if cylinder_axis == "y" else yy
        if r == 0 or np.abs(u).max() >= r:
            raise InputError(f"cylinder_radius_um: |R| = {r:g} µm must exceed half the field width "
                             f"({np.abs(u).max():.1f} µm)")
        surface = math.copysign(1.0, cylinder_radius_um) * (r - np.sqrt(r * r - u * u))
    elif sinusoid is not None:
        period, amplitude = (float(v) for v in sinusoid)
        if period <= 0:
            raise InputError(f"sinusoid: period {period:g} µm must be positive")
        surface = amplitude * np.sin(2 * np.pi * (xx - x[0]) / period)
    else:
        surface = np.zeros(shape)
    return surface.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# inference


def _plane_batch(generator, n_planes: int):
    """Wrap a generator so that one tile of ``1 + n_planes`` channels (image, DPMs) gives ``n_planes`` planes.

    This lets :func:`widefield3d.tiling.predict_tiled` push all planes of a virtual stack through one tiling pass.
    """
    import torch
    from torch import nn

    class PlaneBatch(nn.Module):
        ndim = 2

        def __init__(self):
            super().__init__()
            self.generator = generator
            self.in_channels = 1 + n_planes
            self.downsampling_factor = generator.downsampling_factor
            self.receptive_radius = generator.receptive_radius

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, c, ny, nx = x.shape
            image = x[:, :1].expand(b, n_planes, ny, nx)
            pairs = torch.stack([image, x[:, 1:]], dim=2).reshape(b * n_planes, 2, ny, nx)
            # channels_last input: oneDNN's convolutions ran 1.46x faster (4 x 512² px, width 0.375, 2 CPU cores)
            pairs = pairs.contiguous(memory_format=torch.channels_last)
            return self.generator(pairs).reshape(b, n_planes, ny, nx)

    return PlaneBatch()


def _plane_grid(lo: float, hi: float, step: float, reach: tuple[float, float]) -> np.ndarray:
    """Flat refocus planes (µm) on the grid ``k * step`` that cover ``[lo, hi]``, clipped to ``reach`` (the
    depths of the trained DPM range) if ``[lo, hi]`` lies within it (the grid's end planes must not leave it)."""
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    grid = np.arange(first, max(last, first + 1) + 1) * step
    if reach[0] <= lo and hi <= reach[1]:
        grid = np.unique(np.clip(grid, *reach))
    return grid


def sample_at_depth(stack: np.ndarray, stack_z_um: np.ndarray, depth_um: np.ndarray) -> np.ndarray:
    """``(Y, X)`` float32: each pixel of ``stack`` (``(Z, Y, X)`` at increasing depths ``stack_z_um``) at depth
    ``depth_um[y, x]`` (µm), linear in z and clamped to the stack's ends (a surface through a z-stack)."""
    position = np.interp(depth_um, stack_z_um, np.arange(len(stack_z_um)))
    below = np.minimum(np.floor(position).astype(np.intp), max(len(stack_z_um) - 2, 0))
    above = np.minimum(below + 1, len(stack_z_um) - 1)
    weight = (position - below).astype(np.float32)
    low = np.take_along_axis(stack, below[None], axis=0)[0]
    high = np.take_along_axis(stack, above[None], axis=0)[0]
    return (low + weight * (high - low)).astype(np.float32)


def _as_frames(image, axes: str | None) -> tuple[np.ndarray, bool, float | None]:
    """``(T, Y, X)`` float32 frames, whether the input had a T axis, and its pixel size if known."""
    pixel = None
    if isinstance(image, (str, Path)):
        image = io.read(image)
    if isinstance(image, io.Image):
        pixel = image.spacing_um.get("X") if image.spacing_um.get("X", 1.0) != 1.0 else None
        axes, image = image.axes, image.data
    data = np.asarray(image)
    if axes is None:
        axes = {2: "YX", 3: "TYX"}.get(data.ndim)
        if axes is None:
            raise InputError(f"refocus: image must be 2D (YX) or a time series (TYX), got shape {data.shape}")
    axes = io.check_axes(axes, data.shape, "refocus image")
    squeezable = [a for a, n in zip(axes, data.shape) if a not in "TYX" and n == 1]
    if set(axes) - set("TYX") - set(squeezable):
        raise InputError(f"refocus: image axes '{axes}' (shape {data.shape}) must be YX or TYX: Deep-Z refocuses "
                         "single planes (a Z or C axis of size > 1 is not accepted)")
    frames = io.Image(data, axes).as_axes("TYX").data
    if frames.dtype.kind not in "uif":
        raise InputError(f"refocus: image dtype {frames.dtype} is not numeric")
    frames = frames.astype(np.float32)
    if not np.all(np.isfinite(frames)):
        raise InputError("refocus: image contains NaN or infinite values")
    return frames, "T" in axes, pixel


def dpm_of_depths(model: DeepZModel, depths_um, calibrated: bool = False) -> np.ndarray:
    """The DPMs (µm) that bring ``depths_um`` into focus: the depths themselves, or with ``calibrated`` the model's
    depth calibration of them (refused for a model without one)."""
    if not calibrated:
        return np.asarray(depths_um, np.float64)
    if model.depth_calibration is None:
        raise InputError(f"calibrated: model {Path(str(model.path)).name!r} has no depth calibration "
                         "(depth_calibration.json; benchmarks/deepz_calibrate.py fits one)")
    return np.asarray(model.depth_calibration.dpm(depths_um), np.float64)


def reference_normalisation(reference, model: DeepZModel):
    """The intensity normalisation of a reference instead of the input image itself.

    ``reference``: a ``YX`` image or a ``ZYX`` stack (then its EDF image, as the paper normalises training stacks),
    array or :class:`io.Image`, on the input's camera scale (same exposure). A model trained against each stack's EDF
    (``data.normalise_against="edf"``, the paper) sees a single input normalised against itself at inference, where
    defocused content is brighter than in training; normalising against an in-focus reference of the same kind of
    sample removes that mismatch (docs/deepz.md, "Normalisation"). Returns a
    :class:`widefield3d.prep.normalise.Normalisation` for :func:`refocus`'s ``normalisation``.
    """
    from widefield3d.prep.normalise import edf_normalisation, triangle_normalisation

    data = np.asarray(reference.data if isinstance(reference, io.Image) else reference)
    if data.ndim not in (2, 3) or data.size == 0:
        raise InputError(f"reference: expected one plane (YX) or a stack (ZYX), got shape {data.shape}")
    fraction = model.config.data.saturate_fraction
    if data.ndim == 3:
        return edf_normalisation(data, fraction)[0]  # the EDF converts to float32 itself
    return triangle_normalisation(data, fraction)


def refocus(image, z=None, *, model, dpm=None, tilt_deg: float | None = None, tilt_axis: Literal["x", "y"] = "x",
            cylinder_radius_um: float | None = None, cylinder_axis: Literal["x", "y"] = "y",
            sinusoid: tuple[float, float] | None = None, allow_extrapolation: bool = False, device: str = "auto",
            progress: bool = True, axes: str | None = None, pixel_um: float | None = None, normalisation=None,
            denormalise: bool = True, mip: bool = False, tile: int = TILE_PX, batch_size: int = 1,
            planes_per_pass: int = 8, surface_via: Literal["dpm", "planes"] = "dpm",
            surface_step_um: float | None = None, calibrated: bool = False) -> io.Image:
    """Refocus a wide-field image onto a plane, a virtual z-stack or a 3D surface with a Deep-Z(+) model.

    Parameters
    ----------
    image : array_like or widefield3d.io.Image
        One plane ``(Y, X)`` or a time series ``(T, Y, X)`` (a 3D array is read as TYX; pass ``axes`` or an
        ``Image`` for other orders). Any size (tiled inference).
    z : float or sequence of float, optional
        Refocus distance(s) in µm (+ = deeper), added to the surface if one is given. A scalar (default 0) gives one
        plane, a sequence a virtual stack.
    model : str, path or DeepZModel
        Shipped model name (e.g. ``"deepz-20x075"``), model directory, or a model from :func:`load`.
    dpm, tilt_deg, tilt_axis, cylinder_radius_um, cylinder_axis, sinusoid
        At most one surface; see :func:`surface_dpm`.
    allow_extrapolation : bool
        Allow DPM values beyond the model's trained axial range (refused by default: Deep-Z fails outside it).
    device : {"auto", "cpu", "cuda", "cuda:N"}
    progress : bool
        Progress bar over frames and plane groups.
    axes : str, optional
        Axes of a plain array (default YX for 2D, TYX for 3D).
    pixel_um : float, optional
        Lateral pixel size for surfaces; default the ``Image``'s spacing, else the model's training pixel size.
    normalisation : widefield3d.prep.normalise.Normalisation, optional
        Intensity normalisation to use instead of the triangle normalisation of each input frame (the paper's
        test-time rule), e.g. :func:`reference_normalisation` of a stack taken with the same exposure.
    denormalise : bool
        Return values in the input's units (``y * scale + background``); False: the normalised scale of training.
    mip : bool
        Return the maximum-intensity projection over the refocused planes instead of the planes.
    tile, batch_size, planes_per_pass : int
        Tiling window (pixels), tiles per forward pass and refocus planes per tiling pass (memory vs speed). The
        default 768 px window, one per pass, holds a 512 px image and its halo whole and recomputes less halo than
        two 512 px windows per pass on larger images, in about their memory (docs/deepz.md, "Speed").
    surface_via : {"dpm", "planes"}
        How a surface is refocused onto. ``"dpm"`` (the paper): the per-pixel DPM goes into the network.
        ``"planes"``: the network refocuses onto flat planes every ``surface_step_um`` across the surface's depth
        range (uniform DPMs, as in training), and each output pixel is interpolated linearly along z between the two
        planes around its surface depth; it costs one pass per plane but needs no generalisation from flat to
        curved DPMs (docs/deepz.md, "Surfaces"). Ignored without a surface.
    surface_step_um : float, optional
        Plane spacing (µm) of ``surface_via="planes"``; default the model's training z step (0.5 µm if unrecorded).
    calibrated : bool
        Feed the network the DPM that the model's depth calibration says focuses each requested depth
        (``calibration.dpm(z + surface)``) instead of the depth itself; needs a model with ``depth_calibration.json``
        (:mod:`widefield3d.methods.deepz_calibration`; not in the paper).

    Returns
    -------
    io.Image
        float32 ``YX`` for one plane, ``ZYX`` for a sequence of ``z`` (``T`` in front for a time series); with
        ``mip`` the Z axis is projected away. Spacing: the size of the mean step of ``z`` (µm; 1 for a single plane
        or where it is 0) and the pixel size used for surfaces (µm).

    Examples
    --------
    >>> import numpy as np, widefield3d
    >>> image = np.random.default_rng(0).random((64, 64), np.float32)
    >>> stack = widefield3d.refocus(image, [-2.0, 0.0, 2.0], model="deepz-20x075", device="cpu", progress=False)
    >>> stack.axes, stack.data.shape, stack.spacing_um["Z"]
    ('ZYX', (3, 64, 64), 2.0)

    Raises
    ------
    InputError
        Bad image, surface, model, device, or a DPM beyond the trained range without ``allow_extrapolation``.
    """
    from widefield3d.prep.normalise import triangle_normalisation
    from widefield3d.tiling import predict_tiled

    if not isinstance(model, DeepZModel):
        model = load(model)
    frames, has_t, image_pixel = _as_frames(image, axes)
    stack_out = z is not None and np.ndim(z) > 0
    z_um = np.atleast_1d(np.asarray(0.0 if z is None else z, dtype=np.float64))
    if z_um.ndim != 1 or z_um.size == 0 or not np.all(np.isfinite(z_um)):
        raise InputError(f"z: expected a finite number or a non-empty list of numbers, got {z!r}")
    pixel = pixel_um or image_pixel or model.pixel_um or 1.0
    surface = surface_dpm(frames.shape[1:], pixel, tilt_deg=tilt_deg, tilt_axis=tilt_axis,
                          cylinder_radius_um=cylinder_radius_um, cylinder_axis=cylinder_axis, sinusoid=sinusoid,
                          dpm=dpm)
    lo, hi = float(z_um.min() + surface.min()), float(z_um.max() + surface.max())  # depths (µm)
    dpm_lo, dpm_hi = (float(d) for d in dpm_of_depths(model, [lo, hi], calibrated))
    calibration = model.depth_calibration if calibrated else None
    limit = model.range_um
    if max(abs(dpm_lo), abs(dpm_hi)) > limit + 1e-6 and not allow_extrapolation:
        raise InputError(f"refocus: DPM spans {dpm_lo:+.2f} to {dpm_hi:+.2f} µm, beyond the model's trained range "
                         f"+-{limit:g} µm (Deep-Z fails outside it); pass allow_extrapolation=True to force it")
    if surface_via not in ("dpm", "planes"):
        raise InputError(f"surface_via: expected 'dpm' or 'planes', got {surface_via!r}")
    via_planes = surface_via == "planes" and bool(np.any(surface != 0))
    if via_planes:
        step = surface_step_um if surface_step_um is not None else model.surface_step_um
        if not (math.isfinite(step) and step > 0):
            raise InputError(f"surface_step_um: expected a positive number of µm, got {surface_step_um!r}")
        reach = (-limit, limit) if calibration is None else (float(calibration.depth(-limit)),
                                                             float(calibration.depth(limit)))
        planes_um = _plane_grid(lo, hi, step, reach)
        scaled_surface = np.zeros_like(surface)
    else:
        planes_um, scaled_surface = z_um, surface / np.float32(limit)

    def network_dpm(group: np.ndarray) -> np.ndarray:
        """``(n, Y, X)``: the DPM channels (DPM / range) of the planes at depths ``group`` (+ the surface)."""
        if calibration is None:
            return (group / limit).astype(np.float32)[:, None, None] + scaled_surface[None]
        depth = group[:, None, None] + (0.0 if via_planes else surface[None])
        return np.broadcast_to((dpm_of_depths(model, depth, calibrated) / limit).astype(np.float32),
                               (len(group), *surface.shape))

    groups = [planes_um[i:i + planes_per_pass] for i in range(0, len(planes_um), planes_per_pass)]
    out = np.empty((len(frames), len(planes_um), *frames.shape[1:]), np.float32)
    generator = model.generator
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("refocusing", total=len(frames) * len(groups))
        for t, frame in enumerate(frames):
            norm = normalisation or triangle_normalisation(frame, model.config.data.saturate_fraction)
            x = norm.apply(frame)
            first = 0
            for group in groups:
                channels = np.concatenate([x[None], network_dpm(group)])
                y = predict_tiled(_plane_batch(generator, len(group)), channels, tile=tile, batch_size=batch_size,
                                  device=device, progress=False)
                out[t, first:first + len(group)] = y * np.float32(norm.scale) + np.float32(norm.background) \
                    if denormalise else y
                first += len(group)
                bar.advance(task)
    if via_planes:
        out = np.stack([[sample_at_depth(planes, planes_um, z + surface) for z in z_um] for planes in out])
    if mip:
        out = out.max(axis=1)
    elif not stack_out:
        out = out[:, 0]
    axes = ("T" if has_t else "") + ("Z" if stack_out and not mip else "") + "YX"
    dz = abs(float(np.diff(z_um).mean())) if len(z_um) > 1 else 0.0  # descending z too
    return io.Image(out if has_t else out[0], axes, {"Z": dz or 1.0, "Y": pixel, "X": pixel})


# ----------------------------------------------------------------------------------------------------------------
# training


def build_networks(config: DeepZConfig):
    """Generator and discriminator of the configured size (random weights)."""
    from widefield3d.nets.deepz import DeepZDiscriminator, DeepZGenerator

    return (DeepZGenerator(width=config.network.width, conditioning=config.network.conditioning),
            DeepZDiscriminator(width=config.network.discriminator_width,
                               bias_init=config.network.discriminator_bias_init,
                               sigmoid=config.network.discriminator_sigmoid))


def validation_sample(n_pairs: int, max_pairs: int | None) -> np.ndarray:
    """Indices of the validation pairs used: all, or ``max_pairs`` spread evenly over the whole set.

    The pairs are ordered by region, so the first ``max_pairs`` would come from one or two regions only (on the
    Deep-Z+ data a nearly empty one, whose targets average a tenth of the training targets' mean)."""
    if max_pairs is None or max_pairs >= n_pairs:
        return np.arange(n_pairs)
    return np.unique(np.linspace(0, n_pairs - 1, max_pairs).round().astype(int))


def make_task(pairs_train, pairs_val, config: DeepZConfig):
    """The :class:`~widefield3d.train.trainer.AdversarialTask` of Deep-Z on these training and validation pairs."""
    import torch

    from widefield3d.train.trainer import AdversarialTask

    batch = config.trainer.batch_size
    chosen = validation_sample(len(pairs_val), config.validation_max_pairs)
    validation = [pairs_val.batch(chosen[i:i + batch]) for i in range(0, len(chosen), batch)]

    def sample_batch(rng: np.random.Generator):
        return pairs_train.batch(rng.integers(0, len(pairs_train), size=batch), rng)

    torch.manual_seed(config.trainer.seed)  # repeatable initial weights
    generator, discriminator = build_networks(config)
    return AdversarialTask(generator=generator, discriminator=discriminator, sample_batch=sample_batch,
                           validation=validation)


def train(data_dir: str | Path, out_dir: str | Path, config: DeepZConfig | None = None, *, resume: bool = False,
          progress: bool = True):
    """Train a Deep-Z (or, with ``config.data.target = "confocal"``, Deep-Z+) model.

    Parameters
    ----------
    data_dir : path
        Training stacks (see :mod:`widefield3d.methods.deepz_data`).
    out_dir : path
        Model directory: ``config.json``, ``weights.safetensors`` (best by validation MAE), ``log.csv``,
        ``checkpoint.pt``.
    config : DeepZConfig, optional
        Default: the paper's settings; with ``resume`` and no config, the one saved in ``out_dir``.
    resume : bool
        Continue a killed run from its checkpoint.
    progress : bool
        Progress bars for data preparation and training.

    Returns
    -------
    widefield3d.train.trainer.TrainResult
    """
    from widefield3d import io, zoo
    from widefield3d.methods.deepz_data import build_pairs, find_stacks
    from widefield3d.train.trainer import train as run_training

    out_dir = Path(out_dir)
    if config is None:
        saved = out_dir / zoo.CONFIG_NAME
        config = (DeepZConfig.validated(zoo.read_config(out_dir, METHOD), str(saved)) if resume and saved.is_file()
                  else DeepZConfig())
    pairs = build_pairs(data_dir, config.data, progress=progress)
    pairs_train, pairs_val = pairs.split(config.data.validation_fraction, config.data.seed)
    first = io.read(find_stacks(data_dir, config.data.target)[0][0], lazy=True)
    dz, dy, _ = first.spacing_zyx
    provenance = {"pixel_um": dy, "z_step_um": dz, "data_dir": Path(data_dir).resolve().name,  # no machine path
                  "regions": len(pairs.inputs), "pairs_train": len(pairs_train), "pairs_validation": len(pairs_val),
                  "skipped_fields": list(pairs.skipped)}
    normalisation = {**config.normalisation, "saturate_fraction": config.data.saturate_fraction,
                     "reference_training": {"edf": "EDF of each stack",
                                            "input": "each pair's whole input plane"}[config.data.normalise_against]}
    # without schema_version (zoo.write_config adds it), as in the checkpoints of runs from before it existed
    method_config = config.model_copy(update={"provenance": provenance, "normalisation": normalisation}).model_dump(
        mode="json", exclude={"schema_version"})
    return run_training(make_task(pairs_train, pairs_val, config), config.trainer, out_dir, resume=resume,
                        progress=progress, method_config=method_config, model_files=zoo)
