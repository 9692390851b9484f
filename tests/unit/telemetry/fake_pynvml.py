"""A FAKE of the ``pynvml`` module (package nvidia-ml-py), for unit tests.

Not NVIDIA code and not a copy of it: a small stand-in with the same function
names, call signatures, units and exception classes as the real module, so
``NvmlSampler`` can be tested on machines without a GPU. ``test_nvml.py``
checks the names, signatures and error codes against the installed real
``pynvml`` when it is present.

Units, as in NVML: energy counter in millijoules (int, since driver load),
power in milliwatts (int), memory in bytes, clocks in MHz, temperature in C.
The fake GPU's energy counter integrates its ``power_mw`` over the host wall
clock (``time.time_ns()``), the clock the sampler stamps samples with, so
tests can compute the exact energy of any window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

# Error codes: same values as NVML's nvml.h.
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}


class NVMLError(Exception):
    """Like pynvml: ``NVMLError(code)`` builds the subclass for that code and
    every instance carries the code as ``.value``."""

    _by_code: ClassVar[dict[int, type[NVMLError]]] = {}

    def __new__(cls, value: int):
        target = NVMLError._by_code.get(value, NVMLError) if cls is NVMLError else cls
        obj = Exception.__new__(target)
        obj.value = value
        return obj

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


def _error_class(name: str, code: int) -> type[NVMLError]:
    def new(cls, *args):
        return NVMLError.__new__(cls, code)

    def init(self, *args):
        NVMLError.__init__(self, code)

    cls = type(name, (NVMLError,), {"__new__": new, "__init__": init})
    NVMLError._by_code[code] = cls
    return cls


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)


@dataclass
class Utilization:
    """Shape of c_nvmlUtilization_t: percentages."""

    gpu: int
    memory: int


@dataclass
class Memory:
    """Shape of c_nvmlMemory_t: bytes."""

    total: int
    free: int
    used: int


@dataclass
class ProcessInfo:
    """Shape of c_nvmlProcessInfo_t: pid, usedGpuMemory in bytes (None when NVML cannot tell)."""

    pid: int
    usedGpuMemory: int | None


@dataclass
class FakeGpu:
    """One fake GPU. ``None`` for a capability means NVML answers NotSupported."""

    name: str = "NVIDIA Fake GPU"
    power_mw: int = 100_000
    energy_counter: bool = True  # Volta+ total energy counter
    power_usage: bool = True
    util_pct: int | None = 50
    mem_used_bytes: int | None = 2 * 1024**3
    mem_total_bytes: int = 16 * 1024**3
    sm_clock_mhz: int | None = 1410
    temp_c: int | None = 60
    processes: list | None = field(default_factory=lambda: [ProcessInfo(4242, 900 * 1024**2)])
    counter_at_start_mj: int = 123_456_789  # counter runs since driver load
    _origin_ns: int = field(default_factory=time.time_ns)

    def energy_mj(self) -> int:
        elapsed_s = (time.time_ns() - self._origin_ns) / 1e9
        return self.counter_at_start_mj + int(self.power_mw * elapsed_s)


class FakePynvml:
    """Module-like object: pass an instance as ``NvmlSampler(nvml=...)``.

    ``init_error`` makes ``nvmlInit`` raise that NVML error code, to imitate a
    host without driver (``NVML_ERROR_LIBRARY_NOT_FOUND``) and so on.
    """

    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: int | None = None) -> None:
        self.gpus = list(gpus) if gpus is not None else [FakeGpu()]
        self.init_error = init_error
        self.refcount = 0  # NVML counts nvmlInit/nvmlShutdown pairs
        self.calls: list[str] = []

    # -- library ----------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.refcount += 1

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")
        self._check_init()
        self.refcount -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._check_init()
        return self.gpus[index]

    # -- per device ---------------------------------------------------------------

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        self._check_init()
        return handle.name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        self._check_init()
        if not handle.energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.energy_mj()

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._check_init()
        if not handle.power_usage:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.power_mw

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> Utilization:
        self._check_init()
        if handle.util_pct is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return Utilization(gpu=handle.util_pct, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu, version=None) -> Memory:
        self._check_init()
        if handle.mem_used_bytes is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        used = handle.mem_used_bytes
        return Memory(total=handle.mem_total_bytes, free=handle.mem_total_bytes - used, used=used)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list:
        self._check_init()
        if handle.processes is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return list(handle.processes)

    def nvmlDeviceGetClockInfo(self, handle: FakeGpu, type: int) -> int:
        self._check_init()
        if type != NVML_CLOCK_SM or handle.sm_clock_mhz is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.sm_clock_mhz

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        self._check_init()
        if sensor != NVML_TEMPERATURE_GPU or handle.temp_c is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.temp_c

    def _check_init(self) -> None:
        if self.refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)


#: The functions the fake imitates, for the signature check against pynvml.
IMITATED_FUNCTIONS = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetName",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetTemperature",
)
