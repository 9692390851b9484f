"""Run one job: load the model once, warm up, transcribe each utterance in turn, report.

Usage inside an image: ``python -m edgeasr_entrypoint [JOB_JSON]``; without an
argument the job is read from $EDGEASR_JOB, else /out/job.json. Outputs go next to
the job file (or to $EDGEASR_OUT): events.jsonl, transcripts.jsonl, status.json.
The backend adapter is the module named by $EDGEASR_ADAPTER; it provides
``load(job) -> model`` where the model has ``transcribe(audio) -> str`` and
``info() -> dict`` (library versions, parameter count when known), and optionally
``transcribe_batch(audios) -> list[str]``, ``peak_vram_mb()`` and
``set_decode(decode: DecodeOptions)``, which applies a condition's decode overrides
to the loaded model (raising NotImplementedError or ValueError for a change it cannot make), and
``open_stream()``, an incremental decoder for stream mode (job.stream: stream.py plays the utterances as live
audio; commit.py's LocalAgreement-2 serves a backend without one).
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

from .audio import AudioError, load_audio
from .contract import (CONTRACT_VERSION, GO_FILE, SAMPLE_RATE, DecodeOptions, Event, RecordError, StatusRecord,
                       TranscriptRecord, decode_changes)
from .events import EventLog, JsonlWriter, write_json_atomic
from .job import JobError, read_job
from .system import (PeakLedger, current_rss_mib, forget_excl_audio, library_versions, process_excl_audio_mib,
                     process_peak_rss_mib, reset_peak_rss, size_on_disk_mb)


def _paths(argv: list[str]) -> tuple[Path, Path]:
    job_path = Path(argv[1]) if len(argv) > 1 else Path(os.environ.get("EDGEASR_JOB", "/out/job.json"))
    out_dir = Path(os.environ.get("EDGEASR_OUT", str(job_path.parent)))
    return job_path, out_dir


class NoGo(Exception):
    """A held start that the host never released within job.hold_s (it is gone, or never finished)."""


class DeviceMismatch(Exception):
    """The backend's model runs on another device than the job's (its adapter's info()["device_used"])."""


class AudioCache:
    """Decoded audio by path, so that a sweep's conditions decode each file once (bounded in bytes)."""

    def __init__(self, max_bytes: int = 512 * 1024 * 1024):
        self._data: dict = {}
        self._bytes = 0
        self._max = max_bytes

    def __call__(self, path: str):
        if path in self._data:
            return self._data[path]
        audio = load_audio(path)
        if self._bytes + audio.nbytes <= self._max:
            self._data[path] = audio
            self._bytes += audio.nbytes
        return audio

    def held_mib(self, pool: dict | None = None) -> float:
        """Decoded audio the harness holds (this cache and the babble pool's arrays not in it), MiB:
        resident memory that is the harness's, not the backend's."""
        cached = {id(a) for a in self._data.values()}
        extra = sum(a.nbytes for a in (pool or {}).values() if id(a) not in cached)
        return (self._bytes + extra) / 2**20


def _babble_pool(job, cache: AudioCache) -> dict:
    """Every readable utterance of the job by id: babble talkers are drawn from the others."""
    pool = {}
    for utt in job.utterances:
        try:
            pool[utt.id] = cache(utt.audio)
        except AudioError:
            continue
    return pool


def _record_error(events: EventLog, transcripts: JsonlWriter, uid: str, key, message: str,
                  duration_s=None, processing_s=None) -> None:
    events.emit(Event.UTTERANCE_ERROR, id=uid, condition=key, error=message)
    transcripts.write(TranscriptRecord.failed(uid, key, message, duration_s, processing_s).to_json())


def _decode_batch(model, batch: list, key, events: EventLog, transcripts: JsonlWriter,
                  ledger: PeakLedger | None = None, held=lambda: 0.0) -> tuple[int, int]:
    """Transcribe prepared (id, audio) pairs: one call per utterance, or one transcribe_batch call.

    In a batch every utterance waits for the whole batch (its latency_s is the batch's time);
    processing_s is the batch's time shared by audio duration, so that RTF sums correctly.
    ``ledger`` splits the resident peak at the call's edges, each part beside the audio ``held()`` then.
    """
    if ledger is not None:
        ledger.close(held(), backend=False)  # the stretch before the call: the harness preparing its audio
    durations = [len(audio) / float(SAMPLE_RATE) for _, audio in batch]
    for (uid, _), dur in zip(batch, durations):
        events.emit(Event.UTTERANCE_START, id=uid, condition=key, duration_s=dur)
    t0 = time.perf_counter()
    try:
        if len(batch) == 1:
            texts = [model.transcribe(batch[0][1])]
        else:
            texts = list(model.transcribe_batch([audio for _, audio in batch]))
    except Exception as exc:  # one bad utterance (or batch) must not end the run
        elapsed = time.perf_counter() - t0
        if ledger is not None:
            ledger.close(held())
        message = f"{type(exc).__name__}: {exc}"
        for (uid, _), dur in zip(batch, durations):
            _record_error(events, transcripts, uid, key, message, dur, elapsed * dur / sum(durations))
        return 0, len(batch)
    elapsed = time.perf_counter() - t0
    if ledger is not None:
        ledger.close(held())  # the call: the audio held did not change during it
    n_ok = 0
    for (uid, _), dur, text in zip(batch, durations, texts):
        share = elapsed * dur / sum(durations)
        extra = {"batch_size": len(batch), "latency_s": elapsed} if len(batch) > 1 else {}
        try:  # the result as the host will read it; one it would refuse (text that is not text) is this one's error
            result = TranscriptRecord.ok(uid, key, text, dur, share, **extra)
        except RecordError as exc:
            _record_error(events, transcripts, uid, key, f"the backend's result breaks the contract: {exc}", dur,
                          share)
            continue
        events.emit(Event.UTTERANCE_END, id=uid, condition=key, processing_s=share, duration_s=dur, **extra)
        transcripts.write(result.to_json())
        n_ok += 1
    return n_ok, len(batch) - n_ok


def _prepared(utt, spec, cond, pool: dict | None, cache: AudioCache):
    """An utterance's audio as its condition hears it: decoded (cached) with the condition's noise mixed in
    (AudioError or NoiseError when it cannot be); the offline and the stream paths share it."""
    from .noise import apply_noise, babble_sources_for

    audio = cache(utt.audio)
    if not spec.is_clean:
        sources = babble_sources_for(utt.id, pool or {}) if spec.type == "babble" else ()
        audio = apply_noise(audio, spec, utt.id, cond.seed_key, babble_sources=sources, load=cache)
    return audio


def _run_condition(job, cond, model, events: EventLog, transcripts: JsonlWriter, cache: AudioCache,
                   pool: dict | None, decode: DecodeOptions | None = None,
                   refused: str | None = None, ledger: PeakLedger | None = None) -> tuple[int, int]:
    """One condition's utterances in order; a failed one is recorded and the next one runs.

    Decoding and adding noise happen before the timed window; only the backend call is timed.
    They run inside prepare_start/prepare_end events, so the host takes their energy out of the
    inference window's (RTF leaves them out too).
    With batch_size > 1 (of ``decode``, the condition's effective settings) and an adapter that offers
    transcribe_batch, utterances go in batches. ``refused``: why the model could not take this condition's
    decode settings; then every utterance of the condition is an error with that message.
    """
    from .noise import NoiseError, NoiseSpec

    key = cond.key if cond else None
    spec = NoiseSpec.from_json(cond.noise) if cond else NoiseSpec("clean", None)
    wanted = set(cond.ids) if cond and cond.ids is not None else None
    decode = decode or job.decode
    size = decode.batch_size if hasattr(model, "transcribe_batch") else 1
    n_ok = n_failed = 0
    batch: list = []
    preparing = False

    def held() -> float:
        return cache.held_mib(pool)

    if job.stream is not None:  # live audio (contract 4): stream.py paces the condition's utterances
        from .stream import run_stream_condition

        return run_stream_condition(
            job.stream, key, model, [u for u in job.utterances if wanted is None or u.id in wanted], events,
            transcripts, lambda utt: _prepared(utt, spec, cond, pool, cache),
            lambda uid, k, message: _record_error(events, transcripts, uid, k, message), refused, ledger, held)

    for utt in job.utterances:
        if wanted is not None and utt.id not in wanted:
            continue
        if refused is not None:
            n_failed += 1
            _record_error(events, transcripts, utt.id, key, refused)
            continue
        if not preparing:
            events.emit(Event.PREPARE_START, condition=key)
            preparing = True
        try:
            audio = _prepared(utt, spec, cond, pool, cache)
        except (AudioError, NoiseError) as exc:
            n_failed += 1
            _record_error(events, transcripts, utt.id, key, str(exc))
            continue
        batch.append((utt.id, audio))
        if len(batch) >= max(1, size):
            events.emit(Event.PREPARE_END, condition=key)
            preparing = False
            ok, failed = _decode_batch(model, batch, key, events, transcripts, ledger, held)
            n_ok, n_failed, batch = n_ok + ok, n_failed + failed, []
    if preparing:
        events.emit(Event.PREPARE_END, condition=key)
    if batch:
        ok, failed = _decode_batch(model, batch, key, events, transcripts, ledger, held)
        n_ok, n_failed = n_ok + ok, n_failed + failed
    return n_ok, n_failed


def _transcribe_all(job, model, events: EventLog, transcripts: JsonlWriter, cache: AudioCache) -> tuple[int, int]:
    """Every condition in turn (one implicit clean condition when the job names none)."""
    if not job.conditions:
        return _run_condition(job, None, model, events, transcripts, cache, None, ledger=PeakLedger())
    needs_pool = any(c.noise.get("type") == "babble" for c in job.conditions)
    pool = _babble_pool(job, cache) if needs_pool else None
    n_ok = n_failed = 0
    current = job.decode  # what the loaded model decodes with now
    for cond in job.conditions:
        reset = reset_peak_rss()  # each condition's own peak, not the largest so far
        decode = replace(job.decode, **cond.decode)
        refused = None
        if decode != current:
            refused = _apply_decode(model, current, decode)
            if refused is None:
                current = decode
        events.emit(Event.CONDITION_START, condition=cond.key, noise=cond.noise, decode=asdict(decode))
        ledger = PeakLedger()
        ok, failed = _run_condition(job, cond, model, events, transcripts, cache, pool, decode, refused, ledger)
        ledger.close(cache.held_mib(pool), backend=False)  # the stretch after its last call
        vram = model.peak_vram_mb() if hasattr(model, "peak_vram_mb") else None  # a sweep result needs it too
        events.emit(Event.CONDITION_END, condition=cond.key, n_ok=ok, n_failed=failed,
                    peak_rss_mb=ledger.peak_mib if reset else process_peak_rss_mib(),
                    peak_vram_mb=vram, audio_cache_mb=cache.held_mib(pool),
                    peak_rss_excl_audio_mb=ledger.excl_audio_mib, peak_rss_excl_audio_method=ledger.method,
                    peak_rss_scope="condition (peak reset at its start)" if reset else "process (since start)")
        n_ok, n_failed = n_ok + ok, n_failed + failed
    return n_ok, n_failed


def _apply_decode(model, current: DecodeOptions, decode: DecodeOptions) -> str | None:
    """Tell the loaded model a condition's decode settings; None when it took them, else why not.

    The model keeps ``current`` when it refuses, so the next condition starts from what it really has.
    Anything it raises stops only this condition: the conditions after it still run.
    """
    changes = ", ".join(f"{name} {getattr(current, name)!r} -> {getattr(decode, name)!r}"
                        for name in decode_changes(current, decode))
    setter = getattr(model, "set_decode", None)
    if setter is None:
        return (f"decode override not applied ({changes}): this backend's adapter cannot change decode settings "
                "in a loaded model (it has no set_decode); run these settings as separate containers")
    try:
        setter(decode)
    except (NotImplementedError, ValueError) as exc:
        return f"decode override not applied ({changes}): {exc}"
    except Exception as exc:  # a backend failure while switching: this condition fails, the run goes on
        return f"decode override not applied ({changes}): {type(exc).__name__}: {exc}"
    return None


GO_POLL_S = 0.002  # how often a held start looks for the go: a stat call, nothing the host's work would feel


def _hold(job, out_dir: Path, events: EventLog) -> None:
    """A held start (job.hold_s, contract 5): booted and the adapter imported, wait for the host's go (GO_FILE in
    the output folder) before anything of the model's is touched, at most hold_s (then NoGo: the host is gone
    or never finished). The host says go once nothing of its own runs any more, so that the load, the warm-up and
    the inference never share the CPU with it (issue 26)."""
    if not job.hold_s:
        return
    events.emit(Event.HOLD_START, seconds=job.hold_s)
    go, deadline = out_dir / GO_FILE, time.monotonic() + job.hold_s
    while not os.path.lexists(go):
        if time.monotonic() >= deadline:
            events.emit(Event.HOLD_END, go=False)
            raise NoGo("no go from the host within {:g} s (job.hold_s): nothing was loaded".format(job.hold_s))
        time.sleep(GO_POLL_S)
    events.emit(Event.HOLD_END, go=True)


WARMUP_MAX_S = 30.0  # the warm-up needs one decoder window, not a whole long file


def _warm_up(job, model, events: EventLog, cache: AudioCache) -> None:
    """Warm-up runs on (at most the first 30 s of) the first readable utterance; results discarded, untimed."""
    if job.warmup <= 0:
        return
    audio = None
    for utt in job.utterances:
        try:
            audio = cache(utt.audio)
            break
        except AudioError:
            continue
    if audio is None:
        events.emit(Event.WARMUP_SKIPPED, reason="no readable utterance")
        return
    audio = audio[:int(WARMUP_MAX_S * SAMPLE_RATE)]
    events.emit(Event.WARMUP_START, count=job.warmup, audio_s=len(audio) / float(SAMPLE_RATE))
    for _ in range(job.warmup):
        model.transcribe(audio)
    events.emit(Event.WARMUP_END, count=job.warmup)


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
    cache = None
    ledger = None
    forget_excl_audio()  # one process, one figure (tests run main more than once in a process)
    try:
        events.emit(Event.CONTAINER_START, contract_version=CONTRACT_VERSION)
        job = read_job(job_path)
        status.update(backend=job.backend, model=job.model, quant=job.quant, backend_quant=job.backend_quant,
                      device=job.device, n_utterances=len(job.utterances))
        adapter_name = os.environ.get("EDGEASR_ADAPTER")
        if not adapter_name:
            raise JobError("EDGEASR_ADAPTER is not set: the image does not name its backend adapter")
        adapter = importlib.import_module(adapter_name)
        _hold(job, out_dir, events)
        events.emit(Event.LOAD_START, model=job.model)
        model = adapter.load(job)
        events.emit(Event.LOAD_END, model=job.model)
        status["rss_after_load_mb"] = current_rss_mib()
        status["model_size_mb"] = size_on_disk_mb(job.model)
        info = model.info()
        status["n_params"] = info.get("n_params")
        if info.get("model_size_mb") is not None:  # a model bundled in the image: the adapter knows its files
            status["model_size_mb"] = info["model_size_mb"]
        for extra in ("quant_method", "model_kind", "compat"):  # compat: older-API notes (compat.py)
            if extra in info:
                status[extra] = info[extra]
        status["versions"] = {**library_versions(["numpy", "soundfile", "soxr"]), **info.get("versions", {})}
        if info.get("device_used") is not None:  # optional: the device the model really runs on
            status["device_used"] = str(info["device_used"])
        events.emit(Event.MODEL_INFO, **{k: status[k] for k in ("versions", "n_params", "model_size_mb",
                                                             "rss_after_load_mb", "device_used") if k in status})
        if status.get("device_used", job.device) != job.device:
            # a CUDA job whose library ended on the CPU (ONNX Runtime falls back by itself): nothing it measured
            # would be a figure of the device asked for, so it stops before anything is timed
            raise DeviceMismatch(f"the backend ran on {status['device_used']}, not on the {job.device} the job "
                                 f"asked for; nothing was timed (is the GPU visible inside the image? "
                                 f"`edgeasr doctor` says)")
        cache = AudioCache()
        ledger = PeakLedger()
        ledger.close(0.0)  # the load: no audio held yet
        _warm_up(job, model, events, cache)
        ledger.close(cache.held_mib())  # the warm-up, beside the audio it decoded
        if job.loaded_idle_s > 0:  # the loaded model's idle power, measured by the host (issue 9)
            events.emit(Event.LOADED_IDLE_START, seconds=job.loaded_idle_s)
            time.sleep(job.loaded_idle_s)
            events.emit(Event.LOADED_IDLE_END)
        events.emit(Event.INFERENCE_START, n=len(job.utterances), n_conditions=len(job.conditions) or 1)
        n_ok, n_failed = _transcribe_all(job, model, events, transcripts, cache)
        events.emit(Event.INFERENCE_END, n_ok=n_ok, n_failed=n_failed)
        status.update(status="ok", n_ok=n_ok, n_failed=n_failed)
        if hasattr(model, "peak_vram_mb"):
            status["peak_vram_mb"] = model.peak_vram_mb()
        exit_code = 0
    except JobError as exc:
        status["error"] = f"bad job spec: {exc}"
        exit_code = 2
    except RecordError as exc:  # a record the host would refuse, stopped where it was made (an adapter's info())
        status["error"] = f"the container's output breaks the contract: {exc}"
    except (DeviceMismatch, NoGo) as exc:
        status["error"] = str(exc)
    except MemoryError:
        status["error"] = "out of memory (MemoryError inside the container)"
    except Exception as exc:
        status["error"] = f"{type(exc).__name__}: {exc}"
        status["traceback"] = traceback.format_exc()
    finally:
        status["peak_rss_mb"] = process_peak_rss_mib()
        status["audio_cache_mb"] = cache.held_mib() if cache is not None else None
        status["peak_rss_excl_audio_mb"] = process_excl_audio_mib()
        status["peak_rss_excl_audio_method"] = ledger.method if ledger is not None else None
        written = StatusRecord.written(status)  # what the host reads: a field that breaks the contract is an error
        if written.status != status["status"]:
            exit_code = 1
        status = dict(written.to_json())
        if status["status"] != "ok":
            events.emit(Event.ERROR, error=status["error"])
        events.emit(Event.CONTAINER_END, status=status["status"])
        write_json_atomic(out_dir / "status.json", status)
        events.close()
        transcripts.close()
    if status["error"]:
        print(f"edgeasr entrypoint: {status['error']}", file=sys.stderr)
    return exit_code


def exit_now(code: int) -> None:
    """End the process with ``code`` once main() has written and closed everything (events, transcripts,
    status.json), skipping the interpreter's teardown: freeing a loaded model, joining its library's thread pools,
    atexit handlers. That teardown measures nothing and came after container_end, a fraction of a second to
    seconds that each container of a sweep was waited through (issue 26 item 2)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or broken stream: nothing more can be said through it
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
