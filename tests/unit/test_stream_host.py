"""Stream mode on the host (issue 23, items 1, 3 and 4, the host's part): its settings as flags and sweep axes, the
backend table's stream facts and the refusals made from them before any container starts, the job's ``stream``
block and the contract version it needs, the keys (stream joins a condition's identity; offline keys stay what
they were), the checks of what a streaming container writes (runner/trust/validate.py) and the merge of a stream into
a summary. A whole stream run goes end to end through the recorded engine (tests/recorded_engine.py: its stream
timeline is SYNTHETIC, a virtual clock; no container runs here).

tests/fixtures/stream_raw was written by that engine for conditions kA and kB over the tones a and b: one stream,
chunks of 500 ms, 500 ms of silence between the utterances, a worker taking 50 ms a chunk; streamed text "a tone"
and "b", offline text "a tone" and "b tone".
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from edgeasr_entrypoint.contract import Job, StreamJob
from helpers import RecordingView, tone_spec, tone_study
from recorded_engine import RecordedEngine

from runner import execute, merge, plan, settings as st
from runner.trust import validate
from runner.backends import BACKENDS
from runner.errors import UserError
from runner.experiment import Condition, load_experiment
from runner.launch.docker_engine import ImageInfo
from runner.launch.job import make_job
from runner.run import execute_run
from runner.settings import StreamSettings
from runner.telemetry.samplers.base import NullSampler

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "stream_raw"
NAN, INF = float("nan"), float("inf")


# -- settings: defaults, flags, the help -------------------------------------------------------------------------


def _flags(*argv: str):
    p = argparse.ArgumentParser()
    st.add_arguments(p)
    return st.from_args(p.parse_args(list(argv)))


def test_stream_settings_default_to_off_with_the_issues_values():
    s = st.Settings().stream
    assert (s.enabled, s.chunk_ms, s.gap_ms, s.concurrency, s.policy, s.sustain_s) == (False, 500, 500, 1, None, 60.0)
    assert {"stream.enabled", "stream.chunk_ms", "stream.gap_ms", "stream.concurrency", "stream.policy",
            "stream.sustain_s"} <= set(st.LEAVES)


def test_stream_flags_set_the_stream_settings():
    got, problems = _flags("--stream", "--chunk-ms", "250", "--gap-ms", "0", "--concurrency", "4",
                           "--stream-policy", "native", "--sustain-s", "30")
    assert problems == []
    assert got.stream == StreamSettings(enabled=True, chunk_ms=250, gap_ms=0, concurrency=4, policy="native",
                                        sustain_s=30.0)


@pytest.mark.parametrize("argv, message", [
    (("--chunk-ms", "0"), "--chunk-ms must be at least 1, got 0"),
    (("--concurrency", "0"), "--concurrency must be at least 1, got 0"),
    (("--gap-ms", "-1"), "--gap-ms must be >= 0, got -1"),
    (("--sustain-s", "0"), "--sustain-s must be positive, got 0.0"),
    (("--stream-policy", "fast"), "--stream-policy 'fast' is unknown; choose one of native, local-agreement-2"),
])
def test_a_bad_stream_flag_is_one_sentence_naming_it(argv, message):
    _, problems = _flags(*argv)
    assert problems == [message]


def test_run_help_has_a_stream_section(capsys):
    from runner.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    section = out.split("\nstream:\n", 1)[1].split("\n\n", 1)[0]
    for flag in ("--stream ", "--chunk-ms", "--gap-ms", "--concurrency", "--stream-policy", "--sustain-s"):
        assert flag in section
    assert "pocketsphinx: native" in " ".join(section.split())  # the default policy is the table's


# -- the backend table ----------------------------------------------------------------------------------------


def test_every_backend_row_says_how_it_streams_or_why_not():
    facts = {name: (b.stream.policies, b.stream.default) for name, b in BACKENDS.items()}
    assert facts["pocketsphinx"] == (("native",), "native")
    for name in ("faster-whisper", "transformers", "onnxruntime"):
        assert facts[name] == (("local-agreement-2",), "local-agreement-2")
    for name in ("whisperx", "espnet"):
        assert facts[name] == ((), None) and BACKENDS[name].stream.refused
    ctc = BACKENDS["transformers"].stream_facts("ctc")  # chunk by chunk with left context, natively
    assert (ctc.policies, ctc.default) == (("native", "local-agreement-2"), "native")
    assert BACKENDS["transformers"].stream_facts("whisper") is BACKENDS["transformers"].stream


# -- refusals before any container starts ---------------------------------------------------------------------


def _models(tmp_path: Path) -> Path:
    return tone_study(tmp_path) / "models"


def test_whisperx_stream_is_refused_in_one_sentence_with_exit_2_and_no_run_folder(tmp_path, capsys):
    from runner.cli import main

    models = _models(tmp_path)
    rc = main(["run", "--backend", "whisperx", "--model", "tiny.en", "--stream", "--data", str(tmp_path / "d"),
               "--models-dir", str(models), "--telemetry", "none", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("edgeasr: --stream: backend whisperx has no stream mode: ") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_a_policy_the_backend_lacks_is_refused_naming_the_flag(tmp_path):
    with pytest.raises(UserError) as exc:
        tone_spec(tmp_path, backend="pocketsphinx", model="en-us", quant="fp32",
                  stream=StreamSettings(enabled=True, policy="local-agreement-2"))
    assert str(exc.value) == ("--stream-policy: backend pocketsphinx has no local-agreement-2 stream policy; it "
                              "streams with native (its own incremental decoder: partial hypotheses as the audio "
                              "arrives)")
    assert exc.value.exit_code == 2


def test_stream_settings_mean_nothing_while_stream_mode_is_off(tmp_path):
    """whisperx with a chunk size but without --stream: an offline run, nothing refused, no stream in its job."""
    spec = tone_spec(tmp_path, backend="whisperx", stream=StreamSettings(chunk_ms=250, policy="native"))
    assert spec.stream is None and "stream" not in make_job(spec, host_paths=True).to_json()


def _experiment(tmp_path: Path, text: str):
    path = tmp_path / "live.yaml"
    path.write_text(text.replace("DATA", str(ROOT / "data" / "default")))
    return load_experiment(path)


def test_a_sweep_asking_whisperx_to_stream_is_refused_naming_its_key(tmp_path):
    with pytest.raises(UserError) as exc:
        _experiment(tmp_path, "defaults: {backend: whisperx, model: tiny.en, quant: int8, dataset: DATA,"
                              " stream: {enabled: true}}\n")
    assert [p.split(": ", 2)[:2] for p in exc.value.problems] == [["live.yaml", "defaults.stream.enabled"]]
    assert "backend whisperx has no stream mode" in exc.value.problems[0]


def test_a_policy_axis_value_the_backend_lacks_is_refused_naming_the_grid_item(tmp_path):
    with pytest.raises(UserError) as exc:
        _experiment(tmp_path, "defaults: {backend: pocketsphinx, model: en-us, quant: fp32, dataset: DATA,"
                              " stream: {enabled: true}}\ngrid: {stream.policy: [native, local-agreement-2]}\n")
    assert len(exc.value.problems) == 1
    assert exc.value.problems[0].startswith("live.yaml: grid.stream.policy[1]: backend pocketsphinx has no "
                                            "local-agreement-2 stream policy")


# -- sweep axes and keys --------------------------------------------------------------------------------------


def test_stream_axes_make_one_container_per_value_with_the_policy_resolved(tmp_path):
    exp = _experiment(tmp_path, "defaults: {backend: pocketsphinx, model: en-us, quant: fp32, dataset: DATA, "
                                "limit: 2, stream: {enabled: true, sustain_s: 10}}\n"
                                "grid: {stream.concurrency: [1, 2, 4], stream.chunk_ms: [250, 500]}\n")
    got = sorted((g.stream["concurrency"], g.stream["chunk_ms"]) for g in exp.groups)
    assert got == [(1, 250), (1, 500), (2, 250), (2, 500), (4, 250), (4, 500)]
    for g in exp.groups:
        assert g.stream == {"chunk_ms": g.stream["chunk_ms"], "gap_ms": 500, "concurrency": g.stream["concurrency"],
                            "policy": "native", "sustain_s": 10.0}
        assert g.settings()["stream"] == g.stream
        assert g.conditions[0].axes["stream.concurrency"] == g.stream["concurrency"]


def test_naming_the_default_policy_is_the_same_group_as_naming_none(tmp_path):
    base = "defaults: {backend: pocketsphinx, model: en-us, quant: fp32, dataset: DATA, stream: {enabled: true%s}}\n"
    none = _experiment(tmp_path, base % "").groups[0].settings()
    native = _experiment(tmp_path, base % ", policy: native").groups[0].settings()
    assert none == native and none["stream"]["policy"] == "native"


def test_stream_joins_the_key_only_when_on(tmp_path):
    """An offline group's settings (its condition keys' source) are what they were before stream mode existed,
    whatever the other stream settings say; a streamed one's differ, so a stream's result is never an offline
    one's."""
    base = "defaults: {backend: faster-whisper, model: tiny.en, quant: int8, dataset: DATA%s}\n"
    plain = _experiment(tmp_path, base % "").groups[0].settings()
    idle = _experiment(tmp_path, base % ", stream: {chunk_ms: 250, concurrency: 4}").groups[0].settings()
    live = _experiment(tmp_path, base % ", stream: {enabled: true}").groups[0].settings()
    assert "stream" not in plain and idle == plain
    assert live == {**plain, "stream": {"chunk_ms": 500, "gap_ms": 500, "concurrency": 1,
                                        "policy": "local-agreement-2", "sustain_s": 60.0}}
    assert plan.stable_hash(live) != plan.stable_hash(plain)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "experiments").glob("*.yaml")))
