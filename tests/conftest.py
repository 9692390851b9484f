"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True, scope="session")
def _own_state_folder(tmp_path_factory):
    """The record of images check-image passed (runner/launch/checked_images.py) and the node agent's record of
    the Ray sessions it started (runner/fleet/agent.py) live in $XDG_STATE_HOME: the tests, and the commands they
    start, keep theirs apart from the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield
