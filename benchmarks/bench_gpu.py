"""GPU check of the torch parts: embedding speed and agreement with the CPU, the CNN probe.

Run on a machine with CUDA (the project's own machines have none; the numbers in
``results_gpu.md`` came from a lent H100/H200)::

    python benchmarks/bench_gpu.py ARRAYS.npz [--out results.md]

``ARRAYS.npz`` holds ``x_train, y_train, x_val, y_val`` (uint8 Fashion-MNIST, as
written by ``benchmarks/fmnist.py``; a subset is enough). Everything is measured
in one run, CPU and GPU side by side:

1. ``embed_images`` images/s on files (decode + resize + forward) for input
   sizes 64/128/224 and fp32/fp16/bf16 on the GPU, fp32 on the CPU;
2. agreement of GPU embeddings with CPU fp32 ones: per-image cosine, top-1 and
   top-5 neighbour agreement (val queries against a train base), and whether
   ``find_duplicates`` with those embeddings reports the same pairs;
3. the CNN probe (``train_cnn_probe``): seconds per epoch and losses on CPU and GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

GPU = os.environ.get("BENCH_GPU_DEVICE", "cuda")  # "cpu" only for a smoke test of this script


def _prec(dev, prec):
    return None if dev == "cpu" else prec


def _write_pngs(x, folder: Path, prefix: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(x):
        p = folder / f"{prefix}{i:05d}.png"
        Image.fromarray(im).save(p)
        paths.append(str(p))
    return paths


def _timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def speed(paths, cpu_paths, sizes, lines, workers):
    from splitaudit.fingerprints.embeddings import embed_images

    lines += ["## 1. `embed_images` speed on files (decode + resize + forward + pooling)", "",
              f"{len(paths)} Fashion-MNIST PNGs on the GPU, {len(cpu_paths)} on the CPU; batch 256 on the GPU, "
              f"32 on the CPU; {workers} DataLoader workers on both; one warm-up call per configuration.", "",
              "| input px | device | precision | images | seconds | img/s |", "|---|---|---|---|---|---|"]
    for size in sizes:
        for dev, prec, ps, bs in [("cpu", "fp32", cpu_paths, 32), (GPU, "fp32", paths, 256),
                                  (GPU, "fp16", paths, 256), (GPU, "bf16", paths, 256)]:
            kw = dict(input_size=size, device=dev, batch_size=bs, num_workers=workers,
                      precision=_prec(dev, prec))
            embed_images(ps[:bs * 2], **kw)  # warm-up (cuDNN autotune, worker start)
            emb, sec = _timed(embed_images, ps, **kw)
            assert emb.ok.all()
            lines.append(f"| {size} | {dev} | {prec} | {len(ps)} | {sec:.2f} | {len(ps) / sec:,.0f} |")
            print(lines[-1], flush=True)
    lines.append("")


def agreement(val_paths, train_paths, lines, workers, size=64):
    from splitaudit.fingerprints.embeddings import embed_images

    ref = {}
    for dev, prec in [("cpu", None), ("cuda", "fp32"), ("cuda", "fp16"), ("cuda", "bf16")]:
        kw = dict(input_size=size, device=GPU if dev == "cuda" else dev, precision=_prec(
            GPU if dev == "cuda" else dev, prec), num_workers=workers,
                  batch_size=32 if dev == "cpu" else 256, flip=True)
        ref[(dev, prec)] = (embed_images(val_paths, **kw), embed_images(train_paths, **kw))
    v0, t0 = ref[("cpu", None)]
    s0 = v0.vectors @ t0.vectors.T
    top0 = np.argsort(-s0, 1)[:, :5]
    lines += [f"## 2. Agreement with CPU fp32 embeddings ({size} px, default model)", "",
              f"{len(val_paths)} val queries against {len(train_paths)} train images (Fashion-MNIST).", "",
              "| GPU precision | cosine to CPU: min | 1st percentile | median | top-1 neighbour same | "
              "top-5 overlap | max abs diff of query-base cosines |", "|---|---|---|---|---|---|---|"]
    for prec in ("fp32", "fp16", "bf16"):
        v, t = ref[("cuda", prec)]
        cos = np.concatenate([(v.vectors * v0.vectors).sum(1), (t.vectors * t0.vectors).sum(1)])
        s = v.vectors @ t.vectors.T
        top = np.argsort(-s, 1)[:, :5]
        same1 = float((top[:, 0] == top0[:, 0]).mean())
        over5 = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top, top0)]))
        lines.append(f"| {prec} | {cos.min():.5f} | {np.quantile(cos, 0.01):.5f} | {np.median(cos):.6f} | "
                     f"{same1:.3f} | {over5:.3f} | {np.abs(s - s0).max():.4f} |")
        print(lines[-1], flush=True)
    lines.append("")
    return ref


def duplicates(val_paths, train_paths, ref, lines, jobs):
    from splitaudit import ImageSplit
    from splitaudit.duplicates import find_duplicates
    from splitaudit.fingerprints import compute_fingerprints
    from splitaudit.fingerprints.embeddings import Embeddings

    import pandas as pd

    paths = val_paths + train_paths
    images = pd.DataFrame({"path": paths, "split": ["val"] * len(val_paths) + ["train"] * len(train_paths)})
    fps = compute_fingerprints(paths, jobs=jobs)
    lines += ["## 3. `find_duplicates` with CPU vs GPU embeddings (same fingerprints)", "",
              "| embeddings | cross pairs | within pairs | Jaccard of all pairs with CPU fp32 | seconds |",
              "|---|---|---|---|---|"]
    base = None
    for key in [("cpu", None), ("cuda", "fp32"), ("cuda", "fp16"), ("cuda", "bf16")]:
        v, t = ref[key]
        emb = Embeddings(np.concatenate([v.vectors, t.vectors]), np.concatenate([v.ok, t.ok]),
                         tuple(v.reasons) + tuple(t.reasons), v.model_id, v.input_size, tuple(paths),
                         np.concatenate([v.flipped, t.flipped]))
        res, sec = _timed(find_duplicates, fps, images, embeddings=emb)
        found = (set(zip(res.pairs["val_index"], res.pairs["train_index"]))
                 | set(zip(res.within["index_a"] + 10**9, res.within["index_b"])))
        if base is None:
            base = found
        same = len(found & base) / len(found | base) if found | base else 1.0
        lines.append(f"| {key[0]} {key[1] or 'fp32'} | {len(res.pairs)} | {len(res.within)} | "
                     f"{same:.3f} | {sec:.1f} |")
        print(lines[-1], flush=True)
    lines.append("")


def cnn(z, lines, n_train, n_val, epochs, threads):
    import torch

    from splitaudit.retrain.cnn import train_cnn_probe

    xt, yt = z["x_train"][:n_train, None], z["y_train"][:n_train]
    xv, yv = z["x_val"][:n_val, None], z["y_val"][:n_val]
    lines += [f"## 4. CNN probe (`train_cnn_probe`), {n_train} train / {n_val} val, {epochs} epochs, "
              f"augment on, dropout 0", "",
              "| device | seconds | s/epoch | final train_loss | final train_loss_eval | final val_loss |",
              "|---|---|---|---|---|---|"]
    out = {}
    for dev in ("cpu", "cuda"):
        kw = dict(n_classes=10, epochs=epochs, augment=True, random_state=0, device=GPU if dev == "cuda" else dev,
                  threads=threads if dev == "cpu" else None)
        train_cnn_probe(xt[:512], yt[:512], xv[:128], yv[:128], **{**kw, "epochs": 1})  # warm-up
        hist, sec = _timed(train_cnn_probe, xt, yt, xv, yv, **kw)
        out[dev] = hist
        last = hist.iloc[-1]
        lines.append(f"| {dev} | {sec:.1f} | {sec / epochs:.2f} | {last.train_loss:.4f} | "
                     f"{last.train_loss_eval:.4f} | {last.val_loss:.4f} |")
        print(lines[-1], flush=True)
    diff = np.abs(out["cpu"][["train_loss", "train_loss_eval", "val_loss"]].to_numpy()
                  - out["cuda"][["train_loss", "train_loss_eval", "val_loss"]].to_numpy()).max()
    lines += ["", f"Largest |CPU − GPU| loss difference over all epochs: {diff:.4f} "
              f"(torch {torch.__version__}; cuDNN TF32 convolutions {torch.backends.cudnn.allow_tf32}).", ""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("arrays")
    ap.add_argument("--out", default=None)
    ap.add_argument("--n-speed", type=int, default=8192)
    ap.add_argument("--n-cpu", type=int, default=1024)
    ap.add_argument("--n-val", type=int, default=2000)
    ap.add_argument("--n-train", type=int, default=8000)
    ap.add_argument("--cnn-train", type=int, default=20000)
    ap.add_argument("--cnn-epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--parts", default="speed,agree,cnn")
    args = ap.parse_args(argv)
    import torch

    if GPU == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: this benchmark compares GPU with CPU")
    z = np.load(args.arrays)
    cores = os.cpu_count()
    lines = ["# GPU check", "",
             f"Device: {torch.cuda.get_device_name(0) if GPU == 'cuda' else GPU}; torch {torch.__version__}; {cores} CPU cores "
             f"(the CPU rows use torch's default threads); Python {sys.version.split()[0]}.", ""]
    print(lines[2], flush=True)
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "speed" in parts:
            paths = _write_pngs(z["x_train"][: args.n_speed], tmp / "speed", "t")
            speed(paths, paths[: args.n_cpu], (64, 128, 224), lines, args.workers)
        if "agree" in parts:
            val = _write_pngs(z["x_val"][: args.n_val], tmp / "val", "v")
            train = _write_pngs(z["x_train"][-args.n_train:], tmp / "train", "t")
            ref = agreement(val, train, lines, args.workers)
            duplicates(val, train, ref, lines, jobs=min(8, cores))
        if "cnn" in parts:
            cnn(z, lines, args.cnn_train, len(z["x_val"]), args.cnn_epochs, threads=None)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
