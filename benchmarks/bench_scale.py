"""Scale benchmarks (issue 8): dask vs local fingerprinting, 1M x 1M hash search, peak RSS vs N.

Usage::

    python benchmarks/bench_scale.py cluster [--n 20000]       # LocalCluster(2) vs jobs=2 vs jobs=1
    python benchmarks/bench_scale.py search  [--base 1000000 --queries 1000000 --slice 50000 --radius 8]
    python benchmarks/bench_scale.py rss     [--sizes 10000 30000 100000]
    python benchmarks/bench_scale.py files   [--sizes 10000 30000 100000 --all-checks-at 30000]
    python benchmarks/bench_scale.py all

Every memory number is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of a fresh
subprocess that does one measurement (tracemalloc does not see faiss); ``files``
writes N synthetic PNGs under /tmp and runs ``python -m splitaudit scan`` on them,
reporting ``RUSAGE_CHILDREN`` of a fresh wrapper (the largest single process
among the scan and its worker processes).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _child(kind: str, **params) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON result."""
    code = f"import sys; sys.path.insert(0, {HERE!r}); import bench_scale as b; b._measure({kind!r}, {params!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _measure(kind: str, p: dict) -> None:
    result = {"baseline_rss_mb": _maxrss_mb()}
    t0 = time.perf_counter()
    result.update(globals()[f"_run_{kind}"](**p))
    result["seconds"] = result.get("seconds", time.perf_counter() - t0)
    result["peak_rss_mb"] = _maxrss_mb()
    print(json.dumps(result))


