"""Copies under a caption, logo or watermark: two thumbnails that agree everywhere but inside one box.

A caption of 5-20 % of the area pasted on a copy that was also shrunk (a 96-px picture saved at
30-70 %) defeats the other paths: the shrunk copy keeps too few keypoints for a fit, and the box
differs from the original by tens of grey levels, so the whole-frame thumbnail residual and the
16x16 correlation that gates its candidates (0.75-0.98 here, under the 0.9 gate) reject it. Yet
the copy is usually still near its original among the thumbnails, and nearest once the pixels
that disagree most are left out.

So each image's :data:`OVERLAY_SHORTLIST` nearest thumbnails (as is or mirrored, no threshold) are
ranked by how well they agree outside their worst 30 % of pixels (a caption weighs in the correlation,
and pushes the original of a copy under it past the third), and the :data:`OVERLAY_NEIGHBOURS` best
(:func:`overlay_candidates`) are compared where nothing else confirmed them (:func:`verify_overlay`).
Across the split the shortlist also takes each image's :data:`OCCLUDED_NEIGHBOURS` nearest with one
corner block of the 16x16 grid left out, for each of four blocks (:func:`_occluded_neighbours`): where
the caption lies inside the block left out, the copy's original is the nearest even when many other
pictures correlate better with the caption in (among 70,000 real Fashion-MNIST thumbnails, the
originals of 150 planted caption+downscale copies were kept 98 times without it, 119 with it):

0. a screen on the 16x16 vectors: after a robust gain/offset fit, 70 % of the pixels must agree to
   :data:`SCREEN_SD` of the picture's standard deviation (most look-alikes fail here, cheaply);
1. at the thumbnail alignment of :func:`~.verify.best_alignment` (32 px, +-1 px, the mirror; or no
   shift, where that leaves a smaller robust residual: a caption must not pick the shift; both
   thumbnails blurred by :data:`SMALL_BLUR` where one image is under :data:`SMALL_SIDE` px and was
   resized from the other, whose outlines the resize moved by a fraction of a pixel), an
   intensity gain and offset are fitted on the :data:`_KEEP` share of pixels that agree best
   (refitted three times, as :mod:`.residual` does), and the trimmed RMS of what is left is taken;
2. the pixels that still disagree by more than ``max(OUTLIER_FACTOR x that RMS, OUTLIER_GREY)``,
   with at least two such neighbours (so lone JPEG speckles do not count), are the overlay; the box
   from the 5th to the 95th percentile of their rows and of their columns, grown by a pixel, is
   ``overlay_area`` (share of the frame);
3. outside the box the images must agree: ``overlay_grey`` is the RMS of the residual there (the
   worst 5 % left out), in grey levels, and at most :data:`MAX_RELATIVE` of the contrast there;
4. and the outside must hold at least :data:`MIN_DETAIL_OUTSIDE` of the original's detail
   (gradient energy) and a contrast of :data:`MIN_CONTRAST`, with an intensity gain of 0.2-5: a
   sandal that differs from another sandal everywhere lies all inside its box, and the flat black
   background outside proves nothing.

The score is ``1 / (1 + exp((overlay_grey - OVERLAY_MID) / OVERLAY_SCALE))`` (:data:`SMALL_MID` in
place of :data:`OVERLAY_MID` for a pair compared blurred) where the box holds
:data:`MIN_AREA` to :data:`MAX_AREA` of the frame and every test passes, 0 otherwise (a pair without
a box is the plain thumbnail path's to judge). Set on the planted sets of
``benchmarks/results_copies.md``: of the 3 nearest train thumbnails of each val image that are not
its copy, none scores 0.5 on Fashion-MNIST 96 px (2,669 and 2,676 pairs, seeds 1 and 0) or on 256-px
photos (1,282), and 13 of 30,000 on the real Fashion-MNIST split (one blank garment photo with
another print on it); the caption+downscale copies score 0.5 in 25-28 of 30 and 13-19 of 20 cases
(the blur and the 35 % limit of the sixth session included; the negatives unchanged).
"""

from __future__ import annotations

import numpy as np

