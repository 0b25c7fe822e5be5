"""Copy-detection benchmark (issue 15): does the default scan find edited copies?

    python benchmarks/bench_copies.py                       # all four sets, cost ratios on photo256
    python benchmarks/bench_copies.py --sets fmnist28 --scan-kw mode=exact --json out.json
    python benchmarks/bench_copies.py --sets none --big     # 48k 256-px split, whole CLI scan timed
    python benchmarks/bench_copies.py --sets none --fmnist-real /work/data/fmnist

The planted-edit sets come from ``copysets.py`` (written once into ``--data``,
default ``benchmarks/out/copysets``; gitignored). Each set is scanned exactly
as a user would: ``splitaudit.scan(DIR, embed="none", cache=False, **scan_kw)``
with every default check. ``result.pairs`` is scored against ``truth.csv``:

* recall per edit kind: the planted (val, train) pair is reported, any kind;
  tiles also by overlap (>= 50 %, 25-50 %); ``same cluster``: the copy shares
  ``result.duplicates.clusters`` with its original (what resplit relies on);
* precision: reported cross pairs that are planted or *natural* / all
  reported. Natural: Fashion-MNIST sources within pixel L2 <= 200 (the
  project's same-photo definition, ``sources.npz``); photo sets have none;
* false pairs, with examples, and how many touch a hard negative (a val cell of
  a photo that also has train cells, overlapping none of them).

Cost, in one run on the same files (``--cost-set``): a decode-only loop, the
plain ``imagehash.phash`` loop (both with ``--jobs`` processes) and the whole
scan, wall and CPU seconds (this process plus its finished children), as
ratios to decode-only: the machine is shared, absolute times are noisy.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import copysets  # noqa: E402
from bench_duplicates import _cpu, _decode_chunk, _imagehash_chunk, nearest_train  # noqa: E402

NATURAL_L2 = 200.0
DEFAULT_SETS = ("photo256", "photo640", "fmnist28", "fmnist96")


# ----------------------------------------------------------------------------- scoring
def classify_pairs(pairs: pd.DataFrame, truth: pd.DataFrame, sources: dict | None) -> pd.Series:
    """Label each reported cross pair ``planted``, ``natural``, ``hard_negative`` or ``false``."""
    planted = set(truth.loc[truth["relation"] != "negative", ["val_path", "train_path"]]
                  .itertuples(index=False, name=None))
    negative_val = set(truth.loc[truth["relation"] == "negative", "val_path"])
    labels = []
    for val_path, train_path in zip(pairs["val_path"], pairs["train_path"]):
        if (val_path, train_path) in planted:
            labels.append("planted")
        elif sources is not None and pixel_l2(sources[val_path], sources[train_path]) <= NATURAL_L2:
            labels.append("natural")
        elif val_path in negative_val:
            labels.append("hard_negative")
        else:
            labels.append("false")
    return pd.Series(labels, index=pairs.index, dtype=object)


def pixel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a.astype(np.float32) - b.astype(np.float32)) ** 2).sum()))


def load_sources(root: Path) -> dict | None:
    """``path -> 28x28 source array`` from ``sources.npz``, or None (photo sets)."""
    path = root / "sources.npz"
    if not path.exists():
        return None
    data = np.load(path)
    return dict(zip(data["paths"].tolist(), data["arrays"]))


def evaluate(result, truth: pd.DataFrame, sources: dict | None, n_examples: int = 8) -> dict:
    """Score a :class:`splitaudit.ScanResult` against a set's truth table."""
    pairs = result.pairs
    reported = set(zip(pairs["val_path"], pairs["train_path"]))
    cluster_of = dict(zip(result.split.images["path"], result.duplicates.clusters))
    planted = truth[truth["relation"] != "negative"].copy()
    planted["found"] = [pair in reported for pair in zip(planted["val_path"], planted["train_path"])]
    planted["same_cluster"] = [cluster_of[v] == cluster_of[t]
                               for v, t in zip(planted["val_path"], planted["train_path"])]
    rows = []
    for edit, group in planted.groupby("edit", sort=False):
        rows.append(_recall_row(edit, group))
    tiles = planted[planted["relation"] == "tile"]
    if len(tiles):
        rows.append(_recall_row("tiles, overlap >= 50 %", tiles[tiles["overlap"] >= 0.5]))
        rows.append(_recall_row("tiles, overlap 25-50 %", tiles[tiles["overlap"] < 0.5]))
    labels = classify_pairs(pairs, truth, sources)
    counts = labels.value_counts().to_dict()
    good = counts.get("planted", 0) + counts.get("natural", 0)
    false = pairs[labels.isin(["false", "hard_negative"])]
    cols = [c for c in ("val_path", "train_path", "kind", "score", "decided_by", "thumb_rms", "phash") if c in pairs]
    examples = false.sort_values("score", ascending=False)[cols].head(n_examples)
    edit_of_val = dict(zip(truth["val_path"], truth["edit"]))
    within = result.within
    return {
        "n_train": int(result.split.n_train), "n_val": int(result.split.n_val),
        "per_edit": rows,
        "n_planted": int(len(planted)), "found": int(planted["found"].sum()),
        "recall": float(planted["found"].mean()) if len(planted) else float("nan"),
        "same_cluster": float(planted["same_cluster"].mean()) if len(planted) else float("nan"),
        "n_reported": int(len(pairs)), "n_planted_reported": int(counts.get("planted", 0)),
        "n_natural": int(counts.get("natural", 0)), "n_false": int(len(false)),
        "n_false_on_hard_negatives": int(counts.get("hard_negative", 0)),
        "precision": float(good / len(pairs)) if len(pairs) else float("nan"),
        "n_within_train": int((within["split"] == "train").sum()),
        "n_within_val": int((within["split"] == "val").sum()),
        "false_examples": [{**{k: _plain(v) for k, v in row.items()},
                            "val_is": edit_of_val.get(row["val_path"], "distinct val image")}
                           for row in examples.to_dict("records")],
    }


