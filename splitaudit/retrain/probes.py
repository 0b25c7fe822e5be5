"""The probes: a linear probe trained epoch by epoch, and the cross-validated difficulty probe.

:func:`train_linear_probe` is softmax (or least-squares) regression on cached features, trained with minibatch Adam in numpy so that, like a deep model, it yields a
per-epoch history: the running mean of the minibatch losses (what Keras prints
as ``loss``), the training loss re-evaluated at the end of the epoch with
dropout off, and the validation loss. Features are standardised with the
training side's mean and standard deviation; a regression target likewise, so
regression losses are in units of the training target's variance.

:func:`probe_difficulty` fits a probe by k-fold cross-validation on every image and returns each
image's out-of-fold loss; :func:`difficulty_probe_loss` does that for the difficulty check's
context (the pipeline calls it; the check only analyses the losses).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..errors import InputError
from .._parallel import resolve_jobs
from .._types import Progress
from ..checks._stats import reduce_features
from ..checks.difficulty import ProbeLoss, probe_plan

__all__ = ["train_linear_probe", "probe_difficulty", "difficulty_probe_loss"]


def _softmax_loss(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    prob = exp / exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    loss = float(-np.log(np.maximum(prob[rows, y], 1e-12)).mean())
    prob[rows, y] -= 1.0
    return loss, prob / len(y)


def _mse_loss(pred: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    diff = pred[:, 0] - y
    return float((diff ** 2).mean()), (2.0 * diff / len(y))[:, None].astype(np.float32)


def train_linear_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_classes: int | None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float = 0.003,
    l2: float = 0.0,
    dropout: float = 0.0,
    random_state: int = 0,
    eval_batch: int = 8192,
) -> pd.DataFrame:
    """Train a linear probe and return its per-epoch history.

    Parameters
    ----------
    x_train, x_val : (n, D) float arrays
    y_train, y_val : class indices (int) or, with ``n_classes=None``, float targets
    n_classes : int or None
        Number of classes; None means regression (squared error).
    epochs, batch_size, lr : training schedule (Adam).
    l2 : float
        Weight decay added to the gradient (not to the reported loss).
    dropout : float in [0, 1)
        Inverted dropout on the input features during training only.
    random_state : int
        Seed of the minibatch order and the dropout masks.

    Returns
    -------
    pandas.DataFrame
        ``epoch, train_loss, train_loss_eval, val_loss``.

    Examples
    --------
    >>> rng = np.random.default_rng(0); x = rng.normal(size=(200, 5)); y = (x[:, 0] > 0).astype(int)
    >>> h = train_linear_probe(x[:150], y[:150], x[150:], y[150:], n_classes=2, epochs=3)
    >>> list(h.columns)
    ['epoch', 'train_loss', 'train_loss_eval', 'val_loss']
    """
    if not 0.0 <= dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1); got {dropout}")
    rng = np.random.default_rng(random_state)
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0
    xt = ((x_train - mean) / std).astype(np.float32)
    xv = ((x_val - mean) / std).astype(np.float32)
    if n_classes is None:
        mu, sigma = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
        yt = ((y_train - mu) / sigma).astype(np.float32)
        yv = ((y_val - mu) / sigma).astype(np.float32)
        loss_fn, n_out = _mse_loss, 1
    else:
        yt, yv = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
        loss_fn, n_out = _softmax_loss, int(n_classes)
    dim = xt.shape[1]
    weight = np.zeros((dim, n_out), np.float32)
    bias = np.zeros(n_out, np.float32)
    params = [weight, bias]
    m1 = [np.zeros_like(p) for p in params]
    m2 = [np.zeros_like(p) for p in params]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0

    def full_loss(x: np.ndarray, y: np.ndarray) -> float:
        total = 0.0
        for start in range(0, len(x), eval_batch):
            xb = x[start:start + eval_batch]
            total += loss_fn(xb @ weight + bias, y[start:start + eval_batch])[0] * len(xb)
        return total / len(x)

    rows = []
    keep = 1.0 - dropout
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(xt))
        batch_losses, batch_sizes = [], []
        # Small GEMMs are ~15x slower with 2 contending BLAS threads than with one.
        with threadpool_limits(1, user_api="blas"):
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                xb = xt[idx]
                if dropout > 0:
                    xb = xb * (rng.random(xb.shape, dtype=np.float32) < keep) / np.float32(keep)
                loss, grad_out = loss_fn(xb @ weight + bias, yt[idx])
                grads = [xb.T @ grad_out + l2 * weight, grad_out.sum(axis=0)]
                step += 1
                for p, g, a, b in zip(params, grads, m1, m2):
                    a *= beta1
                    a += (1 - beta1) * g
                    b *= beta2
                    b += (1 - beta2) * g * g
                    p -= lr * (a / (1 - beta1 ** step)) / (np.sqrt(b / (1 - beta2 ** step)) + eps)
                batch_losses.append(loss)
                batch_sizes.append(len(idx))
        rows.append({
            "epoch": epoch,
            "train_loss": float(np.average(batch_losses, weights=batch_sizes)),
            "train_loss_eval": full_loss(xt, yt),
            "val_loss": full_loss(xv, yv),
        })
    return pd.DataFrame(rows)


def probe_difficulty(
    features: np.ndarray,
    labels: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    *,
    n_folds: int = 5,
    max_dim: int = 64,
    max_iter: int = 100,
    random_state: int = 0,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Per-image out-of-fold loss of a linear probe.

    Classification (``labels``): multinomial logistic regression, loss is the
    cross-entropy ``-log p(true class)`` (probabilities clipped at 1e-7, so a
    class unseen in the training folds costs about 16).
    Regression (``targets``): ridge regression on the standardised target,
    loss is the squared error.

    Parameters
    ----------
    features : ndarray of shape (N, D)
    labels : array-like of shape (N,), optional
    targets : array-like of shape (N,), optional
        Exactly one of ``labels`` / ``targets`` must be given.
    n_folds : int, default 5
    max_dim : int, default 64
        Features are reduced with PCA to at most this many dimensions.
    max_iter : int, default 100
        L-BFGS iterations; a probe need not converge fully to rank images.
    jobs : int, optional
        Threads over folds (default: all cores); the result does not depend on it.

    Returns
    -------
    ndarray of shape (N,), float64

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 5)); y = (x[:, 0] > 0).astype(int)
    >>> probe_difficulty(x, labels=y).shape
    (200,)
    """
    if (labels is None) == (targets is None):
        raise InputError("give exactly one of labels= (classification) or targets= (regression)")
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise InputError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    with threadpool_limits(1):  # small fits lose more to idle-spinning BLAS threads than they gain
        x = reduce_features(features, max_dim=max_dim, random_state=random_state)
        codes, y, folds = _folds(x, labels, targets, n_folds, random_state)
        return _out_of_fold(lambda fold: _fold_loss(x, codes, y, fold, max_iter), folds, len(x),
                            resolve_jobs(jobs), progress)


