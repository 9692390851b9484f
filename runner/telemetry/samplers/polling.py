"""A sampler that reads a source every ``interval_ms`` on its own thread.

RAPL and NVML have no stream to follow: someone has to read their counters
periodically. ``PollingSampler`` owns that cadence (its clock's ``every``: a
thread on the real clock, ticks driven step by step on a test's clock). It takes one reading at
``start()`` and one at ``stop()`` so that a window measured between the two
calls is always bracketed by samples (integration never has to extrapolate),
and ``sample_now()`` lets a caller add a reading exactly at a window edge.

A reading that fails is not fatal to the timeline: the error text is kept in
``errors`` (the last few) and the thread carries on, because one bad read must
not silently end a long benchmark's measurement. The next good reading says how
many were lost before it (``extras[LOST_BEFORE]``), so that every window over the
gap is named (integrate.window_flags).
"""

from __future__ import annotations

import abc
import threading
from dataclasses import replace
from typing import Any

from runner.host.clock import SYSTEM_CLOCK, Clock, Ticker
from runner.telemetry.samplers.base import DEFAULT_INTERVAL_MS, LOST_BEFORE, Sample, Sampler

_MAX_ERRORS_KEPT = 20


class PollingSampler(Sampler):
    """Base for samplers that poll; subclasses implement ``_read``."""

    def __init__(self, interval_ms: int = DEFAULT_INTERVAL_MS, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms}")
        self.interval_ms = interval_ms
        self.errors: list[str] = []
        self.n_errors = 0  # all of them; ``errors`` keeps the last few
        self._lost: list[str] = []  # why readings failed since the last good one
        self._read_lock = threading.Lock()
        self._ticker: Ticker | None = None

    def sample_now(self) -> Sample | None:
        """Take one reading now and append it; returns it (None on failure).
        Thread-safe with the polling thread; readings stay in time order."""
        with self._read_lock:
            try:
                sample = self._read()
            except Exception as exc:  # noqa: BLE001 - kept, not swallowed: see errors
                self._note_error(f"{type(exc).__name__}: {exc}")
                self._lost.append(f"{type(exc).__name__}: {exc}")
                return None
            if sample is not None:
                if self._lost:
                    sample = replace(sample, extras={**sample.extras, LOST_BEFORE: list(self._lost)})
                    self._lost.clear()
                self._append(sample)
            return sample

    # -- Sampler hooks --------------------------------------------------------

    def _start(self) -> None:
        self._open()
        self.sample_now()
        self._ticker = self.clock.every(self.interval_ms / 1000.0, self.sample_now, f"{self.name}-sampler")

    def _stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.stop(timeout_s=max(2.0, 5 * self.interval_ms / 1000.0))
        try:
            self.sample_now()
        finally:
            self._close()

    # -- for subclasses -------------------------------------------------------

    def _open(self) -> None:
        """Acquire what ``_read`` needs (files, libraries). Default: nothing."""

    def _close(self) -> None:
        """Release what ``_open`` acquired. Default: nothing."""

    @abc.abstractmethod
    def _read(self) -> Sample | None:
        """Read the source once and return a sample stamped with ``now_ns(self.clock)``."""

    # -- internals ------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Adds the polling errors: a failed reading leaves a gap that integration bridges."""
        return {**super().health(), "ok": self.n_errors == 0, "interval_ms": self.interval_ms,
                "n_polling_errors": self.n_errors, "polling_errors": list(self.errors)}

    def _note_error(self, text: str) -> None:
        self.n_errors += 1
        self.errors.append(text)
        del self.errors[:-_MAX_ERRORS_KEPT]
