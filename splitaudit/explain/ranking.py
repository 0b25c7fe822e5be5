"""Weigh the causes, rank them, and say in one sentence whether to worry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..checks.base import jsonable
from . import causes as _causes
from .evidence import findings_by_check, load_kfold, load_scan, sizes
from .history import History, read_history

__all__ = ["Explanation", "explain", "CAUSES"]

CAUSES = ("measurement_lag", "regularization", "leakage", "easier_validation", "random_variation")
LIKELY = 0.5  # a cause at or above this score is named as the likely answer
_DESCRIPTION = {
    "measurement_lag": "the training loss is a running mean measured about half an epoch before the validation loss",
    "regularization": "regularisation (dropout, augmentation, weight decay) raises only the training loss",
    "leakage": "validation images have duplicates in the training set",
    "easier_validation": "the validation set is easier than, or distributed differently from, the training set",
    "random_variation": "the gap is within random variation",
}
_WORRY = {
    "measurement_lag": "this is an artifact of how the loss is reported, not a problem",
    "regularization": "this is expected and not a problem",
    "leakage": "worry: the validation loss overstates how well the model generalises",
    "easier_validation": "worry: the validation set does not represent the training distribution",
    "random_variation": "it is not evidence of a problem",
}


@dataclass(frozen=True)
class Explanation:
    """Ranked causes of a validation loss below the training loss.

    Attributes
    ----------
    causes : list of dict
        Most to least likely; each ``{cause, score, known, evidence, advice}``
        with ``score`` in [0, 1] and ``known`` False when evidence was missing.
    summary : str
        One plain sentence answering "should I worry?".
    gap : dict
        The gap being explained: final and window-mean ``val - train``, relative gap, epochs.
    history : History
        The history that was explained (also drawn by :meth:`plot`).
    """

    causes: list
    summary: str
    gap: dict
    history: History = field(repr=False, compare=False)

    @property
    def top(self) -> dict:
        """The most likely cause."""
        return self.causes[0]

    def score(self, cause: str) -> float:
        """The score of one cause by name."""
        for entry in self.causes:
            if entry["cause"] == cause:
                return entry["score"]
        raise ValueError(f"cause must be one of {CAUSES}, got {cause!r}")

    def to_dict(self) -> dict:
        """The content of ``explain.json``: ``summary``, ``gap`` and the ranked ``causes``."""
        return jsonable({"summary": self.summary, "gap": self.gap, "causes": self.causes,
                         "history_format": self.history.format})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per cause: rank, cause, score, known, advice."""
        return pd.DataFrame(
            [{"rank": i + 1, "cause": c["cause"], "score": c["score"], "known": c["known"], "advice": c["advice"]}
             for i, c in enumerate(self.causes)]
        )

    def plot(self, path: str | Path) -> Path:
        """Write a PNG of train, shifted train, eval-mode train and val loss per epoch."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        curves = _causes.curves_of(self.history)
        figure = Figure(figsize=(7, 4.2), dpi=110)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot(1, 1, 1)
        axes.plot(curves.epoch, curves.train, "o-", label="train (running mean)", color="tab:blue")
        axes.plot(curves.epoch, curves.train_shifted, "--", label="train shifted +½ epoch", color="tab:blue")
        if curves.train_eval is not None:
            axes.plot(curves.epoch, curves.train_eval, "s:", label="train (eval mode)", color="tab:green")
        axes.plot(curves.epoch, curves.val, "o-", label="validation", color="tab:orange")
        axes.set_xlabel("epochs completed")
        axes.set_ylabel("loss")
        axes.set_title(f"most likely: {self.top['cause']} (score {self.top['score']:.2f})", fontsize=10)
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, format="png")
        return path


def _read_difficulty(difficulty: Any) -> tuple[pd.DataFrame | None, dict | None]:
    """(per-image frame, difficulty finding) from a DataFrame, images.csv path or finding dict."""
    if difficulty is None:
        return None, None
    if isinstance(difficulty, dict):
        return None, {"check": "difficulty", "status": "given", **difficulty}
    if isinstance(difficulty, (str, Path)):
        difficulty = pd.read_csv(difficulty)
    if not isinstance(difficulty, pd.DataFrame):
        raise TypeError(
            "difficulty must be a DataFrame or images.csv path with columns split and loss/difficulty, "
            f"or the difficulty finding dict, got {type(difficulty).__name__}"
        )
    if "split" not in difficulty or not any(c in difficulty for c in ("loss", "image_loss", "difficulty")):
        raise ValueError(
            "difficulty must have a 'split' column and one of 'loss', 'image_loss', 'difficulty'; "
            f"got columns {list(difficulty.columns)}"
        )
    return difficulty, None


def _check_size(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number of images or None, got {type(value).__name__}")
    if not value > 0:
        raise ValueError(f"{name} must be a positive number of images, got {value!r}")
    return float(value)


def _rank_key(entry: dict) -> tuple:
    # equal scores: an unknown cause ranks above one that evidence ruled out
    return (-entry["score"], 0 if not entry["known"] else 1, CAUSES.index(entry["cause"]))


def _summary(ranked: list, gap: dict) -> str:
    final, relative, epoch = gap["final"], gap["relative_final"], gap["final_epoch"]
    if gap["window_mean"] >= 0:
        return (f"No: validation loss is not lower than training loss at the end of training "
                f"(val - train = {final:+.4g} at epoch {epoch}), so there is no gap to explain.")
    size = f"by {-final:.4g} ({-relative:.1%}) at epoch {epoch}" if final < 0 else \
        f"over the last epochs (mean {gap['window_mean']:+.4g})"
    top = ranked[0]
    if top["score"] >= LIKELY:
        unchecked = [c["cause"] for c in ranked if not c["known"] and c["cause"] in ("leakage", "easier_validation")]
        caveat = f" ({' and '.join(unchecked)} not assessed: pass scan=)" if unchecked else ""
        return (f"Validation loss is lower than training loss {size}, most likely because "
                f"{_DESCRIPTION[top['cause']]} (score {top['score']:.2f}); {_WORRY[top['cause']]}{caveat}.")
    missing = [c["cause"] for c in ranked if not c["known"]]
    hint = f"; evidence is missing for {', '.join(missing)}" if missing else ""
    best = f" (best: {top['cause']}, score {top['score']:.2f})" if top["score"] > 0 else ""
    return (f"Validation loss is lower than training loss {size}, but no cause is clearly supported"
            f"{best}{hint}.")


def explain(history: Any, *, scan: Any = None, kfold: Any = None, difficulty: Any = None,
            n_val: int | None = None, n_train: int | None = None) -> Explanation:
    """Rank the likely causes of a validation loss below the training loss.

    Parameters
    ----------
    history : path, DataFrame, dict or History
        Anything :func:`read_history` accepts.
    scan : dict or path, optional
        A scan's ``summary.json`` content, the file, or the directory holding it.
        Its ``findings`` feed ``leakage`` (exact/near duplicates) and
        ``easier_validation`` (difficulty, label/property/embedding drift).
    kfold : dict or path, optional
        ``kfold.json`` content, the file or its directory (or a ``KFoldResult``).
    difficulty : DataFrame, path or dict, optional
        Per-image losses (``images.csv``: columns ``split`` and ``loss`` or
        ``difficulty``, optionally a boolean ``has_train_duplicate``/``leaked``
        column, e.g. ``has_cross_duplicate``), or a difficulty finding dict.
        When omitted and ``scan`` is a directory holding ``images.csv``, that file is used.
    n_val, n_train : int, optional
        Split sizes for the sampling error; read from ``scan``/``kfold`` when omitted.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> e = explain({"loss": [1.2, 0.8, 0.6, 0.5], "val_loss": [0.9, 0.65, 0.53, 0.46]})
    >>> e.top["cause"]
    'measurement_lag'
    """
    history = read_history(history)
    n_val = _check_size("n_val", n_val)
    n_train = _check_size("n_train", n_train)
    scan_dict = load_scan(scan)
    kfold_dict = load_kfold(kfold)
    if difficulty is None and isinstance(scan, (str, Path)) and (Path(scan) / "images.csv").is_file():
        difficulty = Path(scan) / "images.csv"  # a scan directory carries the per-image table
    frame, difficulty_finding = _read_difficulty(difficulty)
    findings = findings_by_check(scan_dict)
    if difficulty_finding and "difficulty" not in findings:
        findings["difficulty"] = difficulty_finding
    scan_train, scan_val = sizes(scan_dict, kfold_dict)
    n_val = n_val if n_val is not None else scan_val
    n_train = n_train if n_train is not None else scan_train
    persists = ((kfold_dict or {}).get("verdict") or {}).get("persists")
    persists = bool(persists) if persists is not None else None

    curves = _causes.curves_of(history)
    lag = _causes.measurement_lag(curves)
    entries = [
        lag,
        _causes.regularization(curves, kfold_dict, lag["score"] if lag["known"] else None),
        _causes.leakage(curves, findings, frame, persists, n_val),
        _causes.easier_validation(curves, findings, frame, persists),
        _causes.random_variation(curves, kfold_dict, n_val, n_train, frame),
    ]
    eval_gap = lag["evidence"].get("eval_gap")
    if eval_gap is not None and eval_gap >= 0 and curves.gap < 0:
        # In eval mode the train loss is not above val: the reported gap is an
        # artifact of measurement, so split-specific causes explain less of it.
        for entry in entries:
            if entry["cause"] in ("leakage", "easier_validation") and entry["known"]:
                entry["score"] = round(entry["score"] * _causes.PERSISTS_FACTOR, 3)
                entry["evidence"]["eval_mode_closes_gap"] = True
    ranked = sorted(entries, key=_rank_key)
    gap = {
        "final": float(curves.val[-1] - curves.train[-1]),
        "final_epoch": int(curves.epoch[-1]),
        "window_mean": curves.gap,
        "relative": curves.relative_gap,
        "relative_final": float((curves.val[-1] - curves.train[-1]) / curves.train[-1]) if curves.train[-1] else None,
        "window_epochs": curves.epoch[curves.window].tolist(),
        "val_lower": bool(curves.gap < 0),
        "n_val": n_val,
        "n_train": n_train,
    }
    return Explanation(causes=ranked, summary=_summary(ranked, gap), gap=gap, history=history)
