"""Observe the operating point while a group runs: a small thread that asks the controller for clocks,
temperatures, throttle reasons and event counters, and a pure summary of what it saw.

Why not the power sampler: the samplers measure energy at 10-100 ms and differ per device; the operating
point needs a few readings of the same few figures on every device, and it must also work when energy is
not measured at all (``--telemetry none``).
"""

from __future__ import annotations

import statistics
from typing import Any, Callable

from ..host.clock import SYSTEM_CLOCK, Clock, Ticker

DEFAULT_INTERVAL_S = 0.5


def summarize(observations: list[dict[str, Any]], unavailable: dict[str, str]) -> dict[str, Any]:
    """min / median / max of each figure, each throttle reason's share of the observations, and each event
    counter's increase; ``unavailable`` names what this device could not say and why (never zeros)."""
    out: dict[str, Any] = {"n": len(observations)}
    numbers: dict[str, list[float]] = {}
    counters: dict[str, list[float]] = {}
    reasons: dict[str, int] = {}
    n_throttle = 0
    for obs in observations:
        for key, value in obs.items():
            if key == "throttle":
                n_throttle += 1
                for name in value:
                    reasons[name] = reasons.get(name, 0) + 1
            elif key.startswith("oc_events."):
                counters.setdefault(key[len("oc_events."):], []).append(float(value))
            elif isinstance(value, (int, float)):
                numbers.setdefault(key, []).append(float(value))
    for key in sorted(numbers):
        values = numbers[key]
        out[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    if n_throttle:
        out["throttle_share"] = {name: count / n_throttle for name, count in sorted(reasons.items())}
    if counters:
        out["oc_event_deltas"] = {name: values[-1] - values[0] for name, values in sorted(counters.items())}
    missing = dict(unavailable)
    if not observations:
        missing["observed"] = "no observation was taken (the group ended before the first one)"
    if missing:
        out["unavailable"] = missing
    return out


class Observer:
    """Calls ``read()`` every ``interval_s`` on ``clock`` (a thread of its own on the real one) until
    ``stop()``; a failed reading is counted, not fatal (an operating point must not end a benchmark)."""

    def __init__(self, read: Callable[[], dict[str, Any]], interval_s: float = DEFAULT_INTERVAL_S,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.read = read
        self.interval_s = interval_s
        self.clock = clock
        self.observations: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._ticker: Ticker | None = None

    def _once(self) -> None:
        try:
            self.observations.append(self.read())
        except Exception as exc:  # noqa: BLE001 - kept in errors, see the class doc
            self.errors.append(f"{type(exc).__name__}: {exc}")
            del self.errors[:-10]

    def start(self) -> "Observer":
        self._once()
        self._ticker = self.clock.every(self.interval_s, self._once, "power-observer")
        return self

    def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.stop(timeout_s=max(2.0, 4 * self.interval_s))
            self._once()  # one reading at the end, so a short run still has two
