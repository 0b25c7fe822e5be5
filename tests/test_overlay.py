"""The overlay test: a copy under a caption or logo, shrunk below the size that keeps keypoints,
is found by default (``decided_by="overlay"``), while look-alikes whose differences fit in one box
(a small object on a flat background) and distinct pictures are not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from splitaudit import ImageSplit, InputTypeError
from splitaudit.duplicates import find_duplicates
from splitaudit.duplicates.overlay import overlay_candidates, verify_overlay
from splitaudit.fingerprints import compute_fingerprints
from splitaudit.search.mirror import mirror_project, thumb_vectors

from .test_copies import _thumb_of, check_resplit_keeps_pairs_together, scene
from .test_duplicates import _pair_set, check_result_invariants


def caption_then_shrink(im: Image.Image, seed: int) -> Image.Image:
    """An opaque caption box of ~12 % of the area with text, then shrunk to 28 px (no keypoints)."""
    rng = np.random.default_rng(seed)
    out = im.copy()
    draw = ImageDraw.Draw(out)
    h = int(im.height * 0.16)
    w = int(im.width * 0.75)
    x0, y0 = int(rng.integers(0, im.width - w)), int(rng.integers(0, im.height - h))
    fill, ink = ((255, 255, 255), (0, 0, 0)) if seed % 2 else ((0, 0, 0), (255, 255, 255))
    draw.rectangle([x0, y0, x0 + w, y0 + h], fill=fill)
    draw.text((x0 + 3, y0 + 2), "(c) stock", fill=ink)
    return out.resize((28, 28), Image.Resampling.LANCZOS)


def smooth_scene(seed: int) -> Image.Image:
    """An 80-px picture without pixel-scale detail (shrunk to 28 px, a picture of single-pixel
    noise and lines would not be the same picture any more)."""
    from PIL import ImageFilter

    return scene(seed, 80, 80).filter(ImageFilter.GaussianBlur(1.5))


def small_object(seed: int) -> Image.Image:
    """A thin-stroked object in the middle of a black 80-px frame (a sandal, a pair of glasses):
    two seeds differ everywhere on the object and agree on the black background around it."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (80, 80), 0)
    draw = ImageDraw.Draw(img)
    for _ in range(7):
        x0, y0, x1, y1 = rng.uniform(26, 54, 4)
        draw.line([x0, y0, x1, y1], fill=int(rng.integers(150, 256)), width=2)
    return img


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    """Train: 4 pictures and 2 small objects; val: each picture captioned and shrunk to 28 px,
    two other small objects, two distinct pictures of the same kind."""
    root = tmp_path_factory.mktemp("overlay")
    for side in ("train", "val"):
        (root / side / "x").mkdir(parents=True)
    planted = {}
    for i in range(4):
        original = smooth_scene(400 + i)
        original.save(root / "train" / "x" / f"orig_{i}.png")
        caption_then_shrink(original, i).save(root / "val" / "x" / f"captioned_{i}.png")
        planted[f"val/x/captioned_{i}.png"] = f"train/x/orig_{i}.png"
    for i in range(2):
        small_object(500 + i).save(root / "train" / "x" / f"object_{i}.png")
        small_object(600 + i).save(root / "val" / "x" / f"object_{i}.png")
        scene(700 + i, 80, 80).save(root / "val" / "x" / f"look_{i}.png")
    split = ImageSplit.from_folder(root)
    fps = compute_fingerprints(split, jobs=1, cache=False)
    return split, fps, planted, find_duplicates(fps, split.images, jobs=1)


def test_captioned_small_copies_are_found_by_the_overlay_test(captioned):
    split, _, planted, result = captioned
    assert set(planted.items()) <= _pair_set(result.pairs, "val_path", "train_path")
    rows = result.pairs.set_index("val_path").loc[list(planted)]
    assert (rows["decided_by"] == "overlay").all() and (rows["kind"] == "near").all()
    # the caption covers ~12 % of the frame; outside it the copy agrees to a grey level or two
    assert rows["overlay_area"].between(0.06, 0.3).all()
    assert (rows["overlay_grey"] < 2.5).all() and (rows["score"] >= 0.5).all()
    check_result_invariants(result, split)


def test_look_alikes_and_distinct_pictures_are_not_reported(captioned):
    _, _, planted, result = captioned
    assert set(result.pairs["val_path"]) == set(planted)
    assert result.within.empty


def test_without_the_overlay_test_the_captioned_copies_are_missed(captioned):
    split, fps, planted, _ = captioned
    result = find_duplicates(fps, split.images, jobs=1, overlay=False)
    assert not set(planted) & set(result.pairs["val_path"])
    assert result.pairs["overlay_area"].isna().all() and (result.pairs["decided_by"] != "overlay").all()


