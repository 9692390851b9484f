"""`edgeasr check-image` passes on every shipped backend image and fails on a deliberately broken one."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import docker
import pytest
from helpers import ROOT

from runner.backends import BACKENDS

pytestmark = pytest.mark.e2e


def edgeasr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)


def check(image: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return edgeasr("check-image", image, env=env)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_shipped_images_pass(name):
    if BACKENDS[name].library == "torch":  # its test job runs the tiny random Whisper (no hub here)
        made = subprocess.run([sys.executable, "-m", "runner.cli", "models", "make-tiny"], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stderr
    r = check(BACKENDS[name].image)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout and r.stdout.count("PASS") == 11  # 10 contract checks + the hardened settings


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


def test_an_image_without_the_contract_label_runs_only_once_check_image_passed_it(tmp_path):
    """Issue 20, item 6f: an image whose contract label is empty (a hand build without EDGEASR_CONTRACT) is refused
    with the command to run; check-image passes it and records its id; then it runs."""
    client = docker.from_env()
    tag = "edgeasr-test/unlabelled-for-test:latest"
    client.images.build(fileobj=io.BytesIO(b'FROM edgeasr/faster-whisper:latest\nLABEL org.edgeasr.contract=""\n'),
                        tag=tag, rm=True)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    run = ("run", "--image", tag, "--data", "data/default", "--limit", "1", "--warmup", "0", "--telemetry", "none")
    try:
        refused = edgeasr(*run, "--out", str(tmp_path / "a"), env=env)
        assert refused.returncode == 2 and f"image {tag} has no org.edgeasr.contract label" in refused.stderr
        assert f"run `edgeasr check-image {tag}` once" in refused.stderr
        checked = check(tag, env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "PASS  label org.edgeasr.contract: none" in checked.stdout and "recorded by its id" in checked.stdout
        ran = edgeasr(*run, "--out", str(tmp_path / "b"), env=env)
        assert ran.returncode == 0, ran.stderr
    finally:
        client.images.remove(tag, force=True)
