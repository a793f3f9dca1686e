"""Atomic save and safe load of a full training state (``checkpoint.pt``).

The state is a plain dict of tensors, numbers, strings, lists and dicts (model and optimiser state dicts, scheduler
state, RNG states, counters), written with ``torch.save`` to a temporary sibling that is renamed over the old file,
so a kill at any moment leaves either the previous checkpoint or the new one. Loading uses
``torch.load(weights_only=True)``: no pickle code runs, which is why non-tensor state that pickle would need
(e.g. a numpy ``Generator`` state with 128-bit integers) is stored as JSON text by the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from widefield3d.errors import InputError
from widefield3d.io import atomic_output


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (tensors are moved to CPU first, so the file loads anywhere)."""
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save(_to_cpu(state), tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``, tensors on CPU)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: report it as one line
        raise InputError(f"{path}: unreadable checkpoint ({type(err).__name__}: {str(err).splitlines()[0]})") from None


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
