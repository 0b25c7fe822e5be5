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

from .errors import LayoutError, ManifestError

__all__ = ["ImageSplit", "IMAGE_EXTENSIONS", "TRAIN_NAMES", "VAL_NAMES", "display_path"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
)
TRAIN_NAMES = ("train", "training")
VAL_NAMES = ("val", "valid", "validation", "test", "dev")
_SPLIT_ALIASES = {**{n: "train" for n in TRAIN_NAMES}, **{n: "val" for n in VAL_NAMES}}
IMAGE_COLUMNS = ["path", "abspath", "split", "label", "target", "group"]


def display_path(path: str) -> str:
    """Make a path printable: undecodable bytes become ``\\xNN`` escapes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace")


def _prefix_len(folder: str) -> int:
    """Length of ``folder`` plus its separator: ``path[n:]`` is then relative to it."""
    return len(folder) if folder.endswith(os.sep) else len(folder) + 1


def _frame(rows: list[dict]) -> pd.DataFrame:
    """The images table with object (Python str) columns: a file name that is not valid
    UTF-8 arrives as a str with surrogate escapes, which pandas' inferred (pyarrow)
    string dtype refuses."""
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS, dtype=object)


def _rel(path: str, root: str) -> str:
    return display_path(os.path.relpath(path, root).replace(os.sep, "/"))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


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
        folder_outside = real_root is not None and not _within(real, real_root)
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
                    if not _within(target, real_root):
                        outside[entry.path] = target
                elif folder_outside:
                    outside[entry.path] = os.path.join(real, entry.name)
        stack.extend(reversed(subdirs))
    return files, skipped, outside


def _outside_note(outside: list[tuple[str, str]], root: str, manifest: bool = False) -> str:
    """One note that counts and names (the first few) images reached through links leaving the root."""
    shown = ", ".join(f"{rel} -> {display_path(target)}" for rel, target in outside[:5])
    more = f" and {len(outside) - 5:,} more" if len(outside) > 5 else ""
    how = "paths" if manifest else "images"
    return (f"{len(outside):,} {how} resolve outside the root {display_path(root)!r} through symlinks and were "
            f"followed (their targets were read): {shown}{more}")


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
        root_path = Path(root)
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
        train, val = Path(train), Path(val)
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
            ignored.extend((_rel(p, root_s), r) for p, r in skipped)
            n_before = len(rows)
            # Every listed path starts with the folder (and the root): slice instead of relpath.
            in_folder = _prefix_len(folder_s)
            inside = folder_s == root_s or folder_s.startswith(root_s.rstrip(os.sep) + os.sep)
            in_root = _prefix_len(root_s) if inside else None
            for full in files:
                rel_to_split = full[in_folder:].split(os.sep)
                if not _is_image_name(full):
                    ignored.append((_rel(full, root_s), "not an image file extension"))
                    continue
                label = rel_to_split[0] if len(rel_to_split) > 1 else None
                rel = (display_path(full[in_root:].replace(os.sep, "/")) if in_root is not None
                       else _rel(full, root_s))
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
                notes.append(f"the {split_name} folder {_rel(folder_s, root_s)!r} holds no images")
        if linked:
            notes.append(_outside_note(linked, root_s))
        images = _frame(rows)
        labelled = images["label"].notna()
        if labelled.any() and not labelled.all():
            notes.append(
                f"{int((~labelled).sum())} images sit directly in a split folder "
                "beside class folders and have no label"
            )
        return cls._make(Path(root_s), images, ignored, notes)

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
        if isinstance(manifest, pd.DataFrame):
            df = manifest.copy()
            base = Path(root) if root is not None else Path.cwd()
            where = "the manifest DataFrame"
        else:
            mpath = Path(manifest)
            if not mpath.is_file():
                raise ManifestError(f"manifest must be a CSV file; {str(mpath)!r} does not exist")
            try:
                df = pd.read_csv(mpath, dtype={path_col: str, split_col: str}, keep_default_na=True)
            except Exception as exc:
                raise ManifestError(f"could not read manifest {str(mpath)!r} as CSV: {exc}") from exc
            base = Path(root) if root is not None else mpath.parent
            where = f"manifest {str(mpath)!r}"
        missing = [c for c in (path_col, split_col) if c not in df.columns]
        if missing:
            raise ManifestError(
                f"{where} needs columns {path_col!r} and {split_col!r}; "
                f"missing {missing}, found {list(df.columns)}"
            )
        if df[path_col].isna().any():
            rows = (np.flatnonzero(df[path_col].isna()) + 1).tolist()[:5]
            raise ManifestError(f"{where} has empty paths in data rows {rows}")
        split_raw = df[split_col].astype(str).str.strip().str.lower()
        split = split_raw.map(_SPLIT_ALIASES)
        if split.isna().any():
            bad = sorted(set(df[split_col][split.isna()].astype(str)))[:5]
            raise ManifestError(
                f"{where}: unknown split names {bad}; expected one of "
                f"{sorted(_SPLIT_ALIASES)}"
            )
        root_s = os.path.abspath(base)
        real_root = os.path.realpath(root_s)
        abspaths, rels, bad_paths, linked = [], [], [], []
        for p in df[path_col].astype(str):
            full = os.path.normpath(p if os.path.isabs(p) else os.path.join(root_s, p))
            if not full.startswith(root_s.rstrip(os.sep) + os.sep):  # the root itself is no file
                bad_paths.append(p)
                continue
            target = os.path.realpath(full)
            if not _within(target, real_root):
                linked.append((_rel(full, root_s), target))
            abspaths.append(full)
            rels.append(_rel(full, root_s))
        if bad_paths:
            raise ManifestError(
                f"{where}: {len(bad_paths)} paths lie outside the root {root_s!r} "
                f"(e.g. {bad_paths[:3]}); give paths inside the root or pass root="
            )
        if linked and root is not None:  # the user named a root: what is read must be inside it
            shown = ", ".join(f"{rel} -> {display_path(target)}" for rel, target in linked[:3])
            raise ManifestError(
                f"{where}: paths must resolve inside the root {root_s!r}; {len(linked)} lead outside it "
                f"through symlinks (e.g. {shown}); pass a root that holds their targets, or list the "
                "targets' paths"
            )
        notes = [_outside_note(linked, root_s, manifest=True)] if linked else []
        dup = pd.Series(rels).duplicated(keep=False)
        if dup.any():
            raise ManifestError(
                f"{where}: {int(dup.sum())} rows repeat a path "
                f"(e.g. {sorted(set(pd.Series(rels)[dup]))[:3]}); each image must appear once"
            )
        images = pd.DataFrame(
            {
                "path": rels,
                "abspath": abspaths,
                "split": split.to_numpy(),
                "label": None,
                "target": np.nan,
                "group": None,
            },
            columns=IMAGE_COLUMNS,
        )
        if label_col and label_col in df.columns:
            lab = df[label_col]
            images["label"] = [None if pd.isna(v) else str(v) for v in lab]
        if target_col and target_col in df.columns:
            tgt = pd.to_numeric(df[target_col], errors="coerce")
            bad = tgt.isna() & df[target_col].notna()
            if bad.any():
                raise ManifestError(
                    f"{where}: column {target_col!r} must be numeric; "
                    f"got e.g. {df[target_col][bad].astype(str).tolist()[:3]}"
                )
            images["target"] = tgt.to_numpy(dtype=float)
        if group_col and group_col in df.columns:
            images["group"] = [None if pd.isna(v) else str(v) for v in df[group_col]]
        # A manifest is explicit: every listed file is scanned whatever its
        # extension, and the decoder reports the ones that are not images.
        return cls._make(Path(root_s), images, [], notes)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, root: str | os.PathLike | None = None, **kw) -> "ImageSplit":
        """Alias of :meth:`from_manifest` for a DataFrame."""
        return cls.from_manifest(frame, root=root, **kw)

    @classmethod
    def from_hf(cls, dataset_dict: Any, **kw) -> "ImageSplit":
        """Build a split from a Hugging Face ``DatasetDict`` (needs ``splitaudit[hf]``).

        See :func:`splitaudit.sources.from_hf` for the options (image/label/target
        columns, split names, where image bytes are stored).
        """
        from .sources import from_hf

        return from_hf(dataset_dict, **kw)

    @classmethod
    def from_torch(cls, train_ds: Any, val_ds: Any, **kw) -> "ImageSplit":
        """Build a split from two map-style torch datasets yielding ``(image, label)``.

        Tensors are CHW, float 0-1 or integer 0-255; see
        :func:`splitaudit.sources.from_torch`.
        """
        from .sources import from_torch

        return from_torch(train_ds, val_ds, **kw)

    @classmethod
    def _make(cls, root: Path, images: pd.DataFrame, ignored, notes) -> "ImageSplit":
        order = images["split"].map({"train": 0, "val": 1})
        images = images.assign(_order=order).sort_values(["_order", "path"], kind="stable")
        images = images.drop(columns="_order").reset_index(drop=True)
        for col in ("label", "group"):
            values = images[col].astype(object)
            images[col] = pd.Series([None if pd.isna(v) else v for v in values], dtype=object)
        images["target"] = images["target"].astype(float)
        ign = pd.DataFrame(list(ignored), columns=["path", "reason"], dtype=object)
        return cls(root=root, images=images, ignored=ign, notes=tuple(notes))
