"""explain() by phase: which epochs, suspected vs measured causes, CLI printing and wording, bad files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from splitaudit.cli import main
from splitaudit.errors import HistoryError, InputError
from splitaudit.explain import explain
from splitaudit.explain.phases import epoch_label, find_phases, parse_epochs
from splitaudit.explain.suspects import SUSPECT_CAP

SEED = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "loss": [1041.52, 750.78, 425.88, 320.29, 305.41],
                     "val_loss": [1045.89, 749.95, 423.35, 319.35, 305.07]})


def early_then_late(seed=0):
    """val < train in epochs 1-2 (loss falling fast), val > train in 3-7, val < train again in 8-10."""
    rng = np.random.default_rng(seed)
    train = np.array([2.0, 1.2, 0.9, 0.8, 0.75, 0.72, 0.70, 0.69, 0.685, 0.68]) + rng.normal(0, 0.001, 10)
    val = np.array([1.5, 1.0, 0.95, 0.85, 0.80, 0.76, 0.73, 0.66, 0.655, 0.65]) + rng.normal(0, 0.001, 10)
    return pd.DataFrame({"train_loss": train, "val_loss": val})


def dropout_like(epochs=8, ratio=0.8, seed=0, train_eval=False):
    """A converged run with a flat curve and val ~20 % below the running train loss throughout."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, epochs + 1)
    train = 0.9 + 1.2 * np.exp(-t / 1.2) + rng.normal(0, 0.003, epochs)
    val = ratio * (0.9 + 0.6 * np.exp(-t / 1.2)) + rng.normal(0, 0.003, epochs)
    data = {"train_loss": train, "val_loss": val}
    if train_eval:
        data["train_loss_eval"] = val * 0.98
    return pd.DataFrame(data)


# ------------------------------------------------------------------ phases
def test_finds_every_phase_and_orders_longest_then_latest():
    history = early_then_late()
    result = explain(history)
    labels = [(p["label"], p["kind"]) for p in result.phases]
    assert labels == [("epochs 8-10", "late"), ("epochs 1-2", "early")]  # equal length: the latest first
    early = result.phases[1]
    assert early["causes"][0]["cause"] == "measurement_lag" and early["causes"][0]["status"] == "measured"
    assert result.causes == result.phases[0]["causes"] and result.gap["phase_epochs"] == [8, 9, 10]
    assert "Val is also below train in epochs 1-2" in result.summary


def test_longest_phase_comes_first():
    train = np.array([2.0, 1.2, 1.0, 0.9, 0.85, 0.82, 0.80, 0.79])
    val = np.array([1.6, 1.3, 0.93, 0.85, 0.80, 0.77, 0.75, 0.74])
    phases = find_phases(np.arange(1, 9), train, val, np.r_[(train[:-1] + train[1:]) / 2, train[-1]])
    assert [p.epochs for p in phases] == [(3, 4, 5, 6, 7, 8), (1,)]
    assert phases[0].kind == "persistent" and phases[0].window == (6, 7, 8)


def test_early_lag_head_is_split_from_a_persistent_gap():
    history = dropout_like()
    history.loc[0, "val_loss"] = 1.3  # below train (1.42), above the shifted train (1.27): lag explains it
    result = explain(history)
    kinds = {p["kind"]: p for p in result.phases}
    assert set(kinds) == {"early", "persistent"}
    assert kinds["early"]["epochs"] == [1] and kinds["early"]["causes"][0]["cause"] == "measurement_lag"
    assert result.phases[0]["kind"] == "persistent"


def test_val_never_below_train_is_a_clear_answer():
    result = explain({"loss": [0.9, 0.6, 0.5, 0.45], "val_loss": [1.0, 0.8, 0.7, 0.69]})
    assert result.phases == []
    assert result.summary.startswith("No: validation loss is never below training loss")
    assert "epochs 1-4" in result.summary
    assert json.loads(result.to_json())["phases"] == []


def test_seed_history_is_measurement_lag_and_not_a_problem():
    result = explain(SEED, n_val=9520, n_train=38140)
    assert result.phases[0]["label"] == "epochs 2-5"
    assert result.top["cause"] == "measurement_lag" and result.top["status"] == "measured"
    assert result.top["score"] >= 0.9
    assert "not a problem" in result.summary and "worry" not in result.summary


# ----------------------------------------------------------------- epochs=
def test_epochs_names_the_phase_to_explain():
    history = early_then_late()
    result = explain(history, epochs="1-2")
    assert len(result.phases) == 1 and result.phases[0]["kind"] == "requested"
    assert result.phases[0]["epochs"] == [1, 2] and result.gap["window_epochs"] == [1, 2]
    assert result.top["cause"] == "measurement_lag"
    assert result.summary.startswith("In epochs 1-2")
    assert explain(history, epochs=[1, 2]).causes == result.causes
    assert explain(history, epochs=range(1, 3)).causes == result.causes


