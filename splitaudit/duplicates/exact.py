"""Exact duplicates: equal SHA-1 of file bytes or of decoded pixels, listed linearly."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["exact_pairs", "exact_pair_counts", "inside_exact_groups"]


def exact_pairs(table, ia, ib, within):
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


def inside_exact_groups(table, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True for pairs whose two images share the SHA-1 of their bytes or pixels: they are
    already exact pairs (stars), and listing them as near pairs too would be quadratic."""
    same = np.zeros(len(a), bool)
    for col in ("bytes_sha1", "pixel_sha1"):
        key = table[col].to_numpy(object)
        same |= pd.notna(key[a]) & (key[a] == key[b])
    return same
