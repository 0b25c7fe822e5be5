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
from .test_robustness import _images, _one_line_error, _scan, _split, _summary


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


# ---------------------------------------------------------------- 4: a damaged cache or index
def _cache_file(cache: Path) -> Path:
    return cache / "fingerprints.sqlite"


def _phashes(out: Path) -> dict:
    images = pd.read_csv(out / "images.csv", dtype=str)
    return dict(zip(images["path"], images["phash"] + images["pixel_sha1"].fillna("")))


def _damage_file(db: Path, how: str) -> None:
    if how == "garbage":
        db.write_bytes(os.urandom(3000))
    elif how == "truncated":
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 2])
    elif how == "other_schema":
        db.unlink()
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE fingerprints (x TEXT)")
            conn.execute("INSERT INTO fingerprints VALUES ('hello')")
        conn.close()


@pytest.mark.parametrize("how", ["garbage", "truncated", "other_schema"])
def test_damaged_cache_file_is_set_aside_and_rebuilt(tmp_path, capsys, how):
    root = _split(tmp_path / "data", n=12)
    cache = tmp_path / "cache"
    assert _scan(root, tmp_path / "clean", "--no-cache") == 0
    assert _scan(root, tmp_path / "first", "--cache", str(cache)) == 0
    _damage_file(_cache_file(cache), how)
    before = tree_digest(root)
    code = _scan(root, tmp_path / "out", "--cache", str(cache))
    assert code == 0, capsys.readouterr().err
    assert tree_digest(root) == before
    notes = " ".join(_summary(tmp_path / "out")["notes"])
    assert "could not be read" in notes and "moved to" in notes and "rebuilt" in notes, notes
    aside = [p for p in cache.iterdir() if ".corrupt-" in p.name]
    assert aside, list(cache.iterdir())  # renamed beside it, not deleted
    assert _phashes(tmp_path / "out") == _phashes(tmp_path / "clean")
    assert "Notes" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    # the rebuilt cache serves the next run
    assert _scan(root, tmp_path / "again", "--cache", str(cache)) == 0
    assert not _summary(tmp_path / "again")["notes"]
    stats = json.loads((tmp_path / "again" / "timings.json").read_text())["fingerprint_stats"]
    assert stats["cached"] == 24


def _edit_rows(db: Path, how: str) -> None:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT rowid, abspath, row FROM fingerprints ORDER BY abspath").fetchall()
        rowid, _, text = rows[0]
        row = json.loads(text)
        if how == "bad_json":
            conn.execute("UPDATE fingerprints SET row = '{\"ok\": tr' WHERE rowid = ?", (rowid,))
        elif how == "json_list":
            conn.execute("UPDATE fingerprints SET row = '[1, 2]' WHERE rowid = ?", (rowid,))
        elif how == "missing_key":
            del row["phash"]
            conn.execute("UPDATE fingerprints SET row = ? WHERE rowid = ?", (json.dumps(row), rowid))
        elif how == "wrong_type":
            row["phash"], row["width"] = "ffff", -3.5
            conn.execute("UPDATE fingerprints SET row = ? WHERE rowid = ?", (json.dumps(row), rowid))
        elif how == "short_thumb":
            conn.execute("UPDATE fingerprints SET thumb = x'00' WHERE rowid = ?", (rowid,))
        elif how == "long_descriptor":
            conn.execute("UPDATE fingerprints SET descriptor = zeroblob(9999) WHERE rowid = ?", (rowid,))
        elif how == "other_file":  # a valid record of another image, under this file's key
            other = rows[1]
            conn.execute("UPDATE fingerprints SET row = (SELECT row FROM fingerprints WHERE rowid = ?), "
                         "thumb = (SELECT thumb FROM fingerprints WHERE rowid = ?), "
                         "descriptor = (SELECT descriptor FROM fingerprints WHERE rowid = ?) WHERE rowid = ?",
                         (other[0], other[0], other[0], rowid))
    conn.close()


@pytest.mark.parametrize("how", ["bad_json", "json_list", "missing_key", "wrong_type", "short_thumb",
                                 "long_descriptor", "other_file"])
