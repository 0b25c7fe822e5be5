"""``scan``: fingerprint a split, find duplicates, run the checks, return one result.

The stages run in the package's data order: load (``ImageSplit``) →
fingerprint (hashes, properties, descriptor; embeddings when asked) →
compare (duplicates) → checks. Library code returns a :class:`ScanResult`;
writing files is :meth:`ScanResult.save`.

Examples
--------
>>> from splitaudit import scan
>>> result = scan("data", embed="none")                  # doctest: +SKIP
>>> result.pairs.head()                                  # doctest: +SKIP
>>> result.save("audit-out")                             # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from ._version import __version__ as _version
from ._optional import available
from ._types import Progress, jsonable
from .checks.base import REGISTRY, AuditContext, CheckResult, run_checks
from .dataset import ImageSplit
from ._validate import check_dict, check_int, fail
from .errors import InputError, InputTypeError
from .report import render_scan_html, render_scan_notebook, write_scan_outputs

__all__ = ["scan", "ScanResult", "DEFAULT_CHECKS", "LEAKAGE_CHECKS", "resolve_split"]

DEFAULT_CHECKS = tuple(REGISTRY)
"""Every registered check, in report order."""
LEAKAGE_CHECKS = ("exact_duplicates", "near_duplicates")
FAIL_ON_GROUPS = {
    "leakage": LEAKAGE_CHECKS,
    "label_conflicts": ("label_conflicts",),
    "difficulty": ("difficulty",),
    "drift": ("label_distribution", "property_drift", "embedding_drift"),
    "any": DEFAULT_CHECKS,
}



def resolve_split(
    root: Any = None,
    *,
    train: Any = None,
    val: Any = None,
    manifest: str | os.PathLike | pd.DataFrame | None = None,
    store: Any = None,
) -> ImageSplit:
    """Build an :class:`ImageSplit` from whichever description the user gave.

    ``root`` may also be a Hugging Face ``DatasetDict``, and ``train``/``val``
    two torch datasets; their images are written to ``store`` (see
    :mod:`splitaudit.sources`).
    """
    from . import sources

    if isinstance(root, ImageSplit):
        return root
    if sources.is_hf_dataset_dict(root):
        if train is not None or val is not None or manifest is not None:
            raise InputError("give a DatasetDict alone; name its splits with ImageSplit.from_hf(dd, train=, val=)")
        return ImageSplit.from_hf(root, store=store)
    if sources.is_torch_dataset(train) or sources.is_torch_dataset(val):
        if not (sources.is_torch_dataset(train) and sources.is_torch_dataset(val)) or root is not None:
            raise InputError("torch datasets go in train= and val= together, without a root; got "
                             f"train={type(train).__name__}, val={type(val).__name__}")
        return ImageSplit.from_torch(train, val, store=store)
    if sources.is_torch_dataset(root):
        raise InputError("a torch dataset is one split; pass train=train_ds, val=val_ds")
    if isinstance(root, pd.DataFrame):
        manifest, root = root, None
    if manifest is not None:
        if train is not None or val is not None:
            raise InputError("give either manifest or train/val folders, not both")
        return ImageSplit.from_manifest(manifest, root=root)
    if train is not None or val is not None:
        if train is None or val is None:
            raise InputError("train and val must be given together; got only "
                             + ("train" if train is not None else "val"))
        return ImageSplit.from_dirs(train, val, root=root)
    if root is None:
        raise InputError("nothing to scan: give a root folder, train/val folders or a manifest")
    return ImageSplit.from_folder(root)


@dataclass(frozen=True)
class ScanResult:
    """Everything a scan found.

    Attributes
    ----------
    split : ImageSplit
    fingerprints : Fingerprints
    duplicates : DuplicateResult
        ``.pairs`` (cross-split), ``.within``, ``.clusters``, ``.expected``.
    findings : list of CheckResult
    embeddings : numpy.ndarray or None
    timings : dict
        Seconds per stage.
    options : dict
        The options the scan ran with (recorded in ``summary.json``).
    """

    split: ImageSplit
    fingerprints: Any
    duplicates: Any
    findings: list[CheckResult]
    embeddings: np.ndarray | None = None
    timings: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    # --------------------------------------------------------------- tables
    @property
    def pairs(self) -> pd.DataFrame:
        """Cross-split duplicate pairs (one row per val/train pair)."""
        return self.duplicates.pairs

    @property
    def within(self) -> pd.DataFrame:
        """Duplicate pairs inside a split."""
        return self.duplicates.within

    @property
    def unreadable(self) -> pd.DataFrame:
        """Files that could not be decoded, with the reason."""
        t = self.fingerprints.table
        bad = t[~t["ok"].astype(bool)]
        return pd.DataFrame({"path": bad["path"].to_numpy(), "reason": bad["reason"].to_numpy()})

    def finding(self, check: str) -> CheckResult | None:
        """The finding of one check, or None when it did not run."""
        return next((f for f in self.findings if f.check == check), None)

    def images(self) -> pd.DataFrame:
        """One row per image: split, label, properties, cluster, difficulty (a copy)."""
        # Built once: images.csv and the report's plots both need it.
        cached = self.__dict__.get("_images")
        if cached is None:
            cached = self._build_images()
            object.__setattr__(self, "_images", cached)
        return cached.copy()

    def _build_images(self) -> pd.DataFrame:
        img = self.split.images.drop(columns=["abspath"]).copy()
        t = self.fingerprints.table
        for col in t.columns:
            if col in ("path",) or col.endswith("_flip"):
                continue
            if col in ("phash", "dhash", "ahash"):
                img[col] = [f"{int(v):016x}" for v in t[col].to_numpy()]
            else:
                img[col] = t[col].to_numpy()
        img["cluster"] = np.asarray(self.duplicates.clusters)
        cross = np.zeros(len(img), dtype=bool)
        if len(self.pairs):
            cross[self.pairs["val_index"].to_numpy(dtype=int)] = True
            cross[self.pairs["train_index"].to_numpy(dtype=int)] = True
        img["has_cross_duplicate"] = cross
        for f in self.findings:
            if f.per_image is None or not len(f.per_image):
                continue
            for col in f.per_image.columns:
                if col in ("path", "split", "label", "target") or col in img.columns:
                    continue
                img[col] = f.per_image[col].reindex(img.index).to_numpy()
        return img

    # ---------------------------------------------------------------- verdicts
    def status_of(self, checks: Iterable[str]) -> str:
        """The worst status among ``checks`` (fail > warn > error > pass > skipped)."""
        order = {"fail": 4, "warn": 3, "error": 2, "pass": 1, "skipped": 0}
        worst = "skipped"
        for f in self.findings:
            if f.check in checks and order[f.status] > order[worst]:
                worst = f.status
        return worst

    def triggered(self, fail_on: Sequence[str]) -> list[str]:
        """Names of the checks that make ``--fail-on`` fire (status ``fail``)."""
        names: set[str] = set()
        for group in fail_on:
            names.update(FAIL_ON_GROUPS.get(group, (group,)))
        return [f.check for f in self.findings if f.check in names and f.status == "fail"]

    # ---------------------------------------------------------------- outputs
    def to_dict(self) -> dict:
        """The content of ``summary.json``: deterministic for the same data and
        options (timings go to ``timings.json``), so reruns can be diffed."""
        unreadable = self.unreadable
        return jsonable(
            {
                "splitaudit_version": _version,
                "root": str(self.split.root),
                "n_train": self.split.n_train,
                "n_val": self.split.n_val,
                "n_images": len(self.split),
                "task": self.split.task,
                "n_unreadable": len(unreadable),
                "unreadable": unreadable.to_dict(orient="records"),
                "ignored": self.split.ignored.to_dict(orient="records"),
                "notes": [*self.split.notes, *getattr(self.fingerprints, "stats", {}).get("notes", [])],
                "n_cross_pairs": int(len(self.pairs)),
                "n_within_pairs": int(len(self.within)),
                "expected_cross_duplicates": getattr(self.duplicates, "expected", {}),
                "findings": [f.to_dict() for f in self.findings],
                "options": self.options,
            }
        )

    def save(self, out_dir: str | os.PathLike, *, html: bool = True, safe_csv: bool = False) -> dict[str, Path]:
        """Write summary.json, duplicates.csv, within_duplicates.csv, images.csv
        (and report.html) into ``out_dir``; return the paths written.

        ``safe_csv=True`` prefixes ``'`` to text cells starting with ``= + - @``
        (tab, CR), which a spreadsheet would run as formulas.
        """
        return write_scan_outputs(self, out_dir, html=html, safe_csv=safe_csv)

    def _repr_html_(self, max_pairs: int = 6) -> str:
        """Notebook display: the verdict, the findings and the first few pairs as
        thumbnails (the full report is :meth:`to_html`)."""
        return render_scan_notebook(self, max_pairs=max_pairs)

    def to_html(self, path: str | os.PathLike) -> Path:
        """Write the self-contained HTML report to ``path``."""
        path = Path(path)
        path.write_text(render_scan_html(self), encoding="utf-8")
        return path


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the seconds the block takes as ``timings[stage]``."""
    start = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - start


