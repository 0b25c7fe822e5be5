"""The parameters of :func:`~splitaudit.duplicates.find_duplicates`, validated once."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from .._validate import check_bool, check_choice, check_dict, check_int, check_real
from ..search.hamming import HAMMING_BACKENDS
from .verify import SCORE_MID, SCORE_SCALE

__all__ = ["DuplicateParams", "checked_duplicate_options"]


@dataclass(frozen=True)
class DuplicateParams:
    """Every threshold of the duplicate search, checked on construction.

    Field meanings are those of :func:`~splitaudit.duplicates.find_duplicates`'
    keyword arguments of the same names; ``jobs=None`` resolves to the cores.
    :meth:`to_dict` is what results and ``summary.json`` record.
    """

    hash_radius: int = 4
    max_hash_candidates: int = 8
    neighbors: int = 5
    search_dims: int = 64
    min_corr: float = 0.9
    max_shift: int = 1
    trim: float = 0.05
    score_mid: float = SCORE_MID
    score_scale: float = SCORE_SCALE
    min_score: float = 0.5
    embedding_cos: float = 0.97
    min_embedding_cos: float = 0.9
    within: bool = True
    keypoints: bool = True
    max_keypoint_candidates: int = 8
    overlay: bool = True
    geometric: bool = False
    backend: str = "auto"
    jobs: int | None = None

    def __post_init__(self):
        fixed = {"jobs": (os.cpu_count() or 1) if self.jobs is None else check_int("jobs", self.jobs, low=1)}
        for name in ("hash_radius", "max_hash_candidates", "neighbors", "search_dims", "max_shift",
                     "max_keypoint_candidates"):
            fixed[name] = check_int(name, getattr(self, name), low=0)
        for name in ("min_corr", "score_mid", "score_scale", "embedding_cos", "min_embedding_cos"):
            fixed[name] = check_real(name, getattr(self, name))
        fixed["min_score"] = check_real("min_score", self.min_score, low=0.0, high=1.0)
        fixed["trim"] = check_real("trim", self.trim, low=0.0, high=0.5, high_open=True)
        for name in ("within", "keypoints", "overlay", "geometric"):
            fixed[name] = check_bool(name, getattr(self, name))
        check_choice("backend", self.backend, HAMMING_BACKENDS)
        for name, value in fixed.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        """The parameters as a plain dict, in field order."""
        return asdict(self)


def checked_duplicate_options(name: str, options: Any) -> dict:
    """``options`` (None: none) as a dict of :class:`DuplicateParams` field names; any other key would
    have no effect and is an :class:`~splitaudit.errors.InputError` naming ``name``."""
    return check_dict(name, options, [f.name for f in fields(DuplicateParams)])
