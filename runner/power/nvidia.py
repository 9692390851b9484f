"""NVIDIA GPU operating points through NVML: locked graphics and memory clocks and the power limit.

``nvmlDeviceSetGpuLockedClocks(h, min, max)`` / ``nvmlDeviceResetGpuLockedClocks(h)`` (Volta+),
``nvmlDeviceSetMemoryLockedClocks`` / ``...Reset...`` (Ampere+), ``nvmlDeviceSetPowerManagementLimit(h, mW)``;
all need root. The supported values come from ``nvmlDeviceGetSupportedMemoryClocks`` and
``nvmlDeviceGetSupportedGraphicsClocks(h, mem)`` (MHz) and ``nvmlDeviceGetPowerManagementLimitConstraints``
(mW). NVML has no getter for a locked range, so a lock is read back as the clock the GPU runs at
(``nvmlDeviceGetClockInfo``), beside the enforced power limit and the clock event reasons (why the GPU runs
slower than asked: power cap, thermal, ...).

The GPUs are the run's (``gpus``: NVML indices or UUIDs, default GPU 0); every one gets the same request.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import CLOCK_TOLERANCE_MHZ, Controller, OperatingPoint, PowerError, root_problem

NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
#: nvmlClocksEventReason* bits (nvml.h), the names the record uses.
EVENT_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x8: "hw_slowdown",
    0x10: "sync_boost", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}
_GRANT = "NVML's locked clocks and power limits"


def load_nvml() -> Any:
    """pynvml, imported when a controller needs it (module-level so tests can hand in the fake)."""
    return importlib.import_module("pynvml")


def reason_names(mask: int) -> list[str]:
    return [name for bit, name in EVENT_REASONS.items() if mask & bit]


class NvidiaController(Controller):
    """NVML locked clocks and power limit of the run's GPUs (see the module doc)."""

    name = "nvidia"

    def __init__(self, gpus: tuple[str, ...] | None = None, nvml: Any = None) -> None:
        self.gpus = tuple(gpus) if gpus else ("0",)
        self._nvml = nvml

    # -- NVML session ------------------------------------------------------------------------------------

    def nvml(self) -> Any:
        if self._nvml is None:
            self._nvml = load_nvml()
        return self._nvml

    def _handles(self) -> list[Any]:
        nvml = self.nvml()
        out = []
        for g in self.gpus:
            out.append(nvml.nvmlDeviceGetHandleByIndex(int(g)) if str(g).isdigit()
                       else nvml.nvmlDeviceGetHandleByUUID(str(g)))
        return out

    def _call(self, what: str, fn, *args):
        nvml = self.nvml()
        try:
            return fn(*args)
        except nvml.NVMLError as exc:
            raise PowerError(f"NVML {what}: {exc}") from exc

    def _session(self):
        controller = self

        class _Session:
            def __enter__(self_inner):
                controller.nvml().nvmlInit()
                return controller._handles()

            def __exit__(self_inner, *exc):
                try:
                    controller.nvml().nvmlShutdown()
                except Exception:  # noqa: BLE001 - shutting down must not hide the real error
                    pass

        return _Session()

    def present(self) -> str | None:
        """None when NVML sees the run's GPUs, else why not."""
        try:
            nvml = self.nvml()
        except ImportError:
            return "the nvidia-ml-py package (module pynvml) is not installed"
        try:
            with self._session():
                return None
        except (nvml.NVMLError, ValueError) as exc:
            return f"NVML found no GPU {', '.join(self.gpus)} ({exc})"

    # -- checks before anything runs -------------------------------------------------------------------

    def problems(self, power: Any) -> list[str]:
        if not power.requested():
            return []
        fields = [n for n in ("gpu_freq_mhz", "mem_freq_mhz", "gpu_power_limit_w") if getattr(power, n) is not None]
        missing = self.present()
        if missing:
            return [f"power.{fields[0] if fields else 'gpu_freq_mhz'} needs an NVIDIA GPU with its driver (NVML); "
                    f"{missing}"]
        out: list[str] = []
        nvml = self.nvml()
        with self._session() as handles:
            for index, h in zip(self.gpus, handles):
                try:
                    mems = sorted(self.nvml().nvmlDeviceGetSupportedMemoryClocks(h))
                except nvml.NVMLError as exc:
                    mems = []
                    if power.mem_freq_mhz is not None or power.gpu_freq_mhz is not None:
                        out.append(f"GPU {index}: NVML lists no supported clocks ({exc})")
                if power.mem_freq_mhz is not None and mems and \
                        not any(abs(m - power.mem_freq_mhz) <= CLOCK_TOLERANCE_MHZ for m in mems):
                    out.append(f"power.mem_freq_mhz: {power.mem_freq_mhz:g} MHz is not a supported memory clock "
                               f"of GPU {index}; supported (MHz): {', '.join(str(m) for m in mems)}")
                if power.gpu_freq_mhz is not None and mems:
                    mem = power.mem_freq_mhz or max(mems)
                    try:
                        clocks = sorted(set(nvml.nvmlDeviceGetSupportedGraphicsClocks(h, int(mem))))
                    except nvml.NVMLError:
                        clocks = []
                    if not any(abs(c - power.gpu_freq_mhz) <= CLOCK_TOLERANCE_MHZ for c in clocks):
                        out.append(f"power.gpu_freq_mhz: {power.gpu_freq_mhz:g} MHz is not a supported graphics "
                                   f"clock of GPU {index} at memory clock {mem:g} MHz; supported (MHz): "
                                   f"{', '.join(str(c) for c in clocks)}")
                if power.gpu_power_limit_w is not None:
                    try:
                        lo, hi = nvml.nvmlDeviceGetPowerManagementLimitConstraints(h)
                    except nvml.NVMLError as exc:
                        out.append(f"power.gpu_power_limit_w: GPU {index} has no settable power limit ({exc})")
                        continue
                    if not lo / 1000 <= power.gpu_power_limit_w <= hi / 1000:
                        out.append(f"power.gpu_power_limit_w: {power.gpu_power_limit_w:g} W is outside GPU "
                                   f"{index}'s range of {lo / 1000:g}-{hi / 1000:g} W")
        if not out:
            problem = root_problem("locking NVIDIA GPU clocks and setting its power limit", _GRANT)
            if problem:
                out.append(problem)
        return out

    # -- the operating point -----------------------------------------------------------------------------

    def read(self) -> OperatingPoint:
        nvml = self.nvml()
        with self._session() as handles:
            h = handles[0]  # every GPU gets the same request; the first one speaks for the record
            gcur = _try(nvml, nvml.nvmlDeviceGetClockInfo, h, NVML_CLOCK_GRAPHICS)
            mcur = _try(nvml, nvml.nvmlDeviceGetClockInfo, h, NVML_CLOCK_MEM)
            limit = _try(nvml, nvml.nvmlDeviceGetEnforcedPowerLimit, h)
        return OperatingPoint(gpu_cur_mhz=None if gcur is None else float(gcur),
                              mem_cur_mhz=None if mcur is None else float(mcur),
                              gpu_power_limit_w=None if limit is None else limit / 1000.0)

    def save(self) -> dict[str, Any]:
        nvml = self.nvml()
        with self._session() as handles:
            limits = [_try(nvml, nvml.nvmlDeviceGetPowerManagementLimit, h) for h in handles]
        return {"power_limit_mw": limits, "gpu_locked": False, "mem_locked": False}

    def apply(self, power: Any) -> None:
        nvml = self.nvml()
        with self._session() as handles:
            for h in handles:
                if power.gpu_power_limit_w is not None:
                    self._call("set power limit", nvml.nvmlDeviceSetPowerManagementLimit, h,
                               int(round(power.gpu_power_limit_w * 1000)))
                if power.mem_freq_mhz is not None:
                    mhz = int(round(power.mem_freq_mhz))
                    self._call("lock memory clocks", nvml.nvmlDeviceSetMemoryLockedClocks, h, mhz, mhz)
                if power.gpu_freq_mhz is not None:
                    mhz = int(round(power.gpu_freq_mhz))
                    self._call("lock graphics clocks", nvml.nvmlDeviceSetGpuLockedClocks, h, mhz, mhz)

    def restore(self, saved: dict[str, Any]) -> None:
        """Clock locks reset to the driver's default; the power limit back to what it was."""
        nvml = self.nvml()
        problems = []
        with self._session() as handles:
            for h, limit in zip(handles, saved.get("power_limit_mw") or []):
                for what, fn, args in (("reset graphics clocks", nvml.nvmlDeviceResetGpuLockedClocks, ()),
                                       ("reset memory clocks", nvml.nvmlDeviceResetMemoryLockedClocks, ()),
                                       ("restore power limit", nvml.nvmlDeviceSetPowerManagementLimit,
                                        (limit,) if limit is not None else None)):
                    if args is None:
                        continue
                    try:
                        fn(h, *args)
                    except nvml.NVMLError as exc:
                        if getattr(exc, "value", None) != getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", 3):
                            problems.append(f"NVML {what}: {exc}")
        if problems:
            raise PowerError("; ".join(problems))

    # -- observation and facts ------------------------------------------------------------------------------

    def observe(self) -> dict[str, Any]:
        nvml = self.nvml()
        out: dict[str, Any] = {}
        with self._session() as handles:
            h = handles[0]
            for key, clock in (("gpu_mhz", NVML_CLOCK_GRAPHICS), ("sm_mhz", NVML_CLOCK_SM), ("mem_mhz", NVML_CLOCK_MEM)):
                value = _try(nvml, nvml.nvmlDeviceGetClockInfo, h, clock)
                if value is not None:
                    out[key] = float(value)
            temp = _try(nvml, nvml.nvmlDeviceGetTemperature, h, NVML_TEMPERATURE_GPU)
            if temp is not None:
                out["temp_c.gpu"] = float(temp)
            mask = _try(nvml, nvml.nvmlDeviceGetCurrentClocksEventReasons, h)
            if mask is not None:
                out["throttle"] = reason_names(int(mask))
        return out

    def unavailable(self) -> dict[str, str]:
        return {"cpu_mhz": "NVML sees the GPU only", "emc_mhz": "not an NVIDIA GPU figure (see mem_mhz)"}

    def facts(self) -> dict[str, Any]:
        nvml = self.nvml()
        with self._session() as handles:
            h = handles[0]
            constraints = _try(nvml, nvml.nvmlDeviceGetPowerManagementLimitConstraints, h)
            default = _try(nvml, nvml.nvmlDeviceGetPowerManagementDefaultLimit, h)
            return {"driver_version": _try(nvml, nvml.nvmlSystemGetDriverVersion),
                    "gpu_name": _try(nvml, nvml.nvmlDeviceGetName, h),
                    "gpus": list(self.gpus),
                    "power_limit_default_w": None if default is None else default / 1000.0,
                    "power_limit_range_w": None if constraints is None else [c / 1000.0 for c in constraints]}


def _try(nvml: Any, fn, *args):
    """The value, or None where this GPU or driver does not support the query."""
    try:
        return fn(*args)
    except nvml.NVMLError:
        return None
