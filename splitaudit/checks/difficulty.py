"""Is the validation set easier (or harder) than the training set?

Difficulty of an image is its *out-of-fold* loss under a small probe model
trained by k-fold cross-validation on **all** images, ignoring which split
each image is in. Because the probe never sees the split, a random split makes
the train/val labels exchangeable with respect to difficulty, so a label
permutation test on the difficulties is exact.

Fitting the probe is retrain work, a later stage: :func:`probe_plan` says what
to fit it on, the pipeline fits it
(:func:`splitaudit.retrain.probes.difficulty_probe_loss`) and hands the losses
over in ``context.probe_loss``; the check only analyses them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ._stats import features_of, holm, mean_difference, option, usable_rows
from .base import Check, CheckResult

__all__ = ["DifficultyCheck", "ProbePlan", "ProbeLoss", "probe_plan"]

NAME = "difficulty"


@dataclass(frozen=True)
class ProbePlan:
    """What the difficulty probe is fitted on.

    Attributes
    ----------
    rows : ndarray of bool, shape (N,)
        Images with a readable file and a known label (or target): the probe's data.
    features : ndarray of shape (N, D)
        One row per image of ``split.images``.
    labels, targets : ndarray of shape (N,) or None
        Exactly one is given: class labels (classification) or float targets (regression).
    feature_source : {"embeddings", "descriptor"}
    n_folds, max_dim, random_state : int
        The probe's settings (options ``n_folds`` and ``max_dim`` of the check).
    """

    rows: np.ndarray
    features: np.ndarray
    labels: np.ndarray | None
    targets: np.ndarray | None
    feature_source: str
    n_folds: int
    max_dim: int
    random_state: int

    @property
    def settings(self) -> dict:
        """The probe settings a finding reports."""
        return {"n_folds": self.n_folds, "max_dim": self.max_dim, "features": self.feature_source,
                "feature_dim": int(self.features.shape[1])}

    @property
    def source(self) -> str:
        """Where a finding's difficulty comes from, in words."""
        loss = "cross-entropy" if self.labels is not None else "squared error"
        return f"out-of-fold {loss} of a linear probe on {self.feature_source}"


@dataclass(frozen=True)
class ProbeLoss:
    """The probe's out-of-fold losses, as the pipeline fitted them.

    Attributes
    ----------
    values : ndarray of shape (N,) or None
        Per-image loss, NaN outside the plan's rows; None when the fit failed.
    error : Exception or None
        What stopped the fit; the check raises it, so the finding is an ``error`` with the reason.
    warnings : tuple of warnings.WarningMessage
        Raised while fitting; the check raises them again, so its finding keeps them.
    """

    values: np.ndarray | None = None
    error: Exception | None = None
    warnings: tuple = ()


def probe_plan(context: Any) -> ProbePlan | str:
    """What the probe is to be fitted on, or why difficulty cannot be compared (a skip reason)."""
    images = context.split.images
    ok, _ = usable_rows(context)
    is_val = (images["split"] == "val").to_numpy()
    task = context.split.task
    features, feature_source = features_of(context)
    if task is None:
        return "the split has no labels or targets and no image_loss was given"
    if features is None:
        return "no embeddings or fingerprint descriptor to train a probe on"
    column = "label" if task == "classification" else "target"
    rows = ok & images[column].notna().to_numpy()
    if rows.sum() < 20 or len(np.unique(is_val[rows])) < 2:
        return f"only {int(rows.sum())} usable labelled images, too few for a probe"
    values = images.loc[rows, column].astype(str)
    if values.nunique() < 2:
        # one class: every fold's probe predicts it with certainty, so every loss is 0
        what = "class" if task == "classification" else "target"
        return (f"all {int(rows.sum())} usable labelled images have the same {what} ({values.iloc[0]}), "
                "so a probe has nothing to tell apart and every loss would be 0")
    return ProbePlan(
        rows=rows, features=features,
        labels=images["label"].to_numpy() if task == "classification" else None,
        targets=images["target"].to_numpy(dtype=np.float64) if task != "classification" else None,
        feature_source=feature_source,
        n_folds=int(option(context, NAME, "n_folds", 5)),
        max_dim=int(option(context, NAME, "max_dim", 64)),
        random_state=int(context.random_state),
    )


