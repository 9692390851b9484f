"""make_sampler maps command-line names to samplers and rejects others."""

from __future__ import annotations

import pytest

from runner.errors import UserError
from runner.telemetry.base import NullSampler
from runner.telemetry.jtop import JtopSampler
from runner.telemetry.nvml import NvmlSampler
from runner.telemetry.rapl import RaplSampler
from runner.telemetry.registry import SAMPLER_NAMES, make_sampler
from runner.telemetry.tegrastats import TegrastatsSampler


def test_every_name_builds_its_sampler():
    expected = {"tegrastats": TegrastatsSampler, "jtop": JtopSampler, "nvml": NvmlSampler, "rapl": RaplSampler,
                "none": NullSampler}
    assert set(SAMPLER_NAMES) == set(expected)
    for name, cls in expected.items():
        sampler = make_sampler(name, interval_ms=50)
        assert isinstance(sampler, cls) and sampler.name == name


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match="tegrastats, jtop, nvml, rapl, none"):
        make_sampler("powerjoular")


def test_jtop_probe_names_what_is_missing(tmp_path):
    """Without jetson-stats (or its service socket) jtop is unavailable, with the reason."""
    probe = JtopSampler(socket_path=str(tmp_path / "jtop.sock")).probe()
    assert not probe.ok
    assert "jetson-stats is not installed" in probe.reason or "jtop.sock does not exist" in probe.reason


def test_interval_must_be_positive():
    with pytest.raises(UserError):
        make_sampler("rapl", interval_ms=0)
