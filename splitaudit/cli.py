"""The ``splitaudit`` command: a thin shell over the API.

Only this module and its terminal renderer (:mod:`._terminal`) import argparse and rich. Exit codes:
0 success, 1 when ``--fail-on`` fires, 2 usage or input error (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._terminal import ProgressBars as _ProgressBars
from ._terminal import _plain as _escape
from ._terminal import console as _console
from ._terminal import print_explanation as _print_explanation
from ._terminal import print_kfold_summary as _kfold_summary
from ._terminal import print_scan_summary as _print_scan_summary
from ._terminal import print_written as _print_written
from ._text import score_text
from ._version import __version__
from .errors import SplitAuditError

EXIT_OK, EXIT_FAIL_ON, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(EXIT_USAGE, f"splitaudit: error: {message}\n")


# ------------------------------------------------------------------------ scan
def _add_split_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", nargs="?", help="folder with train/ and val/ (flat or one folder per class)")
    p.add_argument("--train", help="training folder (with --val)")
    p.add_argument("--val", help="validation folder (with --train)")
    p.add_argument("--manifest", help="CSV with path, split[, label|target, group] columns")


_SAFE_CSV_HELP = ("prefix ' to CSV text cells that start with = + - @ (or tab/CR), so a spreadsheet "
                  "shows them instead of running them as formulas (off: the CSVs are exact data)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--mode", choices=["fast", "exact"], default="fast",
                   help="hash decode: fast (reduced JPEG decode) or exact (bit-identical to imagehash)")
    p.add_argument("--cache", default=None, help="cache folder (default: ~/.cache/splitaudit)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--embed", default="none",
                   help="embedding model: none (default), auto, default, or a TorchScript file")
    p.add_argument("--scheduler", default=None,
                   help="fingerprint on dask: 'local' (LocalCluster) or tcp://HOST:PORT (needs splitaudit[dask])")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summary")


def _split_kwargs(args: argparse.Namespace) -> dict:
    if getattr(args, "hf", None) is not None:
        if args.root is not None or args.train or args.val or args.manifest:
            raise _UsageError("--hf DIR replaces ROOT, --train/--val and --manifest; give it alone")
        return {}
    if args.root is None and args.manifest is None and (args.train is None or args.val is None):
        raise _UsageError("give ROOT, or --train DIR --val DIR, or --manifest CSV")
    return {"train": args.train, "val": args.val, "manifest": args.manifest}


def _cache_arg(args: argparse.Namespace) -> Any:
    """``--no-cache`` → False, ``--cache DIR`` → DIR, else True (the default folder)."""
    return False if args.no_cache else (args.cache or True)


def _split_outside(args: argparse.Namespace) -> Any:
    """Discover the split (cheap) and refuse an --out inside its root before any work."""
    from .report import refuse_inside_root
    from .scan import resolve_split

    kwargs = _split_kwargs(args)
    if getattr(args, "hf", None) is not None:
        return _hf_split(args)
    split = resolve_split(args.root, **kwargs)
    refuse_inside_root(Path(args.out), split.root)
    return split


def _hf_split(args: argparse.Namespace) -> Any:
    """``--hf DIR``: a DatasetDict saved with ``save_to_disk``; --out may not be inside DIR."""
    from .errors import InputError
    from .report import refuse_inside_root
    from .dataset import ImageSplit
    from .sources import is_hf_dataset_dict, load_hf, store_for_cache

    folder = Path(args.hf)
    if not folder.is_dir():
        raise InputError(f"--hf must be a folder written by DatasetDict.save_to_disk; got {args.hf!r}")
    refuse_inside_root(Path(args.out), folder)
    data = load_hf(folder)
    if not is_hf_dataset_dict(data):
        raise InputError(f"--hf {args.hf!r} holds one Dataset, not a DatasetDict with train and validation "
                         "splits; save a DatasetDict({'train': ..., 'validation': ...})")
    split = ImageSplit.from_hf(data, store=store_for_cache(_cache_arg(args)))
    refuse_inside_root(Path(args.out), split.root)
    return split


def _fail_on_exit(scan_result: Any, args: argparse.Namespace) -> int:
    """EXIT_FAIL_ON (with a one-line reason) when a --fail-on group fired, else EXIT_OK."""
    fired = scan_result.triggered(args.fail_on) if args.fail_on else []
    if fired:
        print(f"splitaudit: --fail-on {','.join(args.fail_on)} triggered by {', '.join(fired)}",
              file=sys.stderr)
        return EXIT_FAIL_ON
    return EXIT_OK


def _scan_from_args(args: argparse.Namespace, progress: Callable) -> Any:
    from .scan import scan

    checks = [c.strip() for c in args.checks.split(",") if c.strip()] if args.checks else None
    if not 0.0 <= args.min_score <= 1.0:
        raise _UsageError(f"--min-score must be between 0 and 1; got {args.min_score}")
    options = {"min_score": args.min_score}
    return scan(_split_outside(args), mode=args.mode, jobs=args.jobs, cache=_cache_arg(args),
                embed=args.embed, scheduler=args.scheduler, checks=checks, progress=progress,
                duplicate_options=options)


def cmd_scan(args: argparse.Namespace) -> int:
    console = _console()
    with _ProgressBars(not args.quiet, _console(stderr=True)) as progress:
        result = _scan_from_args(args, progress)
    out_dir = Path(args.out)
    written = result.save(out_dir, html=not args.no_html, safe_csv=args.safe_csv)
    if not args.quiet:
        _print_scan_summary(result, out_dir, written, console)
    return _fail_on_exit(result, args)


# -------------------------------------------------------------- resplit / kfold
def _scan_for_groups(args: argparse.Namespace, progress: Callable) -> Any:
    """Fingerprints and duplicate clusters only (no drift/difficulty checks)."""
    from .scan import scan

    return scan(_split_outside(args), mode=args.mode, jobs=args.jobs, cache=_cache_arg(args),
                embed=args.embed, checks=["exact_duplicates", "near_duplicates"],
                scheduler=args.scheduler, progress=progress)


def cmd_resplit(args: argparse.Namespace) -> int:
    from .report import write_csv, write_json
    from .resplit import resplit_manifest

    if args.val_fraction is not None and not 0 < args.val_fraction < 1:
        raise _UsageError(f"--val-fraction must be between 0 and 1; got {args.val_fraction}")
    with _ProgressBars(not args.quiet, _console(stderr=True)) as progress:
        result = _scan_for_groups(args, progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ok = result.fingerprints.table["ok"].to_numpy(dtype=bool)
    images = result.split.images[ok].reset_index(drop=True)
    clusters = result.duplicates.clusters[ok]
    manifest = resplit_manifest(images, clusters, n_splits=args.k, val_fraction=args.val_fraction,
                                random_state=args.seed)
    write_csv(manifest, out / "manifest.csv", safe=args.safe_csv)
    n_groups = int(manifest["group"].nunique())
    info = {"n_images": len(manifest), "n_unreadable_left_out": int((~ok).sum()), "k": args.k,
            "val_fraction": args.val_fraction, "n_groups": n_groups,
            "n_duplicate_clusters": int((np.bincount(clusters) > 1).sum()) if len(clusters) else 0,
            "seed": args.seed}
    write_json(info, out / "resplit.json")
    if not args.quiet:
        console = _console()
        console.print(f"[bold]splitaudit resplit[/bold]: {len(manifest):,} images in {n_groups:,} groups "
                      f"({info['n_duplicate_clusters']:,} duplicate clusters kept whole), k={args.k}"
                      + (f", val fraction {args.val_fraction}" if args.val_fraction else ""))
        if int((~ok).sum()):
            console.print(f"  {int((~ok).sum())} unreadable files left out (see a scan's unreadable.csv)")
        console.print(f"  wrote {out / 'manifest.csv'}", markup=False)
    return EXIT_OK


def cmd_kfold(args: argparse.Namespace) -> int:
    from .audit import kfold_inputs
    from .report import write_json
    from .retrain import kfold

    with _ProgressBars(not args.quiet, _console(stderr=True)) as progress:
        result = _scan_for_groups(args, progress)
        if result.split.task is None:
            raise _UsageError("kfold needs labels (class folders or a manifest label column) or targets")
        images, features, clusters, source = kfold_inputs(result)
        kw = {"features": features} if args.probe == "linear" else {}
        if args.probe == "cnn":
            kw.update(dropout=args.dropout, augment=args.augment)
        kf = kfold(images, n_splits=args.k, probe=args.probe, epochs=args.epochs, clusters=clusters,
                   repeats=args.repeats, random_state=args.seed, progress=progress, **kw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(kf.to_dict(), out / "kfold.json")
    kf.plot(out / "kfold.png")
    if not args.quiet:
        console = _console()
        _kfold_summary(kf, console)
        console.print(f"  features: {source if args.probe == 'linear' else 'pixels (CNN)'}; "
                      f"wrote {out / 'kfold.json'}, {out / 'kfold.png'}", markup=False)
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit import audit

    with _ProgressBars(not args.quiet, _console(stderr=True)) as progress:
        result = audit(_split_outside(args), history=args.history, n_splits=args.k,
                       probe=args.probe, epochs=args.epochs, mode=args.mode, jobs=args.jobs,
                       cache=_cache_arg(args), embed=args.embed, scheduler=args.scheduler,
                       progress=progress)
    written = result.save(args.out)
    if args.safe_csv:  # the scan's CSV files again, spreadsheet-safe
        from .report import write_scan_csvs

        written.update(write_scan_csvs(result.scan, args.out, safe_csv=True))
    if not args.quiet:
        console = _console()
        for i, line in enumerate(result.verdict()):
            console.print(f"[bold]{_escape(line)}[/bold]" if i == 0 else "  " + line,
                          markup=i == 0, highlight=False)
        _print_written(written.values(), console)
    return _fail_on_exit(result.scan, args)


def _refuse_write_into(flag: str, target: str, roots: Sequence[Any]) -> None:
    """A one-line usage error when ``target`` (``--out``, ``--index``) lies inside a data folder."""
    where = Path(target).resolve()
    for root in roots:
        data = Path(root).resolve()
        if where == data or data in where.parents:
            raise _UsageError(f"{flag} must be outside the data (splitaudit never writes into your data); "
                              f"got {target!r}, which is {str(where)!r}, inside {str(root)!r}. "
                              f"Pass {flag} with a path outside it")


def cmd_check_new(args: argparse.Namespace) -> int:
    from .index import TrainingIndex

    cache = _cache_arg(args)
    if len(args.new) > 1 and any(Path(p).is_dir() for p in args.new):
        raise _UsageError("give one folder or a list of image files as NEW, not both")
    new_data = [p if Path(p).is_dir() else str(Path(p).parent) for p in args.new]  # never written into
    data = [*new_data, *([args.build] if args.build is not None else [])]
    if args.new:  # --out is written only when there are new images
        _refuse_write_into("--out", args.out, data)
    with _ProgressBars(not args.quiet, _console(stderr=True)) as progress:
        if args.build is not None:
            _refuse_write_into("--index", args.index, data)
            index = TrainingIndex.build(args.build, mode=args.mode or "fast", jobs=args.jobs, cache=cache,
                                        progress=progress)
            index.save(args.index)
        else:
            index = TrainingIndex.load(args.index, mode=args.mode)
        if not args.new:
            return EXIT_OK
        if index.root is not None:  # the indexed training data, wherever it was built from
            _refuse_write_into("--out", args.out, [index.root])
        sources = args.new[0] if len(args.new) == 1 and Path(args.new[0]).is_dir() else args.new
        matches = index.check(sources, jobs=args.jobs, cache=cache, progress=progress,
                              hash_radius=args.hash_radius, min_score=args.min_score)
    from .report import write_csv

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(matches, out, safe=args.safe_csv)
    if not args.quiet:
        console = _console()
        n_hit = matches["new_index"].nunique()
        console.print(f"[bold]splitaudit check-new[/bold] {matches.attrs['n_new']:,} new images vs "
                      f"{len(index):,} indexed: {n_hit:,} match a training image "
                      f"({len(matches):,} pairs), {len(matches.attrs['unreadable']):,} unreadable")
        for row in matches.head(5).itertuples():
            console.print(f"    {score_text(row.score, row.kind)} {row.kind:<5} new:{row.new_path}  "
                          f"train:{row.train_path}",
                          markup=False)
        console.print(f"  wrote {out}", markup=False)
    return EXIT_FAIL_ON if args.fail_on_match and len(matches) else EXIT_OK


# --------------------------------------------------------------------- explain
def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import explain
    from .explain.ranking import _cli_text

    try:
        expl = explain(args.history, scan=args.scan, kfold=args.kfold, n_val=args.n_val, n_train=args.n_train,
                       epochs=args.epochs).for_cli()
    except SplitAuditError as exc:  # name the command-line flags, not the API's keyword arguments
        raise _UsageError(_cli_text(str(exc))) from None
    written = []
    if args.out is not None:  # files only when asked for
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "explain.json").write_text(expl.to_json() + "\n", encoding="utf-8")
        written.append(out / "explain.json")
        try:
            written.append(expl.plot(out / "explain.png"))
        except (ValueError, OverflowError) as exc:  # a history that cannot be drawn is not an error
            print(f"splitaudit: note: no plot ({exc})", file=sys.stderr)
    if not args.quiet:
        console = _console()
        _print_explanation(expl, console)
        if written:
            _print_written(written, console)
    return EXIT_OK


# ----------------------------------------------------------------------- parser
_FAIL_ON = ["leakage", "label_conflicts", "difficulty", "drift", "any"]  # the groups of scan.FAIL_ON_GROUPS


def _add_scan_command(sub: Any) -> None:
    """The ``scan`` sub-command and its arguments."""
    p = sub.add_parser("scan", help="find cross-split duplicates, drift and difficulty imbalance")
    _add_split_args(p)
    p.add_argument("--hf", metavar="DIR", default=None,
                   help="a Hugging Face DatasetDict saved with save_to_disk (needs splitaudit[hf])")
    _add_common(p)
    p.add_argument("--out", required=True, help="output folder for summary.json, duplicates.csv, report.html")
    p.add_argument("--safe-csv", action="store_true", help=_SAFE_CSV_HELP)
    p.add_argument("--fail-on", action="append", default=[], choices=_FAIL_ON,
                   help="exit 1 when these checks fail (repeatable)")
    p.add_argument("--no-html", action="store_true", help="skip report.html")
    p.add_argument("--min-score", type=float, default=0.5,
                   help="smallest score in [0, 1] of a reported near pair (default 0.5; exact pairs always count)")
    p.add_argument("--checks", default=None,
                   help="comma-separated checks to run (default: all): exact_duplicates, near_duplicates, "
                        "label_conflicts, label_distribution, property_drift, embedding_drift, difficulty")
    p.set_defaults(func=cmd_scan)


def _add_resplit_command(sub: Any) -> None:
    """The ``resplit`` sub-command and its arguments."""
    p = sub.add_parser("resplit", help="write a leak-free k-fold (or train/val) manifest")
    _add_split_args(p)
    _add_common(p)
    p.add_argument("--k", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="also write one leak-free train/val split with this validation fraction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder for manifest.csv")
    p.add_argument("--safe-csv", action="store_true", help=_SAFE_CSV_HELP)
    p.set_defaults(func=cmd_resplit)


def _add_kfold_command(sub: Any) -> None:
    """The ``kfold`` sub-command and its arguments."""
    p = sub.add_parser("kfold", help="retrain on leak-aware re-splits: does val < train persist?")
    _add_split_args(p)
    _add_common(p)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--probe", choices=["linear", "cnn"], default="linear")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1, help="repeat the re-split with other seeds")
    p.add_argument("--dropout", type=float, default=0.0, help="CNN probe dropout")
    p.add_argument("--augment", action="store_true", help="CNN probe: random shifts in training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output folder for kfold.json and kfold.png")
    p.set_defaults(func=cmd_kfold)


def _add_audit_command(sub: Any) -> None:
    """The ``audit`` sub-command and its arguments."""
    p = sub.add_parser("audit", help="scan + drift/difficulty + k-fold + explain, one report")
    _add_split_args(p)
    _add_common(p)
    p.add_argument("--history", help="your loss history (Keras CSVLogger, Lightning metrics.csv, JSON)")
    p.add_argument("--k", type=int, default=5, help="k-fold re-splits (0 to skip retraining)")
    p.add_argument("--probe", choices=["linear", "cnn"], default="linear")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", required=True)
    p.add_argument("--fail-on", action="append", default=[], choices=_FAIL_ON)
    p.add_argument("--safe-csv", action="store_true", help=_SAFE_CSV_HELP)
    p.set_defaults(func=cmd_audit)


def _add_check_new_command(sub: Any) -> None:
    """The ``check-new`` sub-command and its arguments."""
    p = sub.add_parser("check-new", help="check new images against a saved index of a training set")
    p.add_argument("new", nargs="*", help="a folder of new images, or image files")
    p.add_argument("--index", required=True, help="index folder (read; written with --build)")
    p.add_argument("--build", metavar="TRAIN", default=None,
                   help="first build the index from TRAIN (a train/val root: its train images; "
                        "else every image under it) and save it to --index")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--mode", choices=["fast", "exact"], default=None,
                   help="fingerprint mode (default: fast when building; the index's own when loading)")
    p.add_argument("--cache", default=None, help="cache folder (default: ~/.cache/splitaudit)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    p.add_argument("--hash-radius", type=int, default=4, help="largest Hamming distance of a hash candidate")
    p.add_argument("--min-score", type=float, default=0.5, help="smallest score of a reported near match")
    p.add_argument("--out", default="matches.csv", help="CSV of matches (default: matches.csv)")
    p.add_argument("--fail-on-match", action="store_true", help="exit 1 when any new image matches")
    p.add_argument("--safe-csv", action="store_true", help=_SAFE_CSV_HELP)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summary")
    p.set_defaults(func=cmd_check_new)


def _add_explain_command(sub: Any) -> None:
    """The ``explain`` sub-command and its arguments."""
    p = sub.add_parser("explain", help="rank the causes of a validation loss below the training loss")
    p.add_argument("history", help="loss history: Keras CSVLogger CSV, Lightning metrics.csv, "
                                   "History.history JSON, or a CSV with train_loss,val_loss")
    p.add_argument("--scan", help="a scan output folder (summary.json, images.csv)")
    p.add_argument("--kfold", help="a kfold output folder (kfold.json)")
    p.add_argument("--epochs", default=None,
                   help="epochs to explain, counted from 1 (e.g. 1-5 or 1-3,7); default: every phase where "
                        "val < train, the longest first")
    p.add_argument("--n-val", type=int, default=None, help="validation images (for the random-variation estimate)")
    p.add_argument("--n-train", type=int, default=None, help="training images (for the random-variation estimate)")
    p.add_argument("--out", default=None,
                   help="output folder for explain.json and explain.png (default: print only, write nothing)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing (with --out: only write the files)")
    p.set_defaults(func=cmd_explain)


def build_parser() -> argparse.ArgumentParser:
    """The ``splitaudit`` argument parser: one sub-command per stage of the audit."""
    parser = _Parser(prog="splitaudit", description="Audit a train/validation split of an image dataset.")
    parser.add_argument("--version", action="version", version=f"splitaudit {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _add_scan_command(sub)
    _add_resplit_command(sub)
    _add_kfold_command(sub)
    _add_audit_command(sub)
    _add_check_new_command(sub)
    _add_explain_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except (_UsageError, SplitAuditError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        msg = " ".join(str(exc).split())
        print(f"splitaudit: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("splitaudit: interrupted; finished work is cached, rerun to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not the user's input: never exit 1, which means "--fail-on fired"
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"splitaudit: internal error ({type(exc).__name__}: {' '.join(str(exc).split())}); "
              "this is a bug in splitaudit, please report it with the traceback above", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
