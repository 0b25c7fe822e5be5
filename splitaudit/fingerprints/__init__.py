"""Per-image fingerprints: hashes, properties, thumbnails, descriptor, embeddings.

CONTRACT (other stages rely on it; extend, do not break):

``compute_fingerprints(split_or_paths, *, mode="fast", jobs=None, cache=None, progress=None,
chunksize=None, max_pixels=PIL's MAX_IMAGE_PIXELS, whash=False) -> Fingerprints``

``split_or_paths`` is an :class:`~splitaudit.ImageSplit` or a list of paths;
rows follow its order. ``cache``: ``None`` (off), ``True`` (``~/.cache/splitaudit``),
a path, or a :class:`FingerprintCache`.

``Fingerprints`` (frozen dataclass):

- ``table``: pandas DataFrame, one row per image in ``split.images`` order, columns
  ``path`` (relative for a split; absolute for a path list), ``ok`` (bool), ``reason`` (str or None:
  why the file could not be read), ``bytes_sha1`` (hex str of the file bytes; None only when the
  file could not be read at all), ``pixel_sha1`` (hex str of decoded pixels + mode + size;
  None when unreadable; fast mode hashes a JPEG's DCT-scaled decode, see ``compute``),
  ``phash``, ``dhash``, ``ahash``, ``phash_flip``, ``dhash_flip``, ``ahash_flip`` (uint64; 0 when
  unreadable; the 64-bit value equals ``int(str(imagehash.phash(img)), 16)`` in exact mode;
  ``*_flip`` are the hashes of the horizontally mirrored image), optional ``whash``,
  ``width``, ``height`` (as displayed, after EXIF orientation), ``aspect``, ``file_size``,
  ``format``, ``mode`` (original PIL mode),
  ``brightness``, ``contrast``, ``sharpness``, ``entropy``, ``colourfulness``, ``jpeg_quality``
  (float, NaN if n/a; pixel statistics on a 32x32 RGB version so they compare across sizes).
- ``thumbs``: uint8 array (N, 32, 32), grayscale thumbnails (the pHash input; zeros for unreadable rows).
- ``descriptor``: float32 array (N, 512), each row L2-normalised (zeros for unreadable rows);
  see :mod:`splitaudit.fingerprints.descriptor`.
- ``mode``: ``"exact"`` (bit-identical to imagehash) or ``"fast"`` (reduced decode).
- ``stats``: dict with ``total``, ``computed``, ``cached``, ``unreadable``, ``seconds``.
- ``to_frame()`` (copy of ``table``), ``to_json()``, ``hash(column, i) -> Hash64``.

Hash helpers (:mod:`.hashes`): ``Hash64`` (``hamming``, ``-``, ``hex``, ``from_hex``),
``hamming(a, b)`` vectorised over uint64 arrays, ``pack_bits``/``unpack_bits``.
"""

from .cache import FingerprintCache, default_cache_dir
from .compute import ALGORITHM_VERSION, MODES, TABLE_COLUMNS, Fingerprints, compute_fingerprints
from .descriptor import DESCRIPTOR_DIM, describe
from .hashes import Hash64, ahash, dhash, hamming, pack_bits, phash, unpack_bits

__all__ = [
    "compute_fingerprints",
    "Fingerprints",
    "FingerprintCache",
    "default_cache_dir",
    "Hash64",
    "hamming",
    "pack_bits",
    "unpack_bits",
    "phash",
    "dhash",
    "ahash",
    "describe",
    "DESCRIPTOR_DIM",
    "MODES",
    "TABLE_COLUMNS",
    "ALGORITHM_VERSION",
]
