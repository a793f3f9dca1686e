"""All-or-nothing outputs: write to a hidden temporary sibling, rename it over the target on success.

A process killed outright leaves its temporary behind; the next write to the same folder removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path


def remove_path(path: Path) -> None:
    """Delete a file, a link or a folder tree; a missing path is fine."""
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
    cleaned: list[Path] = []
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
                remove_path(stale)
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
    On any exception, KeyboardInterrupt included, the temporary is deleted and the exception re-raised, so
    ``path`` is either the old content or the complete new one. Missing parent directories are created. A process
    killed outright (SIGKILL, power cut) cannot clean up; its temporaries are removed by the next write to the same
    folder (:func:`remove_stale_temporaries`).

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
        remove_path(tmp)
        if err.filename is not None and Path(err.filename) == tmp and err.errno is not None:
            raise type(err)(err.errno, err.strerror, str(path)) from err  # name the output, not the temporary
        raise
    except BaseException:
        remove_path(tmp)
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
    remove_path(backup)