@dataclass(frozen=True)
class _Thresholds:
    alpha: float
    min_relative: float
    fail_relative: float
    n_permutations: int
    n_bootstrap: int

    @classmethod
    def of(cls, context: Any) -> "_Thresholds":
        """The verdict options of ``context``, validated."""
        opt = lambda key, default: option(context, NAME, key, default)  # noqa: E731
        t = cls(float(opt("alpha", 0.01)), float(opt("min_relative", 0.05)), float(opt("fail_relative", 0.20)),
                int(opt("n_permutations", 999)), int(opt("n_bootstrap", 1000)))
        where = f"options[{NAME!r}]"
        if not 0 < t.alpha < 1:
            raise InputError(f"{where}['alpha'] must be in (0, 1), got {t.alpha!r}")
        if not 0 <= t.min_relative <= t.fail_relative:
            raise InputError(
                f"{where} needs 0 <= min_relative <= fail_relative, got {t.min_relative!r} and {t.fail_relative!r}"
            )
        if 1 / (1 + t.n_permutations) >= t.alpha:
            raise InputError(
                f"{where}['n_permutations']={t.n_permutations} can never give p < alpha={t.alpha:g}; "
                f"use at least {int(np.ceil(1 / t.alpha))} permutations"
            )
        return t

    def direction(self, p: float, relative: float) -> str:
        """``val_easier``, ``val_harder`` or ``none`` (not significant, or not material)."""
        if not (math.isfinite(p) and math.isfinite(relative)) or p >= self.alpha:
            return "none"
        if relative <= -self.min_relative:
            return "val_easier"
        if relative >= self.min_relative:
            return "val_harder"
        return "none"


def _not_estimable(overall: dict) -> str | None:
    """Why the val/train ratio or its interval cannot be computed, or None when they can."""
    needed = (overall["relative"], overall["relative_ci_low"], overall["relative_ci_high"], overall["p_value"])
    if all(math.isfinite(x) for x in needed):
        return None
    if overall["mean_a"] == 0 and overall["mean_b"] == 0:
        return "every usable image has loss 0, so there is no difficulty to compare"
    if overall["mean_a"] == 0:
        return (f"the mean train loss is 0 (val {overall['mean_b']:.3g}), "
                "so the val/train ratio is undefined")
    return "too few images with a non-zero loss to bootstrap a confidence interval of the val/train ratio"


def _message(overall: dict, direction: str, t: _Thresholds) -> str:
    rel = overall["relative"]
    if direction == "none":
        return (
            f"No significant and material difference in difficulty between val and train "
            f"(val/train mean loss {rel:+.1%}, 95% CI {overall['relative_ci_low']:+.1%} to "
            f"{overall['relative_ci_high']:+.1%}, p={overall['p_value']:.3g}; a verdict needs "
            f"p<{t.alpha:g} and at least {t.min_relative:.0%})."
        )
    word = "easier" if direction == "val_easier" else "harder"
    return (
        f"Validation images are {word} than training images: mean loss "
        f"{rel:+.1%} (95% CI {overall['relative_ci_low']:+.1%} to "
        f"{overall['relative_ci_high']:+.1%}), Cohen's d={overall['cohens_d']:.2f}, "
        f"p={overall['p_value']:.3g}, n={overall['n_a']}+{overall['n_b']}."
    )


def _numbers(overall: dict, t: _Thresholds, *, n_unreadable: int, n_excluded: int) -> dict:
    """The overall comparison as a finding reports it."""
    return {
        "n_train": overall["n_a"],
        "n_val": overall["n_b"],
        "n_unreadable": n_unreadable,
        "n_excluded": n_excluded,
        "mean_train": overall["mean_a"],
        "mean_val": overall["mean_b"],
        "median_train": overall["median_a"],
        "median_val": overall["median_b"],
        "difference": overall["difference"],
        "difference_ci": [overall["ci_low"], overall["ci_high"]],
        "relative": overall["relative"],
        "relative_ci": [overall["relative_ci_low"], overall["relative_ci_high"]],
        "cohens_d": overall["cohens_d"],
        "p_value": overall["p_value"],
        "n_permutations": t.n_permutations,
        "n_bootstrap": t.n_bootstrap,
        "thresholds": {"alpha": t.alpha, "min_relative": t.min_relative, "fail_relative": t.fail_relative},
    }


