"""PNG and JPEG: one plane, gray or RGB(A); spacing in the ``pHYs`` chunk or the JFIF density."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from PIL import Image as PILImage
from PIL import PngImagePlugin

from widefield3d.errors import InputError
from widefield3d.io.atomic import atomic_output
from widefield3d.io.image import Image
from widefield3d.io.metadata import RECORD_KEY, Parsed, parse_record, record_json

_PIL_MODES = {"1": "L", "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB",
              "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}


def read_raster(path: Path, lazy: bool) -> Parsed:
    """A PNG or JPEG plane as gray (YX) or colour (YXC), with the record from its text chunk or comment."""
    with PILImage.open(path) as picture:
        picture.load()
        info = dict(picture.info)
        mode = "RGBA" if picture.mode == "P" and "transparency" in info else _PIL_MODES.get(picture.mode)
        data = np.asarray(picture.convert(mode) if mode else picture)
    text = info.get("comment") if "comment" in info else info.get(RECORD_KEY)
    parsed = Parsed(data, "YX" if data.ndim == 2 else "YXC", {}, record=parse_record(text, path))
    if lazy:
        parsed.data = da.from_array(data)
    return parsed


def write_raster(path: Path, image: Image, fmt: str, jpeg_quality: int) -> None:
    """Write one gray or RGB(A) plane as ``fmt`` ('PNG' or 'JPEG'), spacing as dots per inch."""
    shape = dict(zip(image.axes, image.data.shape))
    n_channels = shape.get("C", 1)
    extra = [a for a in image.axes if a not in "CYX" and shape[a] > 1]
    allowed: dict[str, dict[np.dtype, tuple[int, ...]]] = {
        "PNG": {np.dtype("uint8"): (1, 3, 4), np.dtype("uint16"): (1,)}, "JPEG": {np.dtype("uint8"): (1, 3)}}
    if extra or n_channels not in allowed[fmt].get(image.data.dtype, ()):
        raise InputError(f"{path}: {fmt} holds one plane, gray or RGB "
                         f"({'uint8 or uint16 gray, RGB(A) uint8' if fmt == 'PNG' else 'uint8'}); got axes "
                         f"'{image.axes}' with shape {tuple(image.data.shape)} and dtype {image.data.dtype} "
                         "(use .tif, .ome.tif or .ome.zarr)")
    plane_axes = "YXC" if n_channels > 1 else "YX"
    layout = image.as_axes("".join(a for a in image.axes if a not in plane_axes) + plane_axes)
    record = record_json(layout.axes, layout.data.shape, image.spacing_um, image.channel_names)
    picture = PILImage.fromarray(np.ascontiguousarray(layout.data.reshape(layout.data.shape[-len(plane_axes):])))
    dpi = (25400.0 / image.spacing_um["X"], 25400.0 / image.spacing_um["Y"])
    with atomic_output(path) as tmp:
        if fmt == "PNG":
            text = PngImagePlugin.PngInfo()
            text.add_text(RECORD_KEY, record)
            picture.save(tmp, format="PNG", pnginfo=text, dpi=dpi)
        else:
            options: dict[str, Any] = {}
            if all(1 <= round(d) <= 65535 for d in dpi):  # JFIF density is 16-bit dots per inch
                options["dpi"] = tuple(round(d) for d in dpi)
            picture.save(tmp, format="JPEG", quality=jpeg_quality, subsampling=0, comment=record, **options)
