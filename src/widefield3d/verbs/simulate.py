"""`widefield3d simulate psf|sample|acquire|dataset`: the physical simulator, which writes every measurement with
its ground truth."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from widefield3d.checks import check_memory, check_output, estimate_bytes, parse_range
from widefield3d.errors import InputError
from widefield3d.verbs._common import console, parse_triple, tagged
from widefield3d.verbs._options import AllowLarge


class Modality(str, Enum):
    widefield = "widefield"
    confocal = "confocal"
    brightfield = "brightfield"


def _microscope(preset_name, **overrides):
    from widefield3d.optics.microscope import Microscope, preset

    base = preset(preset_name) if preset_name else Microscope()
    return base.with_(**{k: v for k, v in overrides.items() if v is not None})


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
    for path in (output, tagged(output, "clean"), tagged(output, "truth")):
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
                  ((output, "noisy"), (tagged(output, "clean"), "clean"), (tagged(output, "truth"), "truth"))])
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
                  ((output, noisy), (tagged(output, "clean"), clean), (tagged(output, "truth"), volume))])
    console.print(f"wrote {output} (+ _clean, _truth): bright-field ray model, {len(clean)} focal planes "
                  f"{clean.shape[1:]}, NA {na:g}, {aperture_samples}x{aperture_samples} pupil grid, noise {noise:g}")


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


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``simulate`` group (``psf``, ``sample``, ``acquire``, ``dataset``, ``activity``) to the main app."""
    from widefield3d.verbs.activity import simulate_activity_cmd

    group = typer.Typer(help="Physical microscope simulator: PSFs, samples, acquisitions, datasets.",
                        no_args_is_help=True)
    group.command("psf")(simulate_psf)
    group.command("sample")(simulate_sample)
    group.command("acquire")(simulate_acquire)
    group.command("dataset")(simulate_dataset_cmd)
    group.command("activity")(simulate_activity_cmd)
    app.add_typer(group, name="simulate")
