"""RaplSampler over a fake /sys/class/powercap tree written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_clock import ManualClock

from runner.errors import UserError
from runner.telemetry.energy.integrate import integrate
from runner.telemetry.samplers import rapl
from runner.telemetry.samplers.rapl import RaplSampler, find_domains, total_rule, unwrap_delta_uj

MAX = 262_143_328_850  # a real max_energy_range_uj value


def server_tree(factory, package_uj=1_000_000, dram_uj=500_000):
    return factory({
        "intel-rapl:0": ("package-0", package_uj, MAX),
        "intel-rapl:0:0": ("core", 10, MAX),
        "intel-rapl:0:1": ("dram", dram_uj, MAX),
        "intel-rapl:1": ("package-1", package_uj, MAX),
        "intel-rapl-mmio:0": ("package-0", 0, MAX),
    })


def set_uj(root: Path, entry: str, value: int) -> None:
    (root / entry / "energy_uj").write_text(f"{value}\n")


def test_domains_and_channel_names(rapl_tree):
    root = server_tree(rapl_tree)
    domains = find_domains(root)
    assert [d.channel for d in domains] == ["package-0", "package-0/core", "package-0/dram", "package-1"]
    assert [d.is_top_level for d in domains] == [True, False, False, True]
    assert domains[0].max_energy_range_uj == MAX


def test_total_is_packages_plus_dram_without_core():
    root_domains = [
        rapl.RaplDomain("package-0", "package-0", Path("a"), True, MAX),
        rapl.RaplDomain("package-0/core", "core", Path("b"), False, MAX),
        rapl.RaplDomain("package-0/uncore", "uncore", Path("c"), False, MAX),
        rapl.RaplDomain("package-0/dram", "dram", Path("d"), False, MAX),
    ]
    assert total_rule(root_domains) == (["package-0", "package-0/dram"], "rapl:package+dram")
    assert total_rule(root_domains[:2]) == (["package-0"], "rapl:package")


def test_total_is_package_plus_dram_even_when_psys_exists():
    """psys is an extra figure, checked against package+DRAM; it never replaces them as the total."""
    domains = [
        rapl.RaplDomain("package-0", "package-0", Path("a"), True, MAX),
        rapl.RaplDomain("package-0/dram", "dram", Path("d"), False, MAX),
        rapl.RaplDomain("psys", "psys", Path("p"), True, MAX),
    ]
    assert total_rule(domains) == (["package-0", "package-0/dram"], "rapl:package+dram")


def test_stuck_psys_counter_does_not_report_zero_joules(rapl_tree):
    """A laptop whose psys counter never moves: the total stays package+DRAM (not 0 J) and psys is left out."""
    root = rapl_tree({"intel-rapl:0": ("package-0", 0, MAX), "intel-rapl:0:1": ("dram", 0, MAX),
                      "intel-rapl:1": ("psys", 5_000_000, MAX)})
    clock = ManualClock()
    sampler = RaplSampler(root=root, interval_ms=10_000, clock=clock)
    sampler.start()
    for step in range(1, 5):
        set_uj(root, "intel-rapl:0", step * 1_000_000)
        set_uj(root, "intel-rapl:0:1", step * 250_000)
        clock.sleep(0.005)
        sampler.sample_now()
    sampler.stop()
    s = sampler.samples
    window = integrate(s, s[0].t_ns, s[-2].t_ns)
    assert window.total_j == pytest.approx(4 * 1.25) and window.total_kind == "rapl:package+dram"
    assert window.per_channel_j["psys"] == 0.0  # kept per channel, for the check against package+DRAM


def test_unwrap_delta():
    assert unwrap_delta_uj(100, 350, MAX) == 250
    assert unwrap_delta_uj(MAX - 100, 50, MAX) == 150
    assert unwrap_delta_uj(500, 400, None) == 0, "without a range a wrap cannot be corrected: add nothing"


def test_samples_carry_wrap_corrected_cumulative_energy(rapl_tree):
    root = rapl_tree({"intel-rapl:0": ("package-0", MAX - 2_000_000, MAX)})
    clock = ManualClock()
    sampler = RaplSampler(root=root, interval_ms=10_000, clock=clock)  # the cadence will not fire: by hand
    sampler.start()  # takes the first reading
    first = sampler.samples[0]
    assert first.energy_j == {"package-0": 0.0} and first.total_energy_j == 0.0
    assert first.total_w is None and "two readings" in first.total_kind
    clock.sleep(0.02)
    set_uj(root, "intel-rapl:0", 3_000_000)  # wrapped: 2 J before the wrap + 3 J after
    second = sampler.sample_now()
    assert second.energy_j["package-0"] == pytest.approx(5.0)
    assert second.total_energy_j == pytest.approx(5.0)
    assert second.mono_ns - first.mono_ns == 20_000_000  # power over the monotonic interval: 5 J in 20 ms
    assert second.power_w["package-0"] == pytest.approx(250.0)
    assert second.total_kind == "rapl:package"
    sampler.stop()


def test_window_energy_uses_the_counter(rapl_tree):
    root = server_tree(rapl_tree, package_uj=0, dram_uj=0)
    clock = ManualClock()
    sampler = RaplSampler(root=root, interval_ms=10_000, clock=clock)
    sampler.start()
    readings = []
    for step in range(5):
        set_uj(root, "intel-rapl:0", step * 1_000_000)  # +1 J per step
        set_uj(root, "intel-rapl:1", step * 2_000_000)  # +2 J per step
        set_uj(root, "intel-rapl:0:1", step * 500_000)  # +0.5 J per step
        set_uj(root, "intel-rapl:0:0", step * 700_000)  # core: inside package-0
        readings.append(sampler.sample_now())
        clock.sleep(0.005)
    sampler.stop()
    window = integrate(sampler.samples, readings[1].t_ns, readings[3].t_ns)
    assert window.method == "counter"
    assert window.total_j == pytest.approx(2 * (1 + 2 + 0.5))
    assert window.per_channel_j["package-0/core"] == pytest.approx(1.4)
    assert window.total_kind == "rapl:package+dram"


def test_probe_reasons(tmp_path, rapl_tree, monkeypatch):
    missing = RaplSampler(root=tmp_path / "nope").probe()
    assert not missing.ok and "no powercap interface" in missing.reason
    (tmp_path / "empty").mkdir()
    empty = RaplSampler(root=tmp_path / "empty").probe()
    assert not empty.ok and "no RAPL domains" in empty.reason
    root = server_tree(rapl_tree)
    assert RaplSampler(root=root).probe().ok

    real_read = rapl._read_int

    def root_only(path):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path)

    monkeypatch.setattr(rapl, "_read_int", root_only)
    denied = RaplSampler(root=root).probe()
    assert not denied.ok and "needs root" in denied.reason
    with pytest.raises(UserError, match="needs root"):
        RaplSampler(root=root).start()


def test_the_cadence_samples_every_interval_and_brackets_the_run(rapl_tree):
    """A reading at start, one per interval on the sampler's clock, one at stop; the cadence ends with it."""
    root = server_tree(rapl_tree)
    clock = ManualClock()
    sampler = RaplSampler(root=root, interval_ms=10, clock=clock)
    with sampler:
        start_ns = clock.time_ns()
        clock.sleep(0.1)
        end_ns = clock.time_ns()
        assert clock.tickers == 1
    samples = sampler.samples
    assert len(samples) == 1 + 10 + 1
    assert samples[0].t_ns == start_ns and samples[-1].t_ns == end_ns, "start/stop take a reading"
    assert [s.mono_ns - samples[0].mono_ns for s in samples[:-1]] == [i * 10_000_000 for i in range(11)]
    assert sampler.errors == [] and clock.tickers == 0