def test_damaged_cache_records_are_recomputed(tmp_path, capsys, how):
    root = _split(tmp_path / "data", n=4)
    cache = tmp_path / "cache"
    assert _scan(root, tmp_path / "clean", "--no-cache") == 0
    assert _scan(root, tmp_path / "first", "--cache", str(cache)) == 0
    _edit_rows(_cache_file(cache), how)
    before = tree_digest(root)
    code = _scan(root, tmp_path / "out", "--cache", str(cache))
    assert code == 0, capsys.readouterr().err
    assert tree_digest(root) == before
    assert _phashes(tmp_path / "out") == _phashes(tmp_path / "clean")
    notes = " ".join(_summary(tmp_path / "out")["notes"])
    expected = "did not match their file's content" if how == "other_file" else "were malformed"
    assert f"1 fingerprint cache records {expected}" in notes, notes
    stats = json.loads((tmp_path / "out" / "timings.json").read_text())["fingerprint_stats"]
    assert (stats["cached"], stats["computed"]) == (7, 1)


def test_a_locked_cache_is_a_one_line_error(tmp_path):
    from splitaudit.errors import InputError
    from splitaudit.fingerprints.cache import FingerprintCache

    cache = FingerprintCache(tmp_path / "c", timeout=0.05)
    cache.count()
    with pytest.raises(InputError, match="locked by another run"):
        cache._set_aside(sqlite3.OperationalError("database is locked"))
    assert _cache_file(tmp_path / "c").exists()


