"""The worker side of :func:`~splitaudit.fingerprints.compute_fingerprints`: one chunk of files.

Each file is read and decoded once (:func:`splitaudit.imageio.iter_images`;
plain 8-bit PNGs skip Pillow's Python chunk parser, EXIF is parsed only when
the file carries an orientation source). Everything after the decode is done
for the whole chunk: images of the same mode and size are pasted into one
tall Pillow image, which gives the pixel dump for ``pixel_sha1`` and the gray
conversion in one call per chunk. The resizes (32x32 / 9x8 / 8x8 LANCZOS gray
for the hashes, a 32x32 BILINEAR working copy for the descriptor and pixel
statistics) reproduce Pillow bit for bit: downscales of small gray images are
float64 matrix products (:func:`.resample.resize_stack`), the rest are two
Pillow calls over the stack (:func:`.resample.pillow_resize_stack`). Gray
images get no RGB working copy: the descriptor and properties read their
gray version. Hashes, descriptors and properties are vectorised numpy over
the chunk, and the chunk comes back as columns (:class:`ChunkResult`).
BLAS is held to one thread while a chunk runs (``threadpoolctl``): the
matrices are tiny.
"""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from ..imageio import DEFAULT_MAX_PIXELS, iter_images, pixel_header
from . import hashes as _hashes
from .descriptor import DESCRIPTOR_DIM, describe, rgb_to_gray
from .local import NO_FEATURES, LocalFeatures, orb_features, pack
from .properties import PIXEL_COLUMNS, jpeg_quality, pixel_properties
from .resample import pillow_resize_stack, resize_stack

__all__ = ["ChunkResult", "fingerprint_columns", "fingerprint_chunk", "HASH_COLUMNS", "OBJECT_COLUMNS"]

