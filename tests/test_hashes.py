"""Hashes: bit-identical to imagehash, value class, packing, flips."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from splitaudit.fingerprints import Hash64, compute_fingerprints, hamming, pack_bits, unpack_bits
from splitaudit.fingerprints.hashes import ahash, dhash, phash

# (format, extension, modes it can store)
FORMATS = [
    ("PNG", "png", ["1", "L", "P", "RGB", "RGBA", "LA", "I;16"]),
    ("JPEG", "jpg", ["L", "RGB", "CMYK"]),
    ("BMP", "bmp", ["1", "L", "P", "RGB"]),
    ("GIF", "gif", ["L", "P"]),
    ("TIFF", "tif", ["1", "L", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"]),
    ("WEBP", "webp", ["RGB", "RGBA"]),
]


def _texture(rng, h, w):
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:h, 0:w]
    if kind == 0:  # noise
        arr = rng.integers(0, 256, (h, w, 3))
    elif kind == 1:  # gradient
        arr = np.stack([xx * 255 / max(w - 1, 1), yy * 255 / max(h - 1, 1), (xx + yy) % 256], axis=2)
    elif kind == 2:  # stripes at random frequency
        f = rng.uniform(0.05, 0.6, 3)
        arr = 127.5 + 127.5 * np.sin(xx[..., None] * f + yy[..., None] * f[::-1])
    else:  # blocks
        cells = rng.integers(0, 256, (4, 4, 3))
        arr = cells[yy * 4 // h, xx * 4 // w]
    return np.clip(arr, 0, 255).astype(np.uint8)


def _to_mode(rgb: Image.Image, mode: str) -> Image.Image:
    if mode == "P":
        return rgb.quantize(32)
    if mode in ("I;16", "I", "F"):
        gray = np.asarray(rgb.convert("L")).astype(np.float64)
        if mode == "I;16":
            return Image.fromarray((gray * 257).astype(np.uint16))
        if mode == "I":
            return Image.fromarray((gray * 3).astype(np.int32))  # some values > 255: clipped by imagehash
        return Image.fromarray((gray / 2).astype(np.float32))
    return rgb.convert(mode)


def make_corpus(root, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    combos = [(fmt, ext, mode) for fmt, ext, modes in FORMATS for mode in modes]
    paths = []
    for i in range(n):
        fmt, ext, mode = combos[i % len(combos)]
        h, w = (int(v) for v in rng.integers(9, 90, 2))
        image = _to_mode(Image.fromarray(_texture(rng, h, w)), mode)
        path = root / f"{i:04d}_{mode.replace(';', '')}.{ext}"
        options = {"quality": int(rng.integers(40, 96))} if fmt in ("JPEG", "WEBP") else {}
        image.save(path, fmt, **options)
        paths.append(str(path))
    return paths


def test_exact_mode_is_bit_identical_to_imagehash(tmp_path):
    paths = make_corpus(tmp_path, n=1000)
    fps = compute_fingerprints(paths, mode="exact", jobs=1, chunksize=128)
    assert fps.table["ok"].all(), fps.table.loc[~fps.table["ok"], ["path", "reason"]]
    expected = {"phash": [], "dhash": [], "ahash": []}
    for path in paths:
        with Image.open(path) as image:
            expected["phash"].append(int(str(imagehash.phash(image)), 16))
            expected["dhash"].append(int(str(imagehash.dhash(image)), 16))
            expected["ahash"].append(int(str(imagehash.average_hash(image)), 16))
    for column, values in expected.items():
        got = fps.table[column].to_numpy()
        mismatched = [paths[i] for i in np.flatnonzero(got != np.array(values, dtype=np.uint64))]
        assert not mismatched, (column, mismatched[:5])
    # a wide mix of formats and modes went through
    assert fps.table["format"].nunique() == len(FORMATS)
    assert fps.table["mode"].nunique() >= 10


def test_flat_images_match_imagehash_despite_dct_ties():
    flats = np.stack([np.full((32, 32), v, np.uint8) for v in (0, 1, 128, 255)])
    halves = flats.copy()
    halves[:, :, :16] = 7
    stack = np.concatenate([flats, halves])
    expected = [int(str(imagehash.phash(Image.fromarray(a))), 16) for a in stack]
    assert phash(stack).tolist() == expected


def test_batch_functions_match_imagehash_on_arrays():
    rng = np.random.default_rng(3)
    images = [Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8)) for _ in range(50)]
    g32 = np.stack([np.asarray(im.resize((32, 32), Image.Resampling.LANCZOS)) for im in images])
    g98 = np.stack([np.asarray(im.resize((9, 8), Image.Resampling.LANCZOS)) for im in images])
    g8 = np.stack([np.asarray(im.resize((8, 8), Image.Resampling.LANCZOS)) for im in images])
    assert phash(g32).tolist() == [int(str(imagehash.phash(im)), 16) for im in images]
    assert dhash(g98).tolist() == [int(str(imagehash.dhash(im)), 16) for im in images]
    assert ahash(g8).tolist() == [int(str(imagehash.average_hash(im)), 16) for im in images]
    with pytest.raises(ValueError, match="32, 32"):
        phash(g8)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_flip_hashes_equal_hashes_of_the_mirrored_image(tmp_path, mode):
    rng = np.random.default_rng(5)
    originals, mirrors = [], []
    for i in range(30):
        h, w = (int(v) for v in rng.integers(10, 60, 2))
        image = Image.fromarray(_texture(rng, h, w))
        originals.append(tmp_path / f"o{i}.png")
        mirrors.append(tmp_path / f"m{i}.png")
        image.save(originals[-1])
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrors[-1])
    a = compute_fingerprints(originals, mode=mode, jobs=1).table
    b = compute_fingerprints(mirrors, mode=mode, jobs=1).table
    for name in ("phash", "dhash", "ahash"):
        assert (a[f"{name}_flip"].to_numpy() == b[name].to_numpy()).all()
        assert (b[f"{name}_flip"].to_numpy() == a[name].to_numpy()).all()
    assert (a["phash"].to_numpy() != a["phash_flip"].to_numpy()).mean() > 0.5


def test_hash64_value_class_matches_imagehash():
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 30), dtype=np.uint8))
    reference = imagehash.phash(image)
    other = imagehash.phash(image.rotate(90))
    mine = Hash64.from_hex(str(reference))
    assert mine.hex == str(reference) and str(mine) == str(reference)
    assert (mine - Hash64.from_hex(str(other))) == (reference - other)
    assert np.array_equal(mine.bits, reference.hash)
    assert Hash64.from_hex(mine.hex) == mine
    with pytest.raises(ValueError, match="16 hex digits"):
        Hash64.from_hex("abc")
    with pytest.raises(TypeError, match="str"):
        Hash64.from_hex(12)
    with pytest.raises(ValueError, match="64 unsigned bits"):
        Hash64(-1)


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_pack_unpack_round_trip(values):
    arr = np.array(values, dtype=np.uint64)
    bits = unpack_bits(arr)
    assert bits.shape == (len(values), 8, 8)
    assert np.array_equal(pack_bits(bits), arr)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_hamming_matches_python_bit_count(a, b):
    assert int(hamming(np.uint64(a), np.uint64(b))) == (a ^ b).bit_count() == Hash64(a).hamming(b)


def test_hamming_broadcasts():
    a = np.array([0, 1, 3], dtype=np.uint64)
    assert hamming(a[:, None], a[None, :]).tolist() == [[0, 1, 2], [1, 0, 1], [2, 1, 0]]
