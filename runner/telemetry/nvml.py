"""NVIDIA GPU energy and state through NVML (the ``nvidia-ml-py`` package).

Energy, per GPU, best source first:

1. ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded,
   Volta and newer): a hardware counter, so window energy is a difference of
   two readings and does not depend on the sampling interval;
2. ``nvmlDeviceGetPowerUsage`` (mW) polled and integrated afterwards.

Alongside: utilisation, memory used, SM clock and temperature. Anything a GPU
answers ``NVMLError_NotSupported`` for is recorded as unavailable with the
reason (``NvmlSampler.unavailable``) and left out of samples, never written
as 0.

``pynvml`` is imported lazily in ``probe()``/``start()``, never at import
time, so that this module loads on machines without the package or a driver.
Tests inject a fake module through ``nvml=``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.telemetry.base import Availability, Sample, now_ns
from runner.telemetry.polling import PollingSampler

_MIB = 1024 * 1024


@dataclass
class _Gpu:
    index: int
    handle: Any
    name: str
    energy_origin_mj: int | None  # first counter reading; None: no counter
    has_power_usage: bool
    prev_t_ns: int | None = None
    prev_energy_j: float | None = None

    @property
    def channel(self) -> str:
        return f"gpu{self.index}"


class NvmlSampler(PollingSampler):
    """Samples every NVIDIA GPU NVML can see, every ``interval_ms``."""

    name = "nvml"

    def __init__(self, interval_ms: int = 100, nvml: Any = None) -> None:
        super().__init__(interval_ms)
        self._injected = nvml
        self._nvml: Any = None
        self._gpus: list[_Gpu] = []
        #: "gpu0.energy" -> why it is not measured; filled during start/sampling.
        self.unavailable: dict[str, str] = {}

    # -- availability ---------------------------------------------------------

    def _load(self) -> Any:
        if self._injected is not None:
            return self._injected
        return importlib.import_module("pynvml")

    def probe(self) -> Availability:
        try:
            nvml = self._load()
        except ImportError:
            return Availability.no("the nvidia-ml-py package (module pynvml) is not installed: pip install nvidia-ml-py")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            return Availability.no(explain_init_error(nvml, exc))
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:
            return Availability.no(f"NVML could not count GPUs: {exc}")
        finally:
            _quiet_shutdown(nvml)
        if count == 0:
            return Availability.no("NVML found no NVIDIA GPU on this host")
        return Availability.yes()

    @property
    def gpus(self) -> list[dict[str, Any]]:
        """What was found at start: index, name, energy source per GPU."""
        return [
            {
                "index": g.index,
                "name": g.name,
                "energy_source": "total_energy_counter"
                if g.energy_origin_mj is not None
                else ("power_usage" if g.has_power_usage else None),
            }
            for g in self._gpus
        ]

    # -- PollingSampler hooks -------------------------------------------------

    def _open(self) -> None:
        nvml = self._load()
        nvml.nvmlInit()
        self._nvml = nvml
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = _as_text(self._optional(f"gpu{index}.name", nvml.nvmlDeviceGetName, handle))
                origin = self._optional(
                    f"gpu{index}.energy_counter", nvml.nvmlDeviceGetTotalEnergyConsumption, handle
                )
                power = self._optional(f"gpu{index}.power_usage", nvml.nvmlDeviceGetPowerUsage, handle)
                if origin is None and power is None:
                    self.unavailable[f"gpu{index}.energy"] = (
                        "NVML supports neither the total energy counter nor power usage on this GPU"
                    )
                self._gpus.append(_Gpu(index, handle, name or f"gpu{index}", origin, power is not None))
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._nvml is not None:
            _quiet_shutdown(self._nvml)
            self._nvml = None

    def _read(self) -> Sample | None:
        nvml = self._nvml
        if nvml is None:
            return None
        # Energy and power first, then the stamp: those are what integration
        # uses, so they should sit closest to t_ns. State queries follow.
        counters_mj: dict[str, int | None] = {}
        powers_mw: dict[str, int | None] = {}
        for gpu in self._gpus:
            h, key = gpu.handle, gpu.channel
            counters_mj[key] = (
                self._optional(f"{key}.energy_counter", nvml.nvmlDeviceGetTotalEnergyConsumption, h)
                if gpu.energy_origin_mj is not None
                else None
            )
            powers_mw[key] = (
                self._optional(f"{key}.power_usage", nvml.nvmlDeviceGetPowerUsage, h)
                if gpu.has_power_usage
                else None
            )
        t_ns, mono_ns = now_ns()

        power_w: dict[str, float] = {}
        energy_j: dict[str, float] = {}
        readings: dict[str, dict[str, Any]] = {}
        mem_sum_mb: float | None = None
        proc_sum_mb: float | None = None
        for gpu in self._gpus:
            h, key = gpu.handle, gpu.channel
            counter_mj = counters_mj[key]
            if counter_mj is not None and gpu.energy_origin_mj is not None:
                energy_j[key] = (counter_mj - gpu.energy_origin_mj) / 1000.0
            power_mw = powers_mw[key]
            if power_mw is not None:
                power_w[key] = power_mw / 1000.0
            elif key in energy_j and gpu.prev_t_ns is not None and gpu.prev_energy_j is not None \
                    and mono_ns > gpu.prev_t_ns:
                # No power query on this GPU: mean power over the last interval.
                power_w[key] = (energy_j[key] - gpu.prev_energy_j) / ((mono_ns - gpu.prev_t_ns) / 1e9)
            if key in energy_j:
                gpu.prev_t_ns, gpu.prev_energy_j = mono_ns, energy_j[key]

            util = self._optional(f"{key}.utilization", nvml.nvmlDeviceGetUtilizationRates, h)
            mem = self._optional(f"{key}.memory", nvml.nvmlDeviceGetMemoryInfo, h)
            sm_clock = self._optional(f"{key}.sm_clock", nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM)
            temp = self._optional(f"{key}.temperature", nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
            mem_used_mb = None if mem is None else mem.used / _MIB
            if mem_used_mb is not None:
                mem_sum_mb = (mem_sum_mb or 0.0) + mem_used_mb
            # Memory of the compute processes (the backend's, on a benchmark machine): what CTranslate2
            # holds, which torch's allocator cannot see. None where NVML cannot tell (per-process
            # accounting off, or usedGpuMemory not available inside a container's PID namespace).
            procs = self._optional(f"{key}.processes", nvml.nvmlDeviceGetComputeRunningProcesses, h)
            used = [p.usedGpuMemory for p in procs or () if isinstance(getattr(p, "usedGpuMemory", None), int)]
            proc_mb = sum(used) / _MIB if used else None
            if proc_mb is not None:
                proc_sum_mb = (proc_sum_mb or 0.0) + proc_mb
            readings[key] = {
                "name": gpu.name,
                "util_pct": None if util is None else util.gpu,
                "mem_used_mb": mem_used_mb,
                "process_mem_mb": proc_mb,
                "sm_clock_mhz": sm_clock,
                "temp_c": temp,
            }

        channels = [g.channel for g in self._gpus]
        if channels and all(c in power_w for c in channels):
            total_w: float | None = sum(power_w[c] for c in channels)
            total_kind = "nvml:sum_of_gpus"
        else:
            total_w = None
            missing = [c for c in channels if c not in power_w]
            total_kind = f"no power reading for {', '.join(missing)}" if missing else "NVML sees no GPU"
        has_all_counters = bool(channels) and all(c in energy_j for c in channels)
        return Sample(
            t_ns=t_ns,
            mono_ns=mono_ns,
            power_w=power_w,
            total_w=total_w,
            total_kind=total_kind,
            energy_j=energy_j or None,
            total_energy_j=sum(energy_j[c] for c in channels) if has_all_counters else None,
            mem_used_mb=mem_sum_mb,
            extras={"gpus": readings, "process_mem_mb": proc_sum_mb},
        )

    # -- helpers --------------------------------------------------------------

    def _optional(self, what: str, query: Callable[..., Any], *args: Any) -> Any:
        """Run ``query(*args)``; on NotSupported (or another NVML error) record
        why under ``what`` and return None instead of a made-up value."""
        nvml = self._nvml if self._nvml is not None else self._load()
        try:
            return query(*args)
        except nvml.NVMLError as exc:
            not_supported = getattr(nvml, "NVMLError_NotSupported", None)
            if not_supported is not None and isinstance(exc, not_supported):
                self.unavailable.setdefault(what, "not supported by this GPU/driver (NVML NotSupported)")
            else:
                self.unavailable[what] = f"NVML error: {exc}"
            return None


def explain_init_error(nvml: Any, exc: BaseException) -> str:
    """Turn an ``nvmlInit`` failure into a sentence a person can act on."""
    reasons = (
        ("NVMLError_LibraryNotFound", "libnvidia-ml.so.1 not found: no NVIDIA driver is installed on this host"),
        ("NVMLError_DriverNotLoaded", "the NVIDIA driver is installed but not loaded (no nvidia kernel module)"),
        ("NVMLError_NoPermission", "no permission to open the NVIDIA devices (check /dev/nvidia* permissions)"),
        ("NVMLError_LibRmVersionMismatch", "NVML library and kernel driver versions differ (reboot after a driver update)"),
    )
    for class_name, reason in reasons:
        cls = getattr(nvml, class_name, None)
        if cls is not None and isinstance(exc, cls):
            return reason
    return f"NVML initialisation failed: {exc}"


def _quiet_shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError:
        pass


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
