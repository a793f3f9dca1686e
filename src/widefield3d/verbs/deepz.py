"""`widefield3d refocus` (Deep-Z / Deep-Z+ inference) and `widefield3d train deepz`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.checks import parse_range
from widefield3d.errors import InputError
from widefield3d.verbs._common import console, naming_flags, tagged
from widefield3d.verbs._options import AllowLarge
from widefield3d.verbs._training_options import (
    Device,
    InitFrom,
    Iterations,
    ModelDir,
    TimeBudget,
    Warmup,
    report,
    trainer_overrides,
    training_config,
)


class Axis(str, Enum):
    x = "x"
    y = "y"


class SurfaceVia(str, Enum):
    dpm = "dpm"
    planes = "planes"


class Target(str, Enum):
    widefield = "widefield"
    confocal = "confocal"


class Align(str, Enum):
    rigid = "rigid"
    stackreg = "stackreg"
    none = "none"


_REFOCUS_FLAGS = {"tilt_deg": "--tilt", "tilt_axis": "--tilt-axis", "cylinder_radius_um": "--cylinder-radius",
                  "sinusoid": "--sinusoid", "dpm": "--dpm", "allow_extrapolation=True": "--allow-extrapolation",
                  "surface_step_um": "--surface-step", "tile": "--tile", "calibrated": "--calibrated"}
"""The flags of ``refocus`` that set parameters of :func:`widefield3d.methods.deepz.refocus`, for its error lines."""


def _sinusoid(text: str) -> tuple[float, float]:
    try:
        period, amplitude = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--sinusoid: expected PERIOD_UM,AMPLITUDE_UM, got {text!r}") from None
    return period, amplitude


def _read_dpm(path: Path, shape: tuple[int, int]):
    import numpy as np

    from widefield3d import io

    dpm = io.read(path)
    if dpm.axes != "YX":
        raise InputError(f"{path}: a DPM must be one YX plane (µm), got axes {dpm.axes}")
    if dpm.data.shape != shape:
        raise InputError(f"{path}: DPM shape {dpm.data.shape} differs from the image's {shape}")
    return np.asarray(dpm.data, np.float32)


def _warn_odd_intensities(data, path: Path) -> None:
    """Say so when a wide-field image does not look like intensities: 64-bit integers, a negative median."""
    import warnings

    import numpy as np

    if data.dtype.kind in "iu" and data.dtype.itemsize == 8:
        warnings.warn(f"{path}: {data.dtype} values are converted to float32 (exact up to 16,777,216)", UserWarning,
                      stacklevel=2)
    if float(np.median(data)) < 0:
        warnings.warn(f"{path}: most pixels are negative; a wide-field image holds intensities (camera counts or "
                      "photons), was the camera offset subtracted twice?", UserWarning, stacklevel=2)


def refocus_cmd(
    image: Annotated[Path, typer.Argument(help="wide-field image: one plane (YX) or a time series (TYX)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output image (OME-TIFF, OME-Zarr, TIFF, npy)")],
    model: Annotated[str, typer.Option(help="shipped model name (widefield3d models) or model directory")],
    z: Annotated[Optional[str], typer.Option(help="distance in µm (3.5) or a stack START:STOP:STEP (-10:10:0.5); "
                                                  "added to a surface")] = None,
    dpm: Annotated[Optional[Path], typer.Option(help="per-pixel refocus distances (µm), a YX image file")] = None,
    tilt: Annotated[Optional[float], typer.Option(help="tilted plane, degrees")] = None,
    tilt_axis: Annotated[Axis, typer.Option(help="axis the plane is tilted about")] = Axis.x,
    cylinder_radius: Annotated[Optional[float], typer.Option(help="cylinder radius (µm), axis along y; "
                                                                  "negative: apex deepest")] = None,
    sinusoid: Annotated[Optional[str], typer.Option(help="PERIOD_UM,AMPLITUDE_UM sinusoidal surface along x")] = None,
    surface_via: Annotated[SurfaceVia, typer.Option(
        help="dpm: the surface's per-pixel DPM goes into the network (the paper); planes: refocus onto flat planes "
             "across the surface's depth range and interpolate each pixel at its depth")] = SurfaceVia.dpm,
    surface_step: Annotated[Optional[float], typer.Option(
        help="plane spacing (µm) of --surface-via planes [default: the model's training z step]")] = None,
    mip: Annotated[bool, typer.Option("--mip", help="also write the max-intensity projection over z (OUT_mip)")
                   ] = False,
    allow_extrapolation: Annotated[bool, typer.Option("--allow-extrapolation",
                                                      help="allow DPMs beyond the trained axial range")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    calibrated: Annotated[bool, typer.Option("--calibrated", help="feed the DPM that the model's depth calibration "
                                             "says focuses each requested depth (not in the paper)")] = False,
    tile: Annotated[int, typer.Option(help="tiling window side, input pixels: larger is faster (less halo "
                                           "recomputed) and needs more memory")] = 768,
    reference: Annotated[Optional[Path], typer.Option(
        help="normalise intensities against this image (YX) or the EDF of this stack (ZYX), taken with the same "
             "exposure, instead of against the input itself (docs/deepz.md, Normalisation)")] = None,
    allow_large: AllowLarge = False,
) -> None:
    """Refocus one wide-field image (or each frame of a time series) onto a plane, a virtual stack or a surface."""
    import numpy as np

    from widefield3d import io
    from widefield3d.checks import check_memory, check_output, estimate_bytes, naming_files, warn_pixel_mismatch
    from widefield3d.methods.deepz import load, reference_normalisation, refocus

    z_um = None
    if z is not None:
        z_um = parse_range(z, "--z", allow_large=allow_large)
        z_um = float(z_um[0]) if ":" not in z else z_um
    surface = dict(tilt_deg=tilt, tilt_axis=tilt_axis.value, cylinder_radius_um=cylinder_radius,
                   sinusoid=_sinusoid(sinusoid) if sinusoid is not None else None)
    given = [k for k, v in (("--z", z), ("--dpm", dpm), ("--tilt", tilt), ("--cylinder-radius", cylinder_radius),
                            ("--sinusoid", sinusoid)) if v is not None]
    if not given:
        raise InputError("refocus: give --z, --dpm, --tilt, --cylinder-radius or --sinusoid")
    for path in (output, tagged(output, "mip")) if mip else (output,):
        check_output(path, inputs=[image, dpm, reference])
    header = io.read(image, lazy=True)
    n_planes = len(z_um) if z_um is not None and np.ndim(z_um) > 0 else 1
    check_memory(estimate_bytes(header.data.shape, copies=2 * n_planes + 1), f"{image} with --z {z}" if z else
                 str(image), allow_large=allow_large)
    source = io.read(image)
    if source.axes not in ("YX", "TYX"):
        raise InputError(f"{image}: Deep-Z refocuses one plane (YX) or a time series (TYX), got axes {source.axes}")
    _warn_odd_intensities(source.data, image)
    if dpm is not None:
        surface["dpm"] = _read_dpm(dpm, tuple(source.data.shape[-2:]))
    loaded = load(model)
    normalisation = None
    if reference is not None:
        ref = io.read(reference)
        if ref.axes not in ("YX", "ZYX"):
            raise InputError(f"{reference}: --reference must be one plane (YX) or a stack (ZYX), got axes {ref.axes}")
        with naming_files({"reference": reference}):
            normalisation = reference_normalisation(ref, loaded)
    if surface_via is SurfaceVia.planes and given != ["--z"]:  # the flat planes across a surface, at most
        step = surface_step if surface_step is not None else loaded.surface_step_um
        flat = int(2 * loaded.range_um / step) + 2 if step > 0 else 0
        check_memory(estimate_bytes(source.data.shape, copies=2 * (n_planes + flat) + 1),
                     f"{image} with --surface-via planes", allow_large=allow_large)
    warn_pixel_mismatch(source.spacing_um["X"], loaded.pixel_um, image, Path(str(loaded.path)).name)
    with naming_files({"reference": image, "image": image}), naming_flags(_REFOCUS_FLAGS):
        refocused = refocus(source, z_um, model=loaded, allow_extrapolation=allow_extrapolation, device=device,
                            surface_via=surface_via.value, surface_step_um=surface_step, tile=tile,
                            calibrated=calibrated, normalisation=normalisation, **surface)
    result, axes = refocused.data, refocused.axes
    stacked = "Z" in axes
    spacing = {"Z": refocused.spacing_um["Z"] if stacked else 1.0, "Y": source.spacing_um["Y"],
               "X": source.spacing_um["X"]}
    outputs = [(output, io.Image(result, axes, spacing))]
    if mip:
        projection = result.max(axis=axes.index("Z")) if stacked else result
        outputs.append((tagged(output, "mip"), io.Image(projection, axes.replace("Z", ""), spacing)))
    written = [str(p) for p in io.write_set(outputs)]
    console.print(f"wrote {', '.join(written)}: {axes} {result.shape} with {Path(str(loaded.path)).name}")


def train_cmd(
    data: Annotated[Path, typer.Option(help="folder of wide-field z-stacks, or with widefield/ (+ confocal/) folders")],
    output: ModelDir,
    config: Annotated[Optional[Path], typer.Option(help="DeepZConfig as YAML or JSON (defaults: the paper)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue a killed run from its checkpoint")] = False,
    target: Annotated[Optional[Target], typer.Option(help="widefield = Deep-Z, confocal = Deep-Z+")] = None,
    align: Annotated[Optional[Align], typer.Option(
        help="plane alignment: rigid (ours), stackreg (pystackreg, the paper's ImageJ StackReg), none")] = None,
    iterations: Iterations = None,
    time_budget: TimeBudget = None,
    warmup: Warmup = None,
    device: Device = None,
    init: InitFrom = None,
) -> None:
    """Train Deep-Z (wide-field targets) or Deep-Z+ (confocal targets) with the paper's GAN."""
    from widefield3d.methods.deepz import Config, train

    overrides = {"data.target": target.value if target is not None else None,
                 "data.align": align.value if align is not None else None,
                 **trainer_overrides(iterations=iterations, time_budget=time_budget, warmup=warmup, device=device,
                                     init=init)}
    cfg = training_config(Config, config, output, resume, overrides)
    if cfg.data.align != "none":
        from widefield3d.prep.align import check_align_method

        check_align_method(cfg.data.align)  # pystackreg missing: one line before any data are read
    console.print(report(train(data, output, cfg, resume=resume), output))


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add ``refocus`` to the main app and ``deepz`` to ``train``."""
    app.command("refocus")(refocus_cmd)
    train_app.command("deepz")(train_cmd)
