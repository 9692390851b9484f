"""Stream mode in the container (issue 23): the paced scheduler, the LocalAgreement-2 commit policy, and the
entrypoint's dispatch of a stream job.

Time is a FAKE here (tests/fake_clock.py's ManualClock: it moves only when the scheduler sleeps or a scripted
session says its work took so long), so every delivery time, lag and latency asserted is exact. The sessions and
models are scripted stand-ins that drive the scheduler; the real pocketsphinx and faster-whisper streams run in
tests/e2e/test_stream_e2e.py.
"""

import hashlib
import json
import sys
import types

import numpy as np
import pytest
from fake_clock import ManualClock
from helpers import Recorder, WordSession, write_tone

from edgeasr_entrypoint import __main__ as entry
from edgeasr_entrypoint import events as events_module
from edgeasr_entrypoint import stream
from edgeasr_entrypoint.commit import LocalAgreement2, agreed_prefix
from edgeasr_entrypoint.contract import (CONTRACT_VERSION, STREAM_EVENTS, Event, EventRecord, StreamJob,
                                         TranscriptRecord)
from edgeasr_entrypoint.events import EventLog

SR = 16000
MS = 1000000  # ns


def _utts(*seconds):
    return [("u{}".format(i), np.full(int(s * SR), 0.01 * (i + 1), dtype=np.float32)) for i, s in enumerate(seconds)]


def _run(utts, clock=None, **settings):
    clock = clock or ManualClock()
    rec = Recorder(clock)
    sessions = []

    def opener():
        sessions.append(WordSession())
        return sessions[-1]

    results = stream.run_streams(utts, StreamJob(**settings), opener, rec, "c1", clock)
    return clock, rec, results, sessions


# -- pacing ---------------------------------------------------------------------------------------------


def test_plan_loops_whole_utterances_to_fill_sustain_and_records_it():
    utts = _utts(1.0, 0.6)
    plan = stream.plan_stream(0, utts, StreamJob(chunk_ms=500, gap_ms=500, sustain_s=5.0), t0_ns=0)
    # u0 0-1.0, gap, u1 1.5-2.1, gap, u0 2.6-3.6, gap, u1 4.1-4.7 (< 5 s), gap, u0 5.2-6.2 (>= 5 s: stop)
    assert [(p.uid, p.play, p.start_sample / SR) for p in plan.plays] == [
        ("u0", 0, 0.0), ("u1", 0, 1.5), ("u0", 1, 2.6), ("u1", 1, 4.1), ("u0", 2, 5.2)]
    assert plan.total_samples == int(6.2 * SR) and plan.passes == 3 and plan.looped
    assert len(plan.chunks) == 13  # 6.2 s in 0.5 s chunks, the last one 0.2 s
    assert [c.delivered_ns for c in plan.chunks] == [(j + 1) * 500 * MS for j in range(12)] + [6200 * MS]
    # the chunk holding u0's last sample (1.0 s) is chunk 1; chunk 2 (1.0-1.5 s) is silence only
    assert plan.chunks[1].pieces[-1].last and plan.chunks[2].pieces == ()
    # chunk 4 (2.0-2.5 s) holds u1's end (2.1 s) and nothing else; chunk 5 holds u0's start (2.6 s)
    assert [(p.play_index, p.start, p.end, p.first, p.last) for p in plan.chunks[4].pieces] == [(1, 8000, 9600, False,
                                                                                                 True)]
    assert [(p.play_index, p.first) for p in plan.chunks[5].pieces] == [(2, True)]


def test_one_pass_at_least_even_when_sustain_is_short():
    plan = stream.plan_stream(0, _utts(1.0, 1.0, 1.0), StreamJob(sustain_s=0.5), t0_ns=0)
    assert [p.uid for p in plan.plays] == ["u0", "u1", "u2"] and plan.passes == 1 and not plan.looped


