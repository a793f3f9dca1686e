"""Command-line options shared by several verbs (not the training ones: see ``_training_options``)."""

from __future__ import annotations

from typing import Annotated

import typer

from widefield3d.checks import MAX_PLANES

AllowLarge = Annotated[bool, typer.Option(
    "--allow-large", help=f"skip the checks of the work's size (more than {MAX_PLANES} planes, more memory than "
                          "is available)")]
