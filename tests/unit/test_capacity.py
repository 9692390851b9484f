"""Live audio's capacity search (runner/capacity.py, issue 23 item 6) on scripted latency curves: the exact
probes it runs (doubling, then bisection), the answer and the first failed probe with its reason; the verdict of
one probe from its records' stream block; and the search as a planner of the one sweep on the recorded engine,
resumed without running a probe twice."""

from __future__ import annotations

from typing import Callable

import pytest
from helpers import RecordingView, tone_study

from runner.capacity import (CapacityPlanner, CapacitySearch, ProbeResult, StreamFigures, judge_probe)
from runner.results import ConditionRecord


def stream_summary(p99_ms: float | None, lag_middle_s: float = 0.1, lag_end_s: float = 0.1, chunk_ms: float = 500,
                   w_per_stream: float | None = None, bounded: bool | None = None, n: int = 6) -> dict:
    """A condition's summary with the stream block's figures the search reads (runner/scoring/stream_metrics.py's
    names): p99 finalization latency, the lag at the middle and the end, power per stream or why not."""
    bound_s = 2 * chunk_ms / 1000
    lag = {"max": max(lag_middle_s, lag_end_s), "middle": lag_middle_s, "end": lag_end_s,
           "growth": lag_end_s - lag_middle_s, "bound": bound_s,
           "bounded": lag_end_s - lag_middle_s <= bound_s if bounded is None else bounded}
    summary = {"status": "ok", "error": None,
               "stream": {"chunk_ms": chunk_ms, "lag_s": lag,
                          "finalization_ms": {"p50": None if p99_ms is None else p99_ms / 2, "p99": p99_ms,
                                              "n": n if p99_ms is not None else 0}}}
    if w_per_stream is not None:
        summary["stream"]["energy"] = {"w_per_stream": w_per_stream, "unavailable": {}}
    else:
        summary["stream"]["energy"] = {"w_per_stream": None,
                                       "unavailable": {"w_per_stream": "no energy block (no sampler ran)"}}
    return summary


def record(summary: dict, key: str = "k", status: str = "ok", error: str | None = None) -> ConditionRecord:
    return ConditionRecord.of({"key": key, "backend": "pocketsphinx", "model": "en-us", "quant": "fp32"},
                              {**summary, "status": status, "error": error})


Curve = Callable[[int], dict]


def run_search(curve: Curve, max_streams: int = 64, latency_ms: float = 1000) -> tuple[list[int], CapacitySearch]:
    """The search driven to its end on ``curve`` (streams -> summary): the probes in the order it asked them."""
    search, asked = CapacitySearch(max_streams=max_streams, latency_ms=latency_ms), []
    while (n := search.next_probe()) is not None:
        asked.append(n)
        search = search.record(judge_probe(n, [record(curve(n), key=f"c{n}")], latency_ms))
        assert len(asked) < 30, "the search does not end"
    return asked, search


def linear(ms_per_stream: float) -> Curve:
    return lambda n: stream_summary(ms_per_stream * n)


def test_doubling_then_bisection_finds_the_last_n_under_the_target():
    """100 ms per stream, 1000 ms target: 1 2 4 8 pass, 16 fails, then 12 (fail) 10 (pass) 11 (fail): 10."""
    asked, search = run_search(linear(100))
    assert asked == [1, 2, 4, 8, 16, 12, 10, 11]
    answer = search.answer()
    assert answer.streams == 10 and answer.best.streams == 10 and answer.best.p99_ms == 1000
    assert answer.first_failed.streams == 16
    assert answer.first_failed.reason == "p99 finalization latency 1600 ms is over the 1000 ms target"
    assert not answer.capped
    assert answer.headline() == ("10 streams at p99 1000 ms, power unavailable: no energy block (no "
                                 "sampler ran)")
    assert answer.failure_line() == ("first failed probe: 16 streams: p99 finalization latency 1600 ms is over the "
                                     "1000 ms target; one more than the answer, 11 streams: p99 finalization "
                                     "latency 1100 ms is over the 1000 ms target")
    assert answer.above.streams == 11


