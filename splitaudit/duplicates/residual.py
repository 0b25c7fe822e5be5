"""The aligned residual of a keypoint fit: how well two thumbnails agree once the fit aligns them.

:func:`aligned_residual` warps one image's 32x32 thumbnail onto the other's frame with the
transform :mod:`.keypoints` fitted, fits an intensity gain and offset robustly (refitted on the
pixels that agree best, so a caption or logo does not set them) and takes the trimmed RMS of what
is left, in grey levels and over the image's contrast. A copy, a crop or a neighbouring tile agrees
on its overlap; the same objects moved over another background do not. A fit that magnifies
(a centre crop) compares the two at one resolution (:data:`MATCH_FROM`). Pairs are handled in
batches of :data:`_BATCH`, all in numpy.
"""

from __future__ import annotations

import numpy as np

__all__ = ["aligned_residual", "blur_rows", "gain_offset", "RESIDUAL_MIN_INLIERS", "MATCH_FROM", "MATCH_SIGMA"]

RESIDUAL_MIN_INLIERS = 5
"""Fits with fewer inliers get no aligned residual: even doubled they reach
:data:`~splitaudit.duplicates.keypoints.INLIERS_MID` (a score of 0.5) only with a perfect residual and extent."""

_REFITS = 3
"""Gain/offset refits in :func:`aligned_residual` (a 19 %-area white caption: 19.0 grey levels with
one fit, 2.7, 0.16 and 0.0 after one, two and three refits)."""
GAIN_RANGE = (0.2, 5.0)
"""Intensity gains (contrast ratios) under which two pictures can be one: an inverted or flattened
picture is not the same picture; its residual is measured at the nearest gain allowed (here and
in the thumbnail alignment, :func:`~.verify.best_alignment`)."""


