"""A learned near-duplicate verifier: a small numpy MLP over per-pair evidence.

:func:`~splitaudit.duplicates.find_duplicates` with ``verifier="learned"``
(and ``embeddings``) scores each candidate pair by the probability that the two
images are the same photo, edited (crop, rotation, flip, overlay, colour,
blur, noise, JPEG, resize, shift), from evidence the library already has:

- ``corr``: best FFT correlation over mirror x rotation (-10..10 deg) x zoom
  (1..1.25) x shifts up to 4 px of the 32x32 thumbnails, both directions;
- ``log_geo_nrms`` and ``geo_corr`` from
  :func:`~splitaudit.duplicates.verify.verify_geometric` (run only on pairs
  whose ``corr`` reaches the shipped gate; others get nrms 1, corr 0);
- ``hash_dist``: flip-aware max(pHash, dHash) Hamming distance / 32;
- ``embedding_cos``: cosine of the centred, re-normalised embeddings;
- ``descriptor_cos`` and ``log_thumb_nrms`` (plain alignment residual);
- ``log_blur_resid``: ``log(1 - c)`` with ``c`` the best correlation of one
  thumbnail, Gaussian-blurred (sigma 0, 0.6, 1, 1.5 px), with the other as is or
  mirrored, both directions (:func:`blur_correlation`): a blurred, noisy or
  re-encoded copy matches its original blurred, a garment of the same design does not;
- ``margin_*``: the pair's ``corr``, ``-log_geo_nrms`` and ``embedding_cos``
  minus the best other candidate of the same image (the larger of the two
  images' margins; 1 when the image has no other candidate), so a pair among
  look-alikes needs a clearer winner.

Candidates (:func:`learned_candidates`): the default ones, the nearest centred
embeddings and pHash, shift/zoom candidates (:mod:`splitaudit.duplicates.reframe`),
of which each image keeps its 3 best by ``corr``, and its nearest images by
Fourier magnitude (shifts) and by thumbnails rotated +-8 degrees.

The weights (``learned_verifier.npz`` next to this module, plain arrays, no
pickle) are fitted by ``benchmarks/train_verifier.py`` on Fashion-MNIST *train*
images disjoint from the evaluation set of ``benchmarks/bench_embeddings.py``;
the file records the training command, set size, sklearn version and the
threshold with the precision it was chosen for. The model is fitted to
synthetic edits of small grey garments: treat its threshold as calibrated for
data like that, and check the reported pairs on other data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .candidates import _near_candidates, _rank_in_group, unique_pairs
from .reframe import direct_candidates, geometry_candidates
from .geometric import _warp_matrices, verify_geometric
from .verify import align_pairs

__all__ = ["FEATURES", "WEIGHTS_FILE", "LearnedVerifier", "load_verifier", "aligned_correlation",
           "centred_embeddings", "pair_features", "learned_score", "default_score", "candidate_setup",
           "learned_candidates"]

FEATURES = ("corr", "log_geo_nrms", "geo_corr", "hash_dist", "embedding_cos", "descriptor_cos",
            "log_thumb_nrms", "margin_corr", "margin_geo", "margin_embedding", "log_blur_resid")
WEIGHTS_FILE = Path(__file__).with_name("learned_verifier.npz")
_CORR_ROTATIONS, _CORR_ZOOMS, _CORR_SHIFT = (-10.0, -5.0, 0.0, 5.0, 10.0), (1.0, 1.12, 1.25), 4
_BLUR_SIGMAS = (0.0, 0.6, 1.0, 1.5)


@dataclass(frozen=True)
class LearnedVerifier:
    """An MLP (ReLU hidden layers, logistic output) on standardised :data:`FEATURES`.

    Attributes
    ----------
    features : tuple of str
        Feature names, in column order.
    mean, scale : ndarray (F,)
        Standardisation.
    weights, biases : tuple of ndarray
        One per layer; the last maps to one logit.
    threshold : float
        Probability at or above which a pair is reported.
    gate_corr : float
        ``corr`` below which ``verify_geometric`` is skipped.
    meta : dict
        Training command, sizes, versions, chosen precision, ...
    """

    features: tuple
    mean: np.ndarray = field(repr=False)
    scale: np.ndarray = field(repr=False)
    weights: tuple = field(repr=False)
    biases: tuple = field(repr=False)
    threshold: float = 0.5
    gate_corr: float = 0.0
    meta: dict = field(default_factory=dict, repr=False)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability that each row (pair) is a same-photo pair, float64 (P,)."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"x must have shape (P, {len(self.features)}); got {x.shape}")
        h = (x - self.mean) / self.scale
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return 1.0 / (1.0 + np.exp(-np.clip(h[:, 0], -50, 50)))

    def save(self, path) -> None:
        """Write plain arrays (``np.load(..., allow_pickle=False)`` reads them)."""
        arrays = {"mean": self.mean, "scale": self.scale, "n_layers": np.array(len(self.weights))}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"w{i}"], arrays[f"b{i}"] = np.asarray(w, np.float64), np.asarray(b, np.float64)
        meta = {**self.meta, "features": list(self.features), "threshold": self.threshold,
                "gate_corr": self.gate_corr}
        np.savez(path, meta_json=np.array(json.dumps(meta, indent=1)), **arrays)


def load_verifier(path=None) -> LearnedVerifier:
    """Load a verifier written by :meth:`LearnedVerifier.save` (default: the shipped one).

    Examples
    --------
    >>> v = load_verifier()
    >>> v.features == FEATURES
    True
    """
    return _load(str(WEIGHTS_FILE if path is None else path))


@lru_cache(maxsize=4)
def _load(path: str) -> LearnedVerifier:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta_json"]))
        n = int(z["n_layers"])
        weights = tuple(z[f"w{i}"] for i in range(n))
        biases = tuple(z[f"b{i}"] for i in range(n))
        mean, scale = z["mean"], z["scale"]
    features = tuple(meta.pop("features"))
    if features != FEATURES:
        raise ValueError(f"verifier file {path} has features {features}; this version computes {FEATURES}")
    return LearnedVerifier(features, mean, scale, weights, biases, float(meta.pop("threshold")),
                           float(meta.pop("gate_corr")), meta)


# ------------------------------------------------------------------ features
def _standardise(x):
    x = x - x.mean((-2, -1), keepdims=True)
    n = np.sqrt((x * x).sum((-2, -1), keepdims=True))
    return np.divide(x, n, out=np.zeros_like(x), where=n > 1e-6)


@lru_cache(maxsize=2)
def _corr_warps(size):
    return _warp_matrices(size, _CORR_ROTATIONS, _CORR_ZOOMS, True)[1]


def _corr_one_way(thumbs, a, b, batch=512):
    size = thumbs.shape[1]
    mats = _corr_warps(size)
    window = np.r_[0:_CORR_SHIFT + 1, size - _CORR_SHIFT:size]
    out = np.empty(len(a), np.float32)
    for s in range(0, len(a), batch):
        qa, qb = a[s:s + batch], b[s:s + batch]
        ub, inv = np.unique(qb, return_inverse=True)
        flat = thumbs[ub].reshape(len(ub), -1).astype(np.float32)
        warped = np.stack([(m @ flat.T).T for m in mats], 1).reshape(len(ub), len(mats), size, size)
        fb = np.fft.rfft2(_standardise(warped))
        fa = np.fft.rfft2(_standardise(thumbs[qa].astype(np.float32)))
        corr = np.fft.irfft2(np.conj(fb[inv]) * fa[:, None], s=(size, size))
        out[s:s + batch] = corr[:, :, window][:, :, :, window].reshape(len(qa), -1).max(1)
    return out


def aligned_correlation(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Best correlation of thumbnail pairs over mirror x rotation x zoom x circular shifts.

    Each side is warped in turn (rotations -10..10 deg, zooms 1..1.25, mirror)
    and correlated with the other at shifts up to 4 px (FFT); the larger of
    the two directions is returned, float32 (P,).

    Examples
    --------
    >>> t = np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    >>> float(aligned_correlation(t, np.array([0]), np.array([0]))[0]) > 0.99
    True
    """
    thumbs = np.asarray(thumbs)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if len(a) == 0:
        return np.zeros(0, np.float32)
    return np.maximum(_corr_one_way(thumbs, a, b), _corr_one_way(thumbs, b, a))


