"""Writers for a scan's outputs: JSON, CSV and one self-contained HTML page.

Nothing in the library imports this package except lazily, from the
``save``/``to_html`` methods of results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .html import render_scan_html

__all__ = ["write_scan_outputs", "render_scan_html", "write_json", "refuse_inside_root"]

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


def _write_csv(frame, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    os.replace(tmp, path)
    return path


def refuse_inside_root(out_dir: Path, root: Path) -> None:
    from ..errors import InputError

    out_r, root_r = out_dir.resolve(), Path(root).resolve()
    if out_r == root_r or root_r in out_r.parents:
        raise InputError(
            f"--out must be outside the data root (splitaudit never writes into your data); "
            f"got {str(out_dir)!r} inside {str(root)!r}"
        )


def write_scan_outputs(result: Any, out_dir: str | os.PathLike, *, html: bool = True) -> dict[str, Path]:
    """Write every scan output into ``out_dir`` and return {kind: path}."""
    out = Path(out_dir)
    refuse_inside_root(out, result.split.root)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "summary": write_json(result.summary(), out / SCAN_FILES["summary"]),
        "duplicates": _write_csv(result.pairs, out / SCAN_FILES["duplicates"]),
        "within": _write_csv(result.within, out / SCAN_FILES["within"]),
        "images": _write_csv(result.images(), out / SCAN_FILES["images"]),
        "unreadable": _write_csv(result.unreadable, out / SCAN_FILES["unreadable"]),
        "timings": write_json({"seconds": result.timings,
                               "fingerprint_stats": getattr(result.fingerprints, "stats", {})},
                              out / SCAN_FILES["timings"]),
    }
    if html:
        path = out / SCAN_FILES["report"]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(render_scan_html(result), encoding="utf-8")
        os.replace(tmp, path)
        written["report"] = path
    return written
