"""Terminal output of the ``splitaudit`` command: a rich progress display and
the summaries each sub-command prints. Only the CLI imports this module.

Text that comes from the user's data (paths, class names, notes, finding messages) goes through
:func:`_plain` or ``markup=False``: a folder named ``[/b]`` is rich markup and would crash the print."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._text import gap_question_sentence, score_text


def _plain(text: Any) -> str:
    """``text`` as literal rich markup (``[red]`` printed, not applied; ``[/b]`` no error)."""
    from rich.markup import escape

    return escape(str(text))


STATUS_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "error": "magenta", "skipped": "dim"}


class ProgressBars:
    """Rich progress bars: a :data:`splitaudit._types.Progress` callback, ``bars(stage, done, total)``."""

    def __init__(self, enabled: bool, console: Any):
        self.enabled = enabled
        self.console = console
        self._bar = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "ProgressBars":
        return self

    def _start(self) -> None:
        # Started on the first update, so an early error prints one clean line.
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self._bar = Progress(TextColumn("{task.description:<22}", markup=False), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                             console=self.console, transient=False)
        self._bar.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled or not stage or stage.startswith("check "):
            return
        if self._bar is None:
            self._start()
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(stage, total=max(total, 1))
        self._bar.update(self._tasks[stage], completed=done, total=max(total, 1))


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_scan_summary(result: Any, out_dir: Path, written: dict, console: Any) -> None:
    from rich.table import Table

    s = result.to_dict()
    console.print(f"[bold]splitaudit scan[/bold] {_plain(s['root'])}")
    console.print(f"  train {s['n_train']:,} · val {s['n_val']:,} · unreadable {s['n_unreadable']:,}"
                  f" · ignored {len(s['ignored']):,} · analysed in {result.timings.get('total', 0):.1f} s")
    for note in s["notes"]:
        console.print(f"  [yellow]note[/yellow] {_plain(note)}")
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("check")
    table.add_column("status")
    table.add_column("finding", overflow="fold")
    for f in result.findings:
        style = STATUS_STYLE.get(f.status, "")
        status = f"[{style}]{_plain(f.status)}[/{style}]" if style else _plain(f.status)
        table.add_row(_plain(f.check), status, _plain(f.message))
    console.print(table)
    pairs = result.pairs
    if len(pairs):
        console.print(f"  top cross-split pairs (of {len(pairs):,}; score, kind, val path = train path):")
        for row in pairs.sort_values("score", ascending=False).head(5).itertuples():
            console.print(f"    {score_text(row.score, row.kind)} {row.kind:<5} {row.val_path} = {row.train_path}",
                          markup=False)
    print_written(written.values(), console)
    console.print("  " + gap_question_sentence(result.findings).replace("with this folder", str(out_dir)),
                  markup=False, highlight=False)


def print_written(paths, console: Any) -> None:
    """``wrote DIR/: a, b, c`` when the files share a folder (short lines), else full paths."""
    paths = [str(p) for p in paths]
    folders = {os.path.dirname(p) for p in paths}
    if len(folders) == 1 and paths:
        console.print(f"  wrote {folders.pop()}{os.sep}: " + ", ".join(os.path.basename(p) for p in paths),
                      markup=False)
    else:
        console.print("  wrote " + ", ".join(paths), markup=False)


def print_kfold_summary(kf: Any, console: Any) -> None:
    v = kf.verdict
    style = "yellow" if getattr(v, "split_specific", False) else "green"
    console.print(f"[bold]k-fold[/bold]: [{style}]{_plain(v.message)}[/{style}]")
    frame = kf.to_frame()
    for row in frame.itertuples():
        console.print(f"  {row.run:<9} train {row.train_loss:.4f} (eval {row.train_loss_eval:.4f}) "
                      f"val {row.val_loss:.4f} gap {row.gap:+.4f}", markup=False)


def print_explanation(expl: Any, console: Any) -> None:
    """The summary, then each phase's ranked causes (score, status, what to do next)."""
    from rich.table import Table

    console.print(f"[bold]{_plain(expl.summary)}[/bold]", markup=True, highlight=False)
    phases = expl.phases or [{"label": "end of training", "kind": "val never below train", "causes": expl.causes}]
    for number, phase in enumerate(phases):
        console.print(f"  {phase['label']} ({phase['kind']}):", markup=False, highlight=False)
        table = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
        for col in ("rank", "cause", "score", "status", "next step"):
            table.add_column(col, overflow="fold")
        for rank, cause in enumerate(phase["causes"] if number == 0 else phase["causes"][:2], 1):
            status = cause.get("status", "measured" if cause.get("known", True) else "unknown")
            score = "—" if status == "unknown" else f"{cause['score']:.2f}"
            step = cause.get("check") if status != "measured" else cause.get("advice", "")
            table.add_row(str(rank), _plain(cause["cause"]), score, _plain(status), _plain(step or ""))
        console.print(table)
