"""Multi-index hashing (MIH): exact Hamming range search without a full scan.

Pigeonhole (Norouzi, Punjani & Fleet, "Fast search in Hamming space with
multi-index hashing", CVPR 2012): cut the 64 bits into ``m`` disjoint
substrings and write ``radius = m * s + a`` with ``0 <= a < m``. Two codes
within ``radius`` differ in at most ``s`` bits on one of the first ``a + 1``
substrings, or in at most ``s - 1`` bits on one of the others (otherwise the
distance would be at least ``(a + 1)(s + 1) + (m - a - 1) s = radius + 1``).
The substrings need not cover all 64 bits: the distance on the bits used is
never larger than the full distance, so the rule still holds.

For each substring the base codes are bucketed by a counting sort
(``offsets``, base codes reordered so each bucket is contiguous). Every query
probes, on each substring, every key within that substring's probe radius;
each candidate is verified on all 64 bits. A pair is kept only at the first
substring whose probe radius covers it, so no pair is reported twice and no
Python set is needed. Work is done in blocks of queries and in bounded
candidate slices (a bucket holding many equal codes is split), so memory stays
bounded whatever the distribution; the output itself is O(pairs).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..errors import InputError

__all__ = ["MihPlan", "plan_mih", "mih_range", "mih_cost", "brute_force_cost", "MAX_TABLE_BITS"]

MAX_TABLE_BITS = 23
"""Longest substring bucketed with a direct table (2**23 + 1 int32 offsets = 32 MB)."""

_MAX_PROBES = 40_000  # per query and substring; beyond this a plan is not considered
_PROBE_ELEMENTS = 4_000_000  # query x probe keys per step (int32 arrays of ~16 MB)
_CANDIDATE_ELEMENTS = 2_000_000  # candidates verified per slice
_SAMPLE_BASE = 65_536  # base codes sampled by plan_mih
_SAMPLE_PROBES = 131_072  # query x probe keys sampled by plan_mih, per substring

# Seconds per element on one core of the 2-core dev box under load (2026-11-27,
# least squares over five plans on 1M x 100k uniform codes, /tmp/calib in the
# results of benchmarks/bench_scale.py search): a probe is a key, a bool-table
# test and, for hits, a bucket read; a candidate is a gather, XOR, popcount and
# test. Brute force per pair measured in the same conditions.
COST_PROBE = 30e-9
COST_CANDIDATE = 38e-9
COST_BUILD = 150e-9  # per base code and substring (bincount, radix sort, gathers)
COST_TABLE = 3e-9  # per bucket of a substring table (allocation, cumsum)
COST_NUMPY_PAIR = 13e-9
COST_FAISS_PAIR = 1.8e-9


@dataclass(frozen=True)
class MihPlan:
    """How a radius search is cut into substrings.

    Attributes
    ----------
    shifts, bits, radii : tuple of int
        Bit offset, length and probe radius of each substring (probe radius
        ``-1`` substrings are dropped from the plan).
    radius : int
        The Hamming radius the plan is exact for.
    """

    shifts: tuple[int, ...]
    bits: tuple[int, ...]
    radii: tuple[int, ...]
    radius: int

    @property
    def probes(self) -> int:
        """Keys probed per query, over all substrings."""
        return sum(_n_within(b, s) for b, s in zip(self.bits, self.radii))


def _n_within(bits: int, radius: int) -> int:
    return sum(math.comb(bits, k) for k in range(min(bits, radius) + 1))


def _make_plan(radius: int, m: int, length: int) -> MihPlan | None:
    """``m`` substrings of at most ``length`` bits (balanced, within 64 bits)."""
    total = min(64, m * length)
    lengths = [total // m + (1 if k < total % m else 0) for k in range(m)]
    s, a = divmod(radius, m)
    radii = [s if k <= a else s - 1 for k in range(m)]
    shifts, bits, kept = [], [], []
    offset = 0
    for b, r in zip(lengths, radii):
        if r >= 0 and b > 0:
            shifts.append(offset); bits.append(b); kept.append(r)
        offset += b
    if not bits or any(_n_within(b, r) > _MAX_PROBES for b, r in zip(bits, kept)):
        return None
    return MihPlan(tuple(shifts), tuple(bits), tuple(kept), radius)


def _build_cost(plan: MihPlan, n_base: int) -> float:
    return sum(COST_BUILD * n_base + COST_TABLE * 2.0 ** b for b in plan.bits)


def mih_cost(plan: MihPlan, n_queries: int, n_base: int) -> float:
    """Modelled seconds (one core) of :func:`mih_range` with ``plan`` on
    uniformly random codes."""
    per_query = sum(_n_within(b, s) * (COST_PROBE + COST_CANDIDATE * n_base / 2.0 ** b)
                    for b, s in zip(plan.bits, plan.radii))
    return n_queries * per_query + _build_cost(plan, n_base)


def brute_force_cost(n_queries: int, n_base: int, backend: str) -> float:
    """Modelled seconds (one core) of a ``"numpy"`` or ``"faiss"`` full scan."""
    return n_queries * n_base * (COST_FAISS_PAIR if backend == "faiss" else COST_NUMPY_PAIR)


def _all_plans(radius: int) -> list[MihPlan]:
    plans = {}
    for m in range(1, min(radius + 1, 16) + 1):
        for length in range(4, MAX_TABLE_BITS + 1):
            plan = _make_plan(radius, m, length)
            if plan is not None:
                plans[plan] = None
    return list(plans)


def plan_mih(radius: int, queries: np.ndarray, base: np.ndarray, *,
             shortlist: int = 4) -> tuple[MihPlan, float]:
    """Cheapest exact plan for these codes, and its estimated seconds (one core).

    Plans are ranked by :func:`mih_cost` (uniform codes); the ``shortlist``
    best, plus the longest-substring plan of each ``m``, are then costed on
    the data: an evenly spaced sample of the base, probed by evenly spaced
    queries, gives the candidate count. Skewed hashes (many codes in
    a few buckets) thus pick longer substrings or lose to brute force.

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.random.default_rng(0).integers(0, 2**63, 5_000, dtype=np.uint64)
    >>> plan, seconds = plan_mih(8, codes, codes)
    >>> plan.radius, sum(plan.radii) + len(plan.radii) > 8
    (8, True)
    """
    n_q, n_b = len(queries), len(base)
    ranked = sorted(_all_plans(radius), key=lambda p: mih_cost(p, n_q, n_b))
    longest: dict[int, MihPlan] = {}
    for plan in ranked:
        m = len(plan.bits)
        if m not in longest or sum(plan.bits) > sum(longest[m].bits):
            longest[m] = plan
    shortlisted = list(dict.fromkeys(ranked[:shortlist] + list(longest.values())[:4]))
    base_sample = base[:: max(1, n_b // _SAMPLE_BASE)]
    sorted_subs: dict[tuple[int, int], np.ndarray] = {}
    best, best_cost = ranked[0], math.inf
    for plan in shortlisted:
        candidates = 0.0
        for shift, bits, sub_radius in zip(plan.shifts, plan.bits, plan.radii):
            if (shift, bits) not in sorted_subs:
                sorted_subs[shift, bits] = np.sort(_substring(base_sample, shift, bits))
            flips = _flip_masks(bits, sub_radius)
            probe_q = queries[:: max(1, n_q * len(flips) // _SAMPLE_PROBES)]
            keys = np.sort((_substring(probe_q, shift, bits)[:, None] ^ flips[None, :]).ravel())
            sub = sorted_subs[shift, bits]
            hits = np.searchsorted(sub, keys, "right") - np.searchsorted(sub, keys, "left")
            candidates += float(hits.sum()) * n_b / len(base_sample) * n_q / len(probe_q)
        cost = n_q * plan.probes * COST_PROBE + candidates * COST_CANDIDATE + _build_cost(plan, n_b)
        if cost < best_cost:
            best, best_cost = plan, cost
    return best, best_cost


def _flip_masks(bits: int, radius: int) -> np.ndarray:
    """Every mask of at most ``radius`` set bits among ``bits`` (as intp)."""
    masks = [0]
    for k in range(1, min(bits, radius) + 1):
        masks += [sum(1 << i for i in combo) for combo in combinations(range(bits), k)]
    return np.asarray(masks, dtype=np.intp)


@dataclass(frozen=True)
class _Table:
    shift: int
    bits: int
    radius: int
    occupied: np.ndarray  # bool (2**bits,): bucket not empty (small: stays in cache)
    buckets: np.ndarray  # int64 (2**bits,): bucket start << 32 | bucket size
    codes: np.ndarray  # uint64 base codes in bucket order
    order: np.ndarray  # int32 base index of each entry of ``codes``
    flips: np.ndarray  # intp probe masks


def _substring(h: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((h >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.intp)


def _stable_order(sub: np.ndarray, bits: int) -> np.ndarray:
    """``np.argsort(sub, kind="stable")`` for keys of ``bits`` <= 32 bits, as
    two 16-bit radix passes (numpy radix-sorts 16-bit keys: ~2.5x faster)."""
    if bits <= 16:
        return np.argsort(sub.astype(np.uint16), kind="stable")
    low = bits // 2
    first = np.argsort((sub & ((1 << low) - 1)).astype(np.uint16), kind="stable")
    return first[np.argsort((sub[first] >> low).astype(np.uint16), kind="stable")]


def _build(base: np.ndarray, shift: int, bits: int, radius: int) -> _Table:
    sub = _substring(base, shift, bits)
    sizes = np.bincount(sub, minlength=1 << bits).astype(np.int64)
    buckets = ((np.cumsum(sizes) - sizes) << 32) | sizes
    order = _stable_order(sub, bits).astype(np.int32)
    return _Table(shift, bits, radius, sizes > 0, buckets, base[order], order,
                  _flip_masks(bits, radius))


def _verify(q, rows, pos, table, earlier, radius):
    """Verify (query row, base position) candidates on 64 bits; keep pairs not
    covered by an earlier substring. Returns (rows, base index, distance)."""
    x = table.codes[pos] ^ q[rows]
    dist = np.bitwise_count(x)
    ok = np.flatnonzero(dist <= radius)
    if len(ok) == 0:
        return None
    x, rows, pos, dist = x[ok], rows[ok], pos[ok], dist[ok]
    keep = np.ones(len(ok), bool)
    for shift, bits, sub_radius in earlier:  # found (and kept) through an earlier substring
        mask = np.uint64(((1 << bits) - 1) << shift)
        keep &= np.bitwise_count(x & mask) > sub_radius
    return rows[keep], table.order[pos[keep]], dist[keep]


def _expand(rows, start, count, *, unrolled=4):
    """Yield (rows, base positions) of every candidate, in slices.

    Most buckets hold one or two codes, so the first ``unrolled`` entries of
    each bucket are taken by direct indexing; longer buckets (skewed data,
    many equal codes) are expanded with ``np.repeat`` in bounded slices.
    """
    for _ in range(unrolled):
        yield rows, start
        more = np.flatnonzero(count > 1)
        if len(more) == 0:
            return
        rows, start, count = rows[more], start[more] + 1, count[more] - 1
    big = count > _CANDIDATE_ELEMENTS  # a crowded bucket: cut it into pieces
    if big.any():
        pieces = np.where(big, -(-count // _CANDIDATE_ELEMENTS), 1)
        k = np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        rows, start, count = (np.repeat(a, pieces) for a in (rows, start, count))
        start = start + k * _CANDIDATE_ELEMENTS
        count = np.minimum(count - k * _CANDIDATE_ELEMENTS, _CANDIDATE_ELEMENTS)
    ends = np.cumsum(count)
    lo = 0
    while lo < len(count):  # slices of at most ~_CANDIDATE_ELEMENTS candidates
        done = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, done + _CANDIDATE_ELEMENTS, side="right")))
        c = count[lo:hi]
        e = ends[lo:hi] - done
        yield (np.repeat(rows[lo:hi], c),
               np.repeat(start[lo:hi] - (e - c), c) + np.arange(int(e[-1])))
        lo = hi


def _probe(sorted_q, sorted_key, table, flips, earlier, radius):
    """Probe ``flips`` of one substring for queries sorted by that substring.

    Keys are visited flip-major over sorted queries, so the bucket table and
    the reordered base codes are read almost sequentially (a random gather in
    the 2**22 table costs ~10 ns; a sequential one ~1 ns).
    """
    n_q = len(sorted_q)
    out = []
    group = max(1, _PROBE_ELEMENTS // n_q)
    for f0 in range(0, len(flips), group):
        keys = (flips[f0:f0 + group, None] ^ sorted_key[None, :]).ravel()
        # A bool table and a bool nonzero are ~6x cheaper than testing the
        # int64 buckets; only hits (~20 %) read them.
        hit = np.flatnonzero(np.take(table.occupied, keys))
        if len(hit) == 0:
            continue
        packed = np.take(table.buckets, keys[hit])
        if len(keys) > n_q:  # several flips: hit index = flip * n_q + row
            cut = np.searchsorted(hit, np.arange(0, len(keys) + 1, n_q))
            hit -= np.repeat(np.arange(0, len(keys), n_q), np.diff(cut))
        for rows, pos in _expand(hit, packed >> 32, packed & 0xFFFFFFFF):
            found = _verify(sorted_q, rows, pos, table, earlier, radius)
            if found is not None:
                out.append(found)
    return out


def mih_range(
    queries: np.ndarray,
    base: np.ndarray,
    radius: int,
    *,
    upper_only: bool = False,
    plan: MihPlan | None = None,
    jobs: int = 1,
    block: int = 1 << 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Hamming range search by multi-index hashing.

    Same contract as :func:`~splitaudit.search.hamming_range` (which
    validates the inputs and calls this for ``backend="mih"``); pairs come out
    sorted by query, then base index, as from the numpy backend.

    Parameters
    ----------
    queries, base : uint64 arrays
    radius : int
    upper_only : bool
        Keep only ``query index < base index``.
    plan : MihPlan, optional
        Substrings to use; default :func:`plan_mih` for these codes.
    jobs : int
        Threads over chunks of probe masks (numpy releases the GIL in the
        heavy steps; ~10 % faster on 2 cores).
    block : int
        Queries per block.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([0b1011], dtype=np.uint64); b = np.array([0b1001, 0xFF], dtype=np.uint64)
    >>> mih_range(q, b, 1)
    (array([0]), array([0]), array([1], dtype=int8))
    """
    plan = plan if plan is not None else plan_mih(radius, queries, base)[0]
    if plan.radius < radius:
        raise InputError(f"plan is exact up to radius {plan.radius}, got radius {radius}; "
                         "make one with plan_mih(radius, queries, base)")
    if len(base) >= 2**31:
        raise InputError(f"base must hold fewer than 2**31 hashes for multi-index hashing; got {len(base)}")
    tables = [_build(base, sh, b, s) for sh, b, s in zip(plan.shifts, plan.bits, plan.radii)]
    pool = ThreadPoolExecutor(jobs) if jobs > 1 else None
    parts = []
    try:
        for q0 in range(0, len(queries), block):
            q_block = queries[q0:q0 + block]
            for t_index, table in enumerate(tables):
                earlier = [(t.shift, t.bits, t.radius) for t in tables[:t_index]]
                key = _substring(q_block, table.shift, table.bits)
                q_order = _stable_order(key, table.bits)
                sorted_q, sorted_key = q_block[q_order], key[q_order]
                n_tasks = 1 if pool is None else min(len(table.flips), 4 * jobs)
                chunks = np.array_split(table.flips, n_tasks)
                run = lambda flips: _probe(sorted_q, sorted_key, table, flips, earlier, radius)
                found = map(run, chunks) if pool is None else pool.map(run, chunks)
                for rows, base_idx, dist in (p for f in list(found) for p in f):
                    qi = q_order[rows].astype(np.int64) + q0
                    bi = base_idx.astype(np.int64)
                    keep = qi < bi if upper_only else slice(None)
                    parts.append((qi[keep], bi[keep], dist[keep].astype(np.int8)))
    finally:
        if pool is not None:
            pool.shutdown()
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    qi, bi, dist = (np.concatenate(col) for col in zip(*parts))
    order = np.lexsort((bi, qi))  # same order as the brute-force backends: by query, then base
    return qi[order], bi[order], dist[order]
