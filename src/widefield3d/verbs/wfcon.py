"""`widefield3d confocal` (WFCON-Net inference) and `widefield3d train wfcon`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.verbs._common import console, naming_flags, read_zyx
from widefield3d.verbs._training_options import (
    Device,
    InitFrom,
    Iterations,
    ModelDir,
    Resume,
    TimeBudget,
    Warmup,
    check_data_dir,
    report,
    trainer_overrides,
    training_config,
)


class Network(str, Enum):
    three_d = "3d"
    two_d = "2d"


def confocal_cmd(
    stack: Annotated[Path, typer.Argument(help="wide-field z-stack (ZYX)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="confocal-like stack (OME-TIFF, OME-Zarr, ...)")],
    model: Annotated[str, typer.Option(help="shipped model name or model directory")] = "wfcon-60x14-tissue",
    z_step: Annotated[Optional[float], typer.Option(
        help="z step of STACK in µm (default: the model's); larger steps are interpolated first")] = None,
    denormalise: Annotated[bool, typer.Option(
        "--denormalise", help="output on STACK's intensity scale (undo its percentile normalisation)")] = False,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:N]")] = "auto",
) -> None:
    """Turn a wide-field z-stack into a confocal-like z-stack with WFCON-Net (values on [0, 1], or on STACK's
    scale with --denormalise)."""
    from widefield3d import io
    from widefield3d.checks import check_output, naming_files
    from widefield3d.errors import InputError
    from widefield3d.methods.wfcon import confocal, load

    check_output(output, inputs=[stack])
    image = read_zyx(stack)
    if image.data.shape[0] < 2:
        raise InputError(f"{stack}: needs a z-stack (WFCON-Net sees the planes above and below), got a single "
                         f"plane of shape {tuple(image.data.shape[1:])}")
    m = load(model)
    with naming_files({"stack": stack, "widefield": stack}), naming_flags({"z_step_um": "--z-step"}):
        result = confocal(image, model=m, z_step_um=z_step, denormalise=denormalise, device=device, progress=True)
    io.write(output, result)
    console.print(f"wrote {output}: confocal-like stack {result.data.shape}, z step {result.spacing_zyx[0]:g} µm")


def train_wfcon(
    data: Annotated[Path, typer.Option(help="folder with widefield/ and confocal/ stacks of the same fields")],
    output: ModelDir,
    config: Annotated[Optional[Path], typer.Option(help="JSON/YAML file of WFConConfig settings")] = None,
    resume: Resume = False,
    perceptual: Annotated[Optional[str], typer.Option(
        help="discriminator | vgg16:PATH (local VGG-16 weights) | none")] = None,
    network: Annotated[Optional[Network], typer.Option(help="3d (paper) or its 2d version")] = None,
    iterations: Iterations = None,
    time_budget: TimeBudget = None,
    warmup: Warmup = None,
    device: Device = None,
    init: InitFrom = None,
) -> None:
    """Train WFCON-Net (3D GAN: LSGAN + 2 L1 + 0.01 perceptual) on paired wide-field/confocal stacks."""
    from widefield3d.methods.wfcon import Config, train

    check_data_dir(data)
    overrides = {"network.perceptual": perceptual, "network.kind": network.value if network else None,
                 **trainer_overrides(iterations=iterations, time_budget=time_budget, warmup=warmup, device=device,
                                     init=init)}
    cfg = training_config(Config, config, output, resume, overrides)
    console.print(report(train(data, output, cfg, resume=resume, progress=True), output))


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add ``confocal`` to the main app and ``wfcon`` to ``train``."""
    app.command("confocal")(confocal_cmd)
    train_app.command("wfcon")(train_wfcon)
