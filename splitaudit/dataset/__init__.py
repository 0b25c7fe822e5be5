"""The split being audited: which images, in which split, with which label.

An :class:`ImageSplit` is built from a folder (``ROOT/train`` + ``ROOT/val``),
from two explicit folders, or from a manifest (CSV file or DataFrame). Its
``images`` table is the single source of truth every later stage indexes into:

=========  ==============================================================
column     meaning
=========  ==============================================================
path       path relative to ``root``, forward slashes, safe to print
abspath    the path to open (may hold surrogate-escaped bytes)
split      ``"train"`` or ``"val"``
label      class label (string) or missing
target     numeric regression target or NaN
group      user group id (patient, video, ...) or missing
=========  ==============================================================

Files that are not images are listed in ``ignored`` with a reason; nothing is
dropped silently. A Hugging Face ``DatasetDict`` or a pair of torch datasets
become a split through :mod:`splitaudit.sources` (:meth:`ImageSplit.from_hf`,
:meth:`ImageSplit.from_torch`). splitaudit never writes under ``root``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from .._validate import check_path
from ..errors import LayoutError
from .manifest import read_manifest
from ..sources.table import IMAGE_COLUMNS, TRAIN_NAMES, VAL_NAMES, Table, display_path, outside_note, relative, within

__all__ = ["ImageSplit", "IMAGE_EXTENSIONS", "TRAIN_NAMES", "VAL_NAMES", "display_path"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)


def _prefix_len(folder: str) -> int:
    """Length of ``folder`` plus its separator: ``path[n:]`` is then relative to it."""
    return len(folder) if folder.endswith(os.sep) else len(folder) + 1


def _frame(rows: list[dict]) -> pd.DataFrame:
    """The images table with object (Python str) columns: a file name that is not valid
    UTF-8 arrives as a str with surrogate escapes, which pandas' inferred (pyarrow)
    string dtype refuses."""
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS, dtype=object)


def _walk(top: str, real_root: str | None = None) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """All files under ``top`` (sorted, a folder's files before its subfolders);
    plus (path, reason) for what was passed over, and ``{path: resolved target}``
    of the files that resolve outside ``real_root`` through a symlink (to a file
    or to a folder above them).

    Symlinked directories are followed once; a loop is reported, not followed.
    Uses ``os.scandir`` entries (file types come with the listing: no stat per file).
    """
    files: list[str] = []
    skipped: list[tuple[str, str]] = []
    outside: dict[str, str] = {}
    seen: set[str] = set()
    stack = [top]
    while stack:
        dirpath = stack.pop()
        real = os.path.realpath(dirpath)
        if real in seen:
            skipped.append((dirpath, "symlink loop: directory already visited"))
            continue
        seen.add(real)
        folder_outside = real_root is not None and not within(real, real_root)
        try:
            with os.scandir(dirpath) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            skipped.append((err.filename or dirpath, f"cannot list directory: {err.strerror}"))
            continue
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows symlinks, like os.walk(followlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append(entry.path)
            elif entry.is_symlink() and not os.path.exists(entry.path):
                skipped.append((entry.path, "broken symlink"))
            else:
                files.append(entry.path)
                if real_root is None:
                    continue
                if entry.is_symlink():  # the d_type of the listing: no extra call for plain files
                    target = os.path.realpath(entry.path)
                    if not within(target, real_root):
                        outside[entry.path] = target
                elif folder_outside:
                    outside[entry.path] = os.path.join(real, entry.name)
        stack.extend(reversed(subdirs))
    return files, skipped, outside


def _is_image_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ImageSplit:
    """A train/validation split of an image dataset.

    Examples
    --------
    >>> split = ImageSplit.from_folder("data")            # doctest: +SKIP
    >>> split.images.groupby("split").size()               # doctest: +SKIP
    """

    root: Path
    images: pd.DataFrame
    ignored: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["path", "reason"])
    )
    notes: tuple[str, ...] = ()
    # What must outlive the split: the temporary image folder of from_hf/from_torch(store=False).
    _keep: Any = field(default=None, repr=False, compare=False)

    # ------------------------------------------------------------------ views
    @property
    def task(self) -> str | None:
        """``"classification"``, ``"regression"`` or ``None`` (no targets)."""
        if self.images["label"].notna().any():
            return "classification"
        if self.images["target"].notna().any():
            return "regression"
        return None

    @property
    def n_train(self) -> int:
        return int((self.images["split"] == "train").sum())

    @property
    def n_val(self) -> int:
        return int((self.images["split"] == "val").sum())

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return (
            f"ImageSplit(root={str(self.root)!r}, n_train={self.n_train}, "
            f"n_val={self.n_val}, task={self.task!r}, ignored={len(self.ignored)})"
        )

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_folder(cls, root: str | os.PathLike) -> "ImageSplit":
        """Discover ``ROOT/train`` and ``ROOT/val`` (or valid/validation/test/dev).

        Each split folder is flat or has one sub-folder per class.
        """
        root_path = check_path("root", root)
        if not root_path.is_dir():
            raise LayoutError(
                f"root must be a directory with train/ and val/ folders; "
                f"got {str(root)!r}, which is not a directory"
            )
        entries = {p.name.lower(): p for p in sorted(root_path.iterdir()) if p.is_dir()}
        train = next((entries[n] for n in TRAIN_NAMES if n in entries), None)
        vals = [entries[n] for n in VAL_NAMES if n in entries]
        if train is None or not vals:
            found = sorted(p.name for p in entries.values())
            raise LayoutError(
                f"expected a training folder ({'/'.join(TRAIN_NAMES)}) and a "
                f"validation folder ({'/'.join(VAL_NAMES)}) under {str(root)!r}; "
                f"found folders {found or 'none'}. Pass --train DIR --val DIR or --manifest CSV."
            )
        notes = ()
        if len(vals) > 1:
            notes = (
                f"several validation folders found ({', '.join(v.name for v in vals)}); "
                f"using {vals[0].name!r} as validation",
            )
        return cls.from_dirs(train, vals[0], root=root_path, notes=notes)

    @classmethod
    def from_dirs(
        cls,
        train: str | os.PathLike,
        val: str | os.PathLike,
        *,
        root: str | os.PathLike | None = None,
        notes: Iterable[str] = (),
    ) -> "ImageSplit":
        """Build a split from an explicit training and validation folder."""
        train, val = check_path("train", train), check_path("val", val)
        for name, p in (("train", train), ("val", val)):
            if not p.is_dir():
                raise LayoutError(f"--{name} must be a directory; got {str(p)!r}")
        if root is None:
            root = Path(os.path.commonpath([os.path.abspath(train), os.path.abspath(val)]))
        root_s = os.path.abspath(root)
        rows: list[dict] = []
        ignored: list[tuple[str, str]] = []
        notes = list(notes)
        linked: list[tuple[str, str]] = []
        real_root = os.path.realpath(root_s)
        for split_name, folder in (("train", train), ("val", val)):
            folder_s = os.path.abspath(folder)
            files, skipped, outside = _walk(folder_s, real_root)
            ignored.extend((relative(p, root_s), r) for p, r in skipped)
            n_before = len(rows)
            # Every listed path starts with the folder (and the root): slice instead of relpath.
            in_folder = _prefix_len(folder_s)
            inside = folder_s == root_s or folder_s.startswith(root_s.rstrip(os.sep) + os.sep)
            in_root = _prefix_len(root_s) if inside else None
            for full in files:
                rel_to_split = full[in_folder:].split(os.sep)
                if not _is_image_name(full):
                    ignored.append((relative(full, root_s), "not an image file extension"))
                    continue
                label = rel_to_split[0] if len(rel_to_split) > 1 else None
                rel = (display_path(full[in_root:].replace(os.sep, "/")) if in_root is not None
                       else relative(full, root_s))
                if full in outside:
                    linked.append((rel, outside[full]))
                rows.append(
                    {
                        "path": rel,
                        "abspath": full,
                        "split": split_name,
                        "label": display_path(label) if label is not None else None,
                        "target": np.nan,
                        "group": None,
                    }
                )
            if len(rows) == n_before:
                notes.append(f"the {split_name} folder {relative(folder_s, root_s)!r} holds no images")
        if linked:
            notes.append(outside_note(linked, root_s))
        images = _frame(rows)
        labelled = images["label"].notna()
        if labelled.any() and not labelled.all():
            notes.append(
                f"{int((~labelled).sum())} images sit directly in a split folder "
                "beside class folders and have no label"
            )
        return cls._make(Table(Path(root_s), images, ignored, notes))

    @classmethod
    def from_manifest(
        cls,
        manifest: str | os.PathLike | pd.DataFrame,
        *,
        root: str | os.PathLike | None = None,
        path_col: str = "path",
        split_col: str = "split",
        label_col: str | None = "label",
        target_col: str | None = "target",
        group_col: str | None = "group",
    ) -> "ImageSplit":
        """Build a split from a manifest with ``path`` and ``split`` columns.

        ``label`` (class), ``target`` (numeric, regression) and ``group`` are
        optional. Relative paths are resolved against ``root`` (default: the
        manifest's folder, or the current directory for a DataFrame). Paths that
        leave the root, duplicate paths and unknown split names are errors. When
        ``root`` is given, a path that resolves outside it through a symlink is
        an error too; without it such paths are followed and listed in ``notes``.
        """
        return cls._make(read_manifest(manifest, root=root, path_col=path_col, split_col=split_col,
                                       label_col=label_col, target_col=target_col, group_col=group_col))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, root: str | os.PathLike | None = None, **kw) -> "ImageSplit":
        """Alias of :meth:`from_manifest` for a DataFrame."""
        return cls.from_manifest(frame, root=root, **kw)

    @classmethod
    def from_hf(cls, dataset_dict: Any, **kw) -> "ImageSplit":
        """Build a split from a Hugging Face ``DatasetDict`` (needs ``splitaudit[hf]``).

        See :func:`splitaudit.sources.read_hf` for the options (image/label/target
        columns, split names, where image bytes are stored).
        """
        from ..sources import read_hf

        return cls._make(read_hf(dataset_dict, **kw))

    @classmethod
    def from_torch(cls, train_ds: Any, val_ds: Any, **kw) -> "ImageSplit":
        """Build a split from two map-style torch datasets yielding ``(image, label)``.

        Tensors are CHW, float 0-1 or integer 0-255; see
        :func:`splitaudit.sources.read_torch`.
        """
        from ..sources import read_torch

        return cls._make(read_torch(train_ds, val_ds, **kw))

    @classmethod
    def _make(cls, table: Table) -> "ImageSplit":
        """The split of what a reader found: train rows first, each split sorted by path."""
        images = table.images
        order = images["split"].map({"train": 0, "val": 1})
        images = images.assign(_order=order).sort_values(["_order", "path"], kind="stable")
        images = images.drop(columns="_order").reset_index(drop=True)
        for col in ("label", "group"):
            values = images[col].astype(object)
            images[col] = pd.Series([None if pd.isna(v) else v for v in values], dtype=object)
        images["target"] = images["target"].astype(float)
        ign = pd.DataFrame(list(table.ignored), columns=["path", "reason"], dtype=object)
        return cls(root=table.root, images=images, ignored=ign, notes=tuple(table.notes), _keep=table.keep)
