"""Flip-aware range search on intensity-normalised thumbnails.

:func:`thumb_vectors` turns 32x32 thumbnails into unit rows whose inner
product is the Pearson correlation of two thumbnails; :func:`mirror_split` /
:func:`mirror_project` write them in a basis of mirror-symmetric and
antisymmetric parts, so one pair of half-size products scores a pair both as
is and mirrored; :func:`mirror_range` returns every pair within a per-image
distance in blocks, so memory stays bounded and nothing loops over pairs in
Python.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["mirror_project", "mirror_range", "mirror_split", "thumb_vectors"]


def thumb_vectors(thumbs: np.ndarray, size: int = 16, *, return_std: bool = False):
    """Pool (N, 32, 32) thumbnails to ``size``², remove each row's mean and
    scale to unit norm, so an inner product is the Pearson correlation of two
    thumbnails (invariant to brightness and contrast).

    Flat images (zero variance) get a zero vector. With ``return_std``, also
    return each pooled thumbnail's standard deviation (grey levels).
    """
    t = np.asarray(thumbs)
    n, h, w = t.shape
    if h % size or w % size:
        raise InputError(f"thumbnail size {h}x{w} is not a multiple of size={size}")
    fy, fx = h // size, w // size
    if t.dtype == np.uint8 and fy * fx <= 256:  # integer block sums: no float copy of the full thumbnails
        # One strided add per offset in the block (4 for 32 -> 16): ~8x faster than a reshaped sum.
        acc = t[:, 0::fy, 0::fx].astype(np.uint16)
        for dy in range(fy):
            for dx in range(fx):
                if dy or dx:
                    acc += t[:, dy::fy, dx::fx]
        t = acc.reshape(n, -1).astype(np.float32) * np.float32(1.0 / (fy * fx))
    else:
        t = t.astype(np.float32).reshape(n, size, fy, size, fx).mean(axis=(2, 4)).reshape(n, -1)
    t -= t.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", t, t))
    scale = np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 1e-6)
    out = t * scale[:, None]  # flat rows (norm ~ 0) become zero vectors
    if return_std:
        return out, norm / np.sqrt(t.shape[1])
    return out


_SQRT_HALF = np.float32(np.sqrt(0.5))


def mirror_split(pooled: np.ndarray, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of flattened ``size``² images in an orthonormal basis of
    mirror-symmetric and mirror-antisymmetric images (left-right mirror).

    Mirroring leaves the symmetric part unchanged and negates the
    antisymmetric one, so ``<x, mirror(y)> = <xs, ys> - <xa, ya>`` while
    ``<x, y> = <xs, ys> + <xa, ya>``: both orientations come from the same
    two half-size products.
    """
    x = np.asarray(pooled, dtype=np.float32).reshape(len(pooled), size, size)
    half = size // 2
    left, right = x[:, :, :half], x[:, :, ::-1][:, :, :half]
    sym = ((left + right) * _SQRT_HALF).reshape(len(x), -1)
    anti = ((left - right) * _SQRT_HALF).reshape(len(x), -1)
    return sym, anti


