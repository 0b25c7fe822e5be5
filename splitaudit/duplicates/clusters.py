"""Duplicate clusters, and how many cross-split duplicates a random split
would be expected to produce."""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

__all__ = ["duplicate_clusters", "expected_cross"]


def duplicate_clusters(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the duplicate graph on ``n`` images.

    Parameters
    ----------
    n : int
        Number of images (graph nodes).
    a, b : int arrays
        Edge end points (each pair of duplicates).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        Cluster id per image; ids are ``0..n_clusters-1`` numbered by first
        appearance, and an image without duplicates is its own cluster.

    Examples
    --------
    >>> duplicate_clusters(4, [0], [2]).tolist()
    [0, 1, 0, 2]
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    graph = sparse.coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    # Renumber by first appearance so ids are stable under relabelling of scipy.
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse]


def expected_cross(n_train: int, n_val: int, within_train: int, within_val: int, observed: int) -> dict:
    """Observed cross-split duplicate pairs against what a random split gives.

    Estimator: a random split puts every pair of images across the split
    with the same probability, so the duplicate *pair rate* measured inside
    the splits, ``rho = (W_train + W_val) / (C(n_train, 2) + C(n_val, 2))``,
    also holds across it; the expected number of cross pairs is
    ``rho * n_train * n_val``. The ratio ``observed / expected`` is about 1
    for a random split and large when copies were placed on both sides on
    purpose (e.g. augmented copies, or one photo per class in each split).
    ``p_value`` is the one-sided Poisson probability of seeing at least
    ``observed`` pairs when ``expected`` are due (pairs are nearly
    independent when duplicates are rare). When no within-split pairs exist
    the estimate is 0 and the ratio is reported as infinite if any cross
    pair was seen (``None`` in JSON).

    Examples
    --------
    >>> e = expected_cross(100, 100, 10, 10, 20)
    >>> round(e["expected"], 2), round(e["ratio"], 2)
    (20.2, 0.99)
    """
    within_pairs = n_train * (n_train - 1) / 2 + n_val * (n_val - 1) / 2
    rate = (within_train + within_val) / within_pairs if within_pairs else 0.0
    expected = rate * n_train * n_val
    if expected > 0:
        ratio = observed / expected
        p_value = float(stats.poisson.sf(observed - 1, expected)) if observed > 0 else 1.0
    else:
        ratio = math.inf if observed > 0 else math.nan
        p_value = 0.0 if observed > 0 else 1.0
    return {
        "observed": int(observed),
        "expected": float(expected),
        "ratio": float(ratio),
        "p_value": p_value,
        "pair_rate_within": float(rate),
        "within_train": int(within_train),
        "within_val": int(within_val),
        "n_train": int(n_train),
        "n_val": int(n_val),
        "estimator": "rho * n_train * n_val, rho = within-split pairs / within-split possible pairs",
    }
