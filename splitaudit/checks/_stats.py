"""Statistics shared by the split-comparison checks.

Everything here is plain numpy/scipy, vectorised, and seeded through a
``numpy.random.Generator`` so results are reproducible. The helpers return
numbers, never verdicts; the checks decide what is significant *and* material.

- two-sample comparisons: :func:`mean_difference` (bootstrap CI + permutation
  p-value + Cohen's d + relative difference), :func:`smd`,
  :func:`wasserstein_sd`, :func:`cramers_v`
- multiple testing: :func:`holm`, :func:`benjamini_hochberg`
- classifier evidence: :func:`auc_mann_whitney`, :func:`auc_ci_hanley_mcneil`
- inputs: :func:`usable_rows`, :func:`features_of`, :func:`reduce_features`, :func:`option`
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from ..errors import InputError, InputTypeError

__all__ = [
    "option",
    "usable_rows",
    "features_of",
    "reduce_features",
    "permutation_pvalue",
    "bootstrap_ci_mean_diff",
    "mean_difference",
    "cohens_d",
    "smd",
    "wasserstein_sd",
    "cramers_v",
    "holm",
    "benjamini_hochberg",
    "auc_mann_whitney",
    "auc_ci_hanley_mcneil",
    "single_thread",
]


def single_thread():
    """Context manager limiting BLAS/OpenMP to one thread.

    Small model fits on a shared machine lose more to idle-spinning BLAS
    threads than they gain: on 2 busy cores a 5-fold probe on 50k × 64 took
    71 CPU-s with 2 OpenBLAS threads and 5.4 CPU-s with one.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


# ----------------------------------------------------------------- inputs
def option(context: Any, check: str, key: str, default: Any) -> Any:
    """``context.options[check][key]`` or ``default``; type-checked against it."""
    opts = (getattr(context, "options", None) or {}).get(check, {}) or {}
    if not isinstance(opts, dict):
        raise InputTypeError(
            f"options[{check!r}] must be a dict of settings, got {type(opts).__name__}"
        )
    value = opts.get(key, default)
    if default is not None and isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InputTypeError(
                f"options[{check!r}][{key!r}] must be a number like {default!r}, "
                f"got {type(value).__name__} {value!r}"
            )
    return value


def usable_rows(context: Any) -> tuple[np.ndarray, int]:
    """Boolean mask of rows whose image could be read, and how many could not.

    Without fingerprints every row counts as usable.
    """
    n = len(context.split.images)
    fp = getattr(context, "fingerprints", None)
    table = getattr(fp, "table", None)
    if table is None or "ok" not in table.columns:
        return np.ones(n, dtype=bool), 0
    ok = table["ok"].to_numpy(dtype=bool, na_value=False)
    if len(ok) != n:
        raise InputError(
            f"fingerprints.table has {len(ok)} rows but split.images has {n}; "
            "they must be aligned row for row"
        )
    return ok, int((~ok).sum())


def features_of(context: Any) -> tuple[np.ndarray | None, str]:
    """The per-image feature matrix a probe should use, and where it came from.

    Returns ``(context.embeddings, "embeddings")`` when embeddings exist, else
    ``(context.fingerprints.descriptor, "descriptor")``, else ``(None, "none")``.
    Rows are aligned with ``context.split.images``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> ctx = SimpleNamespace(embeddings=np.eye(2, dtype=np.float32), fingerprints=None)
    >>> features_of(ctx)[1]
    'embeddings'
    """
    emb = getattr(context, "embeddings", None)
    if emb is not None:
        return np.asarray(emb, dtype=np.float32), "embeddings"
    fp = getattr(context, "fingerprints", None)
    desc = getattr(fp, "descriptor", None)
    if desc is not None:
        return np.asarray(desc, dtype=np.float32), "descriptor"
    return None, "none"


