"""The sampler table: every power sampler, what it measures and when ``auto`` tries it.

One row per sampler, so that the command line (``--telemetry NAME``), the spec
and experiment checks, the ``auto`` order (``select.auto_order``), the memory
keys of the energy block and the description a summary carries all read the
same facts. Adding a sampler is its module plus one row here.

Building a sampler never touches the hardware (constructors are cheap); call
``probe()`` to learn whether it can work here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runner.errors import UserError
from runner.host.clock import SYSTEM_CLOCK, Clock
from runner.telemetry.samplers.base import DEFAULT_INTERVAL_MS, NullSampler, Sampler
from runner.telemetry.samplers.ina3221 import Ina3221Sampler
from runner.telemetry.samplers.jtop import JtopSampler
from runner.telemetry.samplers.nvml import NvmlSampler
from runner.telemetry.samplers.rapl import RaplSampler
from runner.telemetry.samplers.tegrastats import TegrastatsSampler

#: ``factory(interval_ms, devices, clock)``: ``devices`` are the run's GPUs (indices or UUIDs), or None;
#: ``clock``: what the sampler stamps and polls on (runner/host/clock.py).
SamplerFactory = Callable[[int, tuple[str, ...] | None, Clock], Sampler]


@dataclass(frozen=True)
class SamplerRow:
    """One sampler: how to build it, when ``auto`` tries it, and what its figures mean.

    ``auto_rank``: lower is tried first by ``--telemetry auto``; None: only by name.
    ``auto_devices``: the run devices (``cpu``, ``cuda``) for which ``auto`` tries it; None: every device
    (its ``probe()`` then decides, e.g. tegrastats exists only on a Jetson).
    ``hosts``: where it works, in words.
    ``scope``: what its total measures, in words (the energy block's ``scope`` label is per figure).
    ``memory``: what its ``Sample.mem_used_mib`` is, in words, or None when it reports no memory.
    ``memory_label``: the energy block's key prefix for that memory (``ram_peak_mib``, ``gpu_mem_peak_mib``).
    ``companions``: samplers of another scope that run beside it (when they work) on the devices of
    ``auto_devices``, whether it was named or auto-detected: NVML sees the GPU only, RAPL adds the CPU.
    ``combined_key``: where its companions' energy adds to its own (they measure other hardware), the energy
    block's key prefix for the sum (``gpu_plus_cpu`` -> ``gpu_plus_cpu_j``, ``gpu_plus_cpu_scope``); None:
    they are only reported beside it.
    ``part``: the hardware its total covers, in one word (GPU, CPU, board): says which part of a sum is missing.
    ``process_memory``: its samples list the run's own processes' memory (``gpu_process_mem_peak_mib``, and
    the summary's ``peak_vram_nvml_mib``).
    ``power_resolution_w``: the smallest power step its readings show (W); every energy figure's bound adds it
    times the window's duration (runner/telemetry/energy/integrate.py). None: it measures no power.
    """

    name: str
    factory: SamplerFactory
    auto_rank: int | None
    auto_devices: tuple[str, ...] | None
    hosts: str
    scope: str
    memory: str | None = None
    memory_label: str | None = None
    companions: tuple[str, ...] = ()
    combined_key: str | None = None
    part: str | None = None
    process_memory: bool = False
    power_resolution_w: float | None = None

    @property
    def option(self) -> str:
        """The command-line option that names it."""
        return f"--telemetry {self.name}"

    def serves(self, device: str) -> bool:
        """Whether ``auto`` (and the companion rule) applies this row to a run on ``device``."""
        return self.auto_devices is None or device in self.auto_devices

    def describe(self) -> dict[str, Any]:
        """What the summary records about the sampler that measured (``telemetry.health``)."""
        return {"sampler": self.name, "scope": self.scope, "memory": self.memory, "hosts": self.hosts,
                "option": self.option}


def _rapl(interval_ms: int, devices: tuple[str, ...] | None, clock: Clock = SYSTEM_CLOCK) -> Sampler:
    # EDGEASR_POWERCAP_ROOT: the host's powercap tree where it is mounted elsewhere (a runner in a
    # container with /sys/class/powercap bound under /host), or a fake tree in tests
    return RaplSampler(root=os.environ.get("EDGEASR_POWERCAP_ROOT", "/sys/class/powercap"), interval_ms=interval_ms,
                       clock=clock)


def _ina3221(interval_ms: int, devices: tuple[str, ...] | None, clock: Clock = SYSTEM_CLOCK) -> Sampler:
    # EDGEASR_SYSFS_ROOT: the host's /sys where it is mounted elsewhere, or a fake Jetson tree in tests
    return Ina3221Sampler(root=os.environ.get("EDGEASR_SYSFS_ROOT", "/sys"), interval_ms=interval_ms, clock=clock)


#: Every sampler, in the order ``--telemetry`` lists them.
SAMPLERS: tuple[SamplerRow, ...] = (
    SamplerRow(
        name="ina3221",
        factory=_ina3221,
        auto_rank=5, auto_devices=None, hosts="NVIDIA Jetson (INA3221 power monitors in hwmon/iio sysfs)",
        scope="board input power (the VDD_IN / POM_5V_IN / VIN input rail), or the partial sum of the "
              "INA3221 rails on boards without an input rail, read from sysfs with host timestamps",
        memory="Jetson RAM used (MemTotal - MemAvailable: CPU and GPU memory together)", memory_label="ram",
        part="board", power_resolution_w=0.005),  # 1 mV x 1 mA steps of sysfs at a 5 V input: 5 mW
    SamplerRow(
        name="tegrastats",
        factory=lambda interval_ms, devices, clock=SYSTEM_CLOCK: TegrastatsSampler(interval_ms=interval_ms,
                                                                                  clock=clock),
        auto_rank=10, auto_devices=None, hosts="NVIDIA Jetson (L4T), tegrastats on PATH",
        scope="board input power (the VDD_IN / POM_5V_IN / VIN input rail), or the partial sum of the "
              "INA3221 rails on boards without an input rail",
        memory="Jetson RAM used (unified: CPU and GPU memory together)", memory_label="ram", part="board",
        power_resolution_w=0.001),  # rails printed in whole mW
    SamplerRow(
        name="jtop",
        factory=lambda interval_ms, devices, clock=SYSTEM_CLOCK: JtopSampler(interval_ms=interval_ms, clock=clock),
        auto_rank=20, auto_devices=None, hosts="NVIDIA Jetson with the jetson-stats (jtop) service",
        scope="board input power (input rail) or the partial sum of the rails, read through the jtop service",
        memory="Jetson RAM used (unified: CPU and GPU memory together)", memory_label="ram", part="board",
        power_resolution_w=0.001),  # jtop serves the rails in whole mW
    SamplerRow(
        name="nvml",
        factory=lambda interval_ms, devices, clock=SYSTEM_CLOCK: NvmlSampler(interval_ms=interval_ms, devices=devices,
                                                                             clock=clock),
        auto_rank=30, auto_devices=("cuda",), hosts="hosts with NVIDIA GPUs and driver (nvidia-ml-py)",
        scope="GPU board power and energy of the run's GPUs (a MIG slice: its parent GPU), every process on them "
              "included, not only the run's",
        memory="GPU memory used, summed over the run's GPUs (every process's), and the run's own processes' GPU "
               "memory",
        memory_label="gpu_mem", companions=("rapl",), combined_key="gpu_plus_cpu", part="GPU",
        process_memory=True, power_resolution_w=0.001),  # NVML power in whole mW, energy in whole mJ
    SamplerRow(
        name="rapl",
        factory=_rapl,
        auto_rank=40, auto_devices=None, hosts="x86 Intel and AMD CPUs with Linux powercap (root since 5.10)",
        scope="CPU package and DRAM energy counters (RAPL); psys only as an extra figure", part="CPU",
        power_resolution_w=0.001),  # energy_uj in whole uJ; the counters' own unit is ~15-61 uJ: < 1 mW at 100 ms
    SamplerRow(
        name="none",
        factory=lambda interval_ms, devices, clock=SYSTEM_CLOCK: NullSampler(clock=clock),
        auto_rank=None, auto_devices=None, hosts="anywhere",
        scope="nothing: energy is not measured"),
)

SAMPLER_NAMES: tuple[str, ...] = tuple(row.name for row in SAMPLERS)


def find_row(name: str | None) -> SamplerRow | None:
    """The row called ``name``, or None for a sampler not in the table (a test's fake) or no sampler."""
    return next((row for row in SAMPLERS if row.name == name), None)


def sampler_row(name: str) -> SamplerRow:
    """The row called ``name``; an unknown name is a ``UserError`` that lists the valid ones."""
    row = find_row(name)
    if row is not None:
        return row
    raise UserError(f"unknown energy sampler '{name}': choose one of {', '.join(row.name for row in SAMPLERS)}")


def describe(name: str) -> dict[str, Any]:
    """The summary's description of the sampler called ``name``; only its name for one not in the table
    (a test's fake sampler)."""
    row = find_row(name)
    return row.describe() if row is not None else {"sampler": name}


def health(sampler: Sampler) -> dict[str, Any]:
    """``summary.json``'s ``telemetry.health``: the sampler's description from its row (name, scope and memory
    figures in words) with how its sampling went (``Sampler.health``), and the same for each companion."""
    out = {**describe(sampler.name), **sampler.health()}
    if sampler.companions:
        out["companions"] = {c.name: health(c) for c in sampler.companions}
    return out


def memory_labels() -> dict[str, str]:
    """Sampler name -> the energy block's memory key prefix, for the samplers that report memory."""
    return {row.name: row.memory_label for row in SAMPLERS if row.memory_label is not None}


def make_sampler(name: str, interval_ms: int = DEFAULT_INTERVAL_MS, devices: tuple[str, ...] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> Sampler:
    """The sampler called ``name``, sampling every ``interval_ms`` on ``clock``; ``devices``: the run's GPUs
    (NVML)."""
    if interval_ms <= 0:
        raise UserError(f"the sampling interval must be a positive number of milliseconds, got {interval_ms}")
    return sampler_row(name).factory(interval_ms, devices, clock)
