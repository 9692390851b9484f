"""A sweep starts its next container while it finishes the last one, and loads it only after (issue 26 item 2).

The seconds between two containers' work (the last one's exit and removal, its merge and the tables; the next
one's engine start, interpreter boot and imports) overlap: the next container is started (a held start, contract
5) as the last one says container_end, and told to go only once the host has nothing left of the last one. So
nothing runs beside a measured window (load, warm-up, inference) that was not beside it before. The containers
are the RECORDED engine's (tests/recorded_engine.py, its ``start``: a held container's go, finish, discard), the
docker side a FAKE client (what docker-py's containers answer), so the order of every step is exact.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from fake_clock import ManualClock
from helpers import two_quant_experiment, write_tone
from recorded_engine import RecordedEngine

from runner import sweep
from runner.errors import Interrupted
from runner.execute import SWEEP_LABEL, Callbacks
from runner.experiment import load_experiment
from runner.host import load as hostload
from runner.launch.docker_engine import ImageInfo
from runner.plan import plan_sweep

def experiment(sampler: str) -> str:
    """The recorded engine's two-quant sweep with a warm-up axis: three containers (fp32 with warm-up excluded)."""
    return two_quant_experiment("ahead", f"{{sampler: {sampler}, baseline_s: 2, interval_ms: 100}}") + (
        "  warmup: [0, 1]\nexclude:\n  - {quant: fp32, warmup: 1, reason: three containers are enough}\n")


class _View:
    def note(self, text, level="info"):
        pass

    def status(self, text):
        return contextlib.nullcontext()

    def running(self, start):
        return contextlib.nullcontext()

    def added(self, todo, info=""):
        pass

    def callbacks(self, job):
        return Callbacks()


def _study(tmp_path: Path, sampler: str = "none") -> Path:
    for uid in ("a", "b"):
        write_tone(tmp_path / "d" / f"{uid}.wav")
        (tmp_path / "d" / f"{uid}.txt").write_text(f"{uid} tone")
    model = tmp_path / "models" / "tiny.en"
    model.mkdir(parents=True)
    (model / "model.bin").write_bytes(b"x")
    (model / "config.json").write_text("{}")
    (tmp_path / "w.yaml").write_text(experiment(sampler))
    return tmp_path


def _sweep(study: Path, engine, out: str = "out") -> sweep.SweepOutcome:
    exp = load_experiment(study / "w.yaml", root=study)
    folder = study / out
    clock = ManualClock()
    planner = sweep.FixedPlan(tuple(plan_sweep(exp, engine, study / "models", folder)))
    return sweep.run_sweep(exp, folder, planner, sweep.LocalDispatcher(engine, folder, clock=clock), _View(),
                           sweep.SweepOptions(), clock=clock)


def _groups(engine: RecordedEngine) -> list[str]:
    return list(dict.fromkeys(g for _, g in engine.steps))


def test_the_next_container_starts_as_the_last_one_ends_and_goes_once_its_records_are_in(tmp_path):
    seen_at_go = {}
    study = _study(tmp_path)

    def on_go(group):  # what the host had finished of the containers before, as this one is told to go
        out = study / "out"
        summaries = sorted(p.parent.name for p in (out / "conditions").rglob("summary.json"))
        rows = (out / "conditions.jsonl").read_text().splitlines() if (out / "conditions.jsonl").exists() else []
        seen_at_go[group] = (len(summaries), len(rows))

    engine = RecordedEngine(on_go=on_go)
    outcome = _sweep(study, engine)
    g1, g2, g3 = _groups(engine)
    assert engine.steps == [("run", g1), ("container_end", g1), ("start", g2), ("go", g2), ("container_end", g2),
                            ("start", g3), ("go", g3), ("container_end", g3)]
    # each go came after every condition of the containers before was merged, written and in the tables
    assert seen_at_go == {g2: (2, 2), g3: (4, 4)}
    assert "hold_s" not in engine.job_of[g1] and engine.job_of[g2]["hold_s"] > 0 and engine.job_of[g3]["hold_s"] > 0
    assert engine.job_of[g2]["contract_version"] == 5
    assert outcome.exit_code == 0 and len(outcome.records) == 6

    # the results are those of a sweep that starts each container in its turn
    plain = RecordedEngine(held_starts=False)
    again = _sweep(study, plain, out="plain")
    assert [s for s, _ in plain.steps] == ["run", "container_end"] * 3
    # (container_s, the container's life from container_start to container_end, holds its wait for the go)
    strip = ("started_at", "result_dir", "group_dir", "host_load", "overhead_s", "data_path", "container_s")
    waited = []
    for held, plain_record in zip(outcome.records, again.records):
        diff = {k for k in set(held.summary) | set(plain_record.summary) if k not in strip
                and held.summary.get(k) != plain_record.summary.get(k)}
        assert not diff, {k: (held.summary.get(k), plain_record.summary.get(k)) for k in diff}
        waited.append(round(held.summary["container_s"] - plain_record.summary["container_s"], 6))
    assert sorted(waited) == [0.0] * 2 + [0.02] * 4  # the hold window of each held container (two conditions each)


