"""Verification of candidate pairs on aligned thumbnails, and the score.

A hash or neighbour hit is only a candidate. Each candidate pair is compared
on its (N, 32, 32) grayscale thumbnails:

1. orientation: the mirror is used when it correlates better at 16x16;
2. alignment: the best Pearson correlation over shifts of up to
   ``max_shift`` pixels; pairs still uncertain (residual 1 to 15 grey
   levels) are retried with the second image zoomed by +-5 % (a slight
   crop changes the scale);
3. residual: at that alignment, the second image is fitted to the first with
   an affine intensity map ``y = a*x + b`` (undoes brightness / contrast);
   ``thumb_rms`` is the RMS of the smallest ``1 - trim`` share of absolute
   residuals, in grey levels of the lower-contrast image of the two (a
   caption covering a few pixels is trimmed away; a different photo differs
   everywhere). ``thumb_nrms`` divides it by that image's standard deviation
   (kept as evidence; on low-contrast images it exaggerates, so the score
   does not use it). The gain is held to 0.2-5, and a pair where either
   thumbnail is flat or featureless (under :data:`MIN_THUMB_DETAIL` of fine
   detail: a sky, haze, a wall) is compared on raw grey levels: after a fit,
   any two of those agree.

The score is a logistic function of ``thumb_rms``,
``score = 1 / (1 + exp((thumb_rms - SCORE_MID) / SCORE_SCALE))``. Calibration
(``benchmarks/bench_duplicates.py``): on Fashion-MNIST every val image whose
nearest train image is the same photo (pixel L2 <= 200 of 255) has
``thumb_rms`` <= 4, while look-alikes of the same class spread above it;
planted copies (JPEG q30, 50% resize, 5% crop, brightness, blur, flip,
caption) stay well below ``SCORE_MID``.

:func:`~splitaudit.duplicates.geometric.verify_geometric` is the stronger check for geometric edits (crops of
up to 25%, rotations up to ~12 degrees, shifts up to ``max_shift``, mirror,
overlays): a grid of mirror x rotation x zoom warps of the second thumbnail,
FFT correlation at half resolution to pick shifts and the best warps, then a
Gauss-Newton refinement of a continuous similarity warp plus affine
intensity, scored by the trimmed RMS residual over the std of the first
image (``geo_nrms``). Calibration (``benchmarks/bench_embeddings.py``,
Fashion-MNIST, 32-px thumbnails): edited copies have median ``geo_nrms``
0.00-0.04 for every edit but blur (0.07), non-copies (hash and embedding
neighbours of the same class) 0.12; a threshold of about 0.04 keeps
precision at 0.98.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._parallel import thread_map
from ..search.mirror import thumb_vectors
from .residual import GAIN_RANGE

__all__ = ["align_pairs", "best_alignment", "score_from_rms", "SCORE_MID", "SCORE_SCALE"]

SCORE_MID = 5.0
"""``thumb_rms`` (grey levels) at which the score is 0.5."""
SCORE_SCALE = 0.5
"""Grey levels over which the score falls from 0.73 to 0.27."""


def score_from_rms(rms: np.ndarray, mid: float = SCORE_MID, scale: float = SCORE_SCALE) -> np.ndarray:
    """Map a thumbnail residual RMS in grey levels (0 = identical) to a score in [0, 1].

    Examples
    --------
    >>> float(score_from_rms(5.0))
    0.5
    """
    z = np.clip((np.asarray(rms, dtype=np.float64) - mid) / scale, -50, 50)
    return 1.0 / (1.0 + np.exp(z))


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 1e-6)


def align_pairs(
    thumbs: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    max_shift: int = 1,
    trim: float = 0.05,
    batch: int = 20_000,
    pooled: np.ndarray | None = None,
    jobs: int = 1,
) -> dict[str, np.ndarray]:
    """Align and compare thumbnail pairs ``(a[i], b[i])``.

    Parameters
    ----------
    thumbs : uint8 array (N, S, S)
        Grayscale thumbnails.
    a, b : int arrays (P,)
        Pair indices into ``thumbs``; ``a`` is the reference (e.g. val).
    max_shift : int
        Largest shift tried in each direction, in thumbnail pixels.
    trim : float
        Share of the largest absolute residuals left out of ``thumb_rms``.
    pooled : float32 array (2, N, 256), optional
        :func:`~splitaudit.search.mirror.thumb_vectors` of ``thumbs``
        and of their mirrors (computed per batch when not given).
    jobs : int
        Threads the batches are spread over (numpy releases the GIL);
        results do not depend on it.

    Returns
    -------
    dict of arrays (P,)
        ``flipped`` (bool), ``shift_y``, ``shift_x``, ``zoom`` (1, or the
        zoom of the second image that fitted better), ``thumb_corr``,
        ``thumb_rms``, ``thumb_nrms``, ``score``.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    p = len(a)
    out = {
        "flipped": np.zeros(p, bool),
        "shift_y": np.zeros(p, np.int8),
        "shift_x": np.zeros(p, np.int8),
        "thumb_corr": np.zeros(p, np.float32),
        "thumb_rms": np.zeros(p, np.float32),
        "thumb_nrms": np.zeros(p, np.float32),
        "zoom": np.ones(p, np.float32),
    }
    slices = [slice(start, min(p, start + batch)) for start in range(0, p, batch)]

    detail = np.zeros(len(thumbs), np.float32)  # each image's once, not each pair's
    rows = np.unique(np.concatenate([a, b]))
    if len(rows):
        detail[rows] = fine_detail(thumbs[rows])
    # each batch writes its own rows of ``out``
    thread_map(lambda sl: _align_batch(thumbs, a[sl], b[sl], max_shift, trim, out, sl, pooled, detail), slices, jobs)
    out["score"] = score_from_rms(out["thumb_rms"]).astype(np.float32)
    return out


