"""Names that look like rich markup (``[/b]``, ``[red]``) are printed as they are, never parsed.

A class folder, file or root named like a markup tag used to crash ``splitaudit scan`` with rich's
MarkupError (exit 3) or silently lose the tag from the printed name.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from splitaudit.cli import main

NESTED = "[/b]x"  # on POSIX a class folder "[" holding "b]x": the path reads "[/b]x"
FILE = "[red]a.png"


def _images(folder, n, rng):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def _scan_stdout(root, out, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no folding inside a long tmp_path
    code = main(["scan", str(root), "--out", str(out), "--no-cache", "--jobs", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "MarkupError" not in captured.err
    return " ".join(captured.out.split())


def _link_or_skip(target, link):
    try:
        os.symlink(target, link)
    except (OSError, NotImplementedError) as exc:
        pytest.skip(f"no symlinks here ({exc})")


def test_class_folders_and_file_named_like_markup(tmp_path, capsys, monkeypatch):
    """Class folders ``[red]`` and ``[/b]x`` only in val are named in the label_distribution finding
    (a table cell); ``[/b]x/[red]a.png``, a link leaving the root, is named in a note and, as a copy of
    a training image, in the top pairs."""
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for split, n in (("train", 4), ("val", 2)):
        for label in ("cat", "dog"):
            _images(root / split / label, n, rng)
    _images(root / "val" / "[red]", 2, rng)
    (root / "val" / NESTED).mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(root / "train" / "cat" / "0.png", outside / "copy.png")
    _link_or_skip(outside / "copy.png", root / "val" / NESTED / FILE)

    text = _scan_stdout(root, tmp_path / "out", capsys, monkeypatch)
    assert "'[red]'" in text and "label_distribution" in text  # the unseen class, in the finding
    assert f"val/{NESTED}/{FILE} -> " in text  # the note on links leaving the root
    assert f"val/{NESTED}/{FILE} = train/cat/0.png" in text  # the top pair


def test_root_named_like_markup(tmp_path, capsys, monkeypatch):
    """The root, printed on the summary's first line."""
    rng = np.random.default_rng(1)
    root = tmp_path / NESTED
    for split in ("train", "val"):
        for label in ("cat", "dog"):
            _images(root / split / label, 3, rng)

    text = _scan_stdout(root, tmp_path / "out", capsys, monkeypatch)
    assert f"splitaudit scan {root}" in text