def test_the_dispatcher_records_how_long_each_container_was_ahead(tmp_path):
    study = _study(tmp_path)
    exp = load_experiment(study / "w.yaml", root=study)
    out, clock, engine = study / "out", ManualClock(), RecordedEngine()
    dispatcher = sweep.LocalDispatcher(engine, out, clock=clock)
    planner = sweep.FixedPlan(tuple(plan_sweep(exp, engine, study / "models", out)))
    sweep.run_sweep(exp, out, planner, dispatcher, _View(), sweep.SweepOptions(), clock=clock)
    first, *rest = dispatcher.timing
    assert "ahead_s" not in first and all(g["ahead_s"] >= 0 for g in rest) and len(rest) == 2
    # and the host's own work while each container ran (each condition merged as it ended, beside the next
    # condition's inference on the same cores): its wall and its CPU seconds, so a bench can say what it took
    assert all(g["beside_s"] > 0 and 0 < g["beside_cpu_s"] for g in dispatcher.timing)


@pytest.mark.parametrize("why", ["sensor", "contract 4", "no start"])
def test_no_container_starts_ahead_with_a_sensor_an_older_image_or_an_engine_without_it(tmp_path, monkeypatch,
                                                                                       why):
    """With a power sensor the next container's idle baseline must be idle (nothing booting); an image of
    contract 4 cannot hold; an engine without ``start`` (the local one) cannot start ahead: each container then
    starts in its turn, as before."""
    from runner import execute
    from runner.telemetry.samplers.base import Availability, Sample, now_ns
    from runner.telemetry.samplers.polling import PollingSampler

    class SteadySensor(PollingSampler):  # a FAKE power sensor: 5 W on every reading, on the test's clock
        name = "steady"

        def probe(self):
            return Availability.yes()

        def _read(self):
            t_ns, mono_ns = now_ns(self.clock)
            return Sample(t_ns=t_ns, mono_ns=mono_ns, total_w=5.0, total_kind="input_rail:VDD_IN")

    clock = ManualClock()
    if why == "sensor":
        monkeypatch.setattr(execute, "select_sampler",
                            lambda *a, **k: (SteadySensor(interval_ms=100, clock=clock), None))
    engine = RecordedEngine(held_starts=why != "no start")
    if why == "contract 4":
        engine.image = lambda spec: ImageInfo("sha256:old", ["old:1"], {"org.edgeasr.contract": "4"})
    exp = load_experiment(_study(tmp_path).joinpath("w.yaml"), root=tmp_path)
    out = tmp_path / "out"
    planner = sweep.FixedPlan(tuple(plan_sweep(exp, engine, tmp_path / "models", out)))
    outcome = sweep.run_sweep(exp, out, planner, sweep.LocalDispatcher(engine, out, clock=clock), _View(),
                              sweep.SweepOptions(), clock=clock)
    assert [s for s, _ in engine.steps] == ["run", "container_end"] * 3
    assert all("hold_s" not in job for job in engine.job_of.values())
    assert outcome.exit_code == 0


def test_a_container_that_cannot_be_started_ahead_starts_in_its_turn(tmp_path):
    engine = RecordedEngine(on_start=lambda group: RuntimeError("the engine said no"))
    outcome = _sweep(_study(tmp_path), engine)
    g1, g2, g3 = _groups(engine)
    assert engine.steps == [("run", g1), ("container_end", g1), ("start", g2), ("run", g2), ("container_end", g2),
                            ("start", g3), ("run", g3), ("container_end", g3)]
    assert outcome.exit_code == 0 and all(r.status == "ok" for r in outcome.records)


