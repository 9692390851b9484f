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

Every figure carries an error bound from its own samples (``bound_j``): what the
samples cannot see. Between two samples the power may have stepped anywhere, so each
sample interval in or at the edge of the window adds its length inside the window
times the power step across it (half that for an interval wholly inside the window,
where linear interpolation is off by at most half; with a counter only the two edge
intervals, where the counter is interpolated); the sensor's stated power resolution
times the window's duration is added to that. A gap of more than three sampling
intervals in or at the edge of a window flags it (``flags``).

The result is None with a reason, never a guess, when the window holds fewer
than two samples or is not bracketed by samples (a sampler started too late
or stopped too early): extrapolating would invent energy. A counter that did not
advance over the window (stuck), or whose step inside it was lost (a wrap with no
readable range), gives no energy either: 0 J would be a wrong number, not a measurement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from runner.telemetry.samplers.base import COUNTER_LOST, FAILED_QUERIES, LOST_BEFORE, STAMP, STAMP_CADENCE, Sample

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
    #: What makes this window's figure less certain than its samples suggest, one sentence each (a burst of
    #: samples stamped by cadence, a gap); empty when nothing does.
    flags: tuple[str, ...] = ()
    #: How far ``total_j`` may be from the truth, from the samples themselves (see the module doc); None with it.
    bound_j: float | None = None
    max_gap_ms: float | None = None  # the longest sample interval in or at the edge of the window

    def bound_w(self) -> float | None:
        """The bound of ``avg_w``: ``bound_j`` over the duration."""
        return None if self.bound_j is None or self.duration_s <= 0 else self.bound_j / self.duration_s

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
            "bound_j": self.bound_j,
            "max_gap_ms": self.max_gap_ms,
            "flags": list(self.flags),
        }


    def to_json_above(self, baseline_w: float | None, no_baseline: str) -> dict[str, object]:
        """``to_json`` with the energy above an idle baseline (``dynamic_j``) after it and, where the window had
        energy but the baseline is unknown, why it is missing (``unavailable``: ``no_baseline``), built in one
        step: the block a summary's ``energy.per_window`` stores, keys in the order it always had them."""
        dyn = self.dynamic_j(baseline_w)
        why = {"unavailable": {"dynamic_j": no_baseline}} if dyn is None and self.total_j is not None else {}
        return {**self.to_json(), "dynamic_j": dyn, **why}


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


#: A gap of more than this many sampling intervals in or at the edge of a window flags the window.
GAP_INTERVALS = 3


def integrate(samples: Sequence[Sample], start_ns: int, end_ns: int, clock: str = "wall",
              min_samples: int = MIN_SAMPLES_IN_WINDOW, *, resolution_w: float | None = None,
              interval_ms: float | None = None) -> WindowEnergy:
    """Energy over ``[start_ns, end_ns]`` on ``clock`` (``wall``: host ``time.time_ns()``
    values; ``monotonic``: host ``time.monotonic_ns()`` values, immune to clock steps).

    Uses the cumulative counter when every sample needed carries one, else
    the trapezoid rule over ``total_w``. See the module docstring. ``min_samples=0`` is for short
    sub-windows that are taken out of a measured window: edges are still only interpolated between
    samples that bracket them, never extrapolated. ``resolution_w``: the sensor's stated power resolution (its
    sampler row's), added to the bound times the duration; ``interval_ms``: the sampling interval asked for, a
    gap of more than ``GAP_INTERVALS`` of which flags the window.
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
    flags = window_flags(ordered, start_ns, end_ns)
    edge = around(ordered, start_ns, end_ns)
    max_gap_ms = (max(b.t_ns - a.t_ns for a, b in zip(edge, edge[1:])) / 1e6) if len(edge) >= 2 else None
    if interval_ms and max_gap_ms is not None and max_gap_ms > GAP_INTERVALS * interval_ms:
        flags = (*flags, f"{GAP_FLAG} {max_gap_ms:.0f} ms without a sample in or at the edge of this window (more than "
                         f"{GAP_INTERVALS} x the {interval_ms:g} ms interval)")

    def bounded(power: Sequence[tuple[int, float]], edges_only: bool) -> float:
        step = _step_bound(power, start_ns, end_ns, edges_only)
        return step + (resolution_w or 0.0) * (end_ns - start_ns) / 1e9

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
            flags=flags,
            max_gap_ms=max_gap_ms,
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
        lost_channels, lost_total = _lost_steps(ordered, [t for t, _ in counter_points], start_ns, end_ns)
        if lost_total:
            return unmeasured(f"the {', '.join(lost_channels)} counter wrapped inside the window and its range "
                              "(max_energy_range_uj) was unreadable: the window's energy is unknown")
        total_j = _counter_difference(counter_points, start_ns, end_ns)
        per_channel = {c: j for c, j in _per_channel(ordered, start_ns, end_ns, lambda s: s.energy_j,
                                                      _counter_difference).items() if c not in lost_channels}
        parts = next((s.total_channels for s in reversed(ordered) if s.total_channels), ())
        stuck = [c for c in parts if c in per_channel and per_channel[c] <= 0.0]
        if stuck or total_j <= 0.0:
            return unmeasured(f"the {' '.join([', '.join(stuck), 'energy'] if stuck else ['energy'])} counter did "
                              "not advance between the samples around the window (a stuck counter): its energy is "
                              "unknown, not 0 J")
        counter_power = [(s.t_ns, s.total_w) for s in ordered if s.total_w is not None]
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
            flags=flags,
            bound_j=bounded(counter_power, edges_only=True),
            max_gap_ms=max_gap_ms,
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
        flags=flags,
        bound_j=bounded(power_points, edges_only=False),
        max_gap_ms=max_gap_ms,
    )


def around(ordered: Sequence[Sample], start_ns: int, end_ns: int) -> list[Sample]:
    """The samples that decide a window's figure: those inside it and the one either side of it (its edges are
    interpolated between them). ``ordered``: by ``t_ns``, on the window's clock."""
    before = [s for s in ordered if s.t_ns < start_ns][-1:]
    after = [s for s in ordered if s.t_ns > end_ns][:1]
    return [*before, *(s for s in ordered if start_ns <= s.t_ns <= end_ns), *after]


