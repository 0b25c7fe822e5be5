"""Per-image fingerprints: hashes, properties, thumbnails, descriptor, embeddings.

CONTRACT (other stages rely on it; extend, do not break):

``compute_fingerprints(split, *, mode="fast", jobs=None, cache=None, progress=None) -> Fingerprints``

``Fingerprints`` (frozen dataclass):

- ``table``: pandas DataFrame, one row per image in ``split.images`` order, columns
  ``path`` (relative), ``ok`` (bool), ``reason`` (str or None: why the file could not be read),
  ``bytes_sha1``, ``pixel_sha1`` (hex str, None when unreadable),
  ``phash``, ``dhash``, ``ahash``, ``phash_flip``, ``dhash_flip``, ``ahash_flip`` (uint64; 0 when unreadable;
  the 64-bit value equals ``int(str(imagehash.phash(img)), 16)`` in exact mode),
  ``width``, ``height``, ``aspect``, ``file_size``, ``format``, ``mode`` (original PIL mode),
  ``brightness``, ``contrast``, ``sharpness``, ``entropy``, ``colourfulness``, ``jpeg_quality`` (float, NaN if n/a).
- ``thumbs``: uint8 array (N, 32, 32), grayscale thumbnails (zeros for unreadable rows).
- ``descriptor``: float32 array (N, D), each row L2-normalised (zeros for unreadable rows).
- ``mode``: ``"exact"`` (bit-identical to imagehash) or ``"fast"`` (reduced decode).
"""
