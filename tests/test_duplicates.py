"""Cross-split duplicate engine: planted copies found, look-alikes not, checks, clusters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from splitaudit import ImageSplit
from splitaudit.checks.base import REGISTRY, AuditContext, run_checks
from splitaudit.checks.duplicates import ExactDuplicates, LabelConflicts, NearDuplicates
from splitaudit.duplicates import (
    duplicate_clusters,
    expected_cross,
    find_duplicates,
    hamming_range,
)
from splitaudit.fingerprints import compute_fingerprints

from .conftest import EXACT_KINDS, TRANSFORMS, look_alike, synthetic_image, write_split_folder


@pytest.fixture(scope="module")
def planted(planted_split):
    split = ImageSplit.from_folder(planted_split.root)
    fps = compute_fingerprints(split, jobs=1)
    stages = []
    result = find_duplicates(fps, split.images, progress=lambda s, d, t: stages.append(s))
    return planted_split, split, fps, result, stages


@pytest.fixture(scope="module")
def clean(clean_split):
    split = ImageSplit.from_folder(clean_split.root)
    fps = compute_fingerprints(split, jobs=1)
    return clean_split, split, fps, find_duplicates(fps, split.images)


def _pair_set(frame: pd.DataFrame, a: str, b: str) -> set[tuple[str, str]]:
    return set(zip(frame[a], frame[b]))


def check_result_invariants(result, split):
    """Invariants every DuplicateResult must satisfy."""
    images = split.images
    p = result.pairs
    assert (images["split"].to_numpy()[p["val_index"]] == "val").all()
    assert (images["split"].to_numpy()[p["train_index"]] == "train").all()
    assert p["score"].between(0, 1).all()
    assert set(p["kind"]) <= {"exact", "near", "overlap"}
    assert not p.duplicated(["val_index", "train_index"]).any()
    w = result.within
    assert (w["index_a"] < w["index_b"]).all()
    sides = images["split"].to_numpy()
    assert (sides[w["index_a"]] == w["split"]).all() and (sides[w["index_b"]] == w["split"]).all()
    assert len(result.clusters) == len(images)
    # Every reported pair lies inside one cluster.
    c = result.clusters
    assert (c[p["val_index"]] == c[p["train_index"]]).all()
    assert (c[w["index_a"]] == c[w["index_b"]]).all()


@pytest.mark.parametrize("kind", list(TRANSFORMS) + list(EXACT_KINDS))
def test_each_planted_copy_is_found(planted, kind):
    info, split, _, result, _ = planted
    found = _pair_set(result.pairs, "val_path", "train_path")
    assert info.copies[kind] in found
    row = result.pairs[(result.pairs["val_path"] == info.copies[kind][0])
                       & (result.pairs["train_path"] == info.copies[kind][1])].iloc[0]
    assert row["kind"] == ("exact" if kind in EXACT_KINDS else "near")
    assert row["score"] >= 0.5
    if kind == "flip":
        assert bool(row["flipped"])
    if kind == "same_bytes":
        assert bool(row["exact_bytes"])
    if kind == "same_pixels":
        assert bool(row["exact_pixels"]) and not bool(row["exact_bytes"])


def test_only_planted_pairs_reported(planted):
    info, split, _, result, _ = planted
    found = _pair_set(result.pairs, "val_path", "train_path")
    expected = set(info.copies.values()) | set(info.conflicts)
    assert found == expected
    check_result_invariants(result, split)


def test_look_alikes_not_reported(planted, clean):
    for info, result in ((planted[0], planted[3]), (clean[0], clean[3])):
        found = _pair_set(result.pairs, "val_path", "train_path")
        assert info.look_alikes and not (set(info.look_alikes) & found)


def test_clean_split_has_no_pairs(clean):
    _, split, _, result = clean
    assert result.pairs.empty and result.within.empty
    assert len(np.unique(result.clusters)) == len(split.images)
    check_result_invariants(result, split)


def test_within_split_pairs(planted):
    info, split, _, result, _ = planted
    within = _pair_set(result.within, "path_a", "path_b") | _pair_set(result.within, "path_b", "path_a")
    for kind, pair in info.within.items():
        assert pair in within, kind
    assert (result.within["split"] == "train").sum() == len(info.within)
    # Within pairs never leak into the cross-split table.
    cross = _pair_set(result.pairs, "val_path", "train_path")
    assert not any(pair in cross for pair in info.within.values())


def test_label_conflicts(planted):
    info, _, _, result, _ = planted
    conflicts = result.pairs[result.pairs["label_conflict"]]
    assert _pair_set(conflicts, "val_path", "train_path") == set(info.conflicts)
    same = result.pairs[~result.pairs["label_conflict"]]
    assert (same["val_label"] == same["train_label"]).all()


def test_clusters_join_copies_across_and_within(planted):
    info, split, _, result, _ = planted
    pos = {p: i for i, p in enumerate(split.images["path"])}
    c = result.clusters
    for v, t in info.copies.values():
        assert c[pos[v]] == c[pos[t]]
    a, b = info.within["jpeg_q30"]
    assert c[pos[a]] == c[pos[b]]
    v, t = info.look_alikes[0]
    assert c[pos[v]] != c[pos[t]]
    sizes = np.bincount(c)
    assert sizes.max() == 2  # every planted group is a pair


def test_duplicate_clusters_components():
    c = duplicate_clusters(6, [0, 1, 4], [1, 2, 5])
    assert c[0] == c[1] == c[2] and c[4] == c[5] and len({c[0], c[3], c[4]}) == 3
    assert duplicate_clusters(3, [], []).tolist() == [0, 1, 2]


def test_expected_estimator():
    # A random split keeps the duplicate pair rate: ratio near 1.
    e = expected_cross(800, 200, within_train=400, within_val=25, observed=200)
    rate = 425 / (800 * 799 / 2 + 200 * 199 / 2)
    assert e["expected"] == pytest.approx(rate * 800 * 200)
    assert 0.5 < e["ratio"] < 1.5 and e["p_value"] > 0.05
    leaky = expected_cross(800, 200, within_train=400, within_val=25, observed=600)
    assert leaky["ratio"] > 2 and leaky["p_value"] < 1e-6
    none = expected_cross(10, 5, 0, 0, 0)
    assert none["expected"] == 0 and none["p_value"] == 1.0


def test_random_split_of_duplicates_not_called_excess(tmp_path):
    """Copies spread at random over the splits give observed ~ expected."""
    rng = np.random.default_rng(3)
    n_groups, root = 14, tmp_path
    for g in range(n_groups):
        from .conftest import synthetic_image
        img = synthetic_image(500 + g)
        for j in range(3):  # three JPEG copies per photo, each placed at random
            side = "train" if rng.random() < 0.6 else "val"
            (root / side / "x").mkdir(parents=True, exist_ok=True)
            img.save(root / side / "x" / f"g{g}_{j}.jpg", quality=[95, 60, 40][j])
    split = ImageSplit.from_folder(root)
    res = find_duplicates(compute_fingerprints(split, jobs=1), split.images)
    e = res.expected
    assert e["observed"] > 0
    assert e["p_value"] > 0.01, e
    assert (np.bincount(res.clusters) <= 3).all()


def test_hamming_range_backends_agree():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 500, dtype=np.uint64)
    flips = np.uint64(1) << rng.integers(0, 64, (50, 3)).astype(np.uint64)
    queries = base[:50] ^ flips[:, 0] ^ flips[:, 1]
    ref = None
    for backend in ("numpy", "faiss"):
        qi, bi, d = hamming_range(queries, base, 3, backend=backend)
        got = sorted(zip(qi.tolist(), bi.tolist(), d.tolist()))
        brute = [(i, j, int(np.bitwise_count(queries[i] ^ base[j])))
                 for i in range(50) for j in range(500)]
        assert got == sorted(t for t in brute if t[2] <= 3)
        ref = got if ref is None else ref
        assert got == ref
    qi, bi, _ = hamming_range(base, base, 0, backend="numpy", upper_only=True)
    assert (qi < bi).all()


def _brute_mirror_pairs(x, n_q, b_start, same, thr_range, rng):
    """Brute-force pairs within per-row thresholds, as is or mirrored: queries x[:n_q] against
    base x[b_start:] (or x against itself, upper triangle, when ``same``)."""
    xm = x.reshape(-1, 16, 16)[:, :, ::-1].reshape(len(x), -1)
    q, b, qm_b = (x, x, xm) if same else (x[:n_q], x[b_start:], xm[b_start:])
    best = np.minimum(((q[:, None] - b[None]) ** 2).sum(-1), ((q[:, None] - qm_b[None]) ** 2).sum(-1))
    thr_q = rng.uniform(*thr_range, len(q)).astype(np.float32)
    thr_b = thr_q if same else rng.uniform(*thr_range, len(b)).astype(np.float32)
    ok = best <= np.maximum(thr_q[:, None], thr_b[None])
    if same:
        ok = np.triu(ok, 1)
    return set(map(tuple, np.argwhere(ok))), best, thr_q, thr_b


@pytest.mark.parametrize("same", [False, True])
def test_mirror_range_matches_brute_force(same):
    from splitaudit.search.mirror import mirror_project, mirror_range, thumb_vectors

    rng = np.random.default_rng(3)
    thumbs = rng.integers(0, 256, (300, 32, 32)).astype(np.uint8)
    thumbs[150:] = np.clip(thumbs[:150, :, ::-1] + rng.normal(0, 40, (150, 32, 32)), 0, 255)
    x = thumb_vectors(thumbs)
    want, best, thr_q, thr_b = _brute_mirror_pairs(x, 120, 100, same, (0.5, 1.5), rng)
    assert want  # the planted mirrored copies are within range
    sym, anti = mirror_project(x, 256)  # all axes: distances are exact
    cq = (sym, anti) if same else (sym[:120], anti[:120])
    cb = (sym, anti) if same else (sym[100:], anti[100:])
    qi, bi, d2 = mirror_range(cq, cb, (thr_q, thr_b), same=same, block=64, jobs=2)
    assert set(zip(qi.tolist(), bi.tolist())) == want
    np.testing.assert_allclose(d2, best[qi, bi], atol=1e-4)
    # Fewer axes: distances shrink, so nothing is lost (a superset).
    sym, anti = mirror_project(x, 24)
    cq = (sym, anti) if same else (sym[:120], anti[:120])
    cb = (sym, anti) if same else (sym[100:], anti[100:])
    qi, bi, _ = mirror_range(cq, cb, (thr_q, thr_b), same=same, block=50, jobs=1)
    assert want <= set(zip(qi.tolist(), bi.tolist()))


@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("block,band,coarse", [(32, 4, None), (16, 8, 6), (64, 1, 12), (500, 16, None)])
def test_mirror_range_block_skipping_is_exact(same, block, band, coarse):
    """Tight per-row thresholds let most block pairs be skipped along the leading axis;
    the pairs found must still be exactly the brute-force ones."""
    from splitaudit.search.mirror import mirror_project, mirror_range, thumb_vectors

    rng = np.random.default_rng(block + band)
    base = rng.integers(0, 256, (3, 32, 32)).astype(np.float64)
    # A one-parameter family (blends of two images: distances lie along the leading axis, so
    # block pairs far apart on it are skipped), a second family, and noisy mirrored copies.
    mix = rng.uniform(0, 1, (400, 1, 1))
    thumbs = mix * base[0] + (1 - mix) * base[1]
    thumbs[200:300] = mix[200:300] * base[2] + (1 - mix[200:300]) * base[1]
    thumbs[300:] = thumbs[:100, :, ::-1] + rng.normal(0, 6, (100, 32, 32))
    x = thumb_vectors(np.clip(thumbs, 0, 255).astype(np.uint8))
    want, best, thr_q, thr_b = _brute_mirror_pairs(x, 250, 150, same, (0.005, 0.08), rng)
    assert len(want) >= 50
    sym, anti = mirror_project(x, 256)
    cq = (sym, anti) if same else (sym[:250], anti[:250])
    cb = (sym, anti) if same else (sym[150:], anti[150:])
    qi, bi, d2 = mirror_range(cq, cb, (thr_q, thr_b), same=same, block=block, band=band, coarse=coarse, jobs=2)
    assert set(zip(qi.tolist(), bi.tolist())) == want
    assert len(qi) == len(want)  # each pair once
    np.testing.assert_allclose(d2, best[qi, bi], atol=1e-4)


def test_mirror_project_axes_by_decreasing_variance():
    from splitaudit.search.mirror import mirror_project, thumb_vectors

    rng = np.random.default_rng(0)
    thumbs = rng.integers(0, 256, (500, 8, 8)).repeat(4, 1).repeat(4, 2).astype(np.uint8)
    sym, anti = mirror_project(thumb_vectors(thumbs), 40)
    for part in (sym, anti):
        var = part.var(0)
        assert (np.diff(var) <= 1e-3 * var.max()).all()


@pytest.mark.parametrize("backend", ["mih", "faiss"])
def test_find_duplicates_hamming_backends_agree(planted, backend):
    """With embeddings the full Hamming range search adds candidates: every backend gives the same pairs."""
    if backend == "faiss":
        pytest.importorskip("faiss")
    _, split, fps, _, _ = planted
    emb = fps.descriptor / np.maximum(np.linalg.norm(fps.descriptor, axis=1, keepdims=True), 1e-9)
    ref = find_duplicates(fps, split.images, embeddings=emb, backend="numpy")
    got = find_duplicates(fps, split.images, embeddings=emb, backend=backend)
    cols = ["val_index", "train_index", "kind"]
    assert len(ref.pairs) > 0
    pd.testing.assert_frame_equal(ref.pairs[cols].reset_index(drop=True), got.pairs[cols].reset_index(drop=True))
    assert len(ref.within) == len(got.within)


def test_bad_arguments(planted):
    _, split, fps, _, _ = planted
    with pytest.raises(TypeError, match="images"):
        find_duplicates(fps, split.images.to_numpy())
    with pytest.raises(ValueError, match="one row per image"):
        find_duplicates(fps, split.images.iloc[:3])
    with pytest.raises(ValueError, match="backend"):
        find_duplicates(fps, split.images, backend="gpu")
    with pytest.raises(ValueError, match="min_score"):
        find_duplicates(fps, split.images, min_score=2)
    with pytest.raises(ValueError, match="radius"):
        hamming_range(np.zeros(2, np.uint64), np.zeros(2, np.uint64), 65)


def test_result_serialises(planted):
    _, split, _, result, stages = planted
    data = json.loads(result.to_json())
    assert data["cross_exact"] == 2 and data["label_conflicts"] == 1
    frame = result.to_frame()
    assert set(frame["relation"]) == {"cross", "train"}
    assert len(frame) == len(result.pairs) + len(result.within)
    assert "cross-split search" in stages and "clusters" in stages


def test_checks_on_planted(planted):
    info, split, fps, result, _ = planted
    assert {"exact_duplicates", "near_duplicates", "label_conflicts"} <= set(REGISTRY)
    ctx = AuditContext(split=split, fingerprints=fps, pairs=result.pairs, within_pairs=result.within)
    exact = ExactDuplicates().run(ctx)
    near = NearDuplicates().run(ctx)
    conflict = LabelConflicts().run(ctx)
    n_val = split.n_val
    assert exact.numbers["pairs"] == 2 and exact.numbers["n_val"] == n_val
    assert exact.status == "fail"  # 2 of ~25 val images is far above 0.5 %
    assert near.numbers["val_with_train_duplicate"] == len(TRANSFORMS) + 1
    assert near.numbers["fraction_val"] == pytest.approx((len(TRANSFORMS) + 1) / n_val)
    assert near.status == "fail" and near.numbers["within_train"] == 1
    assert conflict.numbers["pairs"] == 1 and conflict.status == "fail"
    for r in (exact, near, conflict):
        json.loads(r.to_json())
        assert r.per_image is not None and len(r.per_image) == len(split.images)
    # Lenient thresholds turn the failure into a warning.
    ctx.options["near_duplicates"] = {"fail_at": 0.9}
    assert NearDuplicates().run(ctx).status == "warn"


def test_checks_read_pairs_and_never_search(clean):
    """The duplicate checks only read the pipeline's pairs: without them each is an error finding."""
    _, split, fps, _ = clean
    ctx = AuditContext(split=split, fingerprints=fps)
    results = run_checks([ExactDuplicates(), NearDuplicates(), LabelConflicts()], ctx)
    assert [r.status for r in results] == ["error"] * 3
    assert all("find_duplicates" in r.message for r in results)
    assert ctx.pairs is None and ctx.within_pairs is None
    with pytest.raises(ValueError, match="find_duplicates"):
        NearDuplicates().run(AuditContext(split=split))


