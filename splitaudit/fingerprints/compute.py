"""compute_fingerprints: one decode per image, everything else batched per chunk.

Each worker reads a chunk of files and decodes each one once
(:func:`splitaudit.imageio.iter_images`; EXIF is parsed only when the file
carries an orientation source). Everything after the decode is done for the
whole chunk: images of the same mode and size are pasted into one tall Pillow
image, which gives the pixel dump for ``pixel_sha1`` and the gray conversion
in one call per chunk. The resizes (32x32 / 9x8 / 8x8 LANCZOS gray for the
hashes, a 32x32 BILINEAR RGB working copy for the descriptor and pixel
statistics) are float64 matrix products over the whole stack that reproduce
Pillow's fixed-point arithmetic bit for bit (:mod:`.resample`, checked
against Pillow once per size; stacked Pillow calls, :func:`.resample.pillow_resize_stack`,
are the fallback). Hashes, descriptors and properties are vectorised numpy
over the chunk (gradient orientations by table lookup, no HSV conversion for
gray images, statistics from exact integer sums), and the chunk comes back as
columns (:class:`ChunkResult`), not per-image dicts. BLAS is held to one
thread while a chunk runs (``threadpoolctl``): the matrices are tiny.

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
    JPEGs are decoded with DCT scaling to at least 32 px a side, other formats
    are box-reduced to at least 64 px a side before the LANCZOS resize; hashes
    come from the normalised image (alpha composited on white). About 3x
    faster on photos; hashes differ from imagehash by a few bits at most
    (see :mod:`splitaudit.fingerprints.hashes`). Never compare hashes of
    different modes: the mode is part of the cache key and of ``Fingerprints``.

``pixel_sha1`` is the SHA-1 of the decoded, normalised pixels plus their mode
and size, so equal values mean identical pixels whatever the file format. In
fast mode a JPEG's pixels are the DCT-scaled decode (the scale is part of the
hashed header): equal values still mean identical content, but a JPEG and a
lossless copy of its pixels only match in exact mode. ``bytes_sha1`` is the
SHA-1 of the file's bytes and is filled in even when the bytes do not decode.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from .._parallel import ordered_map, resolve_jobs
from ..dataset import ImageSplit, display_path
from ..imageio import DEFAULT_MAX_PIXELS, iter_images
from . import hashes as _hashes
from .descriptor import DESCRIPTOR_DIM, describe, rgb_to_gray
from .properties import PIXEL_COLUMNS, jpeg_quality, pixel_properties
from .resample import pillow_resize_stack, resize_stack

__all__ = ["Fingerprints", "compute_fingerprints", "MODES", "ALGORITHM_VERSION", "TABLE_COLUMNS"]

MODES = ("fast", "exact")
ALGORITHM_VERSION = "fp3"
"""Bump when any fingerprint would change for the same file (part of the cache key).

fp3: sharpness and colourfulness from exact integer sums (differ from fp2 in
the last bit, <= 4e-16 relative); P / 1 / I;16 images >= 128 px, which fp2's
fast mode reported unreadable, now decode."""

HASH_COLUMNS = ("phash", "dhash", "ahash", "phash_flip", "dhash_flip", "ahash_flip")
TABLE_COLUMNS = (
    "path", "ok", "reason", "bytes_sha1", "pixel_sha1", *HASH_COLUMNS,
    "width", "height", "aspect", "file_size", "format", "mode", *PIXEL_COLUMNS, "jpeg_quality",
)
_LANCZOS = Image.Resampling.LANCZOS
_BILINEAR = Image.Resampling.BILINEAR
_NAN = float("nan")
_WORK = 32  # side of the RGB working copy for descriptor and pixel statistics
_FAST_DECODE = 32  # fast mode: decode so that both sides stay >= this
_NUMPY_RESIZE_MAX = 64 * 64  # pixels per image up to which gray LANCZOS resizes use numpy


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
        ``total``, ``computed``, ``cached``, ``unreadable``, ``seconds``.
    """

    table: pd.DataFrame
    thumbs: np.ndarray
    descriptor: np.ndarray
    mode: str
    stats: dict = field(default_factory=dict)

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
_OBJECT_COLUMNS = ("reason", "bytes_sha1", "pixel_sha1", "format", "mode")
_PIXEL_BUDGET = 1 << 25
"""Decoded pixels a worker holds before it processes what it has (memory bound)."""
_CANVAS_PIXELS = 1 << 24
"""Largest stacked canvas handed to one Pillow call."""


