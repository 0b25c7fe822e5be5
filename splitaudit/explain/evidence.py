"""Load the scan and k-fold outputs that :func:`~splitaudit.explain.explain` weighs.

The readers are tolerant on purpose: ``summary.json`` and ``kfold.json`` are
written by other stages whose number names may grow, so a missing key is
"unknown", never a crash. Lookups go through a short list of accepted names
(:data:`LEAK_FRACTION_KEYS` etc.) so what is read is easy to audit.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import InputError, InputTypeError

__all__ = [
    "load_scan",
    "load_kfold",
    "findings_by_check",
    "number",
    "leak_fraction",
    "sizes",
    "fold_gaps",
    "LEAK_FRACTION_KEYS",
    "P_VALUE_KEYS",
    "RELATIVE_DIFFERENCE_KEYS",
]

LEAK_FRACTION_KEYS = (
    "fraction_val_with_train_duplicate",
    "val_fraction_with_train_duplicate",
    "fraction_val_duplicated",
    "fraction_val_leaked",
    "val_fraction_duplicated",
    "val_fraction",
    "fraction_val",
    "fraction",
)
LEAK_COUNT_KEYS = (
    "n_val_with_train_duplicate",
    "val_with_train_duplicate",
    "n_val_duplicated",
    "n_val_leaked",
    "n_val_images",
)
P_VALUE_KEYS = ("p_value", "p", "pvalue", "permutation_p", "p_permutation", "p_adjusted")
RELATIVE_DIFFERENCE_KEYS = ("relative_difference", "relative_diff", "rel_diff", "relative")
N_VAL_KEYS = ("n_val", "val_count", "n_val_images_used")
N_TRAIN_KEYS = ("n_train", "train_count")


def _read_json(path_or_obj: Any, filename: str, parameter: str) -> dict | None:
    if path_or_obj is None:
        return None
    if isinstance(path_or_obj, Mapping):
        return dict(path_or_obj)
    if hasattr(path_or_obj, "to_dict") and not isinstance(path_or_obj, pd.DataFrame):
        return dict(path_or_obj.to_dict())  # a KFoldResult-like object
    if isinstance(path_or_obj, (list, tuple)):
        return {"findings": [f.to_dict() if hasattr(f, "to_dict") else f for f in path_or_obj]}
    if isinstance(path_or_obj, (str, Path)):
        path = Path(path_or_obj)
        if path.is_dir():
            path = path / filename
        if not path.is_file():
            raise InputError(f"{parameter}: {path} does not exist; expected {filename} or a directory holding it")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{parameter}: {path} is not valid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise InputError(f"{parameter}: {path} must hold a JSON object, got {type(data).__name__}")
        return dict(data)
    raise InputTypeError(
        f"{parameter} must be a dict, a path to {filename} or a directory holding it, "
        f"got {type(path_or_obj).__name__}"
    )


def load_scan(scan: Any) -> dict | None:
    """The scan summary as a dict (``summary.json``, its directory, a dict or a list of CheckResults)."""
    return _read_json(scan, "summary.json", "scan")


def load_kfold(kfold: Any) -> dict | None:
    """The k-fold result as a dict (``kfold.json``, its directory, a dict or a KFoldResult)."""
    return _read_json(kfold, "kfold.json", "kfold")


def findings_by_check(scan: Mapping | None) -> dict[str, dict]:
    """Map check name → finding dict, whatever shape the summary's ``findings`` has."""
    if not scan:
        return {}
    findings = scan.get("findings", scan.get("checks"))
    out: dict[str, dict] = {}
    if isinstance(findings, Mapping):
        for name, value in findings.items():
            if isinstance(value, Mapping):
                out[str(name)] = {"check": str(name), **value}
    elif isinstance(findings, Iterable) and not isinstance(findings, (str, bytes)):
        for value in findings:
            if isinstance(value, Mapping) and "check" in value:
                out[str(value["check"])] = dict(value)
    for name, value in scan.items():  # a summary written as {check: finding, ...}
        if name not in out and isinstance(value, Mapping) and "status" in value:
            out[str(name)] = {"check": str(name), **value}
    return out


def _flatten(mapping: Mapping, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def number(mapping: Mapping | None, keys: Iterable[str]) -> tuple[str | None, float | None]:
    """The first finite number under one of ``keys`` (top level, then nested ``a.b`` leaves)."""
    if not mapping:
        return None, None
    keys = list(keys)
    for key in keys:
        value = _as_float(mapping.get(key))
        if value is not None:
            return key, value
    flat = _flatten(mapping)
    for key in keys:
        for name, raw in flat.items():
            if name.split(".")[-1] == key and _as_float(raw) is not None:
                return name, _as_float(raw)
    return None, None


def leak_fraction(finding: Mapping | None, n_val: float | None) -> tuple[float | None, str | None]:
    """Fraction of validation images with a train duplicate, and where it was read from."""
    if not finding:
        return None, None
    key, value = number(finding, LEAK_FRACTION_KEYS)
    if value is not None and 0.0 <= value <= 1.0:
        return value, key
    for name, raw in _flatten(finding).items():  # e.g. "frac_val_dup", "val_dup_fraction"
        leaf = name.split(".")[-1].lower()
        if re.search(r"frac", leaf) and "val" in leaf and "expected" not in leaf:
            value = _as_float(raw)
            if value is not None and 0.0 <= value <= 1.0:
                return value, name
    count_key, count = number(finding, LEAK_COUNT_KEYS)
    _, finding_n_val = number(finding, N_VAL_KEYS)
    denominator = finding_n_val or n_val
    if count is not None and denominator:
        return min(1.0, count / denominator), f"{count_key} / n_val"
    return None, None


def sizes(scan: Mapping | None, kfold: Mapping | None) -> tuple[float | None, float | None]:
    """(n_train, n_val) from the scan summary or the k-fold original split, when recorded."""
    n_train = n_val = None
    for source in (scan, (kfold or {}).get("original")):
        if not source:
            continue
        if n_val is None:
            n_val = number(source, N_VAL_KEYS)[1]
        if n_train is None:
            n_train = number(source, N_TRAIN_KEYS)[1]
    if (n_val is None or n_train is None) and scan:
        for finding in findings_by_check(scan).values():
            n_val = n_val if n_val is not None else number(finding, N_VAL_KEYS)[1]
            n_train = n_train if n_train is not None else number(finding, N_TRAIN_KEYS)[1]
    return n_train, n_val


def fold_gaps(kfold: Mapping | None, key: str = "gap") -> np.ndarray:
    """The re-split folds' gaps (val − train) as a float array; empty when absent."""
    folds = (kfold or {}).get("folds") or []
    values = [_as_float(f.get(key)) for f in folds if isinstance(f, Mapping)]
    return np.array([v for v in values if v is not None], dtype=float)
