"""Before/after comparison of the scan's steps in CPU seconds (this process + its workers),
which a shared machine's load hardly affects, unlike wall time.

    git worktree add /tmp/wt_old <commit>
    PYTHONPATH=/tmp/wt_old python benchmarks/ab_scan_cpu.py old /tmp/wt_old
    PYTHONPATH=$PWD        python benchmarks/ab_scan_cpu.py new $PWD

The second argument is the checkout whose splitaudit must be imported (checked), so one
script times both versions on the same Fashion-MNIST folder (``benchmarks/fmnist.py``).
"""

from __future__ import annotations

import resource
import sys
import time


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main(label: str, checkout: str, root: str = "/work/data/fmnist") -> None:
    sys.path.insert(0, checkout + "/benchmarks")
    import splitaudit
    from bench_duplicates import _decode_chunk
    from splitaudit import ImageSplit
    from splitaudit._parallel import ordered_map
    from splitaudit.duplicates import find_duplicates
    from splitaudit.fingerprints import compute_fingerprints

    if not splitaudit.__file__.startswith(checkout):
        sys.exit(f"imported {splitaudit.__file__}, not the checkout {checkout}: set PYTHONPATH")
    out = {}

    def step(name, fn):
        t, c = time.perf_counter(), _cpu()
        value = fn()
        out[name] = (time.perf_counter() - t, _cpu() - c)
        return value

    split = step("listing", lambda: ImageSplit.from_folder(root))
    paths = split.images["abspath"].tolist()
    for p in paths:  # warm the page cache: a cold first read would slow only the decode-only loop
        with open(p, "rb") as f:
            f.read()
    step("decode-only", lambda: ordered_map(_decode_chunk, paths, jobs=2, chunksize=500))
    fps = step("fingerprints", lambda: compute_fingerprints(split, jobs=2))
    result = step("find_duplicates", lambda: find_duplicates(fps, split.images))
    scan_cpu = sum(out[k][1] for k in ("listing", "fingerprints", "find_duplicates"))
    print(label, " | ".join(f"{k} wall {w:.1f} cpu {c:.1f}" for k, (w, c) in out.items()),
          f"| scan cpu {scan_cpu:.1f} = {scan_cpu / out['decode-only'][1]:.2f}x decode-only cpu",
          f"| pairs {len(result.pairs)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
