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

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..execute import Callbacks, execute_group
from ..hostinfo import host_facts
from ..launch.backends import BACKENDS
from ..launch.engines import make_engine
from ..lock import FolderLock
from ..models import default_models_dir
from ..plan import plan_run
from ..report.table import print_summary
from ..results import write_json_atomic
from ..spec import RunSpec, build_run_spec
from ..tables import write_tables


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="faster-whisper", help="backend name (default: faster-whisper)")
    p.add_argument("--model", default=None,
                   help="installed short name, model folder, or hub name (default: the backend's, tiny.en)")
    p.add_argument("--quant", default=None, help="fp32 | fp16 | bf16 | int8 (default: the backend's, int8)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: cpu)")
    p.add_argument("--data", default="data/default", help="dataset folder or manifest (default: data/default)")
    p.add_argument("--audio-root", action="append", default=[], metavar="DIR",
                   help="a trusted folder audio may come from besides the dataset's own (repeatable; for manifests "
                        "with absolute paths elsewhere); system folders are never allowed")
    p.add_argument("--out", default=None, help="run folder (default: results/<backend>-<model>-<quant>-<time>)")
    p.add_argument("--image", default=None, help="use this image instead of the backend's image for this platform "
                                                "(:latest; :jetson-r35 / :jetson-r36 on a Jetson, runner/platforms.py)")
    p.add_argument("--models-dir", type=Path, default=None, help="installed models (default: $EDGEASR_MODELS_DIR or ./models)")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--language", default=None, help="language code; default: the model detects it")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the backend (default: all cores)")
    p.add_argument("--batch-size", type=int, default=1,
                   help="1: sequential; N: the backend's batched decoding (faster-whisper/whisperx: batched "
                        "pipeline over VAD segments; transformers: N utterances per batch)")
    p.add_argument("--align", action="store_true", help="whisperx word alignment (needs its model downloaded)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up passes before timing (default: 1)")
    p.add_argument("--timeout", type=float, default=None, help="kill the container after this many seconds")
    p.add_argument("--mem-limit", default=None,
                   help="container memory limit, e.g. 4g (default: 3/4 of the host's memory)")
    p.add_argument("--telemetry", default="auto",
                   help="power sampler: auto | tegrastats | jtop | nvml | rapl | none (default: auto)")
    p.add_argument("--interval-ms", type=int, default=100, help="sampling interval (default: 100 ms)")
    p.add_argument("--baseline-s", type=float, default=5.0, help="idle seconds measured before the run (default: 5)")
    p.add_argument("--baseline-w", type=float, default=None, help="use this idle power instead of measuring it")
    p.add_argument("--gpus", default=None,
                   help="CUDA runs: the GPUs to use, NVML indices or UUIDs, comma-separated (default: "
                        "$CUDA_VISIBLE_DEVICES, else 0); the container gets exactly these and NVML measures them")
    p.add_argument("--loaded-idle-s", type=float, default=2.0,
                   help="seconds the loaded, warmed-up model sits idle before transcribing, to measure its idle "
                        "power beside the host baseline (default: 2; 0 skips it)")
    p.add_argument("--repeats", type=int, default=None,
                   help="run the dataset this many times in one container, one result each (default: 1)")
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances (default: all)")
    p.add_argument("--engine", default="docker", help="docker (default) | local: the entrypoint as a host process")
    p.add_argument("--allow-download", action="store_true",
                   help="let the backend download a hub model into the edgeasr-hf-cache volume (needs network)")


def default_out(backend: str, model: str, quant: str) -> str:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"results/{backend}-{Path(model).name}-{quant}-{stamp}"


