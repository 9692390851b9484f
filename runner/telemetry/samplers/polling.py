"""A sampler that reads a source every ``interval_ms`` on its own thread.

RAPL and NVML have no stream to follow: someone has to read their counters
periodically. ``PollingSampler`` owns that thread. It takes one reading at
``start()`` and one at ``stop()`` so that a window measured between the two
calls is always bracketed by samples (integration never has to extrapolate),
and ``sample_now()`` lets a caller add a reading exactly at a window edge.

A reading that fails is not fatal to the timeline: the error text is kept in
``errors`` (the last few) and the thread carries on, because one bad read must
not silently end a long benchmark's measurement.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Any

from runner.telemetry.samplers.base import DEFAULT_INTERVAL_MS, Sample, Sampler

_MAX_ERRORS_KEPT = 20


class PollingSampler(Sampler):
    """Base for samplers that poll; subclasses implement ``_read``."""

    def __init__(self, interval_ms: int = DEFAULT_INTERVAL_MS) -> None:
        super().__init__()
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms}")
        self.interval_ms = interval_ms
        self.errors: list[str] = []
        self.n_errors = 0  # all of them; ``errors`` keeps the last few
        self._read_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def sample_now(self) -> Sample | None:
        """Take one reading now and append it; returns it (None on failure).
        Thread-safe with the polling thread; readings stay in time order."""
        with self._read_lock:
            try:
                sample = self._read()
            except Exception as exc:  # noqa: BLE001 - kept, not swallowed: see errors
                self._note_error(f"{type(exc).__name__}: {exc}")
                return None
            if sample is not None:
                self._append(sample)
            return sample

    # -- Sampler hooks --------------------------------------------------------

    def _start(self) -> None:
        self._open()
        self._wake.clear()
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-sampler", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=max(2.0, 5 * self.interval_ms / 1000.0))
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
        """Read the source once and return a sample stamped ``time.time_ns()``."""

    # -- internals ------------------------------------------------------------

    def _run(self) -> None:
        # Deadline-based so that the cadence does not drift by the read time.
        period_s = self.interval_ms / 1000.0
        deadline = time.monotonic() + period_s
        while not self._wake.wait(max(0.0, deadline - time.monotonic())):
            self.sample_now()
            deadline += period_s
            now = time.monotonic()
            if deadline < now:  # fell behind (slow read): skip, do not burst
                deadline = now + period_s

    def health(self) -> dict[str, Any]:
        """Adds the polling errors: a failed reading leaves a gap that integration bridges."""
        return {**super().health(), "ok": self.n_errors == 0, "interval_ms": self.interval_ms,
                "n_polling_errors": self.n_errors, "polling_errors": list(self.errors)}

    def _note_error(self, text: str) -> None:
        self.n_errors += 1
        self.errors.append(text)
        del self.errors[:-_MAX_ERRORS_KEPT]
