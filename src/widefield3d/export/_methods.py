"""What each method contributes to a bioimage.io package: its packaged network, test tensors computed by the
method's own predict function, and the tensor descriptions (axes, halo, pre- and postprocessing) of its RDF.

Test inputs are the user's image (its centre, cropped to the smallest tile, to keep the package and its test small)
or a seeded synthetic one; test outputs come from ``refocus``, ``multifocal`` or ``confocal`` on that input, on the
CPU, so the package's test checks the packaged network against widefield3d's predict path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from widefield3d import io
from widefield3d.errors import InputError
from widefield3d.tiling import round_up

IMAGE_ID = "image"
SCALE_RANGE_EPS = 1e-6
"""``eps`` of bioimage.io's ``scale_range``: ``(x - v_low) / (v_high - v_low + eps)``."""


@dataclass
class Parts:
    """One method's share of a package.

    Attributes
    ----------
    packaged : torch.nn.Module
        The network as the package runs it (:mod:`widefield3d.export.packaged`), with the model's weights.
    kwargs : dict
        Keyword arguments of its class (the RDF's ``ArchitectureFromLibraryDescr``).
    test_inputs, test_outputs : dict of str to ndarray
        Test tensors by tensor id, ``(1, C, *spatial)`` float32; inputs in the order of ``forward``'s arguments.
    describe : callable
        ``{tensor id: test tensor file} -> (input descriptions, output descriptions)``.
    notes : str
        Markdown for the package's README: inputs, normalisation, outputs, limits.
    tags, cite : list
        RDF tags; ``(text, doi)`` references.
    tolerance : (float, float)
        Relative and absolute tolerance (output units) of the package's test: 1e-3 of the output's scale, room
        for TF32 convolutions on a GPU; on the CPU the package reproduces its test outputs to about 1e-6.
    """

    packaged: Any
    kwargs: dict
    test_inputs: dict[str, np.ndarray]
    test_outputs: dict[str, np.ndarray]
    describe: Callable[[dict[str, Path]], tuple[list, list]]
    notes: str
    tags: list[str]
    cite: list[tuple[str, str]] = field(default_factory=list)
    tolerance: tuple[float, float] = (1e-3, 1e-3)


def dyadic(length_um: float | None) -> float:
    """A pixel size rounded to a multiple of 2**-20 µm (1.0 if unknown), so that the spec's size and halo
    arithmetic (``n * scale / other_scale``) is exact in floating point."""
    if not length_um:
        return 1.0
    return max(1, round(float(length_um) * 2**20)) / 2**20


