"""splitaudit: audit a train/validation split of an image dataset."""

from .dataset import ImageSplit
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
    "SplitAuditError",
    "InputError",
    "LayoutError",
    "ManifestError",
    "HistoryError",
    "MissingDependencyError",
    "__version__",
]
