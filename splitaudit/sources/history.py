"""Read a loss history from whatever a training framework wrote: the one history reader.

Both the k-fold harness (what a ``train_fn`` returns) and
:func:`~splitaudit.explain.explain` (a training log) read histories here.

:func:`read_history` accepts a file path, a pandas DataFrame, a dict of lists
(Keras ``History.history``), an object with a ``.history`` dict (a Keras
``History``), a list of per-epoch records, or a :class:`History`, and detects
which of these schemas it holds:

===========  ==================================================================
schema       recognised by
===========  ==================================================================
lightning    a ``step`` column (PyTorch Lightning ``CSVLogger`` ``metrics.csv``):
             step- and epoch-level rows are mixed and NaN-padded; they are
             collapsed to one row per epoch. The train loss is the last
             ``train_loss_epoch`` (or ``train_loss`` / ``loss_epoch`` / ``loss``)
             of the epoch, else the mean of its ``*_step`` rows.
keras        ``loss`` and ``val_loss`` (Keras ``CSVLogger`` output or the
             ``History.history`` dict; other metrics such as ``accuracy`` are
             ignored). ``loss_eval`` is read as the eval-mode train loss.
plain        ``train_loss`` and ``val_loss``, optionally ``train_loss_eval``.
===========  ==================================================================

The detected ``format`` is ``"<schema>_<container>"`` with container one of
``csv``, ``json``, ``dict``, ``dataframe`` (e.g. ``"keras_csv"``).

Epochs are normalised to *completed epochs*: ``epoch == e`` is the model
after ``e`` epochs of training, when its validation loss was measured. An epoch
column that starts at 0 (Keras, Lightning) is shifted by one; with no epoch
column the rows are numbered 1, 2, ...
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .._types import HISTORY_COLUMNS
from ..errors import HistoryError, InputError, InputTypeError

__all__ = ["History", "read_history"]

_EVAL_NAMES = ("train_loss_eval", "loss_eval", "eval_train_loss", "train_eval_loss")
_LIGHTNING_TRAIN_EPOCH = ("train_loss_epoch", "train_loss", "loss_epoch", "loss")
_LIGHTNING_TRAIN_STEP = ("train_loss_step", "loss_step")
_LIGHTNING_VAL = ("val_loss", "val_loss_epoch", "valid_loss", "validation_loss")
_LOSS_NAMES = set(("loss", "val_loss", "epoch", "steps_per_epoch") + _EVAL_NAMES + _LIGHTNING_TRAIN_EPOCH
                  + _LIGHTNING_TRAIN_STEP + _LIGHTNING_VAL)
# Losses beyond this are a diverged run; they would overflow the shift (a + b) and the plot.
MAX_LOSS = 1e30
_EXPECTED = (
    "Keras CSVLogger / History (epoch, loss, val_loss), "
    "Lightning metrics.csv (epoch, step, train_loss[_step|_epoch], val_loss), "
    "or plain (train_loss, val_loss[, train_loss_eval])"
)


@dataclass(frozen=True)
class History:
    """A per-epoch loss history in one normalised table.

    Attributes
    ----------
    frame : pandas.DataFrame
        Columns ``epoch`` (completed epochs, int), ``train_loss`` (the running
        mean reported during training), ``val_loss``; ``train_loss_eval``
        (train loss re-measured in eval mode at the end of the epoch) and
        ``steps_per_epoch`` when known. Sorted by epoch, one row per epoch.
    format : str
        The detected format, e.g. ``"keras_csv"`` or ``"lightning_csv"``.
    source : str or None
        The file it came from, if any.

    Examples
    --------
    >>> h = read_history({"loss": [1.0, 0.6], "val_loss": [0.7, 0.5]})
    >>> h.format, h.frame["epoch"].tolist()
    ('keras_dict', [1, 2])
    """

    frame: pd.DataFrame
    format: str
    source: str | None = None

    @property
    def has_eval(self) -> bool:
        """True when an eval-mode train loss is present for some epoch."""
        return "train_loss_eval" in self.frame and self.frame["train_loss_eval"].notna().any()

    @property
    def steps_per_epoch(self) -> int | None:
        """Optimizer steps per epoch, when the history records it."""
        if "steps_per_epoch" not in self.frame:
            return None
        values = self.frame["steps_per_epoch"].dropna()
        return int(values.median()) if len(values) else None

    def __len__(self) -> int:
        return len(self.frame)

    def to_frame(self) -> pd.DataFrame:
        """A copy of the normalised table."""
        return self.frame.copy()

    def to_dict(self) -> dict:
        """Column name → list of values (NaN as None), plus ``format``."""
        out: dict[str, Any] = {"format": self.format}
        for column in self.frame.columns:
            out[column] = [None if pd.isna(v) else v for v in self.frame[column].tolist()]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


def read_history(path_or_obj: Any, *, steps_per_epoch: int | None = None) -> History:
    """Read a loss history, detecting its format.

    Parameters
    ----------
    path_or_obj : str, path, DataFrame, dict, list of dict, Keras History or History
        A CSV or JSON file (Keras ``CSVLogger``, Lightning ``metrics.csv``,
        Keras ``History.history`` dumped as JSON, plain ``train_loss,val_loss``)
        or the same data in memory.
    steps_per_epoch : int, optional
        Optimizer steps per epoch, when the file does not say (Lightning files
        do: it is read from their ``step`` column).

    Returns
    -------
    History

    Raises
    ------
    HistoryError
        The data is not a recognised history; the message names the columns
        found and what was expected.
    TypeError
        ``path_or_obj`` is of an unsupported type.

    Examples
    --------
    >>> import pandas as pd
    >>> h = read_history(pd.DataFrame({"train_loss": [0.9, 0.5], "val_loss": [0.6, 0.45]}))
    >>> h.format
    'plain_dataframe'
    """
    if steps_per_epoch is not None and (
        not isinstance(steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1
    ):
        raise InputError(f"steps_per_epoch must be a positive int or None, got {steps_per_epoch!r}")
    if isinstance(path_or_obj, History):
        return path_or_obj
    source = None
    if isinstance(path_or_obj, (str, Path)):
        source = str(path_or_obj)
        frame, container = _load_file(Path(path_or_obj))
    elif isinstance(path_or_obj, pd.DataFrame):
        frame, container = path_or_obj, "dataframe"
    elif isinstance(path_or_obj, Mapping):
        frame, container = _frame_from_mapping(path_or_obj, "history object"), "dict"
    elif isinstance(path_or_obj, list) and all(isinstance(r, Mapping) for r in path_or_obj):
        frame, container = pd.DataFrame(path_or_obj), "dict"
    elif isinstance(getattr(path_or_obj, "history", None), Mapping):  # keras.callbacks.History
        frame, container = _frame_from_mapping(path_or_obj.history, "History.history"), "dict"
    else:
        raise InputTypeError(
            "path_or_obj must be a path, a pandas DataFrame, a dict of lists, a list of "
            f"per-epoch dicts or a Keras History, got {type(path_or_obj).__name__}"
        )
    schema, table = _normalise(frame, where=source or f"the {container}")
    if steps_per_epoch is not None:
        table["steps_per_epoch"] = int(steps_per_epoch)
    return History(frame=table, format=f"{schema}_{container}", source=source)


def _load_file(path: Path) -> tuple[pd.DataFrame, str]:
    if path.is_dir():
        for name in ("metrics.csv", "history.csv", "history.json", "log.csv", "training.log"):
            if (path / name).is_file():
                return _load_file(path / name)
        raise HistoryError(
            f"no history file in directory {path}: looked for metrics.csv, history.csv, "
            "history.json, log.csv, training.log"
        )
    if not path.is_file():
        raise HistoryError(f"history file {path} does not exist")
    text = path.read_text(encoding="utf-8", errors="replace")
    stripped = text.lstrip()
    if not stripped:
        raise HistoryError(f"{path} is empty; expected {_EXPECTED}, one row per epoch")
    if path.suffix.lower() == ".json" or stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HistoryError(f"{path} is not valid JSON: {exc}") from None
        if isinstance(data, Mapping):
            inner = data.get("history")
            return _frame_from_mapping(inner if isinstance(inner, Mapping) else data, str(path)), "json"
        if isinstance(data, list) and all(isinstance(r, Mapping) for r in data):
            return pd.DataFrame(data), "json"
        raise HistoryError(
            f"{path} holds JSON of type {type(data).__name__}; expected an object of lists "
            '({"loss": [...], "val_loss": [...]}) or a list of per-epoch objects'
        )
    try:
        frame = pd.read_csv(path, sep=None, engine="python")  # CSVLogger may use another separator
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as exc:
        raise HistoryError(f"{path} could not be read as CSV ({exc}); expected {_EXPECTED}") from None
    return frame, "csv"


def _frame_from_mapping(data: Mapping, where: str) -> pd.DataFrame:
    lists = {k: v for k, v in data.items() if isinstance(v, (list, tuple, np.ndarray, pd.Series))}
    if not lists:
        raise HistoryError(
            f"{where} has no per-epoch lists (keys found: {sorted(map(str, data))}); "
            f"expected {_EXPECTED}"
        )
    losses = {str(k): len(v) for k, v in lists.items() if str(k).strip() in _LOSS_NAMES}
    if len(set(losses.values())) > 1:
        # one value per epoch: a short list would silently drop or misalign epochs
        found = ", ".join(f"{k}: {n}" for k, n in losses.items())
        raise HistoryError(
            f"the loss lists in {where} must have one value per epoch and equal lengths; found {found}; "
            "pad a missing epoch with null (NaN) or drop the extra values"
        )
    if losses:  # other metrics (a per-step learning rate, ...) of another length are not read
        length = next(iter(losses.values()))
        lists = {k: v for k, v in lists.items() if len(v) == length}
    else:
        lengths = {len(v) for v in lists.values()}
        if len(lengths) > 1:
            longest = max(lengths)
            lists = {k: list(v) + [np.nan] * (longest - len(v)) for k, v in lists.items()}
    return pd.DataFrame({str(k): list(v) for k, v in lists.items()})


def _first(columns, names) -> str | None:
    for name in names:
        if name in columns:
            return name
    return None


def _numeric(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        example = frame[column][bad].iloc[0]
        raise HistoryError(
            f"column {column!r} in {where} must hold numbers; row {int(bad.idxmax())} holds {example!r}"
        )
    return values.astype(float)


def _normalise(frame: pd.DataFrame, where: str) -> tuple[str, pd.DataFrame]:
    columns = [str(c).strip() for c in frame.columns]
    frame = frame.set_axis(columns, axis=1).reset_index(drop=True)
    if "step" in columns and _first(columns, _LIGHTNING_VAL):
        return "lightning", _collapse_lightning(frame, where)
    if "val_loss" in columns and ("train_loss" in columns or "loss" in columns):
        schema = "plain" if "train_loss" in columns else "keras"
        train = "train_loss" if schema == "plain" else "loss"
        table = pd.DataFrame(
            {"train_loss": _numeric(frame, train, where), "val_loss": _numeric(frame, "val_loss", where)}
        )
        eval_name = _first(columns, _EVAL_NAMES)
        if eval_name:
            table["train_loss_eval"] = _numeric(frame, eval_name, where)
        if "steps_per_epoch" in columns:
            table["steps_per_epoch"] = _numeric(frame, "steps_per_epoch", where)
        epochs = _numeric(frame, "epoch", where) if "epoch" in columns else None
        return schema, _finish(table, epochs, where)
    raise HistoryError(
        f"could not recognise the loss history in {where}: found columns {columns}; "
        f"expected {_EXPECTED}"
    )


def _collapse_lightning(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    columns = list(frame.columns)
    if "epoch" not in columns:
        raise HistoryError(f"Lightning metrics in {where} have a 'step' but no 'epoch' column: {columns}")
    val_name = _first(columns, _LIGHTNING_VAL)
    train_epoch = _first(columns, _LIGHTNING_TRAIN_EPOCH)
    train_step = _first(columns, _LIGHTNING_TRAIN_STEP)
    if train_epoch is None and train_step is None:
        raise HistoryError(
            f"Lightning metrics in {where} have no train loss column: found {columns}; expected one of "
            f"{list(_LIGHTNING_TRAIN_EPOCH + _LIGHTNING_TRAIN_STEP)}"
        )
    epoch = _numeric(frame, "epoch", where)
    step = _numeric(frame, "step", where)
    rows = []
    last_step = None
    for value in sorted(epoch.dropna().unique()):
        part = frame[epoch == value]
        row = {"epoch": value}

        def last(name):
            if name is None:
                return np.nan
            series = _numeric(part, name, where).dropna()
            return float(series.iloc[-1]) if len(series) else np.nan

        row["train_loss"] = last(train_epoch)
        if math.isnan(row["train_loss"]) and train_step is not None:
            series = _numeric(part, train_step, where).dropna()
            row["train_loss"] = float(series.mean()) if len(series) else np.nan
        row["val_loss"] = last(val_name)
        eval_name = _first(columns, _EVAL_NAMES + ("train_loss_eval_epoch",))
        if eval_name:
            row["train_loss_eval"] = last(eval_name)
        end_step = step[epoch == value].max()
        # Lightning's step is the global step; epoch-level rows sit at the epoch's last step.
        if not math.isnan(end_step):
            row["steps_per_epoch"] = end_step + 1 if last_step is None else end_step - last_step
            last_step = end_step
        rows.append(row)
    table = pd.DataFrame(rows)
    epochs = table.pop("epoch")
    if "steps_per_epoch" in table and (table["steps_per_epoch"] <= 0).any():
        table = table.drop(columns="steps_per_epoch")
    return _finish(table, epochs, where)


def _finish(table: pd.DataFrame, epochs: pd.Series | None, where: str) -> pd.DataFrame:
    if epochs is None:
        epochs = pd.Series(np.arange(1, len(table) + 1), dtype=float)
    else:
        epochs = epochs.reset_index(drop=True)
        if epochs.isna().any():
            raise HistoryError(f"the epoch column in {where} has missing values")
        if len(epochs) and epochs.min() == 0:
            epochs = epochs + 1  # Keras and Lightning count from 0
    table = table.reset_index(drop=True)
    table.insert(0, "epoch", epochs.round().astype(int))
    table = table[table[["train_loss", "val_loss"]].notna().any(axis=1)]
    if table["epoch"].duplicated().any():
        # e.g. a resumed run that logged an epoch twice: the later line wins
        table = table.drop_duplicates("epoch", keep="last")
    table = table.sort_values("epoch").reset_index(drop=True)
    both = table["train_loss"].notna() & table["val_loss"].notna()
    if not both.any():
        raise HistoryError(f"{where} has no epoch with both a train and a validation loss")
    losses = [c for c in ("train_loss", "val_loss", "train_loss_eval") if c in table]
    values = table[losses].to_numpy(float)
    if not np.isfinite(values[~np.isnan(values)]).all():
        raise HistoryError(f"{where} holds infinite losses; the run diverged and cannot be explained: "
                           "remove the epochs after it diverged")
    huge = np.abs(np.nan_to_num(values)) > MAX_LOSS
    if huge.any():
        row, col = np.argwhere(huge)[0]
        raise HistoryError(
            f"{where} holds a {losses[col]} of {values[row, col]:.3g} at epoch {int(table['epoch'].iloc[row])}; "
            f"expected losses below {MAX_LOSS:.0e} (the run diverged): remove the epochs after it diverged"
        )
    if "steps_per_epoch" in table:
        table["steps_per_epoch"] = table["steps_per_epoch"].astype("Int64")
    ordered = [c for c in HISTORY_COLUMNS if c in table]
    return table[ordered]
