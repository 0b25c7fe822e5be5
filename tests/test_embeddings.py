"""Embeddings: offline default model, determinism, planted edits found, user models, cache."""

from __future__ import annotations

import json
import os
import socket
from collections import OrderedDict

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw

torch = pytest.importorskip("torch")  # the 'torch' extra; installed in the dev environment

from splitaudit.fingerprints import embeddings as emb_mod  # noqa: E402
from splitaudit.fingerprints import models as models_mod  # noqa: E402
from splitaudit.fingerprints.cache import FingerprintCache  # noqa: E402
from splitaudit.fingerprints.embeddings import Embeddings, embed_images  # noqa: E402
from splitaudit.search.cosine import cosine_topk  # noqa: E402

SIDE = 128


def photo_like(seed: int, side: int = SIDE) -> Image.Image:
    """A structured image: colour gradient, random shapes, a word of text."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    c0, c1, c2 = rng.integers(0, 256, (3, 3))
    grad = (c0 * (1 - xx)[..., None] + c1 * xx[..., None]) * (1 - yy)[..., None] + c2 * yy[..., None] * 0.8
    image = Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(7):
        x0, y0 = rng.integers(0, side - 20, 2)
        x1, y1 = x0 + rng.integers(12, side // 2), y0 + rng.integers(12, side // 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=colour)
    draw.text((int(rng.integers(5, side // 2)), int(rng.integers(5, side - 20))), f"IMG{seed}", fill=(255, 255, 255))
    return image


def crop80(im):
    w, h = im.size
    return im.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((w, h), Image.BILINEAR)


def rotate10(im):
    # rotate, then crop the border wedges away (what rotation augmentations produce)
    w, h = im.size
    margin = int(w * 0.08)
    turned = im.rotate(10, resample=Image.BICUBIC)
    return turned.crop((margin, margin, w - margin, h - margin)).resize((w, h), Image.BICUBIC)


def hflip(im):
    return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def overlay(im):
    out = im.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle([0, h - h // 8, w, h], fill=(20, 20, 20))
    draw.text((4, h - h // 8 + 2), "(c) watermark", fill=(250, 250, 0))
    return out


EDITS = {"crop80": crop80, "rotate10": rotate10, "flip": hflip, "overlay": overlay}
N_BASE = 6


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    originals, copies, truth, kinds = [], [], [], []
    for seed in range(N_BASE):
        image = photo_like(seed)
        path = folder / f"orig_{seed}.png"
        image.save(path)
        originals.append(str(path))
        for name, edit in EDITS.items():
            cpath = folder / f"copy_{seed}_{name}.png"
            edit(image).save(cpath)
            copies.append(str(cpath))
            truth.append(seed)
            kinds.append(name)
    emb = embed_images(originals + copies, input_size=96, flip=True, threads=1, device="cpu")
    return dict(originals=originals, copies=copies, truth=np.array(truth), kinds=kinds, emb=emb)


def test_model_loads_offline_and_never_prints(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise OSError("network access blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    models_mod._default_weights.cache_clear()
    path = tmp_path / "a.png"
    photo_like(1, 64).save(path)
    result = embed_images([path], input_size=64)
    assert result.ok.all() and result.vectors.shape == (1, 1280)
    assert np.linalg.norm(result.vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert result.model_id.startswith("efficientnet-lite0@")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_deterministic_and_batch_independent(planted):
    paths = planted["originals"][:3]
    first = embed_images(paths, input_size=96, threads=1, device="cpu")
    second = embed_images(paths, input_size=96, threads=1, device="cpu")
    np.testing.assert_array_equal(first.vectors, second.vectors)
    # same images inside a bigger batch, in another position: same vectors (to float noise)
    np.testing.assert_allclose(planted["emb"].vectors[:3], first.vectors, atol=1e-5)


def test_planted_copies_are_nearest_neighbours(planted):
    emb, truth, kinds = planted["emb"], planted["truth"], np.array(planted["kinds"])
    originals, copies = emb.vectors[:N_BASE], emb.vectors[N_BASE:]
    sims, idx = cosine_topk(copies, originals, 1)
    hit = idx[:, 0] == truth
    full = copies @ originals.T
    pair = full[np.arange(len(truth)), truth]
    wrong = np.array([np.delete(full[i], truth[i]).max() for i in range(len(truth))])
    report = {k: (hit[kinds == k].mean(), pair[kinds == k].round(2).tolist()) for k in EDITS}
    # crops and flips (which pHash misses) are always found, with high cosine
    for kind in ("crop80", "flip"):
        assert hit[kinds == kind].all(), report
        assert pair[kinds == kind].min() > 0.6, report
    # rotation and overlays are the model's weak edits: most are found
    assert hit.mean() >= 0.85, report
    # copies are on average far more similar than different images are
    between = originals @ originals.T
    assert pair.mean() - between[~np.eye(N_BASE, dtype=bool)].mean() > 0.2, report
    assert pair.mean() > wrong.mean() + 0.1, report


def test_embedding_catches_what_phash_misses(planted):
    kinds = planted["kinds"]
    emb = planted["emb"]
    missed = 0
    for j, (kind, seed) in enumerate(zip(kinds, planted["truth"])):
        if kind not in ("flip", "crop80"):
            continue
        distance = imagehash.phash(Image.open(planted["copies"][j])) - imagehash.phash(
            Image.open(planted["originals"][seed]))
        cosine = float(emb.vectors[N_BASE + j] @ emb.vectors[seed])
        if distance > 10:  # beyond the usual near-duplicate radius: the hash misses it
            missed += 1
            assert cosine > 0.6, (kind, distance, cosine)
            nearest = int(np.argmax(emb.vectors[:N_BASE] @ emb.vectors[N_BASE + j]))
            assert nearest == seed, (kind, distance, nearest, seed)  # and the embedding finds it
    assert missed >= N_BASE  # every flip at least


def test_flip_matrix_matches_mirrored_copy(planted):
    emb, kinds, truth = planted["emb"], planted["kinds"], planted["truth"]
    assert emb.flipped is not None and emb.flipped.shape == emb.vectors.shape
    for j, kind in enumerate(kinds):
        if kind == "flip":
            # embedding the mirror of the original is (nearly) the embedding of the flipped file
            assert float(emb.flipped[truth[j]] @ emb.vectors[N_BASE + j]) > 0.99


def test_unreadable_files_are_rows_not_crashes(tmp_path):
    good = tmp_path / "good.png"
    photo_like(3, 64).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = embed_images([good, bad, tmp_path / "missing.png"], input_size=64)
    assert result.ok.tolist() == [True, False, False]
    assert not result.vectors[1:].any()
    assert result.reasons[0] is None and all(result.reasons[1:])
    frame = result.to_frame()
    assert frame["ok"].tolist() == [True, False, False]
    summary = json.loads(result.to_json())
    assert summary["n_failed"] == 2 and summary["failures"][0]["reason"] == result.reasons[1]


def tiny_cnn(channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict([
        ("conv1", torch.nn.Conv2d(channels, 8, 3, padding=1)),
        ("relu1", torch.nn.ReLU()),
        ("conv2", torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)),
        ("relu2", torch.nn.ReLU()),
        ("pool", torch.nn.AdaptiveAvgPool2d(2)),
        ("flatten", torch.nn.Flatten()),
        ("fc", torch.nn.Linear(64, 10)),
    ]))


def _manual(model, path, size, upto, channels=3):
    image = Image.open(path).convert("RGB" if channels == 3 else "L").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.array(image, np.float32)).reshape(1, size, size, channels).permute(0, 3, 1, 2)
    mean = torch.tensor([123.675, 116.28, 103.53][:channels]).view(1, -1, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375][:channels]).view(1, -1, 1, 1)
    with torch.no_grad():
        out = model[:upto]((x - mean) / std)
    out = out.mean((2, 3)) if out.ndim == 4 else out.flatten(1)
    return torch.nn.functional.normalize(out, dim=1).numpy()[0]


def test_user_model_layer_hook_matches_manual(tmp_path):
    paths = []
    for seed in range(3):
        paths.append(tmp_path / f"{seed}.png")
        photo_like(seed, 40).save(paths[-1])
    model = tiny_cnn()
    result = embed_images(paths, model=model, layer="relu2", input_size=32, device="cpu")
    assert result.vectors.shape == (3, 16)
    np.testing.assert_allclose(result.vectors[1], _manual(model, paths[1], 32, 4), atol=1e-5)
    full = embed_images(paths, model=model, input_size=32, device="cpu")  # layer=None: the output
    np.testing.assert_allclose(full.vectors[2], _manual(model, paths[2], 32, 7), atol=1e-5)
    assert result.model_id != full.model_id
    assert model.training and not any(p.is_inference() for p in model.parameters())  # handed back as it came
    with pytest.raises(ValueError, match="conv9"):
        embed_images(paths, model=model, layer="conv9", input_size=32)


def test_user_model_from_files_and_grayscale(tmp_path):
    paths = []
    for seed in range(2):
        paths.append(tmp_path / f"{seed}.png")
        photo_like(seed, 28).convert("L").save(paths[-1])
    model = tiny_cnn(channels=1)
    direct = embed_images(paths, model=model, layer="conv2", channels=1, device="cpu")
    assert direct.input_size == 28  # user models run at the images' own size
    weights = tmp_path / "w.pt"
    torch.save(model.state_dict(), weights)
    loaded = embed_images(paths, model=weights, factory=lambda: tiny_cnn(channels=1), layer="conv2", channels=1,
                          device="cpu")
    np.testing.assert_allclose(direct.vectors, loaded.vectors, atol=1e-6)
    scripted = tmp_path / "m.pt"
    torch.jit.script(model).save(str(scripted))
    out = embed_images(paths, model=scripted, channels=1, device="cpu")
    np.testing.assert_allclose(out.vectors[0], _manual(model, paths[0], 28, 7, channels=1), atol=1e-5)


def test_cache_skips_inference_and_notices_changed_files(tmp_path):
    paths = []
    (tmp_path / "imgs").mkdir()
    for seed in range(3):
        paths.append(tmp_path / "imgs" / f"{seed}.png")
        photo_like(seed, 32).save(paths[-1])
    model = tiny_cnn()
    calls = []
    model.conv1.register_forward_hook(lambda m, i, o: calls.append(len(o)))
    db = tmp_path / "emb.sqlite"
    first = embed_images(paths, model=model, layer="conv2", input_size=32, cache=db)
    n_first = sum(calls)
    again = embed_images(paths, model=model, layer="conv2", input_size=32, cache=db)
    assert sum(calls) == n_first == 3  # nothing recomputed
    np.testing.assert_array_equal(first.vectors, again.vectors)
    photo_like(9, 32).save(paths[1])
    os.utime(paths[1], ns=(1, 1))
    changed = embed_images(paths, model=model, layer="conv2", input_size=32, cache=FingerprintCache(db))
    assert sum(calls) == 4  # only the changed file
    assert not np.allclose(changed.vectors[1], first.vectors[1])
    other_size = embed_images(paths, model=model, layer="conv2", input_size=16, cache=db)
    assert sum(calls) == 7 and other_size.input_size == 16


def test_default_model_mid_layer_and_grid_pool(planted):
    paths = planted["originals"][:2]
    mid = embed_images(paths, layer="_blocks.8", input_size=64)
    assert mid.vectors.shape == (2, 112) and mid.model_id.endswith(":_blocks.8")
    grid = embed_images(paths, layer="_blocks.8", pool="grid2", input_size=64)
    assert grid.vectors.shape == (2, 448) and grid.model_id.endswith("/pool=grid2")
    # the average of the 2x2 cells is the global average
    cells = grid.vectors.reshape(2, 112, 4).mean(2)
    cells /= np.linalg.norm(cells, axis=1, keepdims=True)
    np.testing.assert_allclose(cells, mid.vectors, atol=1e-5)


def test_choose_input_size(tmp_path):
    small = []
    for i in range(3):
        small.append(tmp_path / f"s{i}.png")
        Image.new("L", (28, 28)).save(small[-1])
    big = tmp_path / "big.png"
    Image.new("RGB", (1000, 600)).save(big)
    assert emb_mod.choose_input_size(small) == 64
    assert emb_mod.choose_input_size([big]) == 224
    assert emb_mod.choose_input_size(small, default_model=False) == 28


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(input_size=0), ValueError, "input_size"),
        (dict(input_size=64.0), TypeError, "input_size"),
        (dict(channels=2), ValueError, "channels"),
        (dict(precision="fp16", device="cpu"), ValueError, "precision"),
        (dict(layer="x"), ValueError, "layer"),
        (dict(model=123), TypeError, "model"),
        (dict(model="/no/such/model.pt"), ValueError, "model"),
        (dict(normalize="zscore"), ValueError, "normalize"),
        (dict(pool="max"), ValueError, "pool"),
        (dict(layer=3), TypeError, "layer"),
        (dict(device="tpu"), ValueError, "device"),
    ],
)
def test_errors_name_the_parameter(tmp_path, kwargs, exc, words):
    path = tmp_path / "a.png"
    photo_like(0, 32).save(path)
    with pytest.raises(exc, match=words):
        embed_images([path], **{"input_size": 64, **kwargs})
    with pytest.raises(TypeError, match="paths_or_split"):
        embed_images(str(path))


def test_embeddings_array_protocol():
    result = Embeddings(np.eye(2, dtype=np.float32), np.array([True, True]), (None, None), "m", 64, ("a", "b"))
    assert np.asarray(result).shape == (2, 2) and len(result) == 2


def test_image_split_input_keeps_order_and_refuses_cache_in_data(tmp_path):
    from splitaudit.dataset import ImageSplit
    from splitaudit.errors import InputError

    root = tmp_path / "data"
    for split_name, seed in (("train", 0), ("val", 1)):
        (root / split_name / "shirt").mkdir(parents=True)
        photo_like(seed, 32).save(root / split_name / "shirt" / f"{seed}.png")
    split = ImageSplit.from_folder(root)
    model = tiny_cnn()
    result = embed_images(split, model=model, layer="conv2", input_size=32)
    assert list(result.paths) == split.images["path"].tolist()
    assert result.ok.all()
    with pytest.raises(InputError, match="inside the data root"):
        embed_images(split, model=model, layer="conv2", input_size=32, cache=root / "emb.sqlite")
    with pytest.raises(TypeError, match="cache must be"):
        embed_images(split, model=model, layer="conv2", input_size=32, cache=3)


def test_cache_true_uses_the_default_location(tmp_path, monkeypatch):
    """cache=True (what scan() passes by default) means the default cache, as for fingerprints."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "imgs").mkdir()
    paths = [tmp_path / "imgs" / f"{seed}.png" for seed in range(2)]
    for seed, p in enumerate(paths):
        photo_like(seed, 32).save(p)
    model = tiny_cnn()
    calls = []
    model.conv1.register_forward_hook(lambda m, i, o: calls.append(len(o)))
    first = embed_images(paths, model=model, layer="conv2", input_size=32, cache=True)
    again = embed_images(paths, model=model, layer="conv2", input_size=32, cache=True)
    assert sum(calls) == 2 and list((tmp_path / "cache" / "splitaudit").iterdir())
    np.testing.assert_array_equal(first.vectors, again.vectors)
    for off in (False, None):
        embed_images(paths, model=model, layer="conv2", input_size=32, cache=off)
    assert sum(calls) == 6
