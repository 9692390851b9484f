"""Build a sampler from its command-line name.

One place that maps the names a person types (``--energy tegrastats``) to
sampler classes, so the CLI and specs validate against the same list and an
unknown name is a ``UserError`` that lists the valid ones. Constructors are
cheap, so building a sampler never touches the hardware; call ``probe()``.
"""

from __future__ import annotations

import os

from runner.errors import UserError
from runner.telemetry.base import NullSampler, Sampler
from runner.telemetry.jtop import JtopSampler
from runner.telemetry.nvml import NvmlSampler
from runner.telemetry.rapl import RaplSampler
from runner.telemetry.tegrastats import TegrastatsSampler

SAMPLER_NAMES: tuple[str, ...] = ("tegrastats", "jtop", "nvml", "rapl", "none")


def make_sampler(name: str, interval_ms: int = 100, devices: tuple[str, ...] | None = None) -> Sampler:
    """The sampler called ``name``, sampling every ``interval_ms``; ``devices``: the run's GPUs (NVML)."""
    if interval_ms <= 0:
        raise UserError(f"the sampling interval must be a positive number of milliseconds, got {interval_ms}")
    if name == "tegrastats":
        return TegrastatsSampler(interval_ms=interval_ms)
    if name == "jtop":
        return JtopSampler(interval_ms=interval_ms)
    if name == "nvml":
        return NvmlSampler(interval_ms=interval_ms, devices=devices)
    if name == "rapl":
        # EDGEASR_POWERCAP_ROOT: the host's powercap tree where it is mounted elsewhere (a runner in a
        # container with /sys/class/powercap bound under /host), or a fake tree in tests
        return RaplSampler(root=os.environ.get("EDGEASR_POWERCAP_ROOT", "/sys/class/powercap"),
                           interval_ms=interval_ms)
    if name == "none":
        return NullSampler()
    raise UserError(f"unknown energy sampler '{name}': choose one of {', '.join(SAMPLER_NAMES)}")
