"""Leak-aware splitter: invariants on generated data, sklearn compatibility, frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_validate

from splitaudit.resplit import LeakAwareSplitter, combine_groups, leak_free_split, resplit_manifest


def planted_clusters(n: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster id per image: ~20% of images sit in duplicate clusters of 2-4, the rest -1."""
    clusters = np.full(n, -1)
    order = rng.permutation(n)
    start, cid = 0, 0
    while start < n // 5:
        size = int(rng.integers(2, 5))
        clusters[order[start:start + size]] = cid
        start, cid = start + size, cid + 1
    return clusters


# ---------------------------------------------------------------- invariants (LeakAwareSplitter's Notes)
def check_cv_coverage(folds, n_samples):
    """Test folds are disjoint and cover every sample; each train side is its test side's complement."""
    seen = np.zeros(n_samples, dtype=np.int64)
    for i, (train, test) in enumerate(folds):
        assert not np.intersect1d(train, test).size, f"fold {i}: train and test overlap"
        assert len(train) + len(test) == n_samples, f"fold {i}: train+test has {len(train) + len(test)} of {n_samples}"
        seen[test] += 1
    assert (seen == 1).all(), f"{int((seen != 1).sum())} samples are not in exactly one test fold"


def check_no_group_straddles(folds, groups):
    """No group has members on both sides of a fold."""
    groups = np.asarray(groups)
    for i, (train, test) in enumerate(folds):
        shared = np.intersect1d(groups[train], groups[test])
        assert not shared.size, f"fold {i}: groups {shared[:5].tolist()} straddle train/test"


def check_stratification(folds, y, tol):
    """Each class's share in every test fold is within ``tol`` of its share overall."""
    y = np.asarray(y)
    classes, overall = np.unique(y, return_counts=True)
    overall = overall / len(y)
    for i, (_, test) in enumerate(folds):
        share = np.array([(y[test] == c).mean() for c in classes])
        worst = float(np.abs(share - overall).max())
        assert worst <= tol, f"fold {i}: a class share deviates by {worst:.3f} > tol {tol}"


def assert_valid_folds(folds, n, groups, y=None, tol=None):
    check_cv_coverage(folds, n)
    check_no_group_straddles(folds, groups)
    if y is not None and tol is not None:
        check_stratification(folds, y, tol)


