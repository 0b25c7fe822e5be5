"""k-fold retraining harness: probes, history protocol, verdict on planted cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from splitaudit import ImageSplit
from splitaudit.errors import HistoryError
from splitaudit.retrain import decide, kfold, run_history

VERDICT_KEYS = ["persists", "n_folds_val_lower", "n_folds", "mean_gap", "ci_low", "ci_high",
                "percentile_of_original", "message"]
RUN_KEYS = ["train_loss", "val_loss", "train_loss_eval", "gap", "gap_eval", "history"]


def make_features(n: int = 900, dim: int = 30, seed: int = 0):
    """3 classes; each image has a difficulty (noise scale) from 0.5 to 3."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    means = rng.normal(size=(3, dim)) * 0.6
    difficulty = rng.uniform(0.5, 3.0, n)
    x = means[y] + difficulty[:, None] * rng.normal(size=(n, dim))
    return x, y, difficulty


def frame(split: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"path": [f"img{i}.png" for i in range(len(y))], "split": split,
                         "label": [f"class{v}" for v in y]})


def random_split(n: int, seed: int) -> np.ndarray:
    return np.where(np.random.default_rng(seed).random(n) < 0.2, "val", "train")


def test_easier_validation_split_is_split_specific():
    x, y, difficulty = make_features()
    split = np.full(len(y), "train", dtype=object)
    split[np.argsort(difficulty)[: len(y) // 5]] = "val"          # val = easiest 20%
    result = kfold(frame(split, y), features=x, n_splits=5, epochs=10, lr=0.01, batch_size=32)
    v = result.verdict
    assert result.original.gap < -0.1                               # very negative on the original
    assert v.persists is False
    assert v.n_folds_val_lower <= 1
    assert v.split_specific and v.percentile_of_original == 0.0
    assert "split-specific" in v.message
    assert result.to_check_result().status == "warn"


def test_strong_dropout_makes_val_below_train_persist():
    x, y, _ = make_features(seed=1)
    result = kfold(frame(random_split(len(y), 1), y), features=x, n_splits=5, epochs=10, lr=0.01,
                   batch_size=32, dropout=0.7)
    v = result.verdict
    assert all(f.gap < 0 for f in result.folds)      # running-mean train loss above val everywhere
    assert v.persists is True and v.n_folds_val_lower == 5 and v.ci_high < 0
    assert not v.split_specific and "persists" in v.message
    # the eval-mode training loss removes most of that gap
    assert np.mean([f.gap_eval for f in result.folds]) > v.mean_gap + 0.1


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_random_split_is_never_called_split_specific(seed):
    x, y, _ = make_features(seed=seed)
    result = kfold(frame(random_split(len(y), seed), y), features=x, n_splits=5, epochs=6, lr=0.01,
                   batch_size=32, random_state=seed)
    assert result.verdict.split_specific is False
    assert result.to_check_result().status == "pass"


def test_result_json_has_exactly_the_documented_keys(tmp_path):
    x, y, _ = make_features(n=300, seed=5)
    clusters = np.where(np.arange(300) < 60, np.arange(300) // 3, -1)
    progress = []
    result = kfold(frame(random_split(300, 5), y), features=x, n_splits=3, epochs=3, repeats=2,
                   clusters=clusters, last_epochs=2, progress=lambda *a: progress.append(a))
    out = json.loads(result.to_json())
    assert sorted(out) == ["folds", "original", "verdict"]
    assert sorted(out["original"]) == sorted(RUN_KEYS)
    assert len(out["folds"]) == 6 and [f["fold"] for f in out["folds"]] == list(range(6))
    assert sorted(out["folds"][0]) == sorted(RUN_KEYS + ["fold", "n_train", "n_val"])
    assert all(f["n_train"] + f["n_val"] == 300 for f in out["folds"])
    assert sorted(out["verdict"]) == sorted(VERDICT_KEYS)
    assert out["verdict"]["n_folds"] == 6
    hist = out["original"]["history"]
    assert hist["epoch"] == [1, 2, 3] and len(hist["val_loss"]) == 3
    # last_epochs=2: the reported gap is the mean over the last two epochs
    expected = np.mean(hist["val_loss"][-2:]) - np.mean(hist["train_loss"][-2:])
    assert out["original"]["gap"] == pytest.approx(expected)
    assert progress[-1] == ("kfold", 7, 7)
    assert len(result.to_frame()) == 7
    png = result.plot(tmp_path / "curves.png")
    assert png == tmp_path / "curves.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_callable_train_fn_gets_leak_free_items_and_keras_history():
    x, y, _ = make_features(n=240, seed=6)
    clusters = np.arange(240) // 4                          # every image has 3 duplicates
    df = frame(random_split(240, 6), y).assign(group=None)
    seen = []

    def train_fn(train_items: pd.DataFrame, val_items: pd.DataFrame):
        seen.append((train_items.index.to_numpy(), val_items.index.to_numpy()))
        gap = 0.1 * len(seen)
        return {"loss": [1.0, 0.8], "val_loss": [1.0 + gap, 0.8 + gap]}   # Keras names

    result = kfold(df, probe=train_fn, n_splits=4, clusters=clusters)
    assert len(seen) == 5
    for tr, va in seen[1:]:
        assert not set(clusters[tr]) & set(clusters[va])
        assert len(tr) + len(va) == 240
    assert result.original.gap == pytest.approx(0.1)
    assert np.isnan(result.original.train_loss_eval)
    assert result.verdict.n_folds_val_lower == 0 and not result.verdict.persists
    with pytest.raises(TypeError, match="no effect"):
        kfold(df, probe=train_fn, n_splits=4, lr=0.1)
    with pytest.warns(DeprecationWarning, match="pass n_splits="):
        old_name = kfold(df, probe=train_fn, k=4, clusters=clusters)   # the name kfold's k had before
    assert old_name.verdict.n_folds == 4


def test_regression_target_with_linear_probe():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 6))
    df = pd.DataFrame({"path": [f"{i}.png" for i in range(300)], "split": random_split(300, 7),
                       "label": None, "target": x @ rng.normal(size=6) + rng.normal(size=300) * 0.1})
    result = kfold(df, features=x, n_splits=3, epochs=8, lr=0.05, batch_size=16)
    assert result.original.val_loss < 0.2          # fitted: well below the target variance (1)
    assert len(result.folds) == 3


def test_argument_errors():
    x, y, _ = make_features(n=60)
    df = frame(random_split(60, 0), y)
    with pytest.raises(ValueError, match="needs features"):
        kfold(df, probe="linear")
    with pytest.raises(ValueError, match="features must have shape"):
        kfold(df, features=x[:10])
    with pytest.raises(ValueError, match="probe must be"):
        kfold(df, features=x, probe="svm")
    with pytest.raises(TypeError, match="n_splits must be an int"):
        kfold(df, features=x, n_splits=2.5)
    with pytest.raises(TypeError, match="does not take"):
        kfold(df, features=x, augment=True)
    with pytest.raises(ValueError, match="'split' column"):
        kfold(df.drop(columns="split"), features=x)


def test_run_history_reads_what_train_fn_returns():
    class FakeKerasHistory:  # what model.fit returns: an object with a .history dict
        history = {"loss": [2.0, 1.0], "val_loss": [1.5, 1.2], "accuracy": [0.1, 0.2]}

    h = run_history(FakeKerasHistory())
    assert list(h.columns) == ["epoch", "train_loss", "val_loss", "train_loss_eval"]
    assert h["train_loss"].tolist() == [2.0, 1.0] and h["train_loss_eval"].isna().all()
    csv = pd.DataFrame({"epoch": [0, 1, 2], "loss": [3, 2, 1], "val_loss": [3, 2, 1], "loss_eval": [2, 1, 0.5]})
    h = run_history(csv)
    assert h["epoch"].tolist() == [1, 2, 3] and h["train_loss_eval"].tolist() == [2, 1, 0.5]
    with pytest.raises(HistoryError, match="val_loss"):
        run_history({"loss": [1.0]})
    with pytest.raises(TypeError, match="got list"):
        run_history([1.0, 2.0])


def test_decision_rule_edges():
    consistent_negative = decide(-0.2, np.array([-0.21, -0.19, -0.2, -0.22, -0.18]))
    assert consistent_negative.persists and consistent_negative.percentile_of_original == 50.0
    noisy = decide(-0.05, np.array([0.1, -0.1, 0.05, -0.02, 0.03]))
    assert not noisy.persists and not noisy.split_specific and "chance" in noisy.message
    none = decide(-0.1, np.array([np.nan]))
    assert none.n_folds == 0 and not none.persists


def _write_images(root, n_per_class: int = 100, size: int = 16, seed: int = 0) -> None:
    """Two classes: a vertical or a horizontal bright bar at a random place, plus noise."""
    rng = np.random.default_rng(seed)
    for split, share in (("train", 0.8), ("val", 0.2)):
        for label in ("vertical", "horizontal"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(int(n_per_class * share)):
                img = rng.integers(0, 60, (size, size)).astype(np.uint8)
                pos = rng.integers(2, size - 4)
                if label == "vertical":
                    img[:, pos:pos + 3] = 230
                else:
                    img[pos:pos + 3, :] = 230
                Image.fromarray(img).save(folder / f"{i:03d}.png")


def test_cnn_probe_on_tiny_images(tmp_path):
    pytest.importorskip("torch")
    _write_images(tmp_path)
    split = ImageSplit.from_folder(tmp_path)
    assert len(split) == 200
    result = kfold(split, probe="cnn", n_splits=3, epochs=3, image_size=16, dropout=0.5, augment=True,
                   lr=3e-3, batch_size=32, threads=1)
    assert len(result.folds) == 3
    for run in (result.original, *result.folds):
        h = run.history
        assert len(h) == 3 and h[["train_loss", "train_loss_eval", "val_loss"]].notna().all().all()
    assert result.original.n_train == 160 and result.original.n_val == 40
    # it learns: eval-mode train loss at the end is below chance level (ln 2)
    assert result.original.train_loss_eval < np.log(2)
    with pytest.raises(ValueError, match="dropout must be"):
        kfold(split, probe="cnn", n_splits=3, epochs=1, image_size=16, dropout=0.95)
