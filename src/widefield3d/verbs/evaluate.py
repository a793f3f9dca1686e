"""`widefield3d evaluate PRED GT`: MSE, RMSE, MAE, PSNR, SSIM and Pearson of a prediction against its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def evaluate(
    pred: Annotated[Path, typer.Argument(help="prediction")],
    gt: Annotated[Path, typer.Argument(help="ground truth")],
    per_plane: Annotated[bool, typer.Option("--per-plane", help="one row per plane as well")] = False,
    data_range: Annotated[Optional[float], typer.Option(
        help="data range for PSNR/SSIM (default: of the ground truth)")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="CSV file")] = None,
) -> None:
    """Compare a prediction with its ground truth: MSE, RMSE, MAE, PSNR, SSIM, Pearson."""
    import numpy as np
    from rich.console import Console

    from widefield3d import io
    from widefield3d.analysis.metrics import evaluate as run_evaluate
    from widefield3d.analysis.metrics import format_table, write_metrics_csv
    from widefield3d.checks import check_output
    from widefield3d.errors import InputError
    from widefield3d.verbs._common import console, naming_flags

    if output is not None:
        check_output(output, kind="csv", inputs=[pred, gt])
    p, g = io.read(pred), io.read(gt)
    if p.data.shape != g.data.shape:
        raise InputError(f"{pred}: shape {p.data.shape} differs from {gt}: {g.data.shape}")
    channel_axis = p.axes.index("C") if "C" in p.axes else None
    plane_axis = p.axes.index("Z") if "Z" in p.axes else 0
    with naming_flags({"data_range": "--data-range"}):
        rows = run_evaluate(np.asarray(p.data, dtype=np.float64), np.asarray(g.data, dtype=np.float64),
                            data_range=data_range if data_range is not None else "gt", per_plane=per_plane,
                            plane_axis=plane_axis, channel_axis=channel_axis)
    Console().print(format_table(rows, title=f"{pred.name} vs {gt.name}"))
    if output:
        write_metrics_csv(rows, output)
        console.print(f"wrote {output}")


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``evaluate`` command to the main app."""
    app.command("evaluate")(evaluate)
