"""The image store: encoded image bytes written once, named by content, outside the user's data.

A row of a ``DatasetDict`` or a torch dataset that is not a local file gets one:
``<sha1[:2]>/<sha1>.<ext>`` under ``images/`` in splitaudit's cache folder
(``~/.cache/splitaudit/images``), so a second scan of the same data writes
nothing and hits the fingerprint cache. Delete it at any time: it is rebuilt on
demand.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InputTypeError

__all__ = ["ImageStore", "default_cache_dir", "open_store", "store_for_cache"]

_MAGIC = ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"))


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/splitaudit`` or ``~/.cache/splitaudit``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "splitaudit"


def _ext_of(data: bytes, name: str | None) -> str:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    ext = os.path.splitext(name or "")[1].lower()
    return ext if ext and len(ext) <= 6 and ext[1:].isalnum() else ".img"


class ImageStore:
    """Content-addressed files; the n-th repeat of one content gets its own name
    (``<sha1>~n``) so that every row has its own path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen: Counter = Counter()
        self.written = 0

    def put(self, data: bytes, name: str | None = None) -> str:
        """Write ``data`` (unless its file is there already); return its path."""
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


def open_store(store: Any) -> tuple[ImageStore, Any]:
    """``(store, keepalive)``: ``None``/``True`` the default folder, a path that folder,
    ``False`` a temporary folder removed when ``keepalive`` is collected."""
    if store is False:
        tmp = tempfile.TemporaryDirectory(prefix="splitaudit-images-")
        return ImageStore(Path(tmp.name)), tmp
    if store is None or store is True:
        folder = default_cache_dir() / "images"
    elif isinstance(store, (str, os.PathLike)):
        folder = Path(store)
    else:
        raise InputTypeError(f"store must be None, True, False or a folder path; got {type(store).__name__}")
    folder.mkdir(parents=True, exist_ok=True)
    return ImageStore(folder.resolve()), None


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
