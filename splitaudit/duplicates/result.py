"""What :func:`~splitaudit.duplicates.find_duplicates` returns: pair tables, clusters, counts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._types import jsonable
from .keypoints import KEYPOINT_COLUMNS
from .overlay import OVERLAY_COLUMNS
from .tiles import TILE_EVIDENCE

__all__ = ["DuplicateResult", "PAIR_COLUMNS", "PAIR_EVIDENCE", "WITHIN_COLUMNS", "pair_table"]

PAIR_EVIDENCE = (
    "exact_bytes", "exact_pixels", "phash", "dhash", "ahash", "flipped", "thumb_rms", "thumb_nrms",
    "thumb_corr", "descriptor_cos", "embedding_cos", *KEYPOINT_COLUMNS, *TILE_EVIDENCE, *OVERLAY_COLUMNS, "decided_by",
)
"""The evidence columns of every pair table, after who the pair is and its ``kind, score``, labels."""
PAIR_COLUMNS = ["val_path", "train_path", "val_index", "train_index", "kind", "score",
                "val_label", "train_label", "label_conflict", *PAIR_EVIDENCE]
WITHIN_COLUMNS = ["split", "path_a", "path_b", "index_a", "index_b", "kind", "score",
                  "label_a", "label_b", "label_conflict", *PAIR_EVIDENCE]


@dataclass(frozen=True)
class DuplicateResult:
    """Duplicates found by :func:`find_duplicates`.

    Attributes
    ----------
    pairs : pandas.DataFrame
        One row per cross-split pair (val image, train image): ``val_path,
        train_path, val_index, train_index, kind`` (``exact``, ``near`` or ``overlap``),
        ``score`` in [0, 1], ``val_label, train_label, label_conflict``, and
        the evidence: ``exact_bytes, exact_pixels``, Hamming distances
        ``phash, dhash, ahash`` (taken on the mirror when ``flipped``),
        ``thumb_rms`` (grey levels), ``thumb_nrms``, ``thumb_corr`` (NaN, and
        ``flipped`` False, for a pair only the keypoint votes proposed),
        ``descriptor_cos`` and ``embedding_cos`` (NaN without embeddings),
        the keypoint and tile evidence and ``decided_by`` (see the README).
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

    def to_dict(self) -> dict:
        """Counts for reports: pairs by kind, val images with a train duplicate, ...

        :meth:`to_json` writes these with ``params`` and the cross ``pairs``.
        """
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
        """:meth:`to_dict` with ``params`` and the cross pairs as records, as JSON text."""
        out = self.to_dict()
        out["params"] = self.params
        out["pairs"] = self.pairs.to_dict(orient="records")
        return json.dumps(jsonable(out), indent=2, allow_nan=False)


def pair_table(raw: pd.DataFrame, paths, labels, *, cross: bool) -> pd.DataFrame:
    """The output table of raw index pairs ``(a, b, kind, score, evidence...)``: paths, labels,
    label conflicts, the columns of :data:`PAIR_COLUMNS` (``cross``) or :data:`WITHIN_COLUMNS`,
    sorted by decreasing score."""
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
