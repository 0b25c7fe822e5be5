"""Every argument error of the public API is a :class:`splitaudit.SplitAuditError`.

One table walks the public functions and classes with bad arguments (wrong types, out-of-range
numbers, unknown choices and options, missing paths) and checks each error three ways: it is
caught by ``except SplitAuditError``, it is a ``ValueError`` for a wrong value or a ``TypeError``
for a wrong type, and its message names the parameter. Inputs are tiny images in a temporary folder.
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import splitaudit
from splitaudit import (
    ImageSplit,
    InputError,
    InputTypeError,
    LeakAwareSplitter,
    SplitAuditError,
    TrainingIndex,
    audit,
    combine_groups,
    compute_fingerprints,
    explain,
    find_duplicates,
    kfold,
    leak_free_split,
    read_history,
    resplit_manifest,
    scan,
)
from splitaudit import search
from splitaudit.checks.base import CheckResult

V, T = ValueError, TypeError
Q = np.eye(4, dtype=np.float32)
H64 = np.arange(4, dtype=np.uint64)
FEATURES = np.ones((12, 2))


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """A 12-image split (2 classes, train/val), its fingerprints and index, a history, a missing path."""
    base = tmp_path_factory.mktemp("args")
    root = base / "data"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    history = base / "history.csv"
    history.write_text("epoch,train_loss,val_loss\n1,1.0,0.9\n2,0.8,0.7\n", encoding="utf-8")
    split = ImageSplit.from_folder(root)
    fingerprints = compute_fingerprints(split, jobs=1, cache=False)
    index = TrainingIndex.from_fingerprints(fingerprints, split.images, root=split.root)
    return SimpleNamespace(root=root, split=split, images=split.images, fp=fingerprints, index=index,
                           history=history, missing=base / "missing", out=base / "out")


def _scan(c, **kw):
    return scan(c.root, cache=False, jobs=1, **kw)


def _split(splitter, n=4, groups=None):
    return list(splitter.split(np.ones(n), None, groups))


# (case id, call, error family, fragment the message must hold: the parameter's name)
CASES = [
    # scan
    ("scan-mode", lambda c: _scan(c, mode="slow"), V, "mode"),
    ("scan-jobs-type", lambda c: scan(c.root, jobs="2", cache=False), T, "jobs"),
    ("scan-root-type", lambda c: scan(5, cache=False, jobs=1), T, "root"),
    ("scan-root-missing", lambda c: scan(c.missing, cache=False, jobs=1), V, "root"),
    ("scan-train-alone", lambda c: scan(train=c.root / "train", cache=False, jobs=1), V, "train and val"),
    ("scan-checks-unknown", lambda c: _scan(c, checks=["nope"]), V, "checks"),
    ("scan-checks-str", lambda c: _scan(c, checks="difficulty"), T, "checks"),
    ("scan-duplicate-options-key", lambda c: _scan(c, duplicate_options={"bogus": 1}), V, "duplicate_options"),
    ("scan-duplicate-options-type", lambda c: _scan(c, duplicate_options=[1]), T, "duplicate_options"),
    ("scan-embed-options-type", lambda c: _scan(c, embed_options=[1]), T, "embed_options"),
    ("scan-check-options-key", lambda c: _scan(c, check_options={"drift": {}}), V, "check_options"),
    ("scan-random-state", lambda c: _scan(c, random_state="x"), T, "random_state"),
    ("scan-cache", lambda c: scan(c.root, cache=3.5, jobs=1), T, "cache"),
    ("scan-progress", lambda c: _scan(c, progress=3), T, "progress"),
    # compute_fingerprints
    ("fingerprints-mode", lambda c: compute_fingerprints(c.split, mode="x", cache=False, jobs=1), V, "mode"),
    ("fingerprints-jobs", lambda c: compute_fingerprints(c.split, jobs="a", cache=False), T, "jobs"),
    ("fingerprints-chunksize", lambda c: compute_fingerprints(c.split, chunksize=0, cache=False, jobs=1), V,
     "chunksize"),
    ("fingerprints-max-pixels", lambda c: compute_fingerprints(c.split, max_pixels=-1, cache=False, jobs=1), V,
     "max_pixels"),
    ("fingerprints-input", lambda c: compute_fingerprints(5, cache=False, jobs=1), T, "split_or_paths"),
    # find_duplicates
    ("duplicates-radius", lambda c: find_duplicates(c.fp, c.images, hash_radius=-1, jobs=1), V, "hash_radius"),
    ("duplicates-radius-type", lambda c: find_duplicates(c.fp, c.images, hash_radius="4", jobs=1), T,
     "hash_radius"),
    ("duplicates-min-score", lambda c: find_duplicates(c.fp, c.images, min_score=2.0, jobs=1), V, "min_score"),
    ("duplicates-min-corr-nan", lambda c: find_duplicates(c.fp, c.images, min_corr=float("nan"), jobs=1), V,
     "min_corr"),
    ("duplicates-backend", lambda c: find_duplicates(c.fp, c.images, backend="x", jobs=1), V, "backend"),
    ("duplicates-within", lambda c: find_duplicates(c.fp, c.images, within="yes", jobs=1), T, "within"),
    ("duplicates-fingerprints", lambda c: find_duplicates("fp", c.images, jobs=1), T, "fingerprints"),
    ("duplicates-images", lambda c: find_duplicates(c.fp, "x", jobs=1), T, "images"),
    ("duplicates-embeddings", lambda c: find_duplicates(c.fp, c.images, embeddings=np.ones((2, 3)), jobs=1), V,
     "embeddings"),
    ("duplicates-jobs", lambda c: find_duplicates(c.fp, c.images, jobs="x"), T, "jobs"),
    # audit (all refused before the scan runs)
    ("audit-n-splits", lambda c: audit(c.root, n_splits=1, cache=False, jobs=1), V, "n_splits"),
    ("audit-n-splits-type", lambda c: audit(c.root, n_splits="5", cache=False, jobs=1), T, "n_splits"),
    ("audit-kfold-options", lambda c: audit(c.root, kfold_options=3, cache=False, jobs=1), T, "kfold_options"),
    ("audit-scan-option", lambda c: audit(c.root, bogus=3, cache=False, jobs=1), V, "scan_options"),
    # resplit
    ("combine-neither", lambda c: combine_groups(None), V, "cluster_ids"),
    ("combine-length", lambda c: combine_groups([0, 1], [0, 1, 2]), V, "user_groups"),
    ("combine-type", lambda c: combine_groups(5), T, "cluster_ids"),
    ("leak-free-fraction", lambda c: leak_free_split(c.images, val_fraction=1.5), V, "val_fraction"),
    ("leak-free-fraction-type", lambda c: leak_free_split(c.images, val_fraction="0.2"), T, "val_fraction"),
    ("leak-free-images", lambda c: leak_free_split(5), T, "images"),
    ("leak-free-clusters", lambda c: leak_free_split(c.images, [0, 1]), V, "groups"),
    ("leak-free-random-state", lambda c: leak_free_split(c.images, random_state="x"), T, "random_state"),
    ("resplit-n-splits", lambda c: resplit_manifest(c.images, n_splits=1), V, "n_splits"),
    ("resplit-n-splits-type", lambda c: resplit_manifest(c.images, n_splits="3"), T, "n_splits"),
    ("resplit-val-fraction", lambda c: resplit_manifest(c.images, n_splits=2, val_fraction=0), V, "val_fraction"),
    ("splitter-n-splits", lambda c: _split(LeakAwareSplitter(1)), V, "n_splits"),
    ("splitter-n-splits-type", lambda c: _split(LeakAwareSplitter("3")), T, "n_splits"),
    ("splitter-stratify", lambda c: _split(LeakAwareSplitter(2, stratify="yes")), V, "stratify"),
    ("splitter-shuffle", lambda c: _split(LeakAwareSplitter(2, shuffle="no")), T, "shuffle"),
    ("splitter-random-state", lambda c: _split(LeakAwareSplitter(2, random_state="x")), T, "random_state"),
    ("splitter-no-effect", lambda c: _split(LeakAwareSplitter(2, shuffle=False, random_state=0)), V,
     "random_state"),
    ("splitter-groups", lambda c: _split(LeakAwareSplitter(2), groups=[0, 1]), V, "groups"),
    # retrain
    ("kfold-n-splits", lambda c: kfold(c.images, n_splits=1), V, "n_splits"),
    ("kfold-probe", lambda c: kfold(c.images, probe="svm"), V, "probe"),
    ("kfold-epochs", lambda c: kfold(c.images, epochs=0, features=FEATURES), V, "epochs"),
    ("kfold-features", lambda c: kfold(c.images, features=np.ones((3, 2))), V, "features"),
    ("kfold-images", lambda c: kfold(5), T, "split_images"),
    ("kfold-repeats", lambda c: kfold(c.images, repeats=0), V, "repeats"),
    ("kfold-last-epochs", lambda c: kfold(c.images, last_epochs="x"), T, "last_epochs"),
    ("kfold-probe-option", lambda c: kfold(c.images, features=FEATURES, bogus=1), T, "bogus"),
    ("kfold-random-state", lambda c: kfold(c.images, features=FEATURES, random_state="x"), T, "random_state"),
    # explain and histories
    ("explain-missing", lambda c: explain(c.missing), V, "history"),
    ("explain-type", lambda c: explain(5), T, "path_or_obj"),
    ("explain-n-val", lambda c: explain(c.history, n_val=-3), V, "n_val"),
    ("explain-n-val-type", lambda c: explain(c.history, n_val="3"), T, "n_val"),
    ("explain-epochs", lambda c: explain(c.history, epochs="x-y"), V, "epochs"),
    ("explain-scan", lambda c: explain(c.history, scan=5), T, "scan"),
    ("explain-scan-missing", lambda c: explain(c.history, scan=c.missing), V, "scan"),
    ("explain-kfold", lambda c: explain(c.history, kfold=5), T, "kfold"),
    ("explain-difficulty", lambda c: explain(c.history, difficulty=5), T, "difficulty"),
    ("history-missing", lambda c: read_history(c.missing), V, "history"),
    ("history-type", lambda c: read_history(5), T, "path_or_obj"),
    ("history-steps", lambda c: read_history(c.history, steps_per_epoch=0), V, "steps_per_epoch"),
    # the split and the training index
    ("folder-missing", lambda c: ImageSplit.from_folder(c.missing), V, "root"),
    ("folder-type", lambda c: ImageSplit.from_folder(5), T, "root"),
    ("dirs-type", lambda c: ImageSplit.from_dirs(5, 6), T, "train"),
    ("manifest-missing", lambda c: ImageSplit.from_manifest(c.missing), V, "manifest"),
    ("manifest-type", lambda c: ImageSplit.from_manifest(5), T, "manifest"),
    ("index-build-missing", lambda c: TrainingIndex.build(c.missing, jobs=1), V, "source"),
    ("index-build-type", lambda c: TrainingIndex.build(5, jobs=1), T, "source"),
    ("index-build-mode", lambda c: TrainingIndex.build(c.split, mode="x", jobs=1), V, "mode"),
    ("index-load-missing", lambda c: TrainingIndex.load(c.missing), V, "path"),
    ("index-save-type", lambda c: c.index.save(5), T, "path"),
    ("index-save-inside", lambda c: c.index.save(c.root / "index"), V, "path"),
    ("index-check-within", lambda c: c.index.check(c.root / "val", within=True), V, "within"),
    ("index-check-option", lambda c: c.index.check(c.root / "val", bogus=1), V, "duplicate_options"),
    ("index-check-missing", lambda c: c.index.check(c.missing), V, "paths_or_split"),
    ("index-check-type", lambda c: c.index.check(5), T, "paths_or_split"),
    ("check-result-status", lambda c: CheckResult(check="x", status="bad", message=""), V, "status"),
    # the search layer
    ("cosine-k", lambda c: search.cosine_topk(Q, Q, 0), V, "k"),
    ("cosine-k-type", lambda c: search.cosine_topk(Q, Q, "2"), T, "k"),
    ("cosine-backend", lambda c: search.cosine_topk(Q, Q, 2, backend="mih"), V, "backend"),
    ("cosine-dims", lambda c: search.cosine_topk(Q, np.ones((3, 5)), 2), V, "base"),
    ("cosine-block", lambda c: search.cosine_topk(Q, Q, 2, block=0), V, "block"),
    ("cosine-threshold", lambda c: search.cosine_range(Q, Q, 2.0), V, "threshold"),
    ("cosine-threshold-type", lambda c: search.cosine_range(Q, Q, "0.5"), T, "threshold"),
    ("l2-normalize-1d", lambda c: search.l2_normalize(np.ones(3)), V, "x"),
    ("embedding-index-ids", lambda c: search.EmbeddingIndex(Q, ids=["a"]), V, "ids"),
    ("embedding-index-backend", lambda c: search.EmbeddingIndex(Q, backend="x"), V, "backend"),
    ("hamming-radius", lambda c: search.hamming_range(H64, H64, -1), V, "radius"),
    ("hamming-radius-type", lambda c: search.hamming_range(H64, H64, "1"), T, "radius"),
    ("hamming-backend", lambda c: search.hamming_range(H64, H64, 1, backend="hnsw"), V, "backend"),
    ("hamming-dtype", lambda c: search.hamming_range(Q, Q, 1), T, "queries"),
    ("choose-backend-radius", lambda c: search.choose_backend(H64, H64, 99), V, "radius"),
]


@pytest.mark.parametrize("call, family, fragment", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_argument_is_a_splitaudit_error(ctx, call, family, fragment):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SplitAuditError) as info:
            call(ctx)
    assert isinstance(info.value, family), type(info.value).__mro__
    assert (InputTypeError if family is TypeError else ValueError) in type(info.value).__mro__
    assert fragment in str(info.value), str(info.value)


def test_case_ids_are_unique():
    ids = [case[0] for case in CASES]
    assert len(ids) == len(set(ids))


def test_error_families():
    assert issubclass(InputError, ValueError) and issubclass(InputError, SplitAuditError)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, SplitAuditError)
    assert "InputTypeError" in splitaudit.__all__


@pytest.mark.parametrize("call", [
    lambda c: audit(c.root, k=2, n_splits=3, history=None, cache=False, jobs=1, checks=[]),
    lambda c: resplit_manifest(c.images, k=2),
    lambda c: kfold(c.images, k=2, features=FEATURES, epochs=1),
], ids=["audit", "resplit_manifest", "kfold"])
def test_old_k_keyword_warns_and_still_works(ctx, call):
    with pytest.warns(DeprecationWarning, match=r"k=\.\.\.\) is deprecated; pass n_splits="):
        call(ctx)
