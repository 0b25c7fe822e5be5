"""The uniform result every check returns, and the check registry.

A check is a small class with a ``name`` and a ``run(context) -> CheckResult``.
Checks register themselves with :func:`register`; :func:`run_checks` runs the
requested ones and turns an exception inside a check into a result with
``status="error"`` and the reason, so one broken check never hides the others.

Every check compares train with val, so when one split has no readable image
a check whose ``needs_both_splits`` is true (the default) is not run: it is
``skipped`` with the reason. Warnings raised inside a check (numpy's
``RuntimeWarning`` on an empty slice, ...) never reach the user's terminal:
they are kept in the result's ``numbers["warnings"]``.
"""

from __future__ import annotations

import json
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
import pandas as pd

from .._types import jsonable

__all__ = ["AuditContext", "CheckResult", "Check", "STATUSES", "register", "registered", "run_checks",
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
            raise ValueError(
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


_REGISTRY: dict[str, type[Check]] = {}


def register(cls: type[Check]) -> type[Check]:
    """Class decorator adding a check to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> dict[str, type[Check]]:
    """A copy of the registry: name → check class."""
    return dict(_REGISTRY)


def run_checks(
    checks: Iterable[Check],
    context: Any,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[CheckResult]:
    """Run each check; an exception becomes a result with ``status='error'``."""
    checks = list(checks)
    results = []
    empty = empty_split_reason(context)
    for i, check in enumerate(checks):
        if progress:
            progress(f"check {check.name}", i, len(checks))
        if empty is not None and getattr(check, "needs_both_splits", True):
            results.append(CheckResult(check.name, "skipped", f"Not run: {empty}.", {"reason": empty}))
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = check.run(context)
            except Exception as exc:  # recorded, never swallowed
                result = CheckResult(
                    check=check.name,
                    status="error",
                    message=f"{type(exc).__name__}: {exc}",
                    numbers={"traceback": traceback.format_exc(limit=5)},
                )
        if caught:  # kept with the result instead of printed
            seen = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
            result = CheckResult(result.check, result.status, result.message,
                                 {**result.numbers, "warnings": seen}, result.per_image)
        results.append(result)
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


@dataclass
class AuditContext:
    """Everything a check may look at. Fields a stage has not produced are None.

    Attributes
    ----------
    split : ImageSplit
    fingerprints : Fingerprints or None
        Per-image hashes, properties, thumbnails and descriptor.
    embeddings : numpy.ndarray or None
        (N, D) float32, L2-normalised, rows aligned with ``split.images``.
    pairs : pandas.DataFrame or None
        Cross-split duplicate pairs from :mod:`splitaudit.duplicates`.
    image_loss : numpy.ndarray or None
        Optional per-image loss supplied by the user (replaces the probe's).
    random_state : int
    options : dict
        Check-specific options, keyed by check name.
    """

    split: Any
    fingerprints: Any = None
    embeddings: np.ndarray | None = None
    pairs: pd.DataFrame | None = None
    within_pairs: pd.DataFrame | None = None
    image_loss: np.ndarray | None = None
    random_state: int = 0
    options: dict = field(default_factory=dict)
    progress: Callable[[str, int, int], None] | None = None
