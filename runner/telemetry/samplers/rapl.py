"""CPU package/DRAM energy from Linux RAPL (``/sys/class/powercap``).

RAPL keeps a cumulative energy counter per power domain, so energy over a
window is a difference of two counter readings: exact, whatever the sampling
interval. Power per channel is derived between successive samples.

Domains: ``intel-rapl:N`` are top-level domains (``package-N``, and on some
laptops ``psys``); ``intel-rapl:N:M`` are their subdomains (``core``,
``uncore``, ``dram``). AMD Zen CPUs expose the same ``intel-rapl`` layout.
``intel-rapl-mmio:*`` duplicates the package domain on recent Intel CPUs and
is ignored.

What the total is (``Sample.total_w`` / ``total_energy_j``):

* ``core`` and ``uncore`` are parts of their package: never added to it;
* ``dram`` is NOT part of the package: added to it;
* the total is always the sum of all packages plus all DRAM domains
  (``"rapl:package+dram"``, or ``"rapl:package"`` without DRAM);
* ``psys`` (platform, on laptops) covers the package and DRAM and more of the
  SoC, but on many machines its counter is stuck or counts something else, so
  it never replaces the total: its counter is kept per channel, and accounting
  reports it as an extra figure (``psys_j``) only when it moved consistently
  with package+DRAM over the idle window (``accounting.psys_check``).

Counters wrap at ``max_energy_range_uj``; each step is corrected for one wrap
(at 100 ms sampling a counter cannot wrap twice). A wrap that cannot be corrected
(the range was unreadable) loses that interval's energy: the sample that ends it
says so (``extras["counter_lost"]``), and every window over it is unavailable
rather than short (``integrate``). A total counter that never advances is stuck:
health says so (``ok: false``), and a window over it is unavailable, never 0 J.
Since Linux 5.10
``energy_uj`` is readable by root only (CVE-2020-8694), so ``probe`` reports
"needs root" rather than failing later.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.host.clock import SYSTEM_CLOCK, Clock
from runner.telemetry.samplers.base import COUNTER_LOST, DEFAULT_INTERVAL_MS, Availability, Sample, now_ns
from runner.telemetry.samplers.polling import PollingSampler

_DOMAIN_DIR_RE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL domain directory and the channel name used for it."""

    channel: str  # "package-0", "package-0/dram", "psys"
    name: str  # contents of the domain's name file
    path: Path
    is_top_level: bool
    max_energy_range_uj: int | None


def _read_int(path: Path) -> int:
    """Read one integer sysfs file (module-level so tests can replace it)."""
    with open(path, encoding="ascii") as handle:
        return int(handle.read().strip())


