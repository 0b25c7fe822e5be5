"""Hamming range search on packed 64-bit hashes.

Three exact backends:

- ``numpy``: ``np.bitwise_count(q[:, None] ^ b[None, :])`` over row blocks.
- ``faiss``: ``IndexBinaryFlat.range_search`` (a full scan in C++).
- ``mih``: multi-index hashing (:mod:`.mih`): bucket tables over substrings
  of the bits, probed within the pigeonhole radius; no full scan.

``"auto"`` uses numpy below ``AUTO_MIN_WORK`` query x base pairs; above it,
it plans the multi-index search on a sample of the data and takes it when its
estimated cost beats a full scan (faiss when installed, else numpy). On
uniform codes at radius 8 that is ~100x less work than faiss at 1M x 1M;
strongly clustered hashes (many codes in few buckets) or large radii fall
back to the scan.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, InputTypeError
from .._optional import available, require
from .._parallel import resolve_jobs
from .mih import brute_force_cost, mih_range, plan_mih

__all__ = ["hamming_range", "choose_backend", "FAISS_MIN_WORK", "AUTO_MIN_WORK", "HAMMING_BACKENDS"]

FAISS_MIN_WORK = 2e8
"""``len(queries) * len(base)`` above which a full scan prefers faiss to numpy."""

AUTO_MIN_WORK = 1e7
"""``len(queries) * len(base)`` below which ``backend="auto"`` scans with numpy
without planning (under ~0.1 s)."""

HAMMING_BACKENDS = ("auto", "numpy", "faiss", "mih")

MIH_THREAD_SPEEDUP = 1.15
"""Measured speed-up of the multi-index search on 2 threads over 1 (2-core box)."""

_BLOCK_ELEMENTS = 8_000_000  # ~64 MB of uint64 per XOR block


def _check_hamming_backend(backend: str) -> None:
    if backend not in HAMMING_BACKENDS:
        raise InputError(f"backend must be one of {', '.join(map(repr, HAMMING_BACKENDS))}; got {backend!r}")


def choose_backend(queries: np.ndarray, base: np.ndarray, radius: int):
    """The backend ``"auto"`` uses for these codes, and the multi-index plan
    (``None`` unless the backend is ``"mih"``).

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.arange(10, dtype=np.uint64)
    >>> choose_backend(codes, codes, 8)
    ('numpy', None)
    """
    radius = _checked_radius(radius)
    work = len(queries) * len(base)
    if work < AUTO_MIN_WORK:
        return "numpy", None
    scan = "faiss" if work >= FAISS_MIN_WORK and available("faiss") else "numpy"
    if len(base) >= 2**31:
        return scan, None
    plan, seconds = plan_mih(radius, queries, base)
    # faiss scales with the cores; the multi-index threads gain only ~10 % (measured:
    # allocation-heavy numpy steps), so compare wall-clock estimates.
    scan_seconds = brute_force_cost(len(queries), len(base), scan) / (resolve_jobs(None) if scan == "faiss" else 1)
    if seconds / MIH_THREAD_SPEEDUP < scan_seconds:
        return "mih", plan
    return scan, None


def _as_u64(name: str, values) -> np.ndarray:
    """``values`` as a flat uint64 array; floats, strings and the like are a type error."""
    arr = np.asarray(values)
    if arr.size and arr.dtype.kind not in "uiO":
        raise InputTypeError(f"{name} must be packed 64-bit hashes (uint64), got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.uint64).ravel()


def _checked_radius(radius) -> int:
    """``radius`` as an int in 0..64."""
    if not isinstance(radius, (int, np.integer)) or isinstance(radius, bool):
        raise InputTypeError(f"radius must be an int, got {type(radius).__name__}")
    if not 0 <= radius <= 64:
        raise InputError(f"radius must be in 0..64, got {radius}")
    return int(radius)


def hamming_range(
    queries: np.ndarray,
    base: np.ndarray,
    radius: int,
    *,
    backend: str = "auto",
    upper_only: bool = False,
    plan=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of 64-bit hashes within Hamming distance ``radius``.

    Parameters
    ----------
    queries, base : array of uint64
        Packed hashes.
    radius : int
        Largest Hamming distance reported (inclusive), 0..64.
    backend : {"auto", "numpy", "faiss", "mih"}
        ``"auto"``: see :func:`choose_backend`. All backends return the same
        pairs (``"faiss"`` needs the faiss extra).
    upper_only : bool
        When ``queries`` and ``base`` are the same array, keep only pairs
        with ``query index < base index`` (within-set search).
    plan : MihPlan, optional
        For ``backend="mih"``: a plan from :func:`choose_backend` (or
        ``plan_mih``) to reuse, e.g. for the mirrored hashes of the same
        queries; None plans on a sample of these codes.

    Returns
    -------
    qi, bi : int64 arrays
        Query and base indices of each pair.
    dist : int8 array
        Hamming distance of each pair.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([0b1011], dtype=np.uint64); b = np.array([0b1001, 0xFF], dtype=np.uint64)
    >>> hamming_range(q, b, 1, backend="numpy")
    (array([0]), array([0]), array([1], dtype=int8))
    """
    _check_hamming_backend(backend)
    radius = _checked_radius(radius)
    q = _as_u64("queries", queries)
    b = _as_u64("base", base)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8))
    if len(q) == 0 or len(b) == 0:
        return empty
    if backend == "auto":
        backend, plan = choose_backend(q, b, int(radius))
    if backend == "mih":
        return mih_range(q, b, int(radius), upper_only=upper_only, plan=plan, jobs=resolve_jobs(None))
    if backend == "faiss":
        qi, bi, dist = _hamming_faiss(q, b, radius)
    else:
        qi, bi, dist = _hamming_numpy(q, b, radius, upper_only)
    if upper_only:
        keep = qi < bi
        qi, bi, dist = qi[keep], bi[keep], dist[keep]
    return qi, bi, dist


def _hamming_numpy(q, b, radius, upper_only):
    rows = max(1, _BLOCK_ELEMENTS // len(b))
    out_q, out_b, out_d = [], [], []
    for start in range(0, len(q), rows):
        stop = min(len(q), start + rows)
        # In a within-set search, columns before `start` only pair with earlier rows.
        col0 = start if upper_only else 0
        block = np.bitwise_count(q[start:stop, None] ^ b[None, col0:])
        r, c = np.nonzero(block <= radius)
        out_q.append(r + start)
        out_b.append(c + col0)
        out_d.append(block[r, c].astype(np.int8))
    return (np.concatenate(out_q).astype(np.int64), np.concatenate(out_b).astype(np.int64),
            np.concatenate(out_d))


def _to_faiss_bytes(h: np.ndarray) -> np.ndarray:
    # Big-endian bytes so bit order matches the hex form; Hamming distance is order-free anyway.
    return np.ascontiguousarray(h.astype(">u8").view(np.uint8).reshape(-1, 8))


def _hamming_faiss(q, b, radius):
    faiss = require("faiss", purpose="binary Hamming search")
    index = faiss.IndexBinaryFlat(64)
    index.add(_to_faiss_bytes(b))
    lims, dist, ids = index.range_search(_to_faiss_bytes(q), radius + 1)  # strict '<'
    counts = np.diff(lims).astype(np.int64)
    qi = np.repeat(np.arange(len(q), dtype=np.int64), counts)
    return qi, ids.astype(np.int64), dist.astype(np.int8)
