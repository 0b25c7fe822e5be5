"""Benchmark: embedding speed on CPU, and hash-only vs hash+embedding near-duplicate detection.

Run::

    /work/venv/bin/python benchmarks/bench_embeddings.py            # both parts
    /work/venv/bin/python benchmarks/bench_embeddings.py --part speed
    /work/venv/bin/python benchmarks/bench_embeddings.py --part quality --originals 150
    /work/venv/bin/python benchmarks/bench_embeddings.py --part quality --tune-precision 0.98

Part "speed": images/s of the default model (EfficientNet-Lite0) on files, at
several input sizes and 1/2 threads.

Part "quality": Fashion-MNIST val images (``/work/data/fmnist/arrays.npz``) get
12 kinds of edit; the reference ("train") set holds the originals plus other
Fashion-MNIST images as distractors; queries are the edited copies plus an
equal pool of non-copies (other Fashion-MNIST images) for precision. Thresholds
are chosen on one half of the originals (best recall at precision >= 0.99 there,
or ``--tune-precision``) and reported on the other half. Methods (10)-(12)
combine both verifiers: a union of thresholds, and a logistic model / gradient
boosting on per-pair features (both verifiers' scores, embedding cosines, hash
distance, margins over the query's other candidates), fitted on the tuning
half only (out-of-fold scores there for the thresholds). ``BENCH_DUMP=file.npz``
saves the raw arrays. Method (9) is the library rule of
``find_duplicates(geometric=True)`` (max of the two scores >= 0.5, untuned).

The learned verifier these numbers once led to was removed once the keypoint
path became the default (``benchmarks/results_copies.md``: on the photo set it
found 0.912 of copies at precision 0.891, the default 0.900 at 1.000, 28x slower).
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

from splitaudit.duplicates.geometric import verify_geometric
from splitaudit.duplicates.verify import align_pairs
from splitaudit.fingerprints.embeddings import embed_images
from splitaudit.search.cosine import cosine_range, cosine_topk, l2_normalize

ARRAYS = Path("/work/data/fmnist/arrays.npz")


# ----------------------------------------------------------------- edits
def _crop80(im, rng):
    w, h = im.size  # about the central 80% of each side (75-85%, off-centre by up to 1 px), scaled back
    keep = rng.uniform(0.75, 0.85)
    x0, y0 = (1 - keep) / 2 * w + rng.uniform(-1, 1), (1 - keep) / 2 * h + rng.uniform(-1, 1)
    return im.resize((w, h), Image.BILINEAR, box=(x0, y0, x0 + keep * w, y0 + keep * h))


def _rotate(im, rng, low, high):
    return im.rotate(rng.choice([-1, 1]) * rng.uniform(low, high), resample=Image.BILINEAR)


def _translate(im, rng):
    dx, dy = rng.choice([-4, -3, -2, 2, 3, 4], 2)
    return im.transform(im.size, Image.AFFINE, (1, 0, dx, 0, 1, dy))


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
    "crop80": _crop80,
    "rotate10": lambda im, rng: _rotate(im, rng, 8, 12),
    "flip": lambda im, rng: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "overlay": lambda im, rng: _overlay(im),
    "brightness": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.3),
    "contrast": lambda im, rng: ImageEnhance.Contrast(im).enhance(0.6),
    "blur": lambda im, rng: im.filter(ImageFilter.GaussianBlur(0.8)),
    "noise": _noise,
    "jpeg30": lambda im, rng: _jpeg(im),
    "resize2x": lambda im, rng: im.resize((im.width * 2, im.height * 2), Image.BICUBIC),
    "translate": _translate,
    "rot5+bright": lambda im, rng: ImageEnhance.Brightness(_rotate(im, rng, 3, 7)).enhance(1.15),
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


# ----------------------------------------------------------------- search
def bench_search(n_query=4000, n_base=16000, dim=512, k=5, seed=0) -> list[dict]:
    """cosine_topk / cosine_range backends against a plain matmul + argpartition."""
    rng = np.random.default_rng(seed)
    base = l2_normalize(rng.normal(size=(n_base, dim)).astype(np.float32))
    queries = l2_normalize(rng.normal(size=(n_query, dim)).astype(np.float32))
    queries[:100] = l2_normalize(base[:100] + 0.02 * rng.normal(size=(100, dim)).astype(np.float32))
    rows = []
    start = time.perf_counter()
    sims = queries @ base.T
    ref_idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    rows.append(dict(call="plain matmul + argpartition (full Q x B matrix)", seconds=time.perf_counter() - start,
                     agree=1.0))
    del sims
    for backend in ("numpy", "faiss", "hnsw"):
        start = time.perf_counter()
        _, idx = cosine_topk(queries, base, k, backend=backend)
        seconds = time.perf_counter() - start
        agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(idx.tolist(), ref_idx.tolist())])
        rows.append(dict(call=f"cosine_topk(k={k}, backend={backend!r})", seconds=seconds, agree=agree))
    for backend in ("numpy", "faiss"):
        start = time.perf_counter()
        qi, _, _ = cosine_range(queries, base, 0.9, backend=backend)
        rows.append(dict(call=f"cosine_range(0.9, backend={backend!r}) -> {len(qi)} pairs",
                         seconds=time.perf_counter() - start, agree=float("nan")))
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


def _emb_scores(query_v, ref_v, ref_v_flip, k=11):
    """Per query: best reference (mirrors included), its cosine, and a normalised score.

    The normalised score subtracts the mean cosine of neighbours 3..k: a query
    in a crowded region (many look-alikes) needs a clearer winner.
    """
    n_ref = len(ref_v)
    sims, idx = cosine_topk(query_v, np.vstack([ref_v, ref_v_flip]), k)
    return idx[:, 0] % n_ref, sims[:, 0], sims[:, 0] - sims[:, 2:k].mean(1), idx % n_ref


# --------------------------------------------------------- verification
_WARPS = [(flip, rot, zoom) for flip in (0, 1) for rot in (-10, -5, 0, 5, 10) for zoom in (1.0, 1.12, 1.25)]
_THUMB, _MAX_SHIFT = 28, 4  # Fashion-MNIST native size: integer shifts stay integer


def _warp(im, flip, rot, zoom):
    if flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if zoom != 1.0:
        side = im.width / zoom
        off = (im.width - side) / 2
        im = im.resize(im.size, Image.BILINEAR, box=(off, off, off + side, off + side))
    if rot:
        im = im.rotate(rot, resample=Image.BILINEAR)
    return np.asarray(im, np.float32)


def _standardise(x):
    x = x - x.mean((-2, -1), keepdims=True)
    return x / np.maximum(np.sqrt((x * x).sum((-2, -1), keepdims=True)), 1e-6)


def _gray_thumbs(images):
    return [im.convert("L").resize((_THUMB, _THUMB), Image.BILINEAR) for im in images]


def aligned_correlation(query_thumbs, ref_thumbs, pairs_q, pairs_r):
    """Best correlation of each (query, reference) pair over mirror x rotation (+-10 deg)
    x zoom (1, 1.12, 1.25) of the reference and circular shifts up to +-4 px, on 28x28
    thumbnails (FFT; circular because Fashion-MNIST backgrounds are black at every border)."""
    size = _THUMB
    ref_f = np.fft.rfft2(_standardise(np.stack([[_warp(im, *w) for w in _WARPS] for im in ref_thumbs])),
                         s=(size, size))
    query_f = np.fft.rfft2(_standardise(np.stack([np.asarray(im, np.float32) for im in query_thumbs])),
                           s=(size, size))
    window = np.r_[0 : _MAX_SHIFT + 1, size - _MAX_SHIFT : size]
    out = np.empty(len(pairs_q), np.float32)
    for start in range(0, len(pairs_q), 256):
        q, r = pairs_q[start : start + 256], pairs_r[start : start + 256]
        corr = np.fft.irfft2(np.conj(ref_f[r]) * query_f[q][:, None], s=(size, size))
        out[start : start + 256] = corr[:, :, window][:, :, :, window].reshape(len(q), -1).max(1)
    return out


def geometric_verification(queries, ref_images, hash_nearest, variants, k_grid=3, k_head=1):
    """Best :func:`verify_geometric` score per query over its candidates (32-px thumbnails)."""
    thumb = lambda ims: np.stack([np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR)) for im in ims])
    thumbs = np.concatenate([thumb(ref_images), thumb(queries)])
    n_ref = len(ref_images)
    cands = np.sort(np.concatenate([hash_nearest[:, None], variants["_blocks.8, grid2"][3][:, :k_grid],
                                    variants["head, avg"][3][:, :k_head]], 1), 1)
    fresh = np.concatenate([np.ones((len(cands), 1), bool), cands[:, 1:] != cands[:, :-1]], 1)
    qi, ci = np.nonzero(fresh)
    v = verify_geometric(thumbs, cands[qi, ci], n_ref + qi)  # the query side is warped
    score = np.full(cands.shape, -1.0)
    score[qi, ci] = v["score"]
    pair = {k: np.full(cands.shape, np.nan) for k in ("geo_nrms", "geo_corr")}
    for k in pair:
        pair[k][qi, ci] = v[k]
    pair["score"], pair["fresh"] = score, fresh
    j = score.argmax(1)
    return cands[np.arange(len(cands)), j], score[np.arange(len(cands)), j], cands, pair


# ----------------------------------------------------------------- combination
def _pair_features(cands, pair, corr, hash_dist, cos_head, cos_grid):
    """Per (query, candidate) features for the learned combination, shape (Q, C, F)."""
    nrms = np.log(np.clip(np.nan_to_num(pair["geo_nrms"], nan=1.0, posinf=1.0), 1e-3, 1.0))
    def margin(x):  # value minus the best other candidate of the same query (look-alike crowding)
        other = np.where(pair["fresh"], x, -np.inf)
        top2 = np.sort(other, 1)[:, -2:]
        best_other = np.where(x >= top2[:, 1:2], top2[:, 0:1], top2[:, 1:2])
        return np.clip(x - best_other, -1, 1)
    feats = [corr, nrms, np.nan_to_num(pair["geo_corr"]), hash_dist / 32.0, cos_head, cos_grid,
             margin(corr), margin(-nrms), margin(cos_grid)]
    return np.stack(feats, -1)


def learned_combination(feats, pair, cands, truth, calib, kind="logistic", seed=0):
    """Fit P(candidate is the query's original) on calibration-half pairs only.

    Returns per-query (score, predicted reference): score is out-of-fold
    (5-fold, grouped by original) on the calibration half, so thresholds are
    tuned on predictions the model did not fit, and from the model fitted on
    the whole calibration half on the test half.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def model():
        if kind == "logistic":
            return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                              random_state=seed)

    q_all = np.arange(len(cands))
    group_q = np.where(truth >= 0, truth, len(truth) + q_all)
    valid = pair["fresh"]
    qi, ci = np.nonzero(valid)
    x, y = feats[qi, ci], (cands[qi, ci] == truth[qi])
    in_cal = calib[qi]
    prob = np.zeros(len(qi))
    folds = GroupKFold(n_splits=5).split(x[in_cal], y[in_cal], group_q[qi][in_cal])
    cal_rows = np.nonzero(in_cal)[0]
    for tr, te in folds:
        prob[cal_rows[te]] = model().fit(x[cal_rows[tr]], y[cal_rows[tr]]).predict_proba(x[cal_rows[te]])[:, 1]
    full = model().fit(x[in_cal], y[in_cal])
    prob[~in_cal] = full.predict_proba(x[~in_cal])[:, 1]
    score = np.full(cands.shape, -1.0)
    score[qi, ci] = prob
    j = score.argmax(1)
    return score[q_all, j], cands[q_all, j]


