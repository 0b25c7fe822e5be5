"""Exact cosine search equals brute force; numpy and faiss agree; saved indexes round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from splitaudit._optional import available
from splitaudit.search.cosine import EmbeddingIndex, cosine_range, cosine_topk, l2_normalize

needs_faiss = pytest.mark.skipif(not available("faiss"), reason="faiss is an optional extra")


def _data(seed, n_query=70, n_base=1000, dim=24):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_base, dim)).astype(np.float32)
    queries = rng.normal(size=(n_query, dim)).astype(np.float32)
    # planted near-copies so the top of each list is not all noise
    queries[:10] = base[rng.choice(n_base, 10, replace=False)] + 0.05 * rng.normal(size=(10, dim))
    return queries, base


def _brute(queries, base):
    return l2_normalize(queries) @ l2_normalize(base).T


def check_topk_matches_brute(sims, idx, queries, base, k):
    full = _brute(queries, base)
    expected = -np.sort(-full, axis=1)[:, :k]
    np.testing.assert_allclose(sims, expected, atol=1e-5)
    # the returned indices really have those similarities
    np.testing.assert_allclose(np.take_along_axis(full, idx, 1), sims, atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-6).all(), "not sorted best first"
    assert all(len(set(row)) == k for row in idx.tolist()), "duplicate neighbours"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 17])
@pytest.mark.parametrize("block", [None, 7])
def test_topk_numpy_equals_brute_force(seed, k, block):
    queries, base = _data(seed)
    sims, idx = cosine_topk(queries, base, k, block=block, backend="numpy")
    assert sims.dtype == np.float32 and idx.dtype == np.int64
    assert sims.shape == idx.shape == (len(queries), k)
    check_topk_matches_brute(sims, idx, queries, base, k)


def test_topk_two_stage_with_ragged_tail_and_negative_sims():
    # base size not a multiple of the chunk width; all similarities negative for query 0
    rng = np.random.default_rng(5)
    base = np.abs(rng.normal(size=(1003, 8))).astype(np.float32)
    queries = np.vstack([-base[:1], rng.normal(size=(4, 8))]).astype(np.float32)
    sims, idx = cosine_topk(queries, base, 3, backend="numpy")
    check_topk_matches_brute(sims, idx, queries, base, 3)


def test_topk_k_clipped_and_planted_copy_found_first():
    queries, base = _data(3, n_base=60)
    base = base[:6]
    sims, idx = cosine_topk(queries, base, 10, backend="numpy")
    assert sims.shape == (len(queries), 6)
    copy = base[4] * 3.0  # scaling does not change cosine
    sims, idx = cosine_topk(copy[None], base, 1)
    assert idx[0, 0] == 4 and sims[0, 0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("block", [None, 9])
def test_range_numpy_equals_brute_force(threshold, block):
    queries, base = _data(7)
    qi, bi, sim = cosine_range(queries, base, threshold, block=block, backend="numpy")
    full = _brute(queries, base)
    eq, eb = np.nonzero(full >= threshold)
    assert set(zip(qi.tolist(), bi.tolist())) == set(zip(eq.tolist(), eb.tolist()))
    np.testing.assert_allclose(sim, full[qi, bi], atol=1e-6)
    assert (np.diff(qi) >= 0).all()


def test_range_exclude_self():
    _, base = _data(8, n_base=200)
    base[10] = base[20] * 2
    qi, bi, _ = cosine_range(base, base, 0.999, exclude_self=True, backend="numpy")
    assert set(zip(qi.tolist(), bi.tolist())) == {(10, 20), (20, 10)}
    with pytest.raises(ValueError, match="exclude_self"):
        cosine_range(base[:5], base, 0.9, exclude_self=True)


def test_zero_rows_have_cosine_zero():
    base = np.zeros((3, 4), np.float32)
    base[1] = [1, 0, 0, 0]
    sims, idx = cosine_topk(np.array([[0, 0, 0, 0.0]]), base, 3, backend="numpy")
    assert np.allclose(sims, 0)
    qi, _, _ = cosine_range(np.zeros((2, 4)), base, 0.5)
    assert len(qi) == 0


@needs_faiss
@pytest.mark.parametrize("k", [1, 9])
def test_faiss_agrees_with_numpy(k):
    queries, base = _data(11, n_query=300, n_base=3000)
    s_np, i_np = cosine_topk(queries, base, k, backend="numpy")
    s_fa, i_fa = cosine_topk(queries, base, k, backend="faiss")
    np.testing.assert_allclose(s_np, s_fa, atol=1e-5)
    assert (i_np == i_fa).mean() > 0.999  # only exact float ties could reorder
    r_np = cosine_range(queries, base, 0.55, backend="numpy")
    r_fa = cosine_range(queries, base, 0.55, backend="faiss")
    assert set(zip(*[a.tolist() for a in r_np[:2]])) == set(zip(*[a.tolist() for a in r_fa[:2]]))
    assert len(r_np[0]) > 0


@needs_faiss
def test_hnsw_is_close_to_exact():
    queries, base = _data(12, n_query=100, n_base=2000)
    _, exact = cosine_topk(queries, base, 1, backend="numpy")
    _, approx = cosine_topk(queries, base, 1, backend="hnsw")
    assert (exact == approx).mean() >= 0.9
    assert (exact[:10] == approx[:10]).all()  # planted copies are found


@pytest.mark.parametrize("backend", ["numpy", pytest.param("hnsw", marks=needs_faiss)])
def test_index_save_load_round_trip(tmp_path, backend):
    queries, base = _data(13, n_base=500)
    index = EmbeddingIndex(base, ids=[f"train/{i}.png" for i in range(500)], model_id="m1",
                           input_size=64, backend=backend)
    before = index.search(queries, 3)
    loaded = EmbeddingIndex.load(index.save(tmp_path / "idx"))
    after = loaded.search(queries, 3)
    np.testing.assert_array_equal(before[1], after[1])
    assert loaded.ids == index.ids and loaded.model_id == "m1" and loaded.input_size == 64
    qi, bi, _ = loaded.range(queries[:10], 0.9)
    assert sorted(qi.tolist()) == list(range(10))
    loaded.check_compatible("m1", 64)
    with pytest.raises(ValueError, match="model"):
        loaded.check_compatible("other", 64)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: cosine_topk(np.ones((2, 3)), np.ones((4, 5)), 1), ValueError, "dimension"),
        (lambda: cosine_topk(np.ones(3), np.ones((4, 3)), 1), ValueError, "2-D"),
        (lambda: cosine_topk(np.ones((2, 3)), np.ones((4, 3)), 0), ValueError, "k must"),
        (lambda: cosine_topk(np.ones((2, 3)), np.ones((4, 3)), 1.5), TypeError, "k must"),
        (lambda: cosine_topk(np.ones((2, 3)), np.ones((4, 3)), 1, backend="gpu"), ValueError, "backend"),
        (lambda: cosine_topk(np.full((2, 3), np.nan), np.ones((4, 3)), 1), ValueError, "NaN"),
        (lambda: cosine_topk("abc", np.ones((4, 3)), 1), TypeError, "queries"),
        (lambda: cosine_range(np.ones((2, 3)), np.ones((4, 3)), 1.5), ValueError, "threshold"),
        (lambda: cosine_range(np.ones((2, 3)), np.ones((4, 3)), 0.5, block=0), ValueError, "block"),
        (lambda: cosine_range(np.ones((2, 3)), np.ones((4, 3)), 0.5, backend="hnsw"), ValueError, "hnsw"),
    ],
)
def test_errors_name_the_parameter(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
