"""A long recording streamed whole (issue 23, item 2): an item with a segment map (runner/data/lengths.py) plays as
one recording on the stream's timeline, its speech segments giving the utterance boundaries: a FINAL at each
speech segment's end, partials and first partials per segment, and one transcript per item (its segments' finals
joined), scored as any item.

Time is a FAKE (tests/fake_clock.py's ManualClock), so each delivery time asserted is exact; the sessions are
scripted stand-ins (tests/helpers.py's WordSession: one word per chunk piece, "w<samples>").
"""

from dataclasses import replace

import numpy as np
import pytest
from fake_clock import ManualClock
from helpers import Recorder, WordSession, tone_spec

from edgeasr_entrypoint import stream
from edgeasr_entrypoint.contract import (FEATURES, DecodeOptions, Event, EventRecord, Job, JobError, StreamJob,
                                         UtteranceJob)
from runner.data.lengths import Segment
from runner.launch.job import make_job
from runner.settings import StreamSettings

SR = 16000
MS = 1000000
T0 = 1_000_000_000_000  # ManualClock's start

# a 3.0 s recording: silence 0-0.2, speech 0.2-1.1, noise 1.1-1.6, speech 1.6-2.9, silence 2.9-3.0
SPANS = ((int(0.2 * SR), int(1.1 * SR)), (int(1.6 * SR), int(2.9 * SR)))


def _run(items, **settings):
    clock = ManualClock()
    rec = Recorder(clock)
    results = stream.run_streams(items, StreamJob(**settings), WordSession, rec, "c1", clock)
    return rec, results


def test_an_item_with_segments_is_streamed_whole_with_a_final_at_each_speech_segment_end():
    long = np.full(3 * SR, 0.01, dtype=np.float32)
    short = np.full(SR, 0.02, dtype=np.float32)
    rec, results = _run([("long", long, SPANS), ("short", short)], chunk_ms=500, gap_ms=500, sustain_s=0.0)
    finals = rec.named(Event.FINAL)
    # segment 0 ends at 1.1 s: in chunk 2 (1.0-1.5 s), delivered at 1.5 s; segment 1 ends at 2.9 s: chunk 5
    # (2.5-3.0 s), delivered at 3.0 s; the short item starts after the whole recording and gap_ms (3.5 s), ends 4.5 s
    assert [(f["id"], f.get("segment"), f["first_delivered_ns"] - T0, f["last_delivered_ns"] - T0,
             f["mono_ns"] - T0) for f in finals] == [
        ("long", 0, 500 * MS, 1500 * MS, 1500 * MS), ("long", 1, 2000 * MS, 3000 * MS, 3000 * MS),
        ("short", None, 4000 * MS, 4500 * MS, 4500 * MS)]
    assert [(f["audio_start_s"], f["audio_end_s"]) for f in finals[:2]] == [(0.2, 1.1), (1.6, 2.9)]
    # each segment is decoded from exactly its own samples (the non-speech between is played, not fed)
    assert finals[0]["text"] == "w4800 w8000 w1600" and finals[1]["text"] == "w6400 w8000 w6400"
    # partials carry their segment: the first partial of segment 1 is at chunk 3 (1.5-2.0 s), delivered at 2.0 s
    seg1 = rec.named(Event.PARTIAL, id="long", segment=1)
    assert seg1[0]["mono_ns"] - T0 == 2000 * MS and seg1[0]["audio_end_s"] == 2.0
    assert all("segment" not in p for p in rec.named(Event.PARTIAL, id="short"))
    (end,) = rec.named(Event.STREAM_END)
    assert end["audio_s"] == pytest.approx(4.5) and end["passes"] == 1 and not end["looped"]
    assert [(r.uid, r.segment, r.text) for r in results[0]] == [
        ("long", 0, finals[0]["text"]), ("long", 1, finals[1]["text"]), ("short", None, finals[2]["text"])]
    for record in rec.events:  # every field is one the contract accepts
        assert EventRecord.from_json(record).to_json() == record


