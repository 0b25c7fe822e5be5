"""The SQLite fingerprint cache: reuse, invalidation, resume, location rules."""

from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest
from PIL import Image

from splitaudit import ImageSplit, InputError
from splitaudit.fingerprints import FingerprintCache, compute_fingerprints, default_cache_dir
from splitaudit.fingerprints.compute import ALGORITHM_VERSION
from splitaudit.imageio import DEFAULT_MAX_PIXELS


def _write_images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _same(a, b):
    assert a.table.equals(b.table)
    assert np.array_equal(a.thumbs, b.thumbs) and np.array_equal(a.descriptor, b.descriptor)
    for name in ("offsets", "xy", "size", "desc"):
        assert np.array_equal(getattr(a.local, name), getattr(b.local, name)), name


def test_cached_keypoints_are_the_fresh_ones(tmp_path):
    """Keypoint positions come back from the cache exactly as a fresh run computes them (the cache
    stores them as float16; fresh runs round to the same values), so a cached scan fits the same pairs."""
    rng = np.random.default_rng(1)
    paths = []
    for i in range(4):
        path = tmp_path / "data" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (90, 117), dtype=np.uint8)).resize((233, 180)).save(path)
        paths.append(path)
    fresh = compute_fingerprints(paths, jobs=1, cache=tmp_path / "c.sqlite")
    assert len(fresh.local.xy) > 100
    cached = compute_fingerprints(paths, jobs=1, cache=tmp_path / "c.sqlite")
    assert cached.stats["cached"] == 4
    _same(fresh, cached)


def test_rerun_recomputes_nothing_and_returns_identical_results(tmp_path):
    paths = _write_images(tmp_path / "data", 25)
    (tmp_path / "data" / "bad.png").write_text("not an image")
    paths.append(tmp_path / "data" / "bad.png")
    cache = FingerprintCache(tmp_path / "cache")
    first = compute_fingerprints(paths, jobs=1, cache=cache, chunksize=8)
    assert first.stats["computed"] == 26 and first.stats["cached"] == 0
    assert cache.count() == 26 and cache.stats["written"] == 26
    second = compute_fingerprints(paths, jobs=1, cache=cache)
    assert second.stats["computed"] == 0 and second.stats["cached"] == 26
    _same(first, second)
    uncached = compute_fingerprints(paths, jobs=1)
    _same(first, uncached)
    # a path given as the cache directory works the same across objects
    third = compute_fingerprints(paths, jobs=2, cache=str(tmp_path / "cache"))
    assert third.stats["computed"] == 0
    _same(first, third)


def test_changed_file_and_mode_change_are_recomputed(tmp_path):
    paths = _write_images(tmp_path / "data", 10)
    cache = FingerprintCache(tmp_path / "cache.sqlite")
    before = compute_fingerprints(paths, jobs=1, cache=cache)
    # rewrite one file with new content and a new mtime
    Image.new("RGB", (24, 30), (10, 200, 30)).save(paths[3])
    stat = paths[3].stat()
    os.utime(paths[3], ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    # touch another: same bytes, new mtime
    os.utime(paths[5], ns=(stat.st_atime_ns, stat.st_mtime_ns + 3_000_000_000))
    after = compute_fingerprints(paths, jobs=1, cache=cache)
    assert after.stats["computed"] == 2 and after.stats["cached"] == 8
    assert after.table.loc[3, "phash"] != before.table.loc[3, "phash"]
    assert after.table.loc[3, "bytes_sha1"] != before.table.loc[3, "bytes_sha1"]
    assert after.table.loc[5, "bytes_sha1"] == before.table.loc[5, "bytes_sha1"]
    exact = compute_fingerprints(paths, mode="exact", jobs=1, cache=cache)
    assert exact.stats["computed"] == 10 and exact.mode == "exact"
    again = compute_fingerprints(paths, mode="exact", jobs=1, cache=cache)
    assert again.stats["computed"] == 0
    assert cache.count(f"{ALGORITHM_VERSION}:exact:max_pixels={DEFAULT_MAX_PIXELS}:whash=0") == 10
    assert cache.count() == 20


def test_interrupted_run_resumes(tmp_path):
    paths = _write_images(tmp_path / "data", 30)
    cache_file = tmp_path / "cache" / "fp.sqlite"
    # An interrupted run: only the first 12 images were committed.
    partial = compute_fingerprints(paths[:12], jobs=1, cache=cache_file)
    assert partial.stats["computed"] == 12
    calls = []
    full = compute_fingerprints(paths, jobs=1, cache=cache_file, progress=lambda *a: calls.append(a))
    assert full.stats["cached"] == 12 and full.stats["computed"] == 18
    assert calls[0] == ("fingerprints", 12, 30) and calls[-1] == ("fingerprints", 30, 30)
    _same(full, compute_fingerprints(paths, jobs=1))
    with sqlite3.connect(cache_file) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0] == 30


def test_results_are_committed_in_batches_as_they_arrive(tmp_path):
    paths = _write_images(tmp_path / "data", 20)
    cache = FingerprintCache(tmp_path / "c")
    seen_counts = []

    def progress(stage, done, total):
        # count what is already durable in the database while the run goes on
        with sqlite3.connect(cache.path) as conn:
            seen_counts.append(conn.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0])

    compute_fingerprints(paths, jobs=1, cache=cache, chunksize=2, progress=progress)
    assert any(0 < c < 20 for c in seen_counts)  # durable before the run ended
    assert seen_counts == sorted(seen_counts)
    assert cache.count() == 20


def test_cache_inside_data_root_is_refused(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "val"):
        _write_images(root / split / "a", 2)
    split = ImageSplit.from_folder(root)
    with pytest.raises(InputError, match="inside the data root"):
        compute_fingerprints(split, cache=root / "cache")
    paths = _write_images(tmp_path / "loose", 2)
    with pytest.raises(InputError, match="inside the data root"):
        compute_fingerprints(paths, cache=tmp_path / "loose" / "fp.sqlite")
    assert not (root / "cache").exists() and not (tmp_path / "loose" / "fp.sqlite").exists()
    ok = compute_fingerprints(split, jobs=1, cache=tmp_path / "outside")
    assert ok.stats["computed"] == 4


def test_default_location_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "splitaudit"
    paths = _write_images(tmp_path / "data", 3)
    fps = compute_fingerprints(paths, jobs=1, cache=True)
    assert fps.stats["computed"] == 3
    assert (tmp_path / "xdg" / "splitaudit" / "fingerprints.sqlite").exists()
    assert compute_fingerprints(paths, jobs=1, cache=True).stats["cached"] == 3
    with pytest.raises(TypeError, match="cache path"):
        FingerprintCache(42)
