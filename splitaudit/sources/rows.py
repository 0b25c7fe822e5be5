"""Rows of images the user holds in memory, turned into an images table.

Shared by the ``DatasetDict`` and torch readers: conversion of in-memory images
(PIL, tensors, arrays) to lossless PNG bytes, the row builder that gives every
row a file and a unique printable path, and the choice of the train and
validation splits by name.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .table import IMAGE_COLUMNS, TRAIN_NAMES, VAL_NAMES, Table, display_path
from ..errors import InputError, InputTypeError
from .store import ImageStore

__all__ = ["Rows", "pick_splits", "png_bytes", "scalar", "to_pil"]


def to_pil(image: Any):
    """A PIL image from a PIL image, a torch tensor or a numpy array.

    Tensors are CHW (or HW); numpy arrays are HWC (or HW), as PIL and
    ``np.asarray(pil_image)`` lay them out. Floating point values are taken as
    0–1, integers as 0–255; anything else (a normalised tensor with negative
    values, floats above 1) is a :class:`ValueError`: pass ``to_image=`` to undo
    your transform.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    is_tensor = type(image).__module__.startswith("torch")
    if is_tensor:
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise InputTypeError(f"image must be a PIL image, a torch tensor or a numpy array; got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and is_tensor:
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        layout = "CHW (or HW)" if is_tensor else "HWC (or HW)"
        raise InputError(f"image must be {layout} with 1, 3 or 4 channels; got shape {tuple(image.shape)}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
            raise InputError(
                f"a floating-point image must hold values in [0, 1]; got [{lo:.3g}, {hi:.3g}] "
                "(a Normalize transform?). Give the dataset without it, or pass to_image= to convert items")
        arr = np.rint(arr * 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
            raise InputError(f"an integer image must hold values in [0, 255]; got [{arr.min()}, {arr.max()}]")
        arr = arr.astype(np.uint8)
    else:
        raise InputError(f"image dtype {arr.dtype} is not supported")
    return Image.fromarray(np.ascontiguousarray(arr))


def png_bytes(image: Any) -> bytes:
    """An in-memory image (see :func:`to_pil`) encoded as lossless PNG."""
    im = to_pil(image)
    if im.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)  # lossless; level 1: fast, same pixels
    return buf.getvalue()


def scalar(value: Any) -> Any:
    """A one-element tensor or array as a Python number; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    size = getattr(value, "size", None)
    size = size() if callable(size) and hasattr(value, "numel") else size
    if hasattr(value, "reshape") and hasattr(value, "item") and (
            (hasattr(value, "numel") and value.numel() == 1) or size == 1):
        return value.reshape(-1)[0].item()
    return value


class Rows:
    """Collects the rows of both splits and turns them into an ImageSplit."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.rows: list[dict] = []
        self.local: list[int] = []  # rows read from the user's own files
        self.used: set[str] = set()

    def add(self, *, split: str, name: str, index: int, label: Any, target: float, group: Any,
            data: bytes | None = None, original: str | None = None, image: Any = None) -> None:
        local = data is None and image is None and original is not None and os.path.isfile(original)
        if local:
            abspath = os.path.abspath(original)
            if abspath in self.used:  # one file listed twice: a copy of its bytes gets its own path
                abspath = self.store.put(Path(abspath).read_bytes(), original)
                local = False
        elif data is not None:
            abspath = self.store.put(data, original)
        elif image is not None:
            abspath = self.store.put(png_bytes(image))
        else:  # a path that is not here and no bytes: the decoder will report it unreadable
            abspath = os.path.abspath(original) if original else str(self.store.folder / f"missing-{name}-{index}")
        self.used.add(abspath)
        if local:
            self.local.append(len(self.rows))
        self.rows.append({"path": original, "abspath": abspath, "split": split, "label": label,
                          "target": target, "group": group, "_id": f"{name}[{index}]"})

    def build(self, root: Path, notes: list[str], keep: Any) -> Table:
        """The table of the rows added; paths made unique and printable."""
        rows = self.rows
        if self.local:
            base = os.path.commonpath([os.path.dirname(rows[i]["abspath"]) for i in self.local])
            for i in self.local:
                rows[i]["path"] = os.path.relpath(rows[i]["abspath"], base).replace(os.sep, "/")
            notes.append(f"{len(self.local):,} images read in place from {display_path(base)!r}; "
                         "their paths are relative to it")
        counts = Counter(r["path"] for r in rows if r["path"])
        for r in rows:
            orig = r.pop("_id")
            if not r["path"]:
                r["path"] = orig
            elif counts[r["path"]] > 1:
                r["path"] = f"{orig}:{r['path']}"
            r["path"] = display_path(str(r["path"]))
        if self.store.written or any(i not in set(self.local) for i in range(len(rows))):
            notes.append(f"image bytes stored by content under {display_path(str(self.store.folder))!r} "
                         f"({self.store.written:,} files written this time)")
        return Table(root, pd.DataFrame(rows, columns=IMAGE_COLUMNS), [], notes, keep)


def pick_splits(names: list[str], train: str | None, val: str | None, what: str) -> tuple[str, str, list[str]]:
    """``(train name, validation name, notes)`` among ``names``: the ones given, else known names."""
    lower = {n.lower(): n for n in names}
    notes: list[str] = []
    if train is None:
        train = next((lower[n] for n in TRAIN_NAMES if n in lower), None)
    if val is None:
        vals = [lower[n] for n in VAL_NAMES if n in lower]
        val = vals[0] if vals else None
        if len(vals) > 1:
            notes.append(f"several validation splits found ({', '.join(vals)}); using {val!r} as validation")
    for role, name in (("train", train), ("val", val)):
        if name is None:
            raise InputError(f"{what}: no {role} split found among {names}; expected one of "
                             f"{list(TRAIN_NAMES) if role == 'train' else list(VAL_NAMES)}; pass {role}=NAME")
        if name not in names:
            raise InputError(f"{what}: {role}={name!r} is not a split; splits are {names}")
    if train == val:
        raise InputError(f"{what}: train and val must be different splits; got {train!r} for both")
    return train, val, notes