def _centre(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The centre ``shape`` of the last axes of ``data`` (where an axis is smaller, all of it)."""
    lead = data.ndim - len(shape)
    index = [slice(None)] * lead
    for n, s in zip(data.shape[lead:], shape):
        start = max(0, (n - s) // 2)
        index.append(slice(start, start + min(n, s)))
    return data[tuple(index)]


def _blobs(shape: tuple[int, ...], rng: np.random.Generator, count: int, sigma_px: float) -> np.ndarray:
    """``count`` Gaussian spots of ``sigma_px`` pixels and random heights (0.2..1) at random places, float32."""
    from scipy import ndimage

    spots = np.zeros(shape, np.float32)
    for _ in range(count):
        spots[tuple(rng.integers(0, n) for n in shape)] += rng.uniform(0.2, 1.0)
    blurred = ndimage.gaussian_filter(spots, sigma_px)
    return (blurred / blurred.max()).astype(np.float32)


def _axes(spec, ids: str, size, scale: float, unit: str | None, *, halo: int = 0, output: bool = False) -> list:
    """Space axes ``ids`` (e.g. ``"yx"``) of one size rule (a ParameterizedSize, a tensor id to refer to, or an
    int), pixel ``scale`` in ``unit``, with an output ``halo``."""
    axes = []
    for axis in ids:
        size_of = spec.SizeReference(tensor_id=spec.TensorId(size), axis_id=spec.AxisId(axis)) \
            if isinstance(size, str) else size
        common = dict(id=spec.AxisId(axis), size=size_of, scale=scale, unit=unit)
        if not output:
            axes.append(spec.SpaceInputAxis(**common))
        elif halo:
            axes.append(spec.SpaceOutputAxisWithHalo(halo=halo, **common))
        else:
            axes.append(spec.SpaceOutputAxis(**common))
    return axes


def _no_z(z_um, model) -> None:
    if z_um is not None:
        raise InputError(f"--z: refocus distances apply to Deep-Z models, not to a {model.method!r} model")


@contextlib.contextmanager
def naming_z():
    """Within the block, refocus's errors about its distances name the export's ``--z``."""
    try:
        yield
    except InputError as err:
        text = str(err)
        if text.startswith(("refocus: DPM spans", "z:")):
            text = "--z: " + text.split(": ", 1)[1].split("; pass allow_extrapolation")[0]
        raise InputError(text) from err


def _channels(spec, names: list[str]) -> list:
    return [spec.BatchAxis(), spec.ChannelAxis(channel_names=[spec.Identifier(n) for n in names])]


# ---------------------------------------------------------------------------------------------------------------
# Deep-Z, Deep-Z+


def default_planes(range_um: float) -> np.ndarray:
    """The refocus distances of a Deep-Z package when none are given: 9 planes across the trained range, µm."""
    return np.linspace(-range_um, range_um, 9)


def deepz_parts(model, image: io.Image | None, z_um=None) -> Parts:
    """Deep-Z(+) as a constant-DPM package: one plane in, its refocused planes at ``z_um`` out (docs/bioimageio.md)."""
    from widefield3d.export.packaged import DeepZPackaged
    from widefield3d.methods.deepz import refocus
    from widefield3d.prep.normalise import Normalisation, triangle_normalisation

    gen, cfg = model.generator, model.config
    range_um = cfg.data.range_um
    z = np.atleast_1d(np.asarray(default_planes(range_um) if z_um is None else z_um, np.float64))
    context = gen.receptive_radius
    halo = round_up(context, gen.downsampling_factor)
    side = round_up(2 * halo + gen.downsampling_factor, gen.downsampling_factor)  # the smallest tile
    if image is None:
        rng = np.random.default_rng(0)
        plane = 100 + 900 * _blobs((side, side), rng, 150, 2.0) + rng.normal(0, 5, (side, side)).astype(np.float32)
        pixel = model.pixel_um or 1.0
    else:
        try:
            plane = image.as_axes("YX").data
        except InputError:
            raise InputError(f"--test-input: Deep-Z needs one 2D plane (YX), got axes {image.axes} shape "
                             f"{tuple(image.data.shape)}") from None
        if min(plane.shape) < side:
            raise InputError(f"--test-input: the plane {tuple(plane.shape)} is smaller than the package's smallest "
                             f"input, {side} x {side} pixels")
        plane = _centre(np.asarray(plane, np.float32), (side, side))
        pixel = image.spacing_um.get("X", 1.0)
    plane = np.ascontiguousarray(plane, np.float32)
    scale = dyadic(pixel)
    # bioimage.io cannot express the triangle normalisation; scale_range between the percentiles at which it
    # falls on this image reproduces it here and approximates it on images of the same kind
    triangle = triangle_normalisation(plane, cfg.data.saturate_fraction)
    low = float(np.clip(100 * np.mean(plane <= triangle.background), 0, 99))
    high = float(np.clip(100 * np.mean(plane <= triangle.background + triangle.scale), low + 0.01, 100))
    low, high = round(low, 3), round(high, 3)
    v_low, v_high = (float(v) for v in np.percentile(plane, [low, high]))
    normalisation = Normalisation(background=v_low, scale=v_high - v_low + SCALE_RANGE_EPS)
    with naming_z():
        out = refocus(plane, list(z), model=model, normalisation=normalisation, denormalise=False, device="cpu",
                      progress=False, pixel_um=pixel).data  # (Z, Y, X)
    kwargs = {"width": cfg.network.width, "conditioning": cfg.network.conditioning,
              "z_um": [float(v) for v in z], "range_um": range_um, "context": context}
    packaged = DeepZPackaged(**kwargs)
    packaged.load_state_dict(gen.state_dict())
    unit = "micrometer" if pixel != 1.0 or model.pixel_um else None
    step = float(np.diff(z).mean()) if len(z) > 1 else 1.0
    planes = ", ".join(f"{v:+g}" for v in z)

    def describe(files: dict[str, Path]):
        from bioimageio.spec.model import v0_5 as spec

        size = spec.ParameterizedSize(min=side, step=gen.downsampling_factor)
        image_in = spec.InputTensorDescr(
            id=spec.TensorId(IMAGE_ID), description="one wide-field fluorescence plane (camera units)",
            axes=_channels(spec, ["image"]) + _axes(spec, "yx", size, scale, unit),
            test_tensor=spec.FileDescr(source=files[IMAGE_ID]), pad=spec.ReflectPadding(mode="reflect"),
            preprocessing=[spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
                axes=[spec.AxisId("y"), spec.AxisId("x")], min_percentile=low, max_percentile=high,
                eps=SCALE_RANGE_EPS))])
        z_axis = spec.SpaceOutputAxis(id=spec.AxisId("z"), size=len(z), scale=dyadic(abs(step)), unit="micrometer")
        stack = spec.OutputTensorDescr(
            id=spec.TensorId("refocused"),
            description=f"the plane refocused by {len(z)} distances z (µm, + = deeper; see README), normalised",
            axes=_channels(spec, ["refocused"]) + [z_axis] + _axes(spec, "yx", IMAGE_ID, scale, unit, halo=halo,
                                                                    output=True),
            test_tensor=spec.FileDescr(source=files["refocused"]))
        return [image_in], [stack]

    kind = "Deep-Z+ (wide-field to confocal-like)" if cfg.data.target == "confocal" else "Deep-Z"
    notes = f"""## Input

`image` (batch, channel, y, x): one wide-field plane in camera units, pixel {pixel:g} µm.

## Refocus distances: fixed in this package

{kind} takes a digital propagation matrix (DPM) beside the image: per pixel, the distance `z_target - z_input`
to refocus to. This package fixes it to {len(z)} constant DPMs, z = {planes} µm (+ = deeper; the model was
trained on +-{range_um:g} µm), and returns one plane for each. `widefield3d export bioimageio --z` chooses
other distances; tilted or curved surfaces (a DPM that varies over the image) need `widefield3d refocus`.

## Normalisation

widefield3d normalises each input plane with Deep-Z's triangle method (background = mean of the pixels below the
triangle threshold, subtracted; scale = the {100 * (1 - cfg.data.saturate_fraction):g}th percentile of the
foreground). bioimage.io cannot express a triangle threshold, so this package uses `scale_range` between the
{low:g}th and {high:g}th percentiles of each image: where the triangle normalisation fell on the test image.
On images with a similar share of foreground this matches closely; for exact results run `widefield3d refocus`.

