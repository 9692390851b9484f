"""The planner and the executor's pure parts: plans for `run`, condition keys and job entries, and a recorded
two-condition container (tests/fixtures/group_raw, JSONL) merged into condition results without any engine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import recorded_group as _group
from helpers import tone_spec as _spec
from helpers import write_tone

from runner import execute, plan, tables
from runner.experiment import Condition

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "group_raw"


def test_a_run_is_a_plan_of_one_group_writing_into_its_own_folder(tmp_path):
    """One repeat: one clean condition over every utterance, its result in the run folder itself."""
    spec = _spec(tmp_path)
    job = plan.plan_run(spec, None)
    assert len(job.conditions) == 1 and job.group_dir == spec.out and job.command == "run"
    (cond,) = job.conditions
    assert cond.result_dir == spec.out and cond.ids == ("a", "b") and cond.noise == {"type": "clean", "snr_db": None}


def test_run_repeats_and_limit_make_one_condition_each_in_conditions_folders(tmp_path):
    """--repeats 3 --limit 1: three conditions of one group (one model load), each over the first utterance,
    each with its own folder and key."""
    spec = _spec(tmp_path)
    job = plan.plan_run(spec, None, repeats=3, limit=1)
    assert [c.condition.repeat for c in job.conditions] == [0, 1, 2]
    assert all(c.ids == ("a",) for c in job.conditions) and len(job.spec.dataset.utterances) == 1
    assert len({c.key for c in job.conditions}) == 3
    assert all(c.result_dir.parent == spec.out / "conditions" for c in job.conditions)


def test_decode_overrides_travel_in_the_job_entry_only_when_present():
    """The contract's condition.decode is sent only for a condition that changes decoding in the container."""
    cond = Condition(dataset="/d", noise_type="clean", snr_db=None, repeat=0)
    plain = plan.PlannedCondition("k1", "g", cond, {"type": "clean", "snr_db": None}, "clean", ("a",))
    beam = replace(plain, key="k2", decode={"beam_size": 1})
    assert "decode" not in plain.job_entry().to_json()
    assert beam.job_entry().to_json()["decode"] == {"beam_size": 1}
    assert "beam_size 1" in beam.label


def test_effective_settings_fold_decode_overrides_into_the_group_settings():
    """A condition's key is made from what it ran: the group's decode with its overrides applied."""
    group = {"backend": "faster-whisper", "decode": {"beam_size": 5, "batch_size": 1}}
    assert plan._effective(group, {}) is group
    assert plan._effective(group, {"beam_size": 1})["decode"] == {"beam_size": 1, "batch_size": 1}
    assert group["decode"]["beam_size"] == 5  # the group's own settings are not changed


def test_local_engine_job_names_the_noise_files_where_they_are(tmp_path):
    """The local engine has no mounts: noise files in the job are the host's paths, not /noise/..."""
    spec = _spec(tmp_path)
    cond = Condition(dataset=str(spec.dataset.path), noise_type="file", snr_db=5.0, repeat=0)
    pc = plan.PlannedCondition("k", "g", cond, {"type": "file", "snr_db": 5.0, "files": ["/noise/x/n.wav"]}, "file",
                               ("a",), result_dir=tmp_path / "c")
    job = plan.GroupJob("g", spec, None, (pc,), tmp_path / "g", noise_dir=tmp_path / "noise")
    assert execute.group_job_spec(job, [pc], host_paths=True)["conditions"][0]["noise"]["files"] == \
        [f"{tmp_path / 'noise'}/x/n.wav"]
    assert execute.group_job_spec(job, [pc], host_paths=False)["conditions"][0]["noise"]["files"] == ["/noise/x/n.wav"]


def test_each_condition_of_a_recorded_container_gets_its_own_result(tmp_path):
    """From the recorded events and transcripts: each condition is scored on its own transcripts (kA all right,
    kB one word wrong), with its own inference window and its own memory peak, the host facts and its axes."""
    job, g = _group(tmp_path)
    a = execute.finalize(g, job.conditions[0])
    b = execute.finalize(g, job.conditions[1])
    assert a["status"] == b["status"] == "ok"
    assert a["wer"] == 0.0 and b["wer"] == pytest.approx(0.25)
    assert a["inference_s"] == pytest.approx(0.52) and a["load_s"] == pytest.approx(1.0)
    assert (a["peak_rss_mib"], b["peak_rss_mib"]) == (250.0, 240.0)
    assert a["host"] == {"cpu_count": 2} and a["condition"]["axes"] == {"repeat": 0}
    assert a["model_ref"] == str(tmp_path / "models" / "tiny.en") and a["data_path"] == str(tmp_path / "d")
    stored = json.loads((tmp_path / "conditions" / "kB" / "summary.json").read_text())
    assert stored["condition"]["key"] == "kB" and tables.read_result(tmp_path / "conditions" / "kB", "kB")


