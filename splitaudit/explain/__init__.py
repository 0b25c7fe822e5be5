"""Explain a validation loss below the training loss, with ranked evidence.

Users arrive with a loss history and one question: *validation loss is lower
than training loss: should I worry?* :func:`explain` reads the history
(:func:`read_history`: Keras ``CSVLogger``, Lightning ``metrics.csv``, Keras
``History.history`` JSON, plain ``train_loss,val_loss`` CSV, DataFrame or dict),
optionally a scan's ``summary.json``, a ``kfold.json`` and per-image losses,
and scores five causes in [0, 1], ranked most to least likely.

Phases and the gap
------------------
Every run of epochs with ``val < train`` is a *phase* (:mod:`.phases`: early,
persistent, late, middle; or the ``epochs=`` the user names), explained on its
own, the longest (else the latest) first; ``Explanation.causes``/``gap`` are
the first phase's. ``G`` is the mean of ``val - train`` over the phase's
*window* (the last 3 epochs of a persistent or late phase, else all its
epochs); ``G < 0`` means validation is lower. Shares below are ``part / -G``
clipped to [0, 1]. When val is never below train there is nothing to explain
and the summary says so.

Scoring rules
-------------
A ``measured`` score derives from measured numbers that are copied into the
cause's ``evidence``. A cause that no evidence measures is ``suspected`` from
the history's shape when the history shows val < train (rules in
:mod:`.suspects`, score at most 0.8, ``check`` names how to measure it), else
``unknown`` with ``score 0`` and the reason (what to pass to measure it);
``known`` is True only when measured. Among equal scores a cause not measured
ranks above one that evidence ruled out.

``measurement_lag``
    The running-mean train loss of epoch ``e`` estimates the loss at
    ``e - 0.5``, while val is measured at ``e``. The *shifted* train loss at
    ``e`` is ``(train(e) + train(e+1)) / 2`` (the last epoch is extrapolated
    linearly from the previous interval). ``lag = train - shifted``;
    score = share of the gap removed by the shift, ``lag / -G``. When an
    eval-mode train loss is present, ``eval_gap = val - train_eval`` is
    reported; ``eval_gap >= 0`` means the whole gap is a measurement artifact
    (split between lag and regularization below).
``regularization``
    With ``train_loss_eval``: score = ``(shifted - train_eval) / -G``, the part
    of the gap left after the lag that vanishes in eval mode (dropout,
    augmentation, label smoothing). Without it, from ``kfold``: the fraction of
    re-split folds whose gap closes in eval mode, else, when
    ``verdict.persists`` is true, ``n_folds_val_lower / n_folds * (1 - lag
    score)``. When the k-fold probe itself shows val < train on the original
    split, ``persists`` false gives 0 (the probe's gap is split-specific) and
    halves a history-based score; when it does not, the probe (which has none
    of the user's dropout or augmentation) carries no evidence either way and
    the cause stays suspected from the history.
``leakage``
    ``f`` = fraction of val with a train duplicate (larger of the
    exact/near findings: a lower bound on their union; a passing finding that
    reports no fraction counts as 0). Score = ``f / (f + 0.05)`` times
    ``min(1, bound / -G)`` where ``bound = f * val / (1 - f)`` is the most the
    duplicates can lower the mean val loss (if their loss were 0). With
    per-image losses and a duplicate flag, the bound is replaced by the
    measured relative effect of the duplicates on the mean val loss against the
    relative gap, halved unless duplicated images have lower loss (one-sided
    Mann-Whitney p < 0.05). Halved when ``kfold`` says the gap persists on
    leak-free re-splits.
``easier_validation``
    From the scan's ``difficulty`` finding (or per-image losses: Welch t-test
    of val vs train): when the direction is ``val_easier``, score =
    significance (1 if p < 0.01, 0.5 if p < 0.05, else 0) times
    ``min(1, |relative difference| / |relative gap|)``; ``val_harder`` or
    ``none`` gives 0. Drift statuses (label_distribution, property_drift,
    embedding_drift) add 0.15 per warn and 0.3 per fail, capped at 0.5; they
    say val *differs*, not that it is easier, so they count half when the
    difficulty was measured. Halved when the gap persists on re-splits.
When the history's eval-mode train loss is not below val (the whole gap
closes in eval mode), the ``leakage`` and ``easier_validation`` scores are
halved too, with ``eval_mode_closes_gap`` in their evidence.

``random_variation``
    The noise scale is the larger of (a) the sampling error of the gap,
    ``cv * val * sqrt(1/n_val + 1/n_train)`` combined with the standard error
    of the gap across the window's epochs, where ``cv`` is the per-image loss's
    coefficient of variation (measured from per-image losses, else assumed 1),
    and (b) the standard deviation of the gap across k-fold re-splits. Score =
    two-sided normal p-value of ``|G| / scale``: near 1 when the gap is within
    noise, near 0 when it is many noise scales away.

Examples
--------
>>> from splitaudit.explain import explain
>>> result = explain({"loss": [1.2, 0.8, 0.6, 0.5], "val_loss": [0.9, 0.65, 0.53, 0.46]})
>>> [c["cause"] for c in result.causes][0]
'measurement_lag'
"""

from .._types import HISTORY_COLUMNS
from ..sources.history import History, read_history
from .ranking import CAUSES, Explanation, explain

__all__ = ["History", "read_history", "HISTORY_COLUMNS", "Explanation", "explain", "CAUSES"]
