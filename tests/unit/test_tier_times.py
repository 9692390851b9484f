"""CI prints the time of each test tier (issue 26 item 3): the suite's own wall, split into unit, contract, e2e and
the emulated arm64 tier, and the set-up before the first test (tools, venvs, models, images) where .ci/run says
when it started. Checked on a real pytest run of two tiny test files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from helpers import ROOT


def _suite(tmp_path: Path) -> Path:
    """A copy of the suite's conftest with two tiers of tests that take a known time."""
    tests = tmp_path / "tests"
    for tier, seconds in (("unit", 0.3), ("e2e", 0.6)):
        (tests / tier).mkdir(parents=True)
        (tests / tier / f"test_{tier}_sleeps.py").write_text(
            f"import time\n\ndef test_sleeps():\n    time.sleep({seconds})\n")
    (tests / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tests / "helpers.py").write_text(f"from pathlib import Path\nROOT = Path({str(ROOT)!r})\n")
    return tests


def test_the_summary_names_each_tiers_time_and_the_set_up_before_it(tmp_path):
    tests = _suite(tmp_path)
    started = time.time() - 120  # .ci/run started two minutes ago
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "EDGEASR_CI_START": f"{started:.0f}"})
    assert r.returncode == 0, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("time by tier:"))
    parts = dict(p.strip().rsplit(" ", 1) for p in line.removeprefix("time by tier:").split(","))
    assert set(parts) >= {"unit", "e2e", "tests in all", "set-up before the tests"}
    seconds = {k: float(v.removesuffix("s")) for k, v in parts.items()}
    assert 0.3 <= seconds["unit"] < 0.6 and 0.6 <= seconds["e2e"] < 1.0
    assert seconds["tests in all"] >= seconds["unit"] + seconds["e2e"]
    assert 115 <= seconds["set-up before the tests"] <= 130


def test_without_the_ci_start_the_set_up_is_not_guessed(tmp_path):
    tests = _suite(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120, env={"PATH": "/usr/bin:/bin"})
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("time by tier:"))
    assert "set-up" not in line and "unit" in line
