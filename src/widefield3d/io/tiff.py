"""TIFF: OME-TIFF, ImageJ hyperstacks (what Fiji opens with its scale) and plain TIFF (read only)."""

from __future__ import annotations

import math
import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr

from widefield3d.errors import InputError
from widefield3d.io.atomic import atomic_output
from widefield3d.io.checks import AXES
from widefield3d.io.image import Image
from widefield3d.io.metadata import RECORD_KEY, Parsed, parse_record, record_json, to_um
from widefield3d.io.read_errors import check_fits

_IMAGEJ_DTYPES = {np.dtype(t) for t in ("uint8", "uint16", "int16", "float32")}


def _check_ome_planes(tif: tifffile.TiffFile, path: Path) -> None:
    """Refuse OME-XML that describes more planes than the file holds, before tifffile lists them (1e9 planes
    claimed by a damaged SizeZ would take it gigabytes). Multi-file datasets (TiffData with a FileName) pass."""
    xml = tif.ome_metadata
    if xml is None:  # not an OME-TIFF
        return
    root = ElementTree.fromstring(xml)
    if any(e.get("FileName") for e in root.iter() if e.tag.endswith("}UUID")):
        return
    planes = 0
    first = tif.pages.first
    for index, pixels in enumerate(e for e in root.iter() if e.tag.endswith("}Pixels")):
        described = (int(pixels.get("SizeY", 0)), int(pixels.get("SizeX", 0)))
        if index == 0 and described != (first.imagelength, first.imagewidth):
            raise InputError(f"{path}: contradictory OME-TIFF metadata (its OME-XML describes planes of "
                             f"{described[0]} x {described[1]} pixels, the file holds {first.imagelength} x "
                             f"{first.imagewidth})")
        channel = next((c for c in pixels if c.tag.endswith("}Channel")), None)
        samples = max(int(channel.get("SamplesPerPixel", 1)) if channel is not None else 1, 1)
        size = {k: int(pixels.get(f"Size{k}", 1)) for k in "ZCT"}
        planes += size["Z"] * size["T"] * max(size["C"] // samples, 1)
    held = len(tif.pages)
    for data in (e for e in root.iter() if e.tag.endswith("}TiffData")):
        first_ifd, count = int(data.get("IFD", 0)), int(data.get("PlaneCount", 1))
        if first_ifd < 0 or count < 0 or first_ifd + count > held:
            raise InputError(f"{path}: corrupt or truncated OME-TIFF file (its OME-XML places {count} planes from "
                             f"page {first_ifd}, the file holds {held})")
    if planes > held:
        raise InputError(f"{path}: corrupt or truncated OME-TIFF file (its OME-XML describes {planes} planes, the "
                         f"file holds {held})")


def read_tiff(path: Path, lazy: bool) -> Parsed:
    """The first series of an OME-, ImageJ or plain TIFF, with the metadata its flavour holds."""
    with tifffile.TiffFile(path) as tif:
        if tif.is_ome:
            _check_ome_planes(tif, path)
        series = tif.series[0]
        for flavour, is_flavour in (("ome", tif.is_ome), ("imagej", tif.is_imagej)):
            if is_flavour and series.kind != flavour:
                raise InputError(f"{path}: corrupt or truncated TIFF file ({flavour} metadata describe "
                                 "more data than the file holds)")
        ome_xml = tif.ome_metadata  # None unless tif.is_ome
        if ome_xml is not None:
            described, held = sum(len(s.pages) for s in tif.series), len(tif.pages)
            if described < held:
                raise InputError(f"{path}: contradictory OME-TIFF metadata (the OME-XML describes {described} "
                                 f"planes, the file holds {held}); fix its OME-XML (Size, DimensionOrder)")
            parsed = _ome_metadata(ome_xml, path)
        elif tif.is_imagej:
            parsed = _imagej_metadata(tif, series, path)
        else:
            parsed = Parsed(None, None, _plain_tiff_spacing(tif.pages.first))
        axes = series.axes
        if (tif.is_ome or tif.is_imagej) and not ("S" in axes and "C" in axes) and set(axes) <= set(AXES + "S"):
            parsed.axes = axes.replace("S", "C")  # else: plain TIFF, or letters like Q or I: guess from the shape
        if not lazy:
            check_fits(path, math.prod(series.shape) * np.dtype(series.dtype).itemsize)
        parsed.data = None if lazy else series.asarray()
        shape = series.shape
    if lazy:
        store = tifffile.imread(path, aszarr=True, series=0, level=0)
        parsed.data = da.from_zarr(zarr.open_array(store, mode="r")).reshape(shape)
    return parsed


def _ome_metadata(xml: str, path: Path) -> Parsed:
    root = ElementTree.fromstring(xml)
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels")), None)
    if pixels is None:
        raise InputError(f"{path}: corrupt OME-TIFF file (no Pixels element in its OME-XML)")
    spacing = {}
    for axis in "XYZ":
        value = pixels.get(f"PhysicalSize{axis}")
        um = None if value is None else to_um(float(value), pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if um is not None:
            spacing[axis] = um
    named = [c.get("Name") for c in pixels if c.tag.endswith("}Channel")]
    names = [n for n in named if n is not None] if named and None not in named else None
    record = None
    for annotation in root.iter():
        if annotation.tag.endswith("}MapAnnotation") and annotation.get("Namespace") == RECORD_KEY:
            record = next((m.text for m in annotation.iter() if m.tag.endswith("}M") and m.get("K") == "record"),
                          None)
    return Parsed(None, None, spacing, names, parse_record(record, path))


def _imagej_metadata(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries, path: Path) -> Parsed:
    meta = tif.imagej_metadata or {}
    factor = to_um(1.0, str(meta["unit"])) if "unit" in meta else None  # no unit: ImageJ calls it uncalibrated
    spacing = {}
    if factor is not None:
        if "spacing" in meta:
            spacing["Z"] = float(meta["spacing"]) * factor
        for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
            resolution = tif.pages.first.tags.valueof(tag)
            if resolution and resolution[0] > 0:
                spacing[axis] = resolution[1] / resolution[0] * factor
    labels = meta.get("Labels")
    names = None
    if labels:
        n_channels = series.shape[series.axes.index("C")] if "C" in series.axes else 1
        planes = np.asarray(labels, dtype=object)
        if planes.size % n_channels == 0:
            planes = planes.reshape(-1, n_channels)
            if (planes == planes[0]).all():
                names = [str(n) for n in planes[0]]
    record = parse_record((meta.get("Properties") or {}).get(RECORD_KEY), path)
    return Parsed(None, None, spacing, names, record)


def _plain_tiff_spacing(page: tifffile.TiffPage) -> dict[str, float]:
    """Pixel size from TIFF resolution tags when their unit is centimetres (inch values are screen DPI)."""
    if page.tags.valueof("ResolutionUnit") != tifffile.RESUNIT.CENTIMETER:
        return {}
    spacing = {}
    for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
        resolution = page.tags.valueof(tag)
        if resolution and resolution[0] > 0:
            spacing[axis] = 1e4 * resolution[1] / resolution[0]
    return spacing


def write_ome_tiff(path: Path, image: Image) -> None:
    """Write ``image`` (TCZYX order) as OME-TIFF with spacing in µm, channel names and the record."""
    if image.data.dtype.itemsize == 8 and image.data.dtype.kind in "iu":
        raise InputError(f"{path}: OME-TIFF cannot hold {image.data.dtype}; convert the data (e.g. to uint32 or "
                         "float64) or write .ome.zarr or .npy")
    record = record_json(image.axes, image.data.shape, image.spacing_um, image.channel_names)
    metadata: dict[str, Any] = {"axes": image.axes, "MapAnnotation": {"Namespace": RECORD_KEY, "record": record}}
    for axis, value in image.spacing_um.items():
        metadata[f"PhysicalSize{axis}"] = value
        metadata[f"PhysicalSize{axis}Unit"] = "µm"
    if image.channel_names:
        metadata["Channel"] = {"Name": image.channel_names}
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, image.data, ome=True, photometric="minisblack", metadata=metadata)


def write_imagej_tiff(path: Path, image: Image) -> None:
    """Write ``image`` as an ImageJ hyperstack (TZCYX), or as OME-TIFF with a warning for a dtype ImageJ lacks."""
    if image.data.dtype not in _IMAGEJ_DTYPES:
        warnings.warn(f"{path}: ImageJ cannot hold {image.data.dtype}; writing bit-exact OME-TIFF into this .tif "
                      "(Fiji opens it through Bio-Formats)", UserWarning, stacklevel=3)
        write_ome_tiff(path, image)
        return
    order = "".join(a for a in "TZCYX" if a in image.axes)
    image = image.as_axes(order)
    spacing = image.spacing_um
    metadata: dict[str, Any] = {
        "axes": order, "unit": "micron",
        "Properties": {RECORD_KEY: record_json(order, image.data.shape, spacing, image.channel_names)},
    }
    if "Z" in spacing:
        metadata["spacing"] = spacing["Z"]
    n_channels = image.data.shape[order.index("C")] if "C" in order else 1
    if n_channels > 1:
        metadata["mode"] = "composite"
    if image.channel_names:
        n_planes = math.prod(n for a, n in zip(order, image.data.shape) if a in "TZC")
        metadata["Labels"] = image.channel_names * (n_planes // n_channels)
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, image.data, imagej=True, photometric="minisblack", metadata=metadata,
                         resolution=(1.0 / spacing["X"], 1.0 / spacing["Y"]))
