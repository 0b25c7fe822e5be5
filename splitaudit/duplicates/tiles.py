"""Neighbouring tiles: two images that share a shifted region pixel for pixel.

Tiles cut from one large picture (satellite scenes, pathology slides, a photo
cut into crops) overlap by a translation only, with no change of scale, and
the shared region holds the same pixels. Keypoints often miss them: each
tile equalises and spreads its keypoints in its own frame, and sky, sea or
tissue hold few distinct corners (on the 256-px photo set most missed tile
pairs kept 0-4 RANSAC inliers). But the few keypoints two tiles share sit at
one displacement, so the keypoint votes propose tile candidates with their
shift (:func:`~.keypoints.keypoint_candidates`), and a pair that nothing
else confirmed is checked in three steps:

1. :func:`thumb_grey`: the 32x32 thumbnails must agree at the voted shift
   (90th-percentile difference at most :data:`SCREEN_GREY` grey levels), a
   vectorised screen that keeps the file reads for few pairs;
2. :func:`match_tiles` on both files read again in gray (at most
   :data:`TILE_SIDE` on the long side): phase correlation (the whitened
   cross-power spectrum, as image stitching uses it) proposes shifts, its
   :data:`PEAKS` highest peaks each read the four ways a circular correlation
   allows, near the voted shift where the votes agree;
3. the best proposal is a tile when its band-passed overlap (image minus its
   Gaussian blur, sigma 1) correlates block by block (median of 8x8 blocks,
   0.5 at :data:`NCC_MID`) and its pixels differ by at most
   :data:`GREY_LIMIT` grey levels (90th percentile).

Measured on the planted sets (``benchmarks/results_copies.md``): the 40
photo256 tile pairs reached a block correlation of 0.27-1.00 and a grey
difference of 0-6 at the shift found (one found a wrong shift), while the
other keypoint candidates stayed at or under 0.17: a shared caption, logo or
letterbox bar correlates as a whole but not block by block, a repeated
pattern (bridge cables, glass blocks) does not share its fine grain, and
look-alike Fashion-MNIST garments whose outlines line up (block correlation up
to 0.84) differ by 21 grey levels and more.
"""

from __future__ import annotations

import numpy as np
from scipy import fft

from .._parallel import ordered_map, resolve_jobs
from ..imageio import open_image

__all__ = ["verify_tiles", "match_tiles", "pixel_scale", "thumb_grey", "tile_score", "SCREEN_GREY", "TILE_COLUMNS", "TILE_EVIDENCE",
           "TILE_SIDE", "MIN_OVERLAP", "NCC_MID", "GREY_LIMIT"]

TILE_SIDE = 512
"""Long side (pixels) beyond which an image is decoded reduced for the tile check."""
MIN_OVERLAP = 0.2
"""Share of the smaller frame a proposed shift must leave overlapping."""
PEAKS = 5
"""Phase-correlation peaks tried per pair."""
NCC_MID = 0.25
"""Median block correlation (band-passed) of the overlap at which :func:`tile_score` gives 0.5."""
NCC_SCALE = 0.02
GREY_LIMIT = 10.0
"""Largest 90th-percentile difference (grey levels) of the overlap for a tile: the 40 planted photo
tile pairs measured 0-6, the look-alike Fashion-MNIST garments the block correlation let through 21
and more, but two look-alike shirts 12 (held-out seed 1)."""
HINT_REACH = 3
"""Pixels (at the search scale, half resolution from 64 px) around the voted shift that are searched
instead of the whole phase correlation: the votes' mean displacement is within a few pixels."""
SCREEN_GREY = 16.0
"""Largest :func:`thumb_grey` (grey levels of the 32-px thumbnails at the voted shift) for a pair
to be checked on its files. The 31 planted photo tile pairs with 3 agreeing votes measured 0.2-13.2;
of 937 other train pairs with such votes, 7 stayed under 15."""
_SIGMA = 1.0
_BATCH = 64
_POOL_FROM = 256
"""Pairs from which the tile check runs in worker processes (fewer: in this process)."""
TILE_EVIDENCE = ("tile_ncc", "tile_grey")
"""The tile check's own evidence columns in the pair tables (the shift and overlaps go to the keypoint columns)."""
TILE_COLUMNS = (*TILE_EVIDENCE, "overlap", "overlap_b", "shift_x", "shift_y")
"""Evidence of :func:`verify_tiles`: the block correlation and the grey-level difference of the
overlap (:func:`match_tiles`), the share of each
frame the other covers, and ``a``'s origin in ``b``'s frame in fractions of ``b``'s width and height
(as the keypoint columns :data:`~splitaudit.duplicates.keypoints.KEYPOINT_COLUMNS` give it)."""