def blur_correlation(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, sigmas=_BLUR_SIGMAS,
                     batch: int = 4096) -> np.ndarray:
    """Best correlation between one thumbnail Gaussian-blurred and the other
    (as is or mirrored), over ``sigmas`` and both directions, float64 (P,).

    No shifts: it answers "is one a blurred (or noisy, re-encoded) version of
    the other", which a same-design garment photographed separately is not.
    Planted set: every blurred, noisy and JPEG-30 copy scores higher with its
    original than with any other candidate of its query.

    Examples
    --------
    >>> from scipy.ndimage import gaussian_filter
    >>> t = np.random.default_rng(0).integers(0, 255, (2, 32, 32)).astype(np.uint8)
    >>> t[1] = gaussian_filter(t[0].astype(float), 1.0).round()
    >>> float(blur_correlation(t, np.array([1]), np.array([0]))[0]) > 0.99
    True
    """
    from scipy.ndimage import gaussian_filter

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    out = np.full(len(a), -1.0)
    for s in range(0, len(a), batch):
        qa, qb = a[s:s + batch], b[s:s + batch]
        used, inv = np.unique(np.r_[qa, qb], return_inverse=True)
        ia, ib = inv[:len(qa)], inv[len(qa):]
        t = thumbs[used].astype(np.float32)
        plain = _standardise(t)
        mirror = plain[:, :, ::-1]
        best = out[s:s + batch]
        for sigma in sigmas:
            blurred = _standardise(gaussian_filter(t, (0, sigma, sigma))) if sigma else plain
            for x, y in ((ia, ib), (ib, ia)):
                for other in (plain, mirror):
                    c = np.einsum("ijk,ijk->i", blurred[x], other[y])
                    np.maximum(best, c, out=best)
    return out


