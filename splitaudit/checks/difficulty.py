"""Is the validation set easier (or harder) than the training set?

Difficulty of an image is its *out-of-fold* loss under a small probe model
trained by k-fold cross-validation on **all** images, ignoring which split
each image is in. Because the probe never sees the split, a random split makes
the train/val labels exchangeable with respect to difficulty, so a label
permutation test on the difficulties is exact.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from .._parallel import resolve_jobs
from .._types import Progress
from ._stats import features_of, holm, mean_difference, option, single_thread, usable_rows
from .base import Check, CheckResult, register

__all__ = ["DifficultyCheck", "probe_difficulty", "reduce_features"]



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
        raise ValueError(f"features must be a 2-D (N, D) array, got shape {x.shape}")
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


def probe_difficulty(
    features: np.ndarray,
    labels: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    *,
    n_folds: int = 5,
    max_dim: int = 64,
    max_iter: int = 100,
    random_state: int = 0,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Per-image out-of-fold loss of a linear probe.

    Classification (``labels``): multinomial logistic regression, loss is the
    cross-entropy ``-log p(true class)`` (probabilities clipped at 1e-7, so a
    class unseen in the training folds costs about 16).
    Regression (``targets``): ridge regression on the standardised target,
    loss is the squared error.

    Parameters
    ----------
    features : ndarray of shape (N, D)
    labels : array-like of shape (N,), optional
    targets : array-like of shape (N,), optional
        Exactly one of ``labels`` / ``targets`` must be given.
    n_folds : int, default 5
    max_dim : int, default 64
        Features are reduced with PCA to at most this many dimensions.
    max_iter : int, default 100
        L-BFGS iterations; a probe need not converge fully to rank images.
    jobs : int, optional
        Threads over folds (default: all cores); the result does not depend on it.

    Returns
    -------
    ndarray of shape (N,), float64

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 5)); y = (x[:, 0] > 0).astype(int)
    >>> probe_difficulty(x, labels=y).shape
    (200,)
    """
    if (labels is None) == (targets is None):
        raise ValueError("give exactly one of labels= (classification) or targets= (regression)")
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    with single_thread():
        return _probe(features, labels, targets, n_folds, max_dim, max_iter, random_state,
                      resolve_jobs(jobs), progress)


def _probe(features, labels, targets, n_folds, max_dim, max_iter, random_state, jobs, progress) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold

    x = reduce_features(features, max_dim=max_dim, random_state=random_state)
    n = len(x)
    loss = np.empty(n, dtype=np.float64)
    if labels is not None:
        codes, _ = pd.factorize(pd.Series(np.asarray(labels)).astype(str))
        counts = np.bincount(codes)
        stratified = counts.min() >= n_folds
        cv = (StratifiedKFold if stratified else KFold)(n_folds, shuffle=True, random_state=random_state)
        folds = list(cv.split(x, codes if stratified else None))
    else:
        y = np.asarray(targets, dtype=np.float64)
        y = (y - y.mean()) / (y.std() or 1.0)
        folds = list(KFold(n_folds, shuffle=True, random_state=random_state).split(x))
    def fold_loss(fold):
        fit_idx, oof_idx = fold
        if labels is None:
            model = Ridge(alpha=1.0).fit(x[fit_idx], y[fit_idx])
            return (model.predict(x[oof_idx]) - y[oof_idx]) ** 2
        present = np.unique(codes[fit_idx])
        prob_true = np.full(len(oof_idx), 1e-7)
        if len(present) == 1:
            prob_true[codes[oof_idx] == present[0]] = 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = LogisticRegression(max_iter=max_iter).fit(x[fit_idx], codes[fit_idx])
            prob = model.predict_proba(x[oof_idx])
            column = {c: j for j, c in enumerate(model.classes_)}
            for code, j in column.items():
                rows = codes[oof_idx] == code
                prob_true[rows] = prob[rows, j]
        return -np.log(np.clip(prob_true, 1e-7, 1.0))

    # Folds are independent: fit them on `jobs` threads (BLAS is held to one thread each; the
    # L-BFGS steps are numpy on 10k-row blocks, which releases the GIL). Same losses as a loop.
    if progress:
        progress("difficulty probe", 0, len(folds))
    with ThreadPoolExecutor(max(1, min(jobs, len(folds)))) as pool:
        for i, ((_, oof_idx), part) in enumerate(zip(folds, pool.map(fold_loss, folds))):
            loss[oof_idx] = part
            if progress:
                progress("difficulty probe", i + 1, len(folds))
    return loss


