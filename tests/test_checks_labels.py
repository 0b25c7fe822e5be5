"""label_distribution on planted label skews and random splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from splitaudit.checks.labels import LabelDistributionCheck
from .test_checks_difficulty import make_context, make_world, random_val


def test_random_splits_rarely_flagged(tmp_path):
    # nominal false-alarm rate <= alpha = 1% per split; allow 2 of 40
    statuses = []
    for seed in range(40):
        world = make_world(n=1000, seed=seed)
        result = LabelDistributionCheck().run(make_context(world, random_val(1000, seed=seed), tmp_path))
        num = result.numbers
        assert num["n_train"] + num["n_val"] == 1000 and num["n_classes"] == 4
        assert num["cells_expected_below_5"] == 0
        statuses.append(result.status)
    assert statuses.count("pass") >= 38, statuses


def test_label_skewed_split_is_flagged(tmp_path):
    world = make_world(n=1000, seed=4)
    rng = np.random.default_rng(4)
    # val takes class0 images three times as often as the others
    weights = np.where(world["label"] == 0, 3.0, 1.0)
    is_val = np.zeros(1000, bool)
    is_val[rng.choice(1000, 250, replace=False, p=weights / weights.sum())] = True
    result = LabelDistributionCheck().run(make_context(world, is_val, tmp_path))
    num = result.numbers
    assert result.status in ("warn", "fail")
    assert num["p_value"] < 0.01 and num["cramers_v"] >= 0.05
    assert num["per_class"][0]["label"] == "class0"  # largest deviation first
    assert num["per_class"][0]["prop_val"] > num["per_class"][0]["prop_train"]
    # chi-square agrees with scipy on the same table
    table = np.array([[r["n_train"] for r in num["per_class"]], [r["n_val"] for r in num["per_class"]]])
    assert num["chi2"] == pytest.approx(stats.chi2_contingency(table, correction=False)[0])
    json.loads(result.to_json())


def test_class_only_in_val_fails(tmp_path):
    world = make_world(n=400, seed=5)
    is_val = random_val(400, seed=5) | (world["label"] == 3)
    result = LabelDistributionCheck().run(make_context(world, is_val, tmp_path))
    assert result.status == "fail"
    assert result.numbers["classes_only_in_val"] == ["class3"]


def test_unreadable_rows_are_excluded_and_counted(tmp_path):
    world = make_world(n=400, seed=6)
    ok = np.ones(400, bool)
    ok[::10] = False
    result = LabelDistributionCheck().run(make_context(world, random_val(400, seed=6), tmp_path, ok=ok))
    assert result.numbers["n_unreadable"] == 40
    assert result.numbers["n_train"] + result.numbers["n_val"] == 360


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_random_split_passes(tmp_path, seed):
    world = make_world(n=800, seed=seed)
    context = make_context(world, random_val(800, seed=seed), tmp_path, labels=False, targets=True)
    result = LabelDistributionCheck().run(context)
    assert result.status == "pass", result.message
    low, high = result.numbers["mean_difference_ci"]
    assert low < result.numbers["mean_difference"] < high


def test_regression_shifted_targets_are_flagged(tmp_path):
    world = make_world(n=800, seed=7)
    # val takes the images with the highest targets more often
    rank = stats.rankdata(world["target"]) / 800
    rng = np.random.default_rng(7)
    is_val = np.zeros(800, bool)
    is_val[rng.choice(800, 200, replace=False, p=np.exp(2 * rank) / np.exp(2 * rank).sum())] = True
    result = LabelDistributionCheck().run(make_context(world, is_val, tmp_path, labels=False, targets=True))
    num = result.numbers
    assert result.status in ("warn", "fail"), result.message
    assert num["smd"] > 0.2 and num["mean_difference_ci"][0] > 0
    assert num["p_value"] < 0.01


def test_skipped_without_labels_or_targets(tmp_path):
    world = make_world(n=100)
    result = LabelDistributionCheck().run(make_context(world, random_val(100), tmp_path, labels=False))
    assert result.status == "skipped" and result.numbers["reason"]


def test_one_class_says_there_is_nothing_to_compare(tmp_path):
    world = make_world(n=200, seed=7)
    world["label"] = np.zeros(200, int)
    result = LabelDistributionCheck().run(make_context(world, random_val(200, seed=7), tmp_path))
    assert result.status == "pass"
    assert result.message == "One class (class0) in both splits: nothing to compare."
    assert result.numbers["n_classes"] == 1