def test_chunks_are_delivered_at_real_time_pace_and_a_fast_backend_waits_for_them():
    clock, rec, _, _ = _run(_utts(1.0, 0.6), chunk_ms=500, gap_ms=500, sustain_s=5.0)
    t0 = 1_000_000_000_000  # ManualClock's start
    chunks = rec.named(Event.CHUNK)
    assert [c["delivered_ns"] - t0 for c in chunks] == [(j + 1) * 500 * MS for j in range(12)] + [6200 * MS]
    # an instant backend starts each chunk the moment it exists: no lag, and the worker slept to each delivery
    assert all(c["start_ns"] == c["delivered_ns"] == c["mono_ns"] for c in chunks)
    assert clock.slept_s == pytest.approx([0.5] * 12 + [0.2])
    assert [c["seq"] for c in chunks] == list(range(13))
    assert [(c["audio_start_s"], c["audio_end_s"]) for c in chunks[:2]] == [(0.0, 0.5), (0.5, 1.0)]
    assert "id" not in chunks[2] and chunks[1]["id"] == "u0" and chunks[5]["play"] == 1
    (end,) = rec.named(Event.STREAM_END)
    assert end["n_chunks"] == 13 and end["audio_s"] == pytest.approx(6.2) and end["passes"] == 3 and end["looped"]


def test_concurrent_streams_are_staggered_and_start_at_different_utterances():
    clock, rec, results, sessions = _run(_utts(1.0, 1.0, 1.0, 1.0), chunk_ms=500, gap_ms=0, concurrency=3,
                                         sustain_s=1.0)
    t0 = 1_000_000_000_000
    starts = rec.named(Event.STREAM_START)
    assert [(s["stream"], s["offset_ns"], s["first_index"]) for s in starts] == [
        (0, 0, 0), (1, 166666666, 1), (2, 333333333, 2)]
    assert all(s["concurrency"] == 3 and s["batching"] == stream.BATCHING and s["policy"] == "native"
               for s in starts)
    assert [r.uid for r in results[1]] == ["u1", "u2", "u3", "u0"]
    chunks = rec.named(Event.CHUNK)
    # one worker, in delivery order: the streams' chunks interleave, each stream's own at its offset
    assert [c["stream"] for c in chunks[:6]] == [0, 1, 2, 0, 1, 2]
    assert [c["delivered_ns"] - t0 for c in chunks[:3]] == [500 * MS, 666666666, 833333333]
    assert [c["delivered_ns"] for c in chunks] == sorted(c["delivered_ns"] for c in chunks)
    assert len(sessions) == 3 and all(s.closed for s in sessions)  # one session a stream, closed at the end
    assert len(rec.named(Event.STREAM_END)) == 3


def test_a_backend_slower_than_real_time_falls_behind_and_the_lag_grows_chunk_by_chunk():
    clock = ManualClock()
    rec = Recorder(clock)
    # every chunk of 0.5 s takes 0.75 s to decode: the worker can never keep up
    results = stream.run_streams(_utts(2.0, 2.0), StreamJob(chunk_ms=500, gap_ms=0, sustain_s=4.0),
                                 lambda: WordSession(clock, cost_s=0.75), rec, None, clock)
    chunks = rec.named(Event.CHUNK)
    lags = [c["start_ns"] - c["delivered_ns"] for c in chunks]
    assert lags == [j * 250 * MS for j in range(8)]  # 0.25 s more behind with every chunk, never hidden
    assert all(c["mono_ns"] - c["start_ns"] == 750 * MS for c in chunks)
    assert clock.slept_s == [0.5]  # it waited for the first chunk only; after that it worked the backlog
    finals = rec.named(Event.FINAL)
    latencies = [f["mono_ns"] - f["last_delivered_ns"] for f in finals]
    assert latencies == [(3 * 250 + 750) * MS, (7 * 250 + 750) * MS] and latencies[1] > latencies[0]
    assert [r.processing_ns for r in results[0]] == [4 * 750 * MS] * 2


