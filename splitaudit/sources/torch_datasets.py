"""Two map-style datasets (``torch.utils.data.Dataset``) read into an images table.

Items are read once, in order; their images (PIL, tensors, arrays) are written
as PNG into the image store. Two ``Subset``\\ s of one dataset that share
indices are named in a note.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from .._types import Progress
from .table import Table
from ..errors import InputError, InputTypeError
from .hf import is_hf_dataset_dict
from .rows import Rows, scalar
from .store import open_store

__all__ = ["is_torch_dataset", "read_torch"]


def is_torch_dataset(obj: Any) -> bool:
    """True for a map-style dataset: a ``torch.utils.data.Dataset`` (or anything with
    ``__getitem__`` and ``__len__`` that is not a path, a string or a DataFrame)."""
    if isinstance(obj, (str, bytes, os.PathLike, pd.DataFrame)) or is_hf_dataset_dict(obj):
        return False
    return any(c.__module__.startswith("torch.utils.data") for c in type(obj).__mro__) or (
        hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, (list, tuple, dict)))


def _item_parts(item: Any) -> tuple[Any, Any]:
    if isinstance(item, dict):
        img = next((item[k] for k in ("image", "img", "pixel_values", "input") if k in item), None)
        if img is None:
            raise InputError(f"a dataset item is a dict without an image key (image/img/pixel_values); "
                             f"keys are {list(item)}; pass to_image=")
        lab = next((item[k] for k in ("label", "labels", "target", "y") if k in item), None)
        return img, lab
    if isinstance(item, (tuple, list)):
        if not item:
            raise InputError("a dataset item is an empty tuple")
        return item[0], (item[1] if len(item) > 1 else None)
    return item, None


def _base_and_indices(ds: Any) -> tuple[Any, list[int] | None]:
    """The dataset a (nested) ``Subset`` draws from, and its indices into it."""
    indices = None
    while hasattr(ds, "dataset") and hasattr(ds, "indices"):
        idx = [int(i) for i in ds.indices]
        indices = idx if indices is None else [idx[i] for i in indices]
        ds = ds.dataset
    return ds, indices


def _shared_indices_note(train_ds: Any, val_ds: Any) -> list[str]:
    """A note when both are Subsets of one dataset that share indices (a mistaken ``random_split``)."""
    (base_t, idx_t), (base_v, idx_v) = _base_and_indices(train_ds), _base_and_indices(val_ds)
    if idx_t is None or idx_v is None or base_t is not base_v:
        return []
    shared = sorted(set(idx_t) & set(idx_v))
    if not shared:
        return []
    shown = ", ".join(map(str, shared[:10])) + (f" and {len(shared) - 10:,} more" if len(shared) > 10 else "")
    return [f"train and val are Subsets of one dataset and share {len(shared):,} indices "
            f"({shown}): those samples are in both splits"]


def _classes_of(train_ds: Any, val_ds: Any, classes: Iterable[str] | None) -> list | None:
    """Class names: ``classes=``, else the ``classes`` attribute of the underlying datasets."""
    if classes is None:
        for base in (_base_and_indices(train_ds)[0], _base_and_indices(val_ds)[0]):
            if isinstance(getattr(base, "classes", None), (list, tuple)):
                classes = base.classes
                break
    return list(classes) if classes is not None else None


def _label_and_target(lab: Any, classes: list | None) -> tuple[str | None, float]:
    """An integer is a class (named by ``classes``), a float a regression target."""
    lab = scalar(lab)
    if isinstance(lab, bool) or isinstance(lab, numbers.Integral):
        name = classes[int(lab)] if classes is not None and 0 <= int(lab) < len(classes) else str(int(lab))
        return name, np.nan
    if isinstance(lab, numbers.Real):
        return None, float(lab)
    return (None if lab is None else str(lab)), np.nan


def read_torch(train_ds: Any, val_ds: Any, *, to_image: Callable[[Any], Any] | None = None,
               classes: Iterable[str] | None = None, store: Any = None,
               progress: Progress | None = None) -> Table:
    """Read two map-style datasets; :meth:`ImageSplit.from_torch <splitaudit.dataset.ImageSplit.from_torch>`
    wraps it.

    Each item is ``(image, label)`` (or a dict with ``image``/``label``, or just
    the image). Images may be PIL images, tensors (CHW, float 0–1 or integer
    0–255) or numpy arrays (HWC); they are written as PNG (lossless). Integer
    labels are classes (named by ``classes=`` or the dataset's ``classes``
    attribute, as torchvision datasets have); float labels are regression
    targets. Rows are reported as ``train[i]`` / ``val[i]``.

    Two ``Subset``\\ s of one dataset that share indices (a mistaken
    ``random_split``) put the same samples in both splits: a note names the
    shared indices, and the scan reports them as exact duplicates.

    Items are read once, in order; a random transform makes the bytes
    differ between reads, so give the datasets without augmentation.

    Examples
    --------
    >>> from torch.utils.data import random_split               # doctest: +SKIP
    >>> train_ds, val_ds = random_split(full, [0.8, 0.2])          # doctest: +SKIP
    >>> split = ImageSplit.from_torch(train_ds, val_ds)            # doctest: +SKIP
    """
    for name, ds in (("train_ds", train_ds), ("val_ds", val_ds)):
        if not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
            raise InputTypeError(f"{name} must be a map-style dataset (with __getitem__ and __len__); "
                            f"got {type(ds).__name__}")
    if to_image is not None and not callable(to_image):
        raise InputTypeError(f"to_image must be callable; got {type(to_image).__name__}")
    notes = _shared_indices_note(train_ds, val_ds)
    classes = _classes_of(train_ds, val_ds, classes)
    bucket, keep = open_store(store)
    rows = Rows(bucket)
    total = len(train_ds) + len(val_ds)
    done = 0
    for role, ds in (("train", train_ds), ("val", val_ds)):
        for index in range(len(ds)):
            item = ds[index]
            img, lab = _item_parts(item) if to_image is None else (to_image(item), _item_parts(item)[1])
            label, target = _label_and_target(lab, classes)
            rows.add(split=role, name=role, index=index, label=label, target=target, group=None, image=img)
            done += 1
            if progress is not None and (done % 256 == 0 or done == total):
                progress("read datasets", done, total)
    return rows.build(bucket.folder, notes, keep)
