"""Write Fashion-MNIST (Debian package ``dataset-fashion-mnist``) as PNG folders.

    apt-get install dataset-fashion-mnist
    python benchmarks/fmnist.py OUT_DIR          # OUT_DIR/train/<class>/00001.png, OUT_DIR/val/<class>/...

Also writes ``OUT_DIR/arrays.npz`` (x_train, y_train, x_val, y_val as uint8) so
benchmarks can compute pixel ground truth without decoding PNGs. Idempotent:
an existing complete tree is left alone.
"""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(os.environ.get("FMNIST_SRC", "/usr/share/datasets/fashion-mnist"))
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat",
           "sandal", "shirt", "sneaker", "bag", "boot"]


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_arrays() -> dict[str, np.ndarray]:
    if not SRC.is_dir():
        sys.exit(f"{SRC} not found: apt-get install dataset-fashion-mnist")
    return {
        "x_train": _idx(SRC / "train-images-idx3-ubyte.gz"),
        "y_train": _idx(SRC / "train-labels-idx1-ubyte.gz"),
        "x_val": _idx(SRC / "t10k-images-idx3-ubyte.gz"),
        "y_val": _idx(SRC / "t10k-labels-idx1-ubyte.gz"),
    }


def image_path(out: Path, split: str, label: int, index: int) -> Path:
    return out / split / CLASSES[label] / f"{index:05d}.png"


def write(out: Path) -> Path:
    out = Path(out)
    marker = out / ".complete"
    if marker.exists():
        return out
    arrays = load_arrays()
    for split in ("train", "val"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        for c in CLASSES:
            (out / split / c).mkdir(parents=True, exist_ok=True)
        for i, (img, lab) in enumerate(zip(x, y)):
            Image.fromarray(img, mode="L").save(image_path(out, split, int(lab), i))
    np.savez(out / "arrays.npz", **arrays)
    marker.write_text("ok\n")
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/data/fmnist")
    print(write(target))