def _direction(p: float, relative: float, alpha: float, min_relative: float) -> str:
    if not (math.isfinite(p) and math.isfinite(relative)) or p >= alpha:
        return "none"
    if relative <= -min_relative:
        return "val_easier"
    if relative >= min_relative:
        return "val_harder"
    return "none"


@register
class DifficultyCheck(Check):
    """Compare per-image difficulty of validation vs training images.

    Difficulty is the out-of-fold probe loss (:func:`probe_difficulty`) on the
    embeddings, or the fingerprint descriptor when there are none; a
    user-supplied ``context.image_loss`` replaces it.

    Verdict thresholds (options under ``"difficulty"``, reported in ``numbers``):

    - ``alpha`` = 0.01: two-sided permutation p-value must be below it;
    - ``min_relative`` = 0.05: ``|mean_val / mean_train - 1|`` must reach 5 %;
    - ``fail_relative`` = 0.20: at or beyond 20 % the status is ``fail``.

    ``direction`` is ``val_easier``, ``val_harder`` or ``none``; ``warn``/``fail``
    only when the difference is significant *and* material. Per-class
    comparisons carry Holm-adjusted p-values. Other options: ``n_folds`` (5),
    ``max_dim`` (64), ``n_permutations`` (999), ``n_bootstrap`` (1000).

    Examples
    --------
    >>> result = DifficultyCheck().run(context)            # doctest: +SKIP
    >>> result.numbers["direction"], result.numbers["relative"]  # doctest: +SKIP
    """

    name = "difficulty"

    def run(self, context: Any) -> CheckResult:
        opt = lambda key, default: option(context, self.name, key, default)  # noqa: E731
        alpha = float(opt("alpha", 0.01))
        min_relative = float(opt("min_relative", 0.05))
        fail_relative = float(opt("fail_relative", 0.20))
        n_permutations = int(opt("n_permutations", 999))
        n_bootstrap = int(opt("n_bootstrap", 1000))
        where = f"options[{self.name!r}]"
        if not 0 < alpha < 1:
            raise ValueError(f"{where}['alpha'] must be in (0, 1), got {alpha!r}")
        if not 0 <= min_relative <= fail_relative:
            raise ValueError(
                f"{where} needs 0 <= min_relative <= fail_relative, got {min_relative!r} and {fail_relative!r}"
            )
        if 1 / (1 + n_permutations) >= alpha:
            raise ValueError(
                f"{where}['n_permutations']={n_permutations} can never give p < alpha={alpha:g}; "
                f"use at least {int(np.ceil(1 / alpha))} permutations"
            )
        images = context.split.images
        ok, n_unreadable = usable_rows(context)
        is_val = (images["split"] == "val").to_numpy()
        has_label = images["label"].notna().to_numpy()

        if getattr(context, "image_loss", None) is not None:
            difficulty = np.asarray(context.image_loss, dtype=np.float64).ravel()
            if len(difficulty) != len(images):
                raise ValueError(
                    f"image_loss must have one value per image ({len(images)}), got {len(difficulty)}"
                )
            source = "user image_loss"
            probe_settings = None
            use = ok & np.isfinite(difficulty)
        else:
            task = context.split.task
            features, feature_source = features_of(context)
            if task is None:
                return self._skip("the split has no labels or targets and no image_loss was given")
            if features is None:
                return self._skip("no embeddings or fingerprint descriptor to train a probe on")
            target_known = has_label if task == "classification" else images["target"].notna().to_numpy()
            use = ok & target_known
            if use.sum() < 20 or len(np.unique(is_val[use])) < 2:
                return self._skip(f"only {int(use.sum())} usable labelled images, too few for a probe")
            difficulty = np.full(len(images), np.nan)
            kwargs = dict(
                n_folds=int(opt("n_folds", 5)),
                max_dim=int(opt("max_dim", 64)),
                random_state=int(context.random_state),
                progress=getattr(context, "progress", None),
            )
            if task == "classification":
                kwargs["labels"] = images["label"].to_numpy()[use]
            else:
                kwargs["targets"] = images["target"].to_numpy(dtype=np.float64)[use]
            difficulty[use] = probe_difficulty(features[use], **kwargs)
            probe_settings = {"n_folds": kwargs["n_folds"], "max_dim": kwargs["max_dim"],
                              "features": feature_source, "feature_dim": int(features.shape[1])}
            source = f"out-of-fold {'cross-entropy' if task == 'classification' else 'squared error'} of a linear probe on {feature_source}"

        train, val = use & ~is_val, use & is_val
        if train.sum() < 2 or val.sum() < 2:
            return self._skip("need at least two usable images in each split")
        rng = np.random.default_rng(context.random_state)
        overall = mean_difference(
            difficulty[train], difficulty[val], rng=rng,
            n_permutations=n_permutations, n_bootstrap=n_bootstrap,
        )
        direction = _direction(overall["p_value"], overall["relative"], alpha, min_relative)
        per_class = self._per_class(images, difficulty, train, val, rng, n_permutations, n_bootstrap)

        status = "pass"
        if direction != "none":
            status = "fail" if abs(overall["relative"]) >= fail_relative else "warn"
        rel = overall["relative"]
        if direction == "none":
            message = (
                f"No significant and material difference in difficulty between val and train "
                f"(val/train mean loss {rel:+.1%}, 95% CI {overall['relative_ci_low']:+.1%} to "
                f"{overall['relative_ci_high']:+.1%}, p={overall['p_value']:.3g}; a verdict needs "
                f"p<{alpha:g} and at least {min_relative:.0%})."
            )
        else:
            word = "easier" if direction == "val_easier" else "harder"
            message = (
                f"Validation images are {word} than training images: mean loss "
                f"{rel:+.1%} (95% CI {overall['relative_ci_low']:+.1%} to "
                f"{overall['relative_ci_high']:+.1%}), Cohen's d={overall['cohens_d']:.2f}, "
                f"p={overall['p_value']:.3g}, n={overall['n_a']}+{overall['n_b']}."
            )
        numbers = {
            "direction": direction,
            "source": source,
            "probe": probe_settings,
            "n_train": overall["n_a"],
            "n_val": overall["n_b"],
            "n_unreadable": n_unreadable,
            "n_excluded": int(len(images) - use.sum()),
            "mean_train": overall["mean_a"],
            "mean_val": overall["mean_b"],
            "median_train": overall["median_a"],
            "median_val": overall["median_b"],
            "difference": overall["difference"],
            "difference_ci": [overall["ci_low"], overall["ci_high"]],
            "relative": rel,
            "relative_ci": [overall["relative_ci_low"], overall["relative_ci_high"]],
            "cohens_d": overall["cohens_d"],
            "p_value": overall["p_value"],
            "n_permutations": n_permutations,
            "n_bootstrap": n_bootstrap,
            "thresholds": {"alpha": alpha, "min_relative": min_relative, "fail_relative": fail_relative},
            "per_class": per_class,
        }
        per_image = pd.DataFrame(
            {
                "path": images["path"].to_numpy(),
                "split": images["split"].to_numpy(),
                "label": images["label"].to_numpy(),
                "difficulty": difficulty,
            },
            index=images.index,
        )
        return CheckResult(self.name, status, message, numbers, per_image)

    def _per_class(self, images, difficulty, train, val, rng, n_permutations, n_bootstrap) -> list[dict]:
        if not images["label"].notna().any():
            return []
        labels = images["label"].astype(str).to_numpy()
        labelled = images["label"].notna().to_numpy()
        rows = []
        for label in sorted(pd.unique(labels[(train | val) & labelled])):
            in_class = (labels == label) & labelled
            a, b = difficulty[train & in_class], difficulty[val & in_class]
            if len(a) < 2 or len(b) < 2:
                continue
            res = mean_difference(
                a, b, rng=rng,
                n_permutations=max(99, n_permutations // 5), n_bootstrap=max(200, n_bootstrap // 5),
            )
            rows.append(
                {
                    "label": label, "n_train": res["n_a"], "n_val": res["n_b"],
                    "mean_train": res["mean_a"], "mean_val": res["mean_b"],
                    "relative": res["relative"],
                    "relative_ci": [res["relative_ci_low"], res["relative_ci_high"]],
                    "cohens_d": res["cohens_d"], "p_value": res["p_value"],
                }
            )
        adjusted = holm(np.array([r["p_value"] for r in rows], dtype=float))
        for row, p_adj in zip(rows, adjusted):
            row["p_holm"] = float(p_adj)
        return rows

    def _skip(self, reason: str) -> CheckResult:
        return CheckResult(self.name, "skipped", f"Difficulty not compared: {reason}.", {"reason": reason})
