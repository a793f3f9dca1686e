"""`widefield3d predict-distributed`: any Deep-Z(+) or MFPINet model over a large OME-Zarr on a dask cluster.

One command for every method (not a ``--cluster`` option on each method's command): distributed inference is
written once against the method contract (:func:`widefield3d.zoo.load_model` and the method's predict function),
and its input and output are OME-Zarr only, with options of its own (block, scheduler, workers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from widefield3d.checks import parse_range
from widefield3d.verbs._common import console, naming_flags
from widefield3d.verbs._options import AllowLarge

_FLAGS = {"block": "--block", "cluster": "--scheduler", "'z'": "--z", "'tile'": "--tile",
          "'allow_extrapolation'": "--allow-extrapolation"}
"""API parameters named by their flags in error lines."""


def predict_distributed_cmd(
    image: Annotated[Path, typer.Argument(help="input OME-Zarr (.ome.zarr), read block by block")],
    output: Annotated[Path, typer.Option("-o", "--output", help="output OME-Zarr (.ome.zarr); must not exist")],
    model: Annotated[str, typer.Option(help="shipped model name (widefield3d models) or model directory")],
    z: Annotated[Optional[str], typer.Option(help="Deep-Z: distance in µm (3.5) or a stack START:STOP:STEP")] = None,
    allow_extrapolation: Annotated[bool, typer.Option("--allow-extrapolation",
                                                      help="Deep-Z: allow distances beyond the trained range")
                                   ] = False,
    block: Annotated[int, typer.Option(help="block side in input pixels, one task per block (>= 2 x halo)")] = 2048,
    tile: Annotated[Optional[int], typer.Option(help="tile side inside a block, input pixels (memory per worker)")
                    ] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="address of a running dask scheduler (tcp://host:8786); "
                                                          "default: a local cluster")] = None,
    workers: Annotated[int, typer.Option(min=1, help="local cluster: worker processes")] = 2,
    threads: Annotated[int, typer.Option(min=1, help="local cluster: tasks per worker at once")] = 1,
    device: Annotated[str, typer.Option(help="where each worker runs the network: cpu, auto, cuda or cuda:N")
                      ] = "cpu",
    pyramid: Annotated[bool, typer.Option("--pyramid/--no-pyramid", help="add 2x-downsampled levels")] = True,
    allow_large: AllowLarge = False,
) -> None:
    """Run a model over a large OME-Zarr image on a dask.distributed cluster, one block (plus halo) per task."""
    from widefield3d.distributed import predict_distributed

    options: dict = {}
    if z is not None:
        z_um = parse_range(z, "--z", allow_large=allow_large)
        options["z"] = float(z_um[0]) if ":" not in z else [float(v) for v in z_um]
    if allow_extrapolation:
        options["allow_extrapolation"] = True
    if tile is not None:
        options["tile"] = tile
    with naming_flags(_FLAGS):
        result = predict_distributed(model, image, output, options=options, block=block, cluster=scheduler,
                                     n_workers=workers, threads_per_worker=threads, device=device, pyramid=pyramid)
    spacing = ", ".join(f"{a} {v:g}" for a, v in result.spacing_um.items())
    console.print(f"wrote {output}: {result.axes} {tuple(result.data.shape)} {result.data.dtype}, spacing (µm) "
                  f"{spacing}")


def register(app: typer.Typer, train_app: typer.Typer) -> None:
    """Add ``predict-distributed`` to the main app."""
    app.command("predict-distributed")(predict_distributed_cmd)
