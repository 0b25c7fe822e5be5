"""Leakage checks on duplicates: ``exact_duplicates``, ``near_duplicates``,
``label_conflicts``.

They read ``context.pairs`` / ``context.within_pairs``, which the pipeline
fills from :func:`splitaudit.duplicates.find_duplicates` (a check never runs
the search itself).

Status thresholds (share of val images with a train duplicate of that kind;
override per check in ``context.options[name]`` as ``warn_at`` / ``fail_at``):

=================  =============  ==================
check              warn when      fail when
=================  =============  ==================
exact_duplicates   any pair       share >= 0.5 %
near_duplicates    any pair       share >= 1 %
label_conflicts    any pair       share >= 0.5 %
=================  =============  ==================

No cross-split pair means ``pass``. A duplicate across the split is leakage
whatever its cause, so the status follows the count; the numbers add how
many a random split would have produced (``expected``, ``ratio``,
``p_value``) so a report can say whether the split itself made it worse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from .base import AuditContext, Check, CheckResult

__all__ = ["ExactDuplicates", "NearDuplicates", "LabelConflicts", "duplicate_pairs"]

_DEFAULTS = {
    "exact_duplicates": (0.0, 0.005),
    "near_duplicates": (0.0, 0.01),
    "label_conflicts": (0.0, 0.005),
}


def duplicate_pairs(context: AuditContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(pairs, within_pairs)`` from the context; an empty within table when the search did not
    look inside the splits."""
    if context.pairs is None:
        raise InputError("the context has no duplicate pairs: run splitaudit.duplicates.find_duplicates "
                         "and pass its pairs= and within_pairs= (splitaudit.scan does)")
    within = context.within_pairs
    if within is None:
        within = pd.DataFrame(columns=["split", "kind", "label_conflict"])
    return context.pairs, within


def _poisson(observed: int, expected: float) -> dict:
    from scipy import stats

    if expected > 0:
        ratio = observed / expected
        p = float(stats.poisson.sf(observed - 1, expected)) if observed else 1.0
    else:
        ratio = float("inf") if observed else float("nan")
        p = 0.0 if observed else 1.0
    return {"expected": expected, "ratio": ratio, "p_value": p}


def _status(name: str, share: float, count: int, options: dict) -> str:
    warn_at, fail_at = _DEFAULTS[name]
    warn_at = options.get("warn_at", warn_at)
    fail_at = options.get("fail_at", fail_at)
    if count == 0:
        return "pass"
    if share >= fail_at:
        return "fail"
    return "warn" if share > warn_at else "pass"


def _per_image(context: AuditContext, pairs: pd.DataFrame) -> pd.DataFrame:
    n = len(context.split.images)
    best = np.zeros(n)
    partner = np.full(n, -1, np.int64)
    if len(pairs):
        order = pairs.sort_values("score")
        best[order["val_index"].to_numpy()] = order["score"].to_numpy()
        partner[order["val_index"].to_numpy()] = order["train_index"].to_numpy()
    return pd.DataFrame({"duplicate_score": best, "duplicate_of": partner},
                        index=context.split.images.index)


