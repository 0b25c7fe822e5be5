"""A small weight-free image descriptor for near-duplicate search (512-d).

Three parts, each L2-normalised, concatenated and L2-normalised again
(so each part weighs the same):

1. a mean-centred 16x16 gray thumbnail (256 values): re-encodes, resizes, blur;
2. a sqrt-normalised (Hellinger) HSV 8x4x4 colour histogram (128): layout-free;
3. a 4x4-cell x 8-bin gradient-orientation histogram, normalised per cell (128):
   edges and texture, robust to brightness and contrast.

On the 50-image test in ``research/embedding.md`` this concatenation caught
0.888 of near duplicates at 1 % false positives (CNN embeddings: 0.88-0.90).
It is weak on flips, crops and overlays.

Everything is vectorised over a stack of RGB arrays.

Examples
--------
>>> import numpy as np
>>> rgb = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
>>> describe(rgb).shape
(3, 512)
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["describe", "DESCRIPTOR_DIM", "rgb_to_gray", "block_mean"]

DESCRIPTOR_DIM = 512


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """Pillow's ``convert("L")`` of each RGB image, as float32 ``(n, h, w)``.

    The stack is converted as one tall image, so it is one C call.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    n, h, w, _ = rgb.shape
    if n == 0:
        return np.zeros((0, h, w), np.float32)
    tall = Image.fromarray(rgb.reshape(n * h, w, 3), "RGB").convert("L")
    return np.asarray(tall, dtype=np.float32).reshape(n, h, w)


def block_mean(arr: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of the two axes after the first."""
    n, h, w = arr.shape[:3]
    rest = arr.shape[3:]
    return arr.reshape(n, h // factor, factor, w // factor, factor, *rest).mean(axis=(2, 4))


def _l2(x: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 1e-12)


def _hsv_histogram(rgb: np.ndarray) -> np.ndarray:
    n, h, w, _ = rgb.shape
    # One Pillow call converts the whole stack (as one tall image) to 8-bit HSV.
    tall = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8).reshape(n * h, w, 3), "RGB")
    hsv = np.asarray(tall.convert("HSV")).reshape(n, h * w, 3)
    index = ((hsv[..., 0] >> 5) << 4) | ((hsv[..., 1] >> 6) << 2) | (hsv[..., 2] >> 6)  # uint8, < 128
    index = index.astype(np.intp)
    index += (np.arange(n, dtype=np.intp) * 128)[:, None]
    counts = np.bincount(index.ravel(), minlength=n * 128).reshape(n, 128)
    return np.sqrt(counts * (1.0 / (h * w)))


def _cell_bins(h: int, w: int, cells: int, bins: int) -> np.ndarray:
    cell_y = (np.arange(h) * cells // h)[:, None]
    cell_x = (np.arange(w) * cells // w)[None, :]
    return ((cell_y * cells + cell_x) * bins).astype(np.intp)


def _gradient_histogram(gray: np.ndarray, cells: int = 4, bins: int = 8) -> np.ndarray:
    gray = np.asarray(gray, dtype=np.float32)
    n, h, w = gray.shape
    gx = np.zeros_like(gray)
    gy = np.zeros_like(gray)
    np.subtract(gray[:, :, 2:], gray[:, :, :-2], out=gx[:, :, 1:-1])
    np.subtract(gray[:, 2:, :], gray[:, :-2, :], out=gy[:, 1:-1, :])
    angle = np.mod(np.arctan2(gy, gx), np.float32(np.pi))  # unsigned orientation in [0, pi)
    magnitude = np.hypot(gx, gy, out=gx)
    orient = (angle * np.float32(bins / np.pi)).astype(np.intp)
    np.minimum(orient, bins - 1, out=orient)
    orient += _cell_bins(h, w, cells, bins)[None]
    orient += (np.arange(n, dtype=np.intp) * (cells * cells * bins))[:, None, None]
    hist = np.bincount(orient.ravel(), weights=magnitude.ravel(), minlength=n * cells * cells * bins)
    hist = _l2(hist.reshape(n, cells * cells, bins))
    return hist.reshape(n, cells * cells * bins)


def _half(gray: np.ndarray) -> np.ndarray:
    """2x2 block mean of ``(n, h, w)`` (h, w even), as four strided adds."""
    return (gray[:, 0::2, 0::2] + gray[:, 1::2, 0::2] + gray[:, 0::2, 1::2] + gray[:, 1::2, 1::2]) * 0.25


def describe(rgb: np.ndarray, gray: np.ndarray | None = None) -> np.ndarray:
    """Descriptors of a stack of RGB images.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (n, 32, 32, 3)
        Images resized to 32x32 (any size divisible by 32 works).
    gray : ndarray, optional
        ``rgb_to_gray(rgb)`` when the caller already has it.

    Returns
    -------
    ndarray of float32, shape (n, 512)
        Each row L2-normalised (an all-zero row only for an empty input image).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 4 or rgb.shape[3] != 3 or rgb.shape[1] % 16 or rgb.shape[2] % 16:
        raise ValueError(f"rgb must have shape (n, h, w, 3) with h, w multiples of 16, got {rgb.shape}")
    if len(rgb) == 0:
        return np.zeros((0, DESCRIPTOR_DIM), dtype=np.float32)
    gray = (rgb_to_gray(rgb) if gray is None else gray).astype(np.float32, copy=False)
    factor = gray.shape[1] // 16
    thumb = (_half(gray) if factor == 2 else block_mean(gray, factor)).reshape(len(rgb), 256)
    thumb = _l2(thumb - thumb.mean(axis=1, keepdims=True))
    if rgb.shape[1] <= 32:
        small = rgb.astype(np.uint8, copy=False)
    else:
        small = np.rint(block_mean(rgb.astype(np.float32), rgb.shape[1] // 32)).astype(np.uint8)
    colour = _l2(_hsv_histogram(small))
    gray32 = block_mean(gray, gray.shape[1] // 32) if gray.shape[1] >= 32 else gray
    edges = _l2(_gradient_histogram(gray32))
    return _l2(np.concatenate([thumb, colour, edges], axis=1)).astype(np.float32)
