"""Read and write microscopy images with their axes, physical spacing (µm) and channel names.

An :class:`Image` couples pixel data with an axes string over ``TCZYX`` (RGB is ``C=3``), the pixel spacing in
micrometres of its spatial axes, and optional channel names. :func:`read` and :func:`write` choose the format from
the file extension:

==========================  ===================================================================================
``.ome.tif``, ``.ome.tiff``  OME-TIFF: ``PhysicalSizeX/Y/Z`` in µm and channel names in the OME-XML.
``.tif``, ``.tiff``          ImageJ hyperstack (axes TZCYX, ``resolution`` in pixels per µm, ``spacing`` = z step,
                             ``unit=micron``, channel names as slice labels), which Fiji opens with its scale.
                             ImageJ holds only uint8, uint16, int16 and float32; any other dtype is written as
                             OME-TIFF inside the ``.tif`` (bit-exact, same metadata, opened by Fiji through
                             Bio-Formats) and a ``UserWarning`` says so.
``.ome.zarr``, ``.zarr``     OME-Zarr, NGFF 0.5 on Zarr v3 (one resolution level ``s0``; scale in
                             ``coordinateTransformations`` in µm, axes with units, channel names as ``omero``
                             labels). Dask data are written chunk by chunk.
``.png``                     one plane, gray (uint8 or uint16) or RGB(A) uint8; spacing in ``pHYs``.
``.jpg``, ``.jpeg``          one plane, gray or RGB uint8, lossy; spacing in the JFIF density when it fits.
``.npy``                     the array, plus a JSON sidecar ``<file>.json`` with axes, spacing and channel names.
==========================  ===================================================================================

Every file also carries a small JSON *record* (OME MapAnnotation, ImageJ property, PNG text chunk, JPEG
comment, or the ``.npy`` sidecar) with the exact axes, shape, spacing and channel names, so that singleton axes
and spacings the standard fields round (TIFF resolution, pHYs) survive a round trip bit for bit. The standard
fields win wherever another program changed them. Images read back always have their axes in ``TCZYX`` order.

Writers go through :func:`atomic_output`, so an error or Ctrl-C never leaves a partial file. Bad files and arrays
raise :class:`~widefield3d.errors.InputError` with one line naming the file and the problem; :func:`check_array`
and :func:`require_ndim` hold the array checks for reuse by other modules.

The package holds one module per concern: :mod:`~widefield3d.io.image` (the :class:`Image`),
:mod:`~widefield3d.io.checks`, :mod:`~widefield3d.io.atomic` (all-or-nothing outputs),
:mod:`~widefield3d.io.metadata` (the record, units, spacing), :mod:`~widefield3d.io.read_errors`, and one per format
family (:mod:`~widefield3d.io.tiff`, :mod:`~widefield3d.io.omezarr`, :mod:`~widefield3d.io.raster`,
:mod:`~widefield3d.io.npy`, :mod:`~widefield3d.io.vendor` for bioio). This module dispatches on the extension:
:func:`read`, :func:`write`, :func:`write_set`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import dask.array as da

from widefield3d.errors import InputError
from widefield3d.io.atomic import atomic_output, remove_path, remove_stale_temporaries
from widefield3d.io.checks import AXES, canonical_axes, check_array, check_axes
from widefield3d.io.image import Image, require_ndim
from widefield3d.io.metadata import guess_axes, merge_spacing, record_fits, usable_spacing, warn_unknown_spacing
from widefield3d.io.npy import read_npy, sidecar_path, write_npy
from widefield3d.io.omezarr import create_ome_zarr, read_ome_zarr, write_ome_zarr
from widefield3d.io.raster import read_raster, write_raster
from widefield3d.io.read_errors import unreadable_as_input_error
from widefield3d.io.tiff import read_tiff, write_imagej_tiff, write_ome_tiff
from widefield3d.io.vendor import VENDOR_EXTENSIONS, read_bioio, vendor_extension

__all__ = [
    "AXES",
    "READERS",
    "SUPPORTED_EXTENSIONS",
    "VENDOR_EXTENSIONS",
    "Image",
    "atomic_output",
    "canonical_axes",
    "check_array",
    "check_axes",
    "create_ome_zarr",
    "format_of",
    "read",
    "remove_stale_temporaries",
    "write_set",
    "require_ndim",
    "write",
]

_FORMATS = {  # longest suffixes first: ".ome.tif" must win over ".tif"
    ".ome.tiff": "OME-TIFF",
    ".ome.tif": "OME-TIFF",
    ".ome.zarr": "OME-Zarr",
    ".tiff": "TIFF",
    ".tif": "TIFF",
    ".zarr": "OME-Zarr",
    ".png": "PNG",
    ".jpeg": "JPEG",
    ".jpg": "JPEG",
    ".npy": "NPY",
}
SUPPORTED_EXTENSIONS = tuple(_FORMATS)


def format_of(path: str | os.PathLike[str]) -> str:
    """The format :func:`read` and :func:`write` use for ``path`` ('OME-TIFF', 'TIFF', 'OME-Zarr', 'PNG', 'JPEG',
    'NPY'), from its extension; InputError naming the file for an unknown one."""
    path = Path(path)
    name = path.name.lower()
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise InputError(f"{path}: unknown image extension {''.join(path.suffixes) or '(none)'!r}; supported: "
                     + ", ".join(SUPPORTED_EXTENSIONS))


_READERS = {"OME-TIFF": read_tiff, "TIFF": read_tiff, "OME-Zarr": read_ome_zarr, "PNG": read_raster,
            "JPEG": read_raster, "NPY": read_npy}
READERS = ("auto", "builtin", "bioio")
"""Values of :func:`read`'s ``reader`` argument."""


