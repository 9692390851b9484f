"""`edgeasr run`: one backend container over one dataset, merged into summary.json and utterances.jsonl.

Order matters for honesty: everything is validated before any container starts;
the container's raw outputs are kept in OUT/raw whatever happens; the summary is
written even when the run failed, with the reason.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import merge, settings
from ..errors import UserError, signal_name
from ..hostinfo import host_facts
from ..launch import docker_engine, local_engine
from ..launch.backends import BACKENDS
from ..launch.job import CONTRACT_VERSION, host_path_map, make_env, make_job, run_job_container
from ..launch.owner import Owner
from ..lock import FolderLock
from ..models import default_models_dir
from ..report.table import print_summary
from ..results import Summary, write_json_atomic, write_jsonl_atomic
from ..spec import RunSpec, build_run_spec
from ..telemetry import accounting
from ..telemetry.idle import idle_baseline
from ..telemetry.select import select_sampler


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Every setting's option from its metadata (runner/settings.py), then the run-only options."""
    settings.add_arguments(p)
    p.add_argument("--out", default=None, help="run folder (default: results/<backend>-<model>-<quant>-<time>)")
    p.add_argument("--models-dir", type=Path, default=None,
                   help="installed models (default: $EDGEASR_MODELS_DIR or ./models)")
    p.add_argument("--engine", default="docker",
                   help="docker | local: the entrypoint as a host process (default: docker)")
    p.add_argument("--allow-download", action="store_true",
                   help="let the backend download a hub model into models/hub-cache (needs network; default: off)")


def default_out(backend: str, model: str, quant: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"results/{backend}-{Path(model).name}-{quant}-{stamp}"


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    """The defaults with the flags given over them, resolved by build_run_spec; one UserError for every
    problem, the flags' own and the run's."""
    given, problems = settings.from_args(args)
    be = BACKENDS.get(given.backend)  # an unknown name is reported by build_run_spec
    model = given.model or (be.default_model if be else "tiny.en")
    quant = given.quant or (be.default_quant if be else "int8")
    try:
        spec = build_run_spec(given, out=args.out or default_out(given.backend, model, quant),
                              models_dir=args.models_dir or default_models_dir(), engine=args.engine,
                              allow_download=args.allow_download)
    except UserError as exc:
        if not problems:
            raise
        problems += exc.problems or [str(exc)]
    if problems:
        if len(problems) == 1:
            raise UserError(problems[0])
        raise UserError(f"{len(problems)} problems with this run:", problems=problems)
    return spec


class LiveProgress:
    """Turns contract events into a progress bar: utterances done / total and the running RTF."""

    def __init__(self, progress: Progress, total: int):
        self.progress = progress
        self.task = progress.add_task("starting container", total=total, rtf="")
        self.proc_s = 0.0
        self.audio_s = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "load_start":
            self.progress.update(self.task, description="loading model")
        elif kind == "warmup_start":
            self.progress.update(self.task, description="warming up")
        elif kind == "inference_start":
            self.progress.update(self.task, description="transcribing")
        elif kind == "utterance_end":
            self.proc_s += event.get("processing_s", 0.0)
            self.audio_s += event.get("duration_s", 0.0)
            rtf = f"RTF {self.proc_s / self.audio_s:.3f}" if self.audio_s else ""
            self.progress.update(self.task, advance=1, rtf=rtf)
        elif kind == "utterance_error":
            self.progress.update(self.task, advance=1)


def _base_summary(spec: RunSpec, image: docker_engine.ImageInfo | None) -> Summary:
    return Summary(
        backend=spec.backend.name, model=spec.model.name, quant=spec.quant, device=spec.device,
        dataset=spec.dataset.name, status="error", backend_quant=spec.backend_quant,
        model_source=spec.model.source, data_path=str(spec.dataset.path),
        decode=spec.decode.to_json(), warmup=spec.warmup,
        image={"ref": spec.image, "id": image.id if image else None, "tags": image.tags if image else [],
               "labels": image.labels if image else {}},
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        engine=spec.engine, telemetry=spec.telemetry.to_json(),
    )


def _launch(spec: RunSpec, raw_dir: Path, live: "LiveProgress", client) -> docker_engine.ContainerRun:
    """Run the entrypoint in a container (docker) or as a host process (local)."""
    if spec.engine == "local":
        write_json_atomic(raw_dir / "job.json", make_job(spec, host_paths=True))
        # The run's GPUs, in NVML's (PCI bus) order, as the docker engine would give them.
        gpu_env = {"CUDA_VISIBLE_DEVICES": ",".join(spec.gpus), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"} if spec.gpus else {}
        return local_engine.run_local(spec.backend, raw_dir / "job.json", env={**make_env(spec), **gpu_env},
                                      log_path=raw_dir / "container.log", on_event=live, timeout_s=spec.timeout_s)
    return run_job_container(client, spec, make_job(spec), raw_dir, on_event=live,
                             owner=Owner.me(spec.out, "run"))


def execute(spec: RunSpec, console: Console) -> dict[str, Any]:
    """Sample power, run the container, merge; returns the summary as written to disk."""
    client = image = None
    if spec.engine == "docker":
        client = docker_engine.connect()
        image = docker_engine.image_info(client, spec.image)
        label = image.labels.get("org.edgeasr.contract")
        if label is not None and label != str(CONTRACT_VERSION):
            raise UserError(f"image {spec.image} speaks entrypoint contract {label}; "
                            f"this runner speaks {CONTRACT_VERSION}")
    else:
        local_engine.check_host_backend(spec.backend)
    sampler, energy_reason = select_sampler(spec.telemetry.sampler, spec.device, spec.telemetry.interval_ms,
                                            spec.gpus)
    raw_dir = spec.out / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("events.jsonl", "transcripts.jsonl", "status.json", "container.log"):
        (raw_dir / stale).unlink(missing_ok=True)
    summary = _base_summary(spec, image)
    summary.host = host_facts(client.version().get("Version") if client else None)

    summary.hardening = spec.hardening.describe() if spec.engine == "docker" else {}

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rtf]}"),
               TimeElapsedColumn()]
    run: docker_engine.ContainerRun | None = None
    interrupted: KeyboardInterrupt | None = None
    base = None
    try:
        with sampler:
            base = idle_baseline(spec.telemetry, sampler, console) if energy_reason is None else None
            # A slow refresh: on small boards every redraw competes with the backend for the same cores.
            with Progress(*columns, console=console, transient=True, refresh_per_second=2) as progress:
                live = LiveProgress(progress, len(spec.dataset.utterances))
                run = _launch(spec, raw_dir, live, client)
            if energy_reason is None:
                # Keep sampling a little past the end so that the last window is bracketed by samples.
                time.sleep(1.5 * spec.telemetry.interval_ms / 1000.0)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the container is gone; record what finished
        interrupted = exc
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if interrupted else {}
    try:
        data = _finish(spec, summary, raw_dir, run, sampler, base, energy_reason, interrupted)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if interrupted is not None:
        done = data["n_utterances"] - data["n_failed"]
        interrupted.hint = (f"{done} of {data['n_utterances']} utterances finished; summary (status interrupted) in "
                            f"{spec.out / 'summary.json'}; a run does not resume: rerun the command with another --out")
        raise interrupted
    return data