def _build_index(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = _split(tmp_path / "data", n=4)
    index = tmp_path / "idx"
    assert main(["check-new", "--build", str(root), "--index", str(index), "--no-cache", "-q", "--jobs", "1"]) == 0
    new = tmp_path / "new"
    _images(new, 2, 1)
    return root, index, new


def _damage_index(index: Path, how: str) -> Path:
    npz, meta_file = index / "index.npz", index / "index.json"
    meta = json.loads(meta_file.read_text())
    if how == "npz_garbage":
        npz.write_bytes(os.urandom(500))
        return npz
    if how == "npz_truncated":
        npz.write_bytes(npz.read_bytes()[:-200])
        return npz
    if how in ("npz_missing_array", "npz_wrong_shape"):
        with np.load(npz) as data:
            arrays = dict(data)
        if how == "npz_missing_array":
            del arrays["thumbs"]
        else:
            arrays["col:phash"] = arrays["col:phash"][:2]
        np.savez(npz, **arrays)
        return npz
    if how == "json_garbage":
        meta_file.write_text("{not json")
    elif how == "json_list":
        meta_file.write_text("[1, 2, 3]")
    elif how == "json_missing_columns":
        del meta["columns"]
        meta_file.write_text(json.dumps(meta))
    elif how == "json_wrong_count":
        meta["n_images"] = 99
        meta_file.write_text(json.dumps(meta))
    return meta_file


@pytest.mark.parametrize("how", ["npz_garbage", "npz_truncated", "npz_missing_array", "npz_wrong_shape",
                                 "json_garbage", "json_list", "json_missing_columns", "json_wrong_count"])
def test_damaged_index_is_a_one_line_error_naming_the_file(tmp_path, capsys, how):
    root, index, new = _build_index(tmp_path)
    damaged = _damage_index(index, how)
    before, before_new = tree_digest(root), tree_digest(new)
    capsys.readouterr()
    code = main(["check-new", str(new), "--index", str(index), "--out", str(tmp_path / "m.csv"), "--no-cache",
                 "-q", "--jobs", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = _one_line_error(err)
    if how != "json_list":
        assert str(damaged) in line, line
    assert "--build" in line and "rebuild" in line, line
    assert tree_digest(root) == before and tree_digest(new) == before_new
    assert not (tmp_path / "m.csv").exists()


# ---------------------------------------------------------------- 10: commits by time as well as count
@pytest.mark.parametrize("seconds, kept", [(3600.0, 0), (0.0, 2)])
def test_an_interrupted_small_run_keeps_its_finished_chunks(tmp_path, monkeypatch, seconds, kept):
    from splitaudit.fingerprints import compute as compute_module
    from splitaudit.fingerprints.cache import FingerprintCache

    monkeypatch.setattr(compute_module, "COMMIT_SECONDS", seconds)
    paths = _images(tmp_path / "imgs", 6, 0)
    before = tree_digest(tmp_path / "imgs")

    def progress(stage, done, total):
        if done >= 4:
            raise KeyboardInterrupt

    cache = FingerprintCache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        compute_module.compute_fingerprints(paths, jobs=1, chunksize=2, cache=cache, progress=progress)
    assert cache.count() == kept  # 2048 images per batch alone would keep nothing of a 6-image run
    fps = compute_module.compute_fingerprints(paths, jobs=1, chunksize=2, cache=cache)
    assert (fps.stats["cached"], fps.stats["computed"]) == (kept, 6 - kept)
    assert tree_digest(tmp_path / "imgs") == before


# ---------------------------------------------------------------- 6: links that leave the root
def _linked_tree(tmp_path: Path) -> tuple[Path, Path]:
    root = _split(tmp_path / "data", n=3)
    pool = tmp_path / "pool"
    _images(pool, 2, 9, prefix="pooled")
    _images(pool / "sub", 2, 10, prefix="deep")
    (root / "train" / "a" / "linked_file.png").symlink_to(pool / "pooled_00.png")
    (root / "val" / "a" / "same_target.png").symlink_to(pool / "pooled_00.png")
    (root / "train" / "b").symlink_to(pool / "sub", target_is_directory=True)
    # a link that stays inside the root is no news
    (root / "val" / "a" / "inner_link.png").symlink_to(root / "train" / "a" / "img_00.png")
    return root, pool


def test_links_leaving_the_root_are_followed_counted_and_named(tmp_path, capsys):
    root, pool = _linked_tree(tmp_path)
    before, before_pool = tree_digest(root), tree_digest(pool)
    assert _scan(root, tmp_path / "out", "--no-cache") == 0, capsys.readouterr().err
    assert tree_digest(root) == before and tree_digest(pool) == before_pool
    notes = [n for n in _summary(tmp_path / "out")["notes"] if "resolve outside the root" in n]
    assert len(notes) == 1, _summary(tmp_path / "out")["notes"]
    note = notes[0]
    assert note.startswith("4 images resolve outside the root")
    for name in ("train/a/linked_file.png", "val/a/same_target.png", "train/b/deep_00.png", "train/b/deep_01.png"):
        assert name in note
    assert str(pool / "pooled_00.png") in note and "inner_link" not in note
    assert "resolve outside the root" in (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    pairs = pd.read_csv(tmp_path / "out" / "duplicates.csv")
    found = set(zip(pairs["val_path"], pairs["train_path"]))
    assert ("val/a/same_target.png", "train/a/linked_file.png") in found  # two links to one file
    assert ("val/a/inner_link.png", "train/a/img_00.png") in found


def test_manifest_links_leaving_a_given_root_are_refused(tmp_path, capsys):
    root, pool = _linked_tree(tmp_path)
    manifest = tmp_path / "manifest.csv"
    rows = [("train/a/img_00.png", "train"), ("train/a/linked_file.png", "train"), ("val/a/img_00.png", "val")]
    manifest.write_text("path,split\n" + "".join(f"{p},{s}\n" for p, s in rows))
    before = tree_digest(root)
    capsys.readouterr()
    code = main(["scan", str(root), "--manifest", str(manifest), "--out", str(tmp_path / "out"), "--no-cache",
                 "-q", "--jobs", "1"])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2
    assert "must resolve inside the root" in line and "train/a/linked_file.png" in line, line
    assert not (tmp_path / "out").exists() and tree_digest(root) == before
    # without a root the manifest's folder is the base: the link is followed and noted
    inside = root / "manifest.csv"
    manifest.replace(inside)
    before = tree_digest(root)
    assert main(["scan", "--manifest", str(inside), "--out", str(tmp_path / "out2"), "--no-cache", "-q",
                 "--jobs", "1"]) == 0
    assert tree_digest(root) == before
    notes = " ".join(_summary(tmp_path / "out2")["notes"])
    assert "1 paths resolve outside the root" in notes and "train/a/linked_file.png ->" in notes


# ---------------------------------------------------------------- 8: tiny or empty splits stay quiet
def test_a_one_image_validation_split_prints_no_numpy_warning(tmp_path, capsys):
    import warnings

    root = tmp_path / "data"
    _images(root / "train" / "a", 4, 0)
    _images(root / "val" / "a", 1, 1, side=200)  # its properties lie outside the train histogram's bins
    before = tree_digest(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _scan(root, tmp_path / "out", "--no-cache") == 0
    assert not [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert "Warning" not in capsys.readouterr().err
    assert tree_digest(root) == before


# ---------------------------------------------------------------- 9: --safe-csv
_FORMULAS = ("=SUM(1+1)", "+cmd", "-2", "@at")


def _formula_tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for k, label in enumerate(_FORMULAS):
        _images(root / "train" / label, 2, k)
        _images(root / "val" / label, 2, 10 + k)
    return root


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [cell for row in csv.reader(handle) for cell in row]


@pytest.mark.parametrize("safe", [False, True])
def test_safe_csv_defuses_formula_cells(tmp_path, capsys, safe):
    root = _formula_tree(tmp_path)
    before = tree_digest(root)
    flag = ["--safe-csv"] if safe else []
    assert _scan(root, tmp_path / "scan", "--no-cache", *flag) == 0, capsys.readouterr().err
    assert main(["resplit", str(root), "--out", str(tmp_path / "resplit"), "--no-cache", "-q", "--jobs", "1",
                 "--k", "2", *flag]) == 0
    new = tmp_path / "new"
    new.mkdir()
    (new / "=HYPERLINK(x).png").write_bytes((root / "train" / "@at" / "img_00.png").read_bytes())
    assert main(["check-new", str(new), "--build", str(root), "--index", str(tmp_path / "idx"), "--no-cache",
                 "-q", "--jobs", "1", "--out", str(tmp_path / "matches.csv"), *flag]) == 0
    assert tree_digest(root) == before
    files = [tmp_path / "scan" / "images.csv", tmp_path / "resplit" / "manifest.csv", tmp_path / "matches.csv"]
    for path in files:
        cells = _csv_cells(path)
        risky = [c for c in cells if c[:1] in ("=", "+", "-", "@") and not _is_number(c)]
        if safe:
            assert not risky, (path.name, risky)
        else:
            assert risky, path.name  # written exactly, as before (default)
    images = pd.read_csv(tmp_path / "scan" / "images.csv", dtype=str, keep_default_na=False)
    expected = {("'" + label) if safe else label for label in _FORMULAS}
    assert set(images["label"]) == expected
    assert pd.read_csv(tmp_path / "scan" / "images.csv")["width"].dtype.kind == "i"  # numbers stay numbers
    matches = pd.read_csv(tmp_path / "matches.csv", dtype=str)
    assert any(p.endswith("=HYPERLINK(x).png") for p in matches["new_path"])


def test_safe_csv_in_audit(tmp_path, capsys):
    root = _formula_tree(tmp_path)
    before = tree_digest(root)
    code = main(["audit", str(root), "--out", str(tmp_path / "out"), "--no-cache", "-q", "--jobs", "1", "--k", "0",
                 "--safe-csv"])
    assert code == 0, capsys.readouterr().err
    assert tree_digest(root) == before
    images = pd.read_csv(tmp_path / "out" / "images.csv", dtype=str, keep_default_na=False)
    assert all(label.startswith("'") for label in images["label"])


def test_safe_csv_is_not_offered_where_no_csv_is_written():
    with pytest.raises(SystemExit) as exit_info:
        main(["kfold", "x", "--out", "y", "--safe-csv"])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------- 1: batches with no readable image
@pytest.mark.parametrize("case", ["added_to_cached", "no_cache_chunk", "all_unreadable", "check_new_only_bad"])
def test_batches_without_a_readable_image(tmp_path, capsys, case):
    root = _split(tmp_path / "data", n=3)
    cache = ["--cache", str(tmp_path / "cache")] if case == "added_to_cached" else ["--no-cache"]
    if case == "added_to_cached":
        assert _scan(root, tmp_path / "first", *cache) == 0
    if case == "all_unreadable":
        for path in root.rglob("*.png"):
            path.write_bytes(b"")
    else:
        (root / "val" / "b").mkdir()
        for i in range(3):  # the only files left to compute, or a whole chunk, are unreadable
            (root / "val" / "b" / f"bad_{i}.png").write_bytes(b"" if i % 2 else b"\x89PNG\r\n\x1a\n garbage")
    before = tree_digest(root)
    if case == "check_new_only_bad":
        new = tmp_path / "new"
        new.mkdir()
        (new / "x.jpg").write_bytes(b"")
        code = main(["check-new", str(new), "--build", str(root), "--index", str(tmp_path / "idx"), "--no-cache",
                     "-q", "--jobs", "1", "--out", str(tmp_path / "m.csv")])
        assert code == 0, capsys.readouterr().err
        assert pd.read_csv(tmp_path / "m.csv").empty
    else:
        code = main(["scan", str(root), "--out", str(tmp_path / "out"), "--jobs", "2", "--quiet", *cache])
        assert code == 0, capsys.readouterr().err
        summary = _summary(tmp_path / "out")
        assert summary["n_unreadable"] == (6 if case == "all_unreadable" else 3)
    assert tree_digest(root) == before


def test_fingerprints_of_chunks_with_no_readable_image(tmp_path):
    from splitaudit.fingerprints.chunk import fingerprint_columns

    bad = [tmp_path / "a.png", tmp_path / "b.jpg"]
    bad[0].write_bytes(b"")
    bad[1].write_bytes(b"not a jpeg")
    for mode in ("fast", "exact"):
        result = fingerprint_columns([str(p) for p in bad], mode=mode, whash=True)
        assert result.columns["ok"].tolist() == [False, False]
        assert (result.columns["phash"] == 0).all() and (result.columns["whash"] == 0).all()


# ---------------------------------------------------------------- 2: --out / --index inside the data
@pytest.mark.parametrize("where", ["out_in_root", "out_relative_in_val", "index_in_root", "out_in_index_root"])
def test_check_new_never_writes_into_the_data(tmp_path, capsys, monkeypatch, where):
    root = _split(tmp_path / "data", n=3)
    new = tmp_path / "new"
    _images(new, 2, 1)
    before, before_new = tree_digest(root), tree_digest(new)
    index = tmp_path / "idx"
    if where == "out_in_root":
        args = [str(root / "val"), "--build", str(root), "--index", str(index), "--out", str(root / "m.csv")]
    elif where == "out_relative_in_val":
        monkeypatch.chdir(root / "val")
        args = [".", "--build", str(root), "--index", str(index), "--out", "matches.csv"]
    elif where == "index_in_root":
        args = [str(new), "--build", str(root), "--index", str(root / "idx"), "--out", str(tmp_path / "m.csv")]
    else:  # index built earlier; now new images checked with an --out inside the indexed training data
        assert main(["check-new", "--build", str(root), "--index", str(index), "--no-cache", "-q", "--jobs", "1"]) == 0
        args = [str(new), "--index", str(index), "--out", str(root / "train" / "m.csv")]
    capsys.readouterr()
    code = main(["check-new", *args, "--no-cache", "-q", "--jobs", "1"])
    line = _one_line_error(capsys.readouterr().err)
    assert code == 2
    assert "must be outside the data" in line and ("--out" in line or "--index" in line), line
    assert tree_digest(root) == before and tree_digest(new) == before_new


def test_index_save_inside_the_root_is_an_input_error(tmp_path):
    from splitaudit.errors import InputError
    from splitaudit.index import TrainingIndex

    root = _split(tmp_path / "data", n=2)
    index = TrainingIndex.build(root, jobs=1)
    before = tree_digest(root)
    with pytest.raises(InputError, match="outside the data root"):
        index.save(root / "idx")
    assert tree_digest(root) == before


# ---------------------------------------------------------------- 5: explain on hostile histories
@pytest.mark.parametrize("content, expected", [
    ("", "empty"),
    ("epoch,loss,val_loss\n0,1e308,1e308\n1,1e308,5e307\n", None),
    ('{"loss": [1.0, 0.8, 0.6], "val_loss": [0.9, 0.7]}', "length"),
])
def test_explain_on_hostile_histories(tmp_path, capsys, content, expected):
    history = tmp_path / ("h.json" if content.startswith("{") else "h.csv")
    history.write_text(content)
    before = tree_digest(tmp_path)
    code = main(["explain", str(history), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    line = _one_line_error(err)
    if expected:
        assert expected in line.lower(), line
    assert tree_digest(tmp_path) == before