def test_resplit_keeps_captioned_copies_with_their_original(captioned):
    split, _, planted, result = captioned
    check_resplit_keeps_pairs_together(split, result, planted)


def test_overlay_option_is_validated(captioned):
    split, fps, _, _ = captioned
    with pytest.raises(InputTypeError, match="overlay"):
        find_duplicates(fps, split.images, overlay="yes")


def _pooled(thumbs):
    plain = thumb_vectors(thumbs)
    return np.stack([plain, plain.reshape(-1, 16, 16)[:, :, ::-1].reshape(-1, 256)])


def test_verify_overlay_needs_one_box_and_does_not_depend_on_jobs():
    rng = np.random.default_rng(3)
    base = np.asarray(scene(800, 32, 32).convert("L"), np.uint8)
    captioned = base.copy()
    captioned[4:10, 3:28] = 255  # a white band of 15 % of the frame
    other = np.asarray(scene(801, 32, 32).convert("L"), np.uint8)
    noisy = np.clip(base + rng.normal(0, 1, base.shape), 0, 255).astype(np.uint8)
    thumbs = np.stack([base, captioned, other, noisy])
    pooled = _pooled(thumbs)
    a, b = np.array([1, 2, 3]), np.array([0, 0, 0])
    one = verify_overlay(thumbs, pooled, a, b, jobs=1)
    two = verify_overlay(thumbs, pooled, a, b, jobs=2)
    for name in one:
        assert np.array_equal(one[name], two[name], equal_nan=True), name
    assert one["score"][0] > 0.9 and 0.1 < one["overlay_area"][0] < 0.3
    assert one["score"][1] == 0.0  # a distinct picture
    assert one["score"][2] == 0.0 and np.isnan(one["overlay_area"][2])  # no box: the plain thumbnail path's pair


def test_overlay_candidates_are_the_nearest_as_is_or_mirrored():
    pictures = [np.asarray(scene(900 + i, 32, 32).convert("L"), np.uint8) for i in range(12)]
    thumbs = np.stack(pictures + [pictures[5][:, ::-1]])  # row 12 mirrors row 5
    sym, anti = mirror_project(thumb_vectors(thumbs), 64)
    everything = np.arange(len(thumbs))
    a, b = overlay_candidates((sym, anti), everything, everything, True, k=2)
    assert not (a == b).any()
    assert np.bincount(a, minlength=len(thumbs)).max() == 2
    assert 12 in b[a == 5] and 5 in b[a == 12]
    cross_a, cross_b = overlay_candidates((sym, anti), np.array([12]), np.arange(12), False, k=1)
    assert cross_a.tolist() == [12] and cross_b.tolist() == [5]


def test_the_report_card_of_an_overlay_pair_says_where_the_two_differ(captioned):
    from splitaudit.report.html import _pair_cards

    split, _, _, result = captioned
    overlaid = result.pairs[result.pairs["decided_by"] == "overlay"]
    html = _pair_cards(overlaid, split.images, a="val", b="train", label_a="val", label_b="train")
    assert html.count("overlay: the two differ inside one box of") == len(overlaid) > 0
    assert "grey levels outside it" in html


def test_check_new_finds_captioned_copies_as_scan_does(captioned, tmp_path):
    from pathlib import Path

    from splitaudit.index import TrainingIndex

    split, _, planted, _ = captioned
    root = Path(split.root)
    TrainingIndex.build(root, jobs=1, cache=False).save(tmp_path / "index")
    matches = TrainingIndex.load(tmp_path / "index").check(root / "val", jobs=1, cache=False)
    found = {(Path(n).name, Path(t).name) for n, t in zip(matches["new_path"], matches["train_path"])}
    assert {(Path(v).name, Path(t).name) for v, t in planted.items()} <= found
    assert set(matches.loc[matches["new_path"].map(lambda p: Path(p).name).str.startswith("captioned"),
                           "decided_by"]) == {"overlay"}


def test_the_inverted_file_probing_every_cell_finds_the_exact_neighbours(monkeypatch):
    """Above ``_IVF_FROM`` images the neighbours come from an inverted file; probing all its cells
    must give the exact search's answer (the cells are built by hand, without k-means)."""
    from splitaudit.duplicates import overlay

    rng = np.random.default_rng(5)
    pictures = np.stack([np.asarray(scene(1000 + i, 32, 32).convert("L"), np.uint8) for i in range(40)])
    noisy = np.clip(pictures + rng.normal(0, 4, pictures.shape), 0, 255).astype(np.uint8)
    thumbs = np.concatenate([pictures, noisy[:, :, ::-1]])  # each picture and a noisy mirror of it
    sym, anti = mirror_project(thumb_vectors(thumbs), 64)
    everything = np.arange(len(thumbs))
    exact = overlay_candidates((sym, anti), everything, everything, True, k=3)
    monkeypatch.setattr(overlay, "_IVF_FROM", 10)
    monkeypatch.setattr(overlay, "_ROWS_PER_LIST", 8)
    monkeypatch.setattr(overlay, "_PROBES", 1000)  # every cell
    approximate = overlay_candidates((sym, anti), everything, everything, True, k=3, jobs=2)
    assert sorted(zip(*map(np.ndarray.tolist, exact))) == sorted(zip(*map(np.ndarray.tolist, approximate)))
    nearest = dict(zip(*map(np.ndarray.tolist, overlay_candidates((sym, anti), everything[:40], everything[40:],
                                                                   False, k=1))))
    assert nearest == {i: 40 + i for i in range(40)}  # the noisy mirror is each picture's nearest


