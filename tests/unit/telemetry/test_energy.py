"""integrate() against exact integrals of known power profiles."""

from __future__ import annotations

import math
import random

import pytest

from runner.telemetry.energy.integrate import dynamic_j, integrate
from runner.telemetry.samplers.base import Sample

T0 = 1_700_000_000_000_000_000  # a realistic time.time_ns(): float64 cannot hold it exactly
S = 1_000_000_000  # ns per second


def power_samples(profile, t_end_s, interval_s, jitter=0.0, seed=1, kind="input_rail:VDD_IN", channels=None):
    """Samples of ``profile(t_s) -> W`` at (jittered) real timestamps."""
    rng = random.Random(seed)
    samples, t = [], 0.0
    while t <= t_end_s + 1e-12:
        stamp = T0 + round(t * S)
        power = {name: share * profile(t) for name, share in (channels or {}).items()}
        samples.append(Sample(t_ns=stamp, power_w=power, total_w=profile(t), total_kind=kind))
        t += interval_s * (1 + rng.uniform(-jitter, jitter))
    return samples


def window(a_s, b_s):
    return T0 + round(a_s * S), T0 + round(b_s * S)


def test_constant_power_exact_with_clipped_edges():
    samples = power_samples(lambda t: 7.5, 10.0, 0.1, jitter=0.3)
    w = integrate(samples, *window(1.234, 8.765))
    assert w.method == "trapezoid"
    assert w.total_j == pytest.approx(7.5 * (8.765 - 1.234), rel=1e-3)
    assert w.avg_w == pytest.approx(7.5, rel=1e-3)
    assert w.peak_w == pytest.approx(7.5)
    assert w.total_kind == "input_rail:VDD_IN"
    assert w.mean_interval_ms == pytest.approx(100, rel=0.1)
    assert w.reason is None


def test_ramp_exact_at_uneven_timestamps():
    def ramp(t):
        return 2.0 + 3.0 * t

    samples = power_samples(ramp, 10.0, 0.1, jitter=0.5, seed=7)
    a, b = 0.55, 9.12
    exact = 2.0 * (b - a) + 1.5 * (b * b - a * a)
    w = integrate(samples, *window(a, b))
    assert w.total_j == pytest.approx(exact, rel=1e-3)
    assert w.peak_w == pytest.approx(ramp(b), rel=1e-3)


def test_step_within_a_tenth_of_a_percent():
    def step(t):
        return 4.0 if t < 3.3 else 12.0

    samples = power_samples(step, 10.0, 0.001)
    a, b = 1.0, 9.0
    exact = 4.0 * (3.3 - a) + 12.0 * (b - 3.3)
    w = integrate(samples, *window(a, b))
    assert w.total_j == pytest.approx(exact, rel=1e-3)
    assert w.peak_w == pytest.approx(12.0)


def test_per_channel_energy():
    samples = power_samples(lambda t: 10.0, 5.0, 0.1, channels={"VDD_IN": 1.0, "VDD_SOC": 0.25})
    w = integrate(samples, *window(1.0, 3.0))
    assert w.per_channel_j == pytest.approx({"VDD_IN": 20.0, "VDD_SOC": 5.0}, rel=1e-6)


def test_counter_is_preferred_and_exact_for_a_step():
    """With a cumulative counter the energy is exact whatever the interval,
    even across a step the 0.5 s sampling cannot resolve."""

    def energy(t):  # integral of 5 W before t=2.25 s, 20 W after
        return 5.0 * t if t < 2.25 else 5.0 * 2.25 + 20.0 * (t - 2.25)

    samples = [
        Sample(t_ns=T0 + round(t * S), total_w=None, total_kind="rapl:package",
               energy_j={"package-0": energy(t)}, total_energy_j=energy(t))
        for t in [i * 0.5 for i in range(11)]
    ]
    a, b = 1.0, 4.0
    w = integrate(samples, *window(a, b))
    assert w.method == "counter"
    assert w.total_j == pytest.approx(energy(b) - energy(a), rel=1e-9)
    assert w.per_channel_j["package-0"] == pytest.approx(energy(b) - energy(a), rel=1e-9)
    assert w.peak_w is None, "no power readings: peak unknown, not 0"


