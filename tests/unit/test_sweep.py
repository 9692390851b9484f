"""The one sweep (runner/sweep.py) on the recorded engine (tests/recorded_engine.py): planning, resume, --force,
--retry-failed, a failing group among healthy ones, an interruption, and a group a planner adds mid-sweep,
all without a container. What needs a real one (kill -9, an OOM kill, compose) stays in tests/e2e."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import RecordingView, decode_axes_experiment, tone_study, two_quant_experiment
from recorded_engine import RecordedEngine

from runner import merge, sweep, tables
from runner.errors import Interrupted
from runner.experiment import load_experiment
from runner.plan import plan_sweep
from runner.report.aggregate import aggregate
from runner.report.records import load_sweep

EXPERIMENT = two_quant_experiment("unit")


@pytest.fixture
def study(tmp_path):
    """Three tone utterances, a tiny.en folder, the experiment (2 groups x 2 repeats), a results folder."""
    tone_study(tmp_path, ("a", "b", "c"))
    (tmp_path / "unit.yaml").write_text(EXPERIMENT)
    return tmp_path


def _sweep(study: Path, engine: RecordedEngine, view=None, exp_text: str | None = None,
           planner=None, **options) -> sweep.SweepOutcome:
    if exp_text is not None:
        (study / "unit.yaml").write_text(exp_text)
    exp = load_experiment(study / "unit.yaml", root=study)
    out = study / "out"
    planner = planner or sweep.FixedPlan(tuple(plan_sweep(exp, engine, study / "models", out)))
    return sweep.run_sweep(exp, out, planner, sweep.LocalDispatcher(engine, out), view or RecordingView(),
                           sweep.SweepOptions(**options))


def _stored(study: Path) -> dict[str, int]:
    """Each stored summary's modification time, by condition key."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (study / "out").glob("conditions/*/summary.json")}


def _launched(engine: RecordedEngine) -> list[str]:
    return [key for _, keys in engine.launches for key in keys]


def test_a_sweep_runs_each_group_in_one_container_and_a_rerun_runs_nothing(study):
    """Two groups, one launch each with both repeats; every condition ok and in the tables. The same sweep
    again finds all four done (its view is told so), launches nothing and leaves every result untouched."""
    engine = RecordedEngine()
    outcome = _sweep(study, engine)
    assert [len(keys) for _, keys in engine.launches] == [2, 2] and outcome.exit_code == 0
    assert [r.status for r in outcome.records] == ["ok"] * 4 and outcome.records[0].summary["wer"] == 0.0
    keys = [r.condition["key"] for r in outcome.records]
    assert [json.loads(line)["condition"]["key"] for line in
            (study / "out" / "conditions.jsonl").read_text().splitlines()] == keys
    manifest = json.loads((study / "out" / "manifest.json").read_text())
    assert manifest["n_containers"] == 2 and manifest["n_conditions"] == 4 and manifest["finished_at"]
    before = _stored(study)

    again, view = RecordedEngine(), RecordingView()
    outcome = _sweep(study, again, view)
    assert again.launches == [] and view.starts[0].n_pending == 0 and view.starts[0].n_total == 4
    assert [r.condition["key"] for r in outcome.records] == keys and _stored(study) == before


def test_force_reruns_every_condition(study):
    """--force: the stored results are removed and every condition runs again, under the same keys."""
    _sweep(study, RecordedEngine())
    keys = set(_stored(study))
    engine, view = RecordedEngine(), RecordingView()
    _sweep(study, engine, view, force=True)
    assert sorted(_launched(engine)) == sorted(keys) and view.starts[0].n_pending == 4 and set(_stored(study)) == keys


