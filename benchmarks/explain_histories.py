"""Explain the committed CNN histories with evidence from the real tool.

Rebuilds the three 10k/2k Fashion-MNIST subsets that ``bench_kfold.py`` trained
the CNN probe on (same seeds), scans each as a manifest split with splitaudit,
runs the linear-probe k-fold, explains the history, and writes the evidence to
``examples/histories/evidence/<name>/{summary.json,kfold.json,explain.json}``
(``tests/test_histories.py`` re-explains from these files).

    python benchmarks/explain_histories.py --data /work/data/fmnist
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

import splitaudit
from splitaudit.audit import kfold_inputs
from splitaudit.retrain import kfold

import fmnist


def subsets(data: Path, n_train: int = 10_000, n_val: int = 2_000) -> dict[str, pd.DataFrame]:
    arrays = np.load(data / "arrays.npz")
    pixels = np.concatenate([arrays["x_train"], arrays["x_val"]])
    labels = np.concatenate([arrays["y_train"], arrays["y_val"]]).astype(np.int64)
    n_full = len(arrays["x_train"])
    # the same draws as bench_kfold.py
    flat = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    features = PCA(512, svd_solver="randomized", random_state=0).fit_transform(flat).astype(np.float32)
    rng = np.random.default_rng(0)
    train_idx = rng.choice(n_full, n_train, replace=False)
    val_pool = np.arange(n_full, len(labels))
    random_val = rng.choice(val_pool, n_val, replace=False)
    probe = LogisticRegression(max_iter=300).fit(features[:n_full, :64], labels[:n_full])
    proba = probe.predict_proba(features[val_pool, :64])
    loss = -np.log(np.maximum(proba[np.arange(len(val_pool)), labels[val_pool]], 1e-12))
    easy_val = val_pool[np.argsort(loss)[:n_val]]

    def frame(val_idx: np.ndarray) -> pd.DataFrame:
        rows = []
        for split, idx in (("train", train_idx), ("val", val_idx)):
            for i in idx:
                folder, j = ("train", i) if i < n_full else ("val", i - n_full)
                path = fmnist.image_path(data, folder, int(labels[i]), int(j)).relative_to(data)
                rows.append({"path": path.as_posix(), "split": split, "label": fmnist.CLASSES[labels[i]]})
        return pd.DataFrame(rows)

    return {"no_dropout": frame(random_val), "strong_dropout": frame(random_val), "easier_val": frame(easy_val)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/data/fmnist")
    parser.add_argument("--histories", default="examples/histories")
    args = parser.parse_args()
    data, hist_dir = Path(args.data), Path(args.histories)
    for name, manifest in subsets(data).items():
        t0 = time.perf_counter()
        result = splitaudit.scan(data, manifest=manifest, cache=True, embed="none")
        images, features, clusters, _ = kfold_inputs(result)
        kf = kfold(images, features=features, clusters=clusters, k=5, epochs=10)
        difficulty = result.finding("difficulty")
        expl = splitaudit.explain(hist_dir / f"{name}.csv", scan=result.summary(), kfold=kf.to_dict(),
                                  difficulty=difficulty.per_image if difficulty is not None else None)
        out = hist_dir / "evidence" / name
        out.mkdir(parents=True, exist_ok=True)
        summary = result.summary()
        summary["unreadable"] = summary["unreadable"][:20]
        summary.pop("root", None)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        kdict = kf.to_dict()
        for run in [kdict["original"], *kdict["folds"]]:
            run.pop("history", None)
        (out / "kfold.json").write_text(json.dumps(kdict, indent=1) + "\n")
        (out / "explain.json").write_text(expl.to_json() + "\n")
        top = expl.causes[0]
        print(f"{name}: {time.perf_counter() - t0:.0f} s; top cause {top['cause']} ({top['score']:.2f}); "
              f"difficulty {difficulty.status if difficulty else None} "
              f"{(difficulty.numbers.get('direction') if difficulty else '')}; {expl.summary}")


if __name__ == "__main__":
    main()
