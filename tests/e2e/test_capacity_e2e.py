"""`edgeasr capacity` on this machine with real weights (issue 23, item 6): faster-whisper tiny.en streaming
(LocalAgreement-2) as a host process (``--engine local``: no image needed, the entrypoint and the library as the
container runs them), on the embedded speech, real-time paced.

What this machine sustains depends on it (2 shared cores here: not even one stream keeps up). So the test asserts
what must hold whatever the answer: the search ends; its probes are the search's own sequence (doubling, then
bisection); every probe at or under the answer passed and the first failed one says why, from the measured
figures (a p99 over the target, or a lag that grew), never a fake real-time result; the answer line is printed;
and the same command again runs nothing.

Short on purpose (2 utterances, 6 s of audio per stream, at most 4 streams): wall time is the audio's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

from runner.capacity import CapacitySearch, ProbeResult

pytestmark = [pytest.mark.e2e, pytest.mark.alone]  # timing: run with no test beside it (tests/conftest.py)

MODELS = ROOT / "models"


def _capacity(out, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "runner.cli", "capacity", "--backend", "faster-whisper", "--model", "tiny.en",
         "--quant", "int8", "--device", "cpu", "--engine", "local", "--models-dir", str(MODELS), "--limit", "2",
         "--sustain-s", "6", "--chunk-ms", "1000", "--max-streams", "4", "--telemetry", "none", "--warmup", "0",
         "--no-prepare", "--out", str(out), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, env={**os.environ, "COLUMNS": "200"})


def test_a_capacity_search_here_stops_where_the_backend_falls_behind(tmp_path):
    pytest.importorskip("faster_whisper", reason="--engine local needs faster-whisper on the host")
    if not (MODELS / "tiny.en" / "model.bin").is_file():
        pytest.fail(f"tiny.en is not installed in {MODELS}: `edgeasr models install tiny.en`")
    out = tmp_path / "cap"
    ran = _capacity(out)
    assert ran.returncode == 0, ran.stderr[-4000:]
    answer = json.loads((out / "capacity.json").read_text())
    probes = answer["probes"]

    # the probes are the search's own sequence, and the answer its answer
    search = CapacitySearch(max_streams=4)
    for p in probes:
        search = search.record(ProbeResult(p["streams"], p["passed"], p["reason"]))
    assert search.done and search.answer().streams == answer["streams"]
    assert all(p["passed"] for p in probes if p["streams"] <= answer["streams"])

    # every probe ran real streams, its figures measured (the lag included), never invented
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    assert len(records) == len(probes) and all(r["status"] == "ok" for r in records)
    for r in records:
        block = r["summary"]["stream"]
        assert block["audio_s"] >= 6 and block["lag_s"]["end"] is not None and block["finalization_ms"]["n"] >= 1
    if answer["first_failed"] is not None:
        why = answer["first_failed"]["reason"]
        assert why.startswith("p99 finalization latency ") or why.startswith("the lag behind real time grew by "), why
        failed = next(r for r in records if r["summary"]["stream"]["concurrency"] == answer["first_failed"]["streams"])
        block = failed["summary"]["stream"]
        assert block["finalization_ms"]["p99"] > 1000 or not block["lag_s"]["bounded"]
    head = next(text for text in ran.stdout.splitlines() if text.startswith("capacity: "))
    assert head.startswith(f"capacity: {answer['streams']} streams at ")
    assert "power unavailable: telemetry turned off (--telemetry none)" in head or answer["streams"] == 0

    again = _capacity(out)
    assert again.returncode == 0 and json.loads((out / "capacity.json").read_text()) == answer
    assert "probing" not in again.stderr, "a resumed search runs no probe again"
