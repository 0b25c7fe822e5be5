"""Issue 17 (robustness 2): state and hostile-input faults end in exit 0 (handled, reported) or 2
(one line: what was expected, what was found, how to fix), never 3, never a write under the data."""

from __future__ import annotations

import json
import os
import warnings
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


# ---------------------------------------------------------------- 1: no readable image in a batch
def test_unreadable_file_added_to_a_cached_dataset(tmp_path, capsys):
    root = _split(tmp_path / "data")
    cache = str(tmp_path / "cache")
    assert _scan(root, tmp_path / "out", "--cache", cache) == 0
    (root / "train" / "a" / "empty.png").write_bytes(b"")  # the only file left to compute
    (root / "val" / "new").mkdir()
    (root / "val" / "new" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    before = tree_digest(root)
    code = _scan(root, tmp_path / "out", "--cache", cache)
    assert code == 0, capsys.readouterr().err
    assert tree_digest(root) == before
    unreadable = {u["path"]: u["reason"] for u in _summary(tmp_path / "out")["unreadable"]}
    assert set(unreadable) == {"train/a/empty.png", "val/new/corrupt.png"}
    assert "empty" in unreadable["train/a/empty.png"]


def test_every_file_unreadable_without_cache(tmp_path, capsys):
    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for i in range(3):
            (root / split / f"{i}.jpg").write_text("not an image")
    before = tree_digest(root)
    code = _scan(root, tmp_path / "out", "--no-cache")
    assert code == 0, capsys.readouterr().err
    assert tree_digest(root) == before
    summary = _summary(tmp_path / "out")
    assert summary["n_unreadable"] == 6
    assert {f["status"] for f in summary["findings"]} == {"skipped"}


def test_a_chunk_with_no_readable_image(tmp_path):
    from splitaudit.fingerprints import compute_fingerprints

    good = _images(tmp_path / "good", 3, 0)
    bad = []
    for i in range(4):
        bad.append(tmp_path / f"bad{i}.png")
        bad[-1].write_bytes(b"" if i % 2 else b"garbage")
    fps = compute_fingerprints([*bad, *good], jobs=1, chunksize=2)  # two chunks hold only bad files
    assert fps.table["ok"].tolist() == [False] * 4 + [True] * 3
    assert (fps.table["phash"].iloc[:4] == 0).all() and (fps.table["phash"].iloc[4:] != 0).all()
    alone = compute_fingerprints(good, jobs=1)
    assert fps.table["phash"].iloc[4:].tolist() == alone.table["phash"].tolist()


# ---------------------------------------------------------------- 8: an empty split
@pytest.mark.parametrize("empty", ["val_unreadable", "val_missing", "train_unreadable"])
def test_empty_split_skips_the_checks_without_warnings(tmp_path, capsys, empty):
    root = tmp_path / "data"
    if empty == "train_unreadable":
        _images(root / "val" / "a", 6, 1)
        (root / "train" / "a").mkdir(parents=True)
        for i in range(6):
            (root / "train" / "a" / f"{i}.png").write_bytes(b"")
    else:
        _images(root / "train" / "a", 6, 0)
        (root / "val" / "a").mkdir(parents=True)
        if empty == "val_unreadable":
            for i in range(6):
                (root / "val" / "a" / f"{i}.png").write_text("x")
    before = tree_digest(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = _scan(root, tmp_path / "out", "--no-cache")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    assert "Warning" not in captured.err
    assert tree_digest(root) == before
    summary = _summary(tmp_path / "out")
    side = "train" if empty.startswith("train") else "val"
    for finding in summary["findings"]:
        assert finding["status"] == "skipped", finding
        assert f"the {side} split has no readable image" in finding["reason"]
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "No check could run" in html and "No check found leakage" not in html


def test_check_warnings_are_kept_with_the_result_not_printed():
    from splitaudit.checks.base import Check, CheckResult, run_checks

    class Noisy(Check):
        name = "noisy"
        needs_both_splits = False

        def run(self, context):
            np.mean(np.zeros(0))  # RuntimeWarning: Mean of empty slice
            return CheckResult(self.name, "pass", "ok")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (result,) = run_checks([Noisy()], context=None)
    assert result.status == "pass"
    assert any("Mean of empty slice" in w for w in result.numbers["warnings"])