def test_a_backend_that_never_keeps_up_has_capacity_zero_after_one_probe():
    """One stream already over the target: the answer is 0 with the reason, never a fake real-time result."""
    asked, search = run_search(linear(1500))
    answer = search.answer()
    assert asked == [1] and answer.streams == 0 and answer.best is None
    assert answer.first_failed.reason == "p99 finalization latency 1500 ms is over the 1000 ms target"
    assert answer.headline().startswith("0 streams") and "not even one stream keeps up" in answer.headline()


def test_a_growing_lag_fails_a_probe_whose_latency_looks_fine():
    """From 3 streams on, the lag grows by 4 s from the middle of the window to its end (more than two 500 ms
    chunks) while p99 stays low (the utterances finalized early): 1 2 pass, 4 fails, 3 fails: capacity 2."""
    def curve(n):
        return stream_summary(200, lag_middle_s=1.0, lag_end_s=5.0 if n >= 3 else 1.5)

    asked, search = run_search(curve)
    answer = search.answer()
    assert asked == [1, 2, 4, 3] and answer.streams == 2
    assert answer.first_failed.streams == 4
    assert answer.first_failed.reason == ("the lag behind real time grew by 4.00 s from the middle of the window to "
                                          "its end, more than 2 chunks of 500 ms: the backend is falling behind")
    assert answer.first_failed.lag_growth_s == pytest.approx(4.0)


def test_the_stream_blocks_lag_verdict_decides_and_the_latency_target_is_inclusive():
    """Bounded is runner/scoring/stream_metrics.py's verdict, taken as it says (a lag growth it calls bounded passes, one it
    calls unbounded fails, none stated is no verdict); p99 equal to the target passes, a little over fails."""
    assert judge_probe(1, [record(stream_summary(1000, 0.5, 1.5, bounded=True))]).passed
    assert not judge_probe(1, [record(stream_summary(100, 0.5, 0.5, bounded=False))]).passed
    assert not judge_probe(1, [record(stream_summary(1000.5))]).passed
    unstated = stream_summary(100)
    del unstated["stream"]["lag_s"]["bounded"]
    assert judge_probe(1, [record(unstated)]).reason == "the lag behind real time was not measured"
    unstated["stream"].update(lag_s=None, unavailable={"lag_s": "no chunk was processed"})
    assert judge_probe(1, [record(unstated)]).reason == ("the lag behind real time was not measured (no chunk was "
                                                         "processed)")


def test_every_probe_passing_stops_at_the_cap_and_says_it_may_carry_more():
    asked, search = run_search(linear(1), max_streams=64)
    assert asked == [1, 2, 4, 8, 16, 32, 64]
    answer = search.answer()
    assert answer.streams == 64 and answer.capped and answer.first_failed is None
    assert answer.headline() == ("64 streams at p99 64 ms, power unavailable: no energy block (no sampler "
                                 "ran) (the cap, --max-streams 64: it may carry more)")
    asked, _ = run_search(linear(1), max_streams=10)
    assert asked == [1, 2, 4, 8, 10], "the cap itself is probed, not skipped"
    asked, search = run_search(linear(1), max_streams=1)
    assert asked == [1] and search.answer().streams == 1


def test_bisection_with_a_cap_that_is_not_a_power_of_two():
    """Cap 10, 150 ms per stream: 1 2 4 pass, 8 fails (1200 ms), then 6 (900 pass) 7 (1050 fail): 6."""
    asked, search = run_search(linear(150), max_streams=10)
    assert asked == [1, 2, 4, 8, 6, 7] and search.answer().streams == 6


def test_power_per_stream_is_the_stream_blocks():
    """With energy measured (3 W per stream at every n): the headline says it; a probe's conditions average."""
    asked, search = run_search(lambda n: stream_summary(200 * n, w_per_stream=3.0))
    answer = search.answer()
    assert answer.streams == 5 and answer.best.power_per_stream_w == 3.0
    assert answer.headline() == "5 streams at p99 1000 ms, 3.00 W per stream"
    two = judge_probe(2, [record(stream_summary(100, w_per_stream=2.0)), record(stream_summary(100, w_per_stream=3.0))])
    assert two.power_per_stream_w == 2.5
    bare = stream_summary(100)
    del bare["stream"]["energy"]
    assert StreamFigures.of({**bare, "unavailable": {"energy": "sampler none"}}).power_reason == "sampler none"


