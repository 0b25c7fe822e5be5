"""Benchmark the k-fold retraining harness on Fashion-MNIST (70k images).

    python benchmarks/bench_kfold.py [--data /work/data/fmnist] [--histories examples/histories]

Reads ``DATA/arrays.npz`` (written by ``benchmarks/fmnist.py``) and prints:

1. the cost of the cached features (PCA-512 of the pixels, computed once);
2. the linear-probe k-fold (k=5, 10 epochs) on all 70k images: wall time, per-run losses, verdict;
3. the CNN probe's time per epoch on a 10k-train / 2k-val subset;
4. CNN histories in three settings (no dropout; dropout 0.6; an easier validation set made of
   the 2k val-pool images a logistic probe finds easiest), written as Keras CSVLogger files
   (``epoch,loss,val_loss,loss_eval``) to HISTORIES/{no_dropout,strong_dropout,easier_val}.csv;
5. the linear-probe verdict on the 12k subset for the random and the easier-val split.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from splitaudit.retrain import kfold
from splitaudit.retrain.cnn import train_cnn_probe


def frame_for(labels: np.ndarray, is_val: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"path": [f"img{i:05d}.png" for i in range(len(labels))],
                         "split": np.where(is_val, "val", "train"), "label": labels.astype(str)})


def markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A Markdown table without the optional ``tabulate`` dependency."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def table(result) -> str:
    return markdown(result.to_frame()[["run", "n_train", "n_val", "train_loss", "train_loss_eval",
                                       "val_loss", "gap", "gap_eval"]])


def to_keras_csv(history: pd.DataFrame, path: Path) -> None:
    out = pd.DataFrame({"epoch": history["epoch"] - 1, "loss": history["train_loss"],
                        "val_loss": history["val_loss"], "loss_eval": history["train_loss_eval"]})
    out.to_csv(path, index=False, float_format="%.6f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/data/fmnist")
    parser.add_argument("--histories", default="examples/histories")
    parser.add_argument("--cnn-epochs", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=2_000)
    args = parser.parse_args()
    arrays = np.load(Path(args.data) / "arrays.npz")
    pixels = np.concatenate([arrays["x_train"], arrays["x_val"]])
    labels = np.concatenate([arrays["y_train"], arrays["y_val"]]).astype(np.int64)
    n_train_full = len(arrays["x_train"])
    is_val = np.arange(len(labels)) >= n_train_full
    print(f"# Fashion-MNIST: {len(labels)} images ({n_train_full} train / {int(is_val.sum())} val), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")

    # 1. cached features
    t0, c0 = time.perf_counter(), time.process_time()
    flat = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    features = PCA(512, svd_solver="randomized", random_state=0).fit_transform(flat).astype(np.float32)
    t_pca, c_pca = time.perf_counter() - t0, time.process_time() - c0
    print(f"## 1. Cached features: PCA-512 of the pixels: {t_pca:.1f} s wall, {c_pca:.1f} CPU-s "
          "(computed once, not part of k-fold)\n")

    # 2. linear-probe k-fold on all 70k
    t0, c0 = time.perf_counter(), time.process_time()
    result = kfold(frame_for(labels, is_val), features=features, k=5, epochs=10, random_state=0)
    t_linear, c_linear = time.perf_counter() - t0, time.process_time() - c0
    print(f"## 2. Linear-probe k-fold, 70k × 512, k=5, 10 epochs, 6 trainings: {t_linear:.1f} s wall, "
          f"{c_linear:.1f} CPU-s ({t_linear / 6:.1f} s wall per training; load average "
          f"{os.getloadavg()[0]:.1f})\n")
    print(table(result))
    print(f"\nverdict: persists={result.verdict.persists}; {result.verdict.message}\n")

    # 3./4. CNN histories on a subset
    rng = np.random.default_rng(0)
    train_idx = rng.choice(n_train_full, args.n_train, replace=False)
    val_pool = np.arange(n_train_full, len(labels))
    random_val = rng.choice(val_pool, args.n_val, replace=False)
    # an easier validation set: the val-pool images a logistic probe (64 PCA components,
    # fitted on the 60k training images) gives the lowest loss
    t0 = time.perf_counter()
    probe = LogisticRegression(max_iter=300).fit(features[:n_train_full, :64], labels[:n_train_full])
    proba = probe.predict_proba(features[val_pool, :64])
    image_loss = -np.log(np.maximum(proba[np.arange(len(val_pool)), labels[val_pool]], 1e-12))
    easy_val = val_pool[np.argsort(image_loss)[: args.n_val]]
    t_probe = time.perf_counter() - t0
    x = pixels[:, None]
    settings = {
        "no_dropout": dict(val=random_val, dropout=0.0),
        "strong_dropout": dict(val=random_val, dropout=0.6),
        "easier_val": dict(val=easy_val, dropout=0.0),
    }
    out_dir = Path(args.histories)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"## 3./4. CNN probe (3 conv layers, width 16, 28×28 gray), {args.n_train} train / "
          f"{args.n_val} val, {args.cnn_epochs} epochs, batch 128, Adam 1e-3, seed 0\n")
    print(f"(easier-val selection probe: {t_probe:.1f} s; mean probe loss of the chosen val images "
          f"{image_loss[np.argsort(image_loss)[:args.n_val]].mean():.3f} vs pool "
          f"{image_loss.mean():.3f})\n")
    rows = []
    for name, cfg in settings.items():
        t0, c0 = time.perf_counter(), time.process_time()
        history = train_cnn_probe(x[train_idx], labels[train_idx], x[cfg["val"]], labels[cfg["val"]],
                                  n_classes=10, epochs=args.cnn_epochs, dropout=cfg["dropout"], random_state=0)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        to_keras_csv(history, out_dir / f"{name}.csv")
        last = history.iloc[-1]
        rows.append({"setting": name, "dropout": cfg["dropout"], "s/epoch": seconds / args.cnn_epochs,
                     "CPU-s/epoch": cpu / args.cnn_epochs,
                     "loss (running)": last["train_loss"], "loss_eval": last["train_loss_eval"],
                     "val_loss": last["val_loss"], "gap": last["val_loss"] - last["train_loss"],
                     "gap_eval": last["val_loss"] - last["train_loss_eval"]})
    print(markdown(pd.DataFrame(rows), 3))
    print(f"\nhistories written to {out_dir}/{{{','.join(settings)}}}.csv\n")

    # 5. linear-probe verdict on the 12k subsets
    print("## 5. Linear-probe k-fold verdict on the 12k subsets (k=5, 10 epochs)\n")
    for name in ("no_dropout", "easier_val"):
        idx = np.concatenate([train_idx, settings[name]["val"]])
        sub_val = np.arange(len(idx)) >= len(train_idx)
        t0 = time.perf_counter()
        res = kfold(frame_for(labels[idx], sub_val), features=features[idx], k=5, epochs=10)
        v = res.verdict
        print(f"- {'random split' if name == 'no_dropout' else 'easier val'} ({time.perf_counter() - t0:.1f} s): "
              f"original gap {res.original.gap:+.4f}; persists={v.persists}; {v.message}")


if __name__ == "__main__":
    main()
