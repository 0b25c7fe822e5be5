"""Build a small demo split with planted leaks, then audit it with the Python API.

    python examples/demo.py                 # writes demo_data/ and demo_out/
    python examples/demo.py DATA OUT

The demo has 4 classes of generated "photos" (smooth colour fields with
shapes), 160 training and 40 validation images. Planted in validation:
an exact byte copy, a PNG copy of a JPEG (same pixels), and re-encoded,
resized, brightened, blurred, mirrored and cropped copies of training
images, plus one copy filed under the wrong class (a label conflict).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

CLASSES = ["circle", "square", "triangle", "ring"]


def make_photo(rng: np.random.Generator, cls: str, size: int = 96) -> Image.Image:
    """A random smooth colour field with one shape of the given class."""
    base = rng.uniform(0, 255, (4, 4, 3))
    field = np.asarray(Image.fromarray(base.astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC))
    noise = rng.normal(0, 12, (size, size, 3))
    img = Image.fromarray(np.clip(field + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    cx, cy, r = (int(v) for v in (rng.integers(30, 66), rng.integers(30, 66), rng.integers(14, 26)))
    if cls == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif cls == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif cls == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=6)
    return img


def build(root: Path, *, n_train_per_class: int = 40, n_val_per_class: int = 10, seed: int = 0) -> dict:
    """Write ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg with planted leaks.

    Returns {val_path: train_path} of the planted cross-split copies.
    """
    rng = np.random.default_rng(seed)
    if root.exists():
        shutil.rmtree(root)
    planted: dict[str, str] = {}
    for split, n in (("train", n_train_per_class), ("val", n_val_per_class)):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                make_photo(rng, cls).save(root / split / cls / f"{cls}_{i:03d}.jpg", quality=92)
    edits = {
        "exact_copy": None,
        "png_copy": None,
        "reencoded_q40": lambda im: im,
        "resized_50": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
        "brightened": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
        "blurred": lambda im: im.filter(ImageFilter.GaussianBlur(1.2)),
        "mirrored": ImageOps.mirror,
        "cropped_5pct": lambda im: im.crop((3, 3, im.width - 2, im.height - 2)),
    }
    for k, (name, edit) in enumerate(edits.items()):
        cls = CLASSES[k % len(CLASSES)]
        src = root / "train" / cls / f"{cls}_{k:03d}.jpg"
        if name == "exact_copy":
            dst = root / "val" / cls / f"leak_{name}.jpg"
            shutil.copyfile(src, dst)
        elif name == "png_copy":
            dst = root / "val" / cls / f"leak_{name}.png"
            with Image.open(src) as im:
                im.convert("RGB").save(dst)
        else:
            dst = root / "val" / cls / f"leak_{name}.jpg"
            with Image.open(src) as im:
                edit(im.convert("RGB")).save(dst, quality=40 if name == "reencoded_q40" else 90)
        planted[dst.relative_to(root).as_posix()] = src.relative_to(root).as_posix()
    # a copy filed under another class: leakage *and* a label conflict
    src = root / "train" / "circle" / f"circle_{n_train_per_class - 1:03d}.jpg"
    dst = root / "val" / "square" / "leak_wrong_label.jpg"
    shutil.copyfile(src, dst)
    planted[dst.relative_to(root).as_posix()] = src.relative_to(root).as_posix()
    return planted


def main(argv: list[str]) -> int:
    data = Path(argv[1] if len(argv) > 1 else "demo_data")
    out = Path(argv[2] if len(argv) > 2 else "demo_out")
    planted = build(data)

    import splitaudit

    result = splitaudit.scan(data, cache=False, embed="none", jobs=1)
    result.save(out)
    found = set(zip(result.pairs["val_path"], result.pairs["train_path"]))
    hits = sum((v, t) in found for v, t in planted.items())
    print(f"planted {len(planted)} cross-split copies; splitaudit reported {len(result.pairs)} pairs, "
          f"{hits} of them planted")
    for f in result.findings:
        print(f"  {f.status:<7} {f.check:<20} {f.message}")
    print(f"report: {out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
