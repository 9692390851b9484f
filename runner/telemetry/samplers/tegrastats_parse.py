"""Parse one line of NVIDIA Jetson ``tegrastats`` output into a record.

This module is pure: no processes, no files, no clocks. ``parse_line`` turns a
line of text into a frozen ``TegrastatsRecord`` (or ``None`` when the line is
not a tegrastats line); ``TegrastatsSampler`` (``tegrastats.py``) does the I/O.

Every field is found by its NAME, never by its column: the order, the set of
fields and their spelling change between boards and JetPack releases, e.g.

* JetPack 4 rails have no unit (``POM_5V_IN 943/943``), JetPack 5/6 add ``mW``
  (``VDD_IN 5299mW/5299mW``), JetPack 7 prints current/average/max
  (``VIN 87426mW/43713mW/87426mW``);
* JetPack 6 writes temperatures in lower case (``cpu@47.375C``), JetPack 7 may
  add a second value (``cpu@52.968C/52.968C``), ``-256C`` means the sensor is
  offline;
* ``GR3D_FREQ`` appears as ``0%``, ``0%@76``, ``0%@[305,305]``, ``@[1000,1000]``
  or not at all; old L4T writes ``GR3D 3%@76`` and ``cpu [17%,13%]@408``;
* AGX Orin prints the rail name ``NC`` twice; the second becomes ``NC#2``.

Which rail is the board total matters for energy: ``VDD_IN`` (TX1/TX2, Xavier
NX, Orin NX, Orin Nano), ``POM_5V_IN`` (Nano) and ``VIN`` (Thor) measure the
module input. AGX Xavier and AGX Orin print no input rail (``VIN_SYS_5V0`` on
AGX Orin is one 5 V supply, not the input), so their sum of rails is only a
partial sum and is labelled as such.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Rails that measure the whole module input, most specific first.
INPUT_RAIL_NAMES: tuple[str, ...] = ("VDD_IN", "POM_5V_IN", "VIN")

#: tegrastats prints this temperature for a sensor that is switched off.
OFFLINE_TEMP_C = -256.0

_TIMESTAMP_RE = re.compile(r"^\s*(\d{2}-\d{2}-\d{4}\s+\d{2}:\d{2}:\d{2})(?=\s|$)")
_RAM_RE = re.compile(r"\bRAM\s+(\d+)/(\d+)MB")
_SWAP_RE = re.compile(r"\bSWAP\s+(\d+)/(\d+)MB(?:\s*\(cached\s+(\d+)MB\))?")
_IRAM_RE = re.compile(r"\bIRAM\s+(\d+)/(\d+)kB")
# "CPU [12%@1510,off,3%]" or the legacy "cpu [17%,13%]@408".
_CPU_RE = re.compile(r"\bcpu\s*\[([^\]]*)\](?:@(\d+))?", re.IGNORECASE)
_CPU_CORE_RE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_EMC_RE = re.compile(r"\bEMC(?:_FREQ)?\s+(?:(\d+)%)?(?:@(\d+))?(?![\w\[])")
# GR3D_FREQ (and the legacy GR3D): "0%", "0%@76", "0%@[305,305]", "@[1000,1000]".
_GR3D_RE = re.compile(r"\bGR3D(?:_FREQ)?\s+(?:(\d+)%)?(?:@(?:\[([\d,]+)\]|(\d+)))?")
# A rail: NAME inst/avg or inst/avg/max, each value optionally followed by mW.
# The look-ahead rejects "RAM 2330/7620MB" and "IRAM 0/252kB"; the names in
# _NOT_RAILS are excluded too, for lines cut off as "RAM 2330/76".
_NOT_RAILS = frozenset({"RAM", "SWAP", "IRAM"})
_RAIL_RE = re.compile(
    r"(?<![\w@%.])([A-Z][A-Z0-9_]*)\s+"
    r"(\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?:/(\d+(?:\.\d+)?)(?:mW)?)?"
    r"(?![\w./])"
)
# A temperature: name@47.375C, name@-256C, name@52.968C/52.968C (JetPack 7).
_TEMP_RE = re.compile(
    r"(?<![\w@%.])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C(?:/(-?\d+(?:\.\d+)?)C)?(?!\w)"
)


@dataclass(frozen=True)
class RailReading:
    """One power rail. ``avg_mw`` is tegrastats' own running mean since it
    started, kept for reference only: energy must be integrated from
    ``inst_mw``. ``max_mw`` is the third value JetPack 7 prints, else None."""

    name: str
    inst_mw: float
    avg_mw: float | None
    max_mw: float | None = None


@dataclass(frozen=True)
class CpuCore:
    """One CPU core; a core that tegrastats reports as ``off`` is None in
    ``TegrastatsRecord.cpu`` instead, so 'off' is never confused with 0 %."""

    load_pct: int
    freq_mhz: int | None


@dataclass(frozen=True)
class Temperature:
    """One thermal sensor. ``value_c`` is None when the sensor is offline
    (tegrastats prints -256C); ``max_c`` is JetPack 7's second value."""

    name: str
    value_c: float | None
    max_c: float | None = None


