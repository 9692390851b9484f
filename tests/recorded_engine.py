"""A RECORDED engine for tests: the container recorded in tests/fixtures/group_raw, replayed for any job.

Not a backend and not Docker: an ``Engine`` (runner/launch/engines.py) that answers a job the way the recorded
faster-whisper container did, so plan -> execute -> merge -> tables -> resume run whole, in a unit test, in
milliseconds. The container-wide events (start, load, model info, warm-up, end) and the final record
(status.json) are the recording's; each condition of the job gets the recording's condition block (prepare,
then each utterance's start and end, the condition's memory peaks) re-keyed to the job's condition key and
utterance ids, each utterance as long as its audio file, and one transcript per utterance (``hypothesis(key,
id)``; by default the tone datasets' reference, "<id> tone"). Raw files are written as a container writes
them, each event before it is streamed, so that the executor reads a condition's files when it ends.

``launches`` says what each launch ran (group key, condition keys); ``on_launch(group key)`` is called as each
launch begins, and an exception it returns is raised there, as a broken engine or container does;
``interrupt_after`` stops the engine with SIGTERM once that many conditions have ended, as Ctrl-C does
mid-group, and ``interrupt_at_end`` once that many containers have said container_end.

A held start (contract 5) is the engine's ``start``: the container is started ahead and held before its load
(it returns the held container: its ``go()``, ``finish(on_event)``, ``discard()``), as DockerEngine.start does;
its job carries ``hold_s``, and the replay then has hold_start/hold_end after container_start. ``steps`` writes
down, in order, ("start", group), ("go", group), ("container_end", group), ("discard", group) and ("run", group)
(a launch not started ahead); ``job_of[group]`` is each launch's job; ``on_go(group)`` is called as a held
container is told to go (a test looks at the disk then); ``on_start(group)`` likewise as one is started, an
exception it returns raised there. ``held_starts=False``: an engine without ``start`` (the sweep then starts every container when its turn comes).

A stream job (``job.stream``, contract 4) has no recording yet: each condition then gets a SYNTHETIC timeline
of the stream events (containers/common/edgeasr_entrypoint/contract.py, STREAM_EVENTS) on a virtual clock: its
streams play the condition's utterances back to back with the job's gap, in chunks delivered at real-time pace,
served in delivery order by one worker that takes ``chunk_processing_s`` a chunk (so a worker slower than the
chunk falls behind and the lag grows); a partial after each chunk of an utterance (its first words), its final
after its last chunk, and one transcript per utterance from stream 0's first play (with ``offline_hypothesis``).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import soundfile as sf
from edgeasr_entrypoint.contract import Event

from runner.errors import Interrupted
from runner.launch.docker_engine import ContainerRun

RECORDING = Path(__file__).resolve().parent / "fixtures" / "group_raw"
_EPOCH_NS = 1_700_000_000_000_000_000


def _recorded() -> tuple[list[dict], list[dict], dict]:
    events = [json.loads(line) for line in (RECORDING / "events.jsonl").read_text().splitlines()]
    status = json.loads((RECORDING / "status.json").read_text())
    key = next(e["condition"] for e in events if e["event"] == Event.CONDITION_START)
    block = [e for e in events if e.get("condition") == key]
    return [e for e in events if "condition" not in e], block, status


class RecordedEngine:
    """The recorded container as an engine (see the module doc). ``name`` is ``local``: jobs name host paths."""

    name = "local"
    host_paths = True

    def __init__(self, hypothesis: Callable[[str, str], str] | None = None,
                 on_launch: Callable[[str], Exception | None] | None = None,
                 interrupt_after: int | None = None, processing_s: float = 0.25,
                 chunk_processing_s: float = 0.05, offline_hypothesis: Callable[[str, str], str] | None = None,
                 interrupt_at_end: int | None = None, held_starts: bool = True,
                 on_go: Callable[[str], None] | None = None,
                 on_start: Callable[[str], Exception | None] | None = None) -> None:
        self.hypothesis = hypothesis or (lambda key, uid: f"{uid} tone")
        self.offline_hypothesis = offline_hypothesis or self.hypothesis
        self.chunk_processing_s = chunk_processing_s
        self.on_launch = on_launch or (lambda group: None)
        self.interrupt_after = interrupt_after
        self.processing_s = processing_s
        self.launches: list[tuple[str, list[str]]] = []
        self.conditions_ended = 0
        self.interrupt_at_end = interrupt_at_end
        self.containers_ended = 0
        self.steps: list[tuple[str, str]] = []
        self.job_of: dict[str, dict[str, Any]] = {}
        self.on_go = on_go or (lambda group: None)
        self.on_start = on_start or (lambda group: None)
        if not held_starts:
            self.start = None  # type: ignore[assignment]  (an engine without held starts)
        self._wide, self._block, self._status = _recorded()

    # -- the Engine interface ------------------------------------------------------------------------------

    def image(self, spec) -> None:
        return None

    def version(self) -> str | None:
        return None

    def reap(self, folders: tuple[str, ...]) -> list[str]:
        return []

    def run(self, spec, job: dict[str, Any], mounts, env, on_event, launch) -> ContainerRun:
        self.steps.append(("run", Path(spec.out).name))
        return self._replay(spec, job, on_event, launch)

    def start(self, spec, job: dict[str, Any], mounts, env, launch) -> "_Held":
        group = Path(spec.out).name
        self.steps.append(("start", group))
        problem = self.on_start(group)
        if problem is not None:
            raise problem
        return _Held(self, spec, job, launch)

    def _replay(self, spec, job: dict[str, Any], on_event, launch) -> ContainerRun:
        group = Path(spec.out).name  # the planner's group folder: groups/<group key>
        self.job_of[group] = job
        self.launches.append((group, [c["key"] for c in job["conditions"]]))
        problem = self.on_launch(group)
        if problem is not None:
            raise problem
        raw = Path(launch.raw_dir)
        (raw / "job.json").write_text(json.dumps(job))
        (raw / "container.log").write_text("recorded\n")
        audio = {u["id"]: u["audio"] for u in job["utterances"]}
        clock = {"mono_ns": 0}

        def emit(event: dict[str, Any], advance_s: float = 0.0, at_ns: int | None = None) -> None:
            clock["mono_ns"] = max(clock["mono_ns"], at_ns) if at_ns is not None else \
                clock["mono_ns"] + int(advance_s * 1e9)
            line = {**event, "t_ns": _EPOCH_NS + clock["mono_ns"], "mono_ns": clock["mono_ns"]}
            with open(raw / "events.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(line) + "\n")
            on_event(line)

        wide = {e["event"]: e for e in self._wide}
        for name in (Event.CONTAINER_START, Event.LOAD_START, Event.LOAD_END, Event.MODEL_INFO,
                     Event.WARMUP_START, Event.WARMUP_END):
            emit({k: v for k, v in wide[name].items() if k not in ("t_ns", "mono_ns")}, 0.1)
            if name == Event.CONTAINER_START and job.get("hold_s"):
                emit({"event": Event.HOLD_START, "seconds": job["hold_s"]}, 0.01)
                emit({"event": Event.HOLD_END, "go": True}, 0.01)
        n_utts = sum(len(c["ids"]) for c in job["conditions"])
        emit({"event": Event.INFERENCE_START, "n": n_utts, "n_conditions": len(job["conditions"])}, 0.1)
        for cond in job["conditions"]:
            if job.get("stream"):
                self._stream_condition(cond, job["stream"], audio, emit, raw, clock)
            else:
                self._condition(cond, audio, emit, raw)
        emit({"event": Event.INFERENCE_END, "n_ok": n_utts, "n_failed": 0}, 0.01)
        status = {**self._status, "n_ok": n_utts, "n_failed": 0}
        (raw / "status.json").write_text(json.dumps(status))
        self.steps.append(("container_end", group))
        emit({"event": Event.CONTAINER_END, "status": "ok"}, 0.05)
        self.containers_ended += 1
        if self.interrupt_at_end is not None and self.containers_ended >= self.interrupt_at_end:
            raise Interrupted("SIGTERM")
        return ContainerRun(0, False, False, raw / "container.log", 0.1, clock["mono_ns"] / 1e9, 0, 0)

    # -- one condition: the recorded block, re-keyed ----------------------------------------------------------

    def _condition(self, cond: dict[str, Any], audio: dict[str, str], emit, raw: Path) -> None:
        key = cond["key"]
        end = next(e for e in self._block if e["event"] == Event.CONDITION_END)
        emit({"event": Event.CONDITION_START, "condition": key, "noise": cond["noise"],
              **({"decode": cond["decode"]} if cond.get("decode") else {})}, 0.01)
        emit({"event": Event.PREPARE_START, "condition": key}, 0.01)
        emit({"event": Event.PREPARE_END, "condition": key}, 0.01)
        for uid in cond["ids"]:
            duration_s = sf.info(audio[uid]).duration
            emit({"event": Event.UTTERANCE_START, "id": uid, "condition": key, "duration_s": duration_s})
            with open(raw / "transcripts.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"id": uid, "condition": key, "status": "ok", "error": None,
                                     "hypothesis": self.hypothesis(key, uid), "duration_s": duration_s,
                                     "processing_s": self.processing_s}) + "\n")
            emit({"event": Event.UTTERANCE_END, "id": uid, "condition": key, "processing_s": self.processing_s,
                  "duration_s": duration_s}, self.processing_s)
        emit({**{k: v for k, v in end.items() if k not in ("t_ns", "mono_ns")}, "condition": key,
              "n_ok": len(cond["ids"]), "n_failed": 0})
        self.conditions_ended += 1
        if self.interrupt_after is not None and self.conditions_ended >= self.interrupt_after:
            raise Interrupted("SIGTERM")


    # -- one condition in stream mode: a synthetic timeline (see the module doc) -------------------------------

    def _stream_condition(self, cond: dict[str, Any], stream: dict[str, Any], audio: dict[str, str], emit,
                          raw: Path, clock: dict[str, int]) -> None:
        key, ids = cond["key"], list(cond["ids"])
        chunk_ns, gap_ns = stream["chunk_ms"] * 1_000_000, stream["gap_ms"] * 1_000_000
        n = stream["concurrency"]
        emit({"event": Event.CONDITION_START, "condition": key, "noise": cond["noise"]}, 0.01)
        emit({"event": Event.PREPARE_START, "condition": key}, 0.01)
        emit({"event": Event.PREPARE_END, "condition": key}, 0.01)
        durations = {uid: sf.info(audio[uid]).duration for uid in ids}
        t0 = clock["mono_ns"] + 1_000_000
        chunks = []  # (delivered_ns, stream, seq, utterance play or None, is its last chunk)
        ends = {}
        for k in range(n):
            offset = k * chunk_ns // n
            emit({"event": Event.STREAM_START, "condition": key, "stream": k, "chunk_ms": stream["chunk_ms"],
                  "gap_ms": stream["gap_ms"], "concurrency": n, "policy": stream["policy"],
                  "batching": "none: one model serves the streams' chunks in turn, in delivery order",
                  "offset_ns": offset, "first_index": k * len(ids) // n})
            spans, pos, i = [], 0, 0  # (id, play, start_ns, end_ns) on the stream's own timeline
            while i < len(ids) or pos < stream["sustain_s"] * 1e9:
                uid = ids[(k * len(ids) // n + i) % len(ids)]
                length = int(durations[uid] * 1e9)
                spans.append((uid, i // len(ids), pos, pos + length))
                pos += length + gap_ns
                i += 1
            n_chunks = math.ceil((pos - gap_ns) / chunk_ns)
            for seq in range(n_chunks):
                lo, hi = seq * chunk_ns, (seq + 1) * chunk_ns
                held = tuple(sp for sp in spans if sp[2] < hi and sp[3] > lo)
                chunks.append((t0 + offset + hi, k, seq, lo, hi, held))
            ends[k] = (n_chunks, (pos - gap_ns) / 1e9, spans[-1][1] + 1)
        free, texts, firsts, processing = 0, {}, {}, {}
        for delivered, k, seq, lo, hi, held in sorted(chunks):
            start = max(delivered, free)
            free = done = start + int(self.chunk_processing_s * 1e9)
            record = {"event": Event.CHUNK, "condition": key, "stream": k, "seq": seq, "audio_start_s": lo / 1e9,
                      "audio_end_s": hi / 1e9, "delivered_ns": delivered, "start_ns": start}
            if held:
                record.update(id=held[0][0], play=held[0][1])
            emit(record, at_ns=done)
            for uid, play, a, b in held:
                firsts.setdefault((k, uid, play), delivered)
                if (k, play) == (0, 0):
                    processing[uid] = processing.get(uid, 0.0) + self.chunk_processing_s / len(held)
                words = self.hypothesis(key, uid).split()
                shown = texts[(k, uid, play)] = texts.get((k, uid, play), 0) + 1
                span = {"condition": key, "stream": k, "id": uid, "play": play, "audio_start_s": a / 1e9,
                        "audio_end_s": b / 1e9}
                if b > hi:  # more of it to come: a partial of its first words
                    emit({"event": Event.PARTIAL, **span, "text": " ".join(words[:shown])}, at_ns=done)
                else:
                    emit({"event": Event.FINAL, **span, "text": " ".join(words),
                          "first_delivered_ns": firsts[(k, uid, play)], "last_delivered_ns": delivered},
                         at_ns=done + 1000)
        for k in range(n):
            n_chunks, audio_s, passes = ends[k]
            emit({"event": Event.STREAM_END, "condition": key, "stream": k, "n_chunks": n_chunks, "audio_s": audio_s,
                  "passes": passes, "looped": passes > 1})
        with open(raw / "transcripts.jsonl", "a", encoding="utf-8") as fh:
            for uid in ids:
                fh.write(json.dumps({"id": uid, "condition": key, "status": "ok", "error": None,
                                     "hypothesis": self.hypothesis(key, uid),
                                     "offline_hypothesis": self.offline_hypothesis(key, uid),
                                     "duration_s": durations[uid], "processing_s": processing.get(uid, 0.0)}) + "\n")
        emit({"event": Event.CONDITION_END, "condition": key, "n_ok": len(ids), "n_failed": 0}, 0.01)
        self.conditions_ended += 1
        if self.interrupt_after is not None and self.conditions_ended >= self.interrupt_after:
            raise Interrupted("SIGTERM")


class _Held:
    """A recorded container started ahead, held before its load (what DockerEngine.start returns)."""

    def __init__(self, engine: RecordedEngine, spec, job: dict[str, Any], launch) -> None:
        self.engine, self.spec, self.job, self.launch = engine, spec, job, launch
        self.group = Path(spec.out).name
        self.container_id = f"recorded-{self.group}"
        self.went = False

    def go(self) -> None:
        self.engine.steps.append(("go", self.group))
        self.engine.on_go(self.group)
        self.went = True

    def finish(self, on_event) -> ContainerRun:
        assert self.went, "a held container finished without its go"
        return self.engine._replay(self.spec, self.job, on_event, self.launch)

    def discard(self) -> None:
        self.engine.steps.append(("discard", self.group))


def copy_recording(raw_dir: Path) -> None:
    """The recording's raw files, as they are, into ``raw_dir`` (a container's output folder)."""
    for f in RECORDING.iterdir():
        shutil.copy(f, raw_dir / f.name)
