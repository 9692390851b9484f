"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT


@pytest.fixture
def root() -> Path:
    return ROOT