def test_no_shipped_experiment_gains_a_stream_key(name, tmp_path):
    try:
        exp = load_experiment(ROOT / "experiments" / name)
    except UserError:
        pytest.skip("needs data this checkout lacks")
    if any(g.spec_settings.stream.enabled for g in exp.groups):
        pytest.skip("a stream experiment")
    assert all("stream" not in g.settings() for g in exp.groups)


# -- the job ----------------------------------------------------------------------------------------------------


def test_the_job_carries_the_stream_with_its_policy_resolved(tmp_path):
    spec = tone_spec(tmp_path, stream=StreamSettings(enabled=True, chunk_ms=320, concurrency=2, sustain_s=5))
    job = make_job(spec, host_paths=True).to_json()
    assert job["stream"] == {"chunk_ms": 320, "gap_ms": 500, "concurrency": 2, "policy": "local-agreement-2",
                             "sustain_s": 5.0, "offline": True}
    assert Job.from_json(job).stream == StreamJob(320, 500, 2, "local-agreement-2", 5.0, True)  # the container reads it
    assert plan.plan_run(spec, None).settings["stream"]["policy"] == "local-agreement-2"


def _group_job(spec, contract: str) -> plan.GroupJob:
    image = ImageInfo("sha256:" + "0" * 64, ["edgeasr/faster-whisper:latest"], {"org.edgeasr.contract": contract})
    return replace(plan.plan_run(spec, None), image=image)


