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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import struct
import tokenize
import uuid
import warnings
import xml.etree.ElementTree as ElementTree
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
from dask.system import CPU_COUNT
import numpy as np
import tifffile
import zarr
from PIL import Image as PILImage
from PIL import PngImagePlugin

from widefield3d.errors import InputError

__all__ = [
    "AXES",
    "SUPPORTED_EXTENSIONS",
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

AXES = "TCZYX"
"""Allowed axis letters, in the canonical order of images read back."""
SPATIAL_AXES = "ZYX"

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

_RECORD_KEY = "widefield3d"
_IMAGEJ_DTYPES = {np.dtype(t) for t in ("uint8", "uint16", "int16", "float32")}
_UM_PER_UNIT = {
    "µm": 1.0, "\u03bcm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "\\u00b5m": 1.0, "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "mm": 1e3, "millimeter": 1e3,
    "millimetre": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6,
    "å": 1e-4, "angstrom": 1e-4, "inch": 25400.0,
}
_CHANNEL_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "00FFFF", "FFFF00")
# what tifffile, zarr, numcodecs, PIL, numpy and ElementTree (ParseError is a SyntaxError) raise on damaged files
_EVERY_CHUNK = "every_chunk_stored"  # OME-Zarr attribute: the writer stores all chunks, even those of fill value
# (struct.error: tifffile on a damaged IFD; tokenize.TokenError: numpy on a damaged .npy header; an
# AssertionError counts when a format library raises it)
_LIBRARY_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, RuntimeError, SyntaxError,
                   ArithmeticError, struct.error, tokenize.TokenError, zlib.error)


# ---------------------------------------------------------------------------------------------------------------
# checks shared with other modules


def require_ndim(image_or_array: Any, allowed: Iterable[int], name: str) -> None:
    """Raise InputError unless the array (or ``Image.data``) has one of the ``allowed`` numbers of dimensions.

    Parameters
    ----------
    image_or_array : Image, numpy.ndarray, dask.array.Array or anything with ``ndim`` and ``shape``
    allowed : iterable of int
        Accepted numbers of dimensions, e.g. ``{2, 3}``.
    name : str
        The file or argument named in the message.
    """
    data = image_or_array.data if isinstance(image_or_array, Image) else image_or_array
    allowed = sorted(set(allowed))
    if data.ndim not in allowed:
        contiguous = len(allowed) > 2 and allowed == list(range(allowed[0], allowed[-1] + 1))
        wanted = f"{allowed[0]}-D to {allowed[-1]}-D" if contiguous else " or ".join(f"{n}-D" for n in allowed)
        raise InputError(f"{name}: expected a {wanted} array, got {data.ndim}-D with shape {tuple(data.shape)}")


def check_array(data: Any, name: str, *, ndim: Iterable[int] = (1, 2, 3, 4, 5), check_values: bool = True) -> None:
    """Raise InputError if ``data`` cannot be an image: wrong dtype, number of dimensions, size or values.

    Checks, in order: a real numeric dtype (integers or floats; bool, complex, object and strings are refused),
    ``data.ndim in ndim``, no zero-size dimension, and (when ``check_values``) no NaN or Inf.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
    name : str
        The file or argument named in the message.
    ndim : iterable of int
        Accepted numbers of dimensions (default 1 to 5).
    check_values : bool
        Look for NaN/Inf. On a dask array this reads every chunk once.
    """
    dtype = _check_dtype(data.dtype, name)
    require_ndim(data, ndim, name)
    if 0 in data.shape:
        raise InputError(f"{name}: empty array (shape {tuple(data.shape)} has a zero-size dimension)")
    if check_values and dtype.kind == "f":
        finite = da.isfinite(data) if isinstance(data, da.Array) else np.isfinite(data)
        n_bad = int(np.asarray((~finite).sum()))
        if n_bad:
            raise InputError(f"{name}: contains {n_bad} NaN/Inf values; clean or mask them first")


