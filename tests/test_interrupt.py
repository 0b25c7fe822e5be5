"""Interruption and concurrency: a killed scan resumes from the cache and gives
byte-identical outputs; concurrent scans on one cache don't corrupt it."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

N_IMAGES = 1200
OUTPUTS = ("summary.json", "duplicates.csv", "within_duplicates.csv", "images.csv", "unreadable.csv")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt") / "data"
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        split = "val" if i % 5 == 0 else "train"
        folder = root / split / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((48, 48), Image.Resampling.BICUBIC).save(folder / f"{i:05d}.png")
    # planted: a few val copies of train images
    for i in (1, 8, 22, 29, 33):
        src = root / "train" / ("a" if i % 2 else "b") / f"{i:05d}.png"
        Image.open(src).save(root / "val" / "a" / f"copy_{i:05d}.png")
    return root


def _cmd(root: Path, out: Path, cache: Path | None, jobs: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "splitaudit", "scan", str(root), "--out", str(out), "--jobs", str(jobs),
           "--quiet", "--checks", "exact_duplicates,near_duplicates,label_conflicts"]
    return cmd + (["--cache", str(cache)] if cache else ["--no-cache"])


def _rows(cache: Path) -> int:
    db = cache / "fingerprints.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0]
    except sqlite3.Error:
        return 0


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    subprocess.run(_cmd(data, out, None), check=True, timeout=300)
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_scan_resumes_identically(data, reference, tmp_path, sig):
    cache = tmp_path / "cache"
    proc = subprocess.Popen(_cmd(data, tmp_path / "partial", cache), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _rows(cache) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    partial = _rows(cache)
    if sig == signal.SIGINT and proc.returncode not in (0,):
        assert proc.returncode == 130, err.decode()
        assert b"rerun to resume" in err
    resumed = tmp_path / "resumed"
    subprocess.run(_cmd(data, resumed, cache), check=True, timeout=300)
    _same_outputs(reference, resumed)
    assert _rows(cache) >= partial
    # a resumed run may only have been interrupted after some work was cached
    assert partial > 0


def test_concurrent_scans_share_one_cache(data, reference, tmp_path):
    cache = tmp_path / "cache"
    procs = [subprocess.Popen(_cmd(data, tmp_path / f"out{i}", cache), stderr=subprocess.PIPE)
             for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    for i in range(2):
        _same_outputs(reference, tmp_path / f"out{i}")
    with sqlite3.connect(cache / "fingerprints.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # a third run reads everything from the cache
    subprocess.run(_cmd(data, tmp_path / "out3", cache), check=True, timeout=300)
    _same_outputs(reference, tmp_path / "out3")
