"""`edgeasr report FOLDER...`: sweep folders and run folders as one table (terminal, Markdown or CSV), PNG
figures (four, plus one per numeric dotted axis that varies), the worst utterances, and one HTML page.

Reads the results files only (conditions.jsonl, manifest.json, summary.json, utterances.jsonl); never Docker,
so a report can be made anywhere the results folders are copied to. Several folders are compared in one table,
a ``source`` column telling them apart.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report import worst as worst_mod
from ..report.make import make_report
from ..report.sweep_table import FORMATS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results_dirs", type=Path, nargs="+", metavar="FOLDER",
                   help="a folder a sweep wrote (holds conditions.jsonl) or a run folder (holds summary.json); "
                        "several are compared in one table")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where the figures and report.html go (default: FOLDER/report with one folder, "
                        "./report with several)")
    p.add_argument("--no-figures", action="store_true", help="the table and the HTML page only, no PNG figures")
    p.add_argument("--format", dest="fmt", default="table", choices=FORMATS,
                   help="the table on stdout: table (terminal), md (Markdown) or csv (numbers, one column per "
                        "figure with its unit in the header) (default: table)")
    p.add_argument("--worst", type=int, default=worst_mod.TOP_N, metavar="N",
                   help=f"list the N worst utterances by WER and by latency (default {worst_mod.TOP_N}; 0: none)")


def main(args: argparse.Namespace) -> int:
    folders = list(getattr(args, "results_dirs", None) or [args.results_dir])
    return make_report(folders, args.out, fmt=getattr(args, "fmt", "table"), figures=not args.no_figures,
                       worst=getattr(args, "worst", worst_mod.TOP_N), quiet=getattr(args, "quiet", False))
