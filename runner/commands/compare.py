"""`edgeasr compare BASELINE CANDIDATE...`: matched conditions, their deltas, and regression gates.

Each folder is a run folder or a sweep folder. Exit codes: 0 every gate passed (or none was set), 1 a gate was
exceeded or could not be checked (each is named), 2 bad input (a folder that holds no results, no
condition of a candidate matches the baseline, a gate over sides that ran different utterances without
``--allow-different-data``, or ``--max-latency-increase`` where a side has no stream data).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from ..errors import UserError
from ..report.compare import Gates, compare, table_model, to_csv, to_json
from ..report.records import load_results, source_labels
from ..report.sweep_table import markdown_table, render

WIDE = 200


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", type=Path, help="the run or sweep folder to compare against")
    p.add_argument("candidates", type=Path, nargs="+", metavar="CANDIDATE", help="run or sweep folders to compare")
    p.add_argument("--max-wer-increase", type=float, default=None, metavar="POINTS",
                   help="exit 1 when a condition's WER rises by more than POINTS percentage points (default: no gate)")
    p.add_argument("--max-rtf-increase", type=float, default=None, metavar="PCT",
                   help="exit 1 when a condition's RTF rises by more than PCT percent (default: no gate)")
    p.add_argument("--max-energy-increase", type=float, default=None, metavar="PCT",
                   help="exit 1 when a condition's energy per audio second rises by more than PCT percent; "
                        "fails where energy is unavailable (default: no gate)")
    p.add_argument("--max-latency-increase", type=float, default=None, metavar="PCT",
                   help="exit 1 when a condition's p99 finalization latency (stream mode: from the end of an "
                        "utterance's audio to its final text) rises by more than PCT percent; refused where a side "
                        "has no stream data (default: no gate)")
    p.add_argument("--max-hallucination-increase", type=float, default=None, metavar="WPM",
                   help="exit 1 when a condition's words per minute said over non-speech items rise by more than "
                        "WPM (absolute); fails where a side has no non-speech item (default: no gate)")
    p.add_argument("--allow-different-data", action="store_true",
                   help="gate even where the sides ran different utterances (judged on the ones both share); "
                        "by default such a gate is refused (exit 2), since the change may be the data's")
    p.add_argument("--format", dest="fmt", default="table", choices=("table", "md", "csv", "json"),
                   help="table (terminal), md (Markdown), csv (one line per condition and metric) or json "
                        "(default: table)")


def main(args: argparse.Namespace) -> int:
    for name in ("max_wer_increase", "max_rtf_increase", "max_energy_increase", "max_latency_increase",
                 "max_hallucination_increase"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UserError(f"--{name.replace('_', '-')} {value:g}: a limit must be 0 or more")
    folders = [args.baseline, *args.candidates]
    sweeps = [load_results(f) for f in folders]
    labels = source_labels(folders)
    cmp = compare(sweeps[0], list(zip(labels[1:], sweeps[1:])), baseline_label=labels[0])
    if not cmp.pairs:
        raise UserError(f"no condition of {', '.join(labels[1:])} matches one of {labels[0]} "
                        f"({'; '.join(cmp.unmatched[:4])}); compare results of the same conditions")
    gates = Gates(args.max_wer_increase, args.max_rtf_increase, args.max_energy_increase,
                  max_latency_increase_pct=args.max_latency_increase,
                  max_hallucination_increase_wpm=args.max_hallucination_increase)
    if args.max_latency_increase is not None:
        problem = cmp.stream_problem()
        if problem:
            raise UserError(problem)
    differ = cmp.different_data
    if gates.items() and differ and not args.allow_different_data:
        p = differ[0]
        d = p.data
        shared = "" if d.n_shared is None else f", {d.n_shared} shared"
        raise UserError(f"the sides ran different utterances ({p.label}: {labels[0]} {d.n_baseline}, "
                        f"{p.candidate} {d.n_candidate}{shared}"
                        + (f"; {len(differ) - 1} more condition(s) too" if len(differ) > 1 else "")
                        + "), so a gate could judge the data, not the change: the gate is refused. Compare runs "
                          "on the same data, or pass --allow-different-data to gate on the shared utterances.")
    failures = cmp.gate_failures(gates)
    if args.fmt == "json":
        print(json.dumps(to_json(cmp, gates)))
    elif args.fmt == "csv":
        print(to_csv(cmp), end="")
    elif args.fmt == "md":
        print(markdown_table(table_model(cmp, gates)), end="")
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=WIDE)
        render(table_model(cmp, gates), "table", console)
    if failures:
        err = Console(stderr=True)
        err.print(f"[red]regression[/]: {len(failures)} gate{'s' if len(failures) != 1 else ''} exceeded or "
                  "not checkable", highlight=False)
        return 1
    return 0
