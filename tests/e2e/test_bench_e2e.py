"""`make bench BENCH_QUICK=1` in CI (issue 26, item 1): every bench runs in its short mode on the real engine and
prints its ratio lines, so a refactor that breaks a bench fails the suite, not the next person who runs
`make bench`. The figures are not judged here (two utterances, one pair): only that each bench still measures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e

#: Benches left out of CI's quick run, with the reason (BENCH_QUICK_SKIP adds to them).
SKIPPED = {"fleet": "its quick mode still starts a Ray fleet twice: 149 s here on a busy 2-core host, over the "
                    "2 minutes this test may take; `make bench BENCH_QUICK=1` runs it"}


def test_every_quick_bench_runs_and_prints_its_ratio_lines():
    skip = ",".join([*SKIPPED, *filter(None, os.environ.get("BENCH_QUICK_SKIP", "").split(","))])
    r = subprocess.run([sys.executable, "bench/run_all.py", "--quick", *(["--skip", skip] if skip else [])],
                       cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert "harness/bare (bare in a container of the image): median" in r.stdout
    assert "ratio batched/sequential" in r.stdout and "sweep efficiency:" in r.stdout
    assert "benches' wall:" in r.stdout
