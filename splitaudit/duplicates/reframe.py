"""Candidates for shifted, cropped and zoomed copies (used by the learned verifier).

The plain thumbnail search compares images as they are framed, so a copy shifted
by a few pixels, or cropped and scaled back, can land far from its original. Two
re-framings bring them back together, each as unit vectors searched by cosine:

- :func:`shape_vectors`: the foreground resampled around its centroid at a scale
  set by its radius of gyration (undoes shifts and zooms of an object on a plain
  background);
- :func:`zoom_vectors`: centre crops, so a whole image can meet the centre crop
  of another (a crop of it) and the other way round;
- :func:`spectrum_vectors`: the magnitude spectrum of the zero-padded
  foreground, which a shift does not change (only what it pushes out of frame);
- :func:`rotated_vectors`: whole thumbnails rotated by a few degrees, so a
  rotated copy meets its original turned the same way.

All are flip-aware (mirrored query vectors). :func:`geometry_candidates` turns
the first two into candidate pairs that are ranked by the caller,
:func:`direct_candidates` the last two into pairs kept as they are (measured on
the Fashion-MNIST planted set, ``results_embeddings.md`` section 3g); the
learned verifier decides.
"""

from __future__ import annotations

import numpy as np

from ..search.cosine import cosine_topk
from ..search.mirror import thumb_vectors

__all__ = ["shape_vectors", "zoom_vectors", "spectrum_vectors", "rotated_vectors", "geometry_vectors",
           "geometry_candidates", "direct_candidates"]


def _unit_rows(x: np.ndarray) -> np.ndarray:
    v = x.reshape(len(x), -1).astype(np.float32)
    v -= v.mean(1, keepdims=True)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 1e-6)


