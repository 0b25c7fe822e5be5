"""The tile check: neighbouring tiles of one picture are found by the shift they share,
pictures that only share a caption, a letterbox bar or a repeated pattern are not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from splitaudit import ImageSplit
from splitaudit.duplicates import find_duplicates
from splitaudit.duplicates.keypoints import keypoint_candidates
from splitaudit.duplicates.tiles import (GREY_LIMIT, NCC_MID, SCREEN_GREY, match_tiles, thumb_grey, tile_score,
                                         verify_tiles)
from splitaudit.fingerprints import compute_fingerprints

from .test_copies import check_resplit_keeps_pairs_together, scene

SIDE = 128


def sky(seed: int, width: int, height: int) -> Image.Image:
    """Low texture: a smooth gradient with a few soft clouds and fine grain (few corners)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 120 + 40 * yy / height + 8 * np.sin(xx / rng.uniform(20, 40) + rng.uniform(0, 6))
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, 30)
        base += 25 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    base += rng.normal(0, 3, base.shape)
    return Image.fromarray(np.stack([base, base, base + 20], -1).clip(0, 255).astype(np.uint8), "RGB")


def _jpeg(im: Image.Image, path) -> np.ndarray:
    im.save(path, quality=90)
    return np.asarray(Image.open(path).convert("L"), np.float32)


@pytest.mark.parametrize("axis, overlap", [(0, 0.3), (1, 0.3), (0, 0.6), (1, 0.75)])
def test_the_shift_of_two_neighbouring_tiles_is_found(tmp_path, axis, overlap):
    big = sky(1, 2 * SIDE, 2 * SIDE)
    shift = round((1 - overlap) * SIDE)
    box_b = (shift, 0, shift + SIDE, SIDE) if axis == 0 else (0, shift, SIDE, shift + SIDE)
    a = _jpeg(big.crop((0, 0, SIDE, SIDE)), tmp_path / "a.jpg")
    b = _jpeg(big.crop(box_b), tmp_path / "b.jpg")
    ncc, grey, overlap_a, overlap_b, dx, dy = match_tiles(a, b)
    assert (dx, dy) == ((shift, 0) if axis == 0 else (0, shift))
    assert overlap_a == pytest.approx(overlap, abs=0.01) and overlap_b == pytest.approx(overlap, abs=0.01)
    assert ncc > NCC_MID + 0.2 and grey < GREY_LIMIT / 2 and tile_score(ncc, grey) > 0.9
    # a hint a few pixels off (the keypoint votes' mean shift) gives the same answer without
    # the phase correlation; from a hint far off, the phase correlation still finds it
    near = (dx + 5, dy - 4)
    assert match_tiles(a, b, hint=near)[4:] == (dx, dy)
    far = (dx - 40, dy + 30) if axis == 0 else (dx + 30, dy - 40)
    assert match_tiles(a, b, hint=far)[4:] == (dx, dy)
    # the other way round: a's origin seen from b
    ncc_ba, _, _, _, dx_ba, dy_ba = match_tiles(b, a)
    assert (dx_ba, dy_ba) == (-dx, -dy) and ncc_ba > NCC_MID + 0.2


def test_tiles_of_different_sizes_are_matched(tmp_path):
    big = scene(3, 2 * SIDE, SIDE)
    a = _jpeg(big.crop((0, 0, SIDE, SIDE)), tmp_path / "a.jpg")
    b = _jpeg(big.crop((80, 20, 80 + 150, SIDE)), tmp_path / "b.jpg")
    ncc, grey, overlap_a, overlap_b, dx, dy = match_tiles(a, b)
    assert (dx, dy) == (80, 20) and grey < GREY_LIMIT / 2
    assert overlap_a == pytest.approx(48 * 108 / SIDE**2, abs=0.01)
    assert overlap_b == pytest.approx(48 * 108 / (150 * 108), abs=0.01)
    assert ncc > NCC_MID + 0.2


def _caption(im: Image.Image, text: str = "SAMPLE WATERMARK 2024") -> Image.Image:
    out = im.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle([8, SIDE - 30, SIDE - 8, SIDE - 8], fill=(255, 255, 255))
    draw.text((14, SIDE - 26), text, fill=(0, 0, 0))
    return out


