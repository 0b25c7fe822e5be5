"""Are training and validation images drawn from the same distribution?

Two views:

- :class:`PropertyDriftCheck` tests each image property (brightness, size,
  format, ...) on its own, with effect sizes and Holm-corrected p-values.
- :class:`EmbeddingDriftCheck` is adversarial validation: a classifier tries
  to tell train from val on all features at once. A cross-validated ROC AUC
  near 0.5 means it cannot.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ._stats import (
    auc_ci_hanley_mcneil,
    auc_mann_whitney,
    cramers_v,
    features_of,
    holm,
    option,
    reduce_features,
    single_thread,
    smd,
    usable_rows,
    wasserstein_sd,
)
from .base import Check, CheckResult

__all__ = ["PropertyDriftCheck", "EmbeddingDriftCheck", "CONTINUOUS_PROPERTIES", "CATEGORICAL_PROPERTIES"]

CONTINUOUS_PROPERTIES = (
    "width", "height", "aspect", "file_size", "brightness", "contrast",
    "sharpness", "entropy", "colourfulness", "jpeg_quality",
)
CATEGORICAL_PROPERTIES = ("format", "mode")


def _property_table(context: Any) -> pd.DataFrame | None:
    fp = getattr(context, "fingerprints", None)
    return getattr(fp, "table", None)


class PropertyDriftCheck(Check):
    """Per-property two-sample tests between train and val.

    Continuous properties: two-sample Kolmogorov–Smirnov test, standardised
    mean difference (SMD, val − train over the pooled SD) and Wasserstein-1
    distance in pooled-SD units. Categorical properties (``format``, ``mode``):
    chi-square test of independence and Cramér's V. P-values are Holm-adjusted
    across all properties tested. Constant or missing properties are listed
    as not tested.

    A property *drifts* when its Holm p < ``alpha`` (0.01) **and** the effect is
    material: |SMD| ≥ ``min_smd`` (0.2, Cohen's "small"), or Cramér's V ≥
    ``min_cramers_v`` (0.1) for a categorical property. Large sample sizes make
    tiny shifts significant, hence the materiality bar. ``warn`` when any
    property drifts, ``fail`` when one has |SMD| ≥ 0.8 or V ≥ 0.5.
    """

    name = "property_drift"

    def run(self, context: Any) -> CheckResult:
        table = _property_table(context)
        if table is None:
            return CheckResult(self.name, "skipped", "No image properties (fingerprints) to compare.",
                               {"reason": "fingerprints were not computed"})
        alpha = float(option(context, self.name, "alpha", 0.01))
        min_smd = float(option(context, self.name, "min_smd", 0.2))
        min_v = float(option(context, self.name, "min_cramers_v", 0.1))
        images = context.split.images
        ok, n_unreadable = usable_rows(context)
        is_val = (images["split"] == "val").to_numpy()
        rows, not_tested = [], []
        for prop in CONTINUOUS_PROPERTIES:
            if prop not in table.columns:
                continue
            values = pd.to_numeric(table[prop], errors="coerce").to_numpy(dtype=np.float64)
            use = ok & np.isfinite(values)
            a, b = values[use & ~is_val], values[use & is_val]
            if len(a) < 2 or len(b) < 2 or np.ptp(values[use]) == 0:
                not_tested.append(prop)
                continue
            ks = stats.ks_2samp(a, b)
            rows.append({
                "property": prop, "kind": "continuous", "test": "ks", "statistic": float(ks.statistic),
                "p_value": float(ks.pvalue), "mean_train": float(a.mean()), "mean_val": float(b.mean()),
                "smd": smd(a, b), "wasserstein_sd": wasserstein_sd(a, b),
                "cramers_v": None, "n_train": len(a), "n_val": len(b),
            })
        for prop in CATEGORICAL_PROPERTIES:
            if prop not in table.columns:
                continue
            values = table[prop].astype("string").to_numpy(dtype=object, na_value=None)
            use = ok & pd.notna(values)
            counts = pd.crosstab(np.where(is_val[use], "val", "train"), values[use].astype(str))
            counts = counts.reindex(["train", "val"], fill_value=0)
            if counts.shape[1] < 2 or (counts.sum(axis=1) == 0).any():
                not_tested.append(prop)
                continue
            chi2, p, dof, _ = stats.chi2_contingency(counts.to_numpy(), correction=False)
            rows.append({
                "property": prop, "kind": "categorical", "test": "chi2", "statistic": float(chi2),
                "p_value": float(p), "mean_train": None, "mean_val": None, "smd": None,
                "wasserstein_sd": None, "cramers_v": cramers_v(counts.to_numpy()),
                "n_train": int(counts.loc["train"].sum()), "n_val": int(counts.loc["val"].sum()),
            })
        if not rows:
            return CheckResult(self.name, "skipped", "No property varies enough to be compared.",
                               {"reason": "no testable property", "not_tested": not_tested})
        adjusted = holm(np.array([r["p_value"] for r in rows]))
        worst = "pass"
        for row, p_adj in zip(rows, adjusted):
            row["p_holm"] = float(p_adj)
            effect = abs(row["smd"]) if row["kind"] == "continuous" else row["cramers_v"]
            bar, fail_bar = (min_smd, 0.8) if row["kind"] == "continuous" else (min_v, 0.5)
            row["drift"] = bool(p_adj < alpha and effect >= bar)
            if row["drift"]:
                worst = "fail" if (effect >= fail_bar or worst == "fail") else "warn"
        frame = pd.DataFrame(rows)
        drifting = frame[frame["drift"]]
        if drifting.empty:
            message = f"No image property differs materially between train and val ({len(rows)} tested)."
        else:
            parts = []
            for r in drifting.itertuples():
                if r.kind == "continuous":
                    parts.append(f"{r.property} (SMD {r.smd:+.2f}, Holm p={r.p_holm:.2g})")
                else:
                    parts.append(f"{r.property} (Cramér's V {r.cramers_v:.2f}, Holm p={r.p_holm:.2g})")
            message = "Image properties differ between train and val: " + "; ".join(parts) + "."
        numbers = {
            "n_train": int((ok & ~is_val).sum()), "n_val": int((ok & is_val).sum()),
            "n_unreadable": n_unreadable, "n_tested": len(rows),
            "drifting": drifting["property"].tolist(), "not_tested": not_tested,
            "properties": rows,
            "thresholds": {"alpha": alpha, "min_smd": min_smd, "min_cramers_v": min_v,
                           "fail_smd": 0.8, "fail_cramers_v": 0.5, "correction": "holm"},
        }
        return CheckResult(self.name, worst, message, numbers)


def _adversarial_features(context: Any, ok: np.ndarray, max_dim: int, seed: int) -> tuple[np.ndarray | None, list[str]]:
    """Reduced embeddings/descriptor plus standardised numeric properties."""
    parts, sources = [], []
    features, source = features_of(context)
    if features is not None:
        parts.append(reduce_features(features[ok], max_dim=max_dim, random_state=seed))
        sources.append(source)
    table = _property_table(context)
    if table is not None:
        cols = [c for c in CONTINUOUS_PROPERTIES if c in table.columns]
        props = table.loc[ok, cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
        props = props[:, np.isfinite(props).all(axis=0)] if len(props) else props
        sd = props.std(axis=0) if len(props) else np.zeros(0)
        if (sd > 0).any():
            props = props[:, sd > 0]
            parts.append(((props - props.mean(axis=0)) / props.std(axis=0)).astype(np.float32))
            sources.append("properties")
    if not parts:
        return None, []
    return np.hstack(parts), sources


class EmbeddingDriftCheck(Check):
    """Adversarial validation: can a classifier tell val images from train images?

    A logistic regression (standardised features, ``class_weight="balanced"``)
    is trained on the embeddings (or descriptor), reduced by PCA to at most
    ``max_dim`` (64) dimensions, plus the numeric image properties.
    Stratified ``n_folds``-fold (5) cross-validation gives an out-of-fold
    "val-likeness" score for every fitted image; images left out of the
    fitting subsample (at most ``max_samples`` = 20 000, stratified by split)
    are scored by the average of the fold models, which never saw them.

    Evidence: ROC AUC of the out-of-fold scores with a Hanley–McNeil 95 % CI,
    and a one-sided p-value (AUC > 0.5) from the Mann–Whitney U test on the
    out-of-fold scores. It is approximate (fold models differ), but stratified
    folds keep the split ratio equal in every fold, so fold offsets do not
    favour either split, and cross-validated AUC under the null leans below
    0.5, which makes the test conservative; ``benchmarks/results_calibration.md``
    shows its p-values on random splits. ``n_permutations`` > 0 instead derives
    the p-value from that many label permutations refitted on the same folds.

    ``warn`` when p < ``alpha`` (0.01) **and** AUC ≥ ``min_auc`` (0.55);
    ``fail`` when additionally AUC ≥ 0.75. ``numbers`` lists the most
    val-like training images and the most train-like validation images.
    """

    name = "embedding_drift"

    def run(self, context: Any) -> CheckResult:
        with single_thread():
            return self._run(context)

    def _run(self, context: Any) -> CheckResult:
        from sklearn.model_selection import StratifiedKFold

        opt = lambda key, default: option(context, self.name, key, default)  # noqa: E731
        alpha, min_auc = float(opt("alpha", 0.01)), float(opt("min_auc", 0.55))
        max_samples, n_folds = int(opt("max_samples", 20_000)), int(opt("n_folds", 5))
        n_permutations, top_k = int(opt("n_permutations", 0)), int(opt("top_k", 10))
        seed = int(context.random_state)
        images = context.split.images
        ok, n_unreadable = usable_rows(context)
        x, sources = _adversarial_features(context, ok, int(opt("max_dim", 64)), seed)
        if x is None:
            return CheckResult(self.name, "skipped", "No embeddings, descriptor or properties to compare.",
                               {"reason": "no features"})
        y = (images["split"] == "val").to_numpy()[ok]
        if min(y.sum(), (~y).sum()) < n_folds:
            return CheckResult(self.name, "skipped", f"Fewer than {n_folds} images in a split.",
                               {"reason": "too few images for cross-validation"})
        rng = np.random.default_rng(seed)
        fit_rows = _fit_rows(y, max_samples, n_folds, rng)
        folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(fit_rows, y[fit_rows]))
        probe = _Adversary(x, fit_rows, len(y), folds)
        oof, auc, p_value, p_method = probe.test(y[fit_rows], n_permutations, rng,
                                                 getattr(context, "progress", None))
        n_val_fit, n_train_fit = int(y[fit_rows].sum()), int((~y[fit_rows]).sum())
        low, high = auc_ci_hanley_mcneil(auc, n_val_fit, n_train_fit)

        score = np.full(len(images), np.nan)
        ok_idx = np.flatnonzero(ok)
        score[ok_idx[fit_rows]] = oof
        score[ok_idx[probe.rest]] = probe.rest_score
        prob = 1 / (1 + np.exp(-score))  # balanced weights: 0.5 = undecided
        split = images["split"].to_numpy()
        per_image = pd.DataFrame(
            {"path": images["path"].to_numpy(), "split": split, "val_likeness": prob},
            index=images.index,
        )
        status = "pass"
        if p_value < alpha and auc >= min_auc:
            status = "fail" if auc >= 0.75 else "warn"
        numbers = {
            "auc": auc, "auc_ci": [low, high], "p_value": p_value, "p_method": p_method,
            "n_train": n_train_fit, "n_val": n_val_fit, "n_scored": int(np.isfinite(score).sum()),
            "n_unreadable": n_unreadable, "subsampled": bool(len(fit_rows) < len(y)),
            "max_samples": max_samples, "n_folds": n_folds, "features": sources,
            "n_features": int(x.shape[1]),
            "val_like_train": _most_val_like(per_image[per_image["split"] == "train"], False, top_k),
            "train_like_val": _most_val_like(per_image[per_image["split"] == "val"], True, top_k),
            "thresholds": {"alpha": alpha, "min_auc": min_auc, "fail_auc": 0.75},
        }
        return CheckResult(self.name, status, _adversarial_message(status, numbers), numbers, per_image)


def _fit_rows(y: np.ndarray, max_samples: int, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Rows the adversary is fitted on: all, or a subsample stratified by split (same val fraction)."""
    if len(y) <= max_samples:
        return np.arange(len(y))
    keep = []
    for cls in (False, True):
        members = np.flatnonzero(y == cls)
        take = max(n_folds, round(max_samples * len(members) / len(y)))
        keep.append(rng.choice(members, min(take, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


class _Adversary:
    """Cross-validated logistic regression telling val from train on fixed folds.

    ``rest`` (rows outside the fitting subsample) and their ``rest_score`` (the mean of the fold
    models, which never saw them) are filled by the first :meth:`cross_val` with ``score_rest``.
    """

    def __init__(self, x: np.ndarray, fit_rows: np.ndarray, n_rows: int, folds: list):
        self.x, self.fit_rows, self.n_rows, self.folds = x, fit_rows, n_rows, folds
        self.rest, self.rest_score = np.zeros(0, int), np.zeros(0)

    def cross_val(self, labels: np.ndarray, score_rest: bool) -> np.ndarray:
        """Out-of-fold decision scores of the fitted rows under ``labels``."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        x, fit_rows = self.x, self.fit_rows
        oof = np.empty(len(fit_rows))
        rest = np.setdiff1d(np.arange(self.n_rows), fit_rows) if score_rest else np.zeros(0, int)
        rest_score = np.zeros(len(rest))
        for fit_idx, test_idx in self.folds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = LogisticRegression(class_weight="balanced", max_iter=200)
                model.fit(x[fit_rows[fit_idx]], labels[fit_idx])
            oof[test_idx] = model.decision_function(x[fit_rows[test_idx]])
            if len(rest):
                rest_score += model.decision_function(x[rest]) / len(self.folds)
        if score_rest:
            self.rest, self.rest_score = rest, rest_score
        return oof

    def test(self, labels: np.ndarray, n_permutations: int, rng: np.random.Generator,
             progress: Any) -> tuple[np.ndarray, float, float, str]:
        """(out-of-fold scores, AUC, p-value, how the p-value was found)."""
        if progress:
            progress("embedding drift", 0, 1 + n_permutations)
        oof = self.cross_val(labels, True)
        auc, p_value = auc_mann_whitney(oof, labels)
        if progress:
            progress("embedding drift", 1, 1 + n_permutations)
        if n_permutations <= 0:
            return oof, auc, p_value, "mann-whitney on out-of-fold scores"
        null = []
        for i in range(n_permutations):
            shuffled = rng.permutation(labels)
            null.append(auc_mann_whitney(self.cross_val(shuffled, False), shuffled)[0])
            if progress:
                progress("embedding drift", i + 1, 1 + n_permutations)
        p_value = (1 + sum(a >= auc for a in null)) / (1 + n_permutations)
        return oof, auc, p_value, f"label permutation ({n_permutations} refits on the same folds)"


def _most_val_like(rows: pd.DataFrame, ascending: bool, top_k: int) -> list[dict]:
    rows = rows.dropna(subset=["val_likeness"]).sort_values("val_likeness", ascending=ascending)
    return [{"path": r.path, "val_likeness": float(r.val_likeness)} for r in rows.head(top_k).itertuples()]


def _adversarial_message(status: str, x: dict) -> str:
    (low, high), auc, p = x["auc_ci"], x["auc"], x["p_value"]
    evidence = f"95% CI {low:.3f}–{high:.3f}, p={p:.3g}, n={x['n_train']}+{x['n_val']}"
    if status != "pass":
        return f"Val images are distinguishable from train images: adversarial AUC {auc:.3f} ({evidence})."
    message = f"A classifier cannot tell val from train images (AUC {auc:.3f}, {evidence})."
    if high < 0.5:  # below chance: an artefact of cross-validating few images, not a difference
        message += (" An AUC below 0.5 means no usable signal (cross-validated predictions on few "
                    "images can fall below chance); it is not evidence of a difference.")
    return message
