"""A persistent fingerprint cache in one SQLite file.

Why SQLite: it ships with Python, keeps everything in one file, and in WAL
mode lets several splitaudit runs read while one writes (writers queue
behind a busy timeout instead of corrupting anything). Each batch of results
is committed in its own transaction, so a run that is interrupted keeps every
committed batch and the next run computes only what is left.

The cache lives outside the data (default ``$XDG_CACHE_HOME/splitaudit/`` or
``~/.cache/splitaudit/``); a cache path inside the data root is refused, since
splitaudit never writes under the data.

A record is keyed by the absolute path (as bytes, so any file name works),
the file's size and ``mtime_ns``, and a version string holding the algorithm
version, the mode and the options that change results. A changed file (new
size or mtime) or another mode is a miss and is recomputed; its new record
replaces the old one. Records are plain data (JSON row, raw thumbnail bytes,
raw float32 descriptor), never pickles, so opening a cache cannot run code.

A cache is a copy of what the data already says, so damage is never fatal:
a file SQLite cannot read (garbage, truncated, another schema) is renamed to
``fingerprints.sqlite.corrupt-<time>`` beside it (never deleted) and a fresh
cache is built; ``notes`` says so. A record that does not parse (bad JSON,
wrong blob lengths) is a miss; :func:`~splitaudit.fingerprints.compute_fingerprints`
also checks each record's columns and the file's SHA-1 against the one the
record stores, so a valid-looking record of other content is recomputed.

Examples
--------
>>> from splitaudit.fingerprints import compute_fingerprints
>>> fps = compute_fingerprints(split, cache=True)      # doctest: +SKIP
>>> fps.stats["cached"]                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import InputError, InputTypeError
from ..sources.store import default_cache_dir

__all__ = ["FingerprintCache", "default_cache_dir", "open_cache"]

_FILE_NAME = "fingerprints.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    version    TEXT NOT NULL,
    abspath    BLOB NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    row        TEXT NOT NULL,
    thumb      BLOB NOT NULL,
    descriptor BLOB NOT NULL,
    PRIMARY KEY (version, abspath)
)
"""
_LOOKUP_BATCH = 500
_COLUMNS = ["version", "abspath", "size", "mtime_ns", "row", "thumb", "descriptor"]
_THUMB_BYTES = 32 * 32

Key = tuple[bytes, int, int]


def _inside(child: str, parent: str) -> bool:
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


