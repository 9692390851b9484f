"""`edgeasr report FOLDER...`: sweep folders and run folders as one table (terminal, Markdown or CSV), PNG
figures (four, plus one per numeric dotted axis that varies), the worst utterances, and one HTML page.

Reads the results files only (conditions.jsonl, manifest.json, summary.json, utterances.jsonl); never Docker,
so a report can be made anywhere the results folders are copied to. Several folders are compared in one table,
a ``source`` column telling them apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from ..errors import UserError
from ..report import worst as worst_mod
from ..report.aggregate import aggregate
from ..report.figures import write_figures
from ..report.html import REPORT_FILE, write_html
from ..report.records import load_many
from ..report.sweep_table import FORMATS, build_table, render
from ..untrusted import line, visible

WIDE = 200  # columns for the table when stdout is a file or pipe (rich would assume 80)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dirs", type=Path, nargs="+", metavar="FOLDER",
                   help="a folder a sweep wrote (holds conditions.jsonl) or a run folder (holds summary.json); "
                        "several are compared in one table")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where the figures and report.html go (default: FOLDER/report with one folder, "
                        "./report with several)")
    p.add_argument("--no-figures", action="store_true", help="the table and the HTML page only, no PNG figures")
    p.add_argument("--format", dest="fmt", default="table", choices=FORMATS,
                   help="the table on stdout: table (terminal), md (Markdown) or csv (default: table)")
    p.add_argument("--worst", type=int, default=worst_mod.TOP_N, metavar="N",
                   help=f"list the N worst utterances by WER and by latency (default {worst_mod.TOP_N}; 0: none)")


def worst_lines(sweep, rows, n: int) -> list[str]:
    """The report's worst utterances, each labelled with its condition as the table names it."""
    if n <= 0:
        return []
    from ..report.records import KeyNames, axes_that_vary, format_axis_value

    names = KeyNames.of([r.key for r in rows])
    axes = axes_that_vary([r.key for r in rows])

    def label(rec) -> str:
        k = rec.key
        parts = [names.model(k), k.quant, *(f"{p}={format_axis_value(k.axis(p))}" for p in axes), k.noise_label]
        return " ".join(parts) + (f" repeat {rec.repeat}" if len({r.repeat for r in sweep.records}) > 1 else "")

    sources = [(label(rec), worst_mod.read_utterances(rec.folder)) for rec in sweep.records if rec.folder]
    return worst_mod.lines(worst_mod.worst(sources, n))


def main(args: argparse.Namespace) -> int:
    folders = list(getattr(args, "results_dirs", None) or [args.results_dir])
    sweep = load_many(folders)
    for warning in sweep.warnings:
        print(visible(f"warning: {warning}; left out of the report (rerun the sweep to redo that condition)"),
              file=sys.stderr)
    rows = aggregate(sweep.records)
    out: Path = args.out if args.out is not None else (Path(folders[0]) / "report" if len(folders) == 1
                                                        else Path("report"))
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the figures and report.html.")
    fmt = getattr(args, "fmt", "table")
    quiet = getattr(args, "quiet", False)
    console = getattr(args, "console", None) or Console()
    if not console.is_terminal and console.width < WIDE:
        console = Console(width=WIDE, file=console.file)
    worst = worst_lines(sweep, rows, getattr(args, "worst", worst_mod.TOP_N))
    if not quiet or fmt != "table":
        render(build_table(rows, sweep.title), fmt, console)
        if fmt == "table":
            for item in worst:
                console.print(line(item))
            console.print()
    # md and csv: stdout holds the table alone, so it can be redirected; the file lines go to stderr
    info = sys.stderr if fmt != "table" else sys.stdout
    # The study figures read per-utterance and per-group files: from one results folder (a run or a sweep).
    skipped: list[str] = []
    figures = [] if args.no_figures else write_figures(rows, out, sweep=sweep if len(folders) == 1 else None,
                                                       skipped=skipped)
    for fig in figures if not quiet else ():
        if fig.unavailable:
            print(visible(f"not drawn: {fig.title} ({fig.unavailable.splitlines()[0]})"), file=info)
        else:
            print(visible(f"figure: {fig.path}"), file=info)
    print(visible(f"report: {write_html(out / REPORT_FILE, sweep, rows, figures, worst, skipped)}"), file=info)
    return 0
