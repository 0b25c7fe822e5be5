"""splitaudit: audit a train/validation split of an image dataset."""

from .audit import AuditResult, audit
from .checks.base import CheckResult
from .dataset import ImageSplit
from .duplicates import DuplicateResult, find_duplicates
from .fingerprints import compute_fingerprints
from .index import TrainingIndex
from .explain import Explanation, History, explain, read_history
from .resplit import LeakAwareSplitter, combine_groups, leak_free_split, resplit_manifest
from .retrain import KFoldResult, kfold
from .scan import ScanResult, scan
from .errors import (
    HistoryError,
    InputError,
    InputTypeError,
    LayoutError,
    ManifestError,
    MissingDependencyError,
    SplitAuditError,
)

from ._version import __version__

__all__ = [
    "ImageSplit",
    "TrainingIndex",
    "scan",
    "ScanResult",
    "compute_fingerprints",
    "find_duplicates",
    "DuplicateResult",
    "CheckResult",
    "audit",
    "AuditResult",
    "LeakAwareSplitter",
    "combine_groups",
    "leak_free_split",
    "resplit_manifest",
    "kfold",
    "KFoldResult",
    "explain",
    "read_history",
    "Explanation",
    "History",
    "SplitAuditError",
    "InputError",
    "InputTypeError",
    "LayoutError",
    "ManifestError",
    "HistoryError",
    "MissingDependencyError",
    "__version__",
]
