"""Clustering of activity patterns (paper Methods, eqs. 14-17): Gaussian similarity, graph Laplacian, the
eigen-gap heuristic for the number of clusters, and k-means on the first eigenvectors (spectral clustering)."""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.linalg import eigh

from widefield3d.errors import InputError


def similarity(df: np.ndarray, f0: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """``S_ij = exp(-||dF_i/F0_i - dF_j/F0_j||^2 / sigma^2)`` over time (paper eq. 14, sigma = 1.5)."""
    r = np.asarray(df, np.float64) / np.asarray(f0, np.float64)[:, None]
    sq = (r * r).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * r @ r.T, 0)
    return np.exp(-d2 / sigma**2)


def laplacian_eigen(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised eigenvalues (ascending) and eigenvectors of ``L v = lambda D v`` with ``L = D - W``.

    ``W = S`` with a zero diagonal, ``D`` its degree matrix (paper eqs. 15-17).
    """
    w = np.array(s, np.float64)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise InputError(f"similarity matrix must be square, got shape {w.shape}")
    np.fill_diagonal(w, 0)
    degree = np.maximum(w.sum(axis=1), 1e-12)
    return eigh(np.diag(degree) - w, np.diag(degree))


def eigengap(eigenvalues: np.ndarray, max_clusters: int = 10) -> int:
    """Number of clusters ``k``: the largest jump ``lambda_k - lambda_{k-1}`` for ``k = 1 .. max_clusters``."""
    lam = np.asarray(eigenvalues, np.float64)
    kmax = min(max_clusters, len(lam) - 1)
    if kmax < 1:
        return 1
    return int(np.argmax(np.diff(lam[: kmax + 1]))) + 1


def spectral_clusters(s: np.ndarray, n_clusters: int | None = None, *, max_clusters: int = 10, seed: int = 0,
                      restarts: int = 20) -> tuple[np.ndarray, int, np.ndarray]:
    """Spectral clustering of a similarity matrix.

    Parameters
    ----------
    s : ndarray, ``(N, N)``
        Similarity (e.g. :func:`similarity`).
    n_clusters : int, optional
        Default: the eigen-gap heuristic (:func:`eigengap`).
    max_clusters : int
        Largest ``k`` the heuristic considers.
    seed, restarts : int
        k-means seeding and the number of restarts (the lowest distortion wins).

    Returns
    -------
    labels : ndarray of int, ``(N,)`` in ``1 .. k``, numbered by decreasing cluster size
    k : int
    eigenvalues : ndarray, ascending
    """
    n = len(s)
    if n == 0:
        return np.zeros(0, int), 0, np.zeros(0)
    if n == 1:
        return np.ones(1, int), 1, np.zeros(1)
    lam, vec = laplacian_eigen(s)
    k = eigengap(lam, max_clusters) if n_clusters is None else int(n_clusters)
    if not 1 <= k <= n:
        raise InputError(f"number of clusters must be in 1 .. {n}, got {k}")
    u = vec[:, :k]
    rng = np.random.default_rng(seed)
    best, best_cost = np.zeros(n, int), np.inf
    for _ in range(restarts):
        centres, assign = kmeans2(u, k, minit="++", seed=rng)
        cost = float(((u - centres[assign]) ** 2).sum())
        if cost < best_cost:
            best, best_cost = assign, cost
    sizes = np.bincount(best, minlength=k)
    rank = np.empty(k, int)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(1, k + 1)
    return rank[best], k, lam
