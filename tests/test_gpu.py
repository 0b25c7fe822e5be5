"""Device handling of the torch parts: embeddings and the CNN probe.

The CPU tests run everywhere. The CUDA tests are skipped on machines without a
GPU (CI has none); on a GPU machine they check that the CUDA path agrees with
the CPU path: ``python -m pytest tests/test_gpu.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from splitaudit._optional import torch_device  # noqa: E402
from splitaudit.retrain.cnn import train_cnn_probe  # noqa: E402

from .conftest import look_alike, synthetic_image  # noqa: E402

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
LOSSES = ["train_loss", "train_loss_eval", "val_loss"]


def _pixels(n, seed=0, side=16):
    """Two classes of small grey images: bright blob left or right, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(60, 25, (n, 1, side, side))
    cols = np.arange(side)
    for i, label in enumerate(y):
        centre = side // 4 if label == 0 else 3 * side // 4
        x[i, 0, :, np.abs(cols - centre) <= 2] += 120
    return np.clip(x, 0, 255).astype(np.uint8), y


def test_device_names_resolve_and_bad_ones_are_refused():
    assert torch_device(torch, "cpu") == torch.device("cpu")
    assert torch_device(torch, torch.device("cpu")) == torch.device("cpu")
    auto = torch_device(torch, "auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    if not torch.cuda.is_available():
        assert auto.type in ("cpu", "mps")
    with pytest.raises(ValueError, match="device"):
        torch_device(torch, "tpu")


def test_cnn_probe_device_argument_on_cpu():
    x, y = _pixels(96)
    kw = dict(n_classes=2, epochs=2, batch_size=32, augment=True, random_state=3)
    a = train_cnn_probe(x[:64], y[:64], x[64:], y[64:], device="cpu", **kw)
    b = train_cnn_probe(x[:64], y[:64], x[64:], y[64:], device=torch.device("cpu"), **kw)
    assert np.array_equal(a[LOSSES].to_numpy(), b[LOSSES].to_numpy())
    assert a["val_loss"].iloc[-1] < a["val_loss"].iloc[0] + 0.2  # it trains, not just runs
    with pytest.raises(ValueError, match="device"):
        train_cnn_probe(x[:64], y[:64], x[64:], y[64:], device="tpu", **kw)


@cuda
@pytest.mark.parametrize("regression", [False, True])
def test_cnn_probe_on_cuda_matches_cpu(regression):
    x, y = _pixels(256, seed=1)
    target = y.astype(float) * 3.0 + 1.0 if regression else y
    kw = dict(n_classes=None if regression else 2, epochs=3, batch_size=32, augment=True, random_state=0)
    cpu = train_cnn_probe(x[:192], target[:192], x[192:], target[192:], device="cpu", **kw)
    gpu = train_cnn_probe(x[:192], target[:192], x[192:], target[192:], device="cuda", **kw)
    # the same batches and augmentation draws; only rounding (TF32 convolutions) differs
    np.testing.assert_allclose(gpu[LOSSES].to_numpy(), cpu[LOSSES].to_numpy(), rtol=0.05, atol=0.01)
    # a second run leaves nothing behind on the GPU (the first one set up cuBLAS' workspace)
    before = torch.cuda.memory_allocated()
    again = train_cnn_probe(x[:192], target[:192], x[192:], target[192:], device="cuda", **kw)
    assert torch.cuda.memory_allocated() <= before + 2**20
    np.testing.assert_allclose(again[LOSSES].to_numpy(), gpu[LOSSES].to_numpy(), rtol=1e-3, atol=1e-4)


@cuda
def test_cnn_probe_with_dropout_runs_on_cuda():
    x, y = _pixels(192, seed=2)
    out = train_cnn_probe(x[:128], y[:128], x[128:], y[128:], n_classes=2, epochs=2, batch_size=32,
                          dropout=0.5, device="cuda")
    assert np.isfinite(out[LOSSES].to_numpy()).all() and len(out) == 2


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_images")
    paths = []
    for i in range(12):
        im = synthetic_image(100 + i, side=64)
        paths.append(root / f"img{i:02d}.png")
        im.save(paths[-1])
    # a mirrored copy and a look-alike of image 0
    im0 = synthetic_image(100, side=64)
    im0.transpose(0).save(root / "mirror0.png")
    look_alike(100, side=64).save(root / "alike0.png")
    return [str(p) for p in paths] + [str(root / "mirror0.png"), str(root / "alike0.png")]


@cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_embeddings_on_cuda_match_cpu(image_files, precision):
    from splitaudit.fingerprints.embeddings import embed_images

    cpu = embed_images(image_files, device="cpu", input_size=64, flip=True)
    gpu = embed_images(image_files, device="cuda", input_size=64, flip=True, precision=precision,
                       batch_size=5)
    assert gpu.ok.all() and gpu.vectors.dtype == np.float32
    cos = (cpu.vectors * gpu.vectors).sum(1)
    floor = {"fp32": 0.99999, "fp16": 0.999, "bf16": 0.98}[precision]  # bf16 is lossy (results_gpu.md)
    assert cos.min() >= floor, (precision, cos.min())
    np.testing.assert_allclose(np.linalg.norm(gpu.vectors, axis=1), 1.0, atol=1e-3)
    fcos = (cpu.flipped * gpu.flipped).sum(1)
    assert fcos.min() >= floor
    if precision == "bf16":
        return
    # the same nearest neighbour on both devices wherever the CPU's choice is clear
    def sims(v):
        s = v @ v.T
        np.fill_diagonal(s, -2)
        return s
    s_cpu = np.sort(sims(cpu.vectors), 1)
    clear = s_cpu[:, -1] - s_cpu[:, -2] > 0.01
    assert clear.sum() >= len(image_files) // 2
    assert np.array_equal(sims(cpu.vectors).argmax(1)[clear], sims(gpu.vectors).argmax(1)[clear])


@cuda
def test_fp32_on_cuda_restores_tf32_flags(image_files):
    from splitaudit.fingerprints.embeddings import embed_images

    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    embed_images(image_files[:3], device="cuda", input_size=64, precision="fp32")
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags


@cuda
def test_embeddings_default_precision_on_cuda_is_half_and_deterministic(image_files):
    from splitaudit.fingerprints.embeddings import embed_images

    a = embed_images(image_files, device="cuda", input_size=64)
    b = embed_images(image_files, device="cuda", input_size=64, batch_size=3)
    fp16 = embed_images(image_files, device="cuda", input_size=64, precision="fp16")
    assert np.array_equal(a.vectors, fp16.vectors)  # None means fp16 on a GPU
    assert (a.vectors * b.vectors).sum(1).min() >= 0.999  # batch size changes rounding only
