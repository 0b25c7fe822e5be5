"""Shared fixtures: small synthetic image splits with planted copies.

Reusable pieces (import them from ``tests.conftest`` or use the fixtures):

- :func:`synthetic_image` -- a distinct random picture (gradient background,
  a few coloured shapes, mild noise) for a seed;
- :func:`look_alike` -- a *different* picture of the same style (same shapes
  moved by ~20 % of the side, new noise): must not be called a duplicate;
- :data:`TRANSFORMS` -- planted near-copy transforms by name;
- :func:`write_split_folder` -- writes ``ROOT/train/<class>/*.png`` and
  ``ROOT/val/<class>/*.png`` with planted copies and returns what was planted.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

SIDE = 96


def _shapes(rng: np.random.Generator, n: int) -> list[tuple]:
    out = []
    for _ in range(n):
        kind = rng.choice(["ellipse", "rectangle"])
        x0, y0 = rng.uniform(0, 0.7, 2)
        w, h = rng.uniform(0.15, 0.45, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        out.append((kind, x0, y0, x0 + w, y0 + h, colour))
    return out


def _render(rng: np.random.Generator, shapes: list[tuple], offset=(0.0, 0.0), side: int = SIDE,
            background=None) -> Image.Image:
    if background is None:
        c0, c1 = rng.integers(0, 256, (2, 3))
        t = np.linspace(0, 1, side)[None, :, None]
        background = (c0 * (1 - t) + c1 * t).repeat(side, axis=0)
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    dx, dy = offset
    for kind, x0, y0, x1, y1, colour in shapes:
        box = [(x0 + dx) * side, (y0 + dy) * side, (x1 + dx) * side, (y1 + dy) * side]
        getattr(draw, kind)(box, fill=colour)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-6, 7, (side, side, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def synthetic_image(seed: int, side: int = SIDE) -> Image.Image:
    """A distinct random picture for ``seed`` (RGB, ``side`` x ``side``)."""
    rng = np.random.default_rng(seed)
    return _render(rng, _shapes(rng, int(rng.integers(3, 6))), side=side)


def look_alike(seed: int, side: int = SIDE) -> Image.Image:
    """A different photo of the same scene: the shapes of ``synthetic_image(seed)``
    each moved by about 20 % of the side (alternately right-down and left-down,
    so they are rearranged), on the same background, with new noise.

    The shapes do not all move by one offset: the same layout shifted as a whole
    over a horizontal gradient would be an overlapping window onto one scene (a
    tile or a crop: the gradient's shift is a constant brightness offset), which
    the keypoint path rightly reports as ``overlap``."""
    rng = np.random.default_rng(seed)
    shapes = _shapes(rng, int(rng.integers(3, 6)))
    other = np.random.default_rng(seed + 10_000_019)
    base = np.asarray(synthetic_image(seed, side)).astype(float)
    # Same gradient background (row 0 of the original is mostly background).
    background = np.repeat(base[:1], side, axis=0)
    moved = [(kind, x0 + dx, y0 + 0.15, x1 + dx, y1 + 0.15, colour)
             for (kind, x0, y0, x1, y1, colour), dx in zip(shapes, [0.2, -0.2] * len(shapes))]
    return _render(other, moved, side=side, background=background)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _crop(img: Image.Image, share: float = 0.05) -> Image.Image:
    w, h = img.size
    cx, cy = int(round(w * share)), int(round(h * share))
    return img.crop((cx // 2, cy // 2, w - (cx - cx // 2), h - (cy - cy // 2)))


def _caption(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.text((2, h - 12), "(c) stock", fill=(255, 255, 255))
    return out


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg_q30": lambda im: _jpeg(im, 30),
    "resize_50": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    "crop_5": _crop,
    "brighten": lambda im: ImageEnhance.Brightness(im).enhance(1.25),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(1.2)),
    "flip": ImageOps.mirror,
    "caption": _caption,
}
"""Near-copy transforms planted by :func:`write_split_folder` (name -> function)."""

EXACT_KINDS = ("same_bytes", "same_pixels")


@dataclass
class PlantedSplit:
    """What :func:`write_split_folder` wrote: paths are relative to ``root``."""

    root: Path
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)
    """kind -> (val_path, train_path) planted across the split."""
    within: dict[str, tuple[str, str]] = field(default_factory=dict)
    """kind -> (path_a, path_b) planted inside one split."""
    look_alikes: list[tuple[str, str]] = field(default_factory=list)
    """(val_path, train_path) different photos of the same scene."""
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    """(val_path, train_path) copies filed under different classes."""


def write_split_folder(
    root: str | Path,
    *,
    classes: tuple[str, ...] = ("cat", "dog"),
    n_train: int = 12,
    n_val: int = 6,
    transforms: tuple[str, ...] | None = None,
    exact: tuple[str, ...] = EXACT_KINDS,
    n_look_alikes: int = 3,
    within: tuple[str, ...] = ("jpeg_q30", "same_bytes"),
    conflict: bool = True,
    seed: int = 0,
) -> PlantedSplit:
    """Write a small labelled split with planted cross-split and within-split copies.

    ``n_train``/``n_val`` distinct images per class; then for each name in
    ``transforms`` (default: all of :data:`TRANSFORMS`) and ``exact`` a train
    original with its copy in val (same class), ``n_look_alikes`` look-alike
    pairs, copies inside train for ``within``, and (``conflict``) one copy
    filed under another class in val. ``transforms=()``, ``exact=()``,
    ``within=()``, ``conflict=False`` gives a clean split.
    """
    root = Path(root)
    transforms = tuple(TRANSFORMS) if transforms is None else transforms
    planted = PlantedSplit(root=root)
    counter = iter(range(seed * 100_000, seed * 100_000 + 100_000))

    def save(img: Image.Image, split: str, cls: str, name: str, fmt: str = "png") -> str:
        rel = f"{split}/{cls}/{name}.{fmt}"
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        img.save(root / rel, {"png": "PNG", "bmp": "BMP"}[fmt])
        return rel

    for cls in classes:
        for i in range(n_train):
            save(synthetic_image(next(counter)), "train", cls, f"t{i:03d}")
        for i in range(n_val):
            save(synthetic_image(next(counter)), "val", cls, f"v{i:03d}")
    cls = classes[0]
    for name in transforms:
        original = synthetic_image(next(counter))
        t = save(original, "train", cls, f"orig_{name}")
        v = save(TRANSFORMS[name](original), "val", cls, f"copy_{name}")
        planted.copies[name] = (v, t)
    for name in exact:
        original = synthetic_image(next(counter))
        t = save(original, "train", cls, f"orig_{name}")
        if name == "same_bytes":
            v = f"val/{cls}/copy_{name}.png"
            (root / "val" / cls).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / t, root / v)
        else:
            v = save(original, "val", cls, f"copy_{name}", fmt="bmp")
        planted.copies[name] = (v, t)
    for k in range(n_look_alikes):
        s = next(counter)
        t = save(synthetic_image(s), "train", cls, f"scene_{k}")
        v = save(look_alike(s), "val", cls, f"scene_{k}_moved")
        planted.look_alikes.append((v, t))
    for name in within:
        original = synthetic_image(next(counter))
        a = save(original, "train", cls, f"within_orig_{name}")
        if name == "same_bytes":
            b = f"train/{cls}/within_copy_{name}.png"
            shutil.copyfile(root / a, root / b)
        else:
            b = save(TRANSFORMS[name](original), "train", cls, f"within_copy_{name}")
        planted.within[name] = (a, b)
    if conflict and len(classes) > 1:
        original = synthetic_image(next(counter))
        t = save(original, "train", classes[0], "conflict_orig")
        v = save(_jpeg(original, 80), "val", classes[1], "conflict_copy")
        planted.conflicts.append((v, t))
    return planted


@pytest.fixture(scope="session")
def planted_split(tmp_path_factory) -> PlantedSplit:
    """A split with every kind of planted copy (see :func:`write_split_folder`)."""
    return write_split_folder(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="session")
def clean_split(tmp_path_factory) -> PlantedSplit:
    """A split of distinct images plus look-alikes, with nothing planted."""
    return write_split_folder(tmp_path_factory.mktemp("clean"), transforms=(), exact=(), within=(),
                              conflict=False, n_look_alikes=4, seed=1)
