"""Energy over a time window, computed afterwards from a sampler's timeline.

Pure functions over ``Sample`` lists: no clocks, no I/O, so any window
(a whole run, one utterance, an idle baseline) can be cut from the same
timeline, and the result is reproducible from the saved samples.

Two methods, best first:

* ``"counter"``: the samples carry a cumulative energy counter
  (``Sample.total_energy_j``: RAPL, NVML on Volta+). Energy is the counter at
  the window end minus the counter at the start, each found by linear
  interpolation between the two samples around the edge. Exact up to the
  counter's own resolution; independent of the sampling interval.
* ``"trapezoid"``: instantaneous power (``Sample.total_w``) integrated with the
  trapezoid rule over the REAL timestamps (samples are never assumed to be
  evenly spaced). The window edges are clipped: power at ``start_ns`` and
  ``end_ns`` is interpolated linearly between the neighbouring samples, so a
  window never gains or loses the part of an interval outside it.

The result is None with a reason, never a guess, when the window holds fewer
than two samples or is not bracketed by samples (a sampler started too late
or stopped too early): extrapolating would invent energy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from runner.telemetry.samplers.base import Sample

MIN_SAMPLES_IN_WINDOW = 2


@dataclass(frozen=True)
class WindowEnergy:
    """Energy over ``[start_ns, end_ns]``. ``total_j`` is None exactly when
    ``reason`` says why it could not be measured."""

    start_ns: int
    end_ns: int
    total_j: float | None
    avg_w: float | None
    peak_w: float | None
    n_samples: int
    mean_interval_ms: float | None
    per_channel_j: Mapping[str, float] = field(default_factory=dict)
    method: str | None = None  # "counter" | "trapezoid" | None
    total_kind: str | None = None
    reason: str | None = None
    clock: str = "wall"  # which clock start_ns/end_ns are on: wall (time_ns) | monotonic (monotonic_ns)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def dynamic_j(self, baseline_w: float | None) -> float | None:
        """Energy above an idle baseline: ``total_j - baseline_w * duration_s``.
        None when either is unknown (an unknown baseline is not 0 W)."""
        return dynamic_j(self.total_j, baseline_w, self.duration_s)

    def to_json(self) -> dict[str, object]:
        return {
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_s": self.duration_s,
            "total_j": self.total_j,
            "avg_w": self.avg_w,
            "peak_w": self.peak_w,
            "n_samples": self.n_samples,
            "mean_interval_ms": self.mean_interval_ms,
            "per_channel_j": dict(self.per_channel_j),
            "method": self.method,
            "total_kind": self.total_kind,
            "reason": self.reason,
            "clock": self.clock,
        }


def dynamic_j(total_j: float | None, baseline_w: float | None, duration_s: float) -> float | None:
    """``total_j - baseline_w * duration_s``, or None if either input is None."""
    if total_j is None or baseline_w is None:
        return None
    return total_j - baseline_w * duration_s


def on_clock(samples: Sequence[Sample], clock: str) -> list[Sample]:
    """The samples stamped on ``clock``: ``wall`` keeps ``t_ns``; ``monotonic`` moves each
    sample's ``mono_ns`` into ``t_ns`` (and drops samples without one)."""
    if clock == "wall":
        return list(samples)
    if clock != "monotonic":
        raise ValueError(f"unknown clock {clock!r}: wall or monotonic")
    return [replace(s, t_ns=s.mono_ns) for s in samples if s.mono_ns is not None]


