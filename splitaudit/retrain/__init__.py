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
>>> result = kfold(images, features=x, n_splits=3, epochs=3)
>>> sorted(result.to_dict())
['folds', 'original', 'verdict']
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import InputError, InputTypeError
from .._types import Progress
from .._validate import check_int, renamed_keyword
from ..resplit import LeakAwareSplitter, _groups_for
from .history import run_history, summarize_history
from .probes import train_linear_probe
from .result import KFoldResult, RunResult
from .verdict import Verdict, decide

__all__ = ["kfold", "KFoldResult", "RunResult", "Verdict", "decide", "run_history",
           "summarize_history", "train_linear_probe", "make_probe"]

TrainFn = Callable[[pd.DataFrame, pd.DataFrame], Any]
_LINEAR_KW = {"batch_size", "lr", "l2", "dropout"}
_CNN_KW = {"batch_size", "lr", "dropout", "augment", "width", "eval_train_size", "device",
           "threads", "pixels", "image_size", "rgb", "jobs"}


def _targets(frame: pd.DataFrame) -> tuple[np.ndarray | None, int | None, np.ndarray | None]:
    """(encoded targets for training, n_classes or None for regression, raw y for stratifying)."""
    if "label" in frame.columns and frame["label"].notna().any():
        if frame["label"].isna().any():
            raise InputError(f"label is missing for {int(frame['label'].isna().sum())} images; "
                             "the probes need a label for every image")
        codes, classes = pd.factorize(frame["label"].astype(str), sort=True)
        return codes.astype(np.int64), len(classes), frame["label"].astype(str).to_numpy()
    if "target" in frame.columns and frame["target"].notna().all() and len(frame):
        y = frame["target"].to_numpy(float)
        return y, None, y
    return None, None, None


def make_probe(probe: str, frame: pd.DataFrame, *, features: np.ndarray | None, epochs: int,
               random_state: int = 0, progress: Progress | None = None, **probe_kw) -> TrainFn:
    """Build the ``train_fn`` of a built-in probe ("linear" or "cnn") for ``frame``."""
    y, n_classes, _ = _targets(frame)
    if y is None:
        raise InputError(f"probe={probe!r} needs a 'label' or complete 'target' column; found neither")
    allowed = _LINEAR_KW if probe == "linear" else _CNN_KW
    unknown = sorted(set(probe_kw) - allowed)
    if unknown:
        raise InputTypeError(f"probe={probe!r} does not take {unknown}; it takes {sorted(allowed)}")
    if probe == "linear":
        return _linear_fn(frame, features, y, n_classes, epochs=epochs, random_state=random_state, **probe_kw)
    return _cnn_fn(frame, y, n_classes, epochs=epochs, random_state=random_state, progress=progress, **probe_kw)


def _linear_fn(frame: pd.DataFrame, features: np.ndarray | None, y: np.ndarray, n_classes: int | None, *,
               epochs: int, random_state: int, **probe_kw) -> TrainFn:
    if features is None:
        raise InputError("probe='linear' needs features=: an (N, D) array aligned with the images")
    feats = _aligned(np.asarray(features), len(frame), ndim=2, name="features", shape="D")
    return _rows_fn(train_linear_probe, feats, y, n_classes=n_classes, epochs=epochs, random_state=random_state,
                    **probe_kw)


def _cnn_fn(frame: pd.DataFrame, y: np.ndarray, n_classes: int | None, *, epochs: int, random_state: int,
            progress: Progress | None, pixels: np.ndarray | None = None, image_size: int = 28, rgb: bool = False,
            jobs: int | None = 1, **probe_kw) -> TrainFn:
    from .cnn import load_pixels, train_cnn_probe

    if pixels is None:
        if "abspath" not in frame.columns:
            raise InputError("probe='cnn' needs an 'abspath' column (an ImageSplit) or pixels=")
        pixels = load_pixels(frame["abspath"].tolist(), size=image_size, rgb=rgb, jobs=jobs, progress=progress)
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    pixels = _aligned(pixels, len(frame), ndim=4, name="pixels", shape="[C,] H, W")
    return _rows_fn(train_cnn_probe, pixels, y, n_classes=n_classes, epochs=epochs, random_state=random_state,
                    **probe_kw)


def _aligned(values: np.ndarray, n: int, *, ndim: int, name: str, shape: str) -> np.ndarray:
    """``values`` when it has ``ndim`` axes and one row per image; else a ValueError naming the shape."""
    if values.ndim != ndim or len(values) != n:
        raise InputError(f"{name} must have shape ({n}, {shape}); got {values.shape}")
    return values