def test_epochs_where_val_is_above_train_say_so():
    result = explain(early_then_late(), epochs="4-6")
    assert result.summary.startswith("No: validation loss is never below training loss")
    assert "epochs 4-6" in result.summary


@pytest.mark.parametrize("spec, expected", [("1-3", (1, 2, 3)), ("1-2, 5", (1, 2, 5)), (4, (4,)),
                                            ([3, 1], (1, 3)), ("2", (2,))])
def test_parse_epochs(spec, expected):
    assert parse_epochs(spec, range(1, 6)) == expected


@pytest.mark.parametrize("spec, error, words", [
    ("9-12", InputError, "not in the history"),
    ("3-1", InputError, "ends before it starts"),
    ("one", InputError, "like '1-5'"),
    (True, TypeError, "epochs="),
    ([1.5], TypeError, "whole epochs"),
])
def test_parse_epochs_errors_name_the_parameter(spec, error, words):
    with pytest.raises(error, match="epochs=") as info:
        parse_epochs(spec, range(1, 6))
    assert words in str(info.value)


def test_epoch_label():
    assert epoch_label([3]) == "epoch 3"
    assert epoch_label([1, 2, 3, 7]) == "epochs 1-3, 7"


# ------------------------------------------------------- suspected/measured
def test_dropout_like_history_alone_suspects_regularization():
    result = explain(dropout_like())
    top = result.top
    assert top["cause"] == "regularization" and top["status"] == "suspected" and not top["known"]
    assert 0.5 <= top["score"] <= SUSPECT_CAP
    assert "model.evaluate" in top["check"] and "model.eval()" in top["check"]
    assert result.score("measurement_lag") < 0.3  # the half-epoch shift explains little of it
    assert "suspected" in result.summary and "To confirm" in result.summary
    leak = next(c for c in result.causes if c["cause"] == "leakage")
    assert leak["status"] == "suspected" and "splitaudit.scan" in leak["check"]


def test_eval_mode_train_loss_turns_the_suspicion_into_a_measurement():
    result = explain(dropout_like(train_eval=True))
    assert result.top["cause"] == "regularization" and result.top["status"] == "measured"
    assert result.top["known"] and result.top["score"] > SUSPECT_CAP


def test_large_gap_from_the_start_suspects_easier_validation():
    t = np.arange(1, 9)
    train = 0.6 + 1.0 * np.exp(-t / 1.5)
    val = 0.08 + 0.5 * np.exp(-t / 1.5)
    result = explain({"train_loss": train, "val_loss": val})
    assert result.top["cause"] == "easier_validation" and result.top["status"] == "suspected"
    assert "splitaudit.scan" in result.top["check"]


def test_scan_evidence_replaces_suspicions_with_measurements():
    scan = {"n_val": 1000, "n_train": 4000, "findings": [
        {"check": "exact_duplicates", "status": "pass", "fraction_val_with_train_duplicate": 0.0},
        {"check": "near_duplicates", "status": "pass", "fraction_val_with_train_duplicate": 0.0},
        {"check": "difficulty", "status": "pass", "direction": "none", "p_value": 0.7,
         "relative_difference": 0.01}]}
    result = explain(dropout_like(), scan=scan)
    status = {c["cause"]: c["status"] for c in result.causes}
    assert status["leakage"] == "measured" and status["easier_validation"] == "measured"
    assert status["regularization"] == "suspected" and result.top["cause"] == "regularization"


def test_kfold_probe_without_a_gap_is_one_sentence_not_a_contradiction():
    kfold = {"original": {"train_loss": 0.3, "val_loss": 0.4, "gap": 0.1, "gap_eval": 0.12},
             "folds": [{"fold": i, "gap": 0.1 + 0.01 * i} for i in range(5)],
             "verdict": {"persists": False, "n_folds_val_lower": 0, "n_folds": 5}}
    result = explain(dropout_like(), kfold=kfold)
    assert result.summary.count("k-fold probe") == 1 and "shows no such gap" in result.summary
    assert result.top["cause"] == "regularization"
    # the audit verdict then drops the contradicting "nothing to explain" k-fold line
    from splitaudit.audit import AuditResult

    probe = SimpleNamespace(original=SimpleNamespace(gap=0.1),
                            verdict=SimpleNamespace(message="val is not below train here → nothing to explain"))
    lines = AuditResult(scan=SimpleNamespace(findings=[]), kfold=probe, explanation=result).verdict()
    assert not any("nothing to explain" in line for line in lines)
    lines = AuditResult(scan=SimpleNamespace(findings=[]), kfold=probe, explanation=explain(SEED)).verdict()
    assert lines[0].startswith("In epochs 2-5")


