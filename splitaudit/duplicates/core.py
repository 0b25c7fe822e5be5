"""``find_duplicates``: exact and near duplicates across and inside the splits.

One search between two sets of images (val against train, or a split against
itself) runs in this order: exact pairs (:mod:`.exact`), near candidates from
thumbnails, hashes and embeddings (:mod:`.candidates`) and from keypoint votes
(:mod:`.keypoints`), then verification: aligned thumbnails (:mod:`.verify`),
the embedding cosine, the opt-in geometric check (:mod:`.geometric`) and the
keypoint fit (and its aligned residual, :mod:`.residual`) where the thumbnails did
not already decide, the tile check (:mod:`.tiles`), and the overlay test (:mod:`.overlay`) of each
image's nearest thumbnails that nothing else confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._types import Progress
from ..errors import InputError, InputTypeError
from ..search.mirror import mirror_project, thumb_vectors
from .candidates import max_rms, near_candidates, prefilter, range_threshold, unique_pairs
from .clusters import duplicate_clusters, expected_cross
from .exact import exact_pair_counts, exact_pairs, inside_exact_groups
from .geometric import verify_geometric
from .overlay import OVERLAY_COLUMNS, overlay_candidates, verify_overlay
from .keypoints import KEYPOINT_COLUMNS, SHIFT_VOTES, keypoint_candidates, score_from_inliers, verify_keypoints
from .tiles import SCREEN_GREY, TILE_EVIDENCE, pixel_scale, thumb_grey, verify_tiles
from .params import DuplicateParams
from .result import WITHIN_COLUMNS, DuplicateResult, pair_table
from .verify import SCORE_MID, SCORE_SCALE, align_pairs, score_from_rms

__all__ = ["DuplicateResult", "find_duplicates", "HASHES", "GEO_MIN_CORR"]

GEO_MIN_CORR = 0.6
"""16x16 thumbnail correlation a candidate needs with ``geometric=True`` (crops
of 15-25% and shifts fall well below the default ``min_corr``)."""

HASHES = ("phash", "dhash", "ahash")
THUMB_EVIDENCE = ("flipped", "thumb_rms", "thumb_nrms", "thumb_corr")

OVERLAP_BELOW = 0.8
"""A keypoint-verified pair is ``kind="overlap"`` when the aligned frames cover
less than this share of either image (a crop, neighbouring tiles)."""


@dataclass(frozen=True)
class _Space:
    """What every search between two index sets shares: the fingerprints, the
    embeddings, the 16x16 thumbnail vectors (as is and mirrored, ``pooled``)
    with their standard deviations, the mirror-PCA coordinates and the
    per-image range-search thresholds."""

    fp: object
    emb: np.ndarray | None
    pooled: np.ndarray
    std: np.ndarray
    coords: tuple[np.ndarray, np.ndarray]
    thr: np.ndarray
    indexes: dict = field(default_factory=dict)  # keypoint indexes by database set, built once
    paths: np.ndarray | None = None  # image files, for the tile check (None: no tile check)

    @property
    def local(self):
        """The ORB keypoints, or None where there are none to search."""
        local = getattr(self.fp, "local", None)
        return local if local is not None and len(local.desc) > 0 else None


def _check_inputs(fingerprints, images, embeddings) -> None:
    for attr in ("table", "thumbs"):
        if not hasattr(fingerprints, attr):
            raise InputTypeError(
                f"fingerprints must be a Fingerprints object with .table and .thumbs; "
                f"got {type(fingerprints).__name__} without .{attr}")
    if not isinstance(images, pd.DataFrame):
        raise InputTypeError(f"images must be a pandas DataFrame (split.images); got {type(images).__name__}")
    missing = {"path", "split"} - set(images.columns)
    if missing:
        raise InputError(f"images must have columns path and split; missing {sorted(missing)}")
    n = len(images)
    if len(fingerprints.table) != n or len(fingerprints.thumbs) != n:
        raise InputError(
            f"fingerprints must have one row per image: images has {n} rows, fingerprints "
            f"table {len(fingerprints.table)} and thumbs {len(fingerprints.thumbs)}")
    if embeddings is not None:
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or len(emb) != n:
            raise InputError(f"embeddings must be an (N, D) array with N={n}; got shape {emb.shape}")


def _evidence(table, fp, emb, a, b, flipped):
    ev = {}
    for h in HASHES:
        direct = table[h].to_numpy(np.uint64)
        mirror = table[h + "_flip"].to_numpy(np.uint64)
        ev[h] = np.where(flipped, np.bitwise_count(mirror[a] ^ direct[b]),
                         np.bitwise_count(direct[a] ^ direct[b])).astype(np.int16)
    ev["descriptor_cos"] = _row_dots(getattr(fp, "descriptor", None), a, b)
    ev["embedding_cos"] = _row_dots(emb, a, b)
    return ev


def _row_dots(x: np.ndarray | None, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(x[a] * x[b]).sum(1)`` as float32 (NaN without ``x``), 8,192 rows at a time: the gathered
    rows stay in cache (7x faster on the 48k split's 391k pairs, the same values)."""
    out = np.full(len(a), np.nan, np.float32)
    for s in range(0, len(a) if x is not None else 0, 8192):
        out[s:s + 8192] = (x[a[s:s + 8192]] * x[b[s:s + 8192]]).sum(1)
    return out