def test_an_image_older_than_stream_mode_is_refused_only_for_a_stream(tmp_path):
    live = tone_spec(tmp_path, "live", stream=StreamSettings(enabled=True))
    job = _group_job(live, "3")
    with pytest.raises(UserError) as exc:
        execute.group_job_spec(job, list(job.conditions), host_paths=False)
    assert "stream mode (job.stream), which needs entrypoint contract 4; the image speaks 3" in str(exc.value)
    assert execute.group_job_spec(_group_job(live, "4"), list(job.conditions), False)["stream"]["chunk_ms"] == 500
    offline = replace(live, stream=None)
    written = execute.group_job_spec(_group_job(offline, "3"), list(job.conditions), False)
    assert written["contract_version"] == 3 and "stream" not in written


# -- validate: what a streaming container writes ---------------------------------------------------------------


def _rows(name: str) -> list[dict]:
    return [json.loads(x) for x in (FIXTURE / name).read_text().splitlines()]


def _set(rows: list[dict], match: dict, **fields) -> list[dict]:
    rows = [dict(r) for r in rows]
    row = next(r for r in rows if all(r.get(k) == v for k, v in match.items()))
    for k, v in fields.items():
        if v is ...:
            row.pop(k, None)
        else:
            row[k] = v
    return rows


def _checked(events: list[dict], transcripts: list[dict]):
    rows, bad_events = validate.check_events(events)
    results, bad_results = validate.check_transcripts(transcripts)
    kept, bad_times = validate.cross_check(rows, results)
    return rows, kept, [r.text for r in (*bad_events, *bad_results, *bad_times)]


def test_a_stream_without_utterance_windows_passes_every_check():
    events, transcripts = _rows("events.jsonl"), _rows("transcripts.jsonl")
    assert not any(e["event"].startswith("utterance_") for e in events)
    rows, kept, rejected = _checked(events, transcripts)
    assert rejected == [] and len(rows) == len(events) and len(kept) == 4
    assert {t.record["offline_hypothesis"] for t in kept} == {"a tone", "b tone"}


