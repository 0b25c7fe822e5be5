"""Copy detection on local features: keypoint retrieval, then geometric verification.

The shape copy-detection systems use (DISC21 baselines, image retrieval with
spatial verification), on the ORB keypoints of
:mod:`splitaudit.fingerprints.local`:

1. **Retrieval** (:func:`keypoint_candidates`): every query keypoint looks up its nearest database
   keypoints by Hamming distance (faiss: an exact binary flat index for small sets, an inverted-file index
   over binary k-means cells beyond :data:`IVF_MIN_ROWS` rows). Each hit within :data:`MAX_HAMMING` bits
   is a vote for the image owning it; an image pair needs :data:`MIN_VOTES` votes from distinct query
   keypoints, and each query image keeps its ``per_query`` best-voted partners. A crop, a caption or a
   rotation leaves most keypoints of the untouched area in place, so the original still collects votes
   where global thumbnails and hashes have moved far away.
2. **Verification** (:func:`verify_keypoints`): the two images' descriptors are matched (nearest neighbour
   with Lowe's ratio test, one match per target keypoint) and a similarity transform (scale, rotation,
   shift) is fitted with RANSAC (``cv2.estimateAffinePartial2D``). Degenerate fits (scale outside
   [1/4, 4], inliers bunched in a few pixels) count as no fit. The evidence per pair: ``inliers``,
   ``inlier_ratio`` (of the smaller image's keypoints), ``scale``, ``rotation`` (degrees),
   ``shift_x``/``shift_y`` (fractions of the target frame), and ``overlap`` / ``overlap_b``: the share of
   each frame that the other covers once aligned. :func:`score_from_inliers` turns inliers into a score in
   [0, 1].

Distinct photographs rarely share more than a handful of geometrically
consistent matches (on 78 real 256-px tiles, none reached 7 inliers), while
a copy keeps tens: the transform, not the descriptor distance, is the proof.
"""

from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

import numpy as np

from .._optional import opencv, require
from .._parallel import forked_map, shared, thread_map
from .residual import aligned_residual

__all__ = ["keypoint_candidates", "KeypointCandidates", "verify_keypoints", "score_from_inliers", "KEYPOINT_COLUMNS",
           "MAX_HAMMING", "MIN_VOTES", "INLIERS_MID"]

MAX_HAMMING = 64
"""Largest Hamming distance (of 256 bits) for a keypoint hit to vote."""
MIN_VOTES = 3
"""Distinct query keypoints that must hit an image before it is verified."""
VOTE_SHARE = 3
"""A query image's partner is verified only with at least 1/VOTE_SHARE of the
votes of its best partner: on the photo256 planted set every copy passed
(it is the best-voted partner in 377 of 393 cases, close behind otherwise),
and half the candidates (3,614 -> 1,812) were dropped."""
INLIERS_MID = 9.0
"""Agreement-weighted RANSAC inliers at which :func:`score_from_inliers` gives 0.5. 9, not 8,
since every query keypoint searches (:data:`QUERY_KEYPOINTS`): more look-alike garments reach
the fit, and on the planted 96-px Fashion-MNIST draws 16 and 14 false pairs sat at 8-9 effective
inliers against 1 and 5 copies (precision 0.959 -> 0.990 and 0.943 -> 0.968); photos lost 3 and 4
of 420 copies."""
INLIERS_SCALE = 1.0
RMS_LIMIT = 0.75  # aligned residual (in SDs of the image) at which a keypoint fit counts for nothing
GREY_LIMIT = 50.0
"""Aligned residual (grey levels of the 32-px thumbnail) at which a keypoint fit counts for nothing."""
GREY_CLOSE = 3.0
"""Aligned residual (grey levels) under which the agreeing pixels add to the inliers: at 0 they
count as many again (the inliers double), at :data:`GREY_CLOSE` and above they add nothing."""
EXTENT_FULL = 0.05
"""Share of the overlap that the inliers' hull must span to count in full."""
IVF_MIN_ROWS = 50_000
"""Database keypoints from which retrieval uses an inverted-file index (else exact)."""
QUERY_KEYPOINTS = 128
"""Keypoints of each query image that look up neighbours (the first, in spread
order, so they cover the frame); the database holds all of them. All 128: with
the first 64 a centre crop (enlarged 1.1-1.4x) or a caption over a garment left
its original under 3 votes in 21 of 90 planted Fashion-MNIST 96-px copies, with
all of them in 5 (recall 0.941 -> 0.963), for ~15-35 % more scan time."""
SHIFT_BIN = 6.0
"""Width (pixels of the 128-px working frame) of the displacement bins of :func:`_shift_votes`."""
SHIFT_VOTES = 3
"""Votes agreeing on one shift that make a voted pair a tile candidate (:mod:`.tiles`). On the 256-px photo
set 31 of the 40 planted tile pairs reach 3 (38 reach 2), against 1,056 of 19,404 other voted pairs
(6,010 reach 2)."""
KEYPOINT_COLUMNS = ("inliers", "inlier_ratio", "scale", "rotation", "shift_x", "shift_y", "overlap", "overlap_b",
                    "inlier_extent", "aligned_rms", "aligned_grey")