def _reader_of(path: Path, reader: str) -> tuple[str, str]:
    """(back-end, format name) that :func:`read` uses for ``path``: our readers for our extensions, bioio for
    :data:`VENDOR_EXTENSIONS` under ``'auto'`` and for every file under ``'bioio'``."""
    if reader not in READERS:
        raise InputError(f"reader: must be one of {', '.join(map(repr, READERS))}, got {reader!r}")
    vendor = vendor_extension(path)
    if reader == "bioio" or (reader == "auto" and vendor is not None):
        return "bioio", f"{vendor.lstrip('.').upper()} (bioio)" if vendor else "bioio"
    return "builtin", format_of(path)


def read(path: str | os.PathLike[str], *, lazy: bool = False, axes: str | None = None,
         reader: str = "auto") -> Image:
    """Read an image file with its axes, spacing (µm) and channel names.

    Parameters
    ----------
    path : str or Path
        A file with one of :data:`SUPPORTED_EXTENSIONS` (see the module docstring for each format). TIFFs
        without OME or ImageJ metadata are read too: 2-D -> YX; 3-D or 4-D with a last dimension of 3 or 4 ->
        RGB(A) with C last; otherwise the last letters of TCZYX (3-D -> ZYX). Only the first TIFF series is read.
    lazy : bool
        Return a dask array instead of loading the pixels: backed by zarr for OME-Zarr and TIFF (through
        ``tifffile``'s zarr store), by a memory map for ``.npy``. PNG and JPEG are decoded and wrapped.
        NaN/Inf are then not checked, and a damaged pixel block only fails when it is computed.
    axes : str, optional
        Axes of the data as stored in the file, overriding the metadata or the guess (e.g. ``'CYX'`` for a
        plain 3-channel TIFF that would be read as ZYX); must have one letter per dimension.
    reader : {'auto', 'builtin', 'bioio'}
        ``'auto'``: our readers for :data:`SUPPORTED_EXTENSIONS`, the optional bioio back-end
        (:mod:`~widefield3d.io.vendor`; ``pip install widefield3d[vendor]``) for :data:`VENDOR_EXTENSIONS`
        (``.czi``, ``.nd2``, ``.lif``). ``'builtin'``: ours only. ``'bioio'``: bioio for any file (its first
        scene; singleton T, C, Z dropped unless the file holds a widefield3d record).

    Returns
    -------
    Image
        Axes in TCZYX order; spacing in µm (1.0 where the file has none).

    Raises
    ------
    InputError
        Missing file, unknown extension, corrupt or truncated file, more than 5 or 0 dimensions, empty array,
        non-numeric dtype, NaN/Inf (eager reads), an ``axes`` that does not fit the data, or bioio (or the plugin
        a format needs) not installed.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        raise InputError(f"{path}: file not found")
    backend, fmt = _reader_of(path, reader)
    with unreadable_as_input_error(path, fmt):
        parsed = read_bioio(path, lazy) if backend == "bioio" else _READERS[fmt](path, lazy)
    data, record = parsed.data, parsed.record
    check_array(data, str(path), check_values=not lazy)
    if axes is not None:
        file_axes = check_axes(axes, data.shape, f"{path} (axes argument)")
    elif record and record_fits(record, data.shape, parsed.axes, path):
        file_axes = check_axes(record["axes"], record["shape"], f"{path}: metadata record")
        data = data.reshape(record["shape"])  # restores the singleton axes that readers squeeze away
    else:
        file_axes = check_axes(parsed.axes or guess_axes(data.shape), data.shape, str(path))
    spacing = merge_spacing(usable_spacing(parsed.spacing, path), record["spacing_um"] if record else {})
    warn_unknown_spacing(path, file_axes, data.shape, spacing)
    names = parsed.channel_names or (record or {}).get("channel_names")
    n_channels = data.shape[file_axes.index("C")] if "C" in file_axes else 1
    if names is not None and len(names) != n_channels:
        names = None
    image = Image(data, file_axes, spacing, names)
    return image.as_axes(canonical_axes(file_axes))


def write(path: str | os.PathLike[str], image: Image, *, chunks: Sequence[int] | None = None,
          jpeg_quality: int = 95) -> Path:
    """Write ``image`` to ``path`` in the format its extension names, atomically.

    Parameters
    ----------
    path : str or Path
        Output file (or directory for OME-Zarr); parent directories are created, an old file is replaced.
    image : Image
        Any axes order (written in TCZYX order; TIFF-ImageJ in TZCYX). Dask data are streamed chunk by chunk
        to OME-Zarr; the other formats compute them first.
    chunks : sequence of int, optional
        OME-Zarr chunk shape, one size per axis of the image in TCZYX order (default: the dask chunks, else 1
        along T and C, up to 16 along Z and 256 along Y and X).
    jpeg_quality : int
        JPEG quality, 1-100.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        Unknown extension, an array :func:`check_array` refuses (NaN/Inf included), no Y or X axis, or data the
        format cannot hold (PNG/JPEG: one gray or RGB plane of uint8, PNG also uint16 gray).
    """
    path = Path(path)
    fmt = format_of(path)
    if not isinstance(image, Image):
        raise InputError(f"{path}: write() needs a widefield3d.io.Image, got {type(image).__name__}")
    streaming = fmt == "OME-Zarr" and isinstance(image.data, da.Array)
    if isinstance(image.data, da.Array) and not streaming:
        image = replace(image, data=image.data.compute())
    check_array(image.data, str(path), check_values=not streaming)
    if "Y" not in image.axes or "X" not in image.axes:
        raise InputError(f"{path}: an image needs Y and X axes, got axes '{image.axes}'")
    image = image.as_axes(canonical_axes(image.axes))
    if fmt == "OME-Zarr":
        write_ome_zarr(path, image, chunks)
    elif fmt in ("PNG", "JPEG"):
        write_raster(path, image, fmt, jpeg_quality)
    else:
        {"OME-TIFF": write_ome_tiff, "TIFF": write_imagej_tiff, "NPY": write_npy}[fmt](path, image)
    return path


def write_set(outputs: Sequence[tuple[str | os.PathLike[str], Image]]) -> list[Path]:
    """Write files that belong together (an image and its ``_clean``, ``_truth`` or ``_mip`` companions) so that
    an incomplete set is recognisable: the first, main file is removed, the others are written, and the main file
    is written last. A set whose main file exists is complete; an interrupted one lacks it.

    Parameters
    ----------
    outputs : sequence of (path, Image)
        The main file first. Every path is checked (extension, data) before anything is removed or written.

    Returns
    -------
    list of Path
        The paths, in the order given.
    """
    paths = [Path(p) for p, _ in outputs]
    for path, image in outputs:
        format_of(path)
        if not isinstance(image, Image):
            raise InputError(f"{path}: write_set() needs widefield3d.io.Image values, got {type(image).__name__}")
        check_array(image.data, str(path), check_values=not isinstance(image.data, da.Array))
    if paths:
        remove_path(paths[0])
        if format_of(paths[0]) == "NPY":
            remove_path(sidecar_path(paths[0]))
    for path, image in list(outputs[1:]) + list(outputs[:1]):
        write(path, image)
    return paths
