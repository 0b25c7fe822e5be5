"""The shipped learned verifier: weights, features, planted edits found, look-alikes rejected."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from splitaudit import ImageSplit
from splitaudit.duplicates import find_duplicates
from splitaudit.duplicates.learned import (FEATURES, WEIGHTS_FILE, LearnedVerifier, aligned_correlation,
                                           blur_correlation, centred_embeddings, load_verifier, pair_features)
from splitaudit.fingerprints import compute_fingerprints


def _garment(rng, size=28):
    """A small grey 'garment' on black: a textured polygon, like Fashion-MNIST."""
    im = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(im)
    cx, cy = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
    radius = rng.uniform(6, 12, 7)
    draw.polygon([(cx + r * np.cos(t), cy + r * np.sin(t)) for r, t in zip(radius, angles)],
                 fill=int(rng.integers(90, 220)))
    arr = np.asarray(im, np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    texture = 30 * np.sin(xx * rng.uniform(0.3, 1.2) + yy * rng.uniform(0.3, 1.2)) + rng.normal(0, 12, arr.shape)
    arr = np.where(arr > 0, np.clip(arr + texture, 20, 255), 0)
    return Image.fromarray(arr.astype(np.uint8))


def _jpeg(im):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=40)
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")


EDITS = [
    lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    lambda im: ImageEnhance.Brightness(im).enhance(1.25),
    _jpeg,
    lambda im: im.rotate(6, resample=Image.BILINEAR),
    lambda im: im.resize((56, 56), Image.BICUBIC),
    lambda im: ImageEnhance.Contrast(im).enhance(0.7),
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """train: 30 originals; val: an edited copy of each of the first 6 and 10 fresh look-alikes."""
    from splitaudit.fingerprints.embeddings import embed_images

    root = tmp_path_factory.mktemp("learned")
    rng = np.random.default_rng(7)
    originals = [_garment(rng) for _ in range(30)]
    for side in ("train", "val"):
        (root / side / "x").mkdir(parents=True)
    for i, im in enumerate(originals):
        im.save(root / "train" / "x" / f"o{i:02d}.png")
    for i, edit in enumerate(EDITS):
        edit(originals[i]).save(root / "val" / "x" / f"copy{i:02d}.png")
    for i in range(10):
        _garment(rng).save(root / "val" / "x" / f"new{i:02d}.png")
    split = ImageSplit.from_folder(root)
    fps = compute_fingerprints(split, jobs=1)
    emb = embed_images(split, threads=1).vectors
    return split, fps, emb


def test_weights_load_and_record_their_provenance():
    v = load_verifier()
    assert isinstance(v, LearnedVerifier) and WEIGHTS_FILE.is_file()
    assert v.features == FEATURES
    assert len(v.mean) == len(v.scale) == len(FEATURES) == v.weights[0].shape[0]
    assert v.weights[-1].shape[1] == 1 and np.all(v.scale > 0)
    assert 0.0 < v.threshold < 1.0
    for key in ("training_command", "n_pairs", "n_copies", "sklearn_version", "threshold_precision"):
        assert key in v.meta, key
    with np.load(WEIGHTS_FILE, allow_pickle=False) as z:  # plain arrays, no pickle needed
        assert json.loads(str(z["meta_json"]))["features"] == list(FEATURES)


def test_threshold_is_calibrated_on_real_negatives_disjoint_from_the_benchmarks():
    """The shipped threshold keeps out-of-fold false pairs on real look-alikes within its budget."""
    m = load_verifier().meta
    for key in ("real_queries", "real_pairs", "real_fp_rate_budget", "oof_real_false_pairs",
                "oof_real_same_photo_found", "real_pairs_same_photo"):
        assert key in m, key
    assert m["real_pairs"] > 10 * m["real_queries"] / 2  # many look-alike candidates per query
    assert m["oof_real_false_pairs"] <= m["real_fp_rate_budget"] * m["real_queries"]
    assert m["oof_real_same_photo_found"] <= m["real_pairs_same_photo"]
    assert "disjoint" in m["training_data"]


def test_predict_is_deterministic_monotone_in_evidence_and_checks_shape():
    v = load_verifier()
    rng = np.random.default_rng(0)
    x = rng.normal(v.mean, v.scale, (50, len(FEATURES)))
    p1, p2 = v.predict_proba(x), v.predict_proba(x.copy())
    assert np.array_equal(p1, p2) and np.all((p1 >= 0) & (p1 <= 1))
    with pytest.raises(ValueError, match="shape"):
        v.predict_proba(x[:, :3])


def test_save_load_round_trip(tmp_path):
    v = load_verifier()
    path = tmp_path / "copy.npz"
    v.save(path)
    w = load_verifier(path)
    x = np.random.default_rng(1).normal(v.mean, v.scale, (20, len(FEATURES)))
    assert np.array_equal(v.predict_proba(x), w.predict_proba(x))
    assert w.threshold == v.threshold and w.gate_corr == v.gate_corr


def test_aligned_correlation_sees_through_mirror_and_shift():
    rng = np.random.default_rng(3)
    base = np.asarray(_garment(rng).resize((32, 32)))
    other = np.asarray(_garment(rng).resize((32, 32)))
    thumbs = np.stack([base, base[:, ::-1], np.roll(base, 2, axis=1), other])
    corr = aligned_correlation(thumbs, np.array([0, 0, 0]), np.array([1, 2, 3]))
    assert corr[0] > 0.99 and corr[1] > 0.99
    assert corr[2] < corr[0]


def test_features_match_their_names(planted):
    split, fps, emb = planted
    images = split.images
    val = np.flatnonzero(images["split"] == "val")
    train = np.flatnonzero(images["split"] == "train")
    a = np.repeat(val[:3], 2)
    b = np.array([train[0], train[1]] * 3)
    emb_c = centred_embeddings(emb)
    x = pd.DataFrame(pair_features(fps, emb_c, a, b), columns=FEATURES)
    assert np.allclose(x["embedding_cos"], (emb_c[a] * emb_c[b]).sum(1), atol=1e-5)
    assert np.allclose(x["descriptor_cos"], (fps.descriptor[a] * fps.descriptor[b]).sum(1), atol=1e-5)
    t = fps.table
    d = lambda h, s: np.bitwise_count(t[h + s].to_numpy(np.uint64)[a] ^ t[h].to_numpy(np.uint64)[b])
    expect = np.minimum(np.maximum(d("phash", ""), d("dhash", "")), np.maximum(d("phash", "_flip"), d("dhash", "_flip")))
    assert np.allclose(x["hash_dist"], expect / 32.0)
    assert np.allclose(x["corr"], aligned_correlation(fps.thumbs, a, b), atol=1e-6)
    assert (x["log_geo_nrms"] <= 0).all() and (x["geo_corr"] <= 1 + 1e-6).all()
    # margins: the pair's corr minus the best other pair's of the same image, the larger of both sides
    corr = x["corr"].to_numpy()
    expect = []
    for i in range(len(a)):
        sides = []
        for key in (a, b):
            others = corr[(key == key[i]) & (np.arange(len(a)) != i)]
            sides.append(np.clip(corr[i] - others.max(), -1, 1) if len(others) else 1.0)
        expect.append(max(sides))
    assert np.allclose(x["margin_corr"], expect, atol=1e-6)
    # chunks in threads give the very same matrix as the same chunks in turn (margins over all pairs)
    np.testing.assert_array_equal(pair_features(fps, emb_c, a, b, jobs=2, chunk=2),
                                  pair_features(fps, emb_c, a, b, jobs=1, chunk=2))
    np.testing.assert_allclose(pair_features(fps, emb_c, a, b, chunk=2), x.to_numpy(), atol=1e-4)
    blur = np.log(np.clip(1 - blur_correlation(fps.thumbs, a, b), 1e-4, 1))
    assert np.allclose(x["log_blur_resid"], blur) and (x["log_blur_resid"] <= 0).all()


def test_blur_correlation_matches_a_direct_computation_and_sees_blurred_copies():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(5)
    garments = [np.asarray(_garment(rng).resize((32, 32), Image.BILINEAR), np.float32) for _ in range(12)]
    blurred = [gaussian_filter(g, 0.9) for g in garments[:4]]
    thumbs = np.clip(np.round(np.stack(garments + blurred)), 0, 255).astype(np.uint8)

    def std(t):
        t = t - t.mean()
        return t / np.linalg.norm(t)

    a, b = np.array([12, 13, 0, 5]), np.array([0, 1, 5, 0])
    got = blur_correlation(thumbs, a, b)
    for i, j, g in zip(a, b, got):  # brute force: every sigma, direction and mirror
        t = thumbs.astype(np.float32)
        best = max(float((std(gaussian_filter(t[p], s) if s else t[p]) * std(o)).sum())
                   for s in (0.0, 0.6, 1.0, 1.5) for p, q in ((i, j), (j, i)) for o in (t[q], t[q][:, ::-1]))
        assert abs(g - best) < 1e-5
    # each blurred copy correlates better with its own original than with any other garment
    for k in range(4):
        scores = blur_correlation(thumbs, np.full(12, 12 + k), np.arange(12))
        assert scores.argmax() == k and scores[k] > 0.99 and np.sort(scores)[-2] < scores[k] - 0.02


def test_learned_finds_planted_edits_and_rejects_look_alikes(planted):
    split, fps, emb = planted
    images = split.images
    res = find_duplicates(fps, images, embeddings=emb, verifier="learned", within=False)
    again = find_duplicates(fps, images, embeddings=emb, verifier="learned", within=False)
    pd.testing.assert_frame_equal(res.pairs, again.pairs)  # deterministic
    pairs = res.pairs
    assert res.params["verifier"] == "learned"
    found = set(zip(pairs["val_path"].str.extract(r"copy(\d+)")[0].dropna().astype(int),
                    pairs.loc[pairs["val_path"].str.contains("copy"), "train_path"].str.extract(r"o(\d+)")[0]
                    .astype(int)))
    hits = sum((i, i) in found for i in range(len(EDITS)))
    assert hits >= len(EDITS) - 1, pairs[["val_path", "train_path", "score"]]
    look_alike_pairs = pairs["val_path"].str.contains("new").sum()
    wrong_copy_pairs = sum(v != t for v, t in found)
    assert look_alike_pairs == 0 and wrong_copy_pairs == 0, pairs[["val_path", "train_path", "score"]]
    assert (pairs["score"] >= 0.5).all()


def test_learned_reports_every_pair_the_default_reports(planted):
    """verifier='learned' adds to the default evidence: its pairs include the default's, scores >= 0.5."""
    split, fps, emb = planted
    default = find_duplicates(fps, split.images, embeddings=emb, within=False).pairs
    learned = find_duplicates(fps, split.images, embeddings=emb, verifier="learned", within=False).pairs
    key = lambda df: set(zip(df["val_index"], df["train_index"]))
    assert len(default) > 0 and key(default) <= key(learned)
    both = default.merge(learned, on=["val_index", "train_index"], suffixes=("_d", "_l"))
    assert (both["score_l"] >= both["score_d"] - 1e-9).all()


def test_learned_needs_embeddings_and_a_known_name(planted):
    split, fps, emb = planted
    with pytest.raises(ValueError, match="embeddings"):
        find_duplicates(fps, split.images, verifier="learned")
    with pytest.raises(ValueError, match="verifier"):
        find_duplicates(fps, split.images, embeddings=emb, verifier="mlp")