def _finish(spec: RunSpec, summary: Summary, raw_dir: Path, run: docker_engine.ContainerRun | None, sampler,
            base, energy_reason: str | None, interrupted: KeyboardInterrupt | None) -> dict[str, Any]:
    """Merge the raw outputs into utterances.jsonl and summary.json (also after an interruption)."""
    t_merge = time.perf_counter()
    raw = merge.read_raw(raw_dir)
    if interrupted is not None:
        error = f"interrupted by {signal_name(interrupted)}"
    else:
        error = merge.container_error(run, raw.status, spec.timeout_s, spec.mem_limit_text)
    paths = host_path_map(spec, raw_dir) if spec.engine == "docker" else {}
    missing = error or "the container stopped before this utterance"
    utts = merge.merge_utterances(spec.dataset, raw.transcripts, f"not transcribed: {missing}", paths)
    merge.score(summary, utts)
    merge.apply_container_facts(summary, raw)
    summary.error = merge.host_paths(error, paths)
    summary.status = ("interrupted" if interrupted is not None else "error" if error
                      else ("partial" if summary.n_failed else "ok"))
    samples = sampler.samples
    utts = merge.account_energy(summary, utts, sampler.name, samples, raw.events, base, energy_reason,
                                spec.telemetry.interval_ms, accounting.ProcessOwner.of(run), sampler.health(),
                                sampler.companions)
    if energy_reason is None:
        accounting.write_trace_csv(spec.out / "telemetry.csv", samples)
    try:
        write_jsonl_atomic(spec.out / "utterances.jsonl", [asdict(u) for u in utts])
    finally:  # a full disk: the small summary may still fit, and says what happened
        if run is not None:
            summary.overhead_s = _overhead(run, raw, time.perf_counter() - t_merge)
        data = summary.to_json()
        write_json_atomic(spec.out / "summary.json", data)
    return data


def _overhead(run: docker_engine.ContainerRun, raw: merge.RawOutputs, merge_s: float) -> dict[str, float]:
    """Seconds spent outside the model's work: engine start, interpreter boot, exit, merge."""
    out = {"engine_start_s": run.create_to_start_s, "merge_s": merge_s, "container_wall_s": run.wall_s}
    first = next((e for e in raw.events if e.get("event") == "container_start"), None)
    last = next((e for e in reversed(raw.events) if e.get("event") == "container_end"), None)
    if first:
        out["boot_s"] = max(0.0, (first["t_ns"] - run.started_ns) / 1e9)
    if last:
        out["exit_s"] = max(0.0, (run.exited_ns - last["t_ns"]) / 1e9)
    return out


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    spec = spec_from_args(args)
    with FolderLock(spec.out, "run"):
        return _main_locked(args, spec, console)


def _main_locked(args: argparse.Namespace, spec: RunSpec, console: Console) -> int:
    if spec.engine == "docker":
        for line in docker_engine.reap_orphans(docker_engine.connect(), (str(spec.out),)):
            console.print(line)
    refused = len(spec.dataset.utterances) - len(spec.dataset.readable)
    console.print(f"[bold]edgeasr run[/]: {spec.backend.name} {spec.model.name} {spec.quant} on {spec.device}, "
                  f"{len(spec.dataset.utterances)} utterances from {spec.dataset.path}"
                  + (f" ({refused} refused before launch, see utterances.jsonl)" if refused else ""))
    summary = execute(spec, console)
    print_summary(summary, Console())
    console.print(f"run folder: {spec.out}")
    if summary["status"] == "error":
        console.print(f"[red]run failed[/]: {summary['error']}; container log: {spec.out / 'raw' / 'container.log'}")
        return 1
    if summary["status"] == "partial":
        console.print(f"[yellow]{summary['n_failed']} utterance(s) failed[/]; see {spec.out / 'utterances.jsonl'}")
        return 1
    if args.json:
        print(json.dumps(summary))
    return 0
