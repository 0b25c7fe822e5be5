"""Leak-aware re-splitting: folds that never separate duplicates or user groups.

An image's *group* is the connected component joining two kinds of edges:
images in the same duplicate cluster (exact + near duplicates, from
:mod:`splitaudit.duplicates`) and images sharing a user group (patient, video,
...). :func:`combine_groups` computes it; :class:`LeakAwareSplitter` is a
scikit-learn cross-validator that keeps every group inside one fold while
stratifying by class (or by quantile bins of a regression target).

Examples
--------
>>> import numpy as np
>>> from sklearn.model_selection import cross_validate
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.random.default_rng(0).normal(size=(60, 3)); y = np.arange(60) % 2
>>> groups = combine_groups(np.arange(60) // 2)       # pairs of duplicates
>>> cv = LeakAwareSplitter(3, random_state=0)
>>> len(cross_validate(LogisticRegression(), X, y, groups=groups, cv=cv)["test_score"])
3
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import BaseCrossValidator, GroupKFold

from .errors import InputError, InputTypeError
from ._folds import _strata, _stratified_group_folds
from ._validate import check_bool, check_int, fail, renamed_keyword

__all__ = [
    "LeakAwareSplitter",
    "combine_groups",
    "leak_free_split",
    "resplit_manifest",
]


def _ids_or_none(values: Any, n: int, name: str) -> np.ndarray | None:
    """Factorise an id column; missing ids (None, NaN, negative ints) become -1."""
    if values is None:
        return None
    if hasattr(values, "clusters") and not isinstance(values, (np.ndarray, pd.Series, list)):
        values = values.clusters
    series = pd.Series(np.asarray(values, dtype=object) if not isinstance(values, pd.Series) else values)
    if len(series) != n:
        raise InputError(f"{name} must have one entry per image ({n}); got {len(series)}")
    numeric = pd.to_numeric(series, errors="coerce")
    missing = series.isna().to_numpy(dtype=bool) | (numeric < 0).to_numpy(dtype=bool)
    codes, _ = pd.factorize(series.where(~missing, None), use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    codes[missing] = -1
    return codes


def combine_groups(cluster_ids: Any, user_groups: Any = None) -> np.ndarray:
    """Merge duplicate clusters and user groups into one leak-aware group id.

    Two images share a group when a chain of "same duplicate cluster" and
    "same user group" links joins them (connected components), so if A~B are
    duplicates and B, C share a user group, A, B and C form one group.

    Parameters
    ----------
    cluster_ids : array-like of int, object with ``.clusters``, or None
        Duplicate-cluster id per image. Negative values, None and NaN mean
        "in no cluster".
    user_groups : array-like or None
        User group per image (any hashable; None/NaN = no group).

    Returns
    -------
    numpy.ndarray of int64
        Group id per image, numbered 0.. in order of first appearance.

    Examples
    --------
    >>> combine_groups([0, 0, -1, -1], ["p1", None, None, "p1"]).tolist()
    [0, 0, 1, 0]
    """
    if cluster_ids is None and user_groups is None:
        raise InputError("combine_groups needs cluster_ids or user_groups; got neither")
    ref = cluster_ids if cluster_ids is not None else user_groups
    if hasattr(ref, "clusters") and not isinstance(ref, (np.ndarray, pd.Series, list)):
        ref = ref.clusters
    if not hasattr(ref, "__len__") or isinstance(ref, str):
        name = "cluster_ids" if cluster_ids is not None else "user_groups"
        fail(name, "an array of ids (one per image) or an object with .clusters", ref, kind=InputTypeError)
    n = len(ref)
    parts = [c for c in (_ids_or_none(cluster_ids, n, "cluster_ids"),
                         _ids_or_none(user_groups, n, "user_groups")) if c is not None]
    rows, cols, offset = [], [], n
    for codes in parts:
        member = np.flatnonzero(codes >= 0)
        rows.append(member)
        cols.append(codes[member] + offset)
        offset += int(codes.max()) + 1 if len(member) else 0
    r = np.concatenate(rows) if rows else np.empty(0, np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, np.int64)
    graph = coo_matrix((np.ones(len(r), np.int8), (r, c)), shape=(offset, offset))
    _, comp = connected_components(graph, directed=False)
    # renumber by first appearance so ids are stable and small
    _, first = np.unique(comp[:n], return_index=True)
    order = np.argsort(first)
    remap = np.empty(comp[:n].max() + 1, np.int64)
    remap[np.unique(comp[:n])[order]] = np.arange(len(order))
    return remap[comp[:n]]


class LeakAwareSplitter(BaseCrossValidator):
    """K-fold cross-validator that keeps groups whole and stratifies by class.

    Pass the output of :func:`combine_groups` as ``groups``: no duplicate
    cluster or user group is then split between a fold's train and test side.
    Classes (or, for a continuous ``y``, quantile bins of it) are balanced across
    folds with :class:`~sklearn.model_selection.StratifiedGroupKFold`; when
    stratification is impossible (no ``y``, one class, missing values) it falls
    back to :class:`~sklearn.model_selection.GroupKFold`.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=True
        Shuffle groups before assigning them to folds.
    random_state : int or None, default=None
        Seed used when ``shuffle`` is True.
    stratify : {"auto", True, False}, default="auto"
        "auto" stratifies whenever ``y`` allows it; True requires it (ValueError
        when impossible); False never stratifies.

    Notes
    -----
    Invariants (checked in ``tests/test_resplit.py`` on generated data): test
    folds are disjoint and cover every sample; each group lies in exactly one
    test fold. Class proportions per fold follow the data's within a tolerance
    that grows with the largest group. Without ``groups`` every sample is its
    own group.

    Examples
    --------
    >>> cv = LeakAwareSplitter(2, random_state=0)
    >>> [len(test) for _, test in cv.split(np.zeros(6), [0, 1] * 3, [0, 0, 1, 2, 3, 3])]
    [3, 3]
    """

    def __init__(self, n_splits: int = 5, *, shuffle: bool = True,
                 random_state: int | None = None, stratify: Any = "auto") -> None:
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state
        self.stratify = stratify

    def _validate(self) -> None:
        if isinstance(self.n_splits, bool) or not isinstance(self.n_splits, (int, np.integer)):
            raise InputTypeError(f"n_splits must be an int; got {type(self.n_splits).__name__}")
        if self.n_splits < 2:
            raise InputError(f"n_splits must be at least 2; got {self.n_splits}")
        if not (self.stratify is True or self.stratify is False or self.stratify == "auto"):
            raise InputError(f"stratify must be 'auto', True or False; got {self.stratify!r}")
        check_bool("shuffle", self.shuffle)
        if self.random_state is not None:
            check_int("random_state", self.random_state)
        if not self.shuffle and self.random_state is not None:
            raise InputError(
                "random_state has no effect when shuffle=False; pass shuffle=True or random_state=None"
            )

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds (``n_splits``)."""
        return int(self.n_splits)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)`` integer index arrays, one pair per fold."""
        self._validate()
        n = len(X) if hasattr(X, "__len__") else np.asarray(X).shape[0]
        if y is not None and len(y) != n:
            raise InputError(f"y must have {n} entries like X; got {len(y)}")
        group_ids = np.arange(n) if groups is None else np.asarray(pd.factorize(pd.Series(
            np.asarray(groups, dtype=object)))[0])
        if len(group_ids) != n:
            raise InputError(f"groups must have {n} entries like X; got {len(group_ids)}")
        if (group_ids < 0).any():
            raise InputError("groups must not contain missing values; use combine_groups() first")
        n_groups = len(np.unique(group_ids))
        if n_groups < self.n_splits:
            raise InputError(
                f"n_splits={self.n_splits} needs at least as many groups; only {n_groups} "
                "groups remain after merging duplicates and user groups. Lower n_splits."
            )
        strata = _strata(y, self.n_splits, self.stratify)
        if strata is None and self.stratify is True:
            raise InputError("stratify=True but y is missing, has one class, or has missing values")
        random_state = self.random_state if self.shuffle else None
        if strata is not None:
            fold_of = _stratified_group_folds(strata, group_ids, self.n_splits, self.shuffle, random_state)
        else:
            cv = GroupKFold(self.n_splits, shuffle=self.shuffle, random_state=random_state)
            fold_of = np.empty(n, dtype=np.int64)
            for i, (_, test) in enumerate(cv.split(np.zeros(n), None, group_ids)):
                fold_of[test] = i
        everything = np.arange(n)
        for i in range(self.n_splits):
            in_test = fold_of == i
            yield everything[~in_test], everything[in_test]


# -------------------------------------------------------------- data frames
def _frame_and_target(images: Any) -> tuple[pd.DataFrame, np.ndarray | None]:
    frame = getattr(images, "images", images)
    if not isinstance(frame, pd.DataFrame):
        raise InputTypeError(f"images must be an ImageSplit or a DataFrame; got {type(images).__name__}")
    if "path" not in frame.columns:
        raise InputError(f"images needs a 'path' column; found {list(frame.columns)}")
    y = None
    if "label" in frame.columns and frame["label"].notna().any():
        y = frame["label"].astype(str).where(frame["label"].notna(), "<none>").to_numpy()
    elif "target" in frame.columns and frame["target"].notna().any():
        y = frame["target"].to_numpy(dtype=float)
        if np.isnan(y).any():
            y = None
    return frame.reset_index(drop=True), y


def _groups_for(frame: pd.DataFrame, clusters: Any) -> np.ndarray:
    user = frame["group"] if "group" in frame.columns and frame["group"].notna().any() else None
    if clusters is None and user is None:
        return np.arange(len(frame))
    return combine_groups(clusters, user)


def _out_frame(frame: pd.DataFrame, groups: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame({"path": frame["path"].to_numpy()})
    out["label"] = frame["label"].to_numpy() if "label" in frame.columns else None
    if "target" in frame.columns and frame["target"].notna().any():
        out["target"] = frame["target"].to_numpy()
    out["group"] = groups
    return out


def resplit_manifest(images: Any, clusters: Any = None, *, n_splits: int = 5, val_fraction: float | None = None,
                     random_state: int = 0, k: int | None = None) -> pd.DataFrame:
    """Assign every image to one of ``n_splits`` leak-aware folds.

    Parameters
    ----------
    images : ImageSplit or DataFrame
        Needs ``path``; uses ``label`` (or ``target``) and ``group`` when present.
    clusters : array-like, object with ``.clusters``, or None
        Duplicate-cluster id per image (row order of ``images``).
    n_splits : int
        Number of folds.
    val_fraction : float or None
        If given, also add a ``split`` column (train/val) from
        :func:`leak_free_split`.
    random_state : int
    k : int, optional
        Deprecated name of ``n_splits``.

    Returns
    -------
    pandas.DataFrame
        ``path, label, [target,] group, fold[, split]``; ``group`` is the
        combined leak-aware group id.
    """
    if k is not None:
        n_splits = renamed_keyword("k", "n_splits", k, "resplit_manifest")
    frame, y = _frame_and_target(images)
    groups = _groups_for(frame, clusters)
    fold = np.full(len(frame), -1, dtype=np.int64)
    cv = LeakAwareSplitter(n_splits, shuffle=True, random_state=random_state)
    for i, (_, test) in enumerate(cv.split(frame, y, groups)):
        fold[test] = i
    out = _out_frame(frame, groups)
    out["fold"] = fold
    if val_fraction is not None:
        out["split"] = leak_free_split(frame, clusters, val_fraction=val_fraction,
                                       random_state=random_state)["split"].to_numpy()
    return out


def leak_free_split(images: Any, clusters: Any = None, *, val_fraction: float = 0.2,
                    random_state: int = 0) -> pd.DataFrame:
    """One stratified train/val split that keeps duplicate clusters and groups whole.

    The data is cut into up to 20 stratified group folds and the first
    ``round(val_fraction * n_splits)`` become validation, so the achieved fraction
    is within about 1/(2·n_splits) of the request when groups are small.

    Returns
    -------
    pandas.DataFrame
        ``path, label, [target,] group, split`` with split in {"train", "val"}.

    Examples
    --------
    >>> df = pd.DataFrame({"path": [f"{i}.png" for i in range(40)], "label": ["a", "b"] * 20})
    >>> int((leak_free_split(df, val_fraction=0.25)["split"] == "val").sum())
    10
    """
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (float, int)):
        raise InputTypeError(f"val_fraction must be a float; got {type(val_fraction).__name__}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise InputError(f"val_fraction must be in (0, 1); got {val_fraction}")
    frame, y = _frame_and_target(images)
    groups = _groups_for(frame, clusters)
    n_splits = int(min(20, len(np.unique(groups))))
    if n_splits < 2:
        raise InputError("leak_free_split needs at least 2 groups; all images form one group")
    n_val_folds = int(np.clip(round(val_fraction * n_splits), 1, n_splits - 1))
    cv = LeakAwareSplitter(n_splits, shuffle=True, random_state=random_state)
    split = np.full(len(frame), "train", dtype=object)
    for i, (_, test) in enumerate(cv.split(frame, y, groups)):
        if i < n_val_folds:
            split[test] = "val"
    out = _out_frame(frame, groups)
    out["split"] = split
    return out