@pytest.mark.parametrize("summary, status, error, reason", [
    ({}, "error", "the container exited with code 137 (killed: out of memory)",
     "the condition failed (error): the container exited with code 137 (killed: out of memory)"),
    ({"status": "ok"}, "ok", None, "the condition recorded no stream figures (was stream mode on?)"),
    (stream_summary(None), "ok", None,
     "no utterance was finalized in the window, so there is no finalization latency"),
    ({"n_failed": 2}, "partial", None,
     "the condition failed (partial): 2 utterance(s) failed (see utterances.jsonl)"),
])
def test_a_probe_without_figures_fails_with_its_reason(summary, status, error, reason):
    """An error, no stream block, no utterance finalized: each a failed probe with the reason, never a pass."""
    result = judge_probe(2, [record(summary, status=status, error=error)])
    assert not result.passed and result.reason == reason and result.p99_ms is None


def test_a_probe_is_judged_on_its_worst_condition():
    """Two repeats: the worse p99 decides; one failing repeat fails the probe."""
    ok, slow = record(stream_summary(400), "a"), record(stream_summary(1200), "b")
    result = judge_probe(3, [ok, slow])
    assert not result.passed and result.p99_ms == 1200 and result.keys == ("a", "b")
    assert judge_probe(3, [ok, record(stream_summary(700), "c")]).p99_ms == 700
    assert judge_probe(3, []).reason == "the probe recorded no condition"
    assert judge_probe(3, [ok], lost=1).reason == "1 condition(s) were lost with their node"


def test_a_probe_out_of_order_is_refused():
    """The search only probes between the last pass and the first fail; anything else is a bug, refused."""
    search = CapacitySearch()
    with pytest.raises(ValueError, match="expected a probe of 1 streams, got 2"):
        search.record(ProbeResult(2, True))
    search = search.record(ProbeResult(1, False, "too slow"))
    assert search.done and search.next_probe() is None
    with pytest.raises(ValueError):
        search.record(ProbeResult(2, True))
    with pytest.raises(ValueError):
        CapacitySearch(max_streams=0)


def test_the_answer_as_json_keeps_every_probe_in_order():
    _, search = run_search(linear(300))
    data = search.answer().to_json()
    assert [p["streams"] for p in data["probes"]] == [1, 2, 4, 3]
    assert [p["passed"] for p in data["probes"]] == [True, True, False, True]
    assert data["streams"] == 3 and data["first_failed"]["streams"] == 4 and data["capped"] is False


# --- as a planner of the one sweep -----------------------------------------------------------------------------


class _Job:
    def __init__(self, key):
        self.key = key


def test_the_planner_adds_the_next_probe_as_each_one_ends_and_replays_the_same_decisions():
    """Without a sweep: first() is the probe of 1; each after() judges the probe and returns the next one;
    the same GroupDone sequence replayed (a resumed search) gives the same probes and answer."""
    from runner.sweep import GroupDone

    curve = linear(100)

    def drive():
        planner = CapacityPlanner(plan=lambda n: [_Job(f"g{n}")], search=CapacitySearch(max_streams=64))
        asked, queue = [], planner.first()
        while queue:
            job = queue.pop(0)
            n = int(job.key[1:])
            asked.append(n)
            queue += planner.after(GroupDone(job, (record(curve(n), key=f"c{n}"),), ran=False))
        return asked, planner.answer()

    first, again = drive(), drive()
    assert first[0] == [1, 2, 4, 8, 16, 12, 10, 11] and first[1].streams == 10
    assert again[0] == first[0] and again[1] == first[1]


def test_the_planner_waits_for_every_group_of_a_probe_and_ignores_other_groups():
    from runner.sweep import GroupDone

    planner = CapacityPlanner(plan=lambda n: [_Job(f"g{n}a"), _Job(f"g{n}b")])
    assert [j.key for j in planner.first()] == ["g1a", "g1b"]
    assert planner.after(GroupDone(_Job("other"), ())) == []
    assert planner.after(GroupDone(_Job("g1a"), (record(stream_summary(100), "x"),))) == []
    nxt = planner.after(GroupDone(_Job("g1b"), (record(stream_summary(1100), "y"),)))
    assert nxt == [] and planner.answer().streams == 0
    assert planner.answer().first_failed.keys == ("x", "y")


