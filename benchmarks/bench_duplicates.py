"""Benchmark the duplicate engine on Fashion-MNIST (60k train / 10k val PNG).

    python benchmarks/fmnist.py /work/data/fmnist            # once
    python benchmarks/bench_duplicates.py /work/data/fmnist [--jobs 2] [--skip-baselines]

Ground truth comes from the raw arrays (``arrays.npz``): a val image is a
same-photo copy when its nearest train image (float32 GEMM in blocks) is
within pixel L2 <= 200 (0-255 scale, 28x28). The scan under test is
``compute_fingerprints`` + ``find_duplicates`` on the PNG folder; it is timed
in the same run as a decode-only loop and the plain imagehash loop over the
same files. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np


def nearest_train(x_val: np.ndarray, x_train: np.ndarray, block: int = 1000):
    q_all = x_val.reshape(len(x_val), -1).astype(np.float32)
    b = x_train.reshape(len(x_train), -1).astype(np.float32)
    bn = (b * b).sum(1)
    dist = np.empty(len(q_all), np.float32)
    idx = np.empty(len(q_all), np.int64)
    for s in range(0, len(q_all), block):
        q = q_all[s:s + block]
        d2 = (q * q).sum(1)[:, None] + bn[None] - 2 * q @ b.T
        idx[s:s + block] = d2.argmin(1)
        dist[s:s + block] = np.sqrt(np.maximum(d2[np.arange(len(q)), idx[s:s + block]], 0))
    return dist, idx


def _cpu() -> float:
    """CPU seconds of this process (all threads) plus its finished worker processes:
    unlike wall time, hardly affected by other jobs on a shared machine."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _decode_chunk(paths):
    from PIL import Image

    out = []
    for p in paths:
        with Image.open(p) as im:
            im.load()
        out.append(0)
    return out


