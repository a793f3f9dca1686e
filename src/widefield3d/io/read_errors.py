"""How a file that cannot be read becomes one :class:`~widefield3d.errors.InputError` line: a damaged file, no
access, or more pixels than memory holds."""

from __future__ import annotations

import contextlib
import logging
import struct
import tokenize
import zlib
from collections.abc import Iterator
from pathlib import Path

from widefield3d import memory
from widefield3d.errors import InputError

# what tifffile, zarr, numcodecs, PIL, numpy and ElementTree (ParseError is a SyntaxError) raise on damaged files
# (struct.error: tifffile on a damaged IFD; tokenize.TokenError: numpy on a damaged .npy header; an
# AssertionError counts when a format library raises it)
_LIBRARY_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, RuntimeError, SyntaxError,
                   ArithmeticError, struct.error, tokenize.TokenError, zlib.error)


class _ErrorLog(logging.Handler):
    """Collects the errors tifffile logs instead of raising (e.g. a truncated IFD chain)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def unreadable_as_input_error(path: Path, fmt: str) -> Iterator[None]:
    """Turn what a format library raises (or tifffile logs) on a damaged or inaccessible file into one InputError
    line naming ``path``; other errors pass through."""
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


_FORMAT_LIBRARIES = ("tifffile", "zarr", "numcodecs", "imagecodecs", "PIL", "numpy", "dask", "bioio", "bioio_base",
                     "bioio_czi", "bioio_nd2", "bioio_lif", "bioio_ome_tiff", "bioio_ome_zarr", "nd2", "liffile",
                     "aicspylibczi", "pylibCZIrw")


def _raised_by_a_library(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is in a format library (tifffile, zarr, PIL, numpy, ...)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = "" if tb is None else str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in _FORMAT_LIBRARIES


def check_fits(path: Path, n_bytes: int) -> None:
    """Refuse to load an image larger than the available memory (before the allocation, not by running out)."""
    available = memory.available_memory()
    if available is not None and n_bytes > available:
        raise InputError(f"{path}: too large to load ({n_bytes / 2**30:.3g} GiB, {available / 2**30:.3g} GiB of "
                         "memory available); read it lazily or convert it to OME-Zarr")
