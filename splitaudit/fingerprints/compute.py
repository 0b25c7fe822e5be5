"""compute_fingerprints: one decode per image, everything else batched per chunk.

The paths are cut into chunks; each chunk is fingerprinted in a worker
process (:mod:`.chunk`: one read and one decode per file, then batched
resizes, hashes, descriptors and properties) and comes back as columns,
which are put back in input order here. Unchanged files can come from a
cache (:mod:`.cache`) instead.

Modes
-----
``"exact"``
    The hash inputs are made exactly as imagehash makes them, from the full
    decode: ``frame.convert("L").resize(size, LANCZOS)``. pHash/dHash/aHash
    equal ``imagehash.xhash(Image.open(path))`` bit for bit for every file
    without an EXIF orientation tag (here the image is rotated upright first;
    imagehash ignores the tag). Alpha is ignored by these hashes, as in
    imagehash; the descriptor and properties use the composited image.
``"fast"`` (default)
    JPEGs are decoded with DCT scaling to at least 48 px a side, other formats
    are box-reduced to at least 96 px a side before the LANCZOS resize; hashes
    come from the normalised image (alpha composited on white). About 3x
    faster on photos; hashes differ from imagehash by a few bits at most
    (see :mod:`splitaudit.fingerprints.hashes`). Never compare hashes of
    different modes: the mode is part of the cache key and of ``Fingerprints``.

``pixel_sha1`` is the SHA-1 of the full-resolution decoded, normalised pixels
plus their mode and size (:func:`splitaudit.imageio.pixel_digest`), so equal
values mean identical pixels whatever the file format, and the value does not
depend on the mode: a JPEG and a lossless re-save of its pixels match in both.
Fast mode pays for it where its decode is reduced: a JPEG is decoded a second
time at full size, other formats hash the frame before the box reduction
(measured on 300 generated 256-px q90 JPEGs: see ``README.md``, output contract).
``bytes_sha1`` is the SHA-1 of the file's bytes and is filled in even when the
bytes do not decode.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from operator import itemgetter
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from .._parallel import iter_map, ordered_map, resolve_jobs
from .._validate import check_choice, check_int, fail
from ..errors import InputTypeError
from ..dataset import ImageSplit, display_path
from ..imageio import DEFAULT_MAX_PIXELS
from . import hashes as _hashes
from .chunk import (
    HASH_COLUMNS,
    ChunkResult,
    fingerprint_chunk,
    fingerprint_chunks,
    fingerprint_columns,
)
from .descriptor import DESCRIPTOR_DIM
from .local import NO_FEATURES, LocalFeatures, unpack
from .properties import PIXEL_COLUMNS

__all__ = ["Fingerprints", "compute_fingerprints", "MODES", "ALGORITHM_VERSION", "TABLE_COLUMNS"]

MODES = ("fast", "exact")
ALGORITHM_VERSION = "fp9"
"""Bump when any fingerprint would change for the same file (part of the cache key).

fp3: sharpness and colourfulness from exact integer sums (differ from fp2 in
the last bit, <= 4e-16 relative); P / 1 / I;16 images >= 128 px, which fp2's
fast mode reported unreadable, now decode.

fp4: fast mode decodes to at least 48 px a side (was 32), so the final LANCZOS
resize still anti-aliases: a 256-px JPEG was DCT-scaled straight to 32 px, whose
softer thumbnails gave 10 false near pairs instead of exact mode's 2 on
upscaled Fashion-MNIST (``benchmarks/results_fingerprints.md``).

