"""Candidates for shifted, cropped and zoomed copies (used by the learned verifier).

The plain thumbnail search compares images as they are framed, so a copy shifted
by a few pixels, or cropped and scaled back, can land far from its original. Two
re-framings bring them back together, each as unit vectors searched by cosine:

- :func:`shape_vectors`: the foreground resampled around its centroid at a scale
  set by its radius of gyration (undoes shifts and zooms of an object on a plain
  background);
- :func:`zoom_vectors`: centre crops, so a whole image can meet the centre crop
  of another (a crop of it) and the other way round.

Both are flip-aware (mirrored query vectors). :func:`geometry_candidates` turns
them into candidate pairs; the learned verifier decides.
"""

from __future__ import annotations

import numpy as np

from ..neighbors import cosine_topk
from .search import thumb_vectors

__all__ = ["shape_vectors", "zoom_vectors", "geometry_vectors", "geometry_candidates"]


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
        border = np.concatenate([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], 1)
        fg = np.abs(t - np.median(border, 1)[:, None, None])
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


def _flip_topk(q, qm, base, k):
    """Indices (Q, k) of the base rows nearest to q or its mirror qm (cosine)."""
    s1, i1 = cosine_topk(q, base, k)
    s2, i2 = cosine_topk(qm, base, k)
    s, i = np.concatenate([s1, s2], 1), np.concatenate([i1, i2], 1)
    order = np.argsort(-s, 1, kind="stable")
    return np.take_along_axis(i, order, 1)[:, :k]


def geometry_vectors(thumbs: np.ndarray, zoom_keep: float = 0.8, whole=None) -> dict:
    """The vectors :func:`geometry_candidates` searches, computed once per set of
    thumbnails: ``shape``, ``whole`` (the 16x16 pooled thumbnail of
    :func:`~splitaudit.duplicates.search.thumb_vectors`; pass ``whole`` when
    the caller has it, as ``find_duplicates`` does) and ``crop`` (centre crops
    keeping ``zoom_keep``), each a (plain, mirrored) pair."""
    if whole is None:
        plain = thumb_vectors(thumbs)
        whole = (plain, plain.reshape(-1, 16, 16)[:, :, ::-1].reshape(len(plain), -1))  # mirror = reversed columns
    return {"shape": shape_vectors(thumbs), "whole": tuple(whole), "crop": zoom_vectors(thumbs, zoom_keep)}


def geometry_candidates(thumbs: np.ndarray, ia: np.ndarray, ib: np.ndarray, within: bool,
                        k_shape: int = 10, k_zoom: int = 10, zoom_keep: float = 0.8,
                        vectors: dict | None = None):
    """Candidates for shifted, cropped and zoomed copies (global a, b; may repeat):
    each ``ia`` image's ``k_shape`` nearest in ``ib`` by :func:`shape_vectors`, and
    its ``k_zoom`` nearest between its whole thumbnail and the ``ib`` centre crops
    (an ``ia`` crop of an ``ib`` image) and the other way round (flip-aware).
    ``vectors``: :func:`geometry_vectors` of ``thumbs``, when already computed."""
    qa, qb = [], []
    extra = 1 if within else 0
    if not len(ia) or not len(ib):
        return qa, qb
    v = vectors if vectors is not None else geometry_vectors(thumbs, zoom_keep)
    if k_shape:
        plain, mirror = v["shape"]
        kk = min(k_shape + extra, len(ib))
        idx = _flip_topk(plain[ia], mirror[ia], plain[ib], kk)
        qa.append(np.repeat(ia, kk)); qb.append(ib[idx].ravel())
    if k_zoom:
        (whole, whole_m), (crop, crop_m) = v["whole"], v["crop"]
        kk = min(k_zoom + extra, len(ib))
        idx = _flip_topk(whole[ia], whole_m[ia], crop[ib], kk)  # ia is a crop of ib
        qa.append(np.repeat(ia, kk)); qb.append(ib[idx].ravel())
        idx = _flip_topk(crop[ia], crop_m[ia], whole[ib], kk)  # ib is a crop of ia
        qa.append(np.repeat(ia, kk)); qb.append(ib[idx].ravel())
    return qa, qb
