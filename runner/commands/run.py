"""`edgeasr run`: one backend container over one dataset, merged into summary.json and utterances.jsonl.

Order matters for honesty: everything is validated before any container starts;
the container's raw outputs are kept in OUT/raw whatever happens; the summary is
written even when the run failed, with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from edgeasr_entrypoint.contract import Event
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from .. import settings
from ..backends import default_model_quant
from ..errors import UserError
from ..execute import Callbacks, execute_group
from ..host.info import host_facts
from ..host.lock import FolderLock
from ..launch.engines import CONTAINER_LOG, make_engine
from ..models.resolve import default_models_dir
from ..plan import plan_run
from ..report.sweep_table import FORMATS
from ..report.table import host_busy, print_summary
from ..results import write_json_atomic
from ..spec import RunSpec, build_run_spec, with_hub_models
from ..tables import write_tables
from ..telemetry.energy.live import live_power_text
from ..untrusted import PlainColumn, line, printer
from ..wording import plural


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every setting's option from its metadata (runner/settings.py), then the run-only options."""
    settings.add_arguments(p)
    p.add_argument("--out", default=None, help="run folder (default: results/<backend>-<model>-<quant>-<time>)")
    p.add_argument("--models-dir", type=Path, default=None,
                   help="installed models (default: $EDGEASR_MODELS_DIR or ./models)")
    p.add_argument("--engine", default="docker",
                   help="docker | local: the entrypoint as a host process (default: docker)")
    p.add_argument("--offline", action="store_true",
                   help="never download: a hub name that is not installed is refused (default: off, it is "
                        "downloaded on the host at its pinned commit, models/hub-pins.json)")
    p.add_argument("--container-network", "--allow-download", dest="container_network", action="store_true",
                   help="give the backend container a network, so that its library may download what it needs "
                        "into models/hub-cache (whisperx's alignment model); hub models never need it")
    p.add_argument("--format", dest="fmt", default=None, choices=FORMATS,
                   help="the result table: table (terminal), md (Markdown) or csv, on stdout (default: table)")


