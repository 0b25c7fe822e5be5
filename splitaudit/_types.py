"""Small types and conversions every stage may use (a leaf: imports nothing from the package).

``Progress`` is the progress-callback signature the library takes instead of printing;
:func:`jsonable` turns numpy / pandas values into plain JSON types for ``to_dict()``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

__all__ = ["Progress", "jsonable"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as work advances; ``done == total`` at the end."""


def jsonable(value: Any) -> Any:
    """Convert numpy / pandas scalars and containers into plain JSON types.

    NaN and infinities become ``None`` so the output is strict JSON.

    Parameters
    ----------
    value : Any
        A scalar, mapping, sequence or array, nested freely.

    Returns
    -------
    Any
        The same structure made of ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool``
        and ``None``; anything else becomes its ``str``.

    Examples
    --------
    >>> jsonable({"n": np.int64(3), "x": float("nan")})
    {'n': 3, 'x': None}
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or isinstance(value, (str, int)):
        return value
    return str(value)


HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "train_loss_eval", "steps_per_epoch")
"""The columns of a loss history, in order: completed epochs, the running-mean train loss,
the validation loss, the train loss re-measured in eval mode, optimizer steps per epoch."""
