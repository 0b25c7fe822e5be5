"""Calibration of the difficulty / drift checks on Fashion-MNIST.

    python benchmarks/bench_calibration.py [--data /work/data/fmnist] [--splits 20]
        [--cache /tmp/fmnist_fingerprints.pkl] [--target-drop 0.15] [--random-splits N]

1. Features: the project's 512-d descriptor and image properties from
   ``compute_fingerprints`` on the PNG tree (cached with ``--cache``); if
   ``splitaudit.fingerprints.descriptor`` does not exist, a 64-d PCA of the
   pixels from ``arrays.npz`` (and no properties).
2. ``--splits`` random splits: 50k of the 70k images, 40k train / 10k val at
   random. Every check runs; a non-pass verdict is a false alarm (for the
   difficulty check: a ``val_easier`` verdict).
3. ``--splits`` biased splits from one fixed 50k pool: difficulty is computed
   once with the out-of-fold probe on the pool, then val (10k) is drawn
   without replacement with weights ∝ exp(-β·difficulty), β tuned so val's
   mean difficulty is ``--target-drop`` (15 %) below a random val set. The
   difficulty check (which refits its own probe, with a different seed per
   split) must say ``val_easier``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from splitaudit import ImageSplit
from splitaudit.checks.base import AuditContext
from splitaudit.checks.difficulty import DifficultyCheck
from splitaudit.retrain.probes import difficulty_probe_loss, probe_difficulty
from splitaudit.checks.drift import EmbeddingDriftCheck, PropertyDriftCheck
from splitaudit.checks.labels import LabelDistributionCheck


def load_features(data: Path, cache: Path | None) -> tuple[pd.DataFrame, np.ndarray, str]:
    """(table with path/label/properties, features, feature name) for all 70k images."""
    if cache and cache.exists():
        with open(cache, "rb") as fh:
            return pickle.load(fh)
    if importlib.util.find_spec("splitaudit.fingerprints.descriptor"):
        from splitaudit.fingerprints import compute_fingerprints

        split = ImageSplit.from_folder(data)
        start = time.perf_counter()
        fp = compute_fingerprints(split, jobs=None)
        seconds = time.perf_counter() - start
        table = fp.table.copy()
        table["label"] = split.images["label"].to_numpy()
        table["orig_split"] = split.images["split"].to_numpy()
        out = (table, fp.descriptor, f"descriptor (compute_fingerprints fast mode, {seconds:.0f} s for 70k)")
    else:
        from sklearn.decomposition import PCA

        arrays = np.load(data / "arrays.npz")
        pixels = np.concatenate([arrays["x_train"], arrays["x_val"]]).reshape(70000, -1) / 255.0
        labels = np.concatenate([arrays["y_train"], arrays["y_val"]]).astype(str)
        table = pd.DataFrame({"path": [f"{i:05d}.png" for i in range(70000)], "label": labels, "ok": True})
        feats = PCA(64, svd_solver="randomized", random_state=0).fit_transform(pixels).astype(np.float32)
        out = (table, feats, "PCA-64 of pixels")
    if cache:
        with open(cache, "wb") as fh:
            pickle.dump(out, fh)
    return out


def make_context(table: pd.DataFrame, features: np.ndarray, rows: np.ndarray, is_val: np.ndarray,
                 seed: int, root: Path) -> AuditContext:
    """Context for the images ``rows`` (val where ``is_val``), aligned with the split order."""
    frame = pd.DataFrame({"path": table["path"].to_numpy()[rows],
                          "split": np.where(is_val, "val", "train"),
                          "label": table["label"].to_numpy()[rows]})
    split = ImageSplit.from_frame(frame, root=root)
    position = pd.Series(np.arange(len(rows)), index=frame["path"].to_numpy())
    order = rows[position.loc[split.images["path"].to_numpy()].to_numpy()]
    fp = SimpleNamespace(table=table.iloc[order].reset_index(drop=True), descriptor=features[order])
    context = AuditContext(split=split, fingerprints=fp, random_state=seed)
    return replace(context, probe_loss=difficulty_probe_loss(context))  # the difficulty probe, as scan fits it


def efraimidis_val(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Weighted sampling of k items without replacement (Efraimidis–Spirakis keys)."""
    keys = np.log(rng.random(len(weights))) / weights
    is_val = np.zeros(len(weights), bool)
    is_val[np.argpartition(-keys, k - 1)[:k]] = True
    return is_val


