"""``find_duplicates``: exact and near duplicates across and inside the splits."""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._types import Progress, jsonable
from .clusters import duplicate_clusters, expected_cross
from ..search.hamming import HAMMING_BACKENDS
from .candidates import _max_rms, _near_candidates, _prefilter, _range_threshold, unique_pairs
from .keypoints import KEYPOINT_COLUMNS, keypoint_candidates, score_from_inliers, verify_keypoints
from .reframe import geometry_vectors
from ..search.mirror import mirror_project, thumb_vectors
from .learned import centred_embeddings, learned_candidates, learned_score, load_verifier
from .verify import SCORE_MID, SCORE_SCALE, align_pairs, score_from_rms, verify_geometric

__all__ = ["DuplicateResult", "find_duplicates", "HASHES", "GEO_MIN_CORR"]

GEO_MIN_CORR = 0.6
"""16x16 thumbnail correlation a candidate needs with ``geometric=True`` (crops
of 15-25% and shifts fall well below the default ``min_corr``)."""

HASHES = ("phash", "dhash", "ahash")

PAIR_COLUMNS = [
    "val_path", "train_path", "val_index", "train_index", "kind", "score",
    "val_label", "train_label", "label_conflict", "exact_bytes", "exact_pixels",
    "phash", "dhash", "ahash", "flipped", "thumb_rms", "thumb_nrms", "thumb_corr",
    "descriptor_cos", "embedding_cos", *KEYPOINT_COLUMNS, "decided_by",
]
WITHIN_COLUMNS = [
    "split", "path_a", "path_b", "index_a", "index_b", "kind", "score",
    "label_a", "label_b", "label_conflict", "exact_bytes", "exact_pixels",
    "phash", "dhash", "ahash", "flipped", "thumb_rms", "thumb_nrms", "thumb_corr",
    "descriptor_cos", "embedding_cos", *KEYPOINT_COLUMNS, "decided_by",
]
OVERLAP_BELOW = 0.8
"""A keypoint-verified pair is ``kind="overlap"`` when the aligned frames cover
less than this share of either image (a crop, neighbouring tiles)."""


@dataclass(frozen=True)
class DuplicateResult:
    """Duplicates found by :func:`find_duplicates`.

    Attributes
    ----------
    pairs : pandas.DataFrame
        One row per cross-split pair (val image, train image): ``val_path,
        train_path, val_index, train_index, kind`` (``exact`` or ``near``),
        ``score`` in [0, 1], ``val_label, train_label, label_conflict``, and
        the evidence: ``exact_bytes, exact_pixels``, Hamming distances
        ``phash, dhash, ahash`` (taken on the mirror when ``flipped``),
        ``thumb_rms`` (grey levels), ``thumb_nrms``, ``thumb_corr``,
        ``descriptor_cos`` and ``embedding_cos`` (NaN without embeddings).
        Indices are row positions in ``split.images``.
    within : pandas.DataFrame
        Pairs inside one split: ``split`` (train or val), ``path_a, path_b,
        index_a < index_b``, ``kind, score, label_a, label_b,
        label_conflict`` and the same evidence columns.
    clusters : numpy.ndarray
        int64 cluster id per image (connected components of all reported
        pairs, cross and within); a singleton has its own id.
    expected : dict
        Observed vs expected cross-split pairs under a random split, see
        :func:`~splitaudit.duplicates.clusters.expected_cross`; computed for
        all pairs and, under ``"exact"``, exact pairs only.
    params : dict
        The thresholds used.
    """

    pairs: pd.DataFrame
    within: pd.DataFrame
    clusters: np.ndarray = field(repr=False)
    expected: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """All pairs in one table: ``relation`` is ``cross``, ``train`` or ``val``;
        for cross pairs ``a`` is the val image and ``b`` the train image."""
        cross = self.pairs.rename(columns={
            "val_path": "path_a", "train_path": "path_b", "val_index": "index_a",
            "train_index": "index_b", "val_label": "label_a", "train_label": "label_b"})
        cross.insert(0, "relation", "cross")
        within = self.within.rename(columns={"split": "relation"})
        return pd.concat([cross, within], ignore_index=True)

    def summary(self) -> dict:
        """Counts for reports: pairs by kind, val images with a train duplicate, ..."""
        p = self.pairs
        return {
            "cross_exact": int((p["kind"] == "exact").sum()),
            "cross_near": int((p["kind"] == "near").sum()),
            "cross_overlap": int((p["kind"] == "overlap").sum()),
            "val_with_train_duplicate": int(p["val_index"].nunique()),
            "label_conflicts": int(p["label_conflict"].sum()),
            "within_train": int((self.within["split"] == "train").sum()),
            "within_val": int((self.within["split"] == "val").sum()),
            "n_clusters_multi": int((np.bincount(self.clusters) > 1).sum()) if len(self.clusters) else 0,
            "expected": self.expected,
        }

    def to_json(self) -> str:
        out = self.summary()
        out["params"] = self.params
        out["pairs"] = self.pairs.to_dict(orient="records")
        return json.dumps(jsonable(out), indent=2, allow_nan=False)


