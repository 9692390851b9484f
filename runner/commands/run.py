"""`edgeasr run`: one backend container over one dataset, merged into summary.json and utterances.jsonl.

Parses the flags into a run (every setting's option from runner/settings.py), runs it (runner/run.py) and
renders it: the header, a progress bar, the result table (or --json), and why it failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from edgeasr_entrypoint.contract import Event
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from .. import settings
from ..backends import default_model_quant
from ..errors import UserError
from ..execute import Callbacks
from ..launch.engines import CONTAINER_LOG
from ..models.resolve import default_models_dir
from ..report.sweep_table import FORMATS
from ..report.table import host_busy, print_summary
from ..run import run_benchmark
from ..spec import RunSpec, build_run_spec
from ..telemetry.energy.live import live_power_text
from ..trust.untrusted import PlainColumn, line, printer
from ..wording import plural


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every setting's option from its metadata (runner/settings.py), then the run-only options."""
    groups = settings.add_arguments(p)  # the help's sections: model, data, decode, ..., output
    groups["output"].add_argument("--out", default=None,
                                  help="run folder (default: results/<backend>-<model>-<quant>-<time>)")
    groups["model"].add_argument("--models-dir", type=Path, default=None,
                                 help="installed models (default: $EDGEASR_MODELS_DIR or ./models)")
    groups["container"].add_argument("--engine", default="docker",
                                     help="docker | local: the entrypoint as a host process (default: docker)")
    groups["model"].add_argument("--offline", action="store_true",
                                 help="never download: a hub name that is not installed is refused (default: "
                                      "off, it is downloaded on the host at its pinned commit, "
                                      "models/hub-pins.json)")
    groups["container"].add_argument("--container-network", "--allow-download", dest="container_network",
                                     action="store_true",
                                     help="give the backend container a network, so that its library may "
                                          "download what it needs into models/hub-cache (whisperx's alignment "
                                          "model); hub models never need it")
    groups["output"].add_argument("--format", dest="fmt", default=None, choices=FORMATS,
                                  help="the result table: table (terminal), md (Markdown) or csv (numbers, one "
                                       "column per figure), on stdout (default: table)")


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
            self.proc_s += event.get("processing_s") or 0.0  # checked numbers (runner/trust/validate.py)
            self.audio_s += event.get("duration_s") or 0.0
            rtf = f"RTF {self.proc_s / self.audio_s:.3f}" if self.audio_s else ""
            self.progress.update(self.task, advance=1, rtf=rtf, power=live_power_text(self.sampler))
        elif kind == Event.UTTERANCE_ERROR:
            if _first_hearing(event):  # in stream mode an utterance is heard by every stream, in every pass
                self.progress.update(self.task, advance=1, power=live_power_text(self.sampler))
        # stream mode (issue 23): the bar counts stream 0's first pass (every utterance once), and shows the lag
        elif kind == Event.STREAM_START:
            self.progress.update(self.task, description="streaming")
        elif kind == Event.CHUNK:
            lag = _lag_s(event)
            if lag is not None:
                self.progress.update(self.task, rtf=f"lag {lag:.2f} s", power=live_power_text(self.sampler))
        elif kind == Event.FINAL and _first_hearing(event):
            self.progress.update(self.task, advance=1, power=live_power_text(self.sampler))


def _first_hearing(event: dict[str, Any]) -> bool:
    """An offline utterance's event, or a stream's that is stream 0's first pass (the one that hears each utterance
    once, so that the bar's total, the utterances, is reached)."""
    return event.get("stream") is None or (event.get("stream") == 0 and (event.get("play") or 0) == 0)


def _lag_s(event: dict[str, Any]) -> float | None:
    """A chunk event's lag behind real time (start - delivered, s), or None where its fields are not numbers."""
    start, delivered = event.get("start_ns"), event.get("delivered_ns")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, delivered)):
        return None
    return (start - delivered) / 1e9


class RunConsoleView:
    """The run on a terminal (stderr): the header, then a transient progress bar while the container runs."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet

    def note(self, text: str) -> None:
        self.console.print(line(text))  # names hub repositories, containers: what we did not write

    def started(self, spec: RunSpec) -> None:
        refused = len(spec.dataset.utterances) - len(spec.dataset.readable)
        self.console.print(line(("edgeasr run", "bold"), f": {spec.backend.name} {spec.model.name} {spec.quant} on "
                                f"{spec.device}, {plural(len(spec.dataset.utterances), 'utterance')} from "
                                f"{spec.dataset.path}"
                                + (f" ({refused} refused before launch, see utterances.jsonl)" if refused else "")))

    @contextlib.contextmanager
    def progress(self, total: int) -> Iterator[Callbacks]:
        # A slow refresh: on small boards every redraw competes with the backend for the same cores.
        with Progress(*progress_columns(), console=self.console, transient=True, refresh_per_second=2,
                      disable=self.quiet) as progress:
            live = LiveProgress(progress, total)
            yield Callbacks(on_event=live, on_sampler=live.set_sampler,
                            waiting=lambda text: self.console.status(text) if not self.quiet
                            else contextlib.nullcontext(),
                            on_notice=printer(self.console))


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True, quiet=bool(getattr(args, "quiet", False)))
    spec = spec_from_args(args)
    view = RunConsoleView(console, quiet=bool(getattr(args, "quiet", False)))
    try:
        summary = run_benchmark(spec, args.models_dir or default_models_dir(), view)
    except KeyboardInterrupt:
        if getattr(args, "json", False) and (spec.out / "summary.json").exists():
            print(json.dumps(json.loads((spec.out / "summary.json").read_text(encoding="utf-8"))))
            args.result_printed = True  # stdout has its JSON: the CLI prints no error object over it
        raise
    return show_result(summary, spec.out, console, as_json=getattr(args, "json", False),
                       fmt=getattr(args, "fmt", None) or "table")


def show_result(summary: dict[str, Any], out: Path, console: Console, *, as_json: bool, fmt: str) -> int:
    """The run's view (``fmt`` on stdout; with ``as_json`` the table goes to ``console`` and stdout carries the
    JSON only, also when the run failed), its warnings and last lines; returns the exit code. What the image
    and the dataset said (its error, ids, names) is shown visibly, never as markup (runner/trust/untrusted.py)."""
    print_summary(summary, console if as_json else Console(), folder=out, fmt="table" if as_json else fmt)
    busy = host_busy(summary)
    if busy:
        console.print(line(("warning", "yellow"), f": the host was busy during the timed window ({busy}); speed "
                           "and energy include that work"))
    console.print(line(f"run folder: {out}"), soft_wrap=True)  # a path is never wrapped
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