# --- in the one sweep, on the recorded engine (tests/recorded_engine.py) ------------------------------------------

STREAM = {"enabled": True, "chunk_ms": 500, "gap_ms": 500, "sustain_s": 20}
DEFAULTS = {"backend": "faster-whisper", "model": "tiny.en", "quant": "int8", "device": "cpu", "dataset": "d",
            "warmup": 0, "telemetry": {"sampler": "none"}}


@pytest.fixture
def study(tmp_path):
    """Two tone utterances and a tiny.en folder (tests/helpers.py's tone_study)."""
    return tone_study(tmp_path)


def scripted(monkeypatch, curve: Curve) -> list[int]:
    """Each probe's records are judged with the figures ``curve`` scripts for its number of streams in place of
    the synthetic timeline's (the real verdict, on scripted figures). Returns the probes judged."""
    from runner import capacity

    real, judged = capacity.judge_probe, []

    def judge(n, records, latency_ms=1000, lost=0):
        judged.append(n)
        return real(n, [ConditionRecord.of(r.condition, {**r.summary, **curve(n)}) for r in records], latency_ms, lost)

    monkeypatch.setattr(capacity, "judge_probe", judge)
    return judged


def search_here(study, engine, max_streams=64, latency_ms=1000, **options):
    """`edgeasr capacity` as the command runs it (stream mode, 500 ms chunks, 20 s per stream), on the recorded
    engine's synthetic stream timeline."""
    from runner.capacity import local_capacity
    from runner.sweep import LocalOptions, SweepOptions

    return local_capacity({**DEFAULTS, "stream": STREAM}, study / "capacity-unit.yaml", study / "out", RecordingView(),
                          LocalOptions(engine="local", models_dir=study / "models", prepare=False),
                          CapacitySearch(max_streams=max_streams, latency_ms=latency_ms), SweepOptions(**options),
                          root=study, engine=engine)


def test_each_probe_is_a_group_of_the_sweep_planned_as_the_last_one_ends(study, monkeypatch):
    """300 ms per stream: probes 1 2 4 3, each one container in turn, keyed, in the tables and the manifest;
    the answer (3) in capacity.json with the first failed probe (4) and why."""
    import json

    from recorded_engine import RecordedEngine

    judged = scripted(monkeypatch, linear(300))
    engine = RecordedEngine()
    outcome, answer = search_here(study, engine)
    assert judged == [1, 2, 4, 3] and len(engine.launches) == 4 and outcome.exit_code == 0
    assert len({g for g, _ in engine.launches}) == 4, "each probe is its own container, with its own key"
    assert answer.streams == 3 and answer.first_failed.streams == 4
    stored = json.loads((study / "out" / "capacity.json").read_text())
    assert stored["streams"] == 3 and [p["streams"] for p in stored["probes"]] == [1, 2, 4, 3]
    assert stored["first_failed"]["reason"] == "p99 finalization latency 1200 ms is over the 1000 ms target"
    assert len((study / "out" / "conditions.jsonl").read_text().splitlines()) == 4
    assert json.loads((study / "out" / "manifest.json").read_text())["n_containers"] == 4
    assert {r.condition["key"] for r in outcome.records} == {k for p in answer.probes for k in p.keys}

    again = RecordedEngine()
    judged.clear()
    _, replayed = search_here(study, again)
    assert again.launches == [] and judged == [1, 2, 4, 3], "a rerun replays every stored probe, running none"
    assert replayed == answer


