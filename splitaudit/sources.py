"""Splits the user already holds in memory: a Hugging Face ``DatasetDict``, a
pair of torch ``Dataset``\\ s.

splitaudit reads images from files (fingerprints, thumbnails and the cache all
work on paths), so these adapters stream the rows once, one at a time, and give
every image a file:

* a row whose image is a local file (``Image`` feature with a ``path`` and no
  ``bytes``, as the ``imagefolder`` builder leaves them) is read where it is;
* otherwise the image's encoded bytes (the ``Image`` feature's ``bytes``, or a
  PIL image / tensor / array re-encoded losslessly as PNG) are written once into
  an *image store*: a folder named by content (``<sha1[:2]>/<sha1>.<ext>``)
  outside the user's data. By default it is ``images/`` in the fingerprint cache
  folder (``~/.cache/splitaudit/images``), so a second scan of the same data
  writes nothing and hits the fingerprint cache; ``store=False`` uses a
  temporary folder that lives as long as the returned split (and the scan result
  holding it). Delete the store at any time: it is rebuilt on demand.

The reported ``path`` of a row is its original path when it has one that no
other row shares (relative to the common folder of local files), else a stable
id ``<split name>[<row>]`` (``validation[123]``), with the original name after a
colon when there is one (``validation[123]:0.png``). Everything downstream
(pairs, columns, reports) is the same as for a folder.

Examples
--------
>>> from datasets import load_from_disk                         # doctest: +SKIP
>>> split = ImageSplit.from_hf(load_from_disk("fmnist"))         # doctest: +SKIP
>>> split = ImageSplit.from_torch(train_ds, val_ds)              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import numbers
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd

from ._optional import require
from .dataset import IMAGE_COLUMNS, TRAIN_NAMES, VAL_NAMES, ImageSplit, display_path
from .errors import InputError, MissingDependencyError

__all__ = ["from_hf", "from_torch", "is_hf_dataset_dict", "is_torch_dataset", "load_hf", "store_for_cache", "to_pil"]

_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))
_LABEL_NAMES = ("label", "labels", "class", "classes", "category")
_TARGET_NAMES = ("target", "targets", "y", "value", "score")


# ------------------------------------------------------------------ detection
def is_hf_dataset_dict(obj: Any) -> bool:
    """True for a ``datasets.DatasetDict`` / ``IterableDatasetDict`` (checked without importing datasets)."""
    return any(c.__module__.startswith("datasets.") and c.__name__ in ("DatasetDict", "IterableDatasetDict")
               for c in type(obj).__mro__)


def is_torch_dataset(obj: Any) -> bool:
    """True for a map-style dataset: a ``torch.utils.data.Dataset`` (or anything with
    ``__getitem__`` and ``__len__`` that is not a path, a string or a DataFrame)."""
    if isinstance(obj, (str, bytes, os.PathLike, pd.DataFrame, ImageSplit)) or is_hf_dataset_dict(obj):
        return False
    return any(c.__module__.startswith("torch.utils.data") for c in type(obj).__mro__) or (
        hasattr(obj, "__getitem__") and hasattr(obj, "__len__") and not isinstance(obj, (list, tuple, dict)))


# --------------------------------------------------------------------- store
def _ext_of(data: bytes, name: str | None) -> str:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    ext = os.path.splitext(name or "")[1].lower()
    return ext if ext and len(ext) <= 6 and ext[1:].isalnum() else ".img"


class _Store:
    """Content-addressed files; the n-th repeat of one content gets its own name
    (``<sha1>~n``) so that every row has its own path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: Counter = Counter()
        self.written = 0

    def put(self, data: bytes, name: str | None = None) -> str:
        digest = hashlib.sha1(data).hexdigest()
        n = self.seen[digest]
        self.seen[digest] += 1
        sub = self.folder / digest[:2]
        path = sub / f"{digest}{f'~{n}' if n else ''}{_ext_of(data, name)}"
        if not path.exists():  # present: same content, same mtime, a fingerprint-cache hit
            sub.mkdir(parents=True, exist_ok=True)
            tmp = sub / f".{path.name}.{os.getpid()}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self.written += 1
        return str(path)


