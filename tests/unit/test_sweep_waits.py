"""A sweep without a power sensor waits for nothing (issue 26, item 2): its wall is containers and bookkeeping.

Every wait of the executor and the sweep runs on an injected Clock (runner/host/clock.py); here that is the FAKE
ManualClock (tests/fake_clock.py), which records every sleep asked of it, and time.sleep is watched too, for a
wait that would bypass the clock. The containers are the RECORDED engine's (tests/recorded_engine.py). With no
sensor (``sampler: none``, or ``auto`` finding none) there is no idle baseline, no cool-down, no loaded-idle
window, no sampling tail: not one sleep, before, between or after the containers. With a sensor the waits are
the measurement's own (the baseline window, the tail that brackets the last window), each one bounded.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from fake_clock import ManualClock
from helpers import RecordingView, tone_study, two_quant_experiment
from recorded_engine import RecordedEngine

from runner import sweep
from runner.experiment import load_experiment
from runner.plan import plan_sweep
from runner.telemetry.samplers.base import Availability, Sample, now_ns
from runner.telemetry.samplers.polling import PollingSampler



def watch_time_sleep(monkeypatch) -> list[tuple[str, float]]:
    """Every time.sleep called from then on, as (the calling module, seconds); it still sleeps. subprocess's
    own are left out: waiting for a child process to end (git, in the manifest) is no fixed wait."""
    real, calls = time.sleep, []

    def sleep(seconds: float) -> None:
        caller = sys._getframe(1).f_globals.get("__name__", "?")
        if caller != "subprocess":
            calls.append((caller, seconds))
        real(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return calls


class SteadySensor(PollingSampler):
    """A FAKE power sensor (none exists on this host): 5 W on every reading, on the test's clock."""

    name = "steady"

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(interval_ms=100, clock=clock)

    def probe(self):
        return Availability.yes()

    def _read(self) -> Sample:
        t_ns, mono_ns = now_ns(self.clock)
        return Sample(t_ns=t_ns, mono_ns=mono_ns, total_w=5.0, total_kind="input_rail:VDD_IN")


def _study(tmp_path: Path, sampler: str) -> Path:
    tone_study(tmp_path)
    (tmp_path / "w.yaml").write_text(
        two_quant_experiment("waits", f"{{sampler: {sampler}, baseline_s: 2, interval_ms: 100}}"))
    return tmp_path


def _run(study: Path, clock: ManualClock) -> tuple[sweep.SweepOutcome, RecordedEngine]:
    exp = load_experiment(study / "w.yaml", root=study)
    out = study / "out"
    engine = RecordedEngine()
    planner = sweep.FixedPlan(tuple(plan_sweep(exp, engine, study / "models", out)))
    outcome = sweep.run_sweep(exp, out, planner, sweep.LocalDispatcher(engine, out, clock=clock), RecordingView(),
                              sweep.SweepOptions(), clock=clock)
    return outcome, engine


@pytest.mark.parametrize("sampler", ["none", "auto"])
def test_a_sweep_without_a_sensor_sleeps_not_once(tmp_path, monkeypatch, sampler):
    """Two containers, four conditions: no sleep on the injected clock, none on time.sleep, the clock never
    moved (a poll that waits would have to ask one of them)."""
    from runner.telemetry.samplers import select

    monkeypatch.setattr(select, "auto_order", lambda device: [])  # auto finds no sensor, as on this host
    real_sleeps = watch_time_sleep(monkeypatch)
    clock = ManualClock()
    start = clock.monotonic_ns()
    outcome, engine = _run(_study(tmp_path, sampler), clock)
    assert len(engine.launches) == 2 and len(outcome.records) == 4
    assert all(r.status == "ok" for r in outcome.records)
    assert clock.slept_s == [] and real_sleeps == []
    assert clock.monotonic_ns() == start


def test_with_a_sensor_the_only_waits_are_the_measurement_s(tmp_path, monkeypatch):
    """A sensor found (a fake sampler on the same clock): the sweep waits for the idle baseline and the
    sampling tail, and for nothing else; per container at most the baseline window, its cool-down bound and
    the tail (no poll of its own)."""
    from runner import execute

    clock = ManualClock()
    monkeypatch.setattr(execute, "select_sampler", lambda *a, **k: (SteadySensor(clock), None))
    real_sleeps = watch_time_sleep(monkeypatch)
    outcome, engine = _run(_study(tmp_path, "auto"), clock)
    assert len(engine.launches) == 2 and len(outcome.records) == 4
    assert real_sleeps == []
    assert clock.slept_s  # the baseline is measured: time passes
    per_container_s = sum(clock.slept_s) / len(engine.launches)
    assert per_container_s <= 2.0 + 30.0 + 1.0  # baseline_s, the cool-down's bound, the tail