def _read_text(path: Path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def find_domains(root: Path) -> list[RaplDomain]:
    """List the RAPL domains under ``root``, packages before their subdomains.
    Reads only ``name`` and ``max_energy_range_uj`` (readable by anyone)."""
    entries = []
    for entry in os.listdir(root):
        match = _DOMAIN_DIR_RE.match(entry)
        if match:
            top = int(match.group(1))
            sub = -1 if match.group(2) is None else int(match.group(2))
            entries.append((top, sub, entry))
    entries.sort()
    domains: list[RaplDomain] = []
    top_names: dict[int, str] = {}
    used: set[str] = set()
    for top, sub, entry in entries:
        path = root / entry
        try:
            name = _read_text(path / "name")
        except OSError:
            name = entry
        if sub < 0:
            top_names[top] = name
            channel = name
        else:
            channel = f"{top_names.get(top, f'intel-rapl:{top}')}/{name}"
        base, n = channel, 2
        while channel in used:
            channel = f"{base}#{n}"
            n += 1
        used.add(channel)
        try:
            max_range = _read_int(path / "max_energy_range_uj")
        except (OSError, ValueError):
            max_range = None
        domains.append(RaplDomain(channel, name, path, sub < 0, max_range))
    return domains


def total_rule(domains: list[RaplDomain]) -> tuple[list[str], str]:
    """Which channels make up the total, and its label (see module doc): never psys."""
    packages = [d.channel for d in domains if d.is_top_level and d.name.startswith("package")]
    dram = [d.channel for d in domains if d.name == "dram"]
    return packages + dram, "rapl:package+dram" if dram else "rapl:package"


class RaplSampler(PollingSampler):
    """Samples RAPL energy counters every ``interval_ms``.

    Each ``Sample`` carries ``energy_j`` (cumulative, wrap-corrected, J since
    the first sample) per domain and for the total, and ``power_w`` derived
    from the last two readings (absent on the first sample).
    """

    name = "rapl"

    def __init__(self, root: str | os.PathLike[str] = "/sys/class/powercap", interval_ms: int = DEFAULT_INTERVAL_MS,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(interval_ms, clock)
        self.root = Path(root)
        self.domains: list[RaplDomain] = []
        self._total_channels: list[str] = []
        self._total_kind = "rapl:package+dram"
        self._prev_uj: dict[str, int] = {}
        self._acc_j: dict[str, float] = {}
        self._prev_t_ns: int | None = None
        self._prev_energy_j: dict[str, float] = {}
        #: Intervals lost because a counter went down with no readable max_energy_range_uj to unwrap it.
        self.dropped_intervals = 0
        self._dropped_channels: set[str] = set()
        #: Channels whose counter moved at least once since the first reading (a total channel that never
        #: does is stuck), and how many readings were taken.
        self._advanced: set[str] = set()
        self._n_reads = 0

    def health(self) -> dict[str, Any]:
        """Adds the domains, the total's rule, and the intervals dropped for an unreadable wrap range."""
        out = {**super().health(), "domains": [d.channel for d in self.domains], "total_kind": self._total_kind,
               "dropped_intervals": self.dropped_intervals}
        if self.dropped_intervals:
            out["ok"] = False
            out["dropped_reason"] = (f"{', '.join(sorted(self._dropped_channels))}: the counter went down (wrapped) "
                                     "and max_energy_range_uj was unreadable, so the energy of the windows over "
                                     "that interval is unknown (unavailable, not 0 J)")
        stuck = self.stuck_channels()
        if stuck:
            out["ok"] = False
            out["stuck_channels"] = stuck
            out["stuck_reason"] = (f"{', '.join(stuck)}: the counter did not advance in {self._n_reads} readings: "
                                   "a stuck counter, whose energy is unavailable, not 0 J")
        return out

    def stuck_channels(self) -> list[str]:
        """The channels of the total whose counter never advanced over three readings or more."""
        if self._n_reads < 3:
            return []
        return [c for c in self._total_channels if c not in self._advanced]

    def probe(self) -> Availability:
        if not self.root.is_dir():
            return Availability.no(
                f"no powercap interface at {self.root} (not Linux, or the intel_rapl driver is not loaded)"
            )
        try:
            domains = find_domains(self.root)
        except OSError as exc:
            return Availability.no(f"cannot list {self.root}: {exc}")
        if not domains:
            return Availability.no(
                f"no RAPL domains (intel-rapl:N) under {self.root}: this CPU or VM exposes no RAPL counters"
            )
        for domain in domains:
            path = domain.path / "energy_uj"
            try:
                _read_int(path)
            except PermissionError:
                return Availability.no(
                    f"reading {path} needs root (Linux 5.10+ makes energy_uj root-only, CVE-2020-8694); "
                    "run as root or grant read access, e.g. sudo chmod a+r "
                    f"{self.root}/intel-rapl:*/energy_uj {self.root}/intel-rapl:*/*/energy_uj"
                )
            except (OSError, ValueError) as exc:
                return Availability.no(f"cannot read {path}: {exc}")
        return Availability.yes()

    def _open(self) -> None:
        self.domains = find_domains(self.root)
        self._total_channels, self._total_kind = total_rule(self.domains)

    def _read(self) -> Sample:
        raw = {d.channel: _read_int(d.path / "energy_uj") for d in self.domains}
        t_ns, mono_ns = now_ns(self.clock)
        self._n_reads += 1
        lost: list[str] = []
        for domain in self.domains:
            now_uj = raw[domain.channel]
            prev_uj = self._prev_uj.get(domain.channel)
            if prev_uj is None:
                self._acc_j[domain.channel] = 0.0
            else:
                if now_uj < prev_uj and domain.max_energy_range_uj is None:
                    self.dropped_intervals += 1
                    self._dropped_channels.add(domain.channel)
                    lost.append(domain.channel)
                if now_uj != prev_uj:
                    self._advanced.add(domain.channel)
                self._acc_j[domain.channel] += unwrap_delta_uj(prev_uj, now_uj, domain.max_energy_range_uj) / 1e6
            self._prev_uj[domain.channel] = now_uj

        energy_j = dict(self._acc_j)
        total_energy_j = sum(energy_j[c] for c in self._total_channels) if self._total_channels else None

        power_w: dict[str, float] = {}
        total_w: float | None = None
        total_kind = self._total_kind
        if self._prev_t_ns is not None and mono_ns > self._prev_t_ns:
            dt_s = (mono_ns - self._prev_t_ns) / 1e9
            # a lost interval has no power: its counter step is unknown, not 0
            power_w = {c: (energy_j[c] - self._prev_energy_j[c]) / dt_s for c in energy_j if c not in lost}
            if self._total_channels and all(c in power_w for c in self._total_channels):
                total_w = sum(power_w[c] for c in self._total_channels)
            elif self._total_channels:
                total_kind = f"rapl: the counter of {', '.join(lost)} wrapped with max_energy_range_uj unreadable"
        elif self._prev_t_ns is None:
            total_kind = "first RAPL reading: power needs two readings"
        if not self._total_channels:
            total_kind = "no package RAPL domain"
        self._prev_t_ns = mono_ns
        self._prev_energy_j = energy_j
        extras = ({COUNTER_LOST: {"channels": lost, "total": any(c in self._total_channels for c in lost)}}
                  if lost else {})
        return Sample(
            t_ns=t_ns,
            mono_ns=mono_ns,
            power_w=power_w,
            total_w=total_w,
            total_kind=total_kind,
            energy_j=energy_j,
            total_energy_j=total_energy_j,
            extras=extras,
            total_channels=tuple(self._total_channels),
        )


def unwrap_delta_uj(prev_uj: int, now_uj: int, max_range_uj: int | None) -> int:
    """Energy between two counter readings, corrected for one wrap-around.

    The counter runs from 0 to ``max_energy_range_uj`` and then restarts at 0,
    so a reading lower than the previous one means it wrapped once.
    """
    delta = now_uj - prev_uj
    if delta >= 0:
        return delta
    if max_range_uj is None:
        # No range to correct with: dropping the step is wrong by one
        # interval, adding garbage would be wrong by up to the whole range.
        return 0
    return delta + max_range_uj
