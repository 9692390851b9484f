"""The idle baseline: measured over a quiet window before the container starts, or given.

Shared by `edgeasr run` and `edgeasr sweep`. In a sweep the next container's
baseline would otherwise be measured while the board is still hot from the
last one: when a previous baseline exists, the window waits first for a
cool-down (power back within a tolerance of that baseline, or a timeout), and
the result records how long it waited and whether power came back.
The window opens at a sample's arrival (a window no sample brackets cannot be
integrated) and ends once a sample past its end has arrived.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from ..samplers.base import Sampler
from .accounting import Baseline, measured_baseline

#: Defaults where the settings object predates them.
COOLDOWN_MAX_S = 30.0
COOLDOWN_TOLERANCE = 0.1  # of the previous baseline
COOLDOWN_FLOOR_W = 0.2  # sensors' noise: never ask for less than this


def recent_mean_w(sampler: Sampler, window_s: float) -> float | None:
    """Mean total power of the samples of the last ``window_s`` seconds (monotonic clock), or None."""
    samples = sampler.samples
    if not samples or samples[-1].mono_ns is None:
        return None
    since = samples[-1].mono_ns - int(window_s * 1e9)
    values = [s.total_w for s in samples if s.mono_ns is not None and s.mono_ns >= since and s.total_w is not None]
    return sum(values) / len(values) if values else None


def wait_for_cooldown(sampler: Sampler, previous_w: float, tolerance: float, max_s: float,
                      interval_ms: int) -> dict[str, Any]:
    """Wait until recent power is within ``tolerance`` of ``previous_w`` (or below it), at most ``max_s``."""
    limit_w = previous_w * (1.0 + tolerance) + COOLDOWN_FLOOR_W
    window_s = max(0.5, 5 * interval_ms / 1000.0)
    start = time.monotonic()
    mean = None
    while True:
        waited = time.monotonic() - start
        mean = recent_mean_w(sampler, window_s)
        if mean is not None and waited >= window_s and mean <= limit_w:
            return {"reached": True, "waited_s": waited, "previous_w": previous_w, "final_w": mean,
                    "tolerance": tolerance}
        if waited >= max_s:
            return {"reached": False, "waited_s": waited, "previous_w": previous_w, "final_w": mean,
                    "tolerance": tolerance,
                    "reason": (f"power did not fall back within {tolerance:.0%} of the previous baseline "
                               f"({previous_w:.2f} W) in {max_s:g} s: the baseline was measured warm")}
        time.sleep(interval_ms / 2000.0)


#: Called with what is being waited for; the context it returns lasts the wait (``console.status``: a spinner).
OnWait = Callable[[str], AbstractContextManager[Any]]


def idle_baseline(settings, sampler: Sampler, previous: Baseline | None = None,
                  on_wait: OnWait | None = None) -> Baseline:
    """Given, or measured over an idle window before the container starts (after a cool-down when
    ``previous``, the last container's baseline, was measured). ``on_wait`` shows the wait (a spinner);
    telemetry itself draws nothing."""
    if settings.baseline_w is not None:
        return Baseline(settings.baseline_w, "given")
    if settings.baseline_s <= 0:
        return Baseline(None, "unavailable", reason="the idle baseline was skipped (--baseline-s 0)")
    what = f"measuring the idle baseline ({settings.baseline_s:g} s, {sampler.name})"
    with (on_wait(what) if on_wait is not None else contextlib.nullcontext()):
        deadline = time.monotonic() + 5.0 + 10 * settings.interval_ms / 1000.0
        while not sampler.samples and time.monotonic() < deadline:
            time.sleep(settings.interval_ms / 4000.0)
        if not sampler.samples:
            return Baseline(None, "unavailable", reason=f"{sampler.name} produced no sample in time")
        cooldown = None
        if previous is not None and previous.power_w is not None:
            cooldown = wait_for_cooldown(sampler, previous.power_w,
                                         getattr(settings, "cooldown_tolerance", COOLDOWN_TOLERANCE),
                                         getattr(settings, "cooldown_max_s", COOLDOWN_MAX_S), settings.interval_ms)
        # On the monotonic clock, like every window (see accounting); opens at the latest sample.
        first = sampler.samples[-1]
        t0, wall0 = first.mono_ns, first.t_ns
        if t0 is None:
            return Baseline(None, "unavailable", reason=f"{sampler.name} stamps no monotonic time")
        time.sleep(max(0.0, settings.baseline_s - (time.monotonic_ns() - t0) / 1e9))
        t1, wall1 = time.monotonic_ns(), time.time_ns()
        # wait for one sample past the window's end so that it is bracketed
        deadline = time.monotonic() + 5.0 + 10 * settings.interval_ms / 1000.0
        while (sampler.samples[-1].mono_ns or 0) < t1 and time.monotonic() < deadline:
            time.sleep(settings.interval_ms / 4000.0)
    return replace(measured_baseline(sampler.samples, t0, t1, clock="monotonic"), wall_window_ns=(wall0, wall1),
                   cooldown=cooldown)
