"""The host's clocks, as one object that code takes instead of calling ``time`` itself.

Every wait of the measurement machinery (a sampler's polling cadence, the idle baseline's window and its
cool-down, the executor's wait for a sample past a window's end, an operating point's settle and its
observations) asks a ``Clock``: ``monotonic_ns`` (what windows are cut on), ``time_ns`` (wall time, for
display), ``sleep``, and ``every`` (call a function at a fixed cadence on a thread of its own). The one real
clock is ``SYSTEM_CLOCK``; tests pass a clock they move by hand (tests/fake_clock.py), so a sample count or a
cool-down is driven step by step instead of slept for, and cannot flake on a loaded host.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol


class Ticker(Protocol):
    """A cadence started by ``Clock.every``."""

    def stop(self, timeout_s: float) -> None:
        """Stop calling; returns once the last call has ended (or after ``timeout_s``). Idempotent."""


class Clock(Protocol):
    def monotonic_ns(self) -> int:
        """The monotonic clock (CLOCK_MONOTONIC: one clock for the host and its containers; never steps)."""

    def time_ns(self) -> int:
        """The wall clock (for display and logs that know no other clock)."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""

    def every(self, period_s: float, tick: Callable[[], None], name: str) -> Ticker:
        """Call ``tick`` every ``period_s`` (the first call one period from now) until the ticker is stopped."""


class _ThreadTicker:
    """``tick`` on a daemon thread, deadline-based so that the cadence does not drift by the tick's own time;
    a tick that overran skips the ticks it missed instead of bursting."""

    def __init__(self, period_s: float, tick: Callable[[], None], name: str) -> None:
        self._period_s = period_s
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self._period_s
        while not self._stop.wait(max(0.0, deadline - time.monotonic())):
            self._tick()
            deadline += self._period_s
            now = time.monotonic()
            if deadline < now:  # fell behind (a slow tick): skip, do not burst
                deadline = now + self._period_s

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout_s)


class SystemClock:
    """The host's own clocks (``time``)."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def time_ns(self) -> int:
        return time.time_ns()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def every(self, period_s: float, tick: Callable[[], None], name: str) -> Ticker:
        return _ThreadTicker(period_s, tick, name)


SYSTEM_CLOCK: Clock = SystemClock()


def elapsed_s(clock: Clock, since_ns: int) -> float:
    """Seconds on ``clock``'s monotonic time since ``since_ns``."""
    return (clock.monotonic_ns() - since_ns) / 1e9