from .._optional import require
from .._parallel import thread_map
from .candidates import rank_in_group, unique_pairs
from .residual import GAIN_RANGE, MATCH_FROM, blur_rows, gain_offset
from .verify import best_alignment, score_from_rms

__all__ = ["OVERLAY_COLUMNS", "OVERLAY_NEIGHBOURS", "overlay_candidates", "verify_overlay"]

OVERLAY_NEIGHBOURS = 3
"""Nearest thumbnails (16x16, as is or mirrored) each image is compared with."""
OVERLAY_SHORTLIST = 10
"""Nearest thumbnails by correlation among which the :data:`OVERLAY_NEIGHBOURS` that agree best
outside their worst 30 % of pixels are kept (see :func:`overlay_candidates`)."""
OCCLUDED_NEIGHBOURS = 3
"""Across the split, each image's nearest thumbnails with one block left out (for each of the four
blocks of :func:`_occlusion_masks`) join its shortlist; 0: none."""
OCCLUDED_BLOCK = 10
_OCCLUDED_STEP = 6
_OCCLUDED_DIMS = 48
OVERLAY_COLUMNS = ("overlay_area", "overlay_grey")
"""Evidence columns: the box's share of the frame, the residual outside it (grey levels)."""
OVERLAY_MID = 2.0
"""``overlay_grey`` (grey levels) at which the score is 0.5."""
OVERLAY_SCALE = 0.25
"""Grey levels over which the score falls from 0.73 to 0.27."""
OUTLIER_FACTOR = 4.0
OUTLIER_GREY = 16.0
MIN_AREA = 0.02
"""Smallest box (share of the frame): under it the plain thumbnail path already trims the difference."""
MAX_AREA = 0.35
"""Largest box: a caption or logo of up to 20 % of the area, blurred by the shrinking (and by
:data:`SMALL_BLUR`), grown by a pixel each side."""
MIN_DETAIL_OUTSIDE = 0.5
"""Share of the original thumbnail's gradient energy that must lie outside the box."""
MIN_CONTRAST = 8.0
"""Smallest standard deviation (grey levels) of the picture outside the box: a flat background
agrees with anything once the gain is fitted (a black frame with one small object in it)."""
MAX_RELATIVE = 0.05
"""Largest ``overlay_grey`` over the contrast (standard deviation) outside the box: two low-texture
cells of one photo agree to 1.5 grey levels at a contrast of 24-27 (0.06), copies under a caption
to 0.005-0.04 of theirs."""
SCREEN_SD = 0.1
"""Largest 70th percentile of the robust residual of the 16x16 vectors (in standard deviations of
the picture) of a pair that is tested in full: the copies that pass the full test reach at most
0.067 on the planted sets, while 86 % of Fashion-MNIST's and 99.8 % of the photos' nearest
thumbnails that are not copies exceed it."""
SMALL_SIDE = 64
"""Side (pixels) under which a pair whose two images differ in size by :data:`~.residual.MATCH_FROM`
or more is compared blurred (:data:`SMALL_BLUR`)."""
SMALL_BLUR = 0.5
"""Gaussian sigma (thumbnail pixels) applied to both thumbnails of such a pair. Resizing a picture to
30-60 px rounds its frame to whole pixels, which moves its edges by up to ``0.5 / side`` of the
frame against the original's: a quarter to half a pixel of the 32-px thumbnail, along every outline
of a garment on black. Blurred by half a pixel, those outlines agree again; two images of one size
(no resize between them) are compared as they are."""
SMALL_MID = 3.0
"""``overlay_grey`` at which the score is 0.5 for a pair compared blurred (:data:`SMALL_SIDE`): a
copy of 29-41 px keeps its own resampling and JPEG error at the thumbnail's scale, and agreed
outside its caption only to 2.2-3.6 grey levels on the planted Fashion-MNIST set (full-size copies:
under 2). Of ~9,700 shortlisted non-copies per planted set, none passes at 3."""
_SCREEN_AT = int(0.7 * 256)
_KEEP = 0.75
_BOX_TAIL = 0.05
_BATCH = 64
_SCREEN_BATCH = 1024


