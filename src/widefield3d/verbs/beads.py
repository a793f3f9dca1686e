"""`widefield3d beads`: lateral and axial FWHM of isolated beads (the Deep-Z bead analysis) as CSV + histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.verbs._common import console, naming_flags, parse_triple


def beads(
    stack: Annotated[Path, typer.Argument(help="bead image (YX) or z-stack (ZYX)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV file, one row per bead")],
    figure: Annotated[Optional[Path], typer.Option("--figure", help="PNG of the FWHM histograms")] = None,
    spacing: Annotated[Optional[str], typer.Option(help="voxel size DZ,DY,DX in µm (default: from the file)")] = None,
    window: Annotated[int, typer.Option(help="side of the region fitted around each bead, pixels")] = 30,
    threshold: Annotated[Optional[float], typer.Option(help="detection threshold (default: triangle)")] = None,
) -> None:
    """Measure every isolated bead: 2D Gaussian fits give lateral FWHM and, for a stack, axial FWHM (x-z slice)."""
    import numpy as np

    from widefield3d import io
    from widefield3d.analysis.beads import fwhm_histograms, measure_beads, summarise
    from widefield3d.analysis.metrics import write_metrics_csv
    from widefield3d.checks import check_output, naming_files
    from widefield3d.errors import InputError

    if threshold is not None and not np.isfinite(threshold):
        raise InputError(f"--threshold: must be a finite number, got {threshold}")
    check_output(output, kind="csv", inputs=[stack])
    if figure is not None:
        check_output(figure, kind="png", inputs=[stack], name="--figure")
    image = io.read(stack)
    target = "ZYX" if "Z" in image.axes and image.data.shape[image.axes.index("Z")] > 1 else "YX"
    try:
        image = image.as_axes(target)
    except InputError:
        raise InputError(f"{stack}: expects one plane (YX) or one z-stack (ZYX), got axes {image.axes} with shape "
                         f"{tuple(image.data.shape)}") from None
    dz, dy, dx = parse_triple(spacing, "--spacing") if spacing else image.spacing_zyx
    step = (dz, dy, dx) if image.axes == "ZYX" else (dy, dx)
    with naming_files({"image": stack, "stack": stack}), naming_flags({"window_px": "--window"}):
        rows = measure_beads(np.asarray(image.data), step, window_px=window, threshold=threshold)
    if not rows:
        raise InputError(f"{stack}: no isolated bead found")
    write_metrics_csv(rows, output)
    if figure is not None:
        fwhm_histograms({stack.name: rows}, figure, title=f"{len(rows)} beads")
    s = summarise(rows)
    console.print(f"{s['n_beads']} beads: median lateral FWHM {s['fwhm_lateral_median_um']:.3f} µm, "
                  f"median axial FWHM {s['fwhm_axial_median_um']:.3f} µm; wrote {output}"
                  + (f" and {figure}" if figure else ""))


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``beads`` command to the main app."""
    app.command(name="beads")(beads)
