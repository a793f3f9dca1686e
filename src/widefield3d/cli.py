"""The `widefield3d` command line: parse, call the API, report. Bad input: one line, exit status 2."""

from __future__ import annotations

import errno
import math
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import click
import numpy as np
import pydantic
import typer
from rich.console import Console
from rich.markup import escape

from widefield3d.checks import check_memory, check_output, check_planes, estimate_bytes
from widefield3d.errors import InputError, Widefield3DError
from widefield3d.verbs._options import AllowLarge

app = typer.Typer(
    help="3D vision for wide-field microscopes: refocus, multi-focal, confocal-like stacks, volumes, simulation.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
simulate_app = typer.Typer(help="Physical microscope simulator: PSFs, samples, acquisitions, datasets.",
                           no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")
train_app = typer.Typer(help="Train a model (Deep-Z, MFPINet, WFCON-Net) on a folder of stacks or a simulated dataset.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")
console = Console(stderr=True)


class Modality(str, Enum):
    widefield = "widefield"
    confocal = "confocal"
    brightfield = "brightfield"


def parse_triple(text: str, name: str, cast=float) -> tuple:
    """'a,b,c' -> (a, b, c), finite numbers."""
    try:
        values = tuple(cast(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{name}: expected three comma-separated numbers Z,Y,X, got {text!r}") from None
    if len(values) != 3:
        raise InputError(f"{name}: expected three comma-separated numbers Z,Y,X, got {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{name}: expected finite numbers, got {text!r}")
    return values


def parse_range(text: str, name: str = "--z", *, allow_large: bool = False) -> np.ndarray:
    """'start:stop:step' (inclusive of stop) or a single number -> focal depths in µm.

    Refuses NaN and infinite values and, unless ``allow_large``, more than :data:`widefield3d.checks.MAX_PLANES`
    planes (a mistyped step), before any array is made.
    """
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise InputError(f"{name}: expected START:STOP:STEP or a number (µm), got {text!r}") from None
    if not all(math.isfinite(p) for p in parts):
        raise InputError(f"{name}: expected finite numbers of µm, got {text!r}")
    if len(parts) == 1:
        return np.array(parts)
    if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
        raise InputError(f"{name}: expected START:STOP:STEP with STOP >= START and STEP > 0, got {text!r}")
    start, stop, step = parts
    steps = (stop - start) / step
    if not math.isfinite(steps) or steps > 1e12:
        raise InputError(f"{name}: START:STOP:STEP {text!r} makes an impossible number of planes")
    n_planes = math.floor(steps + 1e-9) + 1
    check_planes(n_planes, f"{name} {text}", allow_large=allow_large)
    return start + step * np.arange(n_planes)


def _microscope(preset_name, **overrides):
    from widefield3d.optics.microscope import Microscope, preset

    base = preset(preset_name) if preset_name else Microscope()
    return base.with_(**{k: v for k, v in overrides.items() if v is not None})


@simulate_app.command("psf")
def simulate_psf(
    output: Annotated[Path, typer.Option("-o", "--output", help="OME-TIFF or OME-Zarr file")],
    preset: Annotated[Optional[str], typer.Option(help="microscope preset to start from")] = None,
    modality: Annotated[Modality, typer.Option()] = Modality.widefield,
    na: Annotated[Optional[float], typer.Option(help="numerical aperture")] = None,
    wavelength: Annotated[Optional[float], typer.Option(help="emission wavelength (µm)")] = None,
    ex_wavelength: Annotated[Optional[float], typer.Option(help="excitation wavelength (µm), confocal")] = None,
    pinhole_au: Annotated[Optional[float], typer.Option(help="pinhole diameter (Airy units), confocal")] = None,
    immersion_index: Annotated[Optional[float], typer.Option()] = None,
    sample_index: Annotated[Optional[float], typer.Option()] = None,
    depth: Annotated[Optional[float], typer.Option(help="depth below the coverslip (µm)")] = None,
    dxy: Annotated[float, typer.Option(help="lateral pixel (µm)")] = 0.1,
    dz: Annotated[float, typer.Option(help="axial step (µm)")] = 0.25,
    shape: Annotated[str, typer.Option(help="Z,Y,X sizes, odd")] = "41,65,65",
    allow_large: AllowLarge = False,
) -> None:
    """Compute a wide-field or confocal PSF (centre plane sums to 1)."""
    from widefield3d import io
    from widefield3d.optics.psf import psf as make_psf

    check_output(output)
    zyx = parse_triple(shape, "--shape", int)
    check_memory(estimate_bytes(zyx, copies=4), f"--shape {shape}", allow_large=allow_large)
    m = _microscope(preset, modality=modality.value, na=na, emission_wavelength_um=wavelength,
                    excitation_wavelength_um=ex_wavelength, pinhole_au=pinhole_au, immersion_index=immersion_index,
                    sample_index=sample_index, depth_um=depth)
    kernel = make_psf(m, zyx, (dz, dxy, dxy))
    io.write(output, io.Image(kernel, axes="ZYX", spacing_um={"Z": dz, "Y": dxy, "X": dxy}))
    console.print(f"wrote {output}: {m.modality} PSF {kernel.shape}, NA {m.na}, depth {m.depth_um} µm")


@simulate_app.command("sample")
def simulate_sample(
    output: Annotated[Path, typer.Option("-o", "--output", help="OME-TIFF or OME-Zarr file")],
    kind: Annotated[str, typer.Option(help="beads|nuclei|worm|filaments|tissue|tilted-beads|curved-beads|cytology")],
    shape: Annotated[str, typer.Option(help="Z,Y,X grid size")] = "60,512,512",
    spacing: Annotated[str, typer.Option(help="dz,dy,dx in µm")] = "0.5,0.1625,0.1625",
    seed: Annotated[int, typer.Option()] = 0,
    angle: Annotated[Optional[float], typer.Option(help="tilt in degrees (tilted-beads)")] = None,
    radius: Annotated[Optional[float], typer.Option(help="cylinder radius in µm (curved-beads)")] = None,
    allow_large: AllowLarge = False,
) -> None:
    """Generate a ground-truth sample (3D fluorescence density, or stain concentrations for cytology)."""
    from widefield3d import io
    from widefield3d.sim.samples import SAMPLE_KINDS, make_sample

    if kind not in SAMPLE_KINDS:
        raise InputError(f"--kind: unknown sample {kind!r}; choose one of: {', '.join(SAMPLE_KINDS)}")
    extra = {}
    if angle is not None:
        extra["angle_deg"] = angle
    if radius is not None:
        extra["radius_um"] = radius
    dzyx = parse_triple(spacing, "--spacing")
    zyx = parse_triple(shape, "--shape", int)
    check_output(output)
    check_memory(estimate_bytes(zyx, copies=4 * (3 if kind == "cytology" else 1)), f"--shape {shape}",
                 allow_large=allow_large)
    sample = make_sample(kind, zyx, dzyx, seed=seed, **extra)
    axes = "CZYX" if sample.density.ndim == 4 else "ZYX"
    io.write(output, io.Image(sample.density, axes=axes, spacing_um=dzyx,
                              channel_names=sample.channel_names))
    console.print(f"wrote {output}: {kind} sample {sample.density.shape}, spacing {dzyx} µm")


def _sample_from_file(path: Path):
    from widefield3d import io
    from widefield3d.sim.samples import STAIN_ABSORBANCE_RGB, Sample

    image = io.read(path)
    spacing = image.spacing_zyx
    if image.axes == "ZYX":
        return Sample(np.asarray(image.data, dtype=np.float32), spacing, kind=path.name)
    if image.axes == "CZYX" and image.channel_names and all(c in STAIN_ABSORBANCE_RGB for c in image.channel_names):
        absorb = np.array([STAIN_ABSORBANCE_RGB[c] for c in image.channel_names], dtype=np.float32)
        return Sample(np.asarray(image.data, dtype=np.float32), spacing, kind=path.name,
                      channel_names=list(image.channel_names), absorbance_rgb=absorb)
    raise InputError(f"{path}: a sample must be a ZYX density or CZYX stain concentrations, got axes {image.axes}")


def _beside(output: Path, tag: str) -> Path:
    name = output.name
    for ext in (".ome.tif", ".ome.tiff", ".ome.zarr", ".tif", ".tiff", ".zarr", ".npy"):
        if name.endswith(ext):
            return output.with_name(f"{name[: -len(ext)]}_{tag}{ext}")
    return output.with_name(f"{output.stem}_{tag}{output.suffix}")


@simulate_app.command("acquire")
def simulate_acquire(
    truth: Annotated[Path, typer.Argument(help="sample file written by `simulate sample`, or a ZYX transmittance "
                                                "volume in [0, 1] (bright-field ray model)")],
    output: Annotated[Path, typer.Option("-o", "--output")],
    z: Annotated[Optional[str], typer.Option(
        help="focal depths START:STOP:STEP in µm from the sample's first plane (the ray model focuses on every "
             "layer)")] = None,
    preset: Annotated[Optional[str], typer.Option(help="microscope preset")] = None,
    modality: Annotated[Optional[Modality], typer.Option()] = None,
    na: Annotated[Optional[float], typer.Option()] = None,
    magnification: Annotated[Optional[float], typer.Option()] = None,
    depth: Annotated[Optional[float], typer.Option(help="depth below the coverslip (µm)")] = None,
    photons: Annotated[float, typer.Option(help="photons at the brightest pixel")] = 1000.0,
    read_noise: Annotated[float, typer.Option(help="read noise (e- rms)")] = 1.5,
    binning: Annotated[int, typer.Option(help="camera binning (b x b pixels summed), for low-resolution inputs")] = 1,
    bit_depth: Annotated[int, typer.Option(help="camera bit depth")] = 16,
    scattering_length: Annotated[Optional[float], typer.Option(help="scattering mean free path (µm)")] = None,
    drift: Annotated[Optional[float], typer.Option(help="rms lateral drift per frame (pixels)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    xy_res: Annotated[Optional[float], typer.Option(
        help="ray model: voxel width in µm (default: the volume's X spacing)")] = None,
    aperture_samples: Annotated[int, typer.Option(help="ray model: pupil grid points per side")] = 25,
    noise: Annotated[float, typer.Option(help="ray model: Gaussian noise sigma (transmitted intensity, 1 = "
                                              "background)")] = 0.0,
    allow_large: AllowLarge = False,
) -> None:
    """Image a sample: writes OUT (camera counts), OUT_clean (expected photons) and OUT_truth.

    With --modality brightfield and a ZYX volume, the volume is read as voxel transmittances in [0, 1] and imaged
    with Yamaguchi's ray model (focus on every layer; the volume's Z spacing is the layer distance): OUT is the
    focal stack (1 = nothing absorbed) with --noise, OUT_clean without, OUT_truth the volume.
    """
    from widefield3d import io
    from widefield3d.sim.acquisition import acquire
    from widefield3d.sim.camera import Camera

    z_um = None if z is None else parse_range(z, allow_large=allow_large)
    for path in (output, _beside(output, "clean"), _beside(output, "truth")):
        check_output(path, inputs=[truth])
    header = io.read(truth, lazy=True)  # the file's header only: a bad sample fails before any work
    shape = dict(zip(header.axes, header.data.shape))
    voxels = estimate_bytes(header.data.shape, itemsize=1)
    planes = (shape.get("Z", 1) if z_um is None else len(z_um)) * (3 if modality == Modality.brightfield else 1)
    work = 4 * (6 * voxels + 3 * planes * shape["Y"] * shape["X"])  # float32: sample + FFTs, three outputs
    check_memory(work, f"{truth} with --z {z}" if z else str(truth), allow_large=allow_large)
    if modality == Modality.brightfield and header.axes == "ZYX":
        _acquire_transmittance(truth, output, na=0.75 if na is None else na, xy_res=xy_res,
                               aperture_samples=aperture_samples, noise=noise, seed=seed)
        return
    if z_um is None:
        raise InputError("--z: focal depths START:STOP:STEP are required for this sample")
    sample = _sample_from_file(truth)
    m = _microscope(preset, modality=modality.value if modality else None, na=na, magnification=magnification,
                    depth_um=depth)
    kwargs = dict(camera=Camera(photons=photons, read_noise_e=read_noise, binning=binning, bit_depth=bit_depth),
                  seed=seed)
    if m.modality != "brightfield":
        kwargs.update(scattering_length_um=scattering_length, drift_px=drift, progress=True)
    acq = acquire(sample, m, z_um, **kwargs)
    io.write_set([(path, acq.as_image(which)) for path, which in
                  ((output, "noisy"), (_beside(output, "clean"), "clean"), (_beside(output, "truth"), "truth"))])
    console.print(f"wrote {output} (+ _clean, _truth): {m.modality} {acq.axes} {acq.noisy.shape}")


def _acquire_transmittance(path: Path, output: Path, *, na: float, xy_res: float | None, aperture_samples: int,
                           noise: float, seed: int) -> None:
    """``simulate acquire --modality brightfield`` of a transmittance volume (Yamaguchi's ray model)."""
    from widefield3d import io
    from widefield3d.optics.brightfield import brightfield_stack

    image = io.read(path)
    volume = np.asarray(image.data, dtype=np.float32)
    if not np.all(np.isfinite(volume)) or volume.min() < 0 or volume.max() > 1:
        raise InputError(f"{path}: a transmittance volume needs values in [0, 1], got "
                         f"[{np.nanmin(volume):g}, {np.nanmax(volume):g}]")
    if noise < 0:
        raise InputError(f"--noise: must be >= 0, got {noise:g}")
    dz, _, dx = image.spacing_zyx
    dxy = dx if xy_res is None else xy_res
    clean = brightfield_stack(volume, na=na, xy_res_um=dxy, z_res_um=dz, aperture_samples=aperture_samples)
    noisy = clean + np.float32(noise) * np.random.default_rng(seed).standard_normal(clean.shape, dtype=np.float32)
    spacing = (dz, dxy, dxy)
    io.write_set([(target, io.Image(data, axes="ZYX", spacing_um=spacing)) for target, data in
                  ((output, noisy), (_beside(output, "clean"), clean), (_beside(output, "truth"), volume))])
    console.print(f"wrote {output} (+ _clean, _truth): bright-field ray model, {len(clean)} focal planes "
                  f"{clean.shape[1:]}, NA {na:g}, {aperture_samples}x{aperture_samples} pupil grid, noise {noise:g}")


@simulate_app.command("dataset")
def simulate_dataset_cmd(
    preset: Annotated[str, typer.Option(help="dataset preset")],
    output: Annotated[Path, typer.Option("-o", "--output", help="directory")],
    n: Annotated[int, typer.Option(help="number of fields of view")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Simulate many fields of view with ground truth, for training and evaluation (resumable)."""
    from widefield3d.sim.dataset import simulate_dataset

    check_output(output, kind="dir")
    path = simulate_dataset(preset, output, n, seed=seed)
    console.print(f"wrote {n} fields to {path}")


@app.command()
def evaluate(
    pred: Annotated[Path, typer.Argument(help="prediction")],
    gt: Annotated[Path, typer.Argument(help="ground truth")],
    per_plane: Annotated[bool, typer.Option("--per-plane", help="one row per plane as well")] = False,
    data_range: Annotated[Optional[float], typer.Option(help="data range for PSNR/SSIM (default: of the ground truth)")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="CSV file")] = None,
) -> None:
    """Compare a prediction with its ground truth: MSE, RMSE, MAE, PSNR, SSIM, Pearson."""
    from widefield3d import io
    from widefield3d.analysis.metrics import evaluate as run_evaluate
    from widefield3d.analysis.metrics import format_table, write_metrics_csv

    if output is not None:
        check_output(output, kind="csv", inputs=[pred, gt])
    p, g = io.read(pred), io.read(gt)
    if p.data.shape != g.data.shape:
        raise InputError(f"{pred}: shape {p.data.shape} differs from {gt}: {g.data.shape}")
    channel_axis = p.axes.index("C") if "C" in p.axes else None
    plane_axis = p.axes.index("Z") if "Z" in p.axes else 0
    rows = run_evaluate(np.asarray(p.data, dtype=np.float64), np.asarray(g.data, dtype=np.float64),
                        data_range=data_range if data_range is not None else "gt", per_plane=per_plane,
                        plane_axis=plane_axis, channel_axis=channel_axis)
    Console().print(format_table(rows, title=f"{pred.name} vs {gt.name}"))
    if output:
        write_metrics_csv(rows, output)
        console.print(f"wrote {output}")


@app.command()
def info(path: Annotated[Path, typer.Argument(help="image file")]) -> None:
    """Show axes, shape, dtype, spacing and channel names of an image file."""
    from widefield3d import io

    image = io.read(path, lazy=True)
    spacing = ", ".join(f"{k}={v:g} µm" for k, v in image.spacing_um.items())
    Console().print(f"{path}: axes {image.axes}, shape {tuple(image.data.shape)}, dtype {image.data.dtype}, {spacing}"
                    + (f", channels {image.channel_names}" if image.channel_names else ""))


@app.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="output directory")] = Path("demo-output"),
    seed: Annotated[int, typer.Option()] = 0,
    only: Annotated[Optional[str], typer.Option(
        help="comma-separated method sections to run (default: all of deepz,mfpi,wfcon,volume); 'none' for the "
             "simulation only")] = None,
) -> None:
    """Simulate a worm, image it, and run every method on simulated data with the shipped models (report.html)."""
    from widefield3d.demo import METHODS, run_demo

    check_output(output, kind="dir")
    if only is None:
        methods = METHODS
    elif only.strip() == "none":
        methods = ()
    else:
        methods = tuple(m.strip() for m in only.split(",") if m.strip())
    report = run_demo(output, seed=seed, methods=methods)
    console.print(f"wrote {report}")


def _register_verbs() -> None:
    """Each public module in ``widefield3d.verbs`` adds its commands (``register(app, train_app)``); modules
    named ``_*`` hold what the verbs share."""
    import importlib
    import pkgutil

    import widefield3d.verbs

    for module in pkgutil.iter_modules(widefield3d.verbs.__path__):
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"widefield3d.verbs.{module.name}").register(app, train_app)


_register_verbs()


_USAGE_ERRORS = (click.ClickException, typer.TyperException)  # typer >= 0.24 vendors click as typer._click
_ABORTS = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)
INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells report it."""


def _error(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True, markup=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line, like an error (not Python's two lines with the source)."""
    console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True, markup=True)


def _os_error_line(err: OSError) -> str:
    """One line for an OS error: the file it concerns and the system's reason."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.filename is not None and err.filename2 is not None:
        return f"{err.filename} -> {err.filename2}: {reason}"
    if err.filename is not None:
        return f"{err.filename}: {reason}"
    return reason


def main(argv: list[str] | None = None) -> None:
    """Entry point. Usage errors print click's usage message and exit 2 (no arguments: the help); bad input
    prints one line naming the file or argument and exits 2; Ctrl-C prints "interrupted" and exits 130."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            status = app(args=argv, standalone_mode=False)
    except Widefield3DError as err:
        _error(str(err).strip().replace("\n", " "))
        sys.exit(2)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        _error(f"{err.title} {where}: {first['msg']}")
        sys.exit(2)
    except _USAGE_ERRORS as err:
        err.show()  # click's own message: usage line, hint and "Error: ..." ("did you mean" where it has one)
        sys.exit(2)
    except _ABORTS:
        console.print("interrupted", highlight=False)
        sys.exit(INTERRUPTED)
    except MemoryError as err:
        _error(f"not enough memory{': ' + str(err) if str(err) else ''} (use a smaller input or range)")
        sys.exit(2)
    except OSError as err:
        if err.errno == errno.EPIPE:  # output piped into a program that stopped reading (| head)
            sys.exit(1)
        _error(_os_error_line(err))
        sys.exit(2)
    # standalone_mode=False: typer turns Ctrl-C into a returned 130 and ctx.exit(n) into a returned n
    if status == INTERRUPTED:
        console.print("interrupted", highlight=False)
        sys.exit(INTERRUPTED)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
