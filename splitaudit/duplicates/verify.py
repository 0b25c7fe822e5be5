"""Verification of candidate pairs on aligned thumbnails, and the score.

A hash or neighbour hit is only a candidate. Each candidate pair is compared
on its (N, 32, 32) grayscale thumbnails:

1. orientation: the mirror is used when it correlates better at 16x16;
2. alignment: the best Pearson correlation over shifts of up to
   ``max_shift`` pixels (handles slight crops);
3. residual: at that alignment, the second image is fitted to the first with
   an affine intensity map ``y = a*x + b`` (undoes brightness / contrast);
   ``thumb_rms`` is the RMS of the smallest ``1 - trim`` share of absolute
   residuals, in grey levels (a watermark or caption covering a few pixels is
   trimmed away; a different photo differs everywhere), and ``thumb_nrms``
   divides it by the first image's standard deviation.

The score is a logistic function of ``thumb_nrms``,
``score = 1 / (1 + exp((thumb_nrms - SCORE_MID) / SCORE_SCALE))``, calibrated
so planted copies (JPEG q30, 50% resize, 5% crop, brightness, blur, flip,
caption) score above 0.9 and different-image look-alikes below 0.1; see
``benchmarks/results_duplicates.md``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["align_pairs", "score_from_nrms", "SCORE_MID", "SCORE_SCALE"]

SCORE_MID = 0.16
SCORE_SCALE = 0.025


def score_from_nrms(nrms: np.ndarray, mid: float = SCORE_MID, scale: float = SCORE_SCALE) -> np.ndarray:
    """Map a normalised residual (0 = identical) to a score in [0, 1]."""
    z = np.clip((np.asarray(nrms, dtype=np.float64) - mid) / scale, -50, 50)
    return 1.0 / (1.0 + np.exp(z))


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 1e-6)


def align_pairs(
    thumbs: np.ndarray,
    vectors: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    max_shift: int = 1,
    trim: float = 0.1,
    batch: int = 20_000,
) -> dict[str, np.ndarray]:
    """Align and compare thumbnail pairs ``(a[i], b[i])``.

    Parameters
    ----------
    thumbs : uint8 array (N, S, S)
        Grayscale thumbnails.
    vectors : float32 array (N, D)
        :func:`~splitaudit.duplicates.search.thumb_vectors` of ``thumbs``
        and of their mirrors, stacked as ``(2, N, D)``.
    a, b : int arrays (P,)
        Pair indices into ``thumbs``; ``a`` is the reference (e.g. val).
    max_shift : int
        Largest shift tried in each direction, in thumbnail pixels.
    trim : float
        Share of the largest absolute residuals left out of ``thumb_rms``.

    Returns
    -------
    dict of arrays (P,)
        ``flipped`` (bool), ``shift_y``, ``shift_x``, ``thumb_corr``,
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
    }
    for start in range(0, p, batch):
        sl = slice(start, min(p, start + batch))
        _align_batch(thumbs, vectors, a[sl], b[sl], max_shift, trim, out, sl)
    out["score"] = score_from_nrms(out["thumb_nrms"]).astype(np.float32)
    return out


def _align_batch(thumbs, vectors, a, b, m, trim, out, sl):
    plain, mirror = vectors
    flip = (mirror[b] * plain[a]).sum(1) > (plain[b] * plain[a]).sum(1)
    ta = thumbs[a].astype(np.float32)
    tb = thumbs[b].astype(np.float32)
    tb[flip] = tb[flip, :, ::-1]
    s = ta.shape[1]
    inner = s - 2 * m
    # The reference crop is fixed; the other image moves under it.
    x = ta[:, m : m + inner, m : m + inner].reshape(len(a), -1)
    zx = _standardise(x)
    best = np.full(len(a), -2.0, np.float32)
    best_dy = np.zeros(len(a), np.int8)
    best_dx = np.zeros(len(a), np.int8)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            y = tb[:, m + dy : m + dy + inner, m + dx : m + dx + inner].reshape(len(a), -1)
            c = (zx * _standardise(y)).sum(1)
            better = c > best
            best[better], best_dy[better], best_dx[better] = c[better], dy, dx
    rows = np.arange(len(a))
    iy = (m + best_dy)[:, None] + np.arange(inner)[None, :]
    ix = (m + best_dx)[:, None] + np.arange(inner)[None, :]
    y = tb[rows[:, None, None], iy[:, :, None], ix[:, None, :]].reshape(len(a), -1)
    # Least-squares affine map x -> y, then trimmed residual RMS.
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    xc, yc = x - xm, y - ym
    var = (xc * xc).sum(1)
    slope = np.divide((xc * yc).sum(1), var, out=np.zeros_like(var), where=var > 1e-6)
    resid = np.abs(yc - slope[:, None] * xc)
    keep = max(1, int(round(resid.shape[1] * (1.0 - trim))))
    resid = np.partition(resid, keep - 1, axis=1)[:, :keep]
    rms = np.sqrt((resid * resid).mean(1))
    ystd = yc.std(1)
    nrms = np.divide(rms, ystd, out=np.where(rms > 1e-6, np.inf, 0.0).astype(np.float32), where=ystd > 1e-6)
    out["flipped"][sl] = flip
    out["shift_y"][sl] = best_dy
    out["shift_x"][sl] = best_dx
    out["thumb_corr"][sl] = best
    out["thumb_rms"][sl] = rms
    out["thumb_nrms"][sl] = nrms
