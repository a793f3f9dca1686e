"""`widefield3d register WF CONFOCAL -o SHIFTS.json`: shift between a wide-field and a confocal z-stack."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from widefield3d.verbs._common import console, naming_flags, parse_triple, read_zyx

_FLAGS = {"psf_shape": "--psf-shape", "lam": "--lam", "mu": "--mu", "iterations": "--iterations",
          "highpass_px": "--highpass", "upsample": "--upsample"}
"""The flags that set parameters of the registration functions, for their error lines."""


def register_stacks(
    widefield: Annotated[Path, typer.Argument(help="wide-field z-stack (ZYX)")],
    confocal: Annotated[Path, typer.Argument(help="confocal z-stack of the same field, same grid")],
    output: Annotated[Path, typer.Option("-o", "--output", help="JSON file for the shift")],
    method: Annotated[str, typer.Option(
        help="psf (WFCON-Net's PSF-based registration), xcorr (plain cross-correlation) or phase "
             "(phase correlation, Hann window)")] = "psf",
    psf_shape: Annotated[str, typer.Option(
        help="kernel size Z,Y,X in voxels (odd); bounds the shift")] = "15,31,31",
    lam: Annotated[float, typer.Option(help="weight of the TV term")] = 1.0,
    mu: Annotated[float, typer.Option(help="weight of the energy term (sum f - 1)^2")] = 10.0,
    iterations: Annotated[int, typer.Option(help="Chambolle-Pock iterations")] = 200,
    highpass: Annotated[float, typer.Option(help="lateral high-pass sigma in pixels (0: none)")] = 3.0,
    upsample: Annotated[int, typer.Option(help="xcorr, phase: sub-voxel precision 1/UPSAMPLE")] = 10,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Shift (µm and voxels) that moves the CONFOCAL stack onto the WIDEFIELD stack; apply it when pairing."""
    import json

    import numpy as np

    from widefield3d import io
    from widefield3d.checks import check_output, naming_files
    from widefield3d.errors import InputError
    from widefield3d.prep.psf_registration import register_psf, register_xcorr

    if method not in ("psf", "xcorr", "phase"):
        raise InputError(f"--method: choose psf, xcorr or phase, got {method!r}")
    shape = parse_triple(psf_shape, "--psf-shape", int)
    check_output(output, kind="json", inputs=[widefield, confocal])
    wf, cf = read_zyx(widefield), read_zyx(confocal)
    if wf.data.shape != cf.data.shape:
        raise InputError(f"{widefield} {tuple(wf.data.shape)} and {confocal} {tuple(cf.data.shape)}: "
                         "the stacks must have the same shape (resample one onto the other's grid first)")
    if not np.allclose(wf.spacing_zyx, cf.spacing_zyx, rtol=1e-3):
        raise InputError(f"{widefield} spacing {wf.spacing_zyx} µm and {confocal} spacing {cf.spacing_zyx} µm "
                         "differ (resample one onto the other's grid first)")
    spacing = wf.spacing_zyx
    with naming_files({"widefield": widefield, "confocal": confocal}), naming_flags(_FLAGS):
        if method == "psf":
            params = {"psf_shape": list(shape), "lam": lam, "mu": mu, "iterations": iterations,
                      "highpass_px": highpass}
            shift = register_psf(np.asarray(wf.data), np.asarray(cf.data), spacing_um=spacing, psf_shape=shape,
                                 lam=lam, mu=mu, iterations=iterations, highpass_px=highpass or None,
                                 progress=progress)
        else:
            params = {"upsample": upsample}
            shift = register_xcorr(np.asarray(wf.data), np.asarray(cf.data), spacing_um=spacing,
                                   upsample=upsample, phase=method == "phase")
    record = {
        "widefield": str(widefield), "confocal": str(confocal), "method": method, "parameters": params,
        "spacing_um": list(spacing),
        "shift_um": {"z": shift.dz_um, "y": shift.dy_um, "x": shift.dx_um},
        "shift_px": {"z": shift.dz_px, "y": shift.dy_px, "x": shift.dx_px},
        "convention": "move the confocal stack by this shift to align it with the wide-field stack",
    }
    with io.atomic_output(output) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"shift (z, y, x): {shift.dz_um:+.3f}, {shift.dy_um:+.3f}, {shift.dx_um:+.3f} µm "
                  f"= {shift.dz_px:+.2f}, {shift.dy_px:+.2f}, {shift.dx_px:+.2f} voxels -> {output}",
                  highlight=False)


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``register`` command to the main app."""
    app.command("register")(register_stacks)