@dataclass
class ChunkResult:
    """Fingerprints of one chunk, column by column (what workers send back).

    ``columns`` maps every table column except ``path`` to an array or list of
    length ``n``; ``thumbs`` and ``descriptor`` are stacked arrays.
    """

    columns: dict[str, Any]
    thumbs: np.ndarray
    descriptor: np.ndarray

    def __len__(self) -> int:
        return len(self.thumbs)

    def records(self) -> list[tuple[dict, np.ndarray, np.ndarray]]:
        """One ``(row, thumb, descriptor)`` per image, rows as plain Python values (the cache format)."""
        names = list(self.columns)
        values = [np.asarray(self.columns[c]).tolist() if c not in _OBJECT_COLUMNS
                  else list(self.columns[c]) for c in names]
        return [(dict(zip(names, row)), self.thumbs[i].copy(), self.descriptor[i])
                for i, row in enumerate(zip(*values))]


def _stack(images: list[Image.Image], mode: str, width: int, height: int) -> Image.Image:
    """Paste same-size images one below the other into one tall image."""
    if len(images) == 1:
        return images[0]
    canvas = Image.new(mode, (width, height * len(images)))
    for k, image in enumerate(images):
        canvas.paste(image, (0, k * height))
    return canvas


def _resize(pixels: np.ndarray, tall: Image.Image, count: int, size: tuple[int, int], resample) -> np.ndarray:
    """Pillow-exact resize of a stack: numpy matrix products, or stacked Pillow calls.

    The dense matrix products win only for small gray images with LANCZOS
    (long kernels; measured on 28x28: 4-8x faster); RGB, BILINEAR and larger
    inputs are faster in Pillow's banded loops.
    """
    small = pixels.ndim == 3 and pixels.shape[1] * pixels.shape[2] <= _NUMPY_RESIZE_MAX
    result = resize_stack(pixels, size, resample) if small and resample == _LANCZOS else None
    return pillow_resize_stack(tall, count, size, resample) if result is None else result


_BLAS: list = []


