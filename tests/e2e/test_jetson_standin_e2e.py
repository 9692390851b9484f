"""The Jetson images' Python side on local stand-ins of their bases (issue 25 item 4), built and run here under
emulation: each stand-in (runner/images/standin.py) and the project's own Jetson Dockerfile FROM it, for
linux/arm64; each image passes check-image, and one two-utterance CPU run of tiny.en records the stand-in's Python,
the versions its base carries and its emulation.

What this does not reach (containers/PLATFORMS.md, "Jetson stand-ins"): NVIDIA's bases, CUDA, the Jetson builds of
CTranslate2 or torch, the GPU. Emulated, the builds and runs take tens of minutes on a 2-core host: the tests run
only when EDGEASR_JETSON_STANDIN_E2E=1 asks (`make test-jetson-standin`), building what is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

from runner.images.standin import STANDINS

pytestmark = pytest.mark.e2e

DATA = ROOT / "data" / "default"
VARIANTS = [(s, backend, platform) for s in STANDINS.values() for backend, platform in s.builds]


def edgeasr(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def built() -> dict[str, float]:
    """Each stand-in and the Jetson images on it, built where missing; the seconds each build took."""
    import docker

    if os.environ.get("EDGEASR_JETSON_STANDIN_E2E") != "1":
        pytest.skip("the Jetson stand-ins build and run under emulation for tens of minutes here: "
                    "EDGEASR_JETSON_STANDIN_E2E=1 runs them (make test-jetson-standin)")
    client = docker.from_env()
    seconds = {}
    for s in STANDINS.values():
        wanted = [s.tag, *(s.variant_tag(b, p) for b, p in s.builds)]
        if all(client.images.list(name=ref) for ref in wanted):
            continue
        start = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "runner.images.standin", s.name], cwd=ROOT, capture_output=True,
                           text=True, timeout=5400)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        seconds[s.name] = time.monotonic() - start
        print(f"stand-in {s.name} and its Jetson images built in {seconds[s.name]:.0f} s")
    return seconds


@pytest.mark.parametrize("s,backend,platform", VARIANTS, ids=[f"{b}-{p}" for _, b, p in VARIANTS])
def test_the_jetson_dockerfile_builds_on_its_standin_and_passes_check_image(built, s, backend, platform):
    import docker

    tag = s.variant_tag(backend, platform)
    image = docker.from_env().images.get(tag)
    labels = image.labels
    assert image.attrs["Architecture"] == "arm64"
    assert labels["org.edgeasr.platform"] == platform and labels["org.edgeasr.base"] == s.tag
    r = edgeasr("check-image", tag, "--timeout", "1800", timeout=5400)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout


@pytest.mark.parametrize("s,backend,platform", VARIANTS, ids=[f"{b}-{p}" for _, b, p in VARIANTS])
def test_a_cpu_run_records_the_standins_python_versions_and_emulation(built, s, backend, platform, tmp_path):
    out = tmp_path / "run"
    r = edgeasr("run", "--backend", backend, "--model", "tiny.en", "--quant", "int8", "--device", "cpu",
                "--image", s.variant_tag(backend, platform), "--data", str(DATA), "--limit", "2",
                "--telemetry", "none", "--out", str(out), timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_scored"] == 2 and summary["image"]["architecture"] == "arm64"
    status = json.loads(next(out.rglob("status.json")).read_text())
    assert status["python"].startswith(s.python + ".")
    carried = dict(p.split("==") for p in s.pins)
    for name in ("faster-whisper", "ctranslate2"):
        assert status["versions"].get(name) == carried[name], status["versions"]
    if os.uname().machine != "aarch64":
        assert summary["emulation"]["image_arch"] == "arm64"
    print(f"{s.variant_tag(backend, platform)}: WER {summary['wer']:.4f} on 2, python {status['python']}, "
          f"versions {status['versions']}, compat {status.get('compat')}, emulation {summary.get('emulation')}")