def _margin(x, a, b):
    """x minus the best other candidate's x of the same image; the larger of a's and b's."""
    out = np.full(len(x), -np.inf)
    for key in (a, b):
        order = np.lexsort((-x, key))
        k, v = key[order], x[order]
        first = np.r_[True, k[1:] != k[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
        top1 = v[start]
        has2 = np.r_[k[1:] == k[:-1], False][start]
        top2 = np.where(has2, v[np.minimum(start + 1, len(v) - 1)], -np.inf)
        is_top = np.arange(len(k)) == start
        other = np.where(is_top, top2, top1)
        m = np.empty(len(x))
        m[order] = np.clip(v - other, -1.0, 1.0)
        out = np.maximum(out, m)
    return out


def centred_embeddings(embeddings: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
    """Embeddings minus their mean (over ``ok`` rows), re-normalised: float32 (N, D)."""
    emb = np.asarray(embeddings, np.float32)
    rows = emb if ok is None else emb[ok]
    centred = emb - (rows.mean(0) if len(rows) else 0.0)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return np.divide(centred, norm, out=np.zeros_like(centred), where=norm > 1e-9)


def pair_features(fingerprints, emb_centred: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                  gate_corr: float = -np.inf, jobs: int = 1, chunk: int = 2048) -> np.ndarray:
    """The :data:`FEATURES` matrix (P, F) of candidate pairs ``(a[i], b[i])``.

    Parameters
    ----------
    fingerprints : Fingerprints
        Uses ``table`` (phash, dhash and their ``_flip``), ``thumbs`` and ``descriptor``.
    emb_centred : array (N, D)
        :func:`centred_embeddings` of the images' embeddings.
    a, b : int arrays (P,)
        The pairs; margins compare each pair with the other pairs given here.
    gate_corr : float
        ``verify_geometric`` runs only where ``corr >= gate_corr``.
    jobs, chunk : int
        Pairs are computed in chunks of ``chunk``, by ``jobs`` threads (BLAS
        held to one thread each; numpy and scipy release the GIL): ~1.9x
        faster with 2 threads on 2 cores, and the same values for any
        ``jobs`` (they depend on ``chunk`` in the last float32 bits only).
        Margins are computed over all pairs afterwards.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)

    def part(start):
        end = start + chunk
        return _pair_columns(fingerprints, emb_centred, a[start:end], b[start:end], gate_corr)

    starts = range(0, max(len(a), 1), chunk)
    if jobs > 1 and len(starts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        with threadpool_limits(1), ThreadPoolExecutor(jobs) as pool:
            x = np.vstack(list(pool.map(part, starts)))
    else:
        x = np.vstack([part(s) for s in starts])
    return with_margins(x, a, b)


def _pair_columns(fingerprints, emb_centred, a, b, gate_corr) -> np.ndarray:
    """:func:`pair_features` without the margins (their columns hold ``corr``)."""
    thumbs, table = fingerprints.thumbs, fingerprints.table
    corr = aligned_correlation(thumbs, a, b).astype(np.float64)
    nrms, geo_corr = np.ones(len(a)), np.zeros(len(a))
    run = np.flatnonzero(corr >= gate_corr)
    if len(run):
        g = verify_geometric(thumbs, a[run], b[run])
        nrms[run] = np.nan_to_num(g["geo_nrms"], nan=1.0, posinf=1.0)
        geo_corr[run] = g["geo_corr"]
    log_nrms = np.log(np.clip(nrms, 1e-3, 1.0))
    h = {c: table[c].to_numpy(np.uint64) for c in ("phash", "dhash", "phash_flip", "dhash_flip")}
    hd = np.minimum(*[np.maximum(np.bitwise_count(h["phash" + s][a] ^ h["phash"][b]),
                                 np.bitwise_count(h["dhash" + s][a] ^ h["dhash"][b])) for s in ("", "_flip")])
    cos = np.einsum("ij,ij->i", emb_centred[a], emb_centred[b]).astype(np.float64)
    desc = getattr(fingerprints, "descriptor", None)
    dcos = np.einsum("ij,ij->i", desc[a], desc[b]).astype(np.float64) if desc is not None else np.zeros(len(a))
    thumb = align_pairs(thumbs, a, b, max_shift=1, trim=0.05)["thumb_nrms"].astype(np.float64)
    log_thumb = np.log(np.clip(np.nan_to_num(thumb, nan=1.0, posinf=1.0), 1e-3, 1.0))
    columns = [corr, log_nrms, geo_corr, hd / 32.0, cos, dcos, log_thumb] + [corr] * 3 + [blur_feature(thumbs, a, b)]
    return np.stack(columns, 1)


def blur_feature(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ``log_blur_resid`` column: ``log(1 - blur_correlation)``, clipped to [log 1e-4, 0]."""
    return np.log(np.clip(1.0 - blur_correlation(thumbs, a, b), 1e-4, 1.0))


def with_margins(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fill the three ``margin_*`` columns of ``x`` from its other columns (in place; returns x)."""
    x[:, 7] = _margin(x[:, 0], a, b)
    x[:, 8] = _margin(-x[:, 1] / 7.0, a, b)
    x[:, 9] = _margin(x[:, 4], a, b)
    return x


def learned_score(verifier: LearnedVerifier, fingerprints, emb_centred, a, b, jobs: int = 1) -> np.ndarray:
    """Probabilities of :func:`pair_features` rescaled piecewise-linearly so that
    0 -> 0, the verifier's threshold -> 0.5 and 1 -> 1 (float64 (P,))."""
    prob = verifier.predict_proba(pair_features(fingerprints, emb_centred, a, b, gate_corr=verifier.gate_corr,
                                                jobs=jobs))
    t = verifier.threshold
    return np.where(prob >= t, 0.5 + 0.5 * (prob - t) / max(1 - t, 1e-9), 0.5 * prob / max(t, 1e-9))


def default_score(fingerprints, emb, a, b, params) -> np.ndarray:
    """The score :func:`~splitaudit.duplicates.find_duplicates` gives a near candidate
    without the learned verifier (aligned thumbnails; with ``emb``, also the embedding
    cosine), float (P,). With ``verifier="learned"`` a pair's score is the larger of
    this and :func:`learned_score`."""
    from .verify import score_from_rms

    v = align_pairs(fingerprints.thumbs, a, b, max_shift=params["max_shift"], trim=params["trim"])
    score = score_from_rms(v["thumb_rms"], params["score_mid"], params["score_scale"])
    if emb is not None:
        cos = (emb[a] * emb[b]).sum(1)
        score = np.maximum(score, score_from_rms(-cos, -params["embedding_cos"], 0.01))
    return score


def candidate_setup(fingerprints, **overrides):
    """Thumbnail search coordinates, range thresholds and parameters as
    :func:`~splitaudit.duplicates.find_duplicates` builds them with its defaults
    (for scripts that call :func:`learned_candidates` directly)."""
    from .core import default_params, search_setup  # core imports this module

    params = default_params(**overrides)
    table = fingerprints.table
    ok = table["ok"].to_numpy(bool) if "ok" in table.columns else np.ones(len(table), bool)
    _, _, coords, thr = search_setup(fingerprints, ok, params)
    return coords, thr, params


def learned_candidates(table, coords, thr, emb, emb_centred, ia, ib, within, params, k=5, thumbs=None,
                       k_shape=10, k_zoom=10, keep_geometry=3, geometry=None, k_spectrum=3, k_rotate=2):
    """Candidate pairs for the learned verifier: the default candidates plus, per image
    of ``ia`` (the val side for cross pairs), its ``k`` nearest centred embeddings and
    its nearest pHash (as is or mirrored) in ``ib``. Given ``thumbs``, also the
    shift/zoom neighbours of :func:`geometry_candidates` that are not candidates
    already, of which each image keeps its ``keep_geometry`` best by
    :func:`aligned_correlation` (Fashion-MNIST planted set: the true original is
    among the candidates for 0.976 of copies instead of 0.942, for 40 % more
    pairs), and every pair of :func:`~splitaudit.duplicates.reframe.direct_candidates`
    (``k_spectrum`` shift-invariant and ``k_rotate`` per rotation angle: 0.991 of
    copies, for 28 % more pairs again; both 0 turn them off).
    ``geometry``: :func:`~splitaudit.duplicates.reframe.geometry_vectors` of
    ``thumbs`` when the caller searches several index sets (computed here
    otherwise). ``within`` pairs come out with a < b."""
    from ..search.cosine import cosine_topk  # lazy: embeddings only

    a0, b0 = _near_candidates(table, coords, thr, emb, ia, ib, within, params)
    qa, qb = [a0], [b0]
    kk = min(k + (1 if within else 0), len(ib), len(ia))
    if kk and len(ia) and len(ib):
        _, idx = cosine_topk(emb_centred[ia], emb_centred[ib], kk)
        qa.append(np.repeat(ia, kk)); qb.append(ib[idx].ravel())
        base = table["phash"].to_numpy(np.uint64)[ib]
        for col in ("phash", "phash_flip"):
            q = table[col].to_numpy(np.uint64)[ia]
            for s in range(0, len(q), 256):
                d = np.bitwise_count(q[s:s + 256, None] ^ base[None]).astype(np.int64)
                if within:
                    d[ia[s:s + 256, None] == ib[None]] = 99
                qa.append(ia[s:s + 256]); qb.append(ib[d.argmin(1)])
    a, b = unique_pairs(qa, qb, within)
    if thumbs is None:
        return a, b
    qa, qb = direct_candidates(thumbs, ia, ib, within, k_spectrum, k_rotate, vectors=geometry)
    if keep_geometry:
        ga, gb = unique_pairs(*geometry_candidates(thumbs, ia, ib, within, k_shape, k_zoom, vectors=geometry), within)
        n = max(int(a.max(initial=-1)), int(b.max(initial=-1)), int(ga.max(initial=-1)), int(gb.max(initial=-1))) + 1
        new = ~np.isin(ga * n + gb, a * n + b)
        ga, gb = ga[new], gb[new]
        corr = aligned_correlation(thumbs, ga, gb)
        keep = _rank_in_group(ga, -corr) < keep_geometry
        if within:
            keep |= _rank_in_group(gb, -corr) < keep_geometry
        qa.append(ga[keep]); qb.append(gb[keep])
    return unique_pairs([a, *qa], [b, *qb], within)