@pytest.mark.parametrize("make", [
    lambda seed: _caption(scene(seed, SIDE, SIDE)),  # the same caption on two pictures
    lambda seed: _caption(sky(seed, SIDE, SIDE)),
    # the same letterbox bars around two pictures
    lambda seed: Image.fromarray(np.pad(np.asarray(scene(seed, SIDE, SIDE - 40)), ((20, 20), (0, 0), (0, 0)))),
])
def test_a_shared_caption_or_bar_is_not_an_overlap(tmp_path, make):
    a = _jpeg(make(11), tmp_path / "a.jpg")
    b = _jpeg(make(12), tmp_path / "b.jpg")
    ncc, *_ = match_tiles(a, b)
    assert ncc < NCC_MID - 0.1


def test_a_repeated_pattern_with_its_own_grain_is_not_an_overlap(tmp_path):
    """Two shots of one periodic structure (blinds, glass blocks): the pattern lines up at
    many shifts, the fine grain of each shot does not."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    pattern = 128 + 50 * np.sin(xx / 5.0) * np.sin(yy / 7.0)
    shots = []
    for seed in (1, 2):
        grain = np.random.default_rng(seed).normal(0, 6, pattern.shape)
        im = Image.fromarray(np.clip(pattern + grain, 0, 255).astype(np.uint8), "L")
        shots.append(_jpeg(im, tmp_path / f"{seed}.jpg"))
    ncc, *_ = match_tiles(*shots)
    assert ncc < NCC_MID - 0.1


def test_look_alikes_whose_outlines_line_up_differ_in_grey(tmp_path):
    """Two garments of one cut (smooth, enlarged, centred): their outlines line up, so the
    band-passed blocks correlate, but the pixels differ by tens of grey levels."""
    from scipy.ndimage import zoom

    yy, xx = np.mgrid[0:28, 0:28]
    cut = ((np.abs(xx - 14) < 6 + yy / 6) & (yy > 2) & (yy < 26)).astype(np.float32)
    shots = []
    for seed in (1, 2):
        shade = np.random.default_rng(seed).uniform(90, 220, (28, 28)).astype(np.float32)
        small = cut * (0.6 * shade + 0.4 * shade.mean())
        big = zoom(small, 96 / 28, order=3).clip(0, 255).astype(np.uint8)
        shots.append(_jpeg(Image.fromarray(big, "L"), tmp_path / f"{seed}.jpg"))
    ncc, grey, *_ = match_tiles(*shots)
    assert grey > 2 * GREY_LIMIT and tile_score(ncc, grey) == 0.0


def test_unreadable_files_give_no_evidence(tmp_path):
    good = tmp_path / "good.jpg"
    scene(1, SIDE, SIDE).save(good, quality=90)
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    out = verify_tiles([str(good), str(tmp_path / "bad.jpg")], np.array([0]), np.array([1]))
    assert np.isnan(out["tile_ncc"][0]) and out["score"][0] == 0.0


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """Pictures cut into two tiles each (30-45 % overlap; train left/top, val right/bottom),
    pictures that share a caption, and distinct skies."""
    root = tmp_path_factory.mktemp("tiled")
    for side in ("train", "val"):
        (root / side / "x").mkdir(parents=True)
    planted = {}
    for i, overlap in enumerate((0.3, 0.35, 0.4, 0.45)):
        big = scene(20 + i, 2 * SIDE, 2 * SIDE)
        shift = round((1 - overlap) * SIDE)
        box = (shift, 0, shift + SIDE, SIDE) if i % 2 else (0, shift, SIDE, shift + SIDE)
        big.crop((0, 0, SIDE, SIDE)).save(root / "train" / "x" / f"tile{i}_a.jpg", quality=90)
        big.crop(box).save(root / "val" / "x" / f"tile{i}_b.jpg", quality=90)
        planted[f"val/x/tile{i}_b.jpg"] = f"train/x/tile{i}_a.jpg"
    for i in range(3):
        _caption(scene(40 + i, SIDE, SIDE)).save(root / "train" / "x" / f"captioned{i}.jpg", quality=90)
        _caption(scene(50 + i, SIDE, SIDE)).save(root / "val" / "x" / f"captioned{i}.jpg", quality=90)
        sky(60 + i, SIDE, SIDE).save(root / "val" / "x" / f"sky{i}.jpg", quality=90)
    split = ImageSplit.from_folder(root)
    fps = compute_fingerprints(split, jobs=1, cache=False)
    return split, planted, find_duplicates(fps, split.images, jobs=1), fps


def test_votes_agree_on_the_shift_of_each_tile_pair_and_the_thumbnails_confirm_it(tiled):
    split, planted, _, fps = tiled
    paths = list(split.images["path"])
    sides = split.images["split"].to_numpy()
    kc = keypoint_candidates(fps.local, np.flatnonzero(sides == "val"), np.flatnonzero(sides == "train"), False)
    for i, (val_path, train_path) in enumerate(planted.items()):
        a, b = paths.index(val_path), paths.index(train_path)
        k = np.flatnonzero((kc.a == a) & (kc.b == b))
        assert len(k) == 1 and kc.shift_votes[k[0]] >= 2
        # the val tile (b) starts `shift` pixels right of / below the train tile; its content
        # sits that much further left / up in the train tile (working frame = 128 px = SIDE)
        shift = round((1 - (0.3, 0.35, 0.4, 0.45)[i]) * SIDE)
        expected = (shift, 0) if i % 2 else (0, shift)
        assert np.abs(kc.shift[k[0]] - expected).max() <= 3
        right = thumb_grey(fps.thumbs, fps.local.size, np.array([a]), np.array([b]), kc.shift[k])
        wrong = thumb_grey(fps.thumbs, fps.local.size, np.array([a]), np.array([b]), kc.shift[k] - 24)
        assert right[0] <= SCREEN_GREY < wrong[0]


def test_tiles_with_a_small_overlap_are_found_as_overlaps(tiled):
    split, planted, result, _ = tiled
    rows = result.pairs.set_index("val_path")
    assert set(planted) <= set(rows.index)
    for val_path, train_path in planted.items():
        row = rows.loc[val_path]
        assert row["train_path"] == train_path and row["kind"] == "overlap"
        assert 0.25 < row["overlap"] < 0.5
        if row["decided_by"] == "tiles":
            assert row["tile_ncc"] > NCC_MID and row["tile_grey"] <= GREY_LIMIT
            assert row["scale"] == 1.0 and row["rotation"] == 0.0
    assert (rows["decided_by"] == "tiles").any()  # the check earns its place on this set


def test_shared_captions_and_distinct_skies_are_not_reported(tiled):
    _, planted, result, _ = tiled
    assert set(result.pairs["val_path"]) == set(planted)
    assert result.within.empty


def test_resplit_keeps_every_tile_with_its_neighbour(tiled):
    split, planted, result, _ = tiled
    check_resplit_keeps_pairs_together(split, result, planted)


def test_the_report_card_of_a_tile_pair_says_how_the_tiles_are_shifted(tiled):
    from splitaudit.report.html import _pair_cards

    split, _, result, _ = tiled
    tiles = result.pairs[result.pairs["decided_by"] == "tiles"]
    html = _pair_cards(tiles, split.images, a="val", b="train", label_a="val", label_b="train")
    assert html.count("tiles: shifted by") == len(tiles) > 0
    assert "block correlation" in html and "grey levels apart" in html


def test_check_new_reads_the_index_s_files_for_the_tile_check(tiled, tmp_path):
    """check-new compares new images with a saved index: the tile check finds the index's
    files through its root, so a tile found by scan is found by check-new too."""
    from pathlib import Path

    from splitaudit.index import TrainingIndex

    split, planted, result, _ = tiled
    root = Path(split.root)
    TrainingIndex.build(root, jobs=1, cache=False).save(tmp_path / "index")
    matches = TrainingIndex.load(tmp_path / "index").check(root / "val", jobs=1, cache=False)
    found = {(Path(n).name, Path(t).name) for n, t in zip(matches["new_path"], matches["train_path"])}
    assert {(Path(v).name, Path(t).name) for v, t in planted.items()} <= found
    by_tiles = result.pairs.loc[result.pairs["decided_by"] == "tiles", "val_path"].map(lambda p: Path(p).name)
    assert set(by_tiles) <= set(matches.loc[matches["decided_by"] == "tiles", "new_path"].map(lambda p: Path(p).name))


def test_worker_processes_give_the_same_evidence(tmp_path, monkeypatch):
    import splitaudit.duplicates.tiles as tiles

    big = scene(7, 2 * SIDE, SIDE)
    paths = []
    for k, x in enumerate((0, 40, 80, 100)):
        big.crop((x, 0, x + SIDE, SIDE)).save(tmp_path / f"{k}.jpg", quality=90)
        paths.append(str(tmp_path / f"{k}.jpg"))
    a, b = np.array([0, 0, 1, 2, 3]), np.array([1, 2, 3, 3, 0])
    one = verify_tiles(paths, a, b, jobs=1)
    monkeypatch.setattr(tiles, "_POOL_FROM", 1)
    monkeypatch.setattr(tiles, "_BATCH", 2)
    two = verify_tiles(paths, a, b, jobs=2)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])
    assert (one["score"] > 0.5).all()  # every pair overlaps by at least 20 %


def test_a_crop_saved_at_its_own_size_votes_for_one_shift_in_file_pixels(tmp_path):
    """A 184-px centre crop of a 256-px picture, saved as cut: the two share pixels at one shift in
    file pixels, but the crop's 128-px working frame is 1.4x finer than its original's. With each
    image's working scale (``pixel_scale``) the votes agree on that shift, and the thumbnails
    sampled at the same scale confirm it; taken in working pixels as they are, they do not."""
    for side in ("train", "val"):
        (tmp_path / side / "x").mkdir(parents=True)
    offsets = (36, 30, 40)
    for i, off in enumerate(offsets):
        big = scene(80 + i, 256, 256)
        big.save(tmp_path / "train" / "x" / f"o{i}.png")
        big.crop((off, off, off + 184, off + 184)).save(tmp_path / "val" / "x" / f"c{i}.png")
    split = ImageSplit.from_folder(tmp_path)
    fps = compute_fingerprints(split, jobs=1, cache=False)
    paths = list(split.images["path"])
    sides = split.images["split"].to_numpy()
    work = fps.local.size.max(axis=1)
    scale = (work / np.fmax(fps.table["width"], fps.table["height"]).to_numpy(np.float64)).astype(np.float32)
    ia, ib = np.flatnonzero(sides == "val"), np.flatnonzero(sides == "train")
    plain = keypoint_candidates(fps.local, ia, ib, False, per_query=0)
    scaled = keypoint_candidates(fps.local, ia, ib, False, per_query=0, pixel_scale=scale)
    for i, off in enumerate(offsets):
        a, b = paths.index(f"val/x/c{i}.png"), paths.index(f"train/x/o{i}.png")
        k = np.flatnonzero((scaled.a == a) & (scaled.b == b))
        j = np.flatnonzero((plain.a == a) & (plain.b == b))
        assert len(k) == 1 and scaled.shift_votes[k[0]] >= 3
        assert not len(j) or plain.shift_votes[j[0]] < scaled.shift_votes[k[0]]
        # the crop's content sits `off` file pixels right of and below the original's corner:
        # at the crop's working scale (128 / 184 per file pixel)
        assert np.abs(scaled.shift[k[0]] - off * scale[a]).max() <= 3
        ratio = np.array([scale[b] / scale[a]])
        right = thumb_grey(fps.thumbs, fps.local.size, np.array([a]), np.array([b]), scaled.shift[k], ratio=ratio)
        unscaled = thumb_grey(fps.thumbs, fps.local.size, np.array([a]), np.array([b]), scaled.shift[k])
        assert right[0] <= SCREEN_GREY < unscaled[0]
