"""The tegrastats sampler against a running process: the FAKE tegrastats (tests/fixtures/fake_bin, a stand-in
for NVIDIA's tool, which cannot exist here) started, read, stopped and killed on the host's real clock.

These wait on a real child process, so they live with the end-to-end tests, not the unit tests (which drive
their clocks step by step and never sleep); they need no Docker.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from fake_jetson import fake_processes, gone, use_fake_tegrastats

from runner.telemetry.energy.integrate import integrate
from runner.telemetry.samplers.tegrastats import TegrastatsSampler
from runner.telemetry.samplers.tegrastats_parse import parse_line

pytestmark = [pytest.mark.skipif(os.name != "posix", reason="process groups and signals are POSIX"),
              pytest.mark.alone]  # timing: run with no test beside it (tests/conftest.py)


@pytest.fixture
def fake_tegrastats_path(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the FAKE tegrastats first on PATH; returns its path."""
    return use_fake_tegrastats(monkeypatch)


def wait_for(predicate, timeout_s: float = 3.0) -> bool:
    """Poll a real child process's state (the fake tegrastats runs on the host's clock) until it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_step_profile_energy_within_two_percent(fake_tegrastats_path, monkeypatch):
    t0_ns = time.time_ns() + 300_000_000  # the profile starts 0.3 s from now
    monkeypatch.setenv("FAKE_TEGRASTATS_T0_NS", str(t0_ns))
    monkeypatch.setenv("FAKE_TEGRASTATS_PROFILE", json.dumps([[0, 4000], [0.6, 10000]]))
    sampler = TegrastatsSampler(interval_ms=20)
    with sampler:
        pid = sampler.pid
        # until a line past the window's end has arrived (not for a duration: a loaded host delays lines)
        assert wait_for(lambda: sampler.samples and sampler.samples[-1].t_ns >= t0_ns + 1_250_000_000,
                        timeout_s=30)
    start_ns, end_ns = t0_ns + 100_000_000, t0_ns + 1_100_000_000
    exact_j = 4.0 * 0.5 + 10.0 * 0.5  # 4 W until t0+0.6 s, 10 W after
    window = integrate(sampler.samples, start_ns, end_ns)
    assert window.method == "trapezoid" and window.total_kind == "input_rail:VDD_IN"
    assert window.total_j == pytest.approx(exact_j, rel=0.02)
    assert window.n_samples >= 20
    assert window.mean_interval_ms == pytest.approx(20, rel=0.3), "--interval reached tegrastats"
    assert window.per_channel_j["VDD_SOC"] == pytest.approx(0.25 * exact_j, rel=0.03)
    assert gone(pid) and fake_processes(fake_tegrastats_path) == []
    assert sampler.lines_unparsed == 0
    t_arrival, line = sampler.raw_lines[-1]
    assert t_arrival == sampler.samples[-1].t_ns
    record = parse_line(line)
    assert record.input_rail == "VDD_IN" and record.timestamp is not None


@pytest.mark.parametrize("board,kind", [("agx-orin", "partial_sum_of_rails"), ("nano-jp4", "input_rail:POM_5V_IN")])
def test_other_fake_boards(fake_tegrastats_path, monkeypatch, board, kind):
    monkeypatch.setenv("FAKE_TEGRASTATS_BOARD", board)
    monkeypatch.setenv("FAKE_TEGRASTATS_PROFILE", "[[0, 6000]]")
    sampler = TegrastatsSampler(interval_ms=20)
    with sampler:
        assert wait_for(lambda: len(sampler.samples) >= 3)
    last = sampler.samples[-1]
    assert last.total_kind == kind
    assert last.total_w == pytest.approx(6.0, abs=0.005)


def test_ctrl_c_inside_the_block_still_kills_tegrastats(fake_tegrastats_path):
    sampler = TegrastatsSampler(interval_ms=20)
    with pytest.raises(KeyboardInterrupt), sampler:
        pid = sampler.pid
        assert wait_for(lambda: len(sampler.samples) >= 1)
        raise KeyboardInterrupt
    assert gone(pid)
    assert fake_processes(fake_tegrastats_path) == []


def test_sigkill_after_timeout_when_sigterm_is_ignored(fake_tegrastats_path, monkeypatch):
    monkeypatch.setenv("FAKE_TEGRASTATS_IGNORE_SIGTERM", "1")
    sampler = TegrastatsSampler(interval_ms=20, terminate_timeout_s=0.3)
    sampler.start()
    pid = sampler.pid
    assert wait_for(lambda: len(sampler.samples) >= 1)
    began = time.monotonic()
    sampler.stop()
    assert gone(pid)
    assert time.monotonic() - began < 2.0


def test_process_group_children_die_too(fake_tegrastats_path, monkeypatch, tmp_path):
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("FAKE_TEGRASTATS_CHILD_PIDFILE", str(pidfile))
    sampler = TegrastatsSampler(interval_ms=20)
    with sampler:
        assert wait_for(pidfile.exists)
        child = int(pidfile.read_text())
        assert not gone(child)
    assert wait_for(lambda: gone(child), timeout_s=2.0)


def test_second_start_does_not_start_a_second_process(fake_tegrastats_path):
    sampler = TegrastatsSampler(interval_ms=50)
    sampler.start()
    try:
        pid = sampler.pid
        sampler.start()
        assert sampler.pid == pid
        assert wait_for(lambda: len(fake_processes(fake_tegrastats_path)) == 1)
    finally:
        sampler.stop()
    with pytest.raises(RuntimeError):
        sampler.start()
    assert fake_processes(fake_tegrastats_path) == []


def test_tegrastats_that_fails_says_why(fake_tegrastats_path, monkeypatch):
    monkeypatch.setenv("FAKE_TEGRASTATS_FAIL", "tegrastats: need root")
    sampler = TegrastatsSampler(interval_ms=20)
    with sampler:
        assert wait_for(lambda: sampler.exit_reason is not None)
    assert "code 1" in sampler.exit_reason and "need root" in sampler.exit_reason
    assert sampler.samples == []


def test_tegrastats_health_reports_exit_reason_and_unparsed_lines(fake_tegrastats_path, monkeypatch):
    """Why tegrastats stopped and how many lines it dropped reach the results (telemetry.health)."""
    monkeypatch.setenv("FAKE_TEGRASTATS_FAIL", "tegrastats: need root")
    sampler = TegrastatsSampler(interval_ms=20)
    with sampler:
        assert wait_for(lambda: sampler.exit_reason is not None)
    health = sampler.health()
    assert health["sampler"] == "tegrastats" and "need root" in health["exit_reason"]
    assert health["lines_unparsed"] == 0 and health["lines_cut_off"] == 0 and health["ok"] is False


def test_tegrastats_lines_arrive_when_written_through_a_pty_not_in_pipe_bursts(fake_tegrastats_path, monkeypatch):
    """Regression (issue 22, item 6): tegrastats writes through C stdio, which buffers a pipe in blocks, and the
    sampler stamped each line when Python read it: lines came seconds late and together. Through a pty the (fake,
    stdio-buffered) tegrastats flushes every line: no bursts. Read through a pipe, the same program's lines come in
    bursts, and the sampler places them by the cadence and says so."""
    from runner.telemetry.energy.accounting import arrival_stats

    monkeypatch.setenv("FAKE_TEGRASTATS_PROFILE", "[[0, 5000]]")
    runs = {}
    for stdout in ("pty", "pipe"):
        sampler = TegrastatsSampler(interval_ms=20, stdout=stdout)
        with sampler:
            assert wait_for(lambda: len(sampler.samples) >= 60, timeout_s=10.0)
        runs[stdout] = sampler
    pty_stats = arrival_stats(runs["pty"].samples, 20)
    assert runs["pty"].health()["stdout"] == "pty" and pty_stats["bursty"] is False
    pipe = runs["pipe"]
    assert arrival_stats(pipe.samples, 20)["bursty"] is True and pipe.n_cadence_stamped > 20
    stamps = [s.mono_ns for s in pipe.samples]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    gaps_ms = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:])]
    assert sorted(gaps_ms)[len(gaps_ms) // 2] == pytest.approx(20, rel=0.3)  # placed at the cadence, not together

