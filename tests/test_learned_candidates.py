"""Shift/zoom candidates of the learned verifier: shape and zoom vectors, geometry_candidates."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from splitaudit.duplicates.candidates import unique_pairs as _pairs
from splitaudit.duplicates.reframe import (ROTATIONS, _bilinear, direct_candidates, geometry_candidates,
                                           geometry_vectors, rotated_vectors, shape_vectors, spectrum_vectors,
                                           zoom_vectors)

from .test_learned_verifier import _garment, planted  # noqa: F401 (fixture)


def _thumb(im):
    return np.asarray(im.resize((32, 32), Image.BILINEAR), np.uint8)


def _shift(im, dx, dy):
    return im.transform(im.size, Image.AFFINE, (1, 0, dx, 0, 1, dy))


def _crop(im, keep=0.8):
    w = im.width
    x0 = (1 - keep) / 2 * w
    return im.resize(im.size, Image.BILINEAR, box=(x0, x0, x0 + keep * w, x0 + keep * w))


@pytest.fixture(scope="module")
def garments():
    rng = np.random.default_rng(11)
    return [_garment(rng) for _ in range(60)]


def _rank_of_truth(q, base, truth):
    sims = q @ base.T
    return np.array([(sims[i] > sims[i, t]).sum() for i, t in enumerate(truth)])


def test_bilinear_sampling_is_exact_on_the_pixel_grid_and_zero_outside():
    img = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    ys, xs = np.mgrid[0:5, 0:6].astype(np.float32)
    same = _bilinear(img, np.broadcast_to(xs, (2, 5, 6)), np.broadcast_to(ys, (2, 5, 6)))
    np.testing.assert_allclose(same, img)
    half = _bilinear(img, np.full((2, 1, 1), 0.5, np.float32), np.zeros((2, 1, 1), np.float32))
    np.testing.assert_allclose(half[:, 0, 0], (img[:, 0, 0] + img[:, 0, 1]) / 2)
    out = _bilinear(img, np.full((2, 1, 1), -3.0, np.float32), np.zeros((2, 1, 1), np.float32))
    assert (out == 0).all()


def test_shape_vectors_find_shifted_copies_the_plain_thumbnail_misses(garments):
    base = np.stack([_thumb(g) for g in garments])
    shifts = [(4, 0), (-4, 3), (0, -4), (3, 4), (-4, -4), (4, -3)]
    queries = np.stack([_thumb(_shift(garments[i], dx, dy)) for i, (dx, dy) in enumerate(shifts)])
    truth = np.arange(len(shifts))
    plain_rank = _rank_of_truth(zoom_vectors(queries, 1.0)[0], zoom_vectors(base, 1.0)[0], truth)
    qs, qm = shape_vectors(queries)
    bs, _ = shape_vectors(base)
    shape_rank = _rank_of_truth(qs, bs, truth)
    assert (shape_rank == 0).all(), shape_rank
    assert (plain_rank > 0).sum() >= 2, plain_rank  # the plain thumbnails really do miss some
    # mirrored shapes: the mirror of a flipped copy's vector is the original's
    flipped = np.stack([_thumb(garments[i].transpose(Image.Transpose.FLIP_LEFT_RIGHT)) for i in truth])
    assert (_rank_of_truth(shape_vectors(flipped)[1], bs, truth) == 0).all()
    assert np.allclose(np.linalg.norm(qs, axis=1), 1, atol=1e-5) and np.allclose(np.linalg.norm(qm, axis=1), 1, atol=1e-5)


def test_zoom_vectors_match_a_centre_crop_with_its_original(garments):
    base = np.stack([_thumb(g) for g in garments])
    queries = np.stack([_thumb(_crop(garments[i], 0.8)) for i in range(8)])
    whole_q, _ = zoom_vectors(queries, 1.0)
    crop_b, _ = zoom_vectors(base, 0.8)
    assert (_rank_of_truth(whole_q, crop_b, np.arange(8)) == 0).all()
    # and with keep=1 the vectors are the whole thumbnail: an image matches itself exactly
    whole_b, _ = zoom_vectors(base, 1.0)
    assert np.allclose((whole_b * whole_b).sum(1), 1, atol=1e-5)


def test_geometry_candidates_cross_and_within(garments):
    thumbs = np.stack([_thumb(g) for g in garments]
                      + [_thumb(_shift(garments[0], 4, 2)), _thumb(_crop(garments[1], 0.8)),
                         _thumb(_crop(garments[2], 0.8).transpose(Image.Transpose.FLIP_LEFT_RIGHT))])
    ib = np.arange(60)
    ia = np.array([60, 61, 62])
    qa, qb = geometry_candidates(thumbs, ia, ib, False, k_shape=3, k_zoom=3)
    a, b = _pairs(qa, qb, False)
    found = set(zip(a.tolist(), b.tolist()))
    assert {(60, 0), (61, 1), (62, 2)} <= found
    assert set(a.tolist()) <= set(ia.tolist()) and set(b.tolist()) <= set(ib.tolist())
    assert len(a) <= 3 * (3 + 3 + 3)
    # within one set: pairs come out once, a < b, never an image with itself
    everything = np.arange(len(thumbs))
    a, b = _pairs(*geometry_candidates(thumbs, everything, everything, True, k_shape=2, k_zoom=2), True)
    assert (a < b).all() and len(set(zip(a.tolist(), b.tolist()))) == len(a)
    assert {(0, 60), (1, 61), (2, 62)} <= set(zip(a.tolist(), b.tolist()))
    # nothing to search
    assert geometry_candidates(thumbs, ia[:0], ib, False) == ([], [])


def test_learned_candidates_keep_the_default_ones_and_add_few_per_image(planted):
    from splitaudit.duplicates.learned import candidate_setup, centred_embeddings, learned_candidates

    split, fps, emb = planted
    side = split.images["split"].to_numpy()
    ia, ib = np.flatnonzero(side == "val"), np.flatnonzero(side == "train")
    coords, thr, params = candidate_setup(fps)
    emb_c = centred_embeddings(emb)
    a0, b0 = learned_candidates(fps.table, coords, thr, emb, emb_c, ia, ib, False, params)
    a, b = learned_candidates(fps.table, coords, thr, emb, emb_c, ia, ib, False, params, thumbs=fps.thumbs,
                              keep_geometry=2, k_spectrum=0, k_rotate=0)
    old, new = set(zip(a0.tolist(), b0.tolist())), set(zip(a.tolist(), b.tolist()))
    assert old <= new and len(new) > len(old)
    added = np.array([u for u, _ in new - old])
    assert np.bincount(added).max() <= 2  # keep_geometry new pairs per val image at most
    assert set(added.tolist()) <= set(ia.tolist())
    none = learned_candidates(fps.table, coords, thr, emb, emb_c, ia, ib, False, params, thumbs=fps.thumbs,
                              keep_geometry=0, k_spectrum=0, k_rotate=0)
    assert set(zip(none[0].tolist(), none[1].tolist())) == old
    # the direct (shift/rotation) candidates come on top, unranked: at most 3 + 2 per angle per val image
    direct = learned_candidates(fps.table, coords, thr, emb, emb_c, ia, ib, False, params, thumbs=fps.thumbs,
                                keep_geometry=0, k_spectrum=3, k_rotate=2)
    extra = set(zip(direct[0].tolist(), direct[1].tolist())) - old
    assert extra and np.bincount([u for u, _ in extra]).max() <= 3 + 2 * len(ROTATIONS)
    everything = learned_candidates(fps.table, coords, thr, emb, emb_c, ia, ib, False, params, thumbs=fps.thumbs)
    assert extra | new <= set(zip(everything[0].tolist(), everything[1].tolist())) | (new - old)


def test_spectrum_vectors_are_shift_invariant_and_find_shifted_copies(garments):
    base = np.stack([_thumb(g) for g in garments])
    # a shift that keeps the whole foreground inside the frame leaves the vector unchanged
    small = np.zeros((1, 32, 32), np.uint8)
    small[0, 10:18, 8:20] = np.arange(96, dtype=np.uint8).reshape(8, 12) + 50
    moved = np.roll(np.roll(small, 5, axis=1), -4, axis=2)
    assert np.allclose(spectrum_vectors(small)[0], spectrum_vectors(moved)[0], atol=1e-5)
    # ... but not the mirror, which has its own vector
    assert not np.allclose(spectrum_vectors(small)[0], spectrum_vectors(small[:, :, ::-1].copy())[0], atol=1e-3)
    assert np.allclose(spectrum_vectors(small)[1], spectrum_vectors(small[:, :, ::-1].copy())[0], atol=1e-5)
    shifts = [(4, 0), (-4, 3), (0, -4), (3, 4), (-4, -4), (4, -3)]
    queries = np.stack([_thumb(_shift(garments[i], dx, dy)) for i, (dx, dy) in enumerate(shifts)])
    ranks = _rank_of_truth(spectrum_vectors(queries)[0], spectrum_vectors(base)[0], np.arange(len(shifts)))
    assert (ranks <= 2).all(), ranks  # among the 3 nearest (what direct_candidates keeps)


def test_rotated_vectors_meet_rotated_copies():
    # a pattern rotated by 8 degrees matches its original turned 8 degrees, not the unturned one
    rng = np.random.default_rng(3)
    base = np.stack([_thumb(Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).resize((28, 28)))
                     for _ in range(20)])
    ims = [Image.fromarray(t) for t in base[:5]]
    queries = np.stack([np.asarray(im.rotate(8, resample=Image.BILINEAR)) for im in ims])
    whole_q = zoom_vectors(queries, 1.0, side=16)[0]
    turned = rotated_vectors(base, 8.0)
    same = np.einsum("ij,ij->i", whole_q, turned[:5])
    plain = np.einsum("ij,ij->i", whole_q, zoom_vectors(base[:5], 1.0, side=16)[0])
    assert (same > plain + 0.1).all(), (same, plain)
    assert (_rank_of_truth(whole_q, turned, np.arange(5)) == 0).all()
    # 0 degrees: the whole thumbnail sampled on the same grid as zoom_vectors(keep=1)
    assert np.allclose(rotated_vectors(base, 0.0), zoom_vectors(base, 1.0, side=16)[0], atol=1e-5)


def test_direct_candidates_cross_and_within(garments):
    rotated = garments[1].rotate(-8, resample=Image.BILINEAR)
    thumbs = np.stack([_thumb(g) for g in garments]
                      + [_thumb(_shift(garments[0], -4, 4)), _thumb(rotated),
                         _thumb(_shift(garments[2], 3, -3).transpose(Image.Transpose.FLIP_LEFT_RIGHT))])
    ib, ia = np.arange(60), np.array([60, 61, 62])
    vectors = geometry_vectors(thumbs)
    qa, qb = direct_candidates(thumbs, ia, ib, False, k_spectrum=3, k_rotate=2, vectors=vectors)
    a, b = _pairs(qa, qb, False)
    assert {(60, 0), (61, 1), (62, 2)} <= set(zip(a.tolist(), b.tolist()))
    assert set(a.tolist()) <= set(ia.tolist()) and len(a) <= 3 * (3 + 2 * len(ROTATIONS))
    assert direct_candidates(thumbs, ia, ib, False, k_spectrum=0, k_rotate=0, vectors=vectors) == ([], [])
    everything = np.arange(len(thumbs))
    a, b = _pairs(*direct_candidates(thumbs, everything, everything, True, vectors=vectors), True)
    assert (a < b).all() and {(0, 60), (1, 61), (2, 62)} <= set(zip(a.tolist(), b.tolist()))
