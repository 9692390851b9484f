"""`edgeasr sweep EXPERIMENT`: run a YAML grid, resumable, with a live view; results in one folder.

Exit codes: 0 every condition ok, 1 some condition failed (each failure is recorded
with its reason and the sweep went on), 2 bad input (nothing started) or the results
folder is in use by another sweep, 130/143 interrupted by SIGINT/SIGTERM (every
finished condition is kept; rerunning the same command resumes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from .. import merge
from .. import sweep as sw
from ..errors import UserError
from ..experiment import load_experiment
from ..hostinfo import device_facts, git_commit, host_facts
from ..launch import docker_engine
from ..lock import FolderLock
from ..models import default_models_dir
from ..results import write_json_atomic
from ..telemetry.idle import idle_baseline
from ..telemetry.select import select_sampler

ROOT = Path(__file__).resolve().parents[2]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="an experiment file, or a name in experiments/ (e.g. smoke)")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default: $EDGEASR_RESULTS_DIR/sweeps/<name>, $EDGEASR_RESULTS_DIR=results)")
    p.add_argument("--force", action="store_true", help="rerun every condition, finished or not")
    p.add_argument("--retry-failed", action="store_true", help="rerun the conditions that failed")
    p.add_argument("--models-dir", type=Path, default=None)


class SweepView:
    """Overall progress with ETA, the current condition, and the last figures (WER, RTF, power)."""

    def __init__(self, progress: Progress, total: int):
        self.progress = progress
        self.overall = progress.add_task("sweep", total=total, info="")
        self.current = progress.add_task("", total=1, info="")
        self.sampler = None
        self.last = ""

    def start_condition(self, label: str, n_utts: int) -> None:
        self.progress.reset(self.current, total=n_utts, description=label, info=self._info())

    def _info(self) -> str:
        power = ""
        if self.sampler is not None and self.sampler.samples:
            watts = self.sampler.samples[-1].total_w
            power = f" | {watts:.1f} W" if watts is not None else ""
        return self.last + power

    def utterance_done(self) -> None:
        self.progress.update(self.current, advance=1, info=self._info())

    def condition_done(self, summary: dict[str, Any]) -> None:
        wer, rtf = summary.get("wer"), summary.get("rtf")
        self.last = (f"last: WER {wer:.1%}" if wer is not None else "last: WER n/a") + \
                    (f" RTF {rtf:.3f}" if rtf is not None else "")
        self.progress.update(self.overall, advance=1, info=self.last)


def _run_group(client, pc: sw.PlannedContainer, pending: list[sw.PlannedCondition], out: Path, sweep_id: str,
               view: SweepView, console: Console, previous=None):
    """One container for the group's pending conditions; every condition ends with a result, ok or not.

    ``previous``: the last container's idle baseline: this one's waits for power to settle back to it.
    Returns this container's baseline."""
    raw_dir = pc.spec.out / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("events.jsonl", "transcripts.jsonl", "status.json", "container.log", "job.json"):
        (raw_dir / stale).unlink(missing_ok=True)
    t = pc.spec.telemetry
    sampler, reason = select_sampler(t.sampler, pc.spec.device, t.interval_ms, pc.spec.gpus)
    view.sampler = sampler if reason is None else None
    ctx = sw.GroupContext(pc, raw_dir, out, sampler, reason, None, sw.stamp())
    by_key = {c.key: c for c in pending}

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "condition_start":
            cond = by_key.get(event.get("condition"))
            if cond:
                view.start_condition(f"{pc.label} · {cond.label}", len(cond.ids))
        elif kind in ("utterance_end", "utterance_error"):
            view.utterance_done()
        elif kind == "condition_end" and event.get("condition") in by_key:
            try:
                summary = sw.finalize_condition(ctx, by_key[event["condition"]])
            except Exception as exc:  # one condition's bookkeeping must not end the sweep
                summary = sw.finalize_condition(ctx, by_key[event["condition"]], f"could not merge: {exc!r}")
            view.condition_done(summary)

    error = None
    with sampler:
        ctx.baseline = idle_baseline(t, sampler, previous, on_wait=console.status) if reason is None else None
        try:
            run = sw.run_container(client, pc, pending, raw_dir, on_event, sweep_id, out,
                                   on_started=lambda cid: setattr(ctx, "owner", merge.accounting.ProcessOwner(cid)))
            status = merge.read_raw(raw_dir).status
            error = merge.container_error(run, status, pc.spec.timeout_s, pc.spec.mem_limit_text)
        except UserError as exc:
            error = str(exc)
    for cond in pending:
        if cond.key not in ctx.done:
            summary = sw.finalize_condition(ctx, cond, error or "the container ended before this condition")
            view.condition_done(summary)
    return ctx.baseline


