"""The idle baseline: measured over a quiet window before the container starts, or given.

Shared by `edgeasr run` and `edgeasr sweep`. A board that is still cooling (from
the last container, from a benchmark before this one, from an operating point
just changed) would give a "baseline" far above its true idle, so before every
measured baseline the power must settle first: the mean of the last few samples
may drift from the mean of the few before it by no more than the tolerance, over
the baseline's own length (``settle_state``), and, after a previous container,
be back within the tolerance of that one's baseline. At most
``telemetry.cooldown_max_s``; the record (``baseline_cooldown``) says how long it
took (``settle_s``), the drift at the end and in the idle window itself, and
whether power settled. Waits happen only here, where a sensor is read.
The window opens at a sample's arrival (a window no sample brackets cannot be
integrated) and ends once a sample past its end has arrived. Every wait here is
on the sampler's clock (runner/host/clock.py), so a test moves it step by step.

``--baseline loaded-idle`` selects the loaded idle (container up, model loaded
and warmed up, idle) as the baseline the dynamic figures subtract; the host
idle is still measured and kept beside it (accounting.energy_block).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from ...host.clock import Clock, elapsed_s
from ..samplers.base import Sample, Sampler
from . import IDLE
from .accounting import Baseline, measured_baseline

#: Defaults where the settings object predates them.
COOLDOWN_MAX_S = 30.0
COOLDOWN_TOLERANCE = 0.1  # of the previous baseline
COOLDOWN_FLOOR_W = 0.2  # sensors' noise: never ask for less than this


def _mean_w(samples: Sequence[Sample], since_ns: int, until_ns: int) -> float | None:
    values = [s.total_w for s in samples if s.mono_ns is not None and since_ns < s.mono_ns <= until_ns
              and s.total_w is not None]
    return sum(values) / len(values) if values else None


def settle_state(samples: Sequence[Sample], window_s: float, tolerance: float, horizon_s: float,
                 previous_w: float | None = None) -> dict[str, Any] | None:
    """Whether power has settled, from the timeline alone (pure): the mean of the last ``window_s`` against the
    mean of the ``window_s`` before it. ``drift_w`` is their difference; it is stable when that drift, carried on
    over ``horizon_s`` (the baseline's own length: what it would move the baseline by), stays within ``tolerance``
    of the recent mean (plus the sensors' noise floor), and, after a previous container (``previous_w``), the
    recent mean is back within ``tolerance`` of that one's baseline. None until two windows of samples exist."""
    if not samples or samples[-1].mono_ns is None:
        return None
    last = samples[-1].mono_ns
    window_ns = int(window_s * 1e9)
    first = next((s.mono_ns for s in samples if s.mono_ns is not None), last)
    if last - first < 2 * window_ns:
        return None
    recent = _mean_w(samples, last - window_ns, last)
    before = _mean_w(samples, last - 2 * window_ns, last - window_ns)
    if recent is None or before is None:
        return None
    drift = recent - before
    stable = abs(drift) * max(1.0, horizon_s / window_s) <= tolerance * abs(recent) + COOLDOWN_FLOOR_W
    back = previous_w is None or recent <= previous_w * (1.0 + tolerance) + COOLDOWN_FLOOR_W
    return {"recent_w": recent, "drift_w": drift, "drift_w_per_s": drift / window_s, "stable": stable,
            "back": back}


def wait_to_settle(sampler: Sampler, previous_w: float | None, tolerance: float, max_s: float,
                   interval_ms: int, horizon_s: float, clock: Clock | None = None) -> dict[str, Any]:
    """Wait until power has settled (``settle_state``), at most ``max_s``, on ``clock`` (default: the sampler's);
    the record of the wait."""
    clock = clock or sampler.clock
    window_s = max(0.5, 5 * interval_ms / 1000.0)
    start = clock.monotonic_ns()
    state = None
    while True:
        waited = elapsed_s(clock, start)
        state = settle_state(sampler.samples, window_s, tolerance, horizon_s, previous_w)
        record = {"settle_s": waited, "previous_w": previous_w, "tolerance": tolerance, "window_s": window_s,
                  "final_w": state["recent_w"] if state else None, "drift_w": state["drift_w"] if state else None}
        if state is not None and state["stable"] and state["back"]:
            return {"reached": True, **record}
        if waited >= max_s:
            if state is None:
                why = (f"power could not be judged settled in {max_s:g} s (fewer than two {window_s:g} s windows of "
                       "samples): the baseline was measured without knowing")
            elif not state["back"]:
                why = (f"power did not fall back within {tolerance:.0%} of the previous baseline ({previous_w:.2f} W) "
                       f"in {max_s:g} s: the baseline was measured warm")
            else:
                why = (f"power did not settle in {max_s:g} s (it still drifted by "
                       f"{(state or {}).get('drift_w_per_s') or 0.0:+.2f} W/s): the baseline was measured while it "
                       "moved")
            return {"reached": False, **record, "reason": why}
        clock.sleep(interval_ms / 2000.0)


#: Called with what is being waited for; the context it returns lasts the wait (``console.status``: a spinner).
OnWait = Callable[[str], AbstractContextManager[Any]]


def idle_baseline(settings, sampler: Sampler, previous: Baseline | None = None,
                  on_wait: OnWait | None = None) -> Baseline:
    """Given, or measured over an idle window before the container starts (after a cool-down when
    ``previous``, the last container's baseline, was measured). ``on_wait`` shows the wait (a spinner);
    telemetry itself draws nothing. Every wait is on the sampler's clock."""
    clock = sampler.clock
    if settings.baseline_w is not None:
        return Baseline(settings.baseline_w, "given")
    if settings.baseline_s <= 0:
        return Baseline(None, "unavailable", reason="the idle baseline was skipped (--baseline-s 0)")
    what = f"measuring the idle baseline ({settings.baseline_s:g} s, {sampler.name})"
    with (on_wait(what) if on_wait is not None else contextlib.nullcontext()):
        deadline = clock.monotonic_ns() + int((5.0 + 10 * settings.interval_ms / 1000.0) * 1e9)
        while not sampler.samples and clock.monotonic_ns() < deadline:
            clock.sleep(settings.interval_ms / 4000.0)
        if not sampler.samples:
            return Baseline(None, "unavailable", reason=f"{sampler.name} produced no sample in time")
        # Before every measured baseline (the first container's too): power settles first.
        cooldown = wait_to_settle(sampler, previous.power_w if previous is not None else None,
                                  getattr(settings, "cooldown_tolerance", COOLDOWN_TOLERANCE),
                                  getattr(settings, "cooldown_max_s", COOLDOWN_MAX_S), settings.interval_ms,
                                  horizon_s=settings.baseline_s, clock=clock)
        # On the monotonic clock, like every window (see accounting); opens at the latest sample.
        first = sampler.samples[-1]
        t0, wall0 = first.mono_ns, first.t_ns
        if t0 is None:
            return Baseline(None, "unavailable", reason=f"{sampler.name} stamps no monotonic time")
        clock.sleep(max(0.0, settings.baseline_s - elapsed_s(clock, t0)))
        t1, wall1 = clock.monotonic_ns(), clock.time_ns()
        # wait for one sample past the window's end so that it is bracketed
        deadline = clock.monotonic_ns() + int((5.0 + 10 * settings.interval_ms / 1000.0) * 1e9)
        while (sampler.samples[-1].mono_ns or 0) < t1 and clock.monotonic_ns() < deadline:
            clock.sleep(settings.interval_ms / 4000.0)
    samples = sampler.samples
    halves = (_mean_w(samples, t0, (t0 + t1) // 2), _mean_w(samples, (t0 + t1) // 2, t1))
    cooldown["window_drift_w"] = halves[1] - halves[0] if None not in halves else None  # within the idle window
    return replace(measured_baseline(samples, t0, t1, clock="monotonic"), wall_window_ns=(wall0, wall1),
                   cooldown=cooldown, use=getattr(settings, "baseline", IDLE))
