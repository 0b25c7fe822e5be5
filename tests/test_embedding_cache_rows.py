"""A damaged embedding record in the SQLite cache is a miss: recomputed, never a KeyError."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the 'torch' extra; installed in the dev environment

from splitaudit.fingerprints.cache import FingerprintCache  # noqa: E402
from splitaudit.fingerprints.embeddings import embed_images  # noqa: E402

DIM = 16  # conv2's channels, average-pooled


def tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict([
        ("conv1", torch.nn.Conv2d(3, 8, 3, padding=1)),
        ("relu1", torch.nn.ReLU()),
        ("conv2", torch.nn.Conv2d(8, DIM, 3, stride=2, padding=1)),
    ]))


def _images(folder, n):
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(folder / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _damage(db, path, row=None, descriptor=None):
    """Overwrite the JSON row and/or descriptor blob of ``path``'s embedding record."""
    with sqlite3.connect(db) as conn:
        where = "version LIKE 'embedding/%' AND abspath = ?"
        assert conn.execute(f"SELECT COUNT(*) FROM fingerprints WHERE {where}",
                            (os.fsencode(str(path)),)).fetchone()[0] == 1
        if row is not None:
            conn.execute(f"UPDATE fingerprints SET row = ? WHERE {where}", (row, os.fsencode(str(path))))
        if descriptor is not None:
            conn.execute(f"UPDATE fingerprints SET descriptor = ? WHERE {where}",
                         (descriptor, os.fsencode(str(path))))


def _float_bytes(n):
    return np.arange(n, dtype=np.float32).tobytes()


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("row, descriptor", [
    (json.dumps({}), None),                      # no "dim": was a KeyError
    (json.dumps({"width": 3}), None),            # other keys only
    (json.dumps({"dim": "16"}), None),           # a string
    (json.dumps({"dim": True}), None),           # a bool is not a length
    (json.dumps({"dim": -1}), None),
    (json.dumps({"dim": 3}), None),              # disagrees with the blob's length
    (json.dumps({"dim": 16.0}), None),
    (json.dumps({"dim": 8}), "half"),            # self-consistent, but not the model's length
    (None, "nan"),                               # not finite
], ids=["no-dim", "other-keys", "str", "bool", "negative", "short", "float", "other-length", "nan"])
def test_a_damaged_record_is_recomputed(tmp_path, row, descriptor, flip):
    paths = _images(tmp_path / "imgs", 3)
    model = tiny_cnn()
    calls = []
    model.conv1.register_forward_hook(lambda m, i, o: calls.append(len(o)))
    options = dict(model=model, layer="conv2", input_size=32, flip=flip)
    fresh = embed_images(paths, **options)
    db = tmp_path / "emb.sqlite"
    embed_images(paths, cache=db, **options)

    width = DIM * (2 if flip else 1)
    blob = {None: None, "half": _float_bytes(width // 2),
            "nan": np.full(width, np.nan, np.float32).tobytes()}[descriptor]
    _damage(db, paths[1], row=row, descriptor=blob)
    calls.clear()
    store = FingerprintCache(db)
    again = embed_images(paths, cache=store, **options)

    assert again.ok.all() and again.vectors.shape == (3, DIM)
    # equal up to float rounding: a batch of one image may take another convolution kernel than three
    np.testing.assert_allclose(again.vectors, fresh.vectors, rtol=0, atol=1e-6)
    if flip:
        np.testing.assert_allclose(again.flipped, fresh.flipped, rtol=0, atol=1e-6)
    assert sum(calls) == (2 if flip else 1)  # only the damaged image (and its mirror) went through the model
    assert store.stats["malformed"] == 1
    # the record was rewritten: a third run computes nothing
    calls.clear()
    third = embed_images(paths, cache=db, **options)
    np.testing.assert_array_equal(third.vectors, again.vectors)
    assert sum(calls) == 0