CHUNK_1 = {"event": "chunk", "condition": "kA", "seq": 1}
FINAL_A = {"event": "final", "condition": "kA", "id": "a"}

BROKEN_STREAMS = {
    "chunk begun before it was delivered": (
        lambda ev: _set(ev, CHUNK_1, start_ns=next(e for e in ev if e.get("seq") == 1
                                                   and e["condition"] == "kA")["delivered_ns"] - 1),
        "chunk 1 of stream 0 was delivered at"),
    "chunk done before it was begun": (
        lambda ev: _set(ev, CHUNK_1, start_ns=10 ** 12, delivered_ns=10 ** 12), "not in that order"),
    "chunk seq going back": (lambda ev: _set(ev, CHUNK_1, seq=0), "a stream's chunks go forward"),
    "final before its last delivery": (lambda ev: _set(ev, FINAL_A, last_delivered_ns=10 ** 12),
                                       "the final of utterance 'a' says its audio was delivered from"),
    "final's first after its last": (lambda ev: _set(ev, FINAL_A, first_delivered_ns=1_731_000_001),
                                     "not in that order"),
    "a partial before its audio": (lambda ev: _set(ev, FINAL_A, first_delivered_ns=1_300_000_000),
                                   "after its first partial (1281000000 ns): a partial cannot come before"),
    "chunk without delivered_ns": (lambda ev: _set(ev, CHUNK_1, delivered_ns=...), "chunk: delivered_ns is missing"),
    "negative start_ns": (lambda ev: _set(ev, CHUNK_1, start_ns=-5), "start_ns is -5, not a count"),
    "partial text a number": (lambda ev: _set(ev, {"event": "partial", "condition": "kA"}, text=5),
                              "text is 5, not text"),
    "final without its text": (lambda ev: _set(ev, FINAL_A, text=...), "final: text is missing"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_STREAMS))
def test_a_broken_stream_event_is_rejected_in_one_sentence_for_its_condition(case):
    breaks, words = BROKEN_STREAMS[case]
    rows, _, rejected = _checked(breaks(_rows("events.jsonl")), [])
    assert len(rejected) == 1 and words in rejected[0], rejected
    bad = validate.check_events(breaks(_rows("events.jsonl")))[1][0]
    assert bad.condition == "kA"


def test_a_streamed_result_without_its_final_is_rejected():
    events = [e for e in _rows("events.jsonl") if not (e["event"] == "final" and e["condition"] == "kA"
                                                       and e["id"] == "b")]
    _, kept, rejected = _checked(events, _rows("transcripts.jsonl"))
    assert rejected == ["utterance 'b', condition kA: a streamed result with no final event: its text was never "
                        "emitted as final"]
    assert len(kept) == 3


def test_a_streamed_result_longer_than_its_streams_is_rejected():
    transcripts = _set(_rows("transcripts.jsonl"), {"id": "a", "condition": "kA"}, processing_s=9.0)
    _, _, rejected = _checked(_rows("events.jsonl"), transcripts)
    assert len(rejected) == 1 and "processing_s 9 s is longer than the condition's streams" in rejected[0]


def test_an_offline_hypothesis_that_is_not_text_is_rejected():
    transcripts = _set(_rows("transcripts.jsonl"), {"id": "a", "condition": "kA"}, offline_hypothesis=["a"])
    _, _, rejected = _checked(_rows("events.jsonl"), transcripts)
    assert rejected == ["transcripts.jsonl, result 1 (utterance 'a', condition kA): offline_hypothesis is ['a'], "
                        "not text"]


# -- merge: a stream into a summary ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    return tone_spec(tmp_path_factory.mktemp("spec"), "sweep", stream=StreamSettings(enabled=True, sustain_s=2.0))


def _group(spec, folder: Path, text: dict | None = None):
    """The stream fixture as a container's output (``text``: file texts in place of its own), as the executor's
    group of conditions kA and kB."""
    raw = folder / "g" / "raw"
    shutil.copytree(FIXTURE, raw)
    for name, body in (text or {}).items():
        (raw / name).write_text(body)
    conds = tuple(plan.PlannedCondition(k, "g", Condition(dataset=str(spec.dataset.path), noise_type="clean",
                                                          snr_db=None, repeat=i), {"type": "clean", "snr_db": None},
                                        "clean", ("a", "b"), result_dir=folder / "conditions" / k)
                  for i, k in enumerate(("kA", "kB")))
    job = plan.GroupJob("g", spec, None, conds, folder / "g")
    g = execute._Group(job, list(conds), raw, NullSampler("off"), "telemetry turned off", {}, "docker", {})
    return job, g


