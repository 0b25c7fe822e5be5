"""Argument checks with one error template: what parameter, what was expected, what was got.

Every check raises from the package's own tree (:mod:`splitaudit.errors`):
:class:`~splitaudit.errors.InputTypeError` for a wrong type,
:class:`~splitaudit.errors.InputError` for a wrong value, so
``except splitaudit.SplitAuditError`` catches every argument error. In the
spirit of scikit-learn's ``utils/_param_validation.py``, kept small.
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import InputError, InputTypeError

__all__ = ["check_bool", "check_choice", "check_dict", "check_int", "check_path", "check_real", "fail",
           "renamed_keyword"]


def fail(name: str, expected: str, got: Any, fix: str = "", *, kind: type = InputError):
    """Raise ``kind`` with the one template: ``{name} must be {expected}; got {got!r}. {fix}``."""
    message = f"{name} must be {expected}; got {got!r}"
    raise kind(f"{message}. {fix}" if fix else message)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; a non-bool (1, "yes") is a type error, not a guess."""
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "a bool", value, kind=InputTypeError)
    return bool(value)


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (either end open when None); bools are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        fail(name, "an int", value, kind=InputTypeError)
    if (low is not None and value < low) or (high is not None and value > high):
        fail(name, f"an int in [{'-inf' if low is None else low}, {'inf' if high is None else high}]", value)
    return int(value)


def check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
               high_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        fail(name, "a number", value, kind=InputTypeError)
    value = float(value)
    above = high is not None and (value >= high if high_open else value > high)
    if not np.isfinite(value) or (low is not None and value < low) or above:
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}{')' if high_open else ']'}"
        fail(name, f"a finite number in {bounds}", value)
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices`` (strings)."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        fail(name, "one of " + ", ".join(map(repr, choices)), value)
    return value


def check_dict(name: str, value: Any, allowed: Iterable[str] | None = None) -> dict:
    """``value`` (None: no options) as a new dict whose keys are all among ``allowed`` (any when None)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        fail(name, "a dict or None", value, kind=InputTypeError)
    if allowed is not None:
        allowed = sorted(allowed)
        unknown = {key: value[key] for key in value if key not in allowed}
        if unknown:
            fail(name, "a dict with keys among " + ", ".join(allowed), unknown, "Drop or rename the other keys")
    return dict(value)


def check_path(name: str, value: Any, what: str = "a path (str or os.PathLike)") -> Path:
    """``value`` as a :class:`~pathlib.Path`; anything but a str or os.PathLike is a type error."""
    if not isinstance(value, (str, os.PathLike)):
        fail(name, what, value, kind=InputTypeError)
    return Path(value)


def renamed_keyword(old: str, new: str, value: Any, where: str) -> Any:
    """``value``, passed under the keyword's old name ``old``: warn that it is now ``new``."""
    warnings.warn(f"{where}({old}=...) is deprecated; pass {new}= instead", DeprecationWarning, stacklevel=3)
    return value