def tile_score(ncc: np.ndarray, grey: np.ndarray) -> np.ndarray:
    """Block correlation and grey difference -> score in [0, 1]: 0.5 at :data:`NCC_MID`, 0
    where the overlaps differ by more than :data:`GREY_LIMIT` grey levels or are unknown."""
    ncc = np.asarray(ncc, np.float64)
    grey = np.asarray(grey, np.float64)
    with np.errstate(over="ignore"):
        score = 1.0 / (1.0 + np.exp(-(ncc - NCC_MID) / NCC_SCALE))
    return np.where(np.isnan(ncc) | ~(grey <= GREY_LIMIT), 0.0, score)


def _grey(path) -> np.ndarray | None:
    loaded = open_image(path, reduce_to=TILE_SIDE // 2)
    if loaded.image is None:
        return None
    image = loaded.image.convert("L")
    if max(image.size) > TILE_SIDE:
        image.thumbnail((TILE_SIDE, TILE_SIDE))
    return np.asarray(image, np.float32)


def _bandpass(grey: np.ndarray) -> np.ndarray:
    from .._optional import opencv

    cv2 = opencv()
    return grey - cv2.GaussianBlur(grey, (0, 0), _SIGMA)


def _overlap(shape_a, shape_b, dy: int, dx: int):
    """Slices of ``a`` and ``b`` that meet when ``b`` is moved by (dy, dx) onto ``a``."""
    (ha, wa), (hb, wb) = shape_a, shape_b
    y0, y1 = max(0, dy), min(ha, hb + dy)
    x0, x1 = max(0, dx), min(wa, wb + dx)
    if y1 <= y0 or x1 <= x0:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - dy, y1 - dy), slice(x0 - dx, x1 - dx))