def test_a_search_interrupted_mid_way_resumes_without_running_a_stored_probe_again(study, monkeypatch):
    """SIGTERM as the second probe's condition ends: both stored results are kept; the rerun hears them as
    stored, runs the rest only (4, then 3), and ends with the answer an uninterrupted search gives."""
    from recorded_engine import RecordedEngine

    from runner.errors import Interrupted

    scripted(monkeypatch, linear(300))
    first = RecordedEngine(interrupt_after=2)
    with pytest.raises(Interrupted):
        search_here(study, first)
    assert len(first.launches) == 2  # the probes of 1 and 2 streams, both conditions ended before the signal
    engine = RecordedEngine()
    _, answer = search_here(study, engine)
    assert [g for g, _ in first.launches + engine.launches] == list(dict.fromkeys(
        g for g, _ in first.launches + engine.launches)), "no probe runs twice"
    assert len(engine.launches) == 2
    assert answer.streams == 3 and [p.streams for p in answer.probes] == [1, 2, 4, 3]


def test_a_backend_that_never_keeps_up_is_probed_once_and_answered_zero(study, monkeypatch):
    from recorded_engine import RecordedEngine

    scripted(monkeypatch, lambda n: stream_summary(900, lag_middle_s=2.0, lag_end_s=9.0))
    engine = RecordedEngine()
    outcome, answer = search_here(study, engine)
    assert len(engine.launches) == 1 and answer.streams == 0 and answer.best is None
    assert "the backend is falling behind" in answer.first_failed.reason


# --- stream mode end to end on the recorded engine: its synthetic timeline, the real merge and metrics ----------

def test_the_search_stops_where_one_worker_can_no_longer_keep_up(study):
    """0.1 s a chunk of 500 ms: one worker keeps up with 5 streams, not 6. Probes 1 2 4 8 6 5, each a stream
    container with its concurrency; the answer 5 from the real stream block (p99 finalization latency, bounded
    lag); 8 streams failed first, on latency (its lag grew all along)."""
    from recorded_engine import RecordedEngine

    engine = RecordedEngine(chunk_processing_s=0.1)
    outcome, answer = search_here(study, engine)
    assert [p.streams for p in answer.probes] == [1, 2, 4, 8, 6, 5] and answer.streams == 5
    assert outcome.exit_code == 0 and len(engine.launches) == 6
    by_n = {r.summary["stream"]["concurrency"]: r.summary["stream"] for r in outcome.records}
    assert sorted(by_n) == [1, 2, 4, 5, 6, 8]
    assert by_n[5]["lag_s"]["bounded"] and not by_n[6]["lag_s"]["bounded"]
    assert answer.best.p99_ms == pytest.approx(by_n[5]["finalization_ms"]["p99"]) and answer.best.p99_ms < 1000
    assert answer.first_failed.streams == 8
    assert answer.first_failed.reason.startswith("p99 finalization latency ")
    assert answer.headline().startswith(f"5 streams at p99 {answer.best.p99_ms:.0f} ms, ")


def test_a_backend_that_can_never_keep_up_gets_zero_and_a_growing_lag(study):
    """0.6 s a 500 ms chunk: even one stream falls behind; with a latency target it could meet for a while
    (100 s), the growing lag alone fails it: capacity 0, one probe, never a fake real-time result."""
    from recorded_engine import RecordedEngine

    engine = RecordedEngine(chunk_processing_s=0.6)
    outcome, answer = search_here(study, engine, latency_ms=100_000)
    assert [p.streams for p in answer.probes] == [1] and answer.streams == 0 and answer.best is None
    lag = outcome.records[0].summary["stream"]["lag_s"]
    assert lag["end"] > lag["middle"] + 1.0 and not lag["bounded"]
    assert answer.first_failed.reason.startswith("the lag behind real time grew by ")
    assert answer.first_failed.reason.endswith("more than 2 chunks of 500 ms: the backend is falling behind")


