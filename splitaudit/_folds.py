"""Fold assignment behind :class:`splitaudit.resplit.LeakAwareSplitter`:
strata (classes or quantile bins of a target) and a stratified assignment
of whole groups to folds."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.multiclass import type_of_target

from .errors import InputError


def _strata(y: Any, n_splits: int, stratify: Any) -> np.ndarray | None:
    """Class labels, quantile bins of a continuous target, or None (no stratification)."""
    if y is None or stratify is False:
        return None
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise InputError(f"y must be one-dimensional; got shape {y_arr.shape}")
    if pd.isna(pd.Series(y_arr)).any():
        return None
    kind = type_of_target(y_arr)
    if kind in ("binary", "multiclass"):
        strata = pd.factorize(pd.Series(y_arr))[0]
    elif kind == "continuous":
        n_bins = int(np.clip(len(y_arr) // (2 * n_splits), 2, 10))
        strata = pd.qcut(y_arr.astype(float), n_bins, labels=False, duplicates="drop")
        strata = np.asarray(strata, dtype=np.int64)
    else:
        raise InputError(
            f"y must hold class labels or a continuous target; got a {kind!r} target"
        )
    return strata if len(np.unique(strata)) >= 2 else None


def _stratified_group_folds(strata: np.ndarray, group_ids: np.ndarray, n_splits: int,
                            shuffle: bool, random_state: int | None) -> np.ndarray:
    """Fold number per sample.

    Multi-image groups go through :class:`StratifiedGroupKFold` (its greedy
    assignment is a Python loop per group: ~28 s for 70k singleton groups, so
    singletons are not sent through it). Singletons then fill each stratum's
    folds up to equal counts (water-filling), which is what StratifiedKFold
    does for trivial groups.
    """
    n = len(strata)
    rng = np.random.default_rng(random_state)
    sizes = np.bincount(group_ids)
    multi = sizes[group_ids] > 1
    fold_of = np.full(n, -1, dtype=np.int64)
    if multi.any():
        multi_idx = np.flatnonzero(multi)
        n_multi_groups = len(np.unique(group_ids[multi_idx]))
        # StratifiedGroupKFold refuses when every stratum has fewer than n_splits
        # members (e.g. a few small duplicate clusters): place those greedily.
        stratifiable = (n_multi_groups >= n_splits
                        and np.bincount(strata[multi_idx]).max() >= n_splits)
        if stratifiable:
            cv = StratifiedGroupKFold(n_splits, shuffle=shuffle, random_state=random_state)
            with warnings.catch_warnings():
                # "least populated class has fewer members than n_splits": expected here
                warnings.simplefilter("ignore", UserWarning)
                for i, (_, test) in enumerate(cv.split(multi_idx, strata[multi_idx], group_ids[multi_idx])):
                    fold_of[multi_idx[test]] = i
        else:  # too few to stratify: largest group to the emptiest fold
            totals = np.zeros(n_splits)
            for g in sorted(np.unique(group_ids[multi_idx]), key=lambda g: -sizes[g]):
                target = int(np.argmin(totals))
                fold_of[group_ids == g] = target
                totals[target] += sizes[g]
    totals = np.bincount(fold_of[fold_of >= 0], minlength=n_splits).astype(float)
    for stratum in np.unique(strata):
        current = np.bincount(fold_of[(strata == stratum) & multi], minlength=n_splits).astype(float)
        free = np.flatnonzero((strata == stratum) & ~multi)
        if shuffle:
            free = rng.permutation(free)
        allot = _water_fill(current, len(free), totals, rng if shuffle else None)
        start = 0
        for fold, count in enumerate(allot):
            fold_of[free[start:start + count]] = fold
            start += count
        totals += allot
    return fold_of


def _water_fill(current: np.ndarray, m: int, totals: np.ndarray, rng) -> np.ndarray:
    """Split ``m`` items over folds so ``current + allot`` is as level as possible;
    leftover units go to the folds that are smallest overall."""
    order = np.sort(current)
    level = order[0] + m
    for j in range(1, len(order) + 1):  # find the level where the m items run out
        level = (m + order[:j].sum()) / j
        if j == len(order) or level <= order[j]:
            break
    allot = np.floor(np.maximum(0.0, level - current)).astype(np.int64)
    rest = m - int(allot.sum())
    if rest > 0:
        tiebreak = rng.random(len(totals)) if rng is not None else np.arange(len(totals))
        # lowest in this stratum first, then smallest fold overall, then random
        eligible = np.lexsort((tiebreak, totals + allot, current + allot))
        allot[eligible[:rest]] += 1
    return allot
