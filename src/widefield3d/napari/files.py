"""The plugin's reader and writer, both through :mod:`widefield3d.io`.

- Reader: OME-TIFF (``.ome.tif``, ``.ome.tiff``, as widefield3d writes them) with the physical scale (µm) and the
  channel names. OME-Zarr is napari-ome-zarr's job (it reads our files with their scale and channel names).
- Writer: one image layer to OME-Zarr (``.ome.zarr``) or OME-TIFF (``.ome.tif``) with its scale as the spacing
  (µm) and its axes and channel names (kept in the layer's metadata by :mod:`widefield3d.napari.layers`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from widefield3d import io
from widefield3d.napari.layers import LayerDataTuple, image_to_layer, layer_image

READ_SUFFIXES = (".ome.tif", ".ome.tiff")
WRITE_SUFFIXES = (".ome.zarr", ".ome.tif", ".ome.tiff")


def _stem(path: Path) -> str:
    name = path.name
    return next((name[: -len(s)] for s in READ_SUFFIXES + WRITE_SUFFIXES if name.lower().endswith(s)), path.stem)


def get_reader(path: str | list[str]) -> Callable[[str], list[LayerDataTuple]] | None:
    """napari's reader hook: :func:`read_layers` for one OME-TIFF path, None for anything else."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_layers if str(path).lower().endswith(READ_SUFFIXES) else None


def read_layers(path: str | list[str]) -> list[LayerDataTuple]:
    """The image of an OME-TIFF file as napari layer data (scale in µm; one layer per channel, or RGB)."""
    file = Path(path[0] if isinstance(path, list) else path)
    return [image_to_layer(io.read(file), _stem(file))]


def write_image(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """napari's single-layer writer: the layer as OME-Zarr or OME-TIFF (by ``path``'s extension) with its scale
    as the spacing (µm). Returns the written path."""
    image = layer_image(data, scale=attributes.get("scale", [1.0] * data.ndim), rgb=bool(attributes.get("rgb")),
                        metadata=attributes.get("metadata"))
    return [str(io.write(path, image))]
