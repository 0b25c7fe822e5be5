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


REAL_RUNS = [  # benchmarks/explain_histories.py train: CNN probe, 3,000 / 1,000 Fashion-MNIST images
    # name, top cause from the history alone, top cause with the scan + k-fold evidence
    ("fmnist_plain", "measurement_lag", "measurement_lag"),
    ("fmnist_short", "measurement_lag", "measurement_lag"),
    ("fmnist_dropout", "regularization", "regularization"),
    ("fmnist_augment", "regularization", "regularization"),
    ("fmnist_easier_val", "easier_validation", "easier_validation"),
    ("fmnist_leaked_val", "measurement_lag", "leakage"),  # the leak does not change the loss (README there)
    ("seed_question", "measurement_lag", None),
]


@pytest.mark.parametrize("name, alone, with_evidence", REAL_RUNS)
def test_real_run_first_phase_top_cause(name, alone, with_evidence):
    import pandas as pd

    frame = pd.read_csv(HISTORIES / f"{name}.csv")
    history = frame[["epoch", "loss", "val_loss"]]  # what a user's Keras log holds: no eval-mode loss
    result = explain(history)
    assert result.causes[0]["cause"] == alone, result.phases[0]["causes"]
    if alone != "measurement_lag":  # from the history alone only the lag is measured
        assert result.causes[0]["status"] == "suspected"
    if with_evidence is None:
        return
    evidence = HISTORIES / "evidence" / name
    result = explain(history, scan=json.loads((evidence / "summary.json").read_text()),
                     kfold=json.loads((evidence / "kfold.json").read_text()))
    assert result.causes[0]["cause"] == with_evidence, result.phases[0]["causes"]
    # the eval-mode train loss the run recorded turns the suspicion into a measurement
    if alone == "regularization":
        measured = next(c for c in explain(frame).causes if c["cause"] == "regularization")
        assert measured["status"] == "measured" and measured["score"] >= 0.3
