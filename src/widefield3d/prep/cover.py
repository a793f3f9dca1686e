"""Greedy cover of a foreground mask by square patches (Deep-Z's 256 x 256 training regions).

The paper: "a customized greedy algorithm was used to determine a minimal set of regions with 256 x 256 pixels
that covered this mask, with ~5% area overlaps between these training regions". Here: the classic greedy set
cover. Candidate corners lie on a grid of step ``step_px`` (plus the last position that touches the far edge,
so every pixel can be reached). At every round the candidate that covers the most still-uncovered mask pixels
wins, among the candidates whose overlap with every chosen patch is at most ``overlap`` of a patch's area;
only when no such candidate covers anything new may a patch overlap more (so the cover is always complete).
Counts come from a summed-area table, so a round costs one pass over the image.
"""

from __future__ import annotations

import numpy as np

from widefield3d.errors import InputError


def _positions(n: int, patch: int, step: int) -> np.ndarray:
    last = n - patch
    return np.unique(np.append(np.arange(0, last + 1, step), last))


def _window_sums(uncovered: np.ndarray, ys: np.ndarray, xs: np.ndarray, patch: int) -> np.ndarray:
    sat = np.zeros((uncovered.shape[0] + 1, uncovered.shape[1] + 1), dtype=np.int64)
    sat[1:, 1:] = uncovered.cumsum(0).cumsum(1)
    y0, x0 = ys[:, None], xs[None, :]
    return sat[y0 + patch, x0 + patch] - sat[y0, x0 + patch] - sat[y0 + patch, x0] + sat[y0, x0]


def patch_cover(mask, patch: int = 256, overlap: float = 0.05, *, step_px: int | None = None) -> list[tuple[int, int]]:
    """Corners ``(y0, x0)`` of a small set of ``patch x patch`` squares covering every True pixel of ``mask``.

    Parameters
    ----------
    mask : array_like of bool
        ``(Y, X)`` foreground mask (:func:`widefield3d.prep.mask.foreground_mask`), at least ``patch`` on a side.
    patch : int
        Side of a patch, pixels.
    overlap : float
        Largest overlap of a new patch with any chosen one, as a fraction of the patch area, while the
        mask can still be covered within it (paper: ~5%).
    step_px : int, optional
        Step of the candidate grid, pixels (default ``patch // 16``, at least 1).

    Returns
    -------
    list of (int, int)
        Corners (greedy: in the order chosen, most foreground first); every patch lies inside the image. Empty
        for an empty mask.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise InputError(f"mask: must be 2D, got shape {m.shape}")
    m = m.astype(bool)
    if patch < 1 or min(m.shape) < patch:
        raise InputError(f"patch: {patch} px does not fit in the mask of shape {m.shape}")
    if not 0 <= overlap < 1:
        raise InputError(f"overlap: must lie in [0, 1), got {overlap!r}")
    step = max(1, patch // 16) if step_px is None else int(step_px)
    if not 1 <= step <= patch:
        raise InputError(f"step_px: must lie in [1, patch], got {step_px!r}")
    ys, xs = _positions(m.shape[0], patch, step), _positions(m.shape[1], patch, step)
    cy, cx = np.meshgrid(ys, xs, indexing="ij")
    allowed_overlap = np.ones(cy.shape, dtype=bool)
    uncovered = m.copy()
    corners: list[tuple[int, int]] = []
    while uncovered.any():
        gain = _window_sums(uncovered, ys, xs, patch)
        within = np.where(allowed_overlap, gain, 0)
        best = within if within.max() > 0 else gain
        iy, ix = np.unravel_index(int(np.argmax(best)), best.shape)
        y0, x0 = int(ys[iy]), int(xs[ix])
        corners.append((y0, x0))
        uncovered[y0 : y0 + patch, x0 : x0 + patch] = False
        shared = np.clip(patch - np.abs(cy - y0), 0, None) * np.clip(patch - np.abs(cx - x0), 0, None)
        allowed_overlap &= shared <= overlap * patch * patch
    grid = _tiling(m, patch)
    return grid if len(grid) < len(corners) else corners


def _tiling(mask: np.ndarray, patch: int) -> list[tuple[int, int]]:
    """Non-overlapping tiles from the mask's bounding box (the last row/column moved inside), touching the mask."""
    if not mask.any():
        return []
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    ys = [min(y, mask.shape[0] - patch) for y in range(rows[0], rows[-1] + 1, patch)]
    xs = [min(x, mask.shape[1] - patch) for x in range(cols[0], cols[-1] + 1, patch)]
    return [(y, x) for y in ys for x in xs if mask[y : y + patch, x : x + patch].any()]
