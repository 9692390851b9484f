"""`edgeasr capacity`: the most live streams this device sustains at a latency target (issue 23, item 6).

Takes the settings flags of `edgeasr run` (backend, model, quant, data, --chunk-ms, --sustain-s, ...), turns
stream mode on and searches ``stream.concurrency`` (runner/capacity.py: doubling, then bisection; each probe a
group of the one sweep, keyed and stored in one results folder). Prints "N streams at p99 X ms, Y W per
stream", the first probe that failed and why, and where the results are.

Exit codes as `edgeasr sweep`: 0 the search answered (0 streams is an answer), 1 a probe's condition failed
(an error, recorded with its reason; that probe counts as failed), 2 bad input, 130/143 interrupted (every
finished probe is kept; rerunning the same command resumes the search without running them again).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console

from .. import settings
from ..backends import default_model_quant
from ..capacity import (CAPACITY_FILE, CONCURRENCY, DEFAULT_LATENCY_MS, DEFAULT_MAX_STREAMS, Capacity,
                        CapacitySearch, StreamFigures, local_capacity, not_ok_reason)
from ..errors import UserError
from ..execute import Callbacks
from ..launch.engines import ENGINES
from ..models.resolve import default_models_dir
from ..plan import GroupJob
from ..report.make import make_report
from ..report.worst import TOP_N
from ..results import ConditionRecord
from ..sweep import LocalOptions, SweepOptions, SweepStart, Todo
from ..trust.untrusted import line, printer
from ..wording import plural


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The settings' flags (as `edgeasr run`), then the search's and the results folder's."""
    groups = settings.add_arguments(p)
    search = p.add_argument_group("capacity search")
    search.add_argument("--latency-ms", type=float, default=DEFAULT_LATENCY_MS, metavar="MS",
                        help="a probe passes when its p99 finalization latency is at most this and its lag stays "
                             "bounded")
    search.add_argument("--max-streams", type=int, default=DEFAULT_MAX_STREAMS, metavar="N",
                        help="the most streams probed (doubling stops here)")
    out = groups["output"]
    out.add_argument("--out", type=Path, default=None,
                     help="results folder (default: $EDGEASR_RESULTS_DIR/capacity/<backend>-<model>-<quant>, "
                          "$EDGEASR_RESULTS_DIR=results); rerunning the same command resumes the search there")
    out.add_argument("--force", action="store_true", help="rerun every probe, stored or not")
    out.add_argument("--retry-failed", action="store_true", help="rerun the probes whose condition failed")
    groups["model"].add_argument("--models-dir", type=Path, default=None,
                                 help="installed models (default: $EDGEASR_MODELS_DIR, else ./models)")
    groups["model"].add_argument("--offline", action="store_true",
                                 help="never download: a hub model that is not installed is refused")
    groups["container"].add_argument("--engine", default="docker", choices=ENGINES,
                                     help="docker: backend containers | local: the entrypoint as a host process")
    groups["container"].add_argument("--no-prepare", action="store_true",
                                     help="do not build missing backend images or install missing models first")


def search_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment ``defaults:`` every probe shares: the settings the flags gave (each checked as `edgeasr run`
    checks it), and the backend, model and quant (the backend's when not given), nested as a file writes them.
    ``--concurrency`` is what the search chooses: refused."""
    given, problems = settings.from_args(args)
    origins = settings.flag_origins(args)
    if CONCURRENCY in origins:
        problems.append(f"{origins[CONCURRENCY]} is what the capacity search chooses (1, 2, 4, ... up to "
                        f"--max-streams); leave it out")
    if args.latency_ms is None or not args.latency_ms > 0:
        problems.append(f"--latency-ms: expected a number of milliseconds above 0, got {args.latency_ms}")
    if args.max_streams is None or args.max_streams < 1:
        problems.append(f"--max-streams: expected a whole number of at least 1, got {args.max_streams}")
    if problems:
        raise UserError(problems[0]) if len(problems) == 1 else UserError(
            f"{len(problems)} problems with this capacity search:", problems=problems)
    model, quant = default_model_quant(given.backend)
    paths = {"backend": given.backend, "model": given.model or model, "quant": given.quant or quant}
    for path in origins:
        value = settings.get(given, path)
        paths[path] = list(value) if isinstance(value, tuple) else value
    defaults: dict[str, Any] = {}
    for path, value in paths.items():
        *parents, last = path.split(".")
        node = defaults
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return defaults


def search_name(defaults: dict[str, Any]) -> str:
    """The search's name (its results folder and its probes' experiment): backend-model-quant."""
    name = f"{defaults['backend']}-{Path(str(defaults['model'])).name}-{defaults['quant']}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip("._-") or "capacity"


def in_flags(exc: UserError, file: Path) -> UserError:
    """A problem the probes' experiment found (it names ``file``, which the person never wrote, and the setting's
    dotted path under defaults), said in the command's words: each setting by its flag."""
    if not exc.problems or not str(exc).startswith((str(file), file.name)):
        return exc

    def said(problem: str) -> str:
        problem = problem.removeprefix(f"{file.name}: ")
        problem = re.sub(r"^groups\[\d+\] \([^)]*\): ", "", problem)  # the probes' one group
        m = re.match(r"(?:defaults\.)?([\w.]+): ", problem)  # a setting's path (the file's, or the plan's)
        if m and m.group(1) in settings.LEAVES:
            return f"{settings.cli_label(m.group(1))}: {problem[m.end():]}"
        return problem

    problems = [said(p) for p in exc.problems]
    if len(problems) == 1:
        return UserError(f"{problems[0]}; nothing was started", exit_code=exc.exit_code)
    return UserError(f"{len(problems)} problems with this capacity search; nothing was started:",
                     exit_code=exc.exit_code, problems=problems)