ZOOM = 0.05
"""Relative zoom tried on uncertain pairs (a 5% crop rescaled to the thumbnail)."""
MIN_THUMB_DETAIL = 0.8
"""Fine detail (:func:`fine_detail`, grey levels) both thumbnails of a pair need to be compared after a
brightness and contrast fit; with less in either they are compared on raw grey levels, as flat images
are: crops of sky, haze or a wall of different photos agree once brightness and contrast are fitted.
On the 48k split (crop boxes known), 2,313 of the 2,894 thumbnail-decided cross pairs that joined
different photos had less, and 386 of the 2,007 that overlapped by half (flat crops of one photo); the
planted thumbnail copies of photo256 s0 / s5, photo640 s1 and fmnist96 s0 had at least 1.24 / 0.92 /
1.30 / 8.31."""


def _zoom_matrix(size: int, zoom: float) -> np.ndarray:
    """Bilinear resampling matrix magnifying a ``size`` axis by ``zoom`` about its centre."""
    c = (size - 1) / 2.0
    src = np.clip(c + (np.arange(size) - c) / zoom, 0, size - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, size - 1)
    w = (src - lo).astype(np.float32)
    mat = np.zeros((size, size), np.float32)
    mat[np.arange(size), lo] += 1 - w
    mat[np.arange(size), hi] += w
    return mat


