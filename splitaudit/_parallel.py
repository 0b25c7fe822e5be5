"""Ordered parallel map over chunks, with a progress callback; an ordered thread map; and a
map over forked workers that share one large read-only object.

``jobs=1`` is a plain loop in this process (easy to debug); ``jobs>1`` uses a
``multiprocessing`` pool (fork where available) over chunks and puts results
back in input order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from ._types import Progress
from ._validate import check_int

T = TypeVar("T")
R = TypeVar("R")


def resolve_jobs(jobs: int | None) -> int:
    """Turn ``None``/``0``/``-1`` into the number of usable cores; a non-int is an InputTypeError."""
    if jobs is not None:
        jobs = check_int("jobs", jobs)
    if jobs is None or jobs <= 0:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - non-Linux
            return max(1, os.cpu_count() or 1)
    return int(jobs)


def _context():
    """``fork`` where it is safe, else ``forkserver`` / ``spawn``.

    A fork copies a process with one thread; thread pools that native libraries
    started in this process are copied half-alive, and a worker that touches
    them waits forever. splitaudit keeps OpenCV's pool off (:func:`opencv`),
    but the caller may have started it: then the workers come from a clean
    server process instead.
    """
    methods = mp.get_all_start_methods()
    if "fork" not in methods:
        return mp.get_context("spawn")
    cv2 = sys.modules.get("cv2")
    if cv2 is not None and getattr(cv2, "getNumThreads", lambda: 1)() != 1:
        return mp.get_context("forkserver" if "forkserver" in methods else "spawn")
    return mp.get_context("fork")


def _chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _init_worker() -> None:
    # BLAS/OpenMP threads would fight the pool for the same cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # pragma: no cover - threadpoolctl optional
        pass


def ordered_map(
    fn: Callable[[Sequence[T]], list[R]],
    items: Sequence[T],
    *,
    jobs: int | None = 1,
    chunksize: int = 256,
    progress: Progress | None = None,
    stage: str = "",
    client: object | None = None,
) -> list[R]:
    """Apply ``fn`` (which takes a chunk and returns one result per item) to
    ``items`` in chunks and return the flat results in input order.

    With a dask ``distributed.Client`` as ``client`` the chunks run on its
    workers (which must be able to import splitaudit and read the paths);
    otherwise ``jobs`` local processes are used.

    Examples
    --------
    >>> ordered_map(lambda xs: [x * 2 for x in xs], [1, 2, 3], chunksize=2)
    [2, 4, 6]
    """
    total = len(items)
    jobs = resolve_jobs(jobs)
    out: list[R] = []
    if progress:
        progress(stage, 0, total)
    chunks = _chunks(items, max(1, chunksize))
    if client is not None:
        return _dask_map(fn, chunks, client, total=total, progress=progress, stage=stage)
    if jobs == 1 or len(chunks) <= 1:
        for chunk in chunks:
            out.extend(fn(chunk))
            if progress:
                progress(stage, len(out), total)
        return out
    with _context().Pool(processes=jobs, initializer=_init_worker) as pool:
        for result in pool.imap(fn, chunks):
            out.extend(result)
            if progress:
                progress(stage, len(out), total)
    return out


def iter_map(fn: Callable[[T], R], items: Sequence[T], *, jobs: int | None = 1) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in input order.

    With ``jobs > 1`` a process pool computes ahead while the caller works on
    the results it has (e.g. writes them to a cache), instead of idling at
    batch boundaries. Closing the generator early terminates the pool.

    Examples
    --------
    >>> list(iter_map(abs, [-1, 2, -3]))
    [1, 2, 3]
    """
    jobs = resolve_jobs(jobs)
    if jobs == 1 or len(items) <= 1:
        for item in items:
            yield fn(item)
        return
    with _context().Pool(processes=jobs, initializer=_init_worker) as pool:
        yield from pool.imap(fn, items)


def _dask_map(fn, chunks, client, *, total: int, progress: Progress | None, stage: str) -> list:
    """Submit one task per chunk; gather results in input order, reporting progress."""
    from distributed import as_completed

    futures = client.map(fn, chunks, pure=False)
    index_of = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(chunks)
    done = 0
    for future in as_completed(futures):
        i = index_of[future.key]
        results[i] = future.result()
        done += len(chunks[i])
        if progress:
            progress(stage, done, total)
    return [item for chunk in results for item in chunk]


def thread_map(fn: Callable[[T], R], items: Sequence[T], jobs: int = 1) -> list[R]:
    """``[fn(item) for item in items]`` over ``jobs`` threads, in input order.

    For work that releases the GIL (numpy, OpenCV, faiss); a plain loop when
    ``jobs <= 1`` or there is one item.

    Examples
    --------
    >>> thread_map(abs, [-1, 2, -3], jobs=2)
    [1, 2, 3]
    """
    if jobs <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(min(jobs, len(items))) as pool:
        return list(pool.map(fn, items))


_SHARED: object = None


def shared() -> object:
    """In a :func:`forked_map` worker (or its in-process fallback): the object it shares."""
    return _SHARED


def forked_map(fn: Callable[[T], list[R]], chunks: Sequence[T], share: object, jobs: int = 1) -> list[R]:
    """``[r for chunk in chunks for r in fn(chunk)]`` over ``jobs`` forked processes, in order.

    ``fn`` reads ``share`` through :func:`shared` instead of receiving it, so a large
    read-only object (keypoint descriptors: hundreds of MB) reaches the workers by
    ``fork``'s copy-on-write, never pickled. For per-item Python work that holds the GIL,
    where :func:`thread_map` gains nothing. Where ``fork`` is not safe (see
    :func:`_context`) or ``jobs <= 1``, the chunks run in this process.

    Examples
    --------
    >>> forked_map(lambda xs: [x + shared() for x in xs], [[1, 2], [3]], 10)
    [11, 12, 13]
    """
    global _SHARED
    _SHARED = share
    try:
        context = _context()
        if jobs <= 1 or len(chunks) <= 1 or context.get_start_method() != "fork":
            return [r for chunk in chunks for r in fn(chunk)]
        with context.Pool(processes=min(jobs, len(chunks)), initializer=_init_worker) as pool:
            return [r for part in pool.imap(fn, chunks) for r in part]
    finally:
        _SHARED = None
