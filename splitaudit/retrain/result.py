"""Result types of the k-fold retraining harness."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .._text import notebook_card
from .._types import jsonable
from ..checks.base import CheckResult
from .verdict import Verdict

__all__ = ["RunResult", "KFoldResult"]


@dataclass(frozen=True)
class RunResult:
    """One training run: the original split (``fold is None``) or one re-split fold.

    Losses and gaps are means over the last ``last_epochs`` epochs of ``history``.
    """

    fold: int | None
    n_train: int
    n_val: int
    train_loss: float
    val_loss: float
    train_loss_eval: float
    gap: float
    gap_eval: float
    history: pd.DataFrame = field(compare=False, repr=False)

    def to_dict(self) -> dict:
        out = {"train_loss": self.train_loss, "val_loss": self.val_loss,
               "train_loss_eval": self.train_loss_eval, "gap": self.gap, "gap_eval": self.gap_eval,
               "history": {c: self.history[c].tolist() for c in self.history.columns}}
        if self.fold is not None:
            out = {"fold": self.fold, "n_train": self.n_train, "n_val": self.n_val, **out}
        return jsonable(out)


@dataclass(frozen=True)
class KFoldResult:
    """Original-split run, re-split runs and the persistence verdict.

    Examples
    --------
    >>> result.verdict.persists                  # doctest: +SKIP
    >>> result.plot("curves.png")                 # doctest: +SKIP
    """

    original: RunResult
    folds: tuple[RunResult, ...]
    verdict: Verdict

    def to_dict(self) -> dict:
        """``{"original": ..., "folds": [...], "verdict": {...}}`` with plain JSON types."""
        return {"original": self.original.to_dict(), "folds": [f.to_dict() for f in self.folds],
                "verdict": jsonable(self.verdict.to_dict())}

    def _repr_html_(self) -> str:
        """Notebook display: the persistence verdict and one row per run (:meth:`to_frame`)."""
        from html import escape

        table = self.to_frame().drop(columns=["fold"]).to_html(index=False, float_format=lambda v: f"{v:.4g}")
        colour = "#e0a100" if self.verdict.split_specific else "#2e8b57"
        return notebook_card(f"<b>splitaudit k-fold</b>: {escape(self.verdict.message)}", table, colour=colour)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per run (``run`` = "original" or "fold N") with the scalar numbers."""
        rows = []
        for run in (self.original, *self.folds):
            rows.append({"run": "original" if run.fold is None else f"fold {run.fold}",
                         "fold": run.fold, "n_train": run.n_train, "n_val": run.n_val,
                         "train_loss": run.train_loss, "train_loss_eval": run.train_loss_eval,
                         "val_loss": run.val_loss, "gap": run.gap, "gap_eval": run.gap_eval})
        return pd.DataFrame(rows)

    def to_check_result(self) -> CheckResult:
        """The verdict as a check finding: ``warn`` when the original split's gap is
        split-specific, ``pass`` otherwise."""
        v = self.verdict
        status = "warn" if v.split_specific else "pass"
        numbers = {**v.to_dict(), "original_gap": self.original.gap,
                   "sign_test_p": v.sign_test_p, "prediction_low": v.prediction_low}
        numbers.pop("message")
        return CheckResult("kfold_persistence", status, v.message, numbers)

    def plot(self, path: str | os.PathLike) -> Path:
        """Write a PNG of the loss curves (train running mean, train eval, val) of
        the original split and each fold; return the path."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # lazy, no global backend
        from matplotlib.figure import Figure

        runs = (self.original, *self.folds)
        cols = min(3, len(runs))
        rows = -(-len(runs) // cols)
        fig = Figure(figsize=(4 * cols, 3 * rows))
        FigureCanvasAgg(fig)
        for i, run in enumerate(runs):
            ax = fig.add_subplot(rows, cols, i + 1)
            h = run.history
            ax.plot(h["epoch"], h["train_loss"], "o-", label="train (running mean)")
            if h["train_loss_eval"].notna().any():
                ax.plot(h["epoch"], h["train_loss_eval"], "s--", label="train (eval mode)")
            ax.plot(h["epoch"], h["val_loss"], "^-", label="val")
            title = "original split" if run.fold is None else f"re-split fold {run.fold}"
            ax.set_title(f"{title}: gap {run.gap:+.3f}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss")
            if i == 0:
                ax.legend(fontsize=7)
        fig.suptitle(self.verdict.message[:120], fontsize=8)
        fig.tight_layout()
        fig.savefig(os.fspath(path), format="png", dpi=90)
        return Path(path)
