"""The CLI contract: files, columns, findings, exit codes."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import splitaudit
from splitaudit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _demo():
    spec = importlib.util.spec_from_file_location("demo", ROOT / "examples" / "demo.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def demo_scan(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    data, out = base / "data", base / "out"
    planted = _demo().build(data, n_train_per_class=12, n_val_per_class=4)
    code = main(["scan", str(data), "--out", str(out), "--no-cache", "--jobs", "1", "--quiet"])
    return data, out, planted, code


def test_outputs_and_columns(demo_scan):
    data, out, planted, code = demo_scan
    assert code == 0
    for name in ("summary.json", "duplicates.csv", "within_duplicates.csv", "images.csv", "report.html"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert {"n_train", "n_val", "unreadable", "findings"} <= set(summary)
    assert summary["n_train"] == 48 and summary["n_val"] == 16 + len(planted)
    checks = {f["check"]: f for f in summary["findings"]}
    assert {"exact_duplicates", "near_duplicates", "label_conflicts"} <= set(checks)
    for f in summary["findings"]:
        assert f["status"] in {"pass", "warn", "fail", "skipped", "error"}
    assert checks["label_conflicts"]["status"] in ("warn", "fail")
    pairs = pd.read_csv(out / "duplicates.csv")
    assert {"val_path", "train_path", "kind", "score"} <= set(pairs.columns)
    assert set(pairs["kind"]) <= {"exact", "near", "overlap"}
    assert pairs["score"].between(0, 1).all()
    found = set(zip(pairs["val_path"], pairs["train_path"]))
    missed = [v for v, t in planted.items() if (v, t) not in found]
    assert not missed, missed
    # no look-alikes: every reported pair is a planted copy
    assert len(pairs) == len(planted), pairs[["val_path", "train_path", "score"]]
    images = pd.read_csv(out / "images.csv")
    assert len(images) == summary["n_images"]
    assert {"path", "split", "label", "cluster", "has_cross_duplicate"} <= set(images.columns)


def test_fail_on_leakage_exit_1(demo_scan, tmp_path, capsys):
    data, _, _, _ = demo_scan
    code = main(["scan", str(data), "--out", str(tmp_path / "o"), "--no-cache", "--jobs", "1",
                 "--quiet", "--fail-on", "leakage"])
    assert code == 1
    assert "--fail-on leakage triggered" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["scan", "--out", "x"], "give ROOT"),
    (["scan", "/nonexistent/place", "--out", "x"], "not a directory"),
    (["scan", "--train", "a", "--out", "x"], "give ROOT"),
    (["scan", ".", "--mode", "turbo", "--out", "x"], "invalid choice"),
    (["scan", ".", "--verifier", "learned", "--out", "x"], "unrecognized arguments: --verifier"),
    (["scan", ".", "--min-score", "1.5", "--out", "x"], "--min-score must be between 0 and 1"),
])
def test_usage_errors_exit_2(argv, fragment, capsys):
    with pytest.raises(SystemExit) if "turbo" in argv or "--verifier" in argv else _nullcontext():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1  # one line


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_python_m_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "splitaudit", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and splitaudit.__version__ in proc.stdout


def test_api_result_object(demo_scan, tmp_path):
    data, _, planted, _ = demo_scan
    result = splitaudit.scan(data, cache=False, jobs=1)
    assert isinstance(result.pairs, pd.DataFrame)
    assert len(result.pairs) == len(planted)
    html = result.to_html(tmp_path / "r.html")
    assert html.read_text().startswith("<!doctype html>")
    written = result.save(tmp_path / "saved")
    assert written["summary"].is_file()


def test_check_new_builds_index_and_finds_planted(demo_scan, tmp_path, capsys):
    data, _, planted, _ = demo_scan
    index_dir, out = tmp_path / "index", tmp_path / "matches.csv"
    code = main(["check-new", str(data / "val"), "--index", str(index_dir), "--build", str(data),
                 "--out", str(out), "--no-cache", "--jobs", "1", "--quiet", "--fail-on-match"])
    assert code == 1
    matches = pd.read_csv(out)
    assert {"new_path", "train_path", "kind", "score"} <= set(matches.columns)
    assert set(matches["train_path"]) == set(planted.values())
    # reloading the saved index gives the same matches
    code = main(["check-new", str(data / "val"), "--index", str(index_dir), "--out", str(tmp_path / "m2.csv"),
                 "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 0
    assert pd.read_csv(tmp_path / "m2.csv").equals(matches)
    # an index from an older fingerprint algorithm (or another mode) is a clear input error, exit 2
    meta_file = index_dir / "index.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "algorithm": "fp0"}))
    capsys.readouterr()
    code = main(["check-new", str(data / "val"), "--index", str(index_dir), "--out", str(tmp_path / "m3.csv"),
                 "--no-cache", "--jobs", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "fingerprint algorithm 'fp0'" in err and "Rebuild the index" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("rows, fragment", [
    ("file,split\na.png,train\n", "missing ['path']"),
    ("path,split\na.png,holdout\n", "unknown split names"),
    ("path,split\n../a.png,train\n", "outside the root"),
    ("path,split\na.png,train\na.png,val\n", "repeat a path"),
])
def test_bad_manifest_exit_2(tmp_path, capsys, rows, fragment):
    csv = tmp_path / "m.csv"
    csv.write_text(rows)
    code = main(["scan", "--manifest", str(csv), "--out", str(tmp_path / "out"), "--no-cache", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_resplit_writes_leak_free_manifest(demo_scan, tmp_path):
    data, _, planted, _ = demo_scan
    out = tmp_path / "split"
    code = main(["resplit", str(data), "--k", "4", "--val-fraction", "0.25", "--out", str(out),
                 "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 0
    manifest = pd.read_csv(out / "manifest.csv")
    assert {"path", "label", "group", "fold", "split"} <= set(manifest.columns)
    assert set(manifest["fold"]) == {0, 1, 2, 3}
    fold_of = dict(zip(manifest["path"], manifest["fold"]))
    split_of = dict(zip(manifest["path"], manifest["split"]))
    for val_path, train_path in planted.items():  # each planted copy stays with its original
        assert fold_of[val_path] == fold_of[train_path]
        assert split_of[val_path] == split_of[train_path]
    assert abs((manifest["split"] == "val").mean() - 0.25) < 0.1


def test_kfold_and_explain_and_audit_commands(demo_scan, tmp_path):
    data, _, _, _ = demo_scan
    code = main(["kfold", str(data), "--k", "3", "--epochs", "3", "--out", str(tmp_path / "kf"),
                 "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 0
    kf = json.loads((tmp_path / "kf" / "kfold.json").read_text())
    assert {"original", "folds", "verdict"} <= set(kf) and len(kf["folds"]) == 3
    assert {"persists", "n_folds_val_lower", "mean_gap", "ci_low", "ci_high", "percentile_of_original",
            "message"} <= set(kf["verdict"])
    assert (tmp_path / "kf" / "kfold.png").stat().st_size > 0
    history = tmp_path / "log.csv"
    history.write_text("epoch,loss,val_loss\n0,1.2,0.95\n1,0.8,0.66\n2,0.62,0.55\n3,0.52,0.48\n")
    code = main(["explain", str(history), "--kfold", str(tmp_path / "kf"), "--out", str(tmp_path / "why"),
                 "--quiet"])
    assert code == 0
    causes = json.loads((tmp_path / "why" / "explain.json").read_text())["causes"]
    assert [c["cause"] for c in causes][0] == "measurement_lag"
    code = main(["audit", str(data), "--history", str(history), "--k", "3", "--epochs", "2",
                 "--out", str(tmp_path / "audit"), "--no-cache", "--jobs", "1", "--quiet"])
    assert code == 0
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    assert {"verdict", "scan", "kfold", "explain"} <= set(report)
    assert "<h2>Why is validation loss lower? Ranked causes</h2>" in (tmp_path / "audit" / "report.html").read_text()


def test_explain_unknown_history_exit_2(tmp_path, capsys):
    bad = tmp_path / "h.csv"
    bad.write_text("step,accuracy\n1,0.5\n")
    code = main(["explain", str(bad), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert "columns" in capsys.readouterr().err


def test_scan_with_embeddings_and_the_default_cache(demo_scan, tmp_path, monkeypatch, capsys):
    """`scan --embed MODEL` with the cache on (the default): embeddings are computed, cached beside
    the fingerprints, and reach the pairs' evidence; the second run reads them back."""
    torch = pytest.importorskip("torch")
    from .test_embeddings import tiny_cnn

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    data, _, planted, _ = demo_scan
    model_file = tmp_path / "tiny.pt"
    torch.jit.script(tiny_cnn()).save(str(model_file))
    outs = []
    for run in range(2):
        out = tmp_path / f"out{run}"
        code = main(["scan", str(data), "--out", str(out), "--embed", str(model_file), "--jobs", "1", "--quiet"])
        assert code == 0, capsys.readouterr().err
        outs.append(pd.read_csv(out / "duplicates.csv"))
    assert (tmp_path / "xdg" / "splitaudit").is_dir()
    for pairs in outs:
        assert pairs["embedding_cos"].notna().all() and len(pairs) >= len(planted)
    assert outs[0]["embedding_cos"].tolist() == outs[1]["embedding_cos"].tolist()
    api = splitaudit.scan(data, embed=tiny_cnn(), embed_options={"layer": "conv2", "input_size": 32}, jobs=1,
                          checks=["exact_duplicates", "near_duplicates"])
    assert api.pairs["embedding_cos"].notna().all()


