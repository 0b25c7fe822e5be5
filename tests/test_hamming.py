"""Hamming range search: the multi-index backend must return exactly the
brute-force pairs (random, planted, skewed codes; every radius 0..12)."""

from __future__ import annotations

import numpy as np
import pytest

from splitaudit.duplicates import hamming_range
from splitaudit.search import cosine_topk, mih
from splitaudit.search.hamming import choose_backend

U64_MAX = np.iinfo(np.uint64).max


def _random(rng, n):
    return rng.integers(0, U64_MAX, n, dtype=np.uint64, endpoint=True)


def _flip(rng, codes, max_bits):
    """Each code with 0..max_bits random bits flipped."""
    out = codes.copy()
    for i, k in enumerate(rng.integers(0, max_bits + 1, len(codes))):
        for bit in rng.choice(64, k, replace=False):
            out[i] ^= np.uint64(1) << np.uint64(bit)
    return out


def _planted(rng, n_base=600, n_queries=300):
    base = _random(rng, n_base)
    queries = _random(rng, n_queries)
    at = rng.choice(n_queries, n_queries // 2, replace=False)
    queries[at] = _flip(rng, base[rng.choice(n_base, len(at))], 12)
    return queries, base


def _skewed(rng, n=800):
    """Hashes like a real dataset's: many equal codes (blank images) and tight clusters."""
    centres = _random(rng, 6)
    codes = _flip(rng, centres[rng.integers(0, 6, n)], 5)
    codes[: n // 3] = centres[0]  # a third of the set shares one hash
    return codes


def _as_list(result):
    qi, bi, dist = result
    assert qi.dtype == np.int64 and bi.dtype == np.int64 and dist.dtype == np.int8
    return list(zip(qi.tolist(), bi.tolist(), dist.tolist()))


def _check_same(queries, base, radius, upper_only=False, **kw):
    ref = _as_list(hamming_range(queries, base, radius, backend="numpy", upper_only=upper_only))
    got = _as_list(mih.mih_range(queries, base, radius, upper_only=upper_only, **kw))
    assert got == ref  # same pairs, same order (by query, then base), no pair twice
    assert len(set(got)) == len(got)
    return got


@pytest.mark.parametrize("radius", range(13))
def test_mih_equals_brute_force_random_planted(radius):
    rng = np.random.default_rng(radius)
    queries, base = _planted(rng)
    got = _check_same(queries, base, radius)
    assert all(d <= radius for _, _, d in got)
    via_api = _as_list(hamming_range(queries, base, radius, backend="mih"))
    assert via_api == got


@pytest.mark.parametrize("radius", [0, 1, 3, 6, 8, 10, 12])
def test_mih_equals_brute_force_skewed(radius):
    rng = np.random.default_rng(100 + radius)
    codes = _skewed(rng)
    queries = np.concatenate([codes[::7], _flip(rng, codes[::11], 4)])
    got = _check_same(queries, codes, radius)
    assert len(got) > len(queries)  # the skew really produces crowded buckets


def test_mih_splits_crowded_buckets(monkeypatch):
    # Slices of 7 candidates force the bucket-splitting and slicing paths.
    monkeypatch.setattr(mih, "_CANDIDATE_ELEMENTS", 7)
    monkeypatch.setattr(mih, "_PROBE_ELEMENTS", 50)
    rng = np.random.default_rng(5)
    codes = _skewed(rng, 300)
    _check_same(codes[::5], codes, 8)
    _check_same(codes, codes, 4, upper_only=True, jobs=2, block=64)


@pytest.mark.parametrize("radius", [2, 5, 8, 11])
def test_every_plan_is_exact(radius):
    """The pigeonhole rule, unused bits and dropped substrings, plan by plan."""
    rng = np.random.default_rng(200 + radius)
    queries, base = _planted(rng, 150, 60)
    ref = _as_list(hamming_range(queries, base, radius, backend="numpy"))
    plans = mih._all_plans(radius)
    assert len(plans) > 20
    for plan in plans[:: max(1, len(plans) // 25)]:
        assert sum(r + 1 for r in plan.radii) > radius  # pigeonhole covers the radius
        assert _as_list(mih.mih_range(queries, base, radius, plan=plan)) == ref, plan


@pytest.mark.parametrize("radius", [0, 5, 8])
def test_upper_only_within_set(radius):
    rng = np.random.default_rng(radius)
    codes = np.concatenate([_skewed(rng, 200), _planted(rng, 200, 100)[0]])
    got = _check_same(codes, codes, radius, upper_only=True, jobs=2, block=50)
    assert all(q < b for q, b, _ in got)
    full = _as_list(hamming_range(codes, codes, radius, backend="mih"))
    assert sorted((min(q, b), max(q, b), d) for q, b, d in full if q != b) == sorted(
        t for t in got for _ in range(2))  # each unordered pair seen from both sides


def test_planner_prefers_mih_on_uniform_and_scan_on_clustered_codes():
    rng = np.random.default_rng(7)
    uniform = _random(rng, 20_000)
    backend, plan = choose_backend(uniform, uniform, 8)
    assert backend == "mih" and sum(r + 1 for r in plan.radii) > 8
    clustered = _random(rng, 5)[rng.integers(0, 5, 20_000)]  # 4,000 codes per value
    backend, plan = choose_backend(clustered, clustered, 8)
    assert backend in ("numpy", "faiss") and plan is None
    small = uniform[:100]
    assert choose_backend(small, small, 8) == ("numpy", None)
    # auto on a mid-size uniform set: same pairs as the numpy scan
    queries = _flip(rng, uniform[:600], 8)
    assert _as_list(hamming_range(queries, uniform, 8)) == _as_list(
        hamming_range(queries, uniform, 8, backend="numpy"))


@pytest.mark.parametrize("backend", ["numpy", "faiss", "mih", "auto"])
def test_empty_inputs(backend):
    codes = np.arange(5, dtype=np.uint64)
    for queries, base in [(codes[:0], codes), (codes, codes[:0]), (codes[:0], codes[:0])]:
        qi, bi, dist = hamming_range(queries, base, 8, backend=backend)
        assert len(qi) == len(bi) == len(dist) == 0
        assert (qi.dtype, bi.dtype, dist.dtype) == (np.int64, np.int64, np.int8)


def test_validation():
    codes = np.zeros(3, np.uint64)
    with pytest.raises(ValueError, match="radius must be in 0..64"):
        hamming_range(codes, codes, 65, backend="mih")
    with pytest.raises(ValueError, match="radius"):
        hamming_range(codes, codes, -1)
    with pytest.raises(TypeError, match="radius must be an int"):
        hamming_range(codes, codes, 2.5)
    with pytest.raises(TypeError, match="radius must be an int"):
        hamming_range(codes, codes, True)
    with pytest.raises(ValueError, match="backend must be one of"):
        hamming_range(codes, codes, 2, backend="gpu")
    with pytest.raises(ValueError, match="backend"):  # the float search has no multi-index backend
        cosine_topk(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 1, backend="mih")


def test_radius_64_and_equal_codes():
    codes = np.array([0, U64_MAX, 0, 1], dtype=np.uint64)
    got = _check_same(codes, codes, 64)
    assert len(got) == 16
    assert _check_same(codes, codes, 0) == [(0, 0, 0), (0, 2, 0), (1, 1, 0), (2, 0, 0), (2, 2, 0), (3, 3, 0)]


def test_a_plan_is_reused_for_other_queries_of_the_same_base():
    rng = np.random.default_rng(21)
    queries, base = _planted(rng)
    mirrored = _flip(rng, queries, 3)
    plan, _ = mih.plan_mih(6, queries, base)
    for q in (queries, mirrored):
        got = _as_list(hamming_range(q, base, 6, backend="mih", plan=plan))
        assert got == _as_list(hamming_range(q, base, 6, backend="numpy"))
    # a plan for another radius is refused rather than silently inexact
    with pytest.raises(ValueError):
        hamming_range(queries, base, 8, backend="mih", plan=plan)