def default_out(backend: str, model: str, quant: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"results/{backend}-{Path(model).name}-{quant}-{stamp}"


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The defaults with the flags given over them, resolved by build_run_spec; one UserError for every
    problem, the flags' own and the run's."""
    given, problems = settings.from_args(args)
    default_model, default_quant = default_model_quant(given.backend)  # an unknown name: build_run_spec says so
    model = given.model or default_model
    quant = given.quant or default_quant
    try:
        spec = build_run_spec(given, out=args.out or default_out(given.backend, model, quant),
                              models_dir=args.models_dir or default_models_dir(), engine=args.engine,
                              allow_download=args.container_network, set_by=settings.flag_origins(args),
                              offline=args.offline)
    except UserError as exc:
        if not problems:
            raise
        problems += exc.problems or [str(exc)]
    if problems:
        if len(problems) == 1:
            raise UserError(problems[0])
        raise UserError(f"{len(problems)} problems with this run:", problems=problems)
    return spec


def progress_columns() -> list:
    """The run view's columns, as plain text (never markup)."""
    return [PlainColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            PlainColumn("{task.fields[rtf]}"), PlainColumn("{task.fields[power]}"),
            TimeElapsedColumn()]


class LiveProgress:
    """Turns contract events into a progress bar: utterances done / total, the running RTF, and power (W now,
    J so far) when a sensor exists (``sampler``, given by Callbacks.on_sampler)."""

    def __init__(self, progress: Progress, total: int):
        self.progress = progress
        self.task = progress.add_task("starting container", total=total, rtf="", power="")
        self.proc_s = 0.0
        self.audio_s = 0.0
        self.sampler = None

    def set_sampler(self, sampler) -> None:
        self.sampler = sampler

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == Event.LOAD_START:
            self.progress.update(self.task, description="loading model")
        elif kind == Event.WARMUP_START:
            self.progress.update(self.task, description="warming up")
        elif kind in (Event.INFERENCE_START, Event.CONDITION_START):
            self.progress.update(self.task, description="transcribing")
        elif kind == Event.UTTERANCE_END:
            self.proc_s += event.get("processing_s", 0.0)
            self.audio_s += event.get("duration_s", 0.0)
            rtf = f"RTF {self.proc_s / self.audio_s:.3f}" if self.audio_s else ""
            self.progress.update(self.task, advance=1, rtf=rtf, power=live_power_text(self.sampler))
        elif kind == Event.UTTERANCE_ERROR:
            self.progress.update(self.task, advance=1, power=live_power_text(self.sampler))


def execute(spec: RunSpec, console: Console, repeats: int = 1, limit: int | None = None,
            quiet: bool = False) -> dict[str, Any]:
    """Plan one group (a condition per repeat), run it through the executor; returns the run's summary."""
    engine = make_engine(spec.engine)
    image = engine.image(spec)
    job = plan_run(spec, image, repeats, limit)
    host = host_facts(engine.version())
    # A slow refresh: on small boards every redraw competes with the backend for the same cores.
    with Progress(*progress_columns(), console=console, transient=True, refresh_per_second=2,
                  disable=quiet) as progress:
        live = LiveProgress(progress, sum(len(c.ids) for c in job.conditions))
        callbacks = Callbacks(on_event=live, on_sampler=live.set_sampler, waiting=lambda text: console.status(text) if not quiet
                              else contextlib.nullcontext(),
                              on_notice=printer(console))
        result = execute_group(job, list(job.conditions), engine, host=host, owner_folder=spec.out,
                               callbacks=callbacks)
    data = run_summary(spec.out, result.records)
    if result.interrupted is not None:
        exc = result.interrupted
        done = data["n_utterances"] - data["n_failed"]
        exc.hint = (f"{done} of {data['n_utterances']} utterances finished; summary (status interrupted) in "
                    f"{spec.out / 'summary.json'}; a run does not resume: rerun the command with another --out")
        raise exc
    return data


def run_summary(out: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The run folder's summary: the one condition's, or over several repeats the first one's figures with
    every repeat's beside them (``repeats``) and the tables (conditions.jsonl, results.csv)."""
    if len(records) == 1:
        return records[0]["summary"]
    write_tables(out, records)
    first = dict(records[0]["summary"])
    per = [r["summary"] for r in records]
    first["repeats"] = {
        "n": len(per),
        "status": [p.get("status") for p in per],
        **{name: [p.get(name) for p in per] for name in ("wer", "rtf", "load_s", "inference_s", "peak_rss_mb")},
        "energy_per_audio_s_j": [(p.get("energy") or {}).get("energy_per_audio_s_j") for p in per],
        "folders": [str(out / "conditions" / r["condition"]["key"]) for r in records],
    }
    busy = [p["host_load"] for p in per if host_busy(p)]
    if busy:  # one busy repeat makes the run's figures suspect: say it at the top
        first["host_load"] = busy[0]
    bad = [p for p in per if p.get("status") != "ok"]
    first["status"] = bad[0]["status"] if bad else "ok"
    first["error"] = bad[0].get("error") if bad else None
    first["n_failed"] = sum(p.get("n_failed") or 0 for p in per)
    first["n_utterances"] = sum(p.get("n_utterances") or 0 for p in per)
    write_json_atomic(out / "summary.json", first)
    return first


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True, quiet=bool(getattr(args, "quiet", False)))
    spec = spec_from_args(args)
    # a hub name that is not installed: the host downloads it at its pinned commit (nothing else has started, so a
    # refusal leaves no run folder behind); the container stays offline
    spec = with_hub_models(spec, args.models_dir or default_models_dir(), log=lambda text: console.print(line(text)))
    with FolderLock(spec.out, "run"):
        return _main_locked(args, spec, console)


def _main_locked(args: argparse.Namespace, spec: RunSpec, console: Console) -> int:
    for removed in make_engine(spec.engine).reap((str(spec.out),)):
        console.print(line(removed))
    refused = len(spec.dataset.utterances) - len(spec.dataset.readable)
    console.print(line(("edgeasr run", "bold"), f": {spec.backend.name} {spec.model.name} {spec.quant} on "
                       f"{spec.device}, {plural(len(spec.dataset.utterances), 'utterance')} from {spec.dataset.path}"
                       + (f" ({refused} refused before launch, see utterances.jsonl)" if refused else "")))
    repeats, limit = spec.repeats or 1, spec.limit
    try:
        summary = execute(spec, console, repeats, limit, quiet=bool(getattr(args, "quiet", False)))
    except KeyboardInterrupt:
        if getattr(args, "json", False) and (spec.out / "summary.json").exists():
            print(json.dumps(json.loads((spec.out / "summary.json").read_text(encoding="utf-8"))))
        raise
    return show_result(summary, spec.out, console, as_json=getattr(args, "json", False),
                       fmt=getattr(args, "fmt", None) or "table")


def show_result(summary: dict[str, Any], out: Path, console: Console, *, as_json: bool, fmt: str) -> int:
    """The run's view (``fmt`` on stdout; with ``as_json`` the table goes to ``console`` and stdout carries the
    JSON only, also when the run failed), its warnings and last lines; returns the exit code. What the image
    and the dataset said (its error, ids, names) is shown visibly, never as markup (runner/untrusted.py)."""
    print_summary(summary, console if as_json else Console(), folder=out, fmt="table" if as_json else fmt)
    busy = host_busy(summary)
    if busy:
        console.print(line(("warning", "yellow"), f": the host was busy during the timed window ({busy}); speed "
                           "and energy include that work"))
    console.print(line(f"run folder: {out}"))
    if as_json:
        print(json.dumps(summary))
    if summary["status"] == "error":
        console.print(line(("run failed", "red"), f": {summary['error']}; container log: {out / CONTAINER_LOG}"))
        return 1
    if summary["status"] == "partial":
        console.print(line((f"{plural(summary['n_failed'], 'utterance')} failed", "yellow"),
                           f"; see {out / 'utterances.jsonl'}"))
        return 1
    return 0