def overlay_candidates(coords: tuple[np.ndarray, np.ndarray], ia: np.ndarray, ib: np.ndarray, within: bool,
                       k: int = OVERLAY_NEIGHBOURS, jobs: int = 1, pooled: np.ndarray | None = None,
                       shortlist: int = OVERLAY_SHORTLIST) -> tuple[np.ndarray, np.ndarray]:
    """Each image of ``ia``'s ``k`` nearest of ``ib`` (global indices ``(a, b)``), as is or
    mirrored, by the inner product of the mirror-PCA coordinates ``(sym, anti)`` (the
    thumbnails' correlation, projected); ``within``: ``ia`` is ``ib`` and self pairs are dropped.
    With ``pooled`` (the (2, N, 256) 16x16 vectors as is and mirrored), the ``shortlist`` nearest
    are taken instead and the ``k`` of them that agree best outside their worst pixels are kept
    (:func:`_robust_spread`): a caption weighs in the correlation, so a captioned copy's
    original is often not among its 3 nearest by correlation (ranked 6th to 100th for the missed
    captioned 30-60-px garments of the planted Fashion-MNIST set) but is by the robust residual.
    One faiss inner-product search per orientation (the mirror negates ``anti``): exact under
    :data:`_IVF_FROM` rows, an inverted file above (:func:`_inner_index`), on ``jobs`` threads
    over query blocks; results do not depend on ``jobs``."""
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    sym, anti = coords
    if not len(ia) or not len(ib) or not k or sym.shape[1] + anti.shape[1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    faiss = require("faiss", purpose="overlay candidates")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # threads over query blocks instead: faiss's OpenMP stalls beside busy processes
    try:
        index = _inner_index(faiss, np.ascontiguousarray(np.hstack([sym[ib], anti[ib]]), np.float32))
        want = min(len(ib), (k if pooled is None else max(k, shortlist)) + (1 if within else 0))
        blocks = [slice(s, s + _QUERY_BLOCK) for s in range(0, len(ia), _QUERY_BLOCK)]
        sims, found = [], []
        for sign in (1.0, -1.0):
            queries = np.ascontiguousarray(np.hstack([sym[ia], sign * anti[ia]]), np.float32)
            parts = thread_map(lambda sl: index.search(queries[sl], want), blocks, jobs)
            sims.append(np.vstack([part[0] for part in parts]))
            found.append(np.vstack([part[1] for part in parts]))
    finally:
        faiss.omp_set_num_threads(threads)
    sims, found = np.hstack(sims).ravel(), np.hstack(found).ravel()
    a = np.repeat(ia, 2 * want)
    ok = (found >= 0) & np.isfinite(sims)
    a, b, sims = a[ok], ib[found[ok]], sims[ok]
    if within:
        a, b, sims = a[a != b], b[a != b], sims[a != b]
    # a neighbour found both ways counts once, at its better orientation; then the k best
    order = np.lexsort((-sims, b, a))
    a, b, sims = a[order], b[order], sims[order]
    first = np.ones(len(a), bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    a, b, sims = a[first], b[first], sims[first]
    if pooled is not None:  # of the shortlist nearest, the k that agree best outside their worst pixels
        near = rank_in_group(a, -sims) < shortlist
        a, b = a[near], b[near]
        if not within and OCCLUDED_NEIGHBOURS:
            ma, mb = _occluded_neighbours(pooled, ia, ib, OCCLUDED_NEIGHBOURS, jobs)
            a, b = unique_pairs([a, ma], [b, mb], False)
        spread = np.empty(len(a), np.float32)
        blocks = [slice(s, s + _SCREEN_BATCH) for s in range(0, len(a), _SCREEN_BATCH)]

        def one(sl):
            spread[sl] = _robust_spread(pooled, a[sl], b[sl])

        thread_map(one, blocks, jobs)
        keep = rank_in_group(a, spread) < k
    else:
        keep = rank_in_group(a, -sims) < k
    return a[keep], b[keep]


def _robust_spread(pooled: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The screen's measure, cheaper, to rank candidates (float32, the gain and offset refitted
    once, not three times; 3x faster): the 70th percentile of the 16x16 residual of each pair, in
    standard deviations of the picture, at the orientation that correlates better. Its fit is
    written out here (uncentred float32 sums), not :func:`~.residual.gain_offset`: every shortlisted
    pair goes through it, and it takes 6.8 us a pair against 11 us through that function."""
    va = pooled[0][a]
    plain, mirrored = pooled[0][b], pooled[1][b]
    flip = np.einsum("ij,ij->i", mirrored, va) > np.einsum("ij,ij->i", plain, va)
    vb = np.where(flip[:, None], mirrored, plain)
    keep = int(round(vb.shape[1] * _KEEP))
    weight = np.ones_like(vb)
    for refit in (True, False):
        count = weight.sum(1)
        wx = weight * vb
        sx, sy = wx.sum(1), (weight * va).sum(1)
        mx, my = sx / count, sy / count
        var = np.einsum("ij,ij->i", wx, vb) - sx * mx
        cov = np.einsum("ij,ij->i", wx, va) - sx * my
        gain = np.where(var > 1e-6, cov / np.maximum(var, np.float32(1e-6)), np.float32(0.0))
        resid = np.abs(va - gain[:, None] * vb - (my - gain * mx)[:, None])
        if refit:
            weight = (resid <= np.partition(resid, keep - 1, axis=1)[:, keep - 1:keep]).astype(np.float32)
    return np.partition(resid, _SCREEN_AT, axis=1)[:, _SCREEN_AT] * np.float32(np.sqrt(vb.shape[1]))


def _occlusion_masks() -> np.ndarray:
    """(4, 256) boolean masks of the 16x16 grid, each leaving out one :data:`OCCLUDED_BLOCK`-px
    square at a corner: a box of up to 16 - 2 x :data:`_OCCLUDED_STEP` px a side (4 of 16: a quarter
    of the frame's width and height) lies inside one of them wherever it is, and a box of up to
    :data:`OCCLUDED_BLOCK` px near a corner or an edge (a caption band, a logo)."""
    out = []
    for y in range(0, 16 - OCCLUDED_BLOCK + 1, _OCCLUDED_STEP):
        for x in range(0, 16 - OCCLUDED_BLOCK + 1, _OCCLUDED_STEP):
            m = np.ones((16, 16), bool)
            m[y:y + OCCLUDED_BLOCK, x:x + OCCLUDED_BLOCK] = False
            out.append(m.ravel())
    return np.array(out)


def _occluded_neighbours(pooled: np.ndarray, ia: np.ndarray, ib: np.ndarray, k: int,
                         jobs: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image of ``ia``'s ``k`` nearest of ``ib`` (as is and mirrored) by the correlation of
    the pixels outside one block of :func:`_occlusion_masks`, for each mask: where a caption or logo
    lies inside the left-out block, the copy correlates with its original as if it had none. Each
    mask's vectors (re-centred, unit norm) are projected on their :data:`_OCCLUDED_DIMS` principal
    axes (fitted on up to 5,000 rows of ``ib``, seeded) and searched as :func:`overlay_candidates`
    searches (:func:`_inner_index`)."""
    faiss = require("faiss", purpose="overlay candidates")
    rng = np.random.default_rng(0)
    fit = np.sort(rng.choice(len(ib), min(len(ib), 5_000), replace=False))
    blocks = [slice(s, s + _QUERY_BLOCK) for s in range(0, len(ia), _QUERY_BLOCK)]
    want = min(len(ib), k)
    a, b = [], []
    base_rows, query_rows = pooled[0][ib], (pooled[0][ia], pooled[1][ia])
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # threads over query blocks instead, as in overlay_candidates
    try:
        for mask in _occlusion_masks():
            base = _unit_rows(base_rows[:, mask])
            axes = np.linalg.eigh((base[fit].T @ base[fit]).astype(np.float64))[1][:, ::-1][:, :_OCCLUDED_DIMS]
            axes = np.ascontiguousarray(axes, np.float32)
            index = _inner_index(faiss, np.ascontiguousarray(base @ axes))
            for rows in query_rows:
                queries = np.ascontiguousarray(_unit_rows(rows[:, mask]) @ axes)
                parts = thread_map(lambda sl: index.search(queries[sl], want)[1], blocks, jobs)
                found = np.vstack(parts)
                ok = found >= 0
                a.append(np.repeat(ia, want)[ok.ravel()])
                b.append(ib[found[ok]])
    finally:
        faiss.omp_set_num_threads(threads)
    return np.concatenate(a), np.concatenate(b)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows re-centred and scaled to unit norm (float32; flat rows stay zero)."""
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))
    return (x * np.divide(1.0, norm, out=np.zeros_like(norm), where=norm > 1e-6)[:, None]).astype(np.float32)


_IVF_FROM = 20_000
"""Base rows from which :func:`overlay_candidates` searches an inverted file, not every row."""
_ROWS_PER_LIST = 200
_PROBES = 12
_QUERY_BLOCK = 4096


def _inner_index(faiss, base: np.ndarray):
    """A faiss inner-product index over ``base``: flat (exact) under :data:`_IVF_FROM` rows;
    above, an inverted file whose cells are centred on random base rows (no k-means to train,
    deterministic), :data:`_PROBES` cells searched per query. A copy under a caption still
    correlates 0.75-0.98 with its original, so the two share a cell or a near one."""
    d = base.shape[1]
    if len(base) < _IVF_FROM:
        index = faiss.IndexFlatIP(d)
        index.add(base)
        return index
    nlist = max(1, len(base) // _ROWS_PER_LIST)
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(base[np.sort(np.random.default_rng(0).choice(len(base), nlist, replace=False))])
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True  # the quantizer holds the centroids already
    index.add(base)
    index.nprobe = min(_PROBES, nlist)  # (faiss's wrapper keeps the quantizer alive with the index)
    return index


def verify_overlay(thumbs: np.ndarray, pooled: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                   sides: np.ndarray | None = None, jobs: int = 1) -> dict[str, np.ndarray]:
    """The overlay test of the module docstring for pairs ``(a[i], b[i])`` of ``thumbs``
    (N, 32, 32); ``pooled`` (2, N, 256) are the 16x16 vectors as is and mirrored, which pick the
    orientation. ``sides`` (N,), each image's shorter side in pixels, if given: a pair with an
    image under :data:`SMALL_SIDE` resized from the other (sides :data:`~.residual.MATCH_FROM` or
    more apart) is compared with both thumbnails blurred by :data:`SMALL_BLUR`.
    Returns ``overlay_area``, ``overlay_grey`` (NaN without a box), ``flipped`` and
    ``score``; results do not depend on ``jobs`` (threads over batches)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    n = len(a)
    blur = np.zeros(n)
    if sides is not None and n:
        lo = np.minimum(sides[a], sides[b]).astype(np.float64)
        hi = np.maximum(sides[a], sides[b]).astype(np.float64)
        blur[(lo < SMALL_SIDE) & (hi >= MATCH_FROM * lo)] = SMALL_BLUR
    out = {"overlay_area": np.full(n, np.nan), "overlay_grey": np.full(n, np.nan),
           "flipped": np.zeros(n, bool), "score": np.zeros(n)}
    slices = [slice(s, min(n, s + _SCREEN_BATCH)) for s in range(0, n, _SCREEN_BATCH)]
    thread_map(lambda sl: _screen_batch(pooled, a[sl], b[sl], out, sl), slices, jobs)
    near = np.flatnonzero(out["score"] > 0)  # the screen marks the pairs to test in full
    out["score"][:] = 0.0
    slices = [near[s:s + _BATCH] for s in range(0, len(near), _BATCH)]
    thread_map(lambda rows: _overlay_batch(thumbs, a[rows], b[rows], out, rows, blur[rows]), slices, jobs)
    return out


def _screen_batch(pooled, a, b, out, sl) -> None:
    """The cheap screen: a copy under a box already agrees on most of its 16x16 pixels. Sets
    ``flipped`` (the orientation that correlates better) and marks passing pairs with score 1."""
    va = pooled[0][a]
    flip = (pooled[1][b] * va).sum(1) > (pooled[0][b] * va).sum(1)
    out["flipped"][sl] = flip
    vb = np.where(flip[:, None], pooled[1][b], pooled[0][b]).astype(np.float64)
    resid, _ = _robust_residual(vb, va.astype(np.float64))
    resid *= np.sqrt(vb.shape[1])  # in SDs of the picture
    out["score"][sl] = np.partition(resid, _SCREEN_AT, axis=1)[:, _SCREEN_AT] <= SCREEN_SD


def _overlay_batch(thumbs, a, b, out, rows, blur) -> None:
    """The full test of the module docstring for the pairs ``rows`` of ``out``, both thumbnails
    of each pair blurred by its ``blur`` (sigma, pixels; 0: as is)."""
    flip = out["flipped"][rows]
    ta = blur_rows(thumbs[a].astype(np.float32), blur)
    tb = blur_rows(thumbs[b].astype(np.float32), blur)
    tb[flip] = tb[flip, :, ::-1]
    p, inner = len(a), ta.shape[1] - 2
    x, y = _inner(ta, tb, *_alignment(ta, tb))
    resid, gain = _robust_residual(x, y)
    trimmed = _trimmed(resid)
    off = (resid > np.maximum(OUTLIER_FACTOR * trimmed, OUTLIER_GREY)[:, None]).reshape(p, inner, inner)
    off &= _neighbours(off) >= 2
    box, area = _boxes(off)
    grey = _outside_rms(resid, box.reshape(p, -1))
    detail = _detail_outside(x.reshape(p, inner, inner), box)  # the original's: a caption's text is detail
    contrast = _outside_sd(y, box.reshape(p, -1))
    has_box = area > 0
    passed = (has_box & (area >= MIN_AREA) & (area <= MAX_AREA) & (detail >= MIN_DETAIL_OUTSIDE)
              & (gain >= GAIN_RANGE[0]) & (gain <= GAIN_RANGE[1]) & (contrast >= MIN_CONTRAST) & (grey <= MAX_RELATIVE * contrast))
    mid = np.where(blur > 0, SMALL_MID, OVERLAY_MID)
    out["score"][rows] = np.where(passed, score_from_rms(grey, mid, OVERLAY_SCALE), 0.0)
    out["overlay_area"][rows] = np.where(has_box, area, np.nan)
    out["overlay_grey"][rows] = np.where(has_box, grey, np.nan)


def _alignment(ta: np.ndarray, tb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift ``(dy, dx)`` of each ``tb`` under ``ta`` (float32 (p, 32, 32)): the one of the best
    correlation (:func:`~.verify.best_alignment`, +-1 px), unless no shift leaves a smaller robust residual
    (:func:`_trimmed_rms`). A caption takes a large share of the whole-frame correlation and can
    pull it a pixel off; the garment or scene it covers then disagrees along every outline, and
    the box spreads over it (a 57-px sneaker under an 18 % caption: 0.58 of the frame at the
    correlation's shift, 0.33 unshifted)."""
    _, dy, dx, _, _ = best_alignment(ta, tb, 1, 0.05)
    dy, dx = dy.astype(np.int64), dx.astype(np.int64)
    moved = np.flatnonzero((dy != 0) | (dx != 0))
    if len(moved):
        zero = np.zeros(len(moved), np.int64)
        back = _trimmed_rms(ta[moved], tb[moved], zero, zero) <= _trimmed_rms(ta[moved], tb[moved], dy[moved],
                                                                                 dx[moved])
        dy[moved[back]], dx[moved[back]] = 0, 0
    return dy, dx


def _inner(ta: np.ndarray, tb: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``, (p, (s - 2)**2) float64: ``tb``'s inner square moved by ``(dy, dx)`` (+-1 px) and
    ``ta``'s, for (p, s, s) thumbnails."""
    p, inner = len(ta), ta.shape[1] - 2
    iy = (1 + dy)[:, None] + np.arange(inner)[None, :]
    ix = (1 + dx)[:, None] + np.arange(inner)[None, :]
    x = tb[np.arange(p)[:, None, None], iy[:, :, None], ix[:, None, :]].reshape(p, -1).astype(np.float64)
    return x, ta[:, 1:-1, 1:-1].reshape(p, -1).astype(np.float64)


def _trimmed_rms(ta: np.ndarray, tb: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """:func:`_trimmed` residual of the inner 30x30 pixels once ``tb``, moved by ``(dy, dx)``, is
    fitted to ``ta`` by a gain and offset (fitted on all pixels, then refitted once)."""
    return _trimmed(_robust_residual(*_inner(ta, tb, dy, dx), refits=1)[0])


def _trimmed(resid: np.ndarray) -> np.ndarray:
    """RMS of the :data:`_KEEP` share of each row's smallest residuals."""
    keep = int(round(resid.shape[1] * _KEEP))
    return np.sqrt((np.partition(resid, keep - 1, axis=1)[:, :keep] ** 2).mean(1))


def _robust_residual(x: np.ndarray, y: np.ndarray, refits: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(|y - (gain * x + offset)|, gain)`` with the gain and offset refitted ``refits`` times on the
    :data:`_KEEP` share of pixels that agree best (closed-form least squares per row)."""
    w = np.ones_like(x, bool)
    keep = int(round(x.shape[1] * _KEEP))
    for _ in range(refits + 1):
        gain, offset = gain_offset(x, y, w)
        resid = np.abs(y - gain[:, None] * x - offset[:, None])
        cut = np.partition(resid, keep - 1, axis=1)[:, keep - 1]
        w = resid <= cut[:, None]
    return resid, gain


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """Count of set pixels among each pixel's 8 neighbours, for (p, h, w) masks."""
    m = np.pad(mask.astype(np.int8), ((0, 0), (1, 1), (1, 1)))
    h, w = mask.shape[1:]
    total = sum(m[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    return total - mask


def _boxes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box holding the mask's pixels from the :data:`_BOX_TAIL` to the ``1 - _BOX_TAIL``
    quantile of their rows and of their columns (a few stray pixels away from a caption do not
    stretch it; the outside residual drops its worst 5 %), grown by one pixel, as a (p, h, w)
    mask, and its share of the frame (0 for an empty mask)."""
    p, h, w = mask.shape
    count = mask.reshape(p, -1).sum(1)
    has = count > 0

    def span(profile, size):
        cum = np.cumsum(profile, 1)
        lo = np.argmax(cum > _BOX_TAIL * count[:, None], 1)
        hi = np.argmax(cum >= (1 - _BOX_TAIL) * count[:, None], 1)
        return np.maximum(lo - 1, 0), np.minimum(hi + 1, size - 1)

    y0, y1 = span(mask.sum(2), h)
    x0, x1 = span(mask.sum(1), w)
    gy, gx = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    box = ((gy >= y0[:, None, None]) & (gy <= y1[:, None, None]) & (gx >= x0[:, None, None])
           & (gx <= x1[:, None, None]) & has[:, None, None])
    return box, box.reshape(p, -1).mean(1)


def _outside_rms(resid: np.ndarray, box: np.ndarray) -> np.ndarray:
    """RMS of the residual outside the box, the worst 5 % of those pixels left out."""
    r = np.sort(np.where(box, np.inf, resid), axis=1)
    count = (~box).sum(1)
    keep = np.maximum(1, (count * 0.95).astype(np.int64))
    used = np.arange(r.shape[1])[None, :] < keep[:, None]
    return np.sqrt((np.where(used, r, 0.0) ** 2).sum(1) / keep)


def _outside_sd(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Standard deviation of each (p, n) image's pixels outside its box (0 where none are)."""
    count = np.maximum((~box).sum(1), 1)
    mean = np.where(box, 0.0, image).sum(1) / count
    return np.sqrt(np.where(box, 0.0, (image - mean[:, None]) ** 2).sum(1) / count)


def _detail_outside(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Share of each image's gradient energy (|dx| + |dy|) that lies outside its box."""
    energy = np.abs(np.diff(image, axis=1))[:, :, :-1] + np.abs(np.diff(image, axis=2))[:, :-1, :]
    inside = box[:, :-1, :-1]
    total = energy.reshape(len(image), -1).sum(1)
    return np.where(total > 0, np.where(inside, 0.0, energy).reshape(len(image), -1).sum(1)
                    / np.where(total > 0, total, 1.0), 0.0)
