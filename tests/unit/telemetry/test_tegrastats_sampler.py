"""TegrastatsSampler against the FAKE tegrastats (tests/fixtures/fake_bin)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from fake_jetson import fake_processes

from runner.errors import UserError
from runner.telemetry.samplers.tegrastats import TegrastatsSampler

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and signals are POSIX")






def test_probe_and_start_without_tegrastats(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    sampler = TegrastatsSampler()
    availability = sampler.probe()
    assert not availability.ok and "not found on PATH" in availability.reason
    with pytest.raises(UserError, match="not found on PATH"):
        sampler.start()


def test_constructor_starts_nothing(fake_tegrastats_path):
    sampler = TegrastatsSampler()
    assert sampler.pid is None and fake_processes(fake_tegrastats_path) == []


def test_a_line_without_its_newline_is_dropped_not_parsed():
    """tegrastats killed mid-write leaves a cut line ("VDD_IN 52" of 5299)."""
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "tegrastats" / "orin-nx-jp5.txt"
    line = fixture.read_text(encoding="utf-8").splitlines()[0]
    stream = io.BytesIO((line + "\n" + "garbage\n" + line[: line.index("VDD_IN") + 9]).encode())
    sampler = TegrastatsSampler()
    sampler._read_lines(stream)  # the reader thread's loop, fed directly
    assert len(sampler.samples) == 1 and sampler.samples[0].total_w == pytest.approx(5.299)
    assert sampler.lines_unparsed == 1 and sampler.lines_cut_off == 1


