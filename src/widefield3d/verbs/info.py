"""`widefield3d info FILE`: axes, shape, dtype, spacing and channel names of an image file (its header only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def info(path: Annotated[Path, typer.Argument(help="image file")]) -> None:
    """Show axes, shape, dtype, spacing and channel names of an image file."""
    from rich.console import Console

    from widefield3d import io

    image = io.read(path, lazy=True)
    spacing = ", ".join(f"{k}={v:g} µm" for k, v in image.spacing_um.items())
    Console().print(f"{path}: axes {image.axes}, shape {tuple(image.data.shape)}, dtype {image.data.dtype}, {spacing}"
                    + (f", channels {image.channel_names}" if image.channel_names else ""))


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``info`` command to the main app."""
    app.command("info")(info)