def _decide_union(th, t_ver, t_geo, hd, hi, ver, geo):
    """Accept when the hash, the aligned correlation or verify_geometric passes; the hash's
    reference wins, then verify_geometric's (better top-1 identity), then the correlation's."""
    by_hash, by_geo, by_ver = hd <= th, geo[0] >= t_geo, ver[0] >= t_ver
    ref = np.where(by_hash, hi, np.where(by_geo, geo[1], ver[1]))
    return by_hash | by_geo | by_ver, ref


def _calibrate_union(hd, hi, ver, geo, truth, min_precision=0.99, n_grid=41):
    grid = lambda s: np.unique(np.quantile(s, np.linspace(0.3, 1.0, n_grid)))
    best = (-1.0, (-1, np.inf, np.inf))
    for th in range(0, 9):
        for t_ver in grid(ver[0]):
            for t_geo in grid(geo[0]):
                rec, prec = _score(*_decide_union(th, t_ver, t_geo, hd, hi, ver, geo)[::-1], truth)
                if prec >= min_precision and rec > best[0]:
                    best = (rec, (th, t_ver, t_geo))
    return best[1]


# ----------------------------------------------------------------- scoring
def _score(pred_ref, detected, truth):
    """truth: reference row of each query's original, -1 for non-copies."""
    is_copy = truth >= 0
    tp = detected & is_copy & (pred_ref == truth)
    return tp.sum() / max(1, is_copy.sum()), tp.sum() / max(1, detected.sum())