@pytest.mark.parametrize("how", ["merge", "container", "raises"])
def test_one_groups_failure_never_stops_the_others_first_run_or_rerun(study, monkeypatch, how):
    """Issue 20 (item 4): a group whose merge raises on what its container wrote, or whose container cannot
    run at all, ends as its conditions failing with the reason; the other group runs and is ok; exit code 1.
    A rerun does not stumble on it either: nothing runs again (--retry-failed reruns the failed group)."""
    exp = load_experiment(study / "unit.yaml", root=study)
    bad = plan_sweep(exp, RecordedEngine(), study / "models", study / "out")[0]
    bad_keys = {c.key for c in bad.conditions}
    if how == "merge":
        real = merge.merge_utterances

        def merge_utterances(dataset, transcripts, *args, **kwargs):
            if any(t.get("condition") in bad_keys for t in transcripts):
                raise ValueError("a hypothesis that is not text")
            return real(dataset, transcripts, *args, **kwargs)

        monkeypatch.setattr(merge, "merge_utterances", merge_utterances)
        engine, reason = RecordedEngine(), "could not merge: ValueError('a hypothesis that is not text')"
    elif how == "raises":  # a defect that escapes execute_group itself
        real_group = sweep.execute_group

        def execute_group(job, pending, engine, **kw):
            if job.key == bad.key:
                raise RuntimeError("a defect the merge did not survive")
            return real_group(job, pending, engine, **kw)

        monkeypatch.setattr(sweep, "execute_group", execute_group)
        engine, reason = RecordedEngine(), "the group could not run: RuntimeError('a defect the merge did not survive')"
    else:
        engine = RecordedEngine(on_launch=lambda g: RuntimeError("the engine lost the container") if g == bad.key
                                else None)
        reason = "the runner could not run the container: RuntimeError('the engine lost the container')"
    outcome = _sweep(study, engine)
    by_key = {r.condition["key"]: r for r in outcome.records}
    assert len(by_key) == 4 and outcome.exit_code == 1  # the other group ran
    assert len(engine.launches) == (1 if how == "raises" else 2)
    for key, rec in by_key.items():
        if key in bad_keys:
            assert rec.status == "error" and rec.error == reason and rec.summary["wer"] is None
            assert rec.summary["n_failed"] == 3 and rec.condition["quant"] == bad.spec.quant
        else:
            assert rec.status == "ok" and rec.summary["wer"] == 0.0

    rerun = RecordedEngine()
    again = _sweep(study, rerun)
    assert rerun.launches == [] and again.exit_code == 1 and len(again.failed) == 2  # kept, not rerun

    monkeypatch.undo()
    retried = RecordedEngine()
    fixed = _sweep(study, retried, retry_failed=True)
    assert sorted(_launched(retried)) == sorted(bad_keys) and fixed.exit_code == 0


def test_an_interrupted_sweep_says_how_to_resume_and_the_rerun_runs_only_the_rest(study):
    """SIGTERM after the first condition: the sweep stops with the signal and a hint that counts what is kept;
    the finished condition stays, the cut one is recorded as interrupted; the rerun runs the three others."""
    view = RecordingView()
    with pytest.raises(Interrupted) as stop:
        _sweep(study, RecordedEngine(interrupt_after=1), view)
    assert stop.value.signal == "SIGTERM"
    assert stop.value.hint == (f"1 of 4 condition(s) are recorded in {study / 'out'}; the one in progress is "
                               f"recorded as interrupted; rerun the same command to resume")
    finished = _stored(study)
    statuses = sorted(json.loads((study / "out" / "conditions" / k / "summary.json").read_text())["status"]
                      for k in finished)
    assert statuses == ["interrupted", "ok"]
    [done] = [k for k in finished if tables.read_result(study / "out" / "conditions" / k, k)]

    engine = RecordedEngine()
    outcome = _sweep(study, engine)
    assert len(_launched(engine)) == 3 and done not in _launched(engine) and outcome.exit_code == 0
    assert _stored(study)[done] == finished[done]


def test_a_corrupt_stored_result_is_redone_not_taken_as_done(study):
    """A truncated utterances.jsonl: the view hears why, and only that condition runs again."""
    _sweep(study, RecordedEngine())
    utts = next((study / "out").glob("conditions/*/utterances.jsonl"))
    utts.write_text(utts.read_text()[:-20])
    engine, view = RecordedEngine(), RecordingView()
    _sweep(study, engine, view)
    assert _launched(engine) == [utts.parent.name] and view.starts[0].n_pending == 1
    assert any(level == "warning" and "redoing a condition whose stored result is corrupt" in text
               for level, text in view.notes)
    assert all(json.loads(line) for line in utts.read_text().splitlines())


def test_a_changed_audio_file_of_the_same_size_is_rerun_and_the_view_says_why(study):
    """New content in a.wav (same length and format): every condition has a new key, none is taken as done,
    and the view is told that four stored results are rerun because the audio changed."""
    _sweep(study, RecordedEngine())
    size = (study / "d" / "a.wav").stat().st_size
    t = np.arange(16000) / 16000
    sf.write(study / "d" / "a.wav", 0.1 * np.sin(2 * np.pi * 880 * t), 16000)
    assert (study / "d" / "a.wav").stat().st_size == size
    engine, view = RecordedEngine(), RecordingView()
    _sweep(study, engine, view)
    assert len(_launched(engine)) == 4 and view.starts[0].n_pending == 4
    assert view.starts[0].changed == {"the audio or references changed": 4}


class ProbeAfterFirst:
    """A planner that adapts (as live audio's capacity search will): after the first group's result it adds
    the next probe, a group of another experiment planned into the same folder; it hears every result."""

    def __init__(self, first, probe):
        self._first, self._probe = list(first), list(probe)
        self.heard: list[tuple[str, bool, list[str]]] = []

    def first(self):
        return self._first

    def after(self, done):
        self.heard.append((done.job.key, done.ran, [r.status for r in done.records]))
        return self._probe if done.job.key == self._first[0].key else []