def _validate(fingerprints, images, embeddings, params):
    for attr in ("table", "thumbs"):
        if not hasattr(fingerprints, attr):
            raise TypeError(
                f"fingerprints must be a Fingerprints object with .table and .thumbs; "
                f"got {type(fingerprints).__name__} without .{attr}")
    if not isinstance(images, pd.DataFrame):
        raise TypeError(f"images must be a pandas DataFrame (split.images); got {type(images).__name__}")
    missing = {"path", "split"} - set(images.columns)
    if missing:
        raise ValueError(f"images must have columns path and split; missing {sorted(missing)}")
    n = len(images)
    if len(fingerprints.table) != n or len(fingerprints.thumbs) != n:
        raise ValueError(
            f"fingerprints must have one row per image: images has {n} rows, fingerprints "
            f"table {len(fingerprints.table)} and thumbs {len(fingerprints.thumbs)}")
    if embeddings is not None:
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or len(emb) != n:
            raise ValueError(f"embeddings must be an (N, D) array with N={n}; got shape {emb.shape}")
    if not isinstance(params["jobs"], (int, np.integer)) or isinstance(params["jobs"], bool) or params["jobs"] < 1:
        raise ValueError(f"jobs must be a positive int or None; got {params['jobs']!r}")
    for name in ("hash_radius", "neighbors", "max_hash_candidates", "max_shift", "search_dims",
                 "max_keypoint_candidates"):
        value = params[name]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative int; got {value!r}")
    if not isinstance(params["keypoints"], (bool, np.bool_)):
        raise TypeError(f"keypoints must be a bool; got {type(params['keypoints']).__name__}")
    if not isinstance(params["geometric"], (bool, np.bool_)):
        raise TypeError(f"geometric must be a bool; got {type(params['geometric']).__name__}")
    if not 0.0 <= params["min_score"] <= 1.0:
        raise ValueError(f"min_score must be in [0, 1]; got {params['min_score']!r}")
    if params["verifier"] not in ("thumbnail", "learned"):
        raise ValueError(f"verifier must be 'thumbnail' or 'learned'; got {params['verifier']!r}")
    if params["verifier"] == "learned" and embeddings is None:
        raise ValueError("verifier='learned' needs embeddings (embed_images, default model); got None")
    if not 0.0 <= params["trim"] < 0.5:
        raise ValueError(f"trim must be in [0, 0.5); got {params['trim']!r}")


