"""Issue 17 (robustness 2), items 1, 2, 4-10: each fault ends in exit 0 (handled, reported) or 2 (one
line: what was expected, what was found, how to fix), never 3, never a write under the data root.

Item 3 (output linear in identical images) belongs to the duplicates package and is tested there.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from splitaudit.cli import main

from .test_bad_input import tree_digest


def _images(folder: Path, n: int, seed: int, prefix: str = "img", side: int = 48, ext: str = "png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        path = folder / f"{prefix}_{i:02d}.{ext}"
        Image.fromarray(base).resize((side, side), Image.Resampling.BICUBIC).save(path)
        paths.append(path)
    return paths


def _split(root: Path, n: int = 5) -> Path:
    _images(root / "train" / "a", n, 0)
    _images(root / "val" / "a", n, 1)
    return root


def _scan(root: Path, out: Path, *extra: str) -> int:
    return main(["scan", str(root), "--out", str(out), "--jobs", "1", "--quiet", *extra])


def _summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("splitaudit: error: "), err
    assert "Traceback" not in err and "internal error" not in err
    return lines[0]


# ---------------------------------------------------------------- 7: exact_pixels in both modes
@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_pixel_identical_resave_is_exact_in_both_modes(tmp_path, capsys, mode):
    root = tmp_path / "data"
    (root / "train").mkdir(parents=True)
    (root / "val").mkdir(parents=True)
    rng = np.random.default_rng(3)
    photo = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize((256, 256))
    photo.save(root / "train" / "photo.jpg", quality=90)  # fast mode DCT-scales this one
    Image.open(root / "train" / "photo.jpg").convert("RGB").save(root / "val" / "photo_resaved.png")
    big = photo.resize((512, 512))  # fast mode box-reduces PNGs this large
    big.save(root / "train" / "big.png")
    big.convert("RGBA").save(root / "val" / "big_rgba.png", optimize=True)
    _images(root / "train", 3, 0)
    _images(root / "val", 3, 1)
    before = tree_digest(root)
    assert _scan(root, tmp_path / "out", "--no-cache", "--mode", mode) == 0, capsys.readouterr().err
    assert tree_digest(root) == before
    pairs = pd.read_csv(tmp_path / "out" / "duplicates.csv")
    found = {(r.val_path, r.train_path): (r.kind, bool(r.exact_pixels)) for r in pairs.itertuples()}
    assert found[("val/photo_resaved.png", "train/photo.jpg")] == ("exact", True)
    assert found[("val/big_rgba.png", "train/big.png")] == ("exact", True)
    images = pd.read_csv(tmp_path / "out" / "images.csv").set_index("path")
    assert images.loc["val/photo_resaved.png", "pixel_sha1"] == images.loc["train/photo.jpg", "pixel_sha1"]


def test_pixel_digest_does_not_depend_on_the_mode(tmp_path):
    from splitaudit.fingerprints import compute_fingerprints

    paths = _images(tmp_path / "jpg", 3, 5, side=256, ext="jpg") + _images(tmp_path / "png", 2, 6, side=400)
    fast = compute_fingerprints(paths, mode="fast", jobs=1).table["pixel_sha1"].tolist()
    exact = compute_fingerprints(paths, mode="exact", jobs=1).table["pixel_sha1"].tolist()
    assert fast == exact and len(set(fast)) == len(paths)
