"""Exact (and optionally approximate) cosine nearest-neighbour search.

Two questions every duplicate check asks of two embedding matrices:

* :func:`cosine_topk`: the ``k`` most similar ``base`` rows for each query row;
* :func:`cosine_range`: every (query, base) pair with cosine >= a threshold.

Both work in blocks of query rows, so memory stays bounded (no full
``Q x B`` similarity matrix is ever held for large inputs). Backends:

``"numpy"``   BLAS matmul per block + a two-stage top-k (best 64-column chunks
              by their maximum, then an exact top-k inside them).
``"faiss"``   ``faiss.IndexFlatIP`` (exact).
``"hnsw"``    ``faiss.IndexHNSWFlat`` (approximate; for very large bases only:
              building the graph costs more than an exact search below ~1M rows).
``"auto"``    numpy. Measured (benchmarks/results_embeddings.md, 4000 x 16000 x 512,
              2 shared cores): numpy two-stage 2.3 s, faiss flat 7.4 s; faiss's
              OpenMP threads suffer badly when cores are shared, and on an idle
              machine it was only ~16% faster (research/perf.md). Ask for
              ``"faiss"`` explicitly on a dedicated many-core machine.

Rows are L2-normalised internally; an all-zero row (e.g. an unreadable image)
has cosine 0 with everything. :class:`EmbeddingIndex` keeps a base on disk so
new images can be checked against a saved training set later.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError, InputTypeError
from .._optional import require

__all__ = ["cosine_topk", "cosine_range", "l2_normalize", "EmbeddingIndex", "COSINE_BACKENDS"]

COSINE_BACKENDS = ("auto", "numpy", "faiss", "hnsw")
_CHUNK = 64  # columns per chunk in the two-stage top-k
_BLOCK_BYTES = 128 * 2**20  # budget for one block of similarities


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return ``x`` as C-contiguous float32 with unit-norm rows (zero rows stay zero)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise InputError(f"x must be 2-D (n, dim), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return x / norms


def _matrix(x, name: str, dim: int | None = None) -> np.ndarray:
    if not hasattr(x, "shape") and not isinstance(x, (list, tuple)):
        raise InputTypeError(f"{name} must be a 2-D array of vectors, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise InputError(f"{name} must be 2-D (n, dim), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise InputTypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise InputError(
            f"{name} has dimension {arr.shape[1]} but the other matrix has {dim}; "
            "embed both with the same model"
        )
    if arr.size and not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return l2_normalize(arr)


def _check_backend(backend: str) -> None:
    if not isinstance(backend, str) or backend not in COSINE_BACKENDS:
        raise InputError(f"backend must be one of {COSINE_BACKENDS}, got {backend!r}")


def _pick_backend(backend: str, n_query: int, n_base: int) -> str:
    _check_backend(backend)
    if backend == "auto":
        return "numpy"
    if backend in ("faiss", "hnsw"):
        require("faiss", purpose=f"backend={backend!r}")
    return backend


def _block_rows(block: int | None, n_base: int) -> int:
    if block is None:
        return int(max(1, min(4096, _BLOCK_BYTES // (4 * max(n_base, 1)))))
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)):
        raise InputTypeError(f"block must be a positive int (query rows per block) or None, got {block!r}")
    if block < 1:
        raise InputError(f"block must be >= 1 (query rows per block), got {block}")
    return int(block)


def _sort_desc(sims: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # descending similarity, ties broken by the smaller base index (deterministic)
    order = np.lexsort((idx, -sims), axis=1) if sims.size else np.zeros(sims.shape, np.intp)
    return np.take_along_axis(sims, order, 1), np.take_along_axis(idx, order, 1)


def _topk_block(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row of ``sims`` (rows, B), unsorted."""
    n_rows, n_base = sims.shape
    if k * _CHUNK * 2 >= n_base:
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return np.take_along_axis(sims, idx, 1), idx
    # Two-stage: any true top-k value lives in one of the k chunks with the largest maxima.
    n_full = n_base // _CHUNK
    chunk_max = sims[:, : n_full * _CHUNK].reshape(n_rows, n_full, _CHUNK).max(axis=2)
    if n_full * _CHUNK < n_base:
        chunk_max = np.concatenate([chunk_max, sims[:, n_full * _CHUNK :].max(axis=1, keepdims=True)], 1)
    best_chunks = np.argpartition(-chunk_max, k - 1, axis=1)[:, :k]
    cols = (best_chunks[:, :, None] * _CHUNK + np.arange(_CHUNK)).reshape(n_rows, -1)
    valid = cols < n_base
    cols = np.minimum(cols, n_base - 1)
    cand = np.take_along_axis(sims, cols, 1)
    cand[~valid] = -np.inf
    pick = np.argpartition(-cand, k - 1, axis=1)[:, :k]
    return np.take_along_axis(cand, pick, 1), np.take_along_axis(cols, pick, 1)


