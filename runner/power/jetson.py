"""Jetson operating points: nvpmodel power modes, jetson_clocks, and the GPU's devfreq clock range.

Where things are (and why they are looked up, not hard-coded):

* ``nvpmodel -q`` prints the mode as two lines, ``NV Power Mode: 15W`` then its id (``0``); ``nvpmodel -m N``
  switches. Some switches need a reboot: nvpmodel then says so (``NVPM WARN: Reboot required ...``) and asks;
  we answer no and refuse the group with the board's own message.
* ``/etc/nvpmodel.conf`` (a link to the board's ``nvpmodel_*.conf``) lists the modes:
  ``< POWER_MODEL ID=0 NAME=15W >`` followed by ``PARAM ARG VALUE`` lines, among them the GPU's ceiling
  (``GPU_POWER_CONTROL_MAX_FREQ GPU_MAX_FREQ 612000000`` on Orin, ``GPU MAX_FREQ 918000000`` on older boards,
  in Hz, -1: no ceiling); ``< PM_CONFIG DEFAULT=N >`` names the default mode.
* The GPU's devfreq node moves between JetPack releases and SoCs (``17000000.ga10b``, ``17000000.gpu``,
  ``17000000.gv11b``, ``57000000.gpu``...): it is found by name under ``class/devfreq``. Its
  ``available_frequencies`` are in Hz; ``min_freq``/``max_freq`` are written so that min never exceeds max.
* ``jetson_clocks --store FILE`` / ``--restore FILE`` save and restore the clocks; plain ``jetson_clocks`` pins
  them at the mode's maximum.

``EDGEASR_SYSFS_ROOT`` (default ``/sys``) and ``EDGEASR_NVPMODEL_CONF`` (default ``/etc/nvpmodel.conf``) move
the tree and the file (a runner with the host's /sys bound elsewhere, or the fake Orin Nano in the tests);
the tools are found on PATH.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..host.platforms import l4t_release_line
from .base import CLOCK_TOLERANCE_MHZ, Controller, OperatingPoint, PowerError, root_problem

GPU_DEVFREQ_RE = re.compile(r"\.(gpu|ga10b|gv11b|gp10b|gm20b|gb10b)$")
_MODE_RE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+)\s*>")
_DEFAULT_RE = re.compile(r"<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>")
_REBOOT_RE = re.compile(r"reboot", re.IGNORECASE)
_GRANT = "nvpmodel, jetson_clocks and GPU devfreq writes"
TOOL_TIMEOUT_S = 60.0


def sysfs_root() -> Path:
    return Path(os.environ.get("EDGEASR_SYSFS_ROOT", "/sys"))


def nvpmodel_conf_path() -> Path:
    return Path(os.environ.get("EDGEASR_NVPMODEL_CONF", "/etc/nvpmodel.conf"))


@dataclass(frozen=True)
class PowerMode:
    """One ``POWER_MODEL`` of nvpmodel.conf: its id, name and the GPU ceiling it sets (MHz; None: none)."""

    mode_id: int
    name: str
    gpu_max_mhz: float | None = None
    params: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)


def parse_nvpmodel_conf(text: str) -> tuple[dict[int, PowerMode], int | None]:
    """The modes of an nvpmodel.conf by id, and the default mode's id (None: not stated)."""
    modes: dict[int, PowerMode] = {}
    default = None
    current: tuple[int, str] | None = None
    params: list[tuple[str, str, str]] = []

    def close() -> None:
        if current is None:
            return
        gpu_max = None
        for param, arg, value in params:
            if (param == "GPU_POWER_CONTROL_MAX_FREQ" or param == "GPU") and "MAX_FREQ" in arg:
                try:
                    hz = int(value)
                except ValueError:
                    continue
                gpu_max = None if hz < 0 else hz / 1e6
        modes[current[0]] = PowerMode(current[0], current[1], gpu_max, tuple(params))

    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _MODE_RE.match(line)
        if m:
            close()
            current, params = (int(m.group(1)), m.group(2)), []
            continue
        d = _DEFAULT_RE.match(line)
        if d:
            default = int(d.group(1))
        if line.startswith("<"):  # another block (PARAM, PM_CONFIG): the mode ends
            close()
            current, params = None, []
            continue
        if current is not None:
            parts = line.split()
            if len(parts) >= 3:
                params.append((parts[0], parts[1], parts[2]))
    close()
    return modes, default