HASH_COLUMNS = ("phash", "dhash", "ahash", "phash_flip", "dhash_flip", "ahash_flip")
OBJECT_COLUMNS = ("reason", "bytes_sha1", "pixel_sha1", "format", "mode")
_LANCZOS = Image.Resampling.LANCZOS
_BILINEAR = Image.Resampling.BILINEAR
_NAN = float("nan")
_WORK = 32  # side of the working copy for descriptor and pixel statistics
_FAST_DECODE = 96  # fast mode: decode so that both sides stay >= this (keypoints on a 128-px frame)
_NUMPY_RESIZE_MAX = 64 * 64  # input pixels up to which gray LANCZOS downscales use numpy
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
    local: LocalFeatures | None = None

    def __len__(self) -> int:
        return len(self.thumbs)

    def records(self) -> list[tuple[dict, np.ndarray, np.ndarray]]:
        """One ``(row, thumb, descriptor)`` per image, rows as plain Python values (the cache format)."""
        names = list(self.columns)
        values = [np.asarray(self.columns[c]).tolist() if c not in OBJECT_COLUMNS
                  else list(self.columns[c]) for c in names]
        rows = [dict(zip(names, row)) for row in zip(*values)]
        if self.local is not None:  # keypoints travel in the row, as base64 text
            for i, row in enumerate(rows):
                lo, hi = self.local.offsets[i], self.local.offsets[i + 1]
                row["local"] = pack(self.local.xy[lo:hi], self.local.size[i], self.local.desc[lo:hi])
        return [(row, self.thumbs[i].copy(), self.descriptor[i]) for i, row in enumerate(rows)]


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

    The dense matrix products win only for LANCZOS downscales of small gray
    images (long kernels, tiny outputs; measured on 28x28 -> 9x8: 2.5x
    faster); upscales, BILINEAR, RGB and larger inputs are faster in
    Pillow's banded loops.
    """
    in_pixels = pixels.shape[1] * pixels.shape[2] if pixels.ndim == 3 else 0
    numpy = resample == _LANCZOS and size[0] * size[1] < in_pixels <= _NUMPY_RESIZE_MAX
    result = resize_stack(pixels, size, resample) if numpy else None
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
        self.n = n
        self.g32 = np.zeros((n, 32, 32), np.uint8)
        self.g98 = np.zeros((n, 8, 9), np.uint8)
        self.g8 = np.zeros((n, 8, 8), np.uint8)
        self.gray_work = np.zeros((n, _WORK, _WORK), np.uint8)
        self.colour = np.zeros(n, bool)
        self.pixel_sha1: list[str | None] = [None] * n
        self.local: list[tuple | None] = [None] * n
        self.hash_images: dict[int, Image.Image] = {}
        self._work: np.ndarray | None = None  # RGB working copies, made on the first RGB image

    @property
    def work(self) -> np.ndarray:
        if self._work is None:
            self._work = np.zeros((self.n, _WORK, _WORK, 3), np.uint8)
        return self._work

    def rgb_rows(self, idx: np.ndarray) -> np.ndarray:
        """RGB working copies of rows ``idx`` (gray rows: zeros, never read)."""
        if self._work is None:  # no colour row: a zero view costs nothing
            return np.broadcast_to(np.zeros((1, _WORK, _WORK, 3), np.uint8), (len(idx), _WORK, _WORK, 3))
        return self._work[idx]


def _process(items: list[tuple[int, Any]], out: _Arrays, exact: bool, whash: bool) -> None:
    """Hash inputs, working copies and pixel SHA-1 of decoded images, batched by (mode, size)."""
    groups: dict[tuple[str, tuple[int, int]], list] = {}
    for i, loaded in items:
        groups.setdefault((loaded.image.mode, loaded.image.size), []).append((i, loaded))
    per_image = exact or whash
    for (mode, (width, height)), members in groups.items():
        step = max(1, _CANVAS_PIXELS // max(1, width * height))
        for start in range(0, len(members), step):
            part = members[start : start + step]
            count = len(part)
            idx = np.fromiter((i for i, _ in part), np.intp, count)
            tall = _stack([loaded.image for _, loaded in part], mode, width, height)
            pixels = np.asarray(tall).reshape(count, height, width, *((3,) if mode == "RGB" else ()))
            sha1 = out.pixel_sha1
            for (i, loaded), block in zip(part, pixels):
                if loaded.pixel_sha1 is not None:  # reduced decode: the full-resolution pixels' digest
                    sha1[i] = loaded.pixel_sha1
                    continue
                digest = hashlib.sha1(pixel_header(mode, width, height, loaded.scale))
                digest.update(block)
                sha1[i] = digest.hexdigest()
            gray = tall if mode == "L" else tall.convert("L")
            gray_pixels = pixels if mode == "L" else np.asarray(gray).reshape(count, height, width)
            out.g32[idx] = _resize(gray_pixels, gray, count, (32, 32), _LANCZOS)
            out.g98[idx] = _resize(gray_pixels, gray, count, (9, 8), _LANCZOS)
            out.g8[idx] = _resize(gray_pixels, gray, count, (8, 8), _LANCZOS)
            for i, block in zip(idx, gray_pixels):
                out.local[i] = orb_features(block)
            if mode == "RGB":
                work = _resize(pixels, tall, count, (_WORK, _WORK), _BILINEAR)
                out.work[idx] = work
                out.gray_work[idx] = rgb_to_gray(work, np.uint8)
                out.colour[idx] = True
            else:
                out.gray_work[idx] = _resize(gray_pixels, gray, count, (_WORK, _WORK), _BILINEAR)
            if per_image:
                _exact_inputs(part, out, exact, whash)


def _exact_inputs(part: list[tuple[int, Any]], out: _Arrays, exact: bool, whash: bool) -> None:
    """Exact mode: hash inputs from the original frame where it is not L/RGB; wHash sources."""
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
    reason, bytes_sha1, fmt, orig_mode = [None] * n, [None] * n, [None] * n, [None] * n
    sizes = np.zeros((n, 3), np.int64)  # width, height, file size
    quality = np.full(n, _NAN)
    pending: list[tuple[int, Any]] = []
    held = 0
    sha1 = hashlib.sha1
    loads = iter_images(paths, max_pixels=max_pixels, keep_raw=exact,
                        reduce_to=None if exact else _FAST_DECODE, full_pixel_sha1=not exact)
    for i, loaded in enumerate(loads):
        data = loaded.data
        if data:
            bytes_sha1[i] = sha1(data).hexdigest()
        sizes[i] = loaded.width, loaded.height, len(data)
        fmt[i], orig_mode[i] = loaded.format, loaded.mode
        image = loaded.image
        if image is None:
            reason[i] = loaded.reason
            continue
        if fmt[i] in ("JPEG", "MPO"):
            quality[i] = jpeg_quality(loaded.quantization)
        ok[i] = True
        pending.append((i, loaded))
        held += image.width * image.height
        if held > _PIXEL_BUDGET:
            _process(pending, out, exact, whash)
            pending, held = [], 0
    _process(pending, out, exact, whash)
    meta = {"reason": reason, "bytes_sha1": bytes_sha1, "format": fmt, "mode": orig_mode, "sizes": sizes,
            "jpeg_quality": quality}
    return _assemble(n, ok, meta, out, whash)


def _assemble(n: int, ok: np.ndarray, meta: dict[str, Any], out: _Arrays, whash: bool) -> ChunkResult:
    idx = np.flatnonzero(ok)
    every = len(idx) == n  # no unreadable row: no gather copies
    columns: dict[str, Any] = {"ok": ok, "reason": meta["reason"], "bytes_sha1": meta["bytes_sha1"],
                               "pixel_sha1": out.pixel_sha1}
    hash_inputs = (("phash", _hashes.phash, out.g32), ("dhash", _hashes.dhash, out.g98),
                   ("ahash", _hashes.ahash, out.g8))
    flips = {}
    for name, fn, stack in hash_inputs:
        rows = stack if every else stack[idx]
        for suffix, view in (("", rows), ("_flip", rows[:, :, ::-1])):
            values = np.zeros(n, np.uint64)
            if len(idx):  # a chunk with no readable image: every hash stays 0
                values[idx] = fn(view)
            (columns if not suffix else flips)[name + suffix] = values
    columns.update(flips)  # order: HASH_COLUMNS
    width, height, file_size = meta["sizes"].T
    columns["width"], columns["height"] = width.copy(), height.copy()
    columns["aspect"] = np.divide(width, height, out=np.full(n, _NAN), where=height > 0)
    columns["file_size"] = file_size.copy()
    columns["format"], columns["mode"] = meta["format"], meta["mode"]
    descriptors = np.zeros((n, DESCRIPTOR_DIM), np.float32)
    props = {c: np.full(n, _NAN) for c in PIXEL_COLUMNS}
    if len(idx):
        gray = out.gray_work if every else out.gray_work[idx]
        colour = out.colour if every else out.colour[idx]
        work = out.rgb_rows(idx)
        descriptors[idx] = describe(work, gray, colour=colour)
        for column, values in pixel_properties(work, gray, colour=colour).items():
            props[column][idx] = values
    columns.update(props)
    columns["jpeg_quality"] = meta["jpeg_quality"]
    if whash:
        values = np.zeros(n, np.uint64)
        if len(idx):
            values[idx] = _hashes.whash([out.hash_images[i] for i in idx])
        columns["whash"] = values
    local = LocalFeatures.from_parts([part if part is not None else NO_FEATURES
                                      for part in out.local])
    return ChunkResult(columns, out.g32, descriptors, local)


def fingerprint_chunk(
    paths: Sequence[str], *, mode: str = "fast", max_pixels: int | None = DEFAULT_MAX_PIXELS,
    whash: bool = False,
) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """Fingerprint a chunk of files: ``[(row, thumb, descriptor), ...]`` in order.

    ``row`` holds every table column except ``path``.
    """
    return fingerprint_columns(paths, mode=mode, max_pixels=max_pixels, whash=whash).records()


def fingerprint_chunks(chunks: Sequence[Sequence[str]], **options: Any) -> list[ChunkResult]:
    """:func:`fingerprint_columns` of each chunk (the function pool workers run)."""
    return [fingerprint_columns(chunk, **options) for chunk in chunks]
