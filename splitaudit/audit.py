"""The full audit: scan → drift/difficulty → k-fold retraining → explain, one report.

Examples
--------
>>> from splitaudit import audit
>>> result = audit("data", history="training_log.csv")        # doctest: +SKIP
>>> print(result.verdict()[0])                                 # doctest: +SKIP
>>> result.save("audit-out")                                   # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._text import verdict_sentences
from ._types import Progress, jsonable
from ._validate import check_dict, check_int, fail, renamed_keyword
from .report import render_audit_notebook, write_audit_outputs
from .scan import ScanResult, scan

__all__ = ["audit", "AuditResult", "kfold_inputs"]


def kfold_inputs(result: ScanResult) -> tuple[Any, np.ndarray, np.ndarray, str]:
    """(readable images, their features, their duplicate clusters, feature source).

    Features are the embeddings when the scan computed them, else the
    fingerprint descriptor; unreadable images are left out.
    """
    ok = result.fingerprints.table["ok"].to_numpy(dtype=bool)
    if result.embeddings is not None:
        features, source = np.asarray(result.embeddings), "embeddings"
    else:
        features, source = np.asarray(result.fingerprints.descriptor), "descriptor"
    images = result.split.images[ok].reset_index(drop=True)
    clusters = np.asarray(result.duplicates.clusters)[ok]
    return images, features[ok], clusters, source


@dataclass(frozen=True)
class AuditResult:
    """A scan, the k-fold retraining result and the explanation of a loss history."""

    scan: ScanResult
    kfold: Any = None
    explanation: Any = None
    notes: tuple[str, ...] = ()
    timings: dict = field(default_factory=dict)

    def verdict(self) -> list[str]:
        """Plain-word sentences for the top of the report, most important first."""
        lines = []
        if self.explanation is not None:
            lines.append(self.explanation.summary)
        probe_gap = getattr(getattr(self.kfold, "original", None), "gap", None)
        said = (self.explanation is not None and self.explanation.phases and probe_gap is not None
                and probe_gap >= 0)  # the explanation says in one sentence that the probe shows no gap
        if self.kfold is not None and not said:
            lines.append("Re-split and retrain: " + self.kfold.verdict.message)
        lines += verdict_sentences(self.scan.findings)
        lines += list(self.notes)
        return lines

    def _repr_html_(self) -> str:
        """Notebook display: the verdict, then the scan (findings, a few pairs), the
        k-fold verdict and the explanation; the full report is :meth:`save`."""
        return render_audit_notebook(self)

    def to_dict(self) -> dict:
        """The content of ``report.json``: everything, in plain JSON types."""
        return jsonable({
            "verdict": self.verdict(),
            "scan": self.scan.to_dict(),
            "kfold": self.kfold.to_dict() if self.kfold is not None else None,
            "explain": self.explanation.to_dict() if self.explanation is not None else None,
            "notes": list(self.notes),
            "timings": self.timings,
        })

    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write the scan outputs, kfold.json/png, explain.json/png, report.json and report.html."""
        return write_audit_outputs(self, out_dir)

def audit(
    root: Any = None,
    *,
    history: Any = None,
    n_splits: int = 5,
    probe: str | Callable = "linear",
    epochs: int = 10,
    kfold_options: dict | None = None,
    progress: Progress | None = None,
    random_state: int = 0,
    k: int | None = None,
    **scan_options: Any,
) -> AuditResult:
    """Run the whole audit.

    Parameters
    ----------
    root : path, ImageSplit or DataFrame
        What to scan (see :func:`splitaudit.scan`); ``scan_options`` pass through.
    history : path, dict or DataFrame, optional
        The user's loss history; when given, the causes of the gap are ranked.
    n_splits : int
        Folds of the leak-aware re-split (``0`` skips retraining).
    probe : "linear", "cnn" or a ``train_fn(train_items, val_items) -> history``
    epochs : int
        Epochs for the built-in probes.
    k : int, optional
        Deprecated name of ``n_splits``.
    """
    if k is not None:
        n_splits = renamed_keyword("k", "n_splits", k, "audit")
    if check_int("n_splits", n_splits, low=0) == 1:
        fail("n_splits", "0 (no retraining) or at least 2", n_splits)
    kfold_options = check_dict("kfold_options", kfold_options)
    check_dict("scan_options", scan_options, set(inspect.signature(scan).parameters) - {"root", "progress",
                                                                                      "random_state"})
    from .explain import explain
    from .retrain import kfold as run_kfold

    timings: dict[str, float] = {}
    notes: list[str] = []
    t = time.perf_counter()
    result = scan(root, progress=progress, random_state=random_state, **scan_options)
    timings["scan"] = time.perf_counter() - t

    kfold_result = None
    if n_splits and result.split.task is None:
        notes.append("k-fold retraining skipped: the split has no labels or targets")
    elif n_splits and min(result.split.n_train, result.split.n_val) == 0:
        notes.append("k-fold retraining skipped: one side of the split is empty")
    elif n_splits:
        t = time.perf_counter()
        images, features, clusters, source = kfold_inputs(result)
        kw = dict(kfold_options)
        if probe == "linear":
            kw["features"] = features
        kfold_result = run_kfold(images, n_splits=n_splits, probe=probe, epochs=epochs, clusters=clusters,
                                 random_state=random_state, progress=progress, **kw)
        timings["kfold"] = time.perf_counter() - t
        notes_src = f"k-fold probe '{probe if isinstance(probe, str) else 'train_fn'}'"
        if probe == "linear":
            notes_src += f" on the {source}"
        notes.append(notes_src + f", {n_splits} folds, {epochs} epochs")

    explanation = None
    if history is not None:
        t = time.perf_counter()
        difficulty = None
        diff = result.finding("difficulty")
        if diff is not None and diff.per_image is not None:
            difficulty = diff.per_image
        explanation = explain(history, scan=result.to_dict(),
                              kfold=kfold_result.to_dict() if kfold_result is not None else None,
                              difficulty=difficulty, n_val=result.split.n_val, n_train=result.split.n_train)
        timings["explain"] = time.perf_counter() - t
    return AuditResult(scan=result, kfold=kfold_result, explanation=explanation,
                       notes=tuple(notes), timings=timings)
