"""One scoring function per cause of a validation loss below the training loss.

Each function returns a dict ``{cause, score, known, evidence, advice}``. The
rules are stated in the package docstring (:mod:`splitaudit.explain`); this
module implements them. All "shares" compare a measured quantity with the size
of the gap over the last few epochs, ``-G`` where ``G = mean(val - train)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .evidence import (
    N_TRAIN_KEYS,
    N_VAL_KEYS,
    P_VALUE_KEYS,
    RELATIVE_DIFFERENCE_KEYS,
    fold_gaps,
    leak_fraction,
    number,
)
from ..sources.history import History

__all__ = ["Curves", "curves_of", "measurement_lag", "regularization", "leakage",
           "easier_validation", "random_variation", "WINDOW", "LEAK_HALF_SCORE_FRACTION", "STATUSES"]

WINDOW = 3  # epochs averaged at the end of training
LEAK_HALF_SCORE_FRACTION = 0.05  # a leaked fraction of 5% of val scores 0.5 before the gap bound
SIGNIFICANT_P = 0.01
SUGGESTIVE_P = 0.05
DRIFT_WEIGHT = {"warn": 0.15, "fail": 0.3}
DRIFT_CHECKS = ("label_distribution", "property_drift", "embedding_drift")
PERSISTS_FACTOR = 0.5  # split-specific causes when the gap persists on leak-free re-splits


@dataclass(frozen=True)
class Curves:
    """The history's curves on the epochs that have both losses, plus the shifted train loss."""

    epoch: np.ndarray
    train: np.ndarray
    val: np.ndarray
    train_shifted: np.ndarray  # running-mean train loss moved to the time val was measured
    train_eval: np.ndarray | None
    window: np.ndarray  # boolean mask of the last WINDOW epochs

    @property
    def gap(self) -> float:
        """Mean of val - train over the window (negative: val lower)."""
        return float(np.mean(self.val[self.window] - self.train[self.window]))

    @property
    def train_level(self) -> float:
        return float(np.mean(self.train[self.window]))

    @property
    def relative_gap(self) -> float:
        return self.gap / self.train_level if self.train_level else float("nan")


