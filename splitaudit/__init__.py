"""splitaudit: audit a train/validation split of an image dataset."""

from .dataset import ImageSplit
from .explain import Explanation, History, explain, read_history
from .errors import (
    HistoryError,
    InputError,
    LayoutError,
    ManifestError,
    MissingDependencyError,
    SplitAuditError,
)

__version__ = "0.1.0"

__all__ = [
    "ImageSplit",
    "explain",
    "read_history",
    "Explanation",
    "History",
    "SplitAuditError",
    "InputError",
    "LayoutError",
    "ManifestError",
    "HistoryError",
    "MissingDependencyError",
    "__version__",
]
