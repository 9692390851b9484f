"""Jetson board power read straight from its INA3221 power monitors in sysfs, with exact host timestamps.

tegrastats prints what it read some time before the line reaches us, so its samples are stamped late by up to
an interval; this sampler reads the monitor's files itself and stamps each reading at the middle of the reads
(``Sample.mono_ns``), at any interval the sysfs driver can follow (10-100 ms), with no extra process.

Layouts, found by looking, not by board:

* JetPack 5/6 (hwmon): a ``class/hwmon/hwmonN`` whose ``name`` is ``ina3221``, with ``in{N}_label`` (the rail:
  ``VDD_IN``, ``VDD_CPU_GPU_CV``, ``VDD_SOC`` on an Orin Nano), ``in{N}_input`` (bus voltage, mV) and
  ``curr{N}_input`` (current, mA); power = voltage x current. AGX Orin has two such monitors. A rail labelled
  ``NC`` is not connected and is left out.
* JetPack 4 (iio): ``bus/i2c/devices/*/iio:device*`` with ``rail_name_{N}`` and ``in_power{N}_input`` (mW).

The board total follows the tegrastats parser's input-rail rule (``tegrastats_parse.INPUT_RAIL_NAMES``): the
input rail where the board has one, else the partial sum of the rails, labelled as such. RAM in use comes from
``/proc/meminfo`` (MemTotal - MemAvailable): on a Jetson that is CPU and GPU memory together.

``root`` is the sysfs root (``/sys``; ``EDGEASR_SYSFS_ROOT`` moves it, for a fake tree in tests).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.host.clock import SYSTEM_CLOCK, Clock
from runner.telemetry.samplers.base import DEFAULT_INTERVAL_MS, Availability, Sample, now_ns
from runner.telemetry.samplers.polling import PollingSampler
from runner.telemetry.samplers.tegrastats_parse import INPUT_RAIL_NAMES

NOT_CONNECTED = "NC"


@dataclass(frozen=True)
class Rail:
    """One monitored rail and the files its power is computed from."""

    name: str
    voltage_mv: Path | None = None  # hwmon: in{N}_input
    current_ma: Path | None = None  # hwmon: curr{N}_input
    power_mw: Path | None = None  # iio: in_power{N}_input

    def read_w(self) -> float:
        if self.power_mw is not None:
            return _read_int(self.power_mw) / 1000.0
        assert self.voltage_mv is not None and self.current_ma is not None
        return _read_int(self.voltage_mv) * _read_int(self.current_ma) / 1e6


def _read_int(path: Path) -> int:
    with open(path, encoding="ascii") as handle:
        return int(handle.read().strip())


def _text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def find_rails(root: Path) -> list[Rail]:
    """Every connected INA3221 rail under the sysfs ``root``, hwmon first, names made unique (``NAME#2``)."""
    rails: list[Rail] = []
    for hwmon in sorted((root / "class" / "hwmon").glob("hwmon*")):
        if _text(hwmon / "name") != "ina3221":
            continue
        for label in sorted(hwmon.glob("in*_label")):
            n = label.name[2:-len("_label")]
            name = _text(label)
            if not name or name == NOT_CONNECTED or not n.isdigit():
                continue
            rails.append(Rail(name, voltage_mv=hwmon / f"in{n}_input", current_ma=hwmon / f"curr{n}_input"))
    if not rails:
        for dev in sorted((root / "bus" / "i2c" / "devices").glob("*/iio:device*")):
            for label in sorted(dev.glob("rail_name_*")):
                n = label.name[len("rail_name_"):]
                name = _text(label)
                if name and name != NOT_CONNECTED:
                    rails.append(Rail(name, power_mw=dev / f"in_power{n}_input"))
    seen: dict[str, int] = {}
    out = []
    for rail in rails:
        seen[rail.name] = seen.get(rail.name, 0) + 1
        out.append(rail if seen[rail.name] == 1 else Rail(f"{rail.name}#{seen[rail.name]}", rail.voltage_mv,
                                                          rail.current_ma, rail.power_mw))
    return out


def total_power_w(power_w: dict[str, float]) -> tuple[float | None, str]:
    """The board total by the tegrastats rule: (input rail, ``input_rail:NAME``), else (sum,
    ``partial_sum_of_rails``)."""
    rail = next((n for n in INPUT_RAIL_NAMES if n in power_w), None)
    if rail is not None:
        return power_w[rail], f"input_rail:{rail}"
    if power_w:
        return sum(power_w.values()), "partial_sum_of_rails"
    return None, "no INA3221 rails"


def _ram_used_mib(meminfo: Path) -> float | None:
    values: dict[str, int] = {}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                values[key] = int(rest.split()[0])  # kB
    except (OSError, ValueError, IndexError):
        return None
    if len(values) < 2:
        return None
    return (values["MemTotal"] - values["MemAvailable"]) / 1024.0


class Ina3221Sampler(PollingSampler):
    """Samples every INA3221 rail every ``interval_ms`` (see the module doc)."""

    name = "ina3221"

    def __init__(self, root: str | os.PathLike[str] = "/sys", interval_ms: int = DEFAULT_INTERVAL_MS,
                 meminfo: str | os.PathLike[str] = "/proc/meminfo", clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(interval_ms, clock)
        self.root = Path(root)
        self.meminfo = Path(meminfo)
        self.rails: list[Rail] = []

    def probe(self) -> Availability:
        rails = find_rails(self.root)
        if not rails:
            return Availability.no(f"no INA3221 power monitor under {self.root}/class/hwmon (name ina3221) or "
                                   f"{self.root}/bus/i2c/devices/*/iio:device* (not a Jetson, or its driver is "
                                   f"not loaded)")
        for rail in rails:
            try:
                rail.read_w()
            except PermissionError:
                return Availability.no(f"reading the INA3221 rail {rail.name} needs read access to "
                                       f"{rail.voltage_mv or rail.power_mw}; run as root or grant it")
            except (OSError, ValueError) as exc:
                return Availability.no(f"cannot read the INA3221 rail {rail.name}: {exc}")
        return Availability.yes()

    def health(self) -> dict[str, Any]:
        return {**super().health(), "rails": [r.name for r in self.rails]}

    def _open(self) -> None:
        self.rails = find_rails(self.root)

    def _read(self) -> Sample:
        t0_wall, t0_mono = now_ns(self.clock)
        power_w = {rail.name: rail.read_w() for rail in self.rails}
        t1_wall, t1_mono = now_ns(self.clock)
        total, kind = total_power_w(power_w)
        # The reads took (t1 - t0): the reading is stamped at their middle, not when it was first asked for.
        return Sample(t_ns=(t0_wall + t1_wall) // 2, mono_ns=(t0_mono + t1_mono) // 2, power_w=power_w,
                      total_w=total, total_kind=kind, mem_used_mib=_ram_used_mib(self.meminfo),
                      extras={"read_ns": t1_mono - t0_mono})
