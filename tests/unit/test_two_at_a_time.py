"""`make test` runs two tests at a time (issue 26 item 3): pytest-xdist with --dist loadfile (a file's tests in one
worker: module fixtures such as a fleet are made once), the tests marked `alone` left to a run of their own, and
engine_lock between tests of two files that must not overlap. Checked on real pytest runs of a small suite with the
suite's own conftest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

TEST = """import os, time
from pathlib import Path
import pytest
{mark}

@pytest.mark.parametrize("n", range(3))
def test_records_its_worker(n):
    time.sleep(0.2)
    with open(Path({log!r}), "a") as f:
        f.write(f"{name} {{os.environ.get('PYTEST_XDIST_WORKER', 'main')}}\\n")
"""


def _suite(tmp_path: Path) -> tuple[Path, Path]:
    tests, log = tmp_path / "tests", tmp_path / "workers.log"
    (tests / "e2e").mkdir(parents=True)
    marks = {"a": "", "b": "", "c": "", "d": "", "f": "pytestmark = pytest.mark.alone"}
    for name, mark in marks.items():
        (tests / "e2e" / f"test_{name}.py").write_text(TEST.format(mark=mark, log=str(log), name=name))
    (tests / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tests / "helpers.py").write_text(f"from pathlib import Path\nROOT = Path({str(ROOT)!r})\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    alone: run alone\n")
    return tests, log


def test_a_files_tests_share_a_worker_and_alone_ones_wait(tmp_path):
    tests, log = _suite(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist",
                        "loadfile", "-m", "not alone", str(tests)], capture_output=True, text=True, cwd=tmp_path,
                       timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    seen: dict[str, set[str]] = {}
    for line in log.read_text().splitlines():
        name, worker = line.split()
        seen.setdefault(name, set()).add(worker)
    assert set(seen) == {"a", "b", "c", "d"}  # f is `alone`: not in this run
    assert all(len(workers) == 1 for workers in seen.values()), seen
    assert set().union(*seen.values()) == {"gw0", "gw1"}  # two at a time
    assert sum(ln.startswith("time by tier:") for ln in r.stdout.splitlines()) == 1


def test_the_longest_files_come_first_and_each_run_writes_what_it_measured(tmp_path):
    """The files in the order of tests/durations.json's seconds, longest first (a file not there: its tier's
    default, here e2e's 20 s); xdist hands them out in that order (--no-loadscope-reorder, the Makefile's)."""
    tests, log = _suite(tmp_path)
    (tests / "durations.json").write_text('{"tests/e2e/test_c.py": 90, "tests/e2e/test_a.py": 5}')
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not alone",
                        str(tests)], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                       env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout + r.stderr
    order = list(dict.fromkeys(line.split()[0] for line in log.read_text().splitlines()))
    assert order == ["c", "b", "d", "a"]  # 90 s, then b and d (20 s each, in collection order), then 5 s
    measured = json.loads((tmp_path / "build" / "test-durations.json").read_text())
    assert set(measured) == {f"tests/e2e/test_{n}.py" for n in "abcd"}
    assert all(0.5 < s < 5 for s in measured.values()), measured  # three tests of 0.2 s each


def test_make_test_runs_two_at_a_time_then_the_alone_ones(tmp_path):
    def dry(*extra: str) -> list[str]:
        out = subprocess.run(["make", "-n", "-C", str(ROOT), "test", f"VENV={tmp_path}/venv", *extra],
                             capture_output=True, text=True, check=True).stdout
        return [ln for ln in out.splitlines() if "-m pytest" in ln]

    two = dry()
    assert len(two) == 2
    assert "-n 2 --dist loadfile --no-loadscope-reorder -m \"not alone\" tests" in two[0]
    assert "-m alone tests" in two[1]
    assert "EDGEASR_CI_START= " in two[1]  # the set-up was printed by the first run
    one = dry("TEST_JOBS=0")
    assert len(one) == 1 and " -n " not in one[0] and "alone" not in one[0]


def test_engine_lock_keeps_two_processes_apart(tmp_path):
    """What test_doctor_e2e and test_cuda_image_e2e hold: the second process waits for the first to let go."""
    script = (f"import sys, time; sys.path.insert(0, {str(ROOT / 'tests')!r}); from helpers import engine_lock\n"
              f"with engine_lock('unit-{tmp_path.name}'):\n"
              f"    print(f'in {{time.monotonic():.3f}}'); time.sleep(0.5); print(f'out {{time.monotonic():.3f}}')\n")
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    spans = sorted(tuple(float(ln.split()[1]) for ln in p.communicate(timeout=30)[0].splitlines()) for p in procs)
    assert spans[1][0] >= spans[0][1], spans