def _rows_fn(train: Callable, data: np.ndarray, y: np.ndarray, **train_kw) -> TrainFn:
    """The ``train_fn`` that trains ``train`` on the rows of ``data`` and ``y`` its items name."""
    def train_fn(train_items: pd.DataFrame, val_items: pd.DataFrame) -> pd.DataFrame:
        tr, va = train_items.index.to_numpy(), val_items.index.to_numpy()
        return train(data[tr], y[tr], data[va], y[va], **train_kw)
    return train_fn


def kfold(
    split_images: Any,
    *,
    features: np.ndarray | None = None,
    n_splits: int = 5,
    probe: str | TrainFn = "linear",
    epochs: int = 10,
    clusters: Any = None,
    repeats: int = 1,
    random_state: int = 0,
    last_epochs: int = 1,
    progress: Progress | None = None,
    k: int | None = None,
    **probe_kw: Any,
) -> KFoldResult:
    """Train on the original split and on ``n_splits × repeats`` leak-aware re-splits.

    Parameters
    ----------
    split_images : ImageSplit or DataFrame
        Needs ``split`` (train/val); ``label`` or ``target`` for the built-in
        probes; ``group`` (user groups) is honoured.
    features : (N, D) array, optional
        Cached features (embeddings or fingerprint descriptor) for ``probe="linear"``.
    n_splits : int
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
    k : int, optional
        Deprecated name of ``n_splits``.
    **probe_kw
        Options of the probe: linear ``lr, batch_size, l2, dropout``; cnn ``lr,
        batch_size, dropout, augment, width, image_size, rgb, pixels,
        eval_train_size, threads, jobs``.

    Returns
    -------
    KFoldResult
        ``original``, ``folds`` (fold = r·n_splits + i) and the ``verdict``; see
        :mod:`splitaudit.retrain.verdict` for the decision rule.
    """
    if k is not None:
        n_splits = renamed_keyword("k", "n_splits", k, "kfold")
    frame = _checked_frame(split_images, n_splits=n_splits, epochs=epochs, repeats=repeats,
                           last_epochs=last_epochs)
    random_state = check_int("random_state", random_state)
    if features is not None and (probe == "cnn" or callable(probe)):
        raise InputError("features= is only used by probe='linear'; drop it or use probe='linear'")
    if callable(probe):
        if probe_kw:
            raise InputTypeError(f"probe options {sorted(probe_kw)} have no effect with a callable probe")
        train_fn = probe
    elif probe in ("linear", "cnn"):
        train_fn = make_probe(probe, frame, features=features, epochs=epochs, random_state=random_state,
                              progress=progress, **probe_kw)
    else:
        raise InputError(f"probe must be 'linear', 'cnn' or a callable; got {probe!r}")
    plans = _plans(frame, clusters, n_splits=n_splits, repeats=repeats, random_state=random_state)
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


def _checked_frame(split_images: Any, **counts: int) -> pd.DataFrame:
    """The images table with ``split`` train/val, numbered from 0; each count checked to be an int
    of at least 2 (``n_splits``) or 1."""
    frame = getattr(split_images, "images", split_images)
    if not isinstance(frame, pd.DataFrame):
        raise InputTypeError(f"split_images must be an ImageSplit or DataFrame; got {type(split_images).__name__}")
    if "split" not in frame.columns or not set(frame["split"]) <= {"train", "val"}:
        raise InputError("split_images needs a 'split' column with values 'train'/'val'")
    for name, value in counts.items():
        low = 2 if name == "n_splits" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InputTypeError(f"{name} must be an int; got {type(value).__name__}")
        if value < low:
            raise InputError(f"{name} must be at least {low}; got {value}")
    return frame.reset_index(drop=True)


def _plans(frame: pd.DataFrame, clusters: Any, *, n_splits: int, repeats: int,
           random_state: int) -> list[tuple[int | None, np.ndarray, np.ndarray]]:
    """``(fold, train rows, val rows)``: the original split (fold None), then every re-split fold."""
    _, _, y_strat = _targets(frame)
    groups = _groups_for(frame, clusters)
    is_val = (frame["split"] == "val").to_numpy()
    plans: list[tuple[int | None, np.ndarray, np.ndarray]] = [
        (None, np.flatnonzero(~is_val), np.flatnonzero(is_val))]
    for r in range(repeats):
        cv = LeakAwareSplitter(n_splits, shuffle=True, random_state=random_state + r)
        for i, (tr, va) in enumerate(cv.split(frame, y_strat, groups)):
            plans.append((r * n_splits + i, tr, va))
    return plans