def test_constructor_does_no_io(tmp_path, monkeypatch):
    """A sampler's constructor is cheap: it lists no folder and reads no file (probe() and start() do)."""
    touched = []
    monkeypatch.setattr(rapl, "find_domains", lambda root: touched.append(("list", root)) or [])
    monkeypatch.setattr(rapl, "_read_int", lambda path: touched.append(("read", path)) or 0)
    (tmp_path / "powercap").mkdir()
    sampler = RaplSampler(root=tmp_path / "powercap")
    assert touched == [] and sampler.domains == [] and sampler.samples == [] and not sampler.running
    assert not sampler.probe().ok and touched == [("list", tmp_path / "powercap")]  # the spies do see IO


def test_rapl_health_counts_intervals_dropped_for_an_unreadable_range(rapl_tree):
    """A wrap with no readable max_energy_range_uj drops one interval: counted and explained in health."""
    root = rapl_tree({"intel-rapl:0": ("package-0", 5_000_000, MAX)})
    (root / "intel-rapl:0" / "max_energy_range_uj").unlink()
    sampler = RaplSampler(root=root, interval_ms=10_000)
    sampler.start()
    set_uj(root, "intel-rapl:0", 1_000_000)  # went down: a wrap that cannot be corrected
    sampler.sample_now()
    sampler.stop()
    health = sampler.health()
    assert health["dropped_intervals"] == 1 and "max_energy_range_uj" in health["dropped_reason"]
    assert health["polling_errors"] == [] and health["total_kind"] == "rapl:package"


