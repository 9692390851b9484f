"""Run one job: load the model once, warm up, transcribe each utterance in turn, report.

Usage inside an image: ``python -m edgeasr_entrypoint [JOB_JSON]``; without an
argument the job is read from $EDGEASR_JOB, else /out/job.json. Outputs go next to
the job file (or to $EDGEASR_OUT): events.jsonl, transcripts.jsonl, status.json.
The backend adapter is the module named by $EDGEASR_ADAPTER; it provides
``load(job) -> model`` where the model has ``transcribe(audio) -> str`` and
``info() -> dict`` (library versions, parameter count when known).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from . import CONTRACT_VERSION
from .audio import AudioError, load_audio
from .events import EventLog, JsonlWriter, write_json_atomic
from .job import JobError, read_job
from .system import current_rss_mb, library_versions, peak_rss_mb, size_on_disk_mb


def _paths(argv: list[str]) -> tuple[Path, Path]:
    job_path = Path(argv[1]) if len(argv) > 1 else Path(os.environ.get("EDGEASR_JOB", "/out/job.json"))
    out_dir = Path(os.environ.get("EDGEASR_OUT", str(job_path.parent)))
    return job_path, out_dir


def _transcribe_all(job, model, events: EventLog, transcripts: JsonlWriter) -> tuple[int, int]:
    """One utterance after another; a failed one is recorded and the next one runs."""
    n_ok = n_failed = 0
    for utt in job.utterances:
        try:
            audio = load_audio(utt.audio)
        except AudioError as exc:
            n_failed += 1
            events.emit("utterance_error", id=utt.id, error=str(exc))
            transcripts.write({"id": utt.id, "status": "error", "error": str(exc), "hypothesis": None,
                               "duration_s": None, "processing_s": None})
            continue
        duration_s = len(audio) / 16000.0
        events.emit("utterance_start", id=utt.id, duration_s=duration_s)
        t0 = time.perf_counter()
        try:
            text = model.transcribe(audio)
        except Exception as exc:  # one bad utterance must not end the run
            elapsed = time.perf_counter() - t0
            n_failed += 1
            message = f"{type(exc).__name__}: {exc}"
            events.emit("utterance_error", id=utt.id, error=message)
            transcripts.write({"id": utt.id, "status": "error", "error": message, "hypothesis": None,
                               "duration_s": duration_s, "processing_s": elapsed})
            continue
        elapsed = time.perf_counter() - t0
        n_ok += 1
        events.emit("utterance_end", id=utt.id, processing_s=elapsed, duration_s=duration_s)
        transcripts.write({"id": utt.id, "status": "ok", "error": None, "hypothesis": text,
                           "duration_s": duration_s, "processing_s": elapsed})
    return n_ok, n_failed


def _warm_up(job, model, events: EventLog) -> None:
    """Warm-up runs on the first readable utterance; its results are discarded and untimed."""
    if job.warmup <= 0:
        return
    audio = None
    for utt in job.utterances:
        try:
            audio = load_audio(utt.audio)
            break
        except AudioError:
            continue
    if audio is None:
        events.emit("warmup_skipped", reason="no readable utterance")
        return
    events.emit("warmup_start", count=job.warmup)
    for _ in range(job.warmup):
        model.transcribe(audio)
    events.emit("warmup_end", count=job.warmup)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    job_path, out_dir = _paths(argv)
    out_dir.mkdir(parents=True, exist_ok=True)
    status: dict = {
        "contract_version": CONTRACT_VERSION,
        "status": "error",
        "error": None,
        "backend": os.environ.get("EDGEASR_BACKEND"),
        "python": platform.python_version(),
        "versions": {},
    }
    events = EventLog(out_dir / "events.jsonl")
    transcripts = JsonlWriter(out_dir / "transcripts.jsonl")
    exit_code = 1
    try:
        events.emit("container_start", contract_version=CONTRACT_VERSION)
        job = read_job(job_path)
        status.update(backend=job.backend, model=job.model, quant=job.quant, backend_quant=job.backend_quant,
                      device=job.device, n_utterances=len(job.utterances))
        adapter_name = os.environ.get("EDGEASR_ADAPTER")
        if not adapter_name:
            raise JobError("EDGEASR_ADAPTER is not set: the image does not name its backend adapter")
        adapter = importlib.import_module(adapter_name)
        events.emit("load_start", model=job.model)
        model = adapter.load(job)
        events.emit("load_end", model=job.model)
        status["rss_after_load_mb"] = current_rss_mb()
        status["model_size_mb"] = size_on_disk_mb(job.model)
        info = model.info()
        status["n_params"] = info.get("n_params")
        status["versions"] = {**library_versions(["numpy", "soundfile", "soxr"]), **info.get("versions", {})}
        _warm_up(job, model, events)
        events.emit("inference_start", n=len(job.utterances))
        n_ok, n_failed = _transcribe_all(job, model, events, transcripts)
        events.emit("inference_end", n_ok=n_ok, n_failed=n_failed)
        status.update(status="ok", n_ok=n_ok, n_failed=n_failed)
        exit_code = 0
    except JobError as exc:
        status["error"] = f"bad job spec: {exc}"
        exit_code = 2
    except MemoryError:
        status["error"] = "out of memory (MemoryError inside the container)"
    except Exception as exc:
        status["error"] = f"{type(exc).__name__}: {exc}"
        status["traceback"] = traceback.format_exc()
    finally:
        status["peak_rss_mb"] = peak_rss_mb()
        if status["status"] != "ok":
            events.emit("error", error=status["error"])
        events.emit("container_end", status=status["status"])
        write_json_atomic(out_dir / "status.json", status)
        events.close()
        transcripts.close()
    if status["error"]:
        print(f"edgeasr entrypoint: {status['error']}", file=sys.stderr)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