def test_unreadable_rows_never_paired(tmp_path):
    info = write_split_folder(tmp_path, transforms=("jpeg_q30",), exact=(), within=(),
                              conflict=False, n_look_alikes=0, n_train=3, n_val=2)
    for side in ("train", "val"):
        (tmp_path / side / "cat" / "broken.png").write_bytes(b"not an image")
    split = ImageSplit.from_folder(tmp_path)
    fps = compute_fingerprints(split, jobs=1)
    assert (~fps.table["ok"]).sum() == 2
    res = find_duplicates(fps, split.images)
    assert _pair_set(res.pairs, "val_path", "train_path") == {info.copies["jpeg_q30"]}


def _geo_crop(im, keep, dx=0.0):
    s = im.width
    off = (1 - keep) / 2 * s
    return im.resize(im.size, Image.Resampling.BILINEAR, box=(off + dx, off, off + dx + keep * s, off + keep * s))


GEO_EDITS = {
    "crop80": lambda im: _geo_crop(im, 0.8, 2),
    "crop85": lambda im: _geo_crop(im, 0.85, -1),
    "shift": lambda im: im.transform(im.size, Image.Transform.AFFINE, (1, 0, 8, 0, 1, -6),
                                     resample=Image.Resampling.BILINEAR),
    "rotate8": lambda im: im.rotate(8, resample=Image.Resampling.BILINEAR),
}