def _recall_row(edit: str, group: pd.DataFrame) -> dict:
    n = int(len(group))
    return {"edit": edit, "n": n, "found": int(group["found"].sum()),
            "recall": float(group["found"].mean()) if n else float("nan"),
            "same_cluster": int(group["same_cluster"].sum())}


def _plain(value):
    return value.item() if hasattr(value, "item") else value


# ----------------------------------------------------------------------------- cost
def _parallel_loop(chunk_fn, paths: list[str], jobs: int, chunksize: int = 200) -> None:
    chunks = [paths[i:i + chunksize] for i in range(0, len(paths), chunksize)]
    if jobs == 1:
        for chunk in chunks:
            chunk_fn(chunk)
        return
    with get_context("fork").Pool(jobs) as pool:
        pool.map(chunk_fn, chunks, chunksize=1)


def timed(fn, *args, **kwargs):
    """``(value, wall s, CPU s)``; CPU counts this process and its finished children."""
    wall, cpu = time.perf_counter(), _cpu()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - wall, _cpu() - cpu


def baseline_costs(paths: list[str], jobs: int) -> dict:
    """Decode-only (best of two: the first also warms the page cache) and imagehash loops."""
    decode = min((timed(_parallel_loop, _decode_chunk, paths, jobs)[1:] for _ in range(2)))
    _, phash_wall, phash_cpu = timed(_parallel_loop, _imagehash_chunk, paths, jobs)
    return {"decode only (PIL open+load)": decode, "imagehash.phash loop": (phash_wall, phash_cpu)}