def test_stuck_package_counter_is_unavailable_not_0_j(rapl_tree):
    """Regression (issue 22, item 3): a RAPL package counter that never advanced was published as 0 J with
    ``measured: true`` and ``health.ok: true``. Over a window where the work ran, a counter that does not move is
    unavailable with the reason, on the energy block itself, and health says the counter is stuck."""
    from runner.telemetry.energy import accounting

    root = rapl_tree({"intel-rapl:0": ("package-0", 7_000_000, MAX), "intel-rapl:0:1": ("dram", 1_000, MAX)})
    sampler = RaplSampler(root=root, interval_ms=10_000, clock=ManualClock())
    sampler.start()
    for step in range(1, 6):
        set_uj(root, "intel-rapl:0:1", 1_000 + step * 100_000)  # DRAM moves, the package does not
        sampler.clock.advance(0.005)
        sampler.sample_now()
    sampler.stop()
    s = sampler.samples
    window = integrate(s, s[1].t_ns, s[-2].t_ns)
    assert window.total_j is None and "did not advance" in window.reason and "not 0 J" in window.reason
    health = sampler.health()
    assert health["ok"] is False and health["stuck_channels"] == ["package-0"] and "stuck" in health["stuck_reason"]
    ev = [{"event": name, "t_ns": t, "mono_ns": m} for name, t, m in
          (("container_start", s[0].t_ns, s[0].mono_ns), ("inference_start", s[1].t_ns, s[1].mono_ns),
           ("inference_end", s[-2].t_ns, s[-2].mono_ns), ("container_end", s[-1].t_ns, s[-1].mono_ns))]
    block = accounting.energy_block("rapl", s, ev, accounting.Baseline(None, "unavailable", reason="skipped"),
                                    4.0, 2, 10_000)
    assert block.total_j is None and "did not advance" in block.unavailable["total_j"]
    assert block.j_per_audio_s is None and "did not advance" in block.unavailable["j_per_audio_s"]


def test_wrap_with_unreadable_range_makes_the_windows_over_it_unavailable(rapl_tree):
    """Regression (issue 22, item 3): a wrap with no readable max_energy_range_uj counted the interval as 0 J and
    said so only in health: the total was short and looked measured. Every window over the lost interval is now
    unavailable with the reason; a window beside it is still measured."""
    root = rapl_tree({"intel-rapl:0": ("package-0", 5_000_000, MAX)})
    (root / "intel-rapl:0" / "max_energy_range_uj").unlink()
    sampler = RaplSampler(root=root, interval_ms=10_000, clock=ManualClock())
    sampler.start()
    for value in (6_000_000, 7_000_000, 1_000_000, 2_000_000, 3_000_000):  # wrapped between 7 and 1 J
        sampler.clock.advance(0.005)
        set_uj(root, "intel-rapl:0", value)
        sampler.sample_now()
    sampler.stop()
    s = sampler.samples
    over = integrate(s, s[1].t_ns, s[4].t_ns)
    assert over.total_j is None and "max_energy_range_uj" in over.reason
    assert s[3].total_w is None and "wrapped" in s[3].total_kind  # no 0 W for the lost interval either
    before = integrate(s, s[0].t_ns, s[2].t_ns)
    after = integrate(s, s[3].t_ns, s[5].t_ns)
    assert before.total_j == pytest.approx(2.0) and after.total_j == pytest.approx(2.0)