class DifficultyCheck(Check):
    """Compare per-image difficulty of validation vs training images.

    Difficulty is the out-of-fold probe loss in ``context.probe_loss`` (see
    :func:`splitaudit.retrain.probes.probe_difficulty`) on the embeddings, or
    the fingerprint descriptor when there are none; a user-supplied
    ``context.image_loss`` replaces it.

    Verdict thresholds (options under ``"difficulty"``, reported in ``numbers``):

    - ``alpha`` = 0.01: two-sided permutation p-value must be below it;
    - ``min_relative`` = 0.05: ``|mean_val / mean_train - 1|`` must reach 5 %;
    - ``fail_relative`` = 0.20: at or beyond 20 % the status is ``fail``.

    ``direction`` is ``val_easier``, ``val_harder`` or ``none``; ``warn``/``fail``
    only when the difference is significant *and* material. When the val/train
    ratio or its interval cannot be estimated (a mean train loss of 0, ...) the
    status is ``skipped`` and ``numbers["reason"]`` says why. Per-class
    comparisons carry Holm-adjusted p-values. Other options: ``n_folds`` (5),
    ``max_dim`` (64), ``n_permutations`` (999), ``n_bootstrap`` (1000).

    Examples
    --------
    >>> result = DifficultyCheck().run(context)            # doctest: +SKIP
    >>> result.numbers["direction"], result.numbers["relative"]  # doctest: +SKIP
    """

    name = NAME

    def run(self, context: Any) -> CheckResult:
        t = _Thresholds.of(context)
        images = context.split.images
        ok, n_unreadable = usable_rows(context)
        is_val = (images["split"] == "val").to_numpy()
        measured = self._difficulty(context, ok)
        if isinstance(measured, str):
            return self._skip(measured)
        difficulty, use, source, probe_settings = measured
        train, val = use & ~is_val, use & is_val
        if train.sum() < 2 or val.sum() < 2:
            return self._skip("need at least two usable images in each split")
        rng = np.random.default_rng(context.random_state)
        overall = mean_difference(difficulty[train], difficulty[val], rng=rng,
                                  n_permutations=t.n_permutations, n_bootstrap=t.n_bootstrap)
        direction = t.direction(overall["p_value"], overall["relative"])
        per_class = self._per_class(images, difficulty, train, val, rng, t.n_permutations, t.n_bootstrap)
        status = "pass"
        if direction != "none":
            status = "fail" if abs(overall["relative"]) >= t.fail_relative else "warn"
        numbers = {"direction": direction, "source": source, "probe": probe_settings,
                   **_numbers(overall, t, n_unreadable=n_unreadable, n_excluded=int(len(images) - use.sum())),
                   "per_class": per_class}
        reason = _not_estimable(overall)
        if reason is not None:  # NaN must never reach the message as "+nan%"
            status, message = "skipped", f"Difficulty not compared: could not estimate it, {reason}."
            numbers["reason"] = reason
        else:
            message = _message(overall, direction, t)
        per_image = pd.DataFrame(
            {
                "path": images["path"].to_numpy(),
                "split": images["split"].to_numpy(),
                "label": images["label"].to_numpy(),
                "difficulty": difficulty,
            },
            index=images.index,
        )
        return CheckResult(self.name, status, message, numbers, per_image)

    def _difficulty(self, context: Any, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, str, dict | None] | str:
        """(per-image difficulty, rows to compare, its source, probe settings), or a skip reason."""
        n_images = len(context.split.images)
        if getattr(context, "image_loss", None) is not None:
            difficulty = np.asarray(context.image_loss, dtype=np.float64).ravel()
            if len(difficulty) != n_images:
                raise InputError(
                    f"image_loss must have one value per image ({n_images}), got {len(difficulty)}"
                )
            return difficulty, ok & np.isfinite(difficulty), "user image_loss", None
        plan = probe_plan(context)
        if isinstance(plan, str):
            return plan
        loss = getattr(context, "probe_loss", None)
        if loss is None:
            raise InputError("the context has no probe_loss: fit it with "
                             "splitaudit.retrain.probes.difficulty_probe_loss(context) and pass probe_loss= "
                             "(splitaudit.scan does), or give image_loss=")
        for caught in loss.warnings:  # raised while fitting: they belong to this finding
            warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)
        if loss.error is not None:
            raise loss.error
        return loss.values, plan.rows, plan.source, plan.settings

    def _per_class(self, images, difficulty, train, val, rng, n_permutations, n_bootstrap) -> list[dict]:
        if not images["label"].notna().any():
            return []
        labels = images["label"].astype(str).to_numpy()
        labelled = images["label"].notna().to_numpy()
        rows = []
        for label in sorted(pd.unique(labels[(train | val) & labelled])):
            in_class = (labels == label) & labelled
            a, b = difficulty[train & in_class], difficulty[val & in_class]
            if len(a) < 2 or len(b) < 2:
                continue
            res = mean_difference(
                a, b, rng=rng,
                n_permutations=max(99, n_permutations // 5), n_bootstrap=max(200, n_bootstrap // 5),
            )
            rows.append(
                {
                    "label": label, "n_train": res["n_a"], "n_val": res["n_b"],
                    "mean_train": res["mean_a"], "mean_val": res["mean_b"],
                    "relative": res["relative"],
                    "relative_ci": [res["relative_ci_low"], res["relative_ci_high"]],
                    "cohens_d": res["cohens_d"], "p_value": res["p_value"],
                }
            )
        adjusted = holm(np.array([r["p_value"] for r in rows], dtype=float))
        for row, p_adj in zip(rows, adjusted):
            row["p_holm"] = float(p_adj)
        return rows

    def _skip(self, reason: str) -> CheckResult:
        return CheckResult(self.name, "skipped", f"Difficulty not compared: {reason}.", {"reason": reason})
