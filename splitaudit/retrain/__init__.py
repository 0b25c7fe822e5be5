"""Retrain on the original split and on leak-aware re-splits; does val < train persist?

The harness speaks one protocol: ``train_fn(train_items, val_items) -> history``,
where the items are row subsets of ``split.images`` (their index is the row
number, so ``features[train_items.index]`` works) and the history is a dict /
DataFrame / Keras ``History`` of per-epoch ``train_loss`` (or Keras ``loss``),
``val_loss`` and optionally ``train_loss_eval``. Any framework fits.
Two built-in probes implement it: ``"linear"`` (cached features, numpy) and
``"cnn"`` (a small torch CNN on the images).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> images = pd.DataFrame({"path": [f"{i}.png" for i in range(120)],
...                        "split": ["train"] * 90 + ["val"] * 30, "label": ["a", "b", "c"] * 40})
>>> x = rng.normal(size=(120, 8)) + (np.arange(120) % 3)[:, None]
>>> result = kfold(images, features=x, k=3, epochs=3)
>>> sorted(result.to_dict())
['folds', 'original', 'verdict']
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from ..resplit import LeakAwareSplitter, _groups_for
from .history import run_history, summarize_history
from .probes import train_linear_probe
from .result import KFoldResult, RunResult
from .verdict import Verdict, decide

__all__ = ["kfold", "KFoldResult", "RunResult", "Verdict", "decide", "run_history",
           "summarize_history", "train_linear_probe", "make_probe"]

TrainFn = Callable[[pd.DataFrame, pd.DataFrame], Any]
_LINEAR_KW = {"batch_size", "lr", "l2", "dropout", "seed"}
_CNN_KW = {"batch_size", "lr", "dropout", "augment", "width", "seed", "eval_train_size", "device",
           "threads", "pixels", "image_size", "rgb", "jobs"}


def _targets(frame: pd.DataFrame) -> tuple[np.ndarray | None, int | None, np.ndarray | None]:
    """(encoded targets for training, n_classes or None for regression, raw y for stratifying)."""
    if "label" in frame.columns and frame["label"].notna().any():
        if frame["label"].isna().any():
            raise ValueError(f"label is missing for {int(frame['label'].isna().sum())} images; "
                             "the probes need a label for every image")
        codes, classes = pd.factorize(frame["label"].astype(str), sort=True)
        return codes.astype(np.int64), len(classes), frame["label"].astype(str).to_numpy()
    if "target" in frame.columns and frame["target"].notna().all() and len(frame):
        y = frame["target"].to_numpy(float)
        return y, None, y
    return None, None, None


def make_probe(probe: str, frame: pd.DataFrame, *, features: np.ndarray | None, epochs: int,
               progress=None, **probe_kw) -> TrainFn:
    """Build the ``train_fn`` of a built-in probe ("linear" or "cnn") for ``frame``."""
    y, n_classes, _ = _targets(frame)
    if y is None:
        raise ValueError(f"probe={probe!r} needs a 'label' or complete 'target' column; found neither")
    allowed = _LINEAR_KW if probe == "linear" else _CNN_KW
    unknown = sorted(set(probe_kw) - allowed)
    if unknown:
        raise TypeError(f"probe={probe!r} does not take {unknown}; it takes {sorted(allowed)}")
    if probe == "linear":
        if features is None:
            raise ValueError("probe='linear' needs features=: an (N, D) array aligned with the images")
        feats = np.asarray(features)
        if feats.ndim != 2 or len(feats) != len(frame):
            raise ValueError(f"features must have shape ({len(frame)}, D); got {feats.shape}")

        def linear_fn(train_items: pd.DataFrame, val_items: pd.DataFrame) -> pd.DataFrame:
            tr, va = train_items.index.to_numpy(), val_items.index.to_numpy()
            return train_linear_probe(feats[tr], y[tr], feats[va], y[va], n_classes=n_classes,
                                      epochs=epochs, **probe_kw)
        return linear_fn
    from .cnn import load_pixels, train_cnn_probe

    pixels = probe_kw.pop("pixels", None)
    size = probe_kw.pop("image_size", 28)
    rgb = probe_kw.pop("rgb", False)
    jobs = probe_kw.pop("jobs", 1)
    if pixels is None:
        if "abspath" not in frame.columns:
            raise ValueError("probe='cnn' needs an 'abspath' column (an ImageSplit) or pixels=")
        pixels = load_pixels(frame["abspath"].tolist(), size=size, rgb=rgb, jobs=jobs, progress=progress)
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    if pixels.ndim != 4 or len(pixels) != len(frame):
        raise ValueError(f"pixels must have shape ({len(frame)}, [C,] H, W); got {pixels.shape}")

    def cnn_fn(train_items: pd.DataFrame, val_items: pd.DataFrame) -> pd.DataFrame:
        tr, va = train_items.index.to_numpy(), val_items.index.to_numpy()
        return train_cnn_probe(pixels[tr], y[tr], pixels[va], y[va], n_classes=n_classes,
                               epochs=epochs, **probe_kw)
    return cnn_fn


def kfold(
    split_images: Any,
    *,
    features: np.ndarray | None = None,
    k: int = 5,
    probe: str | TrainFn = "linear",
    epochs: int = 10,
    clusters: Any = None,
    repeats: int = 1,
    random_state: int = 0,
    last_epochs: int = 1,
    progress: Callable[[str, int, int], None] | None = None,
    **probe_kw: Any,
) -> KFoldResult:
    """Train on the original split and on ``k × repeats`` leak-aware re-splits.

    Parameters
    ----------
    split_images : ImageSplit or DataFrame
        Needs ``split`` (train/val); ``label`` or ``target`` for the built-in
        probes; ``group`` (user groups) is honoured.
    features : (N, D) array, optional
        Cached features (embeddings or fingerprint descriptor) for ``probe="linear"``.
    k : int
        Folds per re-split.
    probe : "linear", "cnn" or callable
        A callable is ``train_fn(train_items, val_items) -> history``.
    epochs : int
        Epochs for the built-in probes.
    clusters : array-like or object with ``.clusters``, optional
        Duplicate-cluster id per image; duplicates never straddle a re-split.
    repeats : int
        Repeat the k-fold re-split with seeds ``random_state + r``.
    random_state : int
        Seed for re-splitting and for the probes.
    last_epochs : int
        Losses and gaps are averaged over this many final epochs.
    progress : callable, optional
        ``progress("kfold", done, total)`` after each run.
    **probe_kw
        Options of the probe: linear ``lr, batch_size, l2, dropout``; cnn ``lr,
        batch_size, dropout, augment, width, image_size, rgb, pixels,
        eval_train_size, threads, jobs``.

    Returns
    -------
    KFoldResult
        ``original``, ``folds`` (fold = r·k + i) and the ``verdict``; see
        :mod:`splitaudit.retrain.verdict` for the decision rule.
    """
    frame = getattr(split_images, "images", split_images)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"split_images must be an ImageSplit or DataFrame; got {type(split_images).__name__}")
    if "split" not in frame.columns or not set(frame["split"]) <= {"train", "val"}:
        raise ValueError("split_images needs a 'split' column with values 'train'/'val'")
    for name, value, low in (("k", k, 2), ("epochs", epochs, 1), ("repeats", repeats, 1),
                             ("last_epochs", last_epochs, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int; got {type(value).__name__}")
        if value < low:
            raise ValueError(f"{name} must be at least {low}; got {value}")
    frame = frame.reset_index(drop=True)
    if features is not None and (probe == "cnn" or callable(probe)):
        raise ValueError("features= is only used by probe='linear'; drop it or use probe='linear'")
    if callable(probe):
        if probe_kw:
            raise TypeError(f"probe options {sorted(probe_kw)} have no effect with a callable probe")
        train_fn = probe
    elif probe in ("linear", "cnn"):
        probe_kw.setdefault("seed", random_state)
        train_fn = make_probe(probe, frame, features=features, epochs=epochs, progress=progress, **probe_kw)
    else:
        raise ValueError(f"probe must be 'linear', 'cnn' or a callable; got {probe!r}")
    _, _, y_strat = _targets(frame)
    groups = _groups_for(frame, clusters)

    plans: list[tuple[int | None, np.ndarray, np.ndarray]] = []
    is_val = (frame["split"] == "val").to_numpy()
    plans.append((None, np.flatnonzero(~is_val), np.flatnonzero(is_val)))
    for r in range(repeats):
        cv = LeakAwareSplitter(k, shuffle=True, random_state=random_state + r)
        for i, (tr, va) in enumerate(cv.split(frame, y_strat, groups)):
            plans.append((r * k + i, tr, va))
    runs = []
    for done, (fold, tr, va) in enumerate(plans):
        if progress:
            progress("kfold", done, len(plans))
        history = run_history(train_fn(frame.iloc[tr], frame.iloc[va]))
        runs.append(RunResult(fold=fold, n_train=len(tr), n_val=len(va), history=history,
                              **summarize_history(history, last_epochs)))
    if progress:
        progress("kfold", len(plans), len(plans))
    verdict = decide(runs[0].gap, np.array([run.gap for run in runs[1:]]))
    return KFoldResult(original=runs[0], folds=tuple(runs[1:]), verdict=verdict)