def cost_table(costs: dict) -> str:
    base_wall, base_cpu = costs["decode only (PIL open+load)"]
    lines = ["| step | wall s | × decode-only | CPU s | CPU × decode-only |", "|---|---|---|---|---|"]
    for step, (wall, cpu) in costs.items():
        lines.append(f"| {step} | {wall:.1f} | {wall / base_wall:.2f} | {cpu:.1f} | {cpu / base_cpu:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- runs
def run_set(name: str, root: Path, scan_kw: dict, jobs: int, with_cost: bool) -> dict:
    """Scan one planted-edit set (timed) and score it; optionally the cost baselines first."""
    import splitaudit

    truth = pd.read_csv(root / "truth.csv", keep_default_na=False,
                        dtype={"val_path": str, "train_path": str, "strength": str})
    truth["overlap"] = pd.to_numeric(truth["overlap"], errors="coerce")
    costs = {}
    if with_cost:
        paths = [str(p) for p in sorted(root.glob("train/**/*")) + sorted(root.glob("val/**/*"))
                 if p.is_file()]
        costs = baseline_costs(paths, jobs)
    kwargs = {"embed": "none", "cache": False, "jobs": jobs, **scan_kw}
    result, wall, cpu = timed(splitaudit.scan, root, **kwargs)
    costs["splitaudit.scan (all default checks, no cache)"] = (wall, cpu)
    metrics = evaluate(result, truth, load_sources(root))
    metrics.update(set=name, scan_kw=scan_kw, scan_wall_s=wall, scan_cpu_s=cpu,
                   costs={k: {"wall_s": w, "cpu_s": c} for k, (w, c) in costs.items()})
    return metrics


def set_markdown(m: dict) -> str:
    out = [f"### {m['set']} ({m['n_train']} train / {m['n_val']} val; scan {m['scan_wall_s']:.1f} s wall, "
           f"{m['scan_cpu_s']:.1f} s CPU)", "",
           "| edit kind | n | found | recall | same cluster |", "|---|---|---|---|---|"]
    for row in m["per_edit"]:
        out.append(f"| {row['edit']} | {row['n']} | {row['found']} | {row['recall']:.2f} | "
                   f"{row['same_cluster']} |")
    out += ["", f"**Overall recall {m['recall']:.3f} ({m['found']}/{m['n_planted']}) at precision "
            f"{m['precision']:.3f}** ({m['n_reported']} cross pairs reported: {m['n_planted_reported']} "
            f"planted, {m['n_natural']} natural, {m['n_false']} false of which "
            f"{m['n_false_on_hard_negatives']} on hard negatives). Copies sharing their original's "
            f"cluster: {m['same_cluster']:.3f}. Within-split pairs: train {m['n_within_train']}, "
            f"val {m['n_within_val']}."]
    if m["false_examples"]:
        out += ["", "False pairs (highest scores):", "",
                "| val_path | train_path | kind | score | thumb_rms | val is |", "|---|---|---|---|---|---|"]
        for ex in m["false_examples"]:
            out.append(f"| {ex['val_path']} | {ex['train_path']} | {ex['kind']} | {ex['score']:.3f} | "
                       f"{ex.get('thumb_rms', float('nan')):.2f} | {ex['val_is']} |")
    if len(m["costs"]) > 1:
        out += ["", cost_table({k: (v["wall_s"], v["cpu_s"]) for k, v in m["costs"].items()})]
    return "\n".join(out)


def run_big(out_root: Path, seed: int, jobs: int, cli_args: list[str]) -> dict:
    """Generate the 48k 256-px split and time the whole ``splitaudit scan`` CLI on it."""
    root = copysets.build("big48k", out_root / "big48k", seed=seed)
    paths = [str(p) for p in sorted(root.glob("train/*.jpg")) + sorted(root.glob("val/*.jpg"))]
    costs = {"decode only (PIL open+load)":
             min((timed(_parallel_loop, _decode_chunk, paths, jobs)[1:] for _ in range(2)))}
    report = out_root / "big48k-scan"
    command = [sys.executable, "-m", "splitaudit", "scan", str(root), "--out", str(report),
               "--no-cache", "--quiet", *cli_args]
    # Run outside the checkout: `python -m` puts the working directory first on sys.path, which
    # would shadow a splitaudit given by PYTHONPATH.
    where = subprocess.run([sys.executable, "-c", "import splitaudit; print(splitaudit.__file__)"],
                           capture_output=True, text=True, cwd=out_root).stdout.strip()
    done, wall, cpu = timed(subprocess.run, command, capture_output=True, text=True, cwd=out_root)
    costs["splitaudit scan CLI (all checks, --no-cache)"] = (wall, cpu)
    summary = json.loads((report / "summary.json").read_text()) if done.returncode in (0, 1) else {}
    truth = big_truth(report, copysets.big_boxes(seed=seed)) if summary else []
    return {"n_images": len(paths), "splitaudit": where, "truth": truth, "returncode": done.returncode, "stderr_tail": done.stderr[-2000:],
            "wall_s": wall, "cpu_s": cpu, "goal_s": 300, "n_cross_pairs": summary.get("n_cross_pairs"),
            "n_within_pairs": summary.get("n_within_pairs"), "command": " ".join(command),
            "costs": {k: {"wall_s": w, "cpu_s": c} for k, (w, c) in costs.items()}}


def big_truth(report: Path, boxes: pd.DataFrame) -> list[dict]:
    """Per table (across / within the split) and deciding path: the reported pairs of the 48k set,
    and how many join crops of different photos or non-overlapping crops of one photo (false), by
    the crop boxes the set was cut from (``copysets.big_boxes``)."""
    box = boxes.set_index("path")
    rows = []
    for table, name, (left, right) in (("across", "duplicates.csv", ("val_path", "train_path")),
                                       ("within", "within_duplicates.csv", ("path_a", "path_b"))):
        pairs = pd.read_csv(report / name, usecols=[left, right, "decided_by"])
        a, b = box.loc[pairs[left]].to_numpy(), box.loc[pairs[right]].to_numpy()  # photo, x, y, side
        span = [np.minimum(a[:, k] + a[:, 3], b[:, k] + b[:, 3]) - np.maximum(a[:, k], b[:, k]) for k in (1, 2)]
        overlap = (a[:, 0] == b[:, 0]) & (span[0] > 0) & (span[1] > 0)
        for path, hit in pd.Series(overlap).groupby(pairs["decided_by"].to_numpy()):
            rows.append({"table": table, "decided_by": path, "pairs": len(hit), "false": int((~hit).sum())})
    return rows


def run_fmnist_real(root: Path, scan_kw: dict, jobs: int) -> dict:
    """Scan the official Fashion-MNIST split; find its val images with a same-photo train image."""
    import splitaudit
    from fmnist import CLASSES

    arrays = np.load(root / "arrays.npz")
    dist, nearest = nearest_train(arrays["x_val"], arrays["x_train"])
    same_photo = np.flatnonzero(dist <= NATURAL_L2)
    kwargs = {"embed": "none", "cache": False, "jobs": jobs, **scan_kw}
    result, wall, cpu = timed(splitaudit.scan, root, **kwargs)
    pairs = result.pairs
    reported = set(zip(pairs["val_path"], pairs["train_path"]))
    val_with_pair = set(pairs["val_path"])

    def rel(split, i):
        return f"{split}/{CLASSES[arrays[f'y_{split}'][i]]}/{i:05d}.png"

    found = [(rel("val", v), rel("train", int(nearest[v]))) in reported for v in same_photo]
    return {"n_cross_pairs": int(len(pairs)), "n_same_photo": int(len(same_photo)),
            "same_photo_pair_found": int(sum(found)),
            "same_photo_val_with_any_pair": int(sum(rel("val", v) in val_with_pair for v in same_photo)),
            "scan_wall_s": wall, "scan_cpu_s": cpu, "scan_kw": scan_kw}


def code_under_test() -> str:
    """Where the imported splitaudit lives and, in a git checkout, its commit (+ 'dirty')."""
    import splitaudit

    folder = Path(splitaudit.__file__).resolve().parent
    done = subprocess.run(["git", "-C", str(folder), "describe", "--always", "--dirty"],
                          capture_output=True, text=True)
    return f"{folder} {done.stdout.strip() if done.returncode == 0 else '(not a git checkout)'}"


def parse_scan_kw(items: list[str]) -> dict:
    """``key=value`` strings → keyword arguments (values as Python literals, else strings)."""
    kwargs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--scan-kw expects key=value; got {item!r}")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default=",".join(DEFAULT_SETS),
                    help=f"comma-separated, of {sorted(copysets.SETS)}, or 'none'")
    ap.add_argument("--data", type=Path, default=HERE / "out" / "copysets")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="bigger planted sets")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cost-set", default="photo256", help="set timed against decode/imagehash ('none')")
    ap.add_argument("--scan-kw", action="append", default=[], metavar="KEY=VALUE",
                    help="extra splitaudit.scan keyword, e.g. mode=exact (repeatable)")
    ap.add_argument("--big", action="store_true", help="also time the CLI on a 48k 256-px split")
    ap.add_argument("--cli-arg", action="append", default=[], help="extra argument for --big's CLI scan")
    ap.add_argument("--fmnist-real", type=Path, help="Fashion-MNIST tree from benchmarks/fmnist.py")
    ap.add_argument("--json", type=Path, help="write every number here")
    args = ap.parse_args(argv)
    scan_kw = parse_scan_kw(args.scan_kw)
    report: dict = {"scan_kw": scan_kw, "seed": args.seed, "scale": args.scale,
                    "splitaudit": code_under_test(), "sets": {}}
    print(f"splitaudit under test: {report['splitaudit']}\n", flush=True)
    names = [] if args.sets == "none" else args.sets.split(",")
    for name in names:
        suffix = "" if args.scale == 1 else f"-x{args.scale:g}"
        root = copysets.build(name, args.data / f"{name}-seed{args.seed}{suffix}", args.seed, args.scale)
        metrics = run_set(name, root, scan_kw, args.jobs, with_cost=name == args.cost_set)
        report["sets"][name] = metrics
        print(set_markdown(metrics), "\n", flush=True)
    if args.fmnist_real:
        real = run_fmnist_real(args.fmnist_real, scan_kw, args.jobs)
        report["fmnist_real"] = real
        print(f"### Fashion-MNIST 60k/10k (real)\n\n{real['n_cross_pairs']} cross pairs; same-photo val "
              f"images (pixel L2 <= {NATURAL_L2:g}): pair found {real['same_photo_pair_found']} / "
              f"{real['n_same_photo']}, any pair {real['same_photo_val_with_any_pair']} / "
              f"{real['n_same_photo']}; scan {real['scan_wall_s']:.1f} s wall\n", flush=True)
    if args.big:
        big = run_big(args.data, args.seed, args.jobs, args.cli_arg)
        report["big"] = big
        print(f"### 48k 256-px split, whole CLI scan\n\nsplitaudit: {big['splitaudit']}; "
              f"{big['n_images']} images, exit {big['returncode']}, "
              f"{big['n_cross_pairs']} cross / {big['n_within_pairs']} within pairs; goal < "
              f"{big['goal_s']} s\n\n" + cost_table({k: (v["wall_s"], v["cpu_s"])
                                                     for k, v in big["costs"].items()}), flush=True)
        print("| pairs | decided by | reported | false (other photo, or no overlap) |\n|---|---|---|---|\n"
              + "".join(f"| {r['table']} | {r['decided_by']} | {r['pairs']} | {r['false']} |\n" for r in big["truth"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=_plain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