_NEIGHBOURS = 4
_RATIO = 0.8
_REPROJ = 3.0
_MIN_SPREAD = 4.0  # px in the 128-px working frame
_MIN_MATCHES = 5
_AFFINE_BELOW = 24  # similarity inliers under which a stretched (full affine) fit is tried too


def _faiss():
    return require("faiss", purpose="keypoint retrieval")


_ROWS_PER_CELL = 2000
"""Database keypoints per inverted-file cell (a power of two near it, at most 8,192 cells)."""
_PROBES = 2
"""Cells searched per query keypoint. 2 cells of ~2,000 rows, not 4 of ~1,000: on the 48k-image 256-px
split the duplicate search went 259 -> 212 s (adding the database to the index costs one distance per
cell) for 0.6 % fewer within pairs and the same cross pairs; the planted sets found the same copies."""
_PER_LIST = True
"""Search list by list (faiss's ``per_invlist_search``: a cell's codes are read once for all the queries
probing it), not query by query: the same distances, 3.2x faster (200k queries, the 48k split's 4.9M train
keypoints); only which of equally distant neighbours is kept can differ."""


def _index(db: np.ndarray, jobs: int = 1):
    """A faiss binary index over ``db`` (see :func:`_search`). Each row's cell is found on
    ``jobs`` Python threads, faiss on one OpenMP thread (the same index as ``index.add``; with
    faiss's two OpenMP threads, adding 1M rows took 3.8 s on a quiet machine and 223 s
    beside one other busy process)."""
    faiss = _faiss()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if len(db) < IVF_MIN_ROWS:
            index = faiss.IndexBinaryFlat(256)
            index.add(db)
            return index
        nlist = int(min(8192, max(1, 2 ** round(math.log2(len(db) / _ROWS_PER_CELL)))))
        quantizer = faiss.IndexBinaryFlat(256)
        rows = np.sort(np.random.default_rng(0).choice(len(db), nlist, replace=False))
        quantizer.add(db[rows])  # cells around random keypoints: no k-means to train
        index = faiss.IndexBinaryIVF(quantizer, 256, nlist)
        index.train(db[rows])  # a full quantizer: faiss skips the clustering
        index.nprobe = min(_PROBES, nlist)  # (faiss's wrapper keeps the quantizer alive with the index)
        if hasattr(index, "per_invlist_search"):  # faiss >= 1.7.3
            index.per_invlist_search = _PER_LIST
        db = np.ascontiguousarray(db)
        bounds = np.linspace(0, len(db), 8 * max(1, jobs) + 1).astype(np.int64)
        cells = thread_map(lambda i: quantizer.search(db[bounds[i]:bounds[i + 1]], 1)[1].ravel(),
                           range(len(bounds) - 1), jobs)  # faiss releases the GIL
        cell = np.ascontiguousarray(np.concatenate(cells), np.int64)
        index.add_core(len(db), faiss.swig_ptr(db), None, faiss.swig_ptr(cell))
        return index
    finally:
        faiss.omp_set_num_threads(threads)


