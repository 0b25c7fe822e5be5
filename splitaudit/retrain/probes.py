"""The linear probe: softmax (or least-squares) regression on cached features.

Trained with minibatch Adam in numpy so that, like a deep model, it yields a
per-epoch history: the running mean of the minibatch losses (what Keras prints
as ``loss``), the training loss re-evaluated at the end of the epoch with
dropout off, and the validation loss. Features are standardised with the
training side's mean and standard deviation; a regression target likewise, so
regression losses are in units of the training target's variance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

__all__ = ["train_linear_probe"]


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
    seed: int = 0,
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
    seed : int

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
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")
    rng = np.random.default_rng(seed)
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