def tune_beta(difficulty: np.ndarray, k: int, target_drop: float, rng) -> float:
    """β such that weighted val has mean difficulty (1 - target_drop) × pool mean."""
    goal = (1 - target_drop) * difficulty.mean()
    scale = difficulty.std()
    low, high = 0.0, 5.0 / scale
    for _ in range(30):
        beta = (low + high) / 2
        drawn = np.mean([difficulty[efraimidis_val(np.exp(-beta * difficulty), k, rng)].mean()
                         for _ in range(5)])
        low, high = (beta, high) if drawn > goal else (low, beta)
    return (low + high) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("/work/data/fmnist"))
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--target-drop", type=float, default=0.15)
    parser.add_argument("--random-splits", type=int, default=None,
                        help="number of random splits (default: --splits; 0 to skip)")
    args = parser.parse_args()
    if not (args.data / ".complete").exists():
        sys.exit(f"{args.data} is not a complete Fashion-MNIST tree (run benchmarks/fmnist.py)")
    root = args.data
    start = time.perf_counter()
    table, features, feature_name = load_features(args.data, args.cache)
    print(f"features: {feature_name}; n={len(table)}, dim={features.shape[1]} "
          f"(loaded in {time.perf_counter() - start:.1f} s)")
    n_pool, n_val = 50_000, 10_000
    checks = [DifficultyCheck(), LabelDistributionCheck(), PropertyDriftCheck(), EmbeddingDriftCheck()]
    rows_out = []

    n_random = args.splits if args.random_splits is None else args.random_splits
    for i in range(n_random):  # ------------------------------------- random splits
        rng = np.random.default_rng(i)
        rows = np.sort(rng.choice(len(table), n_pool, replace=False))
        is_val = np.zeros(n_pool, bool)
        is_val[rng.choice(n_pool, n_val, replace=False)] = True
        context = make_context(table, features, rows, is_val, seed=i, root=root)
        for check in checks:
            t0 = time.perf_counter()
            res = check.run(context)
            rows_out.append({"kind": "random", "split": i, "check": check.name, "status": res.status,
                             "direction": res.numbers.get("direction", ""),
                             "stat": res.numbers.get("relative", res.numbers.get("auc", res.numbers.get("cramers_v"))),
                             "p": res.numbers.get("p_value"), "seconds": time.perf_counter() - t0})
            print(f"random {i:2d} {check.name:18s} {res.status:5s} {rows_out[-1]['seconds']:5.1f}s  {res.message}",
                  flush=True)

    rng = np.random.default_rng(1234)  # ------------------------------ biased splits
    pool = np.sort(rng.choice(len(table), n_pool, replace=False))
    t0 = time.perf_counter()
    difficulty = probe_difficulty(features[pool], labels=table["label"].to_numpy()[pool], random_state=999)
    probe_seconds = time.perf_counter() - t0
    beta = tune_beta(difficulty, n_val, args.target_drop, rng)
    achieved = []
    for i in range(args.splits):
        is_val = efraimidis_val(np.exp(-beta * difficulty), n_val, np.random.default_rng(100 + i))
        achieved.append(difficulty[is_val].mean() / difficulty.mean() - 1)
        context = make_context(table, features, pool, is_val, seed=100 + i, root=root)
        t0 = time.perf_counter()
        res = DifficultyCheck().run(context)
        rows_out.append({"kind": "biased", "split": i, "check": "difficulty", "status": res.status,
                         "direction": res.numbers["direction"], "stat": res.numbers["relative"],
                         "p": res.numbers["p_value"], "seconds": time.perf_counter() - t0})
        print(f"biased {i:2d} difficulty         {res.status:5s} {rows_out[-1]['seconds']:5.1f}s  {res.message}",
              flush=True)

    df = pd.DataFrame(rows_out)
    print(f"\nfeatures: {feature_name}")
    print(f"pool probe (once, 50k, 5-fold): {probe_seconds:.1f} s; beta={beta:.3f}; "
          f"selected val mean difficulty vs pool mean: {np.mean(achieved):+.1%} "
          f"(range {np.min(achieved):+.1%} to {np.max(achieved):+.1%})")
    summary = []
    for (kind, check), g in df.groupby(["kind", "check"], sort=False):
        flagged = (g["direction"] == "val_easier").sum() if check == "difficulty" else (g["status"] != "pass").sum()
        summary.append({"splits": kind, "check": check, "n": len(g),
                        "flagged": int(flagged), "non_pass": int((g["status"] != "pass").sum()),
                        "stat_mean": g["stat"].astype(float).mean(), "stat_min": g["stat"].astype(float).min(),
                        "stat_max": g["stat"].astype(float).max(),
                        "median_s": g["seconds"].median(), "max_s": g["seconds"].max()})
    summary = pd.DataFrame(summary)
    print("\nflagged = val_easier verdicts for difficulty, non-pass statuses otherwise;"
          " stat = relative difference (difficulty), AUC (embedding_drift), Cramér's V (labels)")
    print(summary.to_markdown(index=False, floatfmt=".3f") if _has_tabulate() else summary.to_string(index=False))
    print(f"\nload average at end: {os.getloadavg()}")


def _has_tabulate() -> bool:
    return importlib.util.find_spec("tabulate") is not None


if __name__ == "__main__":
    main()