def _bilinear(img: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Sample images (N, H, W) at per-image grids (N, S, S) of x / y pixel
    coordinates, bilinearly, zero outside."""
    n, h, w = img.shape
    x0, y0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = (gx - x0).astype(np.float32), (gy - y0).astype(np.float32)
    rows = np.arange(n)[:, None, None]
    out = np.zeros(gx.shape, np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            out += np.where(inside, img[rows, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)], 0.0) * wx * wy
    return out


def shape_vectors(thumbs: np.ndarray, side: int = 20, spread: float = 2.0, batch: int = 4096):
    """Shift- and scale-normalised foreground vectors (plain, mirrored), unit rows (N, side²).

    The foreground is ``|thumb - background|`` (background: median of the border
    pixels); it is resampled on a ``side`` x ``side`` grid centred on its
    centroid and spanning ``± spread`` radii of gyration. A shifted or cropped
    copy of an object on a plain background lands near its original, which the
    plain thumbnail search misses."""
    n = len(thumbs)
    plain = np.zeros((n, side * side), np.float32)
    mirror = np.zeros_like(plain)
    u = np.linspace(-spread, spread, side, dtype=np.float32)
    for s0 in range(0, n, batch):
        t = thumbs[s0:s0 + batch].astype(np.float32)
        m_, h, w = t.shape
        fg = np.abs(_foreground(t))
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        mass = fg.sum((1, 2)) + 1e-6
        cx, cy = (fg * xs).sum((1, 2)) / mass, (fg * ys).sum((1, 2)) / mass
        r = np.sqrt((fg * ((xs - cx[:, None, None]) ** 2 + (ys - cy[:, None, None]) ** 2)).sum((1, 2)) / mass)
        r = np.maximum(r, 0.5)[:, None, None]
        gx = np.broadcast_to(cx[:, None, None] + r * u[None, None, :], (m_, side, side))
        gy = np.broadcast_to(cy[:, None, None] + r * u[None, :, None], (m_, side, side))
        c = _bilinear(fg, gx, gy)
        plain[s0:s0 + batch] = _unit_rows(c)
        mirror[s0:s0 + batch] = _unit_rows(c[:, :, ::-1])
    return plain, mirror


def zoom_vectors(thumbs: np.ndarray, keep: float = 0.8, side: int = 16, batch: int = 4096):
    """Centre crops keeping ``keep`` of each side, resampled to ``side`` x ``side``
    (``keep=1``: the whole thumbnail), as unit rows (N, side²), plain and mirrored."""
    n, h, w = thumbs.shape
    plain = np.zeros((n, side * side), np.float32)
    mirror = np.zeros_like(plain)
    pos = (np.arange(side, dtype=np.float32) + 0.5) / side
    gx = ((1 - keep) / 2 + keep * pos) * w - 0.5
    gy = ((1 - keep) / 2 + keep * pos) * h - 0.5
    for s0 in range(0, n, batch):
        t = thumbs[s0:s0 + batch].astype(np.float32)
        c = _bilinear(t, np.broadcast_to(gx[None, None, :], (len(t), side, side)),
                      np.broadcast_to(gy[None, :, None], (len(t), side, side)))
        plain[s0:s0 + batch] = _unit_rows(c)
        mirror[s0:s0 + batch] = _unit_rows(c[:, :, ::-1])
    return plain, mirror


def _foreground(t: np.ndarray) -> np.ndarray:
    """``t`` (float32) minus the median of its border pixels (the background level)."""
    border = np.concatenate([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], 1)
    return t - np.median(border, 1)[:, None, None]


def spectrum_vectors(thumbs: np.ndarray, pad: int = 48, keep: int = 12, batch: int = 4096):
    """Shift-invariant vectors (plain, mirrored), unit rows (N, 2 * keep²).

    The square root of the magnitude of the 2-D Fourier transform of the
    foreground (:func:`shape_vectors`' background removed, signed), zero-padded
    to ``pad`` x ``pad`` so a shift inside the frame changes no magnitude; the
    ``keep`` lowest frequencies of both vertical signs. Planted set: shifted
    copies whose original is among the 3 nearest 0.947 (0.873 without them).
    """
    n = len(thumbs)
    dim = 2 * keep * keep
    plain, mirror = np.zeros((n, dim), np.float32), np.zeros((n, dim), np.float32)
    for s0 in range(0, n, batch):
        fg = _foreground(thumbs[s0:s0 + batch].astype(np.float32))
        for out, img in ((plain, fg), (mirror, fg[:, :, ::-1])):
            mag = np.abs(np.fft.rfft2(img, s=(pad, pad)))
            low = np.concatenate([mag[:, :keep, :keep], mag[:, -keep:, :keep]], 1)
            out[s0:s0 + batch] = _unit_rows(np.sqrt(low))
    return plain, mirror


def rotated_vectors(thumbs: np.ndarray, degrees: float, side: int = 16):
    """Whole thumbnails rotated by ``degrees`` about their centre (bilinear, zero
    outside), sampled on a ``side`` x ``side`` grid, as unit rows (N, side²)."""
    n, h, w = thumbs.shape
    pos = (np.arange(side, dtype=np.float32) + 0.5) / side
    xs, ys = np.meshgrid(pos * w - 0.5 - (w - 1) / 2, pos * h - 0.5 - (h - 1) / 2)
    t = np.deg2rad(degrees)
    gx = (w - 1) / 2 + np.cos(t) * xs - np.sin(t) * ys
    gy = (h - 1) / 2 + np.sin(t) * xs + np.cos(t) * ys
    out = np.zeros((n, side * side), np.float32)
    for s0 in range(0, n, 4096):
        t_ = thumbs[s0:s0 + 4096].astype(np.float32)
        out[s0:s0 + 4096] = _unit_rows(_bilinear(t_, np.broadcast_to(gx, (len(t_), side, side)),
                                                 np.broadcast_to(gy, (len(t_), side, side))))
    return out


def _flip_topk(q, qm, base, k):
    """Indices (Q, k) of the base rows nearest to q or its mirror qm (cosine)."""
    s1, i1 = cosine_topk(q, base, k)
    s2, i2 = cosine_topk(qm, base, k)
    s, i = np.concatenate([s1, s2], 1), np.concatenate([i1, i2], 1)
    order = np.argsort(-s, 1, kind="stable")
    return np.take_along_axis(i, order, 1)[:, :k]


ROTATIONS = (8.0, -8.0)
"""Angles (degrees) of :func:`rotated_vectors` in :func:`geometry_vectors`."""


def _add_nearest(qa: list, qb: list, ia, ib, q, q_mirror, base, k: int, within: bool) -> None:
    """Append each ``ia`` image's ``k`` nearest ``ib`` images (``q``/``q_mirror`` rows of
    ``ia`` against ``base`` rows of ``ib``; one more within a set, for the image itself)."""
    kk = min(k + (1 if within else 0), len(ib))
    idx = _flip_topk(q, q_mirror, base, kk)
    qa.append(np.repeat(ia, kk)); qb.append(ib[idx].ravel())


def geometry_vectors(thumbs: np.ndarray, zoom_keep: float = 0.8, whole=None) -> dict:
    """The vectors :func:`geometry_candidates` searches, computed once per set of
    thumbnails: ``shape``, ``whole`` (the 16x16 pooled thumbnail of
    :func:`~splitaudit.duplicates.search.thumb_vectors`; pass ``whole`` when
    the caller has it, as ``find_duplicates`` does) and ``crop`` (centre crops
    keeping ``zoom_keep``), each a (plain, mirrored) pair; ``spectrum``
    (:func:`spectrum_vectors`, plain and mirrored) and ``rotated`` (angle ->
    :func:`rotated_vectors` for each of :data:`ROTATIONS`)."""
    if whole is None:
        plain = thumb_vectors(thumbs)
        whole = (plain, plain.reshape(-1, 16, 16)[:, :, ::-1].reshape(len(plain), -1))  # mirror = reversed columns
    return {"shape": shape_vectors(thumbs), "whole": tuple(whole), "crop": zoom_vectors(thumbs, zoom_keep),
            "spectrum": spectrum_vectors(thumbs),
            "rotated": {d: rotated_vectors(thumbs, d) for d in ROTATIONS}}


def geometry_candidates(thumbs: np.ndarray, ia: np.ndarray, ib: np.ndarray, within: bool,
                        k_shape: int = 10, k_zoom: int = 10, zoom_keep: float = 0.8,
                        vectors: dict | None = None):
    """Candidates for shifted, cropped and zoomed copies (global a, b; may repeat):
    each ``ia`` image's ``k_shape`` nearest in ``ib`` by :func:`shape_vectors`, and
    its ``k_zoom`` nearest between its whole thumbnail and the ``ib`` centre crops
    (an ``ia`` crop of an ``ib`` image) and the other way round (flip-aware).
    ``vectors``: :func:`geometry_vectors` of ``thumbs``, when already computed."""
    qa, qb = [], []
    if not len(ia) or not len(ib):
        return qa, qb
    v = vectors if vectors is not None else geometry_vectors(thumbs, zoom_keep)
    if k_shape:
        plain, mirror = v["shape"]
        _add_nearest(qa, qb, ia, ib, plain[ia], mirror[ia], plain[ib], k_shape, within)
    if k_zoom:
        (whole, whole_m), (crop, crop_m) = v["whole"], v["crop"]
        _add_nearest(qa, qb, ia, ib, whole[ia], whole_m[ia], crop[ib], k_zoom, within)  # ia is a crop of ib
        _add_nearest(qa, qb, ia, ib, crop[ia], crop_m[ia], whole[ib], k_zoom, within)  # ib is a crop of ia
    return qa, qb


def direct_candidates(thumbs: np.ndarray, ia: np.ndarray, ib: np.ndarray, within: bool,
                      k_spectrum: int = 3, k_rotate: int = 2, vectors: dict | None = None):
    """Candidates for shifted and rotated copies, kept without ranking (global a, b; may
    repeat): each ``ia`` image's ``k_spectrum`` nearest in ``ib`` by
    :func:`spectrum_vectors` and, for each angle of :data:`ROTATIONS`, its
    ``k_rotate`` nearest ``ib`` thumbnails rotated by that angle (flip-aware).
    Planted set (3600 val queries, 1650 train images): the true original is among
    all candidates for 0.991 of copies instead of 0.977, for 28 % more pairs.
    ``vectors``: :func:`geometry_vectors` of ``thumbs``, when already computed."""
    qa, qb = [], []
    if not len(ia) or not len(ib):
        return qa, qb
    v = vectors if vectors is not None else geometry_vectors(thumbs)
    if k_spectrum:
        plain, mirror = v["spectrum"]
        _add_nearest(qa, qb, ia, ib, plain[ia], mirror[ia], plain[ib], k_spectrum, within)
    if k_rotate:
        whole, whole_m = v["whole"]
        for rotated in v["rotated"].values():
            _add_nearest(qa, qb, ia, ib, whole[ia], whole_m[ia], rotated[ib], k_rotate, within)
    return qa, qb
