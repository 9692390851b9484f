"""NVIDIA GPU energy and state through NVML (the ``nvidia-ml-py`` package).

Energy, per GPU, best source first:

1. ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since the driver loaded,
   Volta and newer): a hardware counter, so window energy is a difference of
   two readings and does not depend on the sampling interval;
2. power polled and integrated afterwards.

Power, per GPU: the instantaneous field ``NVML_FI_DEV_POWER_INSTANT``
(``nvmlDeviceGetFieldValues``) where the driver has it, else
``nvmlDeviceGetPowerUsage``, which on Ampere and newer (GA100 aside) is a one
second moving average, labelled as such (``NvmlSampler.gpus[i]["power_source"]``).
Energy stays on the counter whenever there is one.

Which GPUs: only the run's (``devices``: indices or UUIDs, MIG included; a MIG
slice has no power counter, so its parent GPU is measured and labelled so).
Process memory: each sample lists every compute process with its pid and owner
(cgroup, session); accounting keeps only the run's own.

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
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runner.host.clock import SYSTEM_CLOCK, Clock
from runner.telemetry.samplers.base import DEFAULT_INTERVAL_MS, FAILED_QUERIES, Availability, Sample, now_ns
from runner.telemetry.samplers.polling import PollingSampler

_MIB = 1024 * 1024


#: NVML field ids (nvml.h): instantaneous power, and the 1 s average nvmlDeviceGetPowerUsage gives on Ampere+.
NVML_FI_DEV_POWER_INSTANT = 186
NVML_SUCCESS = 0
#: nvmlValueType_t -> the c_nvmlValue_t union member that holds it
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}

POWER_INSTANT = "instant (nvmlDeviceGetFieldValues NVML_FI_DEV_POWER_INSTANT)"
POWER_USAGE = ("nvmlDeviceGetPowerUsage (on Ampere and newer, GA100 aside, a 1 s moving average: "
               "peaks are flattened)")
POWER_FROM_COUNTER = "mean over the sampling interval, from the energy counter"


def requested_gpus(env: dict[str, str] | None = None) -> list[str] | None:
    """The GPUs a run uses when none are named: ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) when set."""
    value = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass
class _Gpu:
    """One selected device: a whole GPU, or a MIG slice measured through its parent GPU."""

    index: int  # NVML index of the physical GPU (the parent, for a MIG slice)
    handle: Any  # the physical GPU: power, energy, clocks and temperature live there
    name: str
    uuid: str | None
    requested: str  # as given: an index, GPU-... or MIG-...
    energy_origin_mj: int | None  # first counter reading; None: no counter
    power_source: str | None  # POWER_INSTANT | POWER_USAGE | None
    #: The run's MIG slices on this GPU (their own handles: memory and processes live there); empty: the GPU's.
    mig_handles: list[Any] = field(default_factory=list)
    mig_uuids: list[str | None] = field(default_factory=list)
    prev_t_ns: int | None = None
    prev_energy_j: float | None = None

    @property
    def channel(self) -> str:
        return f"gpu{self.index}"

    @property
    def mig_uuid(self) -> str | None:
        return self.mig_uuids[0] if self.mig_uuids else None

    @property
    def memory_handles(self) -> list[Any]:
        """Where this device's memory and processes are read: each of the run's slices, else the whole GPU."""
        return list(self.mig_handles) or [self.handle]

    @property
    def energy_scope(self) -> str:
        if self.mig_uuids:
            slices = ", ".join(str(u) for u in self.mig_uuids)
            return (f"the parent GPU {self.uuid or self.index} of MIG slice(s) {slices}: a MIG slice has no "
                    "power counter of its own, so this is every slice on that GPU")
        return f"GPU {self.uuid or self.index}"


class NvmlSampler(PollingSampler):
    """Samples the NVIDIA GPUs a run uses (all GPUs NVML sees when none are named), every ``interval_ms``.

    ``devices``: NVML indices or UUIDs (``GPU-...``, ``MIG-...``), as passed to the engine; None: the
    host's ``CUDA_VISIBLE_DEVICES`` when set, else every GPU. NVML indices are PCI-bus order; CUDA's own
    order may differ unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``: UUIDs are unambiguous, and the selection
    (``NvmlSampler.selection``) names the UUID of each GPU chosen.
    """

    name = "nvml"

    def __init__(self, interval_ms: int = DEFAULT_INTERVAL_MS, nvml: Any = None, devices: Sequence[str] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(interval_ms, clock)
        self._injected = nvml
        self._nvml: Any = None
        self._gpus: list[_Gpu] = []
        self.devices = None if devices is None else [str(d) for d in devices]
        #: "gpu0.energy" -> why it is not measured; filled during start/sampling.
        self.unavailable: dict[str, str] = {}
        #: pid -> what identifies its owner (cgroup, session), read once when NVML first lists it.
        self._owners: dict[int, dict[str, Any]] = {}
        #: Queries that failed (an NVML error other than NotSupported) while sampling: each marks its sample.
        self.n_query_failures = 0
        self._failed_now: list[str] = []
        self._sampling = False  # set once the GPUs are chosen (_open)

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
            if count and self._wanted() is not None:
                for wanted in self._wanted():
                    self._resolve(nvml, wanted)
        except nvml.NVMLError as exc:
            return Availability.no(f"NVML could not count GPUs: {exc}")
        except LookupError as exc:
            return Availability.no(str(exc))
        finally:
            _quiet_shutdown(nvml)
        if count == 0:
            return Availability.no("NVML found no NVIDIA GPU on this host")
        return Availability.yes()

    def inventory(self) -> list[str]:
        """Every GPU NVML sees, as "0 NVIDIA A100 (GPU-...)", for a sentence that asks the person to name some;
        no side effects (NVML is shut down again), [] where NVML cannot list them."""
        try:
            nvml = self._load()
            nvml.nvmlInit()
        except Exception:  # noqa: BLE001 - a listing for a message: nothing to list is an answer
            return []
        try:
            out = []
            for i in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                out.append(f"{i} {_as_text(nvml.nvmlDeviceGetName(handle))} ({_as_text(nvml.nvmlDeviceGetUUID(handle))})")
            return out
        except nvml.NVMLError:
            return []
        finally:
            _quiet_shutdown(nvml)

    def _wanted(self) -> list[str] | None:
        return self.devices if self.devices is not None else requested_gpus()

    @property
    def gpus(self) -> list[dict[str, Any]]:
        """What was selected at start: per GPU its index, UUID, name, energy and power sources and scope."""
        return [
            {
                "index": g.index,
                "uuid": g.uuid,
                "requested": g.requested,
                "name": g.name,
                "mig_uuid": g.mig_uuid,
                "mig_uuids": list(g.mig_uuids),
                "energy_source": "total_energy_counter"
                if g.energy_origin_mj is not None
                else {POWER_INSTANT: "power_instant", POWER_USAGE: "power_usage"}.get(g.power_source or ""),
                "power_source": g.power_source or (POWER_FROM_COUNTER if g.energy_origin_mj is not None else None),
                "energy_scope": g.energy_scope,
            }
            for g in self._gpus
        ]

    def health(self) -> dict[str, Any]:
        """Adds the GPUs chosen (index, UUID, MIG, power and energy sources), every query NVML refused, and how
        many queries failed while sampling (``ok`` is False then: the windows they fall in are named by the
        accounting)."""
        out = {**super().health(), "gpus": self.gpus, "unavailable": dict(self.unavailable),
               "n_query_failures": self.n_query_failures}
        if self.n_query_failures:
            out["ok"] = False
        return out

    # -- PollingSampler hooks -------------------------------------------------

    def _resolve(self, nvml: Any, wanted: str) -> tuple[Any, Any]:
        """(physical GPU handle, MIG handle or None) for an index, GPU-... or MIG-... UUID."""
        try:
            if wanted.isdigit():
                handle = nvml.nvmlDeviceGetHandleByIndex(int(wanted))
            else:
                handle = nvml.nvmlDeviceGetHandleByUUID(wanted.encode())
        except nvml.NVMLError as exc:
            raise LookupError(f"NVML has no GPU {wanted!r} ({exc}): name an index or a UUID from nvidia-smi -L")
        try:
            is_mig = nvml.nvmlDeviceIsMigDeviceHandle(handle)  # pynvml returns a c_uint
        except nvml.NVMLError:  # a driver without MIG: not a MIG handle
            is_mig = 0
        if int(getattr(is_mig, "value", is_mig)):
            return nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle), handle
        return handle, None

    def _open(self) -> None:
        nvml = self._load()
        nvml.nvmlInit()
        self._nvml = nvml
        try:
            wanted = self._wanted()
            if wanted is None:
                wanted = [str(i) for i in range(nvml.nvmlDeviceGetCount())]
            seen: dict[int, _Gpu] = {}
            for want in wanted:
                handle, mig = self._resolve(nvml, want)
                index = self._optional(f"{want}.index", nvml.nvmlDeviceGetIndex, handle)
                index = int(want) if index is None and want.isdigit() else index
                if index is None:
                    index = len(self._gpus)
                mig_uuid = _as_text(self._optional(f"{want}.uuid", nvml.nvmlDeviceGetUUID, mig)) if mig else None
                if index in seen:  # another MIG slice of a GPU already chosen: its energy once, every slice's memory
                    if mig is not None and seen[index].mig_handles:
                        seen[index].mig_handles.append(mig)
                        seen[index].mig_uuids.append(mig_uuid)
                    else:  # the whole GPU was asked for too: its memory covers every slice
                        seen[index].mig_handles.clear()
                        seen[index].mig_uuids.clear()
                    continue
                key = f"gpu{index}"
                name = _as_text(self._optional(f"{key}.name", nvml.nvmlDeviceGetName, handle))
                uuid = _as_text(self._optional(f"{key}.uuid", nvml.nvmlDeviceGetUUID, handle))
                origin = self._optional(f"{key}.energy_counter", nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
                power_source = None
                if self._instant_power_mw(handle) is not None:
                    power_source = POWER_INSTANT
                elif self._optional(f"{key}.power_usage", nvml.nvmlDeviceGetPowerUsage, handle) is not None:
                    power_source = POWER_USAGE
                if origin is None and power_source is None:
                    self.unavailable[f"{key}.energy"] = (
                        "NVML supports neither the total energy counter nor power usage on this GPU"
                    )
                gpu = _Gpu(index, handle, name or key, uuid, want, origin, power_source,
                           mig_handles=[mig] if mig is not None else [], mig_uuids=[mig_uuid] if mig is not None else [])
                seen[index] = gpu
                self._gpus.append(gpu)
            self._sampling = True
        except BaseException:
            self._close()
            raise

    def _close(self) -> None:
        if self._nvml is not None:
            _quiet_shutdown(self._nvml)
            self._nvml = None

    def _instant_power_mw(self, handle: Any) -> int | None:
        """NVML_FI_DEV_POWER_INSTANT in mW, or None where the driver does not have the field."""
        nvml = self._nvml if self._nvml is not None else self._load()
        query = getattr(nvml, "nvmlDeviceGetFieldValues", None)
        if query is None:
            return None
        try:
            (value,) = query(handle, [NVML_FI_DEV_POWER_INSTANT])
        except nvml.NVMLError:
            return None
        if value.nvmlReturn != NVML_SUCCESS:
            return None
        member = _VALUE_MEMBERS.get(int(value.valueType), "uiVal")  # power fields are unsigned int (mW)
        return int(getattr(value.value, member))

    def _read(self) -> Sample | None:
        nvml = self._nvml
        if nvml is None:
            return None
        self._failed_now = []
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
            if gpu.power_source == POWER_INSTANT:
                powers_mw[key] = self._instant_power_mw(h)
            elif gpu.power_source == POWER_USAGE:
                powers_mw[key] = self._optional(f"{key}.power_usage", nvml.nvmlDeviceGetPowerUsage, h)
            else:
                powers_mw[key] = None
        t_ns, mono_ns = now_ns(self.clock)

        power_w: dict[str, float] = {}
        energy_j: dict[str, float] = {}
        readings: dict[str, dict[str, Any]] = {}
        mem_sum_mib: float | None = None
        processes: list[dict[str, Any]] = []
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
            sm_clock = self._optional(f"{key}.sm_clock", nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM)
            temp = self._optional(f"{key}.temperature", nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
            # Memory and processes per MIG slice of the run (each slice's own handle), else the GPU's.
            mems = [self._optional(f"{key}.memory", nvml.nvmlDeviceGetMemoryInfo, mh) for mh in gpu.memory_handles]
            mem_used_mib = None if any(m is None for m in mems) else sum(m.used for m in mems) / _MIB
            if mem_used_mib is not None:
                mem_sum_mib = (mem_sum_mib or 0.0) + mem_used_mib
            # Every compute process with its memory, raw: which of them are the run's is decided
            # afterwards from their owner (cgroup / session), never by summing another user's in.
            for mh in gpu.memory_handles:
                procs = self._optional(f"{key}.processes", nvml.nvmlDeviceGetComputeRunningProcesses, mh)
                for p in procs or ():
                    used = getattr(p, "usedGpuMemory", None)
                    pid = int(getattr(p, "pid", -1))
                    processes.append({"gpu": key, "pid": pid,
                                      "used_mib": used / _MIB if isinstance(used, int) else None,
                                      **self._owner(pid)})
            readings[key] = {
                "name": gpu.name,
                "uuid": gpu.uuid,
                "util_pct": None if util is None else util.gpu,
                "mem_used_mib": mem_used_mib,
                "sm_clock_mhz": sm_clock,
                "temp_c": temp,
            }

        channels = [g.channel for g in self._gpus]
        if channels and all(c in power_w for c in channels):
            total_w: float | None = sum(power_w[c] for c in channels)
            total_kind = "nvml:mig_parent_gpu" if any(g.mig_uuid for g in self._gpus) else "nvml:sum_of_gpus"
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
            total_channels=tuple(channels),
            mem_used_mib=mem_sum_mib,
            extras={"gpus": readings, "processes": processes,
                    **({FAILED_QUERIES: list(self._failed_now)} if self._failed_now else {})},
        )

    def _owner(self, pid: int) -> dict[str, Any]:
        """What ties a host process to a run: its cgroup (a container's id is in it) and session id
        (the local engine starts the entrypoint in its own session). Read once per pid."""
        if pid not in self._owners:
            owner: dict[str, Any] = {"cgroup": None, "sid": None}
            try:
                with open(f"/proc/{pid}/cgroup", encoding="utf-8") as fh:
                    owner["cgroup"] = fh.read().strip()
            except OSError:
                pass
            try:
                owner["sid"] = os.getsid(pid)
            except OSError:
                pass
            self._owners[pid] = owner
        return self._owners[pid]

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
                if self._sampling:  # while sampling (not choosing GPUs): the reading it belongs to says so
                    self.n_query_failures += 1
                    self._failed_now.append(f"{what}: NVML error: {exc}")
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