def test_an_interruption_after_a_container_ended_discards_the_one_held_ahead(tmp_path):
    """Ctrl-C (SIGTERM here) after the first container said container_end, its successor started ahead: the
    successor never goes and is discarded (removed); the first one's conditions are kept."""
    engine = RecordedEngine(interrupt_at_end=1)
    with pytest.raises(Interrupted):
        _sweep(_study(tmp_path), engine)
    g1, g2 = _groups(engine)
    assert engine.steps == [("run", g1), ("container_end", g1), ("start", g2), ("discard", g2)]


def test_the_sweeps_own_held_container_is_not_another_container_on_the_host():
    """The host-load snapshots around a container leave out the containers that carry the sweep's own label
    (the next one, held before its load, and the run's own); a neighbour is still named."""

    class C:
        def __init__(self, cid, name, labels):
            self.id, self.name, self.labels = cid, name, labels

    class Engine:
        name = "docker"

        class client:
            class containers:
                @staticmethod
                def list():
                    return [C("1" * 64, "edgeasr-next", {SWEEP_LABEL: "s1"}), C("2" * 64, "db", {}),
                            C("3" * 64, "other-sweep", {SWEEP_LABEL: "s2"})]

    snap = hostload.snapshot(Engine(), own_labels={SWEEP_LABEL: "s1"})
    assert snap.other_container_names == ("db", "other-sweep") and snap.other_containers == 2
    assert hostload.snapshot(Engine()).other_containers == 3  # `edgeasr run`: no sweep label, nothing left out


def test_docker_engine_starts_a_held_container_says_go_in_its_folder_and_removes_it_however_it_ends(tmp_path):
    """DockerEngine.start: the job written (with hold_s), the container created, attached and started, not waited
    for; go() creates GO_FILE in the output folder (never through what the container made there); finish()
    streams, waits and removes it; discard() kills and removes one that never went."""
    from edgeasr_entrypoint.contract import GO_FILE

    from runner.launch import docker_engine, engines
    from runner.launch.owner import Owner

    calls = []

    class Container:
        def __init__(self, cid):
            self.id, self.attrs = cid, {"State": {}}

        def start(self):
            calls.append(("start", self.id))

        def attach(self, **kw):
            return iter(())

        def wait(self):
            calls.append(("wait", self.id))
            return {"StatusCode": 0}

        def reload(self):
            pass

        def kill(self):
            calls.append(("kill", self.id))

        def remove(self, force):
            calls.append(("remove", self.id))

    class Containers:
        n = 0

        def create(self, **kw):
            Containers.n += 1
            calls.append(("create", f"c{Containers.n}"))
            return Container(f"c{Containers.n}")

    class Client:
        containers = Containers()

    class Spec:
        image, device, gpus, timeout_s, hub_cache_dir = "img", "cpu", None, None, None
        hardening = docker_engine.Hardening()

    engine = engines.DockerEngine(Client())
    for name in ("g1", "g2", "g3"):
        (tmp_path / name / "raw").mkdir(parents=True)
    launch = engines.Launch(tmp_path / "g1" / "raw", Owner.me(tmp_path, "sweep"))
    held = engine.start(Spec(), {"hold_s": 60}, [], {}, launch)
    assert calls == [("create", "c1"), ("start", "c1")] and held.container_id == "c1"
    assert json.loads((launch.raw_dir / "job.json").read_text()) == {"hold_s": 60}
    (launch.raw_dir / GO_FILE).symlink_to(tmp_path / "elsewhere")  # what the container may have made itself
    held.go()  # never followed, never raises
    assert not (tmp_path / "elsewhere").exists()
    run = held.finish(lambda e: None)
    assert calls[2:] == [("wait", "c1"), ("remove", "c1")] and run.container_id == "c1"

    other = engines.Launch(tmp_path / "g2" / "raw", Owner.me(tmp_path, "sweep"))
    held = engine.start(Spec(), {"hold_s": 60}, [], {}, other)
    held.go()
    assert (other.raw_dir / GO_FILE).is_file()
    held2 = engine.start(Spec(), {"hold_s": 60}, [], {}, engines.Launch(tmp_path / "g3" / "raw",
                                                                        Owner.me(tmp_path, "sweep")))
    held2.discard()
    assert calls[-2:] == [("kill", "c3"), ("remove", "c3")]
