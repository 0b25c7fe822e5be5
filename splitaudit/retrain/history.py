"""Turn whatever a ``train_fn`` returns into one per-epoch loss table.

Accepted: a dict of per-epoch lists, a DataFrame (e.g. read from a Keras
``CSVLogger`` file), or a Keras ``History`` object (anything with a
``.history`` dict). Keras names are understood: ``loss`` → ``train_loss``,
``loss_eval`` → ``train_loss_eval``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import HistoryError

__all__ = ["HISTORY_COLUMNS", "normalize_history", "summarize_history"]

HISTORY_COLUMNS = ["epoch", "train_loss", "train_loss_eval", "val_loss"]
_ALIASES = {"loss": "train_loss", "loss_eval": "train_loss_eval", "train_loss_eval": "train_loss_eval",
            "train_loss": "train_loss", "val_loss": "val_loss", "epoch": "epoch"}


def normalize_history(history: Any) -> pd.DataFrame:
    """Return a DataFrame with columns ``epoch, train_loss, train_loss_eval, val_loss``.

    ``epoch`` counts from 1; a missing ``train_loss_eval`` is NaN.

    Raises
    ------
    HistoryError
        When the history has no ``val_loss`` or no training loss, or lengths differ.

    Examples
    --------
    >>> normalize_history({"loss": [1.0, 0.5], "val_loss": [0.9, 0.6]}).shape
    (2, 4)
    """
    if hasattr(history, "history") and isinstance(history.history, dict):
        history = history.history  # Keras History
    if isinstance(history, pd.DataFrame):
        frame = history.copy()
    elif isinstance(history, dict):
        try:
            frame = pd.DataFrame({k: list(np.ravel(v)) for k, v in history.items()})
        except ValueError as exc:
            raise HistoryError(f"train_fn history lists must have equal lengths: {exc}") from exc
    else:
        raise HistoryError(
            "train_fn must return a dict of per-epoch lists, a DataFrame or a Keras History; "
            f"got {type(history).__name__}"
        )
    frame = frame.rename(columns={c: _ALIASES[c] for c in frame.columns if c in _ALIASES})
    if "val_loss" not in frame.columns or not ({"train_loss", "train_loss_eval"} & set(frame.columns)):
        raise HistoryError(
            "history needs 'val_loss' and 'train_loss' (or Keras 'loss'); "
            f"got columns {list(frame.columns)}"
        )
    if len(frame) == 0:
        raise HistoryError("history is empty: train_fn ran no epochs")
    out = pd.DataFrame({"epoch": np.arange(1, len(frame) + 1)})
    if "epoch" in frame.columns:  # Keras CSVLogger counts from 0
        ep = pd.to_numeric(frame["epoch"], errors="coerce").to_numpy()
        if not np.isnan(ep).any():
            out["epoch"] = (ep - ep.min() + 1).astype(int)
    for col in HISTORY_COLUMNS[1:]:
        out[col] = pd.to_numeric(frame[col], errors="coerce").to_numpy(float) if col in frame else np.nan
    return out


def summarize_history(history: pd.DataFrame, last_epochs: int = 1) -> dict:
    """Mean losses and gaps over the last ``last_epochs`` epochs.

    ``gap = val_loss - train_loss`` (running mean, as Keras reports it) and
    ``gap_eval = val_loss - train_loss_eval`` (train loss re-evaluated in eval mode).
    """
    tail = history.tail(max(1, int(last_epochs)))
    train, val, train_eval = (float(tail[c].mean()) if tail[c].notna().any() else float("nan")
                              for c in ("train_loss", "val_loss", "train_loss_eval"))
    return {"train_loss": train, "val_loss": val, "train_loss_eval": train_eval,
            "gap": val - train, "gap_eval": val - train_eval}