@pytest.fixture(scope="module")
def geo_planted(tmp_path_factory):
    """Train: 8 originals + 2 look-alikes; val: a crop/shift/rotation of 4 originals + 4 unrelated."""
    root = tmp_path_factory.mktemp("geo")
    for side in ("train", "val"):
        (root / side / "a").mkdir(parents=True)
    copies, look = set(), set()
    for i in range(8):
        synthetic_image(100 + i).convert("L").save(root / "train" / "a" / f"orig_{i}.png")
    for j, (name, edit) in enumerate(GEO_EDITS.items()):
        edit(synthetic_image(100 + j).convert("L")).save(root / "val" / "a" / f"{name}.png")
        copies.add((f"val/a/{name}.png", f"train/a/orig_{j}.png"))
    for i in range(4):
        synthetic_image(300 + i).convert("L").save(root / "val" / "a" / f"other_{i}.png")
    for i in range(2):  # a different photo of the same scene as an original
        look_alike(104 + i).convert("L").save(root / "val" / "a" / f"look_{i}.png")
        look.add((f"val/a/look_{i}.png", f"train/a/orig_{4 + i}.png"))
    split = ImageSplit.from_folder(root)
    fps = compute_fingerprints(split, jobs=1)
    return split, fps, copies, look


def test_keypoints_find_crops_rotations_and_shifts_by_default(geo_planted):
    split, fps, copies, look = geo_planted
    default = find_duplicates(fps, split.images)
    found = _pair_set(default.pairs, "val_path", "train_path")
    assert found == copies and not (look & found)
    rows = default.pairs.set_index("val_path")
    assert (rows["decided_by"] == "keypoints").all() and (rows["inliers"] >= 10).all()
    assert abs(rows.loc["val/a/rotate8.png", "rotation"]) == pytest.approx(8, abs=1.5)
    assert rows.loc["val/a/crop80.png", "kind"] == "overlap"  # 80 % of each side: 64 % of the area
    assert rows.loc["val/a/crop80.png", "overlap"] > 0.9 > rows.loc["val/a/crop80.png", "overlap_b"]
    check_result_invariants(default, split)


