"""Calcium activity of each neuron: F_i(t) from its mask, dF = F - F0, and the most active neurons."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from widefield3d.errors import InputError


def brightest_mean(stacks: np.ndarray, labels: np.ndarray, n_brightest: int = 100) -> np.ndarray:
    """``F_i(t)``: mean of the ``n_brightest`` brightest voxels of mask ``i`` in each frame (paper: 100).

    Parameters
    ----------
    stacks : ndarray, ``(T, Z, Y, X)``
        The activity channel.
    labels : ndarray of int, ``(Z, Y, X)``
        Neuron ``i`` is label ``i + 1``; a mask with fewer voxels than ``n_brightest`` uses all of them.
    n_brightest : int

    Returns
    -------
    ndarray of float64, ``(N, T)`` with ``N = labels.max()``; NaN for an empty label.
    """
    stacks = np.asarray(stacks)
    labels = np.asarray(labels)
    if stacks.ndim != 4 or stacks.shape[1:] != labels.shape:
        raise InputError(f"brightest_mean: stacks (T, Z, Y, X) {stacks.shape} must match labels {labels.shape}")
    if n_brightest < 1:
        raise InputError(f"n_brightest must be >= 1, got {n_brightest}")
    flat = labels.ravel()
    inside = np.flatnonzero(flat > 0)
    order = inside[np.argsort(flat[inside], kind="stable")]
    n = int(labels.max()) if labels.size else 0
    bounds = np.searchsorted(flat[order], np.arange(1, n + 2))
    out = np.full((n, len(stacks)), np.nan)
    for t, volume in enumerate(stacks):
        values = volume.ravel()[order].astype(np.float64)
        for i in range(n):
            v = values[bounds[i]:bounds[i + 1]]
            if v.size:
                k = min(n_brightest, v.size)
                out[i, t] = np.partition(v, v.size - k)[v.size - k:].mean()
    return out


def smooth_in_time(f: np.ndarray, frames: int) -> np.ndarray:
    """Each row of ``F`` ``(N, T)`` averaged over a centred window of ``frames`` frames (the ends repeat the first
    and last frame; ``frames = 1``: unchanged). Ours, not the paper's: it damps the frame-to-frame noise that Deep-Z
    adds to each frame's virtual stack (docs/activity.md, "Where the trace noise comes from")."""
    if frames < 1:
        raise InputError(f"smooth_in_time: frames must be at least 1, got {frames}")
    f = np.asarray(f, np.float64)
    return f if frames == 1 else uniform_filter1d(f, frames, axis=1, mode="nearest")


def delta_f(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``dF = F - F0`` and ``F0`` (the time average of each row of ``F``, shape ``(N, T)``)."""
    f = np.asarray(f, np.float64)
    f0 = f.mean(axis=1)
    return f - f0[:, None], f0


def most_active(df: np.ndarray, f0: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Neurons whose activity varies: ``std_t(dF_i) > threshold * F0_i`` (boolean ``(N,)``).

    The paper thresholds ``std(dF)``; dividing by ``F0`` makes one threshold fit dim and bright neurons alike.
    """
    df = np.asarray(df, np.float64)
    f0 = np.asarray(f0, np.float64)
    return df.std(axis=1) > threshold * np.abs(f0)