def _folds(x: np.ndarray, labels, targets, n_folds: int, random_state: int):
    """(class codes or None, standardised target or None, [(fit rows, out-of-fold rows)])."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if labels is not None:
        codes, _ = pd.factorize(pd.Series(np.asarray(labels)).astype(str))
        stratified = np.bincount(codes).min() >= n_folds
        cv = (StratifiedKFold if stratified else KFold)(n_folds, shuffle=True, random_state=random_state)
        return codes, None, list(cv.split(x, codes if stratified else None))
    y = np.asarray(targets, dtype=np.float64)
    y = (y - y.mean()) / (y.std() or 1.0)
    return None, y, list(KFold(n_folds, shuffle=True, random_state=random_state).split(x))


def _fold_loss(x: np.ndarray, codes, y, fold, max_iter: int) -> np.ndarray:
    """Loss of each out-of-fold row under a probe fitted on the fold's other rows."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    fit_idx, oof_idx = fold
    if codes is None:
        model = Ridge(alpha=1.0).fit(x[fit_idx], y[fit_idx])
        return (model.predict(x[oof_idx]) - y[oof_idx]) ** 2
    present = np.unique(codes[fit_idx])
    prob_true = np.full(len(oof_idx), 1e-7)
    if len(present) == 1:
        prob_true[codes[oof_idx] == present[0]] = 1.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(max_iter=max_iter).fit(x[fit_idx], codes[fit_idx])
        prob = model.predict_proba(x[oof_idx])
        for j, code in enumerate(model.classes_):
            rows = codes[oof_idx] == code
            prob_true[rows] = prob[rows, j]
    return -np.log(np.clip(prob_true, 1e-7, 1.0))


def _out_of_fold(fold_loss, folds: list, n: int, jobs: int, progress: Progress | None) -> np.ndarray:
    # Folds are independent: fit them on `jobs` threads (BLAS is held to one thread each; the
    # L-BFGS steps are numpy on 10k-row blocks, which releases the GIL). Same losses as a loop.
    loss = np.empty(n, dtype=np.float64)
    if progress:
        progress("difficulty probe", 0, len(folds))
    with ThreadPoolExecutor(max(1, min(jobs, len(folds)))) as pool:
        for i, ((_, oof_idx), part) in enumerate(zip(folds, pool.map(fold_loss, folds))):
            loss[oof_idx] = part
            if progress:
                progress("difficulty probe", i + 1, len(folds))
    return loss


def difficulty_probe_loss(context: Any, *, jobs: int | None = None) -> ProbeLoss | None:
    """Fit the probe the difficulty check asks for (:func:`~splitaudit.checks.difficulty.probe_plan`).

    Parameters
    ----------
    context : AuditContext
        The checks' context; its ``progress`` sees the folds.
    jobs : int, optional
        Threads over folds (default: all cores); the losses do not depend on it.

    Returns
    -------
    ProbeLoss or None
        None when the check needs no probe (the user gave ``image_loss``, or the check will be
        skipped); else the per-image losses, or the error that stopped the fit, with the warnings
        raised while fitting: the difficulty finding reports both, as if the check had fitted it.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            plan = None if context.image_loss is not None else probe_plan(context)
            if plan is None or isinstance(plan, str):
                return None
            rows = plan.rows
            values = np.full(len(rows), np.nan)
            values[rows] = probe_difficulty(
                plan.features[rows], labels=None if plan.labels is None else plan.labels[rows],
                targets=None if plan.targets is None else plan.targets[rows], n_folds=plan.n_folds,
                max_dim=plan.max_dim, random_state=plan.random_state, jobs=jobs, progress=context.progress)
        except Exception as exc:  # the difficulty check reports it as its error
            return ProbeLoss(error=exc, warnings=tuple(caught))
    return ProbeLoss(values=values, warnings=tuple(caught))