def _faiss_index(base: np.ndarray, backend: str, hnsw_m: int = 32):
    faiss = require("faiss", purpose="fast nearest-neighbour search")
    if backend == "hnsw":
        index = faiss.IndexHNSWFlat(base.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(base.shape[1])
    if len(base):
        index.add(base)
    return index


def cosine_topk(
    queries,
    base,
    k: int,
    *,
    block: int | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar ``base`` rows for every query row.

    Parameters
    ----------
    queries : array-like, shape (Q, D)
    base : array-like, shape (B, D)
    k : int
        Neighbours per query; clipped to ``B`` when the base is smaller.
    block : int, optional
        Query rows per block; by default chosen so one block of similarities
        takes about 128 MiB.
    backend : {"auto", "numpy", "faiss", "hnsw"}
        ``"hnsw"`` is approximate; all others are exact.

    Returns
    -------
    sims : ndarray, float32, shape (Q, min(k, B))
        Cosine similarities, best first.
    idx : ndarray, int64, shape (Q, min(k, B))
        Row numbers in ``base``; ties are broken by the smaller index.

    Examples
    --------
    >>> base = np.eye(3, dtype=np.float32)
    >>> sims, idx = cosine_topk(base[[2]], base, 2, backend="numpy")
    >>> idx.tolist(), sims[0, 0].item()
    ([[2, 0]], 1.0)
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise InputTypeError(f"k must be a positive int, got {k!r}")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    q = _matrix(queries, "queries")
    b = _matrix(base, "base", dim=q.shape[1])
    k = int(min(k, len(b)))
    if k == 0 or len(q) == 0:
        return np.zeros((len(q), k), np.float32), np.zeros((len(q), k), np.int64)
    rows = _block_rows(block, len(b))
    chosen = _pick_backend(backend, len(q), len(b))
    sims_out = np.empty((len(q), k), np.float32)
    idx_out = np.empty((len(q), k), np.int64)
    if chosen == "numpy":
        for start in range(0, len(q), rows):
            sims = q[start : start + rows] @ b.T
            top_s, top_i = _topk_block(sims, k)
            sims_out[start : start + rows] = top_s
            idx_out[start : start + rows] = top_i
    else:
        index = _faiss_index(b, chosen)
        for start in range(0, len(q), max(rows, 1024)):
            top_s, top_i = index.search(q[start : start + max(rows, 1024)], k)
            sims_out[start : start + len(top_s)] = top_s
            idx_out[start : start + len(top_s)] = top_i
    return _sort_desc(sims_out, idx_out)


def cosine_range(
    queries,
    base,
    threshold: float,
    *,
    block: int | None = None,
    backend: str = "auto",
    exclude_self: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query, base) pair whose cosine similarity is >= ``threshold``.

    Parameters
    ----------
    queries, base : array-like, shapes (Q, D) and (B, D)
    threshold : float
        In [-1, 1]; duplicates of photos typically score above 0.9.
    block : int, optional
        Query rows per block (see :func:`cosine_topk`).
    backend : {"auto", "numpy", "faiss"}
        Both are exact; ``"hnsw"`` has no range search and is rejected.
    exclude_self : bool
        Drop pairs ``i == j``; for searching a matrix against itself.

    Returns
    -------
    query_idx, base_idx : ndarray int64
    sim : ndarray float32
        Sorted by query index, then by descending similarity.

    Examples
    --------
    >>> x = np.array([[1, 0], [1, 0.1], [0, 1]], dtype=np.float32)
    >>> qi, bi, s = cosine_range(x, x, 0.99, exclude_self=True, backend="numpy")
    >>> qi.tolist(), bi.tolist()
    ([0, 1], [1, 0])
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
        raise InputTypeError(f"threshold must be a float in [-1, 1], got {threshold!r}")
    if not -1.0 <= float(threshold) <= 1.0:
        raise InputError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
    if backend == "hnsw":
        raise InputError("backend='hnsw' has no range search; use 'numpy', 'faiss' or 'auto'")
    q = _matrix(queries, "queries")
    b = _matrix(base, "base", dim=q.shape[1])
    if exclude_self and len(q) != len(b):
        raise InputError(
            f"exclude_self=True needs queries and base to be the same matrix, got {len(q)} and {len(b)} rows"
        )
    rows = _block_rows(block, len(b))
    chosen = _pick_backend(backend, len(q), len(b))
    parts_q, parts_b, parts_s = [], [], []
    if len(q) and len(b):
        if chosen == "numpy":
            for start in range(0, len(q), rows):
                sims = q[start : start + rows] @ b.T
                qi, bi = np.nonzero(sims >= threshold)
                parts_q.append(qi + start)
                parts_b.append(bi)
                parts_s.append(sims[qi, bi])
        else:
            index = _faiss_index(b, "faiss")
            # faiss keeps sim > radius; widen a hair and filter to get ">=" as numpy does
            radius = float(np.nextafter(np.float32(threshold), np.float32(-2)))
            for start in range(0, len(q), max(rows, 1024)):
                lims, sims, ids = index.range_search(q[start : start + max(rows, 1024)], radius)
                qi = np.repeat(np.arange(len(lims) - 1), np.diff(lims.astype(np.int64)))
                keep = sims >= threshold
                parts_q.append(qi[keep] + start)
                parts_b.append(ids[keep])
                parts_s.append(sims[keep])
    if not parts_q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    query_idx = np.concatenate(parts_q).astype(np.int64)
    base_idx = np.concatenate(parts_b).astype(np.int64)
    sim = np.concatenate(parts_s).astype(np.float32)
    if exclude_self:
        keep = query_idx != base_idx
        query_idx, base_idx, sim = query_idx[keep], base_idx[keep], sim[keep]
    order = np.lexsort((base_idx, -sim, query_idx))
    return query_idx[order], base_idx[order], sim[order]


class EmbeddingIndex:
    """A saved set of base embeddings (e.g. the training split) to query later.

    Parameters
    ----------
    vectors : array-like, shape (B, D)
    ids : sequence of str, optional
        One id per row (e.g. relative image paths); defaults to row numbers.
    model_id, input_size : optional
        What produced the vectors; :meth:`check_compatible` compares them.
    backend : {"auto", "numpy", "faiss", "hnsw"}
        Search backend; ``"hnsw"`` builds an approximate graph once and saves it.

    Examples
    --------
    >>> index = EmbeddingIndex(np.eye(4), ids=list("abcd"), model_id="toy")
    >>> sims, idx = index.search(np.eye(4)[[1]], 1)
    >>> index.ids[idx[0, 0]]
    'b'
    """

    def __init__(self, vectors, *, ids: Sequence[str] | None = None, model_id: str | None = None,
                 input_size: int | None = None, backend: str = "auto") -> None:
        _check_backend(backend)
        self.vectors = _matrix(vectors, "vectors")
        if ids is None:
            ids = [str(i) for i in range(len(self.vectors))]
        ids = [str(i) for i in ids]
        if len(ids) != len(self.vectors):
            raise InputError(f"ids must have one entry per vector ({len(self.vectors)}), got {len(ids)}")
        self.ids = ids
        self.model_id = model_id
        self.input_size = input_size
        self.backend = backend
        self._ann = _faiss_index(self.vectors, "hnsw") if backend == "hnsw" else None

    def __len__(self) -> int:
        return len(self.vectors)

    def __repr__(self) -> str:
        return (f"EmbeddingIndex(n={len(self)}, dim={self.vectors.shape[1]}, "
                f"model_id={self.model_id!r}, backend={self.backend!r})")

    def check_compatible(self, model_id: str | None, input_size: int | None = None) -> None:
        """Raise ValueError when query vectors come from another model or input size."""
        if self.model_id is not None and model_id is not None and model_id != self.model_id:
            raise InputError(f"index was built with model {self.model_id!r}, queries come from {model_id!r}")
        if self.input_size is not None and input_size is not None and input_size != self.input_size:
            raise InputError(f"index was built at input_size={self.input_size}, queries use {input_size}")

    def search(self, queries, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` neighbours of each query (see :func:`cosine_topk`)."""
        if self._ann is None:
            return cosine_topk(queries, self.vectors, k, backend=self.backend)
        q = _matrix(queries, "queries", dim=self.vectors.shape[1])
        sims, idx = self._ann.search(q, int(min(k, len(self))))
        return sims.astype(np.float32), idx.astype(np.int64)

    def range(self, queries, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All pairs with cosine >= ``threshold`` (exact, see :func:`cosine_range`)."""
        backend = "auto" if self.backend == "hnsw" else self.backend
        return cosine_range(queries, self.vectors, threshold, backend=backend)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index to directory ``path`` (created); returns the path."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "vectors.npy", self.vectors)
        meta = {"format": 1, "ids": self.ids, "model_id": self.model_id,
                "input_size": self.input_size, "backend": self.backend}
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if self._ann is not None:
            require("faiss").write_index(self._ann, str(folder / "index.faiss"))
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EmbeddingIndex":
        """Read an index written by :meth:`save`."""
        folder = Path(path)
        if not (folder / "meta.json").is_file():
            raise InputError(f"path must be a folder written by EmbeddingIndex.save, got {str(folder)!r}")
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        self = cls.__new__(cls)
        self.vectors = np.load(folder / "vectors.npy")
        self.ids = list(meta["ids"])
        self.model_id = meta.get("model_id")
        self.input_size = meta.get("input_size")
        self.backend = meta.get("backend", "auto")
        ann_file = folder / "index.faiss"
        self._ann = require("faiss").read_index(str(ann_file)) if ann_file.is_file() else None
        return self