def test_random_variation_says_what_it_rests_on():
    without = next(c for c in explain(SEED).causes if c["cause"] == "random_variation")
    assert "n_val unknown" in without["evidence"]["basis"] and "n_val=" in without["evidence"]["basis"]
    with_n = next(c for c in explain(SEED, n_val=9520).causes if c["cause"] == "random_variation")
    assert "n_val unknown" not in with_n["evidence"].get("basis", "") and with_n["evidence"]["n_val"] == 9520


def test_plot_x_axis_shows_whole_epochs(tmp_path):
    result = explain(SEED)
    ticks = result.figure().axes[0].get_xticks()
    assert len(ticks) and np.allclose(ticks, np.round(ticks))
    assert result.plot(tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_scan_closing_sentence_links_findings_to_the_question():
    from splitaudit._text import gap_question_sentence

    leak = [SimpleNamespace(check="near_duplicates", status="fail", numbers={})]
    assert "duplicated in train can cause it" in gap_question_sentence(leak)
    easy = [SimpleNamespace(check="difficulty", status="warn", numbers={"direction": "val_easier"})]
    assert "easier than train can cause it" in gap_question_sentence(easy)
    clean = [SimpleNamespace(check="difficulty", status="pass", numbers={"direction": "none"})]
    sentence = gap_question_sentence(clean)
    assert "how the loss is measured" in sentence and "splitaudit explain" in sentence
    assert sentence.count(".") == 1 and sentence.endswith(".")


# ---------------------------------------------------------------------- CLI
def test_cli_explain_without_out_prints_and_writes_nothing(tmp_path, capsys, monkeypatch):
    path = tmp_path / "log.csv"
    SEED.assign(epoch=SEED["epoch"] - 1).to_csv(path, index=False)
    monkeypatch.chdir(tmp_path)
    assert main(["explain", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "measurement_lag" in out and "not a problem" in out and "epochs 2-5" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]
    assert main(["explain", str(path), "--out", str(tmp_path / "why"), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "why").iterdir()) == ["explain.json", "explain.png"]
    payload = json.loads((tmp_path / "why" / "explain.json").read_text())
    assert {"causes", "summary", "gap", "phases"} <= set(payload)
    assert {"cause", "score", "known", "status", "evidence", "advice", "check"} <= set(payload["causes"][0])


def test_cli_messages_name_flags_not_keyword_arguments(tmp_path, capsys):
    path = tmp_path / "log.csv"
    dropout_like().to_csv(path, index=False)
    assert main(["explain", str(path), "--out", str(tmp_path / "o")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    text = (tmp_path / "o" / "explain.json").read_text()
    for written in (out, text):
        assert "--scan" in written
        assert "scan=" not in written and "kfold=" not in written and "n_val=" not in written
    assert main(["explain", str(path), "--epochs", "20-30"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--epochs" in err and "epochs=" not in err
    assert main(["explain", str(path), "--epochs", "2-4", "--n-val", "500", "--quiet"]) == 0


@pytest.mark.parametrize("content, words", [
    ("", "is empty"),
    ("\n\n", "is empty"),
    ("epoch,loss,val_loss\n0,1e308,1e308\n1,0.5,0.4\n", "diverged"),
    ('{"loss": [1.0, 0.8, 0.6], "val_loss": [0.9, 0.7]}', "equal lengths"),
])
def test_bad_history_files_exit_2_with_one_line(tmp_path, capsys, content, words):
    path = tmp_path / ("h.json" if content.startswith("{") else "h.csv")
    path.write_text(content)
    assert main(["explain", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and words in err and "internal error" not in err
    with pytest.raises(HistoryError, match=words):
        explain(path)


def test_large_but_finite_losses_are_explained_and_plotted(tmp_path):
    history = {"loss": [3e29, 2e29, 1.5e29, 1.4e29], "val_loss": [2.9e29, 1.9e29, 1.45e29, 1.39e29]}
    result = explain(history)
    assert result.top["cause"] == "measurement_lag"
    json.loads(result.to_json())
    assert result.plot(tmp_path / "big.png").stat().st_size > 0


def test_unequal_lists_in_memory_are_an_error_but_other_metrics_may_differ():
    with pytest.raises(HistoryError, match="loss: 3, val_loss: 2"):
        explain({"loss": [1.0, 0.8, 0.6], "val_loss": [0.9, 0.7]})
    result = explain({"loss": [1.0, 0.8, 0.6], "val_loss": [0.9, 0.7, 0.55], "lr": [0.1] * 30})
    assert len(result.history) == 3
