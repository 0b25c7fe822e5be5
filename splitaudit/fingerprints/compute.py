"""compute_fingerprints: one decode per image, everything derived from it.

Each worker reads a chunk of files, decodes each one once
(:func:`splitaudit.imageio.open_image`), derives the small arrays every
fingerprint needs (32x32 / 9x8 / 8x8 gray for the hashes, a 32x32 RGB
working copy for the descriptor and pixel statistics), then computes hashes,
descriptors and properties for the whole chunk with vectorised numpy.

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
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from PIL import Image

from .._parallel import ordered_map, resolve_jobs
from ..dataset import ImageSplit, display_path
from ..imageio import DEFAULT_MAX_PIXELS, open_image
from . import hashes as _hashes
from .descriptor import DESCRIPTOR_DIM, describe, rgb_to_gray
from .properties import PIXEL_COLUMNS, jpeg_quality, pixel_properties

__all__ = ["Fingerprints", "compute_fingerprints", "MODES", "ALGORITHM_VERSION", "TABLE_COLUMNS"]

MODES = ("fast", "exact")
ALGORITHM_VERSION = "fp1"
"""Bump when any fingerprint would change for the same file (part of the cache key)."""

HASH_COLUMNS = ("phash", "dhash", "ahash", "phash_flip", "dhash_flip", "ahash_flip")
TABLE_COLUMNS = (
    "path", "ok", "reason", "bytes_sha1", "pixel_sha1", *HASH_COLUMNS,
    "width", "height", "aspect", "file_size", "format", "mode", *PIXEL_COLUMNS, "jpeg_quality",
)
_LANCZOS = Image.Resampling.LANCZOS
_WORK = 32  # side of the RGB working copy for descriptor and pixel statistics
_FAST_DECODE = 32  # fast mode: decode so that both sides stay >= this


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


def _empty_record(reason: str, data: bytes, loaded) -> dict[str, Any]:
    row = {
        "ok": False, "reason": reason,
        "bytes_sha1": hashlib.sha1(data).hexdigest() if data else None,
        "pixel_sha1": None, **{c: 0 for c in HASH_COLUMNS},
        "width": loaded.width, "height": loaded.height,
        "aspect": loaded.width / loaded.height if loaded.height else float("nan"),
        "file_size": len(data), "format": loaded.format, "mode": loaded.mode,
        **{c: float("nan") for c in PIXEL_COLUMNS}, "jpeg_quality": float("nan"),
    }
    return row


def fingerprint_chunk(
    paths: Sequence[str], *, mode: str = "fast", max_pixels: int | None = DEFAULT_MAX_PIXELS,
    whash: bool = False,
) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Fingerprint a chunk of files: ``[(row, thumb, descriptor), ...]`` in order.

    ``row`` holds every table column except ``path``. Runs in pool workers.
    """
    n = len(paths)
    rows: list[dict] = []
    ok_index: list[int] = []
    g32 = np.zeros((n, 32, 32), np.uint8)
    g98 = np.zeros((n, 8, 9), np.uint8)
    g8 = np.zeros((n, 8, 8), np.uint8)
    work = np.zeros((n, _WORK, _WORK, 3), np.uint8)
    hash_images = []
    for i, path in enumerate(paths):
        loaded = open_image(
            path, max_pixels=max_pixels, keep_raw=mode == "exact",
            reduce_to=_FAST_DECODE if mode == "fast" else None,
        )
        if not loaded.ok:
            rows.append(_empty_record(loaded.reason, loaded.data, loaded))
            continue
        image = loaded.image
        source = loaded.raw if mode == "exact" else image
        gray = source if source.mode == "L" else source.convert("L")
        g32[i] = np.asarray(gray.resize((32, 32), _LANCZOS))
        g98[i] = np.asarray(gray.resize((9, 8), _LANCZOS))
        g8[i] = np.asarray(gray.resize((8, 8), _LANCZOS))
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        work[i] = np.asarray(rgb.resize((_WORK, _WORK), Image.Resampling.BILINEAR, reducing_gap=2.0))
        if whash:
            hash_images.append(source)
        header = f"{image.mode} {image.size[0]}x{image.size[1]} /{loaded.scale}\n".encode()
        rows.append({
            "ok": True, "reason": None,
            "bytes_sha1": hashlib.sha1(loaded.data).hexdigest(),
            "pixel_sha1": hashlib.sha1(header + image.tobytes()).hexdigest(),
            "width": loaded.width, "height": loaded.height,
            "aspect": loaded.width / loaded.height,
            "file_size": loaded.file_size, "format": loaded.format, "mode": loaded.mode,
            "jpeg_quality": jpeg_quality(loaded.quantization) if loaded.format in ("JPEG", "MPO")
            else float("nan"),
        })
        ok_index.append(i)
    thumbs = g32
    descriptors = np.zeros((n, DESCRIPTOR_DIM), np.float32)
    if ok_index:
        idx = np.asarray(ok_index)
        mirror = (slice(None), slice(None), slice(None, None, -1))
        values = {
            "phash": _hashes.phash(g32[idx]), "dhash": _hashes.dhash(g98[idx]),
            "ahash": _hashes.ahash(g8[idx]),
            "phash_flip": _hashes.phash(g32[idx][mirror]),
            "dhash_flip": _hashes.dhash(g98[idx][mirror]),
            "ahash_flip": _hashes.ahash(g8[idx][mirror]),
        }
        if whash:
            values["whash"] = _hashes.whash(hash_images)
        gray = rgb_to_gray(work[idx])
        descriptors[idx] = describe(work[idx], gray)
        props = pixel_properties(work[idx], gray)
        for k, i in enumerate(ok_index):
            for column, array in values.items():
                rows[i][column] = int(array[k])
            for column in PIXEL_COLUMNS:
                rows[i][column] = float(props[column][k])
    if whash:
        for row in rows:
            row.setdefault("whash", 0)
    return [(rows[i], thumbs[i].copy(), descriptors[i]) for i in range(n)]


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
        Images per task sent to a worker.
    max_pixels : int or None
        Decompression-bomb limit; larger images get a ``reason``.
    whash : bool, default False
        Also compute imagehash's wHash (slow) into a ``whash`` column.

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
    worker = partial(fingerprint_chunk, mode=mode, max_pixels=max_pixels, whash=whash)
    jobs = resolve_jobs(jobs)
    if progress:
        progress("fingerprints", cached, total)
    # Commit to the cache every few chunks so an interrupted run keeps its work.
    batch = max(chunksize, chunksize * jobs * 8) if store else max(1, len(missing))
    done = cached
    for start in range(0, len(missing), batch):
        part = missing[start : start + batch]

        def report(_stage: str, finished: int, _total: int, base: int = done) -> None:
            if progress and finished:
                progress("fingerprints", base + finished, total)

        results = ordered_map(
            worker, [abspaths[i] for i in part], jobs=jobs, chunksize=chunksize,
            progress=report, stage="fingerprints",
        )
        for i, record in zip(part, results):
            records[i] = record
        if store:
            store.put_many([(keys[i], records[i]) for i in part], version)
        done += len(part)
    if store is not None and not _is_user_cache(cache):
        store.close()
    rows = [dict(path=paths[i], **records[i][0]) for i in range(total)]
    columns = list(TABLE_COLUMNS) + (["whash"] if whash else [])
    table = pd.DataFrame(rows, columns=columns)
    for column in [c for c in (*HASH_COLUMNS, "whash") if c in table]:
        table[column] = table[column].astype(np.uint64)
    table["ok"] = table["ok"].astype(bool)
    thumbs = np.stack([r[1] for r in records]) if total else np.zeros((0, 32, 32), np.uint8)
    descriptor = (
        np.stack([r[2] for r in records]).astype(np.float32)
        if total else np.zeros((0, DESCRIPTOR_DIM), np.float32)
    )
    stats = {
        "total": total, "computed": len(missing), "cached": cached,
        "unreadable": int((~table["ok"]).sum()), "seconds": round(time.perf_counter() - started, 3),
    }
    return Fingerprints(table=table, thumbs=thumbs, descriptor=descriptor, mode=mode, stats=stats)


def _is_user_cache(cache: Any) -> bool:
    from .cache import FingerprintCache

    return isinstance(cache, FingerprintCache)