def _decide(th, te, hd, hi, score, pred):
    """Hash hit within radius ``th``, else score >= ``te``; the hash's reference wins."""
    by_hash = hd <= th
    return by_hash | (score >= te), np.where(by_hash, hi, pred)


def _calibrate(use_hash, use_score, hd, hi, score, pred, truth, min_precision=0.99):
    th_grid = range(0, 25) if use_hash else [-1]
    if use_score:
        te_grid = np.unique(np.quantile(score, np.linspace(0.3, 1.0, 141)))
    else:
        te_grid = [np.inf]
    best = (-1.0, -1, np.inf)  # nothing reaches the precision: accept nothing
    for th in th_grid:
        for te in te_grid:
            rec, prec = _score(*_decide(th, te, hd, hi, score, pred)[::-1], truth)
            if prec >= min_precision and rec > best[0]:
                best = (rec, th, te)
    return best[1], best[2]


def build_quality_set(x_train, x_val, n_originals, n_distractors, seed=0):
    """The planted-edit set: (reference images, query images, truth, kinds, rng after use)."""
    rng = np.random.default_rng(seed)
    val_idx = rng.permutation(len(x_val))
    orig_idx = val_idx[:n_originals]
    distractor_idx = val_idx[n_originals : n_originals + n_distractors]
    negative_idx = rng.choice(len(x_train), n_originals * len(EDITS), replace=False)

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
    return ref_images, queries, truth, kinds, rng