def _candidates(space: _Space, ia, ib, within: bool, p: DuplicateParams):
    """Near candidates ``(a, b, keypoint_only, voted, shifted, overlaid)``: thumbnail, hash and
    embedding candidates that pass the thumbnail prefilter, plus the pairs keypoints vote for and
    each image's nearest thumbnails for the overlay test.
    ``keypoint_only`` marks pairs no filter passed (only the votes or the overlay neighbours
    proposed them: only the keypoint fit, the tile check or the overlay test may decide them);
    ``voted`` the pairs the votes proposed (fitted by keypoints);
    ``shifted`` (``(n, 2)``) the shift the votes agree on, for the tile
    candidates (:data:`~.keypoints.SHIFT_VOTES` agreeing votes; NaN for the other pairs);
    ``overlaid`` the overlay neighbours."""
    a, b = near_candidates(space.fp.table, space.coords, space.thr, space.emb, ia, ib, within, p)
    if space.emb is None:  # embedding hits may be crops or flips the thumbnails cannot confirm
        if p.geometric:  # looser: verify_geometric judges what the plain alignment cannot
            a, b = prefilter(space.pooled, space.std, a, b, min(p.min_corr, GEO_MIN_CORR), np.inf)
        else:
            a, b = prefilter(space.pooled, space.std, a, b, p.min_corr, max_rms(p))
    oa, ob = (overlay_candidates(space.coords, ia, ib, within, jobs=p.jobs, pooled=space.pooled) if p.overlay
              else (a[:0], b[:0]))
    oa, ob = unique_pairs([oa], [ob], within)
    local = space.local if p.keypoints else None
    if local is None:
        hashed = pd.MultiIndex.from_arrays([a, b])
        a, b = unique_pairs([a, oa], [b, ob], within)
        both = pd.MultiIndex.from_arrays([a, b])
        return (a, b, ~both.isin(hashed), np.zeros(len(a), bool), np.full((len(a), 2), np.nan),
                both.isin(pd.MultiIndex.from_arrays([oa, ob])))
    kc = keypoint_candidates(local, ia, ib, within, per_query=p.max_keypoint_candidates, jobs=p.jobs,
                             indexes=space.indexes, pixel_scale=pixel_scale(space.local, space.fp.table))
    hashed = pd.MultiIndex.from_arrays([a, b])
    a, b = unique_pairs([a, kc.a, oa], [b, kc.b, ob], within)
    both = pd.MultiIndex.from_arrays([a, b])
    keypoint_only = ~both.isin(hashed)
    # every proposed pair is fitted: on the 48k split the fit settles most of the pairs proposed for
    # their shift votes, which would otherwise all go to the (costlier) tile check
    voted = both.isin(pd.MultiIndex.from_arrays([kc.a, kc.b]))
    tile = kc.shift_votes >= SHIFT_VOTES
    shifted = (pd.DataFrame(kc.shift[tile], index=pd.MultiIndex.from_arrays([kc.a[tile], kc.b[tile]]))
               .reindex(both).to_numpy(np.float64))
    return a, b, keypoint_only, voted, shifted, both.isin(pd.MultiIndex.from_arrays([oa, ob]))


