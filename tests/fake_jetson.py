"""A FAKE Jetson Orin Nano for tests: its sysfs tree, nvpmodel.conf and tools (see tests/fixtures/orin_nano).

``make_orin_nano(tmp)`` writes the tree and returns a FakeJetson with the environment that points edgeasr
and the fake tools at it (``EDGEASR_SYSFS_ROOT``, ``EDGEASR_NVPMODEL_CONF``, PATH, the fake nvpmodel's state).
``set_power`` writes the INA3221 rails for a given input power, so a test knows the energy of any window.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "orin_nano"
FAKE_BIN = HERE / "fixtures" / "fake_bin"
GPU_NODE = "17000000.gpu"
#: Hz, as devfreq lists them (JetPack 6.2 Orin Nano, super modes).
GPU_AVAILABLE_HZ = (306000000, 408000000, 510000000, 612000000, 714000000, 816000000, 918000000, 1020000000)
RAILS = ("VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC")
VOLTAGE_MV = 5000  # VDD_IN on the carrier board's 5 V


@dataclass(frozen=True)
class FakeJetson:
    root: Path  # the sysfs root (what /sys is on a Jetson)
    conf: Path
    status: Path  # the fake nvpmodel's state file
    log: Path  # every fake tool call, one line each

    @property
    def gpu(self) -> Path:
        return self.root / "class" / "devfreq" / GPU_NODE

    @property
    def hwmon(self) -> Path:
        return self.root / "class" / "hwmon" / "hwmon1"

    def env(self) -> dict[str, str]:
        return {"EDGEASR_SYSFS_ROOT": str(self.root), "EDGEASR_NVPMODEL_CONF": str(self.conf),
                "FAKE_NVPMODEL_STATUS": str(self.status), "FAKE_NVPMODEL_LOG": str(self.log),
                "PATH": str(FAKE_BIN) + os.pathsep + os.environ.get("PATH", "")}

    def mode(self) -> int:
        return int(self.status.read_text().split()[0].split(":")[1])

    def gpu_range_hz(self) -> tuple[int, int]:
        return int((self.gpu / "min_freq").read_text()), int((self.gpu / "max_freq").read_text())

    def set_power(self, input_w: float) -> None:
        """The input rail at ``input_w`` (5 V, current to match); the other rails at fixed shares of it."""
        for i, share in enumerate((1.0, 0.4, 0.3), start=1):
            (self.hwmon / f"in{i}_input").write_text(f"{VOLTAGE_MV}\n")
            (self.hwmon / f"curr{i}_input").write_text(f"{round(input_w * share * 1e6 / VOLTAGE_MV)}\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def make_orin_nano(tmp: Path, mode: int = 0, input_w: float = 5.0) -> FakeJetson:
    """The fake board under ``tmp``, in power mode ``mode`` (15W: GPU 306-612 MHz), drawing ``input_w``."""
    root = tmp / "sys"
    conf = tmp / "etc" / "nvpmodel.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "nvpmodel.conf", conf)
    status = tmp / "var" / "lib" / "nvpmodel" / "status"
    _write(status, f"pmode:{mode:04d} fmode:quiet")
    ceilings = {0: 612000000, 1: 918000000, 2: 1020000000, 3: 408000000}
    gpu = root / "class" / "devfreq" / GPU_NODE
    _write(gpu / "available_frequencies", " ".join(str(f) for f in GPU_AVAILABLE_HZ))
    _write(gpu / "min_freq", str(GPU_AVAILABLE_HZ[0]))
    _write(gpu / "max_freq", str(ceilings[mode]))
    _write(gpu / "cur_freq", str(GPU_AVAILABLE_HZ[0]))
    _write(gpu / "governor", "nvhost_podgov")
    # a devfreq node that is not the GPU's, so that finding it by name is tested
    _write(root / "class" / "devfreq" / "15340000.vic" / "cur_freq", "115200000")
    hw = root / "class" / "hwmon"
    _write(hw / "hwmon0" / "name", "cpu_thermal")
    _write(hw / "hwmon1" / "name", "ina3221")
    for i, rail in enumerate(RAILS, start=1):
        _write(hw / "hwmon1" / f"in{i}_label", rail)
    _write(hw / "hwmon2" / "name", "soctherm_oc")
    for i in range(1, 4):
        _write(hw / "hwmon2" / f"oc{i}_event_cnt", "0")
    _write(hw / "hwmon3" / "name", "pwmfan")
    _write(hw / "hwmon3" / "pwm1", "90")
    for i, (kind, milli) in enumerate((("cpu-thermal", 47250), ("gpu-thermal", 45500), ("tj-thermal", 48000))):
        _write(root / "class" / "thermal" / f"thermal_zone{i}" / "type", kind)
        _write(root / "class" / "thermal" / f"thermal_zone{i}" / "temp", str(milli))
    cpu = root / "devices" / "system" / "cpu"
    _write(cpu / "online", "0-5")
    for i in range(6):
        _write(cpu / f"cpu{i}" / "cpufreq" / "scaling_cur_freq", "1497600")
        _write(cpu / f"cpu{i}" / "cpufreq" / "scaling_governor", "schedutil")
    _write(root / "kernel" / "debug" / "bpmp" / "debug" / "clk" / "emc" / "rate", "2133000000")
    board = FakeJetson(root, conf, status, tmp / "tools.log")
    board.set_power(input_w)
    return board


def use_fake_tegrastats(monkeypatch) -> Path:
    """Put the FAKE tegrastats first on PATH (its FAKE_TEGRASTATS_* settings cleared); returns its path."""
    monkeypatch.setenv("PATH", str(FAKE_BIN) + os.pathsep + os.environ.get("PATH", ""))
    for name in list(os.environ):
        if name.startswith("FAKE_TEGRASTATS_"):
            monkeypatch.delenv(name)
    return FAKE_BIN / "tegrastats"


def gone(pid: int) -> bool:
    """True when no live process has this pid (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def fake_processes(fake: Path) -> list[int]:
    """Pids of live processes running the fake tegrastats."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(fake).encode() in cmdline and not gone(int(entry.name)):
            found.append(int(entry.name))
    return found
