"""Near-duplicate candidates for :func:`~splitaudit.duplicates.find_duplicates`:
a blocked thumbnail range search (as is and mirrored) capped per image,
hash hits, embedding neighbours, and the cheap 16x16 prefilter."""

from __future__ import annotations

import numpy as np

from ..search.hamming import choose_backend, hamming_range
from ..search.mirror import mirror_range

SEARCH_HASHES = ("phash", "dhash")


def rank_in_group(group, key):
    """Rank of each item by ``key`` among the items of its ``group`` (0 = smallest)."""
    order = np.lexsort((key, group))
    g = group[order]
    rank = np.empty(len(group), np.int64)
    rank[order] = np.arange(len(g)) - np.searchsorted(g, g)
    return rank


def _hash_hits(table, ia, ib, within, p):
    """Hash candidates (global a, b) from a full Hamming range search."""
    qa, qb = [], []
    for h in SEARCH_HASHES:
        base = table[h].to_numpy(np.uint64)[ib]
        backend, plan = p.backend, None
        if backend == "auto" and len(ia) and len(ib):  # one choice for the plain and mirrored queries
            backend, plan = choose_backend(table[h].to_numpy(np.uint64)[ia], base, p.hash_radius)
        for col in (h, h + "_flip"):
            qi, bi, dist = hamming_range(table[col].to_numpy(np.uint64)[ia], base, p.hash_radius,
                                         backend=backend, upper_only=within and col == h, plan=plan)
            if len(qi) and p.max_hash_candidates:
                # Keep each query's closest hash hits: look-alikes can share hashes by the thousand.
                keep = rank_in_group(qi, dist) < p.max_hash_candidates
                qi, bi = qi[keep], bi[keep]
            qa.append(ia[qi]); qb.append(ib[bi])
    return qa, qb


def _range_hits(table, coords, thr, ia, ib, within, p):
    """Candidates from the blocked thumbnail range search, capped per image.

    Every pair the thumbnail prefilter could accept is within the per-image
    squared-distance threshold ``thr`` in the (orthogonal) projection, as is
    or mirrored, so :func:`mirror_range` returns a superset of it. Of those,
    each image keeps its ``neighbors`` closest, plus pairs whose pHash or
    dHash (as is or mirrored) is within ``hash_radius``, the
    ``max_hash_candidates`` closest by Hamming distance.
    """
    sym, anti = coords
    qi, bi, d2 = mirror_range((sym[ia], anti[ia]), (sym[ib], anti[ib]), (thr[ia], thr[ib]),
                              same=within, jobs=p.jobs)
    a, b = ia[qi], ib[bi]
    keep = np.zeros(len(a), bool)
    if len(a) and p.neighbors:
        keep |= rank_in_group(a, d2) < p.neighbors
        if within:
            keep |= rank_in_group(b, d2) < p.neighbors
    if len(a) and p.max_hash_candidates:
        hd = np.full(len(a), 65, np.int64)
        for h in SEARCH_HASHES:
            direct = table[h].to_numpy(np.uint64)
            mirror = table[h + "_flip"].to_numpy(np.uint64)
            hd = np.minimum(hd, np.minimum(np.bitwise_count(direct[a] ^ direct[b]),
                                           np.bitwise_count(mirror[a] ^ direct[b])))
        near = hd <= p.hash_radius
        keep |= near & (rank_in_group(a, np.where(near, hd, 65)) < p.max_hash_candidates)
        if within:
            keep |= near & (rank_in_group(b, np.where(near, hd, 65)) < p.max_hash_candidates)
    return [a[keep]], [b[keep]]


def near_candidates(table, coords, thr, emb, ia, ib, within, p):
    """Candidate pairs (global a, b) from thumbnails, hashes and embedding neighbours."""
    qa, qb = [], []
    if p.neighbors or p.max_hash_candidates:
        ra, rb = _range_hits(table, coords, thr, ia, ib, within, p)
        qa += ra; qb += rb
    if emb is not None:
        # No thumbnail prefilter with embeddings, so hash hits need not be thumbnail neighbours.
        ha, hb = _hash_hits(table, ia, ib, within, p)
        qa += ha; qb += hb
    if emb is not None and p.neighbors:
        from ..search.cosine import cosine_topk  # lazy: only with embeddings

        sims, idx = cosine_topk(emb[ia], emb[ib], p.neighbors + (1 if within else 0))
        keep = sims >= p.min_embedding_cos
        qa.append(np.broadcast_to(ia[:, None], idx.shape)[keep]); qb.append(ib[idx[keep]])
    return unique_pairs(qa, qb, within)


def unique_pairs(qa: list, qb: list, within: bool) -> tuple[np.ndarray, np.ndarray]:
    """Unique (a, b) int64 pairs from lists of index arrays; ``within``: a < b, no self pairs."""
    a = np.concatenate(qa).astype(np.int64) if qa else np.zeros(0, np.int64)
    b = np.concatenate(qb).astype(np.int64) if qb else np.zeros(0, np.int64)
    if within:
        a, b = np.minimum(a, b), np.maximum(a, b)
        ok = a != b
        a, b = a[ok], b[ok]
    pair = np.unique(np.stack([a, b], 1), axis=0)
    return pair[:, 0], pair[:, 1]


def max_rms(p) -> float:
    """Largest 16x16 residual estimate the prefilter lets through (grey levels)."""
    return p.score_mid + 6 * p.score_scale


def range_threshold(std: np.ndarray, min_corr: float, max_residual: float) -> np.ndarray:
    """Per-image squared-distance threshold that every prefilter-passing pair
    meets in the projection: with ``d² = 2 (1 - corr)``, ``corr >= min_corr``
    is ``d² <= 2 (1 - min_corr)``, and ``sqrt(1 - corr²) * min(std) <= max_residual``
    needs ``d² <= max_residual² / (std² (1 + min_corr) / 2)`` for the lower-contrast
    image; a pair's threshold is the larger of its two images'."""
    cap = 2.0 * (1.0 - min_corr)
    factor = (1.0 + min_corr) / 2.0
    with np.errstate(divide="ignore"):
        by_std = max_residual ** 2 / (factor * np.square(std.astype(np.float64)))
    # Small slack for float32 rounding in the blocked distances.
    return (np.minimum(cap, by_std) * 1.001 + 1e-6).astype(np.float32)


def prefilter(pooled, std, a, b, min_corr, max_rms, batch=200_000):
    """Keep pairs whose 16x16 thumbnails correlate >= min_corr, as is or mirrored,
    and whose residual there, ``sqrt(1 - corr^2) * min(std)``, is <= max_rms grey
    levels (pooling smooths, so this rarely exceeds the 32x32 residual).
    One 256-d dot product per orientation; alignment costs ~20x more."""
    plain, mirror = pooled
    keep = np.zeros(len(a), bool)
    for s in range(0, len(a), batch):
        pa, pb = a[s:s + batch], b[s:s + batch]
        va = plain[pa]
        corr = np.maximum(np.einsum("ij,ij->i", va, plain[pb]), np.einsum("ij,ij->i", va, mirror[pb]))
        est = np.sqrt(np.clip(1 - corr * corr, 0, None)) * np.minimum(std[pa], std[pb])
        keep[s:s + batch] = (corr >= min_corr) & (est <= max_rms)
    return a[keep], b[keep]
