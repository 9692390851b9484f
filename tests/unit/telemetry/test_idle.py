"""The idle baseline: a cool-down after the previous container before the window is measured."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from rich.console import Console

from runner.telemetry.accounting import Baseline
from runner.telemetry.base import Sample, now_ns
from runner.telemetry.idle import idle_baseline
from runner.telemetry.polling import PollingSampler


class DecayingSampler(PollingSampler):
    """Power that falls from hot_w to idle_w over decay_s after start (a GPU cooling after a container)."""

    name = "decaying"

    def __init__(self, hot_w, idle_w, decay_s):
        super().__init__(interval_ms=10)
        self.hot_w, self.idle_w, self.decay_s = hot_w, idle_w, decay_s
        self.t0 = time.monotonic()

    def probe(self):
        from runner.telemetry.base import Availability
        return Availability.yes()

    def _read(self):
        t_ns, mono_ns = now_ns()
        w = self.idle_w if time.monotonic() - self.t0 >= self.decay_s else self.hot_w
        return Sample(t_ns=t_ns, mono_ns=mono_ns, total_w=w, total_kind="input_rail:VDD_IN")


SETTINGS = SimpleNamespace(baseline_w=None, baseline_s=0.2, interval_ms=10, cooldown_max_s=5.0,
                           cooldown_tolerance=0.1)


def test_baseline_after_a_sweep_container_waits_for_cooldown():
    """Right after a container the board is still hot: the baseline waits until power is back near the
    previous baseline, and records how long that took."""
    with DecayingSampler(hot_w=20.0, idle_w=10.0, decay_s=0.5) as sampler:
        base = idle_baseline(SETTINGS, sampler, Console(quiet=True), previous=Baseline(10.0, "measured"))
    assert base.power_w == pytest.approx(10.0, rel=0.02)
    assert base.cooldown["reached"] is True and 0.4 <= base.cooldown["waited_s"] <= 4.0  # slack for a busy host


def test_cooldown_timeout_is_recorded():
    with DecayingSampler(hot_w=20.0, idle_w=10.0, decay_s=60.0) as sampler:
        settings = SimpleNamespace(**{**vars(SETTINGS), "cooldown_max_s": 0.3})
        base = idle_baseline(settings, sampler, Console(quiet=True), previous=Baseline(10.0, "measured"))
    assert base.cooldown["reached"] is False and "did not fall back" in base.cooldown["reason"]
    assert base.power_w == pytest.approx(20.0)  # measured, and marked as measured while still warm
