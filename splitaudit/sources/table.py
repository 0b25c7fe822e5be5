"""The images table every reader fills: its columns, the split names, printable paths.

Each way in (folders, a manifest, a ``DatasetDict``, torch datasets) reads its
input into a :class:`Table`; :class:`~splitaudit.dataset.ImageSplit` wraps it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["IMAGE_COLUMNS", "SPLIT_ALIASES", "TRAIN_NAMES", "VAL_NAMES", "Table", "display_path",
           "outside_note", "relative", "within"]

TRAIN_NAMES = ("train", "training")
VAL_NAMES = ("val", "valid", "validation", "test", "dev")
SPLIT_ALIASES = {**{n: "train" for n in TRAIN_NAMES}, **{n: "val" for n in VAL_NAMES}}
IMAGE_COLUMNS = ["path", "abspath", "split", "label", "target", "group"]


@dataclass
class Table:
    """What a reader found: the images table and what goes with it.

    Attributes
    ----------
    root : Path
        The folder the ``path`` column is relative to.
    images : pandas.DataFrame
        One row per image with :data:`IMAGE_COLUMNS`.
    ignored : list of (path, reason)
        Files passed over.
    notes : list of str
        What the reader decided for the user (which folder is validation, ...).
    keep : Any
        What must live as long as the split (a temporary image folder), or None.
    """

    root: Path
    images: pd.DataFrame
    ignored: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    keep: Any = None


def display_path(path: str) -> str:
    """Make a path printable: undecodable bytes become ``\\xNN`` escapes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        raw = path.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace")


def relative(path: str, root: str) -> str:
    """``path`` relative to ``root`` with forward slashes, printable."""
    return display_path(os.path.relpath(path, root).replace(os.sep, "/"))


def within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies under it (both already resolved)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def outside_note(outside: list[tuple[str, str]], root: str, manifest: bool = False) -> str:
    """One note that counts and names (the first few) images reached through links leaving the root."""
    shown = ", ".join(f"{rel} -> {display_path(target)}" for rel, target in outside[:5])
    more = f" and {len(outside) - 5:,} more" if len(outside) > 5 else ""
    how = "paths" if manifest else "images"
    return (f"{len(outside):,} {how} resolve outside the root {display_path(root)!r} through symlinks and were "
            f"followed (their targets were read): {shown}{more}")