def _align_proposed(space: _Space, a, b, keypoint_only, p: DuplicateParams) -> dict[str, np.ndarray]:
    """:func:`~.verify.align_pairs` of the pairs a hash, thumbnail or embedding search proposed;
    the pairs only the keypoint votes (or the overlay neighbours) proposed get NaN (``flipped``
    False): only their fit (or the overlay test) may decide them (a crop's or a tile's whole-frame
    alignment says nothing), and on the 48k split they are ~88 % of the candidates (aligning them
    cost ~25 s of ~330)."""
    some = np.flatnonzero(~keypoint_only)
    done = align_pairs(space.fp.thumbs, a[some], b[some], max_shift=p.max_shift, trim=p.trim,
                       pooled=space.pooled, jobs=p.jobs)
    out = {}
    for name, values in done.items():
        if values.dtype == bool:
            full = np.zeros(len(a), bool)
        else:
            full = np.full(len(a), np.nan, values.dtype if values.dtype.kind == "f" else np.float64)
        full[some] = values
        out[name] = full
    return out


def _fit_keypoints(space: _Space, a, b, fit, score, decided, p: DuplicateParams) -> dict:
    """Keypoint evidence for the pairs ``fit``; raises ``score`` where the fit proves more
    (and marks those pairs ``decided`` by keypoints). Returns the evidence columns."""
    kp = {name: np.full(len(a), np.nan) for name in KEYPOINT_COLUMNS}
    fitted = verify_keypoints(space.local, a[fit], b[fit], thumbs=space.fp.thumbs, jobs=p.jobs)
    for name in KEYPOINT_COLUMNS:
        kp[name][fit] = fitted[name]
    kscore = np.zeros(len(a))
    kscore[fit] = score_from_inliers(fitted["inliers"], fitted["aligned_rms"], fitted["inlier_extent"],
                                     fitted["aligned_grey"])
    decided[kscore > score] = "keypoints"
    np.maximum(score, kscore, out=score)
    return kp


def _verify(space: _Space, a, b, keypoint_only, voted, shifted, overlaid, p: DuplicateParams):
    """Score each candidate: aligned thumbnails, the embedding cosine, the opt-in geometric
    check, the keypoint fit where the thumbnails did not already confirm a voted pair, then the
    tile check and the overlay test for the candidates still unsure.
    Returns ``(score, decided, thumbnail evidence, keypoint evidence)``."""
    v = _align_proposed(space, a, b, keypoint_only, p)
    score = np.where(keypoint_only, 0.0, score_from_rms(v["thumb_rms"], p.score_mid, p.score_scale))
    # fitted: pairs the keypoints voted for that the thumbnails did not already confirm
    fit = np.flatnonzero(((score < p.min_score) | keypoint_only) & voted)
    if space.emb is not None:
        emb_score = score_from_rms(-(space.emb[a] * space.emb[b]).sum(1), -p.embedding_cos, 0.01)
        score = np.maximum(score, emb_score)
    if p.geometric:
        unsure = np.flatnonzero(score < p.min_score)
        if len(unsure):
            geo = verify_geometric(space.fp.thumbs, a[unsure], b[unsure])
            score[unsure] = np.maximum(score[unsure], geo["score"])
    decided = np.full(len(a), "thumbnail", object)
    if space.emb is not None:
        decided[emb_score >= score] = "embedding"
    kp = {name: np.full(len(a), np.nan) for name in KEYPOINT_COLUMNS}
    if p.keypoints and space.local is not None:
        score[keypoint_only] = 0.0
        kp = _fit_keypoints(space, a, b, fit, score, decided, p)
    kp.update({name: np.full(len(a), np.nan) for name in TILE_EVIDENCE})
    if p.keypoints and space.local is not None and space.paths is not None:
        unsure = np.flatnonzero(np.isfinite(shifted[:, 0]) & (score < p.min_score))
        _fit_tiles(space, a, b, unsure, shifted[unsure], score, decided, kp, p)
    kp.update({name: np.full(len(a), np.nan) for name in OVERLAY_COLUMNS})
    unsure = np.flatnonzero(overlaid & (score < p.min_score))
    if len(unsure):  # a caption or logo over a copy: the thumbnails agree but inside one box
        table = space.fp.table
        sides = np.fmin(table["width"].to_numpy(np.float64), table["height"].to_numpy(np.float64))
        o = verify_overlay(space.fp.thumbs, space.pooled, a[unsure], b[unsure], sides=sides, jobs=p.jobs)
        for name in OVERLAY_COLUMNS:
            kp[name][unsure] = o[name]
        hit = o["score"] > score[unsure]
        won = unsure[hit]
        decided[won], score[won], v["flipped"][won] = "overlay", o["score"][hit], o["flipped"][hit]
    return score, decided, v, kp