def test_looping_counts_items_not_segments():
    long = np.full(3 * SR, 0.01, dtype=np.float32)
    plan = stream.plan_stream(0, [("long", long, SPANS), ("short", np.zeros(SR, np.float32))],
                              StreamJob(chunk_ms=500, gap_ms=500, sustain_s=6.0), t0_ns=0)
    # long 0-3.0, short 3.5-4.5 (< 6 s), long 5.0-8.0: its segments at 5.2-6.1 and 6.6-7.9
    assert [(p.uid, p.play, p.segment, p.start_sample / SR) for p in plan.plays] == [
        ("long", 0, 0, 0.2), ("long", 0, 1, 1.6), ("short", 0, None, 3.5), ("long", 1, 0, 5.2),
        ("long", 1, 1, 6.6)]
    assert plan.total_samples == 8 * SR and plan.passes == 2 and plan.looped


def test_speech_spans_from_the_job_are_checked_against_the_audio():
    assert stream.speech_spans(None, 3 * SR) is None
    assert stream.speech_spans(((0.2, 1.1), (1.6, 2.9)), 3 * SR) == SPANS
    with pytest.raises(ValueError, match="ends at 3.5 s, after the audio's end .3 s."):
        stream.speech_spans(((0.2, 3.5),), 3 * SR)


class ItemModel:
    def transcribe(self, audio):
        return "whole {}".format(len(audio))

    def open_stream(self):
        return WordSession()


class Writer:
    def __init__(self, emit=None):
        self.rows = []
        self.emit = emit

    def write(self, row):
        self.rows.append(row)


def test_an_items_transcript_is_its_segments_finals_joined():
    clock = ManualClock()
    rec = Recorder(clock)
    events, transcripts = Writer(rec), Writer()
    utts = [UtteranceJob("long", "/a/long.flac", segments=((0.2, 1.1), (1.6, 2.9))), UtteranceJob("short", "/a/s")]
    audio = {"long": np.full(3 * SR, 0.01, dtype=np.float32), "short": np.full(SR, 0.02, dtype=np.float32)}
    n_ok, n_failed = stream.run_stream_condition(
        StreamJob(chunk_ms=500, gap_ms=500, sustain_s=0.0, policy="native"), "c1", ItemModel(), utts, events,
        transcripts, lambda utt: audio[utt.id], lambda *a: None, clock=clock)
    assert (n_ok, n_failed) == (2, 0)
    long, short = transcripts.rows
    assert long["hypothesis"] == "w4800 w8000 w1600 w6400 w8000 w6400"  # the two segments' finals, joined
    assert long["offline_hypothesis"] == "whole 48000" and long["duration_s"] == 3.0  # the whole recording
    assert short["hypothesis"] == "w8000 w8000" and short["duration_s"] == 1.0


def test_a_segment_map_beyond_the_audio_fails_that_item_with_a_sentence():
    clock = ManualClock()
    events, transcripts, errors = Writer(Recorder(clock)), Writer(), []
    utts = [UtteranceJob("long", "/a/long.flac", segments=((0.2, 4.0),)), UtteranceJob("short", "/a/s")]
    n_ok, n_failed = stream.run_stream_condition(
        StreamJob(sustain_s=0.0, policy="native", offline=False), "c1", ItemModel(), utts, events, transcripts,
        lambda utt: np.zeros(3 * SR if utt.id == "long" else SR, np.float32),
        lambda uid, key, message: errors.append((uid, message)), clock=clock)
    assert (n_ok, n_failed) == (1, 1)
    assert errors == [("long", "its segment map: speech segment 0 ends at 4 s, after the audio's end (3 s)")]


# -- the contract ------------------------------------------------------------------------------------------------


