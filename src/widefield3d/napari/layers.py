"""Between :class:`widefield3d.io.Image` and napari image layers: axes, scale (µm), origin and channel names.

A layer made here keeps its axes (without ``C``) and channel names in ``layer.metadata``, so that a widget or the
writer turns it back into the same ``Image``. A layer without them is read by its number of dimensions (``YX``,
``ZYX``, ``TZYX``; an RGB layer has its channels last). napari's scale is the pixel spacing in µm (1 for ``T``); a
spacing of 1.0 is what the library reads as "unknown" (:class:`widefield3d.io.Image`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from widefield3d import io
from widefield3d.errors import InputError

LayerDataTuple = tuple[Any, dict[str, Any], str]
"""napari's ``(data, layer keyword arguments, layer type)``."""

_DEFAULT_AXES = {2: "YX", 3: "ZYX", 4: "TZYX"}


def is_rgb(image: io.Image) -> bool:
    """Whether napari should show the image's C axis as colour: three channels of 8-bit values."""
    return "C" in image.axes and image.data.shape[image.axes.index("C")] == 3 and image.data.dtype == np.uint8


def image_to_layer(image: io.Image, name: str, *, origin_um: Sequence[float] | None = None,
                   **kwargs: Any) -> LayerDataTuple:
    """An image layer of ``image`` with its spacing as ``scale`` (µm).

    ``origin_um`` = ``(z, y, x)`` µm of the first voxel (e.g. the first plane of a virtual stack relative to the
    input plane), napari's ``translate``. A ``C`` axis becomes an RGB layer (:func:`is_rgb`) or one layer per
    channel, named after the channels. Other keyword arguments go to napari's ``add_image``.
    """
    axes = "".join(a for a in io.AXES if a in image.axes)
    image = image.transpose_to(axes)
    data, spatial = image.data, axes.replace("C", "")
    origin = dict(zip("ZYX", origin_um if origin_um is not None else (0.0, 0.0, 0.0)))
    layer = {"name": name, "scale": [image.spacing_um.get(a, 1.0) for a in spatial],
             "translate": [origin.get(a, 0.0) for a in spatial],
             "metadata": {"axes": spatial, "channel_names": image.channel_names}, **kwargs}
    if is_rgb(image):
        data = np.moveaxis(data, axes.index("C"), -1)
        layer["rgb"] = True
    elif "C" in axes:
        names = image.channel_names or [str(i) for i in range(data.shape[axes.index("C")])]
        layer.update(channel_axis=axes.index("C"), name=[f"{name} {c}" for c in names])
    return data, layer, "image"


def layer_image(data: Any, *, scale: Sequence[float], rgb: bool = False,
                metadata: Mapping[str, Any] | None = None) -> io.Image:
    """The :class:`io.Image` of a layer's data, scale (µm), ``rgb`` flag and metadata (napari's layer state)."""
    if isinstance(data, list):  # a multiscale layer: its full-resolution level
        data = data[0]
    ndim = data.ndim - (1 if rgb else 0)
    meta = dict(metadata or {})
    axes = meta.get("axes") if isinstance(meta.get("axes"), str) and len(meta["axes"]) == ndim else None
    axes = axes or _DEFAULT_AXES.get(ndim)
    if axes is None:
        raise InputError(f"layer: {ndim} dimensions; widefield3d takes YX, ZYX or TZYX images")
    spacing = {a: float(s) for a, s in zip(axes, scale) if a in "ZYX"}
    names = meta.get("channel_names") if rgb else None
    if rgb and data.shape[-1] != 3:
        raise InputError(f"layer: an RGB layer with {data.shape[-1]} channels (RGBA?); widefield3d takes RGB")
    return io.Image(data, axes + ("C" if rgb else ""), spacing, names if names and len(names) == 3 else None)


def layer_to_image(layer) -> io.Image:
    """The :class:`io.Image` of a napari image layer (see :func:`layer_image`)."""
    return layer_image(layer.data, scale=layer.scale, rgb=bool(layer.rgb), metadata=layer.metadata)
