"""Resolution pyramids for OME-Zarr images: 2x-downsampled levels ``s1, s2, ...`` beside the full-resolution ``s0``.

Viewers (napari, neuroglancer, QuPath) open a big image at a coarse level first and read the fine levels only where
they zoom in. Each level halves Y and X (the mean of 2 x 2 pixels; Z, C and T are kept) and records its pixel
spacing in µm (twice the previous level's) and the shift of its first pixel centre, as NGFF 0.5 describes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import zarr

from widefield3d.errors import InputError

__all__ = ["add_pyramid", "pyramid_levels"]


def pyramid_levels(shape_yx: tuple[int, int], min_size: int = 256) -> int:
    """How many 2x levels below the full resolution keep both lateral sizes at ``min_size`` pixels or more."""
    levels, (ny, nx) = 0, shape_yx
    while min(ny, nx) // 2 >= min_size:
        ny, nx, levels = ny // 2, nx // 2, levels + 1
    return levels


def add_pyramid(path: str | os.PathLike[str], *, min_size: int = 256, levels: int | None = None,
                scheduler: Any = None) -> int:
    """Add 2x-downsampled levels to an OME-Zarr image that holds one level (as :func:`create_ome_zarr` makes it).

    Parameters
    ----------
    path : str or Path
        The ``.ome.zarr`` directory, opened for writing; its full-resolution level must be complete.
    min_size : int
        Smallest lateral size (pixels) a level may have; default 256, one chunk of the default chunking.
    levels : int, optional
        Number of levels to add; default :func:`pyramid_levels` of the image's Y and X sizes.
    scheduler : optional
        What computes the levels (a ``dask.distributed.Client``, ``"threads"``, ...); default dask's current one.

    Returns
    -------
    int
        The number of levels added. Level ``k`` has spacing ``2**k`` times the full resolution's along Y and X
        (µm) and a translation of ``(2**k - 1) / 2`` full-resolution pixels along them; integer images are rounded.
    """
    path = Path(path)
    group = zarr.open_group(str(path), mode="r+")
    attrs: dict[str, Any] = group.attrs.asdict()
    ome: dict[str, Any] = dict(attrs["ome"])
    multiscale: dict[str, Any] = dict(ome["multiscales"][0])
    datasets: list[dict[str, Any]] = list(multiscale["datasets"])
    if len(datasets) != 1:
        raise InputError(f"{path}: has {len(datasets)} resolution levels already; add_pyramid starts from one")
    axes = "".join(a["name"] if isinstance(a, dict) else a for a in multiscale["axes"]).upper()
    base = group[datasets[0]["path"]]
    if not isinstance(base, zarr.Array):
        raise InputError(f"{path}: dataset {datasets[0]['path']!r} is not an array")
    y, x = axes.index("Y"), axes.index("X")
    if levels is None:
        levels = pyramid_levels((base.shape[y], base.shape[x]), min_size)
    scale = next(t["scale"] for t in datasets[0]["coordinateTransformations"] if t["type"] == "scale")
    previous = base
    for k in range(1, levels + 1):
        source = da.from_zarr(previous)
        level = da.coarsen(np.mean, source.astype(np.float64), {y: 2, x: 2}, trim_excess=True)
        if base.dtype.kind in "ui":
            level = da.rint(level)
        level = level.astype(base.dtype)
        target = group.create_array(f"s{k}", shape=level.shape, dtype=base.dtype,
                                    chunks=tuple(min(c, n) for c, n in zip(base.chunks, level.shape)),
                                    fill_value=0, dimension_names=[a.lower() for a in axes],
                                    config={"write_empty_chunks": True})
        level.rechunk(target.chunks).store(target, lock=False, scheduler=scheduler)  # one writer per chunk
        factor = [2**k if i in (y, x) else 1 for i in range(len(axes))]
        shift = [(2**k - 1) / 2 * s if i in (y, x) else 0.0 for i, s in enumerate(scale)]
        datasets.append({"path": f"s{k}", "coordinateTransformations": [
            {"type": "scale", "scale": [s * f for s, f in zip(scale, factor)]},
            {"type": "translation", "translation": shift}]})
        previous = target
    multiscale["datasets"] = datasets
    ome["multiscales"] = [multiscale, *ome["multiscales"][1:]]
    group.attrs["ome"] = ome
    return levels
