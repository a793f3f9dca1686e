"""`widefield3d export bioimageio`: a model as a bioimage.io model package (see docs/bioimageio.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.checks import parse_range
from widefield3d.verbs._common import console

export_app = typer.Typer(help="Export a model to another tool's format.", no_args_is_help=True)


@export_app.command("bioimageio")
def bioimageio_cmd(
    model: Annotated[str, typer.Argument(help="shipped model name (widefield3d models) or trained model directory")],
    output: Annotated[Path, typer.Option("-o", "--output", help="the package, a .zip file")],
    z: Annotated[Optional[str], typer.Option(
        help="Deep-Z: refocus distances of the package's planes, START:STOP:STEP or one number (µm, + = deeper; "
             "default: 9 planes across the trained range)")] = None,
    test_input: Annotated[Optional[Path], typer.Option(
        help="an image of the kind the model takes, for the package's test tensors (default: a synthetic one); "
             "for Deep-Z it also sets the normalisation's percentiles")] = None,
    author: Annotated[Optional[list[str]], typer.Option(help="an author of the package (repeatable)")] = None,
) -> None:
    """Write MODEL as a bioimage.io model package (torchscript + pytorch_state_dict weights), after it passed
    bioimage.io's own test; nothing is written if it fails."""
    from widefield3d.export import export_bioimageio

    z_um = parse_range(z, "--z") if z is not None else None
    export_bioimageio(model, output, z_um=z_um, test_input=test_input, authors=author or ("widefield3d",))
    console.print(f"wrote {output}: bioimage.io package of {model} (passed bioimageio.core's test)",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``export`` group (``export bioimageio``) to the main app."""
    app.add_typer(export_app, name="export")
