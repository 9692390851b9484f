"""The idle baseline: measured over a quiet window before the container starts, or given.

Shared by `edgeasr run` and `edgeasr sweep`. The window opens at the first
sample's arrival (a window no sample brackets cannot be integrated) and ends
once a sample past its end has arrived.
"""

from __future__ import annotations

import time
from dataclasses import replace

from rich.console import Console

from .accounting import Baseline, measured_baseline
from .base import Sampler


def idle_baseline(settings, sampler: Sampler, console: Console) -> Baseline:
    """Given, or measured over an idle window before the container starts.

    The window opens at the first sample's arrival (a window no sample brackets
    cannot be integrated) and lasts --baseline-s seconds.
    """
    if settings.baseline_w is not None:
        return Baseline(settings.baseline_w, "given")
    if settings.baseline_s <= 0:
        return Baseline(None, "unavailable", reason="the idle baseline was skipped (--baseline-s 0)")
    with console.status(f"measuring the idle baseline ({settings.baseline_s:g} s, {sampler.name})"):
        deadline = time.monotonic() + 5.0 + 10 * settings.interval_ms / 1000.0
        while not sampler.samples and time.monotonic() < deadline:
            time.sleep(settings.interval_ms / 4000.0)
        if not sampler.samples:
            return Baseline(None, "unavailable", reason=f"{sampler.name} produced no sample in time")
        # On the monotonic clock, like every window (see accounting).
        first = sampler.samples[0]
        t0, wall0 = first.mono_ns, first.t_ns
        if t0 is None:
            return Baseline(None, "unavailable", reason=f"{sampler.name} stamps no monotonic time")
        time.sleep(max(0.0, settings.baseline_s - (time.monotonic_ns() - t0) / 1e9))
        t1, wall1 = time.monotonic_ns(), time.time_ns()
        # wait for one sample past the window's end so that it is bracketed
        while (sampler.samples[-1].mono_ns or 0) < t1 and time.monotonic() < deadline + settings.baseline_s:
            time.sleep(settings.interval_ms / 4000.0)
    return replace(measured_baseline(sampler.samples, t0, t1, clock="monotonic"), wall_window_ns=(wall0, wall1))
