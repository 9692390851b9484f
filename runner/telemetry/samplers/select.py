"""Choose the power sampler for a run: by name, or automatically by platform.

Asked for by name and unavailable: the run stops before any container starts
(the person wanted that measurement). Auto-detected and unavailable: the run
goes on and the result says energy is unavailable, with every reason tried.
The order ``auto`` tries and the companions that run beside a sampler come
from the sampler table (``registry.SAMPLERS``).
"""

from __future__ import annotations

from ...errors import UserError
from ...host.clock import SYSTEM_CLOCK, Clock
from . import registry
from .base import NullSampler, Sampler
from .nvml import requested_gpus
from .registry import SAMPLER_NAMES, make_sampler

CHOICES = ("auto", *SAMPLER_NAMES)


def auto_order(device: str) -> list[str]:
    """The samplers ``auto`` tries for a run on ``device``, best first: the table's rows with an
    ``auto_rank`` that serve the device, by rank (today: tegrastats, jtop, NVML on cuda, RAPL)."""
    rows = [row for row in registry.SAMPLERS if row.auto_rank is not None and row.serves(device)]
    return [row.name for row in sorted(rows, key=lambda row: row.auto_rank)]


def _with_companions(sampler: Sampler, device: str, interval_ms: int, clock: Clock = SYSTEM_CLOCK) -> Sampler:
    """A sampler's table companions start beside it on the devices it serves (NVML measures the GPU only:
    on a CUDA run RAPL adds the CPU package + DRAM); one that cannot work is recorded with its reason."""
    row = registry.find_row(sampler.name)
    if row is None or not row.serves(device):
        return sampler
    for name in row.companions:
        companion = make_sampler(name, interval_ms, clock=clock)
        availability = companion.probe()
        if availability.ok:
            sampler.companions.append(companion)
        else:
            sampler.companion_reasons[name] = availability.reason or "unavailable"
    return sampler


def unnamed_gpus(sampler: Sampler, device: str) -> str:
    """Why NVML is refused on a run that is not on a GPU and names none: it would add every GPU of the host (other
    users' work included) to a run that uses none of them. Names the GPUs there are and how to choose."""
    listed = getattr(sampler, "inventory", lambda: [])()
    where = f"this host has {len(listed)} GPU(s): {'; '.join(listed)}" if listed else "NVML lists no GPU here"
    return (f"--telemetry nvml on a {device} run names no GPU, and NVML would then sum every GPU of the host, "
            f"with whatever else runs on them ({where}). Name the GPU(s) to measure with CUDA_VISIBLE_DEVICES "
            f"(e.g. CUDA_VISIBLE_DEVICES=0; a {device} run takes no --gpus), or measure the CPU with --telemetry rapl")


def select_sampler(requested: str, device: str, interval_ms: int, devices: tuple[str, ...] | None = None,
                   clock: Clock = SYSTEM_CLOCK) -> tuple[Sampler, str | None]:
    """(sampler, reason energy will be unavailable or None); ``devices``: the run's GPUs, for NVML; ``clock``:
    what the sampler stamps and polls on."""
    if requested not in CHOICES:
        raise UserError(f"--telemetry {requested!r} is unknown; choose one of {', '.join(CHOICES)}")
    if requested == "none":
        return NullSampler(clock=clock), "telemetry turned off (--telemetry none)"
    if requested != "auto":
        sampler = make_sampler(requested, interval_ms, devices, clock)
        availability = sampler.probe()
        if not availability.ok:
            raise UserError(f"--telemetry {requested}: {availability.reason}")
        if requested == "nvml" and device != "cuda" and devices is None and requested_gpus() is None:
            raise UserError(unnamed_gpus(sampler, device))
        return _with_companions(sampler, device, interval_ms, clock), None
    reasons = []
    for name in auto_order(device):
        sampler = make_sampler(name, interval_ms, devices, clock)
        availability = sampler.probe()
        if availability.ok:
            return _with_companions(sampler, device, interval_ms, clock), None
        reasons.append(f"{name}: {availability.reason}")
    reason = "no power sensor found (" + "; ".join(reasons) + ")"
    return NullSampler(reason, clock), reason
