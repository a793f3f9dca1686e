"""Compute devices: one place that turns ``"auto" | "cpu" | "cuda[:N]"`` into a ``torch.device``."""

from __future__ import annotations

import torch

from widefield3d.errors import InputError


def resolve_device(device: str | torch.device, where: str = "device") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is checked and returned as a ``torch.device``.

    ``where`` names the caller in the one-line error (e.g. ``"predict_tiled"`` or ``"--device"``).
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError):
            raise InputError(f"{where}: device={device!r} is not 'auto', 'cpu' or 'cuda[:N]'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"{where}: device={device!r} but CUDA is not available; use 'cpu' or 'auto'")
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"{where}: device={device!r} is not 'auto', 'cpu' or 'cuda[:N]'")
    return resolved
