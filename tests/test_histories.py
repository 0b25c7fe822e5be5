"""The committed CNN-probe histories (Fashion-MNIST, see benchmarks/explain_histories.py)
are explained correctly from the committed scan and k-fold evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from splitaudit import explain

HISTORIES = Path(__file__).resolve().parents[1] / "examples" / "histories"


@pytest.mark.parametrize("name, expected_top, worry", [
    ("no_dropout", "measurement_lag", False),
    ("strong_dropout", "regularization", False),
    ("easier_val", "easier_validation", True),
])
def test_committed_history_explained(name, expected_top, worry):
    evidence = HISTORIES / "evidence" / name
    scan = json.loads((evidence / "summary.json").read_text())
    kfold = json.loads((evidence / "kfold.json").read_text())
    result = explain(HISTORIES / f"{name}.csv", scan=scan, kfold=kfold)
    assert result.causes[0]["cause"] == expected_top, result.causes
    assert result.causes[0]["score"] >= 0.5
    assert ("worry" in result.summary) == worry, result.summary
    # the committed explain.json was produced by the same code
    committed = json.loads((evidence / "explain.json").read_text())
    assert committed["causes"][0]["cause"] == expected_top
