"""Training-time augmentation shared by the methods."""

from __future__ import annotations

import numpy as np


def random_dihedral(rng: np.random.Generator, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Apply one random element of the 8 flips / 90-degree rotations of the last two (Y, X) axes to every array.

    Draws ``k = rng.integers(4)`` quarter turns, then ``rng.integers(2)`` for a flip of the last axis, so input and
    target of a training pair stay aligned. Square patches are expected (a quarter turn swaps Y and X).
    Returns contiguous arrays.
    """
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = []
    for a in arrays:
        a = np.rot90(a, turns, axes=(-2, -1))
        out.append(np.ascontiguousarray(a[..., ::-1] if flip else a))
    return tuple(out)