@dataclass(frozen=True)
class TegrastatsRecord:
    """Everything one tegrastats line says, by name. Absent fields are None
    (or empty), never 0, so 'not reported' stays distinct from 'zero'.

    RAM and swap are named ``_mib``: tegrastats prints "MB" for MiB (its
    figures are /proc/meminfo's kB / 1024: a 4 GiB Nano says RAM .../3964MB),
    and a name says one unit (issue 28 item 6)."""

    timestamp: str | None = None
    ram_used_mib: int | None = None
    ram_total_mib: int | None = None
    swap_used_mib: int | None = None
    swap_total_mib: int | None = None
    swap_cached_mib: int | None = None
    iram_used_kb: int | None = None
    iram_total_kb: int | None = None
    cpu: tuple[CpuCore | None, ...] = ()
    emc_load_pct: int | None = None
    emc_freq_mhz: int | None = None
    gpu_load_pct: int | None = None
    gpu_freq_mhz: int | None = None
    gpu_freqs_mhz: tuple[int, ...] = ()
    rails: tuple[RailReading, ...] = ()
    temps: tuple[Temperature, ...] = ()
    input_rail: str | None = None

    def rail(self, name: str) -> RailReading | None:
        """The rail called ``name`` (``NC#2`` for a repeated name), or None."""
        for reading in self.rails:
            if reading.name == name:
                return reading
        return None

    @property
    def temps_c(self) -> dict[str, float | None]:
        """Current temperature per sensor name; None for an offline sensor."""
        return {t.name: t.value_c for t in self.temps}

    def total_power_w(self) -> tuple[float | None, str]:
        """Board power now, with a label that says what the number is.

        Returns ``(watts, "input_rail:VDD_IN")`` when the board has an input
        rail, ``(watts, "partial_sum_of_rails")`` when it has rails but no
        input rail (AGX Xavier, AGX Orin: the sum misses whatever the rails
        do not cover), and ``(None, reason)`` when the line has no rails.
        """
        if self.input_rail is not None:
            reading = self.rail(self.input_rail)
            assert reading is not None
            return reading.inst_mw / 1000.0, f"input_rail:{self.input_rail}"
        if self.rails:
            return sum(r.inst_mw for r in self.rails) / 1000.0, "partial_sum_of_rails"
        return None, "this tegrastats line has no power rails"

    def power_w(self) -> dict[str, float]:
        """Instantaneous power per rail in watts (never tegrastats' average)."""
        return {r.name: r.inst_mw / 1000.0 for r in self.rails}

    def to_json(self) -> dict[str, Any]:
        """A plain dict for JSON artifacts; units are in the key names."""
        return {
            "timestamp": self.timestamp,
            "ram_used_mib": self.ram_used_mib,
            "ram_total_mib": self.ram_total_mib,
            "swap_used_mib": self.swap_used_mib,
            "swap_total_mib": self.swap_total_mib,
            "swap_cached_mib": self.swap_cached_mib,
            "iram_used_kb": self.iram_used_kb,
            "iram_total_kb": self.iram_total_kb,
            "cpu": [
                None if core is None else {"load_pct": core.load_pct, "freq_mhz": core.freq_mhz}
                for core in self.cpu
            ],
            "emc_load_pct": self.emc_load_pct,
            "emc_freq_mhz": self.emc_freq_mhz,
            "gpu_load_pct": self.gpu_load_pct,
            "gpu_freq_mhz": self.gpu_freq_mhz,
            "gpu_freqs_mhz": list(self.gpu_freqs_mhz),
            "rails": {
                r.name: {"inst_mw": r.inst_mw, "avg_mw": r.avg_mw, "max_mw": r.max_mw}
                for r in self.rails
            },
            "input_rail": self.input_rail,
            "temps_c": self.temps_c,
            "temps_max_c": {t.name: t.max_c for t in self.temps if t.max_c is not None},
        }


