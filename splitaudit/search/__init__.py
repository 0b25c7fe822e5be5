"""Nearest-neighbour search: the one layer every stage searches through.

- :mod:`.cosine`: float vectors (embeddings, thumbnails) by cosine: the ``k``
  nearest (:func:`cosine_topk`) or all within a threshold
  (:func:`cosine_range`), blocked BLAS or faiss; :class:`EmbeddingIndex`
  keeps a base on disk.
- :mod:`.hamming`: packed 64-bit hashes within a Hamming radius
  (:func:`hamming_range`: numpy, faiss or multi-index hashing, :mod:`.mih`).
- :mod:`.mirror`: flip-aware range search on intensity-normalised thumbnails.

Everything works in blocks, so memory stays bounded, and returns index arrays.
"""

from .cosine import COSINE_BACKENDS, EmbeddingIndex, cosine_range, cosine_topk, l2_normalize
from .hamming import HAMMING_BACKENDS, choose_backend, hamming_range

__all__ = [
    "cosine_topk",
    "cosine_range",
    "l2_normalize",
    "EmbeddingIndex",
    "hamming_range",
    "choose_backend",
    "COSINE_BACKENDS",
    "HAMMING_BACKENDS",
]
