"""Vendor formats (Zeiss CZI, Nikon ND2, Leica LIF, ...) through the optional `bioio` package and its plugins.

:func:`widefield3d.io.read` uses this back-end for the extensions in :data:`VENDOR_EXTENSIONS` and, with
``reader="bioio"``, for any file. bioio gives every image as ``TCZYX`` (``TCZYXS`` for RGB samples); singleton
``T``, ``C`` and ``Z`` are dropped (an OME-TIFF written by widefield3d restores them from its record), ``S`` becomes
``C``. Only the first scene (series) is read. Spacing is converted to µm from the unit bioio or the OME metadata
give, µm where neither gives one; channel names are kept, bioio's made-up ones (``Channel:0:1``, empty) are not.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Any

from widefield3d.errors import InputError
from widefield3d.io.metadata import RECORD_KEY, Parsed, parse_record, to_um
from widefield3d.io.read_errors import check_fits

INSTALL_HINT = "pip install widefield3d[vendor]"
VENDOR_EXTENSIONS = {".czi": "bioio-czi", ".nd2": "bioio-nd2", ".lif": "bioio-lif"}
"""Extensions :func:`widefield3d.io.read` hands to bioio by default, with the plugin each needs."""
_PLUGINS = {**VENDOR_EXTENSIONS, ".ome.tiff": "bioio-ome-tiff", ".ome.tif": "bioio-ome-tiff",
            ".ome.zarr": "bioio-ome-zarr", ".zarr": "bioio-ome-zarr"}
_MADE_UP_NAME = re.compile(r"^(Channel:.*:\d+|)$")  # what bioio readers invent for unnamed channels


def vendor_extension(path: Path) -> str | None:
    """The extension of ``path`` in :data:`VENDOR_EXTENSIONS` (lower case), or None."""
    name = path.name.lower()
    return next((ext for ext in VENDOR_EXTENSIONS if name.endswith(ext)), None)


def _plugin_for(path: Path) -> str | None:
    """The bioio plugin (distribution name) that reads ``path``'s extension, if we know it; None: let bioio pick."""
    name = path.name.lower()
    return next((plugin for ext, plugin in _PLUGINS.items() if name.endswith(ext)), None)


def _require(module: str, what: str, path: Path) -> None:
    """InputError naming what to install unless ``module`` can be imported."""
    if importlib.util.find_spec(module) is None:
        raise InputError(f"{path}: reading it needs {what}, which is not installed; {INSTALL_HINT}")


def read_bioio(path: Path, lazy: bool) -> Parsed:
    """The first scene of ``path`` read by bioio, in bioio's order with S as C and singletons dropped."""
    _require("bioio", "the optional package bioio", path)
    plugin = _plugin_for(path)
    if plugin is not None:
        _require(plugin.replace("-", "_"), f"the bioio plugin {plugin}", path)
    with warnings.catch_warnings():  # bioio and its dependencies deprecate things on import and while parsing
        warnings.simplefilter("ignore", DeprecationWarning)
        image = _open(path, plugin)
        if len(image.scenes) > 1:
            warnings.warn(f"{path}: {len(image.scenes)} scenes; reading the first, {image.scenes[0]!r}",
                          UserWarning, stacklevel=4)
        dims = "".join(image.dims.order)
        data, axes = _our_axes(image.dask_data, dims, path)
        if not lazy:
            check_fits(path, math.prod(data.shape) * data.dtype.itemsize)
            data = data.compute()
        names = [str(n) for n in image.channel_names or []]
        if "S" in dims or any(_MADE_UP_NAME.match(n) for n in names):
            names = []
        metadata = _ome(image)
        return Parsed(data, axes, _spacing_um(image, metadata), names or None, _record(metadata, path))


