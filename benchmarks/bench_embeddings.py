"""Benchmark: embedding speed on CPU, and hash-only vs hash+embedding near-duplicate detection.

Run::

    /work/venv/bin/python benchmarks/bench_embeddings.py            # both parts
    /work/venv/bin/python benchmarks/bench_embeddings.py --part speed
    /work/venv/bin/python benchmarks/bench_embeddings.py --part quality --originals 150

Part "speed": images/s of the default model (EfficientNet-Lite0) on files, at
several input sizes and 1/2 threads.

Part "quality": Fashion-MNIST val images (``/work/data/fmnist/arrays.npz``) get
12 kinds of edit; the reference ("train") set holds the originals plus other
Fashion-MNIST images as distractors; queries are the edited copies plus an
equal pool of non-copies (other Fashion-MNIST images) for precision. Thresholds
are chosen on one half of the originals (best recall at precision >= 0.99 there)
and reported on the other half.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from splitaudit.fingerprints.embeddings import embed_images
from splitaudit.neighbors import cosine_topk

ARRAYS = Path("/work/data/fmnist/arrays.npz")


# ----------------------------------------------------------------- edits
def _crop80(im):
    w, h = im.size
    return im.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((w, h), Image.BILINEAR)


def _overlay(im):
    out = im.copy()
    ImageDraw.Draw(out).text((out.width - 13, out.height - 11), "wm", fill=200)
    return out


def _noise(im, rng):
    arr = np.asarray(im, np.float32) + rng.normal(0, 10, (im.height, im.width))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _jpeg(im):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=30)
    return Image.open(io.BytesIO(buf.getvalue())).convert("L")


EDITS = {
    "crop80": lambda im, rng: _crop80(im),
    "rotate10": lambda im, rng: im.rotate(10, resample=Image.BILINEAR),
    "flip": lambda im, rng: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "overlay": lambda im, rng: _overlay(im),
    "brightness": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.3),
    "contrast": lambda im, rng: ImageEnhance.Contrast(im).enhance(0.6),
    "blur": lambda im, rng: im.filter(ImageFilter.GaussianBlur(0.8)),
    "noise": _noise,
    "jpeg30": lambda im, rng: _jpeg(im),
    "resize2x": lambda im, rng: im.resize((im.width * 2, im.height * 2), Image.BICUBIC),
    "translate": lambda im, rng: im.transform(im.size, Image.AFFINE, (1, 0, -3, 0, 1, -2)),
    "rot5+bright": lambda im, rng: ImageEnhance.Brightness(im.rotate(5, resample=Image.BILINEAR)).enhance(1.15),
}


# ----------------------------------------------------------------- speed
def bench_speed(x_val: np.ndarray, folder: Path, n_images: int, sizes, threads_list) -> list[dict]:
    paths = []
    for i in range(n_images):
        path = folder / f"speed_{i}.png"
        Image.fromarray(x_val[i]).convert("RGB").resize((224, 224), Image.BICUBIC).save(path)
        paths.append(path)
    rows = []
    for size in sizes:
        for threads in threads_list:
            embed_images(paths[:4], input_size=size, threads=threads)  # warm-up
            n = n_images if size <= 128 else max(16, n_images // 3)
            start, cpu0 = time.perf_counter(), time.process_time()
            embed_images(paths[:n], input_size=size, threads=threads, batch_size=32)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
            rows.append(dict(size=size, threads=threads, n=n, img_s=n / wall, cpu_ms=1000 * cpu / n))
    return rows


# ----------------------------------------------------------------- quality
def _hashes(images):
    out = np.zeros((len(images), 2), np.uint64)
    for i, im in enumerate(images):
        out[i, 0] = int(str(imagehash.phash(im)), 16)
        out[i, 1] = int(str(imagehash.dhash(im)), 16)
    return out


def _hash_nearest(query_h, ref_h, ref_h_flip):
    """Per query: smallest max(pHash, dHash) Hamming distance over refs and mirrored refs."""
    best_d = np.full(len(query_h), 999, np.int64)
    best_i = np.zeros(len(query_h), np.int64)
    for table in (ref_h, ref_h_flip):
        for start in range(0, len(query_h), 256):
            q = query_h[start : start + 256]
            dist = np.maximum(np.bitwise_count(q[:, None, 0] ^ table[None, :, 0]),
                              np.bitwise_count(q[:, None, 1] ^ table[None, :, 1])).astype(np.int64)
            i = dist.argmin(1)
            d = dist[np.arange(len(q)), i]
            better = d < best_d[start : start + 256]
            best_d[start : start + 256][better] = d[better]
            best_i[start : start + 256][better] = i[better]
    return best_d, best_i


def _emb_nearest(query_v, ref_v, ref_v_flip):
    s1, i1 = cosine_topk(query_v, ref_v, 1)
    s2, i2 = cosine_topk(query_v, ref_v_flip, 1)
    use2 = s2[:, 0] > s1[:, 0]
    return np.where(use2, s2[:, 0], s1[:, 0]), np.where(use2, i2[:, 0], i1[:, 0])


def _score(pred_ref, detected, truth):
    """truth: reference row of each query's original, -1 for non-copies."""
    is_copy = truth >= 0
    tp = detected & is_copy & (pred_ref == truth)
    recall = tp.sum() / max(1, is_copy.sum())
    precision = tp.sum() / max(1, detected.sum())
    return recall, precision