def _open_store(store: Any) -> tuple[_Store, Any]:
    """``(store, keepalive)``: ``None``/``True`` the default folder, a path that folder,
    ``False`` a temporary folder removed when ``keepalive`` is collected."""
    if store is False:
        tmp = tempfile.TemporaryDirectory(prefix="splitaudit-images-")
        return _Store(Path(tmp.name)), tmp
    if store is None or store is True:
        from .fingerprints.cache import default_cache_dir  # a plain path helper; no fingerprinting

        folder = default_cache_dir() / "images"
    elif isinstance(store, (str, os.PathLike)):
        folder = Path(store)
    else:
        raise TypeError(f"store must be None, True, False or a folder path; got {type(store).__name__}")
    folder.mkdir(parents=True, exist_ok=True)
    return _Store(folder.resolve()), None


def store_for_cache(cache: Any) -> Any:
    """The image store that goes with ``scan(cache=...)``: ``images/`` beside the
    fingerprint cache, a temporary folder when the cache is off."""
    if cache is None or cache is False:
        return False
    if cache is True:
        return None
    if isinstance(cache, (str, os.PathLike)):
        folder = Path(cache)
        if folder.suffix.lower() in (".sqlite", ".db", ".sqlite3"):
            folder = folder.parent
        return folder / "images"
    path = getattr(cache, "path", None)  # a FingerprintCache
    return Path(path).parent / "images" if path is not None else None


# -------------------------------------------------------------- conversions
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
        raise TypeError(f"image must be a PIL image, a torch tensor or a numpy array; got {type(image).__name__}")
    arr = image
    if arr.ndim == 3 and is_tensor:
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        layout = "CHW (or HW)" if is_tensor else "HWC (or HW)"
        raise ValueError(f"image must be {layout} with 1, 3 or 4 channels; got shape {tuple(image.shape)}")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
            raise ValueError(
                f"a floating-point image must hold values in [0, 1]; got [{lo:.3g}, {hi:.3g}] "
                "(a Normalize transform?). Give the dataset without it, or pass to_image= to convert items")
        arr = np.rint(arr * 255).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 255):
            raise ValueError(f"an integer image must hold values in [0, 255]; got [{arr.min()}, {arr.max()}]")
        arr = arr.astype(np.uint8)
    else:
        raise ValueError(f"image dtype {arr.dtype} is not supported")
    return Image.fromarray(np.ascontiguousarray(arr))


