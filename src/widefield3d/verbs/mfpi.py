"""`widefield3d multifocal` (MFPINet inference) and `widefield3d train mfpi`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.verbs._common import console, image_suffix
from widefield3d.verbs._training_options import (
    Device,
    InitFrom,
    ModelDir,
    Resume,
    TimeBudget,
    Warmup,
    check_data_dir,
    report,
    trainer_overrides,
    training_config,
)


def multifocal_cmd(
    image: Annotated[Path, typer.Argument(help="one low-resolution 2D image (RGB or gray)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="focal stack: .ome.tif or .ome.zarr (big images)")],
    model: Annotated[str, typer.Option(help="shipped model name or model directory")] = "mfpi-cytology-20x075",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:N]")] = "auto",
    tile: Annotated[int, typer.Option(help="largest tile side in input pixels")] = 512,
    batch: Annotated[int | None, typer.Option(help="tiles per network call (fewer: less memory); default 1 on "
                                                     "the CPU, 4 on a GPU")] = None,
) -> None:
    """All focal planes at 2x lateral resolution from one low-resolution image, in one pass (MFPINet)."""
    from widefield3d import io
    from widefield3d.checks import check_output, naming_files
    from widefield3d.errors import InputError
    from widefield3d.methods.mfpi import load, multifocal

    if image_suffix(output).lower() not in (".ome.tif", ".ome.tiff", ".ome.zarr", ".zarr"):
        raise InputError(f"-o {output}: the focal stack is written as OME-TIFF (.ome.tif) or OME-Zarr (.ome.zarr)")
    check_output(output, inputs=[image])
    if tile < 8:
        raise InputError(f"--tile {tile}: must be at least 8")
    if batch is not None and batch < 1:
        raise InputError(f"--batch {batch}: must be at least 1")
    source = io.read(image, lazy=True)
    m = load(model)
    with naming_files({"multifocal": image, "image": image}):
        stack = multifocal(source, model=m, device=device, tile=tile, out=output, progress=True, batch_size=batch)
    dz, dy, _ = stack.spacing_zyx
    console.print(f"wrote {output}: {stack.axes} {tuple(stack.data.shape)} {stack.data.dtype}, "
                  f"z step {dz:g} µm, pixel {dy:.4g} µm")


def train_mfpi(
    data: Annotated[Path, typer.Option(help="folder of focal stacks (N planes each) or a simulated dataset")],
    output: ModelDir,
    config: Annotated[Optional[Path], typer.Option(help="JSON/YAML file of MFPIConfig settings")] = None,
    resume: Resume = False,
    epochs: Annotated[Optional[float], typer.Option(min=0.001, help="override the number of epochs")] = None,
    time_budget: TimeBudget = None,
    warmup: Warmup = None,
    device: Device = None,
    init: InitFrom = None,
) -> None:
    """Train MFPINet (GAN: L1 + 0.01 BCE adversarial, Adam 1e-4 halved every 2 epochs, 20 epochs)."""
    from widefield3d.methods._base import apply_overrides
    from widefield3d.methods.mfpi import Config, train

    check_data_dir(data)
    cfg = training_config(Config, config, output, resume,
                          trainer_overrides(time_budget=time_budget, warmup=warmup, device=device, init=init))
    if epochs is not None:
        cfg = apply_overrides(cfg, {"trainer.iterations": max(1, round(epochs * cfg.iterations_per_epoch))}, "--epochs")
    console.print(report(train(data, output, cfg, resume=resume), output))


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add ``multifocal`` to the main app and ``mfpi`` to ``train``."""
    app.command("multifocal")(multifocal_cmd)
    train_app.command("mfpi")(train_mfpi)