def test_each_condition_reports_the_containers_memory_over_its_own_window(tmp_path):
    """Regression (issue 22, item 1): memory per condition depended on what ran before it in the container. The
    host samples the container's cgroup; each condition's container_memory is the peak over its own window (kA
    at 900 MiB, kB at 400 after it), what was resident at its start, the windows' peaks and the source; a run
    with no cgroup reading says why."""
    from runner.telemetry.memory import Cgroup, ContainerMemorySampler
    from runner.telemetry.samplers.base import Sample

    job, g = _group(tmp_path)
    g.memory = ContainerMemorySampler(10, root=tmp_path)
    g.memory.cgroup = Cgroup(1, tmp_path / "memory.usage_in_bytes", tmp_path / "memory.stat", "total_inactive_file")
    t0 = 1_700_000_000_000_000_000
    for i in range(28):  # every 100 ms from the container's start; kA 1.6-2.12 s, kB 2.13-2.65 s
        t = i * 100_000_000
        mb = 100.0 if t < 1_100_000_000 else 300.0 if t < 1_700_000_000 else 900.0 if t < 2_150_000_000 else 400.0
        g.memory._append(Sample(t_ns=t0 + t, mono_ns=t, mem_used_mib=mb))
    a = execute.finalize(g, job.conditions[0])["container_memory"]
    b = execute.finalize(g, job.conditions[1])["container_memory"]
    assert a["peak_mib"] == 900.0 and b["peak_mib"] == 400.0  # not 900 for both
    assert a["at_start_mib"] == 300.0 and b["at_start_mib"] == 900.0
    assert b["windows_mib"]["load"] == 300.0 and b["windows_mib"]["container"] == 900.0
    assert a["source"].startswith("cgroup v1 memory.usage_in_bytes") and a["clock"] == "monotonic"
    utts = [json.loads(x) for x in (tmp_path / "conditions" / "kB" / "utterances.jsonl").read_text().splitlines()]
    assert [u["container_mem_peak_mib"] for u in utts] == [400.0, 400.0]  # each call's own peak
    job, g = _group(tmp_path / "local")
    g.engine = "local"
    none = execute.finalize(g, job.conditions[0])["container_memory"]
    assert none["peak_mib"] is None and "local engine" in none["unavailable"]["peak_mib"]


def test_a_condition_that_was_its_containers_whole_work_reports_the_process_peak(tmp_path):
    """With the final record (status.json) and one condition, the process peak (model load included) is its
    peak, as `edgeasr run` always reported; with several, each keeps its own."""
    recorded = [json.loads(line) for line in (FIXTURE / "events.jsonl").read_text().splitlines()]
    events = execute.condition_events(recorded, "kA")
    status = json.loads((FIXTURE / "status.json").read_text())
    assert execute.condition_status(events, status, whole_container=True)["peak_rss_mb"] == 300.0
    assert execute.condition_status(events, status, whole_container=False)["peak_rss_mb"] == 250.0
    assert execute.condition_status(events, None, whole_container=True)["peak_rss_mb"] == 250.0


def test_an_unfinished_condition_is_an_error_or_interrupted_with_its_reason(tmp_path):
    """A condition the container never reached: every utterance failed with the reason; after Ctrl-C it is
    recorded as interrupted (and runs again on resume)."""
    job, g = _group(tmp_path, keys=("kA", "kC"))
    err = execute.finalize(g, job.conditions[1], "the container ended before this condition")
    assert err["status"] == "error" and err["n_failed"] == 2
    assert tables.result_problem(tmp_path / "conditions" / "kC", "kC") is None
    cut = execute.finalize(g, job.conditions[1], "interrupted by SIGINT", interrupted=True)
    assert cut["status"] == "interrupted" and tables.read_result(tmp_path / "conditions" / "kC", "kC") is None


