"""The idle baseline: a cool-down after the previous container before the window is measured."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from fake_clock import ManualClock

from runner.telemetry.energy.accounting import Baseline
from runner.telemetry.energy.idle import idle_baseline
from runner.telemetry.samplers.base import Sample, now_ns
from runner.telemetry.samplers.polling import PollingSampler


class DecayingSampler(PollingSampler):
    """Power that falls from hot_w to idle_w over decay_s after start (a GPU cooling after a container)."""

    name = "decaying"

    def __init__(self, hot_w, idle_w, decay_s, clock=None):
        super().__init__(interval_ms=10, clock=clock or ManualClock())
        self.hot_w, self.idle_w, self.decay_s = hot_w, idle_w, decay_s
        self.t0_ns = self.clock.monotonic_ns()

    def probe(self):
        from runner.telemetry.samplers.base import Availability
        return Availability.yes()

    def _read(self):
        t_ns, mono_ns = now_ns(self.clock)
        w = self.idle_w if (mono_ns - self.t0_ns) / 1e9 >= self.decay_s else self.hot_w
        return Sample(t_ns=t_ns, mono_ns=mono_ns, total_w=w, total_kind="input_rail:VDD_IN")


SETTINGS = SimpleNamespace(baseline_w=None, baseline_s=0.2, interval_ms=10, cooldown_max_s=5.0,
                           cooldown_tolerance=0.1)


def test_baseline_after_a_sweep_container_waits_for_cooldown():
    """Right after a container the board is still hot: the baseline waits until power is back near the
    previous baseline, and records how long that took."""
    with DecayingSampler(hot_w=20.0, idle_w=10.0, decay_s=0.5) as sampler:
        base = idle_baseline(SETTINGS, sampler, previous=Baseline(10.0, "measured"))
    assert base.power_w == pytest.approx(10.0)
    # 20 W until 0.5 s, 10 W after: power has settled (the last 0.5 s window's mean against the one before it, and
    # back within 10 % of the previous baseline) some time after the step, never before it
    assert base.cooldown["reached"] is True and 0.5 <= base.cooldown["settle_s"] <= 2.0
    assert base.end_ns - base.start_ns == pytest.approx(0.2e9, abs=10_000_000)  # baseline_s


def test_cooldown_timeout_is_recorded():
    with DecayingSampler(hot_w=20.0, idle_w=10.0, decay_s=60.0) as sampler:
        settings = SimpleNamespace(**{**vars(SETTINGS), "cooldown_max_s": 1.5})
        base = idle_baseline(settings, sampler, previous=Baseline(10.0, "measured"))
    assert base.cooldown["reached"] is False and "did not fall back" in base.cooldown["reason"]
    assert base.power_w == pytest.approx(20.0)  # measured, and marked as measured while still warm


def test_the_idle_baseline_needs_no_console_and_shows_its_wait_through_on_wait():
    """Telemetry draws no UI: without on_wait the baseline is measured all the same; with it, the caller's
    context (a spinner) is entered once, for the whole wait, and told what is measured."""
    import contextlib

    with DecayingSampler(hot_w=5.0, idle_w=5.0, decay_s=0.0) as sampler:
        base = idle_baseline(SETTINGS, sampler)
    assert base.source == "measured" and base.power_w == pytest.approx(5.0)

    seen, active = [], []

    @contextlib.contextmanager
    def on_wait(text):
        seen.append(text)
        active.append(True)
        yield
        active.append(False)

    with DecayingSampler(hot_w=5.0, idle_w=5.0, decay_s=0.0) as sampler:
        idle_baseline(SETTINGS, sampler, on_wait=on_wait)
    assert len(seen) == 1 and "idle baseline" in seen[0] and "decaying" in seen[0] and active == [True, False]


def test_telemetry_imports_no_ui():
    """No module under runner/telemetry imports rich (or any console): views belong to the commands."""
    import runner.telemetry

    root = Path(runner.telemetry.__file__).parent
    modules = sorted(root.rglob("*.py"))  # the samplers/ and energy/ rooms too
    assert len(modules) > 10
    offenders = [p.name for p in modules if re.search(r"^\s*(from|import)\s+rich\b", p.read_text(), re.MULTILINE)]
    assert offenders == []


class CoolingSampler(DecayingSampler):
    """A board cooling down exponentially: hot_w falling to idle_w with time constant tau_s (no step)."""

    name = "cooling"

    def __init__(self, hot_w, idle_w, tau_s):
        super().__init__(hot_w, idle_w, 0.0)
        self.tau_s = tau_s

    def _read(self):
        import math

        t_ns, mono_ns = now_ns(self.clock)
        w = self.idle_w + (self.hot_w - self.idle_w) * math.exp(-((mono_ns - self.t0_ns) / 1e9) / self.tau_s)
        return Sample(t_ns=t_ns, mono_ns=mono_ns, total_w=w, total_kind="input_rail:VDD_IN")


def test_first_baseline_of_a_cooling_board_waits_until_power_settles():
    """Regression (issue 22, item 10): before the first container nothing waited, so a board still cooling from
    earlier work gave a 35 W "idle" for a true 10 W. Every measured baseline now waits until power is stable over
    the baseline's own length (or the timeout), and records the settle time and the drift."""
    settings = SimpleNamespace(**{**vars(SETTINGS), "cooldown_max_s": 20.0, "baseline_s": 0.5})
    with CoolingSampler(hot_w=35.0, idle_w=10.0, tau_s=0.4) as sampler:
        base = idle_baseline(settings, sampler)  # no previous container: the first baseline of a run
    assert base.power_w == pytest.approx(10.0, abs=1.0)
    record = base.cooldown
    assert record["reached"] is True and record["settle_s"] > 0.9 and record["previous_w"] is None
    assert abs(record["drift_w"]) <= 0.1 * record["final_w"] + 0.2  # settled: within the tolerance
    assert abs(record["window_drift_w"]) < 1.0


def test_settle_state_judges_drift_over_the_baselines_length():
    """Pure: two windows' means; a slow drift that would move a 5 s baseline by more than the tolerance is not
    settled, even when two half-second windows differ by less than the tolerance."""
    from runner.telemetry.energy.idle import settle_state

    def timeline(power):
        return [Sample(t_ns=i * 10**8, mono_ns=i * 10**8, total_w=power(i / 10), total_kind="k") for i in range(21)]

    flat = settle_state(timeline(lambda t: 10.0), 0.5, 0.1, 5.0)
    assert flat["stable"] and flat["drift_w"] == pytest.approx(0.0)
    slow = settle_state(timeline(lambda t: 30.0 - 1.0 * t), 0.5, 0.1, 5.0)  # -1 W/s at 28 W: 0.5 W per window
    assert not slow["stable"] and slow["drift_w_per_s"] == pytest.approx(-1.0)
    assert settle_state(timeline(lambda t: 30.0 - 1.0 * t), 0.5, 0.1, 0.5)["stable"]  # a 0.5 s baseline: fine
    assert not settle_state(timeline(lambda t: 10.0), 0.5, 0.1, 5.0, previous_w=5.0)["back"]
    assert settle_state(timeline(lambda t: 10.0)[:5], 0.5, 0.1, 5.0) is None  # too few samples to judge
