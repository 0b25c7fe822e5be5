"""explain(): each planted cause is ranked first, with its evidence; outputs are honest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from splitaudit.explain import CAUSES, explain, read_history
from splitaudit.explain.suspects import SUSPECT_CAP


def simulate_running_mean(*, epochs=10, steps=200, tau=5.0, floor=0.3, scale=2.0, noise=0.02, seed=0):
    """A decaying per-step loss; train = mean over the epoch's steps, val = value at the epoch's end.

    Train and val come from the same distribution (same loss curve, same noise),
    so the only reason val < train is when each is measured.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs * steps + 1) / steps  # time in epochs after each step
    per_step = floor + scale * np.exp(-t / tau) + rng.normal(0, noise, t.size)
    train = per_step.reshape(epochs, steps).mean(axis=1)
    ends = np.arange(1, epochs + 1)
    val = floor + scale * np.exp(-ends / tau) + rng.normal(0, noise / np.sqrt(steps), epochs)
    return pd.DataFrame({"epoch": ends, "train_loss": train, "val_loss": val})


def flat_history(*, train=0.40, val=0.35, epochs=8, seed=0, train_eval=None):
    """A converged run: flat losses with small noise and a constant val < train gap."""
    rng = np.random.default_rng(seed)
    data = {"train_loss": train + rng.normal(0, 0.002, epochs), "val_loss": val + rng.normal(0, 0.002, epochs)}
    if train_eval is not None:
        data["train_loss_eval"] = train_eval + rng.normal(0, 0.002, epochs)
    return pd.DataFrame(data)


def scan_summary(*, leak_fraction=0.0, n_val=1000, n_train=4000, difficulty=None, drift="pass"):
    findings = [
        {"check": "exact_duplicates", "status": "pass", "message": "", "n_val": n_val,
         "fraction_val_with_train_duplicate": 0.0},
        {"check": "near_duplicates", "status": "fail" if leak_fraction > 0.01 else "pass", "message": "",
         "n_val": n_val, "n_train": n_train, "fraction_val_with_train_duplicate": leak_fraction},
        {"check": "label_distribution", "status": drift, "message": ""},
        {"check": "property_drift", "status": drift, "message": ""},
    ]
    if difficulty is not None:
        findings.append({"check": "difficulty", "status": "fail", "message": "", **difficulty})
    return {"n_train": n_train, "n_val": n_val, "findings": findings}


def assert_well_formed(result):
    """Invariants every Explanation must satisfy."""
    names = [c["cause"] for c in result.causes]
    assert sorted(names) == sorted(CAUSES)
    scores = [c["score"] for c in result.causes]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    for phase in result.phases or [{"causes": result.causes}]:
        phase_scores = [c["score"] for c in phase["causes"]]
        assert phase_scores == sorted(phase_scores, reverse=True)
        for cause in phase["causes"]:
            assert cause["status"] in ("measured", "suspected", "unknown")
            assert cause["evidence"]["status"] == cause["status"]
            assert cause["known"] == (cause["status"] == "measured")
            if cause["status"] == "unknown":
                assert cause["score"] == 0.0 and cause["evidence"]["reason"]
            if cause["status"] == "suspected":  # a suspicion says what is missing and how to measure it
                assert cause["score"] <= SUSPECT_CAP and cause["evidence"]["reason"] and cause["check"]
            assert cause["advice"] and cause["check"]
    if result.phases:
        assert result.causes == result.phases[0]["causes"]
        for phase in result.phases:
            assert phase["window_epochs"] and set(phase["window_epochs"]) <= set(phase["epochs"])
    payload = json.loads(result.to_json())  # strict JSON: no NaN
    assert [c["cause"] for c in payload["causes"]] == names
    assert isinstance(result.summary, str) and result.summary.endswith(".")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_running_mean_history_ranks_measurement_lag_first(seed):
    history = simulate_running_mean(seed=seed)
    assert (history["val_loss"] < history["train_loss"]).all()  # the puzzle is really there
    result = explain(history)
    assert_well_formed(result)
    assert result.top["cause"] == "measurement_lag"
    evidence = result.top["evidence"]
    assert evidence["gap"] < 0
    assert abs(evidence["shifted_gap"]) < 0.25 * abs(evidence["gap"])  # the shift removes most of the gap
    assert result.top["score"] >= 0.75
    assert "half an epoch" in result.summary


def test_shift_direction_matters():
    """Shifting the wrong way (train at e - 0.5) would widen the gap; ours must narrow it."""
    history = simulate_running_mean(seed=3)
    evidence = explain(history).score("measurement_lag")
    train = history["train_loss"].to_numpy()
    wrong = (train[1:] + train[:-1]) / 2  # train interpolated half an epoch *earlier*
    wrong_gap = np.mean(history["val_loss"].to_numpy()[-3:] - np.r_[train[:1], wrong][-3:])
    assert wrong_gap < np.mean(history["val_loss"].to_numpy()[-3:] - train[-3:])
    assert evidence > 0.75


