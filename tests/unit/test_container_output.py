"""Issue 20, item 4: malformed container output is a failed condition, never a crash and never a number.

Each case starts from the recorded two-condition container (tests/fixtures/group_raw: conditions kA and kB over
utterances a and b), breaks one thing the way a hostile or broken image could, and merges it as the executor
does: the merge never raises, the condition that owns the broken record is an error whose sentence names it,
and nothing published is NaN, infinite or below 0. The fuzz test at the end does the same over a few hundred
seeded random breakages.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import tone_spec

from runner import execute, merge, plan
from runner.trust import validate
from runner.experiment import Condition
from runner.telemetry.samplers.base import NullSampler

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "group_raw"
NAN, INF = float("nan"), float("inf")


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    """A resolved spec over two one-second tones (ids a, b) with references; built once for the module."""
    return tone_spec(tmp_path_factory.mktemp("spec"), "sweep")


def _rows(name: str) -> list[dict]:
    return [json.loads(x) for x in (FIXTURE / name).read_text().splitlines()]


def _group(spec, folder: Path, events=None, transcripts=None, status=None, *, text=None):
    """The recorded container's output, with the given rows (or file texts, ``text``) in place of its own."""
    raw = folder / "g" / "raw"
    shutil.copytree(FIXTURE, raw)
    if events is not None:
        (raw / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if transcripts is not None:
        (raw / "transcripts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in transcripts))
    if status is not None:
        (raw / "status.json").write_text(json.dumps(status))
    for name, body in (text or {}).items():
        (raw / name).write_text(body)
    conds = tuple(plan.PlannedCondition(k, "g", Condition(dataset=str(spec.dataset.path), noise_type="clean",
                                                          snr_db=None, repeat=i), {"type": "clean", "snr_db": None},
                                        "clean", ("a", "b"), result_dir=folder / "conditions" / k)
                  for i, k in enumerate(("kA", "kB")))
    job = plan.GroupJob("g", spec, None, conds, folder / "g")
    g = execute._Group(job, list(conds), raw, NullSampler("off"), "telemetry turned off", {}, "docker", {})
    return job, g


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"{name} written into JSON")
    return json.loads(text, parse_constant=refuse)


FIGURES = ("audio_s", "wer", "cer", "rtf", "rtfx", "load_s", "warmup_s", "inference_s", "container_s",
           "peak_rss_mib", "peak_rss_excl_audio_mib", "rss_after_load_mib", "model_size_mb", "n_params")
UTTERANCE_FIGURES = ("duration_s", "latency_s", "processing_s", "wer")


def assert_published_sane(folder: Path) -> dict:
    """What the condition's folder holds: JSON without NaN or infinities, every figure finite and >= 0."""
    data = _strict_json((folder / "summary.json").read_text())
    for name in FIGURES:
        v = data.get(name)
        assert v is None or (math.isfinite(v) and v >= 0), (name, v)
    for v in (data.get("latency_ms") or {}).values():
        assert math.isfinite(v) and v >= 0
    for line in (folder / "utterances.jsonl").read_text().splitlines():
        u = _strict_json(line)
        for name in UTTERANCE_FIGURES:
            assert u[name] is None or (math.isfinite(u[name]) and u[name] >= 0), (name, u)
    assert data["n_failed"] <= data["n_utterances"]
    return data


def _set(rows, match, **fields):
    """``rows`` with the first row matching ``match`` (a dict of field values) changed: a value of ``...``
    deletes the field."""
    rows = [dict(r) for r in rows]
    row = next(r for r in rows if all(r.get(k) == v for k, v in match.items()))
    for k, v in fields.items():
        if v is ...:
            row.pop(k, None)
        else:
            row[k] = v
    return rows


A = {"id": "a", "condition": "kA"}
A_END = {"event": "utterance_end", "id": "a", "condition": "kA"}

BROKEN_TRANSCRIPTS = {
    "zero duration": (dict(duration_s=0), "duration_s is 0: seconds of audio must be more than 0"),
    "null duration": (dict(duration_s=None), "duration_s is missing"),
    "string duration": (dict(duration_s="1.0"), "duration_s is '1.0', not a number"),
    "negative duration": (dict(duration_s=-1.0), "duration_s is -1.0"),
    "NaN duration": (dict(duration_s=NAN), "duration_s is nan, not a finite number"),
    "missing duration": (dict(duration_s=...), "duration_s is missing"),
    "negative processing": (dict(processing_s=-5.0), "processing_s is -5.0, below 0"),
    "string processing": (dict(processing_s="fast"), "processing_s is 'fast', not a number"),
    "infinite processing": (dict(processing_s=INF), "processing_s is inf, not a finite number"),
    "negative latency": (dict(latency_s=-5.0), "latency_s is -5.0, below 0"),
    "hypothesis a number": (dict(hypothesis=5), "hypothesis is 5, not text"),
    "hypothesis a list": (dict(hypothesis=["a"]), "hypothesis is ['a'], not text"),
    "missing status": (dict(status=...), "status is None, not 'ok' or 'error'"),
    "processing longer than its window": (dict(processing_s=9.0), "processing_s 9 s is longer than its window"),
    "duration unlike its events'": (dict(duration_s=3.0), "duration_s 3 s, but its events say 1 s"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TRANSCRIPTS))
def test_a_broken_result_fails_its_condition_with_a_sentence_and_publishes_no_bad_figure(spec, tmp_path, case):
    """Today: TypeError or ZeroDivisionError in the merge (no summary.json), or RTF -2.375 and a latency of
    -2375 ms with status ok, or NaN in summary.json."""
    fields, words = BROKEN_TRANSCRIPTS[case]
    job, g = _group(spec, tmp_path, transcripts=_set(_rows("transcripts.jsonl"), A, **fields))
    a = execute.finalize(g, job.conditions[0])
    b = execute.finalize(g, job.conditions[1])
    assert a["status"] == "error" and words in a["error"] and "utterance 'a'" in a["error"], a["error"]
    assert a["error"].startswith("the container's output broke the contract: ")
    assert b["status"] == "ok" and b["error"] is None  # the other condition's records were fine
    assert_published_sane(tmp_path / "conditions" / "kA")
    utts = [json.loads(x) for x in (tmp_path / "conditions" / "kA" / "utterances.jsonl").read_text().splitlines()]
    assert utts[0]["status"] == "error" and words in utts[0]["error"]
    assert utts[1]["status"] == "ok"  # the record that was fine is still merged: its figures are real
    assert a["rtf"] == pytest.approx(0.25) and a["latency_ms"]["p50"] == pytest.approx(250.0)


def test_a_duration_unlike_the_audio_files_own_fails_the_condition(spec, tmp_path):
    """The result and its events agree on 3 s; the file's header says 1 s: the host believes the file."""
    events = _set(_set(_rows("events.jsonl"), A_END, duration_s=3.0),
                  {"event": "utterance_start", "id": "a", "condition": "kA"}, duration_s=3.0)
    job, g = _group(spec, tmp_path, events=events, transcripts=_set(_rows("transcripts.jsonl"), A, duration_s=3.0))
    a = execute.finalize(g, job.conditions[0])
    assert a["status"] == "error" and "utterance 'a': duration_s 3 s, but its audio file is 1 s long" in a["error"]
    assert a["audio_s"] == pytest.approx(1.0)  # b's second only: a's claim is not counted
    assert execute.header_seconds(tmp_path / "missing.wav") is None
    fifo = tmp_path / "fifo.wav"
    import os

    os.mkfifo(fifo)
    assert execute.header_seconds(fifo) is None  # never waited on


def test_a_null_latency_is_the_processing_time_as_when_it_is_absent(spec, tmp_path):
    job, g = _group(spec, tmp_path, transcripts=_set(_rows("transcripts.jsonl"), A, latency_s=None))
    a = execute.finalize(g, job.conditions[0])
    assert a["status"] == "ok" and a["latency_ms"]["p50"] == pytest.approx(250.0)


def test_an_utterance_reported_twice_keeps_neither_result(spec, tmp_path):
    rows = _rows("transcripts.jsonl")
    job, g = _group(spec, tmp_path, transcripts=[*rows, {**rows[0], "hypothesis": "another answer"}])
    a = execute.finalize(g, job.conditions[0])
    assert a["status"] == "error" and "utterance 'a', condition kA, is reported 2 times" in a["error"]
    assert a["n_failed"] == 1
    assert_published_sane(tmp_path / "conditions" / "kA")


@pytest.mark.parametrize("bad_id", [None, ["a"], 7])
def test_a_result_without_a_text_id_fails_the_condition(spec, tmp_path, bad_id):
    """Today: ``unhashable type: 'list'`` ended the merge; a missing id was dropped silently."""
    job, g = _group(spec, tmp_path, transcripts=_set(_rows("transcripts.jsonl"), A, id=bad_id))
    a = execute.finalize(g, job.conditions[0])
    assert a["status"] == "error" and f"id is {bad_id!r}, not text" in a["error"]
    assert_published_sane(tmp_path / "conditions" / "kA")


def test_a_clock_running_backwards_fails_the_condition_it_belongs_to(spec, tmp_path):
    """kB's condition_end stamped before everything: kB fails with the reason, kA (whose events were in order)
    stands; no window is ever negative."""
    events = _set(_rows("events.jsonl"), {"event": "condition_end", "condition": "kB"}, mono_ns=5)
    job, g = _group(spec, tmp_path, events=events)
    a, b = (execute.finalize(g, c) for c in job.conditions)
    assert a["status"] == "ok"
    assert b["status"] == "error" and "the monotonic clock runs backwards" in b["error"]
    assert "condition_end" in b["error"]
    for k in ("kA", "kB"):
        assert_published_sane(tmp_path / "conditions" / k)


@pytest.mark.parametrize("fields, words", [
    (dict(mono_ns=...), "mono_ns is None, not a time in nanoseconds"),
    (dict(t_ns="now"), "t_ns is 'now', not a time in nanoseconds"),
    (dict(event=...), "an event whose name is None, not text"),
    (dict(processing_s=NAN), "processing_s is nan"),
    (dict(condition=["kA"]), "condition is ['kA'], not text"),
])
def test_a_broken_event_fails_the_condition(spec, tmp_path, fields, words):
    job, g = _group(spec, tmp_path, events=_set(_rows("events.jsonl"), A_END, **fields))
    a = execute.finalize(g, job.conditions[0])
    assert a["status"] == "error" and words in a["error"], a["error"]
    assert_published_sane(tmp_path / "conditions" / "kA")


@pytest.mark.parametrize("fields, words", [
    (dict(peak_rss_mb="lots"), "status.json: peak_rss_mb is 'lots', not a number"),
    (dict(peak_rss_mb=NAN), "status.json: peak_rss_mb is nan"),
    (dict(audio_cache_mb=-100.0), "status.json: audio_cache_mb is -100.0, below 0"),
    (dict(versions=["x"]), "status.json: versions is ['x'], not a map"),
    (dict(n_params=1.5), "status.json: n_params is 1.5, not a count"),
    (dict(status="fine"), "status.json: status is 'fine', not 'ok' or 'error'"),
])
def test_a_broken_status_record_fails_every_condition_and_publishes_none_of_it(spec, tmp_path, fields, words):
    status = {**json.loads((FIXTURE / "status.json").read_text()), **fields}
    job, g = _group(spec, tmp_path, status=status)
    run = SimpleNamespace(timed_out=False, oom_killed=False, exit_code=0, limit_exceeded=None, started_ns=0,
                          exited_ns=0, create_to_start_s=0.1, wall_s=1.0)
    records = execute._final_pass(g, run, None, None, execute.Callbacks())
    for r in records:
        assert r.status == "error" and words in r.error, r.error
    for k in ("kA", "kB"):
        assert_published_sane(tmp_path / "conditions" / k)


def test_memory_figures_that_contradict_each_other_are_not_published(spec, tmp_path):
    """An audio cache larger than the peak would make the backend's share negative: not published."""
    events = _set(_rows("events.jsonl"), {"event": "condition_end", "condition": "kA"}, audio_cache_mb=900.0)
    job, g = _group(spec, tmp_path, events=events)
    a = execute.finalize(g, job.conditions[0])
    assert a["status"] == "error" and "peak_rss_excl_audio_mib came out as -650.0" in a["error"]
    assert a["peak_rss_excl_audio_mib"] is None and "contradict" in a["unavailable"]["peak_rss_excl_audio_mib"]


def _run(exit_code=0, **kw):
    return SimpleNamespace(**{"timed_out": False, "oom_killed": False, "exit_code": exit_code,
                              "limit_exceeded": None, "started_ns": 0, "exited_ns": 0, "create_to_start_s": 0.1,
                              "wall_s": 1.0, **kw})


def test_a_container_that_reports_an_error_after_complete_events_is_never_ok(spec, tmp_path):
    """Today: complete events, then status error and exit 1, was status ok with exit 0, its error nowhere. Each
    condition had finished (and was recorded ok while the container ran); the final pass fails them all with the
    image's error."""
    status = {**json.loads((FIXTURE / "status.json").read_text()), "status": "error",
              "error": "RuntimeError: the backend lost its mind"}
    job, g = _group(spec, tmp_path, status=status)
    for c in job.conditions:  # as the executor does when each condition_end arrives
        assert execute.finalize(g, c)["status"] == "ok"
    records = execute._final_pass(g, _run(1), None, None, execute.Callbacks())
    for r in records:
        assert r.status == "error"
        assert r.error == ("the container failed after this condition had finished: RuntimeError: the backend "
                              "lost its mind")
        stored = json.loads((tmp_path / "conditions" / r.condition["key"] / "summary.json").read_text())
        assert stored["status"] == "error" and "lost its mind" in stored["error"]


def test_a_container_that_exits_non_zero_with_an_ok_status_is_never_ok(spec, tmp_path):
    job, g = _group(spec, tmp_path)
    for c in job.conditions:
        execute.finalize(g, c)
    records = execute._final_pass(g, _run(3), None, None, execute.Callbacks())
    assert {r.status for r in records} == {"error"}
    assert records[0].error == "the container failed after this condition had finished: the container exited " \
                                  "with code 3"


def test_a_container_the_host_stopped_keeps_the_conditions_it_finished(spec, tmp_path):
    """Out of memory (or a time-out, a bound passed) is the host's or the kernel's doing, not the image's word on
    its results: the conditions it finished stand."""
    job, g = _group(spec, tmp_path, status={"status": "error", "error": "killed"})
    execute.finalize(g, job.conditions[0])
    records = execute._final_pass(g, _run(137, oom_killed=True), None, None, execute.Callbacks())
    assert [r.status for r in records] == ["ok", "error"]


def test_live_events_that_break_the_contract_reach_no_view():
    assert validate.live_event({"event": "utterance_end", "id": "a", "t_ns": 1, "mono_ns": 1,
                                "processing_s": "x"}) is None
    assert validate.live_event(["not", "an", "event"]) is None
    assert validate.live_event({"event": "utterance_end", "id": "a", "t_ns": 1, "mono_ns": 1, "duration_s": 1.0,
                                "processing_s": None}) is None
    assert validate.live_event({"event": "condition_end", "condition": ["k"], "t_ns": 1, "mono_ns": 1}) is None
    good = {"event": "utterance_end", "id": "a", "t_ns": 1, "mono_ns": 1, "processing_s": 0.1, "duration_s": 1.0}
    assert validate.live_event(good) == good


class _ReplayEngine:
    """Replays a container's output: ``live`` events on the stream (as the engine hands them over), the raw
    files from ``raw``; or raises ``fail``."""

    name = "local"
    host_paths = True

    def __init__(self, raw: Path, live=(), exit_code=0, fail: Exception | None = None):
        self.raw, self.live, self.exit_code, self.fail = raw, list(live), exit_code, fail

    def run(self, spec, job, mounts, env, on_event, launch):
        from runner.launch.docker_engine import ContainerRun

        if self.fail is not None:
            raise self.fail
        for f in self.raw.iterdir():
            shutil.copy(f, launch.raw_dir / f.name)
        for event in self.live:
            on_event(event)
        return ContainerRun(self.exit_code, False, False, launch.raw_dir / "container.log", 0.1, 1.0, 0, 0)


def _job(spec, folder: Path):
    conds = tuple(plan.PlannedCondition(k, "g", Condition(dataset=str(spec.dataset.path), noise_type="clean",
                                                          snr_db=None, repeat=i), {"type": "clean", "snr_db": None},
                                        "clean", ("a", "b"), result_dir=folder / "conditions" / k)
                  for i, k in enumerate(("kA", "kB")))
    return plan.GroupJob("g", spec, None, conds, folder / "g")


def test_broken_live_events_neither_crash_the_run_nor_its_views(spec, tmp_path):
    """Today a live utterance_end whose processing_s was text crashed `edgeasr run`'s progress view, and a
    condition that was a list crashed the executor, with the container's results lost."""
    from rich.console import Console
    from rich.progress import Progress

    from runner.commands.run import LiveProgress

    live = [*_rows("events.jsonl"), {"event": "utterance_end", "id": "a", "condition": "kA", "t_ns": 1, "mono_ns": 1,
                                     "processing_s": "x", "duration_s": 1.0},
            {"event": "condition_end", "condition": ["kA"], "t_ns": 1, "mono_ns": 1}, "text", 5]
    with Progress(console=Console(file=open("/dev/null", "w"))) as progress:
        view = LiveProgress(progress, 4)
        job = _job(spec, tmp_path)
        result = execute.execute_group(job, list(job.conditions), _ReplayEngine(FIXTURE, live), host={},
                                       owner_folder=tmp_path, callbacks=execute.Callbacks(on_event=view))
    assert [r.status for r in result.records] == ["ok", "ok"]
    assert view.proc_s == pytest.approx(1.0)


def test_a_group_whose_engine_or_merge_fails_unexpectedly_records_every_condition(spec, tmp_path, monkeypatch):
    """What would have ended a sweep (an exception out of the engine, a merge that raises twice): each
    condition of the group is an error record with the reason, and execute_group returns."""
    job = _job(spec, tmp_path / "engine")
    result = execute.execute_group(job, list(job.conditions), _ReplayEngine(FIXTURE, fail=RuntimeError("boom")),
                                   host={}, owner_folder=tmp_path)
    assert [r.status for r in result.records] == ["error", "error"]
    assert "the runner could not run the container: RuntimeError('boom')" in result.records[0].error

    def broken(*_args, **_kwargs):
        raise ValueError("a defect of ours")

    monkeypatch.setattr(merge, "score", broken)
    job = _job(spec, tmp_path / "merge")
    result = execute.execute_group(job, list(job.conditions), _ReplayEngine(FIXTURE, _rows("events.jsonl")),
                                   host={}, owner_folder=tmp_path)
    assert [r.status for r in result.records] == ["error", "error"]
    assert "could not merge: ValueError('a defect of ours')" in result.records[0].error
    stored = json.loads((tmp_path / "merge" / "conditions" / "kA" / "summary.json").read_text())
    assert stored["status"] == "error" and stored["condition"]["key"] == "kA"


# -- fuzz ---------------------------------------------------------------------------------------------------

HOSTILE = (None, "", "1.0", "x" * 12, -1, 0, -1e9, 1e308, 10 ** 30, NAN, INF, -INF, True, False, [], {}, [1],
           {"a": NAN}, [[[[]]]], 0.25, 1.0, "kA", "a")
FIELDS = ("event", "t_ns", "mono_ns", "id", "condition", "status", "hypothesis", "error", "duration_s",
          "processing_s", "latency_s", "batch_size", "peak_rss_mb", "audio_cache_mb", "peak_vram_mb",
          "peak_rss_scope", "versions", "n_params", "model_size_mb", "rss_after_load_mb", "device_used")


def _mutate(rng: random.Random, rows: list) -> list:
    rows = [dict(r) if isinstance(r, dict) else r for r in rows]
    for _ in range(rng.randint(1, 4)):
        what = rng.random()
        if not rows:
            rows.append({})
        i = rng.randrange(len(rows))
        if what < 0.45 and isinstance(rows[i], dict):
            rows[i][rng.choice(FIELDS)] = rng.choice(HOSTILE)
        elif what < 0.6 and isinstance(rows[i], dict):
            rows[i].pop(rng.choice(list(rows[i]) or ["id"]), None)
        elif what < 0.7:
            rows.insert(rng.randrange(len(rows) + 1), dict(rows[i]) if isinstance(rows[i], dict) else rows[i])
        elif what < 0.8:
            j = rng.randrange(len(rows))
            rows[i], rows[j] = rows[j], rows[i]
        elif what < 0.87:
            del rows[i]
        elif what < 0.94:
            rows.insert(rng.randrange(len(rows) + 1), rng.choice((["a list"], "a string", 5, None, NAN)))
        elif isinstance(rows[i], dict) and isinstance(rows[i].get("mono_ns"), int):
            rows[i]["mono_ns"] -= rng.randint(1, 10 ** 9)
    return rows


def _jsonl(rng: random.Random, rows: list) -> str:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    return text + ("{\"cut-off" if rng.random() < 0.1 else "")


def test_fuzz_the_merge_never_raises_never_writes_nan_and_publishes_only_sane_figures(spec, tmp_path, monkeypatch):
    """300 seeded random breakages of the recorded container's events, transcripts and status record, each merged
    as the executor does (per condition as it ends, then the final pass with an exit code): nothing raises, no
    NaN or infinity is written, and every figure published is finite and >= 0."""
    monkeypatch.setattr("os.fsync", lambda fd: None)  # atomic writes are not under test here; fsync is slow
    rng = random.Random(20)
    events, transcripts = _rows("events.jsonl"), _rows("transcripts.jsonl")
    status = json.loads((FIXTURE / "status.json").read_text())
    for case in range(300):
        text = {}
        kinds = rng.sample(("events", "transcripts", "status"), rng.randint(1, 3))
        if "events" in kinds:
            text["events.jsonl"] = _jsonl(rng, _mutate(rng, events))
        if "transcripts" in kinds:
            text["transcripts.jsonl"] = _jsonl(rng, _mutate(rng, transcripts))
        if "status" in kinds:
            mutated = _mutate(rng, [status])
            text["status.json"] = json.dumps(mutated[0] if mutated and rng.random() < 0.9 else mutated)
        folder = tmp_path / str(case)
        job, g = _group(spec, folder, text=text)
        for c in job.conditions:
            if rng.random() < 0.5:
                execute.finalize(g, c)
        execute._final_pass(g, _run(rng.choice((0, 0, 1, 3))), None, None, execute.Callbacks())
        for c in job.conditions:
            data = assert_published_sane(c.result_dir)
            assert data["status"] in ("ok", "partial", "error"), (case, data["status"])
            assert "could not merge" not in (data["error"] or ""), (case, data["error"])  # a defect of ours
            # the last guard caught a figure the checks let through (only memory figures may contradict each other)
            assert [m for m in re.findall(r"(\w+) came out as", data["error"] or "")
                    if m != "peak_rss_excl_audio_mib"] == [], (case, data["error"])
            if data["status"] == "ok":
                assert data["n_failed"] == 0 and data["rtf"] is not None and data["rtf"] >= 0


def test_check_image_does_not_pass_an_image_whose_records_break_the_contract(tmp_path):
    """check-image reads the tiny job's output through the same checks: a broken record is its own failed line,
    and the job does not pass (so the hardened settings are not blamed for it either)."""
    from runner.commands import check_image

    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw)
    good = merge.read_raw(raw)
    assert good.rejected == ()
    (raw / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in _set(_rows("events.jsonl"), A_END,
                                                                                  processing_s=-1.0)))
    bad = merge.read_raw(raw)
    assert not check_image._passes(_run(), bad)
    assert "utterance_end: processing_s is -1.0, below 0" in validate.sentence(bad.rejected)
