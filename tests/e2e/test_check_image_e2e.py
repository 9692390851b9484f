"""`edgeasr check-image` passes on every shipped backend image and fails on a deliberately broken one."""

from __future__ import annotations

import io
import subprocess
import sys

import docker
import pytest
from helpers import ROOT

from runner.launch.backends import BACKENDS

pytestmark = pytest.mark.e2e


def check(image: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", "check-image", image], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_shipped_images_pass(name):
    if BACKENDS[name].library == "torch":  # its test job runs the tiny random Whisper (no hub here)
        made = subprocess.run([sys.executable, "-m", "runner.cli", "models", "make-tiny"], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stderr
    r = check(BACKENDS[name].image)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and r.stdout.count("PASS") == 10  # 9 contract checks + the hardened settings


def test_a_broken_image_fails_with_reasons():
    client = docker.from_env()
    dockerfile = (b'FROM edgeasr/faster-whisper:latest\n'
                  b'ENV EDGEASR_ADAPTER=edgeasr_backend_that_does_not_exist\n'
                  b'LABEL org.edgeasr.contract="1"\n')
    tag = "edgeasr/broken-for-test:latest"
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    try:
        r = check(tag)
        assert r.returncode == 1
        lines = r.stdout.splitlines()
        assert any(line.startswith("FAIL  label org.edgeasr.contract: '1'") for line in lines)
        assert any(line.startswith("FAIL  tiny job: exit code") for line in lines)
        assert any(line.startswith("FAIL  tiny job: status.json") for line in lines)
        assert "checks passed" in lines[-1]
    finally:
        client.images.remove(tag, force=True)