## Output

`refocused` (batch, channel, z, y, x): the {len(z)} refocused planes, on the normalised scale of training (not
mapped back to camera units, which widefield3d's `refocus` does by default).

## Tiling

Halo {halo} pixels (the network's receptive radius {context} px, rounded up to its divisor
{gen.downsampling_factor}); tiles of at least {side} px per side in steps of {gen.downsampling_factor}. A whole
image of any size also works: the network extends it by reflection itself.
"""
    tags = ["deep-z", "refocusing", "3d", "fluorescence-light-microscopy", "widefield", "pytorch"]
    cite = [("Wu, Y., et al. Three-dimensional virtual refocusing of fluorescence microscopy images using deep "
             "learning. Nature Methods 16, 1323-1331 (2019)", "10.1038/s41592-019-0622-5")]
    return Parts(packaged, kwargs, {IMAGE_ID: plane[None, None]}, {"refocused": out[None, None].astype(np.float32)},
                 describe, notes, tags, cite, tolerance=(1e-3, 1e-3 * max(1.0, float(np.abs(out).max()))))


# ---------------------------------------------------------------------------------------------------------------
# MFPINet


COLOURS = ("red", "green", "blue")


def mfpi_parts(model, image: io.Image | None, z_um=None) -> Parts:
    """MFPINet: one low-resolution image in, the focal stack at 2x lateral resolution out (CZYX)."""
    _no_z(z_um, model)
    from widefield3d.export.packaged import MFPIPackaged
    from widefield3d.methods.mfpi import SCALE, multifocal

    gen, net, data = model.generator, model.config.network, model.config.data
    white = data.white_level
    context = gen.receptive_radius
    halo_in = round_up(context, gen.downsampling_factor)
    side = 2 * halo_in + gen.downsampling_factor  # the smallest tile, input pixels
    if image is None:
        rng = np.random.default_rng(0)
        stain = np.array([0.45, 0.25, 0.55] + [0.4] * max(0, net.channels - 3), np.float32)[:net.channels]
        density = _blobs((side, side), rng, 1400, 2.5)
        lowres = white * (0.92 - stain[:, None, None] * density[None])
        lowres = np.clip(lowres + rng.normal(0, 0.01 * white, lowres.shape), 0, white).astype(np.float32)
        pixel = 2 * (data.pixel_um or 0.5)
    else:
        lowres = image.as_axes("CYX").data if "C" in image.axes else image.as_axes("YX").data[None]
        if min(lowres.shape[1:]) < side:
            raise InputError(f"--test-input: the image {tuple(lowres.shape[1:])} is smaller than the package's "
                             f"smallest input, {side} x {side} pixels")
        lowres = _centre(np.asarray(lowres, np.float32), (side, side))
        pixel = image.spacing_um.get("X", 1.0)
        if lowres.shape[0] != net.channels:
            raise InputError(f"--test-input: the image has {lowres.shape[0]} channels, the model takes "
                             f"{net.channels}")
    lowres = np.ascontiguousarray(lowres, np.float32)
    stack = multifocal(lowres, model=model, device="cpu", progress=False)
    out = stack.as_axes("CZYX").data.astype(np.float32)
    kwargs = {"planes": net.planes, "channels": net.channels, "width": net.width, "context": context,
              "global_skip": net.global_skip}
    packaged = MFPIPackaged(**kwargs)
    packaged.load_state_dict(gen.state_dict())
    names = list(COLOURS) if net.channels == 3 else [f"channel{c}" for c in range(net.channels)]
    if net.channels == 1:
        names = ["gray"]
    dz = data.z_step_um or 1.0
    unit = "micrometer" if data.pixel_um or image is not None else None

    def describe(files: dict[str, Path]):
        from bioimageio.spec.model import v0_5 as spec

        size = spec.ParameterizedSize(min=side, step=gen.downsampling_factor)
        lowres_in = spec.InputTensorDescr(
            id=spec.TensorId("lowres"), description=f"one low-resolution image, intensities 0..{white:g}",
            axes=_channels(spec, names) + _axes(spec, "yx", size, dyadic(pixel), unit),
            test_tensor=spec.FileDescr(source=files["lowres"]), pad=spec.ReflectPadding(mode="reflect"),
            preprocessing=[spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=2.0 / white, offset=-1.0))])
        z_axis = spec.SpaceOutputAxis(id=spec.AxisId("z"), size=net.planes, scale=dyadic(dz), unit=unit)
        planes_out = spec.OutputTensorDescr(
            id=spec.TensorId("focal_stack"),
            description=f"{net.planes} focal planes {dz:g} µm apart, input plane in the middle, 2x resolution",
            axes=_channels(spec, names) + [z_axis] + _axes(spec, "yx", "lowres", dyadic(pixel) / SCALE, unit,
                                                            halo=SCALE * halo_in, output=True),
            test_tensor=spec.FileDescr(source=files["focal_stack"]),
            postprocessing=[spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=white / 2, offset=white / 2))])
        return [lowres_in], [planes_out]

    notes = f"""## Input

`lowres` (batch, channel, y, x): one low-resolution {'RGB' if net.channels == 3 else 'gray'} image with
intensities 0..{white:g} (8-bit for {white:g} = 255), the camera pixel twice the output's.

## Normalisation

Exactly as in training: `scale_linear` maps 0..{white:g} to -1..1 before the network, and back after it.

## Output

`focal_stack` (batch, channel, z, y, x): {net.planes} focal planes {dz:g} µm apart, the input's own focus in the
middle, at 2x the input's lateral sampling; float values, not rounded or clipped (widefield3d's `multifocal` rounds
and clips them for integer inputs).