def _one_blas_thread():
    """Limit BLAS to one thread while a chunk is processed (tiny matrix products;
    a multi-threaded BLAS spins and is ~100x slower on a busy machine)."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except Exception:  # optional: only speed depends on it
            _BLAS.append(None)
    controller = _BLAS[0]
    return nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


class _Arrays:
    """Per-chunk output buffers filled by :func:`_process`."""

    def __init__(self, n: int) -> None:
        self.g32 = np.zeros((n, 32, 32), np.uint8)
        self.g98 = np.zeros((n, 8, 9), np.uint8)
        self.g8 = np.zeros((n, 8, 8), np.uint8)
        self.work = np.zeros((n, _WORK, _WORK, 3), np.uint8)
        self.gray_work = np.zeros((n, _WORK, _WORK), np.uint8)
        self.colour = np.zeros(n, bool)
        self.pixel_sha1: list[str | None] = [None] * n
        self.hash_images: dict[int, Image.Image] = {}


def _process(items: list[tuple[int, Any]], out: _Arrays, exact: bool, whash: bool) -> None:
    """Hash inputs, working copies and pixel SHA-1 of decoded images, batched by (mode, size)."""
    groups: dict[tuple[str, tuple[int, int]], list] = {}
    for i, loaded in items:
        groups.setdefault((loaded.image.mode, loaded.image.size), []).append((i, loaded))
    for (mode, (width, height)), members in groups.items():
        step = max(1, _CANVAS_PIXELS // max(1, width * height))
        for start in range(0, len(members), step):
            part = members[start : start + step]
            count = len(part)
            idx = np.fromiter((i for i, _ in part), np.intp, count)
            tall = _stack([loaded.image for _, loaded in part], mode, width, height)
            pixels = np.asarray(tall).reshape(count, height, width, *((3,) if mode == "RGB" else ()))
            for (i, loaded), block in zip(part, pixels):
                digest = hashlib.sha1(f"{mode} {width}x{height} /{loaded.scale}\n".encode())
                digest.update(block)
                out.pixel_sha1[i] = digest.hexdigest()
            gray = tall if mode == "L" else tall.convert("L")
            gray_pixels = pixels if mode == "L" else np.asarray(gray).reshape(count, height, width)
            out.g32[idx] = _resize(gray_pixels, gray, count, (32, 32), _LANCZOS)
            out.g98[idx] = _resize(gray_pixels, gray, count, (9, 8), _LANCZOS)
            out.g8[idx] = _resize(gray_pixels, gray, count, (8, 8), _LANCZOS)
            if mode == "RGB":
                work = _resize(pixels, tall, count, (_WORK, _WORK), _BILINEAR)
                out.work[idx] = work
                out.gray_work[idx] = rgb_to_gray(work, np.uint8)
                out.colour[idx] = True
            else:
                work = _resize(gray_pixels, gray, count, (_WORK, _WORK), _BILINEAR)
                out.work[idx] = work[..., None]
                out.gray_work[idx] = work
            for i, loaded in part:
                source = loaded.raw if exact else loaded.image
                if whash:
                    out.hash_images[i] = source
                if source is loaded.image:
                    continue
                # exact mode, original not L/RGB: imagehash's own conversion of the original
                source = source if source.mode == "L" else source.convert("L")
                out.g32[i] = np.asarray(source.resize((32, 32), _LANCZOS))
                out.g98[i] = np.asarray(source.resize((9, 8), _LANCZOS))
                out.g8[i] = np.asarray(source.resize((8, 8), _LANCZOS))


def fingerprint_columns(
    paths: Sequence[str], *, mode: str = "fast", max_pixels: int | None = DEFAULT_MAX_PIXELS,
    whash: bool = False,
) -> ChunkResult:
    """Fingerprint a chunk of files, column by column (runs in pool workers).

    Each file is read and decoded once; everything else is computed for the
    whole chunk at once: images of the same mode and size are stacked into one
    tall Pillow image, so resizes, conversions and the pixel dump are a few
    calls per chunk instead of several per image, and hashes, descriptors and
    properties are vectorised numpy over the chunk.
    """
    with _one_blas_thread():
        return _fingerprint_columns(paths, mode, max_pixels, whash)


def _fingerprint_columns(paths: Sequence[str], mode: str, max_pixels: int | None, whash: bool) -> ChunkResult:
    n = len(paths)
    exact = mode == "exact"
    out = _Arrays(n)
    ok = np.zeros(n, bool)
    meta: dict[str, list] = {c: [] for c in (
        "reason", "bytes_sha1", "width", "height", "file_size", "format", "mode", "jpeg_quality")}
    pending: list[tuple[int, Any]] = []
    held = 0
    loads = iter_images(paths, max_pixels=max_pixels, keep_raw=exact,
                        reduce_to=None if exact else _FAST_DECODE)
    for i, loaded in enumerate(loads):
        data = loaded.data
        meta["reason"].append(loaded.reason)
        meta["bytes_sha1"].append(hashlib.sha1(data).hexdigest() if data else None)
        meta["width"].append(loaded.width)
        meta["height"].append(loaded.height)
        meta["file_size"].append(len(data))
        meta["format"].append(loaded.format)
        meta["mode"].append(loaded.mode)
        meta["jpeg_quality"].append(
            jpeg_quality(loaded.quantization) if loaded.ok and loaded.format in ("JPEG", "MPO") else _NAN)
        if loaded.image is None:
            continue
        ok[i] = True
        pending.append((i, loaded))
        held += loaded.image.width * loaded.image.height
        if held > _PIXEL_BUDGET:
            _process(pending, out, exact, whash)
            pending, held = [], 0
    _process(pending, out, exact, whash)
    return _assemble(n, ok, meta, out, whash)


def _assemble(n: int, ok: np.ndarray, meta: dict[str, list], out: _Arrays, whash: bool) -> ChunkResult:
    idx = np.flatnonzero(ok)
    columns: dict[str, Any] = {"ok": ok, "reason": meta["reason"], "bytes_sha1": meta["bytes_sha1"],
                               "pixel_sha1": out.pixel_sha1}
    hash_inputs = {
        "phash": (_hashes.phash, out.g32), "dhash": (_hashes.dhash, out.g98), "ahash": (_hashes.ahash, out.g8),
    }
    for name, (fn, stack) in hash_inputs.items():
        for suffix, view in (("", stack[idx]), ("_flip", stack[idx][:, :, ::-1])):
            values = np.zeros(n, np.uint64)
            values[idx] = fn(view)
            columns[name + suffix] = values
    columns = {c: columns[c] for c in ("ok", "reason", "bytes_sha1", "pixel_sha1", *HASH_COLUMNS)}
    width = np.asarray(meta["width"], np.int64)
    height = np.asarray(meta["height"], np.int64)
    columns["width"], columns["height"] = width, height
    columns["aspect"] = np.divide(width, height, out=np.full(n, _NAN), where=height > 0)
    columns["file_size"] = np.asarray(meta["file_size"], np.int64)
    columns["format"], columns["mode"] = meta["format"], meta["mode"]
    descriptors = np.zeros((n, DESCRIPTOR_DIM), np.float32)
    props = {c: np.full(n, _NAN) for c in PIXEL_COLUMNS}
    if len(idx):
        work, gray, colour = out.work[idx], out.gray_work[idx], out.colour[idx]
        descriptors[idx] = describe(work, gray, colour=colour)
        for column, values in pixel_properties(work, gray, colour=colour).items():
            props[column][idx] = values
    columns.update(props)
    columns["jpeg_quality"] = np.asarray(meta["jpeg_quality"], np.float64)
    if whash:
        values = np.zeros(n, np.uint64)
        if len(idx):
            values[idx] = _hashes.whash([out.hash_images[i] for i in idx])
        columns["whash"] = values
    return ChunkResult(columns, out.g32, descriptors)


def fingerprint_chunk(
    paths: Sequence[str], *, mode: str = "fast", max_pixels: int | None = DEFAULT_MAX_PIXELS,
    whash: bool = False,
) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Fingerprint a chunk of files: ``[(row, thumb, descriptor), ...]`` in order.

    ``row`` holds every table column except ``path``.
    """
    return fingerprint_columns(paths, mode=mode, max_pixels=max_pixels, whash=whash).records()