def _open(path: Path, plugin: str | None) -> Any:
    """``bioio.BioImage`` of ``path`` with ``plugin``'s reader (None: bioio picks); one InputError if it fails."""
    bioio = importlib.import_module("bioio")
    from bioio_base.exceptions import UnsupportedFileFormatError

    reader = None if plugin is None else importlib.import_module(plugin.replace("-", "_")).Reader
    log = logging.getLogger("bioio.bio_image")
    level = log.level
    log.setLevel(logging.ERROR)  # it logs every failed reader attempt as a warning, then raises
    try:
        return bioio.BioImage(path, reader=reader) if reader is not None else bioio.BioImage(path)
    except UnsupportedFileFormatError as exc:
        if plugin is None:
            raise InputError(f"{path}: no installed bioio plugin reads it; install the one for its format (bioio's "
                             "README lists them)") from exc
        reason = [line.strip(" -") for line in str(exc).splitlines() if line.strip()][-1]
        raise InputError(f"{path}: {plugin} cannot read it ({reason})") from exc
    finally:
        log.setLevel(level)


def _our_axes(data: Any, dims: str, path: Path) -> tuple[Any, str]:
    """bioio's dims (``TCZYX``, ``TCZYXS``, ...) as ours: S becomes C (refused next to a C of more than one),
    singleton T, C, Z and any other singleton dimension dropped."""
    sizes = dict(zip(dims, data.shape))
    if sizes.get("S", 1) > 1 and sizes.get("C", 1) > 1:
        raise InputError(f"{path}: {sizes['C']} channels of {sizes['S']} samples (RGB) each; widefield3d holds one "
                         "channel axis (convert the file to one channel per plane first)")
    unknown = [d for d in dims if d not in "TCZYXS" and sizes[d] > 1]
    if unknown:
        raise InputError(f"{path}: dimension {unknown[0]} of size {sizes[unknown[0]]} (bioio dims {dims}); "
                         "widefield3d reads T, C, Z, Y and X only")
    keep = [i for i, d in enumerate(dims) if d in "YX" or (d in "TCZS" and sizes[d] > 1)]
    data = data[tuple(slice(None) if i in keep else 0 for i in range(len(dims)))]
    axes = "".join("C" if dims[i] == "S" else dims[i] for i in keep)
    return data, axes


def _ome(image: Any) -> Any:
    """The reader's metadata if it is an ``ome_types.OME`` object (bioio-ome-tiff), else None; no conversion."""
    metadata = image.reader.metadata
    return metadata if type(metadata).__name__ == "OME" and hasattr(metadata, "images") else None


def _spacing_um(image: Any, ome: Any) -> dict[str, float]:
    """Physical sizes Z, Y, X in µm: bioio's values in the unit its dimension properties or the OME pixels give
    (µm where neither does); unknown units and missing sizes are left out."""
    from pint.errors import DimensionalityError

    sizes = image.physical_pixel_sizes
    properties = image.dimension_properties
    pixels = ome.images[image.current_scene_index].pixels if ome is not None and ome.images else None
    spacing = {}
    for axis in "ZYX":
        value = getattr(sizes, axis)
        if value is None:
            continue
        unit = getattr(properties, axis).unit
        if unit is not None:  # a pint unit
            try:
                um = float((float(value) * unit).to("micrometer").magnitude)
            except DimensionalityError:  # not a length
                um = None
        else:
            ome_unit = getattr(pixels, f"physical_size_{axis.lower()}_unit", None) if pixels is not None else None
            um = to_um(float(value), getattr(ome_unit, "value", ome_unit))
        if um is not None:
            spacing[axis] = um
    return spacing


def _record(ome: Any, path: Path) -> dict[str, Any] | None:
    """The widefield3d record in an OME MapAnnotation (written by :func:`widefield3d.io.write`), if any."""
    annotations = getattr(getattr(ome, "structured_annotations", None), "map_annotations", None) or []
    for annotation in annotations:
        if annotation.namespace == RECORD_KEY:
            values = {m.k: m.value for m in annotation.value.ms} if hasattr(annotation.value, "ms") else {}
            return parse_record(values.get("record"), path)
    return None
