"""Duplicate pair cards of the HTML report: each card shows the evidence of the path that decided it."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from PIL import ImageOps

from splitaudit import ImageSplit
from splitaudit.duplicates.result import PAIR_COLUMNS
from splitaudit.report.html import _pair_cards

from .conftest import synthetic_image


def _cards(tmp_path, decided: list[str], *, with_decided_by: bool = True) -> dict[str, str]:
    """The text of one pair card per ``decided_by`` value (keyed by it), every pair's thumbnail
    ``flipped`` flag True; the ``decided_by`` column itself is left out when not ``with_decided_by``.
    The thumbnail pair is a real mirrored copy; the others are neighbouring crops of one picture,
    whose ``flipped`` is only the better of two poor thumbnail alignments."""
    rows, frame = [], []
    for k, how in enumerate(decided):
        picture = synthetic_image(k, side=96)
        val = ImageOps.mirror(picture) if how == "thumbnail" else picture.crop((24, 0, 96, 96))
        train = picture if how == "thumbnail" else picture.crop((0, 0, 72, 96))
        val.save(tmp_path / f"val_{how}.png")
        train.save(tmp_path / f"train_{how}.png")
        frame += [(f"val_{how}.png", "val"), (f"train_{how}.png", "train")]
    split = ImageSplit.from_frame(pd.DataFrame(frame, columns=["path", "split"]).assign(label="cat"),
                                  root=tmp_path)
    index = {path: i for i, path in enumerate(split.images["path"])}
    for how in decided:
        row = dict.fromkeys(PAIR_COLUMNS, np.nan)
        row.update(val_path=f"val_{how}.png", train_path=f"train_{how}.png", val_index=index[f"val_{how}.png"],
                   train_index=index[f"train_{how}.png"], kind="overlap" if how == "tiles" else "near",
                   score=0.97, val_label="cat", train_label="cat", label_conflict=False, exact_bytes=False,
                   exact_pixels=False, phash=30, dhash=28, ahash=25, flipped=True, thumb_rms=41.0,
                   thumb_corr=0.31, descriptor_cos=0.8, decided_by=how)
        if how == "thumbnail":
            row.update(phash=2, dhash=1, ahash=0, thumb_rms=3.0, thumb_corr=0.99)
        elif how == "embedding":
            row.update(embedding_cos=0.97)
        else:  # the fit's transform: tiles shifted by a quarter of the frame, keypoints likewise
            row.update(inliers=40, inlier_ratio=0.8, scale=1.0, rotation=0.0, shift_x=0.25, shift_y=0.0,
                       overlap=0.75, overlap_b=0.75, tile_ncc=0.9, tile_grey=4.0)
        rows.append(row)
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    if not with_decided_by:
        pairs = pairs.drop(columns="decided_by")
    html = _pair_cards(pairs, split.images, a="val", b="train", label_a="val", label_b="train")
    cards = html.split("<div class='pair'>")[1:]
    # the card's caption line: its kind and score, then the evidence (the thumbnails are left out)
    return {re.search(r"val_(\w+)\.png", card).group(1): card.split("</figure></div>", 1)[1] for card in cards}


def test_only_a_thumbnail_decided_card_claims_a_flip(tmp_path):
    """``flipped`` is the thumbnail alignment's flag: on a tile or keypoint card it would read as a
    mirrored copy, while the card already states the shift the fit found (neither fit mirrors); an
    embedding pair was not decided by the alignment either."""
    cards = _cards(tmp_path, ["thumbnail", "tiles", "keypoints", "embedding"])
    assert "flipped=True" in cards["thumbnail"]
    for how in ("tiles", "keypoints", "embedding"):
        assert "flipped" not in cards[how]
        assert "phash=30 dhash=28 thumb_rms=41" in cards[how]  # the rest of the evidence is unchanged
    assert "tiles: shifted by +25%" in cards["tiles"] and "rotation +0.0°" in cards["keypoints"]
    assert "decided by embedding;" in cards["embedding"]


def test_a_pair_table_without_decided_by_still_shows_flipped(tmp_path):
    """Pair tables written before ``decided_by`` existed keep every evidence column on their cards."""
    cards = _cards(tmp_path, ["thumbnail", "tiles"], with_decided_by=False)
    assert all("flipped=True" in card and "tiles:" not in card for card in cards.values())
