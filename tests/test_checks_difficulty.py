"""Difficulty check and the shared statistics helpers, on planted synthetic data.

``make_context`` is reused by the label and drift tests.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from splitaudit import ImageSplit
from splitaudit.checks import _stats
from splitaudit.checks.base import REGISTRY, AuditContext, load_check, run_checks
from splitaudit.checks.difficulty import DifficultyCheck, ProbeLoss
from splitaudit.cli import main
from splitaudit.retrain.probes import difficulty_probe_loss, probe_difficulty

from .conftest import write_split_folder

PROPS = ["width", "height", "aspect", "file_size", "brightness", "contrast",
         "sharpness", "entropy", "colourfulness", "jpeg_quality"]


def make_world(n: int = 600, n_classes: int = 4, dim: int = 16, seed: int = 0) -> dict:
    """Planted data: each image lies a fraction ``hardness`` of the way from its
    class centre towards another class's centre, so the true difficulty is known."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, n_classes, n)
    other = (label + rng.integers(1, n_classes, n)) % n_classes
    centres = rng.normal(0, 1.0, (n_classes, dim))
    hardness = rng.uniform(0, 0.65, n)
    features = ((1 - hardness[:, None]) * centres[label] + hardness[:, None] * centres[other]
                + rng.normal(0, 0.6, (n, dim)))
    props = {p: rng.normal(10, 2, n) for p in PROPS}
    props["width"] = np.full(n, 64.0)  # constant: must be reported as not tested
    target = 2 * features[:, 0] + rng.normal(0, 1, n) * (0.2 + 3 * hardness)
    return {"label": label, "features": features.astype(np.float32), "hardness": hardness,
            "props": props, "target": target}


def make_context(world: dict, is_val: np.ndarray, root, *, labels=True, targets=False,
                 ok: np.ndarray | None = None, fingerprints: bool = True, **context_kw) -> AuditContext:
    """Build an ImageSplit + fingerprint stand-in, rows aligned with the split's order."""
    n = len(is_val)
    frame = pd.DataFrame({"path": [f"img_{i:05d}.png" for i in range(n)],
                          "split": np.where(is_val, "val", "train")})
    if labels:
        frame["label"] = [f"class{c}" for c in world["label"]]
    if targets:
        frame["target"] = world["target"]
    split = ImageSplit.from_frame(frame, root=root)
    order = split.images["path"].str.slice(4, 9).astype(int).to_numpy()  # original row of each image
    fp = None
    if fingerprints:
        table = pd.DataFrame({p: v[order] for p, v in world["props"].items()})
        table.insert(0, "path", split.images["path"].to_numpy())
        table["format"] = "PNG"
        table["ok"] = True if ok is None else ok[order]
        desc = world["features"][order]
        desc = desc / np.linalg.norm(desc, axis=1, keepdims=True)
        fp = SimpleNamespace(table=table, descriptor=desc.astype(np.float32))
    context_kw.setdefault("options", {"difficulty": {"n_permutations": 499, "n_bootstrap": 400}})
    return AuditContext(split=split, fingerprints=fp, **context_kw)


def run_difficulty(context: AuditContext):
    """The difficulty check on ``context`` with the probe fitted first, as the pipeline does."""
    return DifficultyCheck().run(replace(context, probe_loss=difficulty_probe_loss(context)))


def random_val(n: int, frac: float = 0.25, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    is_val = np.zeros(n, bool)
    is_val[rng.choice(n, int(n * frac), replace=False)] = True
    return is_val


def easy_val(world: dict, frac: float = 0.25, strength: float = 4.0, seed: int = 0) -> np.ndarray:
    """Val drawn with weights favouring images with low planted hardness."""
    rng = np.random.default_rng(seed + 2000)
    n = len(world["hardness"])
    weights = np.exp(-strength * world["hardness"])
    is_val = np.zeros(n, bool)
    is_val[rng.choice(n, int(n * frac), replace=False, p=weights / weights.sum())] = True
    return is_val


# ------------------------------------------------------------------ stats
def test_holm_and_bh_match_definitions():
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan])
    holm = _stats.holm(p)
    assert np.isnan(holm[-1])
    # Holm: sorted p times (m, m-1, ...) with running max
    assert np.allclose(holm[:4], [0.04, 0.09, 0.09, 0.2])
    bh = _stats.benjamini_hochberg(p[:4])
    assert np.allclose(bh, [0.04, 0.0533333, 0.0533333, 0.2])
    assert (holm[:4] >= bh).all()


