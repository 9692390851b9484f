"""The container's memory as a timeline, read on the host from its cgroup (issue 22, item 1).

The summary's ``peak_rss_mib`` (the entrypoint's peak_rss_mb) is one number per condition from inside the
container (VmHWM, reset at the condition's start), and memory the process freed but kept still counts in it. The energy samplers' memory is the
device's (Jetson RAM, NVML GPU memory), and a CPU host has none. So the host samples the container's own memory
(its cgroup's working set) on its clocks, at the telemetry interval, and each condition takes the peak over its
own window, beside what was resident at its start and each window's peak: the same figures the energy block gives
for a sampler's memory (accounting.MemoryFigures). All in MiB (2^20 bytes), named ``_mib``.

The working set is what ``docker stats`` shows: the cgroup's usage less its inactive file cache (pages the kernel
reclaims first, which belong to no process: the audio and model files read). cgroup v1 (Docker's cgroupfs driver)
and v2 (cgroupfs or systemd driver) are read; the container's cgroup is found by its id, and a host whose
cgroups are not visible (a runner in a container without the host's /sys/fs/cgroup) says so.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..host.clock import SYSTEM_CLOCK, Clock
from .energy import accounting
from .energy.integrate import on_clock
from .samplers.base import Availability, Sample, now_ns
from .samplers.polling import PollingSampler

CGROUP_ROOT = Path("/sys/fs/cgroup")
_MIB = 2 ** 20


@dataclass(frozen=True)
class Cgroup:
    """One container's memory cgroup: the usage file and the stat file with the inactive file cache."""

    version: int
    usage: Path  # memory.usage_in_bytes (v1) or memory.current (v2)
    stat: Path  # memory.stat
    inactive_key: str  # total_inactive_file (v1, hierarchical) or inactive_file (v2)

    def describe(self) -> str:
        return f"cgroup v{self.version} {self.usage.name} - {self.inactive_key} (the working set, as docker stats)"

    def read_mib(self) -> float:
        """The working set now, MiB. Raises OSError when the cgroup is gone or unreadable, ValueError on a file
        not in the kernel's format."""
        usage = int(self.usage.read_text().split()[0])
        inactive = 0
        for line in self.stat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == self.inactive_key:
                inactive = int(value)
                break
        return max(0, usage - inactive) / _MIB


def find_cgroup(container_id: str, root: Path = CGROUP_ROOT) -> Cgroup | None:
    """The memory cgroup of a Docker container by its full id, or None where none is visible here."""
    v1 = root / "memory" / "docker" / container_id
    if (v1 / "memory.usage_in_bytes").is_file():
        return Cgroup(1, v1 / "memory.usage_in_bytes", v1 / "memory.stat", "total_inactive_file")
    for folder in (root / "system.slice" / f"docker-{container_id}.scope", root / "docker" / container_id):
        if (folder / "memory.current").is_file():
            return Cgroup(2, folder / "memory.current", folder / "memory.stat", "inactive_file")
    return None


class ContainerMemorySampler(PollingSampler):
    """Polls the container's cgroup from ``attach`` (when the engine knows its id) until the cgroup is gone.

    Started before the container (so that the first reading follows its creation at once) and stopped after it;
    before ``attach`` and after the container's end it reads nothing, and that is no error. ``reason`` says why
    there is no timeline (no cgroup visible for the container), or None."""

    name = "cgroup_memory"

    def __init__(self, interval_ms: int, root: Path = CGROUP_ROOT, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(interval_ms, clock)
        self.root = root
        self.cgroup: Cgroup | None = None
        self.reason: str | None = "the engine reported no container"
        self._gone = False
        self._attach_lock = threading.Lock()

    def probe(self) -> Availability:
        return Availability.yes()

    def attach(self, container_id: str) -> None:
        """Follow the container with this id (the engine's on_started)."""
        group = find_cgroup(container_id, self.root)
        with self._attach_lock:
            self.cgroup = group
            self.reason = None if group is not None else (
                f"no memory cgroup of container {container_id[:12]} is visible under {self.root} (a runner in a "
                "container without the host's cgroups, or another cgroup layout)")
        if group is not None:
            self.sample_now()

    def _read(self) -> Sample | None:
        group = self.cgroup
        if group is None or self._gone:
            return None
        try:
            value = group.read_mib()
        except FileNotFoundError:  # the container ended and its cgroup went with it: the timeline ends here
            self._gone = True
            return None
        t_ns, mono_ns = now_ns(self.clock)
        return Sample(t_ns=t_ns, mono_ns=mono_ns, mem_used_mib=value)

    def health(self) -> dict[str, Any]:
        return {**super().health(), "source": self.cgroup.describe() if self.cgroup is not None else None,
                "unavailable": self.reason}


#: Which figure of the container's memory block is the headline.
HEADLINE = ("peak_mib: the container's working set at its peak over the condition's own window (its inference "
            "window), sampled on the host at interval_ms; rise_mib beside it is over what was resident at its "
            "start; settings that change a loaded model's memory (the batch size) run in containers of their own")


def container_memory_block(samples: Sequence[Sample], events: Sequence[dict[str, Any]], source: str | None,
                           interval_ms_requested: int, reason: str | None = None) -> dict[str, Any]:
    """The summary's ``container_memory``: the condition's peak, what was resident at its start and the rise,
    each window's peak (load, warm-up, the condition, the container), the source, clock and interval; a figure
    that is null has its reason in ``unavailable`` (figure -> reason), as the energy block's do."""
    out: dict[str, Any] = {"source": source, "clock": None, "interval_ms": None,
                           "interval_ms_requested": interval_ms_requested, "peak_mib": None, "at_start_mib": None,
                           "rise_mib": None, "windows_mib": {}, "n_samples": len(samples), "headline": HEADLINE,
                           "unavailable": {}}

    def missing(why: str) -> dict[str, Any]:
        out["unavailable"] = {f: why for f in FIGURES if out[f] is None}
        return out

    if not samples:
        return missing(reason or "no reading of the container's memory was taken")
    clock = accounting.timeline_clock(samples, events)
    timeline = on_clock(samples, clock)
    windows = accounting.event_windows(events, clock)
    times = [s.t_ns for s in timeline]
    out["clock"] = clock
    out["interval_ms"] = (times[-1] - times[0]) / (len(times) - 1) / 1e6 if len(times) > 1 else None
    out["windows_mib"] = {name: accounting.peak_mib(timeline, a, b) for name, (a, b) in windows.items()}
    if "inference" not in windows:
        return missing("the container recorded no window for the condition")
    i0, i1 = windows["inference"]
    peak, at_start = accounting.peak_mib(timeline, i0, i1), accounting.mem_at(timeline, i0)
    out.update(peak_mib=peak, at_start_mib=at_start,
               rise_mib=peak - at_start if peak is not None and at_start is not None else None)
    if peak is None:
        return missing(f"no reading fell inside the condition's window (shorter than the {interval_ms_requested} "
                       f"ms interval)")
    return missing("no reading at or before the condition's start")


#: The block's figures that are null with a reason when they cannot be read.
FIGURES = ("peak_mib", "at_start_mib", "rise_mib")
