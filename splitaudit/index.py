"""Incremental use: save an index of a training set, check new images against it.

A :class:`TrainingIndex` keeps what the duplicate search needs of the
training images (hashes, thumbnails, descriptors, embeddings when present)
plus their relative paths and labels. :meth:`TrainingIndex.check`
fingerprints new images with the same mode and runs the very same candidate
search and verification as a scan (:func:`splitaudit.duplicates.find_duplicates`,
new images in the role of the validation split, no within-split search), so a
match here is a match there.

On disk an index is a folder with ``index.npz`` (arrays) and ``index.json``
(format version, fingerprint algorithm, mode, model, counts).

Examples
--------
>>> from splitaudit import scan
>>> from splitaudit.index import TrainingIndex
>>> index = TrainingIndex.from_scan(scan("data"))              # doctest: +SKIP
>>> index.save("train-index")                                   # doctest: +SKIP
>>> TrainingIndex.load("train-index").check("incoming/")        # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ._types import Progress
from ._version import __version__ as _version
from .dataset import ImageSplit, _is_image_name
from ._validate import check_path
from .errors import InputError, InputTypeError, LayoutError
from .fingerprints import ALGORITHM_VERSION, Fingerprints
from .duplicates.params import checked_duplicate_options
from .duplicates.result import PAIR_COLUMNS
from .fingerprints.local import DESCRIPTOR_BYTES, LocalFeatures

__all__ = ["TrainingIndex", "INDEX_FORMAT", "MATCH_COLUMNS"]

INDEX_FORMAT = 1
"""Bump when the on-disk layout changes."""
_RENAME = {"val_path": "new_path", "val_index": "new_index", "val_label": "new_label"}
MATCH_COLUMNS = [_RENAME.get(col, col) for col in PAIR_COLUMNS]
"""The columns of :meth:`TrainingIndex.check`: :data:`~splitaudit.duplicates.result.PAIR_COLUMNS`
with the val image called the new image."""


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with the fields of an ``index.json`` (``None`` when nothing)."""
    if meta.get("mode") not in ("fast", "exact"):
        return f"mode must be 'fast' or 'exact', found {meta.get('mode')!r}"
    for key in ("columns", "object_columns"):
        value = meta.get(key)
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            return f"{key!r} must be a list of column names, found {type(value).__name__}"
    if "path" not in meta["columns"]:
        return "'columns' must include 'path'"
    n = meta.get("n_images")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        return f"'n_images' must be a count, found {n!r}"
    if meta.get("root") is not None and not isinstance(meta["root"], str):
        return f"'root' must be a path, found {type(meta['root']).__name__}"
    return None


def _read_arrays(npz: Path, meta: dict) -> tuple[Fingerprints, np.ndarray, np.ndarray | None]:
    """The fingerprints, labels and embeddings stored in ``index.npz``, checked against ``meta``."""
    n = meta["n_images"]
    with np.load(npz, allow_pickle=False) as data:
        columns = {}
        for col in meta["columns"]:
            values = data[f"col:{col}"]
            if values.shape != (n,):
                raise InputError(f"column {col!r} has shape {values.shape}, expected ({n},)")
            if col in meta["object_columns"]:
                obj = values.astype(object)
                obj[data[f"none:{col}"].astype(bool)] = None
                values = obj
            columns[col] = values
        labels = data["labels"].astype(object)
        labels[data["labels_none"].astype(bool)] = None
        thumbs, descriptor = data["thumbs"], data["descriptor"]
        if thumbs.shape != (n, 32, 32) or thumbs.dtype != np.uint8:
            raise InputError(f"thumbs must be uint8 ({n}, 32, 32), found {thumbs.dtype} {thumbs.shape}")
        if descriptor.ndim != 2 or len(descriptor) != n:
            raise InputError(f"descriptor must have {n} rows, found shape {descriptor.shape}")
        local = None
        if "local_offsets" in data.files:
            local = LocalFeatures(offsets=data["local_offsets"], xy=data["local_xy"], size=data["local_size"],
                                  desc=data["local_desc"])
            m = int(local.offsets[-1]) if len(local.offsets) else -1
            if (local.offsets.shape != (n + 1,) or local.size.shape != (n, 2) or local.xy.shape != (m, 2)
                    or local.desc.shape != (m, DESCRIPTOR_BYTES) or (np.diff(local.offsets) < 0).any()):
                raise InputError("keypoint arrays do not match each other or the images")
        fp = Fingerprints(table=pd.DataFrame(columns, columns=meta["columns"]), thumbs=thumbs,
                          descriptor=descriptor, mode=meta["mode"], stats={"total": n}, local=local)
        emb = data["embeddings"] if meta.get("has_embeddings") else None
    return fp, labels, emb