def test_geometric_opt_in_finds_crops_and_shifts(geo_planted):
    split, fps, copies, look = geo_planted
    plain = find_duplicates(fps, split.images, keypoints=False)
    geo = find_duplicates(fps, split.images, geometric=True, keypoints=False)
    found_plain = _pair_set(plain.pairs, "val_path", "train_path")
    found_geo = _pair_set(geo.pairs, "val_path", "train_path")
    assert len(copies - found_plain) >= 2  # the plain alignment misses most of these edits
    assert copies <= found_geo  # the geometric re-check finds every one
    assert found_geo == copies  # ... and no look-alike or unrelated image
    assert not (look & found_geo)
    assert found_plain <= found_geo  # opt-in only adds pairs: scores are a max
    assert (geo.pairs["score"] >= 0.5).all() and geo.params["geometric"] is True
    check_result_invariants(geo, split)
    with pytest.raises(TypeError, match="geometric"):
        find_duplicates(fps, split.images, geometric="yes")


def test_near_duplicate_message_says_whether_the_split_leaks_beyond_chance():
    from splitaudit.checks.duplicates import NearDuplicates, _poisson

    base = {"val_with_train_duplicate": 1, "n_val": 100, "fraction_val": 0.01, "pairs": 1}
    chance = NearDuplicates()._message({**base, **_poisson(41, 46.4)})
    leaky = NearDuplicates()._message({**base, **_poisson(120, 46.4)})
    assert "1 of 100 val images (1.00%) has a near duplicate" in chance
    assert "no more than chance" in chance and "more than chance, so the split leaks" in leaky
    assert "p = 0.8" in chance


def test_pair_evidence_is_the_fingerprints_own(planted):
    """``descriptor_cos`` and the hash distances of every reported pair are those of its two rows
    (the evidence is gathered in chunks: no row of one chunk may leak into another)."""
    _, split, fps, result, _ = planted
    a, b = result.pairs["val_index"].to_numpy(), result.pairs["train_index"].to_numpy()
    assert len(a) > 0
    expected = (fps.descriptor[a].astype(np.float64) * fps.descriptor[b]).sum(1)
    assert np.allclose(result.pairs["descriptor_cos"], expected, atol=1e-5)
    assert result.pairs["embedding_cos"].isna().all()
    direct = fps.table["phash"].to_numpy(np.uint64)
    plain = ~result.pairs["flipped"].to_numpy(bool)
    assert (result.pairs["phash"].to_numpy()[plain] == np.bitwise_count(direct[a] ^ direct[b])[plain]).all()
