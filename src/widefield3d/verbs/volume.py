"""`widefield3d reconstruct` (bright-field focal stack -> transmittance volume) and `widefield3d train volume-dip`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.verbs._common import console, parse_triple, read_zyx
from widefield3d.verbs._training_options import ModelDir


class Method(str, Enum):
    dip = "dip"
    iterative = "iterative"


class Start(str, Enum):
    none = "none"
    ellipsoid_fit = "ellipsoid-fit"
    ellipsoid_denoise = "ellipsoid-denoise"


def reconstruct_cmd(
    stack: Annotated[Path, typer.Argument(help="bright-field focal stack ZYX, one image per layer, "
                                               "background normalised to 1")],
    output: Annotated[Path, typer.Option("-o", "--output", help="transmittance volume (OME-TIFF, ...)")],
    method: Annotated[Method, typer.Option(help="dip (Deep Image Prior) or iterative (Yamaguchi)")] = Method.dip,
    na: Annotated[float, typer.Option(help="numerical aperture (medium index 1)")] = 0.75,
    xy_res: Annotated[Optional[float], typer.Option(help="pixel size in µm (default: the file's)")] = None,
    z_res: Annotated[Optional[float], typer.Option(help="focus step = layer distance in µm (default: the "
                                                        "file's)")] = None,
    aperture_samples: Annotated[int, typer.Option(help="pupil grid points per side")] = 25,
    pretrained: Annotated[Start, typer.Option(help="DIP start: constant fit, Pretr I or Pretr II")] = Start.none,
    early_stop: Annotated[bool, typer.Option("--early-stop/--no-early-stop", help="ES-WMV early stopping")] = True,
    steps: Annotated[int, typer.Option(help="maximum optimisation steps")] = 30000,
    es_window: Annotated[int, typer.Option(help="ES-WMV window (iterates)")] = 100,
    es_patience: Annotated[int, typer.Option(help="ES-WMV patience (iterates)")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:N]")] = "auto",
    figure: Annotated[Optional[Path], typer.Option("--figure", help="PNG of ortho-slices of the volume")] = None,
) -> None:
    """Reconstruct a 3D transmittance volume from a bright-field multi-focus stack (Yamaguchi / DIP)."""
    import numpy as np

    from widefield3d import io
    from widefield3d.checks import check_output, naming_files
    from widefield3d.errors import InputError
    from widefield3d.io import atomic_output
    from widefield3d.methods.volume import VolumeConfig, solve

    if not na > 0:
        raise InputError(f"--na: must be > 0 (with NA 0 every focal plane is the same image), got {na:g}")
    check_output(output, inputs=[stack])
    if figure is not None:
        check_output(figure, kind="png", inputs=[stack], name="--figure")
    image = read_zyx(stack, "a focal stack", require_z=True)
    dz, _, dx = image.spacing_zyx
    config = VolumeConfig(  # one-line errors before any work
        solver=method.value, na=na, xy_res_um=xy_res or dx, z_res_um=z_res or dz, aperture_samples=aperture_samples,
        pretrained=pretrained.value, early_stop=early_stop, steps=steps, es_window=es_window, es_patience=es_patience,
        seed=seed)
    with naming_files({"stack": stack}):
        result = solve(np.asarray(image.data), config, device=device, progress=True)
    spacing = (result.config.z_res_um, result.config.xy_res_um, result.config.xy_res_um)
    io.write(output, io.Image(result.transmittance, axes="ZYX", spacing_um=spacing))
    if figure is not None:
        from widefield3d.demo.volume import ortho_figure

        fig = ortho_figure(result.transmittance, spacing, title=f"{method.value} reconstruction of {stack.name}")
        with atomic_output(figure) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    console.print(f"wrote {output}: transmittance {result.transmittance.shape}, iterate {result.iteration} of "
                  f"{result.iterations} ({'early stop' if result.stopped_early else 'all steps'}), "
                  f"{result.seconds:.1f} s" + (f", figure {figure}" if figure else ""))


def train_volume_dip(
    output: ModelDir,
    volumes: Annotated[int, typer.Option(help="random-ellipsoid volumes")] = 1000,
    batch_size: Annotated[int, typer.Option(help="volumes per step")] = 20,
    epochs: Annotated[int, typer.Option()] = 5,
    shape: Annotated[str, typer.Option(help="Z,Y,X of the training volumes")] = "11,128,128",
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda[:N]")] = "auto",
) -> None:
    """Pre-train the DIP network to denoise random-ellipsoid volumes (Pretr II; paper: 1000 x 5 epochs)."""
    from widefield3d.checks import check_output
    from widefield3d.methods.volume import Config, train

    check_output(output, kind="dir")
    config = Config(data={"n_volumes": volumes, "shape": parse_triple(shape, "--shape", int)},
                    trainer={"batch_size": batch_size, "epochs": epochs, "seed": seed})
    path = train(output, config, device=device, progress=True)
    console.print(f"wrote {path} (use it with reconstruct --pretrained ellipsoid-denoise or "
                  "VolumeConfig(denoiser=PATH))")


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add ``reconstruct`` to the main app and ``volume-dip`` (Pretr II) to ``train``."""
    app.command("reconstruct")(reconstruct_cmd)
    train_app.command("volume-dip")(train_volume_dip)