def _features_of(local: LocalFeatures, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image ``i``'s ``(xy, size, desc)``, as :meth:`LocalFeatures.from_parts` takes them."""
    xy, desc = local.of(i)
    return xy, local.size[i], desc


def _stack_local(first: LocalFeatures | None, second: LocalFeatures | None) -> LocalFeatures | None:
    """Keypoints of the index's images followed by the new images' (None if either lacks them)."""
    if first is None or second is None:
        return None
    return LocalFeatures(offsets=np.concatenate([first.offsets, second.offsets[1:] + first.offsets[-1]]),
                         xy=np.concatenate([first.xy, second.xy]), size=np.concatenate([first.size, second.size]),
                         desc=np.concatenate([first.desc, second.desc]))


def _inside(child: Path, parent: Path) -> bool:
    child, parent = child.resolve(), parent.resolve()
    return child == parent or parent in child.parents


@dataclass(frozen=True)
class TrainingIndex:
    """Fingerprints of a training set, to check new images against.

    Attributes
    ----------
    fingerprints : Fingerprints
        Readable training images only; ``table["path"]`` relative to ``root``.
    labels : numpy.ndarray of object
        Class label per row (None when unlabelled).
    embeddings : numpy.ndarray or None
        (N, D) unit-norm embeddings, when the scan computed them.
    model : str or None
        What produced ``embeddings`` (e.g. ``"default"``).
    root : str or None
        The data root; an index is never saved inside it.
    """

    fingerprints: Fingerprints
    labels: np.ndarray = field(repr=False)
    embeddings: np.ndarray | None = field(default=None, repr=False)
    model: str | None = None
    root: str | None = None

    def __post_init__(self) -> None:
        n = len(self.fingerprints.table)
        if len(self.labels) != n or len(self.fingerprints.thumbs) != n:
            raise InputError(f"labels and thumbs must have one row per fingerprint ({n}); got "
                             f"{len(self.labels)} labels and {len(self.fingerprints.thumbs)} thumbs")
        if self.embeddings is not None and (self.embeddings.ndim != 2 or len(self.embeddings) != n):
            raise InputError(f"embeddings must be an (N, D) array with N={n}; got shape {self.embeddings.shape}")

    def __len__(self) -> int:
        return len(self.fingerprints.table)

    @property
    def mode(self) -> str:
        """The fingerprint mode new images are computed with."""
        return self.fingerprints.mode

    # ------------------------------------------------------------ building
    @classmethod
    def from_fingerprints(cls, fingerprints: Fingerprints, images: pd.DataFrame, *,
                          embeddings: np.ndarray | None = None, model: str | None = None,
                          root: str | os.PathLike | None = None, split: str | None = "train") -> "TrainingIndex":
        """Index the rows of ``images`` whose ``split`` is ``split`` (all rows when None)
        and that could be read.

        Parameters
        ----------
        fingerprints : Fingerprints
            One row per row of ``images``, in the same order.
        images : pandas.DataFrame
            ``split.images`` (``path``, optional ``split`` and ``label``).
        embeddings : array (N, D), optional
        model : str, optional
            What produced the embeddings (recorded, compared on load).
        root : path, optional
            The data root (an index is never written inside it).
        """
        if not isinstance(fingerprints, Fingerprints):
            raise InputTypeError(f"fingerprints must be a Fingerprints object; got {type(fingerprints).__name__}")
        if not isinstance(images, pd.DataFrame) or "path" not in images.columns:
            raise InputTypeError("images must be a pandas DataFrame with a path column (split.images); "
                            f"got {type(images).__name__}")
        if len(images) != len(fingerprints.table):
            raise InputError(f"fingerprints must have one row per image: images has {len(images)} rows, "
                             f"fingerprints {len(fingerprints.table)}")
        keep = fingerprints.table["ok"].to_numpy(bool).copy()
        if split is not None:
            if "split" not in images.columns:
                raise InputError(f"split={split!r} needs a split column in images")
            keep &= images["split"].to_numpy() == split
        rows = np.flatnonzero(keep)
        table = fingerprints.table.iloc[rows].reset_index(drop=True)
        table["path"] = images["path"].to_numpy(object)[rows]
        local = fingerprints.local
        if local is not None:
            local = LocalFeatures.from_parts([_features_of(local, i) for i in rows])
        fp = Fingerprints(table=table, thumbs=fingerprints.thumbs[rows],
                          descriptor=fingerprints.descriptor[rows], mode=fingerprints.mode,
                          stats={"total": len(rows)}, local=local)
        labels = (images["label"].to_numpy(object)[rows] if "label" in images.columns
                  else np.full(len(rows), None, object))
        labels = np.array([None if pd.isna(v) else str(v) for v in labels] + [None], object)[:-1]
        emb = None if embeddings is None else np.asarray(embeddings, np.float32)[rows]
        return cls(fingerprints=fp, labels=labels, embeddings=emb, model=model,
                   root=None if root is None else str(root))

    @classmethod
    def from_scan(cls, result: Any, *, split: str | None = "train") -> "TrainingIndex":
        """Index the training images of a :class:`~splitaudit.scan.ScanResult`."""
        for attr in ("fingerprints", "split"):
            if not hasattr(result, attr):
                raise InputTypeError(f"result must be a ScanResult; got {type(result).__name__} without .{attr}")
        model = None
        if result.embeddings is not None:
            model = str(result.options.get("embed", "default"))
            model = "default" if model == "auto" else model
        return cls.from_fingerprints(result.fingerprints, result.split.images, embeddings=result.embeddings,
                                     model=model, root=result.split.root, split=split)

    @classmethod
    def build(cls, source: Any, *, mode: str = "fast", jobs: int | None = None, cache: Any = None,
              client: Any = None, progress: Progress | None = None) -> "TrainingIndex":
        """Fingerprint and index training images (no duplicate search, no checks).

        Parameters
        ----------
        source : ImageSplit or folder
            An ImageSplit, or a folder with ``train/`` and ``val/`` (its
            training images are indexed); any other folder has all its
            images indexed, paths relative to it.
        mode, jobs, cache, client, progress
            As in :func:`~splitaudit.fingerprints.compute_fingerprints`.
        """
        from .fingerprints import compute_fingerprints

        split = source
        if isinstance(source, (str, os.PathLike)):
            folder = Path(source)
            if not folder.is_dir():
                raise InputError(f"source must be an ImageSplit or a folder; {str(folder)!r} is not a folder")
            try:
                split = ImageSplit.from_folder(folder)
            except LayoutError:  # not a train/val layout: index every image under it
                paths = sorted(p for p in folder.rglob("*") if p.is_file() and _is_image_name(str(p)))
                fps = compute_fingerprints([str(p) for p in paths], mode=mode, jobs=jobs, cache=cache,
                                           client=client, progress=progress)
                images = pd.DataFrame({"path": [p.relative_to(folder).as_posix() for p in paths]})
                return cls.from_fingerprints(fps, images, root=folder, split=None)
        if not isinstance(split, ImageSplit):
            raise InputTypeError(f"source must be an ImageSplit or a folder; got {type(source).__name__}")
        fps = compute_fingerprints(split, mode=mode, jobs=jobs, cache=cache, client=client, progress=progress)
        return cls.from_fingerprints(fps, split.images, root=split.root)

    # ------------------------------------------------------------ disk
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``index.npz`` and ``index.json`` into folder ``path`` (created).

        Raises InputError (a ValueError) when ``path`` lies inside the data root.
        """
        folder = check_path("path", path)
        if self.root is not None and _inside(folder, Path(self.root)):
            raise InputError(f"path must be outside the data root {self.root!r} (splitaudit never "
                             f"writes there); got {str(folder)!r}")
        folder.mkdir(parents=True, exist_ok=True)
        table = self.fingerprints.table
        arrays: dict[str, np.ndarray] = {"thumbs": self.fingerprints.thumbs,
                                         "descriptor": self.fingerprints.descriptor}
        objects = []
        for col in table.columns:
            values = table[col].to_numpy()
            if values.dtype == object:
                objects.append(col)
                missing = pd.isna(table[col]).to_numpy(bool)
                arrays[f"col:{col}"] = np.array(["" if m else str(v) for v, m in zip(values, missing)], dtype=str)
                arrays[f"none:{col}"] = missing
            else:
                arrays[f"col:{col}"] = values
        missing = np.array([v is None for v in self.labels], bool)
        arrays["labels"] = np.array(["" if m else str(v) for v, m in zip(self.labels, missing)], dtype=str)
        arrays["labels_none"] = missing
        if self.embeddings is not None:
            arrays["embeddings"] = self.embeddings
        local = self.fingerprints.local
        if local is not None:  # keypoints, so check-new finds crops, rotations and overlays as scan does
            arrays.update(local_offsets=local.offsets, local_xy=local.xy, local_size=local.size,
                          local_desc=local.desc)
        np.savez(folder / "index.npz", **arrays)
        meta = {"format": INDEX_FORMAT, "algorithm": ALGORITHM_VERSION, "mode": self.mode,
                "model": self.model, "root": self.root, "n_images": len(self),
                "columns": list(table.columns), "object_columns": objects,
                "has_embeddings": self.embeddings is not None, "splitaudit_version": _version}
        (folder / "index.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike, *, mode: str | None = None) -> "TrainingIndex":
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : folder
        mode : {"fast", "exact"}, optional
            When given, the index must have been built in this mode.
        """
        folder = Path(path)
        meta_file = folder / "index.json"
        if not meta_file.is_file() or not (folder / "index.npz").is_file():
            raise InputError(f"path must be a folder written by TrainingIndex.save (index.json + "
                             f"index.npz); got {str(folder)!r}")
        rebuild = ("rebuild it with check-new --build TRAIN --index "
                   f"{str(folder)!r} (or TrainingIndex.build(...).save(...))")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InputError(f"index file {str(meta_file)!r} must be the JSON TrainingIndex.save writes; it "
                             f"cannot be read ({' '.join(str(exc).split())[:160]}); {rebuild}") from exc
        if not isinstance(meta, dict):
            raise InputError(f"index file {str(meta_file)!r} must hold a JSON object; found "
                             f"{type(meta).__name__}; {rebuild}")
        if meta.get("format") != INDEX_FORMAT:
            raise InputError(f"index format {meta.get('format')!r} is not supported (this splitaudit reads "
                             f"format {INDEX_FORMAT}); rebuild the index")
        if meta.get("algorithm") != ALGORITHM_VERSION:
            raise InputError(f"index was built with fingerprint algorithm {meta.get('algorithm')!r}; this "
                             f"splitaudit computes {ALGORITHM_VERSION!r}, so hashes would not compare. "
                             "Rebuild the index (TrainingIndex.build, or check-new --build TRAIN).")
        problem = _meta_problem(meta)
        if problem:
            raise InputError(f"index file {str(meta_file)!r} is damaged: {problem}; {rebuild}")
        if mode is not None and meta["mode"] != mode:
            raise InputError(f"index was built in mode {meta['mode']!r}, asked for mode {mode!r}; "
                             "hashes of different modes never compare")
        npz = folder / "index.npz"
        try:
            fp, labels, emb = _read_arrays(npz, meta)
            index = cls(fingerprints=fp, labels=labels, embeddings=emb, model=meta.get("model"),
                        root=meta.get("root"))
        except Exception as exc:  # zip, npy, key, shape or dtype damage: all mean "rebuild"
            text = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            raise InputError(f"index file {str(npz)!r} is damaged or does not match {str(meta_file)!r} "
                             f"({text}); {rebuild}") from exc
        return index


    # ------------------------------------------------------------ checking
    def check(
        self,
        paths_or_split: Any,
        *,
        embeddings: np.ndarray | None = None,
        jobs: int | None = None,
        cache: Any = None,
        client: Any = None,
        progress: Progress | None = None,
        **duplicate_options: Any,
    ) -> pd.DataFrame:
        """Find training images that new images duplicate.

        Parameters
        ----------
        paths_or_split : folder, sequence of paths, ImageSplit or Fingerprints
            The new images. A folder is searched recursively for image
            files; when every one sits in a subfolder directly below it
            (``NEW/<class>/<file>``, the class-folder layout), the subfolder
            name is its label, so label conflicts are found as in a scan.
            An ImageSplit contributes all its images (and labels);
            Fingerprints must be in the index's mode.
        embeddings : array (M, D), optional
            Embeddings of the new images (same model as the index). Without
            them, an index with embeddings computes them when its model is
            the default one; otherwise only hashes and thumbnails are used.
        jobs, cache, client, progress
            As in :func:`~splitaudit.fingerprints.compute_fingerprints`.
        **duplicate_options
            Passed to :func:`~splitaudit.duplicates.find_duplicates`
            (``hash_radius``, ``min_score``, ``backend``, ...).

        Returns
        -------
        pandas.DataFrame
            One row per (new image, training image) match, columns
            :data:`MATCH_COLUMNS` (best score first); ``new_index`` is the
            row of the new image in the input, ``train_index`` the row in
            the index. ``attrs["unreadable"]`` lists new files that could
            not be read, with the reason; ``attrs["n_new"]`` counts inputs.
        """
        from .duplicates import find_duplicates

        if "within" in duplicate_options:
            raise InputError("within is not an option of check (new images are only compared with the index)")
        duplicate_options = checked_duplicate_options("duplicate_options", duplicate_options)
        new_fp, new_paths, new_labels = self._fingerprint_new(paths_or_split, jobs=jobs, cache=cache,
                                                              client=client, progress=progress)
        n_train, n_new = len(self), len(new_fp.table)
        emb = self._new_embeddings(paths_or_split, embeddings, n_new, progress)
        t_new = new_fp.table.copy()
        t_new["path"] = new_paths
        table = pd.concat([self.fingerprints.table, t_new[self.fingerprints.table.columns]],
                          ignore_index=True)
        combined = Fingerprints(table=table,
                                thumbs=np.concatenate([self.fingerprints.thumbs, new_fp.thumbs]),
                                descriptor=np.concatenate([self.fingerprints.descriptor, new_fp.descriptor]),
                                mode=self.mode, local=_stack_local(self.fingerprints.local, new_fp.local))
        # files the tile check reads again: the index's relative to its root, the new ones as given
        train_files = [p if self.root is None else os.path.join(self.root, p)
                       for p in self.fingerprints.table["path"]]
        new_files = (list(paths_or_split.images["abspath"]) if isinstance(paths_or_split, ImageSplit)
                     and "abspath" in paths_or_split.images.columns else list(new_paths))
        images = pd.DataFrame({
            "path": table["path"].to_numpy(object),
            "abspath": np.array(train_files + new_files, object),
            "split": np.array(["train"] * n_train + ["val"] * n_new, object),
            "label": np.concatenate([self.labels, np.asarray(new_labels, object)]),
        })
        all_emb = None if emb is None else np.concatenate([self.embeddings, emb])
        result = find_duplicates(combined, images, embeddings=all_emb, within=False, progress=progress,
                                 **duplicate_options)
        out = result.pairs.rename(columns=_RENAME)
        out["new_index"] = out["new_index"].to_numpy(np.int64) - n_train
        out = out[MATCH_COLUMNS].reset_index(drop=True)
        bad = new_fp.table[~new_fp.table["ok"].to_numpy(bool)]
        out.attrs["unreadable"] = [{"path": p, "reason": r} for p, r in
                                   zip(np.asarray(new_paths, object)[bad.index], bad["reason"])]
        out.attrs["n_new"] = n_new
        out.attrs["params"] = result.params
        return out

    def _fingerprint_new(self, source, *, jobs, cache, client, progress):
        from .fingerprints import compute_fingerprints

        if isinstance(source, Fingerprints):
            if source.mode != self.mode:
                raise InputError(f"fingerprints must be in the index's mode {self.mode!r}; got mode "
                                 f"{source.mode!r} (hashes of different modes never compare)")
            return source, list(source.table["path"]), [None] * len(source.table)
        if isinstance(source, ImageSplit):
            labels = (source.images["label"].to_numpy(object) if "label" in source.images.columns
                      else [None] * len(source))
            labels = [None if pd.isna(v) else str(v) for v in labels]
            fp = compute_fingerprints(source, mode=self.mode, jobs=jobs, cache=cache, progress=progress,
                                      client=client)
            return fp, list(source.images["path"]), labels
        if isinstance(source, (str, os.PathLike)):
            folder = Path(source)
            if not folder.is_dir():
                raise InputError(f"paths_or_split must be a folder, a list of paths, an ImageSplit or "
                                 f"Fingerprints; {str(folder)!r} is not a folder")
            files = sorted(p for p in folder.rglob("*") if p.is_file() and _is_image_name(str(p)))
            paths = [str(p) for p in files]
            depth = {len(p.relative_to(folder).parts) for p in files}
            labels = [p.parent.name for p in files] if depth == {2} else [None] * len(files)  # NEW/<class>/<file>
            fp = compute_fingerprints(paths, mode=self.mode, jobs=jobs, cache=cache, progress=progress,
                                      client=client)
            return fp, list(fp.table["path"]), labels
        elif isinstance(source, Sequence) and not isinstance(source, bytes):
            paths = [os.fspath(p) for p in source]
        else:
            raise InputTypeError(f"paths_or_split must be a folder, a list of paths, an ImageSplit or "
                            f"Fingerprints; got {type(source).__name__}")
        fp = compute_fingerprints(paths, mode=self.mode, jobs=jobs, cache=cache, progress=progress,
                                  client=client)
        return fp, list(fp.table["path"]), [None] * len(paths)

    def _new_embeddings(self, source, embeddings, n_new, progress):
        if self.embeddings is None:
            if embeddings is not None:
                raise InputError("embeddings were given but the index has none; rebuild it from a scan "
                                 "with embeddings or leave embeddings out")
            return None
        if embeddings is not None:
            emb = np.asarray(embeddings, np.float32)
            if emb.shape != (n_new, self.embeddings.shape[1]):
                raise InputError(f"embeddings must have shape ({n_new}, {self.embeddings.shape[1]}); "
                                 f"got {emb.shape}")
            return emb
        if self.model != "default" or isinstance(source, Fingerprints):
            return None  # cannot reproduce the model here: hashes and thumbnails only
        from .fingerprints.embeddings import embed_images

        return np.asarray(embed_images(source, model="default", progress=progress).vectors, np.float32)
