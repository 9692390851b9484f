"""The sampler interface: what every power/telemetry sampler looks like.

A sampler only RECORDS: it appends raw samples, each stamped with the host
monotonic clock (``monotonic_ns()``, what windows are cut on: CLOCK_MONOTONIC
is one clock for the host and every container on its kernel, and never steps)
and the wall clock (``time_ns()``, for display) when the reading arrived, both
read from the sampler's ``clock`` (runner/host/clock.py; tests pass one they move). It never computes
windows, averages or energies for a benchmark phase; ``energy.py`` does that
afterwards with pure functions over ``Sampler.samples``. Keeping the two apart
means a window can be re-cut later (warm-up excluded, idle baseline taken) from
the same timeline without sampling again.

Lifecycle: the constructor is cheap (no processes, no files, no imports of
vendor libraries), ``probe()`` says whether the sampler can work here and why
not, ``start()``/``stop()`` are idempotent, and the context manager always
stops, also on exceptions and Ctrl-C. A sampler is single-use: after
``stop()`` make a new one (so one object never holds two timelines).

An unavailable measurement is reported as unavailable WITH A REASON (None and
a reason string), never as 0: a 0 W reading would silently make energy look
free.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from runner.errors import UserError
from runner.host.clock import SYSTEM_CLOCK, Clock


@dataclass(frozen=True)
class Availability:
    """Whether a sampler can measure on this host; ``reason`` says why not."""

    ok: bool
    reason: str | None = None

    @classmethod
    def yes(cls) -> Availability:
        return cls(ok=True, reason=None)

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(ok=False, reason=reason)


@dataclass(frozen=True)
class Sample:
    """One raw reading of every channel a sampler sees, at one instant.

    ``t_ns``: host wall clock (``time.time_ns()``) when the reading arrived; for display
    and for logs that know no other clock.
    ``mono_ns``: host monotonic clock (``time.monotonic_ns()``) at the same moment; windows
    are cut on it when every sample and event has it (a wall-clock step is not energy).
    ``power_w``: instantaneous power per channel (rail, RAPL domain, GPU).
    ``total_w``: the sampler's best figure for the whole device, or None;
    ``total_kind`` labels it (``"input_rail:VDD_IN"``, ``"partial_sum_of_rails"``,
    ``"rapl:package+dram"``, ``"nvml:sum_of_gpus"``) or, when ``total_w`` is
    None, says why.
    ``energy_j``: cumulative energy counter per channel (J since the sampler
    started) where the hardware keeps one; None where it does not.
    ``total_energy_j``: the same counter for the total, built by the same rule
    as ``total_w``; when present, integration prefers it to power samples.
    ``total_channels``: the channels whose counters ``total_energy_j`` adds up (RAPL's packages and DRAM, NVML's
    GPUs), so that one stuck part of a total is seen even while the others move; None where not known.
    ``mem_used_mib``: memory in use (host RAM on Jetson, GPU memory on NVML).
    ``extras``: everything else the source reported (loads, clocks, temps).
    """

    t_ns: int
    power_w: Mapping[str, float] = field(default_factory=dict)
    total_w: float | None = None
    total_kind: str | None = None
    energy_j: Mapping[str, float] | None = None
    total_energy_j: float | None = None
    mem_used_mib: float | None = None
    extras: Mapping[str, Any] = field(default_factory=dict)
    mono_ns: int | None = None
    total_channels: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON timelines (units are in the key names)."""
        return {
            "t_ns": self.t_ns,
            "mono_ns": self.mono_ns,
            "power_w": dict(self.power_w),
            "total_w": self.total_w,
            "total_kind": self.total_kind,
            "energy_j": None if self.energy_j is None else dict(self.energy_j),
            "total_energy_j": self.total_energy_j,
            "mem_used_mib": self.mem_used_mib,
            "extras": dict(self.extras),
        }


#: ``Sample.extras`` key of a counter step that was lost (a wrap that could not be corrected): ``{"channels": [...],
#: "total": bool}``, on the sample that ends the lost interval; integration makes every window over it unavailable.
COUNTER_LOST = "counter_lost"

#: ``Sample.extras`` key saying how a sample's time was found where it was not simply its arrival:
#: ``STAMP_CADENCE`` for a line that arrived in a burst and was placed by the source's own cadence (tegrastats);
#: ``ARRIVAL_MONO_NS`` then keeps when it really arrived (monotonic). Integration flags the windows they touch.
STAMP = "stamp"
STAMP_CADENCE = "cadence"
ARRIVAL_MONO_NS = "arrival_mono_ns"

#: ``Sample.extras`` keys of what went wrong around a sample, so that the windows it touches can be named
#: (integrate.window_flags): ``LOST_BEFORE``, readings lost since the previous sample (a failed poll, a line that did
#: not parse), one reason each; ``FAILED_QUERIES``, queries that failed in this reading ("gpu0.memory: NVML error").
LOST_BEFORE = "lost_before"
FAILED_QUERIES = "failed_queries"

#: How often a polling sampler reads its source when the run says nothing else (``--interval-ms``): the one
#: default of every sampler's constructor, the sampler table's and the telemetry settings'.
DEFAULT_INTERVAL_MS = 100