def test_auc_matches_sklearn_and_p_value_direction():
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.3
    scores = rng.normal(size=400) + 0.8 * y
    auc, p = _stats.auc_mann_whitney(scores, y)
    assert auc == pytest.approx(roc_auc_score(y, scores))
    assert p < 1e-6
    exact = stats.mannwhitneyu(scores[y], scores[~y], alternative="greater", method="asymptotic",
                               use_continuity=False).pvalue
    assert p == pytest.approx(exact, rel=1e-6)
    low, high = _stats.auc_ci_hanley_mcneil(auc, int(y.sum()), int((~y).sum()))
    assert low < auc < high


def test_permutation_pvalue_detects_shift_and_is_calibrated():
    rng = np.random.default_rng(4)
    group = np.r_[np.zeros(300, bool), np.ones(100, bool)]
    shifted = rng.exponential(1, 400) + 0.5 * group
    assert _stats.permutation_pvalue(shifted, group, n_permutations=499, rng=rng) < 0.01
    null_p = [_stats.permutation_pvalue(rng.exponential(1, 400), group, n_permutations=99, rng=rng)
              for _ in range(60)]
    assert 0.3 < np.mean(null_p) < 0.7  # uniform under the null
    assert min(null_p) >= 1 / 100


def test_mean_difference_ci_covers_truth():
    rng = np.random.default_rng(5)
    a, b = rng.normal(1.0, 1, 2000), rng.normal(0.8, 1, 1000)
    res = _stats.mean_difference(a, b, rng=rng, n_permutations=199, n_bootstrap=500)
    assert res["ci_low"] < -0.2 < res["ci_high"]
    assert res["relative_ci_low"] < res["relative"] < res["relative_ci_high"]
    assert res["cohens_d"] == pytest.approx(-0.2, abs=0.1)


def test_features_of_prefers_embeddings():
    desc = np.ones((3, 4), np.float32)
    ctx = SimpleNamespace(embeddings=None, fingerprints=SimpleNamespace(descriptor=desc))
    assert _stats.features_of(ctx)[1] == "descriptor"
    ctx.embeddings = np.zeros((3, 2))
    x, source = _stats.features_of(ctx)
    assert source == "embeddings" and x.shape == (3, 2)


def test_option_rejects_wrong_type():
    ctx = SimpleNamespace(options={"difficulty": {"alpha": "small"}})
    with pytest.raises(TypeError, match="alpha"):
        _stats.option(ctx, "difficulty", "alpha", 0.01)


