"""The Sampler lifecycle contract and NullSampler."""

from __future__ import annotations

import json
import time

import pytest

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
        self._append(Sample(t_ns=time.time_ns(), total_w=1.0))

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
                    mem_used_mb=100.0, extras={"gpu_load_pct": None})
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
    sampler = Failing(interval_ms=5)
    with sampler:
        time.sleep(0.05)
    assert sampler.samples == []
    assert sampler.errors and "sensor went away" in sampler.errors[-1]
    assert len(sampler.errors) <= 20


def test_polling_interval_must_be_positive():
    with pytest.raises(ValueError):
        Failing(interval_ms=0)