def _check_dtype(dtype: Any, name: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise InputError(f"{name}: dtype bool is not supported; store masks as uint8 (mask.astype(np.uint8))")
    if dtype.kind not in "iuf":
        raise InputError(f"{name}: dtype {dtype} is not a real number type; use uint8, uint16, int16, float32 "
                         "or float64")
    return dtype


def _check_letters(axes: Any, name: str) -> str:
    if not isinstance(axes, str) or not axes:
        raise InputError(f"{name}: axes must be a non-empty string over {AXES} such as 'ZYX', got {axes!r}")
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        raise InputError(f"{name}: axes '{axes}' contain {''.join(unknown)!r}; use letters from {AXES}")
    repeated = sorted({a for a in axes if axes.count(a) > 1})
    if repeated:
        raise InputError(f"{name}: axes '{axes}' repeat {''.join(repeated)!r}")
    return axes


def check_axes(axes: Any, shape: Sequence[int], name: str) -> str:
    """Return ``axes`` if it is a valid axes string for data of this shape, else raise InputError.

    Valid means unique letters from ``TCZYX``, one per dimension.
    """
    _check_letters(axes, name)
    if len(axes) != len(shape):
        raise InputError(f"{name}: axes '{axes}' name {len(axes)} dimensions but the data have {len(shape)} "
                         f"(shape {tuple(shape)})")
    return axes


def canonical_axes(axes: str) -> str:
    """The letters of ``axes`` in ``TCZYX`` order, e.g. ``'YXC'`` -> ``'CYX'``."""
    return "".join(a for a in AXES if a in axes)


def _spacing_dict(spacing: Mapping[str, float] | Sequence[float] | None, name: str) -> dict[str, float]:
    """Spacing as ``{'Z': dz, 'Y': dy, 'X': dx}`` (µm) from a mapping or a ``(dz, dy, dx)`` sequence."""
    if spacing is None:
        return {}
    if not isinstance(spacing, Mapping):
        values = list(spacing)
        if len(values) != 3:
            raise InputError(f"{name}: spacing must be a mapping over Z, Y, X or a (dz, dy, dx) triple, "
                             f"got {spacing!r}")
        spacing = dict(zip(SPATIAL_AXES, values))
    result = {}
    for key, value in spacing.items():
        axis = str(key).upper()
        if axis not in SPATIAL_AXES:
            raise InputError(f"{name}: spacing key {key!r} is not one of Z, Y, X")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{name}: spacing of {axis} must be a number of µm, got {value!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"{name}: spacing of {axis} must be a positive finite number of µm, got {value}")
        result[axis] = value
    return result


def _check_channel_names(names: Any, axes: str, shape: Sequence[int], name: str) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{name}: channel_names must be a list of strings, got {names!r}")
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    if len(names) != n_channels:
        raise InputError(f"{name}: {len(names)} channel names for {n_channels} channel(s) "
                         f"(axes '{axes}', shape {tuple(shape)})")
    return list(names)


# ---------------------------------------------------------------------------------------------------------------
# the image


@dataclass(eq=False)
class Image:
    """Pixel data with axes, physical spacing and channel names.

    Parameters
    ----------
    data : numpy.ndarray or dask.array.Array
        The pixels (anything else is converted with ``numpy.asarray``).
    axes : str
        One unique letter from ``TCZYX`` per dimension, in data order, e.g. ``'ZYX'``, ``'CYX'`` (RGB: C=3).
    spacing_um : dict of str to float, or (dz, dy, dx)
        Pixel spacing in µm, keyed by ``'Z'``, ``'Y'``, ``'X'``. Kept for the spatial axes of ``axes`` only;
        one without a value gets 1.0.
    channel_names : list of str, optional
        One name per index of the C axis (one name if there is no C axis).
    """

    data: Any
    axes: str
    spacing_um: dict[str, float] | Sequence[float] | None = None
    channel_names: list[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, da.Array):
            self.data = np.asarray(self.data)
        self.axes = check_axes(self.axes, self.data.shape, "Image")
        given = _spacing_dict(self.spacing_um, "Image.spacing_um")
        self.spacing_um = {a: given.get(a, 1.0) for a in SPATIAL_AXES if a in self.axes}
        self.channel_names = _check_channel_names(self.channel_names, self.axes, self.data.shape, "Image")

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        """``(dz, dy, dx)`` in µm, 1.0 where unknown."""
        dz, dy, dx = (self.spacing_um.get(a, 1.0) for a in SPATIAL_AXES)
        return dz, dy, dx

    def as_axes(self, target: str) -> Image:
        """The same image with axes ``target``: reordered, with singleton axes inserted or removed.

        ``Image(stack, 'ZYX').as_axes('CZYX')`` adds a C axis of size 1; an axis missing from ``target`` must have
        size 1. Numpy data stay views; dask data stay lazy.
        """
        _check_letters(target, f"Image.as_axes({target!r})")
        for axis, size in zip(self.axes, self.data.shape):
            if axis not in target and size != 1:
                raise InputError(f"Image.as_axes({target!r}): cannot drop axis {axis} of size {size} "
                                 f"(axes '{self.axes}', shape {tuple(self.data.shape)})")
        data = self.data[tuple(slice(None) if a in target else 0 for a in self.axes)]
        kept = [a for a in self.axes if a in target]
        added = [a for a in target if a not in self.axes]
        data = data[(Ellipsis,) + (None,) * len(added)]
        order = kept + added
        data = data.transpose([order.index(a) for a in target])
        names = None if self.channel_names is None else list(self.channel_names)
        return replace(self, data=data, axes=target, spacing_um=dict(self.spacing_um), channel_names=names)

    def transpose_to(self, axes: str) -> Image:
        """The same image with its axes reordered to ``axes``, which must hold exactly the same letters."""
        if sorted(axes) != sorted(self.axes):
            raise InputError(f"Image.transpose_to({axes!r}): not a reordering of the axes '{self.axes}'")
        return self.as_axes(axes)


# ---------------------------------------------------------------------------------------------------------------
# atomic output


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
# .tmp-<random>.<host>.<pid>-<name> (a temporary being written) and .old-... (an old folder being replaced)
_OURS = re.compile(r"^\.(tmp|old)-[0-9a-f]{8}\.([0-9a-f]{6})\.(\d+)-(.+)$")


def _sibling(kind: str, token: str, path: Path) -> Path:
    return path.with_name(f".{kind}-{token}.{_HOST}.{os.getpid()}-{path.name}")


def _process_gone(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there; leave the temporaries
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, another user's
        return False
    return False


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries :func:`atomic_output` left in ``folder`` when its process was killed.

    Only names of our own pattern (``.tmp-<random>.<host>.<pid>-<name>``) written on this machine by a process
    that no longer runs are touched. An ``.old-...`` copy (an old folder output moved aside while the new one was
    renamed in) is renamed back when its output is missing, else deleted. Called by every :func:`atomic_output`,
    so the next write to a folder cleans it up.

    Returns
    -------
    list of Path
        What was deleted or restored.
    """
    folder = Path(folder)
    cleaned = []
    try:
        entries = [e.name for e in os.scandir(folder) if e.name.startswith((".tmp-", ".old-"))]
    except OSError:
        return cleaned
    for name in entries:
        match = _OURS.match(name)
        if not match or match[2] != _HOST or not _process_gone(int(match[3])):
            continue
        stale, target = folder / name, folder / match[4]
        try:
            if match[1] == "old" and not (target.exists() or target.is_symlink()):
                os.rename(stale, target)
            else:
                _remove(stale)
        except OSError:
            continue
        cleaned.append(stale)
    return cleaned


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a hidden temporary sibling of ``path`` to write to; rename it over ``path`` on success.

    The temporary lives in the same directory (``.tmp-<random>.<host>.<pid>-<name>``, keeping the extension),
    so the rename is atomic for files (``os.replace``). A directory (e.g. ``.zarr``) replaces an old one by
    moving the old one aside, renaming the new one in, then deleting the old one (restored if the rename fails).
    On any exception, KeyboardInterrupt included, the temporary is deleted and the exception re-raised, so ``path`` is either the
    old content or the complete new one. Missing parent directories are created. A process killed outright
    (SIGKILL, power cut) cannot clean up; its temporaries are removed by the next write to the same folder
    (:func:`remove_stale_temporaries`).

    Examples
    --------
    >>> with atomic_output("model/weights.safetensors") as tmp:  # doctest: +SKIP
    ...     save_file(tensors, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    token = uuid.uuid4().hex[:8]
    tmp = _sibling("tmp", token, path)
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise FileNotFoundError(f"{path}: nothing was written to the temporary {tmp.name}")
        if tmp.is_dir() or path.is_dir():
            _swap_in(tmp, path, _sibling("old", token, path))
        else:
            os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        if err.filename is not None and Path(err.filename) == tmp and err.errno is not None:
            raise type(err)(err.errno, err.strerror, str(path)) from err  # name the output, not the temporary
        raise
    except BaseException:
        _remove(tmp)
        raise


def _swap_in(new: Path, path: Path, backup: Path) -> None:
    if not (path.exists() or path.is_symlink()):
        os.rename(new, path)
        return
    os.rename(path, backup)
    try:
        os.rename(new, path)
    except BaseException:
        os.rename(backup, path)
        raise
    _remove(backup)


# ---------------------------------------------------------------------------------------------------------------
# read


@dataclass
class _Parsed:
    """What a format reader found, before the common checks: data in file layout and the known metadata."""

    data: Any
    axes: str | None  # None: guess from the shape
    spacing: dict[str, float]  # known values only
    channel_names: list[str] | None = None
    record: dict[str, Any] | None = None


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


class _ErrorLog(logging.Handler):
    """Collects the errors tifffile logs instead of raising (e.g. a truncated IFD chain)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _unreadable_as_input_error(path: Path, fmt: str) -> Iterator[None]:
    log = _ErrorLog()
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(log)
    try:
        yield
        if log.messages:
            raise InputError(f"{path}: corrupt or truncated {fmt} file ({log.messages[0].splitlines()[0]})")
    except InputError:
        raise
    except (PermissionError, IsADirectoryError, NotADirectoryError) as exc:  # the file is fine, access is not
        raise InputError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from exc
    except AssertionError as exc:
        if not _raised_by_a_library(exc):
            raise
        raise InputError(f"{path}: corrupt or truncated {fmt} file (a consistency check of the reader failed)") \
            from exc
    except _LIBRARY_ERRORS as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(f"{path}: corrupt or truncated {fmt} file ({detail})") from exc
    finally:
        tiff_logger.removeHandler(log)


_FORMAT_LIBRARIES = ("tifffile", "zarr", "numcodecs", "imagecodecs", "PIL", "numpy", "dask")


def _raised_by_a_library(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is in a format library (tifffile, zarr, PIL, numpy, ...)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = "" if tb is None else str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in _FORMAT_LIBRARIES


def _um(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to µm (None for an unknown unit); no unit means µm."""
    factor = 1.0 if unit is None else _UM_PER_UNIT.get(unit.strip().lower())
    return None if factor is None else float(value) * factor


def _record_json(axes: str, shape: Sequence[int], spacing: Mapping[str, float], names: list[str] | None) -> str:
    """The exact metadata record for an array of ``shape`` handed to a format library with ``axes``."""
    return json.dumps({_RECORD_KEY: 1, "axes": axes, "shape": [int(s) for s in shape],
                       "spacing_um": dict(spacing), "channel_names": names})


def _parse_record(text: str | bytes | None, path: Path) -> dict[str, Any] | None:
    """The record if ``text`` is one (other programs' comments give None); raise if ours is damaged."""
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or _RECORD_KEY not in record:
        return None
    try:
        record["axes"] = str(record["axes"])
        record["shape"] = [int(s) for s in record["shape"]]
        record["spacing_um"] = _spacing_dict(record.get("spacing_um"), "record")
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: corrupt widefield3d metadata record ({exc})") from exc
    return record


def _check_fits(path: Path, n_bytes: int) -> None:
    """Refuse to load an image larger than the available memory (before the allocation, not by running out)."""
    from widefield3d.checks import available_memory

    available = available_memory()
    if available is not None and n_bytes > available:
        raise InputError(f"{path}: too large to load ({n_bytes / 2**30:.3g} GiB, {available / 2**30:.3g} GiB of "
                         "memory available); read it lazily or convert it to OME-Zarr")


def _guess_axes(shape: Sequence[int]) -> str:
    """Axes for data without usable axes metadata: 3-D or 4-D with 3 or 4 last -> (Z)YXC, else TCZYX's tail."""
    if len(shape) in (3, 4) and shape[-1] in (3, 4):
        return "ZYXC"[-len(shape):]
    return AXES[-len(shape):]


def _check_ome_planes(tif: tifffile.TiffFile, path: Path) -> None:
    """Refuse OME-XML that describes more planes than the file holds, before tifffile lists them (1e9 planes
    claimed by a damaged SizeZ would take it gigabytes). Multi-file datasets (TiffData with a FileName) pass."""
    root = ElementTree.fromstring(tif.ome_metadata)
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


def _read_tiff(path: Path, lazy: bool) -> _Parsed:
    with tifffile.TiffFile(path) as tif:
        if tif.is_ome:
            _check_ome_planes(tif, path)
        series = tif.series[0]
        for flavour, is_flavour in (("ome", tif.is_ome), ("imagej", tif.is_imagej)):
            if is_flavour and series.kind != flavour:
                raise InputError(f"{path}: corrupt or truncated TIFF file ({flavour} metadata describe "
                                 "more data than the file holds)")
        if tif.is_ome:
            described, held = sum(len(s.pages) for s in tif.series), len(tif.pages)
            if described < held:
                raise InputError(f"{path}: contradictory OME-TIFF metadata (the OME-XML describes {described} "
                                 f"planes, the file holds {held}); fix its OME-XML (Size, DimensionOrder)")
            parsed = _ome_metadata(tif.ome_metadata, path)
        elif tif.is_imagej:
            parsed = _imagej_metadata(tif, series, path)
        else:
            parsed = _Parsed(None, None, _plain_tiff_spacing(tif.pages.first))
        axes = series.axes
        if (tif.is_ome or tif.is_imagej) and not ("S" in axes and "C" in axes) and set(axes) <= set(AXES + "S"):
            parsed.axes = axes.replace("S", "C")  # else: plain TIFF, or letters like Q or I: guess from the shape
        if not lazy:
            _check_fits(path, math.prod(series.shape) * np.dtype(series.dtype).itemsize)
        parsed.data = None if lazy else series.asarray()
        shape = series.shape
    if lazy:
        store = tifffile.imread(path, aszarr=True, series=0, level=0)
        parsed.data = da.from_zarr(zarr.open_array(store, mode="r")).reshape(shape)
    return parsed


def _ome_metadata(xml: str, path: Path) -> _Parsed:
    root = ElementTree.fromstring(xml)
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels")), None)
    if pixels is None:
        raise InputError(f"{path}: corrupt OME-TIFF file (no Pixels element in its OME-XML)")
    spacing = {}
    for axis in "XYZ":
        value = pixels.get(f"PhysicalSize{axis}")
        um = None if value is None else _um(float(value), pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        if um is not None:
            spacing[axis] = um
    names = [c.get("Name") for c in pixels if c.tag.endswith("}Channel")]
    record = None
    for annotation in root.iter():
        if annotation.tag.endswith("}MapAnnotation") and annotation.get("Namespace") == _RECORD_KEY:
            record = next((m.text for m in annotation.iter() if m.tag.endswith("}M") and m.get("K") == "record"),
                          None)
    return _Parsed(None, None, spacing, names if names and None not in names else None, _parse_record(record, path))


def _imagej_metadata(tif: tifffile.TiffFile, series: tifffile.TiffPageSeries, path: Path) -> _Parsed:
    meta = tif.imagej_metadata or {}
    factor = _um(1.0, str(meta["unit"])) if "unit" in meta else None  # no unit: ImageJ calls it uncalibrated
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
    record = _parse_record((meta.get("Properties") or {}).get(_RECORD_KEY), path)
    return _Parsed(None, None, spacing, names, record)


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


def _read_ome_zarr(path: Path, lazy: bool) -> _Parsed:
    try:
        return _read_ome_zarr_unchecked(path, lazy)
    except AttributeError as exc:  # metadata of the wrong shape: a list or a number where NGFF has an object
        raise InputError(f"{path}: not an OME-Zarr image (malformed metadata: {exc})") from exc


def _read_ome_zarr_unchecked(path: Path, lazy: bool) -> _Parsed:
    group = zarr.open_group(str(path), mode="r")
    attrs = group.attrs.asdict()
    ome = attrs.get("ome", attrs)
    if not ome.get("multiscales"):
        raise InputError(f"{path}: not an OME-Zarr image (no 'multiscales' metadata)")
    multiscale = ome["multiscales"][0]
    dataset = multiscale["datasets"][0]
    array = group[dataset["path"]]
    entries = multiscale.get("axes") or list(AXES[-array.ndim:].lower())
    names = [(a["name"] if isinstance(a, dict) else a) for a in entries]
    units = [(a.get("unit") if isinstance(a, dict) else None) for a in entries]
    axes = check_axes("".join(n.upper() for n in names), array.shape, f"{path}: multiscales axes")
    scale = np.ones(array.ndim)
    for transform in dataset.get("coordinateTransformations", []) + multiscale.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            scale = scale * np.asarray(transform["scale"], dtype=float)
    spacing = {}
    for axis, value, unit in zip(axes, scale, units):
        um = _um(value, unit)
        if axis in SPATIAL_AXES and um is not None:
            spacing[axis] = um
    channels = (ome.get("omero") or {}).get("channels") or []
    labels = [c.get("label") for c in channels]
    _check_chunks(path, array, bool((attrs.get(_RECORD_KEY) or {}).get(_EVERY_CHUNK)))
    if not lazy:
        _check_fits(path, array.nbytes)
    data = da.from_zarr(array) if lazy else array[...]
    return _Parsed(data, axes, spacing, labels if labels and None not in labels else None)


_MAX_CHUNKS_CHECKED = 10**6


def _check_chunks(path: Path, array: zarr.Array, every_chunk_stored: bool) -> None:
    """Refuse an OME-Zarr written by widefield3d with chunks missing; warn about another writer's missing chunks.

    Zarr reads a chunk that is not stored as its fill value, so a half-written or half-copied image would read as
    zeros. widefield3d stores every chunk (and says so in its attributes), so for its files a missing chunk is an
    interruption; other writers may leave out chunks that hold only the fill value, which is legal.
    """
    total = array.nchunks
    if total > _MAX_CHUNKS_CHECKED:  # zarr lists every expected key: too slow (or a damaged shape: then reading
        return                       # eagerly is refused for its size, and a lazy read fails at the first block)
    stored = array.nchunks_initialized
    if stored >= total:
        return
    missing = f"{total - stored} of {total} chunks of '{array.basename}' are missing"
    if every_chunk_stored:
        raise InputError(f"{path}: incomplete OME-Zarr ({missing}: an interrupted write or copy); write or copy it "
                         "again")
    warnings.warn(f"{path}: {missing} and read as the fill value {array.fill_value} (regions the writer left "
                  "empty, or an interrupted write or copy)", UserWarning, stacklevel=4)


_PIL_MODES = {"1": "L", "P": "RGB", "PA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB",
              "La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}


def _read_pil(path: Path, lazy: bool) -> _Parsed:
    with PILImage.open(path) as picture:
        picture.load()
        info = dict(picture.info)
        mode = "RGBA" if picture.mode == "P" and "transparency" in info else _PIL_MODES.get(picture.mode)
        data = np.asarray(picture.convert(mode) if mode else picture)
    text = info.get("comment") if "comment" in info else info.get(_RECORD_KEY)
    parsed = _Parsed(data, "YX" if data.ndim == 2 else "YXC", {}, record=_parse_record(text, path))
    if lazy:
        parsed.data = da.from_array(data)
    return parsed


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_npy(path: Path, lazy: bool) -> _Parsed:
    data = np.load(path, mmap_mode="r", allow_pickle=False)  # the header, checked against the file's length
    if not lazy:
        _check_fits(path, data.nbytes)
        data = np.array(data)
    sidecar = _sidecar(path)
    record = None
    if sidecar.exists():
        record = _parse_record(sidecar.read_text(encoding="utf-8"), sidecar)
        if record is None:
            raise InputError(f"{sidecar}: not a widefield3d metadata sidecar (expected JSON with axes and spacing)")
    return _Parsed(da.from_array(data) if lazy else data, None, {}, record=record)


_READERS = {"OME-TIFF": _read_tiff, "TIFF": _read_tiff, "OME-Zarr": _read_ome_zarr, "PNG": _read_pil,
            "JPEG": _read_pil, "NPY": _read_npy}


def _merge_spacing(known: dict[str, float], exact: dict[str, float]) -> dict[str, float]:
    """Known spacing, refined by the record's exact values where they agree (1e-6 relative)."""
    merged = dict(known)
    for axis, value in exact.items():
        if axis not in known or math.isclose(known[axis], value, rel_tol=1e-6):
            merged[axis] = value
    return merged


def _usable_spacing(spacing: dict[str, float], path: Path) -> dict[str, float]:
    """The file's pixel sizes that are positive finite numbers; a warning for each other one (then unknown)."""
    usable = {}
    for axis, value in spacing.items():
        if math.isfinite(value) and value > 0:
            usable[axis] = value
        else:
            warnings.warn(f"{path}: ignoring the pixel size {axis} = {value:g} of its metadata (not a positive "
                          "number of µm)", UserWarning, stacklevel=3)
    return usable


_WARNED_SPACING: set[str] = set()


def _warn_unknown_spacing(path: Path, axes: str, shape: Sequence[int], spacing: Mapping[str, float]) -> None:
    """Warn (once per file and process) that spatial axes without a pixel size in the file are taken as 1 µm."""
    unknown = [a for a, n in zip(axes, shape) if a in SPATIAL_AXES and a not in spacing and (n > 1 or a != "Z")]
    key = str(path.absolute())
    if unknown and key not in _WARNED_SPACING:
        _WARNED_SPACING.add(key)
        warnings.warn(f"{path}: no pixel size for {', '.join(unknown)} in the file; taken as 1 µm", UserWarning,
                      stacklevel=3)


def _record_fits(record: dict[str, Any], shape: Sequence[int], axes: str | None, path: Path) -> bool:
    """Whether the record describes these data: the same sizes, and the same axes as the format's own metadata
    where it has axes (singletons aside). Where they contradict each other, the format's fields win (another
    program changed them) and a warning says so."""
    sizes = [n for n in record["shape"] if n != 1]
    if sizes != [n for n in shape if n != 1]:
        return False
    if axes is None or len(axes) != len(shape):
        return True
    ours = "".join(a for a, n in zip(str(record["axes"]), record["shape"]) if n != 1)
    theirs = "".join(a for a, n in zip(axes, shape) if n != 1)
    if ours != theirs:
        warnings.warn(f"{path}: the widefield3d record says axes '{record['axes']}' but the file's metadata say "
                      f"'{axes}'; using the file's", UserWarning, stacklevel=4)
        return False
    return True


def read(path: str | os.PathLike[str], *, lazy: bool = False, axes: str | None = None) -> Image:
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

    Returns
    -------
    Image
        Axes in TCZYX order; spacing in µm (1.0 where the file has none).

    Raises
    ------
    InputError
        Missing file, unknown extension, corrupt or truncated file, more than 5 or 0 dimensions, empty array,
        non-numeric dtype, NaN/Inf (eager reads), or an ``axes`` that does not fit the data.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        raise InputError(f"{path}: file not found")
    fmt = format_of(path)
    with _unreadable_as_input_error(path, fmt):
        parsed = _READERS[fmt](path, lazy)
    data, record = parsed.data, parsed.record
    check_array(data, str(path), check_values=not lazy)
    if axes is not None:
        file_axes = check_axes(axes, data.shape, f"{path} (axes argument)")
    elif record and _record_fits(record, data.shape, parsed.axes, path):
        file_axes = check_axes(record["axes"], record["shape"], f"{path}: metadata record")
        data = data.reshape(record["shape"])  # restores the singleton axes that readers squeeze away
    else:
        file_axes = check_axes(parsed.axes or _guess_axes(data.shape), data.shape, str(path))
    spacing = _merge_spacing(_usable_spacing(parsed.spacing, path), record["spacing_um"] if record else {})
    _warn_unknown_spacing(path, file_axes, data.shape, spacing)
    names = parsed.channel_names or (record or {}).get("channel_names")
    n_channels = data.shape[file_axes.index("C")] if "C" in file_axes else 1
    if names is not None and len(names) != n_channels:
        names = None
    image = Image(data, file_axes, spacing, names)
    return image.as_axes(canonical_axes(file_axes))


# ---------------------------------------------------------------------------------------------------------------
# write


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
        _write_ome_zarr(path, image, chunks)
    elif fmt in ("PNG", "JPEG"):
        _write_pil(path, image, fmt, jpeg_quality)
    else:
        {"OME-TIFF": _write_ome_tiff, "TIFF": _write_imagej_tiff, "NPY": _write_npy}[fmt](path, image)
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
        _remove(paths[0])
        if format_of(paths[0]) == "NPY":
            _remove(_sidecar(paths[0]))
    for path, image in list(outputs[1:]) + list(outputs[:1]):
        write(path, image)
    return paths


def _write_ome_tiff(path: Path, image: Image) -> None:
    if image.data.dtype.itemsize == 8 and image.data.dtype.kind in "iu":
        raise InputError(f"{path}: OME-TIFF cannot hold {image.data.dtype}; convert the data (e.g. to uint32 or "
                         "float64) or write .ome.zarr or .npy")
    record = _record_json(image.axes, image.data.shape, image.spacing_um, image.channel_names)
    metadata: dict[str, Any] = {"axes": image.axes, "MapAnnotation": {"Namespace": _RECORD_KEY, "record": record}}
    for axis, value in image.spacing_um.items():
        metadata[f"PhysicalSize{axis}"] = value
        metadata[f"PhysicalSize{axis}Unit"] = "µm"
    if image.channel_names:
        metadata["Channel"] = {"Name": image.channel_names}
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, image.data, ome=True, photometric="minisblack", metadata=metadata)


def _write_imagej_tiff(path: Path, image: Image) -> None:
    if image.data.dtype not in _IMAGEJ_DTYPES:
        warnings.warn(f"{path}: ImageJ cannot hold {image.data.dtype}; writing bit-exact OME-TIFF into this .tif "
                      "(Fiji opens it through Bio-Formats)", UserWarning, stacklevel=3)
        _write_ome_tiff(path, image)
        return
    order = "".join(a for a in "TZCYX" if a in image.axes)
    image = image.as_axes(order)
    spacing = image.spacing_um
    metadata: dict[str, Any] = {
        "axes": order, "unit": "micron",
        "Properties": {_RECORD_KEY: _record_json(order, image.data.shape, spacing, image.channel_names)},
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


def _write_npy(path: Path, image: Image) -> None:
    record = _record_json(image.axes, image.data.shape, image.spacing_um, image.channel_names)
    with atomic_output(path) as tmp, atomic_output(_sidecar(path)) as tmp_sidecar:
        with open(tmp, "wb") as file:
            np.save(file, np.asarray(image.data), allow_pickle=False)
        tmp_sidecar.write_text(record, encoding="utf-8")


def _write_pil(path: Path, image: Image, fmt: str, jpeg_quality: int) -> None:
    shape = dict(zip(image.axes, image.data.shape))
    n_channels = shape.get("C", 1)
    extra = [a for a in image.axes if a not in "CYX" and shape[a] > 1]
    allowed = {"PNG": {np.dtype("uint8"): (1, 3, 4), np.dtype("uint16"): (1,)}, "JPEG": {np.dtype("uint8"): (1, 3)}}
    if extra or n_channels not in allowed[fmt].get(image.data.dtype, ()):
        raise InputError(f"{path}: {fmt} holds one plane, gray or RGB "
                         f"({'uint8 or uint16 gray, RGB(A) uint8' if fmt == 'PNG' else 'uint8'}); got axes "
                         f"'{image.axes}' with shape {tuple(image.data.shape)} and dtype {image.data.dtype} "
                         "(use .tif, .ome.tif or .ome.zarr)")
    plane_axes = "YXC" if n_channels > 1 else "YX"
    layout = image.as_axes("".join(a for a in image.axes if a not in plane_axes) + plane_axes)
    record = _record_json(layout.axes, layout.data.shape, image.spacing_um, image.channel_names)
    picture = PILImage.fromarray(np.ascontiguousarray(layout.data.reshape(layout.data.shape[-len(plane_axes):])))
    dpi = (25400.0 / image.spacing_um["X"], 25400.0 / image.spacing_um["Y"])
    with atomic_output(path) as tmp:
        if fmt == "PNG":
            text = PngImagePlugin.PngInfo()
            text.add_text(_RECORD_KEY, record)
            picture.save(tmp, format="PNG", pnginfo=text, dpi=dpi)
        else:
            options: dict[str, Any] = {}
            if all(1 <= round(d) <= 65535 for d in dpi):  # JFIF density is 16-bit dots per inch
                options["dpi"] = tuple(round(d) for d in dpi)
            picture.save(tmp, format="JPEG", quality=jpeg_quality, subsampling=0, comment=record, **options)


# ---------------------------------------------------------------------------------------------------------------
# OME-Zarr


def _omero(n_channels: int, names: list[str] | None, low: Sequence[float], high: Sequence[float]) -> dict:
    """NGFF ``omero`` channel metadata: labels, colours and display windows from ``low`` to ``high``."""
    colors = ("FFFFFF",) if n_channels == 1 else _CHANNEL_COLORS
    channels = []
    for c in range(n_channels):
        lo, hi = float(low[c]), float(high[c])
        channel = {"color": colors[c % len(colors)], "active": True,
                   "window": {"min": lo, "max": hi, "start": lo, "end": hi}}
        if names:
            channel["label"] = names[c]
        channels.append(channel)
    return {"channels": channels}


def _default_chunks(shape: Sequence[int], axes: str) -> tuple[int, ...]:
    limit = {"T": 1, "C": 1, "Z": 16, "Y": 256, "X": 256}
    return tuple(min(int(n), limit[a]) for n, a in zip(shape, axes))


def create_ome_zarr(path: str | os.PathLike[str], shape: Sequence[int], dtype: Any, axes: str,
                    spacing_um: Mapping[str, float] | Sequence[float] | None,
                    chunks: Sequence[int] | None = None, channel_names: list[str] | None = None,
                    name: str | None = None) -> zarr.Array:
    """Create an OME-Zarr image (NGFF 0.5) and return its writable full-resolution array.

    The metadata (axes with units, scale in µm, ``omero`` channels) are written now; the array is then written,
    e.g. tile by tile, so results larger than memory can be stored. Every chunk is stored, even one of zeros, and
    the attributes say so: :func:`read` refuses the image until every chunk has been written (a missing chunk
    means an interrupted write or copy). For an all-or-nothing output, create it inside :func:`atomic_output` and
    fill it before the block ends.

    Parameters
    ----------
    path : str or Path
        The ``.ome.zarr`` directory; an existing one is overwritten.
    shape : sequence of int
    dtype : numpy dtype-like
        A real numeric type.
    axes : str
        In TCZYX order (NGFF requires time, channel, then space), with Y and X, e.g. ``'CZYX'``.
    spacing_um : mapping over 'Z', 'Y', 'X', or (dz, dy, dx)
        Pixel spacing in µm (1.0 where absent).
    chunks : sequence of int, optional
        Chunk shape (default: 1 along T and C, up to 16 along Z, 256 along Y and X).
    channel_names : list of str, optional
        One per index of C.
    name : str, optional
        Image name in the metadata (default: the directory name).

    Returns
    -------
    zarr.Array
        The dataset ``s0``, indexed in ``axes`` order.
    """
    path = Path(path)
    shape = tuple(int(n) for n in shape)
    dtype = _check_dtype(dtype, str(path))
    check_axes(axes, shape, str(path))
    if 0 in shape:
        raise InputError(f"{path}: empty array (shape {shape} has a zero-size dimension)")
    if axes != canonical_axes(axes) or "Y" not in axes or "X" not in axes:
        raise InputError(f"{path}: OME-Zarr axes must be in TCZYX order and include Y and X, got '{axes}'")
    spacing = _spacing_dict(spacing_um, f"{path}: spacing_um")
    names = _check_channel_names(channel_names, axes, shape, str(path))
    chunks = _default_chunks(shape, axes) if chunks is None else tuple(int(c) for c in chunks)
    if len(chunks) != len(shape) or min(chunks) < 1:
        raise InputError(f"{path}: chunks {chunks} must give one positive size per axis of '{axes}'")
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    if dtype.kind == "f":
        low, high = [0.0] * n_channels, [1.0] * n_channels
    else:
        low, high = [np.iinfo(dtype).min] * n_channels, [np.iinfo(dtype).max] * n_channels
    with warnings.catch_warnings():  # ome_zarr.writer deprecates its Scaler class at import time
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscales_metadata
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    array = group.create_array("s0", shape=shape, dtype=dtype, chunks=chunks, fill_value=0,
                               dimension_names=[a.lower() for a in axes], config={"write_empty_chunks": True})
    ngff_axes = []
    for a in axes:
        entry = {"name": a.lower(), "type": {"T": "time", "C": "channel"}.get(a, "space")}
        if a in SPATIAL_AXES:
            entry["unit"] = "micrometer"
        ngff_axes.append(entry)
    scale = [spacing.get(a, 1.0) if a in SPATIAL_AXES else 1.0 for a in axes]
    write_multiscales_metadata(
        group, datasets=[{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
        axes=ngff_axes, name=name or path.name, metadata={"omero": _omero(n_channels, names, low, high)})
    group.attrs[_RECORD_KEY] = {_EVERY_CHUNK: True}  # a missing chunk then means an interrupted write or copy
    return array


def _finite_block(block: np.ndarray, source: str) -> np.ndarray:
    if not np.isfinite(block).all():
        raise InputError(f"{source}: contains NaN/Inf values (found while writing chunk by chunk); clean or mask "
                         "them first")
    return block


def _write_ome_zarr(path: Path, image: Image, chunks: Sequence[int] | None) -> None:
    data = image.data
    if chunks is None and isinstance(data, da.Array):
        chunks = data.chunksize
    not_channel = tuple(i for i, a in enumerate(image.axes) if a != "C")
    with atomic_output(path) as tmp:
        array = create_ome_zarr(tmp, data.shape, data.dtype, image.axes, image.spacing_um, chunks,
                                image.channel_names, name=path.name)
        if isinstance(data, da.Array):
            data = data.rechunk(array.chunks)  # one dask block per zarr chunk: no two writers share a chunk
            if data.dtype.kind == "f":
                data = data.map_blocks(_finite_block, source=str(path), dtype=data.dtype)
            stored = da.store(data, array, lock=False, compute=False)
            # our own pool, left only when its tasks have ended: after a failing block (NaN) no chunk writer still
            # running can recreate part of the temporary that atomic_output then deletes
            with ThreadPoolExecutor(max_workers=CPU_COUNT) as pool:
                _, low, high = dask.compute(stored, data.min(axis=not_channel), data.max(axis=not_channel),
                                            scheduler="threads", pool=pool)
        else:
            array[...] = data
            low, high = data.min(axis=not_channel), data.max(axis=not_channel)
        group = zarr.open_group(str(tmp), mode="r+")
        n_channels = int(np.size(low))
        omero = _omero(n_channels, image.channel_names, np.ravel(low), np.ravel(high))
        group.attrs["ome"] = {**group.attrs["ome"], "omero": omero}
