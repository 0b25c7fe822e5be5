"""The hostile-input corpus: every case is read correctly or listed with a reason,
the report escapes names, the data root is untouched, the exit code follows the contract."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from splitaudit.cli import main

from . import badcorpus


def tree_digest(root: Path) -> str:
    """Hash names, sizes, mtimes and contents of everything under root (symlinks as links)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        dirnames.sort()
        for name in sorted(filenames) + [d + b"/" for d in dirnames]:
            full = os.path.join(dirpath, name.rstrip(b"/"))
            st = os.lstat(full)
            h.update(full + str((st.st_mode, st.st_size, st.st_mtime_ns)).encode())
            if os.path.isfile(full) and not os.path.islink(full):
                try:
                    with open(full, "rb") as f:
                        h.update(f.read())
                except PermissionError:
                    h.update(b"<no read>")
    return h.hexdigest()


def _normal(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((48, 48), Image.Resampling.BICUBIC)
        img.save(folder / f"img_{i:02d}.png")


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "data"
    _normal(root / "train", 6, 0)
    _normal(root / "val", 6, 1)
    cases = badcorpus.build(root / "train" / "bad")
    yield root, cases
    badcorpus.restore_permissions(root)


def test_scan_survives_corpus_and_touches_nothing(corpus, tmp_path, capsys):
    root, cases = corpus
    before = tree_digest(root)
    out = tmp_path / "out"
    code = main(["scan", str(root), "--out", str(out), "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert tree_digest(root) == before

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    unreadable = {u["path"]: u["reason"] for u in summary["unreadable"]}
    ignored = {i["path"]: i["reason"] for i in summary["ignored"]}
    images = pd.read_csv(out / "images.csv", keep_default_na=False)
    ok_paths = set(images.loc[images["ok"].astype(str) == "True", "path"])
    for case in cases:
        rel = f"train/bad/{case.name}"
        if case.expect == "ok":
            assert rel in ok_paths, (case.name, unreadable.get(rel))
        elif case.expect == "unreadable":
            assert rel in unreadable, case.name
            assert case.reason.lower() in unreadable[rel].lower(), (case.name, unreadable[rel])
        elif case.expect == "ignored":
            assert rel in ignored, case.name
        else:  # a directory or a loop: never an image row
            assert not any(p.startswith(rel + "/" ) and p.endswith((".jpg", ".png")) and "again" in p
                           for p in images["path"]) and rel not in set(images["path"])
    # every file is accounted for: an image row or an ignored entry
    assert summary["n_images"] == len(images)

    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<svg onload" not in html and "<img src=x" not in html
    assert "&lt;svg onload=alert(1)&gt;" in html


def test_empty_validation_folder_is_a_clear_result(tmp_path, capsys):
    root = tmp_path / "data"
    _normal(root / "train", 5, 0)
    (root / "val").mkdir()
    out = tmp_path / "out"
    code = main(["scan", str(root), "--out", str(out), "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_val"] == 0
    assert any("holds no images" in n for n in summary["notes"])
    statuses = {f["check"]: f["status"] for f in summary["findings"]}
    assert statuses["near_duplicates"] in ("pass", "skipped")
    assert "error" not in statuses.values(), summary["findings"]


def test_all_identical_single_class(tmp_path, capsys):
    root = tmp_path / "data"
    img = Image.fromarray(np.full((32, 32, 3), 90, np.uint8))
    for split, n in (("train", 8), ("val", 3)):
        (root / split / "only").mkdir(parents=True)
        for i in range(n):
            img.save(root / split / "only" / f"{i}.png")
    out = tmp_path / "out"
    code = main(["scan", str(root), "--out", str(out), "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    statuses = {f["check"]: f["status"] for f in summary["findings"]}
    assert statuses["exact_duplicates"] == "fail"
    assert "error" not in statuses.values(), summary["findings"]
    pairs = pd.read_csv(out / "duplicates.csv")
    # linear output: each val image once, with the group's first train image; every pair still counted
    assert len(pairs) == 3 and set(pairs["train_path"]) == {"train/only/0.png"}
    assert summary["expected_cross_duplicates"]["observed"] == 3 * 8


def test_out_inside_data_root_is_refused(tmp_path, capsys):
    root = tmp_path / "data"
    _normal(root / "train", 3, 0)
    _normal(root / "val", 3, 1)
    before = tree_digest(root)
    code = main(["scan", str(root), "--out", str(root / "audit"), "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 2
    assert "outside the data root" in capsys.readouterr().err
    assert tree_digest(root) == before


def test_report_paths_wrap_at_slashes_and_stay_escaped():
    from splitaudit.report.html import _breakable

    out = _breakable("val/<b>x&y</b>/a_very_long_file_name.png")
    assert out == "val/<wbr>&lt;b&gt;x&amp;y&lt;/<wbr>b&gt;/<wbr>a_very_long_file_name.png"
    assert "<b>" not in out and _breakable("plain.png") == "plain.png"


def test_report_expected_sentence_handles_no_within_duplicates():
    from splitaudit.report.html import _expected_sentence

    none = _expected_sentence({"expected": 0.0, "observed": 9, "p_value": 0.0})
    assert "Neither split holds duplicate pairs" in none and "observed 9, which chance does not explain" in none
    assert "p = 0" not in none
    assert _expected_sentence({"expected": 0.0, "observed": 0, "p_value": 1.0}).endswith("observed 0.")
    usual = _expected_sentence({"expected": 46.4, "observed": 41, "p_value": 0.8})
    assert "about 46.4" in usual and "no more than chance" in usual
    assert _expected_sentence({}) == ""
    unmeasured = _expected_sentence({"expected": 0.0, "observed": 3, "p_value": 0.0,
                                     "note": "within=False: no within-split pairs searched, so the expectation is 0"})
    assert unmeasured.startswith("within=False") and "chance" not in unmeasured


def test_near_pair_scores_never_display_as_exact():
    from splitaudit._text import score_text

    assert score_text(0.99999, "near") == "0.99" and score_text(0.99999, "near", 3) == "0.999"
    assert score_text(1.0, "exact") == "1.00" and score_text(0.58, "near") == "0.58"
    assert score_text(0.5, "near") == "0.50"