def _search(db: np.ndarray, queries: np.ndarray, k: int, jobs: int = 1, index=None
            ) -> tuple[np.ndarray, np.ndarray]:
    """k nearest database rows per query row by Hamming distance (faiss binary index).

    Up to :data:`IVF_MIN_ROWS` database rows the scan is exact; beyond, an
    inverted file whose cells are centred on random database keypoints (about
    one per :data:`_ROWS_PER_CELL` rows, :data:`_PROBES` cells probed). Binary k-means cells found the same
    nearest neighbours (recall@4 0.989 vs 0.986 on 1.5M Fashion-MNIST
    keypoints) but their training took longer than adding and searching
    together. faiss runs on one OpenMP thread: on a busy 2-core machine two
    spinning threads were 4x slower than one. The queries are instead split
    over ``jobs`` Python threads (faiss releases the GIL; 1.5x on 2 cores);
    the results do not depend on ``jobs``. ``index``, if given, is
    :func:`_index` of ``db``, built once for several searches.
    """
    faiss = _faiss()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        if index is None:
            index = _index(db)
        parts = max(1, min(int(jobs), len(queries) // 10_000))
        if parts == 1:
            return index.search(queries, k)
        bounds = np.linspace(0, len(queries), parts + 1).astype(np.int64)
        found = thread_map(lambda i: index.search(queries[bounds[i]:bounds[i + 1]], k), range(parts), parts)
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])
    finally:
        faiss.omp_set_num_threads(threads)


def _shift_votes(local, q_key: np.ndarray, d_key: np.ndarray, pair: np.ndarray, n_pairs: int,
                 ratio: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the most votes that agree on one shift, and that shift: distinct query
    keypoints whose hit lies at the same displacement (bins of :data:`SHIFT_BIN` working
    pixels, on four grids offset by half a bin, so two votes a pixel apart never fall on two
    sides of one edge). The shift (``(n_pairs, 2)``, working pixels of the query image, NaN
    without votes) is the mean displacement of the winning bin's votes; the hit's position is
    taken times ``ratio`` (per vote: at the query's scale)."""
    shift = local.xy[d_key] * np.asarray(ratio, np.float32).reshape(-1, 1) - local.xy[q_key]
    best = np.zeros(n_pairs, np.int64)
    where = np.full((n_pairs, 2), np.nan)
    for ox, oy in ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5)):
        bx = np.floor(shift[:, 0] / SHIFT_BIN + ox).astype(np.int64) + 1024
        by = np.floor(shift[:, 1] / SHIFT_BIN + oy).astype(np.int64) + 1024
        cell, of, counts = np.unique((pair * 2048 + bx) * 2048 + by, return_inverse=True, return_counts=True)
        mean = np.stack([np.bincount(of, shift[:, k], len(cell)) for k in (0, 1)], 1) / counts[:, None]
        owner = cell // (2048 * 2048)
        top = np.lexsort((counts, owner))  # by pair, then count: the last of each pair wins
        last = top[np.r_[owner[top][1:] != owner[top][:-1], True]]
        better = counts[last] > best[owner[last]]
        best[owner[last][better]] = counts[last][better]
        where[owner[last][better]] = mean[last][better]
    return best, where


class KeypointCandidates(NamedTuple):
    """Pairs ``(a[i], b[i])`` the keypoint votes propose, and what the votes say about them."""

    a: np.ndarray
    b: np.ndarray
    votes: np.ndarray
    """Distinct query keypoints that hit the pair's other image."""
    shift_votes: np.ndarray
    """The most of those that agree on one shift."""
    shift: np.ndarray
    """``(n, 2)``: that shift of ``a``'s content in ``b`` (``a``'s working pixels and scale)."""


