"""Pillow's 8-bit ``resize`` reproduced bit for bit in numpy, for stacks of images.

Pillow resizes 8-bit images in two separable passes (it picks the order), each
with fixed-point coefficients (22 fractional bits) computed from the filter
in double precision, and rounds/clips to 8 bits after each pass. Here the
coefficients are computed by the same formulas in scalar Python (the same
libm ``sin``), and each pass is one float64 matrix product over the whole
stack: every product and sum is an integer (times 2**-22) below 2**53, so
the float64 arithmetic is exact and equals Pillow's integer arithmetic.

Each (input size, output size, filter) is checked once against Pillow itself
on noise images, which also tells which pass Pillow runs first for that size
(the 8-bit rounding between the passes makes the order matter);
:func:`resize_stack` returns ``None`` when neither order matches
(callers then fall back to Pillow), so a Pillow that computes differently
can only cost speed, not exactness.

Examples
--------
>>> import numpy as np
>>> from PIL import Image
>>> stack = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
>>> out = resize_stack(stack, (32, 32), Image.Resampling.LANCZOS)
>>> bool((out[1] == np.asarray(Image.fromarray(stack[1]).resize((32, 32), Image.Resampling.LANCZOS))).all())
True
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = ["resize_stack", "pillow_resize_stack"]

_PRECISION_BITS = 22  # Pillow: 32 - 8 - 2


def _lanczos(x: float) -> float:
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _bilinear(x: float) -> float:
    if x < 0.0:
        x = -x
    return 1.0 - x if x < 1.0 else 0.0


_FILTERS = {
    Image.Resampling.LANCZOS: (_lanczos, 3.0),
    Image.Resampling.BILINEAR: (_bilinear, 1.0),
}

_MATRICES: dict[tuple, np.ndarray] = {}
_CHECKED: dict[tuple, str | None] = {}


def _matrix(in_size: int, out_size: int, resample) -> np.ndarray:
    """Pillow's fixed-point coefficients / 2**22 as a dense ``(in_size, out_size)`` float64 matrix."""
    key = (in_size, out_size, resample)
    if key not in _MATRICES:
        fn, base_support = _FILTERS[resample]
        scale = in_size / out_size
        filterscale = max(scale, 1.0)
        support = base_support * filterscale
        matrix = np.zeros((in_size, out_size), np.float64)
        for xx in range(out_size):
            center = (xx + 0.5) * scale
            ss = 1.0 / filterscale
            xmin = max(int(center - support + 0.5), 0)
            xmax = min(int(center + support + 0.5), in_size) - xmin
            weights = [fn((x + xmin - center + 0.5) * ss) for x in range(xmax)]
            total = 0.0
            for w in weights:
                total += w
            for x, w in enumerate(weights):
                k = w / total if total != 0.0 else w
                fixed = k * (1 << _PRECISION_BITS)
                matrix[x + xmin, xx] = int(-0.5 + fixed) if k < 0 else int(0.5 + fixed)
        # Scaled by 2**-22 (exact): products and sums stay exact, already in 8-bit units.
        _MATRICES[key] = matrix * (1.0 / (1 << _PRECISION_BITS))
    return _MATRICES[key]


def _round(acc: np.ndarray) -> np.ndarray:
    """Pillow's ``clip8``: ``(sum + 2**21) >> 22`` clipped to 0..255 (``acc`` is already / 2**22)."""
    acc += 0.5
    np.clip(acc, 0.0, 255.0, out=acc)
    return acc.astype(np.uint8)  # truncation == floor for values >= 0


def _horizontal(arr: np.ndarray, out_w: int, resample) -> np.ndarray:
    n, height, width = arr.shape[:3]
    channels = arr.shape[3:]
    if out_w == width:
        return arr
    # one matrix product: (n*h[*c] rows of w) @ (w, out_w)
    moved = np.moveaxis(arr, 2, -1) if channels else arr
    acc = moved.astype(np.float64).reshape(-1, width) @ _matrix(width, out_w, resample)
    out = _round(acc).reshape(n, height, *channels, out_w)
    return np.moveaxis(out, -1, 2) if channels else out


def _vertical(arr: np.ndarray, out_h: int, resample) -> np.ndarray:
    n, height = arr.shape[:2]
    rest = arr.shape[2:]
    if out_h == height:
        return arr
    # columns as rows: (n*w[*c], h) @ (h, out_h)
    cols = np.moveaxis(arr, 1, -1).astype(np.float64).reshape(-1, height)
    out = _round(cols @ _matrix(height, out_h, resample)).reshape(n, *rest, out_h)
    return np.moveaxis(out, -1, 1)


def _resize_unchecked(stack: np.ndarray, size: tuple[int, int], resample, order: str) -> np.ndarray:
    out_w, out_h = size
    if order == "h":
        arr = _vertical(_horizontal(stack, out_w, resample), out_h, resample)
    else:
        arr = _horizontal(_vertical(stack, out_h, resample), out_w, resample)
    return np.ascontiguousarray(arr)


