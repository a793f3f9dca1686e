"""OME-Zarr (NGFF 0.5 on Zarr v3): read, create for tile-by-tile writing, and write (dask data chunk by chunk)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from dask.system import CPU_COUNT

from widefield3d.errors import InputError
from widefield3d.io.atomic import atomic_output
from widefield3d.io.checks import (
    AXES,
    SPATIAL_AXES,
    canonical_axes,
    check_axes,
    check_channel_names,
    check_dtype,
    spacing_dict,
)
from widefield3d.io.image import Image
from widefield3d.io.metadata import RECORD_KEY, Parsed, to_um
from widefield3d.io.read_errors import check_fits

_CHANNEL_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "00FFFF", "FFFF00")
_EVERY_CHUNK = "every_chunk_stored"  # OME-Zarr attribute: the writer stores all chunks, even those of fill value


def read_ome_zarr(path: Path, lazy: bool) -> Parsed:
    """The full-resolution level of an OME-Zarr image with its axes, scale (µm) and ``omero`` labels."""
    try:
        return _read_ome_zarr_unchecked(path, lazy)
    except AttributeError as exc:  # metadata of the wrong shape: a list or a number where NGFF has an object
        raise InputError(f"{path}: not an OME-Zarr image (malformed metadata: {exc})") from exc


def _read_ome_zarr_unchecked(path: Path, lazy: bool) -> Parsed:
    group = zarr.open_group(str(path), mode="r")
    attrs: dict[str, Any] = group.attrs.asdict()
    ome = attrs.get("ome", attrs)
    if not ome.get("multiscales"):
        raise InputError(f"{path}: not an OME-Zarr image (no 'multiscales' metadata)")
    multiscale = ome["multiscales"][0]
    dataset = multiscale["datasets"][0]
    array = group[dataset["path"]]
    if not isinstance(array, zarr.Array):
        raise InputError(f"{path}: not an OME-Zarr image (malformed metadata: dataset {dataset['path']!r} is a group)")
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
        um = to_um(value, unit)
        if axis in SPATIAL_AXES and um is not None:
            spacing[axis] = um
    channels = (ome.get("omero") or {}).get("channels") or []
    labels = [c.get("label") for c in channels]
    _check_chunks(path, array, bool((attrs.get(RECORD_KEY) or {}).get(_EVERY_CHUNK)))
    if not lazy:
        check_fits(path, array.nbytes)
    data = da.from_zarr(array) if lazy else array[...]
    return Parsed(data, axes, spacing, labels if labels and None not in labels else None)


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


def _omero(n_channels: int, names: list[str] | None, low: Sequence[float] | np.ndarray,
           high: Sequence[float] | np.ndarray) -> dict:
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
    dtype = check_dtype(dtype, str(path))
    check_axes(axes, shape, str(path))
    if 0 in shape:
        raise InputError(f"{path}: empty array (shape {shape} has a zero-size dimension)")
    if axes != canonical_axes(axes) or "Y" not in axes or "X" not in axes:
        raise InputError(f"{path}: OME-Zarr axes must be in TCZYX order and include Y and X, got '{axes}'")
    spacing = spacing_dict(spacing_um, f"{path}: spacing_um")
    names = check_channel_names(channel_names, axes, shape, str(path))
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
    group.attrs[RECORD_KEY] = {_EVERY_CHUNK: True}  # a missing chunk then means an interrupted write or copy
    return array


def _finite_block(block: np.ndarray, source: str) -> np.ndarray:
    if not np.isfinite(block).all():
        raise InputError(f"{source}: contains NaN/Inf values (found while writing chunk by chunk); clean or mask "
                         "them first")
    return block


def write_ome_zarr(path: Path, image: Image, chunks: Sequence[int] | None) -> None:
    """Write ``image`` (TCZYX order) as OME-Zarr; dask data chunk by chunk, NaN/Inf refused on the way."""
    data = image.data
    if chunks is None and isinstance(data, da.Array):
        chunks = tuple(int(c) for c in data.chunksize)
    not_channel = tuple(i for i, a in enumerate(image.axes) if a != "C")
    with atomic_output(path) as tmp:
        array = create_ome_zarr(tmp, data.shape, data.dtype, image.axes, image.spacing_um, chunks,
                                image.channel_names, name=path.name)
        if isinstance(data, da.Array):
            data = data.rechunk(array.chunks)  # one dask block per zarr chunk: no two writers share a chunk
            if data.dtype.kind == "f":
                data = data.map_blocks(_finite_block, source=str(path), dtype=data.dtype)
            stored = data.store(array, lock=False, compute=False)
            # our own pool, left only when its tasks have ended: after a failing block (NaN) no chunk writer still
            # running can recreate part of the temporary that atomic_output then deletes
            with ThreadPoolExecutor(max_workers=CPU_COUNT) as pool:
                _, low, high = dask.compute(stored, data.min(axis=not_channel), data.max(axis=not_channel),
                                            scheduler="threads", pool=pool)
        else:
            array[...] = data
            low, high = data.min(axis=not_channel), data.max(axis=not_channel)
        group = zarr.open_group(str(tmp), mode="r+")
        attrs: dict[str, Any] = group.attrs.asdict()
        n_channels = int(np.size(low))
        omero = _omero(n_channels, image.channel_names, np.ravel(low), np.ravel(high))
        group.attrs["ome"] = {**attrs["ome"], "omero": omero}
