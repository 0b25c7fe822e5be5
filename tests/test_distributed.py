"""The dask backend gives exactly what the local path gives (one LocalCluster per module)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from splitaudit import ImageSplit
from splitaudit.fingerprints import compute_fingerprints
from splitaudit.fingerprints.compute import DASK_MIN_CHUNKSIZE
from splitaudit.scan import scan

from .conftest import write_split_folder

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from splitaudit.distributed import dask_client

    with dask_client("local", jobs=2) as c:
        yield c


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask_split")
    planted = write_split_folder(root, n_train=5, n_val=3, transforms=("jpeg_q30", "flip"),
                                 n_look_alikes=1, within=("same_bytes",))
    (root / "train" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return planted


def _same_fingerprints(a, b) -> None:
    pd.testing.assert_frame_equal(a.table, b.table)
    np.testing.assert_array_equal(a.thumbs, b.thumbs)
    np.testing.assert_array_equal(a.descriptor, b.descriptor)
    assert a.mode == b.mode


def test_local_cluster_fingerprints_match_local_path(client, small_split):
    split = ImageSplit.from_folder(small_split.root)
    local = compute_fingerprints(split, jobs=1, chunksize=4)
    seen = []
    remote = compute_fingerprints(split, jobs=2, chunksize=4, client=client,
                                  progress=lambda s, d, t: seen.append((s, d, t)))
    _same_fingerprints(local, remote)
    bad = remote.table[remote.table["path"] == "train/cat/broken.png"]
    assert len(bad) == 1 and not bad["ok"].iloc[0]
    assert isinstance(bad["reason"].iloc[0], str) and bad["reason"].iloc[0]
    assert remote.stats["unreadable"] == local.stats["unreadable"] == 1
    # Progress is reported from this process, ends at the total.
    assert seen and seen[-1][1] == seen[-1][2] == len(split)
    # On dask, chunksize=4 is raised to DASK_MIN_CHUNKSIZE: all images go in one task (one report).
    assert len(split) < DASK_MIN_CHUNKSIZE
    assert [d for _, d, _ in seen if d > 0] == [len(split)]


def test_scan_on_local_cluster_matches_local_scan(client, small_split):
    kwargs = dict(cache=False, checks=["exact_duplicates", "near_duplicates", "label_conflicts"])
    local = scan(small_split.root, jobs=1, **kwargs)
    remote = scan(small_split.root, jobs=2, scheduler=client, **kwargs)
    _same_fingerprints(local.fingerprints, remote.fingerprints)
    pd.testing.assert_frame_equal(local.pairs, remote.pairs)
    pd.testing.assert_frame_equal(local.within, remote.within)
    pd.testing.assert_frame_equal(local.unreadable, remote.unreadable)
    assert [(f.check, f.status) for f in local.findings] == [(f.check, f.status) for f in remote.findings]
    assert remote.options["scheduler"] is not None
    # The planted copies are really there (the comparison is not between two empty tables).
    found = set(zip(remote.pairs["val_path"], remote.pairs["train_path"]))
    for val_path, train_path in small_split.copies.values():
        assert (val_path, train_path) in found


def test_scan_with_cache_on_cluster_reuses_it(client, small_split, tmp_path):
    cache = tmp_path / "cache"
    first = scan(small_split.root, jobs=2, scheduler=client, cache=cache, checks=["exact_duplicates"])
    again = scan(small_split.root, jobs=1, cache=cache, checks=["exact_duplicates"])
    assert first.fingerprints.stats["computed"] == len(first.split)
    assert again.fingerprints.stats["cached"] == len(first.split)
    _same_fingerprints(first.fingerprints, again.fingerprints)


def test_dask_client_rejects_bad_scheduler():
    from splitaudit.distributed import dask_client

    with pytest.raises(TypeError, match="scheduler"):
        with dask_client(8786):
            pass
    with pytest.raises(TypeError, match="scheduler"):
        with dask_client(""):
            pass


def test_local_path_does_not_import_dask(small_split):
    import subprocess
    import sys

    code = ("import sys; from splitaudit.scan import scan; "
            f"scan({str(small_split.root)!r}, jobs=1, cache=False, checks=['exact_duplicates']); "
            "print('dask' in sys.modules or 'distributed' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
