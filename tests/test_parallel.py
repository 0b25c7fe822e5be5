"""splitaudit._parallel: results in input order, local pool and plain loop alike."""

import os

import pytest

from splitaudit._parallel import iter_map, ordered_map


def _square_with_pid(x):
    return x * x, os.getpid()


@pytest.mark.parametrize("jobs", [1, 2])
def test_iter_map_keeps_order(jobs):
    items = list(range(40))
    out = list(iter_map(_square_with_pid, items, jobs=jobs))
    assert [v for v, _ in out] == [x * x for x in items]
    pids = {pid for _, pid in out}
    assert (pids == {os.getpid()}) if jobs == 1 else (os.getpid() not in pids)


def test_iter_map_closed_early_stops_cleanly():
    gen = iter_map(_square_with_pid, list(range(200)), jobs=2)
    first = [next(gen)[0] for _ in range(3)]
    gen.close()  # terminates the pool; must not hang or raise
    assert first == [0, 1, 4]
    with pytest.raises(StopIteration):
        next(gen)


def test_ordered_map_matches_iter_map():
    items = list(range(25))
    chunked = ordered_map(lambda xs: [x + 1 for x in xs], items, jobs=1, chunksize=4)
    assert chunked == [x + 1 for x in items]


def _offset_with_pid(xs):
    from splitaudit._parallel import shared
    return [(x + shared()["offset"], os.getpid()) for x in xs]


@pytest.mark.parametrize("jobs", [1, 2])
def test_forked_map_shares_one_object_with_its_workers(jobs):
    from splitaudit._parallel import forked_map, shared
    chunks = [list(range(i, i + 3)) for i in range(0, 12, 3)]
    out = forked_map(_offset_with_pid, chunks, {"offset": 100}, jobs=jobs)
    assert [v for v, _ in out] == [x + 100 for x in range(12)]
    pids = {pid for _, pid in out}
    assert (pids == {os.getpid()}) if jobs == 1 else (os.getpid() not in pids)
    assert shared() is None  # not kept alive after the map
