"""Geometric verification of candidate pairs: edited copies verify, look-alikes do not."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from splitaudit.duplicates.geometric import verify_geometric
from splitaudit.duplicates.verify import align_pairs

SIDE, THUMB = 96, 32


def _style_image(seed: int) -> Image.Image:
    """A structured grey image: a vertical gradient plus a few random shapes (one "style")."""
    rng = np.random.default_rng(seed)
    base = np.linspace(40, 110, SIDE)[:, None] * np.ones((1, SIDE))
    im = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = rng.integers(8, SIDE - 40, 2)
        w, h = rng.integers(14, 34, 2)
        fill = int(rng.integers(120, 250))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
        else:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
    return im


def _crop(im, keep, dx=0.0):
    s = im.width
    off = (1 - keep) / 2 * s
    return im.resize(im.size, Image.BILINEAR, box=(off + dx, off, off + dx + keep * s, off + keep * s))


def _shift(im, dx, dy):
    return im.transform(im.size, Image.AFFINE, (1, 0, dx, 0, 1, dy), resample=Image.BILINEAR)


def _pad(im, off):
    """Zoomed-out copy: the shrunk image, its border extended to the full side."""
    return Image.fromarray(np.pad(np.asarray(im), off, mode="edge"))


def _watermark(im):
    out = im.copy()
    ImageDraw.Draw(out).rectangle((SIDE - 30, SIDE - 16, SIDE - 4, SIDE - 6), fill=255)
    return out


EDITS = {
    "shift": lambda im: _shift(im, 9, -6),
    "crop85": lambda im: _crop(im, 0.85, 2),
    "rotate8": lambda im: im.rotate(8, resample=Image.BILINEAR),
    "zoom_out": lambda im: _pad(im.resize((88, 88), Image.BILINEAR), 4),
    "mirror": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "mirror_rotate": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(-6, resample=Image.BILINEAR),
    "watermark": _watermark,
    "brightness_contrast": lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.2)).enhance(0.7),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(1.2)),
}


def _thumb(im):
    return np.asarray(im.convert("L").resize((THUMB, THUMB), Image.BILINEAR))


@pytest.fixture(scope="module")
def planted():
    originals = [_style_image(seed) for seed in range(6)]
    thumbs = [_thumb(im) for im in originals]
    a, b, kind = [], [], []
    for i, im in enumerate(originals):
        for name, edit in EDITS.items():
            thumbs.append(_thumb(edit(im)))
            a.append(i)
            b.append(len(thumbs) - 1)
            kind.append(name)
    neg_a, neg_b = np.triu_indices(len(originals), 1)
    return np.stack(thumbs), np.array(a), np.array(b), np.array(kind), neg_a, neg_b


def test_every_geometric_edit_verifies(planted):
    thumbs, a, b, kind, _, _ = planted
    v = verify_geometric(thumbs, a, b)
    failed = sorted(set(kind[v["score"] < 0.5]))
    assert not failed, f"edits not verified: {failed}; scores {dict(zip(kind, v['score'].round(2)))}"
    mirrored = np.isin(kind, ["mirror", "mirror_rotate"])
    assert v["flipped"][mirrored].all() and not v["flipped"][~mirrored].any()
    assert (v["rotation"][kind == "rotate8"] > 0).all()
    assert (v["zoom"][kind == "crop85"] < 1).all() and (v["zoom"][kind == "zoom_out"] > 1).all()
    # the order of the pair does not matter
    back = verify_geometric(thumbs, b, a)
    assert (back["score"] >= 0.5).mean() >= 0.9


def test_lookalikes_of_the_same_style_do_not_verify(planted):
    thumbs, _, _, _, neg_a, neg_b = planted
    v = verify_geometric(thumbs, neg_a, neg_b)
    assert (v["score"] < 0.5).all(), v["geo_nrms"]
    assert (v["geo_nrms"] > 0.1).all()  # copies above stay below 0.05


def test_geometric_beats_shift_only_alignment(planted):
    thumbs, a, b, kind, _, _ = planted
    geo = verify_geometric(thumbs, a, b)["score"]
    plain = align_pairs(thumbs, a, b, max_shift=1)["score"]
    hard = np.isin(kind, ["shift", "crop85", "rotate8", "mirror_rotate"])
    assert geo[hard].mean() > plain[hard].mean()


def test_identical_and_empty_inputs():
    thumbs = np.stack([_thumb(_style_image(0)), _thumb(_style_image(1))])
    v = verify_geometric(thumbs, [0], [0])
    assert v["geo_nrms"][0] < 1e-3 and v["score"][0] > 0.99
    empty = verify_geometric(thumbs, np.array([], int), np.array([], int))
    assert all(len(col) == 0 for col in empty.values())


@pytest.mark.parametrize("kwargs, match", [
    (dict(trim=0.6), "trim"), (dict(max_shift=-1), "max_shift"), (dict(a=[0, 1], b=[0]), "a and b"),
])
def test_bad_parameters(kwargs, match):
    thumbs = np.zeros((2, 32, 32), np.uint8)
    args = dict(a=[0], b=[1]) | kwargs
    with pytest.raises(ValueError, match=match):
        verify_geometric(thumbs, args.pop("a"), args.pop("b"), **args)


def test_a_flattened_picture_is_not_a_copy_whichever_side_it_is_on():
    """A picture at 4 % of its contrast (a flat sky whose faint layout follows a photo's) correlates
    with the photo, and in the flat picture's grey levels any residual is small. Past a contrast
    ratio of 5 the residual is taken at that ratio, in the fitted image's grey levels: no copy, in
    either order, while a contrast edit of 0.5 stays one."""
    from splitaudit.duplicates.verify import SCORE_MID

    photo = _thumb(_style_image(7)).astype(np.float32)
    rng = np.random.default_rng(7)
    flat = np.clip(128 + 0.04 * (photo - photo.mean()) + rng.normal(0, 0.3, photo.shape), 0, 255)
    halved = np.clip(128 + 0.5 * (photo - photo.mean()), 0, 255)
    thumbs = np.stack([photo, flat, halved]).round().astype(np.uint8)
    out = align_pairs(thumbs, np.array([0, 1, 0, 2]), np.array([1, 0, 2, 0]))
    assert (out["thumb_corr"][:2] > 0.9).all()  # the case this guards against: they correlate
    assert (out["thumb_rms"][:2] > SCORE_MID).all() and (out["score"][:2] < 0.5).all()
    assert (out["score"][2:] > 0.9).all()


def test_featureless_thumbnails_are_compared_on_their_grey_levels():
    """Two smooth gradients of different photos (a sky, a wall) agree once brightness and contrast
    are fitted; with no fine detail that fit is all the evidence there would be, so such pairs are
    compared on raw grey levels: a re-encoded copy still matches, another flat picture does not,
    and a detailed picture under a brightness change still does."""
    from splitaudit.duplicates.verify import MIN_THUMB_DETAIL, fine_detail

    rng = np.random.default_rng(3)
    ramp = np.linspace(0, 1, THUMB)[:, None] * np.ones((1, THUMB))
    sky = 100 + 30 * ramp
    other_sky = 160 + 15 * ramp + 3 * ramp.T
    photo = _thumb(_style_image(5)).astype(np.float64)
    rows = [sky, sky + rng.normal(0, 0.4, sky.shape), other_sky, photo, 0.8 * photo + 30]
    thumbs = np.stack([np.clip(r, 0, 255).round() for r in rows]).astype(np.uint8)
    assert (fine_detail(thumbs[:3]) < MIN_THUMB_DETAIL).all() and fine_detail(thumbs[3:]).min() > MIN_THUMB_DETAIL
    out = align_pairs(thumbs, np.array([0, 0, 3]), np.array([1, 2, 4]))
    assert out["thumb_corr"][1] > 0.9  # the case this guards against: the two skies correlate
    assert out["score"][0] > 0.9 and out["score"][1] < 0.01 and out["score"][2] > 0.9
