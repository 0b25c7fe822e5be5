"""Rank the causes no evidence measured, from what the loss history alone can say.

Without an eval-mode train loss, a scan or a k-fold result, ``regularization``,
``leakage`` and ``easier_validation`` cannot be measured. The history still
tells a lot about them, and a reader of the curve would use it. Each such cause
is then ``status: "suspected"``: its score comes from the signals below,
capped at :data:`SUSPECT_CAP` (a suspicion never outranks a measurement of
the same strength), and its ``check`` names the cheapest way to measure it.

Signals (on the phase's scored epochs, the *window*; ``G`` = mean ``val -
train``, ``Gs`` = mean ``val - shifted train``, ``T`` = mean train loss):

``unexplained``
    ``Gs / G`` clipped to [0, 1]: the share of the gap the half-epoch shift
    does not remove (1 − the measurement-lag score).
``flat``
    ``2 - fall / FAST_FALL`` clipped to [0, 1], where ``fall`` is the train
    loss's mean relative fall per epoch: 1 up to a fall of 10 % per epoch, 0
    from 20 %: while the loss falls that fast the linear shift underestimates
    the lag and nothing else can be judged.
``beyond_noise``
    ``1 - p`` of ``|Gs|`` against the epoch-to-epoch noise of the shifted gap
    (1.4826 · the median absolute epoch-to-epoch change / √2, over all epochs
    after the first, divided by √(window size)); 1 when it cannot be estimated.
``held``
    fraction of the window's epochs where val is below the *shifted* train loss.
``size``
    ``r = -Gs / T``, the relative gap the shift leaves.
``from_start``
    at the first epoch val is already below the shifted train loss by at
    least :data:`START_GAP` (30 %) of it: before the model has learnt much,
    the validation images are already easier.
``widening``
    how much the residual relative gap ``(shifted - val) / shifted`` grew
    from the first scored epochs to the last, in units of its size (0 when
    it shrinks): validation keeps improving with training, as when it holds
    images the model is memorising.

Scores, with ``base = unexplained · flat · min(beyond_noise, 1 - p_noise / 2) · held · min(1, r / 0.02)``
(``p_noise``: the ``random_variation`` score, whose noise scale includes the sampling error when
``n_val`` is known: noise competes as its own cause and at most halves a suspicion; a residual gap
under 2 % of the train loss is too small to blame on a cause):

``regularization`` (dropout, augmentation, weight decay: a persistent gap the lag cannot explain)
    ``base · (1 if r ≤ 0.35, falling linearly to 0.25 at r ≥ 0.7)``: these
    raise the train loss by a bounded factor, rarely by more than half.
``easier_validation`` (a gap from the first epoch, often large)
    ``base · (0.5 + 0.5 · from_start) · (0.5 if r ≤ 0.35, rising to 1 at r ≥ 0.6)``.
``leakage`` (val keeps improving with train)
    ``base · widening``.

Each is multiplied by :data:`SUSPECT_CAP`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .phases import FAST_FALL, relative_fall

__all__ = ["signals", "suspect_scores", "SUSPECT_CAP", "START_GAP", "CHECKS"]

SUSPECT_CAP = 0.8
START_GAP = 0.30
MATERIAL = 0.02  # a residual gap below 2 % of the train loss is too small to blame on a cause

_EVAL_CHECK_API = (
    "re-evaluate the train set in eval mode at the end of an epoch and compare it with val: Keras "
    "`model.evaluate(x_train, y_train)`; PyTorch `model.eval(); with torch.no_grad(): "
    "loss = sum(loss_fn(model(x), y).item() * len(x) for x, y in train_loader_without_augmentation) / n_train`. "
    "If it is not below val, the gap is regularisation (and lag); log it as train_loss_eval (Keras: loss_eval) "
    "to measure it")
CHECKS = {
    "measurement_lag": {
        "api": "already measured from the history: compare val(e) with the train loss half an epoch later",
        "cli": "already measured from the history: compare val(e) with the train loss half an epoch later",
    },
    "regularization": {"api": _EVAL_CHECK_API, "cli": _EVAL_CHECK_API},
    "leakage": {
        "api": "splitaudit.scan('DATA') finds validation images duplicated in train; "
               "pass its result.to_dict() (or the folder) as scan=",
        "cli": "`splitaudit scan DATA --out audit/` finds validation images duplicated in train; "
               "then rerun explain with --scan audit/",
    },
    "easier_validation": {
        "api": "splitaudit.scan('DATA') measures per-image difficulty and drift between train and val; "
               "pass the scan folder as scan= (its images.csv is read too)",
        "cli": "`splitaudit scan DATA --out audit/` measures per-image difficulty and drift between train and "
               "val; then rerun explain with --scan audit/",
    },
    "random_variation": {
        "api": "splitaudit.kfold(...) retrains on leak-aware re-splits (split luck); pass it as kfold=, "
               "and the validation size as n_val=",
        "cli": "`splitaudit kfold DATA --out kfold/` retrains on leak-aware re-splits (split luck); then rerun "
               "explain with --kfold kfold/ (and --n-val N)",
    },
}


def _ramp(x: float, lo: float, hi: float, at_lo: float, at_hi: float) -> float:
    if x <= lo:
        return at_lo
    if x >= hi:
        return at_hi
    return at_lo + (at_hi - at_lo) * (x - lo) / (hi - lo)


def signals(curves) -> dict:
    """The history-only signals of the window (see the module docstring); plain floats."""
    w = curves.window
    index = np.flatnonzero(w)
    train, val, shifted = curves.train, curves.val, curves.train_shifted
    ok = w & ~np.isnan(shifted)
    gap = float(np.mean((val - train)[w]))
    shifted_gap = float(np.mean((val - shifted)[ok])) if ok.any() else gap
    level = float(np.mean(train[w]))
    out: dict = {"gap": gap, "shifted_gap": shifted_gap}
    out["unexplained"] = float(np.clip(shifted_gap / gap, 0.0, 1.0)) if gap < 0 else 0.0
    fall = relative_fall(train, index)
    out["fall_per_epoch"] = fall
    out["flat"] = float(np.clip(2.0 - fall / FAST_FALL, 0.0, 1.0))
    residual = val - shifted
    series = residual[1:][~np.isnan(residual[1:])]
    if len(series) >= 3:
        # robust: the first epochs' systematic change of the residual is not noise
        noise = float(1.4826 * np.median(np.abs(np.diff(series))) / math.sqrt(2))
        scale = noise / math.sqrt(max(1, int(ok.sum())))
        z = abs(shifted_gap) / scale if scale > 0 else math.inf
        out.update(epoch_noise=noise, z_vs_epoch_noise=z,
                   beyond_noise=float(1 - 2 * stats.norm.sf(z)) if shifted_gap < 0 else 0.0)
    else:
        out.update(epoch_noise=None, beyond_noise=1.0 if shifted_gap < 0 else 0.0,
                   noise_note="fewer than 4 epochs with a shifted train loss: epoch-to-epoch noise not estimated")
    out["held"] = float(np.mean((val < shifted)[ok])) if ok.any() else 0.0
    out["relative_residual_gap"] = float(-shifted_gap / level) if level > 0 and shifted_gap < 0 else 0.0
    first = 0 if not math.isnan(shifted[0]) else None
    start_gap = float((shifted[first] - val[first]) / shifted[first]) if first is not None and shifted[first] > 0 \
        else 0.0
    out["first_epoch_relative_gap"] = start_gap
    out["from_start"] = float(np.clip(start_gap / START_GAP, 0.0, 1.0))
    relative = np.where(shifted > 0, (shifted - val) / np.where(shifted > 0, shifted, 1.0), np.nan)
    rel = relative[~np.isnan(relative)]
    if len(rel) >= 4:
        half = len(rel) // 2
        early, late = float(np.mean(rel[:half])), float(np.mean(rel[half:]))
        out["widening"] = float(np.clip((late - early) / max(abs(late), 1e-12), 0.0, 1.0)) if late > 0 else 0.0
    else:
        out["widening"] = 0.0
    return out


def suspect_scores(sig: dict, noise_p: float | None = None) -> dict[str, float]:
    """History-only scores of regularization, easier_validation and leakage (see the module docstring).

    ``noise_p`` is the ``random_variation`` score (the gap's p-value against the measured noise scale,
    which includes the sampling error when ``n_val`` is known): a gap within noise supports no suspicion.
    """
    r = sig["relative_residual_gap"]
    beyond = sig["beyond_noise"] if noise_p is None else min(sig["beyond_noise"], 1.0 - noise_p / 2)
    base = sig["unexplained"] * sig["flat"] * beyond * sig["held"] * _ramp(r, 0.0, MATERIAL, 0.0, 1.0)
    return {
        "regularization": SUSPECT_CAP * base * _ramp(r, 0.35, 0.7, 1.0, 0.25),
        "easier_validation": SUSPECT_CAP * base * (0.5 + 0.5 * sig["from_start"]) * _ramp(r, 0.35, 0.6, 0.5, 1.0),
        "leakage": SUSPECT_CAP * base * sig["widening"],
    }
