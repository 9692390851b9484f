"""The live power figure the progress views show while a container runs: watts now and joules so far.

A reading for a person watching, not a measurement: the figures a result keeps are
computed afterwards over the container's event windows (accounting.py). This one
integrates whatever the sampler has collected since it started (idle baseline
included) with the same rule as the results (energy.integrate: the counter where
the samples carry one, else the trapezoid rule over real timestamps), so the two
never disagree about method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..samplers.base import Sample
from .integrate import integrate


@dataclass(frozen=True)
class LivePower:
    """The latest whole-device power (W) and the energy since the sampler started (J); None where unknown."""

    now_w: float | None
    so_far_j: float | None

    def text(self) -> str:
        """"12.3 W now, 456 J so far", the part that is known, or "" when neither is."""
        parts = []
        if self.now_w is not None:
            parts.append(f"{self.now_w:.1f} W now")
        if self.so_far_j is not None:
            parts.append(f"{self.so_far_j:.0f} J so far" if self.so_far_j >= 10 else f"{self.so_far_j:.1f} J so far")
        return ", ".join(parts)


def live_power(samples: Sequence[Sample]) -> LivePower:
    """Power now and energy so far from a sampler's timeline (a snapshot: the sampler thread appends to it)."""
    snapshot = list(samples)
    if not snapshot:
        return LivePower(None, None)
    now_w = next((s.total_w for s in reversed(snapshot) if s.total_w is not None), None)
    so_far_j = None
    first, last = min(s.t_ns for s in snapshot), max(s.t_ns for s in snapshot)
    if last > first:
        so_far_j = integrate(snapshot, first, last, min_samples=2).total_j
    return LivePower(now_w, so_far_j)


def live_power_text(sampler: object | None) -> str:
    """The progress views' power text for a sampler (None: no sensor, ""), never raising: a view must not
    stop a run because a reading was odd."""
    samples = getattr(sampler, "samples", None) if sampler is not None else None
    if not samples:
        return ""
    try:
        return live_power(samples).text()
    except (ValueError, TypeError, ArithmeticError):
        return ""
