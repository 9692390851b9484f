"""Whether two conditions' figures may be set against each other at all: one list of checks, one answer.

``compare`` asks here before it computes a change or judges a gate, so that a figure is never compared with
one that measures something else: energy of the GPU alone (NVML) against a CPU package (RAPL) is not a 20 %
rise, it is two different quantities. Each check is one row of ``CHECKS``: the metrics it guards and a pure
function of the two aggregated rows that returns why they differ (or None). Other checks belong here too
(emulated against native runs, streaming against offline decoding): one row each, and compare, its gates and
its table follow without another change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .aggregate import EMULATED_METRICS, ENERGY_METRICS, AggregateRow

#: The sentence every not-comparable delta and gate starts with.
NOT_COMPARABLE = "not comparable"


@dataclass(frozen=True)
class Check:
    """One reason two conditions' figures cannot be compared: ``metrics`` it guards (None: every metric) and
    ``why(baseline, candidate)``, the difference in words ("GPU vs CPU package+DRAM") or None."""

    name: str
    metrics: frozenset[str] | None
    why: Callable[[AggregateRow, AggregateRow], str | None]

    def guards(self, metric: str) -> bool:
        return self.metrics is None or metric in self.metrics


def energy_scope(a: AggregateRow, b: AggregateRow) -> str | None:
    """Energy figures of different scopes (board input, GPU, CPU package+DRAM) measure different hardware."""
    if a.energy_scope and b.energy_scope and a.energy_scope != b.energy_scope:
        return f"energy of {a.energy_scope} vs {b.energy_scope}"
    return None


def emulation(a: AggregateRow, b: AggregateRow) -> str | None:
    """An emulated run's speed and energy are the emulator's (qemu on another CPU), a native run's the device's:
    one is no rise or fall of the other. Two emulated runs are the same emulator's and may be compared."""
    if bool(a.emulated) != bool(b.emulated):
        return f"an emulated run ({a.emulated or b.emulated}) vs a native one"
    return None


CHECKS: tuple[Check, ...] = (
    Check("energy scope", ENERGY_METRICS, energy_scope),
    Check("emulation", EMULATED_METRICS, emulation),
)


def not_comparable(metric: str, a: AggregateRow, b: AggregateRow) -> str | None:
    """``"not comparable: energy of GPU vs CPU package+DRAM"`` when a check forbids comparing ``metric`` between
    the two rows (every reason found, joined), else None."""
    reasons = [why for check in CHECKS if check.guards(metric) and (why := check.why(a, b))]
    return f"{NOT_COMPARABLE}: " + "; ".join(reasons) if reasons else None
