"""Fingerprinting throughput and fast-mode hash deviation, in one run.

Usage::

    python benchmarks/bench_fingerprints.py [--fmnist /work/data/fmnist] [--limit 5000]
        [--jpegs 1500] [--workdir DIR] [--chunksize 500] [--modes fast,exact]

``--limit 0`` uses every Fashion-MNIST image (60k train + 10k val).

For each data set (Fashion-MNIST PNGs; generated 640x480 q90 textured JPEGs)
it measures, in the same process and run: a decode-only loop
(``Image.open(p).load()``) in one process and in two (``ordered_map``, the
pool compute_fingerprints uses), a draft decode-only loop, the plain
``imagehash.phash(Image.open(p))`` loop (one and two processes), and
``compute_fingerprints`` (each mode, jobs=1 and 2, no cache; plus a cold and
a warm cache run). One-process rows also give CPU microseconds per image
(``time.process_time``). It then compares fast and exact hashes with
imagehash. Prints Markdown tables. To compare two versions of splitaudit,
run the script once per version (``PYTHONPATH=/path/to/old``): every ratio
is against baselines measured in the same run.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import tempfile
import time

import imagehash
import numpy as np
from PIL import Image

import splitaudit
from splitaudit._parallel import ordered_map
from splitaudit.fingerprints import FingerprintCache, compute_fingerprints, hamming


def make_jpegs(folder: str, n: int, seed: int = 0) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"{i:05d}.jpg") for i in range(n)]
    if all(os.path.exists(p) for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    for path in paths:
        f = rng.uniform(0.005, 0.08, 4).astype(np.float32)
        phase = rng.uniform(0, 6.28, 3).astype(np.float32)
        base = np.stack([
            127 + 100 * np.sin(xx * f[0] + yy * f[1] + phase[0]),
            127 + 100 * np.sin(xx * f[2] - yy * f[3] + phase[1]),
            127 + 100 * np.sin((xx + yy) * f[1] + phase[2]),
        ], axis=2)
        noise = rng.normal(0, 18, (120, 160, 3)).repeat(4, 0).repeat(4, 1)
        arr = np.clip(base + noise, 0, 255).astype(np.uint8)
        Image.fromarray(arr).save(path, quality=90)
    return paths


def timed(fn) -> float:
    return timed_cpu(fn)[0]


def timed_cpu(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def decode_only(paths):
    for p in paths:
        with Image.open(p) as im:
            im.load()
    return [0] * len(paths)


def imagehash_chunk(paths):
    return [int(str(imagehash.phash(Image.open(p))), 16) for p in paths]


def draft_only(paths):
    for p in paths:
        with Image.open(p) as im:
            im.draft(im.mode if im.mode in ("L", "RGB") else None, (32, 32))
            im.load()


def imagehash_loop(paths):
    return np.array([int(str(imagehash.phash(Image.open(p))), 16) for p in paths], dtype=np.uint64)


def reference_hashes(paths):
    out = {"phash": [], "dhash": [], "ahash": []}
    for p in paths:
        with Image.open(p) as im:
            out["phash"].append(int(str(imagehash.phash(im)), 16))
            out["dhash"].append(int(str(imagehash.dhash(im)), 16))
            out["ahash"].append(int(str(imagehash.average_hash(im)), 16))
    return {k: np.array(v, dtype=np.uint64) for k, v in out.items()}


def bench(name: str, paths: list[str], workdir: str, chunksize: int = 500,
          modes: tuple[str, ...] = ("fast", "exact")) -> None:
    n = len(paths)
    decode_only(paths[:200])  # warm the page cache
    rows = []  # (label, processes, wall seconds, CPU seconds or None)
    t_decode, cpu = timed_cpu(lambda: decode_only(paths))
    rows.append(("decode only `Image.open(p).load()`", 1, t_decode, cpu))
    t_decode2 = timed(lambda: ordered_map(decode_only, paths, jobs=2, chunksize=chunksize))
    rows.append(("decode only `Image.open(p).load()`", 2, t_decode2, None))
    rows.append(("draft decode only (JPEG DCT 1/8)", 1, *timed_cpu(lambda: draft_only(paths))))
    t_ih, cpu = timed_cpu(lambda: imagehash_loop(paths))
    rows.append(("`imagehash.phash(Image.open(p))` loop", 1, t_ih, cpu))
    rows.append(("`imagehash.phash(Image.open(p))` loop", 2,
                 timed(lambda: ordered_map(imagehash_chunk, paths, jobs=2, chunksize=chunksize)), None))
    results = {}
    for mode in modes:
        for jobs in (1, 2):
            holder = {}
            wall, cpu = timed_cpu(lambda: holder.setdefault(
                "fp", compute_fingerprints(paths, mode=mode, jobs=jobs, chunksize=chunksize)))
            results[(mode, jobs)] = holder["fp"]
            rows.append((f"compute_fingerprints mode={mode}", jobs, wall, cpu if jobs == 1 else None))
    holder = {}
    rows.append(("compute_fingerprints fast, default chunksize (64)", 2,
                 timed(lambda: compute_fingerprints(paths, jobs=2)), None))
    cache_dir = tempfile.mkdtemp(dir=workdir, prefix="cache-")
    cache = FingerprintCache(cache_dir)
    rows.append(("fast, cold cache (fill)", 2,
                 timed(lambda: compute_fingerprints(paths, jobs=2, cache=cache, chunksize=chunksize)), None))
    rows.append(("fast, warm cache rerun", 2,
                 timed(lambda: holder.setdefault("fp", compute_fingerprints(paths, jobs=2, cache=cache))), None))
    assert holder["fp"].stats["computed"] == 0
    cache.close()

    print(f"\n### {name}: {n} images (chunksize {chunksize})\n")
    print("| pipeline | processes | wall s | img/s | CPU µs/img | vs decode-only (same processes) "
          "| vs imagehash loop (1 proc) |")
    print("|---|---|---|---|---|---|---|")
    for label, jobs, seconds, cpu in rows:
        base = t_decode if jobs == 1 else t_decode2
        cpu_text = f"{cpu / n * 1e6:.0f}" if cpu is not None else "–"
        print(f"| {label} | {jobs} | {seconds:.2f} | {n / seconds:,.0f} | {cpu_text} | {seconds / base:.2f}x "
              f"| {t_ih / seconds:.2f}x faster |")

    reference = reference_hashes(paths)
    print("\n| hash | mode | identical to imagehash | mean bits | max bits |")
    print("|---|---|---|---|---|")
    for mode in modes:
        table = results[(mode, 1)].table
        for column in ("phash", "dhash", "ahash"):
            dist = hamming(table[column].to_numpy(), reference[column])
            print(f"| {column} | {mode} | {np.mean(dist == 0):.4f} ({int((dist == 0).sum())}/{n}) "
                  f"| {dist.mean():.3f} | {int(dist.max())} |")
    same = all(results[(mode, 1)].table.equals(results[(mode, 2)].table) for mode in modes)
    print(f"\njobs=2 table identical to jobs=1: {same}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmnist", default="/work/data/fmnist")
    parser.add_argument("--limit", type=int, default=5000, help="Fashion-MNIST images to use (0: all)")
    parser.add_argument("--chunksize", type=int, default=500, help="images per task")
    parser.add_argument("--modes", default="fast,exact", help="comma-separated fingerprint modes")
    parser.add_argument("--jpegs", type=int, default=1500, help="640x480 JPEGs to generate")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "splitaudit-bench"))
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    modes = tuple(m for m in args.modes.split(",") if m)
    print(f"splitaudit from {os.path.dirname(splitaudit.__file__)}; python {sys.version.split()[0]}, "
          f"cores: {len(os.sched_getaffinity(0))}, load average at start: {os.getloadavg()[0]:.1f}")
    fmnist = sorted(glob.glob(os.path.join(args.fmnist, "train", "*", "*.png")))
    fmnist += sorted(glob.glob(os.path.join(args.fmnist, "val", "*", "*.png")))
    if fmnist:
        limit = args.limit or len(fmnist)
        step = max(1, len(fmnist) // limit)
        bench("Fashion-MNIST 28x28 PNG", fmnist[::step][:limit], args.workdir, args.chunksize, modes)
    else:
        print(f"(no Fashion-MNIST PNGs under {args.fmnist}; skipped)")
    jpegs = make_jpegs(os.path.join(args.workdir, "jpeg640"), args.jpegs)
    if jpegs:
        bench("640x480 q90 JPEG", jpegs, args.workdir, args.chunksize, modes)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