def _ncc(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two same-shape arrays (-1 when either is flat)."""
    x = x.ravel().astype(np.float64)
    y = y.ravel().astype(np.float64)
    n = x.size
    sx, sy = x.sum(), y.sum()
    vx = np.dot(x, x) - sx * sx / n
    vy = np.dot(y, y) - sy * sy / n
    den = np.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0
    return float((np.dot(x, y) - sx * sy / n) / den) if den > 0 else -1.0


def _block_ncc(x: np.ndarray, y: np.ndarray, grid: int = 8) -> float:
    """Median correlation of the (up to) ``grid`` x ``grid`` blocks of two aligned overlaps
    (blocks at least 4 pixels a side; a flat block counts as -1)."""
    h, w = x.shape
    gy, gx = min(grid, h // 4), min(grid, w // 4)
    if not gy or not gx:
        return -1.0
    bh, bw = h // gy, w // gx
    xb = x[:gy * bh, :gx * bw].reshape(gy, bh, gx, bw)
    yb = y[:gy * bh, :gx * bw].reshape(gy, bh, gx, bw)
    xb = xb - xb.mean(axis=(1, 3), keepdims=True)
    yb = yb - yb.mean(axis=(1, 3), keepdims=True)
    num = (xb * yb).sum(axis=(1, 3))
    den = np.sqrt((xb * xb).sum(axis=(1, 3)) * (yb * yb).sum(axis=(1, 3)))
    return float(np.median(np.where(den > 0, num / np.where(den > 0, den, 1), -1.0)))


_NOTHING = (-1.0, np.inf, 0.0, 0.0, 0, 0)


def _half(grey: np.ndarray) -> np.ndarray:
    h, w = grey.shape[0] // 2 * 2, grey.shape[1] // 2 * 2
    g = grey[:h, :w]
    return (g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2]) * np.float32(0.25)


class _Frame:
    """One gray image and what the tile check derives from it, computed once per image
    (an image meets several partners in a batch)."""

    def __init__(self, grey: np.ndarray) -> None:
        self.grey = grey
        self.factor = 2 if min(grey.shape) >= 64 else 1
        self._band = self._coarse = self._coarse_band = None
        self._spectra: dict = {}

    @property
    def band(self) -> np.ndarray:
        if self._band is None:
            self._band = _bandpass(self.grey)
        return self._band

    @property
    def coarse(self) -> np.ndarray:
        if self._coarse is None:
            self._coarse = _half(self.grey) if self.factor == 2 else self.grey
        return self._coarse

    @property
    def coarse_band(self) -> np.ndarray:
        if self._coarse_band is None:
            self._coarse_band = _bandpass(self.coarse) if self.factor == 2 else self.band
        return self._coarse_band

    def spectrum(self, h: int, w: int) -> np.ndarray:
        if (h, w) not in self._spectra:
            c = self.coarse
            self._spectra[h, w] = fft.rfft2(c - np.float32(c.mean()), s=(h, w))
        return self._spectra[h, w]


def _best_shift(grey_a, grey_b, pa, pb, shifts, min_overlap, step: int = 1):
    """Of the ``shifts`` (dy, dx), the one whose band-passed overlap (every ``step``-th pixel)
    correlates best, with its overlap slices; None when none overlaps ``min_overlap``."""
    (ha, wa), (hb, wb) = grey_a.shape, grey_b.shape
    least = min_overlap * min(ha * wa, hb * wb)
    best, best_ncc = None, -np.inf
    for dy, dx in shifts:
        where = _overlap((ha, wa), (hb, wb), dy, dx)
        if where is None:
            continue
        sa, sb = where
        if (sa[0].stop - sa[0].start) * (sa[1].stop - sa[1].start) < least:
            continue
        ncc = _ncc(pa[sa][::step, ::step], pb[sb][::step, ::step])
        if ncc > best_ncc:
            best, best_ncc = (dy, dx, sa, sb), ncc
    return best


def _refine(pa: np.ndarray, pb: np.ndarray, dy: int, dx: int, radius: int = 1) -> tuple[int, int]:
    """The shift within ``radius`` pixels of ``(dy, dx)`` whose band-passed overlap (every
    second pixel, the overlap shrunk by ``radius`` so all shifts fit) correlates best, in one
    array pass."""
    where = _overlap(pa.shape, pb.shape, dy, dx)
    if where is None:
        return dy, dx
    (ya, xa), (yb, xb) = where
    h, w = ya.stop - ya.start - 2 * radius, xa.stop - xa.start - 2 * radius
    if h < 4 or w < 4:
        return dy, dx
    core = pa[ya.start + radius:ya.stop - radius:2, xa.start + radius:xa.stop - radius:2]
    steps = [(i, j) for i in range(-radius, radius + 1) for j in range(-radius, radius + 1)]
    # b moved by (i, j) more: the same a pixels meet b pixels (i, j) earlier
    y0, x0 = yb.start + radius, xb.start + radius
    moved = np.stack([pb[y0 - i:y0 - i + h:2, x0 - j:x0 - j + w:2] for i, j in steps])
    x = core - core.mean()
    y = moved - moved.mean(axis=(1, 2), keepdims=True)
    ncc = (y * x).sum(axis=(1, 2)) / (np.sqrt((y * y).sum(axis=(1, 2)) * (x * x).sum()) + 1e-12)
    i, j = steps[int(np.argmax(ncc))]
    return dy + i, dx + j


def _frame(grey) -> "_Frame":
    return grey if isinstance(grey, _Frame) else _Frame(np.asarray(grey, np.float32))


def _search_scale(fa: _Frame, fb: _Frame):
    """``(factor, grey a, grey b, band a, band b)`` at the scale shifts are searched: half
    resolution when both frames allow it, else full."""
    if min(fa.factor, fb.factor) == 2:
        return 2, fa.coarse, fb.coarse, fa.coarse_band, fb.coarse_band
    return 1, fa.grey, fb.grey, fa.band, fb.band


def _proposals(fa: _Frame, fb: _Frame, peaks: int) -> list[tuple[int, int]]:
    """Phase correlation at the search scale: its ``peaks`` highest peaks, each read the four
    ways a circular correlation allows (a shift of ``d`` or ``d - size`` on each axis)."""
    _, ca, cb, _, _ = _search_scale(fa, fb)
    h, w = max(ca.shape[0], cb.shape[0]), max(ca.shape[1], cb.shape[1])
    if fa.factor == fb.factor:  # the search scale is each frame's own: its cached spectrum
        cross = fa.spectrum(h, w) * np.conj(fb.spectrum(h, w))
    else:
        cross = (fft.rfft2(ca - np.float32(ca.mean()), s=(h, w))
                 * np.conj(fft.rfft2(cb - np.float32(cb.mean()), s=(h, w))))
    cross /= np.abs(cross) + np.float32(1e-3)
    corr = fft.irfft2(cross, s=(h, w)).ravel()
    top = np.argpartition(-corr, min(peaks, corr.size - 1))[:peaks]
    return sorted({(dy, dx) for k in top.tolist() for y, x in [divmod(k, w)]
                   for dy in (y, y - h) for dx in (x, x - w)})


def _settle(fa: _Frame, fb: _Frame, shifts, min_overlap: float) -> tuple[float, float, float, float, int, int]:
    """The best of ``shifts`` (at the search scale), refined to the pixel, and its evidence."""
    factor, ca, cb, qa, qb = _search_scale(fa, fb)
    pa, pb = fa.band, fb.band
    if factor == 2:
        coarse = _best_shift(ca, cb, qa, qb, shifts, min_overlap, step=2)
        if coarse is None:
            return _NOTHING
        shifts = [_refine(pa, pb, 2 * coarse[0], 2 * coarse[1])]
        best = _best_shift(fa.grey, fb.grey, pa, pb, shifts, min_overlap)
    else:
        best = _best_shift(fa.grey, fb.grey, pa, pb, shifts, min_overlap, step=2)
    if best is None:
        return _NOTHING
    dy, dx, sa, sb = best
    area = (sa[0].stop - sa[0].start) * (sa[1].stop - sa[1].start)
    diff = (fa.grey[sa] - fb.grey[sb])[::2, ::2]
    grey = float(np.quantile(np.abs(diff - np.median(diff)), 0.9))
    return (_block_ncc(pa[sa], pb[sb], 8), grey, area / fa.grey.size, area / fb.grey.size, dx, dy)


def match_tiles(grey_a: np.ndarray, grey_b: np.ndarray, *, peaks: int = PEAKS,
                min_overlap: float = MIN_OVERLAP, hint: tuple[float, float] | None = None
                ) -> tuple[float, float, float, float, int, int]:
    """Best shift of ``grey_b`` onto ``grey_a``: ``(ncc, grey, overlap_a, overlap_b, dx, dy)``.

    Frames of 64 pixels and more are searched at half resolution (phase
    correlation, then the proposals ranked by the band-pass correlation of
    their overlap) and the winner is refined to the pixel at full resolution.
    ``ncc`` is the median correlation of the 8x8 blocks of the band-passed
    overlap at full resolution (-1 when no proposal overlaps enough): a shared
    caption, logo or letterbox bar correlates strongly as a whole but leaves
    most blocks unrelated. ``grey`` is the 90th percentile of the absolute
    difference of the two overlaps (grey levels, after their median
    difference): a few levels of JPEG noise for the same pixels, tens for
    look-alikes whose outlines line up (two pairs of plain trousers).
    ``overlap_a`` / ``overlap_b`` are the overlap's share of each frame,
    ``(dx, dy)`` the shift in pixels (``b``'s origin in ``a``'s frame).
    ``hint`` (``(dx, dy)``, e.g. from the keypoint votes) is searched first,
    within :data:`HINT_REACH` pixels; the phase correlation runs only when
    that finds no tile.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> big = rng.random((64, 96)).astype(np.float32) * 255
    >>> ncc, grey, overlap_a, overlap_b, dx, dy = match_tiles(big[:, :64], big[:, 24:88])
    >>> (dx, dy), round(overlap_a, 3), ncc > 0.99, grey
    ((24, 0), 0.625, True, 0.0)
    """
    fa, fb = _frame(grey_a), _frame(grey_b)
    if hint is not None and np.isfinite(hint).all():
        _, ca, _, qa, qb = _search_scale(fa, fb)
        hy = int(round(hint[1] * ca.shape[0] / fa.grey.shape[0]))
        hx = int(round(hint[0] * ca.shape[1] / fa.grey.shape[1]))
        found = _settle(fa, fb, [_refine(qa, qb, hy, hx, HINT_REACH)], min_overlap)
        if tile_score(found[0], found[1]) >= 0.5:
            return found
    return _settle(fa, fb, _proposals(fa, fb, peaks), min_overlap)


def pixel_scale(local, table) -> np.ndarray:
    """Working pixels per file pixel of each image (float32): the keypoints' frame (``local.size``)
    over the file's long side (``table``'s ``width``, ``height``); 1 where either is unknown. A crop
    saved at its own size shares its original's pixels at one shift in file pixels, not in working
    pixels (a 184-px crop's 128-px frame is 1.4x finer than its 256-px original's)."""
    work = local.size.max(axis=1).astype(np.float64)
    file = np.fmax(table["width"].to_numpy(np.float64), table["height"].to_numpy(np.float64))
    ok = (work > 0) & (file > 0)
    return np.where(ok, work / np.where(ok, file, 1.0), 1.0).astype(np.float32)


def thumb_grey(thumbs: np.ndarray, size: np.ndarray, a: np.ndarray, b: np.ndarray, moved: np.ndarray,
               *, min_overlap: float = MIN_OVERLAP, ratio: np.ndarray | None = None) -> np.ndarray:
    """The tile test's grey difference on the 32x32 thumbnails, at the shift the keypoint
    votes agree on: a cheap screen before the files are read again.

    ``size`` is each image's keypoint working size ``(w, h)``, ``moved`` (``(n, 2)``) the
    displacement of ``a``'s content in ``b`` (working pixels). ``b``'s thumbnail is sampled
    (bilinear) at each pixel of ``a``'s; the 90th percentile of the absolute difference
    (after the median difference) over the pixels both cover is returned, ``inf`` where they
    cover less than ``min_overlap`` of ``a`` or the shift is unknown. ``ratio`` (per pair, default
    1): ``b``'s working pixels per working pixel of ``a`` at one file scale, where ``moved`` puts
    ``b``'s frame at ``a``'s scale (:func:`~.keypoints.keypoint_candidates`' ``pixel_scale``).
    """
    n = len(a)
    out = np.full(n, np.inf)
    side = thumbs.shape[1]
    grid = np.arange(side, dtype=np.float32) + 0.5
    for start in range(0, n, 2048):
        sl = slice(start, min(start + 2048, n))
        ia, ib, shift = a[sl], b[sl], np.asarray(moved[sl], np.float32)
        wa, ha = size[ia, 0:1], size[ia, 1:2]
        wb, hb = size[ib, 0:1], size[ib, 1:2]
        r = 1.0 if ratio is None else np.asarray(ratio[sl], np.float32)[:, None]
        x = (grid[None] * wa / side + shift[:, 0:1]) * r * side / wb - 0.5   # (m, side): b's column per a column
        y = (grid[None] * ha / side + shift[:, 1:2]) * r * side / hb - 0.5
        inside = ((x >= 0) & (x <= side - 1))[:, None, :] & ((y >= 0) & (y <= side - 1))[:, :, None]
        x0 = np.clip(np.floor(x), 0, side - 2).astype(np.int64)
        y0 = np.clip(np.floor(y), 0, side - 2).astype(np.int64)
        fx = np.clip(x - x0, 0, 1)[:, None, :]
        fy = np.clip(y - y0, 0, 1)[:, :, None]
        tb = thumbs[ib].astype(np.float32)
        rows = np.arange(len(ia))[:, None, None]

        def at(dy, dx):
            return tb[rows, (y0 + dy)[:, :, None], (x0 + dx)[:, None, :]]

        warped = (at(0, 0) * (1 - fx) + at(0, 1) * fx) * (1 - fy) + (at(1, 0) * (1 - fx) + at(1, 1) * fx) * fy
        enough = (inside.reshape(len(ia), -1).mean(1) >= min_overlap) & np.isfinite(shift).all(1)
        if not enough.any():
            continue
        m = int(enough.sum())
        valid = inside[enough].reshape(m, -1)
        count = valid.sum(1)
        rows_m, cols = np.arange(m), np.arange(valid.shape[1])[None]
        # median and 90th percentile over the covered pixels: sorted, the others pushed last
        diff = np.where(valid, (thumbs[ia].astype(np.float32) - warped)[enough].reshape(m, -1), np.inf)
        diff.sort(axis=1)
        dev = np.abs(diff - diff[rows_m, count // 2][:, None])
        dev[cols >= count[:, None]] = np.inf
        dev.sort(axis=1)
        out[np.arange(sl.start, sl.stop)[enough]] = dev[rows_m, np.minimum((count * 9) // 10, count - 1)]
    return out


def _check_chunk(items) -> list[tuple]:
    """:data:`TILE_COLUMNS` for each ``(path_a, path_b, hint_x, hint_y)``; each file read once."""
    frames: dict = {}
    for path_a, path_b, _, _ in items:
        for path in (path_a, path_b):
            if path not in frames:
                grey = _grey(path)
                frames[path] = None if grey is None else _Frame(grey)
    rows = []
    for path_a, path_b, hint_x, hint_y in items:
        fa, fb = frames[path_a], frames[path_b]
        if fa is None or fb is None:
            rows.append((np.nan,) * 6)
            continue
        (ha, wa), (hb, wb) = fa.grey.shape, fb.grey.shape
        ncc, grey, overlap_a, overlap_b, dx, dy = match_tiles(fa, fb, hint=(hint_x * wa, hint_y * ha))
        rows.append((ncc, grey, overlap_a, overlap_b, -dx / wb, -dy / hb))
    return rows


def verify_tiles(paths, a: np.ndarray, b: np.ndarray, *, hints: np.ndarray | None = None,
                 jobs: int | None = 1) -> dict[str, np.ndarray]:
    """Tile evidence (:data:`TILE_COLUMNS`) and ``score`` for the pairs ``(a[i], b[i])``.

    ``paths`` are the image files (row order). ``hints`` (``(n, 2)``, optional)
    is each pair's expected shift, ``b``'s origin in ``a``'s frame as fractions
    of ``a``'s width and height (see :func:`match_tiles`). A file that cannot
    be read gives NaN evidence and a score of 0.
    """
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    out = {name: np.full(len(a), np.nan) for name in TILE_COLUMNS}

    order = np.lexsort((b, a))  # pairs of one image together: each chunk reads fewer files
    hint = np.full((len(a), 2), np.nan) if hints is None else np.asarray(hints, np.float64)
    items = [(paths[a[k]], paths[b[k]], hint[k, 0], hint[k, 1]) for k in order.tolist()]
    # processes, not threads: the many small numpy steps per pair hold the GIL (2 threads were
    # slower than 1 on 1,000 pairs of the 48k split)
    rows = ordered_map(_check_chunk, items, jobs=resolve_jobs(jobs) if len(items) >= _POOL_FROM else 1,
                       chunksize=_BATCH)
    for k, row in zip(order.tolist(), rows):
        for name, value in zip(TILE_COLUMNS, row):
            out[name][k] = value
    out["score"] = tile_score(out["tile_ncc"], out["tile_grey"])
    return out