def _order(width: int, height: int, channels: tuple, size: tuple[int, int], resample) -> str | None:
    """Which pass Pillow runs first here (``"h"``/``"v"``), checked on noise; None if neither matches."""
    key = (width, height, channels, size, resample)
    if key not in _CHECKED:
        rng = np.random.default_rng(width * 7919 + height * 31 + size[0])
        probe = rng.integers(0, 256, (2, height, width, *channels), dtype=np.uint8)
        probe[1] = np.where(probe[1] > 127, 255, 0)  # hard edges: overshoot and clipping
        want = np.stack([np.asarray(Image.fromarray(p).resize(size, resample)) for p in probe])
        _CHECKED[key] = None
        for order in ("h", "v"):
            if np.array_equal(_resize_unchecked(probe, size, resample, order), want):
                _CHECKED[key] = order
                break
    return _CHECKED[key]


def resize_stack(stack: np.ndarray, size: tuple[int, int], resample) -> np.ndarray | None:
    """``Image.fromarray(img).resize(size, resample)`` for each image of ``stack``.

    Parameters
    ----------
    stack : ndarray of uint8, shape (n, h, w) or (n, h, w, 3)
    size : (width, height)
    resample : ``Image.Resampling.LANCZOS`` or ``BILINEAR``

    Returns
    -------
    ndarray of uint8, shape (n, height, width[, 3]), or None
        ``None`` when this size/filter is not supported or did not match
        Pillow on the one-time check; the caller should use Pillow then.
    """
    if resample not in _FILTERS or stack.dtype != np.uint8 or stack.ndim not in (3, 4):
        return None
    height, width = stack.shape[1:3]
    channels = stack.shape[3:]
    size = (int(size[0]), int(size[1]))
    if channels not in ((), (3,)) or min(width, height, *size) < 1:
        return None
    order = _order(width, height, channels, size, resample)
    return None if order is None else _resize_unchecked(stack, size, resample, order)


# Fallback: Pillow itself, on images stacked into one tall image.

_PASS_ORDER: dict[tuple, str] = {}


def _pass_order(mode: str, width: int, height: int, size: tuple[int, int], resample) -> str:
    """Which separable pass Pillow runs first for this resize: ``"h"``, ``"v"`` or ``"direct"``.

    Pillow picks the order itself (it depends on the sizes and the Pillow
    version), and the 8-bit rounding between the passes makes the order
    matter. So it is probed once per size on a noise image: the stacked
    two-call resize is used only in the order that reproduces Pillow's own
    result there; if neither does, images are resized one by one.
    """
    key = (mode, width, height, size, resample)
    if key not in _PASS_ORDER:
        rng = np.random.default_rng(width * 7919 + height)
        shape = (height, width, 3) if mode == "RGB" else (height, width)
        probe = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        want = np.asarray(probe.resize(size, resample))
        out_w, out_h = size
        order = "direct"
        if np.array_equal(np.asarray(probe.resize((out_w, height), resample).resize(size, resample)), want):
            order = "h"
        elif np.array_equal(np.asarray(probe.resize((width, out_h), resample).resize(size, resample)), want):
            order = "v"
        _PASS_ORDER[key] = order
    return _PASS_ORDER[key]


def pillow_resize_stack(tall: Image.Image, count: int, size: tuple[int, int], resample) -> np.ndarray:
    """Resize each of ``count`` same-size images stacked in ``tall`` to ``size``.

    Pillow resizes in two separable passes, each rounding to 8 bits. A
    horizontal pass runs on the tall stack (rows are independent), a vertical
    pass on the images laid side by side (columns are independent), so with
    the passes in Pillow's own order every image comes out bit-identical to
    ``image.resize(size, resample)``, in two Pillow calls for the whole stack.
    """
    width, total_height = tall.size
    height = total_height // count
    out_w, out_h = size
    channels = (3,) if tall.mode == "RGB" else ()
    order = _pass_order(tall.mode, width, height, size, resample) if count > 1 else "direct"
    if order == "direct":
        if count == 1:
            return np.asarray(tall.resize(size, resample))[None]
        return np.stack([
            np.asarray(tall.crop((0, k * height, width, (k + 1) * height)).resize(size, resample))
            for k in range(count)
        ])
    axes = (1, 0, 2, *range(3, 3 + len(channels)))

    def horizontal(image: Image.Image, rows: int) -> Image.Image:
        return image if image.size[0] == out_w else image.resize((out_w, rows), resample)

    def vertical(image: Image.Image, cols: int) -> np.ndarray:
        arr = np.asarray(image).reshape(count, height, cols, *channels)
        if out_h == height:
            return arr
        wide = np.ascontiguousarray(arr.transpose(axes)).reshape(height, count * cols, *channels)
        small = np.asarray(Image.fromarray(wide).resize((count * cols, out_h), resample))
        return small.reshape(out_h, count, cols, *channels).transpose(axes)

    if order == "h":
        return vertical(horizontal(tall, total_height), out_w)
    # vertical first, then horizontal on the (shorter) stack
    first = np.ascontiguousarray(vertical(tall, width)).reshape(count * out_h, width, *channels)
    return np.asarray(horizontal(Image.fromarray(first), count * out_h)).reshape(count, out_h, out_w, *channels)
