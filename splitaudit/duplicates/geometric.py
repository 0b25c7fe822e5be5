"""Geometric verification of candidate pairs: similarity-transform search + robust residual.

:func:`verify_geometric` warps the second thumbnail of each pair over a grid of
mirror × rotation × zoom, picks shifts by FFT correlation, refines the best
warps with Gauss-Newton and scores the trimmed residual after an affine
intensity fit. Costs ~10-14 ms per pair, so :func:`~splitaudit.duplicates.find_duplicates`
only uses it on unsure candidates with ``geometric=True``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .verify import score_from_rms

GEO_ROTATIONS = (-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0)
"""Rotations (degrees) of the second thumbnail tried by :func:`verify_geometric`."""
GEO_ZOOMS = (0.75, 0.81, 0.87, 0.93, 1.0, 1.07, 1.15, 1.23, 1.33)
"""Zooms of the second thumbnail tried (>1 magnifies: undoes a crop of the first)."""


def _warp_matrices(size, rotations, zooms, mirror):
    """Sparse bilinear resampling matrices (S*S, S*S) and validity masks, one per warp."""
    from scipy import sparse

    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    yy, xx = (yy - c).ravel(), (xx - c).ravel()
    params, mats, masks = [], [], []
    rows = np.arange(size * size)
    for flip in ((False, True) if mirror else (False,)):
        for rot in rotations:
            t = np.deg2rad(rot)
            for zoom in zooms:
                # output pixel p samples the source at R(-t) p / zoom (+ centre)
                sx = (np.cos(t) * xx + np.sin(t) * yy) / zoom + c
                sy = (-np.sin(t) * xx + np.cos(t) * yy) / zoom + c
                if flip:
                    sx = (size - 1) - sx
                valid = (sx >= -0.5) & (sx <= size - 0.5) & (sy >= -0.5) & (sy <= size - 0.5)
                sx, sy = np.clip(sx, 0, size - 1), np.clip(sy, 0, size - 1)
                x0, y0 = np.minimum(np.floor(sx), size - 2), np.minimum(np.floor(sy), size - 2)
                wx, wy = sx - x0, sy - y0
                x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
                cols = np.concatenate([y0 * size + x0, y0 * size + x0 + 1, (y0 + 1) * size + x0,
                                       (y0 + 1) * size + x0 + 1])
                vals = np.concatenate([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
                mats.append(sparse.csr_matrix((vals.astype(np.float32), (np.tile(rows, 4), cols)),
                                              shape=(size * size, size * size)))
                masks.append(valid.reshape(size, size))
                params.append((flip, rot, zoom))
    return params, mats, np.stack(masks)


def _gauss_blur(x, sigma):
    """Separable Gaussian blur of (..., S, S) float arrays (edge-replicated)."""
    if sigma <= 0:
        return x
    r = max(1, int(round(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k /= k.sum()
    s = x.shape[-1]
    idx = np.clip(np.arange(s)[:, None] + np.arange(-r, r + 1)[None, :], 0, s - 1)
    mat = np.zeros((s, s), np.float32)
    np.add.at(mat, (np.repeat(np.arange(s), 2 * r + 1), idx.ravel()), np.tile(k, s))
    return np.einsum("ij,...jk,lk->...il", mat, x, mat, optimize=True)


def verify_geometric(
    thumbs: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    *,
    max_shift: int = 6,
    rotations=GEO_ROTATIONS,
    zooms=GEO_ZOOMS,
    mirror: bool = True,
    trim: float = 0.1,
    blur: float = 0.7,
    n_check: int = 3,
    min_overlap: float = 0.5,
    refine_iters: int = 8,
    batch: int = 128,
    score_mid: float | None = None,
    score_scale: float | None = None,
) -> dict[str, np.ndarray]:
    """Verify thumbnail pairs ``(a[i], b[i])`` under small similarity transforms.

    The second thumbnail of each pair is warped by every mirror x rotation x
    zoom in the grid (warps are computed once per distinct ``b`` in a
    batch) and shifted by up to ``max_shift`` pixels; the best ``n_check``
    alignments by FFT correlation are then compared pixel by pixel: after a
    robust (trimmed, re-fitted) affine intensity fit ``b ~ alpha*a + beta``
    on the overlapping pixels, the RMS of the smallest ``1 - trim`` share of
    absolute residuals is kept. A watermark, caption or cut-off border
    covering less than ``trim`` of the image does not count.

    Parameters
    ----------
    thumbs : uint8 array (N, S, S)
        Grayscale thumbnails (e.g. 32 x 32).
    a, b : int arrays (P,)
        Pair indices into ``thumbs``; ``b`` is the side that is warped.
    max_shift : int
        Largest shift tried in each direction, in thumbnail pixels.
    rotations, zooms : sequences of float
        Rotations (degrees) and zooms of ``b`` tried; zoom > 1 magnifies.
    mirror : bool
        Also try the mirrored ``b``.
    trim : float in [0, 0.5)
        Share of the largest residuals left out.
    blur : float
        Gaussian sigma (thumbnail pixels) applied to both images before the
        residual, so resampling and noise matter less.
    n_check : int
        Alignments per pair compared pixel by pixel.
    min_overlap : float
        Alignments whose overlap is below this share of the image are
        rejected (score 0).
    refine_iters : int
        Gauss-Newton steps refining each checked alignment to sub-pixel
        shift, continuous rotation and zoom (with the intensity fit and the
        trim); grid points alone leave edges half a pixel apart.
    batch : int
        Pairs per batch (memory ~ batch x warps x S*S x 8 bytes).
    score_mid, score_scale : float, optional
        Logistic mapping of ``geo_nrms`` to ``score`` (defaults
        :data:`GEO_SCORE_MID`, :data:`GEO_SCORE_SCALE`).

    Returns
    -------
    dict of arrays (P,)
        ``flipped`` (bool), ``rotation``, ``zoom``, ``shift_y``, ``shift_x``,
        ``geo_corr`` (best correlation), ``geo_rms`` (trimmed residual, grey
        levels), ``geo_nrms`` (``geo_rms`` over the std of ``a``),
        ``overlap`` (share of pixels compared), ``score`` in [0, 1].
    """
    thumbs = np.asarray(thumbs)
    if thumbs.ndim != 3 or thumbs.shape[1] != thumbs.shape[2]:
        raise InputError(f"thumbs must have shape (N, S, S), got {thumbs.shape}")
    if not 0 <= trim < 0.5:
        raise InputError(f"trim must be in [0, 0.5), got {trim!r}")
    if not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
        raise InputError(f"max_shift must be a non-negative int, got {max_shift!r}")
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise InputError(f"a and b must be 1-D of equal length, got {a.shape} and {b.shape}")
    size = thumbs.shape[1]
    params, mats, masks = _warp_matrices(size, tuple(rotations), tuple(zooms), mirror)
    p = len(a)
    out = {
        "flipped": np.zeros(p, bool), "rotation": np.zeros(p, np.float32), "zoom": np.ones(p, np.float32),
        "shift_y": np.zeros(p, np.int8), "shift_x": np.zeros(p, np.int8),
        "geo_corr": np.zeros(p, np.float32), "geo_rms": np.full(p, np.inf, np.float32),
        "geo_nrms": np.full(p, np.inf, np.float32), "overlap": np.zeros(p, np.float32),
    }
    order = np.argsort(b, kind="stable")  # pairs sharing a b share its warps
    for start in range(0, p, batch):
        sel = order[start:start + batch]
        _geo_batch(thumbs, a[sel], b[sel], sel, params, mats, masks, max_shift, trim, blur, n_check,
                   min_overlap, refine_iters, out)
    mid = GEO_SCORE_MID if score_mid is None else score_mid
    scale = GEO_SCORE_SCALE if score_scale is None else score_scale
    out["score"] = score_from_rms(out["geo_nrms"], mid, scale).astype(np.float32)
    return out


GEO_SCORE_MID = 0.045
"""``geo_nrms`` at which the geometric score is 0.5."""
GEO_SCORE_SCALE = 0.004
"""Width of the logistic step of the geometric score (0.73 at ``mid - scale``)."""


def _pool2(x):
    s = x.shape[-1] // 2
    return x[..., :2 * s, :2 * s].reshape(*x.shape[:-2], s, 2, s, 2).mean((-3, -1))


def _zscore(x, mask):
    """Zero-mean, unit-norm over ``mask`` (broadcast), zero outside."""
    cnt = np.maximum(mask.sum((-2, -1), keepdims=True), 1)
    xm = np.where(mask, x, 0.0).sum((-2, -1), keepdims=True) / cnt
    z = np.where(mask, x - xm, 0.0).astype(np.float32)
    return z / np.maximum(np.sqrt((z * z).sum((-2, -1), keepdims=True)), 1e-6)


def _sample(img, sx, sy):
    """Bilinear samples of (n, S, S) images at (n, K) coordinates (clamped to the frame)."""
    n, size = img.shape[0], img.shape[1]
    sx, sy = np.clip(sx, 0, size - 1.001), np.clip(sy, 0, size - 1.001)
    x0, y0 = np.floor(sx).astype(np.int64), np.floor(sy).astype(np.int64)
    wx, wy = (sx - x0).astype(np.float32), (sy - y0).astype(np.float32)
    flat = img.reshape(n, -1)
    base = y0 * size + x0

    def g(off):
        return np.take_along_axis(flat, base + off, axis=1)

    return (g(0) * (1 - wx) + g(1) * wx) * (1 - wy) + (g(size) * (1 - wx) + g(size + 1) * wx) * wy


def _refine(ta, tb, theta, trim, iters):
    """Gauss-Newton refinement of a similarity warp plus affine intensity, trimmed.

    ``theta`` (n, 4) = (p, q, tx, ty): ``b`` is sampled at
    ``[[p, -q], [q, p]] @ (x, y) + (tx, ty) + centre`` for each pixel (x, y)
    of ``a`` (centred coordinates), and ``a ~ alpha * b(warp) + beta``.
    Returns the refined ``theta``, the trimmed RMS (grey levels of ``a``),
    the overlap share and ``alpha``.
    """
    n, size = ta.shape[0], ta.shape[1]
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    px, py = (xx - c).ravel()[None], (yy - c).ravel()[None]
    gy, gx = np.gradient(tb, axis=(1, 2))
    x_a = ta.reshape(n, -1)
    theta = theta.astype(np.float64).copy()
    keep = None
    for it in range(iters + 1):
        sx = theta[:, :1] * px - theta[:, 1:2] * py + theta[:, 2:3] + c
        sy = theta[:, 1:2] * px + theta[:, :1] * py + theta[:, 3:4] + c
        valid = (sx >= -0.5) & (sx <= size - 0.5) & (sy >= -0.5) & (sy <= size - 0.5)
        vb = _sample(tb, sx, sy)
        w = (valid if keep is None else valid & keep).astype(np.float32)
        sw = np.maximum(w.sum(1, keepdims=True), 1.0)
        bc = vb - (w * vb).sum(1, keepdims=True) / sw
        ac = x_a - (w * x_a).sum(1, keepdims=True) / sw
        var = (w * bc * bc).sum(1, keepdims=True)
        alpha = np.where(var > 1e-3, (w * bc * ac).sum(1, keepdims=True) / np.maximum(var, 1e-3), 0.0)
        r = alpha * bc - ac
        absr = np.where(valid, np.abs(r), np.inf)
        kn = np.maximum(1, np.floor(valid.sum(1) * (1.0 - trim))).astype(np.int64)
        order = np.sort(absr, axis=1)
        if it == iters:
            break
        # trimmed Gauss-Newton step on (p, q, tx, ty, alpha, beta)
        keep = absr <= order[np.arange(n), kn - 1][:, None]
        w = (valid & keep).astype(np.float32)
        dgx, dgy = _sample(gx, sx, sy) * alpha, _sample(gy, sx, sy) * alpha
        jac = np.stack([dgx * px + dgy * py, -dgx * py + dgy * px, dgx, dgy, bc, np.ones_like(bc)], axis=2)
        jw = jac * w[:, :, None]
        h = np.einsum("nki,nkj->nij", jw, jac) + 1e-3 * np.eye(6)[None]
        step = np.linalg.solve(h, -np.einsum("nki,nk->ni", jw, r)[:, :, None])[:, :4, 0]
        step[:, 2:] = np.clip(step[:, 2:], -1.0, 1.0)
        step[:, :2] = np.clip(step[:, :2], -0.05, 0.05)
        theta += step
    sq = np.where(np.isfinite(order), order * order, 0.0)
    rms = np.sqrt(np.cumsum(sq, axis=1)[np.arange(n), kn - 1] / kn)
    return theta, rms.astype(np.float32), valid.mean(1), alpha[:, 0]


def _geo_batch(thumbs, a, b, sel, params, mats, masks, m, trim, blur, n_check, min_overlap, refine_iters, out):
    from scipy import fft as sfft

    n, size = len(a), thumbs.shape[1]
    ub, inv = np.unique(b, return_inverse=True)
    src = thumbs[ub].reshape(len(ub), -1).astype(np.float32)
    warped = np.stack([(mat @ src.T).T for mat in mats], axis=1).reshape(len(ub), len(mats), size, size)
    ta = thumbs[a].astype(np.float32)
    tb_all = thumbs[ub].astype(np.float32)
    if blur > 0:
        ta = _gauss_blur(ta, blur)
        warped = _gauss_blur(warped, blur)
        tb_all = _gauss_blur(tb_all, blur)
    # coarse: correlation at half resolution over circular shifts (invalid warp pixels at the mean)
    half = size // 2
    hmask = _pool2(masks.astype(np.float32)) > 0.99
    za = _zscore(_pool2(ta), np.ones((half, half), bool))
    zw = _zscore(_pool2(warped), hmask[None])
    fw = sfft.rfft2(zw)
    corr = sfft.irfft2(np.conj(sfft.rfft2(za))[:, None] * fw[inv], s=(half, half))  # (n, W, h, h)
    hm = (m + 1) // 2
    win = np.r_[0:hm + 1, half - hm:half]
    cshift = np.r_[0:hm + 1, -hm:0]
    corr = corr[:, :, win][:, :, :, win].reshape(n, len(mats), -1)
    per_warp = corr.max(2)
    k = min(n_check, len(mats))
    top = np.argpartition(-per_warp, k - 1, axis=1)[:, :k]
    rows = np.arange(n)
    yy, xx = np.mgrid[0:size, 0:size]
    flat_a = ta.reshape(n, -1)
    za_full = _zscore(ta, np.ones((size, size), bool)).reshape(n, -1)
    best = np.full(n, np.inf, np.float32)
    for j in range(k):
        w_i = top[:, j]
        c = corr[rows, w_i].argmax(1)
        cy, cx = 2 * cshift[c // len(win)], 2 * cshift[c % len(win)]
        # fine: full-resolution correlation at the 9 shifts around the coarse one
        fine = []
        for ey in (-1, 0, 1):
            for ex in (-1, 0, 1):
                dy, dx = np.clip(cy + ey, -m, m), np.clip(cx + ex, -m, m)
                sy, sx = yy[None] + dy[:, None, None], xx[None] + dx[:, None, None]
                inside = (sy >= 0) & (sy < size) & (sx >= 0) & (sx < size)
                sy, sx = np.clip(sy, 0, size - 1), np.clip(sx, 0, size - 1)
                valid = inside & masks[w_i[:, None, None], sy, sx]
                zy = _zscore(warped[inv[:, None, None], w_i[:, None, None], sy, sx], valid).reshape(n, -1)
                fine.append(((zy * za_full).sum(1), dy, dx))
        pick = np.argmax(np.stack([f[0] for f in fine]), axis=0)
        gcorr = np.choose(pick, [f[0] for f in fine])
        dy, dx = np.choose(pick, [f[1] for f in fine]), np.choose(pick, [f[2] for f in fine])
        flip, rot, zoom = (np.array(v)[w_i] for v in zip(*params))
        t = np.deg2rad(rot)
        pp, qq = np.cos(t) / zoom, -np.sin(t) / zoom
        theta = np.stack([pp, qq, pp * dx - qq * dy, qq * dx + pp * dy], axis=1)
        tb = tb_all[inv]
        tb = np.where(flip[:, None, None], tb[:, :, ::-1], tb)
        theta, rms, overlap, alpha = _refine(ta, tb, theta, trim, refine_iters)
        astd = flat_a.std(1)
        nrms = np.divide(rms, astd, out=np.full(n, np.inf, np.float32), where=astd > 1.0)
        nrms = np.where((overlap >= min_overlap) & (alpha > 0), nrms, np.inf).astype(np.float32)
        better = nrms < best
        idx = sel[better]
        best[better] = nrms[better]
        zoom_r = 1.0 / np.hypot(theta[:, 0], theta[:, 1])
        out["flipped"][idx], out["zoom"][idx] = flip[better], zoom_r[better]
        out["rotation"][idx] = np.rad2deg(np.arctan2(-theta[:, 1], theta[:, 0]))[better]
        out["shift_y"][idx], out["shift_x"][idx] = dy[better], dx[better]
        out["geo_corr"][idx] = gcorr[better]
        out["geo_rms"][idx], out["geo_nrms"][idx] = rms[better], nrms[better]
        out["overlap"][idx] = overlap[better]