def _png_bytes(image: Any) -> bytes:
    im = to_pil(image)
    if im.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        im = im.convert("RGBA" if "A" in im.mode else "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)  # lossless; level 1: fast, same pixels
    return buf.getvalue()


def _scalar(value: Any) -> Any:
    """A one-element tensor or array as a Python number; anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    size = getattr(value, "size", None)
    size = size() if callable(size) and hasattr(value, "numel") else size
    if hasattr(value, "reshape") and hasattr(value, "item") and (
            (hasattr(value, "numel") and value.numel() == 1) or size == 1):
        return value.reshape(-1)[0].item()
    return value


# ------------------------------------------------------------------- builder
class _Rows:
    """Collects the rows of both splits and turns them into an ImageSplit."""

    def __init__(self, store: _Store) -> None:
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
            abspath = self.store.put(_png_bytes(image))
        else:  # a path that is not here and no bytes: the decoder will report it unreadable
            abspath = os.path.abspath(original) if original else str(self.store.folder / f"missing-{name}-{index}")
        self.used.add(abspath)
        if local:
            self.local.append(len(self.rows))
        self.rows.append({"path": original, "abspath": abspath, "split": split, "label": label,
                          "target": target, "group": group, "_id": f"{name}[{index}]"})

    def build(self, root: Path, notes: list[str], keep: Any) -> ImageSplit:
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
        images = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
        split = ImageSplit._make(root, images, [], notes)
        if keep is not None:
            object.__setattr__(split, "_keep", keep)
        return split


def _pick_splits(names: list[str], train: str | None, val: str | None, what: str) -> tuple[str, str, list[str]]:
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


# ------------------------------------------------------------- Hugging Face
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
        label = next((c for c in cols if isinstance(features[c], datasets.ClassLabel)), None)
        if label is None:
            for c in cols:
                f = features[c]
                dtype = getattr(f, "dtype", "")
                if not isinstance(f, datasets.Value) or c == image:
                    continue
                if c.lower() in _LABEL_NAMES and (dtype == "string" or "int" in dtype):
                    label = c
                    break
                if c.lower() in _LABEL_NAMES + _TARGET_NAMES and ("float" in dtype or "int" in dtype):
                    target = c
                    break
        if label or target:
            notes.append(f"column {label or target!r} used as the " + ("class label" if label else
                                                                       "regression target"))
    return image, label, target, notes


def from_hf(dataset_dict: Any, *, image: str | None = None, label: str | None = None,
            target: str | None = None, group: str | None = None, train: str | None = None,
            val: str | None = None, store: Any = None, batch_size: int = 256) -> ImageSplit:
    """Build an :class:`ImageSplit` from a Hugging Face ``DatasetDict``.

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
    >>> split = from_hf(dd, label="label")                   # doctest: +SKIP
    """
    datasets = _require_datasets()
    if not is_hf_dataset_dict(dataset_dict):
        raise TypeError(f"dataset_dict must be a datasets.DatasetDict; got {type(dataset_dict).__name__}")
    names = list(dataset_dict)
    train, val, notes = _pick_splits(names, train, val, "DatasetDict")
    bucket, keep = _open_store(store)
    rows = _Rows(bucket)
    for role, name in (("train", train), ("val", val)):
        ds = dataset_dict[name]
        features = ds.features
        if features is None:
            raise InputError(f"split {name!r} has unknown features (a streamed dataset without them); "
                             "call .cast(features) or load it without streaming")
        img_col, lab_col, tgt_col, col_notes = _hf_columns(features, image, label, target, datasets)
        if role == "train":
            notes += col_notes
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
    return rows.build(bucket.folder, notes, keep)


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


# --------------------------------------------------------------------- torch
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


def from_torch(train_ds: Any, val_ds: Any, *, to_image: Callable[[Any], Any] | None = None,
               classes: Iterable[str] | None = None, store: Any = None,
               progress: Callable[[str, int, int], None] | None = None) -> ImageSplit:
    """Build an :class:`ImageSplit` from two map-style datasets (``torch.utils.data.Dataset``).

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
    >>> split = from_torch(train_ds, val_ds)                       # doctest: +SKIP
    """
    for name, ds in (("train_ds", train_ds), ("val_ds", val_ds)):
        if not (hasattr(ds, "__getitem__") and hasattr(ds, "__len__")):
            raise TypeError(f"{name} must be a map-style dataset (with __getitem__ and __len__); "
                            f"got {type(ds).__name__}")
    if to_image is not None and not callable(to_image):
        raise TypeError(f"to_image must be callable; got {type(to_image).__name__}")
    notes: list[str] = []
    (base_t, idx_t), (base_v, idx_v) = _base_and_indices(train_ds), _base_and_indices(val_ds)
    if idx_t is not None and idx_v is not None and base_t is base_v:
        shared = sorted(set(idx_t) & set(idx_v))
        if shared:
            shown = ", ".join(map(str, shared[:10])) + (f" and {len(shared) - 10:,} more" if len(shared) > 10 else "")
            notes.append(f"train and val are Subsets of one dataset and share {len(shared):,} indices "
                         f"({shown}): those samples are in both splits")
    if classes is None:
        for base in (base_t, base_v):
            if isinstance(getattr(base, "classes", None), (list, tuple)):
                classes = base.classes
                break
    classes = list(classes) if classes is not None else None
    bucket, keep = _open_store(store)
    rows = _Rows(bucket)
    total = len(train_ds) + len(val_ds)
    done = 0
    for role, ds in (("train", train_ds), ("val", val_ds)):
        for index in range(len(ds)):
            item = ds[index]
            img, lab = _item_parts(item) if to_image is None else (to_image(item), _item_parts(item)[1])
            lab = _scalar(lab)
            label, target = None, np.nan
            if isinstance(lab, bool) or isinstance(lab, numbers.Integral):
                label = classes[int(lab)] if classes is not None and 0 <= int(lab) < len(classes) else str(int(lab))
            elif isinstance(lab, numbers.Real):
                target = float(lab)
            elif lab is not None:
                label = str(lab)
            rows.add(split=role, name=role, index=index, label=label, target=target, group=None, image=img)
            done += 1
            if progress is not None and (done % 256 == 0 or done == total):
                progress("read datasets", done, total)
    return rows.build(bucket.folder, notes, keep)
