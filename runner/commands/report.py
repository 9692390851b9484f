"""`edgeasr report RESULTS_DIR`: a sweep's results as a terminal table, PNG figures (four, plus one per numeric
dotted axis that varies) and one HTML page.

Reads the results files only (conditions.jsonl, manifest.json); never Docker,
so a report can be made anywhere the results folder is copied to.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from ..errors import UserError
from ..report.aggregate import aggregate, load_sweep
from ..report.figures import write_figures
from ..report.html import REPORT_FILE, write_html
from ..report.sweep_table import print_sweep_table

WIDE = 200  # columns for the table when stdout is a file or pipe (rich would assume 80)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dir", type=Path, help="the folder a sweep wrote (holds conditions.jsonl)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where the figures and report.html go (default: RESULTS_DIR/report)")
    p.add_argument("--no-figures", action="store_true", help="the table and the HTML page only, no PNG figures")


def main(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.results_dir)
    for warning in sweep.warnings:
        print(f"warning: {warning}; left out of the report (rerun the sweep to redo that condition)",
              file=sys.stderr)
    rows = aggregate(sweep.records)
    out: Path = args.out if args.out is not None else Path(args.results_dir) / "report"
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the figures and report.html.")
    console = Console()
    if not console.is_terminal:
        console = Console(width=WIDE)
    if not getattr(args, "quiet", False):
        print_sweep_table(rows, sweep.title, console)
        console.print()
    figures = [] if args.no_figures else write_figures(rows, out)
    for fig in figures if not getattr(args, "quiet", False) else ():
        print(f"figure: {fig.path}" + (f"  ({fig.unavailable.splitlines()[0]})" if fig.unavailable else ""))
    print(f"report: {write_html(out / REPORT_FILE, sweep, rows, figures)}")
    return 0