def test_oracle_endpoint_gives_the_final_after_the_chunk_holding_the_last_sample():
    clock, rec, results, _ = _run(_utts(1.2, 0.4), chunk_ms=500, gap_ms=300, sustain_s=0.1)
    t0 = 1_000_000_000_000
    finals = rec.named(Event.FINAL)
    # u0 0-1.2 s: chunks 0,1,2 (its end in chunk 2); u1 1.5-1.9 s: chunks 3 (1.5 s) and... 1.5-2.0 is chunk 3
    assert [(f["id"], f["text"]) for f in finals] == [("u0", "w8000 w8000 w3200"), ("u1", "w6400")]
    assert finals[0]["first_delivered_ns"] - t0 == 500 * MS and finals[0]["last_delivered_ns"] - t0 == 1500 * MS
    assert (finals[0]["audio_start_s"], finals[0]["audio_end_s"]) == (0.0, 1.2)
    assert (finals[1]["audio_start_s"], finals[1]["audio_end_s"]) == (1.5, 1.9)
    assert finals[1]["last_delivered_ns"] - t0 == 1900 * MS  # the stream's last, shorter chunk
    partials = rec.named(Event.PARTIAL, id="u0")
    assert [(p["text"], p["audio_end_s"]) for p in partials] == [("w8000", 0.5), ("w8000 w8000", 1.0),
                                                                ("w8000 w8000 w3200", 1.2)]
    assert all("committed" not in p for p in partials)  # a native decoder commits nothing of its own
    # the events come in the order they happened: partials and the final before their chunk's done event
    names = [e["event"] for e in rec.events]
    assert names.index(Event.FINAL) < [i for i, e in enumerate(rec.events) if e["event"] == Event.CHUNK][2]
    assert all(a["mono_ns"] <= b["mono_ns"] for a, b in zip(rec.events, rec.events[1:]))
    assert [r.text for r in results[0]] == ["w8000 w8000 w3200", "w6400"]


def test_unchanged_partials_are_not_repeated_and_a_failing_utterance_does_not_stop_the_stream():
    clock = ManualClock()
    rec = Recorder(clock)

    class Flaky(WordSession):
        def accept(self, chunk):
            if float(chunk[0]) == pytest.approx(0.02):  # u1's audio
                raise RuntimeError("decoder lost its state")
            return "same" if len(self.words) else super().accept(chunk)

    results = stream.run_streams(_utts(1.0, 1.0, 1.0), StreamJob(chunk_ms=500, gap_ms=0, sustain_s=0.1),
                                 Flaky, rec, "c", clock)
    assert [p["text"] for p in rec.named(Event.PARTIAL, id="u0")] == ["w8000", "same"]
    (error,) = rec.named(Event.UTTERANCE_ERROR)
    assert error["id"] == "u1" and error["stream"] == 0 and error["error"] == "RuntimeError: decoder lost its state"
    assert [f["id"] for f in rec.named(Event.FINAL)] == ["u0", "u2"]
    assert [r.error for r in results[0]] == [None, "RuntimeError: decoder lost its state", None]
    assert len(rec.named(Event.CHUNK)) == 6


