"""Weigh the causes, rank them, and say in one sentence whether to worry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError, InputTypeError
from .._text import notebook_card
from .._types import jsonable
from . import causes as _causes
from . import suspects as _suspects
from .phases import Phase, epoch_label, find_phases, parse_epochs
from .evidence import findings_by_check, load_kfold, load_scan, sizes
from ..sources.history import History, read_history

__all__ = ["Explanation", "explain", "CAUSES"]

CAUSES = ("measurement_lag", "regularization", "leakage", "easier_validation", "random_variation")
LIKELY = 0.5  # a measured cause at or above this score is named as the likely answer
SUSPECT_LIKELY = 0.3  # a suspected cause (capped at suspects.SUSPECT_CAP) at or above this is named
_DESCRIPTION = {
    "measurement_lag": "the training loss is a running mean measured about half an epoch before the validation loss",
    "regularization": "regularisation (dropout, augmentation, weight decay) raises only the training loss",
    "leakage": "validation images have duplicates in the training set",
    "easier_validation": "the validation set is easier than, or distributed differently from, the training set",
    "random_variation": "the gap is within random variation",
}
_REASON = {
    "measurement_lag": "the half-epoch shift removes the gap",
    "regularization": "a gap that persists on a flat curve and that the half-epoch shift cannot explain",
    "leakage": "validation keeps improving with training, the gap widening",
    "easier_validation": "a large gap from the first epoch that the half-epoch shift cannot explain",
    "random_variation": "the gap is within the epoch-to-epoch noise",
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
    """Ranked causes of a validation loss below the training loss, phase by phase.

    Attributes
    ----------
    causes : list of dict
        The first phase's causes, most to least likely; each ``{cause, score,
        known, status, evidence, advice, check}`` with ``score`` in [0, 1],
        ``status`` one of ``measured`` (from evidence), ``suspected`` (from the
        history's shape alone) or ``unknown`` (score 0), ``known`` True only
        when measured, and ``check`` the cheapest way to measure it.
    summary : str
        Plain sentences answering "should I worry?", the first phase first.
    gap : dict
        The first phase's gap: final and window-mean ``val - train``, relative
        gap, epochs.
    phases : list of dict
        Every phase with val < train (or the epochs the user named), the one
        the user most likely means first; each ``{epochs, label, kind,
        window_epochs, gap, causes, summary}``. Empty when val is never below train.
    history : History
        The history that was explained (also drawn by :meth:`plot`).
    """

    causes: list
    summary: str
    gap: dict
    history: History = field(repr=False, compare=False)
    phases: list = field(default_factory=list)
    interface: str = "api"

    @property
    def top(self) -> dict:
        """The most likely cause of the first phase."""
        return self.causes[0]

    def score(self, cause: str) -> float:
        """The score of one cause by name (first phase)."""
        for entry in self.causes:
            if entry["cause"] == cause:
                return entry["score"]
        raise InputError(f"cause must be one of {CAUSES}, got {cause!r}")

    def to_dict(self) -> dict:
        """The content of ``explain.json``: ``summary``, ``gap``, the ranked ``causes`` and ``phases``."""
        return jsonable({"summary": self.summary, "gap": self.gap, "causes": self.causes,
                         "phases": self.phases, "history_format": self.history.format})

    def _repr_html_(self) -> str:
        """Notebook display: the summary and the ranked causes of each phase (:meth:`to_frame`)."""
        from html import escape

        frame = self.to_frame()
        table = frame.to_html(index=False, float_format=lambda v: f"{v:.2f}") if len(frame) else ""
        return notebook_card(f"<b>splitaudit explain</b>: {escape(self.summary)}", table)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per phase and cause: phase, rank, cause, score, status, known, advice."""
        rows = []
        for phase in self.phases or [{"label": "none", "causes": self.causes}]:
            rows += [{"phase": phase["label"], "rank": i + 1, "cause": c["cause"], "score": c["score"],
                      "status": c["status"], "known": c["known"], "advice": c["advice"]}
                     for i, c in enumerate(phase["causes"])]
        return pd.DataFrame(rows)

    def for_cli(self) -> "Explanation":
        """The same explanation with messages naming command-line flags (``--scan``) instead of
        keyword arguments (``scan=``), and the command-line form of each cause's check."""
        if self.interface == "cli":
            return self

        def convert(causes: list) -> list:
            out = []
            for c in causes:
                c = {**c, "evidence": {k: _cli_text(v) if k in _TEXT_KEYS else v for k, v in c["evidence"].items()},
                     "advice": _cli_text(c["advice"]), "check": _suspects.CHECKS[c["cause"]]["cli"]}
                out.append(c)
            return out

        phases = [{**p, "causes": convert(p["causes"]), "summary": _cli_text(p["summary"])} for p in self.phases]
        return Explanation(causes=convert(self.causes), summary=_cli_text(self.summary), gap=self.gap,
                           history=self.history, phases=phases, interface="cli")

    def plot(self, path: str | Path) -> Path:
        """Write a PNG of train, shifted train, eval-mode train and val loss per (whole) epoch,
        with the first phase shaded."""
        path = Path(path)
        self.figure().savefig(path, format="png")
        return path

    def figure(self):
        """The matplotlib Figure that :meth:`plot` writes."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        curves = _causes.curves_of(self.history)
        figure = Figure(figsize=(7, 4.2), dpi=110)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot(1, 1, 1)
        axes.plot(curves.epoch, curves.train, "o-", label="train (running mean)", color="tab:blue")
        axes.plot(curves.epoch, curves.train_shifted, "--", label="train shifted +½ epoch", color="tab:blue")
        if curves.train_eval is not None:
            axes.plot(curves.epoch, curves.train_eval, "s:", label="train (eval mode)", color="tab:green")
        axes.plot(curves.epoch, curves.val, "o-", label="validation", color="tab:orange")
        if self.phases:
            epochs = self.phases[0]["epochs"]
            axes.axvspan(min(epochs) - 0.5, max(epochs) + 0.5, color="tab:orange", alpha=0.08,
                         label=f"{self.phases[0]['label']} (explained)")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epochs completed")
        axes.set_ylabel("loss")
        title = f"most likely: {self.top['cause']} (score {self.top['score']:.2f}, {self.top['status']})" \
            if self.phases else "validation loss is never below training loss"
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        return figure


_TEXT_KEYS = {"reason", "basis", "kfold_note", "note", "rule"}
_CLI_WORDS = (("scan=", "--scan"), ("kfold=", "--kfold"), ("n_val=", "--n-val"), ("n_train=", "--n-train"),
              ("epochs=", "--epochs"), ("difficulty=", "--scan (a scan folder with images.csv)"))


def _cli_text(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    for api, cli in _CLI_WORDS:
        text = text.replace(api, cli)
    return text


def _read_difficulty(difficulty: Any) -> tuple[pd.DataFrame | None, dict | None]:
    """(per-image frame, difficulty finding) from a DataFrame, images.csv path or finding dict."""
    if difficulty is None:
        return None, None
    if isinstance(difficulty, dict):
        return None, {"check": "difficulty", "status": "given", **difficulty}
    if isinstance(difficulty, (str, Path)):
        difficulty = pd.read_csv(difficulty)
    if not isinstance(difficulty, pd.DataFrame):
        raise InputTypeError(
            "difficulty must be a DataFrame or images.csv path with columns split and loss/difficulty, "
            f"or the difficulty finding dict, got {type(difficulty).__name__}"
        )
    if "split" not in difficulty or not any(c in difficulty for c in ("loss", "image_loss", "difficulty")):
        raise InputError(
            "difficulty must have a 'split' column and one of 'loss', 'image_loss', 'difficulty'; "
            f"got columns {list(difficulty.columns)}"
        )
    return difficulty, None


def _check_size(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputTypeError(f"{name} must be a positive number of images or None, got {type(value).__name__}")
    if not value > 0:
        raise InputError(f"{name} must be a positive number of images, got {value!r}")
    return float(value)


def _rank_key(entry: dict) -> tuple:
    # equal scores: a measured cause ranks below one not measured (evidence ruled it out)
    return (-entry["score"], 1 if entry["status"] == "measured" else 0, CAUSES.index(entry["cause"]))


_KIND_WORDS = {"early": "early phase, while the loss falls fast", "persistent": "persistent phase",
               "late": "late phase", "middle": "phase in the middle of training", "requested": "the epochs asked about"}


def _phase_summary(ranked: list, gap: dict, label: str, kind: str) -> str:
    final, relative, epoch = gap["final"], gap["relative_final"], gap["final_epoch"]
    where = f"In {label} ({_KIND_WORDS.get(kind, kind)})"
    if gap["window_mean"] >= 0:
        return (f"{where} validation loss is not lower than training loss on average "
                f"(mean val - train = {gap['window_mean']:+.4g}), so there is no gap to explain.")
    size = f"by {-final:.4g} ({-relative:.1%}) at epoch {epoch}" if final < 0 and relative is not None else \
        f"(mean val - train {gap['window_mean']:+.4g})"
    top = ranked[0]
    if top["status"] == "measured" and top["score"] >= LIKELY:
        unchecked = [c["cause"] for c in ranked
                     if c["status"] != "measured" and c["cause"] in ("leakage", "easier_validation")]
        caveat = f" ({' and '.join(unchecked)} not measured: pass scan=)" if unchecked else ""
        return (f"{where} validation loss is lower than training loss {size}, most likely because "
                f"{_DESCRIPTION[top['cause']]} (score {top['score']:.2f}); {_WORRY[top['cause']]}{caveat}.")
    if top["status"] == "suspected" and top["score"] >= SUSPECT_LIKELY:
        return (f"{where} validation loss is lower than training loss {size}; the curve's shape suggests that "
                f"{_DESCRIPTION[top['cause']]} (suspected, score {top['score']:.2f}: {_REASON[top['cause']]}); "
                f"if confirmed, {_WORRY[top['cause']]}. To confirm: {top['check']}.")
    missing = [c["cause"] for c in ranked if c["status"] == "unknown"]
    hint = f"; evidence is missing for {', '.join(missing)}" if missing else ""
    best = f" (best: {top['cause']}, score {top['score']:.2f}, {top['status']})" if top["score"] > 0 else ""
    return (f"{where} validation loss is lower than training loss {size}, but no cause is clearly supported"
            f"{best}{hint}.")


def _never_below(curves: _causes.Curves, label: str | None = None) -> str:
    diff = curves.val - curves.train
    span = f"between {np.min(diff):+.4g} and {np.max(diff):+.4g}" if len(diff) > 1 else f"{diff[0]:+.4g}"
    epochs = label or epoch_label(curves.epoch)
    return (f"No: validation loss is never below training loss (val - train {span} over {epochs}), "
            "so there is no gap to explain.")


def _disagreement(kfold: dict | None, phase_gap: dict) -> str | None:
    """One sentence when the history shows val < train but the k-fold probe on the same split does not."""
    original = (kfold or {}).get("original") or {}
    probe_gap = original.get("gap")
    if probe_gap is None or not phase_gap["val_lower"] or not probe_gap >= 0:
        return None
    return (f"The k-fold probe trained on this same split shows no such gap (its val - train = {probe_gap:+.3g}), "
            "so the gap in your history comes from how your model is trained or its loss measured "
            "(dropout, augmentation, the running-mean train loss), not from the images in the split.")


def _gap(curves: _causes.Curves, n_val: float | None, n_train: float | None) -> dict:
    last = np.flatnonzero(curves.window)[-1]
    final = float(curves.val[last] - curves.train[last])
    return {
        "final": final,
        "final_epoch": int(curves.epoch[last]),
        "window_mean": curves.gap,
        "relative": curves.relative_gap,
        "relative_final": final / float(curves.train[last]) if curves.train[last] else None,
        "window_epochs": curves.epoch[curves.window].tolist(),
        "val_lower": bool(curves.gap < 0),
        "n_val": n_val,
        "n_train": n_train,
    }


def _score(curves: _causes.Curves, *, kfold: dict | None, findings: dict, frame: pd.DataFrame | None,
           persists: bool | None, n_val: float | None, n_train: float | None) -> list:
    lag = _causes.measurement_lag(curves)
    entries = [
        lag,
        _causes.regularization(curves, kfold, lag["score"] if lag["known"] else None),
        _causes.leakage(curves, findings, frame, persists, n_val),
        _causes.easier_validation(curves, findings, frame, persists),
        _causes.random_variation(curves, kfold, n_val, n_train, frame),
    ]
    eval_gap = lag["evidence"].get("eval_gap")
    if eval_gap is not None and eval_gap >= 0 and curves.gap < 0:
        # In eval mode the train loss is not above val: the reported gap is an
        # artifact of measurement, so split-specific causes explain less of it.
        for entry in entries:
            if entry["cause"] in ("leakage", "easier_validation") and entry["known"]:
                entry["score"] = round(entry["score"] * _causes.PERSISTS_FACTOR, 3)
                entry["evidence"]["eval_mode_closes_gap"] = True
    if curves.gap < 0:
        signals = _suspects.signals(curves)
        noise = next(e for e in entries if e["cause"] == "random_variation")
        scores = _suspects.suspect_scores(signals, noise["score"] if noise["known"] else None)
        probe_gap = ((kfold or {}).get("original") or {}).get("gap")
        for i, entry in enumerate(entries):
            if entry["status"] != "unknown" or entry["cause"] not in scores:
                continue
            score = scores[entry["cause"]]
            evidence = {**entry["evidence"], "history_signals": signals,
                        "rule": "scored from the history's shape alone (splitaudit.explain.suspects)"}
            evidence.pop("status", None)
            if entry["cause"] in ("leakage", "easier_validation") and probe_gap is not None and probe_gap >= 0:
                score *= _causes.PERSISTS_FACTOR  # the probe sees no val < train on this split's images
                evidence["kfold_probe_shows_no_gap"] = True
            entries[i] = _causes._cause(entry["cause"], score, evidence, entry["advice"], status="suspected")
    for entry in entries:
        entry["check"] = _suspects.CHECKS[entry["cause"]]["api"]
    return sorted(entries, key=_rank_key)


def explain(history: Any, *, scan: Any = None, kfold: Any = None, difficulty: Any = None,
            n_val: int | None = None, n_train: int | None = None, epochs: Any = None) -> Explanation:
    """Rank the likely causes of a validation loss below the training loss, phase by phase.

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
    epochs : str, int or list of int, optional
        The epochs to explain (completed epochs from 1: ``"1-5"``, ``"1-3,7"``,
        ``[2, 3]``). Default: every phase with val < train, the longest (else
        the latest) first.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> e = explain({"loss": [1.2, 0.8, 0.6, 0.5], "val_loss": [0.9, 0.65, 0.53, 0.46]})
    >>> e.top["cause"]
    'measurement_lag'
    >>> explain({"loss": [2.0, 1.0, 0.9, 0.9], "val_loss": [1.5, 1.1, 1.0, 1.0]}).phases[0]["label"]
    'epoch 1'
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

    full = _causes.curves_of(history)
    if epochs is not None:
        wanted = parse_epochs(epochs, full.epoch)
        phases = [Phase(wanted, "requested", wanted)]
    else:
        phases = find_phases(full.epoch, full.train, full.val, full.train_shifted)
    options = dict(kfold=kfold_dict, findings=findings, frame=frame, persists=persists, n_val=n_val,
                   n_train=n_train)
    explained = []
    for phase in phases:
        curves = _causes.curves_of(history, phase.window)
        ranked = _score(curves, **options)
        gap = {**_gap(curves, n_val, n_train), "phase_epochs": list(phase.epochs), "phase_kind": phase.kind}
        if phase.kind == "requested" and not gap["val_lower"]:
            summary = _never_below(curves.__class__(**{**curves.__dict__}), phase.label) \
                if not (curves.val[curves.window] < curves.train[curves.window]).any() else \
                _phase_summary(ranked, gap, phase.label, phase.kind)
        else:
            summary = _phase_summary(ranked, gap, phase.label, phase.kind)
        disagreement = _disagreement(kfold_dict, gap)
        if disagreement:
            summary = f"{summary} {disagreement}"
        explained.append({"epochs": list(phase.epochs), "label": phase.label, "kind": phase.kind,
                          "window_epochs": list(phase.window), "gap": gap, "causes": ranked,
                          "summary": summary})
    if not explained:  # val is never below train: score the end of training, say so plainly
        ranked = _score(full, **options)
        gap = _gap(full, n_val, n_train)
        return Explanation(causes=ranked, summary=_never_below(full), gap=gap, history=history, phases=[])
    first = explained[0]
    summary = first["summary"]
    others = [f"{p['label']} ({p['kind']}: {p['causes'][0]['cause']}, {p['causes'][0]['score']:.2f} "
              f"{p['causes'][0]['status']})" for p in explained[1:]]
    if others:
        summary += " Val is also below train in " + "; ".join(others) + "."
    return Explanation(causes=first["causes"], summary=summary, gap=first["gap"], history=history,
                       phases=explained)
