"""Do two commits give the same scan outputs? A guard for restructurings that must change no result.

Runs ``splitaudit scan ROOT --no-cache --no-html`` with the code of BASE (a git ref, checked out
into a temporary worktree) and with the working tree, on each ROOT, and compares the machine files
byte for byte (``timings.json`` is left out: it holds wall times)::

    python benchmarks/same_outputs.py main~3 /work/data/fmnist benchmarks/out/copysets/photo256-seed0

Exit status 0 when every file is identical, 1 otherwise (the differing files are named).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPARED = ["summary.json", "duplicates.csv", "within_duplicates.csv", "images.csv", "unreadable.csv"]


def scan_with(code: Path, root: Path, out: Path, extra: list[str]) -> float:
    """Scan ROOT with the package found in CODE; returns the wall seconds."""
    import time

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "splitaudit", "scan", str(root.resolve()), "--out", str(out),
                    "--no-cache", "--no-html", "-q", *extra], cwd=code, check=True)
    return time.perf_counter() - start


def json_differences(a, b, where: str = "") -> list[str]:
    """Paths (``options.duplicates.min_score``) at which two parsed JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for key in sorted(set(a) | set(b), key=str)
                for d in (json_differences(a.get(key), b.get(key), f"{where}.{key}".lstrip("."))
                          if key in a and key in b else [f"{where}.{key}".lstrip(".") +
                                                         (" only in base" if key in a else " only in head")])]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in json_differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} -> {b!r}"[:300]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="git ref whose outputs are the reference")
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--scan-arg", action="append", default=[], help="extra scan argument (repeatable)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="same-outputs-"))
    base_tree = work / "base"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(base_tree), args.base],
                   check=True)
    differing = []
    try:
        for number, root in enumerate(args.roots):
            outs = {}
            for label, code in (("base", base_tree), ("head", REPO)):
                outs[label] = work / f"{number}-{label}"
                wall = scan_with(code, root, outs[label], args.scan_arg)
                print(f"{root} {label}: {wall:.1f} s", flush=True)
            for name in COMPARED:
                a, b = outs["base"] / name, outs["head"] / name
                same = a.exists() == b.exists() and (not a.exists() or filecmp.cmp(a, b, shallow=False))
                print(f"  {name}: {'same' if same else 'DIFFERS'}")
                if not same and name.endswith(".json") and a.exists() and b.exists():
                    for line in json_differences(json.loads(a.read_text()), json.loads(b.read_text())):
                        print(f"    {line}")
                if not same:
                    differing.append(f"{root}/{name}")
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base_tree)], check=False)
    print("identical" if not differing else "differ: " + ", ".join(differing))
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
