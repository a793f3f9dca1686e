"""`widefield3d models`: list the shipped models (name, method, description, size)."""

from __future__ import annotations

from typing import Annotated

import typer


def models(
    path: Annotated[bool, typer.Option("--path", help="print each model's directory instead of the table")] = False,
) -> None:
    """List the shipped models; pass a name from here (or a trained model's directory) as --model."""
    from rich.console import Console
    from rich.table import Table

    from widefield3d.zoo import ZOO_DIR, list_models

    found = list_models()
    out = Console()
    if path:
        for info in found:
            out.print(str(info.path), highlight=False, soft_wrap=True)
        return
    table = Table(title=f"shipped models ({ZOO_DIR})")
    for column in ("name", "method", "description"):
        table.add_column(column)
    table.add_column("size (MB)", justify="right")
    for info in found:
        table.add_row(info.name, info.method, info.description, f"{info.size_mb:.1f}")
    out.print(table)
    if not found:
        out.print("no shipped models yet; train one with `widefield3d train <method>`")


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add the ``models`` command to the main app."""
    app.command("models")(models)
