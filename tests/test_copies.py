"""Copy detection by default: edited copies (crops, rotations, overlays, letterbox,
overlapping tiles) are found through keypoints, look-alikes are not, the output
stays linear in the number of images, and resplit keeps every copy with its original."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from splitaudit import ImageSplit
from splitaudit.duplicates import find_duplicates
from splitaudit.fingerprints import compute_fingerprints
from splitaudit.resplit import resplit_manifest

from .test_duplicates import _pair_set, check_result_invariants

SIDE = 160


def scene(seed: int, width: int, height: int) -> Image.Image:
    """A textured picture: a smooth background, 40 random shapes and lines, noise.
    Distinct seeds are distinct pictures of the same kind (the hard negatives)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    base = 90 + 60 * np.sin(xx * rng.uniform(2, 6) + rng.uniform(0, 6)) * np.cos(yy * rng.uniform(2, 6))
    img = Image.fromarray(np.stack([base, base[::-1], base[:, ::-1]], -1).clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(8, 40, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
        else:
            draw.line([x0, y0, x0 + w * rng.choice([-1, 1]), y0 + h], fill=colour, width=int(rng.integers(2, 5)))
    arr = np.asarray(img).astype(np.int16) + rng.integers(-5, 6, (height, width, 3))
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGB")


def _crop_side(im: Image.Image) -> Image.Image:
    return im.crop((0, 0, im.width, int(im.height * 0.85)))


def _centre_crop(im: Image.Image) -> Image.Image:
    m = int(im.width * 0.1)
    return im.crop((m, m, im.width - m, im.height - m)).resize(im.size, Image.Resampling.BILINEAR)


def _rotate(im: Image.Image) -> Image.Image:
    return im.rotate(6, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(0, 0, 0))


def _caption(im: Image.Image) -> Image.Image:
    out = im.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle([0, int(im.height * 0.82), im.width, im.height], fill=(255, 255, 255))
    draw.text((6, int(im.height * 0.86)), "(c) 2026 stock photo", fill=(0, 0, 0))
    return out


def _letterbox(im: Image.Image) -> Image.Image:
    pad = int(im.height * 0.15)
    out = Image.new("RGB", (im.width, im.height + 2 * pad), (0, 0, 0))
    out.paste(im, (0, pad))
    return out


EDITS = {"crop_side": _crop_side, "centre_crop": _centre_crop, "rotate6": _rotate,
         "caption": _caption, "letterbox": _letterbox}


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """Train: 5 originals, 1 large picture's left tile, 4 distractors; val: an edited
    copy of each original, the right tile (60 % overlap), 3 look-alikes, 2 unrelated."""
    root = tmp_path_factory.mktemp("copies")
    for side in ("train", "val"):
        (root / side / "x").mkdir(parents=True)
    planted = {}
    for i, (name, edit) in enumerate(EDITS.items()):
        original = scene(10 + i, SIDE, SIDE)
        original.save(root / "train" / "x" / f"orig_{name}.jpg", quality=92)
        edit(original).save(root / "val" / "x" / f"{name}.jpg", quality=90)
        planted[f"val/x/{name}.jpg"] = f"train/x/orig_{name}.jpg"
    big = scene(50, int(SIDE * 1.4), SIDE)
    big.crop((0, 0, SIDE, SIDE)).save(root / "train" / "x" / "tile_left.jpg", quality=92)
    big.crop((int(SIDE * 0.4), 0, int(SIDE * 1.4), SIDE)).save(root / "val" / "x" / "tile_right.jpg", quality=92)
    planted["val/x/tile_right.jpg"] = "train/x/tile_left.jpg"
    for i in range(4):
        scene(100 + i, SIDE, SIDE).save(root / "train" / "x" / f"other_{i}.jpg", quality=92)
    for i in range(3):  # same kind of picture, same generator: must not be reported
        scene(200 + i, SIDE, SIDE).save(root / "val" / "x" / f"look_{i}.jpg", quality=92)
    for i in range(2):
        scene(300 + i, int(SIDE * 1.2), SIDE).save(root / "val" / "x" / f"unrelated_{i}.jpg", quality=92)
    split = ImageSplit.from_folder(root)
    fps = compute_fingerprints(split, jobs=1, cache=False)
    return split, fps, planted, find_duplicates(fps, split.images, jobs=1)


def test_every_edited_copy_and_the_tile_is_found(copies):
    split, _, planted, result = copies
    found = _pair_set(result.pairs, "val_path", "train_path")
    assert set(planted.items()) <= found
    check_result_invariants(result, split)


def test_no_look_alike_or_unrelated_picture_is_reported(copies):
    _, _, planted, result = copies
    reported = set(result.pairs["val_path"])
    assert reported == set(planted)
    assert result.within.empty


def test_evidence_of_the_keypoint_path(copies):
    _, _, _, result = copies
    rows = result.pairs.set_index("val_path")
    tile = rows.loc["val/x/tile_right.jpg"]
    assert tile["kind"] == "overlap" and tile["decided_by"] == "keypoints"
    # the right tile covers 60 % of the left one: shift of 0.4 of the frame
    assert tile["overlap"] == pytest.approx(0.6, abs=0.12)
    assert tile["shift_x"] == pytest.approx(-0.4, abs=0.08) or tile["shift_x"] == pytest.approx(0.4, abs=0.08)
    rotated = rows.loc["val/x/rotate6.jpg"]
    assert abs(abs(rotated["rotation"]) - 6) < 1.5 and rotated["inliers"] >= 10
    crop = rows.loc["val/x/crop_side.jpg"]
    assert crop["overlap"] > 0.9 and crop["overlap_b"] < 0.95  # the val image lies inside the train image
    assert (rows["inlier_extent"].dropna() > 0).all()


def check_resplit_keeps_pairs_together(split, result, planted: dict) -> None:
    """Every planted (val, train) pair lands in one fold, whatever the seed."""
    for seed in range(3):
        folds = resplit_manifest(split.images, result, n_splits=3, random_state=seed).set_index("path")["fold"]
        for val_path, train_path in planted.items():
            assert folds[val_path] == folds[train_path]


def test_resplit_keeps_copies_and_tiles_with_their_original(copies):
    split, _, planted, result = copies
    check_resplit_keeps_pairs_together(split, result, planted)


def test_keypoints_off_misses_the_geometric_edits(copies):
    """The yardstick: without keypoints the thumbnail path misses most of these edits."""
    split, fps, planted, _ = copies
    plain = find_duplicates(fps, split.images, keypoints=False, jobs=1)
    missed = set(planted.items()) - _pair_set(plain.pairs, "val_path", "train_path")
    assert len(missed) >= 3


def test_output_is_linear_in_identical_images(tmp_path):
    """120 byte-identical train images and 60 in val: one exact row per val image, a
    star inside each split, and the pair counts behind ``expected`` still complete."""
    for side in ("train", "val"):
        (tmp_path / side).mkdir()
    image = scene(7, 64, 64)
    for i in range(120):
        image.save(tmp_path / "train" / f"same_{i:03d}.png")
    for i in range(60):
        image.save(tmp_path / "val" / f"same_{i:03d}.png")
    for i in range(5):
        scene(400 + i, 64, 64).save(tmp_path / "val" / f"other_{i}.png")
    split = ImageSplit.from_folder(tmp_path)
    fps = compute_fingerprints(split, jobs=1, cache=False)
    result = find_duplicates(fps, split.images, jobs=1)
    assert len(result.pairs) == 60 and (result.pairs["kind"] == "exact").all()
    assert result.pairs["exact_bytes"].all()
    assert result.within.groupby("split").size().to_dict() == {"train": 119, "val": 59}
    same = split.images["path"].str.contains("same_").to_numpy()
    assert len(set(result.clusters[same])) == 1 and len(set(result.clusters[~same])) == 5
    assert result.expected["exact"]["observed"] == 120 * 60
    check_result_invariants(result, split)


def test_two_scans_in_one_process_with_worker_processes(tmp_path):
    """The keypoint path uses OpenCV in this process; a later scan forks fingerprint
    workers that use OpenCV too. Once this hung forever (a half-copied OpenCV
    thread pool), also when the caller had started OpenCV's pool itself."""
    import subprocess
    import sys

    for side in ("train", "val"):
        (tmp_path / side).mkdir()
    for i in range(20):  # 40 images: three chunks of 16, so two worker processes start
        scene(500 + i, 96, 96).save(tmp_path / "train" / f"t{i}.jpg")
        _caption(scene(500 + i, 96, 96)).save(tmp_path / "val" / f"v{i}.jpg")
    code = f"""
import cv2, numpy as np, splitaudit
cv2.setNumThreads(2)  # the caller's own OpenCV pool, started
cv2.resize(np.zeros((512, 512), np.uint8), (256, 256))
for _ in range(2):
    result = splitaudit.scan({str(tmp_path)!r}, cache=False, jobs=2, checks=["near_duplicates"])
    print(len(result.pairs))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["20", "20"]


def test_inverted_file_retrieval_finds_the_same_copies(copies, monkeypatch):
    """Large databases use a faiss inverted file (cells around random keypoints) instead
    of the exact scan: forced here on the small fixture, the copies are still found."""
    from splitaudit.duplicates import keypoints

    split, fps, planted, exact_scan = copies
    monkeypatch.setattr(keypoints, "IVF_MIN_ROWS", 500)
    monkeypatch.setattr(keypoints, "_ROWS_PER_CELL", 100)  # several cells, of which 2 are probed
    assert len(fps.local.desc) > 500
    built = []
    index = keypoints._index
    monkeypatch.setattr(keypoints, "_index", lambda db, jobs=1: built.append(index(db, jobs)) or built[-1])
    result = find_duplicates(fps, split.images, jobs=1)
    assert built and all(getattr(ix, "nlist", 1) > keypoints._PROBES for ix in built)
    assert set(planted.items()) <= _pair_set(result.pairs, "val_path", "train_path")
    assert set(result.pairs["val_path"]) == set(exact_scan.pairs["val_path"])


def test_list_by_list_search_finds_the_same_distances(monkeypatch):
    """The inverted file is searched list by list (faiss's ``per_invlist_search``): the same
    neighbour distances as the query-by-query search, and a planted near copy is found."""
    from splitaudit.duplicates import keypoints

    monkeypatch.setattr(keypoints, "IVF_MIN_ROWS", 500)
    monkeypatch.setattr(keypoints, "_ROWS_PER_CELL", 100)
    rng = np.random.default_rng(3)
    db = rng.integers(0, 256, (6000, 32), dtype=np.uint8)
    queries = db[::10].copy()
    queries[:, 0] ^= 0b101  # two bits off their planted neighbour
    index = keypoints._index(db, jobs=2)
    assert index.per_invlist_search
    dist, hits = keypoints._search(db, queries, 4, jobs=1, index=index)
    index.per_invlist_search = False
    dist_q, _ = keypoints._search(db, queries, 4, jobs=1, index=index)
    np.testing.assert_array_equal(dist, dist_q)
    planted = np.arange(0, 6000, 10)
    found = (hits == planted[:, None]).any(1)
    assert found.mean() > 0.5 and (dist[found, 0] == 2).all()


def test_keypoint_fits_in_worker_processes_match_one_process(copies, monkeypatch):
    from splitaudit.duplicates import keypoints
    split, fps, _, result = copies
    a = result.pairs["val_index"].to_numpy(np.int64)
    b = result.pairs["train_index"].to_numpy(np.int64)
    a, b = np.r_[a, b, a], np.r_[b, a, b[::-1]]  # copies, their reverse, and unrelated pairs
    monkeypatch.setattr(keypoints, "_FIT_CHUNK", 3)  # RANSAC's state is reset per chunk
    one = keypoints.verify_keypoints(fps.local, a, b, thumbs=fps.thumbs, jobs=1)
    monkeypatch.setattr(keypoints, "_FORK_FROM", 1)
    forked = keypoints.verify_keypoints(fps.local, a, b, thumbs=fps.thumbs, jobs=2)
    assert (one["inliers"] > 0).sum() >= len(result.pairs)
    for name, values in one.items():
        np.testing.assert_array_equal(forked[name], values, err_msg=name)


def test_check_new_finds_edited_copies_through_a_saved_index(copies, tmp_path):
    """check-new uses the same keypoint path as scan: the index keeps the keypoints."""
    from pathlib import Path

    from splitaudit.index import TrainingIndex

    split, _, planted, _ = copies
    root = Path(split.root)
    TrainingIndex.build(root, jobs=1, cache=False).save(tmp_path / "index")
    index = TrainingIndex.load(tmp_path / "index")
    assert index.fingerprints.local is not None and len(index.fingerprints.local) == len(index)
    matches = index.check(root / "val", jobs=1, cache=False)
    found = {(Path(n).name, Path(t).name) for n, t in zip(matches["new_path"], matches["train_path"])}
    assert {(Path(v).name, Path(t).name) for v, t in planted.items()} <= found
    assert (matches["decided_by"] == "keypoints").any() and matches["inliers"].notna().any()


@pytest.mark.parametrize("inliers, grey, rms, reported", [
    (6, 0.5, 0.05, True),     # few common keypoints, pixel-identical overlap: a tile or a crop
    (6, 10.0, 0.05, False),   # as many inliers on pixels that disagree: a look-alike
    (4, 0.5, 0.05, False),    # even nearly doubled, four inliers are not enough
    (30, 10.0, 0.3, True),    # tens of inliers under an overlay need no agreement bonus
    (12, 40.0, 0.6, False),   # the outlines of two different garments
])
def test_score_from_inliers_counts_agreeing_pixels(inliers, grey, rms, reported):
    from splitaudit.duplicates.keypoints import score_from_inliers

    score = score_from_inliers(np.array([inliers]), np.array([rms]), np.array([0.2]), np.array([grey]))[0]
    assert (score >= 0.5) == reported, score


def test_no_residual_is_taken_below_the_inliers_that_could_score(copies):
    from splitaudit.duplicates import residual

    split, fps = copies[0], copies[1]
    a, b = np.array([0, 1]), np.array([1, 2])
    matrix = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (2, 1, 1))
    rel, grey = residual.aligned_residual(fps.thumbs, fps.local, a, b, matrix,
                                          inliers=np.array([residual.RESIDUAL_MIN_INLIERS - 1,
                                                            residual.RESIDUAL_MIN_INLIERS]))
    assert np.isnan(grey[0]) and np.isfinite(grey[1])


def _thumb_of(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L").resize((32, 32), Image.Resampling.BOX), np.uint8)


def test_an_opaque_caption_does_not_set_the_gain_of_the_aligned_residual():
    """The gain and offset are refitted on the pixels that agree: a copy under a white caption box
    (~16 % of the frame) stays within a grey level, a different picture of the same kind does not."""
    from splitaudit.duplicates import residual
    from splitaudit.fingerprints.local import LocalFeatures

    original = scene(7, SIDE, SIDE)
    boxed = original.copy()
    ImageDraw.Draw(boxed).rectangle([0, int(SIDE * 0.84), SIDE, SIDE], fill=(255, 255, 255))
    thumbs = np.stack([_thumb_of(original), _thumb_of(boxed), _thumb_of(scene(8, SIDE, SIDE))])
    size = np.array([128, 128], np.float32)
    local = LocalFeatures.from_parts([(np.zeros((0, 2), np.float32), size, np.zeros((0, 32), np.uint8))] * 3)
    identity = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (2, 1, 1))
    _, grey = residual.aligned_residual(thumbs, local, np.array([1, 2]), np.array([0, 0]), identity)
    assert grey[0] < 1.0, grey
    assert grey[1] > 8.0, grey


@pytest.mark.parametrize("keep", [0.72, 0.8])
def test_a_centre_crop_is_compared_at_one_resolution(monkeypatch, keep):
    """Magnified onto a centre crop, the original's thumbnail is the blurrier one: blurring the
    crop's to match lowers the residual at the true transform, a different picture stays far;
    under ``MATCH_FROM`` (a 90 % crop, 1.11x) nothing changes."""
    from splitaudit.duplicates import residual
    from splitaudit.fingerprints.local import LocalFeatures

    side = 320
    original, other = scene(7, side, side), scene(107, side, side)
    thumbs = []
    for k in (keep, 0.9):
        m = round(side * (1 - k) / 2)
        thumbs += [_thumb_of(original.crop((m, m, side - m, side - m))), _thumb_of(other.crop((m, m, side - m, side - m)))]
    thumbs = np.stack(thumbs + [_thumb_of(original)])
    size = np.array([128, 128], np.float32)
    local = LocalFeatures.from_parts([(np.zeros((0, 2), np.float32), size, np.zeros((0, 32), np.uint8))] * 5)
    mats = []
    for k in (keep, keep, 0.9, 0.9):
        m = round(side * (1 - k) / 2)
        s = (side - 2 * m) / side
        mats.append([[s, 0, 128 * m / side], [0, s, 128 * m / side]])
    a, b, mats = np.arange(4), np.full(4, 4), np.array(mats)
    _, matched = residual.aligned_residual(thumbs, local, a, b, mats)
    monkeypatch.setattr(residual, "MATCH_FROM", np.inf)
    _, plain = residual.aligned_residual(thumbs, local, a, b, mats)
    assert matched[0] < 0.7 * plain[0] and matched[0] < 1.0, (matched, plain)
    assert matched[1] > 8.0 and plain[1] > 8.0
    np.testing.assert_array_equal(matched[2:], plain[2:])


@pytest.mark.parametrize("side, has_keypoints", [(28, False), (31, False), (32, True), (40, True)])
def test_small_images_get_keypoints_from_32_px(side, has_keypoints):
    """Images from 32 px on the short side get keypoints (a copy downscaled to 32-47 px keeps its
    keypoints); native 28-px images (Fashion-MNIST) do not: their enlarged outlines match look-alikes."""
    from splitaudit.fingerprints.local import orb_features

    gray = np.asarray(scene(3, side, side).convert("L"))
    xy, _, desc = orb_features(gray)
    assert (len(xy) > 0) == has_keypoints and len(xy) == len(desc)


def _bokeh(seed: int, side: int) -> np.ndarray:
    """A blurred, low-contrast picture (bokeh, sky, a wall): few corners at the usual FAST threshold."""
    import cv2

    noise = (np.random.default_rng(seed).random((side, side)) * 255).astype(np.float32)
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), side / 8.5), None, 40, 90, cv2.NORM_MINMAX).astype(np.uint8)


def test_low_texture_images_fill_their_keypoints_with_weak_corners(monkeypatch):
    """A blurred 256-px picture keeps every strong keypoint and fills the rest of the budget with
    weaker corners; an enlarged small image (a 48-px one) gets no weak corners."""
    from splitaudit.fingerprints import local

    gray = _bokeh(30, 256)
    filled, _, desc = local.orb_features(gray)
    small = np.ascontiguousarray(gray[::5, ::5][:48, :48])
    small_filled = local.orb_features(small)[0]
    monkeypatch.setattr(local, "_fill_weak", lambda work, size, keypoints: keypoints)
    strong = local.orb_features(gray)[0]
    assert len(strong) < local.LOCAL_FEATURES // 2 and len(filled) == local.LOCAL_FEATURES == len(desc)
    assert {tuple(p) for p in strong} <= {tuple(p) for p in filled}
    np.testing.assert_array_equal(local.orb_features(small)[0], small_filled)


def test_keypoints_are_stored_in_spread_order():
    """Any prefix of an image's keypoints covers its frame: the first ones lie in distinct cells
    of the 4x4 grid, one per cell that has any (searches inside a split query with the first half)."""
    from splitaudit.fingerprints.local import orb_features

    xy, size, _ = orb_features(np.asarray(scene(5, 256, 256).convert("L")))
    cell = np.minimum((xy * 4 / size).astype(int), 3) @ [4, 1]
    cells = len(set(cell.tolist()))
    assert len(xy) == 128 and cells >= 12 and len(set(cell[:cells].tolist())) == cells


def _residual_one_pair(thumb_a, thumb_b, size_a, size_b, matrix, trim=0.2, refits=3):
    """Reference for one pair: OpenCV's blur and warp, then the same trimmed gain/offset refits."""
    import cv2

    from splitaudit.duplicates import residual

    side = thumb_a.shape[0]

    def to_thumb(size):
        sx, sy = side / size[0], side / size[1]
        return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])

    thumb_map = (to_thumb(size_b) @ np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(to_thumb(size_a)))[:2]
    thumb_a, thumb_b = thumb_a.astype(np.float32), thumb_b.astype(np.float32)
    step = np.sqrt(abs(np.linalg.det(thumb_map[:, :2])))  # the sharper thumbnail is blurred to match
    if step <= 1 / residual.MATCH_FROM:
        thumb_a = cv2.GaussianBlur(thumb_a, (5, 5), residual.MATCH_SIGMA * np.sqrt(1 / step ** 2 - 1),
                                   borderType=cv2.BORDER_REPLICATE)
    elif step >= residual.MATCH_FROM:
        thumb_b = cv2.GaussianBlur(thumb_b, (5, 5), residual.MATCH_SIGMA * np.sqrt(step ** 2 - 1),
                                   borderType=cv2.BORDER_REPLICATE)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpAffine(thumb_b, thumb_map, (side, side), flags=flags)
    inside = cv2.warpAffine(np.ones((side, side), np.float32), thumb_map, (side, side), flags=flags) > 0.999
    x, y = warped[inside].astype(np.float64), thumb_a[inside].astype(np.float64)
    keep = max(2, int(round(len(x) * (1 - trim))))
    sel = np.ones(len(x), bool)
    for _ in range(refits + 1):
        gain, offset = np.polyfit(x[sel], y[sel], 1)
        sel = np.zeros(len(x), bool)
        sel[np.argsort(np.abs(y - gain * x - offset))[:keep]] = True
    if not 0.2 <= gain <= 5.0:
        gain = min(max(gain, 0.2), 5.0)
        offset = np.median(y - gain * x)
    return float(np.sqrt(np.mean(np.sort(np.abs(y - gain * x - offset))[:keep] ** 2)))


def test_batched_aligned_residual_matches_a_per_pair_warp(copies):
    """The batched numpy blur and warp agree with OpenCV's per-pair GaussianBlur and warpAffine
    (fixed-point weights: within a few tenths of a grey level) on shifts, scales (some past
    ``MATCH_FROM`` either way) and rotations of real fixture pairs."""
    from splitaudit.duplicates import residual

    _, fps = copies[0], copies[1]
    rng = np.random.default_rng(0)
    n = len(fps.thumbs)
    a, b = rng.integers(0, n, 12), rng.integers(0, n, 12)
    b[:4] = a[:4]  # an image against itself moved: the low residuals a copy gets
    mats = []
    for _ in range(12):
        s, t = rng.uniform(0.7, 1.4), np.radians(rng.uniform(-8, 8))
        mats.append([[s * np.cos(t), -s * np.sin(t), rng.uniform(-20, 20)],
                     [s * np.sin(t), s * np.cos(t), rng.uniform(-20, 20)]])
    mats = np.array(mats)
    _, grey = residual.aligned_residual(fps.thumbs, fps.local, a, b, mats)
    sizes = fps.local.size
    ref = [_residual_one_pair(fps.thumbs[i], fps.thumbs[j], sizes[i], sizes[j], m) for i, j, m in zip(a, b, mats)]
    assert np.isfinite(grey).all()
    np.testing.assert_allclose(grey, ref, atol=0.5, rtol=0.05)
