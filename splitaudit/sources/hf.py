"""A Hugging Face ``DatasetDict`` read into an images table (needs ``splitaudit[hf]``).

Rows stream in batches; an ``Image`` feature is read without decoding (its
``path`` when it is a local file, else its encoded ``bytes``), any other image
value is re-encoded as PNG into the image store.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Iterator

import numpy as np

from .._optional import require
from .table import Table
from ..errors import InputError, InputTypeError, MissingDependencyError
from .rows import Rows, pick_splits
from .store import open_store

__all__ = ["is_hf_dataset_dict", "load_hf", "read_hf"]

_LABEL_NAMES = ("label", "labels", "class", "classes", "category")
_TARGET_NAMES = ("target", "targets", "y", "value", "score")


def is_hf_dataset_dict(obj: Any) -> bool:
    """True for a ``datasets.DatasetDict`` / ``IterableDatasetDict`` (checked without importing datasets)."""
    return any(c.__module__.startswith("datasets.") and c.__name__ in ("DatasetDict", "IterableDatasetDict")
               for c in type(obj).__mro__)


def _guess_label(features: Any, image: str, datasets: Any) -> tuple[str | None, str | None]:
    """``(label, target)`` column: the first ``ClassLabel``, else a column named like one."""
    cols = list(features)
    label = next((c for c in cols if isinstance(features[c], datasets.ClassLabel)), None)
    if label is not None:
        return label, None
    for c in cols:
        f = features[c]
        dtype = getattr(f, "dtype", "")
        if not isinstance(f, datasets.Value) or c == image:
            continue
        if c.lower() in _LABEL_NAMES and (dtype == "string" or "int" in dtype):
            return c, None
        if c.lower() in _LABEL_NAMES + _TARGET_NAMES and ("float" in dtype or "int" in dtype):
            return None, c
    return None, None


def _hf_columns(features: Any, image: str | None, label: str | None, target: str | None,
                datasets: Any) -> tuple[str, str | None, str | None, list[str]]:
    notes = []
    cols = list(features)
    if image is None:
        image = next((c for c in cols if isinstance(features[c], datasets.Image)), None)
        if image is None:
            raise InputError(f"no column has an Image feature among {cols}; pass image=COLUMN")
    elif image not in cols:
        raise InputError(f"image={image!r} is not a column; columns are {cols}")
    for name, col in (("label", label), ("target", target)):
        if col is not None and col not in cols:
            raise InputError(f"{name}={col!r} is not a column; columns are {cols}")
    if label is None and target is None:
        label, target = _guess_label(features, image, datasets)
        if label or target:
            notes.append(f"column {label or target!r} used as the " + ("class label" if label else
                                                                       "regression target"))
    return image, label, target, notes


def read_hf(dataset_dict: Any, *, image: str | None = None, label: str | None = None,
            target: str | None = None, group: str | None = None, train: str | None = None,
            val: str | None = None, store: Any = None, batch_size: int = 256) -> Table:
    """Read a Hugging Face ``DatasetDict``; :meth:`ImageSplit.from_hf <splitaudit.dataset.ImageSplit.from_hf>`
    wraps it.

    Parameters
    ----------
    dataset_dict : datasets.DatasetDict or IterableDatasetDict
    image : str, optional
        The image column (default: the first column with an ``Image`` feature).
    label, target : str, optional
        The class-label column (``ClassLabel`` values become their names) or the
        numeric regression target. Default: the first ``ClassLabel`` column;
        else a column named like ``label`` (string or integer: classes) or
        ``target``/``y`` (numeric: regression).
    group : str, optional
        A group column (patient, video, ...).
    train, val : str, optional
        Split names (default: ``train``; ``validation``/``valid``/``val``/``test``/``dev``).
    store : None, path or False
        Where image bytes are written (see :mod:`splitaudit.sources`).
    batch_size : int
        Rows read at a time; only one batch of encoded images is in memory.

    Examples
    --------
    >>> split = ImageSplit.from_hf(dd, label="label")          # doctest: +SKIP
    """
    datasets = _require_datasets()
    if not is_hf_dataset_dict(dataset_dict):
        raise InputTypeError(f"dataset_dict must be a datasets.DatasetDict; got {type(dataset_dict).__name__}")
    names = list(dataset_dict)
    train, val, notes = pick_splits(names, train, val, "DatasetDict")
    bucket, keep = open_store(store)
    rows = Rows(bucket)
    for role, name in (("train", train), ("val", val)):
        col_notes = _read_split(rows, dataset_dict[name], role, name, datasets, image=image, label=label,
                                target=target, group=group, batch_size=batch_size)
        if role == "train":
            notes += col_notes
    return rows.build(bucket.folder, notes, keep)


def _read_split(rows: Rows, ds: Any, role: str, name: str, datasets: Any, *, image: str | None,
                label: str | None, target: str | None, group: str | None, batch_size: int) -> list[str]:
    """Add the rows of one split; return the notes on the columns chosen."""
    features = ds.features
    if features is None:
        raise InputError(f"split {name!r} has unknown features (a streamed dataset without them); "
                         "call .cast(features) or load it without streaming")
    img_col, lab_col, tgt_col, col_notes = _hf_columns(features, image, label, target, datasets)
    if group is not None and group not in features:
        raise InputError(f"group={group!r} is not a column; columns are {list(features)}")
    is_image = isinstance(features[img_col], datasets.Image)
    if is_image:
        ds = ds.cast_column(img_col, datasets.Image(decode=False))  # bytes + path, no decoding
    names_of = features[lab_col].names if lab_col and isinstance(features[lab_col], datasets.ClassLabel) else None
    wanted = [c for c in (img_col, lab_col, tgt_col, group) if c]
    ds = ds.select_columns(wanted) if hasattr(ds, "select_columns") else ds
    for index, row in enumerate(_hf_rows(ds, batch_size)):
        lab = row.get(lab_col) if lab_col else None
        if lab is not None and names_of is not None and isinstance(lab, numbers.Integral) and lab >= 0:
            lab = names_of[lab]
        tgt = row.get(tgt_col) if tgt_col else None
        try:
            tgt = float(tgt) if tgt is not None else np.nan
        except (TypeError, ValueError) as exc:
            raise InputError(f"target column {tgt_col!r} must be numeric; got {tgt!r} in {name}[{index}]") from exc
        grp = row.get(group) if group else None
        value = row[img_col]
        common = dict(split=role, name=name, index=index, target=tgt,
                      label=None if lab is None else str(lab), group=None if grp is None else str(grp))
        if value is None:
            rows.add(**common, original=None)
        elif is_image and isinstance(value, dict):
            rows.add(**common, data=value.get("bytes"), original=value.get("path"))
        else:
            rows.add(**common, image=value if not isinstance(value, list) else np.asarray(value))
    return col_notes


def _require_datasets() -> Any:
    try:
        return require("datasets", purpose="reading a Hugging Face DatasetDict")
    except MissingDependencyError as exc:
        raise MissingDependencyError("'datasets' is needed for reading a Hugging Face DatasetDict but is not "
                                     "installed; install it with: pip install 'splitaudit[hf]'") from exc


def load_hf(folder: str | os.PathLike) -> Any:
    """``datasets.load_from_disk(folder)``, with its errors as :class:`InputError`."""
    datasets = _require_datasets()
    try:
        return datasets.load_from_disk(os.fspath(folder))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise InputError(f"could not load a saved dataset from {os.fspath(folder)!r} "
                         f"(expected a folder written by save_to_disk): {exc}") from exc


def _hf_rows(ds: Any, batch_size: int) -> Iterator[dict]:
    if hasattr(ds, "iter"):
        for batch in ds.iter(batch_size=batch_size):
            columns = list(batch)
            for values in zip(*(batch[c] for c in columns)):
                yield dict(zip(columns, values))
    else:
        yield from ds
