"""An audit's outputs: the full page (the scan report plus k-fold and explain sections), its
notebook display and the files :meth:`~splitaudit.audit.AuditResult.save` writes."""

from __future__ import annotations

import base64
import os
import tempfile
from html import escape
from pathlib import Path
from typing import Any

from .html import _table, render_scan_html, render_scan_notebook
from .files import write_json, write_scan_outputs


def _png_uri(write_png) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plot.png"
        try:
            write_png(path)
        except ValueError:
            return ""
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _kfold_section(kfold: Any) -> str:
    v = kfold.verdict
    frame = kfold.to_frame().drop(columns=["fold"])
    uri = _png_uri(kfold.plot)
    plot = f"<div class='plots'><img src='{uri}' alt='k-fold loss curves'></div>" if uri else ""
    return (
        f"<p><b>{escape(v.message)}</b></p>"
        f"<p class='small'>persists: {escape(str(v.persists))} · folds with val &lt; train: "
        f"{v.n_folds_val_lower}/{v.n_folds} · mean gap {v.mean_gap:.4g} "
        f"[{v.ci_low:.4g}, {v.ci_high:.4g}] · original split at the "
        f"{v.percentile_of_original:.0f}th percentile</p>"
        + _table(frame) + plot
    )


def _explain_section(expl: Any) -> str:
    rows = []
    for rank, c in enumerate(expl.causes, 1):
        score = f"{c['score']:.2f}" if c.get("known", True) else "unknown"
        evidence = escape(str({k: v for k, v in c.get("evidence", {}).items()})[:600])
        rows.append(f"<tr><td>{rank}</td><td>{escape(c['cause'])}</td><td>{score}</td>"
                    f"<td>{escape(str(c.get('advice', '')))}<details><summary class='small'>evidence</summary>"
                    f"<pre>{evidence}</pre></details></td></tr>")
    uri = _png_uri(expl.plot)
    plot = f"<div class='plots'><img src='{uri}' alt='loss curves with shifted train loss'></div>" if uri else ""
    return (f"<p><b>{escape(expl.summary)}</b></p><table><tr><th>#</th><th>cause</th><th>score</th>"
            f"<th>advice</th></tr>{''.join(rows)}</table>{plot}")


def render_audit_html(result: Any) -> str:
    """Render an :class:`~splitaudit.audit.AuditResult` as one self-contained HTML page."""
    sections = []
    if result.explanation is not None:
        sections.append(("Why is validation loss lower? Ranked causes", _explain_section(result.explanation)))
    if result.kfold is not None:
        sections.append(("Re-split and retrain: does the gap persist?", _kfold_section(result.kfold)))
    return render_scan_html(result.scan, extra_sections=sections, verdict=result.verdict(),
                            title="splitaudit audit")


def render_audit_notebook(result: Any) -> str:
    """An audit result for a notebook cell: the verdict, then the scan (findings, a few pairs), the
    k-fold verdict and the explanation; the full report is :func:`write_audit_outputs`."""
    verdict = "".join(f"<li>{escape(line)}</li>" for line in result.verdict())
    parts = [f"<div><b>splitaudit audit</b><ul>{verdict}</ul></div>", render_scan_notebook(result.scan)]
    for part in (result.kfold, result.explanation):
        if part is not None and hasattr(part, "_repr_html_"):
            parts.append(part._repr_html_())
    return "<div class='splitaudit-nb-audit'>" + "".join(parts) + "</div>"


def write_audit_outputs(result: Any, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the scan outputs, kfold.json/png, explain.json/png, report.json and report.html into
    ``out_dir``; return {kind: path}."""
    written = write_scan_outputs(result.scan, out_dir, html=False)
    out = Path(out_dir)
    if result.kfold is not None:
        written["kfold"] = write_json(result.kfold.to_dict(), out / "kfold.json")
        written["kfold_plot"] = Path(result.kfold.plot(out / "kfold.png"))
    if result.explanation is not None:
        written["explain"] = write_json(result.explanation.to_dict(), out / "explain.json")
        try:
            written["explain_plot"] = Path(result.explanation.plot(out / "explain.png"))
        except ValueError:
            pass
    written["report_json"] = write_json(result.to_dict(), out / "report.json")
    path = out / "report.html"
    path.write_text(render_audit_html(result), encoding="utf-8")
    written["report"] = path
    return written