def parse_line(line: str) -> TegrastatsRecord | None:
    """Parse one tegrastats line; None for a blank or unrecognisable line.

    Never raises on text: a line cut off mid-way (the last line of a killed
    tegrastats) yields the fields that are complete, or None when nothing
    recognisable is left. A value is only taken when its whole token is
    present (a rail needs ``inst/avg``, a CPU list needs its ``]``).
    """
    if not line or not line.strip():
        return None
    text = line.strip("\r\n")

    ram = _RAM_RE.search(text)
    rails = _parse_rails(text)
    cpu = _parse_cpu(text)
    if ram is None and not rails and cpu is None:
        return None

    stamp = _TIMESTAMP_RE.search(text)
    swap = _SWAP_RE.search(text)
    iram = _IRAM_RE.search(text)
    emc_load, emc_freq = _parse_emc(text)
    gpu_load, gpu_freqs = _parse_gr3d(text)
    names = {r.name for r in rails}
    input_rail = next((n for n in INPUT_RAIL_NAMES if n in names), None)

    return TegrastatsRecord(
        timestamp=" ".join(stamp.group(1).split()) if stamp else None,
        ram_used_mib=int(ram.group(1)) if ram else None,
        ram_total_mib=int(ram.group(2)) if ram else None,
        swap_used_mib=int(swap.group(1)) if swap else None,
        swap_total_mib=int(swap.group(2)) if swap else None,
        swap_cached_mib=_int_or_none(swap.group(3)) if swap else None,
        iram_used_kb=int(iram.group(1)) if iram else None,
        iram_total_kb=int(iram.group(2)) if iram else None,
        cpu=cpu or (),
        emc_load_pct=emc_load,
        emc_freq_mhz=emc_freq,
        gpu_load_pct=gpu_load,
        gpu_freq_mhz=max(gpu_freqs) if gpu_freqs else None,
        gpu_freqs_mhz=gpu_freqs,
        rails=rails,
        temps=_parse_temps(text),
        input_rail=input_rail,
    )


def parse_text(text: str) -> list[TegrastatsRecord]:
    """Parse a whole tegrastats log. The last line is dropped when the text
    does not end with a newline, because a writer killed mid-line leaves a
    line whose last value may itself be cut (``VDD_IN 52`` of ``5299``)."""
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]
    records = []
    for raw in lines:
        record = parse_line(raw)
        if record is not None:
            records.append(record)
    return records


def _int_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def _parse_rails(text: str) -> tuple[RailReading, ...]:
    rails: list[RailReading] = []
    seen: dict[str, int] = {}
    for match in _RAIL_RE.finditer(text):
        base = match.group(1)
        if base in _NOT_RAILS:
            continue
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}#{seen[base]}"
        rails.append(
            RailReading(
                name=name,
                inst_mw=float(match.group(2)),
                avg_mw=float(match.group(3)),
                max_mw=None if match.group(4) is None else float(match.group(4)),
            )
        )
    return tuple(rails)


def _parse_cpu(text: str) -> tuple[CpuCore | None, ...] | None:
    match = _CPU_RE.search(text)
    if match is None:
        return None
    shared_freq = _int_or_none(match.group(2))
    cores: list[CpuCore | None] = []
    for entry in match.group(1).split(","):
        entry = entry.strip()
        if entry.lower() == "off":
            cores.append(None)
            continue
        core = _CPU_CORE_RE.match(entry)
        if core is None:
            # Not a format we know: say nothing rather than guess.
            return None
        freq = _int_or_none(core.group(2))
        cores.append(CpuCore(load_pct=int(core.group(1)), freq_mhz=freq if freq is not None else shared_freq))
    return tuple(cores)


def _parse_emc(text: str) -> tuple[int | None, int | None]:
    match = _EMC_RE.search(text)
    if match is None:
        return None, None
    return _int_or_none(match.group(1)), _int_or_none(match.group(2))


def _parse_gr3d(text: str) -> tuple[int | None, tuple[int, ...]]:
    match = _GR3D_RE.search(text)
    if match is None:
        return None, ()
    load = _int_or_none(match.group(1))
    if match.group(2):
        freqs = tuple(int(v) for v in match.group(2).split(",") if v)
    elif match.group(3):
        freqs = (int(match.group(3)),)
    else:
        freqs = ()
    return load, freqs


def _parse_temps(text: str) -> tuple[Temperature, ...]:
    temps = []
    for match in _TEMP_RE.finditer(text):
        value = float(match.group(2))
        peak = None if match.group(3) is None else float(match.group(3))
        temps.append(
            Temperature(
                name=match.group(1),
                value_c=None if value <= OFFLINE_TEMP_C else value,
                max_c=None if peak is None or peak <= OFFLINE_TEMP_C else peak,
            )
        )
    return tuple(temps)
