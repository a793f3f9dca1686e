"""Command-line options shared by the ``widefield3d train ...`` verbs (model directory, resume, run length, budget,
warm-up, device), and the line they print at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.errors import InputError

ModelDir = Annotated[Path, typer.Option("-o", "--output", help="model directory")]
Resume = Annotated[bool, typer.Option("--resume", help="continue the run in the model directory")]
Iterations = Annotated[Optional[int], typer.Option(min=1, help="override the number of iterations")]
TimeBudget = Annotated[Optional[float], typer.Option(
    "--time-budget", min=0.01, help="minutes of wall time for this run; stops cleanly, resumable with --resume")]
Warmup = Annotated[Optional[int], typer.Option(
    "--warmup", min=0, help="first iterations with the pixel loss only, before the paper's adversarial loss")]
Device = Annotated[Optional[str], typer.Option(help="auto | cpu | cuda[:N] (overrides the config)")]


def check_data_dir(data: Path) -> None:
    """InputError unless ``--data`` is a folder (checked before the model directory is touched)."""
    if not data.is_dir():
        raise InputError(f"--data {data}: not a directory")


def trainer_overrides(*, iterations: int | None = None, time_budget: float | None = None,
                      warmup: int | None = None, device: str | None = None) -> dict:
    """The TrainerConfig fields given on the command line (only those given)."""
    given = {"iterations": iterations, "time_budget_minutes": time_budget, "warmup_iterations": warmup,
             "device": device}
    return {k: v for k, v in given.items() if v is not None}


def report(result, output) -> str:
    """One line on a finished (or budget-stopped) run, with where its wall time went."""
    total = sum(result.timings.values()) if result.timings else 0.0
    shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in result.timings.items()) if total else ""
    stop = " (time budget spent; continue with --resume)" if result.stopped_by_budget else ""
    return (f"trained {result.iterations_done} iterations in {result.seconds:.0f} s{stop}; best validation "
            f"{result.best_metric:.4g} at iteration {result.best_iteration}; model in {output}"
            + (f"; wall time: {shares}" if shares else ""))