def parse_nvpmodel_query(text: str) -> tuple[int | None, str | None]:
    """(mode id, mode name) from ``nvpmodel -q``: ``NV Power Mode: 15W`` and then the id on its own line."""
    name = None
    mode_id = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("NV Power Mode:"):
            name = line.split(":", 1)[1].strip() or None
        elif line.isdigit():
            mode_id = int(line)
    return mode_id, name


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _read_float(path: Path) -> float | None:
    text = _read(path)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _write(path: Path, value: int) -> None:
    try:
        path.write_text(f"{value}\n")
    except OSError as exc:
        raise PowerError(f"could not write {value} to {path}: {exc.strerror or exc}") from exc


class JetsonController(Controller):
    """nvpmodel, jetson_clocks and the GPU devfreq range of this Jetson (see the module doc)."""

    name = "jetson"

    def __init__(self, root: Path | None = None, conf: Path | None = None) -> None:
        self.root = root or sysfs_root()
        self.conf = conf or nvpmodel_conf_path()

    # -- what is here -------------------------------------------------------------------------------------

    def tool(self, name: str) -> str | None:
        return shutil.which(name)

    def gpu_devfreq(self) -> Path | None:
        """The GPU's devfreq folder, found by name (it moves between JetPack releases)."""
        base = self.root / "class" / "devfreq"
        try:
            names = sorted(os.listdir(base))
        except OSError:
            return None
        return next((base / n for n in names if GPU_DEVFREQ_RE.search(n)), None)

    def present(self) -> bool:
        """Whether this host looks like a Jetson to this controller: nvpmodel.conf or a GPU devfreq node."""
        return self.conf.exists() or self.gpu_devfreq() is not None

    def modes(self) -> dict[int, PowerMode]:
        text = _read(self.conf)
        return parse_nvpmodel_conf(text)[0] if text else {}

    def available_gpu_mhz(self) -> list[float]:
        node = self.gpu_devfreq()
        text = _read(node / "available_frequencies") if node else None
        out = []
        for part in (text or "").split():
            try:
                out.append(int(part) / 1e6)
            except ValueError:
                continue
        return sorted(out)

    def resolve_mode(self, wanted: int | str) -> PowerMode | None:
        modes = self.modes()
        if isinstance(wanted, int):
            return modes.get(wanted)
        return next((m for m in modes.values() if m.name == wanted), None)

    # -- checks before anything runs -------------------------------------------------------------------

    def problems(self, power: Any) -> list[str]:
        out: list[str] = []
        if not power.requested():
            return out
        if power.mode is not None:
            if self.tool("nvpmodel") is None or not self.conf.exists():
                out.append(f"power.mode needs a Jetson with nvpmodel on PATH and {self.conf}; this host has "
                           f"{'no nvpmodel' if self.tool('nvpmodel') is None else f'no {self.conf}'}")
            elif self.resolve_mode(power.mode) is None:
                modes = ", ".join(f"{m.mode_id} ({m.name})" for m in self.modes().values())
                out.append(f"power.mode: {power.mode!r} is not a mode in {self.conf}; its modes: {modes}")
        if power.jetson_clocks is not None and self.tool("jetson_clocks") is None:
            out.append("power.jetson_clocks needs jetson_clocks on PATH (a Jetson's L4T tools); this host has none")
        if power.gpu_freq_mhz is not None:
            out += self._gpu_freq_problems(power)
        if not out:
            problem = root_problem("changing the Jetson's power mode and clocks", _GRANT)
            if problem:
                out.append(problem)
        return out

    def _gpu_freq_problems(self, power: Any) -> list[str]:
        node = self.gpu_devfreq()
        if node is None:
            return [f"power.gpu_freq_mhz needs the GPU's devfreq node under {self.root / 'class' / 'devfreq'} "
                    f"(a Jetson); none is there"]
        want = float(power.gpu_freq_mhz)
        available = self.available_gpu_mhz()
        listed = ", ".join(f"{f:g}" for f in available)
        if not any(abs(f - want) <= CLOCK_TOLERANCE_MHZ for f in available):
            return [f"power.gpu_freq_mhz: {want:g} MHz is not an available GPU frequency of {node.name}; "
                    f"available (MHz): {listed}"]
        mode = self.resolve_mode(power.mode) if power.mode is not None else self._current_mode()
        if mode is not None and mode.gpu_max_mhz is not None and want > mode.gpu_max_mhz + CLOCK_TOLERANCE_MHZ:
            allowed = ", ".join(f"{f:g}" for f in available if f <= mode.gpu_max_mhz + CLOCK_TOLERANCE_MHZ)
            return [f"power.gpu_freq_mhz: {want:g} MHz is above power mode {mode.mode_id} ({mode.name})'s GPU "
                    f"ceiling of {mode.gpu_max_mhz:g} MHz; allowed in that mode (MHz): {allowed}"]
        return []

    def _current_mode(self) -> PowerMode | None:
        if self.tool("nvpmodel") is None:
            return None
        try:
            mode_id, _ = self._query()
        except PowerError:
            return None
        return self.modes().get(mode_id) if mode_id is not None else None

    # -- tools ----------------------------------------------------------------------------------------------

    def _run(self, args: list[str], answer: str = "") -> str:
        exe = self.tool(args[0])
        if exe is None:
            raise PowerError(f"{args[0]} is not on PATH")
        try:
            proc = subprocess.run([exe, *args[1:]], input=answer, capture_output=True, text=True,
                                  timeout=TOOL_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PowerError(f"`{' '.join(args)}` failed: {exc}") from exc
        text = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode != 0:
            raise PowerError(f"`{' '.join(args)}` exited with {proc.returncode}: {text.strip()[-400:]}")
        return text

    def _query(self) -> tuple[int | None, str | None]:
        return parse_nvpmodel_query(self._run(["nvpmodel", "-q"]))

    def _set_mode(self, mode: PowerMode) -> None:
        # nvpmodel asks before a switch that needs a reboot: answer no, and refuse with its own words.
        text = self._run(["nvpmodel", "-m", str(mode.mode_id)], answer="NO\n")
        if _REBOOT_RE.search(text):
            said = " ".join(line.strip() for line in text.splitlines() if _REBOOT_RE.search(line))
            raise PowerError(f"the board says power mode {mode.mode_id} ({mode.name}) needs a reboot ({said}); "
                             f"switch to it yourself (sudo nvpmodel -m {mode.mode_id}, then reboot) and leave "
                             f"power.mode out, or sweep modes that need none")

    def _set_gpu_range(self, min_hz: int, max_hz: int) -> None:
        """Write the GPU devfreq range so that min never exceeds max at any moment."""
        node = self.gpu_devfreq()
        if node is None:
            raise PowerError(f"no GPU devfreq node under {self.root / 'class' / 'devfreq'}")
        current_max = _read_float(node / "max_freq") or 0
        if min_hz > current_max:  # raising: the ceiling first
            _write(node / "max_freq", max_hz)
            _write(node / "min_freq", min_hz)
        else:
            _write(node / "min_freq", min_hz)
            _write(node / "max_freq", max_hz)

    # -- the operating point -----------------------------------------------------------------------------

    def read(self) -> OperatingPoint:
        mode_id = mode_name = None
        if self.tool("nvpmodel") is not None:
            try:
                mode_id, mode_name = self._query()
            except PowerError:
                pass
        node = self.gpu_devfreq()
        gmin = gmax = gcur = None
        if node is not None:
            gmin, gmax, gcur = (_hz_to_mhz(_read_float(node / n)) for n in ("min_freq", "max_freq", "cur_freq"))
        pinned = None
        if gmin is not None and gmax is not None:
            pinned = abs(gmin - gmax) <= CLOCK_TOLERANCE_MHZ
        return OperatingPoint(mode_id=mode_id, mode_name=mode_name, jetson_clocks=pinned, gpu_min_mhz=gmin,
                              gpu_max_mhz=gmax, gpu_cur_mhz=gcur)

    def save(self) -> dict[str, Any]:
        node = self.gpu_devfreq()
        saved: dict[str, Any] = {"mode_id": None, "gpu_min_hz": None, "gpu_max_hz": None, "clocks_file": None}
        if self.tool("nvpmodel") is not None and self.conf.exists():
            saved["mode_id"] = self._query()[0]
        if node is not None:
            saved["gpu_min_hz"] = _read_float(node / "min_freq")
            saved["gpu_max_hz"] = _read_float(node / "max_freq")
        if self.tool("jetson_clocks") is not None:
            # A fresh name in a private folder: jetson_clocks --store writes (appends to) the file itself.
            path = str(Path(tempfile.mkdtemp(prefix="edgeasr-jetson-clocks-")) / "l4t_dfs.conf")
            self._run(["jetson_clocks", "--store", path])
            saved["clocks_file"] = path
        return saved

    def apply(self, power: Any) -> None:
        if power.mode is not None:
            mode = self.resolve_mode(power.mode)
            if mode is None:
                raise PowerError(f"power mode {power.mode!r} is not in {self.conf}")
            current = self._query()[0]
            if current != mode.mode_id:
                self._set_mode(mode)
        if power.jetson_clocks is True:
            self._run(["jetson_clocks"])
        elif power.jetson_clocks is False:
            # nvpmodel -m re-applies the mode's own clock ranges: what the board had before jetson_clocks.
            mode_id = self._query()[0]
            mode = self.modes().get(mode_id) if mode_id is not None else None
            if mode is not None:
                self._run(["nvpmodel", "-m", str(mode.mode_id)], answer="NO\n")
        if power.gpu_freq_mhz is not None:
            hz = self._nearest_hz(float(power.gpu_freq_mhz))
            self._set_gpu_range(hz, hz)

    def _nearest_hz(self, mhz: float) -> int:
        available = self.available_gpu_mhz()
        best = min(available, key=lambda f: abs(f - mhz)) if available else mhz
        return int(round(best * 1e6))

    def restore(self, saved: dict[str, Any]) -> None:
        problems: list[str] = []
        try:
            if saved.get("mode_id") is not None and self._query()[0] != saved["mode_id"]:
                mode = self.modes().get(saved["mode_id"]) or PowerMode(saved["mode_id"], str(saved["mode_id"]))
                self._set_mode(mode)
        except PowerError as exc:
            problems.append(str(exc))
        if saved.get("clocks_file"):
            try:
                self._run(["jetson_clocks", "--restore", saved["clocks_file"]])
            except PowerError as exc:
                problems.append(str(exc))
            finally:
                shutil.rmtree(Path(saved["clocks_file"]).parent, ignore_errors=True)
        if saved.get("gpu_min_hz") is not None and saved.get("gpu_max_hz") is not None:
            try:
                self._set_gpu_range(int(saved["gpu_min_hz"]), int(saved["gpu_max_hz"]))
            except PowerError as exc:
                problems.append(str(exc))
        if problems:
            raise PowerError("; ".join(problems))

    # -- observation and facts ------------------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        node = self.gpu_devfreq()
        if node is not None:
            gpu = _hz_to_mhz(_read_float(node / "cur_freq"))
            if gpu is not None:
                out["gpu_mhz"] = gpu
        cpus = []
        for path in sorted((self.root / "devices" / "system" / "cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq")):
            value = _read_float(path)
            if value is not None:
                cpus.append(value / 1e3)  # kHz
        if cpus:
            out["cpu_mhz"] = statistics.mean(cpus)
        emc = _hz_to_mhz(_read_float(self.root / "kernel" / "debug" / "bpmp" / "debug" / "clk" / "emc" / "rate"))
        if emc is not None:
            out["emc_mhz"] = emc
        for zone in sorted((self.root / "class" / "thermal").glob("thermal_zone*")):
            kind, milli = _read(zone / "type"), _read_float(zone / "temp")
            if kind and milli is not None and milli > -200_000:  # -256 C: sensor off
                out[f"temp_c.{kind}"] = milli / 1000.0
        for hwmon in sorted((self.root / "class" / "hwmon").glob("hwmon*")):
            name = _read(hwmon / "name") or hwmon.name
            for counter in sorted(hwmon.glob("oc*_event_cnt")):
                value = _read_float(counter)
                if value is not None:
                    out[f"oc_events.{name}.{counter.name[:-len('_event_cnt')]}"] = value
        return out

    def unavailable(self) -> dict[str, str]:
        out = {}
        emc = self.root / "kernel" / "debug" / "bpmp" / "debug" / "clk" / "emc" / "rate"
        if not emc.exists():
            out["emc_mhz"] = f"{emc} is not readable (debugfs not mounted, or not root)"
        if self.gpu_devfreq() is None:
            out["gpu_mhz"] = f"no GPU devfreq node under {self.root / 'class' / 'devfreq'}"
        if not any((self.root / "class" / "hwmon").glob("hwmon*/oc*_event_cnt")):
            out["oc_events"] = "no over-current event counters (hwmon oc*_event_cnt) on this board"
        return out

    def facts(self) -> dict[str, Any]:
        conf = _read(self.conf)
        cpu = self.root / "devices" / "system" / "cpu"
        fan = None
        for hwmon in sorted((self.root / "class" / "hwmon").glob("hwmon*")):
            if _read(hwmon / "name") == "pwmfan":
                fan = _read_float(hwmon / "pwm1")
        node = self.gpu_devfreq()
        return {
            "l4t_release": l4t_release_line(),
            "nvpmodel_conf": str(self.conf),
            "nvpmodel_conf_sha256": hashlib.sha256(conf.encode()).hexdigest() if conf else None,
            "gpu_devfreq": node.name if node else None,
            "gpu_available_mhz": self.available_gpu_mhz(),
            "gpu_governor": _read(node / "governor") if node else None,
            "fan_pwm": fan,  # 0-255 as the pwm-fan driver reports it; None: no pwmfan hwmon
            "cpu_governor": _read(cpu / "cpu0" / "cpufreq" / "scaling_governor"),
            "cpu_online": _read(cpu / "online"),
        }


def _hz_to_mhz(value: float | None) -> float | None:
    return None if value is None else value / 1e6
