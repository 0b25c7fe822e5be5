"""Layout discovery and manifests: ImageSplit."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from splitaudit import ImageSplit
from splitaudit.errors import LayoutError, ManifestError


def _png(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def test_class_folders_give_labels(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("cat", "dog"):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", i)
    (tmp_path / "train" / "notes.txt").write_text("hi")
    s = ImageSplit.from_folder(tmp_path)
    assert (s.n_train, s.n_val) == (6, 4)
    assert s.task == "classification"
    assert set(s.images["label"]) == {"cat", "dog"}
    assert s.images.loc[0, "path"].startswith("train/")
    assert "\\" not in "".join(s.images["path"])
    # the non-image is listed, not silently dropped
    assert list(s.ignored["path"]) == ["train/notes.txt"]


def test_flat_folders_and_aliases(tmp_path):
    _png(tmp_path / "Training" / "a.PNG")
    _png(tmp_path / "validation" / "b.jpg".replace(".jpg", ".png"))
    s = ImageSplit.from_folder(tmp_path)
    assert (s.n_train, s.n_val) == (1, 1)
    assert s.task is None
    assert s.images["label"].isna().all()


def test_prefers_val_over_test_and_notes_it(tmp_path):
    for d in ("train", "val", "test"):
        _png(tmp_path / d / "x.png")
    s = ImageSplit.from_folder(tmp_path)
    assert s.images[s.images.split == "val"]["path"].tolist() == ["val/x.png"]
    assert any("several validation folders" in n for n in s.notes)


def test_missing_layout_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(LayoutError, match="found folders \\['images'\\]"):
        ImageSplit.from_folder(tmp_path)
    with pytest.raises(LayoutError, match="not a directory"):
        ImageSplit.from_folder(tmp_path / "nope")


def test_explicit_dirs_and_empty_split_noted(tmp_path):
    _png(tmp_path / "a" / "1.png")
    (tmp_path / "b").mkdir()
    s = ImageSplit.from_dirs(tmp_path / "a", tmp_path / "b")
    assert (s.n_train, s.n_val) == (1, 0)
    assert any("holds no images" in n for n in s.notes)


def test_manifest_classification_regression_groups(tmp_path):
    for i in range(4):
        _png(tmp_path / "img" / f"{i}.png", i)
    df = pd.DataFrame({
        "path": [f"img/{i}.png" for i in range(4)],
        "split": ["train", "TRAIN", "valid", "test"],
        "target": [100.5, 250.0, 300.0, 120.0],
        "group": ["p1", "p1", "p2", None],
    })
    csv = tmp_path / "m.csv"
    df.to_csv(csv, index=False)
    s = ImageSplit.from_manifest(csv)
    assert s.task == "regression"
    assert (s.n_train, s.n_val) == (2, 2)
    got = s.images.set_index("path")
    assert got.loc["img/1.png", "target"] == 250.0
    assert got.loc["img/0.png", "group"] == "p1"
    assert got.loc["img/3.png", "group"] is None
    assert os.path.isabs(got.loc["img/0.png", "abspath"])


@pytest.mark.parametrize(
    "frame, match",
    [
        (pd.DataFrame({"file": ["a.png"], "split": ["train"]}), "missing \\['path'\\]"),
        (pd.DataFrame({"path": ["a.png"], "split": ["holdout"]}), "unknown split names \\['holdout'\\]"),
        (pd.DataFrame({"path": ["../a.png"], "split": ["train"]}), "outside the root"),
        (pd.DataFrame({"path": ["/etc/passwd"], "split": ["train"]}), "outside the root"),
        (pd.DataFrame({"path": ["a.png", "./a.png"], "split": ["train", "val"]}), "repeat a path"),
        (pd.DataFrame({"path": ["a.png"], "split": ["train"], "target": ["big"]}), "must be numeric"),
    ],
)
def test_manifest_errors(tmp_path, frame, match):
    with pytest.raises(ManifestError, match=match):
        ImageSplit.from_manifest(frame, root=tmp_path)


def test_symlink_loop_reported_not_followed(tmp_path):
    _png(tmp_path / "train" / "a.png")
    _png(tmp_path / "val" / "b.png")
    os.symlink(tmp_path / "train", tmp_path / "train" / "loop")
    s = ImageSplit.from_folder(tmp_path)
    assert s.n_train == 1
    assert s.ignored["reason"].str.contains("symlink loop").any()