def test_a_bug_exits_3_not_1(demo_scan, tmp_path, monkeypatch, capsys):
    """An unexpected exception is reported as an internal error (exit 3), never as exit 1,
    which a CI job reads as "--fail-on fired"."""
    scan_module = sys.modules["splitaudit.scan"]  # the package attribute `scan` is the function

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(scan_module, "scan", broken)
    data = demo_scan[0]
    code = main(["scan", str(data), "--out", str(tmp_path / "o"), "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert "internal error (RuntimeError: simulated bug)" in err and "Traceback" in err


def test_report_says_expected_vs_observed_in_words(demo_scan):
    html = (demo_scan[1] / "report.html").read_text()
    # the demo has no duplicates inside either split: no degenerate "expected 0.0, p = 0" sentence
    assert "Neither split holds duplicate pairs" in html and "which chance does not explain" in html
    assert "would put about 0.0" not in html
    assert '"estimator"' not in html and "rho * n_train" not in html  # no raw JSON in the page text
    assert "embedding_cos=" not in html  # no evidence column that is empty for every pair (embeddings off)
    assert "thumb_rms=" in html


def test_terminal_summary_without_quiet(demo_scan, tmp_path, capsys):
    """The default (not --quiet) run prints the summary: findings, top pairs, files written."""
    data, _, planted, _ = demo_scan
    out = tmp_path / "loud"
    code = main(["scan", str(data), "--out", str(out), "--no-cache", "--jobs", "1"])
    text = " ".join(capsys.readouterr().out.split())  # rich wraps long lines at the terminal width
    assert code == 0
    assert "near_duplicates" in text and "top cross-split pairs" in text
    assert f"wrote {out}" in text and "summary.json" in text and "report.html" in text
    assert re.search(r" val/\S+ = train/\S+", text)  # val path = train path, each named once


def test_scan_min_score_filters_and_is_recorded(demo_scan, tmp_path, capsys):
    """`--min-score` keeps the pairs at or above it, a subset of the default's, and summary.json
    records it with the other duplicate options; an option find_duplicates lacks is refused."""
    from splitaudit.errors import SplitAuditError

    data, out, planted, _ = demo_scan
    default = pd.read_csv(out / "duplicates.csv")
    strict_out = tmp_path / "strict"
    code = main(["scan", str(data), "--out", str(strict_out), "--no-cache", "--jobs", "1", "--quiet",
                 "--checks", "exact_duplicates,near_duplicates", "--min-score", "0.99"])
    assert code == 0, capsys.readouterr().err
    strict = pd.read_csv(strict_out / "duplicates.csv")
    used = json.loads((strict_out / "summary.json").read_text())["options"]["duplicates"]
    assert used["min_score"] == 0.99 and "verifier" not in used
    key = lambda df: set(zip(df["val_path"], df["train_path"]))
    assert key(strict) <= key(default) and (strict["score"] >= 0.99).all()
    with pytest.raises((SplitAuditError, TypeError)):
        splitaudit.scan(data, cache=False, jobs=1, checks=["near_duplicates"],
                        duplicate_options={"verifier": "learned"})


def test_scan_without_within_search_makes_no_chance_claim(demo_scan, tmp_path):
    """within=False: nothing was measured inside the splits, so no "chance" verdict either way."""
    data = demo_scan[0]
    result = splitaudit.scan(data, cache=False, jobs=1, checks=["exact_duplicates", "near_duplicates"],
                             duplicate_options={"within": False})
    near = next(f for f in result.findings if f.check == "near_duplicates")
    assert near.numbers["expected"] is None and near.numbers["within_searched"] is False
    assert "not searched" in near.message and "chance, so" not in near.message
    result.to_html(tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert "within=False" in html and "which chance does not explain" not in html
    usual = next(f for f in splitaudit.scan(data, cache=False, jobs=1, checks=["near_duplicates"]).findings)
    assert usual.numbers["within_searched"] is True and usual.numbers["expected"] is not None