def _shift(epoch: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Train loss at the end of each epoch: halfway to the next epoch's running mean.

    The running mean reported for epoch ``e`` estimates the loss at ``e - 0.5``;
    the mean reported for ``e + 1`` estimates it at ``e + 0.5``; their average
    estimates it at ``e``, when val was measured. The last epoch has no next one
    and is extrapolated linearly from the previous interval.
    """
    by_epoch = dict(zip(epoch.tolist(), train.tolist()))
    out = np.full(len(epoch), np.nan)
    for i, e in enumerate(epoch.tolist()):
        here = by_epoch.get(e)
        after, before = by_epoch.get(e + 1), by_epoch.get(e - 1)
        if here is None or math.isnan(here):
            continue
        if after is not None and not math.isnan(after):
            out[i] = (here + after) / 2
        elif before is not None and not math.isnan(before):
            out[i] = here + (here - before) / 2
    return out


def curves_of(history: History, window_epochs: tuple[int, ...] | None = None) -> Curves:
    """The curves on the epochs with both losses; ``window_epochs`` (default: the last WINDOW) is scored."""
    frame = history.frame
    shifted_all = _shift(frame["epoch"].to_numpy(), frame["train_loss"].to_numpy(float))
    both = (frame["train_loss"].notna() & frame["val_loss"].notna()).to_numpy()
    epoch = frame["epoch"].to_numpy()[both]
    if window_epochs is None:
        window = np.zeros(len(epoch), dtype=bool)
        window[-WINDOW:] = True
    else:
        window = np.isin(epoch, np.asarray(window_epochs, dtype=int))
    train_eval = None
    if history.has_eval:
        train_eval = frame["train_loss_eval"].to_numpy(float)[both]
    return Curves(
        epoch=epoch,
        train=frame["train_loss"].to_numpy(float)[both],
        val=frame["val_loss"].to_numpy(float)[both],
        train_shifted=shifted_all[both],
        train_eval=train_eval,
        window=window,
    )


STATUSES = ("measured", "suspected", "unknown")


def _cause(name: str, score: float | None, evidence: dict, advice: str, status: str | None = None) -> dict:
    """One ranked entry. ``status``: measured (from evidence), suspected (from the history's shape
    alone, see :mod:`.suspects`) or unknown (score 0); ``known`` is True only when measured."""
    status = status or ("unknown" if score is None else "measured")
    evidence = {"status": status, **evidence}
    value = 0.0 if score is None or math.isnan(score) else float(np.clip(score, 0.0, 1.0))
    return {"cause": name, "score": round(value, 3), "known": status == "measured", "status": status,
            "evidence": evidence, "advice": advice}


def _share(part: float, gap: float) -> float:
    return float(np.clip(part / -gap, 0.0, 1.0)) if gap < 0 else 0.0


def measurement_lag(curves: Curves) -> dict:
    advice = ("Compare val(e) with the train loss half an epoch later (the dashed curve in the plot), "
              "or re-evaluate the train loss in eval mode at the end of each epoch.")
    shifted = curves.train_shifted[curves.window]
    if np.isnan(shifted).all():
        return _cause("measurement_lag", None, {"reason": "a single epoch: the train loss cannot be shifted"}, advice)
    ok = ~np.isnan(shifted)
    gap = float(np.mean((curves.val - curves.train)[curves.window][ok]))
    lag = float(np.mean((curves.train[curves.window] - curves.train_shifted[curves.window])[ok]))
    shifted_gap = gap + lag
    evidence = {"gap": gap, "shifted_gap": shifted_gap, "lag_part": lag,
                "epochs": curves.epoch[curves.window][ok].tolist()}
    if curves.train_eval is not None:
        evidence["eval_gap"] = float(np.nanmean((curves.val - curves.train_eval)[curves.window]))
        evidence["eval_train_at_least_val"] = bool(evidence["eval_gap"] <= 0)
    if gap >= 0:
        return _cause("measurement_lag", 0.0, {**evidence, "reason": "val is not below train"}, advice)
    evidence["share_of_gap"] = _share(lag, gap)
    return _cause("measurement_lag", evidence["share_of_gap"], evidence, advice)


def regularization(curves: Curves, kfold: Mapping | None, lag_share: float | None) -> dict:
    advice = ("Expected with dropout, weight decay, augmentation or label smoothing: judge the gap with the "
              "train loss measured in eval mode (no augmentation) instead of the running training loss.")
    gap = curves.gap
    evidence: dict = {}
    persists = (kfold or {}).get("verdict", {}).get("persists") if kfold else None
    score = None
    if curves.train_eval is not None and not np.isnan(curves.train_eval[curves.window]).all():
        reference = np.where(np.isnan(curves.train_shifted), curves.train, curves.train_shifted)
        part = float(np.nanmean((reference - curves.train_eval)[curves.window]))
        evidence.update(train_minus_eval=part, gap=gap,
                        eval_gap=float(np.nanmean((curves.val - curves.train_eval)[curves.window])),
                        source="train_loss_eval in the history")
        score = _share(part, gap)
        evidence["share_of_gap"] = score
    if kfold:
        verdict = kfold.get("verdict") or {}
        _, lower = number(verdict, ("n_folds_val_lower",))
        _, n_folds = number(verdict, ("n_folds",))
        gaps, gaps_eval = fold_gaps(kfold, "gap"), fold_gaps(kfold, "gap_eval")
        evidence.update(persists=persists, n_folds_val_lower=lower, n_folds=n_folds)
        if len(gaps_eval) and len(gaps_eval) == len(gaps):
            closed = int(np.sum((gaps < 0) & (gaps_eval >= 0)))
            evidence["folds_closed_by_eval"] = f"{closed}/{int(np.sum(gaps < 0))}"
            if score is None and np.sum(gaps < 0):
                score = closed / np.sum(gaps < 0) * (1.0 - (lag_share or 0.0))
        original_gap = (kfold.get("original") or {}).get("gap")
        probe_lower = original_gap is not None and original_gap < 0
        if score is None and persists:
            fraction_lower = lower / n_folds if lower is not None and n_folds else 1.0
            score = fraction_lower * (1.0 - (lag_share or 0.0))
            evidence["rule"] = "gap persists across re-splits, not explained by measurement lag"
        elif score is None and persists is False and probe_lower:
            score = 0.0  # the probe's own val < train is split-specific, not its training regime
            evidence["rule"] = "the probe's val < train on this split does not persist on re-splits"
        elif score is None and persists is False:
            evidence["kfold_note"] = ("the k-fold probe does not show val < train on the original split "
                                      "(it has none of your model's dropout or augmentation), so it says "
                                      "nothing about regularisation")
        elif score is not None and persists is False:
            original_gap = (kfold.get("original") or {}).get("gap")
            if original_gap is not None and original_gap < 0:
                # the probe reproduces val < train on this split but not on re-splits:
                # a split-specific effect, which speaks against regularisation
                score *= PERSISTS_FACTOR
            else:
                evidence["kfold_note"] = ("the k-fold probe does not show val < train on the original "
                                          "split, so it says nothing about regularisation")
    if score is None:
        evidence["reason"] = ("no eval-mode train loss in the history" + ("" if kfold else " and no k-fold result")
                              + "; log the train loss in eval mode as train_loss_eval (Keras: loss_eval)"
                              + ("" if kfold else " or pass kfold="))
    return _cause("regularization", score, evidence, advice)


def _per_image(difficulty: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str | None]:
    if difficulty is None:
        return None, None
    column = next((c for c in ("loss", "image_loss", "difficulty") if c in difficulty), None)
    if column is None or "split" not in difficulty:
        return None, None
    frame = difficulty.assign(_loss=pd.to_numeric(difficulty[column], errors="coerce"))
    return frame[frame["_loss"].notna()], column


DUPLICATE_COLUMNS = ("has_cross_duplicate", "leaked", "has_train_duplicate", "train_duplicate", "duplicate",
                     "is_duplicate", "near_duplicate", "exact_duplicate")


def leakage(curves: Curves, findings: Mapping[str, dict], difficulty: pd.DataFrame | None,
            persists: bool | None, n_val: float | None) -> dict:
    advice = ("Remove or move the duplicated validation images (splitaudit resplit builds a leak-free split) "
              "and re-measure; a leaked val set rewards memorisation.")
    evidence: dict = {}
    fractions = {}
    for name in ("exact_duplicates", "near_duplicates"):
        finding = findings.get(name)
        if not finding:
            continue
        status = finding.get("status")
        evidence[f"{name}_status"] = status
        if status in ("skipped", "error"):
            continue
        fraction, key = leak_fraction(finding, n_val)
        if fraction is None and status == "pass":
            fraction, key = 0.0, "status pass"
        if fraction is not None:
            fractions[name] = fraction
            evidence[f"{name}_fraction_of_val"] = fraction
            evidence[f"{name}_read_from"] = key
    if not fractions:
        flagged = [k for k, v in evidence.items() if k.endswith("_status") and v in ("warn", "fail")]
        evidence["reason"] = (
            f"{', '.join(flagged)} flagged duplicates but reported no fraction of val"
            if flagged else "no usable exact_duplicates/near_duplicates finding; pass scan=")
        return _cause("leakage", None, evidence, advice)
    # exact duplicates are usually also near duplicates: the larger fraction is a lower bound on the union
    fraction = max(fractions.values())
    evidence["fraction_of_val_leaked"] = fraction
    gap = curves.gap
    val_level = float(np.mean(curves.val[curves.window]))
    prevalence = fraction / (fraction + LEAK_HALF_SCORE_FRACTION)
    bound = fraction * val_level / max(1.0 - fraction, 1e-9)  # if leaked images had zero loss
    evidence["max_val_loss_reduction"] = bound
    score = prevalence * (min(1.0, bound / -gap) if gap < 0 else 1.0)
    frame, column = _per_image(difficulty)
    flag = next((c for c in DUPLICATE_COLUMNS if frame is not None and c in frame), None)
    if frame is not None and flag is not None:
        val = frame[frame["split"] == "val"]
        dup = val["_loss"][val[flag].astype(bool)]
        rest = val["_loss"][~val[flag].astype(bool)]
        if len(dup) >= 5 and len(rest) >= 5 and rest.mean() > 0:
            relative = float(val["_loss"].mean() / rest.mean() - 1.0)  # effect of the dups on mean val loss
            p = float(stats.mannwhitneyu(dup, rest, alternative="less").pvalue)
            evidence.update(per_image_source=column, n_val_duplicated=int(len(dup)),
                            duplicated_mean_loss=float(dup.mean()), other_mean_loss=float(rest.mean()),
                            relative_effect_on_val_loss=relative, mannwhitney_p=p)
            share = float(np.clip(relative / curves.relative_gap, 0, 1)) if gap < 0 and relative < 0 else 0.0
            score = prevalence * share * (1.0 if p < SUGGESTIVE_P else 0.5)
    if persists:
        score *= PERSISTS_FACTOR
        evidence["persists_on_resplits"] = True
    return _cause("leakage", score, evidence, advice)


def _difficulty_from_frame(frame: pd.DataFrame, column: str) -> dict | None:
    train = frame["_loss"][frame["split"] == "train"].to_numpy(float)
    val = frame["_loss"][frame["split"] == "val"].to_numpy(float)
    if len(train) < 2 or len(val) < 2 or train.mean() == 0:
        return None
    test = stats.ttest_ind(val, train, equal_var=False)
    relative = float(val.mean() / train.mean() - 1.0)
    p = float(test.pvalue)
    direction = "none"
    if p < SIGNIFICANT_P:
        direction = "val_easier" if relative < 0 else "val_harder"
    return {"direction": direction, "p_value": p, "relative_difference": relative,
            "n_train": len(train), "n_val": len(val), "source": f"per-image {column} (Welch t-test)"}


def easier_validation(curves: Curves, findings: Mapping[str, dict], difficulty: pd.DataFrame | None,
                      persists: bool | None) -> dict:
    advice = ("Check the difficulty and drift findings: re-split at random (stratified, leak-aware) or "
              "report the val loss per class / per difficulty bin so the comparison is like for like.")
    evidence: dict = {}
    finding = findings.get("difficulty")
    measured = None
    if finding and finding.get("status") not in ("skipped", "error"):
        _, p = number(finding, P_VALUE_KEYS)
        _, relative = number(finding, RELATIVE_DIFFERENCE_KEYS)
        measured = {"direction": finding.get("direction"), "p_value": p, "relative_difference": relative,
                    "n_train": number(finding, N_TRAIN_KEYS)[1], "n_val": number(finding, N_VAL_KEYS)[1],
                    "source": "scan difficulty finding"}
    else:
        frame, column = _per_image(difficulty)
        if frame is not None:
            measured = _difficulty_from_frame(frame, column)
    score_difficulty = None
    if measured:
        evidence["difficulty"] = measured
        direction, p, relative = measured["direction"], measured["p_value"], measured["relative_difference"]
        if direction is None and relative is not None and p is not None:
            direction = ("val_easier" if relative < 0 else "val_harder") if p < SIGNIFICANT_P else "none"
        if direction == "val_easier":
            significance = 1.0 if p is None or p < SIGNIFICANT_P else (0.5 if p < SUGGESTIVE_P else 0.0)
            if relative is None:
                materiality = 0.5
            elif curves.gap < 0:
                materiality = min(1.0, abs(relative) / abs(curves.relative_gap))
            else:
                materiality = 1.0
            score_difficulty = significance * materiality
        else:
            score_difficulty = 0.0
    drift = 0.0
    drift_seen = False
    for name in DRIFT_CHECKS:
        status = (findings.get(name) or {}).get("status")
        if status in ("pass", "warn", "fail"):
            drift_seen = True
            evidence[f"{name}_status"] = status
            drift += DRIFT_WEIGHT.get(status, 0.0)
    drift = min(drift, 0.5)
    if score_difficulty is None and not drift_seen:
        evidence["reason"] = "no difficulty/drift finding and no per-image difficulty; pass scan= or difficulty="
        return _cause("easier_validation", None, evidence, advice)
    # drift says val differs, not that it is easier: it weighs less when difficulty was measured
    score = drift if score_difficulty is None else max(score_difficulty, 0.5 * drift)
    if persists:
        score *= PERSISTS_FACTOR
        evidence["persists_on_resplits"] = True
    return _cause("easier_validation", score, evidence, advice)


def frame_has_spread(difficulty: pd.DataFrame | None) -> bool:
    frame, _ = _per_image(difficulty)
    return frame is not None and int((frame["split"] == "val").sum()) > 1


def random_variation(curves: Curves, kfold: Mapping | None, n_val: float | None, n_train: float | None,
                     difficulty: pd.DataFrame | None) -> dict:
    advice = ("Treat the gap as noise: report it with its standard error, use a larger validation set, "
              "or repeat the comparison on several re-splits (splitaudit kfold).")
    gap = curves.gap
    evidence: dict = {"gap": gap}
    variances = []
    if n_val:
        cv, source = 1.0, "assumed coefficient of variation 1 for per-image loss"
        frame, column = _per_image(difficulty)
        if frame is not None:
            val = frame["_loss"][frame["split"] == "val"]
            if len(val) > 1 and val.mean() > 0:
                cv, source = float(val.std(ddof=1) / val.mean()), f"coefficient of variation of per-image {column}"
        sd = cv * float(np.mean(curves.val[curves.window]))
        se_sampling = sd * math.sqrt(1.0 / n_val + (1.0 / n_train if n_train else 0.0))
        evidence.update(n_val=n_val, n_train=n_train, se_sampling=se_sampling, sd_source=source)
        variances.append(se_sampling**2)
    window_gaps = (curves.val - curves.train)[curves.window]
    if len(window_gaps) >= 2:
        se_epochs = float(np.std(window_gaps, ddof=1) / math.sqrt(len(window_gaps)))
        evidence["se_across_epochs"] = se_epochs
        variances.append(se_epochs**2)
    if not n_val:
        evidence["basis"] = (f"n_val unknown: the noise scale rests only on the spread of the gap across the "
                             f"{int(np.sum(curves.window))} scored epochs (it ignores the sampling error of a "
                             "finite validation set); pass n_val= (and per-image losses with difficulty=) "
                             "for the sampling error")
    elif frame_has_spread(difficulty) is False:
        evidence["basis"] = ("per-image loss spread unknown: the sampling error assumes a coefficient of variation "
                             "of 1; pass per-image losses (difficulty=) to measure it")
    se = math.sqrt(sum(variances)) if variances else 0.0
    gaps = fold_gaps(kfold)
    if len(gaps) >= 2:
        sd_folds = float(np.std(gaps, ddof=1))
        evidence.update(sd_across_resplits=sd_folds, n_resplits=len(gaps))
        verdict = (kfold or {}).get("verdict") or {}
        if "ci_low" in verdict and "ci_high" in verdict:
            evidence["resplit_mean_gap_ci"] = [verdict["ci_low"], verdict["ci_high"]]
        se = max(se, sd_folds)
    if se <= 0:
        evidence["reason"] = "no spread available: pass n_val=, kfold=, or a history of several epochs"
        return _cause("random_variation", None, evidence, advice)
    z = abs(gap) / se
    p = float(2 * stats.norm.sf(z))
    evidence.update(noise_scale=se, z=z, p_value=p,
                    rule="score = two-sided p of the gap against the largest noise scale")
    return _cause("random_variation", p, evidence, advice)
