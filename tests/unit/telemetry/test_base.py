"""The Sampler lifecycle contract and NullSampler."""

from __future__ import annotations

import json

import pytest
from fake_clock import ManualClock

from runner.errors import UserError
from runner.telemetry.energy.integrate import integrate
from runner.telemetry.samplers.base import Availability, NullSampler, Sample, Sampler
from runner.telemetry.samplers.polling import PollingSampler


class Recorder(Sampler):
    """A minimal sampler that counts its hook calls."""

    name = "recorder"

    def __init__(self, available: bool = True) -> None:
        super().__init__()
        self.available = available
        self.starts = 0
        self.stops = 0

    def probe(self) -> Availability:
        return Availability.yes() if self.available else Availability.no("recorder is switched off")

    def _start(self) -> None:
        self.starts += 1
        self._append(Sample(t_ns=self.clock.time_ns(), total_w=1.0))

    def _stop(self) -> None:
        self.stops += 1


def test_start_and_stop_are_idempotent():
    sampler = Recorder()
    sampler.start()
    sampler.start()
    assert sampler.running and sampler.starts == 1
    sampler.stop()
    sampler.stop()
    assert not sampler.running and sampler.stops == 1


def test_single_use():
    sampler = Recorder()
    with sampler:
        pass
    with pytest.raises(RuntimeError, match="create a new one"):
        sampler.start()


def test_stop_before_start_is_harmless():
    sampler = Recorder()
    sampler.stop()
    assert sampler.stops == 0


def test_context_manager_stops_on_error_and_ctrl_c():
    for exc in (ValueError("boom"), KeyboardInterrupt()):
        sampler = Recorder()
        with pytest.raises(type(exc)), sampler:
            raise exc
        assert sampler.stops == 1


def test_unavailable_sampler_refuses_to_start_with_the_reason():
    with pytest.raises(UserError, match="recorder is switched off"):
        Recorder(available=False).start()


def test_samples_is_a_copy():
    sampler = Recorder()
    with sampler:
        got = sampler.samples
        got.clear()
        assert len(sampler.samples) == 1


def test_sample_to_json_round_trips():
    sample = Sample(t_ns=5, power_w={"VDD_IN": 5.3}, total_w=5.3, total_kind="input_rail:VDD_IN",
                    mem_used_mib=100.0, extras={"gpu_load_pct": None})
    data = json.loads(json.dumps(sample.to_json()))
    assert data["power_w"] == {"VDD_IN": 5.3} and data["energy_j"] is None
    assert data["extras"] == {"gpu_load_pct": None}


def test_null_sampler_reports_unavailable_with_reason_and_runs():
    sampler = NullSampler()
    availability = sampler.probe()
    assert not availability.ok and "turned off" in availability.reason
    with sampler:
        pass
    assert sampler.samples == []
    window = integrate(sampler.samples, 1, 2)
    assert window.total_j is None and window.reason


def test_null_sampler_takes_a_custom_reason():
    assert NullSampler(reason="no sampler for this board").probe().reason == "no sampler for this board"


class Failing(PollingSampler):
    name = "failing"

    def probe(self) -> Availability:
        return Availability.yes()

    def _read(self) -> Sample:
        raise OSError("sensor went away")


def test_polling_sampler_keeps_errors_and_keeps_going():
    """A reading that fails is counted and kept (the last 20), and the cadence goes on: a failure at start, one
    per 5 ms, one at stop."""
    clock = ManualClock()
    sampler = Failing(interval_ms=5, clock=clock)
    with sampler:
        clock.sleep(0.05)
    assert sampler.samples == []
    assert sampler.n_errors == len(sampler.errors) == 1 + 10 + 1 and "sensor went away" in sampler.errors[-1]
    again = Failing(interval_ms=5, clock=clock)
    with again:
        clock.sleep(0.2)
    assert again.n_errors == 1 + 40 + 1 and len(again.errors) == 20
    assert again.health()["ok"] is False and again.health()["n_polling_errors"] == 42


def test_polling_interval_must_be_positive():
    with pytest.raises(ValueError):
        Failing(interval_ms=0)


class Flaky(PollingSampler):
    """Power readings of 10 W on the host clocks; the readings listed in ``fail_at`` raise."""

    name = "flaky"

    def __init__(self, fail_at=(), clock=None):
        super().__init__(interval_ms=10_000, clock=clock or ManualClock())
        self.fail_at, self.n = set(fail_at), 0

    def probe(self) -> Availability:
        return Availability.yes()

    def _read(self):
        from runner.telemetry.samplers.base import now_ns

        self.n += 1
        if self.n in self.fail_at:
            raise OSError("EIO reading the sensor")
        t_ns, mono_ns = now_ns(self.clock)
        return Sample(t_ns=t_ns, mono_ns=mono_ns, total_w=10.0, total_kind="input_rail:VDD_IN")


def test_a_window_that_lost_readings_is_named_and_health_is_not_ok():
    """Regression (issue 22, item 11): a reading lost inside a window (a failed poll) left the window's energy
    looking whole and named no window. The next good reading says what was lost before it, the window over it is
    flagged, and health names that window with ok false (the windows beside it are not named)."""
    from runner.telemetry.energy import accounting

    sampler = Flaky(fail_at={5})
    sampler.start()  # reading 1
    for _ in range(6):  # readings 2..7; 5 fails
        sampler.clock.advance(0.01)
        sampler.sample_now()
    sampler.stop()  # reading 8
    s = sampler.samples
    assert [x.extras.get("lost_before") for x in s].count(None) == len(s) - 1
    assert "EIO" in s[4].extras["lost_before"][0]  # the reading after the lost one
    ev = [{"event": n, "t_ns": x.t_ns, "mono_ns": x.mono_ns} for n, x in
          (("container_start", s[0]), ("load_start", s[0]), ("load_end", s[2]),
           ("inference_start", s[3]), ("inference_end", s[5]), ("container_end", s[6]))]
    block = accounting.energy_block("flaky", s, ev, accounting.Baseline(None, "unavailable", reason="x"), 4.0, 2, 10)
    assert any(f.startswith("lost:") for f in block.per_window["inference"]["flags"])
    health = accounting.health_of_windows(sampler.health(), block)
    assert health["ok"] is False and set(health["windows_affected"]) == {"inference", "container"}
