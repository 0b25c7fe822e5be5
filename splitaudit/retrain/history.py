"""The per-epoch losses of one run, as the k-fold harness records and summarises them.

What a ``train_fn`` returns (a dict of per-epoch lists, a DataFrame such as a
Keras ``CSVLogger`` file, a Keras ``History``) is read by the one history reader,
:func:`splitaudit.sources.history.read_history`; this module only shapes its table
for a run and averages its last epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .._types import HISTORY_COLUMNS
from ..sources.history import read_history

__all__ = ["run_history", "summarize_history"]


def run_history(history: Any) -> pd.DataFrame:
    """The history of one run: :data:`~splitaudit._types.HISTORY_COLUMNS` present in it,
    always with ``train_loss_eval`` (NaN when the run did not measure it).

    Raises
    ------
    HistoryError
        When the history has no ``val_loss`` or no training loss, or lengths differ.

    Examples
    --------
    >>> run_history({"loss": [1.0, 0.5], "val_loss": [0.9, 0.6]}).columns.tolist()
    ['epoch', 'train_loss', 'val_loss', 'train_loss_eval']
    """
    frame = read_history(history).frame
    if "train_loss_eval" not in frame:
        frame = frame.assign(train_loss_eval=np.nan)
    return frame[[c for c in HISTORY_COLUMNS if c in frame]]


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
