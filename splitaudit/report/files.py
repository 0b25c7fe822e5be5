"""The files a scan writes: strict JSON and UTF-8 CSV, atomically (temp file + rename), never
inside the data root."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from .._parallel import forked_map, resolve_jobs, shared
from .._validate import check_path
from ..errors import InputError
from .html import render_scan_html

__all__ = ["SCAN_FILES", "write_json", "spreadsheet_safe", "write_csv", "refuse_inside_root",
           "write_scan_csvs", "write_scan_outputs"]

SCAN_FILES = {
    "summary": "summary.json",
    "duplicates": "duplicates.csv",
    "within": "within_duplicates.csv",
    "images": "images.csv",
    "unreadable": "unreadable.csv",
    "timings": "timings.json",
    "report": "report.html",
}


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write strict JSON (no NaN) atomically (temp file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters a spreadsheet may read as the start of a formula (CSV/formula injection)."""


def spreadsheet_safe(frame):
    """A copy of ``frame`` whose text cells cannot start a spreadsheet formula.

    A text cell (a label, a file name, a reason) that begins with one of
    :data:`FORMULA_STARTS` gets a leading ``'``, which spreadsheets read as
    "this is text". Numbers stay numbers (``-0.5`` in a numeric column is
    untouched); a text label ``-1`` becomes ``'-1``. Off by default: the CSVs
    are data for programs, and programs would read the ``'``.

    Examples
    --------
    >>> import pandas as pd
    >>> spreadsheet_safe(pd.DataFrame({"label": ["=1+1", "cat"], "score": [-1.0, 2.0]}))["label"].tolist()
    ["'=1+1", 'cat']
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if is_numeric_dtype(values) or is_bool_dtype(values):
            continue
        out[column] = pd.Series([("'" + v) if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v
                                 for v in values], index=out.index, dtype=object)
    return out


def write_csv(frame, path: str | os.PathLike, *, safe: bool = False) -> Path:
    """Write ``frame`` as UTF-8 CSV atomically (temp file + rename); ``safe``: :func:`spreadsheet_safe` first."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    (spreadsheet_safe(frame) if safe else frame).to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    os.replace(tmp, path)
    return path



def refuse_inside_root(out_dir: Path, root: Path) -> None:
    """Raise :class:`~splitaudit.errors.InputError` when ``out_dir`` is ``root`` or inside it
    (splitaudit never writes into the user's data)."""
    out_r, root_r = out_dir.resolve(), Path(root).resolve()
    if out_r == root_r or root_r in out_r.parents:
        raise InputError(
            f"--out must be outside the data root (splitaudit never writes into your data); "
            f"got {str(out_dir)!r} inside {str(root)!r}"
        )


def _out_folder(out_dir: Any, root: Path) -> Path:
    """``out_dir`` as a Path, refused inside ``root``, created when missing."""
    out = check_path("out_dir", out_dir)
    refuse_inside_root(out, root)
    out.mkdir(parents=True, exist_ok=True)
    return out


PARALLEL_ROWS = 50_000
"""Pair rows (cross + within) from which the outputs are written by two forked processes: on the 48k
split (304k within rows: a 92 MB CSV, 5.6 s; the HTML report 5.7 s) the two largest then overlap."""


def _frame(result: Any, kind: str) -> pd.DataFrame:
    return result.images() if kind == "images" else getattr(result, "pairs" if kind == "duplicates" else kind)


def _write_one(kinds: list[str]) -> list[tuple[str, Path]]:
    """Write the outputs ``kinds`` of the scan that :func:`~.._parallel.shared` holds (a worker's task)."""
    result, out, safe_csv = shared()
    written = []
    for kind in kinds:
        path = out / SCAN_FILES[kind]
        if kind == "report":
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(render_scan_html(result), encoding="utf-8")
            os.replace(tmp, path)
        else:
            write_csv(_frame(result, kind), path, safe=safe_csv)
        written.append((kind, path))
    return written


def _write(result: Any, out: Path, kinds: list[str], safe_csv: bool) -> dict[str, Path]:
    """Write ``kinds`` into ``out``; large scans in two forked processes, the largest files first
    (one file per task, so the within-split CSV and the report overlap). The files are the same."""
    rows = len(result.pairs) + len(result.within)
    jobs = min(2, resolve_jobs(None)) if rows >= PARALLEL_ROWS else 1
    order = sorted(kinds, key=["within", "report", "duplicates", "images", "unreadable"].index)
    return dict(forked_map(_write_one, [[kind] for kind in order], (result, out, safe_csv), jobs))


def write_scan_csvs(result: Any, out_dir: str | os.PathLike, *, safe_csv: bool = False) -> dict[str, Path]:
    """Write a scan's CSV files (duplicates, within, images, unreadable) into ``out_dir``."""
    out = _out_folder(out_dir, result.split.root)
    written = _write(result, out, ["duplicates", "within", "images", "unreadable"], safe_csv)
    return {kind: written[kind] for kind in ("duplicates", "within", "images", "unreadable")}


def write_scan_outputs(result: Any, out_dir: str | os.PathLike, *, html: bool = True,
                       safe_csv: bool = False) -> dict[str, Path]:
    """Write every scan output into ``out_dir`` and return {kind: path}.

    ``safe_csv``: text cells that a spreadsheet would read as a formula get a
    leading ``'`` (:func:`spreadsheet_safe`).
    """
    out = _out_folder(out_dir, result.split.root)
    summary = write_json(result.to_dict(), out / SCAN_FILES["summary"])
    written = _write(result, out, ["duplicates", "within", "images", "unreadable", *(["report"] if html else [])],
                     safe_csv)
    timings = write_json({"seconds": result.timings, "fingerprint_stats": getattr(result.fingerprints, "stats", {})},
                         out / SCAN_FILES["timings"])
    return {"summary": summary, **{k: written[k] for k in ("duplicates", "within", "images", "unreadable")},
            "timings": timings, **({"report": written["report"]} if html else {})}
