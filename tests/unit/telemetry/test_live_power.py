"""The live power figure of the progress views (W now, J so far)."""

from __future__ import annotations

from types import SimpleNamespace

from rich.console import Console
from rich.progress import Progress

from runner.commands.run import LiveProgress
from runner.commands.sweep import SweepConsoleView
from runner.telemetry.energy.live import live_power, live_power_text
from runner.telemetry.samplers.base import Sample


def _samples(watts: list[float], step_s: float = 1.0) -> list[Sample]:
    return [Sample(t_ns=int(i * step_s * 1e9), total_w=w, total_kind="test") for i, w in enumerate(watts)]


def test_power_now_is_the_latest_sample_and_energy_the_integral_so_far():
    """10 W for 4 s then 20 W: the trapezoid gives 10*3 + 15 = 45 J; now is 20 W."""
    power = live_power(_samples([10, 10, 10, 10, 20]))
    assert power.now_w == 20
    assert abs(power.so_far_j - 45.0) < 1e-9
    assert power.text() == "20.0 W now, 45 J so far"


def test_no_sensor_or_no_samples_shows_nothing():
    """No sampler (no sensor) and a sampler with no sample yet both give an empty text, not "0 W"."""
    assert live_power_text(None) == ""
    assert live_power_text(SimpleNamespace(samples=[])) == ""
    one = live_power_text(SimpleNamespace(samples=_samples([7.5])))
    assert one == "7.5 W now"  # one sample: no energy yet, and none invented


def test_run_and_sweep_views_show_the_power_of_the_sampler_they_were_given():
    """LiveProgress and the sweep's view put "W now, J so far" beside the progress once on_sampler gave a
    sampler."""
    sampler = SimpleNamespace(samples=_samples([5, 5, 5]))
    with Progress(disable=True) as progress:
        live = LiveProgress(progress, total=2)
        live.set_sampler(sampler)
        live({"event": "utterance_end", "processing_s": 0.5, "duration_s": 1.0})
        assert progress.tasks[0].fields["power"] == "5.0 W now, 10 J so far"
    view = SweepConsoleView(Console(quiet=True))
    view.callbacks(SimpleNamespace(label="g")).on_sampler(sampler)
    assert view._info().endswith("| 5.0 W now, 10 J so far")
