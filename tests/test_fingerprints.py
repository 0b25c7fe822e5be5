"""compute_fingerprints: contract, order, properties, unreadable rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from splitaudit import ImageSplit
from splitaudit.fingerprints import TABLE_COLUMNS, Fingerprints, compute_fingerprints, describe

RNG = np.random.default_rng(11)


def _photo(h=48, w=64, seed=None):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx * yy) % 256], axis=2) + rng.integers(0, 40, (h, w, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def check_contract(fps: Fingerprints, n: int) -> None:
    """Invariants every Fingerprints must satisfy (reused across cases)."""
    table = fps.table
    assert list(table.columns)[: len(TABLE_COLUMNS)] == list(TABLE_COLUMNS)
    assert len(table) == n == len(fps)
    assert fps.thumbs.shape == (n, 32, 32) and fps.thumbs.dtype == np.uint8
    assert fps.descriptor.shape[0] == n and fps.descriptor.dtype == np.float32
    for column in ("phash", "dhash", "ahash", "phash_flip", "dhash_flip", "ahash_flip"):
        assert table[column].dtype == np.uint64
    ok = table["ok"].to_numpy()
    norms = np.linalg.norm(fps.descriptor, axis=1)
    assert np.allclose(norms[ok], 1, atol=1e-4)
    assert (norms[~ok] == 0).all() and (fps.thumbs[~ok] == 0).all()
    assert table.loc[~ok, "reason"].map(lambda r: isinstance(r, str) and len(r) > 0).all()
    assert table.loc[ok, "reason"].isna().all()
    assert (table.loc[~ok, "phash"] == 0).all() and table.loc[~ok, "pixel_sha1"].isna().all()
    assert table.loc[ok, "pixel_sha1"].str.len().eq(40).all()
    assert fps.stats["total"] == n and fps.stats["unreadable"] == int((~ok).sum())


def test_split_input_keeps_split_order_and_relative_paths(tmp_path):
    root = tmp_path / "data"
    for split, count in (("train", 6), ("val", 3)):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                _photo(seed=hash((split, label, i)) % 1000).save(folder / f"{i}.png")
    whole = (root / "val" / "dog" / "0.png").read_bytes()
    (root / "val" / "dog" / "broken.png").write_bytes(whole[: len(whole) // 2])
    split = ImageSplit.from_folder(root)
    calls = []
    fps = compute_fingerprints(split, jobs=1, progress=lambda *a: calls.append(a))
    check_contract(fps, len(split.images))
    assert fps.table["path"].tolist() == split.images["path"].tolist()
    broken = fps.table.set_index("path").loc["val/dog/broken.png"]
    assert not broken["ok"] and broken["reason"] == "truncated image file"
    assert broken["bytes_sha1"] is not None  # the bytes were read
    assert calls[-1] == ("fingerprints", len(split.images), len(split.images))
    assert all(stage == "fingerprints" for stage, _, _ in calls)
    assert [done for _, done, _ in calls] == sorted(done for _, done, _ in calls)


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_jobs_two_equals_jobs_one_in_order(tmp_path, mode):
    paths = []
    for i in range(40):
        path = tmp_path / f"{i:02d}.{'jpg' if i % 2 else 'png'}"
        _photo(40 + i, 50 + 2 * i, seed=i).save(path)
        paths.append(path)
    (tmp_path / "bad.jpg").write_text("nope")
    paths.insert(17, tmp_path / "bad.jpg")
    one = compute_fingerprints(paths, mode=mode, jobs=1, chunksize=4)
    two = compute_fingerprints(paths, mode=mode, jobs=2, chunksize=4)
    check_contract(two, len(paths))
    assert one.table.equals(two.table)
    assert np.array_equal(one.thumbs, two.thumbs)
    assert np.array_equal(one.descriptor, two.descriptor)
    assert two.table["path"].tolist() == [str(p) for p in paths]
    assert two.table.loc[17, "reason"] == "not an image (cannot identify format)"


def test_properties_follow_planted_differences(tmp_path):
    photo = _photo(96, 128, seed=1)
    variants = {
        "base.png": photo,
        "bright.png": Image.eval(photo, lambda v: min(255, v + 60)),
        "blur.png": photo.filter(ImageFilter.GaussianBlur(3)),
        "gray.png": photo.convert("L"),
        "flat.png": Image.new("RGB", (128, 96), (90, 90, 90)),
        "big.png": photo.resize((512, 384), Image.Resampling.BICUBIC),
    }
    for name, image in variants.items():
        image.save(tmp_path / name)
    for quality in (30, 90):
        photo.save(tmp_path / f"q{quality}.jpg", quality=quality)
    names = [*variants, "q30.jpg", "q90.jpg"]
    table = compute_fingerprints([tmp_path / n for n in names], jobs=1).table.set_index(
        table_index := np.array(names)
    )
    assert table.loc["bright.png", "brightness"] > table.loc["base.png", "brightness"] + 15
    assert table.loc["blur.png", "sharpness"] < table.loc["base.png", "sharpness"] / 3
    assert table.loc["flat.png", "contrast"] == 0 and table.loc["flat.png", "entropy"] == 0
    assert table.loc["flat.png", "sharpness"] == 0
    assert table.loc["gray.png", "colourfulness"] == 0 < table.loc["base.png", "colourfulness"]
    assert table.loc["base.png", "entropy"] > 4
    assert abs(table.loc["q30.jpg", "jpeg_quality"] - 30) <= 2
    assert abs(table.loc["q90.jpg", "jpeg_quality"] - 90) <= 2
    assert np.isnan(table.loc["base.png", "jpeg_quality"])
    assert (table.loc["big.png", "width"], table.loc["big.png", "height"]) == (512, 384)
    assert table.loc["big.png", "aspect"] == pytest.approx(4 / 3)
    assert table.loc["gray.png", "mode"] == "L" and table.loc["q90.jpg", "format"] == "JPEG"
    # a 4x upscale is still a near duplicate: hash within a few bits, descriptor close
    fps = compute_fingerprints([tmp_path / "base.png", tmp_path / "big.png", tmp_path / "flat.png"], jobs=1)
    assert fps.hash("phash", 0) - fps.hash("phash", 1) <= 6
    cos = fps.descriptor @ fps.descriptor.T
    assert cos[0, 1] > 0.9 > cos[0, 2]
    assert len(table_index) == len(names)


def test_pixel_and_byte_sha1(tmp_path):
    image = _photo(seed=4)
    image.save(tmp_path / "a.png")
    image.save(tmp_path / "b.bmp")
    image.save(tmp_path / "c.png", compress_level=1)
    _photo(seed=5).save(tmp_path / "d.png")
    table = compute_fingerprints(
        [tmp_path / n for n in ("a.png", "b.bmp", "c.png", "d.png")], mode="exact", jobs=1
    ).table
    assert table["pixel_sha1"].iloc[:3].nunique() == 1
    assert table["pixel_sha1"].iloc[3] != table["pixel_sha1"].iloc[0]
    assert table["bytes_sha1"].nunique() == 4


def test_to_frame_and_to_json(tmp_path):
    _photo(seed=1).save(tmp_path / "x.png")
    (tmp_path / "y.png").write_bytes(b"")
    fps = compute_fingerprints([tmp_path / "x.png", tmp_path / "y.png"], jobs=1)
    frame = fps.to_frame()
    frame.loc[0, "path"] = "changed"
    assert fps.table.loc[0, "path"] != "changed"
    payload = json.loads(fps.to_json())
    assert payload["mode"] == "fast" and len(payload["images"]) == 2
    assert payload["images"][0]["phash"] == fps.hash("phash", 0).hex
    assert payload["images"][1]["reason"] == "empty file (0 bytes)"


def test_bad_arguments_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="mode must be one of"):
        compute_fingerprints([], mode="slow")
    with pytest.raises(TypeError, match="split_or_paths"):
        compute_fingerprints(str(tmp_path))
    with pytest.raises(ValueError, match="chunksize"):
        compute_fingerprints([], chunksize=0)
    with pytest.raises(TypeError, match="progress"):
        compute_fingerprints([], progress="yes")
    with pytest.raises(TypeError, match="cache"):
        compute_fingerprints([], cache=3.5)
    empty = compute_fingerprints([], jobs=1)
    check_contract(empty, 0)


def test_fast_descriptor_and_property_paths_match_the_general_ones():
    from splitaudit.fingerprints.descriptor import _gradient_histogram, rgb_to_gray
    from splitaudit.fingerprints.properties import pixel_properties

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    rgb[20:] = rgb[20:, :, :, :1]  # gray rows (r == g == b)
    rgb[30:] //= 41  # low-contrast gray rows
    colour = np.arange(40) < 20
    gray8 = rgb_to_gray(rgb, np.uint8)
    # table-lookup gradients (uint8) == arctan2 gradients (float32), bit for bit
    assert np.array_equal(_gradient_histogram(gray8), _gradient_histogram(gray8.astype(np.float32)))
    # the gray shortcut (no HSV conversion) gives the same descriptor
    assert np.array_equal(describe(rgb, gray8, colour=colour), describe(rgb, rgb_to_gray(rgb)))
    fast = pixel_properties(rgb, gray8, colour=colour)
    x = rgb.reshape(40, -1, 3).astype(np.float64)
    g = gray8.reshape(40, -1).astype(np.float64)
    rg, yb = x[..., 0] - x[..., 1], 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    want = np.hypot(rg.std(1), yb.std(1)) + 0.3 * np.hypot(rg.mean(1), yb.mean(1))
    np.testing.assert_allclose(fast["colourfulness"], want, rtol=1e-12, atol=1e-12)
    assert np.all(fast["colourfulness"][20:] == 0)
    np.testing.assert_allclose(fast["contrast"], g.std(1), rtol=1e-12)
    np.testing.assert_array_equal(fast["brightness"], g.mean(1))


def test_numpy_resize_is_bit_identical_to_pillow():
    from splitaudit.fingerprints.resample import resize_stack

    rng = np.random.default_rng(5)
    lanczos, bilinear = Image.Resampling.LANCZOS, Image.Resampling.BILINEAR
    for trial in range(24):  # tall, wide, tiny, upscaled and downscaled, gray and RGB
        w, h = (int(v) for v in rng.integers(1, 160, 2))
        stack = rng.integers(0, 256, (3, h, w, *((3,) if trial % 2 else ())), dtype=np.uint8)
        stack[1] = np.where(stack[1] > 127, 255, 0)  # hard edges: ringing gets clipped
        for size, resample in (((32, 32), lanczos), ((9, 8), lanczos), ((8, 8), lanczos), ((32, 32), bilinear)):
            got = resize_stack(stack, size, resample)
            want = np.stack([np.asarray(Image.fromarray(img).resize(size, resample)) for img in stack])
            assert got is not None and np.array_equal(got, want), (w, h, size, resample)


def test_fast_mode_keeps_256px_jpeg_thumbnails_close_to_exact(tmp_path):
    """Fast mode decodes JPEGs to at least 48 px a side, so the 32-px thumbnails still come from a
    LANCZOS downscale: a 256-px JPEG is DCT-scaled to 64 px, not straight to 32 (which was ~4 grey
    levels off exact mode on this texture, and gave false near pairs on upscaled images)."""
    from splitaudit.fingerprints.chunk import fingerprint_columns

    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        small = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
        paths.append(str(tmp_path / f"{i}.jpg"))
        Image.fromarray(small).resize((256, 256), Image.BICUBIC).save(paths[-1], quality=90)
    fast = fingerprint_columns(paths, mode="fast")
    exact = fingerprint_columns(paths, mode="exact")
    diff = np.abs(fast.thumbs.astype(int) - exact.thumbs.astype(int)).mean(axis=(1, 2))
    assert (diff < 2.0).all(), diff
    # the decode really was reduced, so it is still fast mode; the pixel digest is the full frame's
    # in both modes (issue 17, item 7)
    from splitaudit.imageio import open_image

    assert open_image(paths[0], reduce_to=96).scale == 2
    assert fast.columns["pixel_sha1"] == exact.columns["pixel_sha1"]
