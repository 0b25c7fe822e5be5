"""Read a manifest (a CSV file or a DataFrame with ``path`` and ``split`` columns) into a :class:`Table`.

The steps, in order: load the table, check its required columns, map the split
names, resolve the paths against the root (refusing paths that leave it), then
copy the optional ``label``/``target``/``group`` columns. A manifest is explicit:
every listed file is scanned whatever its extension, and the decoder reports the
ones that are not images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._validate import check_path
from ..errors import ManifestError
from ..sources.table import IMAGE_COLUMNS, SPLIT_ALIASES, Table, display_path, outside_note, relative, within

__all__ = ["read_manifest"]


def read_manifest(manifest: str | os.PathLike | pd.DataFrame, *, root: str | os.PathLike | None,
                  path_col: str, split_col: str, label_col: str | None, target_col: str | None,
                  group_col: str | None) -> Table:
    """The images of a manifest; see :meth:`splitaudit.dataset.ImageSplit.from_manifest`."""
    df, base, where = _load(manifest, root, path_col, split_col)
    _check_required(df, path_col, split_col, where)
    split = _splits(df[split_col], where)
    root_s = os.path.abspath(base)
    abspaths, rels, notes = _resolve_paths(df[path_col], root_s, where, root_given=root is not None)
    images = pd.DataFrame({"path": rels, "abspath": abspaths, "split": split.to_numpy(), "label": None,
                           "target": np.nan, "group": None}, columns=IMAGE_COLUMNS)
    _copy_optional(images, df, label_col, target_col, group_col, where)
    return Table(Path(root_s), images, [], notes)


def _load(manifest: str | os.PathLike | pd.DataFrame, root: str | os.PathLike | None, path_col: str,
          split_col: str) -> tuple[pd.DataFrame, Path, str]:
    """``(table, folder relative paths start from, how messages name the manifest)``."""
    if isinstance(manifest, pd.DataFrame):
        return manifest.copy(), Path(root) if root is not None else Path.cwd(), "the manifest DataFrame"
    mpath = check_path("manifest", manifest, "a CSV path or a pandas DataFrame")
    if not mpath.is_file():
        raise ManifestError(f"manifest must be a CSV file; {str(mpath)!r} does not exist")
    try:
        df = pd.read_csv(mpath, dtype={path_col: str, split_col: str}, keep_default_na=True)
    except Exception as exc:
        raise ManifestError(f"could not read manifest {str(mpath)!r} as CSV: {exc}") from exc
    return df, Path(root) if root is not None else mpath.parent, f"manifest {str(mpath)!r}"


def _check_required(df: pd.DataFrame, path_col: str, split_col: str, where: str) -> None:
    missing = [c for c in (path_col, split_col) if c not in df.columns]
    if missing:
        raise ManifestError(
            f"{where} needs columns {path_col!r} and {split_col!r}; "
            f"missing {missing}, found {list(df.columns)}"
        )
    if df[path_col].isna().any():
        rows = (np.flatnonzero(df[path_col].isna()) + 1).tolist()[:5]
        raise ManifestError(f"{where} has empty paths in data rows {rows}")


def _splits(values: pd.Series, where: str) -> pd.Series:
    """``"train"``/``"val"`` per row from any of the accepted split names."""
    split = values.astype(str).str.strip().str.lower().map(SPLIT_ALIASES)
    if split.isna().any():
        bad = sorted(set(values[split.isna()].astype(str)))[:5]
        raise ManifestError(f"{where}: unknown split names {bad}; expected one of {sorted(SPLIT_ALIASES)}")
    return split


def _resolve_paths(paths: pd.Series, root_s: str, where: str, *,
                   root_given: bool) -> tuple[list[str], list[str], list[str]]:
    """``(absolute paths, paths relative to the root, notes)``.

    A path that leaves the root, or that repeats another, is an error; so is one
    that resolves outside it through a symlink when the user named the root
    (without a root such paths are followed and named in a note).
    """
    real_root = os.path.realpath(root_s)
    abspaths, rels, bad_paths, linked = [], [], [], []
    for p in paths.astype(str):
        full = os.path.normpath(p if os.path.isabs(p) else os.path.join(root_s, p))
        if not full.startswith(root_s.rstrip(os.sep) + os.sep):  # the root itself is no file
            bad_paths.append(p)
            continue
        target = os.path.realpath(full)
        if not within(target, real_root):
            linked.append((relative(full, root_s), target))
        abspaths.append(full)
        rels.append(relative(full, root_s))
    if bad_paths:
        raise ManifestError(
            f"{where}: {len(bad_paths)} paths lie outside the root {root_s!r} "
            f"(e.g. {bad_paths[:3]}); give paths inside the root or pass root="
        )
    if linked and root_given:  # the user named a root: what is read must be inside it
        shown = ", ".join(f"{rel} -> {display_path(target)}" for rel, target in linked[:3])
        raise ManifestError(
            f"{where}: paths must resolve inside the root {root_s!r}; {len(linked)} lead outside it "
            f"through symlinks (e.g. {shown}); pass a root that holds their targets, or list the "
            "targets' paths"
        )
    dup = pd.Series(rels).duplicated(keep=False)
    if dup.any():
        raise ManifestError(
            f"{where}: {int(dup.sum())} rows repeat a path "
            f"(e.g. {sorted(set(pd.Series(rels)[dup]))[:3]}); each image must appear once"
        )
    return abspaths, rels, [outside_note(linked, root_s, manifest=True)] if linked else []


def _copy_optional(images: pd.DataFrame, df: pd.DataFrame, label_col: str | None, target_col: str | None,
                   group_col: str | None, where: str) -> None:
    """Fill ``label``, ``target`` and ``group`` of ``images`` from the manifest columns present."""
    if label_col and label_col in df.columns:
        images["label"] = [None if pd.isna(v) else str(v) for v in df[label_col]]
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
