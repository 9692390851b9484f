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


# `make test` runs two tests at a time (pytest-xdist, --dist loadfile; issue 26 item 3: one e2e test keeps about
# half of this 2-core host busy, waiting on containers, Ray and the engine): a file's tests stay in one worker
# (module fixtures: a fleet, built images). Tests that watch the engine for what another file does take an
# engine_lock (tests/helpers.py); those marked `alone` (time, cadence, capacity) run afterwards, in a run of their
# own (the Makefile's second pytest line). (--dist loadgroup would not do: pytest 9 ignores xdist's group suffix.)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist, in the controller: hand each worker this process's COLUMNS and LINES. A worker's own environment says
    80 and 24 whatever the controller had, and the run tables size themselves from COLUMNS (report/table.py)."""
    import os

    node.workerinput["edgeasr_terminal_env"] = {k: os.environ.get(k) for k in ("COLUMNS", "LINES")}


def pytest_configure(config):
    import os

    for name, value in getattr(config, "workerinput", {}).get("edgeasr_terminal_env", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# Longest files first (issue 26 item 3). `make test` hands files to its two workers in collection order
# (--dist loadfile --no-loadscope-reorder: xdist's own order puts the files with the most tests first, so the few
# long e2e files came last and one worker ran them alone at the end). Each file's seconds on the 2-core host are in
# tests/durations.json; a file not there counts as DEFAULT_FILE_S of its tier. Every run writes what it measured
# to build/test-durations.json: copy it over tests/durations.json when files come, go or grow.
DURATIONS = Path(__file__).with_name("durations.json")
MEASURED = Path(__file__).resolve().parents[1] / "build" / "test-durations.json"
DEFAULT_FILE_S = {"e2e": 20.0, "e2e arm64 (emulated)": 300.0}
_FILE_S: dict[str, float] = {}


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    import json

    try:
        known = {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        known = {}
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(_file(item.nodeid), i)

    def seconds(path: str) -> float:
        return known.get(path, DEFAULT_FILE_S.get(_tier(path), 1.0))

    items.sort(key=lambda item: (-seconds(_file(item.nodeid)), first[_file(item.nodeid)]))


def pytest_sessionfinish(session):
    import json

    if hasattr(session.config, "workerinput") or not _FILE_S:
        return
    try:  # `make test`'s second run (the tests marked alone) adds its files to the first's
        earlier = json.loads(MEASURED.read_text()) if MEASURED.is_file() else {}
    except (OSError, ValueError):
        earlier = {}
    merged = {**(earlier if isinstance(earlier, dict) else {}), **{k: round(v, 1) for k, v in _FILE_S.items()}}
    try:
        MEASURED.parent.mkdir(exist_ok=True)
        MEASURED.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    except OSError:
        pass


# The time of each test tier (issue 26 item 3): CI prints it, so that a slow tier is seen where it grows. A tier is
# the folder under tests/ (unit, contract, e2e); the emulated arm64 tests are their own tier (tests/e2e/*arm64*),
# since their time is qemu's. `.ci/run` exports EDGEASR_CI_START (epoch seconds) so the set-up before the first test
# (tools, venvs, models, image builds) is printed too.
_TIER_S: dict[str, float] = {}
_FIRST_TEST_WALL: list[float] = []


def _tier(nodeid: str) -> str:
    parts = nodeid.split("::", 1)[0].split("/")
    folder = parts[parts.index("tests") + 1] if "tests" in parts[:-1] else parts[0]
    return "e2e arm64 (emulated)" if folder == "e2e" and "arm64" in parts[-1] else folder


def pytest_runtest_logstart(nodeid, location):
    import time

    if not _FIRST_TEST_WALL:
        _FIRST_TEST_WALL.append(time.time())


def pytest_runtest_logreport(report):
    tier = _tier(report.nodeid)
    _TIER_S[tier] = _TIER_S.get(tier, 0.0) + report.duration
    _FILE_S[_file(report.nodeid)] = _FILE_S.get(_file(report.nodeid), 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    import os
    import time

    if not _TIER_S:
        return
    parts = [f"{tier} {seconds:.1f}s" for tier, seconds in sorted(_TIER_S.items())]
    parts.append(f"tests in all {time.time() - _FIRST_TEST_WALL[0]:.1f}s")
    start = os.environ.get("EDGEASR_CI_START", "")
    if start.isdigit():
        parts.append(f"set-up before the tests {_FIRST_TEST_WALL[0] - int(start):.1f}s")
    terminalreporter.write_line("time by tier: " + ", ".join(parts))