def test_utterance_segments_are_written_only_where_present_and_need_contract_4():
    plain = UtteranceJob("a", "/a.wav")
    assert plain.to_json() == {"id": "a", "audio": "/a.wav"}
    segs = UtteranceJob("a", "/a.wav", segments=((0.0, 1.5), (2.0, 3.25)))
    assert segs.to_json() == {"id": "a", "audio": "/a.wav",
                              "segments": [{"start_s": 0.0, "end_s": 1.5}, {"start_s": 2.0, "end_s": 3.25}]}
    assert UtteranceJob.from_json(segs.to_json(), "u") == segs
    feature = "speech segments of a long recording (job.utterances[].segments)"
    assert FEATURES[feature] == 4
    base = dict(contract_version=3, backend="b", model="m", quant="fp32", backend_quant="f", device="cpu",
                decode=DecodeOptions(), warmup=0)
    assert Job(**base, utterances=[segs]).needs() == (4, feature)
    assert Job(**base, utterances=[plain]).version_problem(3) is None


@pytest.mark.parametrize("raw, says", [
    ("0-1", "must be a list"),
    ([], "must be a non-empty list"),
    ([{"start_s": 0.0}], r"u.segments\[0\].end_s must be a number"),
    ([{"start_s": 1.0, "end_s": 1.0}], r"u.segments\[0\] ends at 1 s, not after its start"),
    ([{"start_s": -0.5, "end_s": 1.0}], r"u.segments\[0\].start_s must be a number >= 0"),
    ([{"start_s": 0.0, "end_s": 2.0}, {"start_s": 1.5, "end_s": 3.0}], r"u.segments\[1\] starts at 1.5 s, before"),
    ([{"start_s": 0.0, "end_s": float("nan")}], "must be a number"),
])
def test_a_malformed_segment_list_is_refused_naming_the_field(raw, says):
    with pytest.raises(JobError, match=says):
        UtteranceJob.from_json({"id": "a", "audio": "/a.wav", "segments": raw}, "u")


# -- the host ----------------------------------------------------------------------------------------------------


def _with_map(spec):
    """tone_spec's item "a" given a segment map (speech 0.1-0.4 s, silence, speech 0.6-0.9 s)."""
    a, b = spec.dataset.utterances
    a = replace(a, segments=(Segment("silence", 0.0, 0.1), Segment("speech", 0.1, 0.4, "s1", "one"),
                             Segment("white", 0.4, 0.6, level_dbfs=-30.0), Segment("speech", 0.6, 0.9, "s2", "two"),
                             Segment("silence", 0.9, 1.0)))
    return replace(spec, dataset=replace(spec.dataset, utterances=(a, b)))


def test_the_job_carries_an_items_speech_segments_in_stream_mode_only(tmp_path):
    live = _with_map(tone_spec(tmp_path, "live", stream=StreamSettings(enabled=True)))
    job = make_job(live, host_paths=True).to_json()
    assert job["utterances"][0]["segments"] == [{"start_s": 0.1, "end_s": 0.4}, {"start_s": 0.6, "end_s": 0.9}]
    assert "segments" not in job["utterances"][1]
    assert Job.from_json(job).utterances[0].segments == ((0.1, 0.4), (0.6, 0.9))
    # offline, the map stays on the host (an older image still runs the job)
    offline = _with_map(tone_spec(tmp_path / "offline"))
    assert all("segments" not in u for u in make_job(offline, host_paths=True).to_json()["utterances"])


def test_the_metrics_measure_partials_and_finals_per_speech_segment():
    from runner.scoring.stream_metrics import stream_metrics

    long = np.full(3 * SR, 0.01, dtype=np.float32)
    rec, _ = _run([("long", long, SPANS), ("short", np.full(SR, 0.02, dtype=np.float32))], chunk_ms=500,
                  gap_ms=500, sustain_s=0.0)
    m = stream_metrics(rec.events, "c1")
    # three utterances for endpointing (two segments, one item); each final 0 ms after its last chunk (instant)
    assert m.finalization_ms.n == 3 and m.finalization_ms.max == 0.0
    # each segment's first partial counted from its own first chunk: 0 ms for each, none without one
    assert m.first_partial_ms.n == 3 and m.n_without_partial == 0