def integrate(samples: Sequence[Sample], start_ns: int, end_ns: int, clock: str = "wall",
              min_samples: int = MIN_SAMPLES_IN_WINDOW) -> WindowEnergy:
    """Energy over ``[start_ns, end_ns]`` on ``clock`` (``wall``: host ``time.time_ns()``
    values; ``monotonic``: host ``time.monotonic_ns()`` values, immune to clock steps).

    Uses the cumulative counter when every sample needed carries one, else
    the trapezoid rule over ``total_w``. See the module docstring. ``min_samples=0`` is for short
    sub-windows that are taken out of a measured window: edges are still only interpolated between
    samples that bracket them, never extrapolated.
    """
    if end_ns <= start_ns:
        raise ValueError(f"window end ({end_ns}) must be after its start ({start_ns})")
    samples = on_clock(samples, clock)
    ordered = sorted(samples, key=lambda s: s.t_ns)
    inside = [s for s in ordered if start_ns <= s.t_ns <= end_ns]
    n_inside = len(inside)
    mean_interval_ms = (
        float(np.mean(np.diff([s.t_ns for s in inside]))) / 1e6 if n_inside >= 2 else None
    )
    kinds = Counter(s.total_kind for s in inside if s.total_w is not None or s.total_energy_j is not None)
    total_kind = kinds.most_common(1)[0][0] if kinds else None

    def unmeasured(reason: str) -> WindowEnergy:
        return WindowEnergy(
            start_ns=start_ns,
            end_ns=end_ns,
            total_j=None,
            avg_w=None,
            peak_w=None,
            n_samples=n_inside,
            mean_interval_ms=mean_interval_ms,
            method=None,
            total_kind=total_kind,
            reason=reason,
            clock=clock,
        )

    if n_inside < min_samples:
        return unmeasured(
            f"the window ({(end_ns - start_ns) / 1e6:.1f} ms) holds {n_inside} sample(s), "
            f"at least {min_samples} are needed: sample faster or measure a longer window"
        )

    duration_s = (end_ns - start_ns) / 1e9
    peaks = [s.total_w for s in inside if s.total_w is not None]

    counter_points = [(s.t_ns, s.total_energy_j) for s in ordered if s.total_energy_j is not None]
    if _brackets([t for t, _ in counter_points], start_ns, end_ns):
        total_j = _counter_difference(counter_points, start_ns, end_ns)
        per_channel = _per_channel(ordered, start_ns, end_ns, lambda s: s.energy_j, _counter_difference)
        return WindowEnergy(
            start_ns=start_ns,
            end_ns=end_ns,
            total_j=total_j,
            avg_w=total_j / duration_s,
            peak_w=max(peaks) if peaks else None,
            n_samples=n_inside,
            mean_interval_ms=mean_interval_ms,
            per_channel_j=per_channel,
            method="counter",
            total_kind=total_kind,
            clock=clock,
        )

    # Never mix totals of different kinds (an input rail and a partial sum of
    # rails) in one integral: keep the kind most samples in the window have.
    # (a short sub-window may hold no sample: then the kind of the samples around it)
    power_kinds = Counter(s.total_kind for s in (inside or ordered) if s.total_w is not None)
    power_kind = power_kinds.most_common(1)[0][0] if power_kinds else None
    power_points = [
        (s.t_ns, s.total_w) for s in ordered if s.total_w is not None and s.total_kind == power_kind
    ]
    if not power_points:
        reasons = {s.total_kind for s in inside if s.total_kind}
        why = "; ".join(sorted(reasons)) if reasons else "the samples carry no power readings"
        return unmeasured(f"no total power in the samples: {why}")
    coverage = _coverage_problem([t for t, _ in power_points], start_ns, end_ns)
    if coverage is not None:
        return unmeasured(coverage)
    total_j, peak_w = _trapezoid(power_points, start_ns, end_ns)
    per_channel = _per_channel(ordered, start_ns, end_ns, lambda s: s.power_w, lambda pts, a, b: _trapezoid(pts, a, b)[0])
    return WindowEnergy(
        start_ns=start_ns,
        end_ns=end_ns,
        total_j=total_j,
        avg_w=total_j / duration_s,
        peak_w=peak_w,
        n_samples=n_inside,
        mean_interval_ms=mean_interval_ms,
        per_channel_j=per_channel,
        method="trapezoid",
        total_kind=power_kind,
        clock=clock,
    )


# -- internals ---------------------------------------------------------------


def _brackets(times: Sequence[int], start_ns: int, end_ns: int) -> bool:
    return bool(times) and times[0] <= start_ns and times[-1] >= end_ns


def _coverage_problem(times: Sequence[int], start_ns: int, end_ns: int) -> str | None:
    if times[0] > start_ns:
        return (
            f"the window starts {(times[0] - start_ns) / 1e6:.1f} ms before the first power sample: "
            "start the sampler before the window"
        )
    if times[-1] < end_ns:
        return (
            f"the window ends {(end_ns - times[-1]) / 1e6:.1f} ms after the last power sample: "
            "keep the sampler running until after the window ends"
        )
    return None


def _relative_times(points: Sequence[tuple[int, float]], origin_ns: int) -> np.ndarray:
    # Subtract in integers first: float64 cannot hold today's time_ns() to
    # better than ~256 ns, and differences of such floats lose more.
    return np.array([p[0] - origin_ns for p in points], dtype=np.int64).astype(np.float64)


def _counter_difference(points: Sequence[tuple[int, float]], start_ns: int, end_ns: int) -> float:
    t = _relative_times(points, start_ns)
    e = np.array([p[1] for p in points], dtype=np.float64)
    e_start, e_end = np.interp([0.0, float(end_ns - start_ns)], t, e)
    return float(e_end - e_start)


def _trapezoid(points: Sequence[tuple[int, float]], start_ns: int, end_ns: int) -> tuple[float, float]:
    """Integral (J) and peak (W) of power over the clipped window."""
    t = _relative_times(points, start_ns)
    w = np.array([p[1] for p in points], dtype=np.float64)
    span = float(end_ns - start_ns)
    w_start, w_end = np.interp([0.0, span], t, w)
    keep = (t > 0.0) & (t < span)
    tt = np.concatenate(([0.0], t[keep], [span]))
    ww = np.concatenate(([w_start], w[keep], [w_end]))
    energy_j = float(np.sum((ww[1:] + ww[:-1]) * 0.5 * np.diff(tt)) / 1e9)
    return energy_j, float(np.max(ww))


def _per_channel(
    ordered: Sequence[Sample],
    start_ns: int,
    end_ns: int,
    values_of: Callable[[Sample], Mapping[str, float] | None],
    method: Callable[[Sequence[tuple[int, float]], int, int], float],
) -> dict[str, float]:
    """Apply ``method`` per channel, over the samples that carry it; a channel
    that does not cover the window is left out rather than estimated."""
    channels: dict[str, list[tuple[int, float]]] = {}
    for sample in ordered:
        values = values_of(sample)
        if not values:
            continue
        for name, value in values.items():
            channels.setdefault(name, []).append((sample.t_ns, value))
    result = {}
    for name, points in channels.items():
        if _brackets([t for t, _ in points], start_ns, end_ns):
            result[name] = method(points, start_ns, end_ns)
    return result
