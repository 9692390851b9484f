"""`edgeasr doctor`: what this host can measure and what stands in the way, line by line, each with its fix.

``--json`` prints one JSON object for bug reports (the README asks for it). Exit 0 whatever it finds: the lines are
the answer; 1 only when the doctor itself could not run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..host.doctor import INFO, NA, OK, PROBLEM, SECTIONS, Line, diagnose
from ..models.resolve import default_models_dir
from ..trust.untrusted import line, visible

#: How each status reads in the text view, and its colour.
SHOWN = {OK: ("ok", "green"), PROBLEM: ("PROBLEM", "bold red"), NA: ("n/a", "dim"), INFO: ("info", "cyan")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="one JSON object on stdout (attach it to a bug report); progress goes to stderr")
    p.add_argument("--no-containers", action="store_true",
                   help="do not start a container of each built image to ask its libraries about the GPU")
    p.add_argument("--models-dir", type=Path, default=None, help="installed models")


def render(lines: list[Line], console: Console) -> None:
    """One table, section by section: status, what, what was found, and the fix under a problem."""
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("what", no_wrap=True, max_width=28)
    table.add_column("found", overflow="fold")
    for section in SECTIONS:
        mine = [item for item in lines if item.section == section]
        if not mine:
            continue
        table.add_row(Text(section, style="bold"), "", "")
        for item in mine:
            word, style = SHOWN[item.status]
            found = Text(visible(item.detail))
            if item.fix:
                found.append("\nfix: " + visible(item.fix), style="yellow")
            table.add_row(Text("  " + word, style=style), Text(visible(item.name)), found)
    console.print(table)
    problems = [item for item in lines if item.status == PROBLEM]
    console.print(Text(f"{len(problems)} problem(s)" + (": " + ", ".join(visible(p.name) for p in problems)
                                                        if problems else ""), style="bold"))


def main(args: argparse.Namespace) -> int:
    err = Console(stderr=True, quiet=bool(getattr(args, "quiet", False)))
    models_dir = args.models_dir or default_models_dir()
    with err.status("asking this host") as spinner:
        found = diagnose(models_dir, containers=not args.no_containers,
                         status=lambda text: spinner.update(line(text)))
    if args.json:  # JSON escapes every control character itself: the images' strings go out as they came
        from .. import __version__

        print(json.dumps({"schema_version": 1, "edgeasr": __version__, "models_dir": str(models_dir),
                          **found.to_json()}))
        return 0
    render(found.lines, Console(highlight=False))
    return 0