def _exact_pairs(table, ia, ib, within):
    """(a, b, exact_bytes, exact_pixels) for equal SHA-1 of bytes or pixels, linear in
    the number of images: each query image is paired with one representative of its
    group (the group's smallest index on the ``ib`` side), not with every member.

    Across the split a val image thus gets one exact train partner; inside a split
    a group of ``m`` copies gives the ``m - 1`` edges of a star, which is all that
    clusters and ``resplit`` need (:func:`exact_pair_counts` counts the pairs).
    """
    found = []
    for col in ("bytes_sha1", "pixel_sha1"):
        left = pd.DataFrame({"a": ia, "key": table[col].to_numpy()[ia]}).dropna()
        right = pd.DataFrame({"b": ib, "key": table[col].to_numpy()[ib]}).dropna()
        rep = right.groupby("key", sort=False)["b"].min()
        m = left.assign(b=left["key"].map(rep)).dropna(subset=["b"])[["a", "b"]].astype(np.int64)
        m = m[m["a"] != m["b"]]
        if within:  # the representative is its group's smallest index: a star of (rep, member)
            m = pd.DataFrame({"a": m["b"].to_numpy(), "b": m["a"].to_numpy()})
        m[col] = True
        found.append(m)
    out = found[0].merge(found[1], on=["a", "b"], how="outer")
    if not within:  # one partner per val image: the byte copy's when there is one
        out = out.sort_values(["a", "bytes_sha1"], ascending=[True, False], na_position="last", kind="stable")
        out = out.drop_duplicates("a")
    out = out.fillna(False).rename(columns={"bytes_sha1": "exact_bytes", "pixel_sha1": "exact_pixels"})
    out["exact_bytes"] = out["exact_bytes"].astype(bool)
    out["exact_pixels"] = out["exact_pixels"].astype(bool) | out["exact_bytes"]
    return out.reset_index(drop=True)