class FingerprintCache:
    """SQLite-backed store of per-image fingerprint records.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A directory (the file ``fingerprints.sqlite`` is made in it) or a file
        path ending in ``.sqlite``/``.db``. Default: :func:`default_cache_dir`.
    timeout : float, default 60
        Seconds to wait for another run's write lock.

    Attributes
    ----------
    stats : dict
        Counters over this object's life: ``hits``, ``misses``, ``written``,
        ``malformed`` (records that did not parse and were treated as misses).
    notes : list of str
        What was done about damage (a cache file set aside and rebuilt).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, timeout: float = 60.0) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise InputTypeError(f"cache path must be a str or os.PathLike, got {type(path).__name__}")
        target = Path(path) if path is not None else default_cache_dir()
        if target.suffix.lower() not in (".sqlite", ".db", ".sqlite3"):
            target = target / _FILE_NAME
        self.path = target
        self.stats = {"hits": 0, "misses": 0, "written": 0, "malformed": 0}
        self.notes: list[str] = []
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"FingerprintCache({str(self.path)!r})"

    # -- connection -------------------------------------------------------
    @property
    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self._conn = self._connect()
            except sqlite3.DatabaseError as exc:
                self._set_aside(exc)
                self._conn = self._connect()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._timeout)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                conn.execute(_SCHEMA)
            found = [row[1] for row in conn.execute("PRAGMA table_info(fingerprints)")]
            if found != _COLUMNS:
                raise sqlite3.DatabaseError(f"table fingerprints has columns {found}, expected {_COLUMNS}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_aside(self, exc: sqlite3.DatabaseError) -> None:
        """Rename an unreadable cache file (and its WAL files) beside it; the next use starts afresh.

        A locked database is another run at work, not damage: that is an :class:`InputError`.
        """
        text = " ".join(str(exc).split())
        if "locked" in text or "busy" in text:
            raise InputError(f"cache: {str(self.path)!r} stayed locked by another run for "
                             f"{self._timeout:g} s ({text}); wait for it, or pass another --cache "
                             "folder (or --no-cache)") from exc
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            for suffix in ("", "-wal", "-shm"):
                source = Path(str(self.path) + suffix)
                if source.exists():
                    os.replace(source, str(aside) + suffix)
        except OSError as err:
            raise InputError(f"cache: {str(self.path)!r} is not a readable fingerprint cache ({text}) and "
                             f"could not be moved aside ({err.strerror}); delete it, or pass another "
                             "--cache folder (or --no-cache)") from exc
        self.notes.append(f"the fingerprint cache {str(self.path)!r} could not be read ({text}); it was "
                          f"moved to {str(aside)!r} (safe to delete) and rebuilt from the images")

    def _guarded(self, operation):
        """Run ``operation()``; on a damaged database, set the file aside and run it once more."""
        try:
            return operation()
        except sqlite3.DatabaseError as exc:
            self._set_aside(exc)
            return operation()

    def close(self) -> None:
        """Close the database connection (it reopens on next use)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "FingerprintCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- safety -----------------------------------------------------------
    def check_outside(self, roots: Iterable[str]) -> None:
        """Raise :class:`InputError` if the cache file would sit inside a data root."""
        for root in roots:
            if root and _inside(str(self.path.parent), str(root)):
                raise InputError(
                    f"cache: the cache file {str(self.path)!r} is inside the data root {str(root)!r}; "
                    "splitaudit never writes under the data. Pass a cache path outside it "
                    "(default: ~/.cache/splitaudit)."
                )

    # -- records ----------------------------------------------------------
    @staticmethod
    def keys_for(abspaths: Sequence[str]) -> list[Key | None]:
        """``(path bytes, size, mtime_ns)`` per file; ``None`` where stat fails."""
        keys: list[Key | None] = []
        for path in abspaths:
            try:
                info = os.stat(path)
            except OSError:
                keys.append(None)
                continue
            keys.append((os.fsencode(path), int(info.st_size), int(info.st_mtime_ns)))
        return keys

    def get_many(self, keys: Sequence[Key | None], version: str) -> dict[int, tuple]:
        """Records whose path, size and mtime all match, as ``{index: (row, thumb, descriptor)}``.

        Records that do not parse are left out (misses, counted in ``stats["malformed"]``).
        """
        found = self._guarded(lambda: self._get_many(keys, version))
        self.stats["hits"] += len(found)
        self.stats["misses"] += len(keys) - len(found)
        return found

    def _get_many(self, keys: Sequence[Key | None], version: str) -> dict[int, tuple]:
        wanted = {key[0]: (i, key) for i, key in enumerate(keys) if key is not None}
        found: dict[int, tuple] = {}
        paths = list(wanted)
        for start in range(0, len(paths), _LOOKUP_BATCH):
            part = paths[start : start + _LOOKUP_BATCH]
            marks = ",".join("?" * len(part))
            cursor = self.connection.execute(
                "SELECT abspath, size, mtime_ns, row, thumb, descriptor FROM fingerprints "
                f"WHERE version = ? AND abspath IN ({marks})",
                [version, *part],
            )
            for abspath, size, mtime_ns, row, thumb, descriptor in cursor:
                index, key = wanted.get(bytes(abspath) if isinstance(abspath, (bytes, memoryview)) else b"",
                                        (None, None))
                if key is None or (size, mtime_ns) != key[1:]:
                    continue
                record = _parse(row, thumb, descriptor)
                if record is None:
                    self.stats["malformed"] += 1
                    continue
                found[index] = record
        return found

    def put_many(self, items: Iterable[tuple[Key | None, tuple]], version: str) -> int:
        """Store records in one transaction; files that could not be stat-ed are skipped."""
        rows = [
            (version, key[0], key[1], key[2], json.dumps(record[0]),
             np.ascontiguousarray(record[1], dtype=np.uint8).tobytes(),
             np.ascontiguousarray(record[2], dtype=np.float32).tobytes())
            for key, record in items
            if key is not None
        ]
        def insert() -> None:
            with self.connection:
                self.connection.executemany(
                    "INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?, ?, ?, ?)", rows
                )

        self._guarded(insert)
        self.stats["written"] += len(rows)
        return len(rows)

    def count(self, version: str | None = None) -> int:
        """Number of stored records (of one version, or all)."""
        if version is None:
            query, args = "SELECT COUNT(*) FROM fingerprints", ()
        else:
            query, args = "SELECT COUNT(*) FROM fingerprints WHERE version = ?", (version,)
        return self._guarded(lambda: self.connection.execute(query, args).fetchone()[0])

    def clear(self) -> None:
        """Delete every record."""
        def delete() -> None:
            with self.connection:
                self.connection.execute("DELETE FROM fingerprints")

        self._guarded(delete)


def _parse(row: Any, thumb: Any, descriptor: Any) -> tuple | None:
    """``(row dict, thumb, descriptor)`` of one stored record, or ``None`` when it is malformed."""
    if not isinstance(thumb, bytes) or len(thumb) != _THUMB_BYTES:
        return None
    if not isinstance(descriptor, bytes) or len(descriptor) % 4:  # float32 (length: the caller's to check)
        return None
    try:
        values = json.loads(row)
    except (TypeError, ValueError):
        return None
    if not isinstance(values, dict):
        return None
    # read-only views of the fetched bytes: callers copy when they stack
    thumbs = np.frombuffer(thumb, dtype=np.uint8).reshape(32, 32)
    return values, thumbs, np.frombuffer(descriptor, dtype=np.float32)


def open_cache(cache: Any, *, roots: Sequence[str] = (), abspaths: Sequence[str] = ()) -> FingerprintCache | None:
    """Turn ``compute_fingerprints(cache=...)`` into a checked cache (or ``None``).

    ``cache`` may be ``None``/``False`` (no cache), ``True`` (default location),
    a path, or a :class:`FingerprintCache`. The cache must not sit inside a
    data root nor in any image's folder.
    """
    if cache is None or cache is False:
        return None
    if cache is True:
        store = FingerprintCache()
    elif isinstance(cache, FingerprintCache):
        store = cache
    elif isinstance(cache, (str, os.PathLike)):
        store = FingerprintCache(cache)
    else:
        raise InputTypeError(
            "cache must be None, True, a path or a FingerprintCache, "
            f"got {type(cache).__name__}"
        )
    folders = {os.path.dirname(p) for p in abspaths}
    store.check_outside([*roots, *sorted(folders)])
    return store