def bench_quality(x_train, x_val, folder: Path, n_originals: int, n_distractors: int, input_size, seed=0,
                  tune_precision=0.99):
    ref_images, queries, truth, kinds, rng = build_quality_set(x_train, x_val, n_originals, n_distractors, seed)

    def save(images, prefix):
        paths = []
        for i, im in enumerate(images):
            paths.append(folder / f"{prefix}_{i}.png")
            im.save(paths[-1])
        return paths

    ref_paths, query_paths = save(ref_images, "ref"), save(queries, "query")
    queries = [Image.open(p) for p in query_paths]
    times = {}
    t0 = time.perf_counter()
    ref_h = _hashes(ref_images)
    ref_hf = _hashes([im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in ref_images])
    hd, hi = _hash_nearest(_hashes(queries), ref_h, ref_hf)
    times["hash"] = time.perf_counter() - t0
    variants, vectors = {}, {}
    for name, kw in (("head, avg", {}), ("_blocks.8, grid2", dict(layer="_blocks.8", pool="grid2"))):
        t0 = time.perf_counter()
        ref_e = embed_images(ref_paths, input_size=input_size, flip=True, threads=1, **kw)
        query_e = embed_images(query_paths, input_size=input_size, threads=1, **kw)
        times[name] = time.perf_counter() - t0
        mean = ref_e.vectors.mean(0)  # centre: Fashion-MNIST embeddings share a large common part
        variants[name] = _emb_scores(query_e.vectors - mean, ref_e.vectors - mean, ref_e.flipped - mean)
        vectors[name] = tuple(l2_normalize(v - mean) for v in (query_e.vectors, ref_e.vectors, ref_e.flipped))
    # verification: hash nearest + 3 embedding nearest, re-scored by aligned correlation
    t0 = time.perf_counter()
    cands = np.concatenate([hi[:, None], variants["_blocks.8, grid2"][3][:, :3]], 1)
    corr = aligned_correlation(_gray_thumbs(queries), _gray_thumbs(ref_images),
                               np.repeat(np.arange(len(queries)), cands.shape[1]), cands.ravel())
    corr = corr.reshape(cands.shape)
    ver_pred, ver_score = cands[np.arange(len(cands)), corr.argmax(1)], corr.max(1)
    times["verify"] = time.perf_counter() - t0
    # library verifier: hash nearest + 3 grid-embedding + 1 head-embedding nearest, verify_geometric on 32 px
    t0 = time.perf_counter()
    geo_pred, geo_score, geo_cands, geo_pair = geometric_verification(queries, ref_images, hi, variants)
    times["verify_geometric"] = time.perf_counter() - t0
    # combination: both verifiers' scores per pair (+ embedding cosines and hash distance)
    t0 = time.perf_counter()
    q_rep = np.repeat(np.arange(len(queries)), geo_cands.shape[1])
    corr_g = aligned_correlation(_gray_thumbs(queries), _gray_thumbs(ref_images), q_rep,
                                 geo_cands.ravel()).reshape(geo_cands.shape)
    qh = _hashes(queries)
    hash_pair = np.minimum(*[np.maximum(np.bitwise_count(qh[q_rep, 0] ^ t[geo_cands.ravel(), 0]),
                                        np.bitwise_count(qh[q_rep, 1] ^ t[geo_cands.ravel(), 1]))
                             for t in (ref_h, ref_hf)]).reshape(geo_cands.shape).astype(np.float64)
    cos = {name: np.maximum(*[np.einsum("qd,qcd->qc", qv, rv[geo_cands]) for rv in (r, rf)])
           for name, (qv, r, rf) in vectors.items()}
    feats = _pair_features(geo_cands, geo_pair, corr_g, hash_pair, cos["head, avg"], cos["_blocks.8, grid2"])
    times["combination features"] = time.perf_counter() - t0
    # the library's opt-in rule, find_duplicates(geometric=True): max(align_pairs score, verify_geometric
    # score) >= min_score 0.5, fixed (no tuning); align_pairs on the same 32-px thumbnails
    thumbs32 = np.stack([np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR))
                         for im in ref_images + queries])
    lib = align_pairs(thumbs32, len(ref_images) + q_rep, geo_cands.ravel())["score"].reshape(geo_cands.shape)
    lib = np.where(geo_pair["fresh"], np.maximum(lib, geo_pair["score"]), -1.0)
    lib_pred, lib_score = geo_cands[np.arange(len(lib)), lib.argmax(1)], lib.max(1)

    if os.environ.get("BENCH_DUMP"):  # raw per-query / per-pair arrays, for offline analysis
        np.savez(os.environ["BENCH_DUMP"], truth=truth, kinds=kinds, hd=hd, hi=hi, ver_score=ver_score,
                 ver_pred=ver_pred, geo_score=geo_score, geo_pred=geo_pred, geo_cands=geo_cands, feats=feats,
                 fresh=geo_pair["fresh"], geo_pair_score=geo_pair["score"])
    calib = ((truth >= 0) & (truth < n_originals // 2)) | ((truth < 0) & (np.arange(len(truth)) % 2 == 0))
    test = ~calib
    none = (np.full(len(truth), -np.inf), hi)
    head_raw = (variants["head, avg"][1], variants["head, avg"][0])
    head_norm = (variants["head, avg"][2], variants["head, avg"][0])
    grid_norm = (variants["_blocks.8, grid2"][2], variants["_blocks.8, grid2"][0])
    rows = []
    for label, use_hash, (score, pred) in [
        ("hash only (pHash+dHash, flip-aware)", True, none),
        ("embedding only: default (head, avg), cosine", False, head_raw),
        ("embedding only: default, normalised score", False, head_norm),
        ("embedding only: _blocks.8 grid2, normalised", False, grid_norm),
        ("hash + embedding (default, normalised)", True, head_norm),
        ("hash + embedding (_blocks.8 grid2, normalised)", True, grid_norm),
        ("hash + embedding candidates + aligned verification", True, (ver_score, ver_pred)),
        ("hash + embedding candidates + verify_geometric (library)", True, (geo_score, geo_pred)),
        ("library rule: max(align_pairs, verify_geometric score) >= 0.5, untuned", False,
         (lib_score, lib_pred)),
        ("union: hash, or (7) passes, or (8) passes (3 thresholds tuned jointly)", True, (None, None)),
        ("logistic on pair features (both verifiers, cosines, hash distance)", True,
         learned_combination(feats, geo_pair, geo_cands, truth, calib, "logistic")),
        ("gradient boosting on the same pair features", True,
         learned_combination(feats, geo_pair, geo_cands, truth, calib, "boosting")),
    ]:
        if label.startswith("library rule"):
            det, ref = lib_score >= 0.5, lib_pred
            rec, prec = _score(ref[test], det[test], truth[test])
            per_kind = {k: float((det & (ref == truth))[test & (kinds == k)].mean()) for k in EDITS}
            rows.append(dict(method=label, th="-", te="0.500 (fixed)", recall=rec, precision=prec,
                             per_kind=per_kind, ceiling=float("nan"),
                             fp_noncopy=int((det & test & (truth < 0)).sum())))
            continue
        if label.startswith("union"):
            ver, geo = (ver_score, ver_pred), (geo_score, geo_pred)
            sub = lambda m: ((ver[0][m], ver[1][m]), (geo[0][m], geo[1][m]))
            th, t_ver, t_geo = _calibrate_union(hd[calib], hi[calib], *sub(calib), truth[calib], tune_precision)
            det, ref = _decide_union(th, t_ver, t_geo, hd, hi, ver, geo)
            rec, prec = _score(ref[test], det[test], truth[test])
            o = _calibrate_union(hd[test], hi[test], *sub(test), truth[test], min_precision=0.98)
            ceiling = _score(*_decide_union(*o, hd[test], hi[test], *sub(test))[::-1], truth[test])[0]
            per_kind = {k: float((det & (ref == truth))[test & (kinds == k)].mean()) for k in EDITS}
            rows.append(dict(method=label, th=th, te=f"{t_ver:.3f} / {t_geo:.3f}", recall=rec, precision=prec,
                             per_kind=per_kind, ceiling=ceiling, fp_noncopy=int((det & test & (truth < 0)).sum())))
            continue
        th, te = _calibrate(use_hash, score is not none[0], hd[calib], hi[calib], score[calib], pred[calib],
                            truth[calib], tune_precision)
        det, ref = _decide(th, te, hd, hi, score, pred)
        rec, prec = _score(ref[test], det[test], truth[test])
        # ceiling: the best recall any thresholds reach on the test half at precision >= 0.98
        o_th, o_te = _calibrate(use_hash, score is not none[0], hd[test], hi[test], score[test], pred[test],
                                truth[test], min_precision=0.98)
        ceiling = _score(*_decide(o_th, o_te, hd[test], hi[test], score[test], pred[test])[::-1], truth[test])[0]
        per_kind = {k: float((det & (ref == truth))[test & (kinds == k)].mean()) for k in EDITS}
        rows.append(dict(method=label, th=th if use_hash else "-", te="-" if not np.isfinite(te) else f"{te:.3f}",
                         recall=rec, precision=prec, per_kind=per_kind, ceiling=ceiling,
                         fp_noncopy=int((det & test & (truth < 0)).sum())))
    info = dict(n_refs=len(ref_images), n_copies=int((truth >= 0).sum()), n_noncopies=int((truth < 0).sum()),
                n_test_copies=int((test & (truth >= 0)).sum()), n_test_noncopies=int((test & (truth < 0)).sum()),
                times=times, input_size=ref_e.input_size,
                top1={name: float((v[0] == truth)[truth >= 0].mean()) for name, v in variants.items()}
                | {"hash": float((hi == truth)[truth >= 0].mean()),
                   "verified candidates": float((ver_pred == truth)[truth >= 0].mean()),
                   "verify_geometric": float((geo_pred == truth)[truth >= 0].mean())})
    return rows, info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["speed", "search", "quality", "all"], default="all")
    parser.add_argument("--speed-images", type=int, default=64)
    parser.add_argument("--originals", type=int, default=150)
    parser.add_argument("--distractors", type=int, default=1500)
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--tune-precision", type=float, default=0.99,
                        help="thresholds: best recall at this precision on the tuning half")
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
        if args.part in ("search", "all"):
            print("\n## Exact cosine search, 4000 x 16000, 512-d, random unit vectors\n")
            print("| call | seconds | top-5 overlap with brute force |")
            print("|---|---|---|")
            for r in bench_search():
                print(f"| {r['call']} | {r['seconds']:.2f} | {r['agree']:.4f} |")
        if args.part in ("quality", "all"):
            rows, info = bench_quality(x_train, x_val, folder, args.originals, args.distractors, args.input_size,
                                       tune_precision=args.tune_precision)
            print(f"\n## Near-duplicate detection on Fashion-MNIST (EfficientNet-Lite0, input {info['input_size']} px)\n")
            print(f"References: {info['n_refs']} ({args.originals} val originals + {args.distractors} val distractors). "
                  f"Queries: {info['n_copies']} copies ({len(EDITS)} edits) + {info['n_noncopies']} non-copies "
                  f"(train images). Thresholds chosen on half the originals / non-copies (best recall at "
                  f"precision >= {args.tune_precision} there), scored on the other half ({info['n_test_copies']} copies, "
                  f"{info['n_test_noncopies']} non-copies).")
            print("Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in info["times"].items()) + ". "
                  "Top-1 identity of copies (nearest reference is the original, no threshold): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in info["top1"].items()) + "\n")
            print("| method | hash radius | score threshold | recall | precision | false hits on non-copies "
                  "| ceiling: best recall at precision >= 0.98 on the test half |")
            print("|---|---|---|---|---|---|---|")
            for r in rows:
                print(f"| {r['method']} | {r['th']} | {r['te']} | {r['recall']:.3f} | {r['precision']:.3f} "
                      f"| {r['fp_noncopy']} | {r['ceiling']:.3f} |")
            print("\nRecall per edit (test half):\n")
            print("| edit | " + " | ".join(f"({i + 1})" for i in range(len(rows))) + " |")
            print("|---" * (len(rows) + 1) + "|")
            for kind in EDITS:
                print(f"| {kind} | " + " | ".join(f"{r['per_kind'][kind]:.2f}" for r in rows) + " |")
            print("\n" + "; ".join(f"({i + 1}) {r['method']}" for i, r in enumerate(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