def aligned_residual(thumbs: np.ndarray, local, a: np.ndarray, b: np.ndarray, matrix: np.ndarray,
                     *, trim: float = 0.2, inliers: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Trimmed RMS of ``a``'s thumbnail against ``b``'s warped onto it by ``matrix``: over
    ``a``'s SD, and in grey levels.

    The keypoint transform is moved to thumbnail coordinates; where it
    magnifies or shrinks by :data:`MATCH_FROM` or more, the sharper thumbnail
    is blurred to the other's resolution; ``b``'s 32x32 thumbnail is
    resampled onto ``a``'s frame, an intensity gain and offset
    are fitted on the pixels both frames cover, then refitted :data:`_REFITS`
    times on the ``1 - trim`` share that agrees best, so an opaque caption
    does not set the gain (a 14 %-area caption on a Fashion-MNIST copy
    measured 35 grey levels with one fit). A gain outside [0.2, 5] (an
    inverted or flattened picture) is clamped to that range. The RMS of the
    residual is taken after dropping the largest ``trim`` share (an overlay
    or caption), divided by the standard deviation of ``a`` on the overlap
    (at least 1 grey level). A copy, a crop or a neighbouring tile agrees on its overlap;
    the same objects moved over another background do not. NaN where there
    is no transform, the overlap holds under 64 pixels, or (with ``inliers``)
    the fit has fewer than :data:`RESIDUAL_MIN_INLIERS` inliers, which cannot score 0.5.
    """
    a, b, matrix = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(matrix, np.float64)
    out = np.full(len(a), np.nan)
    grey = np.full(len(a), np.nan)
    ok = np.isfinite(matrix).reshape(len(a), -1).all(1)
    if inliers is not None:
        ok &= np.asarray(inliers) >= RESIDUAL_MIN_INLIERS
    rows = np.flatnonzero(ok)
    for start in range(0, len(rows), _BATCH):
        k = rows[start:start + _BATCH]
        rel_k, grey_k = _residual_batch(thumbs, local.size, a[k], b[k], matrix[k], trim)
        out[k], grey[k] = rel_k, grey_k
    return out, grey


MATCH_FROM = 1.2
"""Magnification from which :func:`aligned_residual` compares the two thumbnails at one resolution.
Where a fit magnifies ``b`` onto ``a`` by ``m`` (a centre crop of 70-90 %: 1.1-1.4x), ``b``'s
thumbnail holds ``1/m`` of the detail per pixel that ``a``'s does, so textured photos differed by
8-9 grey levels at the true transform; ``a``'s thumbnail is then blurred by a Gaussian of
:data:`MATCH_SIGMA` ``* sqrt(m**2 - 1)`` pixels (and ``b``'s, where the fit shrinks it). Under
1.2x nothing is blurred: on the planted sets of ``benchmarks/results_copies.md`` every copy it
found was magnified 1.29-1.42x, while the look-alikes it let through with no such limit were
magnified 1.10 and 1.18x."""
MATCH_SIGMA = 0.7
"""Gaussian sigma per unit of ``sqrt(m**2 - 1)`` (a box-filtered thumbnail pixel is ~0.5 px of blur)."""
_BATCH = 32
"""Fitted pairs warped and compared at once in :func:`aligned_residual`: small enough that the
(batch, 1024) float64 temporaries stay in cache (each row is computed on its own, so the values do
not depend on it): 306 -> 166 us per pair against 256 at a time."""


def _thumb_maps(size_a: np.ndarray, size_b: np.ndarray, matrix: np.ndarray, side: int) -> np.ndarray:
    """(p, 2, 3) maps from ``a``-thumbnail pixels to ``b``-thumbnail pixels (pixel centres
    aligned), from the working-frame transforms ``matrix`` (p, 2, 3)."""
    def to_thumb(size):
        sx, sy = side / np.maximum(size[:, 0], 1.0), side / np.maximum(size[:, 1], 1.0)
        m = np.zeros((len(size), 3, 3))
        m[:, 0, 0], m[:, 0, 2], m[:, 1, 1], m[:, 1, 2], m[:, 2, 2] = sx, 0.5 * sx - 0.5, sy, 0.5 * sy - 0.5, 1.0
        return m
    full = np.concatenate([matrix, np.broadcast_to([[[0.0, 0.0, 1.0]]], (len(matrix), 1, 3))], 1)
    return (to_thumb(size_b) @ full @ np.linalg.inv(to_thumb(size_a)))[:, :2]


def _residual_batch(thumbs, sizes, a, b, matrix, trim):
    """:func:`aligned_residual` for one batch of fitted pairs, as arrays (bilinear warp,
    trimmed gain/offset refits and the residual for all pairs at once)."""
    side = thumbs.shape[1]
    maps = _thumb_maps(sizes[a].astype(np.float64), sizes[b].astype(np.float64), matrix, side)
    gy, gx = (g.ravel().astype(np.float64) for g in np.mgrid[0:side, 0:side])
    # where each a-pixel lands in b, (p, s) each
    sx = maps[:, 0, 0, None] * gx + maps[:, 0, 1, None] * gy + maps[:, 0, 2, None]
    sy = maps[:, 1, 0, None] * gx + maps[:, 1, 1, None] * gy + maps[:, 1, 2, None]
    inside = (sx >= 0) & (sx <= side - 1) & (sy >= 0) & (sy <= side - 1)
    x0 = np.clip(np.floor(sx), 0, side - 2).astype(np.int64)
    y0 = np.clip(np.floor(sy), 0, side - 2).astype(np.int64)
    fx, fy = np.clip(sx - x0, 0, 1), np.clip(sy - y0, 0, 1)
    tb = thumbs[b].astype(np.float64)
    ya = thumbs[a].astype(np.float64)
    # one resolution for both (MATCH_FROM): where the fit magnifies b onto a, b's thumbnail is the
    # blurrier one (a centre crop); where it shrinks b, b's is the sharper one
    step = np.sqrt(np.abs(maps[:, 0, 0] * maps[:, 1, 1] - maps[:, 0, 1] * maps[:, 1, 0]))  # b px per a px
    up = np.where(step <= 1.0 / MATCH_FROM, 1.0 / np.maximum(step, 1e-6), 1.0)
    down = np.where(step >= MATCH_FROM, step, 1.0)
    ya = blur_rows(ya, MATCH_SIGMA * np.sqrt(up ** 2 - 1.0))
    tb = blur_rows(tb, MATCH_SIGMA * np.sqrt(down ** 2 - 1.0))
    tb = tb.reshape(len(b), -1)
    at = np.take_along_axis
    base = y0 * side + x0
    x = ((1 - fy) * ((1 - fx) * at(tb, base, 1) + fx * at(tb, base + 1, 1))
         + fy * ((1 - fx) * at(tb, base + side, 1) + fx * at(tb, base + side + 1, 1)))
    y = ya.reshape(len(a), -1)
    count = inside.sum(1)
    n_keep = np.maximum(2, np.round(count * (1 - trim)).astype(np.int64))
    gain, offset = gain_offset(x, y, inside)
    for _ in range(_REFITS):  # refit on the pixels that agree best: a caption must not set the gain
        agree = _best(np.abs(y - gain[:, None] * x - offset[:, None]), inside, n_keep)
        gain, offset = gain_offset(x, y, agree)
    flat = (gain < GAIN_RANGE[0]) | (gain > GAIN_RANGE[1])  # an inverted or flattened picture is not the
    if flat.any():  # same picture: its residual is measured at the nearest gain allowed
        gain = np.clip(gain, *GAIN_RANGE)
        rows = np.flatnonzero(flat & (count > 0))
        diff = np.where(inside[rows], y[rows] - gain[rows, None] * x[rows], np.nan)
        offset[rows] = np.nanmedian(diff, 1)
    resid = np.where(inside, np.abs(y - gain[:, None] * x - offset[:, None]), np.inf)
    resid.sort(1)
    keep = np.arange(resid.shape[1])[None, :] < n_keep[:, None]
    grey = np.sqrt(np.where(keep, np.where(np.isfinite(resid), resid, 0.0) ** 2, 0.0).sum(1) / n_keep)
    ym = np.where(inside, y, 0.0).sum(1) / np.maximum(count, 1)
    ysd = np.sqrt(np.where(inside, (y - ym[:, None]) ** 2, 0.0).sum(1) / np.maximum(count, 1))
    rel = grey / np.maximum(ysd, 1.0)
    small = count < 64
    grey[small], rel[small] = np.nan, np.nan
    return rel, grey


def blur_rows(images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Each (h, w) image of ``images`` blurred by its own Gaussian ``sigma`` (pixels; 0: as is),
    separable, 5 taps, edges repeated."""
    sigma = np.asarray(sigma, np.float64)
    rows = np.flatnonzero(sigma > 0.05)
    if not len(rows):
        return images
    taps = np.arange(-2, 3, dtype=np.float64)
    k = np.exp(-0.5 * (taps[None, :] / sigma[rows, None]) ** 2)
    k /= k.sum(1, keepdims=True)
    out = images.copy()
    x = np.pad(images[rows], ((0, 0), (2, 2), (0, 0)), mode="edge")
    h, w = images.shape[1:]
    x = sum(k[:, t, None, None] * x[:, t:t + h, :] for t in range(5))
    x = np.pad(x, ((0, 0), (0, 0), (2, 2)), mode="edge")
    out[rows] = sum(k[:, t, None, None] * x[:, :, t:t + w] for t in range(5))
    return out


def _best(resid: np.ndarray, inside: np.ndarray, n_keep: np.ndarray) -> np.ndarray:
    """Mask of the ``n_keep`` smallest residuals of each row among ``inside``."""
    r = np.where(inside, resid, np.inf)
    cut = np.take_along_axis(np.sort(r, 1), (n_keep - 1)[:, None], 1)
    return inside & (r <= cut)


def gain_offset(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row least squares ``y ~ gain * x + offset`` over the pixels ``w`` (closed form;
    a flat ``x`` gets gain 0)."""
    w = w.astype(np.float64)
    n = np.maximum(w.sum(1), 1.0)
    mx, my = np.einsum("ij,ij->i", w, x) / n, np.einsum("ij,ij->i", w, y) / n
    dx = x - mx[:, None]
    wdx = w * dx  # row sums of w*dx*dx and w*dx*(y - my) without their (n, k) temporaries: 3-4x faster
    var = np.einsum("ij,ij->i", wdx, dx)
    cov = np.einsum("ij,ij->i", wdx, y) - my * wdx.sum(1)
    gain = np.where(var > 0, cov / np.where(var > 0, var, 1.0), 0.0)
    return gain, my - gain * mx