def _fingerprint_chunks(chunks: Sequence[Sequence[str]], **options: Any) -> list[ChunkResult]:
    return [fingerprint_columns(chunk, **options) for chunk in chunks]


def _resolve_paths(split_or_paths) -> tuple[list[str], list[str], list[str]]:
    """(display paths, absolute paths, roots that must not hold the cache)."""
    if isinstance(split_or_paths, ImageSplit):
        images = split_or_paths.images
        abspaths = [str(p) for p in images["abspath"]]
        return [str(p) for p in images["path"]], abspaths, [str(split_or_paths.root)]
    if isinstance(split_or_paths, (str, bytes, os.PathLike)) or not hasattr(split_or_paths, "__iter__"):
        raise TypeError(
            "split_or_paths must be an ImageSplit or a list of image paths, "
            f"got {type(split_or_paths).__name__}"
        )
    abspaths = [os.path.abspath(os.fspath(p)) for p in split_or_paths]
    return [display_path(p) for p in abspaths], abspaths, []


def _check_options(mode: str, chunksize: int, progress) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int, got {chunksize!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable(stage, done, total) or None, got {type(progress).__name__}")


#: Smallest number of images per dask task (``compute_fingerprints(client=...)``).
DASK_MIN_CHUNKSIZE = 512


def compute_fingerprints(
    split_or_paths: ImageSplit | Sequence[str | os.PathLike],
    *,
    mode: str = "fast",
    jobs: int | None = None,
    cache: Any = None,
    progress: Callable[[str, int, int], None] | None = None,
    chunksize: int = 64,
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
    chunksize : int, default 64
        Images per task sent to a worker. With a dask ``client`` each task
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

    _check_options(mode, chunksize, progress)
    if client is not None:
        chunksize = max(chunksize, DASK_MIN_CHUNKSIZE)
    started = time.perf_counter()
    paths, abspaths, roots = _resolve_paths(split_or_paths)
    total = len(abspaths)
    store = open_cache(cache, roots=roots, abspaths=abspaths)
    version = f"{ALGORITHM_VERSION}:{mode}:max_pixels={max_pixels}:whash={int(whash)}"
    records: list[tuple[dict, np.ndarray, np.ndarray] | None] = [None] * total
    keys = store.keys_for(abspaths) if store else [None] * total
    if store:
        for i, record in store.get_many(keys, version).items():
            records[i] = record
    missing = [i for i in range(total) if records[i] is None]
    cached = total - len(missing)
    worker = partial(_fingerprint_chunks, mode=mode, max_pixels=max_pixels, whash=whash)
    jobs = resolve_jobs(jobs)
    if progress:
        progress("fingerprints", cached, total)
    # Commit to the cache every few chunks so an interrupted run keeps its work.
    batch = max(chunksize, chunksize * jobs * 8) if store else max(1, len(missing))
    done = cached
    computed: list[tuple[list[int], ChunkResult]] = []
    for start in range(0, len(missing), batch):
        part = missing[start : start + batch]
        chunks = [part[k : k + chunksize] for k in range(0, len(part), chunksize)]

        def report(_stage: str, finished: int, _total: int, base: int = done, size: int = len(part)) -> None:
            if progress and finished:
                progress("fingerprints", base + min(size, finished * chunksize), total)

        # One task per chunk; each returns a ChunkResult (columns, not per-image dicts).
        results = ordered_map(
            worker, [[abspaths[i] for i in chunk] for chunk in chunks], jobs=jobs, chunksize=1,
            progress=report, stage="fingerprints", client=client,
        )
        computed.extend(zip(chunks, results))
        if store:
            store.put_many(
                [(keys[i], record) for chunk, result in zip(chunks, results)
                 for i, record in zip(chunk, result.records())],
                version,
            )
        done += len(part)
    if store is not None and not _is_user_cache(cache):
        store.close()
    columns = list(TABLE_COLUMNS) + (["whash"] if whash else [])
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
    stats = {
        "total": total, "computed": len(missing), "cached": cached,
        "unreadable": int((~table["ok"]).sum()), "seconds": round(time.perf_counter() - started, 3),
    }
    return Fingerprints(table=table, thumbs=thumbs, descriptor=descriptor, mode=mode, stats=stats)


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
    for column in columns[1:]:
        dtype = _column_dtype(column)
        values = np.empty(total, dtype=dtype)
        if cached_at:
            values[cached_at] = np.array([r[0][column] for r in cached_records], dtype=dtype)
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
