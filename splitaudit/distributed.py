"""Optional dask backend: run fingerprinting on a ``distributed`` cluster.

The single-machine path (multiprocessing) stays the default and never imports
dask. With ``scheduler="local"`` a :class:`distributed.LocalCluster` is started
for the duration of the work; with ``scheduler="tcp://HOST:PORT"`` an existing
cluster is used. Workers must be able to ``import splitaudit`` (install it
there, or ``client.upload_file``) and read the image paths (shared storage).

Run against a real cluster::

    dask scheduler                                   # on the scheduler host
    dask worker tcp://HOST:8786 --nthreads 1         # on each worker host, as many as you like
    splitaudit scan DATA --out audit/ --scheduler tcp://HOST:8786
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from .errors import InputTypeError
from ._optional import require
from ._parallel import resolve_jobs

__all__ = ["dask_client"]


@contextlib.contextmanager
def dask_client(scheduler: Any, *, jobs: int | None = None) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``scheduler``.

    Parameters
    ----------
    scheduler : "local", an address ``"tcp://host:port"`` or a ``Client``
        ``"local"`` starts a LocalCluster of ``jobs`` single-threaded worker
        processes and shuts it down on exit; an address connects to a running
        scheduler; a Client is used as is (and not closed).
    """
    distributed = require("distributed", purpose="the dask backend (--scheduler)")
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler:
        raise InputTypeError(f"scheduler must be 'local', an address like 'tcp://host:8786' or a Client; "
                        f"got {scheduler!r}")
    if scheduler == "local":
        cluster = distributed.LocalCluster(n_workers=resolve_jobs(jobs), threads_per_worker=1,
                                           processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    client = distributed.Client(scheduler, timeout="20s")
    try:
        yield client
    finally:
        client.close()
