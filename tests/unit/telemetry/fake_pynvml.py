"""A FAKE of the ``pynvml`` module (package nvidia-ml-py), for unit tests.

Not NVIDIA code and not a copy of it: a small stand-in with the same function
names, call signatures, units and exception classes as the real module, so
``NvmlSampler`` can be tested on machines without a GPU. ``test_nvml.py``
checks the names, signatures and error codes against the installed real
``pynvml`` when it is present.

Units, as in NVML: energy counter in millijoules (int, since driver load),
power in milliwatts (int), memory in bytes, clocks in MHz, temperature in C.
Operating points (runner/power): supported clocks, locked graphics and memory clocks (a lock above
``power_cap_mhz`` runs at the cap and raises the SwPowerCap clock event reason, as a power-limited GPU does),
the power limit and its constraints, and NoPermission from the Set* calls for a caller without the rights.
The fake GPU's energy counter integrates its ``power_mw`` over the wall time of
its clock: the host's (``time.time_ns()``), or the clock a test gives
``FakePynvml(clock=...)`` and the sampler alike (tests/fake_clock.py), so tests
can compute the exact energy of any window.

Device selection and MIG, as NVML does it: ``nvmlDeviceGetCount`` counts
physical GPUs only; ``nvmlDeviceGetHandleByUUID`` finds a GPU (``GPU-...``) or a
MIG instance (``MIG-...``); a MIG device handle answers NotSupported for power
and energy (NVML keeps those per physical GPU) and leads to its parent through
``nvmlDeviceGetDeviceHandleFromMigDeviceHandle``. Power, as on Ampere and newer
(GA100 aside): ``nvmlDeviceGetPowerUsage`` returns a one-second moving average
(``power_avg_mw`` when set), while ``nvmlDeviceGetFieldValues`` with
``NVML_FI_DEV_POWER_INSTANT`` returns the instantaneous power (``power_mw``)
when the driver has that field (``power_instant_field``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

# Error codes: same values as NVML's nvml.h.
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
# nvmlClocksEventReason* bits, as nvml.h defines them.
nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksEventReasonSwThermalSlowdown = 0x20
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_VALUE_TYPE_UNSIGNED_INT = 1

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_FOUND: "Not Found",
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
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
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
class FieldValue:
    """Shape of c_nvmlFieldValue_t: fieldId, nvmlReturn (NVML_SUCCESS or an error code), valueType,
    timestamp (us) and the value union (``value.uiVal`` for power fields, in mW)."""

    fieldId: int
    scopeId: int
    timestamp: int
    latencyUsec: int
    valueType: int
    nvmlReturn: int
    value: Value


@dataclass
class Value:
    """Shape of c_nvmlValue_t (the members the power fields use)."""

    uiVal: int = 0
    dVal: float = 0.0


_uuid_counter = [0]


def _next_uuid(prefix: str) -> str:
    _uuid_counter[0] += 1
    return f"{prefix}-00000000-0000-0000-0000-{_uuid_counter[0]:012d}"


@dataclass(eq=False)
class FakeMig:
    """One MIG instance of a fake GPU: its own UUID, memory and compute processes (as NVML answers them on the
    MIG device handle), no power or energy of its own."""

    uuid: str = field(default_factory=lambda: _next_uuid("MIG"))
    parent: FakeGpu | None = None
    mem_used_bytes: int = 1024**3
    mem_total_bytes: int = 10 * 1024**3
    name: str = "NVIDIA Fake GPU MIG 1g.10gb"
    processes: list = field(default_factory=list)


@dataclass(eq=False)
class FakeGpu:
    """One fake GPU. ``None`` for a capability means NVML answers NotSupported."""

    name: str = "NVIDIA Fake GPU"
    power_mw: int = 100_000  # the true, instantaneous power (what the energy counter integrates)
    power_avg_mw: int | None = None  # what nvmlDeviceGetPowerUsage returns (Ampere+: a 1 s average); None: power_mw
    power_instant_field: bool = False  # the driver answers NVML_FI_DEV_POWER_INSTANT
    energy_counter: bool = True  # Volta+ total energy counter
    power_usage: bool = True
    util_pct: int | None = 50
    mem_used_bytes: int | None = 2 * 1024**3
    mem_total_bytes: int = 16 * 1024**3
    sm_clock_mhz: int | None = 1410
    temp_c: int | None = 60
    processes: list | None = field(default_factory=lambda: [ProcessInfo(4242, 900 * 1024**2)])
    counter_at_start_mj: int = 123_456_789  # counter runs since driver load
    uuid: str = field(default_factory=lambda: _next_uuid("GPU"))
    migs: list = field(default_factory=list)  # FakeMig instances (MIG mode on)
    _origin_ns: int = field(default_factory=time.time_ns)
    clock: Any = None  # what the counter runs on (set by FakePynvml(clock=...)); None: the host's wall clock
    # -- operating point (runner/power): locked clocks, power limit, clock event reasons ---------------------
    # Supported clocks as NVML lists them (MHz, highest first); one graphics list for every memory clock.
    supported_mem_mhz: tuple = (9501, 5001, 810, 405)
    supported_graphics_mhz: tuple = (1980, 1755, 1500, 1215, 900, 600, 345, 210)
    mem_clock_mhz: int = 9501
    locked_gpu_mhz: tuple | None = None  # (min, max) after nvmlDeviceSetGpuLockedClocks
    locked_mem_mhz: tuple | None = None
    power_cap_mhz: int | None = None  # the highest clock the power limit lets it reach (clamping); None: no cap
    power_limit_mw: int = 300_000
    power_limit_default_mw: int = 300_000
    power_limit_range_mw: tuple = (100_000, 350_000)
    settable: bool = True  # False: the Set* calls answer NoPermission, as for a non-root caller
    event_reasons: int = 0
    driver_version: str = "550.54.15"
    cuda_capability: tuple = (8, 9)  # (major, minor), as nvmlDeviceGetCudaComputeCapability answers

    def __post_init__(self) -> None:
        for mig in self.migs:
            mig.parent = self

    def now_ns(self) -> int:
        return self.clock.time_ns() if self.clock is not None else time.time_ns()

    def energy_mj(self) -> int:
        elapsed_s = (self.now_ns() - self._origin_ns) / 1e9
        return self.counter_at_start_mj + int(self.power_mw * elapsed_s)


class FakePynvml:
    """Module-like object: pass an instance as ``NvmlSampler(nvml=...)``.

    ``init_error`` makes ``nvmlInit`` raise that NVML error code, to imitate a
    host without driver (``NVML_ERROR_LIBRARY_NOT_FOUND``) and so on.
    """

    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_CLOCK_GRAPHICS = NVML_CLOCK_GRAPHICS
    NVML_CLOCK_MEM = NVML_CLOCK_MEM
    NVML_SUCCESS = NVML_SUCCESS
    NVML_FI_DEV_POWER_AVERAGE = NVML_FI_DEV_POWER_AVERAGE
    NVML_FI_DEV_POWER_INSTANT = NVML_FI_DEV_POWER_INSTANT
    NVML_VALUE_TYPE_UNSIGNED_INT = NVML_VALUE_TYPE_UNSIGNED_INT
    NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_LIBRARY_NOT_FOUND = NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_NO_PERMISSION = NVML_ERROR_NO_PERMISSION
    NVMLError = NVMLError
    NVMLError_Uninitialized = NVMLError_Uninitialized
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_InvalidArgument = NVMLError_InvalidArgument
    NVMLError_NoPermission = NVMLError_NoPermission
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: int | None = None, clock: Any = None) -> None:
        self.gpus = list(gpus) if gpus is not None else [FakeGpu()]
        if clock is not None:  # the counters run on the test's clock from now on
            for gpu in self.gpus:
                gpu.clock, gpu._origin_ns = clock, clock.time_ns()
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
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid) -> FakeGpu | FakeMig:
        """Real NVML takes the UUID as bytes (pynvml converts str); GPU-... or MIG-..."""
        self._check_init()
        text = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self.gpus:
            if gpu.uuid == text:
                return gpu
            for mig in gpu.migs:
                if mig.uuid == text:
                    return mig
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    # -- per device ---------------------------------------------------------------

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        self._check_init()
        return handle.name

    def nvmlDeviceGetUUID(self, handle) -> str:
        self._check_init()
        return handle.uuid

    def nvmlDeviceGetIndex(self, handle) -> int:
        self._check_init()
        if isinstance(handle, FakeMig):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return self.gpus.index(handle)

    def nvmlDeviceIsMigDeviceHandle(self, device) -> int:
        """Real pynvml returns a c_uint (``.value``); an int answers the same truth test."""
        self._check_init()
        return 1 if isinstance(device, FakeMig) else 0

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, migDevice) -> FakeGpu:
        self._check_init()
        if not isinstance(migDevice, FakeMig):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return migDevice.parent

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        self._check_init()
        if isinstance(handle, FakeMig) or not handle.energy_counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.energy_mj()

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._check_init()
        if isinstance(handle, FakeMig) or not handle.power_usage:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.power_mw if handle.power_avg_mw is None else handle.power_avg_mw

    def nvmlDeviceGetFieldValues(self, handle, fieldIds) -> list:
        """One FieldValue per requested id; an unsupported field has nvmlReturn NOT_SUPPORTED, not an exception."""
        self._check_init()
        out = []
        for field_id in fieldIds:
            fid = field_id[0] if isinstance(field_id, tuple) else field_id
            ok = not isinstance(handle, FakeMig) and (
                (fid == NVML_FI_DEV_POWER_INSTANT and handle.power_instant_field)
                or (fid == NVML_FI_DEV_POWER_AVERAGE and handle.power_usage))
            mw = 0
            if ok:
                mw = handle.power_mw if fid == NVML_FI_DEV_POWER_INSTANT else (
                    handle.power_mw if handle.power_avg_mw is None else handle.power_avg_mw)
            stamp_ns = handle.now_ns() if ok else time.time_ns()
            out.append(FieldValue(fieldId=fid, scopeId=0, timestamp=stamp_ns // 1000, latencyUsec=0,
                                  valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                                  nvmlReturn=NVML_SUCCESS if ok else NVML_ERROR_NOT_SUPPORTED, value=Value(uiVal=mw)))
        return out

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> Utilization:
        self._check_init()
        if handle.util_pct is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return Utilization(gpu=handle.util_pct, memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu, version=None) -> Memory:
        self._check_init()
        if getattr(handle, "mem_used_bytes", None) is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        used = handle.mem_used_bytes
        return Memory(total=handle.mem_total_bytes, free=handle.mem_total_bytes - used, used=used)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list:
        self._check_init()
        if isinstance(handle, FakeMig):
            return list(handle.processes)
        if handle.processes is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return list(handle.processes)

    def nvmlDeviceGetClockInfo(self, handle: FakeGpu, type: int) -> int:
        """SM and graphics clocks: the locked clock when locked (lowered to ``power_cap_mhz``), else
        ``sm_clock_mhz``; the memory clock: the locked one, else ``mem_clock_mhz``."""
        self._check_init()
        if type == NVML_CLOCK_MEM:
            return handle.locked_mem_mhz[1] if handle.locked_mem_mhz else handle.mem_clock_mhz
        if type not in (NVML_CLOCK_SM, NVML_CLOCK_GRAPHICS) or handle.sm_clock_mhz is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        clock = handle.locked_gpu_mhz[1] if handle.locked_gpu_mhz else handle.sm_clock_mhz
        if handle.power_cap_mhz is not None:
            clock = min(clock, handle.power_cap_mhz)
        return clock

    # -- operating point ------------------------------------------------------------------------------------

    def _settable(self, handle: FakeGpu) -> None:
        self._check_init()
        if isinstance(handle, FakeMig):
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if not handle.settable:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)

    def nvmlDeviceGetSupportedMemoryClocks(self, handle: FakeGpu) -> list:
        self._check_init()
        return list(handle.supported_mem_mhz)

    def nvmlDeviceGetSupportedGraphicsClocks(self, handle: FakeGpu, memoryClockMHz) -> list:
        self._check_init()
        if memoryClockMHz not in handle.supported_mem_mhz:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return list(handle.supported_graphics_mhz)

    def nvmlDeviceSetGpuLockedClocks(self, handle: FakeGpu, minGpuClockMHz, maxGpuClockMHz) -> None:
        self._settable(handle)
        handle.locked_gpu_mhz = (minGpuClockMHz, maxGpuClockMHz)

    def nvmlDeviceResetGpuLockedClocks(self, handle: FakeGpu) -> None:
        self._settable(handle)
        handle.locked_gpu_mhz = None

    def nvmlDeviceSetMemoryLockedClocks(self, handle: FakeGpu, minMemClockMHz, maxMemClockMHz) -> None:
        self._settable(handle)
        handle.locked_mem_mhz = (minMemClockMHz, maxMemClockMHz)

    def nvmlDeviceResetMemoryLockedClocks(self, handle: FakeGpu) -> None:
        self._settable(handle)
        handle.locked_mem_mhz = None

    def nvmlDeviceGetPowerManagementLimit(self, handle: FakeGpu) -> int:
        self._check_init()
        return handle.power_limit_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeGpu) -> int:
        self._check_init()
        return handle.power_limit_mw

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: FakeGpu) -> int:
        self._check_init()
        return handle.power_limit_default_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: FakeGpu) -> list:
        self._check_init()
        return list(handle.power_limit_range_mw)

    def nvmlDeviceSetPowerManagementLimit(self, handle: FakeGpu, limit) -> None:
        self._settable(handle)
        lo, hi = handle.power_limit_range_mw
        if not lo <= limit <= hi:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        handle.power_limit_mw = limit

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeGpu) -> int:
        """``event_reasons``, plus the power cap bit while the cap holds a locked clock down."""
        self._check_init()
        reasons = handle.event_reasons
        if handle.power_cap_mhz is not None and handle.locked_gpu_mhz and handle.locked_gpu_mhz[1] > handle.power_cap_mhz:
            reasons |= nvmlClocksEventReasonSwPowerCap
        return reasons

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeGpu) -> tuple:
        self._check_init()
        return tuple(handle.cuda_capability)

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check_init()
        return self.gpus[0].driver_version if self.gpus else "550.54.15"

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
    "nvmlDeviceGetHandleByUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetIndex",
    "nvmlDeviceIsMigDeviceHandle",
    "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetFieldValues",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetSupportedMemoryClocks",
    "nvmlDeviceGetSupportedGraphicsClocks",
    "nvmlDeviceSetGpuLockedClocks",
    "nvmlDeviceResetGpuLockedClocks",
    "nvmlDeviceSetMemoryLockedClocks",
    "nvmlDeviceResetMemoryLockedClocks",
    "nvmlDeviceGetPowerManagementLimit",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementDefaultLimit",
    "nvmlDeviceGetPowerManagementLimitConstraints",
    "nvmlDeviceSetPowerManagementLimit",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlSystemGetDriverVersion",
)
