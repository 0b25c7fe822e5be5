"""property_drift and embedding_drift on planted shifts and random splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splitaudit.checks.drift import EmbeddingDriftCheck, PropertyDriftCheck
from .test_checks_difficulty import PROPS, make_context, make_world, random_val


def shift_val(world: dict, is_val: np.ndarray, prop: str = "brightness", by_sd: float = 0.8) -> dict:
    """Copy of ``world`` where val images are brighter (and their descriptor moves too)."""
    shifted = {**world, "props": dict(world["props"])}
    values = world["props"][prop].copy()
    values[is_val] += by_sd * values.std()
    shifted["props"][prop] = values
    return shifted


def test_property_drift_false_alarms_are_rare_on_random_splits(tmp_path):
    # nominal rate <= alpha = 1% per split (Holm across properties); allow 2 of 40
    statuses = []
    for seed in range(40):
        world = make_world(n=800, seed=seed)
        result = PropertyDriftCheck().run(make_context(world, random_val(800, seed=seed), tmp_path))
        assert "width" in result.numbers["not_tested"]  # constant
        assert "format" in result.numbers["not_tested"]  # a single format
        assert result.numbers["n_tested"] == len(PROPS) - 1
        statuses.append(result.status)
    assert statuses.count("pass") >= 38, statuses


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_split_passes_embedding_drift(tmp_path, seed):
    world = make_world(n=800, seed=seed)
    adv = EmbeddingDriftCheck().run(make_context(world, random_val(800, seed=seed), tmp_path, random_state=seed))
    assert adv.status == "pass", adv.message
    assert adv.numbers["p_value"] > 0.01
    low, high = adv.numbers["auc_ci"]
    assert low <= adv.numbers["auc"] <= high


def test_brighter_val_is_flagged_by_both(tmp_path):
    world = make_world(n=800, seed=3)
    is_val = random_val(800, seed=3)
    context = make_context(shift_val(world, is_val), is_val, tmp_path)
    prop = PropertyDriftCheck().run(context)
    assert prop.status in ("warn", "fail")
    assert prop.numbers["drifting"] == ["brightness"]
    row = next(r for r in prop.numbers["properties"] if r["property"] == "brightness")
    assert row["smd"] > 0.5 and row["p_holm"] < 0.01 and row["wasserstein_sd"] >= row["smd"] - 1e-9
    others = [r for r in prop.numbers["properties"] if r["property"] != "brightness"]
    assert all(r["p_holm"] >= r["p_value"] for r in others)  # Holm never lowers p
    json.loads(prop.to_json())

    adv = EmbeddingDriftCheck().run(context)
    assert adv.status in ("warn", "fail"), adv.message
    assert adv.numbers["auc"] > 0.6 and adv.numbers["p_value"] < 0.01
    assert "properties" in adv.numbers["features"]
    # the most train-like val images are the least brightened (the lowest brightness in val)
    per_image = adv.per_image
    assert list(per_image.columns) == ["path", "split", "val_likeness"]
    val = per_image[per_image["split"] == "val"]
    brightness = context.fingerprints.table["brightness"]
    assert np.corrcoef(val["val_likeness"], brightness[val.index])[0, 1] > 0.5
    json.loads(adv.to_json())


def test_small_shift_is_significant_but_not_material(tmp_path):
    world = make_world(n=20000, seed=8)
    is_val = random_val(20000, seed=8)
    # 0.1 SD brighter in a large sample: significant, reported, but not a warning
    context = make_context(shift_val(world, is_val, by_sd=0.1), is_val, tmp_path)
    prop = PropertyDriftCheck().run(context)
    row = next(r for r in prop.numbers["properties"] if r["property"] == "brightness")
    assert row["p_holm"] < 0.01 and abs(row["smd"]) < 0.2
    assert not row["drift"] and prop.status == "pass"


def test_format_is_tested_as_categorical(tmp_path):
    world = make_world(n=600, seed=9)
    is_val = random_val(600, seed=9)
    context = make_context(world, is_val, tmp_path)
    table = context.fingerprints.table
    in_val = (context.split.images["split"] == "val").to_numpy()
    table["format"] = np.where(in_val, "JPEG", np.where(np.arange(600) % 3 == 0, "JPEG", "PNG"))
    prop = PropertyDriftCheck().run(context)
    row = next(r for r in prop.numbers["properties"] if r["property"] == "format")
    assert row["test"] == "chi2" and row["cramers_v"] > 0.3 and row["drift"]
    assert prop.status in ("warn", "fail")


def test_subsampling_reports_n_and_scores_every_image(tmp_path):
    world = make_world(n=800, seed=10)
    is_val = random_val(800, seed=10)
    context = make_context(shift_val(world, is_val, by_sd=1.0), is_val, tmp_path,
                           options={"embedding_drift": {"max_samples": 300}})
    adv = EmbeddingDriftCheck().run(context)
    num = adv.numbers
    assert num["subsampled"] and num["n_train"] + num["n_val"] <= 302
    assert num["n_scored"] == 800
    assert adv.per_image["val_likeness"].notna().all()
    assert adv.status in ("warn", "fail")


def test_permutation_p_value_option(tmp_path):
    world = make_world(n=400, seed=11)
    is_val = random_val(400, seed=11)
    options = {"embedding_drift": {"n_permutations": 9, "n_folds": 3}}
    adv = EmbeddingDriftCheck().run(make_context(world, is_val, tmp_path, options=options))
    assert adv.numbers["p_method"].startswith("label permutation")
    assert adv.numbers["p_value"] >= 1 / 10
    assert adv.status == "pass"


def test_unreadable_rows_and_skips(tmp_path):
    world = make_world(n=400, seed=12)
    ok = np.ones(400, bool)
    ok[:13] = False
    context = make_context(world, random_val(400, seed=12), tmp_path, ok=ok)
    adv = EmbeddingDriftCheck().run(context)
    assert adv.numbers["n_unreadable"] == 13
    assert adv.per_image["val_likeness"].isna().sum() == 13
    assert PropertyDriftCheck().run(context).numbers["n_unreadable"] == 13
    bare = make_context(world, random_val(400), tmp_path, fingerprints=False)
    assert PropertyDriftCheck().run(bare).status == "skipped"
    assert EmbeddingDriftCheck().run(bare).status == "skipped"


def test_integration_with_real_fingerprints(tmp_path):
    """All four checks on real PNGs through compute_fingerprints; val images are brighter."""
    from PIL import Image

    from splitaudit import ImageSplit
    from dataclasses import replace

    from splitaudit.checks.base import AuditContext, run_checks
    from splitaudit.checks.difficulty import DifficultyCheck
    from splitaudit.checks.labels import LabelDistributionCheck
    from splitaudit.fingerprints import compute_fingerprints

    rng = np.random.default_rng(0)
    for split, offset in (("train", 0), ("val", 70)):
        for cls in ("stripes", "checks"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(30 if split == "train" else 12):
                yy, xx = np.mgrid[:32, :32]
                base = (yy // 4 % 2) if cls == "stripes" else ((yy // 4 + xx // 4) % 2)
                pixels = 60 + 80 * base + rng.normal(0, 20, (32, 32)) + offset
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    split = ImageSplit.from_folder(tmp_path)
    fingerprints = compute_fingerprints(split, jobs=1)
    from splitaudit.retrain.probes import difficulty_probe_loss

    context = AuditContext(split=split, fingerprints=fingerprints,
                           options={"difficulty": {"n_permutations": 199, "n_bootstrap": 200}})
    context = replace(context, probe_loss=difficulty_probe_loss(context))
    checks = [LabelDistributionCheck(), PropertyDriftCheck(), EmbeddingDriftCheck(), DifficultyCheck()]
    results = {r.check: r for r in run_checks(checks, context)}
    assert not [r.message for r in results.values() if r.status == "error"]
    assert results["label_distribution"].status == "pass"
    assert "brightness" in results["property_drift"].numbers["drifting"]
    assert results["embedding_drift"].status in ("warn", "fail")
    assert len(results["difficulty"].per_image) == len(split.images)
    for result in results.values():
        json.loads(result.to_json())