# ----------------------------------------------------------------- (1) cluster
def _fmnist_paths(n: int) -> list[str]:
    paths = sorted(glob.glob("/work/data/fmnist/train/*/*.png"))
    if len(paths) < n:
        raise SystemExit(f"need {n} PNGs under /work/data/fmnist/train (run benchmarks/fmnist.py); found {len(paths)}")
    return paths[:: max(1, len(paths) // n)][:n]


def _run_fingerprint(n: int, jobs: int, scheduler: str | None) -> dict:
    from splitaudit.fingerprints import compute_fingerprints

    paths = _fmnist_paths(n)
    if scheduler is None:
        t = time.perf_counter()
        fps = compute_fingerprints(paths, jobs=jobs)
        return {"seconds": time.perf_counter() - t, "startup": 0.0, "shutdown": 0.0,
                "phash_sum": int(fps.table["phash"].sum() % (1 << 61))}
    import distributed

    t = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    client = distributed.Client(cluster)
    client.run(lambda: __import__("splitaudit.fingerprints"))  # workers import once, counted as startup
    startup = time.perf_counter() - t
    t = time.perf_counter()
    fps = compute_fingerprints(paths, jobs=jobs, client=client)
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    client.close()
    cluster.close()
    return {"seconds": seconds, "startup": startup, "shutdown": time.perf_counter() - t,
            "phash_sum": int(fps.table["phash"].sum() % (1 << 61))}


def bench_cluster(n: int) -> str:
    from splitaudit.fingerprints.compute import DASK_MIN_CHUNKSIZE

    rows = [("local, jobs=1", 1, None), ("local multiprocessing, jobs=2", 2, None),
            ("dask LocalCluster, 2 workers x 1 thread", 2, "local")]
    lines = [f"### (1) Fingerprinting {n:,} Fashion-MNIST PNGs (no cache)", "",
             "| path | images per task | compute s | img/s | vs jobs=1 | cluster start s | cluster stop s | "
             "compute + start + stop s | same hashes |",
             "|---|---|---|---|---|---|---|---|---|"]
    base = None
    ref = None
    for name, jobs, sched in rows:
        r = _child("fingerprint", n=n, jobs=jobs, scheduler=sched)
        base = base or r["seconds"]
        ref = ref if ref is not None else r["phash_sum"]
        per_task = max(64, DASK_MIN_CHUNKSIZE) if sched else 64
        lines.append(f"| {name} | {per_task} | {r['seconds']:.2f} | {n / r['seconds']:,.0f} | "
                     f"{base / r['seconds']:.2f}x | {r['startup']:.2f} | {r['shutdown']:.2f} | "
                     f"{r['seconds'] + r['startup'] + r['shutdown']:.2f} | {r['phash_sum'] == ref} |")
    return "\n".join(lines)


# ----------------------------------------------------------------- (2) search
def _planted(n_base: int, n_queries: int, n_planted: int, radius: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, np.iinfo(np.uint64).max, n_base, dtype=np.uint64, endpoint=True)
    queries = rng.integers(0, np.iinfo(np.uint64).max, n_queries, dtype=np.uint64, endpoint=True)
    q_at = rng.choice(n_queries, n_planted, replace=False)
    b_at = rng.choice(n_base, n_planted, replace=False)
    flips = rng.integers(0, radius + 1, n_planted)
    for qi, bi, f in zip(q_at, b_at, flips):
        bits = rng.choice(64, f, replace=False)
        mask = np.uint64(sum(1 << int(k) for k in bits))
        queries[qi] = base[bi] ^ mask
    return base, queries, set(zip(q_at.tolist(), b_at.tolist()))


def _pairs_digest(qi, bi) -> str:
    import hashlib

    order = np.lexsort((bi, qi))
    return hashlib.sha1(np.stack([qi[order], bi[order]]).astype(np.int64).tobytes()).hexdigest()[:12]


def _run_search(n_base: int, n_queries: int, radius: int, method: str, n_planted: int,
                n_slice: int) -> dict:
    """One search of a fresh interpreter; ``faiss`` runs on the first ``n_slice`` queries only."""
    import faiss

    from splitaudit.duplicates import hamming_range

    base, queries, planted = _planted(n_base, n_queries, n_planted, radius)
    if method.startswith("faiss"):
        queries = queries[:n_slice]
        planted = {(q, b) for q, b in planted if q < n_slice}
    t = time.perf_counter()
    if method == "faiss IndexBinaryFlat.range_search":
        index = faiss.IndexBinaryFlat(64)
        index.add(base.view(np.uint8).reshape(-1, 8))
        lims, dist, ids = index.range_search(queries.view(np.uint8).reshape(-1, 8), radius + 1)
        qi = np.repeat(np.arange(len(queries)), np.diff(lims.astype(np.int64)))
        bi = ids
    else:
        backend = method.split("backend=")[1].rstrip(")").strip("'\"")
        qi, bi, dist = hamming_range(queries, base, radius, backend=backend)
    seconds = time.perf_counter() - t
    found = set(zip(qi.tolist(), bi.tolist()))
    in_slice = qi < n_slice
    return {"seconds": seconds, "queries": len(queries), "pairs": len(found),
            "planted_found": len(planted & found), "planted": len(planted),
            "slice_digest": _pairs_digest(qi[in_slice], bi[in_slice]), "slice_pairs": int(in_slice.sum())}


def bench_search(n_base: int, n_queries: int, radius: int, n_planted: int, n_slice: int) -> str:
    lines = [f"### (2) Hamming range search, radius {radius}, {n_base:,} base x {n_queries:,} queries "
             f"(64-bit, uniform random, {n_planted:,} planted copies with 0-{radius} flipped bits)", "",
             f"faiss runs on the first {n_slice:,} queries and is extrapolated linearly; the "
             f"multi-index rows run all {n_queries:,}. 'same pairs' compares the pairs of those "
             f"{n_slice:,} queries with the faiss row.", "",
             "| method | queries run | seconds | queries/s | seconds for all queries (extrapolated) | "
             "peak RSS MB | pairs | planted found | same pairs on slice as faiss |",
             "|---|---|---|---|---|---|---|---|---|"]
    methods = ["faiss IndexBinaryFlat.range_search", "splitaudit hamming_range(backend='mih')",
               "splitaudit hamming_range(backend='auto')"]
    ref, totals = None, {}
    for method in methods:
        r = _child("search", n_base=n_base, n_queries=n_queries, radius=radius, method=method,
                   n_planted=n_planted, n_slice=n_slice)
        ref = ref or r["slice_digest"]
        total = r["seconds"] * n_queries / r["queries"]
        totals[method] = total
        lines.append(f"| {method} | {r['queries']:,} | {r['seconds']:.1f} | {r['queries'] / r['seconds']:,.0f} | "
                     f"{total:,.0f} | {r['peak_rss_mb']:.0f} | {r['pairs']:,} | "
                     f"{r['planted_found']:,}/{r['planted']:,} | "
                     f"{r['slice_digest'] == ref} ({r['slice_pairs']:,} pairs) |")
        print(lines[-1], file=sys.stderr, flush=True)
    flat = totals[methods[0]]
    lines += ["", "Speed-up over faiss (extrapolated): " + ", ".join(
        f"{m.split('(')[-1].rstrip(')')} {flat / t:.0f}x" for m, t in list(totals.items())[1:])]
    return "\n".join(lines)


FMNIST_PHASHES = "/tmp/splitaudit_fmnist_phash.npy"


def fmnist_phashes() -> np.ndarray:
    """pHashes of the 70k Fashion-MNIST images (train then val): 32x32 LANCZOS gray, as a scan does."""
    if os.path.exists(FMNIST_PHASHES):
        return np.load(FMNIST_PHASHES)
    from PIL import Image

    from splitaudit.fingerprints.hashes import phash
    from splitaudit.fingerprints.resample import resize_stack

    d = np.load("/work/data/fmnist/arrays.npz")
    x = np.concatenate([d["x_train"], d["x_val"]])
    gray = resize_stack(x, (32, 32), Image.Resampling.LANCZOS)
    if gray is None:
        gray = np.stack([np.asarray(Image.fromarray(a).resize((32, 32), Image.Resampling.LANCZOS)) for a in x])
    hashes = phash(gray)
    np.save(FMNIST_PHASHES, hashes)
    return hashes


def _run_fmnist(radius: int, backend: str, within: bool) -> dict:
    from splitaudit.duplicates import hamming_range
    from splitaudit.search.hamming import choose_backend

    h = np.load(FMNIST_PHASHES)
    queries, base = (h, h) if within else (h[60_000:], h[:60_000])
    t = time.perf_counter()
    chosen = backend if backend != "auto" else choose_backend(queries, base, radius)[0]
    plan_s = time.perf_counter() - t if backend == "auto" else 0.0
    t = time.perf_counter()
    qi, bi, _ = hamming_range(queries, base, radius, backend=backend, upper_only=within)
    return {"seconds": time.perf_counter() - t, "plan_seconds": plan_s, "chosen": chosen,
            "pairs": len(qi), "digest": _pairs_digest(qi, bi)}


def bench_fmnist(radii: list[int]) -> str:
    h = fmnist_phashes()
    n_distinct = len(np.unique(h))
    lines = [f"### (2b) Real hashes: Fashion-MNIST pHash ({len(h):,} images, {n_distinct:,} distinct values)", "",
             "'within' = all 70k x 70k (upper triangle); 'cross' = 10k val x 60k train. 'auto' includes its "
             "planning (sampled bucket sizes) in its seconds; 'plan s' is that part.", "",
             "| search | radius | backend | chosen | seconds | vs faiss | plan s | peak RSS MB | pairs | same pairs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for within in (False, True):
        for radius in radii:
            backends = ["faiss", "mih", "auto"] + (["numpy"] if not within and radius == radii[0] else [])
            ref = None
            for backend in backends:
                r = _child("fmnist", radius=radius, backend=backend, within=within)
                ref = ref or r
                lines.append(f"| {'within' if within else 'cross'} | {radius} | {backend} | {r['chosen']} | "
                             f"{r['seconds']:.2f} | {ref['seconds'] / r['seconds']:.1f}x | {r['plan_seconds']:.2f} | "
                             f"{r['peak_rss_mb']:.0f} | {r['pairs']:,} | {r['digest'] == ref['digest']} |")
                print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


# ----------------------------------------------------------------- (3) RSS vs N
def _synthetic_fingerprints(n: int, seed: int = 0):
    """Fingerprints of n distinct smooth random 32x32 images plus 1 % planted copies (no files)."""
    import pandas as pd

    from splitaudit.fingerprints import DESCRIPTOR_DIM, TABLE_COLUMNS, Fingerprints

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 8, 8)).astype(np.float32)
    thumbs = np.clip(coarse.repeat(4, 1).repeat(4, 2) + rng.normal(0, 4, (n, 32, 32)), 0, 255).astype(np.uint8)
    copies = rng.choice(n, n // 100, replace=False)
    thumbs[copies[: len(copies) // 2]] = thumbs[copies[len(copies) // 2:]]
    table = pd.DataFrame({c: np.zeros(n, np.float64) for c in TABLE_COLUMNS})
    table["path"] = [f"img/{i}.png" for i in range(n)]
    table["ok"] = True
    table["reason"] = None
    table["bytes_sha1"] = [f"{i:040x}" for i in range(n)]
    table["pixel_sha1"] = table["bytes_sha1"]
    for col in ("phash", "dhash", "ahash", "phash_flip", "dhash_flip", "ahash_flip"):
        table[col] = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    for col in ("phash", "dhash"):
        v = table[col].to_numpy().copy()
        v[copies[: len(copies) // 2]] = v[copies[len(copies) // 2:]]
        table[col] = v
    desc = rng.normal(size=(n, DESCRIPTOR_DIM)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    return Fingerprints(table=table, thumbs=thumbs, descriptor=desc, mode="fast"), len(copies) // 2


def _run_rss(n: int) -> dict:
    import pandas as pd

    from splitaudit.duplicates import find_duplicates

    fps, planted = _synthetic_fingerprints(n)
    after_data = _maxrss_mb()
    split = np.where(np.arange(n) % 5 == 0, "val", "train")
    images = pd.DataFrame({"path": fps.table["path"], "split": split, "label": "x"})
    t = time.perf_counter()
    res = find_duplicates(fps, images)
    return {"seconds": time.perf_counter() - t, "after_data_mb": after_data,
            "pairs": int(len(res.pairs) + len(res.within)), "planted": planted}


def bench_rss(sizes: list[int]) -> str:
    lines = ["### (3) Peak RSS of fingerprints + duplicate search vs N (synthetic fingerprints, no files)", "",
             "| N | duplicate search s | RSS after data MB | peak RSS MB | peak - interpreter MB | pairs found (planted) |",
             "|---|---|---|---|---|---|"]
    pts = []
    for n in sizes:
        r = _child("rss", n=n)
        extra = r["peak_rss_mb"] - r["baseline_rss_mb"]
        pts.append((n, extra, r["seconds"]))
        lines.append(f"| {n:,} | {r['seconds']:.1f} | {r['after_data_mb']:.0f} | {r['peak_rss_mb']:.0f} | "
                     f"{extra:.0f} | {r['pairs']:,} ({r['planted']:,}) |")
    if len(pts) >= 2:
        (n0, m0, s0), (n1, m1, s1) = pts[0], pts[-1]
        lines += ["", f"Growth exponent {n0:,} -> {n1:,}: memory {math.log(m1 / m0) / math.log(n1 / n0):.2f}, "
                      f"time {math.log(s1 / s0) / math.log(n1 / n0):.2f} (1 = linear, 2 = an N x N matrix)."]
    return "\n".join(lines)


# ----------------------------------------------------------------- (4) real files
SCAN_CHECKS = "exact_duplicates,near_duplicates,label_conflicts"


def _image(seed: int, shift: int = 0) -> np.ndarray:
    """A textured 32x32 RGB image: coarse 8x8 random colours upsampled, plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3)).astype(np.int16)
    img = coarse.repeat(4, 0).repeat(4, 1) + rng.integers(-12, 13, (32, 32, 3)) + shift
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_range(args) -> None:
    from PIL import Image

    root, n, lo, hi = args
    n_train = n * 4 // 5
    sources = _plants(n)
    for i in range(lo, hi):
        split, j = ("train", i) if i < n_train else ("val", i - n_train)
        seed, shift, label = i, 0, i % 10
        if i in sources:  # a planted copy of a training image
            seed, kind, label = sources[i]
            shift = 0 if kind == "exact" else 5
        Image.fromarray(_image(seed, shift)).save(os.path.join(root, split, f"c{label}", f"{j:06d}.png"),
                                                  compress_level=1)


def _plants(n: int) -> dict[int, tuple[int, str, int]]:
    """val image index -> (train index it copies, 'exact'|'near', label); 1 % of val, every 5th relabelled."""
    n_train = n * 4 // 5
    rng = np.random.default_rng(n)
    val = rng.choice(np.arange(n_train, n), max(2, (n - n_train) // 100), replace=False)
    src = rng.choice(n_train, len(val), replace=False)
    return {int(v): (int(s), "exact" if k % 2 == 0 else "near", (int(s) + (k % 5 == 4)) % 10)
            for k, (v, s) in enumerate(zip(val, src))}


def write_synthetic_pngs(root: str, n: int, jobs: int = 2) -> set[tuple[str, str]]:
    """Write n PNGs (80 % train, 20 % val, 10 classes) under root; returns the planted (val, train) pairs."""
    from multiprocessing import Pool

    n_train = n * 4 // 5
    for split in ("train", "val"):
        for c in range(10):
            os.makedirs(os.path.join(root, split, f"c{c}"), exist_ok=True)
    step = 2_000
    with Pool(jobs) as pool:
        pool.map(_write_range, [(root, n, lo, min(n, lo + step)) for lo in range(0, n, step)])
    return {(f"val/c{label}/{v - n_train:06d}.png", f"train/c{s % 10}/{s:06d}.png")
            for v, (s, _, label) in _plants(n).items()}


def _relabelled(planted: set[tuple[str, str]]) -> int:
    return sum(v.split("/")[1] != t.split("/")[1] for v, t in planted)


_WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}))
"""


def _scan_files(root: str, out: str, checks: str | None, jobs: int) -> dict:
    cmd = [sys.executable, "-m", "splitaudit", "scan", root, "--out", out, "--no-cache",
           "--jobs", str(jobs), "--quiet"] + (["--checks", checks] if checks else [])
    res = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    if r["rc"] != 0:
        raise SystemExit(f"scan failed ({r['rc']}): {res.stderr[-2000:]}")
    with open(os.path.join(out, "timings.json")) as f:
        r["timings"] = json.load(f)["seconds"]
    import pandas as pd

    dup = pd.read_csv(os.path.join(out, "duplicates.csv"))
    r["found"] = set(zip(dup["val_path"], dup["train_path"]))
    r["conflicts"] = int(dup["label_conflict"].sum()) if len(dup) else 0
    return r


def bench_files(sizes: list[int], all_checks_at: int | None, jobs: int = 2, tmp: str = "/tmp") -> str:
    import shutil
    import tempfile

    lines = [f"### (4) `splitaudit scan --no-cache --jobs {jobs}` on N synthetic 32x32 PNG files "
             "(80/20 train/val, 10 classes, 1 % of val planted copies: half exact, half brightness +5; "
             "every 5th copy relabelled)", "",
             "| N | checks | write s | scan wall s | fingerprints s | duplicates s | peak RSS MB | "
             "peak - N=1k MB | planted found | other cross pairs | label conflicts (planted) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    runs = [(1_000, SCAN_CHECKS)] + [(n, SCAN_CHECKS) for n in sizes]
    if all_checks_at:
        runs.append((all_checks_at, None))
    base = None
    pts = []
    for n, checks in runs:
        work = tempfile.mkdtemp(prefix=f"sa_scale_{n}_", dir=tmp)
        try:
            t = time.perf_counter()
            planted = write_synthetic_pngs(os.path.join(work, "data"), n, jobs=jobs)
            written = time.perf_counter() - t
            r = _scan_files(os.path.join(work, "data"), os.path.join(work, "out"), checks, jobs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        base = base if base is not None else r["peak_rss_mb"]
        net = r["peak_rss_mb"] - base
        if checks == SCAN_CHECKS and n != 1_000:
            pts.append((n, r["peak_rss_mb"], net, r["seconds"]))
        tm = r["timings"]
        lines.append(f"| {n:,} | {'3 (dup, near, labels)' if checks else 'all'} | {written:.1f} | "
                     f"{r['seconds']:.1f} | {tm.get('fingerprints', 0):.1f} | {tm.get('duplicates', 0):.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {net:.0f} | {len(planted & r['found'])}/{len(planted)} | "
                     f"{len(r['found'] - planted)} | {r['conflicts']} ({_relabelled(planted)}) |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", "Growth exponents log(y1/y0)/log(N1/N0) between consecutive sizes "
                  "(1 = linear, 2 = quadratic):", "",
              "| N0 -> N1 | peak RSS | peak RSS - N=1k scan | scan wall time |", "|---|---|---|---|"]
    for (n0, m0, d0, s0), (n1, m1, d1, s1) in zip(pts, pts[1:]):
        e = lambda a, b: f"{math.log(b / a) / math.log(n1 / n0):.2f}" if a > 0 and b > 0 else "n/a"
        lines.append(f"| {n0:,} -> {n1:,} | {e(m0, m1)} | {e(d0, d1)} | {e(s0, s1)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["cluster", "search", "rss", "files", "all"])
    ap.add_argument("--n", type=int, default=20_000, help="images for the cluster benchmark")
    ap.add_argument("--base", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=1_000_000)
    ap.add_argument("--slice", type=int, default=50_000,
                    help="search: queries faiss runs (extrapolated linearly to --queries)")
    ap.add_argument("--fmnist-radii", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--radius", type=int, default=8)
    ap.add_argument("--planted", type=int, default=1_000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--all-checks-at", type=int, default=30_000,
                    help="files: one extra scan with every check at this N (0: skip)")
    ap.add_argument("--tmp", default="/tmp", help="files: where the synthetic PNGs are written")
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]}, cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}\n")
    if args.what in ("cluster", "all"):
        print(bench_cluster(args.n), "\n", flush=True)
    if args.what in ("search", "all"):
        print(bench_search(args.base, args.queries, args.radius, args.planted, args.slice), "\n", flush=True)
        if os.path.exists("/work/data/fmnist/arrays.npz"):
            print(bench_fmnist(args.fmnist_radii), "\n", flush=True)
    if args.what in ("rss", "all"):
        print(bench_rss(args.sizes), "\n", flush=True)
    if args.what in ("files", "all"):
        print(bench_files(args.sizes, args.all_checks_at or None, tmp=args.tmp), "\n", flush=True)


if __name__ == "__main__":
    main()
