"""TrainingIndex: planted copies of indexed training images are found, others are not."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from splitaudit import ImageSplit
from splitaudit.duplicates import find_duplicates
from splitaudit.fingerprints import compute_fingerprints
from splitaudit.index import MATCH_COLUMNS, TrainingIndex
from splitaudit.scan import scan

from .conftest import TRANSFORMS, look_alike, synthetic_image, write_split_folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A training set, its index, and a folder of new images with planted copies."""
    root = tmp_path_factory.mktemp("index_data")
    write_split_folder(root, n_train=6, n_val=2, transforms=(), exact=(), within=(), conflict=False,
                       n_look_alikes=0, seed=3)
    result = scan(root, jobs=1, cache=False, checks=["exact_duplicates"])
    index = TrainingIndex.from_scan(result)
    train_paths = list(index.fingerprints.table["path"])
    incoming = tmp_path_factory.mktemp("incoming")
    planted = {}  # new file name -> training path it copies
    for k, name in enumerate(("jpeg_q30", "flip", "crop_5", "resize_50")):
        train_path = train_paths[k]
        img = Image.open(root / train_path).convert("RGB")
        TRANSFORMS[name](img).save(incoming / f"copy_{name}.png")
        planted[f"copy_{name}.png"] = train_path
    shutil.copyfile(root / train_paths[5], incoming / "same_bytes.png")
    planted["same_bytes.png"] = train_paths[5]
    unrelated = []
    for s in range(3):
        synthetic_image(900_000 + s).save(incoming / f"unrelated_{s}.png")
        unrelated.append(f"unrelated_{s}.png")
    # A look-alike of a training scene: a different photo, must not match.
    seed = int(np.random.default_rng(0).integers(1 << 30))
    look_alike(seed).save(incoming / "look_alike.png")
    unrelated.append("look_alike.png")
    (incoming / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return root, result, index, incoming, planted, unrelated


def _found(matches: pd.DataFrame) -> set[tuple[str, str]]:
    return {(p.rsplit("/", 1)[-1], t) for p, t in zip(matches["new_path"], matches["train_path"])}


def test_planted_copies_found_unrelated_not(setup):
    root, result, index, incoming, planted, unrelated = setup
    assert len(index) == result.split.n_train
    matches = index.check(incoming, jobs=1)
    assert list(matches.columns) == MATCH_COLUMNS
    found = _found(matches)
    for name, train_path in planted.items():
        assert (name, train_path) in found, f"{name} should match {train_path}"
    names = {p.rsplit("/", 1)[-1] for p in matches["new_path"]}
    assert not names & set(unrelated)
    same = matches[matches["new_path"].str.endswith("same_bytes.png")]
    assert (same["kind"] == "exact").all() and same["exact_bytes"].all()
    flip = matches[matches["new_path"].str.endswith("copy_flip.png")]
    assert flip["flipped"].all()
    assert matches["score"].between(0.5, 1).all()
    assert [u["path"].rsplit("/", 1)[-1] for u in matches.attrs["unreadable"]] == ["broken.jpg"]
    assert matches.attrs["n_new"] == len(planted) + len(unrelated) + 1
    # new_index points back into the input order (sorted folder listing).
    listing = sorted(p.name for p in incoming.iterdir())
    assert all(listing[i] == p.rsplit("/", 1)[-1] for i, p in zip(matches["new_index"], matches["new_path"]))


def test_check_agrees_with_find_duplicates(setup):
    """Same search and verification as a scan: the new images as a val split give the same pairs."""
    root, result, index, incoming, planted, unrelated = setup
    paths = sorted(str(p) for p in incoming.iterdir())
    new_fp = compute_fingerprints(paths, jobs=1)
    matches = index.check(new_fp)
    train_rows = np.flatnonzero(result.split.images["split"].to_numpy() == "train")
    fp = result.fingerprints
    combined = type(fp)(table=pd.concat([fp.table.iloc[train_rows], new_fp.table], ignore_index=True),
                        thumbs=np.concatenate([fp.thumbs[train_rows], new_fp.thumbs]),
                        descriptor=np.concatenate([fp.descriptor[train_rows], new_fp.descriptor]),
                        mode=fp.mode)
    images = pd.DataFrame({"path": list(combined.table["path"]),
                           "split": ["train"] * len(train_rows) + ["val"] * len(paths)})
    direct = find_duplicates(combined, images, within=False).pairs
    assert len(direct) == len(matches) > 0
    np.testing.assert_allclose(np.sort(direct["score"]), np.sort(matches["score"]))


def test_save_load_round_trip(setup, tmp_path):
    root, result, index, incoming, planted, unrelated = setup
    folder = index.save(tmp_path / "idx")
    meta = json.loads((folder / "index.json").read_text())
    assert meta["mode"] == "fast" and meta["n_images"] == len(index)
    loaded = TrainingIndex.load(folder)
    pd.testing.assert_frame_equal(loaded.fingerprints.table, index.fingerprints.table)
    np.testing.assert_array_equal(loaded.fingerprints.thumbs, index.fingerprints.thumbs)
    np.testing.assert_array_equal(loaded.labels, index.labels)
    pd.testing.assert_frame_equal(loaded.check(incoming, jobs=1), index.check(incoming, jobs=1))


def test_save_refuses_data_root_and_load_checks_versions(setup, tmp_path):
    root, result, index, *_ = setup
    with pytest.raises(ValueError, match="outside the data root"):
        index.save(root / "idx")
    folder = index.save(tmp_path / "idx")
    with pytest.raises(ValueError, match="mode 'fast', asked for mode 'exact'"):
        TrainingIndex.load(folder, mode="exact")
    meta = json.loads((folder / "index.json").read_text())
    for key, value, message in (("format", 99, "format 99"), ("algorithm", "fp0", "algorithm 'fp0'")):
        bad = dict(meta, **{key: value})
        (folder / "index.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=message):
            TrainingIndex.load(folder)
    with pytest.raises(ValueError, match="written by TrainingIndex.save"):
        TrainingIndex.load(tmp_path)


def test_check_rejects_other_mode_and_bad_input(setup):
    root, result, index, incoming, *_ = setup
    exact = compute_fingerprints([str(next(incoming.iterdir()))], mode="exact", jobs=1)
    with pytest.raises(ValueError, match="index's mode 'fast'"):
        index.check(exact)
    with pytest.raises(TypeError, match="paths_or_split"):
        index.check(42)
    with pytest.raises(ValueError, match="within"):
        index.check(incoming, within=True)


def test_check_an_image_split_keeps_labels(setup, tmp_path):
    root, result, index, incoming, planted, _ = setup
    # The same copies filed as a labelled split under another class: label conflicts are flagged.
    for side in ("train", "val"):
        (tmp_path / side / "dog").mkdir(parents=True)
    for name in planted:
        shutil.copyfile(incoming / name, tmp_path / "val" / "dog" / name)
    synthetic_image(123).save(tmp_path / "train" / "dog" / "x.png")
    split = ImageSplit.from_folder(tmp_path)
    matches = index.check(split, jobs=1)
    val = matches[matches["new_path"].str.startswith("val/")]
    assert len(val) >= len(planted)
    assert (val["new_label"] == "dog").all()
    assert (val["label_conflict"] == (val["train_label"] != "dog")).all()


def test_check_a_class_folder_takes_labels_from_subfolders(setup, tmp_path):
    root, result, index, incoming, planted, _ = setup
    new = tmp_path / "new"
    (new / "dog").mkdir(parents=True)
    for name in planted:
        shutil.copyfile(incoming / name, new / "dog" / name)
    matches = index.check(new, jobs=1)
    assert len(matches) >= len(planted) and (matches["new_label"] == "dog").all()
    assert (matches["label_conflict"] == (matches["train_label"] != "dog")).all()
    # not the class-folder layout (a file directly in NEW): no labels are made up
    shutil.copyfile(incoming / next(iter(planted)), new / "loose.png")
    assert index.check(new, jobs=1)["new_label"].isna().all()


def test_build_from_folder_matches_from_scan(setup, tmp_path):
    root, result, index, incoming, *_ = setup
    built = TrainingIndex.build(root, jobs=1)
    pd.testing.assert_frame_equal(built.fingerprints.table, index.fingerprints.table)
    plain = TrainingIndex.build(root / "train", jobs=1)  # no train/val layout: every image, relative paths
    assert len(plain) == len(index)
    assert set(plain.fingerprints.table["path"]) == {p.split("/", 1)[1] for p in index.fingerprints.table["path"]}
    pd.testing.assert_frame_equal(built.check(incoming, jobs=1), index.check(incoming, jobs=1))
