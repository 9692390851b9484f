"""The idle baseline: a cool-down after the previous container before the window is measured."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner.telemetry.energy.accounting import Baseline
from runner.telemetry.energy.idle import idle_baseline
from runner.telemetry.samplers.base import Sample, now_ns
from runner.telemetry.samplers.polling import PollingSampler


class DecayingSampler(PollingSampler):
    """Power that falls from hot_w to idle_w over decay_s after start (a GPU cooling after a container)."""

    name = "decaying"

    def __init__(self, hot_w, idle_w, decay_s):
        super().__init__(interval_ms=10)
        self.hot_w, self.idle_w, self.decay_s = hot_w, idle_w, decay_s
        self.t0 = time.monotonic()

    def probe(self):
        from runner.telemetry.samplers.base import Availability
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
        base = idle_baseline(SETTINGS, sampler, previous=Baseline(10.0, "measured"))
    assert base.power_w == pytest.approx(10.0, rel=0.02)
    assert base.cooldown["reached"] is True and 0.4 <= base.cooldown["waited_s"] <= 4.0  # slack for a busy host


def test_cooldown_timeout_is_recorded():
    with DecayingSampler(hot_w=20.0, idle_w=10.0, decay_s=60.0) as sampler:
        settings = SimpleNamespace(**{**vars(SETTINGS), "cooldown_max_s": 0.3})
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