def test_scan_leakage_ranks_leakage_first():
    result = explain(flat_history(), scan=scan_summary(leak_fraction=0.30))
    assert_well_formed(result)
    assert result.top["cause"] == "leakage"
    assert result.top["evidence"]["fraction_of_val_leaked"] == pytest.approx(0.30)
    assert result.top["score"] >= 0.5
    assert "duplicates" in result.summary and "worry" in result.summary
    assert result.gap["n_val"] == 1000  # read from the summary


def test_clean_scan_rules_leakage_out():
    result = explain(flat_history(), scan=scan_summary(leak_fraction=0.0))
    leakage = next(c for c in result.causes if c["cause"] == "leakage")
    assert leakage["known"] and leakage["score"] == 0.0


def test_per_image_losses_of_duplicates_strengthen_leakage():
    rng = np.random.default_rng(0)
    n_train, n_val = 800, 200
    duplicated = np.zeros(n_val, bool)
    duplicated[:60] = True
    val_loss = np.where(duplicated, rng.exponential(0.05, n_val), rng.exponential(0.4, n_val))
    images = pd.DataFrame({
        "split": ["train"] * n_train + ["val"] * n_val,
        "loss": np.r_[rng.exponential(0.4, n_train), val_loss],
        "has_train_duplicate": np.r_[np.zeros(n_train, bool), duplicated],
    })
    scan = scan_summary(leak_fraction=0.30, n_val=n_val, n_train=n_train)
    result = explain(flat_history(train=0.40, val=0.30), scan=scan, difficulty=images)
    assert_well_formed(result)
    assert result.top["cause"] == "leakage"
    evidence = result.top["evidence"]
    assert evidence["duplicated_mean_loss"] < evidence["other_mean_loss"]
    assert evidence["mannwhitney_p"] < 0.05
    assert evidence["relative_effect_on_val_loss"] < 0


def test_regularization_ranks_high_with_persisting_kfold_and_eval_loss(tmp_path):
    kfold = {
        "original": {"train_loss": 0.52, "val_loss": 0.40, "train_loss_eval": 0.31, "gap": -0.12, "gap_eval": 0.09},
        "folds": [
            {"fold": i, "gap": g, "gap_eval": ge, "n_train": 4000, "n_val": 1000}
            for i, (g, ge) in enumerate([(-0.11, 0.08), (-0.12, 0.10), (-0.10, 0.07), (-0.13, 0.09), (-0.12, 0.08)])
        ],
        "verdict": {"persists": True, "n_folds_val_lower": 5, "n_folds": 5, "mean_gap": -0.116,
                    "ci_low": -0.13, "ci_high": -0.10, "percentile_of_original": 50.0, "message": ""},
    }
    (tmp_path / "kfold.json").write_text(json.dumps(kfold))
    history = flat_history(train=0.52, val=0.40, train_eval=0.31)
    result = explain(history, kfold=tmp_path, scan=scan_summary(leak_fraction=0.0))
    assert_well_formed(result)
    assert result.top["cause"] == "regularization"
    assert result.top["score"] >= 0.9
    assert result.top["evidence"]["persists"] is True
    assert result.top["evidence"]["folds_closed_by_eval"] == "5/5"
    assert result.score("random_variation") < 0.01  # five re-splits agree: not noise
    assert "not a problem" in result.summary

    # without the history's eval column, the k-fold evidence alone still ranks it first
    result_kfold_only = explain(flat_history(train=0.52, val=0.40), kfold=kfold)
    assert result_kfold_only.top["cause"] == "regularization"


def test_easier_validation_scan_ranks_easier_validation_first():
    difficulty = {"direction": "val_easier", "p_value": 1e-8, "relative_difference": -0.18, "cohens_d": -0.3}
    result = explain(flat_history(), scan=scan_summary(difficulty=difficulty, drift="warn"))
    assert_well_formed(result)
    assert result.top["cause"] == "easier_validation"
    assert result.top["score"] >= 0.9
    assert result.top["evidence"]["difficulty"]["direction"] == "val_easier"
    assert "worry" in result.summary


def test_val_harder_rules_out_easier_validation():
    difficulty = {"direction": "val_harder", "p_value": 1e-8, "relative_difference": 0.2}
    result = explain(flat_history(), scan=scan_summary(difficulty=difficulty))
    assert result.score("easier_validation") == 0.0