def _fit_tiles(space: _Space, a, b, unsure, moved, score, decided, kp, p: DuplicateParams) -> None:
    """The tile check (:mod:`.tiles`) on the tile candidates nothing else confirmed whose
    thumbnails agree at the voted shift (:func:`~.tiles.thumb_grey`); where it proves an
    overlap the pair is ``decided`` by tiles and its keypoint columns describe the shift
    (scale 1, rotation 0)."""
    scale = pixel_scale(space.local, space.fp.table)
    passed = thumb_grey(space.fp.thumbs, space.local.size, a[unsure], b[unsure], moved,
                        ratio=scale[b[unsure]] / scale[a[unsure]]) <= SCREEN_GREY
    unsure, moved = unsure[passed], moved[passed]
    if not len(unsure):
        return
    # the votes' shift of a's content in b (working pixels) -> b's origin in a's frame (fractions)
    t = verify_tiles(space.paths, a[unsure], b[unsure], hints=-moved / space.local.size[a[unsure]], jobs=p.jobs)
    for name in TILE_EVIDENCE:
        kp[name][unsure] = t[name]
    hit = t["score"] > score[unsure]
    won = unsure[hit]
    decided[won] = "tiles"
    score[won] = t["score"][hit]
    for name in ("inliers", "inlier_ratio", "inlier_extent", "aligned_rms", "aligned_grey"):
        kp[name][won] = np.nan
    kp["scale"][won], kp["rotation"][won] = 1.0, 0.0
    for name in ("overlap", "overlap_b", "shift_x", "shift_y"):
        kp[name][won] = t[name][hit]


