"""`make bench BENCH_QUICK=1` in CI (issue 26, item 1): every bench runs in its short mode on the real engine and
prints its ratio lines, so a refactor that breaks a bench fails the suite, not the next person who runs
`make bench`. The figures are not judged here (two utterances, one pair): only that each bench still measures."""

from __future__ import annotations

import os
import re
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
    assert_stream_figures(r.stdout)


NUMBER = r"(-?\d+(?:\.\d+)?)"


def assert_stream_figures(stdout: str) -> None:
    """The stream bench's two figures and their ratios to the targets are numbers (not their targets: CI's host is
    loaded, and the quick stream is 5 s)."""
    jitter = re.search(rf"^stream pacing jitter \((?:.*)\): p50 {NUMBER} ms, p99 {NUMBER} ms, max {NUMBER} ms; "
                       rf"p99/target {NUMBER} \(target < 5 ms on an idle host", stdout, re.M)
    assert jitter, stdout
    p50, p99, top, ratio = (float(g) for g in jitter.groups())
    assert 0 <= p50 <= p99 <= top and ratio == pytest.approx(p99 / 5.0, abs=1e-3)
    share = re.search(rf"^stream machinery CPU share: \(process CPU {NUMBER} s - backend CPU {NUMBER} s\) / "
                      rf"process CPU = {NUMBER} %; share/target {NUMBER}", stdout, re.M)
    assert share, stdout
    process, backend, pct, ratio = (float(g) for g in share.groups())
    assert 0 < backend <= process and pct == pytest.approx(100 * (process - backend) / process, abs=0.1)
    assert ratio == pytest.approx(pct / 2.0, abs=1e-3)
    assert re.search(r"^stream bench: .* host load average \d+\.\d+ ", stdout, re.M), stdout


def test_the_stream_bench_prints_its_pacing_jitter_and_machinery_share_in_one_run():
    """The stream bench needs no image (the entrypoint's scheduler in-process, a FAKE fixed-cost backend), so it
    runs here on its own as well, quick: its lines are checked as run_all checks them, and parsed as numbers."""
    r = subprocess.run([sys.executable, "bench/run_all.py", "--quick", "--only", "stream"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert_stream_figures(r.stdout)
