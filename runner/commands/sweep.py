"""`edgeasr sweep EXPERIMENT`: run a YAML grid, resumable, with a live view; results in one folder.

Exit codes: 0 every condition ok, 1 some condition failed (each failure is recorded
with its reason and the sweep went on), 2 bad input (nothing started) or the results
folder is in use by another sweep, 130/143 interrupted by SIGINT/SIGTERM (every
finished condition is kept; rerunning the same command resumes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from edgeasr_entrypoint.contract import Event
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

from .. import tables
from ..errors import UserError
from ..estimate import CONFIRM_CONDITIONS, size_note
from ..execute import SWEEP_LABEL, Callbacks, execute_group, stamp
from ..experiment import load_experiment
from ..host.info import device_facts, git_commit, host_facts
from ..host.lock import FolderLock
from ..launch.engines import ENGINES, make_engine
from ..models.resolve import default_models_dir
from ..paths import home_problem
from ..plan import GroupJob, check_host, plan_sweep, stable_hash
from ..results import write_json_atomic
from ..telemetry.energy.live import live_power_text
from ..untrusted import PlainColumn, line
from ..wording import plural, seconds

ROOT = Path(__file__).resolve().parents[2]


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


def print_outcome(records: list[dict], out: Path, elapsed_s: float, console: Console, lost_note: str = "",
                  target: bool = False) -> list[dict]:
    """The sweep's last lines (local or fleet): how many conditions were recorded, where, and each one not ok
    with its reason. Returns the ones not ok."""
    failed = [r for r in records if r["status"] != "ok"]
    console.print(line(f"{plural(len(records), 'condition')} recorded in {seconds(elapsed_s)}, {len(failed)} not ok"
                       f"{lost_note}; {out / 'conditions.jsonl'}, {out / 'results.csv'}, report in {out / 'report'}"))
    for r in failed:
        c = r["condition"]
        where = f"{c.get('target')} " if target else ""
        console.print(line("  ", (r["status"], "red"), f" {where}{c['model']} {c['quant']} {c['noise_type']} "
                           f"{c['snr_db']} repeat {c['repeat']}: {r['error']}"))
    return failed


def _manifest(exp, planned: list[GroupJob], out: Path, started: str, finished: str | None,
              host: dict[str, Any]) -> dict[str, Any]:
    images = {pc.image.id: {"tags": pc.image.tags, "labels": pc.image.labels} for pc in planned if pc.image}
    return {
        "schema_version": 1,
        "name": exp.name,
        "title": exp.description or exp.name,
        "experiment": exp.resolved,
        "started_at": started,
        "finished_at": finished,
        "images": images,
        "host": host,
        "device": device_facts(),
        "git_commit": git_commit(ROOT),
        "n_containers": len(planned),
        "n_conditions": sum(len(pc.conditions) for pc in planned),
        "excluded": list(exp.excluded),
    }


def _report(out: Path, console: Console) -> None:
    """Print the sweep's table (on the sweep's console, stderr) and draw the report (figures, report.html)
    from the results just written."""
    from . import report

    try:
        report.main(argparse.Namespace(results_dirs=[out], out=None, no_figures=False, quiet=console.quiet,
                                       fmt="table", console=console, worst=report.worst_mod.TOP_N))
    except UserError as exc:
        console.print(line(("no report", "yellow"), f": {exc}", lines=True))


def main(args: argparse.Namespace) -> int:
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
    from ..fleet import cluster_address, local_targets_problem

    cluster = cluster_address(getattr(args, "cluster", None), getattr(exp, "cluster", None))
    if cluster is not None:  # the fleet plans against its nodes' images and runs each group on its target
        from ..fleet import driver

        return driver.main(args, console, exp, out, cluster)
    problem = local_targets_problem([g.target for g in exp.groups])
    if problem:
        raise UserError(f"{exp.path.name}: {problem}")
    engine = make_engine(getattr(args, "engine", "docker"))
    host = check_host(exp, engine.name)  # before anything is built or installed: a device this host lacks stops here
    if not getattr(args, "no_prepare", False):
        from ..images.prepare import prepare

        prepare(exp, args.models_dir or default_models_dir(), engine=engine.name, log=lambda t: console.print(line(t)),
                quiet=console.quiet)
    planned = plan_sweep(exp, engine, args.models_dir or default_models_dir(), out, host=host,
                         offline=getattr(args, "offline", False), log=lambda text: console.print(line(text)))
    # One sweep per results folder: a second one is refused before it touches anything of the first's.
    with FolderLock(out, "sweep"):
        return _main_locked(args, console, exp, out, engine, planned)


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
    from rich.table import Table

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


def progress_columns() -> list:
    """The sweep view's columns: labels (models, datasets: strangers' names) as plain text, never markup."""
    return [PlainColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), PlainColumn("{task.fields[info]}")]


class SweepView:
    """Overall progress with ETA, the current condition, and the last figures (WER, RTF, power)."""

    def __init__(self, progress: Progress, total: int):
        self.progress = progress
        self.overall = progress.add_task("sweep", total=total, info="")
        self.current = progress.add_task("", total=1, info="")
        self.sampler = None
        self.last = ""
        self.group_label = ""

    def _info(self) -> str:
        power = live_power_text(self.sampler)
        return self.last + (f" | {power}" if power else "")

    def callbacks(self, job: GroupJob, console: Console) -> Callbacks:
        def on_event(event: dict[str, Any]) -> None:
            if event.get("event") in (Event.UTTERANCE_END, Event.UTTERANCE_ERROR):
                self.progress.update(self.current, advance=1, info=self._info())

        def start(cond) -> None:
            self.progress.reset(self.current, total=len(cond.ids), description=f"{job.label} · {cond.label}",
                                info=self._info())

        def done(_cond, summary: dict[str, Any]) -> None:
            wer, rtf = summary.get("wer"), summary.get("rtf")
            self.last = (f"last: WER {wer:.1%}" if wer is not None else "last: WER n/a") + \
                        (f" RTF {rtf:.3f}" if rtf is not None else "")
            self.progress.update(self.overall, advance=1, info=self.last)

        return Callbacks(on_event=on_event, on_condition_start=start, on_condition_done=done,
                         on_sampler=lambda s: setattr(self, "sampler", s), waiting=console.status,
                         on_notice=lambda text: console.print(line(f"{job.label}: {text}")))


def _main_locked(args, console: Console, exp, out: Path, engine, planned: list[GroupJob]) -> int:
    sweep_id = stable_hash(str(out))
    for removed in engine.reap((str(out),)):
        console.print(line(removed))
    if args.force:
        shutil.rmtree(out / "conditions", ignore_errors=True)
    started = stamp()
    host = host_facts(engine.version())
    write_json_atomic(out / "manifest.json", _manifest(exp, planned, out, started, None, host))
    changed = tables.changed_inputs(out, planned)
    todo = tables.pending(planned, args.retry_failed, lambda problem: console.print(
        line(("redoing a condition whose stored result is corrupt", "yellow"), f": {problem}")))
    n_total = sum(len(job.conditions) for job in planned)
    n_pending = sum(len(p) for _, p in todo)
    console.print(line(("edgeasr sweep", "bold"), f" {exp.name}: {plural(len(planned), 'container')}, "
                       f"{plural(n_total, 'condition')}, {n_total - n_pending} already done; results in {out}"))
    for reason, n in changed.items():
        console.print(line(f"rerunning {plural(n, 'condition')} with a stored result: {reason} since then"))
    t0 = time.perf_counter()
    with Progress(*progress_columns(), console=console, refresh_per_second=2, disable=console.quiet) as progress:
        view = SweepView(progress, n_pending)
        baseline = None
        for job, pending in todo:
            if not pending:
                continue
            result = execute_group(job, pending, engine, host=host, owner_folder=out,
                                   labels={SWEEP_LABEL: sweep_id}, callbacks=view.callbacks(job, console),
                                   previous=baseline)
            baseline = result.baseline or baseline
            records = tables.rebuild_tables(out, planned)
            if result.interrupted is not None:  # the container is gone; finished conditions are on disk
                exc = result.interrupted
                exc.hint = (f"{len(records)} of {n_total} condition(s) are recorded in {out}; the one in progress "
                            f"is recorded as interrupted; rerun the same command to resume")
                raise exc
    records = tables.rebuild_tables(out, planned)
    write_json_atomic(out / "manifest.json", _manifest(exp, planned, out, started, stamp(), host))
    _report(out, console)
    failed = print_outcome(records, out, time.perf_counter() - t0, console)
    return 1 if failed else 0