def _pairs_between(space: _Space, ia, ib, within: bool, p: DuplicateParams, progress, stage: str):
    """Verified exact + near pairs between two index sets, as a DataFrame (a, b, ...)."""
    table = space.fp.table
    if progress:
        progress(stage, 0, 3)
    exact = exact_pairs(table, ia, ib, within)
    if progress:
        progress(stage, 1, 3)
    a, b, keypoint_only, voted, shifted, overlaid = _candidates(space, ia, ib, within, p)
    if progress:
        progress(stage, 2, 3)
    if len(exact):  # pairs inside one exact group are not near pairs (and would be quadratic)
        fresh = ~inside_exact_groups(table, a, b)
        a, b, keypoint_only, voted, shifted, overlaid = (x[fresh] for x in (a, b, keypoint_only, voted, shifted,
                                                                            overlaid))
    score, decided, v, kp = _verify(space, a, b, keypoint_only, voted, shifted, overlaid, p)
    keep = score >= p.min_score
    kind = np.full(len(a), "near", object)
    partial = np.fmin(kp["overlap"], kp["overlap_b"]) < OVERLAP_BELOW
    kind[np.isin(decided, ["keypoints", "tiles"]) & partial] = "overlap"
    near = pd.DataFrame({"a": a[keep], "b": b[keep], "kind": kind[keep], "score": score[keep],
                         "exact_bytes": False, "exact_pixels": False,
                         **{k: v[k][keep] for k in THUMB_EVIDENCE},
                         **{k: np.asarray(kp[k])[keep]
                            for k in (*KEYPOINT_COLUMNS, *TILE_EVIDENCE, *OVERLAY_COLUMNS)},
                         "decided_by": decided[keep]})
    ea, eb = exact["a"].to_numpy(np.int64), exact["b"].to_numpy(np.int64)
    ve = align_pairs(space.fp.thumbs, ea, eb, max_shift=0, trim=p.trim, pooled=space.pooled)
    exact_df = pd.DataFrame({"a": ea, "b": eb, "kind": "exact", "score": 1.0,
                             "exact_bytes": exact["exact_bytes"].to_numpy(bool),
                             "exact_pixels": exact["exact_pixels"].to_numpy(bool),
                             **{k: ve[k] for k in THUMB_EVIDENCE},
                             **{k: np.full(len(ea), np.nan)
                                for k in (*KEYPOINT_COLUMNS, *TILE_EVIDENCE, *OVERLAY_COLUMNS)},
                             "decided_by": "exact"})
    out = pd.concat([exact_df, near], ignore_index=True)
    out["flipped"] = out["flipped"].astype(bool)
    ev = _evidence(table, space.fp, space.emb, out["a"].to_numpy(np.int64), out["b"].to_numpy(np.int64),
                   out["flipped"].to_numpy(bool))
    for k, col in ev.items():
        out[k] = col
    if progress:
        progress(stage, 3, 3)
    return out


def _space(fingerprints, ok: np.ndarray, emb, p: DuplicateParams, paths=None) -> _Space:
    """The search space of :func:`find_duplicates`: 16x16 pooled thumbnails as is and
    mirrored (2, N, 256), their standard deviation, mirror-PCA coordinates
    ``(sym, anti)`` and per-image squared-distance thresholds of the range search.
    Rows where ``ok`` is False stay zero."""
    n = len(ok)
    pooled = np.zeros((2, n, 256), np.float32)
    std = np.zeros(n, np.float32)
    rows = slice(None) if ok.all() else ok  # a view, not a masked copy, in the usual case
    if ok.any():
        pooled[0, rows], std[rows] = thumb_vectors(fingerprints.thumbs[rows], return_std=True)
        # Mirroring the pooled image equals pooling the mirror: reverse the 16 columns.
        pooled[1, rows] = pooled[0, rows].reshape(-1, 16, 16)[:, :, ::-1].reshape(-1, 256)
    dims = min(p.search_dims, 256)
    coords = (np.zeros((n, 0), np.float32), np.zeros((n, 0), np.float32))
    if ok.any() and dims:
        sym, anti = mirror_project(pooled[0, rows], dims)
        if rows is ok:
            coords = (np.zeros((n, sym.shape[1]), np.float32), np.zeros((n, anti.shape[1]), np.float32))
            coords[0][ok], coords[1][ok] = sym, anti
        else:
            coords = (sym, anti)
    if p.geometric:  # every pair the looser geometric prefilter could accept (no residual bound)
        thr = range_threshold(std, min(p.min_corr, GEO_MIN_CORR), np.inf)
    else:
        thr = range_threshold(std, p.min_corr, max_rms(p))
    return _Space(fingerprints, emb, pooled, std, coords, thr, paths=paths)


def _expected(table, pairs, within_df, ia_train, ia_val, within: bool) -> dict:
    """Observed vs expected cross-split pairs, for all pairs and for exact ones. Exact pairs
    are listed as stars (linear), so they are counted from group sizes."""
    wt = within_df["split"] == "train"
    wv = within_df["split"] == "val"
    exact_w = within_df["kind"] == "exact"
    exact_cross = exact_pair_counts(table, ia_val, ia_train, False)
    exact_train = exact_pair_counts(table, ia_train, ia_train, True) if within else 0
    exact_val = exact_pair_counts(table, ia_val, ia_val, True) if within else 0
    near_cross = int((pairs["kind"] != "exact").sum())
    expected = expected_cross(len(ia_train), len(ia_val), exact_train + int((wt & ~exact_w).sum()),
                              exact_val + int((wv & ~exact_w).sum()), exact_cross + near_cross)
    expected["exact"] = expected_cross(len(ia_train), len(ia_val), exact_train, exact_val, exact_cross)
    if not within:
        expected["note"] = "within=False: no within-split pairs searched, so the expectation is 0"
    return expected


