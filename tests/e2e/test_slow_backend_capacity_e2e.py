"""A backend that can never keep up with live audio gets capacity 0 and a growing lag, never a fake real-time
result (issue 23's tests). The image is built FROM the shipped pocketsphinx image with an adapter of its own (a
TEST backend, not shipped): pocketsphinx's own stream session, each chunk made to cost 1.5 times its audio's
duration of wall time, so the worker falls further behind with every chunk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import docker
import pytest
from helpers import ROOT, build_test_image

pytestmark = [pytest.mark.e2e, pytest.mark.alone]  # timing: run with no test beside it (tests/conftest.py)

BASE = os.environ.get("POCKETSPHINX_IMAGE", "edgeasr/pocketsphinx:latest")
TAG = "edgeasr-test/slow-pocketsphinx:latest"
ADAPTER = '''"""TEST adapter: pocketsphinx, each stream chunk taking 1.5x its audio's duration (never keeps up)."""
import time

import edgeasr_backend_pocketsphinx as real

SLOWDOWN = 1.5


class SlowSession:
    def __init__(self, session):
        self._session = session

    def accept(self, chunk):
        time.sleep(SLOWDOWN * len(chunk) / 16000.0)
        return self._session.accept(chunk)

    def finish(self):
        return self._session.finish()


class SlowModel:
    def __init__(self, model):
        self._model = model

    def transcribe(self, audio):
        return self._model.transcribe(audio)

    def info(self):
        return self._model.info()

    def open_stream(self):
        return SlowSession(self._model.open_stream())


def load(job):
    return SlowModel(real.load(job))
'''


@pytest.fixture(scope="module")
def slow_image():
    client = docker.from_env()
    dockerfile = (f"FROM {BASE}\nCOPY edgeasr_backend_slow.py /opt/edgeasr/\n"
                  "ENV EDGEASR_ADAPTER=edgeasr_backend_slow\n").encode()
    build_test_image(client, TAG, {"Dockerfile": dockerfile, "edgeasr_backend_slow.py": ADAPTER.encode()})
    try:
        yield TAG
    finally:
        try:
            client.images.remove(TAG, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_a_backend_that_never_keeps_up_gets_capacity_0_and_a_growing_lag(slow_image, tmp_path):
    out = tmp_path / "cap"
    r = subprocess.run(
        [sys.executable, "-m", "runner.cli", "capacity", "--backend", "pocketsphinx", "--image", slow_image,
         "--limit", "2", "--sustain-s", "6", "--chunk-ms", "500", "--max-streams", "4", "--telemetry", "none",
         "--warmup", "0", "--no-prepare", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr[-4000:]
    answer = json.loads((out / "capacity.json").read_text())
    assert answer["streams"] == 0, answer
    assert [p["streams"] for p in answer["probes"]] == [1]  # one stream already fails: nothing more is tried
    why = answer["first_failed"]["reason"]
    assert why.startswith("the lag behind real time grew by ") or why.startswith("p99 finalization latency "), why
    record = json.loads((out / "conditions.jsonl").read_text().splitlines()[0])
    lag = record["summary"]["stream"]["lag_s"]
    assert record["status"] == "ok" and lag["bounded"] is False
    # 1.5 s of work per second of audio: over >= 6 s of audio the lag grows by seconds, never stays near 0
    assert lag["end"] > lag["middle"] + 1.0 and lag["end"] >= 2.0, lag
    head = next(text for text in r.stdout.splitlines() if text.startswith("capacity: "))
    assert head.startswith("capacity: 0 streams"), head
