"""Local image features: ORB keypoints for copy detection (crops, rotations, overlays, tiles).

Global fingerprints (hashes, thumbnails) describe the whole frame, so a crop,
a rotation of a few degrees, a caption or the neighbouring tile of one large
picture moves them far from the original. Keypoints survive all of these:
each is a small patch that an edit of the rest of the frame leaves alone.
This module computes them once per image, at fingerprint time, from the gray
decode that the hashes use:

1. the gray image is resized so its long side is :data:`LOCAL_SIDE` pixels
   (``INTER_AREA`` down, ``INTER_LINEAR`` up: a 28-px image is enlarged) and
   histogram-equalised, so low-contrast photos and gamma changes give the
   same corners;
2. OpenCV's ORB (oriented FAST corners + rotated BRIEF, 256-bit binary
   descriptors; rotation-invariant, an 8-level scale pyramid) keeps the
   :data:`LOCAL_FEATURES` strongest keypoints;
3. a low-texture image (blurred background, sky, a wall) that leaves fewer
   than :data:`LOCAL_FEATURES` corners at FAST threshold :data:`FAST_THRESHOLD`
   fills the rest of its budget with weaker corners (:data:`WEAK_FAST_THRESHOLD`),
   where the working image is not an enlargement (see :data:`WEAK_FAST_THRESHOLD`).
   The strong keypoints are all kept, in their order, ahead of the weak ones.

Per image: positions in working-image pixels (float32, ``(k, 2)``), the
working size, and descriptors (uint8, ``(k, 32)``), in *spread order*: the
strongest keypoint of each cell of a 4x4 grid first, then the second of
each, ... (a caption's corners cannot take the whole budget, and any prefix
covers the frame: retrieval queries with the first few). :class:`LocalFeatures`
holds a whole split as ragged arrays (``offsets``); :func:`pack`/:func:`unpack`
turn one image's features into the base64 text kept in the fingerprint cache.
Measured on 78 real 256-px photo tiles (Chelsea, astronaut, Hubble, retina, ...):
equalisation raised the share of edited copies verified with >= 8 RANSAC
inliers from ~0.75 to ~0.96 (low-contrast retina tiles had < 20 corners), and
no pair of distinct tiles reached 7 inliers.

Examples
--------
>>> import numpy as np
>>> gray = (np.random.default_rng(0).random((96, 96)) * 255).astype(np.uint8)
>>> xy, size, desc = orb_features(gray)
>>> desc.shape[1], desc.dtype.name
(32, 'uint8')
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .._optional import opencv

__all__ = ["LocalFeatures", "NO_FEATURES", "orb_features", "pack", "unpack", "LOCAL_SIDE", "LOCAL_FEATURES", "DESCRIPTOR_BYTES"]

LOCAL_SIDE = 128
"""Long side (pixels) of the working image the keypoints are found on."""
LOCAL_FEATURES = 128
"""Keypoints kept per image (ORB's strongest by FAST score)."""
DESCRIPTOR_BYTES = 32
MIN_NATIVE_SIDE = 32
"""Decoded short side (pixels) below which an image gets no keypoints and its copies
are left to the thumbnail path. On the real Fashion-MNIST split (28 px) keypoints
fitted on the enlarged outlines reported 203 extra cross pairs, mostly distinct
plain trousers (same silhouette, 10-26 inliers, 3-6 grey levels apart once
aligned), and made the scan 10x slower; on the planted 28-px set they had found
crops and rotations (recall 0.12 -> 0.67), which small images now miss by default.
32, not 48: a copy downscaled to 32-47 px (e.g. a captioned 96-px image at 0.35-0.5x)
keeps its keypoints; on the planted 96-px Fashion-MNIST set overlay+downscale went
0.33 -> 0.53 with no new false pair, and 24 px found nothing more than 32."""
FAST_THRESHOLD = 10
"""FAST corner threshold (grey levels of the equalised working image) of the keypoints."""
WEAK_FAST_THRESHOLD = 2
"""FAST threshold of the corners that fill the budget of an image left under :data:`LOCAL_FEATURES`
keypoints at :data:`FAST_THRESHOLD`, only where the working image is a reduction of the decode (or
its size): there a weak corner is averaged over decoded pixels, not an interpolation artefact of an
enlarged 28- or 96-px image, whose look-alike outlines it would only help match. On the 640-px
planted photo set 4 of 168 copies came from blurred or flat pictures with 0-34 keypoints (crops of
bokeh, a padded wall); with the weak corners 3 more were found (157 -> 160), 256-px photos gained
2 on each planted draw (399 -> 401, 403 -> 405), precision unchanged; Fashion-MNIST 96 px is
enlarged, so unchanged. Thresholds 4-5 in place of 2 recovered fewer (158-159)."""
_DETECT = 4  # candidates detected per kept keypoint, so the grid can spread them
_GRID = 4
_MIN_SIDE = 32  # working-frame short side below which an image gets no keypoints
_PATCH = 15  # px: ORB's patch and border at 128 px (31, its default, would drop 45 % of the frame)
NO_FEATURES = (np.zeros((0, 2), np.float32), np.zeros(2, np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8))
"""``(xy, size, desc)`` of an image without keypoints (unreadable, flat)."""
_ORB: list = []


def _cv2(weak: bool = False):
    """OpenCV and the ORB detector (``weak``: at :data:`WEAK_FAST_THRESHOLD`), created once."""
    cv2 = opencv("local features (copy detection)")  # one thread: workers are processes already
    if not _ORB:
        _ORB.extend(cv2.ORB_create(nfeatures=_DETECT * LOCAL_FEATURES, scaleFactor=1.2, nlevels=8,
                                   edgeThreshold=_PATCH, patchSize=_PATCH, fastThreshold=threshold)
                    for threshold in (FAST_THRESHOLD, WEAK_FAST_THRESHOLD))
    return cv2, _ORB[1 if weak else 0]


def orb_features(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ORB keypoints of one gray image: ``(xy (k, 2) float32, size (2,) float32, desc (k, 32) uint8)``.

    ``xy`` are pixel positions in the working image of ``size = (width,
    height)`` (long side :data:`LOCAL_SIDE`). A flat image gives ``k = 0``.
    """
    cv2, orb = _cv2()
    height, width = gray.shape[:2]
    if min(height, width) < 1:
        return NO_FEATURES
    scale = LOCAL_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(size) < _MIN_SIDE or min(height, width) < MIN_NATIVE_SIDE:
        # a strip (4000x3) has no room for a patch; a 28-px image enlarged to 128 px has
        # corners only on its outline, which look-alikes share (see MIN_NATIVE_SIDE)
        return np.zeros((0, 2), np.float32), np.asarray(size, np.float32), NO_FEATURES[2]
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    work = cv2.resize(np.ascontiguousarray(gray), size, interpolation=interpolation)
    work = cv2.equalizeHist(work)
    keypoints = orb.detect(work, None)
    if len(keypoints) > LOCAL_FEATURES:
        keypoints = _spread(keypoints, size, LOCAL_FEATURES)
    elif len(keypoints) < LOCAL_FEATURES and scale <= 1:  # low texture: weaker corners fill the budget
        keypoints = _fill_weak(work, size, list(keypoints))
    for rank, keypoint in enumerate(keypoints):  # ORB's compute regroups keypoints by pyramid level:
        keypoint.class_id = rank                   # its class_id carries the spread order through
    keypoints, desc = orb.compute(work, keypoints) if keypoints else ((), None)
    if not keypoints or desc is None:
        return np.zeros((0, 2), np.float32), np.asarray(size, np.float32), NO_FEATURES[2]
    order = np.argsort([k.class_id for k in keypoints], kind="stable")
    # rounded to float16, as the fingerprint cache stores them (:func:`pack`): a cached scan and a
    # fresh one then fit the same positions (1/16 px at 64-128 px, far inside RANSAC's 3 px)
    xy = cv2_points(keypoints)[order].astype(np.float16).astype(np.float32)
    return xy, np.asarray(size, np.float32), np.ascontiguousarray(desc[order], np.uint8)


def _fill_weak(work: np.ndarray, size: tuple[int, int], keypoints: list) -> list:
    """``keypoints`` (under :data:`LOCAL_FEATURES`, kept as they are, first) and the weaker
    corners of :data:`WEAK_FAST_THRESHOLD` not among them, spread over the rest of the budget."""
    _, weak_orb = _cv2(weak=True)
    have = {(round(k.pt[0], 2), round(k.pt[1], 2), k.octave) for k in keypoints}
    weak = [k for k in weak_orb.detect(work, None) if (round(k.pt[0], 2), round(k.pt[1], 2), k.octave) not in have]
    room = LOCAL_FEATURES - len(keypoints)
    if len(weak) > room:
        weak = _spread(weak, size, room)
    return keypoints + weak


def cv2_points(keypoints) -> np.ndarray:
    """(k, 2) positions of OpenCV keypoints (one C call, not a Python loop)."""
    cv2, _ = _cv2()
    return np.asarray(cv2.KeyPoint_convert(keypoints), np.float64).reshape(-1, 2)


def _spread(keypoints, size: tuple[int, int], budget: int) -> list:
    """The ``budget`` keypoints that share the frame out: the strongest of each of
    :data:`_GRID` x :data:`_GRID` cells first, then the second of each, ...

    Without it a caption, a logo or a letterbox edge (strong corners) takes
    most of the keypoints and the picture around it keeps too few to match.
    """
    response = np.fromiter((k.response for k in keypoints), np.float64, len(keypoints))
    xy = cv2_points(keypoints)
    cell = (np.minimum((xy[:, 0] * _GRID / size[0]).astype(int), _GRID - 1) * _GRID
            + np.minimum((xy[:, 1] * _GRID / size[1]).astype(int), _GRID - 1))
    order = np.lexsort((-response, cell))  # by cell, strongest first
    first = np.r_[0, np.flatnonzero(np.diff(cell[order])) + 1]
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    chosen = np.lexsort((-response, rank))[:budget]
    return [keypoints[i] for i in chosen]  # spread order: any prefix covers the frame


def pack(xy: np.ndarray, size: np.ndarray, desc: np.ndarray) -> str:
    """One image's features as base64 text (the cache format): size, float16 xy, descriptors."""
    blob = (np.asarray(size, np.float32).tobytes() + np.asarray(xy, np.float16).tobytes()
            + np.ascontiguousarray(desc, np.uint8).tobytes())
    return base64.b64encode(blob).decode("ascii")


def unpack(text: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack`; ``None`` or malformed text gives no features (never raises)."""
    if not text:
        return NO_FEATURES
    try:
        blob = base64.b64decode(text)
    except (ValueError, TypeError):
        return NO_FEATURES
    per = 4 + DESCRIPTOR_BYTES  # two float16 + 32 bytes per keypoint
    if len(blob) < 8 or (len(blob) - 8) % per:
        return NO_FEATURES
    k = (len(blob) - 8) // per
    size = np.frombuffer(blob, np.float32, 2)
    xy = np.frombuffer(blob, np.float16, 2 * k, 8).astype(np.float32).reshape(k, 2)
    desc = np.frombuffer(blob, np.uint8, k * DESCRIPTOR_BYTES, 8 + 4 * k).reshape(k, DESCRIPTOR_BYTES)
    return xy, size.copy(), desc.copy()


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints of many images as ragged arrays.

    Attributes
    ----------
    offsets : int64 array (n + 1,)
        Image ``i`` owns rows ``offsets[i]:offsets[i + 1]`` of ``xy`` and ``desc``.
    xy : float32 array (m, 2)
        Keypoint positions in each image's working frame.
    size : float32 array (n, 2)
        Working frame (width, height) per image; 0 for unreadable rows.
    desc : uint8 array (m, 32)
        ORB descriptors (256 bits).
    """

    offsets: np.ndarray
    xy: np.ndarray
    size: np.ndarray
    desc: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        """Keypoints per image."""
        return np.diff(self.offsets)

    def of(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(xy, desc)`` of image ``i``."""
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.xy[lo:hi], self.desc[lo:hi]

    def owner(self) -> np.ndarray:
        """Image index of every keypoint row (int64, ``(m,)``)."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.counts)

    @classmethod
    def from_parts(cls, parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> "LocalFeatures":
        """Stack per-image ``(xy, size, desc)`` triples (as :func:`orb_features` returns)."""
        counts = np.fromiter((len(p[0]) for p in parts), np.int64, len(parts))
        offsets = np.zeros(len(parts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        xy = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 2), np.float32)
        desc = np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, DESCRIPTOR_BYTES), np.uint8)
        size = np.stack([p[1] for p in parts]) if parts else np.zeros((0, 2), np.float32)
        return cls(offsets, xy.astype(np.float32, copy=False), size.astype(np.float32, copy=False),
                   desc.astype(np.uint8, copy=False))

    @classmethod
    def empty(cls, n: int) -> "LocalFeatures":
        """``n`` images without keypoints."""
        return cls.from_parts([NO_FEATURES] * n)
