"""Safe, fast image decoding: every file becomes an image or a short reason.

:func:`open_image` reads a file once (so its bytes can also be hashed), decodes
the first frame, applies the EXIF orientation and normalises the pixel mode to
``"RGB"`` or ``"L"`` the same way for every format:

=====================  ==========================================================
original mode          normalised to
=====================  ==========================================================
``1``, ``L``           ``L``
``LA``, ``La``         ``L``, composited on white
``P`` (no alpha)       ``RGB``
``P`` + transparency,  ``RGB``, composited on white
``PA``, ``RGBA``,
``RGBa``
``RGB``, ``CMYK``,     ``RGB`` (Pillow's conversion)
``YCbCr``, ``LAB``,
``HSV``, ``RGBX``
``I;16*``, ``I``       ``L``: values above 255 are scaled by 255/65535, negatives clip
``F``                  ``L``: [0, 1] scaled by 255, [0, 255] kept, otherwise min-max
=====================  ==========================================================

Unreadable files never raise: they come back as :class:`LoadedImage` with
``image=None`` and a short ``reason`` such as ``"truncated image file"``,
``"not an image (cannot identify format)"``, ``"empty file (0 bytes)"``,
``"permission denied"``, ``"file not found"``, ``"is a directory"`` or
``"decompression bomb: 900000000 pixels > limit 89478485"``.

Decompression bombs: Pillow only *warns* between its limit and twice its
limit; here any image over ``max_pixels`` (default ``PIL.Image.MAX_IMAGE_PIXELS``)
is refused, checked from the header before any pixel is decoded.

Nothing is ever written to disk.

Examples
--------
>>> loaded = open_image("photo.jpg", reduce_to=32)     # doctest: +SKIP
>>> loaded.ok, loaded.image.mode                       # doctest: +SKIP
(True, 'RGB')
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import InputError, InputTypeError
from ._plainpng import decode_plain_png as _decode_plain_png

__all__ = [
    "LoadedImage",
    "open_image",
    "iter_images",
    "normalize_mode",
    "pixel_digest",
    "DEFAULT_MAX_PIXELS",
]

DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485
"""Pillow's own decompression-bomb limit at import time."""

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_WHITE_RGB = (255, 255, 255)
# Format tried first for a file extension (skips probing the other plugins);
# a file whose content does not match its extension falls back to all formats.
_FORMAT_HINTS = {
    ".png": ("PNG",), ".jpg": ("JPEG",), ".jpeg": ("JPEG",), ".jpe": ("JPEG",), ".jfif": ("JPEG",),
    ".bmp": ("BMP",), ".gif": ("GIF",), ".webp": ("WEBP",), ".tif": ("TIFF",), ".tiff": ("TIFF",),
}
# Where Pillow's getexif() looks for an orientation; when none is present the
# orientation is 1 and the (slow) EXIF parse is skipped.
_ORIENTATION_SOURCES = ("exif", "Raw profile type exif", "XML:com.adobe.xmp", "xmp")


@dataclass(frozen=True)
class LoadedImage:
    """The outcome of reading one file.

    Attributes
    ----------
    image : PIL.Image.Image or None
        Normalised (``"RGB"`` or ``"L"``), EXIF-oriented first frame; possibly
        reduced when ``reduce_to`` was given. ``None`` when unreadable.
    raw : PIL.Image.Image or None
        The oriented frame in its original mode at the decoded size (kept only
        with ``keep_raw=True``; used to reproduce imagehash exactly).
    reason : str or None
        Why the file could not be read; ``None`` when it was.
    data : bytes
        The file's bytes (empty when the file could not be read at all).
    format, mode : str or None
        Pillow's format name and the original pixel mode.
    width, height : int
        Size as displayed, i.e. after the EXIF orientation (0 when unknown).
    scale : int
        Linear reduction applied while decoding (1 = full resolution).
    pixel_sha1 : str or None
        :func:`pixel_digest` of the full-resolution normalised pixels; set only
        when ``full_pixel_sha1=True`` was asked and ``image`` is reduced (at
        full resolution the caller hashes ``image`` itself).
    """

    image: Image.Image | None
    reason: str | None = None
    data: bytes = b""
    format: str | None = None
    mode: str | None = None
    width: int = 0
    height: int = 0
    scale: int = 1
    raw: Image.Image | None = None
    quantization: dict | None = None
    pixel_sha1: str | None = None

    @property
    def ok(self) -> bool:
        """True when the image was decoded."""
        return self.image is not None

    @property
    def file_size(self) -> int:
        """Size of the file in bytes."""
        return len(self.data)