def test_the_invariant_checks_catch_planted_faults():
    good = [(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]
    assert_valid_folds(good, 4, [0, 0, 1, 1], y=[0, 1, 0, 1], tol=0.0)
    with pytest.raises(AssertionError, match="overlap"):
        check_cv_coverage([(np.array([0, 1, 2]), np.array([2, 3]))], 4)
    with pytest.raises(AssertionError, match="exactly one test fold"):
        check_cv_coverage([(np.array([2, 3]), np.array([0, 1]))] * 2, 4)
    with pytest.raises(AssertionError, match="straddle"):
        check_no_group_straddles(good, [0, 1, 1, 2])
    with pytest.raises(AssertionError, match="deviates"):
        check_stratification(good, [0, 0, 1, 1], tol=0.1)


def test_combine_groups_is_transitive_across_duplicates_and_user_groups():
    # A~B duplicates, B and C share patient p1, D alone, E and F share p2
    clusters = [7, 7, -1, -1, None, -1]
    users = [None, "p1", "p1", None, "p2", "p2"]
    groups = combine_groups(clusters, users)
    assert groups[0] == groups[1] == groups[2]
    assert len({groups[0], groups[3], groups[4]}) == 3
    assert groups[4] == groups[5]
    assert groups.tolist() == [0, 0, 0, 1, 2, 2]  # numbered by first appearance


def test_combine_groups_chains_through_many_links():
    n = 50
    clusters = np.where(np.arange(n) % 2 == 0, np.arange(n) // 2, -1)   # (0),(2),... singleton clusters
    users = np.arange(n) // 2                                           # pairs (0,1),(2,3)...
    clusters[[1, 2]] = 999                                              # 1~2 links pair 0 and pair 1
    groups = combine_groups(clusters, users)
    assert len(set(groups[:4])) == 1
    assert len(np.unique(groups)) == n // 2 - 1


def test_combine_groups_rejects_bad_input():
    with pytest.raises(ValueError, match="cluster_ids or user_groups"):
        combine_groups(None, None)
    with pytest.raises(ValueError, match="one entry per image"):
        combine_groups([0, 1, 2], ["a", "b"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n_splits", [3, 5])
def test_classification_invariants_with_duplicates_and_user_groups(seed, n_splits):
    rng = np.random.default_rng(seed)
    n = 600
    y = rng.choice(["cat", "dog", "bird"], size=n, p=[0.5, 0.3, 0.2])
    users = np.where(rng.random(n) < 0.1, rng.integers(0, 20, n).astype(str), None)
    groups = combine_groups(planted_clusters(n, rng), users)
    folds = list(LeakAwareSplitter(n_splits, random_state=seed).split(np.zeros(n), y, groups))
    assert len(folds) == n_splits
    # tolerance stated in the docs: a few percentage points when groups are small
    assert_valid_folds(folds, n, groups, y, tol=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_targets_are_stratified_by_quantile_bins(seed):
    rng = np.random.default_rng(seed)
    n = 500
    target = rng.lognormal(size=n)
    groups = combine_groups(planted_clusters(n, rng))
    folds = list(LeakAwareSplitter(5, random_state=seed).split(np.zeros(n), target, groups))
    assert_valid_folds(folds, n, groups)
    # each fold's median target close to the overall median (quantile-bin stratification)
    overall = np.median(target)
    for _, test in folds:
        assert abs(np.mean(target[test] < overall) - 0.5) < 0.1


def test_falls_back_to_group_kfold_without_labels_and_with_one_class():
    rng = np.random.default_rng(0)
    n = 100
    groups = combine_groups(planted_clusters(n, rng))
    for y in (None, np.zeros(n, int)):
        folds = list(LeakAwareSplitter(4, random_state=0).split(np.zeros(n), y, groups))
        assert_valid_folds(folds, n, groups)
    with pytest.raises(ValueError, match="stratify=True"):
        list(LeakAwareSplitter(4, random_state=0, stratify=True).split(np.zeros(n), None, groups))


def test_large_groups_still_valid_and_deterministic():
    rng = np.random.default_rng(5)
    n = 300
    groups = rng.integers(0, 12, n)          # few big groups: stratification near impossible
    y = rng.integers(0, 2, n)
    cv = LeakAwareSplitter(3, random_state=4)
    first = list(cv.split(np.zeros(n), y, groups))
    assert_valid_folds(first, n, groups)
    again = list(cv.split(np.zeros(n), y, groups))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    other = list(LeakAwareSplitter(3, random_state=5).split(np.zeros(n), y, np.arange(n)))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other))


def test_works_inside_cross_validate():
    rng = np.random.default_rng(0)
    n = 240
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 4)) + y[:, None]
    groups = combine_groups(np.arange(n) // 3)           # triples of duplicates
    cv = LeakAwareSplitter(4, random_state=0)
    scores = cross_validate(LogisticRegression(), x, y, groups=groups, cv=cv,
                            return_indices=True)
    assert len(scores["test_score"]) == 4 and scores["test_score"].mean() > 0.7
    folds = list(zip(scores["indices"]["train"], scores["indices"]["test"]))
    assert_valid_folds(folds, n, groups, y, tol=0.05)
    assert (cv.n_splits, cv.shuffle, cv.random_state, cv.stratify) == (4, True, 0, "auto")
    assert "LeakAwareSplitter(n_splits=4" in repr(cv) and cv.get_n_splits() == 4


def test_parameter_errors_say_what_was_expected():
    x = np.zeros(10)
    with pytest.raises(TypeError, match="n_splits must be an int"):
        list(LeakAwareSplitter("3").split(x))
    with pytest.raises(ValueError, match="at least 2"):
        list(LeakAwareSplitter(1).split(x))
    with pytest.raises(ValueError, match="stratify must be"):
        list(LeakAwareSplitter(2, stratify="yes").split(x))
    with pytest.raises(ValueError, match="no effect when shuffle=False"):
        list(LeakAwareSplitter(2, shuffle=False, random_state=1).split(x))
    with pytest.raises(ValueError, match="only 2"):
        list(LeakAwareSplitter(3).split(x, None, [0] * 5 + [1] * 5))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 15), st.integers(0, 2)), min_size=12, max_size=80),
       st.integers(0, 1000))
