"""Sentences several stages print or render: a pair's score, the verdict, the loss-gap pointer.

A leaf (imports nothing from the package): the report, the pipeline's results and the terminal
all word a finding the same way. Each function reads only what it is given (findings are duck-typed:
``check``, ``status``, ``message``, ``numbers``).
"""

from __future__ import annotations

import math

__all__ = ["score_text", "verdict_sentences", "gap_question_sentence"]


def score_text(score: float, kind: str, digits: int = 2) -> str:
    """A pair's score for display: rounded down for near pairs, so 0.99999 reads 0.99 and only an
    exact pair reads 1.00.

    Examples
    --------
    >>> score_text(0.99999, "near"), score_text(1.0, "exact")
    ('0.99', '1.00')
    """
    if kind != "exact":
        score = math.floor(float(score) * 10 ** digits + 1e-9) / 10 ** digits
    return f"{score:.{digits}f}"


def verdict_sentences(findings: list) -> list[str]:
    """Plain-word statements for the top of a report, from failing/warning findings first."""
    out = []
    for f in sorted(findings, key=lambda f: {"fail": 0, "warn": 1, "error": 2}.get(f.status, 3)):
        if f.status in ("fail", "warn", "error"):
            out.append(f"{f.status.upper()} · {f.check}: {f.message}")
    if not out and findings and all(f.status == "skipped" for f in findings):
        out.append(f"No check could run: {findings[0].numbers.get('reason') or findings[0].message}")
    elif not out:
        out.append("No check found leakage, drift or a difficulty imbalance between train and validation.")
    return out


def gap_question_sentence(findings: list) -> str:
    """One plain sentence linking a scan's findings to "why is my validation loss below my training loss?"."""
    by_check = {f.check: f for f in findings}
    leaking = [c for c in ("exact_duplicates", "near_duplicates")
               if c in by_check and by_check[c].status in ("warn", "fail")]
    difficulty = by_check.get("difficulty")
    easier = difficulty is not None and difficulty.status in ("warn", "fail") and \
        (difficulty.numbers or {}).get("direction") == "val_easier"
    if leaking or easier:
        what = " and ".join((["validation images duplicated in train"] if leaking else [])
                            + (["a validation set easier than train"] if easier else []))
        return (f"If your validation loss is below your training loss, {what} can cause it; "
                "splitaudit explain HISTORY --scan with this folder weighs it against the other causes "
                "(splitaudit audit runs scan, k-fold and explain together).")
    return ("Nothing found here makes validation easier than training, so a validation loss below the training loss "
            "more likely comes from how the loss is measured (dropout, augmentation, the running-mean train loss): "
            "splitaudit explain HISTORY --scan with this folder ranks the causes.")


def notebook_card(banner_html: str, body_html: str, *, colour: str = "#888", css: str = "") -> str:
    """A result as a notebook cell shows it: ``banner_html`` beside a coloured edge, then ``body_html``
    (both already escaped)."""
    return (f"<div class='splitaudit-nb'>{css}<div style='border-left:5px solid {colour};padding:4px 10px'>"
            f"{banner_html}</div>{body_html}</div>")