def spec_from_args(args: argparse.Namespace) -> RunSpec:
    be = BACKENDS.get(args.backend)  # an unknown name is reported by build_run_spec
    model = args.model or (be.default_model if be else "tiny.en")
    quant = args.quant or (be.default_quant if be else "int8")
    return build_run_spec(
        backend=args.backend, model=model, quant=quant, device=args.device, data=args.data,
        out=args.out or default_out(args.backend, model, quant), image=args.image,
        models_dir=args.models_dir or default_models_dir(), beam_size=args.beam_size,
        temperature=args.temperature, language=args.language, threads=args.threads,
        batch_size=args.batch_size, warmup=args.warmup, timeout_s=args.timeout,
        allow_download=args.allow_download, mem_limit=args.mem_limit, telemetry=args.telemetry,
        interval_ms=args.interval_ms, baseline_s=args.baseline_s, baseline_w=args.baseline_w, engine=args.engine,
        align=args.align, audio_roots=tuple(args.audio_root), gpus=args.gpus, loaded_idle_s=args.loaded_idle_s,
    )


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
        elif kind in ("inference_start", "condition_start"):
            self.progress.update(self.task, description="transcribing")
        elif kind == "utterance_end":
            self.proc_s += event.get("processing_s", 0.0)
            self.audio_s += event.get("duration_s", 0.0)
            rtf = f"RTF {self.proc_s / self.audio_s:.3f}" if self.audio_s else ""
            self.progress.update(self.task, advance=1, rtf=rtf)
        elif kind == "utterance_error":
            self.progress.update(self.task, advance=1)


def execute(spec: RunSpec, console: Console, repeats: int = 1, limit: int | None = None,
            quiet: bool = False) -> dict[str, Any]:
    """Plan one group (a condition per repeat), run it through the executor; returns the run's summary."""
    engine = make_engine(spec.engine)
    image = engine.image(spec)
    job = plan_run(spec, image, repeats, limit)
    host = host_facts(engine.version())
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rtf]}"),
               TimeElapsedColumn()]
    # A slow refresh: on small boards every redraw competes with the backend for the same cores.
    with Progress(*columns, console=console, transient=True, refresh_per_second=2, disable=quiet) as progress:
        live = LiveProgress(progress, sum(len(c.ids) for c in job.conditions))
        callbacks = Callbacks(on_event=live, waiting=lambda text: console.status(text) if not quiet
                              else contextlib.nullcontext())
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
    with FolderLock(spec.out, "run"):
        return _main_locked(args, spec, console)


def _main_locked(args: argparse.Namespace, spec: RunSpec, console: Console) -> int:
    for line in make_engine(spec.engine).reap((str(spec.out),)):
        console.print(line)
    refused = len(spec.dataset.utterances) - len(spec.dataset.readable)
    console.print(f"[bold]edgeasr run[/]: {spec.backend.name} {spec.model.name} {spec.quant} on {spec.device}, "
                  f"{len(spec.dataset.utterances)} utterances from {spec.dataset.path}"
                  + (f" ({refused} refused before launch, see utterances.jsonl)" if refused else ""))
    repeats, limit = getattr(args, "repeats", None) or 1, getattr(args, "limit", None)
    try:
        summary = execute(spec, console, repeats, limit, quiet=bool(getattr(args, "quiet", False)))
    except KeyboardInterrupt:
        if getattr(args, "json", False) and (spec.out / "summary.json").exists():
            print(json.dumps(json.loads((spec.out / "summary.json").read_text(encoding="utf-8"))))
        raise
    # --json: stdout carries the JSON only (the table goes to stderr), also when the run failed.
    print_summary(summary, console if getattr(args, "json", False) else Console())
    console.print(f"run folder: {spec.out}")
    if getattr(args, "json", False):
        print(json.dumps(summary))
    if summary["status"] == "error":
        console.print(f"[red]run failed[/]: {summary['error']}; container log: {spec.out / 'raw' / 'container.log'}")
        return 1
    if summary["status"] == "partial":
        console.print(f"[yellow]{summary['n_failed']} utterance(s) failed[/]; see {spec.out / 'utterances.jsonl'}")
        return 1
    return 0