def _wanted_checks(checks: Sequence[str] | None) -> list[str]:
    """The checks to run, by name; an unknown name is an :class:`InputError`."""
    if isinstance(checks, str):
        fail("checks", "a list of check names", checks, f"Pass checks=[{checks!r}]", kind=InputTypeError)
    wanted = list(checks) if checks is not None else list(DEFAULT_CHECKS)
    unknown = [c for c in wanted if c not in REGISTRY]
    if unknown:
        raise InputError(f"unknown checks {unknown}; available: {sorted(REGISTRY)}")
    return wanted


def _checked_options(embed_options: Any, duplicate_options: Any, check_options: Any) -> tuple[dict, dict, dict]:
    """The three option dicts of :func:`scan` (None: empty); keys that would have no effect are an
    :class:`InputError`."""
    from .duplicates.params import checked_duplicate_options

    return (check_dict("embed_options", embed_options),
            checked_duplicate_options("duplicate_options", duplicate_options),
            check_dict("check_options", check_options, REGISTRY))


def _fingerprint(split: ImageSplit, *, mode: str, jobs: int | None, cache: Any, scheduler: Any,
                 progress: Progress | None) -> Any:
    """Fingerprints in local processes, or on a dask cluster when a scheduler is given."""
    from .fingerprints import compute_fingerprints

    if scheduler is None:
        return compute_fingerprints(split, mode=mode, jobs=jobs, cache=cache, progress=progress)
    from .distributed import dask_client

    with dask_client(scheduler, jobs=jobs) as client:
        return compute_fingerprints(split, mode=mode, jobs=jobs, cache=cache, progress=progress, client=client)


