"""The scan against decode-only and the plain imagehash loop, by image size (CPU seconds).

    python benchmarks/bench_scan_sizes.py [--train 8000 --val 2000] [--work /tmp/scan_sizes]

Fashion-MNIST's 28x28 PNGs decode in ~60 µs, so on them every step after the
decode weighs a lot (``results_duplicates.md``). Users' images are usually
larger: this script writes the same Fashion-MNIST images (first ``--train``
train and ``--val`` val images, labels as folders) three ways: as they are
(28 px PNG), and upscaled (bicubic) with a colour tint to 256 and 512 px JPEG
(quality 90). For each folder, in one run: a decode-only loop (``Image.open`` +
``load``, 2 processes, the better of chunk sizes 64 and 500), the plain
``imagehash.phash`` loop (2 processes), and the scan (``compute_fingerprints``,
default fast mode, + ``find_duplicates``; no cache). Times are CPU seconds of
this process and its workers (a shared machine's load hardly changes them) and
wall seconds. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_duplicates import _cpu, _decode_chunk, _imagehash_chunk  # noqa: E402
from fmnist import CLASSES  # noqa: E402

ARRAYS = Path("/work/data/fmnist/arrays.npz")
TINTS = np.array([[1.0, 0.85, 0.7], [0.7, 0.9, 1.0], [0.9, 1.0, 0.75], [1.0, 0.75, 0.95]], np.float32)


def write_folder(root: Path, arrays, n_train: int, n_val: int, size: int | None) -> Path:
    """Write the images once (a ``.complete`` marker makes it idempotent)."""
    from PIL import Image

    if (root / ".complete").exists():
        return root
    for side, x, y, n in (("train", arrays["x_train"], arrays["y_train"], n_train),
                          ("val", arrays["x_val"], arrays["y_val"], n_val)):
        for c in CLASSES:
            (root / side / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            im = Image.fromarray(x[i])
            if size is None:
                im.save(root / side / CLASSES[y[i]] / f"{i:05d}.png")
                continue
            big = np.asarray(im.resize((size, size), Image.BICUBIC), np.float32)[..., None] * TINTS[i % len(TINTS)]
            Image.fromarray(np.clip(big, 0, 255).astype(np.uint8), "RGB").save(
                root / side / CLASSES[y[i]] / f"{i:05d}.jpg", quality=90)
    (root / ".complete").touch()
    return root


def measure(root: Path, jobs: int) -> dict:
    from splitaudit import ImageSplit
    from splitaudit._parallel import ordered_map
    from splitaudit.duplicates import find_duplicates
    from splitaudit.fingerprints import compute_fingerprints

    split = ImageSplit.from_folder(root)
    paths = split.images["abspath"].tolist()
    out = {"n": len(paths)}
    for p in paths:  # warm the page cache, so no step pays for a cold first read
        with open(p, "rb") as f:
            f.read()
    best = (np.inf, np.inf)
    for chunksize in (64, 500):
        t, c = time.perf_counter(), _cpu()
        ordered_map(_decode_chunk, paths, jobs=jobs, chunksize=chunksize)
        best = min(best, (time.perf_counter() - t, _cpu() - c), key=lambda v: v[1])
    out["decode"] = best
    t, c = time.perf_counter(), _cpu()
    ordered_map(_imagehash_chunk, paths, jobs=jobs, chunksize=500)
    out["imagehash"] = (time.perf_counter() - t, _cpu() - c)
    t, c = time.perf_counter(), _cpu()
    fps = compute_fingerprints(split, jobs=jobs)
    result = find_duplicates(fps, split.images)
    out["scan"] = (time.perf_counter() - t, _cpu() - c)
    out["pairs"] = len(result.pairs)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default="/tmp/scan_sizes")
    ap.add_argument("--sizes", default="28,256,512", help="28 = the PNGs as they are")
    args = ap.parse_args(argv)
    arrays = np.load(ARRAYS)
    print("| images | files | decode-only CPU s (wall) | imagehash loop CPU s | scan CPU s (wall) | "
          "scan / decode-only CPU | scan / imagehash CPU | cross pairs |\n|---|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        kind = "PNG" if size == 28 else "JPEG q90, colour"
        root = write_folder(Path(args.work) / f"s{size}_{args.train}_{args.val}", arrays, args.train, args.val,
                            None if size == 28 else size)
        m = measure(root, args.jobs)
        (dw, dc), (_, hc), (sw, sc) = m["decode"], m["imagehash"], m["scan"]
        print(f"| {size}x{size} {kind} | {m['n']:,} | {dc:.1f} ({dw:.1f}) | {hc:.1f} | {sc:.1f} ({sw:.1f}) | "
              f"**{sc / dc:.2f}x** | {sc / hc:.2f}x | {m['pairs']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