def test_a_group_added_mid_sweep_runs_joins_the_tables_and_resumes_without_running_again(study):
    """The seam for adaptive planning: the planner adds a group after the first one's records are in; it runs
    after it, joins the tables and the manifest, and the view's totals. Rerun, every group is stored: the
    planner hears each with its stored records (ran False) and adds the same probe, which is found done."""
    engine = RecordedEngine()
    exp = load_experiment(study / "unit.yaml", root=study)
    first = [job for job in plan_sweep(exp, engine, study / "models", study / "out") if job.spec.quant == "int8"]
    (study / "probe.yaml").write_text(EXPERIMENT.replace("quants: [int8, fp32]", "quants: [fp32]"))
    probe = plan_sweep(load_experiment(study / "probe.yaml", root=study), engine, study / "models", study / "out")
    planner, view = ProbeAfterFirst(first, probe), RecordingView()
    outcome = _sweep(study, engine, view, planner=planner)
    assert [g for g, _ in engine.launches] == [first[0].key, probe[0].key]
    assert planner.heard == [(first[0].key, True, ["ok", "ok"]), (probe[0].key, True, ["ok", "ok"])]
    assert [job.key for job, _ in view.added_todo[0]] == [probe[0].key]
    assert len(outcome.records) == 4 and {r.condition["quant"] for r in outcome.records} == {"int8", "fp32"}
    assert len((study / "out" / "conditions.jsonl").read_text().splitlines()) == 4
    assert json.loads((study / "out" / "manifest.json").read_text())["n_containers"] == 2

    again = RecordedEngine()
    replay = ProbeAfterFirst(first, probe)
    outcome = _sweep(study, again, planner=replay)
    assert again.launches == [] and len(outcome.records) == 4
    assert replay.heard == [(first[0].key, False, ["ok", "ok"]), (probe[0].key, False, ["ok", "ok"])]


