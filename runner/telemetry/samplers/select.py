"""Choose the power sampler for a run: by name, or automatically by platform.

Asked for by name and unavailable: the run stops before any container starts
(the person wanted that measurement). Auto-detected and unavailable: the run
goes on and the result says energy is unavailable, with every reason tried.
The order ``auto`` tries and the companions that run beside a sampler come
from the sampler table (``registry.SAMPLERS``).
"""

from __future__ import annotations

from ...errors import UserError
from . import registry
from .base import NullSampler, Sampler
from .registry import SAMPLER_NAMES, make_sampler

CHOICES = ("auto", *SAMPLER_NAMES)


def auto_order(device: str) -> list[str]:
    """The samplers ``auto`` tries for a run on ``device``, best first: the table's rows with an
    ``auto_rank`` that serve the device, by rank (today: tegrastats, jtop, NVML on cuda, RAPL)."""
    rows = [row for row in registry.SAMPLERS if row.auto_rank is not None and row.serves(device)]
    return [row.name for row in sorted(rows, key=lambda row: row.auto_rank)]


def _with_companions(sampler: Sampler, device: str, interval_ms: int) -> Sampler:
    """A sampler's table companions start beside it on the devices it serves (NVML measures the GPU only:
    on a CUDA run RAPL adds the CPU package + DRAM); one that cannot work is recorded with its reason."""
    row = registry.find_row(sampler.name)
    if row is None or not row.serves(device):
        return sampler
    for name in row.companions:
        companion = make_sampler(name, interval_ms)
        availability = companion.probe()
        if availability.ok:
            sampler.companions.append(companion)
        else:
            sampler.companion_reasons[name] = availability.reason or "unavailable"
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