def _decide(method, th, te, hd, hi, es, ei):
    if method == "hash":
        return hd <= th, hi
    if method == "embedding":
        return es >= te, ei
    # hash first (cheap, exact on re-encodes); the embedding catches the geometric edits
    by_hash = hd <= th
    return by_hash | (es >= te), np.where(by_hash, hi, ei)


def _calibrate(method, hd, hi, es, ei, truth, min_precision=0.99):
    th_grid = range(0, 25) if method != "embedding" else [None]
    te_grid = np.round(np.arange(0.50, 0.996, 0.005), 3) if method != "hash" else [None]
    best = (-1.0, 0.0, None, None)
    for th in th_grid:
        for te in te_grid:
            det, ref = _decide(method, th, te, hd, hi, es, ei)
            rec, prec = _score(ref, det, truth)
            if prec >= min_precision and rec > best[0]:
                best = (rec, prec, th, te)
    return best


def bench_quality(x_train, x_val, folder: Path, n_originals: int, n_distractors: int, input_size, seed=0):
    rng = np.random.default_rng(seed)
    val_idx = rng.permutation(len(x_val))
    orig_idx = val_idx[:n_originals]
    distractor_idx = val_idx[n_originals : n_originals + n_distractors]
    n_queries = n_originals * len(EDITS)
    negative_idx = rng.choice(len(x_train), n_queries, replace=False)

    ref_images = [Image.fromarray(x_val[i]) for i in np.concatenate([orig_idx, distractor_idx])]
    queries, truth, kinds = [], [], []
    for row, i in enumerate(orig_idx):
        for name, edit in EDITS.items():
            queries.append(edit(Image.fromarray(x_val[i]), rng))
            truth.append(row)
            kinds.append(name)
    queries += [Image.fromarray(x_train[i]) for i in negative_idx]
    truth = np.array(truth + [-1] * len(negative_idx))
    kinds = np.array(kinds + ["non-copy"] * len(negative_idx))

    def save(images, prefix):
        paths = []
        for i, im in enumerate(images):
            path = folder / f"{prefix}_{i}.png"
            im.save(path)
            paths.append(path)
        return paths

    ref_paths, query_paths = save(ref_images, "ref"), save(queries, "query")
    t0 = time.perf_counter()
    ref_h = _hashes(ref_images)
    ref_hf = _hashes([im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in ref_images])
    query_h = _hashes([Image.open(p) for p in query_paths])
    t_hash = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_e = embed_images(ref_paths, input_size=input_size, flip=True, threads=1)
    query_e = embed_images(query_paths, input_size=input_size, threads=1)
    t_emb = time.perf_counter() - t0
    # centre on the reference mean: all Fashion-MNIST embeddings share a large common component
    mean = ref_e.vectors.mean(0)
    hd, hi = _hash_nearest(query_h, ref_h, ref_hf)
    results = {}
    for centred in (False, True):
        shift = mean if centred else 0.0
        es, ei = _emb_nearest(query_e.vectors - shift, ref_e.vectors - shift, ref_e.flipped - shift)
        results[centred] = (es, ei)

    calib = ((truth >= 0) & (truth < n_originals // 2)) | ((truth < 0) & (np.arange(len(truth)) % 2 == 0))
    test = ~calib
    rows = []
    for label, method, centred in [("hash only (pHash+dHash, flip-aware)", "hash", False),
                                   ("embedding only (raw cosine)", "embedding", False),
                                   ("embedding only (centred cosine)", "embedding", True),
                                   ("hash + embedding (raw)", "both", False),
                                   ("hash + embedding (centred)", "both", True)]:
        es, ei = results[centred]
        _, _, th, te = _calibrate(method, hd[calib], hi[calib], es[calib], ei[calib], truth[calib])
        det, ref = _decide(method, th, te, hd, hi, es, ei)
        rec, prec = _score(ref[test], det[test], truth[test])
        per_kind = {}
        for kind in EDITS:
            m = test & (kinds == kind)
            per_kind[kind] = float((det[m] & (ref[m] == truth[m])).mean())
        rows.append(dict(method=label, th=th, te=te, recall=rec, precision=prec, per_kind=per_kind,
                         fp_noncopy=int((det & test & (truth < 0)).sum())))
    info = dict(n_refs=len(ref_images), n_copies=int((truth >= 0).sum()), n_noncopies=int((truth < 0).sum()),
                n_test_copies=int((test & (truth >= 0)).sum()), n_test_noncopies=int((test & (truth < 0)).sum()),
                t_hash=t_hash, t_emb=t_emb, n_embedded=len(ref_paths) * 2 + len(query_paths),
                input_size=ref_e.input_size, model_id=ref_e.model_id)
    return rows, info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["speed", "quality", "all"], default="all")
    parser.add_argument("--speed-images", type=int, default=64)
    parser.add_argument("--originals", type=int, default=150)
    parser.add_argument("--distractors", type=int, default=1500)
    parser.add_argument("--input-size", type=int, default=None)
    args = parser.parse_args(argv)
    if not ARRAYS.is_file():
        print(f"missing {ARRAYS}; run benchmarks/fmnist.py first", file=sys.stderr)
        return 1
    data = np.load(ARRAYS)
    x_train, x_val = data["x_train"], data["x_val"]
    print(f"# torch threads available: {os.cpu_count()} cores; load avg {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.part in ("speed", "all"):
            rows = bench_speed(x_val, folder, args.speed_images, (32, 64, 128, 224), (1, 2))
            print("\n## Speed: EfficientNet-Lite0 on PNG files, CPU, batch 32\n")
            print("| input px | threads | images | img/s (wall) | CPU ms/img |")
            print("|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['size']} | {r['threads']} | {r['n']} | {r['img_s']:.1f} | {r['cpu_ms']:.1f} |")
        if args.part in ("quality", "all"):
            rows, info = bench_quality(x_train, x_val, folder, args.originals, args.distractors, args.input_size)
            print(f"\n## Near-duplicate detection on Fashion-MNIST (model {info['model_id']}, "
                  f"input {info['input_size']} px)\n")
            print(f"references {info['n_refs']} ({args.originals} originals + {args.distractors} distractors); "
                  f"queries {info['n_copies']} copies ({len(EDITS)} edits) + {info['n_noncopies']} non-copies; "
                  f"thresholds chosen on half, scored on the other half "
                  f"({info['n_test_copies']} copies, {info['n_test_noncopies']} non-copies). "
                  f"hashing {info['t_hash']:.1f} s, embedding {info['n_embedded']} forwards {info['t_emb']:.1f} s\n")
            print("| method | hash radius | cosine | recall | precision | false hits on non-copies |")
            print("|---|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['method']} | {r['th']} | {r['te']} | {r['recall']:.3f} | {r['precision']:.3f} "
                      f"| {r['fp_noncopy']} |")
            print("\nRecall per edit (test half):\n")
            print("| edit | " + " | ".join(r["method"] for r in rows) + " |")
            print("|---" * (len(rows) + 1) + "|")
            for kind in EDITS:
                print(f"| {kind} | " + " | ".join(f"{r['per_kind'][kind]:.2f}" for r in rows) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
