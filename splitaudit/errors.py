"""The exceptions splitaudit raises.

::

    SplitAuditError                 base of everything below
     ├── InputError (ValueError)    the user's data or arguments are not usable
     │    ├── LayoutError           no train/val split could be found under a root
     │    └── ManifestError         a manifest CSV/DataFrame is malformed
     ├── InputTypeError (TypeError) an argument has the wrong type
     ├── HistoryError (ValueError)  a loss-history file cannot be parsed
     └── MissingDependencyError (ImportError)
                                    an optional extra (torch, faiss, dask) is not installed

Per-file problems (a truncated JPEG, a text file named ``.png``) are *not*
exceptions: they become rows with a ``reason`` in the results.
"""

from __future__ import annotations

__all__ = [
    "SplitAuditError",
    "InputError",
    "LayoutError",
    "ManifestError",
    "InputTypeError",
    "HistoryError",
    "MissingDependencyError",
]


class SplitAuditError(Exception):
    """Base class of all splitaudit errors."""


class InputError(SplitAuditError, ValueError):
    """The user's data or arguments cannot be used as given."""


class LayoutError(InputError):
    """No train/validation split could be discovered."""


class ManifestError(InputError):
    """A manifest is missing columns or holds unusable rows."""


class InputTypeError(SplitAuditError, TypeError):
    """An argument has the wrong type (a string where a number belongs, ...)."""


class HistoryError(SplitAuditError, ValueError):
    """A loss-history file could not be parsed."""


class MissingDependencyError(SplitAuditError, ImportError):
    """An optional dependency is needed but not installed."""
