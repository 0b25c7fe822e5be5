"""The audit report renders in a real headless browser (skipped where no Chromium is installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import splitaudit

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


shot = _load("screenshot")
pytestmark = pytest.mark.skipif(shot.find_chromium() is None, reason="chromium not installed")


def test_audit_report_renders(tmp_path):
    data = tmp_path / "data"
    _load("demo").build(data, n_train_per_class=10, n_val_per_class=4)
    history = {"loss": [1.2, 0.8, 0.6, 0.5], "val_loss": [0.9, 0.65, 0.53, 0.46]}
    result = splitaudit.audit(data, history=history, n_splits=3, epochs=3, cache=False, jobs=1)
    written = result.save(tmp_path / "out")
    html = written["report"].read_text(encoding="utf-8")
    assert "Ranked causes" in html and "does the gap persist" in html
    png = shot.screenshot(written["report"], tmp_path / "report.png", height=1600)
    pixels = np.asarray(Image.open(png).convert("L"))
    assert pixels.shape[1] == 1280
    # a rendered page, not a blank one: text, thumbnails and plots give many distinct grey levels
    assert len(np.unique(pixels)) > 50