def exact_pair_counts(table, ia, ib, within: bool) -> int:
    """How many image pairs share the SHA-1 of their pixels (or bytes) between ``ia``
    and ``ib`` (unordered inside one set), counted from group sizes, never listed."""
    key = table["pixel_sha1"].to_numpy(object).copy()
    missing = pd.isna(key)
    key[missing] = table["bytes_sha1"].to_numpy(object)[missing]
    ka = pd.Series(key[ia]).dropna().value_counts()
    if within:
        return int((ka * (ka - 1) // 2).sum())
    kb = pd.Series(key[ib]).dropna().value_counts()
    return int((ka * kb.reindex(ka.index, fill_value=0)).sum())


def _evidence(table, fp, emb, a, b, flipped):
    ev = {}
    for h in HASHES:
        direct = table[h].to_numpy(np.uint64)
        mirror = table[h + "_flip"].to_numpy(np.uint64)
        ev[h] = np.where(flipped, np.bitwise_count(mirror[a] ^ direct[b]),
                         np.bitwise_count(direct[a] ^ direct[b])).astype(np.int16)
    desc = getattr(fp, "descriptor", None)
    ev["descriptor_cos"] = ((desc[a] * desc[b]).sum(1).astype(np.float32) if desc is not None
                            else np.full(len(a), np.nan, np.float32))
    ev["embedding_cos"] = ((emb[a] * emb[b]).sum(1).astype(np.float32) if emb is not None
                           else np.full(len(a), np.nan, np.float32))
    return ev


def _pairs_between(fp, coords, thr, pooled, std, emb, ia, ib, within, p, progress, stage, learned=None):
    """Verified exact + near pairs between two index sets, as a DataFrame (a, b, ...)."""
    table = fp.table
    if progress:
        progress(stage, 0, 3)
    exact = _exact_pairs(table, ia, ib, within)
    if progress:
        progress(stage, 1, 3)
    if learned is not None:
        a, b = learned_candidates(table, coords, thr, emb, learned[1], ia, ib, within, p, thumbs=fp.thumbs,
                                  geometry=learned[2])
    else:
        a, b = _near_candidates(table, coords, thr, emb, ia, ib, within, p)
    if emb is None:  # embedding hits may be crops or flips the thumbnails cannot confirm
        if p["geometric"]:  # looser: verify_geometric judges what the plain alignment cannot
            a, b = _prefilter(pooled, std, a, b, min(p["min_corr"], GEO_MIN_CORR), np.inf)
        else:
            a, b = _prefilter(pooled, std, a, b, p["min_corr"], _max_rms(p))
    local = getattr(fp, "local", None)
    use_keypoints = p["keypoints"] and local is not None and len(local.desc) > 0
    if use_keypoints:  # pairs whose keypoints vote for each other, whatever their thumbnails say
        ka, kb, _ = keypoint_candidates(local, ia, ib, within, per_query=p["max_keypoint_candidates"])
        hashed = pd.MultiIndex.from_arrays([a, b])
        a, b = unique_pairs([a, ka], [b, kb], within)
        # A pair proposed only by keypoint votes passed no thumbnail or hash
        # filter: only the keypoint fit may decide it (see below).
        keypoint_only = ~pd.MultiIndex.from_arrays([a, b]).isin(hashed)
        voted = pd.MultiIndex.from_arrays([a, b]).isin(pd.MultiIndex.from_arrays([ka, kb]))
    if not use_keypoints:
        keypoint_only = voted = np.zeros(len(a), bool)
    if progress:
        progress(stage, 2, 3)
    if len(exact):  # pairs inside one exact group are not near pairs (and would be quadratic)
        fresh = np.ones(len(a), bool)
        for col in ("bytes_sha1", "pixel_sha1"):
            key = table[col].to_numpy(object)
            fresh &= pd.isna(key[a]) | (key[a] != key[b])
        a, b, keypoint_only, voted = a[fresh], b[fresh], keypoint_only[fresh], voted[fresh]
    v = align_pairs(fp.thumbs, a, b, max_shift=p["max_shift"], trim=p["trim"], pooled=pooled)
    score = score_from_rms(v["thumb_rms"], p["score_mid"], p["score_scale"])
    # fitted: pairs the keypoints voted for that the thumbnails did not already confirm
    thumb_unsure = np.flatnonzero(((score < p["min_score"]) | keypoint_only) & voted)
    if emb is not None:
        cos = (emb[a] * emb[b]).sum(1)
        score = np.maximum(score, score_from_rms(-cos, -p["embedding_cos"], 0.01))
    if learned is not None:  # the default evidence, or the learned probability (threshold -> 0.5)
        score = np.maximum(score, learned_score(learned[0], fp, learned[1], a, b, jobs=p["jobs"]))
    if p["geometric"] and learned is None:
        unsure = np.flatnonzero(score < p["min_score"])
        if len(unsure):
            geo = verify_geometric(fp.thumbs, a[unsure], b[unsure])
            score[unsure] = np.maximum(score[unsure], geo["score"])
    decided = np.full(len(a), "thumbnail", object)
    if emb is not None:
        decided[score_from_rms(-cos, -p["embedding_cos"], 0.01) >= score] = "embedding"
    kp = {name: np.full(len(a), np.nan) for name in KEYPOINT_COLUMNS}
    if use_keypoints:  # fit keypoints where the thumbnails did not already decide
        score[keypoint_only] = 0.0
        unsure = thumb_unsure  # the same pairs whatever else (embeddings, learned) scored them
        fitted = verify_keypoints(local, a[unsure], b[unsure], thumbs=fp.thumbs, jobs=p["jobs"])
        for name in KEYPOINT_COLUMNS:
            kp[name][unsure] = fitted[name]
        kscore = np.zeros(len(a))
        kscore[unsure] = score_from_inliers(fitted["inliers"], fitted["aligned_rms"], fitted["inlier_extent"],
                                            fitted["aligned_grey"])
        decided[kscore > score] = "keypoints"
        score = np.maximum(score, kscore)
    keep = score >= p["min_score"]
    kind = np.full(len(a), "near", object)
    partial = (decided == "keypoints") & (np.fmin(kp["overlap"], kp["overlap_b"]) < OVERLAP_BELOW)
    kind[partial] = "overlap"
    near = pd.DataFrame({"a": a[keep], "b": b[keep], "kind": kind[keep], "score": score[keep],
                         "exact_bytes": False, "exact_pixels": False,
                         **{k: v[k][keep] for k in ("flipped", "thumb_rms", "thumb_nrms", "thumb_corr")},
                         **{k: np.asarray(kp[k])[keep] for k in KEYPOINT_COLUMNS},
                         "decided_by": decided[keep]})
    ea, eb = exact["a"].to_numpy(np.int64), exact["b"].to_numpy(np.int64)
    ve = align_pairs(fp.thumbs, ea, eb, max_shift=0, trim=p["trim"], pooled=pooled)
    exact_df = pd.DataFrame({"a": ea, "b": eb, "kind": "exact", "score": 1.0,
                             "exact_bytes": exact["exact_bytes"].to_numpy(bool),
                             "exact_pixels": exact["exact_pixels"].to_numpy(bool),
                             **{k: ve[k] for k in ("flipped", "thumb_rms", "thumb_nrms", "thumb_corr")},
                             **{k: np.full(len(ea), np.nan) for k in KEYPOINT_COLUMNS},
                             "decided_by": "exact"})
    out = pd.concat([exact_df, near], ignore_index=True)
    out["flipped"] = out["flipped"].astype(bool)
    ev = _evidence(table, fp, emb, out["a"].to_numpy(np.int64), out["b"].to_numpy(np.int64),
                   out["flipped"].to_numpy(bool))
    for k, col in ev.items():
        out[k] = col
    if progress:
        progress(stage, 3, 3)
    return out


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
    geometric: bool = False,
    verifier: str = "thumbnail",
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
    geometric : bool, default False
        Opt-in second verifier for crops, shifts, rotations and overlays:
        thumbnail candidates need only a 16x16 correlation of
        :data:`GEO_MIN_CORR` (no residual bound), and every candidate whose
        plain alignment scores below ``min_score`` is re-checked with
        :func:`~splitaudit.duplicates.verify.verify_geometric` (similarity
        warp + intensity fit); the pair keeps the larger of the two scores.
        About 10-14 ms per re-checked pair on one core, so it costs minutes
        on tens of thousands of images. On the Fashion-MNIST planted-edit
        set (``benchmarks/results_embeddings.md`` section 3c) it raised
        recall from 0.73 to 0.79 but let precision fall to 0.965 (tiny
        look-alike garments); it suits photo-like data with crops and
        shifts.
    verifier : {"thumbnail", "learned"}, default "thumbnail"
        ``"learned"`` (needs ``embeddings`` of the default model) adds the
        shipped MLP of :mod:`splitaudit.duplicates.learned` to the default
        evidence: extra candidates (5 nearest centred embeddings, nearest
        pHash, the 3 best shift/zoom candidates and the spectrum / rotated
        neighbours of :mod:`splitaudit.duplicates.reframe`), and a pair's ``score`` is the
        larger of the default score and the MLP probability rescaled so the
        shipped threshold is 0.5;
        ``geometric`` is ignored. The threshold is calibrated on real
        Fashion-MNIST look-alikes (at most 1 false pair per 1000 query images
        out of fold), so it never reports fewer pairs than the default and,
        on real Fashion-MNIST (10k/2k), no more false ones (12 pairs, 10/10
        same-photo, 2 false, as the default with embeddings); on the
        planted-edit set it finds 0.87 of copies at precision 1.00 against
        0.33 for the default evidence on the same candidates, and 0.99 at
        precision 0.99 with ``min_score`` near 0.06, which on the real subset
        reports 288 pairs, 278 of them false
        (``benchmarks/results_embeddings.md`` 3g). Experimental and slow:
        ~10 ms of ``verify_geometric`` per candidate (340 s for 2k x 10k on 2 cores).
    backend : {"auto", "numpy", "faiss", "mih"}
        Hamming search backend (used with ``embeddings``), see
        :func:`~splitaudit.duplicates.hamming.hamming_range`; all give the same pairs.
    jobs : int, optional
        Threads for the blocked thumbnail search and the learned verifier's
        pair features (default: all cores; results do not depend on it).
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
    params = dict(hash_radius=hash_radius, max_hash_candidates=max_hash_candidates,
                  neighbors=neighbors, search_dims=search_dims, min_corr=float(min_corr),
                  max_shift=max_shift, trim=float(trim), score_mid=float(score_mid),
                  score_scale=float(score_scale), min_score=float(min_score),
                  embedding_cos=float(embedding_cos), min_embedding_cos=float(min_embedding_cos),
                  within=bool(within), keypoints=keypoints, max_keypoint_candidates=max_keypoint_candidates,
                  geometric=geometric, verifier=verifier, backend=backend,
                  jobs=(os.cpu_count() or 1) if jobs is None else jobs)
    _validate(fingerprints, images, embeddings, params)
    if backend not in HAMMING_BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, HAMMING_BACKENDS))}; got {backend!r}")
    table = fingerprints.table
    n = len(images)
    ok = table["ok"].to_numpy(bool) if "ok" in table.columns else np.ones(n, bool)
    split = images["split"].to_numpy()
    ia_train = np.flatnonzero(ok & (split == "train"))
    ia_val = np.flatnonzero(ok & (split == "val"))
    emb = None if embeddings is None else np.asarray(embeddings, dtype=np.float32)

    if progress:
        progress("thumbnail vectors", 0, 1)
    pooled, std, coords, thr = search_setup(fingerprints, ok, params)
    if progress:
        progress("thumbnail vectors", 1, 1)

    learned = None
    if verifier == "learned":
        # shift/zoom candidate vectors once for the cross and both within searches
        learned = (load_verifier(), centred_embeddings(emb, ok),
                   geometry_vectors(fingerprints.thumbs, whole=(pooled[0], pooled[1])))
    cross = _pairs_between(fingerprints, coords, thr, pooled, std, emb, ia_val, ia_train, False, params, progress,
                           "cross-split search", learned)
    parts = []
    if within:
        for name, idx in (("train", ia_train), ("val", ia_val)):
            w = _pairs_between(fingerprints, coords, thr, pooled, std, emb, idx, idx, True, params, progress,
                               f"within {name}", learned)
            w.insert(0, "split", name)
            parts.append(w)
    within_raw = pd.concat(parts, ignore_index=True) if parts else None

    labels = images["label"].to_numpy(object) if "label" in images.columns else np.full(n, None, object)
    paths = images["path"].to_numpy(object)
    pairs = _finish(cross, paths, labels, cross=True)
    within_df = (_finish(within_raw, paths, labels, cross=False) if within_raw is not None
                 else pd.DataFrame(columns=WITHIN_COLUMNS))

    if progress:
        progress("clusters", 0, 1)
    ea = np.concatenate([pairs["val_index"].to_numpy(np.int64), within_df["index_a"].to_numpy(np.int64)])
    eb = np.concatenate([pairs["train_index"].to_numpy(np.int64), within_df["index_b"].to_numpy(np.int64)])
    clusters = duplicate_clusters(n, ea, eb)
    if progress:
        progress("clusters", 1, 1)

    wt = within_df["split"] == "train"
    wv = within_df["split"] == "val"
    exact_w = within_df["kind"] == "exact"
    # Exact pairs are listed as stars (linear), so they are counted from group sizes.
    exact_cross = exact_pair_counts(table, ia_val, ia_train, False)
    exact_train = exact_pair_counts(table, ia_train, ia_train, True) if within else 0
    exact_val = exact_pair_counts(table, ia_val, ia_val, True) if within else 0
    near_cross = int((pairs["kind"] != "exact").sum())
    expected = expected_cross(len(ia_train), len(ia_val), exact_train + int((wt & ~exact_w).sum()),
                              exact_val + int((wv & ~exact_w).sum()), exact_cross + near_cross)
    expected["exact"] = expected_cross(len(ia_train), len(ia_val), exact_train, exact_val, exact_cross)
    if not within:
        expected["note"] = "within=False: no within-split pairs searched, so the expectation is 0"
    return DuplicateResult(pairs=pairs, within=within_df, clusters=clusters, expected=expected,
                           params=params)