def now_ns(clock: Clock = SYSTEM_CLOCK) -> tuple[int, int]:
    """(wall, monotonic) clock readings for stamping a sample, taken back to back."""
    return clock.time_ns(), clock.monotonic_ns()


_SamplerT = TypeVar("_SamplerT", bound="Sampler")


class Sampler(abc.ABC):
    """Base class: lifecycle, thread-safe timeline, context manager.

    Subclasses implement ``probe``, ``_start`` and ``_stop``; they append
    readings with ``_append``. ``start`` and ``stop`` here make the lifecycle
    idempotent and single-use so that subclasses cannot get it wrong.
    """

    #: Short name used on the command line and in reports.
    name: str = "abstract"

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        #: What samples are stamped with and cadences run on (tests pass a clock they move by hand).
        self.clock = clock
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._state = "new"  # new -> running -> stopped
        self._state_lock = threading.Lock()
        #: Samplers of another scope that run beside this one for the same run (RAPL's CPU energy beside
        #: NVML's GPU energy on a CUDA host); they start and stop with it. A companion that cannot start
        #: does not stop the run: its reason is kept in ``companion_reasons``.
        self.companions: list[Sampler] = []
        self.companion_reasons: dict[str, str] = {}

    # -- public API ---------------------------------------------------------

    @abc.abstractmethod
    def probe(self) -> Availability:
        """Can this sampler measure here? No side effects: starts nothing,
        writes nothing, leaves no library initialised."""

    @property
    def samples(self) -> list[Sample]:
        """A copy of the timeline so far, oldest first."""
        with self._lock:
            return list(self._samples)

    @property
    def running(self) -> bool:
        return self._state == "running"

    def health(self) -> dict[str, Any]:
        """How sampling went: which sampler, what failed and why. Subclasses add their own facts; ``ok`` is False
        when something was lost. What the sampler measures (scope, memory figures) is its row's in the sampler
        table: ``registry.health`` puts the two together for ``summary.json``'s ``telemetry.health``."""
        out: dict[str, Any] = {"sampler": self.name, "ok": True, "n_samples": len(self.samples)}
        if self.companions or self.companion_reasons:
            out["companions"] = {c.name: c.health() for c in self.companions}
            out["companions_unavailable"] = dict(self.companion_reasons)
        return out

    def start(self) -> None:
        """Start sampling. Calling it while running does nothing (never a
        second process or thread). Raises ``UserError`` with the probe's reason
        when the sampler cannot work here, ``RuntimeError`` after ``stop()``
        (a sampler is single-use)."""
        with self._state_lock:
            if self._state == "running":
                return
            if self._state == "stopped":
                raise RuntimeError(f"the {self.name} sampler was stopped; create a new one to sample again")
            availability = self.probe()
            if not availability.ok:
                raise UserError(f"energy sampler '{self.name}' cannot run here: {availability.reason}")
            self._start()
            self._state = "running"
        for companion in self.companions:
            try:
                companion.start()
            except Exception as exc:  # noqa: BLE001 - a companion is extra: record why, keep measuring
                self.companion_reasons[companion.name] = str(exc)

    def stop(self) -> None:
        """Stop sampling and release every process, thread and library.
        Idempotent; safe to call from ``finally`` blocks and before start."""
        for companion in self.companions:
            companion.stop()
        with self._state_lock:
            if self._state == "running":
                try:
                    self._stop()
                finally:
                    self._state = "stopped"
            else:
                self._state = "stopped"

    def __enter__(self: _SamplerT) -> _SamplerT:  # noqa: PYI019 - typing.Self is 3.11+, the project supports 3.10
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- for subclasses -----------------------------------------------------

    @abc.abstractmethod
    def _start(self) -> None:
        """Acquire resources and begin recording (called once)."""

    @abc.abstractmethod
    def _stop(self) -> None:
        """Release everything ``_start`` acquired (called once, must not hang)."""

    def _append(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)


class NullSampler(Sampler):
    """The sampler for "no energy measurement" (``--telemetry none``, or ``auto`` finding no sensor).

    It records nothing and its ``probe()`` says so with a reason, so reports
    show energy as unavailable (with that reason) rather than as 0 J. Unlike
    other samplers, ``start()`` works even though ``probe()`` is not ok: the
    point of this sampler is to run the benchmark without measuring.
    """

    name = "none"

    def __init__(self, reason: str = "energy measurement was turned off (sampler 'none')",
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(clock)
        self.reason = reason

    def probe(self) -> Availability:
        return Availability.no(self.reason)

    def health(self) -> dict[str, Any]:
        """Nothing was sampled: ``ok`` is False and ``reason`` says why (turned off, or no sensor found)."""
        return {"sampler": self.name, "ok": False, "n_samples": 0, "reason": self.reason}

    def start(self) -> None:
        with self._state_lock:
            if self._state == "stopped":
                raise RuntimeError("the none sampler was stopped; create a new one to sample again")
            self._state = "running"

    def _start(self) -> None:  # pragma: no cover - start() is overridden
        pass

    def _stop(self) -> None:
        pass