def test_a_streamed_condition_merges_into_its_stream_block_and_the_offline_wer_beside(spec, tmp_path):
    job, g = _group(spec, tmp_path)
    data = execute.finalize(g, job.conditions[0])
    assert data["status"] == "ok" and data["error"] is None
    assert data["wer"] == 0.25  # the streamed text: "b" for "b tone"
    assert data["offline"] == {"wer": 0.0, "cer": 0.0, "sub": 0, "del": 0, "ins": 0, "ref_words": 4, "n_scored": 2,
                               "stream_wer": 0.25, "stream_cer": data["offline"]["stream_cer"], "wer_cost": 0.25}
    stream = data["stream"]
    assert stream["policy"] == "native" and stream["n_streams"] == 1 and stream["n_finals"] == 2
    assert stream["finalization_ms"]["p50"] == pytest.approx(50.001)  # 50 ms of work on the last chunk, then 1 us
    assert stream["chunk_latency_ms"]["max"] == pytest.approx(50.0)
    assert stream["lag_s"]["bounded"] is True and stream["energy"]["j_per_audio_s"] is None
    assert data["latency_ms"] is None and data["unavailable"]["latency_ms"] == merge.STREAM_LATENCY
    assert data["rtf"] == pytest.approx(0.1)  # the chunks' processing over the audio: 2 chunks of 50 ms a 1 s utterance
    assert json.loads((tmp_path / "conditions" / "kA" / "summary.json").read_text())["offline"]["wer_cost"] == 0.25
    utts = [json.loads(x) for x in (tmp_path / "conditions" / "kA" / "utterances.jsonl").read_text().splitlines()]
    assert [u["latency_s"] for u in utts] == [pytest.approx(0.050001)] * 2  # each one's finalization latency
    assert [u["processing_s"] for u in utts] == [pytest.approx(0.1)] * 2


def test_an_offline_condition_gains_no_stream_or_offline_key(tmp_path):
    from helpers import recorded_group

    job, g = recorded_group(tmp_path)
    data = execute.finalize(g, job.conditions[0])
    assert "stream" not in data and "offline" not in data and data["latency_ms"] is not None


def test_a_stream_without_offline_texts_says_why_there_is_no_offline_wer(spec, tmp_path):
    rows = [{k: v for k, v in t.items() if k != "offline_hypothesis"} for t in _rows("transcripts.jsonl")]
    job, g = _group(spec, tmp_path, {"transcripts.jsonl": "".join(json.dumps(r) + "\n" for r in rows)})
    data = execute.finalize(g, job.conditions[0])
    assert "offline" not in data and "has an offline hypothesis" in data["unavailable"]["offline"]
    assert data["wer"] == 0.25 and data["stream"]["n_finals"] == 2


# -- fuzz -------------------------------------------------------------------------------------------------------

HOSTILE = (None, "", "1.0", -1, 0, -1e9, 10 ** 30, NAN, INF, True, [], {}, 0.25, "kA", "a", 1_731_000_000)
FIELDS = ("event", "mono_ns", "id", "condition", "stream", "seq", "play", "delivered_ns", "start_ns", "text",
          "first_delivered_ns", "last_delivered_ns", "committed", "audio_s", "n_chunks", "status", "hypothesis",
          "offline_hypothesis", "duration_s", "processing_s")


def _mutate(rng: random.Random, rows: list[dict]) -> list:
    rows = [dict(r) for r in rows]
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(rows))
        what = rng.random()
        if what < 0.5:
            rows[i][rng.choice(FIELDS)] = rng.choice(HOSTILE)
        elif what < 0.65:
            rows[i].pop(rng.choice(list(rows[i])), None)
        elif what < 0.8:
            j = rng.randrange(len(rows))
            rows[i], rows[j] = rows[j], rows[i]
        elif what < 0.9:
            rows.insert(rng.randrange(len(rows) + 1), dict(rows[i]))
        elif len(rows) > 1:
            del rows[i]
    return rows


