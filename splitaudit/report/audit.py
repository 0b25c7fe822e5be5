"""The full audit page: the scan report plus k-fold and explain sections."""

from __future__ import annotations

import base64
import tempfile
from html import escape
from pathlib import Path
from typing import Any

from .html import _table, render_scan_html


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
    sections = []
    if result.explanation is not None:
        sections.append(("Why is validation loss lower? Ranked causes", _explain_section(result.explanation)))
    if result.kfold is not None:
        sections.append(("Re-split and retrain: does the gap persist?", _kfold_section(result.kfold)))
    return render_scan_html(result.scan, extra_sections=sections, verdict=result.verdict(),
                            title="splitaudit audit")
