"""Small matplotlib figures rendered to base64 PNG data URIs for the HTML report."""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np

TRAIN_COLOUR, VAL_COLOUR = "#4c72b0", "#dd8452"


def _figure(width: float = 3.7, height: float = 2.5):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=96)
    return plt, fig, ax


def _to_uri(plt, fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def hist_train_val(train: np.ndarray, val: np.ndarray, title: str, *, bins: int = 40) -> str:
    """Overlaid density histograms of one quantity for train and val."""
    plt, fig, ax = _figure()
    train = np.asarray(train, dtype=float)
    val = np.asarray(val, dtype=float)
    both = np.concatenate([train[np.isfinite(train)], val[np.isfinite(val)]])
    if both.size == 0:
        plt.close(fig)
        return ""
    lo, hi = np.percentile(both, [0.5, 99.5])
    if hi <= lo:
        lo, hi = both.min() - 0.5, both.max() + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    for values, colour, name in ((train, TRAIN_COLOUR, "train"), (val, VAL_COLOUR, "val")):
        finite = values[np.isfinite(values)]
        finite = finite[(finite >= edges[0]) & (finite <= edges[-1])]
        if finite.size:  # a side with nothing inside the bins has no density (numpy would divide by zero)
            ax.hist(finite, bins=edges, density=True, alpha=0.55, color=colour, label=f"{name} (n={values.size:,})")
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return _to_uri(plt, fig)


def bars_train_val(labels: Sequence[str], train: Sequence[float], val: Sequence[float], title: str) -> str:
    """Side-by-side bars (e.g. class proportions) for train and val."""
    plt, fig, ax = _figure(width=max(3.7, 0.45 * len(labels) + 1.5))
    x = np.arange(len(labels))
    ax.bar(x - 0.2, train, width=0.4, color=TRAIN_COLOUR, label="train")
    ax.bar(x + 0.2, val, width=0.4, color=VAL_COLOUR, label="val")
    ax.set_xticks(x)
    ax.set_xticklabels([str(l)[:12] for l in labels], rotation=45, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    top = max([float(v) for v in (*train, *val) if np.isfinite(v)], default=0.0)
    if top > 0:
        ax.set_ylim(0, top * 1.3)  # head room so the legend never covers a bar
    ax.legend(fontsize=7, loc="upper right", ncol=2)
    return _to_uri(plt, fig)


def curves(series: dict[str, tuple[np.ndarray, np.ndarray]], title: str, *, ylabel: str = "loss") -> str:
    """Line plot of named (x, y) series."""
    plt, fig, ax = _figure(width=5.0, height=3.0)
    for name, (x, y) in series.items():
        style = "--" if "shift" in name or "eval" in name else "-"
        ax.plot(x, y, style, label=name, linewidth=1.4)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return _to_uri(plt, fig)
