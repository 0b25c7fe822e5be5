"""A small CNN trainer used as a probe: does val < train come from the model's
training regime (dropout, augmentation, running-mean loss) or from the split?

Images are loaded once as small gray (or RGB) tensors with Pillow. Every epoch
records three numbers: the running mean of the minibatch losses during the
epoch (what Keras prints as ``loss``), the training loss re-evaluated in eval
mode (dropout off, no augmentation) at the end of the epoch, and the
validation loss. ``torch`` is imported lazily (``pip install 'splitaudit[torch]'``).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from .._optional import require, torch_device
from .._parallel import ordered_map

__all__ = ["load_pixels", "train_cnn_probe", "build_cnn"]


def _load_chunk(paths: Sequence[str], size: int, mode: str) -> list[np.ndarray]:
    from PIL import Image

    out = []
    channels = 1 if mode == "L" else 3
    for path in paths:
        try:
            with Image.open(path) as img:
                img.draft(mode, (size, size))  # JPEG: decode at reduced scale
                arr = np.asarray(img.convert(mode).resize((size, size), Image.BILINEAR), np.uint8)
        except Exception:  # an unreadable file trains as a blank image; fingerprints report it
            arr = np.zeros((size, size, channels), np.uint8)
        out.append(arr.reshape(size, size, channels).transpose(2, 0, 1))
    return out


def load_pixels(paths: Sequence[str], *, size: int = 28, rgb: bool = False, jobs: int | None = 1,
                progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """Load images as a uint8 array ``(N, C, size, size)`` (C = 1 gray, 3 RGB)."""
    mode = "RGB" if rgb else "L"
    arrays = ordered_map(partial(_load_chunk, size=size, mode=mode), list(paths), jobs=jobs,
                         chunksize=512, progress=progress, stage="load images")
    return np.stack(arrays) if arrays else np.zeros((0, 3 if rgb else 1, size, size), np.uint8)


def build_cnn(in_channels: int, n_out: int, *, width: int = 16, dropout: float = 0.0):
    """Three 3×3 conv layers (width, 2·width, 2·width), pooled to 4×4, then a
    dropout → dense(128) → dropout → output head."""
    torch = require("torch", purpose="the CNN probe")
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * width, 128), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(128, n_out),
    )


def _augment(torch, batch, generator, max_shift_px: float = 2.0):
    """Random horizontal flip and up to ±2 px translation, per sample (the random
    draws come from the CPU ``generator``, so they are the same on every device)."""
    n, _, h, _ = batch.shape
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * max_shift_px / h)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = flip
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    theta = theta.to(batch.device)
    grid = torch.nn.functional.affine_grid(theta, list(batch.shape), align_corners=False)
    return torch.nn.functional.grid_sample(batch, grid, padding_mode="zeros", align_corners=False)


def train_cnn_probe(
    pixels_train: np.ndarray,
    y_train: np.ndarray,
    pixels_val: np.ndarray,
    y_val: np.ndarray,
    *,
    n_classes: int | None,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    dropout: float = 0.0,
    augment: bool = False,
    width: int = 16,
    random_state: int = 0,
    eval_train_size: int | None = None,
    threads: int | None = None,
    device: Any = "auto",
) -> pd.DataFrame:
    """Train the small CNN; return ``epoch, train_loss, train_loss_eval, val_loss``.

    Parameters
    ----------
    pixels_train, pixels_val : uint8 arrays (n, C, H, W)
    y_train, y_val : class indices, or float targets when ``n_classes`` is None
    dropout : float in [0, 0.9]
        Dropout before and after the dense layer (training only).
    augment : bool
        Random flips and ±2 px shifts on training batches only.
    random_state : int
        Seeds the weights, the batch order and the augmentation draws.
    eval_train_size : int or None
        Re-evaluate the training loss on this many fixed training images
        (None: all of them; 0: skip, ``train_loss_eval`` is NaN). The eval pass
        over all training images costs about a third of a training epoch.
    threads : int or None
        ``torch.set_num_threads`` for the run (None: leave torch's setting).
    device : "auto", "cpu", "cuda", "mps" or torch.device
        Where to train; "auto" takes CUDA, then MPS, then CPU. The data is
        moved there whole (Fashion-MNIST 60k: 190 MB as float32). Shuffling and
        augmentation draws stay on the CPU generator, so the batches are the
        same on every device; without dropout the losses differ only by
        floating-point rounding (dropout masks come from the device's generator).
    """
    torch = require("torch", purpose="the CNN probe")
    if not 0.0 <= dropout <= 0.9:
        raise InputError(f"dropout must be in [0, 0.9]; got {dropout}")
    if threads:
        torch.set_num_threads(int(threads))
    dev = torch_device(torch, device)
    torch.manual_seed(random_state)
    np.random.seed(random_state)
    generator = torch.Generator().manual_seed(random_state)
    regression = n_classes is None
    (xt, yt), (xv, yv) = _tensors(torch, pixels_train, y_train, pixels_val, y_val, regression, dev)
    loss_fn = torch.nn.MSELoss() if regression else torch.nn.CrossEntropyLoss()
    model = build_cnn(xt.shape[1], 1 if regression else int(n_classes), width=width, dropout=dropout).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if eval_train_size is not None and (isinstance(eval_train_size, bool) or eval_train_size < 0):
        raise InputError(f"eval_train_size must be a non-negative int or None; got {eval_train_size!r}")
    eval_idx = torch.arange(len(xt))
    if eval_train_size is not None and eval_train_size < len(xt):
        eval_idx = torch.randperm(len(xt), generator=generator)[:eval_train_size]
    eval_idx = eval_idx.to(dev)
    rows = []
    for epoch in range(1, epochs + 1):
        running = _train_epoch(torch, model, opt, loss_fn, xt, yt, batch_size=batch_size, augment=augment,
                               generator=generator, device=dev)
        rows.append({
            "epoch": epoch,
            "train_loss": running,
            "train_loss_eval": (_mean_loss(torch, model, loss_fn, xt[eval_idx], yt[eval_idx]) if len(eval_idx)
                                else float("nan")),
            "val_loss": _mean_loss(torch, model, loss_fn, xv, yv),
        })
    return pd.DataFrame(rows)


def _tensors(torch, pixels_train, y_train, pixels_val, y_val, regression: bool, device) -> tuple:
    """``((x_train, y_train), (x_val, y_val))`` on ``device``: pixels as floats in [0, 1]; a regression
    target standardised with the training side's mean and deviation, classes as int64."""
    xt = torch.from_numpy(np.ascontiguousarray(pixels_train)).float().div_(255.0)
    xv = torch.from_numpy(np.ascontiguousarray(pixels_val)).float().div_(255.0)
    if regression:
        mu, sigma = float(np.mean(y_train)), float(np.std(y_train)) or 1.0
        yt = torch.tensor((np.asarray(y_train) - mu) / sigma, dtype=torch.float32)[:, None]
        yv = torch.tensor((np.asarray(y_val) - mu) / sigma, dtype=torch.float32)[:, None]
    else:
        yt = torch.as_tensor(np.asarray(y_train, np.int64))
        yv = torch.as_tensor(np.asarray(y_val, np.int64))
    return (xt.to(device), yt.to(device)), (xv.to(device), yv.to(device))


def _train_epoch(torch, model, opt, loss_fn, xt, yt, *, batch_size: int, augment: bool, generator,
                 device) -> float:
    """One pass over the shuffled training set; the running mean of its minibatch losses."""
    model.train()
    order = torch.randperm(len(xt), generator=generator)
    seen, running = 0, 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size].to(device)
        xb = xt[idx]
        if augment:
            xb = _augment(torch, xb, generator)
        loss = loss_fn(model(xb), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        running += float(loss.detach()) * len(idx)
        seen += len(idx)
    return running / seen


def _mean_loss(torch, model, loss_fn, x, y) -> float:
    """The mean loss over ``x`` in eval mode (dropout off), in batches of 1024."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), 1024):
            xb = x[start:start + 1024]
            total += float(loss_fn(model(xb), y[start:start + 1024])) * len(xb)
    return total / max(1, len(x))