def test_the_sweep_command_here_plans_prepares_and_runs_through_local_sweep(study, monkeypatch, capsys):
    """`edgeasr sweep FILE --no-prepare` on this host: the command parses and renders, local_sweep runs the
    groups (here on the recorded engine), the report is drawn and the outcome printed; exit code 0."""
    from runner.commands import sweep as sweep_cmd

    engine = RecordedEngine()
    monkeypatch.setattr(sweep, "make_engine", lambda name: engine)
    monkeypatch.setattr(sweep_cmd, "draw_report", lambda out, console: None)
    args = argparse.Namespace(experiment=str(study / "unit.yaml"), out=study / "out", force=False,
                              retry_failed=False, models_dir=study / "models", engine="local", no_prepare=True,
                              plan=False, cluster=None, build_missing=False, quiet=False)
    monkeypatch.chdir(study)
    assert sweep_cmd.main(args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "edgeasr sweep unit: 2 containers, 4 conditions, 0 already done" in err
    assert "4 conditions recorded in" in err and "0 not ok" in err and len(engine.launches) == 2


def test_plan_shows_decode_axes_inside_one_container_and_threads_as_groups_and_writes_nothing(study, capsys,
                                                                                           monkeypatch):
    """Issue 10: --plan prints one JSON line per group; beam size varies inside one container (two conditions
    each), threads changes the container, and so does the batch size, which changes the memory a loaded model
    holds (issue 22, item 1): four groups; nothing is resolved, started or written."""
    from runner.commands import sweep as sweep_cmd

    (study / "axes.yaml").write_text("name: axes\n" + decode_axes_experiment("d"))
    monkeypatch.chdir(study)  # relative datasets start where the command runs
    args = argparse.Namespace(experiment=str(study / "axes.yaml"), out=study / "out", plan=True, quiet=True)
    assert sweep_cmd.main(args) == 0
    groups = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(groups) == 4 and all(len(g["conditions"]) == 2 for g in groups)
    assert sorted((g["decode"]["threads"], g["decode"]["batch_size"]) for g in groups) == [(1, 1), (1, 2), (2, 1),
                                                                                            (2, 2)]
    for g in groups:  # each condition's decode overrides go into the container; the threads and batch size do not
        assert sorted(c["axes"]["decode.beam_size"] for c in g["conditions"]) == [1, 5]
        assert len({c["axes"]["decode.batch_size"] for c in g["conditions"]}) == 1
        assert [c["decode"] for c in g["conditions"]] == [{}, {"beam_size": 5}]
    assert not (study / "out").exists(), "--plan starts nothing and writes nothing"


def test_the_console_views_totals_grow_with_groups_a_planner_adds(tmp_path):
    """Here the overall bar, on a fleet each target's bar (a new target gets its own; a target with nothing
    left to run gets none) count the conditions a planner adds while the sweep runs."""
    from types import SimpleNamespace

    from rich.console import Console

    from runner.commands.sweep import SweepConsoleView

    def job(target):
        return SimpleNamespace(spec=SimpleNamespace(settings=SimpleNamespace(target=target)), conditions=("c", "d"))

    a, b, c = job("cpu-a"), job("cpu-b"), job("cpu-c")
    here = SweepConsoleView(Console(quiet=True))
    with here.running(sweep.SweepStart("x", tmp_path, (a,), ((a, ["c", "d"]),))):
        here.added([(b, ["c"])])
        assert here._total(here.overall) == 3
    fleet = SweepConsoleView(Console(quiet=True), cluster="ray://h:1")
    with fleet.running(sweep.SweepStart("x", tmp_path, (a, b), ((a, ["c", "d"]), (b, [])))):
        assert list(fleet.bars) == ["cpu-a"]
        fleet.added([(a, ["e"]), (c, ["c"])])
        assert fleet._total(fleet.bars["cpu-a"]) == 3 and fleet._total(fleet.bars["cpu-c"]) == 1


def test_the_sweep_writes_records_the_report_reads_back_as_they_were(study):
    """One ConditionRecord type at the seam (issue 21 item 2): written by tables.py, read by the report."""
    outcome = _sweep(study, RecordedEngine())
    lines = (study / "out" / "conditions.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [r.to_json() for r in outcome.records]
    assert all(list(json.loads(line)) == ["schema_version", "condition", "status", "error", "summary"]
               for line in lines)
    read = load_sweep(study / "out").records
    assert [r.to_json() for r in read] == [r.to_json() for r in outcome.records]
    assert [(r.key, r.repeat, r.status) for r in read] == [(r.key, r.repeat, r.status) for r in outcome.records]
    assert [row.n_runs for row in aggregate(read)] == [2, 2]
    # the summary.json of each condition carries the same block
    for r in outcome.records:
        stored = json.loads((study / "out" / "conditions" / r.condition["key"] / "summary.json").read_text())
        assert stored["condition"] == json.loads(json.dumps(r.condition))
    # and a rebuild from the folders (what resume does) writes the same file
    tables.write_tables(study / "out", tables.collect([]) + list(read))
    assert (study / "out" / "conditions.jsonl").read_text().splitlines() == lines


class _OldImage(RecordedEngine):
    """An image labelled with contract 2 (before per-condition decode overrides): what a job for it says."""

    def __init__(self):
        super().__init__()
        self.jobs = []

    def image(self, spec):
        from runner.launch.docker_engine import ImageInfo

        return ImageInfo("sha256:" + "2" * 64, ["old:1"], {"org.edgeasr.contract": "2"})

    def run(self, spec, job, mounts, env, on_event, launch):
        self.jobs.append(job)
        return super().run(spec, job, mounts, env, on_event, launch)


def test_an_image_of_an_older_contract_runs_every_group_that_needs_nothing_newer(study, monkeypatch):
    """Issue 21 item 2: compatibility is a minimum contract version per feature, not an exact match. A contract-2
    image runs a sweep without decode overrides (its jobs are written in contract 2, which it reads); a group
    that overrides decoding per condition (contract 3) fails with one sentence naming the feature, and only it."""
    from edgeasr_entrypoint.contract import Job

    from runner import execute

    engine = _OldImage()
    outcome = _sweep(study, engine)
    assert outcome.exit_code == 0 and [r.status for r in outcome.records] == ["ok"] * 4
    assert {j["contract_version"] for j in engine.jobs} == {2}
    assert all(Job.from_json(j, speaks=2).contract_version == 2 for j in engine.jobs)  # what a contract-2 image reads

    (study / "axes.yaml").write_text("name: axes\n" + decode_axes_experiment("d"))
    monkeypatch.chdir(study)
    exp = load_experiment(study / "axes.yaml", root=study)
    planned = plan_sweep(exp, engine, study / "models", study / "axes")
    job = planned[0]
    plain = [c for c in job.conditions if not c.decode]
    assert execute.group_job_spec(job, plain, host_paths=True)["contract_version"] == 2
    with pytest.raises(Exception, match="the job uses per-condition decode overrides .*, which needs entrypoint "
                                        "contract 3; the image speaks 2"):
        execute.group_job_spec(job, list(job.conditions), host_paths=True)
    axes = sweep.run_sweep(exp, study / "axes", sweep.FixedPlan(tuple(planned)),
                           sweep.LocalDispatcher(engine, study / "axes"), RecordingView(), sweep.SweepOptions())
    assert axes.exit_code == 1 and {r.status for r in axes.records} == {"error"}
    assert all("needs entrypoint contract 3; the image speaks 2" in r.error for r in axes.records)
