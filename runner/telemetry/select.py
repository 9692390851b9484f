"""Choose the power sampler for a run: by name, or automatically by platform.

Asked for by name and unavailable: the run stops before any container starts
(the person wanted that measurement). Auto-detected and unavailable: the run
goes on and the result says energy is unavailable, with every reason tried.
"""

from __future__ import annotations

from ..errors import UserError
from .base import NullSampler, Sampler
from .registry import SAMPLER_NAMES, make_sampler

CHOICES = ("auto", *SAMPLER_NAMES)


def auto_order(device: str) -> list[str]:
    """Jetson first (tegrastats, then jtop), NVML when the run uses an NVIDIA GPU (with RAPL beside it
    where it works, see ``_with_companions``), RAPL for CPUs."""
    order = ["tegrastats", "jtop"]
    if device == "cuda":
        order.append("nvml")
    order.append("rapl")
    return order


def _with_companions(sampler: Sampler, device: str, interval_ms: int) -> Sampler:
    """On a CUDA host NVML measures the GPU only: RAPL runs beside it for the CPU package + DRAM."""
    if sampler.name == "nvml" and device == "cuda":
        rapl = make_sampler("rapl", interval_ms)
        availability = rapl.probe()
        if availability.ok:
            sampler.companions.append(rapl)
        else:
            sampler.companion_reasons["rapl"] = availability.reason or "unavailable"
    return sampler


def select_sampler(requested: str, device: str, interval_ms: int,
                   devices: tuple[str, ...] | None = None) -> tuple[Sampler, str | None]:
    """(sampler, reason energy will be unavailable or None); ``devices``: the run's GPUs, for NVML."""
    if requested not in CHOICES:
        raise UserError(f"--telemetry {requested!r} is unknown; choose one of {', '.join(CHOICES)}")
    if requested == "none":
        return NullSampler(), "telemetry turned off (--telemetry none)"
    if requested != "auto":
        sampler = make_sampler(requested, interval_ms, devices)
        availability = sampler.probe()
        if not availability.ok:
            raise UserError(f"--telemetry {requested}: {availability.reason}")
        return _with_companions(sampler, device, interval_ms), None
    reasons = []
    for name in auto_order(device):
        sampler = make_sampler(name, interval_ms, devices)
        availability = sampler.probe()
        if availability.ok:
            return _with_companions(sampler, device, interval_ms), None
        reasons.append(f"{name}: {availability.reason}")
    reason = "no power sensor found (" + "; ".join(reasons) + ")"
    return NullSampler(reason), reason
