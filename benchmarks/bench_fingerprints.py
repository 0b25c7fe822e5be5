"""Fingerprinting throughput and fast-mode hash deviation, in one run.

Usage::

    python benchmarks/bench_fingerprints.py [--fmnist /work/data/fmnist] [--limit 5000]
        [--jpegs 1500] [--workdir DIR]

For each data set (Fashion-MNIST PNGs; generated 640x480 q90 textured JPEGs)
it measures, in the same process and run: a decode-only loop
(``Image.open(p).load()``), a draft decode-only loop, the plain
``imagehash.phash(Image.open(p))`` loop, and ``compute_fingerprints`` (fast
and exact, jobs=1 and 2, no cache; plus a cold and a warm cache run). It then
compares fast and exact hashes with imagehash. Prints Markdown tables.
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
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def decode_only(paths):
    for p in paths:
        with Image.open(p) as im:
            im.load()


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


def bench(name: str, paths: list[str], workdir: str) -> None:
    n = len(paths)
    decode_only(paths[:200])  # warm the page cache
    rows = []
    t_decode = timed(lambda: decode_only(paths))
    rows.append(("decode only `Image.open(p).load()`", 1, t_decode))
    rows.append(("draft decode only (JPEG DCT 1/8)", 1, timed(lambda: draft_only(paths))))
    t_ih = timed(lambda: imagehash_loop(paths))
    rows.append(("`imagehash.phash(Image.open(p))` loop", 1, t_ih))
    results = {}
    for mode in ("fast", "exact"):
        for jobs in (1, 2):
            holder = {}
            t = timed(lambda: holder.setdefault("fp", compute_fingerprints(paths, mode=mode, jobs=jobs)))
            results[(mode, jobs)] = holder["fp"]
            rows.append((f"compute_fingerprints mode={mode}", jobs, t))
    cache_dir = tempfile.mkdtemp(dir=workdir, prefix="cache-")
    cache = FingerprintCache(cache_dir)
    rows.append(("fast, jobs=2, cold cache (fill)", 2,
                 timed(lambda: compute_fingerprints(paths, jobs=2, cache=cache))))
    holder = {}
    rows.append(("fast, warm cache rerun", 2,
                 timed(lambda: holder.setdefault("fp", compute_fingerprints(paths, jobs=2, cache=cache)))))
    assert holder["fp"].stats["computed"] == 0
    cache.close()

    print(f"\n### {name}: {n} images\n")
    print("| pipeline | processes | seconds | img/s | vs decode-only | vs imagehash loop |")
    print("|---|---|---|---|---|---|")
    for label, jobs, seconds in rows:
        rate = n / seconds
        print(f"| {label} | {jobs} | {seconds:.2f} | {rate:,.0f} | {t_decode / seconds:.2f}x | {t_ih / seconds:.2f}x |")

    reference = reference_hashes(paths)
    print("\n| hash | mode | identical to imagehash | mean bits | max bits |")
    print("|---|---|---|---|---|")
    for mode in ("exact", "fast"):
        table = results[(mode, 1)].table
        for column in ("phash", "dhash", "ahash"):
            dist = hamming(table[column].to_numpy(), reference[column])
            print(f"| {column} | {mode} | {np.mean(dist == 0):.4f} ({int((dist == 0).sum())}/{n}) "
                  f"| {dist.mean():.3f} | {int(dist.max())} |")
    same = all(results[("fast", 1)].table.equals(results[("fast", 2)].table) for _ in [0])
    print(f"\njobs=2 table identical to jobs=1: {same}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmnist", default="/work/data/fmnist")
    parser.add_argument("--limit", type=int, default=5000, help="Fashion-MNIST images to use")
    parser.add_argument("--jpegs", type=int, default=1500, help="640x480 JPEGs to generate")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "splitaudit-bench"))
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    print(f"python {sys.version.split()[0]}, cores: {len(os.sched_getaffinity(0))}, "
          f"load average at start: {os.getloadavg()[0]:.1f}")
    fmnist = sorted(glob.glob(os.path.join(args.fmnist, "train", "*", "*.png")))
    fmnist += sorted(glob.glob(os.path.join(args.fmnist, "val", "*", "*.png")))
    if fmnist:
        step = max(1, len(fmnist) // args.limit)
        bench("Fashion-MNIST 28x28 PNG", fmnist[::step][: args.limit], args.workdir)
    else:
        print(f"(no Fashion-MNIST PNGs under {args.fmnist}; skipped)")
    jpegs = make_jpegs(os.path.join(args.workdir, "jpeg640"), args.jpegs)
    bench("640x480 q90 JPEG", jpegs, args.workdir)
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
