"""Do training and validation images have the same label (or target) distribution?"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ._stats import bootstrap_ci_mean_diff, cramers_v, option, smd, usable_rows
from .base import Check, CheckResult

__all__ = ["LabelDistributionCheck"]


class LabelDistributionCheck(Check):
    """Compare class counts (classification) or targets (regression) across splits.

    Classification: chi-square test of independence on the 2 × K table of
    split × class (G-test statistic also reported), Cramér's V, and per-class
    proportions with their standardised (adjusted Pearson) residuals; the
    classes that deviate most are listed first. Classes present in val but
    never in train make the check ``fail``.

    Regression: two-sample Kolmogorov–Smirnov test, difference of means and of
    standard deviations (val − train) with bootstrap 95 % CIs, standardised
    mean difference.

    Verdict thresholds (options under ``"label_distribution"``, echoed in
    ``numbers["thresholds"]``): ``warn`` when p < ``alpha`` (0.01) **and** the
    effect is material: Cramér's V ≥ ``min_cramers_v`` (0.05), or for targets
    |SMD| ≥ ``min_smd`` (0.2) or an SD ratio outside 1 ± ``min_sd_ratio`` (0.2).
    ``fail`` when V ≥ 0.3 or |SMD| ≥ 0.8.
    """

    name = "label_distribution"

    def run(self, context: Any) -> CheckResult:
        images = context.split.images
        ok, n_unreadable = usable_rows(context)
        task = context.split.task
        if task is None:
            return CheckResult(
                self.name, "skipped", "No labels or targets to compare.",
                {"reason": "the split has no labels or targets"},
            )
        alpha = float(option(context, self.name, "alpha", 0.01))
        is_val = (images["split"] == "val").to_numpy()
        if task == "classification":
            return self._classes(images, ok, is_val, n_unreadable, context, alpha)
        return self._targets(images, ok, is_val, n_unreadable, context, alpha)

    # ------------------------------------------------------------ classes
    def _classes(self, images, ok, is_val, n_unreadable, context, alpha: float) -> CheckResult:
        min_v = float(option(context, self.name, "min_cramers_v", 0.05))
        use = ok & images["label"].notna().to_numpy()
        labels = images["label"].astype(str).to_numpy()
        table = pd.crosstab(
            pd.Series(np.where(is_val[use], "val", "train"), name="split"),
            pd.Series(labels[use], name="label"),
        ).reindex(["train", "val"], fill_value=0)
        counts = table.to_numpy(dtype=np.float64)
        n_train, n_val = counts.sum(axis=1)
        if n_train == 0 or n_val == 0:
            return CheckResult(self.name, "skipped", "One split has no labelled images.",
                               {"reason": "one split has no labelled images"})
        classes = table.columns.tolist()
        unseen = [c for c, (t, v) in zip(classes, counts.T) if t == 0 and v > 0]
        missing = [c for c, (t, v) in zip(classes, counts.T) if v == 0 and t > 0]
        if len(classes) < 2:
            chi2 = g = 0.0
            p = 1.0
            dof = 0
            low_expected = 0
        else:
            chi2, p, dof, expected = stats.chi2_contingency(counts, correction=False)
            g = stats.chi2_contingency(counts, correction=False, lambda_="log-likelihood")[0]
            low_expected = int((expected < 5).sum())
        v = cramers_v(counts)
        total = counts.sum()
        col = counts.sum(axis=0)
        prop_train, prop_val = counts[0] / n_train, counts[1] / n_val
        pooled = col / total
        # adjusted residual of the val cell: approx N(0,1) per class under independence
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_train + 1 / n_val))
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, (prop_val - prop_train) / se, 0.0)
        per_class = sorted(
            (
                {
                    "label": c, "n_train": int(counts[0, i]), "n_val": int(counts[1, i]),
                    "prop_train": float(prop_train[i]), "prop_val": float(prop_val[i]),
                    "difference": float(prop_val[i] - prop_train[i]), "z": float(z[i]),
                }
                for i, c in enumerate(classes)
            ),
            key=lambda r: -abs(r["z"]),
        )
        material = v >= min_v
        status = "warn" if (p < alpha and material) else "pass"
        if p < alpha and v >= 0.3:
            status = "fail"
        if unseen:
            status = "fail"
        top = per_class[0]
        if unseen:
            message = f"{len(unseen)} class(es) appear in val but never in train: {unseen[:5]}."
        elif len(classes) == 1:
            message = f"One class ({classes[0]}) in both splits: nothing to compare."
        elif status == "pass":
            message = (f"Class proportions match across splits (chi-square p={p:.3g}, "
                       f"Cramér's V={v:.3f}, {len(classes)} classes).")
        else:
            message = (
                f"Class proportions differ between train and val (chi-square={chi2:.1f}, dof={dof}, "
                f"p={p:.3g}, Cramér's V={v:.3f}); largest: {top['label']!r} "
                f"{top['prop_train']:.1%} of train vs {top['prop_val']:.1%} of val."
            )
        numbers = {
            "task": "classification", "n_train": int(n_train), "n_val": int(n_val),
            "n_unreadable": n_unreadable, "n_classes": len(classes),
            "chi2": float(chi2), "g_statistic": float(g), "dof": int(dof), "p_value": float(p),
            "cramers_v": v, "cells_expected_below_5": low_expected,
            "classes_only_in_val": unseen, "classes_missing_from_val": missing,
            "per_class": per_class,
            "thresholds": {"alpha": alpha, "min_cramers_v": min_v, "fail_cramers_v": 0.3},
        }
        return CheckResult(self.name, status, message, numbers)

    # ------------------------------------------------------------ targets
    def _targets(self, images, ok, is_val, n_unreadable, context, alpha: float) -> CheckResult:
        min_smd = float(option(context, self.name, "min_smd", 0.2))
        min_sd_ratio = float(option(context, self.name, "min_sd_ratio", 0.2))
        n_bootstrap = int(option(context, self.name, "n_bootstrap", 1000))
        target = images["target"].to_numpy(dtype=np.float64)
        use = ok & np.isfinite(target)
        a, b = target[use & ~is_val], target[use & is_val]
        if len(a) < 2 or len(b) < 2:
            return CheckResult(self.name, "skipped", "Too few targets in a split to compare.",
                               {"reason": "need at least two targets per split"})
        rng = np.random.default_rng(context.random_state)
        ks = stats.ks_2samp(a, b)
        ci = bootstrap_ci_mean_diff(a, b, n_bootstrap=n_bootstrap, rng=rng)
        sd_diffs = []
        for _ in range(n_bootstrap):
            sd_diffs.append(rng.choice(b, len(b)).std(ddof=1) - rng.choice(a, len(a)).std(ddof=1))
        sd_low, sd_high = np.quantile(sd_diffs, [0.025, 0.975])
        effect = smd(a, b)
        sd_ratio = b.std(ddof=1) / a.std(ddof=1) if a.std(ddof=1) > 0 else float("inf")
        material = abs(effect) >= min_smd or abs(sd_ratio - 1) >= min_sd_ratio
        status = "warn" if (ks.pvalue < alpha and material) else "pass"
        if ks.pvalue < alpha and abs(effect) >= 0.8:
            status = "fail"
        if status == "pass":
            message = (f"Targets are distributed alike in train and val (KS p={ks.pvalue:.3g}, "
                       f"SMD={effect:+.2f}).")
        else:
            message = (
                f"Targets differ between train and val: KS D={ks.statistic:.3f}, p={ks.pvalue:.3g}; "
                f"val mean {b.mean() - a.mean():+.3g} (95% CI {ci['ci_low']:+.3g} to "
                f"{ci['ci_high']:+.3g}), SMD={effect:+.2f}, SD ratio {sd_ratio:.2f}."
            )
        numbers = {
            "task": "regression", "n_train": len(a), "n_val": len(b), "n_unreadable": n_unreadable,
            "ks_statistic": float(ks.statistic), "p_value": float(ks.pvalue),
            "mean_train": float(a.mean()), "mean_val": float(b.mean()),
            "mean_difference": float(b.mean() - a.mean()),
            "mean_difference_ci": [ci["ci_low"], ci["ci_high"]],
            "sd_train": float(a.std(ddof=1)), "sd_val": float(b.std(ddof=1)),
            "sd_difference": float(b.std(ddof=1) - a.std(ddof=1)),
            "sd_difference_ci": [float(sd_low), float(sd_high)],
            "sd_ratio": float(sd_ratio) if math.isfinite(sd_ratio) else None,
            "smd": effect, "n_bootstrap": n_bootstrap,
            "thresholds": {"alpha": alpha, "min_smd": min_smd, "min_sd_ratio": min_sd_ratio,
                           "fail_smd": 0.8},
        }
        return CheckResult(self.name, status, message, numbers)