def find_duplicates(
    fingerprints,
    images: pd.DataFrame,
    *,
    embeddings: np.ndarray | None = None,
    hash_radius: int = 4,
    max_hash_candidates: int = 8,
    neighbors: int = 5,
    search_dims: int = 64,
    min_corr: float = 0.9,
    max_shift: int = 1,
    trim: float = 0.05,
    score_mid: float = SCORE_MID,
    score_scale: float = SCORE_SCALE,
    min_score: float = 0.5,
    embedding_cos: float = 0.97,
    min_embedding_cos: float = 0.9,
    within: bool = True,
    keypoints: bool = True,
    max_keypoint_candidates: int = 8,
    overlay: bool = True,
    geometric: bool = False,
    backend: str = "auto",
    jobs: int | None = None,
    progress: Progress | None = None,
) -> DuplicateResult:
    """Find exact and near duplicates across the split and inside each side.

    Candidates come from equal SHA-1 of bytes or pixels (``exact``) and a
    blocked range search on 16x16 thumbnails (as is and mirrored; PCA to
    ``search_dims``) for every pair the thumbnail prefilter could accept
    (``min_corr`` and a residual bound). Of those, each image keeps its
    ``neighbors`` closest and the ``max_hash_candidates`` closest whose pHash
    or dHash (also against the mirror) is within ``hash_radius``. With
    ``embeddings``, full Hamming range hits and the nearest embeddings are
    added (unfiltered). Each near candidate is verified
    on aligned thumbnails (:mod:`splitaudit.duplicates.verify`) and kept when
    its ``score`` is at least ``min_score``.

    Parameters
    ----------
    fingerprints : Fingerprints
        From :func:`splitaudit.fingerprints.compute_fingerprints`, rows in
        ``images`` order. Rows with ``ok == False`` are never paired.
    images : pandas.DataFrame
        ``split.images`` (``path``, ``split`` in {train, val}, ``label``).
    embeddings : array (N, D), optional
        L2-normalised; adds neighbour candidates, and a pair whose cosine
        reaches ``embedding_cos`` scores at least 0.5 (a logistic over 0.01).
    hash_radius : int, default 4
        Largest Hamming distance (of 64 bits) for a hash candidate.
    max_hash_candidates : int, default 8
        Closest hash hits kept per image and hash (0 keeps all).
    neighbors : int, default 5
        Thumbnail (and embedding) neighbours per image; 0 turns it off.
    search_dims : int, default 64
        PCA dimensions for the thumbnail neighbour search.
    min_corr : float, default 0.9
        16x16 thumbnail correlation (as is or mirrored) a candidate needs
        before it is aligned and scored; planted copies reach >= 0.95.
    max_shift, trim : int, float
        Alignment shift (thumbnail pixels) and residual trim share.
    score_mid, score_scale : float, default 5.0, 0.5
        Thumbnail residual RMS (grey levels) where the score is 0.5, and the
        logistic's width.
    min_score : float, default 0.5
        Near pairs below this score are dropped.
    within : bool, default True
        Also search train–train and val–val (needed for ``expected`` and
        full clusters).
    overlay : bool, default True
        Compare each image with :data:`~.overlay.OVERLAY_NEIGHBOURS` of its
        :data:`~.overlay.OVERLAY_SHORTLIST` nearest thumbnails (no correlation gate; those that
        agree best outside their worst pixels) for a copy under a caption, logo or watermark
        (:mod:`~splitaudit.duplicates.overlay`, ``decided_by="overlay"``).
    geometric : bool, default False
        Opt-in second verifier for crops, shifts, rotations and overlays:
        thumbnail candidates need only a 16x16 correlation of
        :data:`GEO_MIN_CORR` (no residual bound), and every candidate whose
        plain alignment scores below ``min_score`` is re-checked with
        :func:`~splitaudit.duplicates.geometric.verify_geometric` (similarity
        warp + intensity fit); the pair keeps the larger of the two scores.
        About 10-14 ms per re-checked pair on one core, so it costs minutes
        on tens of thousands of images. On the Fashion-MNIST planted-edit
        set (``benchmarks/results_embeddings.md`` section 3c) it raised
        recall from 0.73 to 0.79 but let precision fall to 0.965 (tiny
        look-alike garments); it suits photo-like data with crops and
        shifts.
    backend : {"auto", "numpy", "faiss", "mih"}
        Hamming search backend (used with ``embeddings``), see
        :func:`~splitaudit.search.hamming_range`; all give the same pairs.
    jobs : int, optional
        Threads for the blocked thumbnail search and the keypoint fits
        (default: all cores; results do not depend on it).
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    DuplicateResult

    Examples
    --------
    >>> result = find_duplicates(fps, split.images)          # doctest: +SKIP
    >>> result.pairs[["val_path", "train_path", "kind", "score"]]  # doctest: +SKIP
    """
    p = DuplicateParams(hash_radius=hash_radius, max_hash_candidates=max_hash_candidates, neighbors=neighbors,
                        search_dims=search_dims, min_corr=min_corr, max_shift=max_shift, trim=trim,
                        score_mid=score_mid, score_scale=score_scale, min_score=min_score,
                        embedding_cos=embedding_cos, min_embedding_cos=min_embedding_cos, within=within,
                        keypoints=keypoints, max_keypoint_candidates=max_keypoint_candidates,
                        overlay=overlay, geometric=geometric, backend=backend, jobs=jobs)
    _check_inputs(fingerprints, images, embeddings)
    table = fingerprints.table
    n = len(images)
    ok = table["ok"].to_numpy(bool) if "ok" in table.columns else np.ones(n, bool)
    split = images["split"].to_numpy()
    ia_train = np.flatnonzero(ok & (split == "train"))
    ia_val = np.flatnonzero(ok & (split == "val"))
    emb = None if embeddings is None else np.asarray(embeddings, dtype=np.float32)

    if progress:
        progress("thumbnail vectors", 0, 1)
    files = images["abspath"] if "abspath" in images.columns else images["path"]
    space = _space(fingerprints, ok, emb, p, paths=files.to_numpy(object))
    if progress:
        progress("thumbnail vectors", 1, 1)
    cross = _pairs_between(space, ia_val, ia_train, False, p, progress, "cross-split search")
    parts = []
    for name, idx in (("train", ia_train), ("val", ia_val)) if p.within else ():
        w = _pairs_between(space, idx, idx, True, p, progress, f"within {name}")
        w.insert(0, "split", name)
        parts.append(w)

    labels = images["label"].to_numpy(object) if "label" in images.columns else np.full(n, None, object)
    paths = images["path"].to_numpy(object)
    pairs = pair_table(cross, paths, labels, cross=True)
    within_df = (pair_table(pd.concat(parts, ignore_index=True), paths, labels, cross=False) if parts
                 else pd.DataFrame(columns=WITHIN_COLUMNS))

    if progress:
        progress("clusters", 0, 1)
    ea = np.concatenate([pairs["val_index"].to_numpy(np.int64), within_df["index_a"].to_numpy(np.int64)])
    eb = np.concatenate([pairs["train_index"].to_numpy(np.int64), within_df["index_b"].to_numpy(np.int64)])
    clusters = duplicate_clusters(n, ea, eb)
    if progress:
        progress("clusters", 1, 1)
    return DuplicateResult(pairs=pairs, within=within_df, clusters=clusters,
                           expected=_expected(table, pairs, within_df, ia_train, ia_val, p.within),
                           params=p.to_dict())
