"""Find the epochs where validation loss is below training loss, and name each phase.

A *phase* is a run of consecutive epochs (among those with both losses) where
``val < train``. A run that starts while the loss falls fast with epochs whose
gap the half-epoch shift removes, and goes on with epochs whose gap it does not
remove, is split in two: the head is an ``early`` phase, the rest is judged on
its own. Kinds:

``early``
    ends before the last epoch, while the training loss still falls by at
    least :data:`FAST_FALL` (10 %) per epoch;
``persistent``
    reaches the last epoch and covers at least half of the epochs (or starts
    at the first);
``late``
    reaches the last epoch but starts later;
``middle``
    anything else;
``requested``
    the epochs the user named (``epochs=``).

The phase the user most likely means comes first: the longest, ties broken by
the latest. Each phase is scored on its *window*: its last :data:`WINDOW`
epochs for a ``persistent`` or ``late`` phase (the state the run ends in),
else all of its epochs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from ..errors import InputError, InputTypeError

__all__ = ["Phase", "find_phases", "parse_epochs", "relative_fall", "FAST_FALL", "WINDOW"]

WINDOW = 3  # epochs scored at the end of a persistent or late phase
FAST_FALL = 0.10  # a train loss falling this much per epoch is "falling fast"


@dataclass(frozen=True)
class Phase:
    """Epochs (completed epochs) where val < train, of one kind."""

    epochs: tuple[int, ...]
    kind: str
    window: tuple[int, ...]

    @property
    def label(self) -> str:
        return epoch_label(self.epochs)


def epoch_label(epochs: Iterable[int]) -> str:
    """``"epoch 3"``, ``"epochs 1-5"`` or ``"epochs 1-2, 7"``."""
    epochs = sorted(int(e) for e in epochs)
    if not epochs:
        return "no epochs"
    parts, start = [], epochs[0]
    for prev, cur in zip(epochs, epochs[1:] + [None]):
        if cur is None or cur != prev + 1:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = cur
    return ("epoch " if len(epochs) == 1 else "epochs ") + ", ".join(parts)


def relative_fall(train: np.ndarray, index: np.ndarray) -> float:
    """Mean relative fall of the train loss per epoch at ``index`` (previous → this epoch)."""
    falls = []
    for i in index:
        j, k = (i - 1, i) if i > 0 else (0, 1)
        if k < len(train) and train[j] > 0:
            falls.append((train[j] - train[k]) / abs(train[j]))
    return float(np.mean(falls)) if falls else 0.0


def _runs(mask: np.ndarray) -> list[np.ndarray]:
    index = np.flatnonzero(mask)
    if not len(index):
        return []
    return [run for run in np.split(index, np.flatnonzero(np.diff(index) > 1) + 1) if len(run)]


def _kind(run: np.ndarray, n: int, fall: float) -> str:
    if run[-1] == n - 1:
        return "persistent" if run[0] == 0 or len(run) * 2 >= n else "late"
    if fall >= FAST_FALL and run[0] <= 1:
        return "early"
    return "middle"


def _window(run: np.ndarray, kind: str) -> np.ndarray:
    return run[-WINDOW:] if kind in ("persistent", "late") else run


def find_phases(epoch: np.ndarray, train: np.ndarray, val: np.ndarray, shifted: np.ndarray) -> list[Phase]:
    """All phases with val < train, the one the user most likely means first."""
    n = len(epoch)
    below = val < train
    phases = []
    for run in _runs(below):
        lag_explained = ~(val[run] < shifted[run])  # NaN shift: not explained
        head = 0
        while head < len(run) and lag_explained[head] and relative_fall(train, run[head:head + 1]) >= FAST_FALL:
            head += 1
        pieces = [run] if head == 0 or len(run) - head < 2 else [run[:head], run[head:]]
        for piece in pieces:
            kind = _kind(piece, n, relative_fall(train, piece))
            if len(pieces) == 2 and piece is pieces[0]:
                kind = "early"
            phases.append(Phase(tuple(int(e) for e in epoch[piece]), kind,
                                tuple(int(e) for e in epoch[_window(piece, kind)])))
    phases.sort(key=lambda p: (-len(p.epochs), -p.epochs[-1]))
    return phases


_SPEC = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_epochs(spec: Any, available: Iterable[int], *, name: str = "epochs=") -> tuple[int, ...]:
    """Epochs named by ``"1-5"``, ``"1-3,7"``, ``4``, a range or a list of ints, checked against the history.

    ``name`` is how the parameter is spelled in messages (``"--epochs"`` in the CLI).
    """
    available = sorted(int(e) for e in available)
    shown = epoch_label(available)
    if isinstance(spec, bool):
        raise InputTypeError(f"{name} must be epochs like '1-5', '1-3,7', an int or a list of ints; got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        wanted = [int(spec)]
    elif isinstance(spec, str):
        wanted = []
        for part in spec.split(","):
            match = _SPEC.match(part)
            if not match:
                raise InputError(f"{name} must be epochs like '1-5' or '1-3,7' (completed epochs, from 1); "
                                 f"got {spec!r}")
            first, last = int(match.group(1)), int(match.group(2) or match.group(1))
            if last < first:
                raise InputError(f"{name} range {part.strip()!r} ends before it starts; write it as "
                                 f"'{last}-{first}'")
            wanted += list(range(first, last + 1))
    elif isinstance(spec, Iterable):
        wanted = []
        for value in spec:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise InputTypeError(f"{name} must list whole epochs (ints); got {value!r}")
            wanted.append(int(value))
    else:
        raise InputTypeError(f"{name} must be epochs like '1-5', '1-3,7', an int or a list of ints; "
                        f"got {type(spec).__name__}")
    missing = sorted(set(wanted) - set(available))
    if not wanted:
        raise InputError(f"{name} names no epoch; the history has {shown}")
    if missing:
        raise InputError(f"{name} names {epoch_label(missing)}, not in the history (it has {shown} with both "
                         "losses; epochs count completed epochs from 1, Keras' epoch 0 is epoch 1)")
    return tuple(sorted(set(wanted)))