def mirror_project(
    pooled: np.ndarray, dims: int, *, fit_rows: int = 5_000, seed: int = 0, size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Project rows onto their top ``dims`` principal axes of the
    mirror-augmented data (each row and its mirror), keeping symmetric and
    antisymmetric axes apart.

    Returns ``(sym (N, ds), anti (N, da))`` with ``ds + da = dims``. The
    projection is orthogonal, so projected distances never exceed true ones
    (as is, or against the mirror: ``mirror(y) -> (ys, -ya)``).
    """
    sym, anti = mirror_split(pooled, size)
    dims = int(min(dims, sym.shape[1] + anti.shape[1]))
    rng = np.random.default_rng(seed)
    rows = np.arange(len(sym)) if len(sym) <= fit_rows else rng.choice(len(sym), fit_rows, replace=False)
    vals, vecs = [], []
    for part in (sym, anti):
        s = part[rows].astype(np.float64)
        s -= s.mean(0) if part is sym else 0.0  # the mirror-augmented mean is symmetric
        w, v = np.linalg.eigh(s.T @ s)
        vals.append(w); vecs.append(v)
    # Largest eigenvalues over both subspaces.
    which = np.concatenate([np.zeros(len(vals[0]), int), np.ones(len(vals[1]), int)])
    order = np.argsort(-np.concatenate(vals), kind="stable")[:dims]
    # Keep each subspace's chosen axes in order of decreasing variance: mirror_range's coarse bound
    # uses the leading symmetric axes, so they must be the informative ones (eigh sorts ascending).
    local = np.concatenate([np.arange(len(vals[0])), np.arange(len(vals[1]))])[order]
    cols = [local[which[order] == k] for k in (0, 1)]
    return (np.ascontiguousarray(sym @ vecs[0][:, cols[0]].astype(np.float32)),
            np.ascontiguousarray(anti @ vecs[1][:, cols[1]].astype(np.float32)))


def _band_order(t: np.ndarray, lead: np.ndarray | None, rows: int) -> np.ndarray:
    """Row order: by threshold, then by ``lead`` inside consecutive bands of ``rows`` rows."""
    order = np.argsort(t, kind="stable")
    if lead is None:
        return order
    band = np.arange(len(order)) // max(1, rows)
    return order[np.lexsort((lead[order], band))]


def _block_stats(coords: np.ndarray, t: np.ndarray, block: int):
    """Per block of rows: min and max of the leading axis, largest threshold."""
    starts = np.arange(0, len(t), block)
    lead = coords[:, 0] if coords.shape[1] else np.zeros(len(t), np.float32)
    return (np.minimum.reduceat(lead, starts), np.maximum.reduceat(lead, starts),
            np.maximum.reduceat(t, starts))


def mirror_range(
    q: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    max_d2,
    *,
    same: bool = False,
    block: int = 512,
    band: int = 16,
    coarse: int | None = None,
    jobs: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs whose squared distance, as is or with ``b`` mirrored, is at
    most a threshold, from :func:`mirror_project` coordinates.

    Parameters
    ----------
    q, b : (sym, anti) pairs of float32 arrays
        Query and base coordinates.
    max_d2 : float or (array (Q,), array (B,))
        Threshold on the squared distance; given per row as two arrays, a
        pair's threshold is the larger of its two rows' values.
    same : bool
        ``q`` is ``b``: search the upper triangle only (``qi < bi``).
    block : int
        Rows and columns per block (memory ~ 2 * block² * 4 bytes per job).
    band : int
        Blocks per threshold band; inside a band rows are ordered by the
        leading symmetric axis so distant block pairs are skipped.
    coarse : int, optional
        Leading symmetric axes in the blocked bound (the rest enters by its
        norm); default all of them. :func:`mirror_project` returns axes in
        order of decreasing variance, so a small ``coarse`` keeps the
        informative ones; on Fashion-MNIST (60k within-train, 43 symmetric
        axes) 16 or 24 axes cost the same CPU as all of them and 8 costs 1.4x.
    jobs : int
        Threads over blocks (BLAS runs single-threaded inside each).

    Returns
    -------
    qi, bi : int64 arrays
    d2 : float32 array
        Squared distance in the better orientation.

    Notes
    -----
    With ``x = (xs, xa)``, the better orientation's squared distance is
    ``|xs - ys|² + |xa|² + |ya|² - 2 |<xa, ya>|``. Splitting ``x`` into its
    first ``coarse`` symmetric axes ``xc`` and the rest ``xr``, it is at
    least ``|xc - yc|² + (|xr| - |yr|)²`` (the mirror is orthogonal). That
    bound is one thin GEMM (norms folded in as extra columns) compared with
    one scalar per block (rows are sorted by threshold so it is tight); only
    pairs under it get the exact distance. Memory stays at a few blocks.
    """
    qs, qa = (np.ascontiguousarray(v, dtype=np.float32) for v in q)
    bs, ba = (np.ascontiguousarray(v, dtype=np.float32) for v in b)
    nq, nb = len(qs), len(bs)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if nq == 0 or nb == 0:
        return empty
    tq, tb = _thresholds(max_d2, nq, nb)
    # Rows sorted by threshold (a block's largest threshold stays close to its rows'), then inside
    # bands of `band` blocks by the leading axis, so blocks are narrow along it and far block pairs
    # are skipped whole: |x - y|² >= (x0 - y0)² >= the gap between the blocks' intervals.
    oq = _band_order(tq, qs[:, 0] if qs.shape[1] else None, block * band)
    ob = oq if same else _band_order(tb, bs[:, 0] if bs.shape[1] else None, block * band)
    qs, qa, tq = qs[oq], qa[oq], tq[oq]
    bs, ba, tb = bs[ob], ba[ob], tb[ob]
    q_lo, q_hi, q_t = _block_stats(qs, tq, block)
    b_lo, b_hi, b_t = _block_stats(bs, tb, block)
    lq, rb = _bound_factors(qs, qa, bs, ba, coarse)
    nqa, nba = (qa * qa).sum(1), (ba * ba).sum(1)

    def run(task):
        r0, r1, c0, c1 = task
        bound = lq[r0:r1] @ rb[:, c0:c1]
        limit = max(q_t[r0 // block], b_t[c0 // block])
        if same and r0 == c0:
            bound[np.tril_indices(r1 - r0, 0, c1 - c0)] = np.inf
        # flatnonzero + divmod: 2-D np.nonzero is ~10x slower and was most of the search time.
        r, c = np.divmod(np.flatnonzero(bound <= limit), c1 - c0)
        r += r0
        c += c0
        diff = qs[r] - bs[c]
        d2 = (np.einsum("ij,ij->i", diff, diff) + nqa[r] + nba[c]
              - 2 * np.abs(np.einsum("ij,ij->i", qa[r], ba[c])))
        keep = d2 <= np.maximum(tq[r], tb[c])
        return r[keep], c[keep], d2[keep]

    gap = np.maximum(0, np.maximum(b_lo[None, :] - q_hi[:, None], q_lo[:, None] - b_hi[None, :]))
    near = gap * gap <= np.maximum(q_t[:, None], b_t[None, :])
    tasks = [(i * block, min(nq, (i + 1) * block), j * block, min(nb, (j + 1) * block))
             for i, j in zip(*np.nonzero(np.triu(near) if same else near))]
    if not tasks:
        return empty
    parts = _map_blocks(run, tasks, jobs)
    qi = oq[np.concatenate([p[0] for p in parts])].astype(np.int64)
    bi = ob[np.concatenate([p[1] for p in parts])].astype(np.int64)
    d2 = np.maximum(np.concatenate([p[2] for p in parts]), 0).astype(np.float32)
    if same:  # sorting reordered the rows: restore qi < bi
        qi, bi = np.minimum(qi, bi), np.maximum(qi, bi)
    return qi, bi, d2


def _thresholds(max_d2, nq: int, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row float32 thresholds of the queries and the base from a scalar or two arrays."""
    if isinstance(max_d2, tuple):
        tq, tb = (np.asarray(t, np.float32).ravel() for t in max_d2)
    else:
        tq, tb = np.full(nq, max_d2, np.float32), np.full(nb, max_d2, np.float32)
    if len(tq) != nq or len(tb) != nb:
        raise InputError(f"max_d2 arrays must have {nq} and {nb} values; got {len(tq)} and {len(tb)}")
    return tq, tb


def _bound_factors(qs, qa, bs, ba, coarse: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(lq, rb)`` with ``lq @ rb`` the lower bound of :func:`mirror_range`'s Notes: the first
    ``coarse`` symmetric axes exactly, the rest (mirror-affected or not) by its norm only."""
    nq, nb = len(qs), len(bs)
    k = qs.shape[1] if coarse is None else int(min(max(coarse, 1), qs.shape[1]))
    rq = np.sqrt((qs[:, k:] ** 2).sum(1) + (qa * qa).sum(1))
    rbn = np.sqrt((bs[:, k:] ** 2).sum(1) + (ba * ba).sum(1))
    lq = np.hstack([-2 * qs[:, :k], ((qs[:, :k] ** 2).sum(1) + rq * rq)[:, None],
                    np.ones((nq, 1), np.float32), -2 * rq[:, None]])
    rb = np.ascontiguousarray(np.hstack([bs[:, :k], np.ones((nb, 1), np.float32),
                                         ((bs[:, :k] ** 2).sum(1) + rbn * rbn)[:, None], rbn[:, None]]).T)
    return lq, rb


def _map_blocks(run, tasks: list, jobs: int) -> list:
    """``run`` over the block tasks in order, on ``jobs`` threads with single-threaded BLAS."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits  # ships with scikit-learn, a core dependency

    jobs = max(1, int(jobs))
    if jobs > 1:
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(run, tasks))
    return [run(t) for t in tasks]
