"""The one rule for fitting a figure against input length (latency, memory, energy against seconds of audio).

A straight line through utterances of 2.3 to 2.7 s, extended to 0 s, says nothing about the cost of a
second of audio and invents a "fixed cost per call" from its intercept. So a line is fitted only where the
lengths span enough to carry one (``MIN_SPAN_RATIO``: the longest at least twice the shortest, and at least
``MIN_DISTINCT`` distinct lengths), it is drawn over the observed lengths only (``LengthFit.xs``), and its
slope is given with its 95 % interval; otherwise the answer is a note that says why no line was drawn and how
to get lengths that span (``edgeasr data lengths``). Every figure against length (the latency figure here,
growth with duration elsewhere) asks ``fit_against_length``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .aggregate import t975

#: The longest length must be at least this many times the shortest for a slope to mean anything.
MIN_SPAN_RATIO = 2.0
#: ... and the points must hold at least this many distinct lengths.
MIN_DISTINCT = 4
LADDER_HINT = "make a length ladder with `edgeasr data lengths --from DATA --seconds 1,2,5,10,20,30`"


@dataclass(frozen=True)
class LengthFit:
    """A least-squares line of y against length (x, seconds of audio), valid over [x_min, x_max] only.

    ``slope_ci95``: the half-width of the slope's Student-t 95 % interval (None with only two points, where
    the residuals say nothing)."""

    intercept: float
    slope: float
    slope_ci95: float | None
    x_min: float
    x_max: float
    n: int
    n_distinct: int

    def xs(self) -> tuple[float, float]:
        """Where the line may be drawn: the observed lengths, never extended to 0."""
        return (self.x_min, self.x_max)

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x

    def slope_text(self, unit: str, digits: int = 0) -> str:
        """"45 ± 6 ms per audio s (95 %)": the slope with its interval."""
        ci = f" ± {self.slope_ci95:.{digits}f}" if self.slope_ci95 is not None else ""
        return f"{self.slope:.{digits}f}{ci} {unit} per audio s (95 %)" if ci else f"{self.slope:.{digits}f} {unit} " \
            "per audio s"


def fit_against_length(points: Sequence[tuple[float, float]], what: str = "this figure") -> LengthFit | str:
    """The line of y against length through ``points`` ((length s, y)), or why none is drawn (a note naming
    ``edgeasr data lengths``): too few distinct lengths, or lengths that do not span enough."""
    xs = [float(x) for x, _ in points]
    distinct = sorted(set(xs))
    if not distinct:
        return f"{what}: no lengths to fit against"
    shortest, longest = distinct[0], distinct[-1]
    if len(distinct) < MIN_DISTINCT or shortest <= 0 or longest < MIN_SPAN_RATIO * shortest:
        return (f"{what}: no line fitted: the lengths span {shortest:.1f}-{longest:.1f} s over {len(distinct)} "
                f"distinct length(s); a slope needs the longest at least {MIN_SPAN_RATIO:g} x the shortest and "
                f"{MIN_DISTINCT} or more distinct lengths ({LADDER_HINT})")
    x = np.asarray(xs)
    y = np.asarray([float(v) for _, v in points])
    slope, intercept = np.polyfit(x, y, 1)
    n = len(x)
    ci = None
    if n > 2:
        residual = y - (intercept + slope * x)
        sxx = float(np.sum((x - x.mean()) ** 2))
        se = math.sqrt(float(np.sum(residual ** 2)) / (n - 2) / sxx)
        ci = t975(n - 2) * se
    return LengthFit(float(intercept), float(slope), ci, shortest, longest, n, len(distinct))