def test_per_image_difficulty_detects_an_easier_val_set():
    rng = np.random.default_rng(1)
    images = pd.DataFrame({
        "split": ["train"] * 600 + ["val"] * 150,
        "difficulty": np.r_[rng.exponential(0.5, 600), rng.exponential(0.35, 150)],
    })
    result = explain(flat_history(train=0.40, val=0.34), difficulty=images)
    evidence = next(c for c in result.causes if c["cause"] == "easier_validation")["evidence"]
    assert evidence["difficulty"]["relative_difference"] < 0
    assert result.top["cause"] == "easier_validation"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tiny_gap_on_a_random_split_is_random_variation(seed):
    """A 0.3% gap on 9.5k val images is noise; no worrying cause may be claimed."""
    rng = np.random.default_rng(seed)
    level = 0.30 + rng.normal(0, 0.002, 8)
    history = pd.DataFrame({"train_loss": level, "val_loss": level * 0.997 + rng.normal(0, 0.0003, 8)})
    result = explain(history, scan=scan_summary(leak_fraction=0.0, n_val=9500, n_train=50000))
    assert_well_formed(result)
    assert result.top["cause"] == "random_variation"
    assert result.top["score"] > 0.5
    assert result.score("leakage") == 0.0 and result.score("easier_validation") == 0.0
    assert "worry" not in result.summary


def test_no_gap_means_nothing_to_explain():
    result = explain({"loss": [0.9, 0.6, 0.5], "val_loss": [1.0, 0.8, 0.7]})
    assert result.gap["val_lower"] is False
    assert result.summary.startswith("No:")
    assert result.score("measurement_lag") == 0.0


def test_missing_evidence_is_reported_as_unknown():
    result = explain({"train_loss": [0.5], "val_loss": [0.4]})
    assert_well_formed(result)
    assert not any(c["known"] for c in result.causes if c["cause"] != "random_variation")
    assert "no cause is clearly supported" in result.summary


def test_outputs_json_frame_and_plot(tmp_path):
    result = explain(simulate_running_mean(epochs=6), n_val=500)
    payload = json.loads(result.to_json())
    assert set(payload) >= {"summary", "gap", "causes"}
    assert list(result.to_frame()["rank"]) == [1, 2, 3, 4, 5]
    png = result.plot(tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scan_from_directory_and_bad_arguments(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(scan_summary(leak_fraction=0.3)))
    assert explain(flat_history(), scan=tmp_path).top["cause"] == "leakage"
    with pytest.raises(ValueError, match="scan"):
        explain(flat_history(), scan=tmp_path / "nowhere")
    with pytest.raises(TypeError, match="kfold"):
        explain(flat_history(), kfold=3.5)
    with pytest.raises(ValueError, match="n_val"):
        explain(flat_history(), n_val=0)
    with pytest.raises(ValueError, match="difficulty"):
        explain(flat_history(), difficulty=pd.DataFrame({"a": [1]}))


def test_history_file_goes_straight_in(tmp_path):
    path = tmp_path / "log.csv"
    frame = simulate_running_mean()
    pd.DataFrame({"epoch": frame["epoch"] - 1, "loss": frame["train_loss"], "val_loss": frame["val_loss"]}).to_csv(
        path, index=False)
    assert read_history(path).format == "keras_csv"
    assert explain(path).top["cause"] == "measurement_lag"


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

loss_values = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    train=st.lists(loss_values, min_size=1, max_size=12),
    shift=st.floats(-2.0, 2.0),
    n_val=st.one_of(st.none(), st.integers(1, 100000)),
    leak=st.floats(0.0, 1.0),
)
def test_any_history_gives_a_well_formed_explanation(train, shift, n_val, leak):
    val = [max(0.0, t + shift) for t in train]
    result = explain({"train_loss": train, "val_loss": val}, n_val=n_val, scan=scan_summary(leak_fraction=leak))
    assert_well_formed(result)
    if result.gap["window_mean"] >= 0:
        assert result.summary.startswith("No:")


def test_scan_directory_images_csv_feeds_per_image_leakage(tmp_path):
    """A scan directory's images.csv (difficulty + has_cross_duplicate) is read without being named."""
    rng = np.random.default_rng(4)
    n_train, n_val = 600, 200
    duplicated = np.r_[np.zeros(n_train, bool), np.arange(n_val) < 50]
    difficulty = np.r_[rng.exponential(0.4, n_train), np.where(duplicated[n_train:], 0.01, rng.exponential(0.4, n_val))]
    pd.DataFrame({"path": [f"img{i}.png" for i in range(n_train + n_val)],
                  "split": ["train"] * n_train + ["val"] * n_val,
                  "difficulty": difficulty, "has_cross_duplicate": duplicated}).to_csv(tmp_path / "images.csv", index=False)
    (tmp_path / "summary.json").write_text(json.dumps(scan_summary(leak_fraction=0.25, n_val=n_val, n_train=n_train)))
    result = explain(flat_history(train=0.40, val=0.32), scan=tmp_path)
    assert result.top["cause"] == "leakage"
    assert result.top["evidence"]["n_val_duplicated"] == 50
