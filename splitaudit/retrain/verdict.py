"""Does "validation loss below training loss" persist under leak-aware re-splits?

Decision rule (documented, deliberately simple):

* Each run's gap is ``val_loss - train_loss`` with the training loss as the
  user sees it (running mean over the epoch's minibatches), averaged over the
  last ``last_epochs`` epochs.
* ``persists`` is True when the re-split gaps are systematically negative:
  the 95 % t-interval of their mean lies entirely below 0, **or** a one-sided
  sign test of "gap < 0" has p ≤ 0.05 (e.g. 5 of 5 folds). The cause is then
  in the training regime (dropout/regularisation, the running-mean training
  loss, augmentation), not in this particular split.
* The original split is *split-specific* when it shows val < train, the
  re-splits do not (``persists`` False), and its gap lies below the 95 %
  prediction interval of a new re-split gap
  (``mean - t·sd·sqrt(1 + 1/n)``). Only then is the split itself blamed; an
  original gap inside the re-split spread is reported as chance.
* ``percentile_of_original`` is the mid-rank percentile of the original gap
  among the re-split gaps (0 = below all of them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Verdict", "decide"]


@dataclass(frozen=True)
class Verdict:
    """The persistence verdict; see the module docstring for the rule."""

    persists: bool
    n_folds_val_lower: int
    n_folds: int
    mean_gap: float
    ci_low: float
    ci_high: float
    percentile_of_original: float
    message: str
    split_specific: bool = False
    sign_test_p: float = float("nan")
    prediction_low: float = float("nan")

    def to_dict(self) -> dict:
        """The eight public keys (``summary.json`` ``verdict``)."""
        keys = ("persists", "n_folds_val_lower", "n_folds", "mean_gap", "ci_low", "ci_high",
                "percentile_of_original", "message")
        return {k: getattr(self, k) for k in keys}


def _ordinal(value: float) -> str:
    n = int(round(value))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def decide(original_gap: float, fold_gaps: np.ndarray, *, confidence: float = 0.95) -> Verdict:
    """Apply the decision rule to the original split's gap and the re-split gaps.

    Examples
    --------
    >>> v = decide(-0.5, np.array([0.02, 0.05, -0.01, 0.03, 0.04]))
    >>> v.persists, v.split_specific, v.n_folds_val_lower
    (False, True, 1)
    """
    gaps = np.asarray(fold_gaps, dtype=float)
    gaps = gaps[np.isfinite(gaps)]
    n = len(gaps)
    if n == 0:
        return Verdict(False, 0, 0, math.nan, math.nan, math.nan, math.nan,
                       "no re-split produced a finite gap; no verdict")
    n_lower = int((gaps < 0).sum())
    mean = float(gaps.mean())
    if n >= 2:
        sd = float(gaps.std(ddof=1))
        t = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
        half = t * sd / math.sqrt(n)
        ci_low, ci_high = mean - half, mean + half
        prediction_low = mean - t * sd * math.sqrt(1 + 1 / n)
    else:
        ci_low = ci_high = prediction_low = math.nan
    sign_p = float(stats.binomtest(n_lower, n, 0.5, alternative="greater").pvalue)
    persists = bool((n >= 2 and ci_high < 0) or sign_p <= 1 - confidence)
    if math.isfinite(original_gap):
        pct = 100.0 * (float((gaps < original_gap).sum()) + 0.5 * float((gaps == original_gap).sum())) / n
    else:
        pct = math.nan
    orig_lower = math.isfinite(original_gap) and original_gap < 0
    split_specific = bool(orig_lower and not persists and math.isfinite(prediction_low)
                          and original_gap < prediction_low)
    where = (f"the original split's gap ({original_gap:+.3g}) is at the {_ordinal(pct)} percentile"
             if math.isfinite(pct) else "the original split has no finite gap")
    head = (f"val < train in {n_lower}/{n} leak-aware re-splits (mean gap {mean:+.3g}, "
            f"95% CI [{ci_low:+.3g}, {ci_high:+.3g}]); {where}")
    if persists:
        tail = ("it persists → the cause is the training regime (dropout/regularisation, "
                "running-mean training loss, augmentation), not this split")
    elif split_specific:
        tail = (f"below the re-splits' 95% prediction bound ({prediction_low:+.3g}) → split-specific: "
                "the original validation set is easier or leaks")
    elif orig_lower:
        tail = "within the re-split variation → not systematic and not shown to be split-specific (chance)"
    else:
        tail = "val is not below train here → nothing to explain"
    return Verdict(persists, n_lower, n, mean, ci_low, ci_high, pct, f"{head}; {tail}.",
                   split_specific, sign_p, prediction_low)