def test_tables_carry_schema_version_and_axes_columns(tmp_path):
    """conditions.jsonl: one line per condition, each with schema_version; results.csv: the axes as columns."""
    job, g = _group(tmp_path)
    for c in job.conditions:
        execute.finalize(g, c)
    records = tables.rebuild_tables(tmp_path, [job])
    lines = [json.loads(x) for x in (tmp_path / "conditions.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(x["schema_version"] == 4 for x in lines)
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert "axes.repeat" in header and "decode.beam_size" in header and len(records) == 2


class _FailingEngine:
    """An engine whose container cannot start: the executor still records every condition."""

    name = "docker"
    host_paths = True

    def __init__(self):
        self.client = _Client()

    def run(self, *args, **kwargs):
        from runner.errors import UserError

        raise UserError("the engine refused the container")


class _Client:
    class containers:  # noqa: N801 - shaped like docker-py's client.containers
        @staticmethod
        def list():
            return [type("C", (), {"id": "f" * 64, "name": "neighbour"})()]


def test_every_condition_records_the_host_load_before_and_after_its_container(tmp_path, monkeypatch):
    """Issue 14 item 5: load average and other containers, before and after the timed window, with busy
    and its reason when a neighbour ran."""
    from runner.host import load as hostload

    spec = _spec(tmp_path)
    job = plan.plan_run(spec, None)
    monkeypatch.setattr(hostload, "read_loadavg", lambda path="/proc/loadavg": (0.1, 0.2, 0.3))
    result = execute.execute_group(job, list(job.conditions), _FailingEngine(), host={}, owner_folder=spec.out)
    load = result.records[0].summary["host_load"]
    assert load["before"]["loadavg_1m"] == 0.1 and load["after"]["other_container_names"] == ["neighbour"]
    assert load["busy"] and "1 other container running (neighbour)" in load["busy_reason"]
    on_disk = json.loads((spec.out / "summary.json").read_text())
    assert on_disk["host_load"] == load and on_disk["error"] == "the engine refused the container"


class _RecordingEngine(_FailingEngine):
    """Records the job spec the container would read, then refuses to start it (nothing else is needed here)."""

    def __init__(self):
        super().__init__()
        self.jobs = []

    def run(self, spec, job, *args, **kwargs):
        self.jobs.append(job)
        return super().run(spec, job, *args, **kwargs)


@pytest.mark.parametrize("sampler, found, expected_s", [("none", False, 0.0), ("auto", False, 0.0),
                                                          ("auto", True, 2.0)])
def test_the_loaded_idle_window_is_waited_only_when_a_sensor_measures_it(tmp_path, monkeypatch, sampler, found,
                                                                         expected_s):
    """Issue 26 item 2: the container's loaded-idle window (2 s by default) exists to measure power; with
    `--telemetry auto` finding no sensor, as with `--telemetry none`, nothing measures it, so the job asks for
    none (each container used to wait it out all the same). With a sensor found it stays."""
    from runner.telemetry.samplers import select
    from runner.telemetry.samplers.base import NullSampler

    # auto tries no sampler: the real selection finds no sensor, as on a host without one (this one has none,
    # another may have RAPL); found: a sensor "works" (a sampler with no samples is enough to see the job)
    monkeypatch.setattr(select, "auto_order", lambda device: [])
    if found:
        monkeypatch.setattr(execute, "select_sampler", lambda *a, **k: (NullSampler(), None))
    spec = _spec(tmp_path)
    spec = replace(spec, telemetry=replace(spec.telemetry, sampler=sampler, loaded_idle_s=2.0, baseline_w=1.0))
    job = plan.plan_run(spec, None)
    engine = _RecordingEngine()
    execute.execute_group(job, list(job.conditions), engine, host={}, owner_folder=spec.out)
    assert engine.jobs[0]["loaded_idle_s"] == expected_s


def test_a_group_that_cannot_even_record_its_failure_still_gives_each_condition_a_whole_summary(tmp_path):
    """Issue 21 item 2: failed_group's fallback (the condition's folder cannot be written) is the same frozen
    Summary failed_record writes (settings, identity, every utterance failed), its error saying both things, not a
    two-key dict; where the folder can be written, summary.json is what it always was."""
    spec = _spec(tmp_path)
    job = plan.plan_run(spec, None, repeats=2)
    first, second = job.conditions
    second.result_dir.parent.mkdir(parents=True, exist_ok=True)
    second.result_dir.write_text("a file where its folder should be")
    result = execute.failed_group(job, [first, second], "the image is gone", host={"hostname": "h"}, engine="docker")
    written, fallback = (r.summary for r in result.records)
    assert json.loads((first.result_dir / "summary.json").read_text()) == written
    assert written["error"] == "the image is gone" and written["n_failed"] == len(first.ids)
    assert fallback["error"].startswith("the image is gone; could not record it either: ")
    assert fallback["status"] == "error" and fallback["n_failed"] == len(second.ids)
    assert list(fallback) == list(written) and fallback["backend"] == spec.backend.name
    assert fallback["condition"]["key"] == second.key
