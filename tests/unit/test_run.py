"""A run's orchestration (runner/run.py) on the recorded engine (tests/recorded_engine.py): what `edgeasr run`
does between parsing its flags and rendering the result, without a container. What needs a real one (the
container removed on Ctrl-C, a timeout, the local engine's transcripts) stays in tests/e2e/test_run_e2e.py."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest
from edgeasr_entrypoint.contract import Event
from helpers import tone_spec
from recorded_engine import RecordedEngine

from runner.errors import Interrupted
from runner.execute import Callbacks
from runner.run import run_benchmark


class View:
    """A RunView that writes down what it is told."""

    def __init__(self):
        self.notes, self.started_with, self.totals, self.utterances_ended = [], [], [], 0

    def note(self, text):
        self.notes.append(text)

    def started(self, spec):
        self.started_with.append(spec)

    @contextlib.contextmanager
    def progress(self, total):
        self.totals.append(total)

        def on_event(event):
            if event.get("event") == Event.UTTERANCE_END:
                self.utterances_ended += 1

        yield Callbacks(on_event=on_event)


class Reaping(RecordedEngine):
    """The recorded engine, with a container an earlier run of the same folder left behind."""

    def reap(self, folders):
        return [f"removed edgeasr-old (left by an earlier run of {folders[0]})"]


def test_a_run_of_two_repeats_is_one_container_and_a_summary_over_both(tmp_path):
    """Two repeats: one launch with a condition each, the view told in order (what was reaped, the start, the
    progress over both repeats' utterances), and the run's summary: the first repeat's figures, every repeat's
    beside them, the tables written."""
    spec = replace(tone_spec(tmp_path), repeats=2)
    engine, view = Reaping(), View()
    summary = run_benchmark(spec, tmp_path / "models", view, engine=engine)
    assert [len(keys) for _, keys in engine.launches] == [2]
    assert view.notes == [f"removed edgeasr-old (left by an earlier run of {spec.out})"]
    assert view.started_with == [spec] and view.totals == [4] and view.utterances_ended == 4
    assert summary["status"] == "ok" and summary["n_utterances"] == 4 and summary["n_failed"] == 0
    assert summary["repeats"]["n"] == 2 and summary["repeats"]["status"] == ["ok", "ok"]
    assert summary["wer"] == 0.0
    assert json.loads((spec.out / "summary.json").read_text())["repeats"]["n"] == 2
    assert len((spec.out / "conditions.jsonl").read_text().splitlines()) == 2


def test_a_run_of_one_condition_is_that_conditions_summary(tmp_path):
    """No repeats: the run's summary is its one condition's (no repeats block, no tables)."""
    spec = tone_spec(tmp_path)
    summary = run_benchmark(spec, tmp_path / "models", View(), engine=RecordedEngine(hypothesis=lambda k, u: "x"))
    assert summary["status"] == "ok" and "repeats" not in summary
    assert summary["wer"] == 1.0  # every word of "a tone" / "b tone" replaced by "x"
    assert not (spec.out / "conditions.jsonl").exists()


def test_an_interrupted_run_says_what_finished_and_that_a_run_does_not_resume(tmp_path):
    """SIGTERM after the first of two repeats: Interrupted with the signal and the hint, and the summary on disk
    says interrupted, with the first repeat's utterances finished."""
    spec = replace(tone_spec(tmp_path), repeats=2)
    with pytest.raises(Interrupted) as stop:
        run_benchmark(spec, tmp_path / "models", View(), engine=RecordedEngine(interrupt_after=1))
    assert stop.value.signal == "SIGTERM"
    assert stop.value.hint == (f"2 of 4 utterances finished; summary (status interrupted) in "
                               f"{spec.out / 'summary.json'}; a run does not resume: rerun the command with "
                               "another --out")
    stored = json.loads((spec.out / "summary.json").read_text())
    assert stored["repeats"]["status"] == ["ok", "interrupted"] and stored["status"] == "interrupted"


def test_the_repeats_summary_is_built_once_from_a_frozen_repeats_record(tmp_path):
    """Issue 21 item 2: over several repeats, the run's summary is the first repeat's with a frozen Repeats
    record's block and headline (status, error, counts; the busy host's record) in one step: the keys in the
    order summary.json always had them, and no repeat's summary edited."""
    from dataclasses import FrozenInstanceError

    from runner.results import ConditionRecord
    from runner.run import Repeats, run_summary

    def record(i, status, error=None, busy=False):
        summary = {"status": status, "error": error, "n_utterances": 2, "n_failed": 0 if status == "ok" else 1,
                   "n_not_run": 0, "wer": 0.1 * i, "rtf": 0.2, "load_s": 1.0, "inference_s": 2.0,
                   "peak_rss_mib": 100.0, "energy": {"energy_per_audio_s_j": 0.5} if i else None}
        if busy:
            summary["host_load"] = {"window": {"cpu_share": 0.9}, "busy": True, "busy_reason": "a compile ran"}
        return ConditionRecord.of({"key": f"r{i}", "repeat": i + 1}, summary)

    records = [record(0, "ok"), record(1, "partial", "one failed", busy=True)]
    before = [dict(r.summary) for r in records]
    rep = Repeats.of(tmp_path, records)
    with pytest.raises(FrozenInstanceError):
        rep.n = 3
    out = run_summary(tmp_path, records)
    assert [dict(r.summary) for r in records] == before
    assert list(out) == ["status", "error", "n_utterances", "n_failed", "n_not_run", "wer", "rtf", "load_s",
                         "inference_s", "peak_rss_mib", "energy", "repeats", "host_load"]
    assert out["status"] == "partial" and out["error"] == "one failed" and out["n_failed"] == 1
    assert out["n_utterances"] == 4 and out["wer"] == 0.0
    assert out["repeats"] == {"n": 2, "status": ["ok", "partial"], "wer": [0.0, 0.1], "rtf": [0.2, 0.2],
                              "load_s": [1.0, 1.0], "inference_s": [2.0, 2.0], "peak_rss_mib": [100.0, 100.0],
                              "energy_per_audio_s_j": [None, 0.5],
                              "folders": [str(tmp_path / "conditions" / "r0"), str(tmp_path / "conditions" / "r1")]}
    assert out["host_load"] == records[1].summary["host_load"]
    assert json.loads((tmp_path / "summary.json").read_text()) == out