def _imagehash_chunk(paths):
    import imagehash
    from PIL import Image

    return [str(imagehash.phash(Image.open(p))) for p in paths]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default="/work/data/fmnist")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--l2", type=float, default=200.0)
    ap.add_argument("--fps-cache", help="pickle file to reuse fingerprints between runs (timing then skipped)")
    args = ap.parse_args(argv)

    from splitaudit import ImageSplit
    from splitaudit._parallel import ordered_map
    from splitaudit.duplicates import find_duplicates
    from splitaudit.fingerprints import compute_fingerprints

    root = Path(args.root)
    if not (root / ".complete").exists():
        sys.exit(f"{root} is not a complete Fashion-MNIST tree: run benchmarks/fmnist.py {root}")
    arrays = np.load(root / "arrays.npz")
    t = time.perf_counter()
    dist, nearest = nearest_train(arrays["x_val"], arrays["x_train"])
    t_gt = time.perf_counter() - t
    gt_val = np.flatnonzero(dist <= args.l2)

    split = ImageSplit.from_folder(root)
    images = split.images
    number = images["path"].map(lambda p: int(re.search(r"(\d+)\.png$", p).group(1))).to_numpy()
    row_of = {(s, k): i for i, (s, k) in enumerate(zip(images["split"], number))}
    paths = images["abspath"].tolist()

    timings: dict[str, float] = {}
    cpu_s: dict[str, float] = {}
    if not args.skip_baselines:
        # The baseline gets its best chunk size of two (the scan uses the library default, 64).
        best = (np.inf, np.inf)
        for chunksize in (64, 500):
            t, c = time.perf_counter(), _cpu()
            ordered_map(_decode_chunk, paths, jobs=args.jobs, chunksize=chunksize)
            best = min(best, (time.perf_counter() - t, _cpu() - c))
        timings["decode only (PIL open+load)"], cpu_s["decode only (PIL open+load)"] = best
        t, c = time.perf_counter(), _cpu()
        ordered_map(_imagehash_chunk, paths, jobs=args.jobs, chunksize=500)
        timings["imagehash.phash loop"] = time.perf_counter() - t
        cpu_s["imagehash.phash loop"] = _cpu() - c
    t, c = time.perf_counter(), _cpu()
    if args.fps_cache and Path(args.fps_cache).exists():
        import pickle

        fps = pickle.loads(Path(args.fps_cache).read_bytes())
    else:
        fps = compute_fingerprints(split, jobs=args.jobs)
        if args.fps_cache:
            import pickle

            Path(args.fps_cache).write_bytes(pickle.dumps(fps))
    timings["compute_fingerprints"] = time.perf_counter() - t
    cpu_s["compute_fingerprints"] = _cpu() - c
    t, c = time.perf_counter(), _cpu()
    stage_times: dict[str, float] = {}
    last = [time.perf_counter(), None]

    def progress(stage, done, total):
        now = time.perf_counter()
        if last[1] is not None:
            stage_times[last[1]] = stage_times.get(last[1], 0.0) + now - last[0]
        last[0], last[1] = now, stage

    result = find_duplicates(fps, images, progress=progress)
    timings["find_duplicates"] = time.perf_counter() - t
    cpu_s["find_duplicates"] = _cpu() - c
    for d in (timings, cpu_s):
        d["whole scan (fingerprints + duplicates)"] = d["compute_fingerprints"] + d["find_duplicates"]
    if not args.skip_baselines:
        # What a user runs: splitaudit.scan() end to end (listing, fingerprints, the three
        # duplicate checks, summary), without the on-disk cache and without writing files.
        from splitaudit import scan

        t, c = time.perf_counter(), _cpu()
        scan(root, jobs=args.jobs, cache=None,
             checks=["exact_duplicates", "near_duplicates", "label_conflicts"])
        timings["splitaudit.scan(cache=None, duplicate checks)"] = time.perf_counter() - t
        cpu_s["splitaudit.scan(cache=None, duplicate checks)"] = _cpu() - c

    pairs = result.pairs
    found = set(zip(pairs["val_index"], pairs["train_index"]))
    hits = [(row_of[("val", v)], row_of[("train", int(nearest[v]))]) in found for v in gt_val]
    val_found = set(pairs["val_index"])
    val_hits = [row_of[("val", v)] in val_found for v in gt_val]

    print(f"## Fashion-MNIST duplicates ({split.n_train} train / {split.n_val} val, jobs={args.jobs})\n")
    print(f"Ground truth: {len(gt_val)} val images with nearest train image at pixel L2 <= {args.l2:g} "
          f"(GEMM {t_gt:.1f} s)\n")
    print("| measure | value |\n|---|---|")
    print(f"| same-photo pairs found (val, its nearest train) | {sum(hits)} / {len(gt_val)} |")
    print(f"| same-photo val images with any reported pair | {sum(val_hits)} / {len(gt_val)} |")
    print(f"| cross-split pairs reported | {len(pairs)} (exact {int((pairs['kind'] == 'exact').sum())}, "
          f"near {int((pairs['kind'] == 'near').sum())}) |")
    print(f"| val images with a reported train duplicate | {pairs['val_index'].nunique()} |")
    print(f"| reported pairs with pixel L2 <= 200 / <= 300 | "
          f"{_l2_counts(pairs, images, number, arrays)} |")
    print(f"| within-train / within-val pairs | {int((result.within['split'] == 'train').sum())} / "
          f"{int((result.within['split'] == 'val').sum())} |")
    e = result.expected
    print(f"| cross observed / expected under random split (ratio, p) | {e['observed']} / "
          f"{e['expected']:.1f} ({e['ratio']:.2f}, p={e['p_value']:.3g}) |")
    print(f"| label conflicts among cross pairs | {int(pairs['label_conflict'].sum())} |\n")
    print("| step | wall s | × decode-only | CPU s (all processes) | CPU × decode-only |\n|---|---|---|---|---|")
    base = timings.get("decode only (PIL open+load)")
    cbase = cpu_s.get("decode only (PIL open+load)")
    for k, v in timings.items():
        ratio = f"{v / base:.2f}" if base else "–"
        cratio = f"{cpu_s[k] / cbase:.2f}" if cbase else "–"
        print(f"| {k} | {v:.1f} | {ratio} | {cpu_s[k]:.1f} | {cratio} |")
    print("\n| find_duplicates stage | wall s |\n|---|---|")
    for k, v in stage_times.items():
        print(f"| {k} | {v:.2f} |")
    print("\nTop reported pairs:\n")
    cols = ["val_path", "train_path", "kind", "score", "thumb_rms", "phash", "dhash", "descriptor_cos"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in pairs[cols].head(15).itertuples(index=False):
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return 0


def _l2_counts(pairs, images, number, arrays) -> str:
    if pairs.empty:
        return "0 / 0"
    v = number[pairs["val_index"].to_numpy()]
    t = number[pairs["train_index"].to_numpy()]
    d = np.sqrt(((arrays["x_val"][v].astype(np.float32) - arrays["x_train"][t]) ** 2).sum((1, 2)))
    return f"{int((d <= 200).sum())} / {int((d <= 300).sum())}"


if __name__ == "__main__":
    sys.exit(main())
