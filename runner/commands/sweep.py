"""`edgeasr sweep EXPERIMENT`: run a YAML grid, resumable, with a live view; results in one folder.

Exit codes: 0 every condition ok, 1 some condition failed (each failure is recorded
with its reason and the sweep went on), 2 bad input (nothing started) or the results
folder is in use by another sweep, 130/143 interrupted by SIGINT/SIGTERM (every
finished condition is kept; rerunning the same command resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from edgeasr_entrypoint.contract import Event
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..errors import UserError
from ..experiment.estimate import CONFIRM_CONDITIONS, size_note
from ..execute import Callbacks
from ..experiment import load_experiment
from ..fleet import cluster_address, local_targets_problem
from ..launch.engines import ENGINES
from ..models.resolve import default_models_dir
from ..launch.paths import home_problem
from ..plan import GroupJob
from ..results import write_json_atomic
from ..sweep import TIMING_FILE, LocalOptions, SweepOptions, SweepOutcome, SweepStart, Todo, local_sweep
from ..telemetry.energy.live import live_power_text
from ..trust.untrusted import PlainColumn, line
from ..wording import plural, seconds


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="an experiment file, or a name in experiments/ (e.g. smoke)")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default: $EDGEASR_RESULTS_DIR/sweeps/<name>, $EDGEASR_RESULTS_DIR=results)")
    p.add_argument("--force", action="store_true", help="rerun every condition, finished or not")
    p.add_argument("--retry-failed", action="store_true", help="rerun the conditions that failed")
    p.add_argument("--models-dir", type=Path, default=None,
                   help="installed models (default: $EDGEASR_MODELS_DIR, else ./models)")
    p.add_argument("--engine", default="docker", choices=ENGINES,
                   help="docker: backend containers (default) | local: the entrypoint as a host process")
    p.add_argument("--offline", action="store_true",
                   help="never download: a hub model that is not installed is refused (default: off, it is "
                        "downloaded on the host at its pinned commit, models/hub-pins.json)")
    p.add_argument("--no-prepare", action="store_true",
                   help="do not build missing backend images or install missing models first (default: do)")
    p.add_argument("--plan", action="store_true",
                   help="print the planned groups and conditions (JSON lines on stdout, a table on stderr) "
                        "and start nothing")
    p.add_argument("--cluster", default=None, metavar="ray://HOST:PORT",
                   help="run the groups on a Ray fleet, each on a node of its target (grid.targets); default: the "
                        "experiment's `cluster:`, else $EDGEASR_CLUSTER, else here (runner/fleet/)")
    p.add_argument("--yes", action="store_true",
                   help=f"start a grid over {CONFIRM_CONDITIONS:,} conditions: without it such a sweep stops before "
                        "anything starts and says how long it would take")
    p.add_argument("--audio-root", dest="audio_roots", action="append", default=[], metavar="DIR",
                   help="confirm a home folder (or /root, /home) that the experiment trusts in audio_roots; an "
                        "experiment file alone may not trust one (repeatable; default: none)")
    p.add_argument("--build-missing", action="store_true",
                   help="with a cluster: nodes that lack an image or an installable model build or install it "
                        "before the sweep (else preflight stops and names what is missing)")


def print_outcome(outcome: SweepOutcome, console: Console, target: bool = False) -> None:
    """The sweep's last lines (here or on a fleet): how many conditions were recorded, where, and each one not
    ok with its reason."""
    out, failed = outcome.out, outcome.failed
    lost_note = (f", {outcome.lost} lost with their node (rerun the same command to run them)"
                 if outcome.lost else "")
    console.print(line(f"{plural(len(outcome.records), 'condition')} recorded in {seconds(outcome.elapsed_s)}, "
                       f"{len(failed)} not ok{lost_note}; {out / 'conditions.jsonl'}, {out / 'results.csv'}, "
                       f"report in {out / 'report'}"))
    for r in failed:
        c = r.condition
        where = f"{c.get('target')} " if target else ""
        console.print(line("  ", (r.status, "red"), f" {where}{c['model']} {c['quant']} {c['noise_type']} "
                           f"{c['snr_db']} repeat {int(c.get('repeat') or 0) + 1}: {r.error}"))


def draw_report(out: Path, console: Console) -> None:
    """Print the sweep's table (on the sweep's console, stderr) and draw the report (figures, report.html)
    from the results just written.

    The report's modules (matplotlib: about a second of CPU to import) are imported here, at the end, not when
    the sweep starts (tests/unit/test_cli_imports.py)."""
    from ..report.make import make_report
    from ..report.worst import TOP_N

    try:
        make_report([out], fmt="table", quiet=console.quiet, console=console, worst=TOP_N)
    except UserError as exc:
        console.print(line(("no report", "yellow"), f": {exc}", lines=True))


def main(args: argparse.Namespace) -> int:
    t_main = time.perf_counter()
    console = Console(stderr=True, quiet=bool(getattr(args, "quiet", False)))
    exp = load_experiment(args.experiment)
    check_trusted_roots(exp, getattr(args, "audio_roots", None) or [])
    out = (args.out or Path(os.environ.get("EDGEASR_RESULTS_DIR", "results")) / "sweeps" / exp.name).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    big = size_note(exp, out)  # a grid over CONFIRM_CONDITIONS conditions: how long, and --yes to start it
    if getattr(args, "plan", False):
        return show_plan(exp, console, big)
    if big and not getattr(args, "yes", False):
        raise UserError(f"{big}; pass --yes to start it (a terminal or not: compose, a fleet, CI), or narrow the grid")
    if big:
        console.print(line(big))
    options = SweepOptions(force=bool(args.force), retry_failed=bool(args.retry_failed))
    models_dir = args.models_dir or default_models_dir()
    cluster = cluster_address(getattr(args, "cluster", None), getattr(exp, "cluster", None))
    view = SweepConsoleView(console, cluster)
    if cluster is not None:  # the fleet plans against its nodes' images and runs each group on its target
        from ..fleet.driver import fleet_sweep

        outcome = fleet_sweep(exp, out, cluster, view, engine=getattr(args, "engine", "docker"),
                              models_dir=models_dir, build_missing=bool(getattr(args, "build_missing", False)),
                              options=options)
    else:
        problem = local_targets_problem([g.target for g in exp.groups])
        if problem:  # a target other than this host's needs a fleet
            raise UserError(f"{exp.path.name}: {problem}")
        local = LocalOptions(engine=getattr(args, "engine", "docker"), models_dir=models_dir,
                             prepare=not getattr(args, "no_prepare", False),
                             offline=bool(getattr(args, "offline", False)))
        outcome = local_sweep(exp, out, view, local, options)
    t_report = time.perf_counter()
    draw_report(out, console)
    print_outcome(outcome, console, target=cluster is not None)
    if cluster is None:
        add_timing(out, report_s=time.perf_counter() - t_report, total_s=time.perf_counter() - t_main)
    return outcome.exit_code


def add_timing(out: Path, **seconds: float) -> None:
    """The command's own seconds (its report, its whole) beside the sweep's in sweep-timing.json; a timing that
    cannot be read or written is left as it is (it informs a bench, never the results)."""
    path = out / TIMING_FILE
    try:
        write_json_atomic(path, {**json.loads(path.read_text(encoding="utf-8")), **seconds})
    except (OSError, ValueError):
        pass


def check_trusted_roots(exp, confirmed: list[str]) -> None:
    """An experiment file is a stranger's too: trusting a home folder in audio_roots would let its manifests show
    a backend container any file in it (~/.ssh included). Such a root must be named on the command line too
    (``--audio-root``); a folder inside a home folder needs nothing."""
    given = {Path(d).expanduser().resolve() for d in confirmed}
    problems = []
    for root in sorted({Path(r).resolve() for g in exp.groups for c in g.conditions for r in c.audio_roots}):
        what = home_problem(root)
        if what and root not in given:
            problems.append(f"audio_roots names {root}, {what}: an experiment file alone may not trust it (a "
                            f"manifest could then show a backend container any file in it); if you do, say so on "
                            f"the command line too: --audio-root {root}")
    if len(problems) == 1:
        raise UserError(f"{exp.path.name}: {problems[0]}")
    if problems:
        raise UserError(f"{exp.path.name}: {len(problems)} trusted folders need the command line's word:",
                        problems=problems)


def show_plan(exp, console: Console, note: str | None = None) -> int:
    """--plan: the experiment's groups and conditions as JSON lines (stdout) and a table (stderr), and ``note``
    (a big grid's size and estimated duration) under it; nothing is resolved against images or models and
    nothing starts."""
    if not console.is_terminal:  # a log or a pipe: no terminal width to fit, keep the names whole
        console = Console(stderr=True, width=200, quiet=console.quiet)
    table = Table(title=line(f"{exp.name}: {plural(len(exp.groups), 'group')}, "
                             f"{plural(exp.n_conditions, 'condition')}"))
    fleet = any(getattr(g, "target", "local") != "local" for g in exp.groups)
    power = any(getattr(g, "power", None) for g in exp.groups)
    for name in ("group", *(("target",) if fleet else ()), "backend", "model", "quant", "device", "image",
                 *(("power",) if power else ()), "conditions", "axes in the container"):
        table.add_column(name)
    for i, g in enumerate(exp.groups):
        conds = [{**c.settings(), "decode": dict(getattr(c, "decode", {}) or {}),
                  "axes": dict(getattr(c, "axes", {}) or {})} for c in g.conditions]
        print(json.dumps({"group": i, "target": getattr(g, "target", "local"), **g.settings(), "conditions": conds},
                         default=str))
        inside = sorted({k for c in g.conditions for k in (getattr(c, "decode", {}) or {})})
        op = ", ".join(f"{k}={v}" for k, v in (getattr(g, "power", None) or {}).items())
        table.add_row(*map(line, (str(i), *((g.target,) if fleet else ()), g.backend, Path(g.model).name, g.quant,
                                  g.device, g.image or "(platform's)", *((op or "as it is",) if power else ()),
                                  str(len(g.conditions)), ", ".join(f"decode.{k}" for k in inside) or "-")))
    for x in exp.excluded:
        print(json.dumps({"excluded": x}, default=str))
    console.print(table)
    if note:
        console.print(line(note))
    return 0


def progress_columns(fleet: bool = False) -> list:
    """The sweep view's columns, here (with the time left) or on a fleet: labels (models, datasets, targets and
    host names: strangers' names) as plain text, never markup."""
    return [PlainColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            *(() if fleet else (TimeRemainingColumn(),)), PlainColumn("{task.fields[info]}")]


class SweepConsoleView:
    """The sweep on a terminal (stderr): the header, then live progress. Here: overall progress with ETA, the
    current condition and the last figures (WER, RTF, power); on a fleet: one bar per target, naming the node
    that runs it. Lines worth attention are printed above the bars."""

    COLORS = {"warning": "yellow", "error": "red"}

    def __init__(self, console: Console, cluster: str | None = None) -> None:
        self.console = console
        self.cluster = cluster
        self.progress: Progress | None = None
        self.overall = self.current = None
        self.bars: dict[str, Any] = {}
        self.sampler = None
        self.last = ""

    # -- what the sweep tells every view (runner/sweep.py) ---------------------------------------------------

    def note(self, text: str, level: str = "info") -> None:
        """Notes quote what we did not write (problems, host names, what a node said): shown visibly, never
        as markup (runner/trust/untrusted.py); a warning's or an error's head, up to its first colon, in colour."""
        color = self.COLORS.get(level)
        if color and ": " in text:  # the words before the first colon say what happened
            head, rest = text.split(": ", 1)
            self.console.print(line((head, color), f": {rest}"))
        else:
            self.console.print(line(text))

    def status(self, text: str):
        return self.console.status(line(text))

    @contextlib.contextmanager
    def running(self, start: SweepStart) -> Iterator[None]:
        n_total, n_pending = start.n_total, start.n_pending
        if self.cluster is None:
            self.console.print(line(("edgeasr sweep", "bold"), f" {start.name}: "
                                    f"{plural(len(start.planned), 'container')}, {plural(n_total, 'condition')}, "
                                    f"{n_total - n_pending} already done; results in {start.out}"))
        else:
            targets = {j.spec.settings.target for j in start.planned}
            self.console.print(line(("edgeasr sweep", "bold"), f" {start.name} on {self.cluster}: "
                                    f"{len(start.planned)} group(s) on {len(targets)} target(s), {n_total} "
                                    f"condition(s), {n_total - n_pending} already done; results in {start.out}"))
        for reason, n in start.changed.items():
            self.console.print(line(f"rerunning {plural(n, 'condition')} with a stored result: {reason} since then"))
        with Progress(*progress_columns(self.cluster is not None), console=self.console, refresh_per_second=2,
                      disable=self.console.quiet) as progress:
            self.progress = progress
            if self.cluster is None:
                # nothing to run (a resumed sweep that is done): no "0/0" bar; the condition's bar from its start
                self.overall = progress.add_task("sweep", total=n_pending, info="", visible=n_pending > 0)
                self.current = progress.add_task("", total=1, info="", visible=False)
            else:
                self.added(list(start.todo), info="waiting for its node")
            yield

    def added(self, todo: list[Todo], info: str = "") -> None:
        n = sum(len(pending) for _, pending in todo)
        if self.progress is None or not n:
            return
        if self.cluster is None:
            self.progress.update(self.overall, total=self._total(self.overall) + n, visible=True)
            return
        totals: dict[str, int] = {}
        for job, pending in todo:
            if pending:  # a target whose conditions are all done gets no bar
                totals[job.spec.settings.target] = totals.get(job.spec.settings.target, 0) + len(pending)
        for target, n_target in sorted(totals.items()):
            if target in self.bars:
                bar = self.bars[target]
                self.progress.update(bar, total=self._total(bar) + n_target)
            else:
                self.bars[target] = self.progress.add_task(target, total=n_target, info=info)

    def _total(self, task_id) -> float:
        return next(t.total or 0 for t in self.progress.tasks if t.id == task_id)

    # -- here: the executor's progress for one group ---------------------------------------------------------

    def _info(self) -> str:
        power = live_power_text(self.sampler)
        return self.last + (f" | {power}" if power else "")

    def callbacks(self, job: GroupJob) -> Callbacks:
        progress = self.progress

        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") in (Event.UTTERANCE_END, Event.UTTERANCE_ERROR):
                progress.update(self.current, advance=1, info=self._info())

        def start(cond) -> None:
            progress.reset(self.current, total=len(cond.ids), description=f"{job.label} · {cond.label}",
                           info=self._info(), visible=True)

        def done(_cond, summary: dict[str, Any]) -> None:
            wer, rtf = summary.get("wer"), summary.get("rtf")
            self.last = (f"last: WER {wer:.1%}" if wer is not None else "last: WER n/a") + \
                        (f" RTF {rtf:.3f}" if rtf is not None else "")
            progress.update(self.overall, advance=1, info=self.last)

        return Callbacks(on_event=on_event, on_condition_start=start, on_condition_done=done,
                         on_sampler=lambda s: setattr(self, "sampler", s), waiting=self.console.status,
                         on_notice=lambda text: self.console.print(line(f"{job.label}: {text}")))

    # -- on a fleet (runner/fleet/driver.py) -----------------------------------------------------------------

    def preflight(self, rows: list[list[str]]) -> None:
        table = Table(title="fleet preflight")
        for name in ("target", "node", "platform", "groups / conditions", "samplers", "checks"):
            table.add_column(name)
        for row in rows:  # what nodes report (host names, image labels): plain text, never markup
            table.add_row(*map(line, row))
        self.console.print(table)

    def node_started(self, target: str, hostname: str) -> None:
        if self.progress is not None and target in self.bars:
            self.progress.update(self.bars[target], info=f"on {hostname}")

    def condition_finished(self, target: str, hostname: str, status: str | None) -> None:
        if self.progress is not None and target in self.bars:
            self.progress.update(self.bars[target], advance=1, info=f"on {hostname}: last {status}")