def window_flags(ordered: Sequence[Sample], start_ns: int, end_ns: int) -> tuple[str, ...]:
    """Why a window's figure is less certain than its samples suggest, one sentence each: samples around it that
    arrived in a burst and were placed by the source's cadence (``STAMP_CADENCE``), readings lost in an interval
    that overlaps it (``LOST_BEFORE`` on the sample after them), queries that failed in its readings
    (``FAILED_QUERIES``). Lost readings and failed queries start with ``LOST_FLAG`` (sampler health names them)."""
    flags = []
    edge = around(ordered, start_ns, end_ns)
    cadence = sum(1 for s in edge if (s.extras or {}).get(STAMP) == STAMP_CADENCE)
    if cadence:
        flags.append(f"burst: {cadence} sample(s) in or at the edge of this window arrived together and were "
                     "placed by the sensor's cadence, not by their arrival")
    lost = [why for s in edge[1:] for why in (s.extras or {}).get(LOST_BEFORE, ())]
    if lost:
        flags.append(f"{LOST_FLAG} {len(lost)} reading(s) in or at the edge of this window ({lost[0]})")
    failed = list(dict.fromkeys(q for s in edge for q in (s.extras or {}).get(FAILED_QUERIES, ())))
    if failed:
        flags.append(f"{LOST_FLAG} queries that failed in its readings: " + "; ".join(failed[:3]))
    return tuple(flags)


#: How a flag about lost readings or failed queries starts (sampler health looks for it, and for gaps).
LOST_FLAG = "lost:"
GAP_FLAG = "gap:"


# -- internals ---------------------------------------------------------------


def _step_bound(points: Sequence[tuple[int, float]], start_ns: int, end_ns: int, edges_only: bool) -> float:
    """What the samples cannot see (J): for each interval between two power samples that overlaps the window, its
    length inside the window times the power step across it; half that for an interval wholly inside (the
    interpolated line is off by at most half of it there), and only the two edge intervals with a counter (whose
    value is interpolated at the edges only)."""
    total = 0.0
    for (ta, pa), (tb, pb) in zip(points, points[1:]):
        overlap_ns = min(tb, end_ns) - max(ta, start_ns)
        if overlap_ns <= 0:
            continue
        inside = start_ns <= ta and tb <= end_ns
        if inside and edges_only:
            continue
        total += (0.5 if inside else 1.0) * abs(pb - pa) * overlap_ns / 1e9
    return total


def _lost_steps(ordered: Sequence[Sample], counter_times: Sequence[int], start_ns: int, end_ns: int
                ) -> tuple[list[str], bool]:
    """(channels, whether one is part of the total) whose counter step was lost (``COUNTER_LOST``) in an interval
    the window's counter difference spans: from the last counter sample at or before ``start_ns`` to the first
    at or after ``end_ns`` (a lost step is marked on the sample that ends it)."""
    before = max(t for t in counter_times if t <= start_ns)
    after = min(t for t in counter_times if t >= end_ns)
    channels: list[str] = []
    total = False
    for s in ordered:
        lost = s.extras.get(COUNTER_LOST) if s.extras else None
        if lost and before < s.t_ns <= after:
            channels += [c for c in lost.get("channels", ()) if c not in channels]
            total = total or bool(lost.get("total"))
    return channels, total


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