def keypoint_candidates(local, ia: np.ndarray, ib: np.ndarray, within: bool, *, per_query: int = 8,
                        max_hamming: int = MAX_HAMMING, min_votes: int = MIN_VOTES, jobs: int = 1,
                        indexes: dict | None = None, pixel_scale: np.ndarray | None = None) -> KeypointCandidates:
    """Image pairs whose keypoints match often enough to verify (:class:`KeypointCandidates`).

    ``a`` comes from ``ia`` (queries), ``b`` from ``ib`` (database). With
    ``within`` (``ia`` and ``ib`` the same set) self pairs are dropped and
    each unordered pair appears once with ``a < b``, and each image queries with
    half of :data:`QUERY_KEYPOINTS`: both images of a pair query the other, so
    a pair is looked up from as many keypoints as across the split, for half
    the searches. ``jobs`` threads search. ``indexes`` (a dict) keeps the
    database index of ``ib`` for a later call on the same ``ib`` (the train
    split is searched from val, then from itself).

    ``shift_votes`` counts the votes that agree on one shift (:func:`_shift_votes`):
    neighbouring tiles of one picture share few keypoints, but those few sit at
    one displacement. A pair with at least :data:`SHIFT_VOTES` of them is kept
    even when it is not among its query's best-voted partners. ``pixel_scale`` (per image, working
    pixels per file pixel; :func:`~.tiles.pixel_scale`) puts ``b``'s keypoints at ``a``'s scale
    first: a crop saved at its own size shares its original's pixels at one shift in file pixels.
    """
    none = np.zeros(0, np.int64)
    empty = KeypointCandidates(none, none, none, none, np.zeros((0, 2)))
    owner = local.owner()
    in_a = np.zeros(len(local), bool)
    in_a[ia] = True
    in_b = np.zeros(len(local), bool)
    in_b[ib] = True
    first = np.arange(len(owner)) - local.offsets[owner] < (QUERY_KEYPOINTS // 2 if within else QUERY_KEYPOINTS)
    q_rows = np.flatnonzero(in_a[owner] & first)
    d_rows = np.flatnonzero(in_b[owner])
    if not len(q_rows) or not len(d_rows):
        return empty
    k = _NEIGHBOURS + (1 if within else 0)
    index = None
    if indexes is not None:
        key = hashlib.sha1(np.ascontiguousarray(ib, np.int64).tobytes()).hexdigest()
        index = indexes.get(key)
        if index is None:
            index = indexes[key] = _index(local.desc[d_rows], jobs)
    dist, hits = _search(local.desc[d_rows], local.desc[q_rows], min(k, len(d_rows)), jobs, index)
    ok = (hits.ravel() >= 0) & (dist.ravel() <= max_hamming)
    q_key = np.repeat(q_rows, hits.shape[1])[ok]          # the voting query keypoint
    d_key = d_rows[hits.ravel()[ok]]                       # the keypoint it hits
    d_img = owner[d_key]                                   # and its image
    keep = owner[q_key] != d_img
    q_key, d_key, d_img = q_key[keep], d_key[keep], d_img[keep]
    if not len(q_key):
        return empty
    n = np.int64(len(local))
    # a query keypoint votes once per image it hits (its k neighbours may share an image)
    voter, first_hit = np.unique(q_key * n + d_img, return_index=True)
    q_key, d_key = q_key[first_hit], d_key[first_hit]
    q_img, d_img = owner[voter // n], voter % n
    if within:  # one unordered pair; keypoints of either image may vote
        swap = q_img > d_img
        q_key[swap], d_key[swap] = d_key[swap], q_key[swap]
        q_img, d_img = np.minimum(q_img, d_img), np.maximum(q_img, d_img)
    pairs, pair_of, votes = np.unique(q_img * n + d_img, return_inverse=True, return_counts=True)
    good = votes >= min_votes
    a, b, votes = pairs[good] // n, pairs[good] % n, votes[good]
    on_good = good[pair_of]
    ratio = 1.0 if pixel_scale is None else pixel_scale[owner[q_key[on_good]]] / pixel_scale[owner[d_key[on_good]]]
    shifts, moved = _shift_votes(local, q_key[on_good], d_key[on_good], np.cumsum(good)[pair_of[on_good]] - 1, len(a),
                                 ratio)
    if len(a):  # best-voted partners of each query image, within a share of its best
        order = np.lexsort((-votes, a))
        a, b, votes, shifts, moved = a[order], b[order], votes[order], shifts[order], moved[order]
        first = np.r_[0, np.flatnonzero(np.diff(a)) + 1]
        counts = np.diff(np.r_[first, len(a)])
        rank = np.arange(len(a)) - np.repeat(first, counts)
        top = votes * VOTE_SHARE >= np.repeat(votes[first], counts)
        if per_query:
            top &= rank < per_query
        keep = top | (shifts >= SHIFT_VOTES)
        a, b, votes, shifts, moved = a[keep], b[keep], votes[keep], shifts[keep], moved[keep]
    return KeypointCandidates(a.astype(np.int64), b.astype(np.int64), votes.astype(np.int64),
                              shifts.astype(np.int64), moved)


def score_from_inliers(inliers: np.ndarray, aligned_rms: np.ndarray | None = None,
                       extent: np.ndarray | None = None, aligned_grey: np.ndarray | None = None,
                       mid: float = INLIERS_MID, scale: float = INLIERS_SCALE) -> np.ndarray:
    """Logistic score of RANSAC inliers: 0.5 at ``mid``, ~0.9 two inliers above it.

    The inliers are first discounted by the evidence that the fit is a copy:

    - how badly the aligned pixels disagree, relative to the picture's contrast
      (``aligned_rms``, :func:`aligned_residual`): ``1 - aligned_rms / RMS_LIMIT``,
      and in grey levels (``aligned_grey``): ``1 - aligned_grey / GREY_LIMIT``
      (one half where the residual could not be taken);
    - how little of the shared area the inliers span (``extent``, their convex
      hull over the overlap): ``extent / EXTENT_FULL``, capped at 1;

    and raised where the aligned pixels agree to within :data:`GREY_CLOSE` grey
    levels: by ``1 + (GREY_CLOSE - aligned_grey) / GREY_CLOSE``, so a crop or a
    neighbouring tile whose shared area is pixel-identical but kept only 5-7
    common keypoints (each image keeps its own, frame-dependent corners) still
    counts, while look-alikes, at 9 grey levels and more, gain nothing. It
    raised photo recall by 0.017-0.022 at unchanged precision on both planted
    draws (tiles 25-50 % 0.25 -> 0.40 and 0.50 -> 0.70) and left Fashion-MNIST
    96 px unchanged but for one false pair in one draw.

    So the matching corners of one object moved over the same background (8
    inliers, residual 0.15, extent 0.03 in the test fixtures) or the outlines
    of two different sneakers (8-15 inliers at 9-30 grey levels on the
    Fashion-MNIST planted sets) do not prove a copy, while a copy under a
    caption or logo (tens of inliers at a residual of 0.3-0.55) does. Set on
    the four planted sets of ``benchmarks/results_copies.md`` (photos 256 and
    640 px, Fashion-MNIST 28 and 96 px) together: the keypoint candidates that
    are not copies reach at most 2 effective inliers on photos and 11-16 on
    Fashion-MNIST, where 4 of ~4,000 pass.
    """
    effective = np.asarray(inliers, np.float64)
    agreement = np.ones(len(effective))
    if aligned_rms is not None:
        agreement = agreement * np.clip(1.0 - np.asarray(aligned_rms, np.float64) / RMS_LIMIT, 0.0, 1.0)
    if aligned_grey is not None:
        agreement = agreement * np.clip(1.0 - np.asarray(aligned_grey, np.float64) / GREY_LIMIT, 0.0, 1.0)
    effective = effective * np.where(np.isfinite(agreement), agreement, 0.5)
    if aligned_grey is not None:  # pixels that agree to a few grey levels are evidence of their own
        grey = np.asarray(aligned_grey, np.float64)
        close = np.where(np.isfinite(grey), np.clip((GREY_CLOSE - grey) / GREY_CLOSE, 0.0, 1.0), 0.0)
        effective = effective * (1.0 + close)
    if extent is not None:
        spread = np.clip(np.asarray(extent, np.float64) / EXTENT_FULL, 0.0, 1.0)
        effective = effective * np.where(np.isfinite(spread), spread, 0.0)
    return 1.0 / (1.0 + np.exp(-(effective - mid) / scale))


_GRID_UNIT = np.stack(np.meshgrid((np.arange(12) + 0.5) / 12, (np.arange(12) + 0.5) / 12), -1).reshape(-1, 2)


def _coverage(matrix: np.ndarray, size_from: np.ndarray, size_to: np.ndarray) -> np.ndarray:
    """Share of each ``size_from`` frame (p, 2) inside ``size_to`` under ``matrix`` (p, 2, 3), on a 12x12 grid."""
    out = np.empty(len(matrix))
    for s in range(0, len(matrix), 8192):  # (p, 144) temporaries that stay in cache: 6x faster at 1M pairs
        m, to = matrix[s:s + 8192], size_to[s:s + 8192]
        pts = _GRID_UNIT[None] * size_from[s:s + 8192, None, :]  # (p, 144, 2)
        x = pts[..., 0] * m[:, 0, 0, None] + pts[..., 1] * m[:, 0, 1, None] + m[:, 0, 2, None]
        y = pts[..., 0] * m[:, 1, 0, None] + pts[..., 1] * m[:, 1, 1, None] + m[:, 1, 2, None]
        out[s:s + 8192] = ((x >= 0) & (y >= 0) & (x <= to[:, 0, None]) & (y <= to[:, 1, None])).mean(1)
    return out


def _matches(faiss, da: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(src, dst)`` of descriptor matches: nearest neighbour in ``db``
    passing Lowe's ratio test and :data:`MAX_HAMMING`, one per target keypoint
    (the closest). The two nearest come from ``faiss.knn_hamming`` (C, no
    per-match Python objects; the same neighbours as ``cv2.batchDistance``,
    ties included, in half its time, and a quarter of ``BFMatcher.knnMatch``'s)."""
    dist, nearest = faiss.knn_hamming(da, db, 2)
    good = np.flatnonzero((dist[:, 0] < _RATIO * dist[:, 1]) & (dist[:, 0] <= MAX_HAMMING) & (nearest[:, 0] >= 0))
    order = good[np.argsort(dist[good, 0], kind="stable")]
    _, keep = np.unique(nearest[order, 0], return_index=True)  # closest match per target keypoint
    src = order[keep]
    return src.astype(np.int64), nearest[src, 0].astype(np.int64)


def _major_variance(points: np.ndarray) -> float:
    """Largest eigenvalue of the 2x2 covariance of ``points`` (closed form, no LAPACK call)."""
    centred = points - points.sum(0) / len(points)
    (sxx, sxy), (_, syy) = (centred.T @ centred) / max(len(points) - 1, 1)
    return float((sxx + syy) / 2 + math.sqrt(((sxx - syy) / 2) ** 2 + sxy ** 2))


def _mild(matrix: np.ndarray) -> bool:
    """A full affine fit that is a stretch, not a shear: the axes stay near
    perpendicular (|cos| < 0.1) and their scales differ by 5 % to 2x (under
    5 % the similarity fit holds; the extra freedom would only fit noise)."""
    col_x, col_y = matrix[:, 0], matrix[:, 1]
    sx, sy = float(np.hypot(*col_x)), float(np.hypot(*col_y))
    if sx <= 0 or sy <= 0:
        return False
    stretch = abs(math.log(sy / sx))
    return abs(float(col_x @ col_y)) / (sx * sy) < 0.1 and math.log(1.05) <= stretch <= math.log(2.0)


def _verify_one(cv2, faiss, local, a: int, b: int) -> tuple[int, float, float, np.ndarray | None]:
    """``(inliers, inlier_ratio, inlier hull area, matrix)`` of one pair; ``(0, 0, 0, None)``
    without a sound fit."""
    nothing = (0, 0.0, 0.0, None)
    xa, da = local.of(a)
    xb, db = local.of(b)
    if len(da) < _MIN_MATCHES or len(db) < 2:
        return nothing
    src_idx, dst_idx = _matches(faiss, da, db)
    if len(src_idx) < _MIN_MATCHES:
        return nothing
    src, dst = xa[src_idx], xb[dst_idx]
    matrix, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=_REPROJ,
                                               maxIters=500, confidence=0.995)
    found = 0 if mask is None else int(mask.sum())
    if found < _AFFINE_BELOW:
        # a letterbox resized back to the frame, or a stretched copy: scale differs by axis
        affine, amask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=_REPROJ,
                                             maxIters=500, confidence=0.995)
        if affine is not None and amask is not None and int(amask.sum()) > found and _mild(affine):
            matrix, mask = affine, amask
    if matrix is None or mask is None:
        return nothing
    scale = math.sqrt(abs(float(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0])))
    inl = mask.ravel().astype(bool)
    inliers = int(inl.sum())  # one-to-one already: one match per source and per target keypoint
    if not 0.25 <= scale <= 4.0 or inliers < 3:
        return nothing
    # inliers along one edge are fine (a horizon fixes a shift); inliers in one blob are not
    if not min(_major_variance(src[inl]), _major_variance(dst[inl])) >= _MIN_SPREAD ** 2:
        return nothing
    # the inliers' convex hull over the shared area: a copy matches all over it,
    # a look-alike (one object moved on the same background) in one place
    hull = cv2.contourArea(cv2.convexHull(src[inl].astype(np.float32)))
    return inliers, inliers / min(len(da), len(db)), float(hull), matrix


def _geometry(matrix: np.ndarray, size_a: np.ndarray, size_b: np.ndarray, hull: np.ndarray) -> dict:
    """Scale, rotation, shift, both coverages and the inliers' extent of fitted pairs (vectorised)."""
    m = matrix
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    inverse = np.empty_like(m)
    inverse[:, 0, 0], inverse[:, 0, 1] = m[:, 1, 1] / det, -m[:, 0, 1] / det
    inverse[:, 1, 0], inverse[:, 1, 1] = -m[:, 1, 0] / det, m[:, 0, 0] / det
    inverse[:, :, 2] = -np.einsum("pij,pj->pi", inverse[:, :, :2], m[:, :, 2])
    cover_a = _coverage(m, size_a, size_b)
    area_a = cover_a * size_a[:, 0] * size_a[:, 1]
    return {"scale": np.sqrt(np.abs(det)), "rotation": np.degrees(np.arctan2(m[:, 1, 0], m[:, 0, 0])),
            "shift_x": m[:, 0, 2] / np.maximum(size_b[:, 0], 1), "shift_y": m[:, 1, 2] / np.maximum(size_b[:, 1], 1),
            "overlap": cover_a, "overlap_b": _coverage(inverse, size_b, size_a),
            "inlier_extent": np.where(area_a > 0, np.minimum(1.0, hull / np.where(area_a > 0, area_a, 1.0)), 0.0)}


_FIT_CHUNK = 512
"""Pairs per fitting task (RANSAC's random state is reset per task: results do not depend on ``jobs``)."""
_FORK_FROM = 4096
"""Pairs from which the fits run in worker processes: they hold the GIL (threads gained nothing)."""


def _fit_chunk(chunk: tuple[np.ndarray, np.ndarray]) -> list[tuple]:
    """:func:`_verify_one` of each pair of ``chunk``, on the ``(keypoints, thumbnails)``
    :func:`~.._parallel.shared`, each row ending with the pair's :func:`aligned_residual`
    ``(relative, grey levels)`` (NaN without thumbnails)."""
    cv2 = opencv("keypoint verification")
    faiss = _faiss()
    local, thumbs = shared()
    threads = faiss.omp_get_max_threads()
    cv2.setRNGSeed(0)
    faiss.omp_set_num_threads(1)
    try:
        rows = [_verify_one(cv2, faiss, local, int(x), int(y)) for x, y in zip(*chunk)]
    finally:
        faiss.omp_set_num_threads(threads)
    residual = np.full((2, len(rows)), np.nan)
    if thumbs is not None and rows:
        matrix = np.stack([np.full((2, 3), np.nan) if r[3] is None else r[3] for r in rows])
        residual[:] = aligned_residual(thumbs, local, *chunk, matrix, inliers=np.array([r[0] for r in rows]))
    return [(*r, *res) for r, res in zip(rows, residual.T.tolist())]


def verify_keypoints(local, a: np.ndarray, b: np.ndarray, *, thumbs: np.ndarray | None = None,
                     jobs: int = 1) -> dict[str, np.ndarray]:
    """Match keypoints of each pair ``(a[i], b[i])`` and fit a similarity transform.

    Returns arrays for :data:`KEYPOINT_COLUMNS`: ``inliers`` (0 where no
    sound transform was found), ``inlier_ratio``, ``scale``, ``rotation``
    (degrees), ``shift_x``/``shift_y`` (fractions of ``b``'s frame),
    ``overlap`` (share of ``a``'s frame inside ``b`` once aligned) and
    ``overlap_b`` (share of ``b``'s frame inside ``a``); NaN without a fit.
    From :data:`_FORK_FROM` pairs up, chunks of pairs run in ``jobs`` forked worker
    processes (:func:`~.._parallel.forked_map`); results do not depend on ``jobs``.
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    chunks = [(a[s:s + _FIT_CHUNK], b[s:s + _FIT_CHUNK]) for s in range(0, len(a), _FIT_CHUNK)]
    rows = forked_map(_fit_chunk, chunks, (local, thumbs), jobs if len(a) >= _FORK_FROM else 1)
    n = len(rows)
    out = {name: np.full(n, np.nan) for name in KEYPOINT_COLUMNS}
    out["inliers"] = np.array([r[0] for r in rows], np.int64)
    out["inlier_ratio"] = np.array([r[1] for r in rows], np.float64)
    out["matrix"] = np.full((n, 2, 3), np.nan)
    fitted = np.flatnonzero(out["inliers"] > 0)
    if len(fitted):
        out["matrix"][fitted] = np.stack([rows[i][3] for i in fitted])
        hull = np.array([rows[i][2] for i in fitted])
        geometry = _geometry(out["matrix"][fitted], local.size[a[fitted]].astype(np.float64),
                             local.size[b[fitted]].astype(np.float64), hull)
        for name, values in geometry.items():
            out[name][fitted] = values
    if thumbs is not None:
        out["aligned_rms"] = np.array([r[4] for r in rows], np.float64)
        out["aligned_grey"] = np.array([r[5] for r in rows], np.float64)
    return out