def best_alignment(ta, tb, m, trim, raw=None):
    """Best shift of ``tb`` under ``ta`` (float32 (n, s, s)) within ``m`` pixels by correlation of
    the inner ``s - 2m`` square, then the trimmed affine residual there: ``(corr, dy, dx, rms, nrms)``;
    the rows ``raw`` (bool, optional) and flat images are compared on raw grey levels."""
    n = len(ta)
    s = ta.shape[1]
    inner = s - 2 * m
    # The reference crop is fixed; the other image moves under it.
    x = ta[:, m : m + inner, m : m + inner].reshape(n, -1)
    zx = _standardise(x)
    best = np.full(n, -2.0, np.float32)
    best_dy = np.zeros(n, np.int8)
    best_dx = np.zeros(n, np.int8)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            y = tb[:, m + dy : m + dy + inner, m + dx : m + dx + inner].reshape(n, -1)
            c = (zx * _standardise(y)).sum(1)
            better = c > best
            best[better], best_dy[better], best_dx[better] = c[better], dy, dx
    rows = np.arange(n)
    iy = (m + best_dy)[:, None] + np.arange(inner)[None, :]
    ix = (m + best_dx)[:, None] + np.arange(inner)[None, :]
    y = tb[rows[:, None, None], iy[:, :, None], ix[:, None, :]].reshape(n, -1)
    # Least-squares affine map x -> y, then trimmed residual RMS.
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    xc, yc = x - xm, y - ym
    var = (xc * xc).sum(1)
    slope = np.divide((xc * yc).sum(1), var, out=np.zeros_like(var), where=var > 1e-6)
    # A flattened picture is not the same picture: its residual is taken at the nearest contrast ratio
    # allowed, in the grey levels of the image fitted (in the flat one's, any residual looks small).
    clamped = (slope < GAIN_RANGE[0]) | (slope > GAIN_RANGE[1])
    slope = np.clip(slope, *GAIN_RANGE).astype(np.float32)
    resid = np.abs(yc - slope[:, None] * xc)
    keep = max(1, int(round(resid.shape[1] * (1.0 - trim))))
    resid = np.partition(resid, keep - 1, axis=1)[:, :keep]
    # Express the residual in units of the lower-contrast image (slope < 1: y's units).
    rms = np.sqrt((resid * resid).mean(1)) / np.where(clamped, 1.0, np.maximum(slope, 1.0))
    ystd = np.minimum(yc.std(1), xc.std(1))
    # Flat images: an affine fit would call any two flat images equal; compare raw levels.
    flat = ystd < 1.0 if raw is None else (ystd < 1.0) | raw
    if flat.any():
        rms[flat] = np.sqrt(((x[flat] - y[flat]) ** 2).mean(1))
    nrms = np.divide(rms, ystd, out=np.where(rms > 1e-6, np.inf, 0.0).astype(np.float32), where=ystd > 1e-6)
    return best, best_dy, best_dx, rms.astype(np.float32), nrms.astype(np.float32)


def _align_batch(thumbs, a, b, m, trim, out, sl, pooled, detail):
    ta = thumbs[a].astype(np.float32)
    tb = thumbs[b].astype(np.float32)
    if pooled is None:
        va = thumb_vectors(ta)
        flip = (thumb_vectors(tb[:, :, ::-1]) * va).sum(1) > (thumb_vectors(tb) * va).sum(1)
    else:
        va = pooled[0][a]
        flip = (pooled[1][b] * va).sum(1) > (pooled[0][b] * va).sum(1)
    tb[flip] = tb[flip, :, ::-1]
    raw = np.minimum(detail[a], detail[b]) < MIN_THUMB_DETAIL  # featureless: no fit
    best, best_dy, best_dx, rms, nrms = best_alignment(ta, tb, m, trim, raw)
    zoomed = np.zeros(len(a), np.float32)
    # Slight crops change the scale, which shifts cannot undo: retry the
    # uncertain pairs with the other image zoomed by +-ZOOM.
    unsure = np.flatnonzero((rms > 1.0) & (rms < 3 * SCORE_MID))
    for zoom in (1.0 + ZOOM, 1.0 / (1.0 + ZOOM)) if len(unsure) else ():
        zmat = _zoom_matrix(tb.shape[1], zoom)
        tz = np.einsum("ij,pjk,lk->pil", zmat, tb[unsure], zmat, optimize=True)
        res = best_alignment(ta[unsure], tz, m, trim, raw[unsure])
        better = res[3] < rms[unsure]
        idx = unsure[better]
        best[idx], best_dy[idx], best_dx[idx], rms[idx], nrms[idx] = (r[better] for r in res)
        zoomed[idx] = zoom
    out["zoom"][sl] = np.where(zoomed > 0, zoomed, 1.0)
    out["flipped"][sl] = flip
    out["shift_y"][sl] = best_dy
    out["shift_x"][sl] = best_dx
    out["thumb_corr"][sl] = best
    out["thumb_rms"][sl] = rms
    out["thumb_nrms"][sl] = nrms


def fine_detail(thumbs: np.ndarray) -> np.ndarray:
    """Standard deviation (grey levels) of each thumbnail less its 3x3 mean: the detail two
    thumbnails can agree on beyond a brightness and contrast fit."""
    t = np.asarray(thumbs, np.float32)
    return (t - ndimage.uniform_filter(t, size=(1, 3, 3))).reshape(len(t), -1).std(1)
