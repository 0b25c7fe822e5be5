"""Planted-edit train/val splits for the copy-detection benchmark (issue 15).

    python benchmarks/copysets.py OUT --set photo256 [--seed 0] [--scale 1]
    python benchmarks/copysets.py OUT --set big48k          # 48k distinct 256-px photo crops (timing)

Sets (``SETS``): ``photo256`` (256x256 JPEG q90 cells of real photographs),
``photo640`` (640x480 cells), ``fmnist28`` (Fashion-MNIST at its native 28-px
PNG), ``fmnist96`` (Fashion-MNIST upscaled to 96-px JPEG q90) and ``big48k``.

Each set is written as ``OUT/train/...``, ``OUT/val/...`` and ``OUT/truth.csv``
with one row per planted or negative relation: ``val_path, train_path`` (relative
to OUT, '/'-separated), ``edit``, ``strength`` (the drawn parameters),
``overlap`` (tiles: intersection area / tile area; 0 for disjoint neighbours),
``relation`` (``copy``: val is an edited copy of train; ``tile``: overlapping
tiles of one picture; ``negative``: non-overlapping cells of the same photo,
which must *not* be reported). Fashion-MNIST sets also write ``sources.npz``
(each image's 28x28 source array) so a benchmark can tell natural look-alike
pairs (pixel L2 <= 200) from false ones. Everything is drawn from ``seed``.

Photographs come from packages that install offline (``photo_sources``):
scikit-learn's and scikit-image's bundled photos, matplotlib's Grace Hopper
and the Debian wallpaper packages ``lomiri-wallpapers-16.04``,
``lomiri-wallpapers-20.04`` and ``mate-backgrounds`` (only their real
photographs; missing ones are skipped).
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

BACKGROUNDS = Path("/usr/share/backgrounds")
# Real photographs in the Debian wallpaper packages (their illustrations are left out).
DEBIAN_PHOTOS = [
    "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Infinite-Sea_by_Aury88.jpg",
    "Kleiber_by_Lukas_Baubkus.jpg", "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg",
    "Wine_by_Jakkub_Mede.jpg", "aitzgorri_by_Aitzol_Berasategi.jpg", "free_by_Peter_Nerlich.jpg",
    "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
    "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg",
] + [f"mate/nature/{n}.jpg" for n in (
    "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops",
    "Storm", "TwoWings", "Wood", "YellowFlower")]
SKIMAGE_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field",
                  "immunohistochemistry", "moon", "retina", "grass", "gravel", "brick", "clock",
                  "coins"]
MIN_CELL_DETAIL, MIN_LOCAL_DETAIL, MAX_FLAT_FRACTION = 8.0, 1.5, 0.8  # see is_featureless


# ----------------------------------------------------------------------------- sources
def photo_sources(max_side: int = 2600) -> list[tuple[str, Image.Image]]:
    """Every real photograph that loads offline, as ``(name, RGB image)``.

    Large JPEGs are decoded with DCT scaling to at least ``max_side`` / 2 on the
    long side and then reduced to at most ``max_side``.
    """
    photos: list[tuple[str, Image.Image]] = []
    from sklearn.datasets import load_sample_image

    for name in ("china.jpg", "flower.jpg"):
        photos.append((f"sklearn-{name[:-4]}", Image.fromarray(load_sample_image(name))))
    import skimage.data

    for name in SKIMAGE_PHOTOS:
        photos.append((f"skimage-{name}", Image.fromarray(getattr(skimage.data, name)())))
    photos.append(("skimage-stereo_motorcycle", Image.fromarray(skimage.data.stereo_motorcycle()[0])))
    from matplotlib import cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        photos.append(("matplotlib-grace_hopper", Image.open(f).convert("RGB")))
    for rel in DEBIAN_PHOTOS:
        path = BACKGROUNDS / rel
        if path.exists():
            im = Image.open(path)
            im.draft("RGB", (max_side // 2, max_side // 2))
            im = im.convert("RGB")
            im.thumbnail((max_side, max_side), Image.LANCZOS)
            photos.append((f"debian-{Path(rel).stem}", im))
    return [(n, im.convert("RGB")) for n, im in photos]


# ----------------------------------------------------------------------------- edits
Edit = Callable[[Image.Image, np.random.Generator], tuple[Image.Image, str, "int | None"]]


def _fill(img: Image.Image, rng: np.random.Generator):
    value = int(rng.choice([0, 255, 128]))
    return value if img.mode == "L" else (value,) * 3


def crop_side(img, rng):
    """Remove 5-20 % of one side."""
    side, frac = str(rng.choice(["left", "right", "top", "bottom"])), rng.uniform(0.05, 0.20)
    return _crop_sides(img, {side: frac}), f"{side}={frac:.3f}", None


def crop_two_sides(img, rng):
    """Remove 5-20 % of two adjacent sides."""
    sides = {str(rng.choice(["left", "right"])): rng.uniform(0.05, 0.20),
             str(rng.choice(["top", "bottom"])): rng.uniform(0.05, 0.20)}
    return _crop_sides(img, sides), " ".join(f"{k}={v:.3f}" for k, v in sides.items()), None


def _crop_sides(img, sides: dict[str, float]) -> Image.Image:
    w, h = img.size
    box = (round(w * sides.get("left", 0)), round(h * sides.get("top", 0)),
           w - round(w * sides.get("right", 0)), h - round(h * sides.get("bottom", 0)))
    return img.crop(box)


def centre_crop(img, rng):
    """Keep the central 70-90 % of each side."""
    keep = rng.uniform(0.70, 0.90)
    margin = (1 - keep) / 2
    return _crop_sides(img, dict.fromkeys(("left", "right", "top", "bottom"), margin)), \
        f"keep={keep:.3f}", None


def _angle(rng) -> float:
    return float(rng.uniform(2, 10) * rng.choice([-1, 1]))


def rotate_expand(img, rng):
    """Rotate 2-10 degrees on a larger canvas; the corners are filled."""
    angle, fill = _angle(rng), _fill(img, rng)
    return img.rotate(angle, Image.BICUBIC, expand=True, fillcolor=fill), \
        f"angle={angle:.2f} fill={fill if img.mode == 'L' else fill[0]}", None


def rotate_fill(img, rng):
    """Rotate 2-10 degrees in the same frame; the uncovered corners are filled."""
    angle, fill = _angle(rng), _fill(img, rng)
    return img.rotate(angle, Image.BICUBIC, expand=False, fillcolor=fill), \
        f"angle={angle:.2f} fill={fill if img.mode == 'L' else fill[0]}", None


def rotate_crop(img, rng):
    """Rotate 2-10 degrees, crop the largest same-aspect rectangle inside, resize back."""
    angle = _angle(rng)
    w, h = img.size
    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    k = min(w / (w * c + h * s), h / (w * s + h * c))
    cw, ch = w * k, h * k
    box = (round((w - cw) / 2), round((h - ch) / 2), round((w + cw) / 2), round((h + ch) / 2))
    rotated = img.rotate(angle, Image.BICUBIC, expand=False).crop(box)
    return rotated.resize((w, h), Image.BICUBIC), f"angle={angle:.2f} zoom={1 / k:.3f}", None


def overlay_text(img, rng):
    """An opaque caption box with text, covering 5-20 % of the area."""
    area = rng.uniform(0.05, 0.20)
    w, h = img.size
    aspect = rng.uniform(2.5, 6.0)  # caption boxes are wide
    bw = min(w, round(np.sqrt(area * w * h * aspect)))
    bh = min(h, round(area * w * h / bw))
    x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
    out = img.copy()
    draw = ImageDraw.Draw(out)
    box_grey, text_grey = (int(v) for v in rng.choice([(0, 255), (255, 0), (40, 230)]))
    colour = (lambda g: g) if img.mode == "L" else (lambda g: (g, g, g))
    draw.rectangle((x, y, x + bw - 1, y + bh - 1), fill=colour(box_grey))
    words = " ".join(rng.choice(["SALE", "(c) 2024", "photo", "www.example.com", "DEMO",
                                 "stock", "copy"], size=2))
    font = ImageFont.load_default(size=max(6, int(bh * 0.6)))
    draw.text((x + 2, y + bh * 0.15), words, fill=colour(text_grey), font=font)
    return out, f"area={bw * bh / (w * h):.3f} at={x},{y}", None


def overlay_logo(img, rng):
    """The scikit-image logo (RGBA), pasted with its alpha, covering 5-20 % of the area."""
    import skimage.data

    area = rng.uniform(0.05, 0.20)
    w, h = img.size
    side = max(3, round(np.sqrt(area * w * h)))
    logo = Image.fromarray(skimage.data.logo()).resize((side, side), Image.LANCZOS)
    x, y = int(rng.integers(0, max(1, w - side + 1))), int(rng.integers(0, max(1, h - side + 1)))
    out = img.convert("RGB")
    out.paste(logo, (x, y), logo)
    return out.convert(img.mode), f"area={side * side / (w * h):.3f} at={x},{y}", None


def pad(img, rng):
    """Letterbox: bars adding 10-40 % along one axis; half the time resized back."""
    frac, axis, fill = rng.uniform(0.10, 0.40), str(rng.choice(["x", "y"])), _fill(img, rng)
    w, h = img.size
    extra = round((w if axis == "x" else h) * frac)
    border = (extra // 2, 0, extra - extra // 2, 0) if axis == "x" else (0, extra // 2, 0, extra - extra // 2)
    out = ImageOps.expand(img, border=border, fill=fill)
    resized = bool(rng.random() < 0.5)
    if resized:
        out = out.resize((w, h), Image.BICUBIC)
    return out, f"axis={axis} frac={frac:.3f} resized={int(resized)}", None


def gamma(img, rng):
    """Gamma 0.6-0.85 or 1.15-1.5 (values near 1 are no edit)."""
    g = rng.uniform(0.60, 0.85) if rng.random() < 0.5 else rng.uniform(1.15, 1.50)
    lut = [round(255 * (i / 255) ** g) for i in range(256)]
    return img.point(lut * len(img.getbands())), f"gamma={g:.3f}", None


def hue_saturation(img, rng):
    """Hue shifted 10-40 degrees, saturation scaled 0.5-1.5."""
    shift = rng.uniform(10, 40) * rng.choice([-1, 1])
    sat = rng.uniform(0.5, 1.5)
    hsv = np.asarray(img.convert("HSV")).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + shift * 256 / 360) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    out = Image.fromarray(hsv.round().astype(np.uint8), "HSV").convert("RGB")
    return out, f"hue={shift:.1f}deg sat={sat:.3f}", None


def grayscale(img, rng):
    """Saved as a one-channel grey image."""
    return img.convert("L"), "", None


def blur(img, rng):
    """Gaussian blur, radius 1-3 px at 256 px (scaled with the image, at least 0.35-1.05)."""
    from PIL import ImageFilter

    radius = rng.uniform(1, 3) * max(min(img.size) / 256, 0.35)
    return img.filter(ImageFilter.GaussianBlur(radius)), f"radius={radius:.2f}", None


def jpeg(img, rng):
    """Re-encoded as JPEG at quality 20-60."""
    quality = int(rng.integers(20, 61))
    return img, f"quality={quality}", quality


def downscale(img, rng):
    """Resized to 0.3-0.7 of each side."""
    factor = rng.uniform(0.3, 0.7)
    w, h = img.size
    return img.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.LANCZOS), \
        f"factor={factor:.3f}", None


def hflip(img, rng):
    """Mirrored left-right."""
    return ImageOps.mirror(img), "", None


def combine(*edits: Edit) -> Edit:
    """Apply ``edits`` in order; the last JPEG quality given wins."""
    def combined(img, rng):
        params, quality = [], None
        for edit in edits:
            img, p, q = edit(img, rng)
            params.append(f"{edit.__name__}({p})")
            quality = q if q is not None else quality
        return img, " + ".join(params), quality
    return combined


EDITS: dict[str, Edit] = {
    "crop_side": crop_side, "crop_two_sides": crop_two_sides, "centre_crop": centre_crop,
    "rotate_expand": rotate_expand, "rotate_fill": rotate_fill, "rotate_crop": rotate_crop,
    "overlay_text": overlay_text, "overlay_logo": overlay_logo, "pad": pad, "gamma": gamma,
    "hue_saturation": hue_saturation, "grayscale": grayscale, "blur": blur, "jpeg": jpeg,
    "downscale": downscale, "hflip": hflip,
    "crop+jpeg": combine(crop_side, jpeg), "rotate+gamma": combine(rotate_fill, gamma),
    "overlay+downscale": combine(overlay_text, downscale),
}
TILE_KINDS = {"tile_50_75": (0.50, 0.75), "tile_25_50": (0.25, 0.50)}
GREY_EDITS = [k for k in EDITS if k not in ("hue_saturation", "grayscale")]  # Fashion-MNIST


# ----------------------------------------------------------------------------- writing
@dataclass
class SetWriter:
    """Writes images under ``root/train`` and ``root/val`` and collects truth rows."""

    root: Path
    suffix: str = ".jpg"
    quality: int = 90

    def __post_init__(self):
        self.counts = {"train": 0, "val": 0}
        self.truth: list[dict] = []
        self.sources: dict[str, np.ndarray] = {}

    def save(self, img: Image.Image, split: str, quality: int | None = None, folder: str = "",
             source: np.ndarray | None = None) -> str:
        """Write one image; returns its path relative to the root."""
        self.counts[split] += 1
        suffix = ".jpg" if quality is not None else self.suffix
        rel = "/".join(filter(None, (split, folder, f"{split[0]}{self.counts[split]:06d}{suffix}")))
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".jpg":
            img.save(path, quality=quality or self.quality)
        else:
            img.save(path)
        if source is not None:
            self.sources[rel] = source
        return rel

    def relate(self, val_path, train_path, edit, strength="", overlap=np.nan, relation="copy"):
        self.truth.append(dict(val_path=val_path, train_path=train_path, edit=edit,
                               strength=strength, overlap=overlap, relation=relation))

    def finish(self) -> Path:
        with open(self.root / "truth.csv", "w", newline="") as f:
            out = csv.DictWriter(f, ["val_path", "train_path", "edit", "strength", "overlap",
                                     "relation"])
            out.writeheader()
            for row in self.truth:
                out.writerow({**row, "overlap": "" if np.isnan(row["overlap"]) else f"{row['overlap']:.3f}"})
        if self.sources:
            np.savez_compressed(self.root / "sources.npz", paths=np.array(list(self.sources)),
                                arrays=np.stack(list(self.sources.values())))
        (self.root / ".complete").write_text("ok\n")
        return self.root


# ----------------------------------------------------------------------------- photo sets
@dataclass
class Cell:
    photo: int
    row: int
    col: int
    box: tuple[int, int, int, int]


def is_featureless(cell: Image.Image) -> bool:
    """True for a cell that any detector would confuse with its neighbours.

    On the 64x64 grey thumbnail: a smooth gradient (SD less the best-fitting
    plane below ``MIN_CELL_DETAIL``), out-of-focus blur (SD of the thumbnail less
    its Gaussian blur, sigma 2 px, below ``MIN_LOCAL_DETAIL``) or one flat tone
    (more than ``MAX_FLAT_FRACTION`` of the pixels within 8 levels of the median).
    """
    from PIL import ImageFilter

    thumb = cell.convert("L").resize((64, 64), Image.BOX)
    grey = np.asarray(thumb, np.float64)
    yy, xx = np.mgrid[0:64, 0:64]
    plane = np.c_[np.ones(64 * 64), xx.ravel(), yy.ravel()]
    residual = grey.ravel() - plane @ np.linalg.lstsq(plane, grey.ravel(), rcond=None)[0]
    local = grey - np.asarray(thumb.filter(ImageFilter.GaussianBlur(2)), np.float64)
    flat = (np.abs(grey - np.median(grey)) < 8).mean()
    return residual.std() < MIN_CELL_DETAIL or local.std() < MIN_LOCAL_DETAIL or flat > MAX_FLAT_FRACTION


def photo_cells(photos, cell_w: int, cell_h: int) -> dict[tuple[int, int, int], Cell]:
    """A grid of non-overlapping cells over each photo, featureless cells left out."""
    cells = {}
    for p, (_, im) in enumerate(photos):
        for r in range(im.height // cell_h):
            for c in range(im.width // cell_w):
                box = (c * cell_w, r * cell_h, (c + 1) * cell_w, (r + 1) * cell_h)
                if not is_featureless(im.crop(box)):
                    cells[(p, r, c)] = Cell(p, r, c, box)
    return cells


def make_photo_set(out: Path, cell: tuple[int, int], per_kind: int, seed: int = 0,
                   long_side: int = 2400, n_val_only_photos: int = 5,
                   negatives_per_kind: float = 4.0, distractors_per_kind: float = 10.0) -> Path:
    """Cells of real photographs with planted edited copies and overlapping tiles.

    train: one cell per original, ``per_kind`` originals per edit kind, the
    first tile of each tile pair, and distractor cells. val: the edited copies,
    the second tiles, cells of the same photos that overlap no train image
    (negatives, each related in truth.csv to the nearest train cell) and cells
    of photos that have no train image.
    """
    rng = np.random.default_rng(seed)
    photos = photo_sources(max_side=long_side)
    cw, ch = cell
    cells = photo_cells(photos, cw, ch)
    # Whole photos for val only ("other photos"), drawn among the smaller ones to keep cells for train.
    n_cells = np.bincount([k[0] for k in cells], minlength=len(photos))
    small = np.flatnonzero((n_cells > 0) & (n_cells <= np.median(n_cells[n_cells > 0])))
    val_only = set(rng.choice(small, min(n_val_only_photos, len(small)), replace=False).tolist())
    free = {k for k in cells if k[0] not in val_only}
    order = [k for k in sorted(free)]
    rng.shuffle(order)
    writer = SetWriter(Path(out))
    role: dict[tuple, str] = {}

    def crop(key, dx=0, dy=0):
        x0, y0, x1, y1 = cells[key].box
        return photos[key[0]][1].crop((x0 + dx, y0 + dy, x1 + dx, y1 + dy))

    # Tile pairs first: they need two free neighbouring cells.
    for kind, (low, high) in TILE_KINDS.items():
        made = 0
        for key in order:
            if made == per_kind:
                break
            axis = int(rng.integers(2))
            nb = (key[0], key[1] + axis, key[2] + 1 - axis)
            if key in role or nb not in free or nb in role:
                continue
            overlap = rng.uniform(low, high)
            length = ch if axis else cw
            shift = round((1 - overlap) * length)
            t = writer.save(crop(key), "train")
            v = writer.save(crop(key, dx=0 if axis else shift, dy=shift if axis else 0), "val")
            writer.relate(v, t, kind, f"axis={'xy'[axis]} shift={shift}", 1 - shift / length, "tile")
            role[key] = role[nb] = "tile"
            made += 1
        if made < per_kind:
            raise ValueError(f"only {made} of {per_kind} {kind} pairs fit; lower per_kind")
    remaining = [k for k in order if k not in role]
    need = len(EDITS) * per_kind
    if len(remaining) < need:
        raise ValueError(f"{len(remaining)} free cells for {need} originals; lower per_kind")
    train_path = {}
    for i, name in enumerate(EDITS):
        for key in remaining[i * per_kind:(i + 1) * per_kind]:
            original = crop(key)
            t = writer.save(original, "train")
            edited, strength, quality = EDITS[name](original, rng)
            v = writer.save(edited, "val", quality=quality)
            writer.relate(v, t, name, strength)
            role[key], train_path[key] = "original", t
    rest = remaining[need:]
    n_neg = min(len(rest) // 2, round(negatives_per_kind * per_kind))
    negatives, distractors = rest[:n_neg], rest[n_neg:n_neg + round(distractors_per_kind * per_kind)]
    for key in distractors:
        train_path[key] = writer.save(crop(key), "train")
    for key in negatives:
        v = writer.save(crop(key), "val")
        near = [k for k in train_path if k[0] == key[0]]
        if near:
            nearest = min(near, key=lambda k: abs(k[1] - key[1]) + abs(k[2] - key[2]))
            writer.relate(v, train_path[nearest], "disjoint_same_photo", "", 0.0, "negative")
    for key in sorted(k for k in cells if k[0] in val_only):
        writer.save(crop(key), "val")
    return writer.finish()


# ----------------------------------------------------------------------------- Fashion-MNIST
def make_fmnist_set(out: Path, size: int, per_kind: int, seed: int = 0,
                    n_train_distractors: int = 1500, n_val_distinct: int = 500) -> Path:
    """Fashion-MNIST originals (train) with edited copies (val), at ``size`` px.

    ``size`` 28 writes native PNGs; any other size upscales (bicubic) and
    writes JPEG q90. Class folders carry the labels. ``sources.npz`` holds each
    image's 28x28 source so natural look-alikes can be recognised.
    """
    sys.path.insert(0, str(Path(__file__).parent))
    from fmnist import CLASSES, load_arrays

    arrays = load_arrays()
    rng = np.random.default_rng(seed)
    n_originals = len(GREY_EDITS) * per_kind
    train_rows = rng.choice(len(arrays["x_train"]), n_originals + n_train_distractors, replace=False)
    val_rows = rng.choice(len(arrays["x_val"]), n_val_distinct, replace=False)
    writer = SetWriter(Path(out), suffix=".png" if size == 28 else ".jpg")

    def render(x):
        im = Image.fromarray(x, "L")
        return im if size == 28 else im.resize((size, size), Image.BICUBIC)

    for i, row in enumerate(train_rows):
        x, label = arrays["x_train"][row], CLASSES[arrays["y_train"][row]]
        t = writer.save(render(x), "train", folder=label, source=x)
        if i < n_originals:
            name = GREY_EDITS[i // per_kind]
            edited, strength, quality = EDITS[name](render(x), rng)
            v = writer.save(edited, "val", quality=quality, folder=label, source=x)
            writer.relate(v, t, name, strength)
    for row in val_rows:
        x = arrays["x_val"][row]
        writer.save(render(x), "val", folder=CLASSES[arrays["y_val"][row]], source=x)
    return writer.finish()


# ----------------------------------------------------------------------------- 48k timing set
_BIG_PHOTOS: list = []


def _big_draws(rng, n: int):
    """The 48k set's next ``n`` crops from ``rng``: ``(photo index, x, y, side, transpose or None,
    gamma, channel gains)``, in the order the set is written (and :func:`big_boxes` reads it)."""
    for _ in range(n):
        k = int(rng.integers(len(_BIG_PHOTOS)))
        im = _BIG_PHOTOS[k][1]
        side = int(rng.integers(128, max(129, min(im.size) * 3 // 4)))
        x, y = int(rng.integers(0, im.width - side + 1)), int(rng.integers(0, im.height - side + 1))
        transpose = int(rng.integers(7)) if rng.random() < 0.9 else None  # a flip or a rotation by 90 degrees
        yield k, x, y, side, transpose, rng.uniform(0.6, 1.5), rng.uniform(0.75, 1.25, size=3)


def _big_rng(seed: int, split: str, start: int):
    return np.random.default_rng([seed, 0 if split == "train" else 1, start])  # val is not train's first crops


def _big_chunk(args) -> int:
    root, split, start, count, seed = args
    folder = Path(root) / split
    for i, (k, x, y, side, transpose, g, gains) in enumerate(_big_draws(_big_rng(seed, split, start), count), start):
        tile = _BIG_PHOTOS[k][1].resize((256, 256), Image.BILINEAR, box=(x, y, x + side, y + side), reducing_gap=2.0)
        if transpose is not None:
            tile = tile.transpose(transpose)
        # Colour jitter: a gamma and a gain per channel, one lookup table per band.
        ramp = (np.arange(256) / 255.0) ** g
        lut = np.concatenate([np.clip(255 * gain * ramp, 0, 255) for gain in gains])
        tile.point(lut.round().astype(np.uint8).tolist()).save(folder / f"{split[0]}{i:06d}.jpg",
                                                                 quality=90)
    return count


def big_boxes(n_train: int = 38_000, n_val: int = 9_500, seed: int = 0):
    """Where each image of the 48k set was cut: ``path`` (``train/t000000.jpg``), ``photo``, ``x``,
    ``y``, ``side`` (pixels of the photo), recomputed from the generator's seeds (a DataFrame)."""
    import pandas as pd

    _load_big_photos()
    rows = []
    for split, n in (("train", n_train), ("val", n_val)):
        for start in range(0, n, 500):
            for i, (k, x, y, side, *_) in enumerate(_big_draws(_big_rng(seed, split, start), min(500, n - start)),
                                                     start):
                rows.append((f"{split}/{split[0]}{i:06d}.jpg", k, x, y, side))
    return pd.DataFrame(rows, columns=["path", "photo", "x", "y", "side"])