## Tiling

Halo {SCALE * halo_in} output pixels = {halo_in} input pixels (the receptive radius {context} px rounded up to the
divisor {gen.downsampling_factor}); tiles of at least {side} input pixels per side. A whole image of any size
also works: the network extends it by reflection itself.
"""
    tags = ["mfpinet", "multi-focal", "super-resolution", "3d", "brightfield", "widefield", "pytorch"]
    return Parts(packaged, kwargs, {"lowres": lowres[None]}, {"focal_stack": out[None]}, describe, notes, tags,
                 tolerance=(1e-3, 1e-3 * white))


# ---------------------------------------------------------------------------------------------------------------
# WFCON-Net


WFCON_CONTEXT = (0, 0, 0)
"""Context the packaged WFCON-Net reflects around a stack: none. ``confocal`` computes one pass of the generator
over the stack (zeros beyond its border, instance norms over the whole stack), which a package reproduces on a
whole stack passed at once."""


def wfcon_parts(model, image: io.Image | None, z_um=None) -> Parts:
    """WFCON-Net: a wide-field z-stack in, a confocal-like z-stack out (both ZYX)."""
    _no_z(z_um, model)
    from widefield3d.export.packaged import WFConPackaged
    from widefield3d.methods.wfcon import confocal

    gen, net, data = model.generator, model.config.network, model.config.data
    divisor = tuple(gen.downsampling_factor) if net.kind == "3d" else (1, *gen.downsampling_factor)
    pixel = model.config.provenance.get("pixel_um")
    if image is None:
        rng = np.random.default_rng(0)
        shape = (max(16, divisor[0]), 64, 64)
        stack = 100 + 900 * _blobs(shape, rng, 80, 2.0) + rng.normal(0, 5, shape).astype(np.float32)
    else:
        stack = _centre(np.asarray(image.as_axes("ZYX").data, np.float32), (32, 128, 128))
        pixel = image.spacing_um.get("X", pixel)
        keep = tuple(n - n % d for n, d in zip(stack.shape, divisor))
        if min(keep) == 0:
            raise InputError(f"--test-input: the stack {tuple(stack.shape)} is smaller than the network's divisor "
                             f"{divisor} (Z, Y, X)")
        stack = stack[:keep[0], :keep[1], :keep[2]]
    stack = np.ascontiguousarray(stack, np.float32)
    out = confocal(stack, model=model, z_step_um=data.z_step_um, device="cpu", progress=False).data
    kwargs = {"ndim": 3 if net.kind == "3d" else 2, "width_multiplier": net.width_multiplier, "depth": net.depth,
              "pool_z_levels": net.pool_z_levels, "context": list(WFCON_CONTEXT)}
    packaged = WFConPackaged(**kwargs)
    packaged.load_state_dict(gen.state_dict())
    unit = "micrometer" if pixel else None
    low, high = data.norm_percentiles

    def describe(files: dict[str, Path]):
        from bioimageio.spec.model import v0_5 as spec

        sizes = {a: spec.ParameterizedSize(min=d, step=d) for a, d in zip("zyx", divisor)}
        dz, dxy = dyadic(data.z_step_um), dyadic(pixel)
        z_in = spec.SpaceInputAxis(id=spec.AxisId("z"), size=sizes["z"], scale=dz, unit="micrometer")
        zyx = spec.AxisId("z"), spec.AxisId("y"), spec.AxisId("x")
        widefield = spec.InputTensorDescr(
            id=spec.TensorId("widefield"), description=f"a wide-field z-stack, {data.z_step_um:g} µm steps",
            axes=_channels(spec, ["widefield"]) + [z_in] + [
                spec.SpaceInputAxis(id=spec.AxisId(a), size=sizes[a], scale=dxy, unit=unit) for a in "yx"],
            test_tensor=spec.FileDescr(source=files["widefield"]),
            preprocessing=[spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
                axes=list(zyx), min_percentile=low, max_percentile=high, eps=SCALE_RANGE_EPS)),
                spec.ClipDescr(kwargs=spec.ClipKwargs(min=0.0, max=1.0))])
        z_out = spec.SpaceOutputAxis(id=spec.AxisId("z"), scale=dz, unit="micrometer",
                                     size=spec.SizeReference(tensor_id=spec.TensorId("widefield"), axis_id=zyx[0]))
        confocal_out = spec.OutputTensorDescr(
            id=spec.TensorId("confocal"), description="the confocal-like z-stack, normalised scale 0..1",
            axes=_channels(spec, ["confocal"]) + [z_out] + _axes(spec, "yx", "widefield", dxy, unit,
                                                                  output=True),
            test_tensor=spec.FileDescr(source=files["confocal"]),
            postprocessing=[spec.ClipDescr(kwargs=spec.ClipKwargs(min=0.0, max=1.0))])
        return [widefield], [confocal_out]

    notes = f"""## Input