def test_a_caption_does_not_pick_the_alignment():
    """The whole-frame correlation can put a captioned copy a pixel off its original (the caption
    weighs in it); the overlay test then keeps no shift, which leaves the smaller robust residual.
    A copy that really is a pixel off keeps its shift."""
    from splitaudit.duplicates.overlay import _alignment
    from splitaudit.duplicates.verify import best_alignment

    pulled = 0
    for seed in range(40):
        original = smooth_scene(seed)
        ta = _thumb_of(caption_then_shrink(original, seed)).astype(np.float32)[None]
        tb = _thumb_of(original).astype(np.float32)[None]
        _, dy, dx, _, _ = best_alignment(ta, tb, 1, 0.05)
        if dy[0] or dx[0]:
            pulled += 1
            shift = _alignment(ta, tb)
            assert (int(shift[0][0]), int(shift[1][0])) == (0, 0), seed
    assert pulled >= 3  # the case this guards against occurs in these fixtures
    big = np.asarray(scene(3, 34, 34).convert("L"), np.float32)
    ta, tb = big[1:33, 1:33][None], big[0:32, 1:33][None]  # tb is ta moved down by a pixel
    shift = _alignment(ta, tb)
    assert (int(shift[0][0]), int(shift[1][0])) == (1, 0)


def _garment(seed: int, lines: int | None = None) -> Image.Image:
    """A sharp-edged garment-like shape with strokes on a black 96-px frame; ``lines`` draws other
    strokes on the same shape (the same object, another photo)."""
    rng = np.random.default_rng(seed)
    strokes = rng if lines is None else np.random.default_rng(lines)
    img = Image.new("L", (96, 96), 0)
    draw = ImageDraw.Draw(img)
    draw.polygon([(float(x), float(y)) for x, y in rng.uniform(12, 84, (6, 2))], fill=int(rng.integers(120, 220)))
    draw.ellipse([30, 30, 60, 70], outline=int(rng.integers(30, 90)), width=3)
    for _ in range(4):
        x0, y0, x1, y1 = strokes.uniform(16, 80, 4)
        draw.line([x0, y0, x1, y1], fill=int(strokes.integers(0, 256)), width=2)
    return img


def _caption_to_small(im: Image.Image, seed: int) -> Image.Image:
    """A caption of 6-14 % of the frame, then shrunk to 29-41 px (no keypoints; the resize
    rounds the frame to whole pixels)."""
    rng = np.random.default_rng(seed + 1000)
    out = im.copy()
    draw = ImageDraw.Draw(out)
    h, w = int(96 * rng.uniform(0.1, 0.16)), int(96 * rng.uniform(0.6, 0.9))
    x0, y0 = int(rng.integers(0, 96 - w)), int(rng.integers(0, 96 - h))
    draw.rectangle([x0, y0, x0 + w, y0 + h], fill=255 if seed % 2 else 0)
    draw.text((x0 + 2, y0 + 1), "SALE copy", fill=0 if seed % 2 else 255)
    side = int(rng.integers(29, 42))
    return out.resize((side, side), Image.Resampling.LANCZOS)