def reduce_features(
    features: np.ndarray, *, max_dim: int = 64, random_state: int = 0
) -> np.ndarray:
    """Centre, project on at most ``max_dim`` principal axes, standardise columns.

    PCA is unsupervised, so fitting it on every image leaks no labels. Up to
    2048 input dimensions it is an eigendecomposition of the D × D covariance
    (one pass over the data); beyond, randomized SVD.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise InputError(f"features must be a 2-D (N, D) array, got shape {x.shape}")
    x = x - x.mean(axis=0)
    if x.shape[1] > max_dim and x.shape[0] > max_dim:
        if x.shape[1] <= 2048:
            cov = (x.T @ x).astype(np.float64)
            _, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
            x = x @ vectors[:, ::-1][:, :max_dim].astype(np.float32)
        else:
            from sklearn.decomposition import PCA

            x = PCA(max_dim, svd_solver="randomized", random_state=random_state).fit_transform(x)
    sd = x.std(axis=0)
    keep = sd > 1e-12 * max(1.0, float(sd.max(initial=0.0)))
    return (x[:, keep] / sd[keep]).astype(np.float32)


# ------------------------------------------------------- two-sample tests
def permutation_pvalue(
    values: np.ndarray,
    in_b: np.ndarray,
    *,
    n_permutations: int = 999,
    rng: np.random.Generator,
) -> float:
    """Two-sided permutation p-value for ``mean(values[in_b]) - mean(values[~in_b])``.

    The group labels are shuffled ``n_permutations`` times; the p-value is
    ``(1 + #{|diff*| >= |diff|}) / (1 + n_permutations)``, so it is never 0 and
    is exact (valid) whenever the labels are exchangeable under the null.
    """
    values = np.asarray(values, dtype=np.float64)
    in_b = np.asarray(in_b, dtype=bool)
    n, n_b = len(values), int(in_b.sum())
    if n_b == 0 or n_b == n or n_permutations < 1:
        return float("nan")
    total = values.sum()
    n_a = n - n_b

    def diff(sum_b: np.ndarray | float) -> np.ndarray | float:
        return sum_b / n_b - (total - sum_b) / n_a

    observed = abs(diff(values[in_b].sum()))
    centred_tol = 1e-12 * max(1.0, float(np.abs(values).max()))
    hits = 0
    chunk = max(1, min(n_permutations, 4_000_000 // max(n, 1)))
    done = 0
    while done < n_permutations:
        m = min(chunk, n_permutations - done)
        keys = rng.random((m, n))
        # the n_b smallest keys of each row are a uniformly random subset
        pick = np.argpartition(keys, n_b - 1, axis=1)[:, :n_b]
        sums = values[pick].sum(axis=1)
        hits += int((np.abs(diff(sums)) >= observed - centred_tol).sum())
        done += m
    return (1 + hits) / (1 + n_permutations)


def bootstrap_ci_mean_diff(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator,
) -> dict:
    """Percentile bootstrap CIs of ``mean(b) - mean(a)`` and ``mean(b)/mean(a) - 1``.

    Each group is resampled with replacement on its own. Returns a dict with
    ``ci_low``, ``ci_high`` (difference) and ``relative_ci_low``,
    ``relative_ci_high`` (relative difference; NaN when a mean is 0).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    nan = float("nan")
    if len(a) == 0 or len(b) == 0 or n_bootstrap < 1:
        return {"ci_low": nan, "ci_high": nan, "relative_ci_low": nan, "relative_ci_high": nan}

    def boot_means(x: np.ndarray) -> np.ndarray:
        out = np.empty(n_bootstrap)
        chunk = max(1, 4_000_000 // len(x))
        for start in range(0, n_bootstrap, chunk):
            m = min(chunk, n_bootstrap - start)
            out[start : start + m] = x[rng.integers(0, len(x), (m, len(x)))].mean(axis=1)
        return out

    means_a, means_b = boot_means(a), boot_means(b)
    tail = (1 - level) / 2
    low, high = np.quantile(means_b - means_a, [tail, 1 - tail])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = means_b / means_a - 1
    rel = rel[np.isfinite(rel)]
    rel_low, rel_high = np.quantile(rel, [tail, 1 - tail]) if len(rel) else (nan, nan)
    return {
        "ci_low": float(low),
        "ci_high": float(high),
        "relative_ci_low": float(rel_low),
        "relative_ci_high": float(rel_high),
    }


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """``(mean(b) - mean(a)) / pooled SD`` (pooled with n-1 weights)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sd = _pooled_sd(a, b)
    if not math.isfinite(sd):
        return float("nan")
    diff = b.mean() - a.mean()
    if sd == 0:
        return 0.0 if diff == 0 else math.copysign(float("inf"), diff)
    return float(diff / sd)


smd = cohens_d
"""Standardised mean difference; the same formula as :func:`cohens_d`."""


def mean_difference(
    a: np.ndarray,
    b: np.ndarray,
    *,
    rng: np.random.Generator,
    n_permutations: int = 999,
    n_bootstrap: int = 1000,
    level: float = 0.95,
) -> dict:
    """Compare group ``b`` (e.g. val) with group ``a`` (e.g. train).

    Returns a dict with ``n_a``, ``n_b``, ``mean_a``, ``mean_b``,
    ``difference`` (b − a) and its bootstrap ``ci_low``/``ci_high``,
    ``relative`` (``mean_b / mean_a − 1``) with its CI, ``cohens_d`` and the
    two-sided permutation ``p_value``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mean_a = float(a.mean()) if len(a) else float("nan")
    mean_b = float(b.mean()) if len(b) else float("nan")
    ci = bootstrap_ci_mean_diff(a, b, n_bootstrap=n_bootstrap, level=level, rng=rng)
    values = np.concatenate([a, b])
    in_b = np.r_[np.zeros(len(a), bool), np.ones(len(b), bool)]
    p = permutation_pvalue(values, in_b, n_permutations=n_permutations, rng=rng)
    rel = mean_b / mean_a - 1 if mean_a != 0 and math.isfinite(mean_a) else float("nan")
    return {
        "n_a": len(a),
        "n_b": len(b),
        "mean_a": mean_a,
        "mean_b": mean_b,
        "median_a": float(np.median(a)) if len(a) else float("nan"),
        "median_b": float(np.median(b)) if len(b) else float("nan"),
        "difference": mean_b - mean_a,
        "ci_low": ci["ci_low"],
        "ci_high": ci["ci_high"],
        "relative": rel,
        "relative_ci_low": ci["relative_ci_low"],
        "relative_ci_high": ci["relative_ci_high"],
        "cohens_d": cohens_d(a, b),
        "p_value": p,
        "n_permutations": int(n_permutations),
        "n_bootstrap": int(n_bootstrap),
    }


def _pooled_sd(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    var = ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    return math.sqrt(max(var, 0.0))


def wasserstein_sd(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between the samples in units of the pooled within-group SD.

    Uses the same SD as :func:`smd`, so ``wasserstein_sd >= |smd|`` always.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    sd = _pooled_sd(a, b)
    if not sd > 0:
        return 0.0
    return float(stats.wasserstein_distance(a, b) / sd)


def cramers_v(table: np.ndarray) -> float:
    """Cramér's V of a contingency table (uncorrected)."""
    table = np.asarray(table, dtype=np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    n = table.sum()
    k = min(table.shape) - 1
    if n == 0 or k < 1:
        return 0.0
    chi2 = stats.chi2_contingency(table, correction=False)[0]
    return float(math.sqrt(chi2 / (n * k)))


# ---------------------------------------------------------- multiplicity
def _finite_order(p_values):
    """``(p, out, order)``: p-values as float64, an all-NaN result of the same
    shape, and the indices of the finite ones in increasing order (stable)."""
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    return p, np.full_like(p, np.nan), finite[np.argsort(p[finite], kind="stable")]


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (family-wise error); NaN stays NaN."""
    p, out, order = _finite_order(p_values)
    m = len(order)
    if m:
        out[order] = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate)."""
    p, out, order = _finite_order(p_values)
    m = len(order)
    if m:
        scaled = p[order] * m / np.arange(1, m + 1)
        out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out


# ------------------------------------------------------ classifier evidence
def auc_mann_whitney(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """ROC AUC of ``scores`` for ``positive`` and its one-sided p-value (AUC > 0.5).

    The p-value is the normal approximation of the Mann–Whitney U test with
    tie correction.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n1 = int(positive.sum())
    n0 = len(scores) - n1
    if n1 == 0 or n0 == 0:
        return float("nan"), float("nan")
    ranks = stats.rankdata(scores)
    u = ranks[positive].sum() - n1 * (n1 + 1) / 2
    auc = u / (n1 * n0)
    _, counts = np.unique(scores, return_counts=True)
    n = n1 + n0
    tie = (counts**3 - counts).sum() / (n * (n - 1))
    var = n1 * n0 / 12 * ((n + 1) - tie)
    if var <= 0:
        return float(auc), 1.0
    z = (u - n1 * n0 / 2) / math.sqrt(var)
    return float(auc), float(stats.norm.sf(z))


def auc_ci_hanley_mcneil(auc: float, n_pos: int, n_neg: int, level: float = 0.95) -> tuple[float, float]:
    """Hanley & McNeil (1982) normal-approximation CI of an AUC."""
    if not (n_pos and n_neg) or not math.isfinite(auc):
        return float("nan"), float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    half = stats.norm.ppf(0.5 + level / 2) * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)
