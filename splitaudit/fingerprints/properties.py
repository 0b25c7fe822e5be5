"""Per-image properties used by the imbalance checks, vectorised over a batch.

Pixel statistics are measured on the same fixed-size (32x32) RGB version of
every image, so they compare across image sizes:

- ``brightness``: mean gray level (0-255);
- ``contrast``: standard deviation of gray;
- ``sharpness``: variance of the 4-neighbour Laplacian of the 32x32 gray image;
- ``entropy``: Shannon entropy (bits) of the 256-bin gray histogram;
- ``colourfulness``: Hasler & Süsstrunk (2003),
  ``sqrt(sd_rg**2 + sd_yb**2) + 0.3 * sqrt(mean_rg**2 + mean_yb**2)``.

``jpeg_quality`` is estimated from the luminance quantization table by
matching the libjpeg standard table scaled to each quality 1-100 (NaN when the
file is not a JPEG).

Examples
--------
>>> import numpy as np
>>> rgb = np.full((1, 64, 64, 3), 128, dtype=np.uint8)
>>> pixel_properties(rgb)["contrast"].tolist()
[0.0]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .descriptor import rgb_to_gray

__all__ = ["pixel_properties", "jpeg_quality", "PIXEL_COLUMNS"]

PIXEL_COLUMNS = ("brightness", "contrast", "sharpness", "entropy", "colourfulness")

# libjpeg's standard luminance table (Annex K), natural (row-major) order.
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64)


def _quality_tables() -> np.ndarray:
    quality = np.arange(1, 101, dtype=np.float64)
    scale = np.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality)
    return np.clip(np.floor((_STD_LUMA[None] * scale[:, None] + 50) / 100), 1, 255)


_TABLES = _quality_tables()


def jpeg_quality(quantization: dict | None) -> float:
    """Estimated libjpeg quality (1-100) from Pillow's ``image.quantization``.

    Examples
    --------
    >>> jpeg_quality(None)
    nan
    >>> jpeg_quality({0: list(_TABLES[89].astype(int))})
    90.0
    """
    if not quantization or 0 not in quantization:
        return float("nan")
    return _quality_of_table(tuple(int(v) for v in quantization[0]))


@lru_cache(maxsize=256)
def _quality_of_table(values: tuple[int, ...]) -> float:
    # Memoised: a data set holds few distinct tables (one per encoder setting).
    table = np.asarray(values, dtype=np.float64)
    if table.size != 64:
        return float("nan")
    error = np.abs(_TABLES - table[None]).sum(axis=1)
    return float(np.argmin(error) + 1)


def _variance(total: np.ndarray, squares: np.ndarray, count: int) -> np.ndarray:
    """Population variance from exact integer sums (one rounding, never negative)."""
    numerator = count * squares - total * total
    return np.maximum(numerator, 0).astype(np.float64) / float(count * count)


def pixel_properties(
    rgb: np.ndarray, gray: np.ndarray | None = None, *, colour: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Pixel statistics of a stack of same-size RGB images, shape ``(n, h, w, 3)``.

    ``gray`` may pass ``rgb_to_gray(rgb)`` when the caller already has it;
    ``colour`` (bool, shape ``(n,)``) may mark rows known to be gray
    (``r == g == b``) with ``False``: their colourfulness is 0 without work.
    Every statistic is computed from exact integer sums of the 8-bit values.
    """
    rgb = np.asarray(rgb)
    n = len(rgb)
    if n == 0:
        return {name: np.zeros(0) for name in PIXEL_COLUMNS}
    if gray is None:
        gray = rgb_to_gray(rgb, np.uint8)
    gray = np.asarray(gray)
    if gray.dtype != np.uint8:
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    _, h, w = gray.shape
    count = h * w
    levels = np.add(gray.reshape(n, count), (np.arange(n, dtype=np.intp) * 256)[:, None], dtype=np.intp)
    counts = np.bincount(levels.ravel(), minlength=n * 256).reshape(n, 256)
    values = np.arange(256, dtype=np.int64)
    total = counts @ values
    squares = counts @ (values * values)
    hist = counts * (1.0 / count)
    logs = np.log2(hist, out=np.zeros_like(hist), where=hist > 0)
    g = gray.astype(np.int16)  # the Laplacian lies in [-1020, 1020]
    lap = g[:, 1:-1, :-2] + g[:, 1:-1, 2:]
    lap += g[:, :-2, 1:-1]
    lap += g[:, 2:, 1:-1]
    lap -= 4 * g[:, 1:-1, 1:-1]
    lap = lap.reshape(n, -1).astype(np.int32)
    inner = lap.shape[1]
    sharpness = _variance(lap.sum(axis=1, dtype=np.int64), (lap * lap).sum(axis=1, dtype=np.int64), inner) \
        if inner else np.full(n, np.nan)
    return {
        "brightness": total / float(count),
        "contrast": np.sqrt(_variance(total, squares, count)),
        "sharpness": sharpness,
        "entropy": -(hist * logs).sum(axis=1) + 0.0,
        "colourfulness": _colourfulness(rgb, colour),
    }


def _colourfulness(rgb: np.ndarray, colour: np.ndarray | None) -> np.ndarray:
    """Hasler & Süsstrunk colourfulness from exact integer sums; 0 for rows marked gray."""
    n = len(rgb)
    out = np.zeros(n)
    rows = np.arange(n) if colour is None else np.flatnonzero(np.asarray(colour, dtype=bool))
    if not len(rows):
        return out
    x = (rgb if len(rows) == n else rgb[rows]).reshape(len(rows), -1, 3).astype(np.int32)
    count = x.shape[1]
    rg = x[..., 0] - x[..., 1]
    yb2 = x[..., 0] + x[..., 1]
    yb2 -= 2 * x[..., 2]  # 2 * yb, kept integer
    sum_rg = rg.sum(axis=1, dtype=np.int64)
    sum_yb2 = yb2.sum(axis=1, dtype=np.int64)
    var_rg = _variance(sum_rg, (rg * rg).sum(axis=1, dtype=np.int64), count)
    var_yb = _variance(sum_yb2, (yb2 * yb2).sum(axis=1, dtype=np.int64), count) * 0.25
    mean_rg = sum_rg / float(count)
    mean_yb = sum_yb2 / (2.0 * count)
    out[rows] = np.sqrt(var_rg + var_yb) + 0.3 * np.hypot(mean_rg, mean_yb)
    return out