def test_the_capacity_command_answers_in_one_line_and_resumes(study, monkeypatch, capsys):
    """`edgeasr capacity` with run's settings flags, on the recorded engine: the answer line on stdout ("N streams
    at p99 X ms, ..."; no sampler here, so power is unavailable with the reason), the first failed probe and
    why, where the results are; exit 0. The same command again runs nothing and answers the same."""
    from recorded_engine import RecordedEngine

    from runner import capacity
    from runner.cli import main

    engines = []
    monkeypatch.setattr(capacity, "make_engine", lambda name: engines.append(RecordedEngine(
        chunk_processing_s=0.1)) or engines[-1])
    monkeypatch.chdir(study)
    argv = ["capacity", "--backend", "faster-whisper", "--model", "tiny.en", "--quant", "int8", "--device", "cpu",
            "--data", "d", "--warmup", "0", "--telemetry", "none", "--chunk-ms", "500", "--sustain-s", "20",
            "--engine", "local", "--no-prepare", "--models-dir", str(study / "models"), "--out", str(study / "cap"),
            "--max-streams", "16"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    [head] = [text for text in out.splitlines() if text.startswith("capacity: ")]
    assert head.startswith("capacity: 5 streams at p99 ") and head.endswith(
        " ms, power unavailable: telemetry turned off (--telemetry none)"), out
    assert "  first failed probe: 8 streams: p99 finalization latency " in out
    assert "probes in order: 1 pass, 2 pass, 4 pass, 8 fail, 6 fail, 5 pass" in out
    assert str(study / "cap" / "capacity.json") in " ".join(out.split())
    assert len(engines[0].launches) == 6

    assert main(argv) == 0
    again = capsys.readouterr().out
    assert engines[1].launches == [] and head in again.splitlines()


def test_the_capacity_command_refuses_a_concurrency_and_a_bad_target(study, capsys):
    """--concurrency is what the search chooses; a target of 0 ms is no target: one sentence each, exit 2,
    nothing started."""
    from runner.cli import main

    assert main(["capacity", "--concurrency", "4", "--out", str(study / "cap")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--concurrency is what the capacity search chooses" in err
    assert main(["capacity", "--latency-ms", "0", "--max-streams", "0", "--out", str(study / "cap")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--latency-ms: expected a number of milliseconds above 0, got 0.0" in err
    assert "--max-streams: expected a whole number of at least 1, got 0" in err
    assert not (study / "cap").exists()


def test_a_setting_the_probes_refuse_is_named_by_its_flag(study, capsys):
    """A dataset that does not exist, a backend without stream mode: the sentence names --data and --stream, not
    the probes' experiment (a file the person never wrote); exit 2, nothing started."""
    from runner.cli import main

    base = ["capacity", "--out", str(study / "cap"), "--engine", "local", "--no-prepare"]
    assert main([*base, "--data", str(study / "nope")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"edgeasr: --data: '{study / 'nope'}' does not exist" in err and "nothing was started" in err
    assert ".yaml" not in err
    assert main([*base, "--backend", "whisperx", "--data", str(study / "d")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "edgeasr: --stream: backend whisperx has no stream mode" in err and ".yaml" not in err
    assert main([*base, "--data", str(study / "d"), "--models-dir", str(study / "none"), "--offline"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"edgeasr: --model: model 'tiny.en' is not installed in {study / 'none'}" in err
    assert ".yaml" not in err and "groups[0]" not in err
    assert not (study / "cap").exists()


def test_the_shipped_live_audio_experiment_is_chunk_size_by_concurrency_for_two_backends():
    """experiments/live-audio.yaml: pocketsphinx en-us and faster-whisper tiny.en in stream mode, 2 chunk sizes
    x 2 concurrencies each, one container per point (stream settings are the container's), each backend's default
    policy; short enough to run here (3 utterances, 10 s per stream); the Jetson power-mode axis is a comment."""
    from helpers import ROOT

    from runner.experiment import load_experiment

    exp = load_experiment("live-audio", root=ROOT)
    points = sorted((g.backend, g.model, g.quant, g.stream["chunk_ms"], g.stream["concurrency"], g.stream["policy"])
                    for g in exp.groups)
    assert points == sorted((b, m, q, c, n, p) for b, m, q, p in (
        ("pocketsphinx", "en-us", "fp32", "native"), ("faster-whisper", "tiny.en", "int8", "local-agreement-2"))
        for c in (500, 1000) for n in (1, 2))
    assert all(len(g.conditions) == 1 and g.conditions[0].limit == 3 and g.stream["sustain_s"] == 10
               for g in exp.groups)
    text = (ROOT / "experiments" / "live-audio.yaml").read_text()
    assert "# power.mode: [" in text and not any(k.startswith("power") for k in exp.resolved["axes"])