def _scale_to_uint8(arr: np.ndarray, is_float: bool) -> np.ndarray:
    arr = arr.astype(np.float64, copy=False)
    if arr.size == 0:
        return arr.astype(np.uint8)
    if is_float:
        finite = arr[np.isfinite(arr)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        arr = np.nan_to_num(arr, nan=0.0, posinf=high, neginf=low)
        if low >= 0 and high <= 1:
            arr = arr * 255.0
        elif not (low >= 0 and high <= 255):
            arr = (arr - low) * (255.0 / (high - low)) if high > low else arr * 0
    elif arr.max() > 255:
        arr = arr * (255.0 / 65535.0)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _composite_on_white(image: Image.Image, gray: bool) -> Image.Image:
    rgba = image.convert("LA" if gray else "RGBA")
    base = Image.new("L" if gray else "RGB", image.size, 255 if gray else _WHITE_RGB)
    base.paste(rgba.convert("L" if gray else "RGB"), mask=rgba.getchannel("A"))
    return base


def pixel_header(mode: str, width: int, height: int, scale: int = 1) -> bytes:
    """The bytes hashed before the pixels by :func:`pixel_digest` (mode, size, decode scale)."""
    return f"{mode} {width}x{height} /".encode() + b"%d\n" % scale


def pixel_digest(image: Image.Image) -> str:
    """SHA-1 of a normalised (``"L"``/``"RGB"``) image's pixels, mode and size.

    Equal digests mean identical decoded pixels, whatever the file format.

    Examples
    --------
    >>> a = pixel_digest(Image.new("RGB", (4, 4), (1, 2, 3)))
    >>> a == pixel_digest(Image.new("RGB", (4, 4), (1, 2, 3))), a == pixel_digest(Image.new("RGB", (4, 4)))
    (True, False)
    """
    digest = hashlib.sha1(pixel_header(image.mode, *image.size))
    digest.update(image.tobytes())
    return digest.hexdigest()


def normalize_mode(image: Image.Image) -> Image.Image:
    """Return ``image`` in ``"RGB"`` or ``"L"`` following the module's table.

    Examples
    --------
    >>> normalize_mode(Image.new("RGBA", (2, 2), (0, 0, 0, 0))).getpixel((0, 0))
    (255, 255, 255)
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode in ("LA", "La"):
        return _composite_on_white(image.convert("LA") if mode == "La" else image, gray=True)
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in image.info):
        return _composite_on_white(image, gray=False)
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(image)
        return Image.fromarray(_scale_to_uint8(arr, is_float=mode == "F"), mode="L")
    return image.convert("RGB")


_BOMB_RE = re.compile(r"\((\d+) pixels\)")


def _reason_for(exc: BaseException) -> str:
    if isinstance(exc, Image.DecompressionBombError):
        match = _BOMB_RE.search(str(exc))
        return f"decompression bomb: {match.group(1) if match else 'too many'} pixels"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (cannot identify format)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    text = str(exc)
    if isinstance(exc, EOFError) or "truncated" in text or "broken data stream" in text:
        return "truncated image file"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"cannot decode: {first[:120]}"


@contextmanager
def _pillow_limit(max_pixels: int | None) -> Iterator[None]:
    """Let Pillow's own check pass anything our explicit check will judge."""
    saved = Image.MAX_IMAGE_PIXELS
    # Pillow raises above twice its limit; step aside only when ours is looser.
    raise_pillow = saved is not None and (max_pixels is None or max_pixels >= 2 * saved)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        if raise_pillow:
            Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise InputTypeError(
            f"max_pixels must be an int or None, got {type(max_pixels).__name__} {max_pixels!r}"
        )
    if max_pixels <= 0:
        raise InputError(f"max_pixels must be positive or None (no limit), got {max_pixels}")


def open_image(
    path: str | os.PathLike,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    reduce_to: int | None = None,
    keep_raw: bool = False,
    full_pixel_sha1: bool = False,
) -> LoadedImage:
    """Read and decode one image file without ever raising for a bad file.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    max_pixels : int or None, default Pillow's ``MAX_IMAGE_PIXELS``
        Refuse images with more pixels than this (``None``: no limit).
    reduce_to : int, optional
        Fast mode: decode at reduced resolution while both sides stay at least
        ``reduce_to`` (JPEG: DCT scaling via ``draft``; other formats: integer
        box reduction keeping both sides at least ``2 * reduce_to``, which is
        what ``resize(reducing_gap=2)`` does).
    keep_raw : bool, default False
        Also return the oriented frame in its original mode.
    full_pixel_sha1 : bool, default False
        When the decode is reduced, also hash the full-resolution normalised
        pixels (``LoadedImage.pixel_sha1``): a JPEG is decoded a second time
        at full size, other formats hash the frame before its reduction.

    Returns
    -------
    LoadedImage

    Examples
    --------
    >>> open_image("/nonexistent.png").reason
    'file not found'
    """
    _check_options(max_pixels, reduce_to)
    with _pillow_limit(max_pixels):
        return _open_unguarded(path, max_pixels, reduce_to, keep_raw, full_pixel_sha1)


def iter_images(
    paths: Iterable[str | os.PathLike],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    reduce_to: int | None = None,
    keep_raw: bool = False,
    full_pixel_sha1: bool = False,
) -> Iterator[LoadedImage]:
    """:func:`open_image` for many files, yielding one :class:`LoadedImage` each.

    Same results as calling :func:`open_image` per path, but Pillow's pixel
    limit and warning filter are set up once for the whole run (while the
    generator is alive, ``DecompressionBombWarning`` is silenced).
    """
    _check_options(max_pixels, reduce_to)
    with _pillow_limit(max_pixels):
        for path in paths:
            yield _open_unguarded(path, max_pixels, reduce_to, keep_raw, full_pixel_sha1)


def _check_options(max_pixels: int | None, reduce_to: int | None) -> None:
    _check_max_pixels(max_pixels)
    if reduce_to is not None and (not isinstance(reduce_to, int) or reduce_to < 1):
        raise InputError(f"reduce_to must be a positive int or None, got {reduce_to!r}")


def _orientation(image: Image.Image) -> int:
    info = image.info
    if not hasattr(image, "tag_v2") and not any(key in info for key in _ORIENTATION_SOURCES):
        return 1
    return image.getexif().get(_ORIENTATION_TAG, 1)


def _open_bytes(data: bytes, path) -> Image.Image:
    """``Image.open`` on the bytes, trying the extension's format first."""
    hint = _FORMAT_HINTS.get(os.path.splitext(os.fspath(path))[1].lower())
    if hint is not None:
        try:
            return Image.open(io.BytesIO(data), formats=hint)
        except UnidentifiedImageError:
            pass  # content does not match the extension: probe every format
    return Image.open(io.BytesIO(data))


def _oriented_normal(image: Image.Image, method) -> Image.Image:
    return normalize_mode(image.transpose(method) if method is not None else image)


def _open_unguarded(path, max_pixels: int | None, reduce_to: int | None, keep_raw: bool,
                    full_sha1: bool = False) -> LoadedImage:
    """:func:`open_image` body; the caller holds ``_pillow_limit(max_pixels)``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return LoadedImage(None, _reason_for(exc))
    if not data:
        return LoadedImage(None, "empty file (0 bytes)")
    plain = _decode_plain_png(data, max_pixels)
    if plain is not None:
        return _finish(plain, data, reduce_to, keep_raw, full_sha1)
    fmt = mode = None
    width = height = 0
    try:
        image = _open_bytes(data, path)
        fmt, mode = image.format, image.mode
        width, height = image.size
        if max_pixels is not None and width * height > max_pixels:
            return LoadedImage(
                None,
                f"decompression bomb: {width * height} pixels > limit {max_pixels}",
                data, fmt, mode, width, height,
            )
        quantization = getattr(image, "quantization", None)
        scale = 1
        if reduce_to is not None and fmt in ("JPEG", "MPO"):
            draft_mode = image.mode if image.mode in ("L", "RGB") else None
            image.draft(draft_mode, (reduce_to, reduce_to))
            scale = max(1, round(width / max(1, image.size[0])))
        image.load()
        orientation = _orientation(image)
        method = _TRANSPOSE.get(orientation)
        factor = min(image.size) // (2 * reduce_to) if reduce_to is not None and scale == 1 else 1
        full_digest = None
        if full_sha1 and scale > 1:  # DCT-scaled JPEG: decode the full frame once more, for its pixels only
            full = _open_bytes(data, path)
            full.load()
            full_digest = pixel_digest(_oriented_normal(full, method))
        elif full_sha1 and factor >= 2:
            full_digest = pixel_digest(_oriented_normal(image, method))
        # Pillow cannot reduce palette, bilevel or 16-bit images: those are
        # reduced after the mode normalisation instead.
        late = factor >= 2 and (image.mode in ("P", "1") or image.mode.startswith("I;16"))
        if factor >= 2 and not late:
            image = image.reduce(factor)
            scale = factor
        if method is not None:
            image = image.transpose(method)
            if method in (Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE,
                          Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270):
                width, height = height, width
        normal = normalize_mode(image)
        if late:
            normal = normal.reduce(factor)
            scale = factor
    except Exception as exc:  # a bad file is a record, not a crash
        reason = _reason_for(exc)
        if reason.startswith("decompression bomb") and max_pixels is not None:
            reason += f" > limit {max_pixels}"
        return LoadedImage(None, reason, data, fmt, mode, width, height)
    return LoadedImage(
        image=normal,
        data=data,
        format=fmt,
        mode=mode,
        width=width,
        height=height,
        scale=scale,
        raw=image if keep_raw else None,
        quantization=dict(quantization) if quantization else None,
        pixel_sha1=full_digest,
    )


def _finish(image: Image.Image, data: bytes, reduce_to: int | None, keep_raw: bool,
            full_sha1: bool = False) -> LoadedImage:
    """The :class:`LoadedImage` of a decoded plain PNG (mode ``L`` or ``RGB``, no EXIF).

    Same steps as :func:`_open_unguarded` takes for such an image: no
    orientation, an integer box reduction in fast mode, no mode conversion.
    """
    width, height = image.size
    scale = 1
    normal = image
    factor = min(width, height) // (2 * reduce_to) if reduce_to is not None else 1
    full_digest = None
    if factor >= 2:
        full_digest = pixel_digest(image) if full_sha1 else None
        normal = image.reduce(factor)
        scale = factor
    return LoadedImage(
        image=normal, data=data, format="PNG", mode=image.mode, width=width, height=height,
        scale=scale, raw=normal if keep_raw else None, pixel_sha1=full_digest,
    )