`widefield` (batch, channel, z, y, x): a wide-field z-stack taken at the model's z step, {data.z_step_um:g} µm
(widefield3d's `confocal --z-step` interpolates other steps first; a package cannot). Sizes in steps of
{divisor} (Z, Y, X).

## Normalisation

As in training: `scale_range` maps the {low:g}th and {high:g}th percentiles of the whole stack to 0 and 1, then
`clip` to 0..1. The output is clipped to 0..1, the normalised scale of the confocal training targets
(widefield3d's `confocal --denormalise` maps it back to the input's scale; a package cannot).

## Output

`confocal` (batch, channel, z, y, x): the confocal-like stack, same size and steps as the input.

## Tiling: pass the stack whole

WFCON-Net's instance norms make every output voxel depend on the whole stack, so this package declares no halo:
bioimage.io tools run it on the stack they are given, and on a whole stack it equals widefield3d's `confocal`.
Cut into tiles, each tile is normalised by its own statistics and the tiles differ at their seams (widefield3d's
own tiling freezes the norms to the whole stack's statistics, which a package cannot describe).
"""
    tags = ["wfcon-net", "confocal", "content-aware-restoration", "3d", "fluorescence-light-microscopy",
            "widefield", "pytorch"]
    cite = [('WFCON-Net: "Teaching a wide-field microscope to produce confocal z-stacks", Optica Publishing Group '
             "(2021); its Visualization 1", "10.6084/m9.figshare.16809895")]
    return Parts(packaged, kwargs, {"widefield": stack[None, None]}, {"confocal": out[None, None]}, describe, notes,
                 tags, cite, tolerance=(1e-3, 1e-3))


BUILDERS = {"deepz": deepz_parts, "mfpi": mfpi_parts, "wfcon": wfcon_parts}
"""The exportable methods by their ``METHOD``."""

NOT_EXPORTABLE = {
    "volume-dip": "its predict function (reconstruct) is an optimisation per stack: Deep Image Prior fits the "
                  "network's weights to each focal stack through the bright-field ray model, and these weights are "
                  "only its starting point, so no feed-forward package can reproduce it",
}
"""Methods whose models cannot become a bioimage.io model package, and why."""
