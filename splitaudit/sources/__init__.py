"""What the user already holds: a Hugging Face ``DatasetDict``
(:mod:`~splitaudit.sources.hf`) or a pair of torch ``Dataset``\\ s
(:mod:`~splitaudit.sources.torch_datasets`) to audit, and the loss history a
training framework wrote (:mod:`~splitaudit.sources.history`, read by the k-fold
harness and by :func:`~splitaudit.explain.explain`).

splitaudit reads images from files (fingerprints, thumbnails and the cache all
work on paths), so these adapters stream the rows once, one at a time, and give
every image a file:

* a row whose image is a local file (``Image`` feature with a ``path`` and no
  ``bytes``, as the ``imagefolder`` builder leaves them) is read where it is;
* otherwise the image's encoded bytes (the ``Image`` feature's ``bytes``, or a
  PIL image / tensor / array re-encoded losslessly as PNG) are written once into
  an *image store*: a folder named by content (``<sha1[:2]>/<sha1>.<ext>``)
  outside the user's data. By default it is ``images/`` in the fingerprint cache
  folder (``~/.cache/splitaudit/images``), so a second scan of the same data
  writes nothing and hits the fingerprint cache; ``store=False`` uses a
  temporary folder that lives as long as the returned split (and the scan result
  holding it). Delete the store at any time: it is rebuilt on demand.

The reported ``path`` of a row is its original path when it has one that no
other row shares (relative to the common folder of local files), else a stable
id ``<split name>[<row>]`` (``validation[123]``), with the original name after a
colon when there is one (``validation[123]:0.png``). Everything downstream
(pairs, columns, reports) is the same as for a folder.

Each reader returns a :class:`~splitaudit.sources.table.Table`, which
:meth:`ImageSplit.from_hf <splitaudit.dataset.ImageSplit.from_hf>` and
:meth:`ImageSplit.from_torch <splitaudit.dataset.ImageSplit.from_torch>` wrap.

Examples
--------
>>> from datasets import load_from_disk                         # doctest: +SKIP
>>> split = ImageSplit.from_hf(load_from_disk("fmnist"))         # doctest: +SKIP
>>> split = ImageSplit.from_torch(train_ds, val_ds)              # doctest: +SKIP
"""

from __future__ import annotations

from .hf import is_hf_dataset_dict, load_hf, read_hf
from .history import History, read_history
from .rows import to_pil
from .store import default_cache_dir, store_for_cache
from .torch_datasets import is_torch_dataset, read_torch

__all__ = ["History", "default_cache_dir", "is_hf_dataset_dict", "is_torch_dataset", "load_hf", "read_hf",
           "read_history", "read_torch", "store_for_cache", "to_pil"]