def _manifest(exp, planned, out: Path, started: str, finished: str | None, client) -> dict[str, Any]:
    images = {pc.image.id: {"tags": pc.image.tags, "labels": pc.image.labels} for pc in planned}
    return {
        "schema_version": 1,
        "name": exp.name,
        "title": exp.description or exp.name,
        "experiment": exp.resolved,
        "started_at": started,
        "finished_at": finished,
        "images": images,
        "host": host_facts(client.version().get("Version")),
        "device": device_facts(),
        "git_commit": git_commit(ROOT),
        "n_containers": len(planned),
        "n_conditions": sum(len(pc.conditions) for pc in planned),
        "excluded": list(exp.excluded),
    }


def _report(out: Path, console: Console) -> None:
    """Draw the report (table, figures, report.html) from the results just written."""
    from . import report

    try:
        report.main(argparse.Namespace(results_dir=str(out), out=None, no_figures=False, quiet=True))
    except UserError as exc:
        console.print(f"[yellow]no report[/]: {exc}")


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    exp = load_experiment(args.experiment)
    out = (args.out or Path(os.environ.get("EDGEASR_RESULTS_DIR", "results")) / "sweeps" / exp.name).resolve()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    client = docker_engine.connect()
    planned = sw.plan(exp, client, args.models_dir or default_models_dir(), out)
    # One sweep per results folder: a second one is refused before it touches anything of the first's.
    with FolderLock(out, "sweep"):
        return _main_locked(args, console, exp, out, client, planned)


def _main_locked(args, console: Console, exp, out: Path, client, planned: list[sw.PlannedContainer]) -> int:
    sweep_id = sw._hash(str(out))
    for line in docker_engine.reap_orphans(client, (str(out),)):
        console.print(line)
    if args.force:
        shutil.rmtree(out / "conditions", ignore_errors=True)
    started = sw.stamp()
    write_json_atomic(out / "manifest.json", _manifest(exp, planned, out, started, None, client))
    changed = sw.changed_inputs(out, planned)
    todo = []
    for pc in planned:
        pending = []
        for cond in pc.conditions:
            problem = sw.result_problem(out, cond.key)
            if problem:
                console.print(f"[yellow]redoing a condition whose stored result is corrupt[/]: {problem}")
            result = sw.read_result(out, cond.key)
            if result is None or (args.retry_failed and result.get("status") == "error"):
                pending.append(cond)
        todo.append((pc, pending))
    n_total = sum(len(pc.conditions) for pc in planned)
    n_pending = sum(len(p) for _, p in todo)
    console.print(f"[bold]edgeasr sweep[/] {exp.name}: {len(planned)} container(s), {n_total} condition(s), "
                  f"{n_total - n_pending} already done; results in {out}")
    for reason, n in changed.items():
        console.print(f"rerunning {n} condition(s) with a stored result: {reason} since then")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    t0 = time.perf_counter()
    try:
        with Progress(*columns, console=console, refresh_per_second=2) as progress:
            view = SweepView(progress, n_pending)
            baseline = None
            for pc, pending in todo:
                if pending:
                    baseline = _run_group(client, pc, pending, out, sweep_id, view, console, baseline) or baseline
                    sw.rebuild_tables(out, planned)
    except KeyboardInterrupt as exc:  # the container is gone; finished conditions are on disk
        records = sw.rebuild_tables(out, planned)
        exc.hint = (f"{len(records)} of {n_total} condition(s) are recorded in {out}; the one in progress was "
                    f"not; rerun the same command to resume")
        raise
    records = sw.rebuild_tables(out, planned)
    write_json_atomic(out / "manifest.json", _manifest(exp, planned, out, started, sw.stamp(), client))
    _report(out, console)
    failed = [r for r in records if r["status"] != "ok"]
    console.print(f"{len(records)} condition(s) recorded in {time.perf_counter() - t0:.0f} s, {len(failed)} not ok; "
                  f"{out / 'conditions.jsonl'}, {out / 'results.csv'}, report in {out / 'report'}")
    for r in failed:
        c = r["condition"]
        console.print(f"  [red]{r['status']}[/] {c['model']} {c['quant']} {c['noise_type']} {c['snr_db']} "
                      f"repeat {c['repeat']}: {r['error']}")
    return 1 if failed else 0
