"""A FAKE clock for tests (runner/host/clock.py's ``Clock``): time stands still until the test moves it.

``sleep(s)`` moves the clock forward by ``s``, stopping at every tick of every ticker on the way and calling
it there, in the sleeping thread: a sampler polling every 10 ms takes exactly ten readings in
``clock.sleep(0.1)``, each stamped with its tick's time, whatever the host's load. No thread and no real
waiting is involved, so what a test asserts about sample counts, cool-downs and windows is exact.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Ticker:
    clock: ManualClock
    period_ns: int
    tick: Callable[[], None]
    name: str
    next_ns: int
    stopped: bool = False

    def stop(self, timeout_s: float) -> None:
        self.stopped = True
        with self.clock._lock:
            if self in self.clock._tickers:
                self.clock._tickers.remove(self)


class ManualClock:
    """Monotonic time starts at ``mono_ns``; wall time is monotonic time plus a fixed offset."""

    def __init__(self, mono_ns: int = 1_000_000_000_000, wall_ns: int = 1_700_000_000_000_000_000) -> None:
        self._mono_ns = mono_ns
        self._offset_ns = wall_ns - mono_ns
        self._tickers: list[_Ticker] = []
        self._lock = threading.RLock()
        self.slept_s: list[float] = []  # every sleep asked for, in order

    def monotonic_ns(self) -> int:
        return self._mono_ns

    def time_ns(self) -> int:
        return self._mono_ns + self._offset_ns

    def every(self, period_s: float, tick: Callable[[], None], name: str) -> _Ticker:
        ticker = _Ticker(self, max(1, round(period_s * 1e9)), tick, name, 0)
        ticker.next_ns = self._mono_ns + ticker.period_ns
        with self._lock:
            self._tickers.append(ticker)
        return ticker

    def sleep(self, seconds: float) -> None:
        self.slept_s.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, calling each ticker at each of its ticks on the way, in time order."""
        target = self._mono_ns + max(0, round(seconds * 1e9))
        while True:
            with self._lock:
                due = [t for t in self._tickers if t.next_ns <= target]
                if not due:
                    self._mono_ns = target
                    return
                ticker = min(due, key=lambda t: t.next_ns)
                self._mono_ns = max(self._mono_ns, ticker.next_ns)
                ticker.next_ns += ticker.period_ns
            ticker.tick()

    @property
    def tickers(self) -> int:
        """How many cadences run now (a stopped sampler leaves none behind)."""
        return len(self._tickers)