def default_params(**overrides) -> dict:
    """:func:`find_duplicates`' parameters at their defaults (``jobs`` resolved to
    the cores), updated by ``overrides``: for scripts that call its stages."""
    params = {name: p.default for name, p in inspect.signature(find_duplicates).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("embeddings", "progress")}
    params["jobs"] = os.cpu_count() or 1
    params.update(overrides)
    return params


def search_setup(fingerprints, ok: np.ndarray, params: dict):
    """``(pooled, std, coords, thr)`` as :func:`find_duplicates` searches with them:
    16x16 pooled thumbnails as is and mirrored (2, N, 256), their standard
    deviation, mirror-PCA coordinates ``(sym, anti)`` and per-image squared-distance
    thresholds of the range search. Rows where ``ok`` is False stay zero."""
    n = len(ok)
    pooled = np.zeros((2, n, 256), np.float32)  # 16x16 pooled thumbnails, as is and mirrored
    std = np.zeros(n, np.float32)
    rows = slice(None) if ok.all() else ok  # a view, not a masked copy, in the usual case
    if ok.any():
        pooled[0, rows], std[rows] = thumb_vectors(fingerprints.thumbs[rows], return_std=True)
        # Mirroring the pooled image equals pooling the mirror: reverse the 16 columns.
        pooled[1, rows] = pooled[0, rows].reshape(-1, 16, 16)[:, :, ::-1].reshape(-1, 256)
    dims = min(params["search_dims"], 256)
    coords = (np.zeros((n, 0), np.float32), np.zeros((n, 0), np.float32))
    if ok.any() and dims:
        sym, anti = mirror_project(pooled[0, rows], dims)
        if rows is ok:
            coords = (np.zeros((n, sym.shape[1]), np.float32), np.zeros((n, anti.shape[1]), np.float32))
            coords[0][ok], coords[1][ok] = sym, anti
        else:
            coords = (sym, anti)
    if params["geometric"]:  # every pair the looser geometric prefilter could accept (no residual bound)
        thr = _range_threshold(std, {**params, "min_corr": min(params["min_corr"], GEO_MIN_CORR),
                                     "score_mid": np.inf})
    else:
        thr = _range_threshold(std, params)
    return pooled, std, coords, thr


