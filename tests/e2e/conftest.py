"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys

import docker
import pytest
from helpers import ROOT

from runner.backends import RUNNER_IMAGE
from runner.images.build import PUBLIC_BASE, runner_image_problem


@pytest.fixture(scope="session")
def runner_image() -> str:
    """The runner image, checked complete before a test starts it (regression, issue 26: compose had built it
    behind a TLS-intercepting proxy without its packages, and the tests' own starts of it failed): `make test`
    builds it first (`make runner-image`); where it is missing or incomplete it is built here, as that does."""
    client = docker.from_env()
    problem = runner_image_problem(client, RUNNER_IMAGE.image)
    if problem:
        base = os.environ.get("BASE_IMAGE") or PUBLIC_BASE
        r = subprocess.run([sys.executable, "-m", "runner.cli", "images", "build", "runner", "--missing",
                            "--base", base], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, f"{RUNNER_IMAGE.image}: {problem}, and building it failed:\n{r.stderr[-3000:]}"
        problem = runner_image_problem(client, RUNNER_IMAGE.image)
        assert problem is None, f"{RUNNER_IMAGE.image} was built, but {problem}"
    return RUNNER_IMAGE.image