def test_fewer_than_two_samples_is_none_with_reason():
    samples = power_samples(lambda t: 5.0, 10.0, 1.0)
    w = integrate(samples, *window(2.2, 2.9))
    assert w.n_samples == 0
    assert w.total_j is None and w.avg_w is None
    assert "at least 2" in w.reason
    one = integrate(samples, *window(2.5, 3.4))
    assert one.n_samples == 1 and one.total_j is None


def test_window_outside_the_samples_is_not_extrapolated():
    samples = power_samples(lambda t: 5.0, 10.0, 0.1)
    late = integrate(samples, *window(5.0, 10.5))
    assert late.total_j is None and "after the last power sample" in late.reason
    early = integrate(samples, T0 - S, T0 + 2 * S)
    assert early.total_j is None and "before the first power sample" in early.reason


def test_samples_without_power_give_the_samplers_reason():
    samples = [Sample(t_ns=T0 + i * S, total_w=None, total_kind="this tegrastats line has no power rails")
               for i in range(5)]
    w = integrate(samples, *window(0.5, 3.5))
    assert w.total_j is None and "no power rails" in w.reason


def test_unsorted_input_is_sorted():
    samples = power_samples(lambda t: 3.0, 4.0, 0.1)
    shuffled = samples[:]
    random.Random(3).shuffle(shuffled)
    assert integrate(shuffled, *window(1, 3)).total_j == pytest.approx(6.0, rel=1e-6)


def test_bad_window_raises():
    with pytest.raises(ValueError):
        integrate([], T0 + 5, T0 + 5)


