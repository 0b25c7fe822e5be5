"""Property-based tests of the manifest parser: any manifest either parses into
a consistent split or raises ManifestError, never anything else."""

from __future__ import annotations

import csv as csv_module
import os

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from splitaudit import ImageSplit, ManifestError

SPLITS = ["train", "Train", "TRAINING", "val", "valid", "Validation", "test", "dev", "holdout", "", " val "]
segment = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
                  min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
rel_path = st.lists(st.one_of(segment, st.just(".."), st.just(".")), min_size=1, max_size=3).map("/".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(rel_path, st.sampled_from(SPLITS),
                               st.one_of(st.none(), st.integers(0, 3).map(str)),
                               st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32))),
                     min_size=1, max_size=12))
def test_manifest_parses_or_raises_clearly(tmp_path, rows):
    frame = pd.DataFrame(rows, columns=["path", "split", "label", "target"])
    try:
        split = ImageSplit.from_manifest(frame, root=tmp_path)
    except ManifestError as exc:
        assert str(exc)  # a message, one of the documented kinds
        return
    images = split.images
    assert len(images) == len(frame)
    assert set(images["split"]) <= {"train", "val"}
    assert images["path"].is_unique
    root = os.path.abspath(tmp_path)
    for rel, full in zip(images["path"], images["abspath"]):
        assert full.startswith(root + os.sep)          # nothing escapes the root
        assert not rel.startswith("/") and ".." not in rel.split("/")
        assert "\\" not in rel
    assert split.n_train + split.n_val == len(frame)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(segment, min_size=1, max_size=6, unique=True))
def test_csv_round_trip_keeps_paths(tmp_path, names):
    frame = pd.DataFrame({"path": [f"img/{n}.png" for n in names],
                          "split": ["train" if i % 2 else "val" for i in range(len(names))]})
    csv = tmp_path / "m.csv"
    frame.to_csv(csv, index=False, quoting=csv_module.QUOTE_ALL)
    split = ImageSplit.from_manifest(csv)
    assert sorted(split.images["path"]) == sorted(os.path.normpath(p).replace(os.sep, "/") for p in frame["path"])
