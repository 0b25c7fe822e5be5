"""The pipeline (scan) runs the stages and hands the checks a context they only read; the report
renders what it is given. A check that cannot be loaded is an error finding, never a silent gap."""

from __future__ import annotations

import dataclasses
import json

import pytest

from splitaudit import scan
from splitaudit.checks.base import REGISTRY, AuditContext

from .test_robustness import _images


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    for seed, (split, label) in enumerate([(s, c) for s in ("train", "val") for c in ("a", "b")]):
        _images(root / split / label, 6, seed)  # two classes, so the difficulty probe has something to fit
    return root, scan(root, jobs=1, cache=False)


def test_unloadable_check_is_an_error_finding(small, monkeypatch):
    root, _ = small
    monkeypatch.setitem(REGISTRY, "ghost", ("no_such_module", "Ghost"))
    result = scan(root, jobs=1, cache=False, checks=["ghost", "exact_duplicates"])
    ghost = result.finding("ghost")
    assert ghost.status == "error" and "no_such_module" in ghost.message
    assert result.finding("exact_duplicates").status == "pass"


def test_every_registered_check_runs_by_default(small):
    _, result = small
    assert [f.check for f in result.findings] == list(REGISTRY)
    assert not [f.message for f in result.findings if f.status == "error"]
    difficulty = result.finding("difficulty")  # fitted by the pipeline, analysed by the check
    assert difficulty.status != "error" and difficulty.numbers["probe"]["features"] == "descriptor"


def test_context_is_read_only(small):
    _, result = small
    context = AuditContext(split=result.split, pairs=result.pairs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.pairs = None


def test_to_dict_is_what_save_writes(small, tmp_path):
    _, result = small
    written = result.save(tmp_path / "out", html=False)
    assert json.loads(written["summary"].read_text(encoding="utf-8")) == json.loads(json.dumps(result.to_dict()))
    assert "report" not in written


def test_notebook_display_comes_from_the_report(small):
    _, result = small
    html = result._repr_html_(max_pairs=2)
    assert html.startswith("<div class='splitaudit-nb'>") and "exact_duplicates" in html


def test_outputs_written_by_two_processes_are_the_same_files(small, tmp_path, monkeypatch):
    """Large scans write their files in two forked processes: the files (and the paths returned)
    are those of the one-process writer."""
    from splitaudit.report import files

    _, result = small
    one = result.save(tmp_path / "one")
    monkeypatch.setattr(files, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(files, "resolve_jobs", lambda jobs: 2)
    forks = []
    forked_map = files.forked_map
    monkeypatch.setattr(files, "forked_map", lambda *a: forks.append(a[-1]) or forked_map(*a))
    two = result.save(tmp_path / "two")
    assert forks == [2] and list(one) == list(two)
    for kind in one:
        assert one[kind].read_bytes() == two[kind].read_bytes(), kind
    assert not list((tmp_path / "two").glob("*.tmp"))