def test_mean_power_is_time_weighted():
    """Dense samples during a short burst must not pull a window's mean power (what an idle baseline is)
    toward it; a window the samples do not bracket has no mean."""
    samples = [Sample(t_ns=T0 + i * S // 10, total_w=2.0) for i in range(101)]  # 2 W for 10 s
    burst = [Sample(t_ns=T0 + 5 * S + i * S // 1000, total_w=2.0) for i in range(1, 50)]
    got = integrate(samples + burst, *window(0.0, 10.0)).avg_w
    assert got == pytest.approx(2.0)
    ramp = power_samples(lambda t: 1.0 + t, 4.0, 0.01)
    assert integrate(ramp, *window(0.0, 4.0)).avg_w == pytest.approx(3.0, rel=1e-3)
    assert integrate(ramp, *window(3.99, 9.0)).avg_w is None


def test_dynamic_energy():
    samples = power_samples(lambda t: 10.0, 6.0, 0.1)
    w = integrate(samples, *window(1.0, 5.0))
    assert w.dynamic_j(2.5) == pytest.approx(40.0 - 10.0)
    assert w.dynamic_j(None) is None
    assert dynamic_j(None, 2.0, 1.0) is None
    assert dynamic_j(5.0, 1.0, 2.0) == pytest.approx(3.0)


def test_to_json_is_plain():
    w = integrate(power_samples(lambda t: 1.0, 2.0, 0.1), *window(0.5, 1.5))
    data = w.to_json()
    assert data["method"] == "trapezoid" and math.isclose(data["duration_s"], 1.0)


def test_totals_of_different_kinds_are_not_mixed():
    """A stray partial sum among input-rail samples must not enter the integral."""
    samples = power_samples(lambda t: 10.0, 4.0, 0.1)
    stray = Sample(t_ns=T0 + 2 * S + S // 20, total_w=3.0, total_kind="partial_sum_of_rails")
    w = integrate([*samples, stray], *window(1.0, 3.0))
    assert w.total_j == pytest.approx(20.0) and w.total_kind == "input_rail:VDD_IN"


def test_short_sub_window_between_samples_is_interpolated_when_allowed():
    """A 30 ms prepare window between two samples 100 ms apart: measurable with min_samples=0 (bracketed,
    interpolated), refused with the default rule."""
    from runner.telemetry.samplers.base import Sample
    from runner.telemetry.energy.integrate import integrate

    samples = [Sample(t_ns=i * 100_000_000, total_w=10.0, total_kind="input_rail:VDD_IN") for i in range(5)]
    assert integrate(samples, 120_000_000, 150_000_000).total_j is None
    w = integrate(samples, 120_000_000, 150_000_000, min_samples=0)
    assert w.total_j == pytest.approx(0.3) and w.method == "trapezoid"


def test_bursty_lines_are_stamped_by_cadence_and_the_windows_they_touch_are_flagged():
    """Regression (issue 22, item 6): live tegrastats lines that sat in a buffer were stamped when Python read them,
    ten at once: a window next to a power step read 16.5 J against a true 25.5 J, and though ``bursty`` was set,
    the total was not marked. Lines written every 100 ms, flushed in bursts of ten: stamped by the cadence back from
    each burst's arrival, the window's energy is the true one, and every window the bursts touch is flagged."""
    from runner.telemetry.samplers.tegrastats import CadenceStamper

    def power(t_s):  # 5 W, then 20 W from 2.05 s on
        return 5.0 if t_s < 2.05 else 20.0

    stamper = CadenceStamper(100)
    samples = []
    for burst in range(5):
        written = [burst + 0.1 * (j + 1) for j in range(10)]  # the 10th line is written at the flush
        arrival_ns = round(written[-1] * S)
        for (wall, mono, how), t in zip(stamper.stamp(10, T0 + arrival_ns, arrival_ns), written):
            extras = {"stamp": how, "arrival_mono_ns": arrival_ns} if how == "cadence" else {}
            samples.append(Sample(t_ns=wall, mono_ns=mono, total_w=power(t), total_kind="input_rail:VDD_IN",
                                  extras=extras))
    a, b = 1.5, 3.2
    exact = 5.0 * (2.05 - a) + 20.0 * (b - 2.05)  # 25.75 J
    w = integrate(samples, *window(a, b))
    assert w.total_j == pytest.approx(exact, abs=20.0 * 0.1)  # within one line's spacing of the step
    assert w.flags and "burst" in w.flags[0]
    naive = [Sample(t_ns=T0 + round((b0 + 1.0) * S), total_w=power(b0 + 0.1 * (j + 1)), total_kind="input_rail:VDD_IN")
             for b0 in range(5) for j in range(10)]  # stamped at arrival: ten readings at one instant
    assert abs(integrate(naive, *window(a, b)).total_j - exact) > 3.0  # what it read before


def test_every_window_carries_a_bound_that_contains_the_true_energy():
    """Regression (issue 22, item 9): energy figures had no error bound, so nothing said how far a window next to
    a power step could be off. A step profile sampled every 100 ms (jittered, with one 450 ms gap across a step):
    every window's true energy lies within ``total_j ± bound_j``; the bound is the sample intervals' lengths in the
    window times the power steps across them (half inside), plus the resolution times the duration; the window
    over the gap is flagged, one beside it is not."""
    steps = [(0.0, 5.0), (1.03, 11.0), (2.51, 7.0), (3.37, 15.0), (4.76, 6.0)]

    def power(t):
        return next(w for t0, w in reversed(steps) if t >= t0)

    def exact(a, b):
        edges = [t for t, _ in steps] + [1e9]
        return sum(w * max(0.0, min(b, hi) - max(a, lo)) for (lo, w), hi in zip(steps, edges[1:]))

    samples = [s for s in power_samples(power, 6.0, 0.1, jitter=0.3, seed=3)
               if not 3.2 < (s.t_ns - T0) / S < 3.65]  # the gap: 450 ms, across the step at 3.37 s
    rng = random.Random(5)
    for _ in range(200):
        a = rng.uniform(0.1, 5.0)
        b = rng.uniform(a + 0.05, 5.9)
        w = integrate(samples, *window(a, b), min_samples=0, resolution_w=0.001, interval_ms=100)
        assert abs(w.total_j - exact(a, b)) <= w.bound_j + 1e-9, (a, b, w.total_j, exact(a, b), w.bound_j)
    flat = integrate(samples, *window(0.2, 0.9), resolution_w=0.001, interval_ms=100)
    assert flat.bound_j == pytest.approx(0.001 * 0.7)  # no step: the resolution alone
    over_gap = integrate(samples, *window(3.0, 4.0), resolution_w=0.001, interval_ms=100)
    assert any(f.startswith("gap:") for f in over_gap.flags) and over_gap.max_gap_ms > 300
    assert not any(f.startswith("gap:") for f in flat.flags)
    counter = [Sample(t_ns=T0 + round(t * S), total_w=power(t), total_energy_j=exact(0.0, t), total_kind="rapl:package")
               for t in [i * 0.1 for i in range(61)]]
    w = integrate(counter, *window(1.0, 3.4), resolution_w=0.001, interval_ms=100)
    assert w.method == "counter" and abs(w.total_j - exact(1.0, 3.4)) <= w.bound_j
    assert w.bound_j < integrate(samples, *window(1.0, 3.4), resolution_w=0.001).bound_j  # only the edges
