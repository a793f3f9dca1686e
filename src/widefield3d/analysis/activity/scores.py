"""Scores of an activity analysis against the simulator's truth: detection, traces, clusters."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import comb


def match_neurons(detected_um: np.ndarray, truth_um: np.ndarray, max_distance_um: float = 2.0,
                  lateral_only: bool = False) -> np.ndarray:
    """One-to-one matches ``(M, 2)`` (detected index, truth index) within ``max_distance_um`` (µm).

    Minimum total distance (Hungarian); ``lateral_only`` ignores z (a 2D analysis has no depth).
    """
    a = np.asarray(detected_um, float).reshape(-1, 3)
    b = np.asarray(truth_um, float).reshape(-1, 3)
    if lateral_only:
        a, b = a[:, 1:], b[:, 1:]
    if not len(a) or not len(b):
        return np.zeros((0, 2), int)
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    cost = np.where(d <= max_distance_um, d, 1e6)
    rows, cols = linear_sum_assignment(cost)
    keep = d[rows, cols] <= max_distance_um
    return np.stack([rows[keep], cols[keep]], axis=1)


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labellings of the same items (1 = identical partitions, ~0 = chance)."""
    a, b = np.asarray(a), np.asarray(b)
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1)
    index = comb(table, 2).sum()
    rows, cols = comb(table.sum(axis=1), 2).sum(), comb(table.sum(axis=0), 2).sum()
    expected = rows * cols / comb(len(a), 2) if len(a) > 1 else 0.0
    maximum = (rows + cols) / 2
    return 1.0 if maximum == expected else float((index - expected) / (maximum - expected))


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` with the same row of ``y`` (NaN where one is constant)."""
    x = np.asarray(x, float) - np.mean(x, axis=1, keepdims=True)
    y = np.asarray(y, float) - np.mean(y, axis=1, keepdims=True)
    den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(axis=1) / den, np.nan)


def score_activity(centroids_um, traces, clusters, truth_centres_um, truth_traces, truth_clusters, *,
                   max_distance_um: float = 2.0, lateral_only: bool = False) -> dict:
    """Detection precision/recall, median trace correlation and cluster ARI against the truth.

    Trace correlation: median Pearson r of recovered ``traces`` (``(N, T)``) and true traces over the matched
    neurons that are active in the truth (a silent neuron's true trace is flat noise). ARI: over the matched
    neurons, recovered cluster labels (0 = not active) against the true ones (0 = silent).
    """
    matches = match_neurons(centroids_um, truth_centres_um, max_distance_um, lateral_only)
    n_det, n_true = len(np.asarray(centroids_um).reshape(-1, 3)), len(np.asarray(truth_centres_um).reshape(-1, 3))
    det, tru = matches[:, 0], matches[:, 1]
    truth_clusters = np.asarray(truth_clusters)
    active = truth_clusters[tru] > 0
    r = pearson_rows(np.asarray(traces)[det][active], np.asarray(truth_traces)[tru][active])
    return {
        "detected": n_det, "truth": n_true, "matched": len(matches),
        "precision": len(matches) / n_det if n_det else 0.0, "recall": len(matches) / n_true if n_true else 0.0,
        "trace_corr_median": float(np.nanmedian(r)) if np.isfinite(r).any() else float("nan"),
        "trace_corr_n": int(np.isfinite(r).sum()),
        "ari": adjusted_rand_index(np.asarray(clusters)[det], truth_clusters[tru]) if len(matches) > 1 else 0.0,
    }