def _finish(raw: pd.DataFrame, paths, labels, *, cross: bool) -> pd.DataFrame:
    a = raw["a"].to_numpy(np.int64)
    b = raw["b"].to_numpy(np.int64)
    la, lb = labels[a], labels[b]
    conflict = pd.notna(la) & pd.notna(lb) & (la != lb)
    if cross:
        out = pd.DataFrame({"val_path": paths[a], "train_path": paths[b], "val_index": a,
                            "train_index": b, "kind": raw["kind"].to_numpy(object),
                            "score": raw["score"].to_numpy(np.float64),
                            "val_label": la, "train_label": lb, "label_conflict": conflict})
        columns = PAIR_COLUMNS
        order = ["score", "val_index"]
    else:
        out = pd.DataFrame({"split": raw["split"].to_numpy(object), "path_a": paths[a],
                            "path_b": paths[b], "index_a": a, "index_b": b,
                            "kind": raw["kind"].to_numpy(object),
                            "score": raw["score"].to_numpy(np.float64),
                            "label_a": la, "label_b": lb, "label_conflict": conflict})
        columns = WITHIN_COLUMNS
        order = ["split", "score", "index_a"]
    for col in columns:
        if col not in out.columns:
            out[col] = raw[col].to_numpy()
    out["label_conflict"] = out["label_conflict"].astype(bool)
    asc = [True, False, True] if not cross else [False, True]
    return out[columns].sort_values(order, ascending=asc, kind="stable").reset_index(drop=True)
