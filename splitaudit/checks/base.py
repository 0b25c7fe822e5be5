"""The uniform result every check returns, the read-only context checks look at, and the registry.

A check is a small class with a ``name`` and a ``run(context) -> CheckResult``.
:data:`REGISTRY` names every check and where its class lives; :func:`run_checks`
runs the requested ones and turns a check that cannot be loaded, or an exception
inside one, into a result with ``status="error"`` and the reason, so one broken
check never hides the others.

Every check compares train with val, so when one split has no readable image
a check whose ``needs_both_splits`` is true (the default) is not run: it is
``skipped`` with the reason. Warnings raised inside a check (numpy's
``RuntimeWarning`` on an empty slice, ...) never reach the user's terminal:
they are kept in the result's ``numbers["warnings"]``.
"""

from __future__ import annotations

import importlib
import json
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

import numpy as np
import pandas as pd

from ..errors import InputError
from .._types import Progress, jsonable

__all__ = ["AuditContext", "CheckResult", "Check", "STATUSES", "REGISTRY", "load_check", "run_checks",
           "empty_split_reason"]

STATUSES = ("pass", "warn", "fail", "skipped", "error")


@dataclass(frozen=True)
class CheckResult:
    """What a check found.

    Attributes
    ----------
    check : str
        The check's name, e.g. ``"near_duplicates"``.
    status : str
        One of ``pass``, ``warn``, ``fail``, ``skipped``, ``error``.
    message : str
        One plain sentence for a person.
    numbers : dict
        The evidence: statistics, effect sizes, confidence intervals,
        p-values and sample sizes. JSON-serialisable after :func:`jsonable`.
    per_image : pandas.DataFrame or None
        Optional per-image scores (indexed like the split's image table).
    """

    check: str
    status: str
    message: str
    numbers: dict = field(default_factory=dict)
    per_image: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise InputError(
                f"status must be one of {STATUSES}, got {self.status!r}"
            )

    def to_dict(self) -> dict:
        """The finding as it appears in ``summary.json`` ``findings``."""
        out = {"check": self.check, "status": self.status, "message": self.message}
        out.update(jsonable(self.numbers))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)


class Check:
    """Base class of a check: subclasses set ``name`` and implement ``run``."""

    name: ClassVar[str] = ""
    needs_both_splits: ClassVar[bool] = True
    """Skip (with the reason) when train or val has no readable image."""

    def run(self, context: Any) -> CheckResult:  # pragma: no cover - interface
        raise NotImplementedError


REGISTRY: dict[str, tuple[str, str]] = {
    "exact_duplicates": ("duplicates", "ExactDuplicates"),
    "near_duplicates": ("duplicates", "NearDuplicates"),
    "label_conflicts": ("duplicates", "LabelConflicts"),
    "label_distribution": ("labels", "LabelDistributionCheck"),
    "property_drift": ("drift", "PropertyDriftCheck"),
    "embedding_drift": ("drift", "EmbeddingDriftCheck"),
    "difficulty": ("difficulty", "DifficultyCheck"),
}
"""Every check by name, in report order: the module of :mod:`splitaudit.checks` and the class."""


def load_check(name: str) -> Check:
    """A new instance of the check registered as ``name``.

    Raises
    ------
    KeyError
        ``name`` is not in :data:`REGISTRY`.
    ImportError, AttributeError
        Its module cannot be imported or lacks the class (:func:`run_checks` records
        either as an ``error`` finding).
    """
    module, cls = REGISTRY[name]
    return getattr(importlib.import_module(f".{module}", __package__), cls)()


def _error(name: str, exc: Exception) -> CheckResult:
    return CheckResult(check=name, status="error", message=f"{type(exc).__name__}: {exc}",
                       numbers={"traceback": traceback.format_exc(limit=5)})


def _run_one(check: Check, context: Any) -> CheckResult:
    """Run one check; an exception becomes a result with ``status='error'``, warnings go into it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = check.run(context)
        except Exception as exc:  # recorded, never swallowed
            result = _error(check.name, exc)
    if caught:  # kept with the result instead of printed
        seen = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
        result = CheckResult(result.check, result.status, result.message,
                             {**result.numbers, "warnings": seen}, result.per_image)
    return result


def run_checks(
    checks: Iterable[Check | str],
    context: Any,
    *,
    progress: Progress | None = None,
) -> list[CheckResult]:
    """Run each check: an instance, or a name in :data:`REGISTRY` loaded here.

    A check that cannot be loaded or raises becomes a result with ``status='error'`` and the
    reason; one that compares train with val is ``skipped`` when a split has no readable image.
    """
    checks = list(checks)
    results = []
    empty = empty_split_reason(context)
    for i, check in enumerate(checks):
        name = check if isinstance(check, str) else check.name
        if progress:
            progress(f"check {name}", i, len(checks))
        try:
            check = load_check(check) if isinstance(check, str) else check
        except Exception as exc:  # a check that cannot be loaded is a finding, never a silent gap
            results.append(_error(name, exc))
            continue
        if empty is not None and getattr(check, "needs_both_splits", True):
            results.append(CheckResult(name, "skipped", f"Not run: {empty}.", {"reason": empty}))
            continue
        results.append(_run_one(check, context))
    if progress:
        progress("checks", len(checks), len(checks))
    return results


def empty_split_reason(context: Any) -> str | None:
    """Why train-vs-val checks cannot run (a split without a readable image), or None."""
    split = getattr(context, "split", None)
    images = getattr(split, "images", None)
    if images is None or "split" not in images.columns:
        return None
    names = images["split"].to_numpy()
    table = getattr(getattr(context, "fingerprints", None), "table", None)
    ok = (table["ok"].to_numpy(dtype=bool, na_value=False)
          if table is not None and "ok" in table.columns and len(table) == len(names)
          else np.ones(len(names), bool))
    for name in ("train", "val"):
        listed = int((names == name).sum())
        if not (ok & (names == name)).any():
            found = ("no image files" if not listed else
                     f"{listed} image file{'' if listed == 1 else 's'}, none readable")
            return f"the {name} split has no readable image ({found}), so there is nothing to compare"
    return None


@dataclass(frozen=True)
class AuditContext:
    """Everything a check may look at, built by the pipeline; checks only read it.

    Fields a stage has not produced are None.

    Attributes
    ----------
    split : ImageSplit
    fingerprints : Fingerprints or None
        Per-image hashes, properties, thumbnails and descriptor.
    embeddings : numpy.ndarray or None
        (N, D) float32, L2-normalised, rows aligned with ``split.images``.
    pairs : pandas.DataFrame or None
        Cross-split duplicate pairs from :func:`splitaudit.duplicates.find_duplicates`.
    within_pairs : pandas.DataFrame or None
        Pairs inside a split from the same search; None when it did not search inside the splits.
    image_loss : numpy.ndarray or None
        Optional per-image loss supplied by the user (replaces the probe's).
    random_state : int
    options : dict
        Check-specific options, keyed by check name.
    progress : callable or None
        ``progress(stage, done, total)`` for a long check.
    probe_loss : ProbeLoss or None
        The difficulty probe's out-of-fold losses, fitted by the pipeline
        (:func:`splitaudit.retrain.probes.difficulty_probe_loss`).
    """

    split: Any
    fingerprints: Any = None
    embeddings: np.ndarray | None = None
    pairs: pd.DataFrame | None = None
    within_pairs: pd.DataFrame | None = None
    image_loss: np.ndarray | None = None
    random_state: int = 0
    options: dict = field(default_factory=dict)
    progress: Progress | None = None
    probe_loss: Any = None