def test_property_groups_never_straddle(pairs, seed):
    groups = np.array([g for g, _ in pairs])
    y = np.array([c for _, c in pairs])
    n_splits = min(3, len(np.unique(groups)))
    if n_splits < 2:
        return
    folds = list(LeakAwareSplitter(n_splits, random_state=seed).split(np.zeros(len(y)), y, groups))
    assert_valid_folds(folds, len(y), groups)


def _images(n: int, rng) -> pd.DataFrame:
    return pd.DataFrame({
        "path": [f"train/{i}.png" for i in range(n)],
        "split": "train",
        "label": rng.choice(["a", "b"], n),
        "target": np.nan,
        "group": np.where(rng.random(n) < 0.05, "patient7", None),
    })


def test_leak_free_split_keeps_clusters_whole_and_hits_the_fraction():
    rng = np.random.default_rng(3)
    images = _images(400, rng)
    clusters = planted_clusters(400, rng)
    out = leak_free_split(images, clusters, val_fraction=0.25, random_state=1)
    assert list(out.columns) == ["path", "label", "group", "split"]
    assert abs((out["split"] == "val").mean() - 0.25) < 0.03
    assert out.groupby("group")["split"].nunique().max() == 1
    straddling = pd.Series(out["split"].to_numpy())[clusters >= 0].groupby(clusters[clusters >= 0]).nunique()
    assert straddling.max() == 1
    assert out.loc[images["group"] == "patient7", "split"].nunique() == 1
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="val_fraction"):
            leak_free_split(images, clusters, val_fraction=bad)
    with pytest.raises(TypeError, match="val_fraction"):
        leak_free_split(images, clusters, val_fraction="0.2")


def test_resplit_manifest_columns_and_folds():
    rng = np.random.default_rng(4)
    images = _images(200, rng)
    clusters = planted_clusters(200, rng)
    manifest = resplit_manifest(images, clusters, n_splits=4, val_fraction=0.2)
    assert list(manifest.columns) == ["path", "label", "group", "fold", "split"]
    assert sorted(manifest["fold"].unique()) == [0, 1, 2, 3]
    folds = [(np.flatnonzero(manifest["fold"] != i), np.flatnonzero(manifest["fold"] == i)) for i in range(4)]
    assert_valid_folds(folds, 200, combine_groups(clusters), images["label"], tol=0.1)
    assert manifest.groupby("group")["fold"].nunique().max() == 1
    assert manifest["path"].tolist() == images["path"].tolist()
    plain = resplit_manifest(images, None, n_splits=4)
    assert "split" not in plain.columns and plain["fold"].between(0, 3).all()
    with pytest.warns(DeprecationWarning, match="pass n_splits="):
        old_name = resplit_manifest(images, None, k=4)
    pd.testing.assert_frame_equal(old_name, plain)


def test_accepts_a_duplicate_result_with_clusters_attribute():
    from types import SimpleNamespace

    found = SimpleNamespace(clusters=np.array([0, 0, 1, 2, 3, 3]))   # as find_duplicates(...) returns
    assert combine_groups(found).tolist() == [0, 0, 1, 2, 3, 3]
    images = pd.DataFrame({"path": [f"{i}.png" for i in range(6)], "label": list("ababab")})
    manifest = resplit_manifest(images, found, n_splits=2)
    assert manifest.loc[0, "fold"] == manifest.loc[1, "fold"]
    assert manifest.loc[4, "fold"] == manifest.loc[5, "fold"]


def test_few_small_duplicate_clusters_in_many_classes():
    """Regression (found on Fashion-MNIST subsets): 6 two-image clusters spread over
    10 classes, so every class has fewer grouped images than folds."""
    n = 400
    y = np.arange(n) % 10
    groups = np.arange(n)
    for k, (a, b) in enumerate([(0, 10), (1, 11), (2, 12), (3, 13), (4, 14), (5, 15)]):
        groups[b] = groups[a]
    folds = list(LeakAwareSplitter(5, random_state=0).split(np.zeros(n), y, groups))
    assert_valid_folds(folds, n, groups)
