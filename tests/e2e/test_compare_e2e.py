"""`edgeasr compare` and `edgeasr report` over real runs: faster-whisper on 2 utterances, no telemetry.

The regression gates' exit codes on real run folders: identical settings pass every gate; Whisper base
told the English speech is French is a real, deterministic WER regression (exit 1); an energy gate without
energy cannot be checked (exit 1, said so); `report` puts two runs in one table. (Speed is not used for the
regression: on a shared host, RTF between two single runs is noise, which is what compare's "?" says.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e

IMAGE = "edgeasr/faster-whisper:latest"


def edgeasr(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three real runs: two alike (tiny.en, English), one of Whisper base decoding the speech as French."""
    try:
        docker.from_env().images.get(IMAGE)
    except docker.errors.ImageNotFound:
        r = edgeasr("images", "build", "faster-whisper", "--missing", timeout=1800)
        assert r.returncode == 0, r.stderr
    r = edgeasr("models", "install", "tiny.en", "base", "--no-convert", timeout=1800)
    assert r.returncode == 0, r.stderr
    base = tmp_path_factory.mktemp("compare")
    out = {}
    for name, model, language in (("en", "tiny.en", "en"), ("en-again", "tiny.en", "en"), ("fr", "base", "fr")):
        folder = base / name
        r = edgeasr("run", "--backend", "faster-whisper", "--model", model, "--quant", "int8", "--limit", "2",
                    "--telemetry", "none", "--language", language, "--out", str(folder))
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        out[name] = folder
    return out


def test_identical_runs_pass_every_gate(runs):
    r = edgeasr("compare", str(runs["en"]), str(runs["en-again"]), "--max-wer-increase", "0",
                "--max-rtf-increase", "100000", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["passed"] and len(data["pairs"]) == 1
    assert data["pairs"][0]["metrics"]["wer"]["change"] == 0  # deterministic decoding


def test_a_worse_wer_trips_the_wer_gate(runs):
    r = edgeasr("compare", str(runs["en"]), str(runs["fr"]), "--max-wer-increase", "5")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSION" in r.stdout and "WER % rose" in r.stdout and "compared across: model" in r.stdout
    loose = edgeasr("compare", str(runs["en"]), str(runs["fr"]), "--max-wer-increase", "100000",
                    "--format", "md")
    assert loose.returncode == 0, loose.stdout + loose.stderr
    assert "| condition |" in loose.stdout and "gates passed" in loose.stdout


def test_an_energy_gate_without_energy_fails_and_says_why(runs):
    r = edgeasr("compare", str(runs["en"]), str(runs["en-again"]), "--max-energy-increase", "5",
                "--format", "json")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert not data["passed"] and "cannot be checked" in data["regressions"][0]


def test_report_over_two_runs_is_one_table(runs, tmp_path):
    r = edgeasr("report", str(runs["en"]), str(runs["fr"]), "--out", str(tmp_path / "r"), "--format", "csv")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and "source" in lines[0]  # a header and one row per run
    assert (tmp_path / "r" / "report.html").is_file()
