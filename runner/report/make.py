"""Make a report: sweep and run folders as one table, the figures, the worst utterances and one HTML page.

The one sequence behind `edgeasr report` and the report a sweep draws at its end (runner/commands/report.py,
runner/commands/sweep.py): read the results files only, never Docker, so a report can be made anywhere the
results folders are copied to.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from ..errors import UserError
from ..trust.untrusted import line, visible
from . import worst as worst_mod
from .aggregate import aggregate
from .figures import write_figures
from .html import REPORT_FILE, write_html
from .records import KeyNames, axes_that_vary, format_axis_value, load_many
from .numbers_csv import numbers_csv
from .sweep_table import build_table, render

WIDE = 200  # columns for the table when stdout is a file or pipe and COLUMNS does not say (rich would assume 80)


def worst_lines(sweep, rows, n: int) -> list[str]:
    """The report's worst utterances, each labelled with its condition as the table names it."""
    if n <= 0:
        return []
    names = KeyNames.of([r.key for r in rows])
    axes = axes_that_vary([r.key for r in rows])

    def label(rec) -> str:
        k = rec.key
        parts = [names.model(k), k.quant, *(f"{p}={format_axis_value(k.axis(p))}" for p in axes), k.noise_label]
        return " ".join(parts)

    several = len({r.repeat for r in sweep.records}) > 1  # an utterance once, at its worst repeat (from 1)
    sources = [(label(rec), worst_mod.read_utterances(rec.folder), rec.repeat + 1 if several else None)
               for rec in sweep.records if rec.folder]
    return worst_mod.lines(worst_mod.worst(sources, n))


def make_report(folders: list[Path], out: Path | None = None, *, fmt: str = "table", figures: bool = True,
                worst: int = worst_mod.TOP_N, quiet: bool = False, console: Console | None = None) -> int:
    """The table (on ``console``, stdout by default; alone on stdout for md and csv), the figures (unless
    ``figures`` is False) and report.html in ``out`` (default FOLDER/report with one folder, ./report with
    several); the lines naming the files go to stdout with the table, else stderr. Returns 0."""
    sweep = load_many(folders)
    for warning in sweep.warnings:
        print(visible(f"warning: {warning}; left out of the report (rerun the sweep to redo that condition)"),
              file=sys.stderr)
    rows = aggregate(sweep.records)
    out = out if out is not None else (Path(folders[0]) / "report" if len(folders) == 1 else Path("report"))
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the figures and report.html.")
    console = console or Console()
    if not console.is_terminal and console.width < WIDE and not os.environ.get("COLUMNS"):
        console = Console(width=WIDE, file=console.file)
    worst_found = worst_lines(sweep, rows, worst)
    if not quiet or fmt != "table":
        if fmt == "csv":  # numbers, one column per figure with its unit (report/numbers_csv.py)
            print(numbers_csv(rows), end="")
        else:
            render(build_table(rows, sweep.title), fmt, console)
        if fmt == "table":
            for item in worst_found:
                console.print(line(item))
            console.print()
    # md and csv: stdout holds the table alone, so it can be redirected; the file lines go to stderr
    info = sys.stderr if fmt != "table" else sys.stdout
    # The study figures read per-utterance and per-group files: from one results folder (a run or a sweep).
    skipped: list[str] = []
    drawn = write_figures(rows, out, sweep=sweep if len(folders) == 1 else None, skipped=skipped) if figures else []
    for fig in drawn if not quiet else ():
        if fig.unavailable:
            print(visible(f"not drawn: {fig.title} ({fig.unavailable.splitlines()[0]})"), file=info)
        else:
            print(visible(f"figure: {fig.path}"), file=info)
    print(visible(f"report: {write_html(out / REPORT_FILE, sweep, rows, drawn, worst_found, skipped)}"), file=info)
    return 0