def probe_streams(job: GroupJob) -> str:
    """The streams a probe's group serves, as its settings say."""
    stream = job.settings.get("stream") if isinstance(job.settings.get("stream"), dict) else {}
    return str(stream.get("concurrency", "?"))


class CapacityConsoleView:
    """The search on a terminal (stderr): a line per probe as it starts and as it ends (its p99 and lag; a probe
    lasts about stream.sustain_s), and the notes."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def note(self, text: str, level: str = "info") -> None:
        self.console.print(line((text, {"warning": "yellow", "error": "red"}.get(level, ""))))

    def status(self, text: str):
        return self.console.status(line(text))

    @contextlib.contextmanager
    def running(self, start: SweepStart) -> Iterator[None]:
        self.console.print(line(("edgeasr capacity", "bold"), f" {start.name.removeprefix('capacity-')}: results in "
                                f"{start.out} (a stored probe is replayed, not run again)"))
        yield

    def added(self, todo: list[Todo]) -> None:
        pass  # each probe says itself as it starts

    def callbacks(self, job: GroupJob) -> Callbacks:
        n = probe_streams(job)

        def start(cond) -> None:
            self.console.print(line(f"probing {n} stream(s): {job.label} · {cond.label}"))

        def done(_cond, summary: dict[str, Any]) -> None:
            f = StreamFigures.of(summary)
            if summary.get("status") != "ok":
                record = ConditionRecord.of(summary.get("condition") or {}, summary)
                what = f"{summary.get('status')}: {not_ok_reason(record)}"
            elif f is None or f.p99_ms is None:
                what = "no finalization latency"
            else:
                growth = (f", lag {f.lag_middle_s:.2f} s at the middle, {f.lag_end_s:.2f} s at the end"
                          if f.lag_end_s is not None and f.lag_middle_s is not None else "")
                what = f"p99 finalization latency {f.p99_ms:.0f} ms{growth}"
            self.console.print(line(f"  {n} stream(s): {what}"))

        return Callbacks(on_condition_start=start, on_condition_done=done, waiting=self.status,
                         on_notice=printer(self.console))


def print_answer(answer: Capacity, out: Path, console: Console) -> None:
    """The answer, the first probe that failed and why, every probe in one line, and where the results are."""
    console.print(line(("capacity", "bold"), f": {answer.headline()}"), soft_wrap=True)  # one line each, whole
    console.print(line(f"  {answer.failure_line()}"), soft_wrap=True)
    probes = ", ".join(f"{p.streams} {'pass' if p.passed else 'fail'}" for p in answer.probes)
    console.print(line(f"  probes in order: {probes} (target p99 {answer.latency_ms:g} ms, lag bounded)"),
                  soft_wrap=True)
    console.print(line(f"  results: {out / CAPACITY_FILE}, {out / 'conditions.jsonl'}, report in {out / 'report'}"),
                  soft_wrap=True)


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True, quiet=bool(getattr(args, "quiet", False)))
    defaults = search_defaults(args)
    name = search_name(defaults)
    out = (args.out or Path(os.environ.get("EDGEASR_RESULTS_DIR", "results")) / "capacity" / name).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    local = LocalOptions(engine=args.engine, models_dir=args.models_dir or default_models_dir(),
                         prepare=not args.no_prepare, offline=bool(args.offline))
    search = CapacitySearch(max_streams=args.max_streams, latency_ms=args.latency_ms)
    view = CapacityConsoleView(console)
    file = out / f"capacity-{name}.yaml"  # names the probes' experiment (the manifest); never written
    try:
        outcome, answer = local_capacity(defaults, file, out, view, local, search,
                                         SweepOptions(force=bool(args.force), retry_failed=bool(args.retry_failed)),
                                         root=Path.cwd())
    except UserError as exc:
        raise in_flags(exc, file) from None
    try:
        make_report([out], fmt="table", quiet=console.quiet, console=console, worst=TOP_N)
    except UserError as exc:
        console.print(line(("no report", "yellow"), f": {exc}", lines=True))
    if outcome.failed:
        console.print(line((f"{plural(len(outcome.failed), 'probe condition')} not ok", "red"),
                           f" (each a failed probe, with its reason): {not_ok_reason(outcome.failed[0])}"))
    # the answer is the command's result: on stdout, also with --quiet
    print_answer(answer, out, Console(highlight=False))
    return outcome.exit_code
