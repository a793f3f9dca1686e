"""Command-line options shared by the ``widefield3d train ...`` verbs (model directory, resume, run length, budget,
warm-up, device), and the line they print at the end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import typer

from widefield3d.errors import InputError

if TYPE_CHECKING:
    from widefield3d.methods._base import MethodConfig

C = TypeVar("C", bound="MethodConfig")

ModelDir = Annotated[Path, typer.Option("-o", "--output", help="model directory")]
Resume = Annotated[bool, typer.Option("--resume", help="continue the run in the model directory")]
Iterations = Annotated[Optional[int], typer.Option(min=1, help="override the number of iterations")]
TimeBudget = Annotated[Optional[float], typer.Option(
    "--time-budget", min=0.01, help="minutes of wall time for this run; stops cleanly, resumable with --resume")]
Warmup = Annotated[Optional[int], typer.Option(
    "--warmup", min=0, help="first iterations with the pixel loss only, before the paper's adversarial loss")]
InitFrom = Annotated[Optional[str], typer.Option(
    "--init", help="fine-tune: start the generator from this shipped model (name) or model folder")]
Device = Annotated[Optional[str], typer.Option(help="auto | cpu | cuda[:N] (overrides the config)")]


def check_data_dir(data: Path) -> None:
    """InputError unless ``--data`` is a folder (checked before the model directory is touched)."""
    if not data.is_dir():
        raise InputError(f"--data {data}: not a directory")


def trainer_overrides(*, iterations: int | None = None, time_budget: float | None = None,
                      warmup: int | None = None, device: str | None = None, init: str | None = None) -> dict:
    """The trainer options of the command line as dotted settings for :func:`training_config` (None: not given)."""
    return {"trainer.iterations": iterations, "trainer.time_budget_minutes": time_budget,
            "trainer.warmup_iterations": warmup, "trainer.device": device, "trainer.init_from": init}


def training_config(config_class: type[C], config: Path | None, output: Path, resume: bool, overrides: dict) -> C:
    """The config a ``train`` command runs with: the ``--config`` file, else (with ``--resume``) the model
    directory's own, else the method's defaults (:func:`widefield3d.zoo.run_settings`, which also checks the model
    directory first), then the command-line ``overrides`` (dotted keys, None = not given) applied on top."""
    from widefield3d.methods._base import apply_overrides
    from widefield3d.zoo import run_settings

    settings = run_settings(config, output, resume, f"{config_class.__name__} fields")
    where = f"--config {config}" if config is not None else str(output / "config.json")
    chosen = apply_overrides(config_class.validated(settings, where), overrides, "command line")
    if getattr(chosen.trainer, "init_from", None) is not None and not resume:
        check_init(chosen)
    return chosen


def check_init(config: MethodConfig) -> None:
    """InputError unless ``config.trainer.init_from`` names a model of the same method and generator (checked before
    any data are read, so a wrong ``--init`` fails at once). Fields named ``discriminator*`` may differ: a fine-tune
    starts its discriminator afresh."""
    from widefield3d.zoo import read_config, resolve_model

    name = config.trainer.init_from  # type: ignore[attr-defined]  # every trained method's trainer has it
    source = resolve_model(name, config.method)
    theirs = _generator_fields(type(config).validated(read_config(source), str(source / "config.json")).network)
    ours = _generator_fields(config.network)
    if theirs != ours:
        raise InputError(f"--init {name}: its network ({theirs}) differs from this run's ({ours}); train with its "
                         f"config (--config {source / 'config.json'})")


def _generator_fields(network) -> dict:
    """The network settings that shape the generator (all but the ``discriminator*`` fields)."""
    return {k: v for k, v in network.model_dump(mode="json").items() if not k.startswith("discriminator")}


def report(result, output) -> str:
    """One line on a finished (or budget-stopped) run, with where its wall time went."""
    total = sum(result.timings.values()) if result.timings else 0.0
    shares = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in result.timings.items()) if total else ""
    stop = " (time budget spent; continue with --resume)" if result.stopped_by_budget else ""
    return (f"trained {result.iterations_done} iterations in {result.seconds:.0f} s{stop}; best validation "
            f"{result.best_metric:.4g} at iteration {result.best_iteration}; model in {output}"
            + (f"; wall time: {shares}" if shares else ""))
