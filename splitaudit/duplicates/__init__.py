"""Exact and near duplicates across a train/validation split (and inside each side).

Read in the order of the data: :mod:`.candidates` finds candidate pairs through
:mod:`splitaudit.search` (packed 64-bit hashes within a Hamming radius,
thumbnail nearest neighbours) and :mod:`.keypoints` (local features),
:mod:`.verify` aligns each candidate's thumbnails and scores it (:mod:`.geometric`
re-checks unsure pairs under rotation, zoom and shift when asked),
:mod:`.clusters` groups duplicates and compares the cross-split count with
what a random split would give, and :mod:`.core` ties them together in
:func:`find_duplicates`.

Examples
--------
>>> from splitaudit.duplicates import find_duplicates          # doctest: +SKIP
>>> result = find_duplicates(fingerprints, split.images)        # doctest: +SKIP
>>> result.pairs.head()                                         # doctest: +SKIP
"""

from .clusters import duplicate_clusters, expected_cross
from .core import HASHES, DuplicateResult, find_duplicates
from ..search.hamming import hamming_range
from .verify import SCORE_MID, SCORE_SCALE, align_pairs, score_from_rms

__all__ = [
    "DuplicateResult",
    "find_duplicates",
    "duplicate_clusters",
    "expected_cross",
    "hamming_range",
    "align_pairs",
    "score_from_rms",
    "SCORE_MID",
    "SCORE_SCALE",
    "HASHES",
]