def test_every_stream_event_is_a_valid_contract_record(tmp_path):
    clock = ManualClock()
    log = EventLog(tmp_path / "events.jsonl")
    stream.run_streams(_utts(1.0, 0.7), StreamJob(chunk_ms=300, gap_ms=200, concurrency=2, sustain_s=3.0),
                       lambda: LocalAgreement2(lambda audio: " ".join(["a"] * (len(audio) // 4000))), log.emit, "c1",
                       clock)
    log.close()
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert {r["event"] for r in records} == set(STREAM_EVENTS)
    for r in records:
        assert EventRecord.from_json(r).to_json() == r
        assert r["condition"] == "c1" and r["stream"] in (0, 1)
    partials = [r for r in records if r["event"] == Event.PARTIAL]
    assert partials and all(isinstance(p["committed"], str) for p in partials)


# -- LocalAgreement-2 -------------------------------------------------------------------------------------


def test_agreed_prefix_counts_leading_equal_words():
    assert agreed_prefix(["a", "b", "c"], ["a", "b", "d"]) == 2
    assert agreed_prefix([], ["a"]) == 0 and agreed_prefix(["a"], ["a", "b"]) == 1
    assert agreed_prefix(["The"], ["the"]) == 0  # exact words, as whisper_streaming compares them


class Scripted:
    """A model's transcribe that answers with recorded hypotheses in turn, keeping the buffer lengths it saw."""

    def __init__(self, *hypotheses):
        self.hypotheses = list(hypotheses)
        self.seen = []

    def __call__(self, audio):
        self.seen.append(len(audio))
        return self.hypotheses.pop(0)


def test_local_agreement_2_commits_what_the_last_two_hypotheses_agree_on():
    model = Scripted(" The", " The birch", " The burch canoe", " The birch canoe slid", " The birch canoe slid on",
                     " The birch canoe slid on the smooth planks.")
    la = LocalAgreement2(model)
    chunk = np.zeros(8000, dtype=np.float32)
    steps = [(la.accept(chunk), la.committed) for _ in range(5)]
    assert steps == [
        ("The", ""),  # one hypothesis: nothing agrees yet
        ("The birch", "The"),  # "The" seen twice
        ("The burch canoe", "The"),  # birch/burch disagree: only the tentative words change
        ("The birch canoe slid", "The"),  # burch/birch again
        ("The birch canoe slid on", "The birch canoe slid"),  # four words agree now
    ]
    assert model.seen == [8000, 16000, 24000, 32000, 40000]  # the whole growing buffer each time
    la.accept(chunk)
    assert la.committed == "The birch canoe slid on"
    assert la.finish() == "The birch canoe slid on the smooth planks."  # newest hypothesis of the same buffer
    assert model.hypotheses == [] and len(model.seen) == 6  # finish() did not decode the same audio again


def test_committed_words_stay_when_a_later_hypothesis_changes_them():
    model = Scripted("glue the sheet", "glue the sheet to", "blue the sheet to the", "glue the sheet to the dark")
    la = LocalAgreement2(model)
    chunk = np.zeros(1600, dtype=np.float32)
    shown = [la.accept(chunk) for _ in range(4)]
    assert la.committed == "glue the sheet"  # from the first two; the later ones disagree at their first word
    assert shown[2] == "glue the sheet to the"  # committed words shown as committed, then the tentative ones
    assert la.finish() == "glue the sheet to the dark"
    assert model.seen == [1600, 3200, 4800, 6400]
    # the session starts the next utterance afresh: an empty buffer, nothing committed
    assert la.committed == ""
    again = Scripted("a", "b")
    la = LocalAgreement2(again)
    la.accept(chunk)
    assert la.finish() == "a" and la.accept(chunk) == "b" and again.seen == [1600, 1600]


def test_the_final_keeps_commits_even_where_the_whole_buffer_reads_differently():
    la = LocalAgreement2(Scripted("a b", "a b c", "x y z w"))
    chunk = np.zeros(10, dtype=np.float32)
    assert la.accept(chunk) == "a b" and la.accept(chunk) == "a b c" and la.committed == "a b"
    assert la.accept(chunk) == "a b z w"
    assert la.finish() == "a b z w"  # committed words are never taken back: the cost shows in the final's WER


def test_finish_without_audio_is_empty():
    model = Scripted()
    assert LocalAgreement2(model).finish() == "" and model.seen == []


# -- the entrypoint: a stream job end to end, in process ----------------------------------------------------


def _digest(audio):
    return hashlib.sha256(np.asarray(audio, dtype=np.float32).tobytes()).hexdigest()[:12]


class HashModel:
    """Scripted backend: its transcript names the audio's samples exactly (so the stream's offline hypothesis can
    be compared with the offline path's own under noise); ``open_stream`` only where the test gives it one."""

    def __init__(self, job):
        self.job = job

    def transcribe(self, audio):
        return "{} {}".format(len(audio), _digest(audio))

    def info(self):
        return {"n_params": 1, "versions": {"scripted": "1"}}


@pytest.fixture
def adapter(monkeypatch):
    mod = types.ModuleType("stream_test_adapter")
    mod.load = HashModel
    monkeypatch.setitem(sys.modules, "stream_test_adapter", mod)
    monkeypatch.setenv("EDGEASR_ADAPTER", "stream_test_adapter")
    monkeypatch.delenv("EDGEASR_OUT", raising=False)
    return mod


@pytest.fixture
def clock(monkeypatch):
    """The whole run on one fake clock: the scheduler's and the event log's."""
    clock = ManualClock()
    monkeypatch.setattr(stream, "SYSTEM_CLOCK", clock)
    monkeypatch.setattr(events_module, "time", clock)
    return clock


def _job(tmp_path, utts, **kw):
    job = {"contract_version": CONTRACT_VERSION, "backend": "scripted", "model": str(tmp_path), "quant": "fp32",
           "backend_quant": "float32", "device": "cpu", "decode": {"beam_size": 1}, "warmup": 0, "utterances": utts}
    job.update(kw)
    path = tmp_path / "out" / "job.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(job))
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _files(tmp_path):
    write_tone(tmp_path / "a.wav", seconds=1.0)
    write_tone(tmp_path / "b.wav", seconds=0.75)
    return [{"id": "a", "audio": str(tmp_path / "a.wav")}, {"id": "missing", "audio": str(tmp_path / "no.wav")},
            {"id": "b", "audio": str(tmp_path / "b.wav")}]


WHITE = {"key": "white10", "noise": {"type": "white", "snr_db": 10.0}, "seed_key": "white"}


def test_a_stream_job_with_local_agreement_writes_stream_events_and_one_transcript_per_utterance(
        tmp_path, adapter, clock):
    job = _job(tmp_path, _files(tmp_path), conditions=[WHITE], stream={
        "chunk_ms": 250, "gap_ms": 250, "policy": "local-agreement-2", "sustain_s": 4.0})
    assert entry.main(["x", str(job)]) == 0
    out = job.parent
    events = _read(out / "events.jsonl")
    assert all(EventRecord.from_json(e).to_json() == e for e in events)
    assert all(a["mono_ns"] <= b["mono_ns"] for a, b in zip(events, events[1:]))
    names = [e["event"] for e in events]
    assert Event.UTTERANCE_START not in names and Event.UTTERANCE_END not in names
    inner = names[names.index(Event.CONDITION_START) + 1:names.index(Event.CONDITION_END)]
    assert inner[:4] == [Event.PREPARE_START, Event.UTTERANCE_ERROR, Event.PREPARE_END, Event.STREAM_START]
    assert inner[-3:] == [Event.STREAM_END, Event.PREPARE_START, Event.PREPARE_END]  # the untimed offline texts
    end = [e for e in events if e["event"] == Event.STREAM_END][0]
    assert end["looped"] and end["passes"] == 2 and end["audio_s"] == pytest.approx(4.25)  # a, b, a, b: >= 4 s
    transcripts = _read(out / "transcripts.jsonl")
    assert all(TranscriptRecord.from_json(t).to_json() == t for t in transcripts)
    by_id = {t["id"]: t for t in transcripts}
    assert sorted(by_id) == ["a", "b", "missing"] and len(transcripts) == 3  # one per utterance, not per play
    assert by_id["missing"]["status"] == "error" and "not found" in by_id["missing"]["error"]
    assert by_id["a"]["status"] == "ok" and by_id["a"]["duration_s"] == 1.0 and by_id["a"]["condition"] == "white10"
    # the final is local agreement's over the growing buffer; the whole buffer's hypothesis is the offline one
    assert by_id["a"]["hypothesis"].split()[0] == "16000" and by_id["a"]["offline_hypothesis"].startswith("16000 ")
    assert by_id["b"]["processing_s"] == 0.0  # scripted work takes no time on the fake clock
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "ok" and status["n_ok"] == 2 and status["n_failed"] == 1
    # the noise is the offline path's own: same samples, so the same text, as an offline run of the condition
    offline_job = _job(tmp_path / "off", _files(tmp_path), conditions=[WHITE])
    assert entry.main(["x", str(offline_job)]) == 0
    offline = {t["id"]: t["hypothesis"] for t in _read(offline_job.parent / "transcripts.jsonl")}
    assert by_id["a"]["offline_hypothesis"] == offline["a"] and by_id["b"]["offline_hypothesis"] == offline["b"]


def test_native_policy_uses_the_adapters_incremental_decoder(tmp_path, adapter, clock):
    opened = []

    def open_stream(self):
        opened.append(WordSession())
        return opened[-1]

    model_class = type("NativeModel", (HashModel,), {"open_stream": open_stream})
    adapter.load = model_class
    job = _job(tmp_path, _files(tmp_path), stream={"chunk_ms": 500, "gap_ms": 0, "concurrency": 2,
                                                    "sustain_s": 1.0, "offline": False})
    assert entry.main(["x", str(job)]) == 0
    transcripts = {t["id"]: t for t in _read(job.parent / "transcripts.jsonl")}
    assert transcripts["a"]["hypothesis"] == "w8000 w8000" and transcripts["b"]["hypothesis"] == "w8000 w4000"
    assert "offline_hypothesis" not in transcripts["a"]
    assert len(opened) == 2
    events = _read(job.parent / "events.jsonl")
    assert {e["stream"] for e in events if e["event"] == Event.STREAM_START} == {0, 1}
    assert all(e.get("condition") is None for e in events if e["event"] in STREAM_EVENTS)


def test_native_policy_on_a_backend_without_an_incremental_decoder_is_refused_per_utterance(
        tmp_path, adapter, clock):
    job = _job(tmp_path, _files(tmp_path), stream={"policy": "native"})
    assert entry.main(["x", str(job)]) == 0
    transcripts = _read(job.parent / "transcripts.jsonl")
    assert [t["status"] for t in transcripts] == ["error"] * 3
    assert all(t["error"] == stream.NATIVE_MISSING for t in transcripts)
    names = [e["event"] for e in _read(job.parent / "events.jsonl")]
    assert not set(STREAM_EVENTS) & set(names) and names.count(Event.UTTERANCE_ERROR) == 3
    assert json.loads((job.parent / "status.json").read_text())["n_failed"] == 3


# -- transformers CTC: chunk by chunk with left context (the adapter's CtcStream, without torch) ----------


def _transformers_adapter():
    import importlib.util

    from helpers import ROOT

    path = ROOT / "containers" / "transformers" / "edgeasr_backend_transformers.py"
    spec = importlib.util.spec_from_file_location("adapter_transformers_stream_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LocalCtc:
    """A scripted CTC model with wav2vec2's frame geometry (400-sample frames every 320 samples): a frame's token is
    made from its own samples only, so a stream that lines its windows up right gives the whole utterance's frames
    exactly. Token 0 is the blank; decode is the CTC collapse."""

    STRIDE, FRAME = 320, 400

    def __init__(self):
        self.windows = []

    def n_frames(self, samples):
        return (samples - self.FRAME) // self.STRIDE + 1 if samples >= self.FRAME else 0

    def frame_ids(self, audio):
        self.windows.append(len(audio))
        return np.array([int(audio[i * self.STRIDE:i * self.STRIDE + self.FRAME].sum()) % 4
                         for i in range(self.n_frames(len(audio)))])

    @staticmethod
    def decode(ids):
        out, last = [], None
        for i in ids:
            if i != last and i != 0:
                out.append("abc"[i - 1])
            last = i
        return "".join(out)


def test_a_ctc_stream_decodes_chunk_by_chunk_with_left_context_and_lines_its_frames_up():
    adapter = _transformers_adapter()
    rng = np.random.default_rng(7)
    audio = rng.integers(0, 4, size=3 * SR + 123).astype(np.float32)
    model = LocalCtc()
    whole = model.decode(model.frame_ids(audio))
    model.windows.clear()
    s = adapter.CtcStream(model.frame_ids, model.n_frames, LocalCtc.STRIDE, model.decode, left_samples=SR)
    partials = [s.accept(audio[a:a + 8000]) for a in range(0, len(audio), 8000)]
    assert s.finish() == whole  # every frame decoded once, at the place it has in the whole utterance
    assert partials[0] and whole.startswith(partials[0])
    # each window is the new chunk plus at most one second (rounded down to whole frames) and one frame's overlap
    assert max(model.windows) <= 8000 + SR + LocalCtc.FRAME
    assert len(model.windows) == len(partials) and model.windows[0] == 8000
    assert s.finish() == "" and s.accept(audio[:100]) is None  # reset; too little audio for a frame: no partial


def test_a_whisper_model_has_no_native_stream():
    adapter = _transformers_adapter()
    m = object.__new__(adapter.TransformersModel)
    m.kind = "whisper"
    with pytest.raises(NotImplementedError, match="local-agreement-2"):
        m.open_stream()


# -- pocketsphinx's native stream (the adapter's session over a scripted Decoder; the real one runs in e2e) -------


class FakeDecoder:
    """Records the calls a pocketsphinx Decoder gets; its hypothesis is the number of samples heard so far."""

    def __init__(self, cmn="40,3,-1"):
        self.calls, self.cmn, self.heard, self.in_utt = [], cmn, 0, False

    def start_utt(self):
        self.calls.append("start_utt")
        self.in_utt, self.heard = True, 0

    def process_raw(self, data, full_utt=False):
        self.calls.append(("process_raw", len(data) // 2, full_utt))
        self.heard += len(data) // 2

    def hyp(self):
        return types.SimpleNamespace(hypstr=" n{} ".format(self.heard // 8000)) if self.heard else None

    def end_utt(self):
        self.calls.append("end_utt")
        self.in_utt = False

    def get_cmn(self):
        return self.cmn

    def set_cmn(self, cmn):
        self.cmn = cmn


def _pocketsphinx_model():
    import importlib.util

    from helpers import ROOT

    path = ROOT / "containers" / "pocketsphinx" / "edgeasr_backend_pocketsphinx.py"
    spec = importlib.util.spec_from_file_location("adapter_pocketsphinx_stream_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = object.__new__(module.PocketsphinxModel)
    model._decoder = FakeDecoder(cmn="46.3,2.7,7.9")  # the loaded decoder, its running mean after the warm-up
    model._free_decoders = []
    built = []

    def new_decoder():
        built.append(FakeDecoder())
        return built[-1]

    model._new_decoder = new_decoder
    return model, built


def test_pocketsphinx_stream_decodes_live_and_starts_from_the_running_mean():
    model, built = _pocketsphinx_model()
    s = model.open_stream()
    (decoder,) = built
    assert decoder.cmn == "46.3,2.7,7.9"  # not the model's cold default
    half = np.zeros(4000, dtype=np.float32)
    assert [s.accept(half) for _ in range(4)] == ["n0", "n1", None, "n2"]  # a partial only when it changed
    assert s.finish() == "n2"
    assert decoder.calls[:2] == ["start_utt", ("process_raw", 4000, False)] and decoder.calls[-1] == "end_utt"
    assert s.accept(half) == "n0" and decoder.calls[-2] == "start_utt"  # the next utterance starts afresh
    s.close()
    assert not decoder.in_utt and model._free_decoders == [decoder]  # an open utterance ended, decoder kept
    again = model.open_stream()
    assert len(built) == 1 and again.finish() == ""  # reused, not rebuilt; nothing heard: empty final