def test_small_shrunk_copies_are_compared_blurred(tmp_path):
    """A 96-px garment captioned and saved at 29-41 px: the resize moves its outlines by a
    fraction of a thumbnail pixel, which the overlay test read as disagreement outside the
    caption. Where one image is small and resized from the other, both thumbnails are blurred
    by half a pixel: most copies pass, the same garment with other strokes still does not, and
    pairs of one size are compared as before."""
    for side in ("train", "val"):
        (tmp_path / side / "x").mkdir(parents=True)
    n = 16
    for i in range(n):
        original = _garment(i)
        original.save(tmp_path / "train" / "x" / f"o{i:02d}.png")
        _caption_to_small(original, i).save(tmp_path / "val" / "x" / f"c{i:02d}.jpg", quality=90)
        _caption_to_small(_garment(i, lines=900 + i), i).save(tmp_path / "val" / "x" / f"l{i:02d}.jpg", quality=90)
    split = ImageSplit.from_folder(tmp_path)
    fps = compute_fingerprints(split, jobs=1, cache=False)
    where = {p.split("/")[-1]: k for k, p in enumerate(split.images["path"].astype(str))}
    copies = np.array([where[f"c{i:02d}.jpg"] for i in range(n)])
    looks = np.array([where[f"l{i:02d}.jpg"] for i in range(n)])
    originals = np.array([where[f"o{i:02d}.png"] for i in range(n)])
    pooled = _pooled(fps.thumbs)
    sides = np.fmin(fps.table["width"].to_numpy(float), fps.table["height"].to_numpy(float))
    plain = verify_overlay(fps.thumbs, pooled, copies, originals)
    blurred = verify_overlay(fps.thumbs, pooled, copies, originals, sides=sides)
    assert (blurred["score"] >= 0.5).sum() >= max(10, (plain["score"] >= 0.5).sum() + 4)
    both = np.isfinite(plain["overlay_grey"]) & np.isfinite(blurred["overlay_grey"])
    assert np.median(blurred["overlay_grey"][both]) < np.median(plain["overlay_grey"][both])
    look = verify_overlay(fps.thumbs, pooled, looks, originals, sides=sides)
    assert (look["score"] < 0.5).all()
    # one size (no resize between the two): as without sides
    same = verify_overlay(fps.thumbs, pooled, copies, originals, sides=np.full(len(sides), 40.0))
    for name in plain:
        assert np.array_equal(same[name], plain[name], equal_nan=True), name


def _captioned_among_others(band: tuple[slice, slice], seed: int, others: int) -> np.ndarray:
    """32-px thumbnails: a picture under a white caption (``band``), its original, then ``others``
    other pictures under the same caption."""
    original = _thumb_of(smooth_scene(seed))
    rows = [original.copy(), original]
    for i in range(others):
        rows.append(_thumb_of(smooth_scene(seed + 10 + i)).copy())
    for k in (0, *range(2, len(rows))):
        rows[k][band] = 255
    return np.stack(rows)


def test_overlay_candidates_rank_a_captioned_copys_original_by_what_lies_outside_the_caption():
    """A wide caption weighs in the thumbnails' correlation: other pictures under the same caption
    correlate better with the copy than its own original does. Among the shortlist, the original
    agrees best outside the caption's pixels, so it is kept; without ``pooled`` (plain
    correlation) it is not."""
    thumbs = _captioned_among_others((slice(5, 11), slice(1, 31)), 950, 8)  # a caption of 18 % of the frame
    pooled = _pooled(thumbs)
    sym, anti = mirror_project(thumb_vectors(thumbs), 64)
    train = np.arange(1, len(thumbs))
    _, plain = overlay_candidates((sym, anti), np.array([0]), train, False, k=3)
    assert 1 not in plain.tolist()  # the case this guards against: the caption picks the neighbours
    _, ranked = overlay_candidates((sym, anti), np.array([0]), train, False, k=3, pooled=pooled)
    assert len(ranked) == 3 and 1 in ranked.tolist()
    _, first = overlay_candidates((sym, anti), np.array([0]), train, False, k=1, pooled=pooled)
    assert first.tolist() == [1]


def test_a_captioned_copys_original_past_the_shortlist_is_found_with_the_caption_left_out(monkeypatch):
    """Forty other pictures under the same caption all correlate better with the copy than its own
    original: the original is not even among the shortlist the robust ranking sees. Across the
    split, the nearest thumbnails with one corner block left out (the caption lies inside one)
    join the shortlist, and the original is then the best kept; within a split they are not
    searched."""
    from splitaudit.duplicates import overlay

    thumbs = _captioned_among_others((slice(1, 9), slice(1, 19)), 970, 40)  # 14 % of the frame, top left
    pooled = _pooled(thumbs)
    coords = mirror_project(thumb_vectors(thumbs), 64)
    train = np.arange(1, len(thumbs))
    monkeypatch.setattr(overlay, "OCCLUDED_NEIGHBOURS", 0)
    _, shortlist = overlay_candidates(coords, np.array([0]), train, False, k=overlay.OVERLAY_SHORTLIST)
    assert 1 not in shortlist.tolist()  # the case this guards against
    _, without = overlay_candidates(coords, np.array([0]), train, False, k=3, pooled=pooled)
    assert 1 not in without.tolist()
    monkeypatch.undo()
    _, first = overlay_candidates(coords, np.array([0]), train, False, k=1, pooled=pooled)
    assert first.tolist() == [1]
    everything = np.arange(len(thumbs))
    a, b = overlay_candidates(coords, everything, everything, True, k=3, pooled=pooled)
    assert 1 not in b[a == 0].tolist()  # within a split: the shortlist alone
    score = verify_overlay(thumbs, pooled, np.array([0]), np.array([1]))["score"]
    assert score[0] >= 0.5
