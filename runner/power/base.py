"""What every operating-point controller shares: the OperatingPoint record, the controller interface, the
comparison that flags a clamped or ignored request, and the root check.

A controller (jetson.py, nvidia.py) knows one kind of device: it says what this device supports (``problems``,
before anything runs), reads the operating point, applies a request, restores what it saved, and takes one
observation of clocks, temperatures and throttling for the observer (observe.py). It never sleeps or loops:
the order of things (apply, read back, settle, observe, restore) lives in apply.py, once.
"""

from __future__ import annotations

import abc
import os
from dataclasses import asdict, dataclass
from typing import Any

#: Read-back tolerance: a clock within this many MHz of the request is the request (devfreq lists Hz, e.g.
#: 624750000 for "625 MHz"; NVIDIA rounds to its clock steps).
CLOCK_TOLERANCE_MHZ = 1.0
#: A power limit within this many watts of the request is the request (NVML works in milliwatts).
POWER_TOLERANCE_W = 0.5


@dataclass(frozen=True)
class OperatingPoint:
    """One reading of a device's operating point; None: this device has no such setting, or it was not read.

    Jetson: ``mode_id``/``mode_name`` from ``nvpmodel -q``; ``gpu_min_mhz``/``gpu_max_mhz``/``gpu_cur_mhz``
    from the GPU's devfreq node; ``jetson_clocks`` is True when the GPU devfreq range is pinned (min = max at
    the top of the mode's range: what ``jetson_clocks`` leaves behind). NVIDIA: ``gpu_cur_mhz`` and
    ``mem_cur_mhz`` from NVML's current clocks (NVML has no getter for the locked range itself, so a lock is
    read back as the clock the GPU runs at), ``gpu_power_limit_w`` the enforced limit.
    """

    mode_id: int | None = None
    mode_name: str | None = None
    jetson_clocks: bool | None = None
    gpu_min_mhz: float | None = None
    gpu_max_mhz: float | None = None
    gpu_cur_mhz: float | None = None
    mem_cur_mhz: float | None = None
    gpu_power_limit_w: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PowerError(Exception):
    """A controller could not do what was asked (a tool failed, a write was refused); apply.py turns it into a
    UserError that names the group."""


def is_root() -> bool:
    """Whether this process may change clocks and power modes (module-level, so tests can fake non-root)."""
    return os.geteuid() == 0


def root_problem(what: str, grant: str) -> str | None:
    """The one sentence that refuses a run without the rights to change the operating point (None: root)."""
    if is_root():
        return None
    return (f"{what} needs root ({grant} need it); run edgeasr as root, for instance with sudo -E edgeasr ..., "
            "or, with compose (whose runner runs as the project's owner), EDGEASR_KEEP_ROOT=1 docker compose ...")


class Controller(abc.ABC):
    """One device's operating-point knobs (see the module doc)."""

    #: "jetson" | "nvidia": the record's ``controller``.
    name: str = "abstract"

    @abc.abstractmethod
    def problems(self, power: Any) -> list[str]:
        """Why this device cannot take ``power`` (PowerSettings): unsupported values, naming the allowed ones,
        and missing permissions. Reads only; [] means it can."""

    @abc.abstractmethod
    def read(self) -> OperatingPoint:
        """The operating point now."""

    @abc.abstractmethod
    def save(self) -> Any:
        """What ``restore`` needs to put the device back as it is now (opaque to the caller)."""

    @abc.abstractmethod
    def apply(self, power: Any) -> None:
        """Set the requested fields of ``power``; PowerError when the device refuses."""

    @abc.abstractmethod
    def restore(self, saved: Any) -> None:
        """Put back what ``save`` returned; PowerError when the device refuses."""

    @abc.abstractmethod
    def observe(self) -> dict[str, Any]:
        """One observation: clocks in MHz (``gpu_mhz``, ``cpu_mhz``, ``emc_mhz``, ``mem_mhz``), temperatures
        (``temp_c.<sensor>``), throttle reasons (``throttle``: a list of names) and event counters
        (``oc_events.<name>``); a key is absent when this device cannot say (``unavailable`` says why)."""

    def unavailable(self) -> dict[str, str]:
        """Observation keys this device cannot provide, with the reason."""
        return {}

    def facts(self) -> dict[str, Any]:
        """The device's power facts for the record (L4T release, nvpmodel.conf hash, driver, governor...)."""
        return {}


def mismatches(power: Any, point: OperatingPoint) -> list[str]:
    """Each requested field that the read-back ``point`` does not show, in one sentence each (clamped by the
    mode, ignored by the driver...); [] when the device is at the request."""
    out: list[str] = []
    if power.mode is not None:
        wanted = power.mode
        got = point.mode_id if isinstance(wanted, int) else point.mode_name
        if got != wanted:
            out.append(f"power.mode: requested {wanted!r}, the board reports mode {point.mode_id} "
                       f"({point.mode_name})")
    if power.jetson_clocks is not None and point.jetson_clocks is not None and \
            power.jetson_clocks != point.jetson_clocks:
        out.append(f"power.jetson_clocks: requested {str(power.jetson_clocks).lower()}, the GPU clock range reads "
                   f"{_mhz(point.gpu_min_mhz)}-{_mhz(point.gpu_max_mhz)}")
    if power.gpu_freq_mhz is not None:
        want = float(power.gpu_freq_mhz)
        if point.gpu_min_mhz is not None and point.gpu_max_mhz is not None:  # devfreq: the range is readable
            if abs(point.gpu_min_mhz - want) > CLOCK_TOLERANCE_MHZ or abs(point.gpu_max_mhz - want) > CLOCK_TOLERANCE_MHZ:
                clamp = " (clamped by the power mode)" if point.gpu_max_mhz < want - CLOCK_TOLERANCE_MHZ else ""
                out.append(f"power.gpu_freq_mhz: requested {_mhz(want)}, the GPU clock range reads "
                           f"{_mhz(point.gpu_min_mhz)}-{_mhz(point.gpu_max_mhz)}{clamp}")
        elif point.gpu_cur_mhz is None:
            out.append(f"power.gpu_freq_mhz: requested {_mhz(want)}, the GPU clock could not be read back")
        elif abs(point.gpu_cur_mhz - want) > max(CLOCK_TOLERANCE_MHZ, 0.01 * want):
            out.append(f"power.gpu_freq_mhz: requested {_mhz(want)}, the GPU runs at {_mhz(point.gpu_cur_mhz)}")
    if power.mem_freq_mhz is not None:
        want = float(power.mem_freq_mhz)
        if point.mem_cur_mhz is None or abs(point.mem_cur_mhz - want) > max(CLOCK_TOLERANCE_MHZ, 0.01 * want):
            out.append(f"power.mem_freq_mhz: requested {_mhz(want)}, the memory clock reads {_mhz(point.mem_cur_mhz)}")
    if power.gpu_power_limit_w is not None:
        want = float(power.gpu_power_limit_w)
        got_w = point.gpu_power_limit_w
        if got_w is None or abs(got_w - want) > POWER_TOLERANCE_W:
            got_text = "unreadable" if got_w is None else f"{got_w:g} W"
            out.append(f"power.gpu_power_limit_w: requested {want:g} W, the enforced limit is {got_text}")
    return out


def _mhz(value: float | None) -> str:
    return "unreadable" if value is None else f"{value:g} MHz"
