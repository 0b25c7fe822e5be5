"""One self-contained HTML page: verdict, findings, duplicate pairs as thumbnails, plots.

Everything user-controlled (paths, labels, messages) goes through
:func:`html.escape`; images are embedded as data URIs, so the file can be
mailed or attached to a ticket.
"""

from __future__ import annotations

import base64
import io
import json
import warnings
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from .._text import gap_question_sentence, notebook_card, score_text, verdict_sentences
from . import plots

MAX_PAIRS = 200
EVIDENCE_COLUMNS = ("phash", "dhash", "flipped", "thumb_rms", "thumb_corr", "descriptor_cos", "embedding_cos")
FLIP_FOUND_BY = ("exact", "thumbnail", "overlay")
"""``decided_by`` values whose thumbnail alignment is what was found, so their cards show ``flipped``.
For the others it is only the better of two poor alignments: a keypoint or tile card states the
transform its fit found (neither fit mirrors), and an embedding pair was not decided by it."""
THUMB_PX = 112
PROPERTY_PLOTS = ("brightness", "contrast", "sharpness", "entropy", "colourfulness", "file_size")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.verdict{background:#fff;border-left:5px solid #888;padding:10px 14px;margin:14px 0;font-size:15px}
.verdict.v-fail{border-color:#c0392b}.verdict.v-warn{border-color:#e0a100}.verdict.v-pass{border-color:#2e8b57}
table{border-collapse:collapse;background:#fff;width:100%}td,th{border-bottom:1px solid #eee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2;font-weight:600}.badge{display:inline-block;border-radius:3px;padding:1px 7px;font-size:12px;font-weight:600;color:#fff}
.pass{background:#2e8b57}.warn{background:#e0a100}.fail{background:#c0392b}.error{background:#8e44ad}.skipped{background:#999}
.pairs{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
.pair{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px;font-size:12px}
.pair .imgs{display:flex;gap:6px}.pair figure{margin:0;flex:1;min-width:0}
.pair img{width:100%;max-width:112px;image-rendering:pixelated;border:1px solid #ddd;background:#eee}
.pair figcaption{overflow-wrap:break-word;color:#333}.conflict{color:#c0392b;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:10px}.plots img{background:#fff;border:1px solid #e3e3e3}
details{margin:2px 0}pre{white-space:pre-wrap;font-size:11px;margin:4px 0;background:#f6f6f6;padding:6px}
.small{font-size:12px;color:#666}
"""


def _breakable(path) -> str:
    """An escaped path that wraps after its slashes (``<wbr>``) rather than inside a name."""
    return "/<wbr>".join(escape(part) for part in str(path).split("/"))


def _thumb_uri(abspath: str) -> str:
    """A small PNG of the file as a data URI, or '' if it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(abspath) as im:
                im.draft("RGB", (THUMB_PX * 2, THUMB_PX * 2))
                im = ImageOps.exif_transpose(im)
                im = im.convert("RGBA") if im.mode in ("P", "LA", "RGBA", "PA") else im.convert("RGB")
                im.thumbnail((THUMB_PX, THUMB_PX))
                buf = io.BytesIO()
                im.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:
        return ""


def _img(uri: str, alt: str) -> str:
    if not uri:
        return '<div class="small">(not viewable)</div>'
    return f'<img src="{uri}" alt="{escape(alt)}" loading="lazy">'


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not np.isfinite(value):
            return "–"
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if value is None:
        return "–"
    return escape(str(value))


def overall_status(findings: list) -> str:
    order = {"fail": 3, "warn": 2, "error": 1, "pass": 0, "skipped": 0}
    worst = max((order.get(f.status, 0) for f in findings), default=0)
    return {3: "fail", 2: "warn", 1: "warn", 0: "pass"}[worst]


def _findings_table(findings: list) -> str:
    rows = []
    for f in findings:
        numbers = {k: v for k, v in f.to_dict().items() if k not in ("check", "status", "message", "traceback")}
        details = escape(json.dumps(numbers, indent=1, default=str)[:4000])
        rows.append(
            f"<tr><td>{escape(f.check)}</td><td><span class='badge {escape(f.status)}'>{escape(f.status)}</span></td>"
            f"<td>{escape(f.message)}<details><summary class='small'>evidence</summary><pre>{details}</pre></details></td></tr>"
        )
    return "<table><tr><th>check</th><th>status</th><th>finding</th></tr>" + "".join(rows) + "</table>"


def _expected_sentence(e: dict) -> str:
    """Observed vs expected cross-split near pairs, in words (``summary['expected_cross_duplicates']``)."""
    if not e or e.get("expected") is None:
        return ""
    obs, exp, p = e.get("observed", 0), float(e["expected"]), e.get("p_value")
    if e.get("note"):  # e.g. within=False: the within-split density was never measured
        return f"{e['note']}; observed {obs:,} cross-split pairs."
    if exp == 0:
        return ("Neither split holds duplicate pairs inside it, so this estimate expects none across the split; "
                f"observed {obs:,}" + (", which chance does not explain." if obs else "."))
    text = (f"A random split with this within-split duplicate density would put about {exp:,.1f} near-duplicate "
            f"pairs across the split; observed {obs:,}")
    if p is None:
        return text + "."
    verdict = ("more than chance" if p <= 0.05 else "no more than chance")
    return text + f" (Poisson p = {p:.2g} for at least that many: {verdict})."


def _pair_cards(pairs: pd.DataFrame, images: pd.DataFrame, *, a: str, b: str, label_a: str, label_b: str,
                limit: int = MAX_PAIRS) -> str:
    """Cards of image pairs; ``a``/``b`` name the columns ``{a}_path``/``{a}_index``
    (cross-split: ``val``/``train``) or ``path_{a}``/``index_{a}`` (within: ``a``/``b``)."""
    abspaths = images["abspath"].to_numpy()
    labels = images["label"].to_numpy()
    col = lambda side, what: f"{side}_{what}" if f"{side}_{what}" in pairs.columns else f"{what}_{side}"
    cards = []
    shown = [c for c in EVIDENCE_COLUMNS if c in pairs.columns and pairs[c].notna().any()]  # no all-NaN columns
    for row in pairs.head(limit).itertuples(index=False):
        ia, ib = int(getattr(row, col(a, "index"))), int(getattr(row, col(b, "index")))
        la, lb = labels[ia], labels[ib]
        conflict = la is not None and lb is not None and not pd.isna(la) and not pd.isna(lb) and la != lb
        lab = lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else f" · label {escape(str(v))}"
        decided = getattr(row, "decided_by", None)
        hide_flip = isinstance(decided, str) and decided not in FLIP_FOUND_BY  # no decided_by: as before
        extra = [f"{name}={_fmt(getattr(row, name))}" for name in shown if not (hide_flip and name == "flipped")]
        if decided == "keypoints":  # the geometric fit that decided: what the copy did to the frame
            extra.insert(0, f"keypoints: {int(row.inliers)} inliers, rotation {row.rotation:+.1f}°, "
                            f"scale {row.scale:.2f}, {row.overlap:.0%} of {label_a} inside {label_b} "
                            f"({row.overlap_b:.0%} the other way);")
        elif decided == "tiles":  # neighbouring tiles: the shift and how much of each frame they share
            extra.insert(0, f"tiles: shifted by {row.shift_x:+.0%} / {row.shift_y:+.0%} of the frame, "
                            f"{row.overlap:.0%} of {label_a} shared with {label_b} "
                            f"({row.overlap_b:.0%} the other way), block correlation {row.tile_ncc:.2f}, "
                            f"{row.tile_grey:.0f} grey levels apart;")
        elif decided == "overlay":  # a caption or logo: where the two differ, and how well the rest agrees
            extra.insert(0, f"overlay: the two differ inside one box of {row.overlay_area:.0%} of the frame "
                            f"(a caption, logo or watermark) and agree to {row.overlay_grey:.1f} grey levels "
                            f"outside it;")
        elif isinstance(decided, str):
            extra.insert(0, f"decided by {decided};")
        cards.append(
            "<div class='pair'><div class='imgs'>"
            f"<figure>{_img(_thumb_uri(abspaths[ia]), label_a)}<figcaption><b>{label_a}</b> {_breakable(getattr(row, col(a, 'path')))}{lab(la)}</figcaption></figure>"
            f"<figure>{_img(_thumb_uri(abspaths[ib]), label_b)}<figcaption><b>{label_b}</b> {_breakable(getattr(row, col(b, 'path')))}{lab(lb)}</figcaption></figure>"
            "</div>"
            f"<div>{escape(str(row.kind))} · score {score_text(row.score, str(row.kind), 3)}"
            + (" · <span class='conflict'>label conflict</span>" if conflict else "")
            + f"</div><div class='small'>{escape(' '.join(extra))}</div></div>"
        )
    more = ""
    if len(pairs) > limit:
        more = f"<p class='small'>Showing the {limit} highest-scoring of {len(pairs):,} pairs; all are in the CSV.</p>"
    return more + "<div class='pairs'>" + "".join(cards) + "</div>"


def _distribution_plots(result: Any) -> str:
    imgs = result.images()
    is_val = (imgs["split"] == "val").to_numpy()
    ok = imgs["ok"].astype(bool).to_numpy() if "ok" in imgs else np.ones(len(imgs), bool)
    uris = []
    if result.split.task == "classification":
        counts = imgs[ok].groupby(["label", "split"]).size().unstack(fill_value=0)
        for col in ("train", "val"):
            if col not in counts:
                counts[col] = 0
        prop = counts / counts.sum(axis=0).replace(0, 1)
        uris.append(plots.bars_train_val(list(prop.index), prop["train"].to_numpy(), prop["val"].to_numpy(),
                                         "class proportions"))
    elif result.split.task == "regression":
        t = imgs["target"].to_numpy(dtype=float)
        uris.append(plots.hist_train_val(t[~is_val & ok], t[is_val & ok], "regression target"))
    if "difficulty" in imgs:
        d = imgs["difficulty"].to_numpy(dtype=float)
        uris.append(plots.hist_train_val(d[~is_val & ok], d[is_val & ok], "per-image difficulty (out-of-fold loss)"))
    for prop_name in PROPERTY_PLOTS:
        if prop_name in imgs:
            v = pd.to_numeric(imgs[prop_name], errors="coerce").to_numpy(dtype=float)
            finite = v[ok & np.isfinite(v)]
            if len(finite) and finite.min() == finite.max():
                continue  # one value for every image (e.g. colourfulness of grey images): nothing to compare
            uris.append(plots.hist_train_val(v[~is_val & ok], v[is_val & ok], prop_name))
    return "<div class='plots'>" + "".join(f"<img src='{u}' alt='plot'>" for u in uris if u) + "</div>"


def _table(frame: pd.DataFrame, limit: int = 500) -> str:
    if frame is None or not len(frame):
        return "<p class='small'>none</p>"
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
        for row in frame.head(limit).itertuples(index=False)
    )
    more = f"<p class='small'>{len(frame) - limit:,} more in the CSV files.</p>" if len(frame) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


_NOTEBOOK_CSS = (
    "<style>.splitaudit-nb table{border-collapse:collapse}.splitaudit-nb td,.splitaudit-nb th"
    "{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}"
    ".splitaudit-nb .badge{border-radius:3px;padding:0 6px;color:#fff;font-weight:600}"
    ".splitaudit-nb .pass{background:#2e8b57}.splitaudit-nb .warn{background:#e0a100}"
    ".splitaudit-nb .fail{background:#c0392b}.splitaudit-nb .error{background:#8e44ad}"
    ".splitaudit-nb .skipped{background:#999}.splitaudit-nb .pairs{display:flex;flex-wrap:wrap;gap:8px}"
    ".splitaudit-nb .pair{border:1px solid #ddd;padding:6px;width:260px;font-size:12px}"
    ".splitaudit-nb .imgs{display:flex;gap:4px}.splitaudit-nb figure{margin:0;flex:1;min-width:0}"
    ".splitaudit-nb img{width:100%;max-width:112px;image-rendering:pixelated}"
    ".splitaudit-nb figcaption{overflow-wrap:break-word}.splitaudit-nb .small{color:#666}"
    ".splitaudit-nb .conflict{color:#c0392b}</style>")


def render_scan_notebook(result: Any, *, max_pairs: int = 6) -> str:
    """A scan result for a notebook cell: the verdict, the findings and the first few pairs as
    thumbnails (the full page is :func:`render_scan_html`)."""
    status = overall_status(result.findings)
    colour = {"fail": "#c0392b", "warn": "#e0a100", "pass": "#2e8b57"}[status]
    verdict = "".join(f"<div>{escape(s)}</div>" for s in verdict_sentences(result.findings))
    notes = "".join(f"<li>{escape(n)}</li>" for n in result.split.notes)
    pairs = ""
    if len(result.pairs):
        pairs = (f"<p><b>Cross-split pairs</b> (first {min(max_pairs, len(result.pairs))} of {len(result.pairs):,}; "
                 "all in <code>.pairs</code>)</p>"
                 + _pair_cards(result.pairs, result.split.images, a="val", b="train", label_a="val",
                               label_b="train", limit=max_pairs).split("</p>", 1)[-1])
    banner = (f"<b>splitaudit scan</b> · {result.split.n_train:,} train · {result.split.n_val:,} val · "
              f"{len(result.pairs):,} cross-split pairs{verdict}")
    body = (f"<ul class='small'>{notes}</ul>" if notes else "") + _findings_table(result.findings) + pairs
    return notebook_card(banner, body, colour=colour, css=_NOTEBOOK_CSS)


def render_scan_html(result: Any, *, extra_sections: list[tuple[str, str]] | None = None,
                     verdict: list[str] | None = None, title: str = "splitaudit report") -> str:
    """Render a :class:`~splitaudit.scan.ScanResult` (plus optional extra
    ``(heading, html)`` sections, e.g. k-fold and explain) as one HTML page."""
    s = result.to_dict()
    status = overall_status(result.findings)
    lines = verdict or verdict_sentences(result.findings)
    images = result.split.images
    within = result.within
    within_counts = within.groupby("split").size().to_dict() if len(within) and "split" in within else {}
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{escape(title)}</h1>",
        f"<div class='meta'>{escape(s['root'])} · train {s['n_train']:,} · val {s['n_val']:,} · "
        f"unreadable {s['n_unreadable']:,} · splitaudit {escape(s['splitaudit_version'])}</div>",
        f"<div class='verdict v-{status}'>" + "<br>".join(escape(l) for l in lines) + "</div>",
    ]
    if s["notes"]:  # layout notes, links leaving the root, a damaged cache set aside
        parts.append("<h2>Notes</h2><ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in s["notes"])
                     + "</ul>")
    parts += [
        "<h2>Findings</h2>", _findings_table(result.findings),
    ]
    for heading, body in extra_sections or []:
        parts += [f"<h2>{escape(heading)}</h2>", body]
    parts += [
        f"<h2>Cross-split duplicates ({len(result.pairs):,} pairs)</h2>",
        _pair_cards(result.pairs.sort_values("score", ascending=False), images,
                    a="val", b="train", label_a="val", label_b="train") if len(result.pairs) else "<p>None found.</p>",
        "<h2>Duplicates inside a split</h2>",
        f"<p>train–train {within_counts.get('train', 0):,} pairs · val–val {within_counts.get('val', 0):,} pairs. "
        f"{escape(_expected_sentence(s.get('expected_cross_duplicates') or {}))}</p>",
    ]
    if len(within) and {"index_a", "index_b", "path_a", "path_b"} <= set(within.columns):
        parts.append(_pair_cards(within.sort_values("score", ascending=False), images,
                                 a="a", b="b", label_a="a", label_b="b", limit=24))
    parts += [
        "<h2>Distributions: train vs val</h2>", _distribution_plots(result),
        f"<h2>Unreadable files ({s['n_unreadable']:,})</h2>", _table(result.unreadable),
        f"<h2>Ignored files ({len(result.split.ignored):,})</h2>", _table(result.split.ignored),
        f"<p>{escape(gap_question_sentence(result.findings))}</p>" if extra_sections is None else "",
        "<p class='small'>Generated by splitaudit. Files: summary.json, duplicates.csv, within_duplicates.csv, images.csv, unreadable.csv, timings.json.</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts)