fp6: ``pixel_sha1`` is the digest of the full-resolution pixels in fast mode
too (was the reduced decode's), so ``exact_pixels`` means the same in both modes.

fp7: no keypoints for images under 48 px on the short side
(:data:`~splitaudit.fingerprints.local.MIN_NATIVE_SIDE`).

fp8: keypoints from 32 px on the short side (was 48): a downscaled copy of 32-47 px
keeps its keypoints.

fp9: a low-texture image under 128 keypoints fills its budget with weaker corners
(:data:`~splitaudit.fingerprints.local.WEAK_FAST_THRESHOLD`); keypoints are stored in spread
order (ORB's descriptor step had regrouped them by pyramid level, so the first 64, which
search inside a split, were the finest level's, not one per grid cell first)."""

TABLE_COLUMNS = (
    "path", "ok", "reason", "bytes_sha1", "pixel_sha1", *HASH_COLUMNS,
    "width", "height", "aspect", "file_size", "format", "mode", *PIXEL_COLUMNS, "jpeg_quality",
)
# Worker-side names, kept importable from here.
_WORKER_API = (ChunkResult, fingerprint_chunk, fingerprint_columns)


@dataclass(frozen=True)
class Fingerprints:
    """Per-image fingerprints, one row per input image, in input order.

    Attributes
    ----------
    table : pandas.DataFrame
        Columns ``TABLE_COLUMNS`` (plus ``whash`` when asked for); hash columns
        are ``uint64`` (0 for unreadable rows).
    thumbs : ndarray of uint8, shape (n, 32, 32)
        Gray thumbnails (the pHash input), zeros for unreadable rows.
    descriptor : ndarray of float32, shape (n, 512)
        L2-normalised descriptors, zeros for unreadable rows.
    mode : str
        ``"fast"`` or ``"exact"``.
    stats : dict
        ``total``, ``computed``, ``cached``, ``unreadable``, ``seconds``, and
        ``notes``: sentences about the cache (a damaged cache set aside,
        records recomputed because they were malformed or stale).
    local : LocalFeatures or None
        ORB keypoints per image (:mod:`splitaudit.fingerprints.local`), the
        copy-detection input; ``None`` for fingerprints made without them.
    """

    table: pd.DataFrame
    thumbs: np.ndarray
    descriptor: np.ndarray
    mode: str
    stats: dict = field(default_factory=dict)
    local: LocalFeatures | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.table)

    def hash(self, column: str, index: int) -> _hashes.Hash64:
        """The hash in ``column`` of row ``index`` as a :class:`Hash64`."""
        return _hashes.Hash64(int(self.table[column].iloc[index]))

    def to_frame(self) -> pd.DataFrame:
        """A copy of the per-image table (hashes as ``uint64``)."""
        return self.table.copy()

    def to_json(self) -> str:
        """The table as JSON records, hashes as 16-digit hex strings."""
        frame = self.table.copy()
        for column in [c for c in (*HASH_COLUMNS, "whash") if c in frame]:
            frame[column] = [f"{int(v):016x}" for v in frame[column]]
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        return json.dumps({"mode": self.mode, "stats": self.stats, "images": records})


_INT_COLUMNS = ("width", "height", "file_size")
_FLOAT_COLUMNS = ("aspect", *PIXEL_COLUMNS, "jpeg_quality")


def _resolve_paths(split_or_paths) -> tuple[list[str], list[str], list[str]]:
    """(display paths, absolute paths, roots that must not hold the cache)."""
    if isinstance(split_or_paths, ImageSplit):
        images = split_or_paths.images
        abspaths = [str(p) for p in images["abspath"]]
        return [str(p) for p in images["path"]], abspaths, [str(split_or_paths.root)]
    if isinstance(split_or_paths, (str, bytes, os.PathLike)) or not hasattr(split_or_paths, "__iter__"):
        fail("split_or_paths", "an ImageSplit or a list of image paths", type(split_or_paths).__name__,
             kind=InputTypeError)
    abspaths = [os.path.abspath(os.fspath(p)) for p in split_or_paths]
    return [display_path(p) for p in abspaths], abspaths, []


def _check_options(mode: str, chunksize: int, progress) -> None:
    check_choice("mode", mode, MODES)
    check_int("chunksize", chunksize, low=1)
    if progress is not None and not callable(progress):
        fail("progress", "callable(stage, done, total) or None", type(progress).__name__, kind=InputTypeError)


#: Smallest number of images per dask task (``compute_fingerprints(client=...)``).
DASK_MIN_CHUNKSIZE = 512
#: Seconds after which computed records are committed to the cache even when fewer than a batch.
COMMIT_SECONDS = 5.0


def compute_fingerprints(
    split_or_paths: ImageSplit | Sequence[str | os.PathLike],
    *,
    mode: str = "fast",
    jobs: int | None = None,
    cache: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    chunksize: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    whash: bool = False,
    client: Any = None,
) -> Fingerprints:
    """Fingerprint every image of a split (or a list of paths), in input order.

    Parameters
    ----------
    split_or_paths : ImageSplit or sequence of paths
        What to fingerprint; rows follow ``split.images`` (or the list) order.
    mode : {"fast", "exact"}, default "fast"
        ``"exact"`` reproduces imagehash bit for bit; ``"fast"`` decodes at
        reduced resolution (see the module docstring).
    jobs : int, optional
        Worker processes (``None``: all cores; ``1``: a plain loop here).
    cache : FingerprintCache, path, True or None
        Reuse fingerprints of unchanged files (``True``: the default cache
        location). See :mod:`splitaudit.fingerprints.cache`.
    progress : callable, optional
        ``progress("fingerprints", done, total)``, called in this process.
    chunksize : int, optional
        Images per task sent to a worker. Default: 256, fewer when that would
        give a worker under 4 tasks (at least 16); on Fashion-MNIST 70k, 256
        took 17 % less wall time than 64 (less per-task overhead in the
        parent, which shares the cores). With a dask ``client`` each task
        gets at least ``DASK_MIN_CHUNKSIZE`` (512) images: per-task scheduling
        and result transfer cost ~2x the fingerprinting of 64 small images.
    max_pixels : int or None
        Decompression-bomb limit; larger images get a ``reason``.
    whash : bool, default False
        Also compute imagehash's wHash (slow) into a ``whash`` column.
    client : distributed.Client, optional
        Run the chunks on a dask cluster instead of local processes (results
        and cache use are identical); see :mod:`splitaudit.distributed`.

    Returns
    -------
    Fingerprints

    Examples
    --------
    >>> fps = compute_fingerprints(split, jobs=2)          # doctest: +SKIP
    >>> fps.table[["path", "phash"]].head()                # doctest: +SKIP
    """
    from .cache import open_cache

    _check_options(mode, 1 if chunksize is None else chunksize, progress)
    started = time.perf_counter()
    paths, abspaths, roots = _resolve_paths(split_or_paths)
    total = len(abspaths)
    jobs = resolve_jobs(jobs)
    store = open_cache(cache, roots=roots, abspaths=abspaths)
    version = f"{ALGORITHM_VERSION}:{mode}:max_pixels={max_pixels}:whash={int(whash)}"
    keys = store.keys_for(abspaths) if store else [None] * total
    columns = list(TABLE_COLUMNS) + (["whash"] if whash else [])
    notes: list[str] = []
    seen_notes = len(store.notes) if store else 0
    records = _cached_records(store, keys, version, abspaths, columns, jobs, notes)
    missing = [i for i in range(total) if records[i] is None]
    if chunksize is None:
        chunksize = int(min(256, max(16, -(-len(missing) // (4 * jobs)))))
    if client is not None:
        chunksize = max(chunksize, DASK_MIN_CHUNKSIZE)
    chunks = [missing[k : k + chunksize] for k in range(0, len(missing), chunksize)]
    results = _run_chunks(chunks, abspaths, jobs, client, mode, max_pixels, whash,
                          dask_step=8 * jobs if store else len(chunks))
    computed = _collect(chunks, results, store, keys, version, total - len(missing), total,
                        batch=max(chunksize, chunksize * jobs * 8), progress=progress)
    if store is not None:
        notes[:0] = store.notes[seen_notes:]  # a damaged cache set aside while reading or writing
        if not _is_user_cache(cache):
            store.close()
    return _assemble(records, computed, columns, paths, mode, notes, started)


def _cached_records(store, keys, version, abspaths, columns, jobs, notes) -> list:
    """``(row, thumbnail, descriptor)`` per image from the cache where it can be trusted, else None."""
    records: list[tuple[dict, np.ndarray, np.ndarray] | None] = [None] * len(abspaths)
    if store:
        seen_malformed = store.stats.get("malformed", 0)
        hits = store.get_many(keys, version)
        trusted = _trusted_records(hits, abspaths, columns, jobs, notes,
                                   store.stats.get("malformed", 0) - seen_malformed)
        for i, record in trusted.items():
            records[i] = record
    return records


def _collect(chunks, results, store, keys, version, cached: int, total: int, *, batch: int,
             progress) -> list[tuple[list[int], ChunkResult]]:
    """The computed chunks, in order, committed to the cache every ``batch`` images or
    :data:`COMMIT_SECONDS` (so an interrupted run keeps its work), with progress."""
    if progress:
        progress("fingerprints", cached, total)
    done = cached
    last_commit = time.monotonic()
    computed: list[tuple[list[int], ChunkResult]] = []
    unsaved: list[tuple[list[int], ChunkResult]] = []
    pending = 0  # images in `unsaved`
    with closing(results):  # an early exit (Ctrl-C) stops the pool at once
        for chunk, result in zip(chunks, results):
            computed.append((chunk, result))
            done += len(chunk)
            if progress:
                progress("fingerprints", done, total)
            if store:
                unsaved.append((chunk, result))
                pending += len(chunk)
                if pending >= batch or done == total or time.monotonic() - last_commit >= COMMIT_SECONDS:
                    store.put_many([(keys[i], record) for c, r in unsaved for i, record in zip(c, r.records())],
                                   version)
                    unsaved, pending, last_commit = [], 0, time.monotonic()
    return computed


def _assemble(records, computed, columns, paths, mode, notes, started) -> Fingerprints:
    """One :class:`Fingerprints` in input order from cached records and computed chunks."""
    total = len(records)
    cached_at = [i for i in range(total) if records[i] is not None]
    table = _build_table(total, columns, paths, cached_at, [records[i] for i in cached_at], computed)
    thumbs = np.zeros((total, 32, 32), np.uint8)
    descriptor = np.zeros((total, DESCRIPTOR_DIM), np.float32)
    if cached_at:
        thumbs[cached_at] = np.stack([records[i][1] for i in cached_at])
        descriptor[cached_at] = np.stack([records[i][2] for i in cached_at])
    for chunk, result in computed:
        thumbs[chunk] = result.thumbs
        descriptor[chunk] = result.descriptor
    local = _gather_local(total, cached_at, records, computed)
    stats = {
        "total": total, "computed": total - len(cached_at), "cached": len(cached_at),
        "unreadable": int((~table["ok"]).sum()), "seconds": round(time.perf_counter() - started, 3),
        "notes": notes,
    }
    return Fingerprints(table=table, thumbs=thumbs, descriptor=descriptor, mode=mode, stats=stats, local=local)


_HASH_RANGE = (0, (1 << 64) - 1)
_ROW_TYPES = {"ok": (bool,), **{c: (str, type(None)) for c in ("reason", "bytes_sha1", "pixel_sha1", "format", "mode")}}


def _column_ok(column: str, values: list) -> bool:
    """Whether every cached value of ``column`` has the type (and range) the table needs."""
    kinds = set(map(type, values))
    if column in (*HASH_COLUMNS, "whash") or column in _INT_COLUMNS:
        low, high = _HASH_RANGE if column not in _INT_COLUMNS else (0, 1 << 62)
        return kinds <= {int} and (not values or (min(values) >= low and max(values) <= high))
    if column in _FLOAT_COLUMNS:
        return kinds <= {float, int}
    if column == "local":
        return kinds <= {str, type(None)}
    return kinds <= set(_ROW_TYPES.get(column, (str, type(None))))


def _malformed_rows(rows: list[dict], columns: list[str]) -> set[int]:
    """Positions of cached rows that lack a column or hold a value of the wrong type."""
    names = [*columns[1:], "local"]
    try:
        table = list(zip(*map(itemgetter(*columns[1:]), rows)))
        good = all(_column_ok(c, list(v)) for c, v in zip(columns[1:], table))
        good = good and _column_ok("local", [row.get("local") for row in rows])
    except KeyError:
        good = False
    if good:
        return set()
    bad = set()
    for k, row in enumerate(rows):  # rare: find the rows at fault
        if any(c not in row for c in columns[1:]) or not all(_column_ok(c, [row.get(c)]) for c in names):
            bad.add(k)
    return bad


def _file_sha1(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    return hashlib.sha1(data).hexdigest() if data else None


def _trusted_records(hits: dict[int, tuple], abspaths: list[str], columns: list[str], jobs: int,
                     notes: list[str], n_unparsed: int) -> dict[int, tuple]:
    """The cached records that may be used: well-formed, and describing the file as it is now.

    Size and mtime matched already; the file's SHA-1 must also equal the ``bytes_sha1`` the
    record stores (a file replaced with ``cp -p``/``rsync -t``, a cache copied from another
    machine), so a valid-looking record of other content is recomputed, not trusted. Records
    of files that did not read (no stored SHA-1) are recomputed: they fail fast.
    """
    order = sorted(hits)
    malformed = _malformed_rows([hits[i][0] for i in order], columns)
    malformed.update(k for k, i in enumerate(order) if hits[i][2].shape != (DESCRIPTOR_DIM,))
    readable = [i for k, i in enumerate(order) if k not in malformed and hits[i][0]["bytes_sha1"]]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # reads and SHA-1 release the GIL
        digests = list(pool.map(_file_sha1, [abspaths[i] for i in readable], chunksize=64))
    trusted = {i: hits[i] for i, digest in zip(readable, digests) if digest == hits[i][0]["bytes_sha1"]}
    n_malformed = len(malformed) + n_unparsed
    n_stale = len(readable) - len(trusted)
    if n_malformed:
        notes.append(f"{n_malformed} fingerprint cache records were malformed and were recomputed")
    if n_stale:
        notes.append(f"{n_stale} fingerprint cache records did not match their file's content (same size "
                     "and modification time, another SHA-1) and were recomputed")
    return trusted


def _gather_local(total, cached_at, records, computed) -> LocalFeatures:
    """Keypoints in input order, from cached rows (base64 text) and computed chunks."""
    parts: list = [NO_FEATURES] * total
    for i in cached_at:
        parts[i] = unpack(records[i][0].get("local"))
    for chunk, result in computed:
        if result.local is None:
            continue
        for k, i in enumerate(chunk):
            lo, hi = result.local.offsets[k], result.local.offsets[k + 1]
            parts[i] = (result.local.xy[lo:hi], result.local.size[k], result.local.desc[lo:hi])
    return LocalFeatures.from_parts(parts)


def _run_chunks(chunks, abspaths, jobs, client, mode, max_pixels, whash, dask_step) -> Iterator[ChunkResult]:
    """One ChunkResult per chunk, in order: streamed from a local pool (it computes
    ahead while the caller writes the cache), or from dask tasks ``dask_step`` chunks at a time."""
    work = [[abspaths[i] for i in chunk] for chunk in chunks]
    if client is None:
        yield from iter_map(partial(fingerprint_columns, mode=mode, max_pixels=max_pixels, whash=whash),
                            work, jobs=jobs)
        return
    worker = partial(fingerprint_chunks, mode=mode, max_pixels=max_pixels, whash=whash)
    step = max(1, dask_step)
    for start in range(0, len(work), step):
        yield from ordered_map(worker, work[start : start + step], jobs=jobs, chunksize=1, client=client)


def _column_dtype(column: str):
    if column in (*HASH_COLUMNS, "whash"):
        return np.uint64
    if column == "ok":
        return bool
    if column in _INT_COLUMNS:
        return np.int64
    if column in _FLOAT_COLUMNS:
        return np.float64
    return object


def _build_table(total, columns, paths, cached_at, cached_records, computed) -> pd.DataFrame:
    """Assemble the table column by column from cached rows and computed chunks."""
    data: dict[str, np.ndarray] = {"path": np.asarray(paths, dtype=object)}
    # Cached rows are dicts: one C-level itemgetter per row, then transpose to columns.
    cached_columns = (dict(zip(columns[1:], zip(*map(itemgetter(*columns[1:]), (r[0] for r in cached_records)))))
                      if cached_at else {})
    for column in columns[1:]:
        dtype = _column_dtype(column)
        values = np.empty(total, dtype=dtype)
        if cached_at:
            values[cached_at] = np.array(cached_columns[column], dtype=dtype)
        for chunk, result in computed:
            if dtype is object:
                values[chunk] = np.array(result.columns[column] + [None], dtype=object)[:-1]
            else:
                values[chunk] = result.columns[column]
        data[column] = values
    return pd.DataFrame(data, columns=columns)


def _is_user_cache(cache: Any) -> bool:
    from .cache import FingerprintCache

    return isinstance(cache, FingerprintCache)