def test_fuzz_a_broken_stream_never_crashes_the_merge_nor_publishes_a_bad_figure(spec, tmp_path, monkeypatch):
    """150 seeded random breakages of the stream fixture's events and transcripts, merged as the executor does:
    nothing raises, no NaN or infinity is written, no stream figure is below 0, and an ok condition has a
    stream block."""
    monkeypatch.setattr("os.fsync", lambda fd: None)
    rng = random.Random(23)
    events, transcripts = _rows("events.jsonl"), _rows("transcripts.jsonl")

    def refuse(name):
        raise AssertionError(f"{name} written into JSON")

    def numbers(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from numbers(v)
        elif isinstance(value, list):
            for v in value:
                yield from numbers(v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield value

    for case in range(150):
        text = {}
        if rng.random() < 0.7:
            text["events.jsonl"] = "".join(json.dumps(r) + "\n" for r in _mutate(rng, events))
        if rng.random() < 0.5 or not text:
            text["transcripts.jsonl"] = "".join(json.dumps(r) + "\n" for r in _mutate(rng, transcripts))
        job, g = _group(spec, tmp_path / str(case), text)
        for c in job.conditions:
            data = execute.finalize(g, c)
            stored = json.loads((c.result_dir / "summary.json").read_text(), parse_constant=refuse)
            assert stored["status"] in ("ok", "partial", "error"), (case, stored["status"])
            assert "could not merge" not in (stored["error"] or "")
            for block in ("stream", "offline"):
                assert all(math.isfinite(v) for v in numbers(stored.get(block))), (case, block)
            stream = stored.get("stream") or {}
            for name in ("finalization_ms", "chunk_latency_ms", "first_partial_ms"):
                assert all(v >= 0 for v in numbers(stream.get(name))), (case, name, stream.get(name))
            if data["status"] == "ok":
                assert stored["stream"] is not None and stored["rtf"] >= 0, case


# -- a whole run, on the recorded engine -----------------------------------------------------------------------


def test_a_stream_run_goes_end_to_end_and_writes_its_stream_into_the_job_and_the_summary(tmp_path):
    spec = tone_spec(tmp_path, stream=StreamSettings(enabled=True, concurrency=2, sustain_s=4.0))
    summary = execute_run(spec, engine=RecordedEngine())
    assert summary["status"] == "ok" and summary["wer"] == 0.0 and summary["offline"]["wer_cost"] == 0.0
    job = json.loads((spec.out / "raw" / "job.json").read_text())
    assert job["stream"]["concurrency"] == 2 and job["stream"]["policy"] == "local-agreement-2"
    s = summary["stream"]
    assert s["n_streams"] == 2 and s["concurrency"] == 2 and s["looped"] is True and s["audio_s"] == 8.0
    assert s["lag_s"]["bounded"] is True and s["lag_s"]["max"] == 0.0
    assert json.loads((spec.out / "summary.json").read_text())["stream"]["n_finals"] == s["n_finals"]


def test_a_worker_slower_than_real_time_shows_a_growing_lag_never_a_real_time_result(tmp_path):
    """Chunks of 500 ms take the worker 800 ms: every chunk waits 300 ms longer than the one before."""
    spec = tone_spec(tmp_path, stream=StreamSettings(enabled=True, sustain_s=10.0))
    summary = execute_run(spec, engine=RecordedEngine(chunk_processing_s=0.8))
    lag = summary["stream"]["lag_s"]
    assert summary["status"] == "ok" and lag["bounded"] is False
    assert lag["end"] > lag["middle"] > 0 and lag["max"] >= lag["end"]
    assert summary["stream"]["finalization_ms"]["max"] > 600


def test_a_streamed_sweep_is_estimated_at_real_time_at_least_sustain_s_a_condition(tmp_path):
    from runner.experiment.estimate import estimate_sweep

    text = ("defaults: {backend: pocketsphinx, model: en-us, quant: fp32, dataset: DATA, limit: 2, warmup: 0, "
            "telemetry: {sampler: none, loaded_idle_s: 0}%s}\n")
    offline = estimate_sweep(_experiment(tmp_path, text % ""), tmp_path / "none")
    live = estimate_sweep(_experiment(tmp_path, text % ", stream: {enabled: true, sustain_s: 30}"), tmp_path / "none")
    assert live.seconds == pytest.approx(offline.seconds + 30.0)
    assert "30 s of live audio played in real time by 1 streamed condition" in live.how


def test_the_run_views_progress_counts_stream_zeros_first_finals():
    """Stream mode has no utterance_end: the bar advances as stream 0's first play finalizes each utterance."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from runner.commands.run import LiveProgress

    with Progress(console=Console(file=io.StringIO()), disable=True) as progress:
        view = LiveProgress(progress, 2)
        for e in _rows("events.jsonl"):
            if e.get("condition") == "kA":
                view(e)
        view({"event": "final", "stream": 1, "play": 0, "id": "a"})  # another stream's: not counted again
        view({"event": "final", "stream": 0, "play": 1, "id": "a"})  # a second play: not counted again
        assert progress.tasks[0].completed == 2


def test_a_ctc_model_streams_natively_by_default_and_a_whisper_model_has_no_native_policy(tmp_path):
    ctc = tmp_path / "ctc"
    ctc.mkdir()
    (ctc / "config.json").write_text('{"model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC"]}')
    (ctc / "model.bin").write_bytes(b"x")
    base = ("defaults: {backend: transformers, model: %s, quant: fp32, dataset: DATA, stream: {enabled: true}}\n")
    assert _experiment(tmp_path, base % ctc).groups[0].stream["policy"] == "native"
    with pytest.raises(UserError) as exc:
        _experiment(tmp_path, base.replace("enabled: true", "enabled: true, policy: native") % "tiny.en")
    assert exc.value.problems == [
        "live.yaml: defaults.stream.policy: backend transformers has no native stream policy; it streams with "
        "local-agreement-2 (the utterance's growing buffer re-transcribed after each chunk, committing the words "
        "the last two hypotheses agree on)"]


def test_a_concurrency_axis_sweeps_one_container_each_and_a_rerun_runs_nothing(tmp_path):
    """A sweep over stream.concurrency on the recorded engine: a container (and a job with its stream) per value,
    a stream block per condition, the offline keys untouched by it, and a rerun that finds everything done."""
    from runner import sweep
    from runner.plan import plan_sweep

    _models(tmp_path)
    (tmp_path / "live.yaml").write_text(
        "defaults: {backend: faster-whisper, model: tiny.en, quant: int8, device: cpu, dataset: d, warmup: 0, "
        "telemetry: {sampler: none}, stream: {enabled: true, sustain_s: 3}}\ngrid: {stream.concurrency: [1, 2]}\n")

    def run(engine):
        exp = load_experiment(tmp_path / "live.yaml", root=tmp_path)
        planned = tuple(plan_sweep(exp, engine, tmp_path / "models", tmp_path / "out"))
        return planned, sweep.run_sweep(exp, tmp_path / "out", sweep.FixedPlan(planned),
                                        sweep.LocalDispatcher(engine, tmp_path / "out"), RecordingView(),
                                        sweep.SweepOptions())

    engine = RecordedEngine()
    planned, _ = run(engine)
    assert len(engine.launches) == 2 and sorted(j.spec.stream.concurrency for j in planned) == [1, 2]
    for job in planned:
        (cond,) = job.conditions
        data = json.loads((cond.result_dir / "summary.json").read_text())
        assert data["status"] == "ok" and data["stream"]["n_streams"] == job.spec.stream.concurrency
        assert cond.axes["stream.concurrency"] == job.spec.stream.concurrency
        assert json.loads((job.group_dir / "raw" / "job.json").read_text())["stream"] == job.spec.stream.to_json()
    again = RecordedEngine()
    run(again)
    assert again.launches == []


def test_a_stream_job_answered_utterance_by_utterance_is_an_error_never_an_offline_figure(tmp_path):
    """An image that reads job.stream but does not stream (the recorded offline container): its condition fails
    saying so, rather than publishing offline figures under stream settings."""
    from helpers import recorded_group

    job, g = recorded_group(tmp_path)
    job = replace(job, spec=replace(job.spec, stream=StreamJob()))
    g = replace(g, job=job)
    data = execute.finalize(g, job.conditions[0])
    assert data["status"] == "error" and data["error"] == merge.NOT_STREAMED


def test_a_streamed_groups_label_says_its_streams(tmp_path):
    live = plan.plan_run(tone_spec(tmp_path / "1", stream=StreamSettings(enabled=True, concurrency=4)), None)
    offline = plan.plan_run(tone_spec(tmp_path / "2"), None)
    assert live.label == "faster-whisper tiny.en int8 cpu · 4 streams of 500 ms chunks"
    assert offline.label == "faster-whisper tiny.en int8 cpu"