# ------------------------------------------------------------- difficulty
def test_probe_difficulty_tracks_planted_hardness():
    world = make_world(seed=1)
    loss = probe_difficulty(world["features"], labels=world["label"], random_state=0)
    rho = stats.spearmanr(loss, world["hardness"]).statistic
    assert rho > 0.5
    reg = probe_difficulty(world["features"], targets=world["target"])
    assert stats.spearmanr(reg, world["hardness"]).statistic > 0.3
    with pytest.raises(ValueError, match="exactly one"):
        probe_difficulty(world["features"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_split_is_not_flagged(tmp_path, seed):
    world = make_world(seed=seed)
    result = run_difficulty(make_context(world, random_val(600, seed=seed), tmp_path, random_state=seed))
    assert result.status == "pass", result.message
    assert result.numbers["direction"] == "none"
    low, high = result.numbers["relative_ci"]
    assert low < high
    assert result.numbers["n_train"] + result.numbers["n_val"] == 600


@pytest.mark.parametrize("seed", [0, 1])
def test_val_with_easiest_images_is_val_easier(tmp_path, seed):
    world = make_world(seed=seed)
    result = run_difficulty(make_context(world, easy_val(world, seed=seed), tmp_path, random_state=seed))
    num = result.numbers
    assert result.status in ("warn", "fail")
    assert num["direction"] == "val_easier"
    assert num["p_value"] < num["thresholds"]["alpha"]
    assert num["relative_ci"][1] < 0 and num["difference_ci"][1] < 0
    assert num["cohens_d"] < 0
    assert len(num["per_class"]) == 4 and all("p_holm" in row for row in num["per_class"])
    json.loads(result.to_json())  # strict JSON


def test_per_image_difficulty_and_unreadable_rows(tmp_path):
    world = make_world()
    ok = np.ones(600, bool)
    ok[:7] = False
    context = make_context(world, random_val(600), tmp_path, ok=ok)
    result = run_difficulty(context)
    per_image = result.per_image
    assert list(per_image.columns) == ["path", "split", "label", "difficulty"]
    assert per_image.index.equals(context.split.images.index)
    assert per_image["difficulty"].isna().sum() == 7
    assert result.numbers["n_unreadable"] == 7
    assert (per_image["difficulty"].dropna() >= 0).all()


def test_user_image_loss_replaces_probe(tmp_path):
    world = make_world()
    is_val = random_val(600)
    context = make_context(world, is_val, tmp_path)
    val_rows = (context.split.images["split"] == "val").to_numpy()
    loss = np.random.default_rng(0).gamma(2.0, 0.5, 600) * np.where(val_rows, 0.6, 1.0)
    context = replace(context, image_loss=loss)
    result = run_difficulty(context)
    assert result.numbers["source"] == "user image_loss"
    assert result.numbers["direction"] == "val_easier"
    assert np.allclose(result.per_image["difficulty"], loss)
    context = replace(context, image_loss=loss[:10])
    with pytest.raises(ValueError, match="image_loss"):
        run_difficulty(context)


def test_harder_val_and_regression_targets(tmp_path):
    world = make_world(seed=3)
    hard = ~easy_val(world, frac=0.75, seed=3)  # val = what an easy train left over
    result = run_difficulty(make_context(world, hard, tmp_path, labels=False, targets=True))
    assert "squared error" in result.numbers["source"]
    assert result.numbers["direction"] == "val_harder"
    assert result.numbers["per_class"] == []


@pytest.mark.parametrize("settings, match", [
    ({"alpha": 1.5}, "alpha"),
    ({"n_permutations": 50}, "n_permutations"),
    ({"min_relative": 0.3, "fail_relative": 0.2}, "min_relative"),
])
def test_settings_that_cannot_work_are_rejected(tmp_path, settings, match):
    context = make_context(make_world(n=100), random_val(100), tmp_path, options={"difficulty": settings})
    with pytest.raises(ValueError, match=match):
        run_difficulty(context)


def test_skipped_without_labels_or_features(tmp_path):
    world = make_world()
    no_labels = make_context(world, random_val(600), tmp_path, labels=False)
    assert run_difficulty(no_labels).status == "skipped"
    no_features = make_context(world, random_val(600), tmp_path, fingerprints=False)
    result = run_difficulty(no_features)
    assert result.status == "skipped" and "probe" in result.message


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"{constant} in JSON")
    return json.loads(text, parse_constant=refuse)


def test_one_class_folder_says_why_difficulty_is_not_compared(tmp_path, capsys):
    """A 20-image folder with a single class: every probe loss is 0, so the val/train ratio is 0/0.
    The scan must say so plainly instead of printing "+nan%", and summary.json must stay strict."""
    write_split_folder(tmp_path / "data", classes=("cat",), n_train=16, n_val=4, transforms=(), exact=(),
                       n_look_alikes=0, within=(), conflict=False)
    out = tmp_path / "out"
    code = main(["scan", str(tmp_path / "data"), "--out", str(out), "--no-cache", "--jobs", "1", "--no-html"])
    text = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 0
    assert "nan%" not in text.lower()
    summary = _strict_json((out / "summary.json").read_text())
    (finding,) = [f for f in summary["findings"] if f["check"] == "difficulty"]
    assert finding["status"] == "skipped"
    assert "same class (cat)" in finding["reason"] and "every loss would be 0" in finding["message"]
    assert "difficulty skipped Difficulty not compared: all 20 usable labelled images" in text


@pytest.mark.parametrize("train_loss, val_loss, reason", [
    (0.0, 0.0, "every usable image has loss 0"),
    (0.0, 1.0, "mean train loss is 0"),
])
def test_ratio_that_cannot_be_estimated_is_skipped_with_its_reason(tmp_path, train_loss, val_loss, reason):
    """A val/train ratio of x/0 is no evidence either way: ``skipped`` with the reason, no "+nan%"."""
    context = make_context(make_world(n=100), random_val(100), tmp_path)
    is_val = (context.split.images["split"] == "val").to_numpy()
    result = run_difficulty(replace(context, image_loss=np.where(is_val, val_loss, train_loss)))
    assert result.status == "skipped" and result.numbers["direction"] == "none"
    assert reason in result.numbers["reason"] and reason in result.message
    assert "could not estimate" in result.message and "nan" not in result.message.lower()
    finding = _strict_json(result.to_json())
    assert finding["relative"] is None and finding["n_train"] == int((~is_val).sum())


def test_checks_are_registered():
    assert {"difficulty", "label_distribution", "property_drift", "embedding_drift"} <= set(REGISTRY)
    for name in REGISTRY:
        assert load_check(name).name == name


def test_check_that_cannot_be_loaded_is_an_error_finding(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, "ghost", ("no_such_module", "Ghost"))
    monkeypatch.setitem(REGISTRY, "nameless", ("difficulty", "NoSuchClass"))
    context = make_context(make_world(n=100), random_val(100), tmp_path)
    ghost, nameless, labels = run_checks(["ghost", "nameless", "label_distribution"], context)
    assert (ghost.check, ghost.status) == ("ghost", "error") and "no_such_module" in ghost.message
    assert nameless.status == "error" and "NoSuchClass" in nameless.message
    assert labels.status != "error"  # the others still run


def test_difficulty_without_fitted_probe_is_an_error_not_a_silent_pass(tmp_path):
    context = make_context(make_world(n=100), random_val(100), tmp_path)
    (result,) = run_checks([DifficultyCheck()], context)
    assert result.status == "error" and "probe_loss" in result.message


def test_probe_failure_and_warnings_reach_the_finding(tmp_path):
    context = make_context(make_world(n=100), random_val(100), tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("probe hiccup", RuntimeWarning)
    failed = replace(context, probe_loss=ProbeLoss(error=FloatingPointError("probe diverged"),
                                                   warnings=tuple(caught)))
    (result,) = run_checks([DifficultyCheck()], failed)
    assert result.status == "error" and result.message == "FloatingPointError: probe diverged"
    assert result.numbers["warnings"] == ["RuntimeWarning: probe hiccup"]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_probe_threads_give_the_same_losses(task):
    """Folds fitted on threads must give exactly the losses of a plain loop."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(900, 20))
    if task == "classification":
        kwargs = {"labels": (x[:, 0] + 0.5 * rng.normal(size=900) > 0).astype(int) + (x[:, 1] > 1)}
    else:
        kwargs = {"targets": x[:, 0] * 2 + rng.normal(size=900)}
    one = probe_difficulty(x, jobs=1, **kwargs)
    two = probe_difficulty(x, jobs=2, **kwargs)
    assert np.isfinite(one).all() and one.std() > 0
    np.testing.assert_array_equal(one, two)
