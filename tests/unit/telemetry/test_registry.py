"""make_sampler maps command-line names to samplers and rejects others."""

from __future__ import annotations

import pytest

from runner.errors import UserError
from runner.telemetry.base import NullSampler
from runner.telemetry.nvml import NvmlSampler
from runner.telemetry.rapl import RaplSampler
from runner.telemetry.registry import SAMPLER_NAMES, make_sampler
from runner.telemetry.tegrastats import TegrastatsSampler


def test_every_name_builds_its_sampler():
    expected = {"tegrastats": TegrastatsSampler, "nvml": NvmlSampler, "rapl": RaplSampler, "none": NullSampler}
    assert set(SAMPLER_NAMES) == set(expected)
    for name, cls in expected.items():
        sampler = make_sampler(name, interval_ms=50)
        assert isinstance(sampler, cls) and sampler.name == name


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match="tegrastats, nvml, rapl, none"):
        make_sampler("jtop")


def test_interval_must_be_positive():
    with pytest.raises(UserError):
        make_sampler("rapl", interval_ms=0)
