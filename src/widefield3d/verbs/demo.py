"""`widefield3d demo`: simulate a worm, image it, and run every method on simulated data (report.html)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def demo(
    output: Annotated[Path, typer.Option("-o", "--output", help="output directory")] = Path("demo-output"),
    seed: Annotated[int, typer.Option()] = 0,
    only: Annotated[Optional[str], typer.Option(
        help="comma-separated method sections to run (default: all of deepz,mfpi,wfcon,volume,activity); 'none' "
             "for the "
             "simulation only")] = None,
) -> None:
    """Simulate a worm, image it, and run every method on simulated data with the shipped models (report.html)."""
    from widefield3d.checks import check_output
    from widefield3d.demo import METHODS, run_demo
    from widefield3d.verbs._common import console

    check_output(output, kind="dir")
    methods: tuple[str, ...]
    if only is None:
        methods = METHODS
    elif only.strip() == "none":
        methods = ()
    else:
        methods = tuple(m.strip() for m in only.split(",") if m.strip())
    report = run_demo(output, seed=seed, methods=methods)
    console.print(f"wrote {report}")


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``demo`` command to the main app."""
    app.command("demo")(demo)