def _load_big_photos() -> None:
    if not _BIG_PHOTOS:
        _BIG_PHOTOS[:] = [(n, im) for n, im in photo_sources(max_side=1600) if min(im.size) >= 256]


def make_big_set(out: Path, n_train: int = 38_000, n_val: int = 9_500, seed: int = 0,
                 jobs: int = 2) -> Path:
    """``n_train`` + ``n_val`` 256-px JPEGs: random crops (128 px to 3/4 of the short side)
    of the photographs, flipped/rotated by multiples of 90 degrees, gamma and per-channel gains
    jittered.
    No planted copies; overlapping crops occur by chance. For timing a whole scan."""
    from multiprocessing import get_context

    out = Path(out)
    _load_big_photos()
    jobs_list = []
    for split, n in (("train", n_train), ("val", n_val)):
        (out / split).mkdir(parents=True, exist_ok=True)
        jobs_list += [(str(out), split, s, min(500, n - s), seed) for s in range(0, n, 500)]
    with get_context("fork").Pool(jobs) as pool:
        pool.map(_big_chunk, jobs_list, chunksize=1)
    (out / "truth.csv").write_text("val_path,train_path,edit,strength,overlap,relation\n")
    (out / ".complete").write_text("ok\n")
    return out


SETS: dict[str, Callable[[Path, int, float], Path]] = {
    "photo256": lambda out, seed, scale: make_photo_set(out, (256, 256), round(20 * scale), seed,
                                                        long_side=round(2400 * scale ** 0.5)),
    "photo640": lambda out, seed, scale: make_photo_set(out, (640, 480), round(8 * scale), seed,
                                                        long_side=round(3600 * scale ** 0.5),
                                                        n_val_only_photos=3),
    "fmnist28": lambda out, seed, scale: make_fmnist_set(out, 28, round(30 * scale), seed,
                                                         round(1500 * scale), round(500 * scale)),
    "fmnist96": lambda out, seed, scale: make_fmnist_set(out, 96, round(30 * scale), seed,
                                                         round(1500 * scale), round(500 * scale)),
    "big48k": lambda out, seed, scale: make_big_set(out, round(38_000 * scale), round(9_500 * scale),
                                                    seed),
}


def build(name: str, out: Path, seed: int = 0, scale: float = 1.0) -> Path:
    """Write set ``name`` into ``out`` unless a complete one with the same parameters is there."""
    out = Path(out)
    stamp = f"{name} seed={seed} scale={scale}{' v2' if name == 'big48k' else ''}\n"  # v2: val drawn apart
    if (out / ".complete").exists() and (out / ".params").exists() and (out / ".params").read_text() == stamp:
        return out
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} holds another set; remove it or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    SETS[name](out, seed, scale)
    (out / ".params").write_text(stamp)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--set", choices=sorted(SETS), required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the number of images")
    args = ap.parse_args(argv)
    print(build(args.set, args.out, args.seed, args.scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