class _DuplicateCheck(Check):
    kind: str = ""

    def _select(self, pairs: pd.DataFrame) -> pd.DataFrame:
        return pairs[pairs["kind"] == self.kind]

    def _select_within(self, within: pd.DataFrame) -> pd.DataFrame:
        return within[within["kind"] == self.kind]

    def run(self, context: AuditContext) -> CheckResult:
        pairs, within = duplicate_pairs(context)
        within_searched = context.within_pairs is not None
        chosen = self._select(pairs)
        chosen_within = self._select_within(within)
        images = context.split.images
        n_val = int((images["split"] == "val").sum())
        n_train = int((images["split"] == "train").sum())
        val_hit = int(chosen["val_index"].nunique())
        share = val_hit / n_val if n_val else 0.0
        w_train = int((chosen_within["split"] == "train").sum())
        w_val = int((chosen_within["split"] == "val").sum())
        possible = n_train * (n_train - 1) / 2 + n_val * (n_val - 1) / 2
        rate = (w_train + w_val) / possible if possible else 0.0
        numbers = {
            "pairs": int(len(chosen)),
            "val_with_train_duplicate": val_hit,
            "fraction_val": share,
            "n_val": n_val,
            "n_train": n_train,
            "within_train": w_train,
            "within_val": w_val,
            "observed": int(len(chosen)),
            **(_poisson(int(len(chosen)), rate * n_train * n_val) if within_searched else
               {"expected": None, "ratio": None, "p_value": None}),
            "expected_estimator": "within-split pair rate x n_train x n_val",
            "within_searched": within_searched,
        }
        status = _status(self.name, share, val_hit, context.options.get(self.name, {}))
        message = self._message(numbers)
        return CheckResult(self.name, status, message, numbers, _per_image(context, chosen))

    def _message(self, x: dict) -> str:
        if not x["pairs"]:
            return f"No {self.kind} duplicates between val and train ({x['n_val']:,} val images)."
        exp = x["expected"]
        if exp is None:
            tail = "; pairs inside the splits were not searched, so there is no estimate of what chance gives"
        else:
            about = f"{exp:,.0f}" if exp >= 100 else f"{exp:.1f}"
            tail = (f"; a random split would give about {about} (observed/expected {x['ratio']:.2f}, "
                    f"Poisson p = {x['p_value']:.2g}): "
                    + ("more than chance, so the split leaks" if x["p_value"] <= 0.05 else
                       "no more than chance, so the copies come from the data, not from how it was split")
                    if exp > 0 else "; no duplicates inside either split, so a random split would give none")
        article = "an" if self.kind[0] in "aeiou" else "a"
        pairs = f"{x['pairs']:,} pair" + ("" if x["pairs"] == 1 else "s")
        n_hit = x["val_with_train_duplicate"]
        return (f"{n_hit:,} of {x['n_val']:,} val images "
                f"({100 * x['fraction_val']:.2f}%) {'has' if n_hit == 1 else 'have'} {article} {self.kind} duplicate in train "
                f"({pairs}){tail}.")


class ExactDuplicates(_DuplicateCheck):
    """Val images whose bytes or decoded pixels equal a train image's."""

    name = "exact_duplicates"
    kind = "exact"


class NearDuplicates(_DuplicateCheck):
    """Val images with a verified near copy (re-encoded, resized, cropped, rotated, captioned, an
    overlapping tile, ...) in train: pairs of kind ``near`` and ``overlap``."""

    name = "near_duplicates"
    kind = "near"
    kinds = ("near", "overlap")  # a crop or an overlapping tile leaks as much as an edited copy

    def _select(self, pairs):
        return pairs[pairs["kind"].isin(self.kinds)]

    def _select_within(self, within):
        return within[within["kind"].isin(self.kinds)]


class LabelConflicts(_DuplicateCheck):
    """Duplicate pairs (exact or near) whose labels differ."""

    name = "label_conflicts"
    kind = "conflict"

    def _select(self, pairs):
        return pairs[pairs["label_conflict"].astype(bool)]

    def _select_within(self, within):
        if "label_conflict" not in within.columns:
            return within.iloc[:0]
        return within[within["label_conflict"].astype(bool)]

    def _message(self, x: dict) -> str:
        if not x["pairs"]:
            return f"No duplicate pair across the split has conflicting labels ({x['n_val']:,} val images)."
        verb = "pair carries" if x["pairs"] == 1 else "pairs carry"
        n_hit = x["val_with_train_duplicate"]
        inside = x["within_train"] + x["within_val"]
        return (f"{x['pairs']} cross-split duplicate {verb} different labels "
                f"({n_hit} val image{'' if n_hit == 1 else 's'}, {100 * x['fraction_val']:.2f}%); "
                f"{inside} {'pair' if inside == 1 else 'pairs'} like that inside the splits.")