def _embed(split: ImageSplit, embed: Any, *, cache: Any, progress: Progress | None,
           embed_options: dict) -> tuple[np.ndarray | None, str | None]:
    """(embeddings or None, why there are none or None); ``embed="auto"`` without torch is a note."""
    if embed in (None, False, "none"):
        return None, "embeddings off (--embed none)"
    if embed == "auto" and not available("torch"):
        return None, "torch not installed (pip install 'splitaudit[torch]'); embeddings skipped"
    model = "default" if embed in ("auto", "default", True) else embed
    try:
        from .fingerprints.embeddings import embed_images

        emb = embed_images(split, model=model, progress=progress, cache=cache, **embed_options)
    except ImportError as exc:
        if embed != "auto":
            raise
        return None, str(exc)
    return getattr(emb, "vectors", emb), None


def _duplicates(fps: Any, split: ImageSplit, embeddings: np.ndarray | None,
                options: dict, progress: Progress | None) -> Any:
    """The compare stage: :func:`~splitaudit.duplicates.find_duplicates` with the user's options."""
    from .duplicates import find_duplicates

    return find_duplicates(fps, split.images, embeddings=embeddings, progress=progress, **options)


def _run_checks(wanted: list[str], context: AuditContext, *, jobs: int | None) -> list[CheckResult]:
    """Run the checks on a context they only read; the difficulty probe is fitted here first
    (retrain work, which the checks stage may not do)."""
    if "difficulty" in wanted and context.image_loss is None:
        from .retrain.probes import difficulty_probe_loss

        context = replace(context, probe_loss=difficulty_probe_loss(context, jobs=jobs))
    return run_checks(wanted, context, progress=context.progress)


def _recorded_options(*, mode: str, jobs: int | None, embed: Any, embeddings: np.ndarray | None,
                      embed_note: str | None, wanted: list[str], dups: Any, random_state: int,
                      scheduler: Any) -> dict:
    """The options a scan ran with, as ``summary.json`` records them."""
    return {
        "mode": mode,
        "jobs": jobs,
        "embed": embed if isinstance(embed, str) or embed is None else type(embed).__name__,
        "embeddings_used": embeddings is not None,
        "embeddings_note": embed_note,
        "checks": wanted,
        "duplicates": {k: v for k, v in dups.params.items()  # find_duplicates' parameters, as used
                       if isinstance(v, (str, int, float, bool)) and k != "jobs"},
        "random_state": random_state,
        "scheduler": None if scheduler is None else str(scheduler),
    }


