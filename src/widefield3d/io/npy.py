"""NumPy ``.npy`` files, with axes, spacing (µm) and channel names in a JSON sidecar ``<file>.npy.json``."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np

from widefield3d.errors import InputError
from widefield3d.io.atomic import atomic_output
from widefield3d.io.image import Image
from widefield3d.io.metadata import Parsed, parse_record, record_json
from widefield3d.io.read_errors import check_fits


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar of a ``.npy`` file: ``<file>.npy.json``."""
    return path.with_name(path.name + ".json")


def read_npy(path: Path, lazy: bool) -> Parsed:
    """A ``.npy`` array (memory-mapped when ``lazy``) with the record of its sidecar, if any."""
    data = np.load(path, mmap_mode="r", allow_pickle=False)  # the header, checked against the file's length
    if not lazy:
        check_fits(path, data.nbytes)
        data = np.array(data)
    sidecar = sidecar_path(path)
    record = None
    if sidecar.exists():
        record = parse_record(sidecar.read_text(encoding="utf-8"), sidecar)
        if record is None:
            raise InputError(f"{sidecar}: not a widefield3d metadata sidecar (expected JSON with axes and spacing)")
    return Parsed(da.from_array(data) if lazy else data, None, {}, record=record)


def write_npy(path: Path, image: Image) -> None:
    """Write the array and its sidecar, both atomically."""
    record = record_json(image.axes, image.data.shape, image.spacing_um, image.channel_names)
    with atomic_output(path) as tmp, atomic_output(sidecar_path(path)) as tmp_sidecar:
        with open(tmp, "wb") as file:
            np.save(file, np.asarray(image.data), allow_pickle=False)
        tmp_sidecar.write_text(record, encoding="utf-8")