def scan(
    root: Any = None,
    *,
    train: Any = None,
    val: Any = None,
    manifest: str | os.PathLike | pd.DataFrame | None = None,
    mode: str = "fast",
    jobs: int | None = None,
    cache: str | os.PathLike | bool | None = True,
    embed: Any = "none",
    embed_options: dict | None = None,
    checks: Sequence[str] | None = None,
    duplicate_options: dict | None = None,
    check_options: dict | None = None,
    image_loss: np.ndarray | None = None,
    random_state: int = 0,
    scheduler: Any = None,
    progress: Progress | None = None,
) -> ScanResult:
    """Audit a train/validation split.

    Parameters
    ----------
    root : path, ImageSplit, DataFrame or DatasetDict, optional
        A folder with ``train/`` and ``val/`` (flat or one folder per class),
        an :class:`ImageSplit`, a manifest DataFrame, or a Hugging Face
        ``DatasetDict`` (see :meth:`ImageSplit.from_hf`).
    train, val : path or torch Dataset, optional
        Explicit split folders (instead of ``root`` discovery), or two
        map-style torch datasets (see :meth:`ImageSplit.from_torch`).
        Images of a DatasetDict or torch datasets are written by content to
        ``images/`` in the cache folder (a temporary folder with ``cache=False``).
    manifest : path or DataFrame, optional
        CSV with ``path``, ``split`` and optional ``label``/``target``/``group``.
    mode : {"fast", "exact"}
        ``exact`` hashes are bit-identical to :mod:`imagehash`; ``fast``
        decodes JPEGs at reduced size (see the README for the deviation).
    jobs : int, optional
        Worker processes (default: all cores).
    cache : bool or path
        ``True`` uses the default cache folder, a path uses that folder,
        ``False``/``None`` disables the cache. Never inside the data root.
    embed : {"none", "auto", "default"} or path or torch.nn.Module
        Embedding model for semantic near-duplicates and drift.
    checks : sequence of str, optional
        Which checks to run (default :data:`DEFAULT_CHECKS`).
    scheduler : None, "local", "tcp://HOST:PORT" or a dask ``Client``
        Fingerprint on a dask cluster (see :mod:`splitaudit.distributed`);
        ``None`` (default) uses local processes and never imports dask.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    ScanResult
    """
    if mode not in ("fast", "exact"):
        raise InputError(f"mode must be 'fast' or 'exact'; got {mode!r}")
    wanted = _wanted_checks(checks)
    random_state = check_int("random_state", random_state)
    embed_options, duplicate_options, check_options = _checked_options(embed_options, duplicate_options,
                                                                       check_options)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    from .sources import store_for_cache

    with _timed(timings, "discover"):
        split = resolve_split(root, train=train, val=val, manifest=manifest, store=store_for_cache(cache))
    cache_arg = None if cache is False else cache  # True: default folder; a path: that folder
    with _timed(timings, "fingerprints"):
        fps = _fingerprint(split, mode=mode, jobs=jobs, cache=cache_arg, scheduler=scheduler, progress=progress)
    with _timed(timings, "embeddings"):
        embeddings, embed_note = _embed(split, embed, cache=cache_arg, progress=progress,
                                        embed_options=embed_options)
    with _timed(timings, "duplicates"):
        dups = _duplicates(fps, split, embeddings, duplicate_options, progress)
    context = AuditContext(
        split=split,
        fingerprints=fps,
        embeddings=embeddings,
        pairs=dups.pairs,
        within_pairs=dups.within if dups.params.get("within", True) else None,  # None: not searched
        image_loss=image_loss,
        random_state=random_state,
        options=check_options,
        progress=progress,
    )
    with _timed(timings, "checks"):
        findings = _run_checks(wanted, context, jobs=jobs)
    timings["total"] = time.perf_counter() - t0
    options = _recorded_options(mode=mode, jobs=jobs, embed=embed, embeddings=embeddings, embed_note=embed_note,
                                wanted=wanted, dups=dups, random_state=random_state, scheduler=scheduler)
    return ScanResult(split=split, fingerprints=fps, duplicates=dups, findings=findings,
                      embeddings=embeddings, timings=timings, options=options)
