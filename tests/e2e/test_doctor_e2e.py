"""End to end on this host (no NVIDIA GPU, no hub): the real CLI's host preflight refuses CUDA at once, and
`edgeasr doctor` runs, exits 0 and says what is true here (issue 25, items 6 and 7b). Real engine, real images."""

from __future__ import annotations

import subprocess
import sys
import time

import docker
import pytest
from helpers import ROOT, engine_lock

from runner.host import platforms

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(platforms.has_nvidia_driver() or platforms.is_jetson(),
                                 reason="checks a host without an NVIDIA GPU (this machine)")]


def edgeasr(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _cuda_images() -> set[str]:
    """The CUDA images on the engine (other builds share it, so only these can say whether we built one)."""
    return {t for i in docker.from_env().images.list() for t in i.tags if t.endswith(":cuda")}


def test_cuda_requests_are_refused_at_once_in_one_sentence_and_nothing_is_built(tmp_path):
    """`edgeasr sweep experiments/gpu-frequency-sweep.yaml` and `edgeasr run --device cuda`: exit 2 within seconds,
    one line naming the missing GPU, no image built, no build log, no run folder."""
    with engine_lock("cuda-image"):  # no CUDA build of test_cuda_image_e2e beside it (two test workers)
        before = _cuda_images()
        log = ROOT / "build" / "image-faster-whisper-cuda.log"
        log_mtime = log.stat().st_mtime if log.exists() else None
        for args in (("sweep", "experiments/gpu-frequency-sweep.yaml", "--out", str(tmp_path / "sweep")),
                     ("run", "--device", "cuda", "--out", str(tmp_path / "run"))):
            t0 = time.monotonic()
            r = edgeasr(*args, timeout=120)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2 and len(lines) == 1, r.stderr
            assert "device cuda needs an NVIDIA GPU, and this host has none" in lines[0]
            assert "make images" not in lines[0] and time.monotonic() - t0 < 30
        assert _cuda_images() == before and (log.stat().st_mtime if log.exists() else None) == log_mtime
        assert not (tmp_path / "sweep").exists() and not (tmp_path / "run").exists()


def test_doctor_runs_here_exits_0_says_no_gpu_and_each_line_is_true_here():
    """`edgeasr doctor --json` on this host (the real engine, a container of each built image): exit 0; the engine's
    version is the engine's; no GPU, so CUDA is n/a with the preflight's sentence; every built backend image has its
    line and its libraries' answer from inside a container, whose CTranslate2 is the version its label names; the
    samplers, root and models lines match this host; the text view says the same."""
    import json
    import os

    client = docker.from_env()
    r = edgeasr("doctor", "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    lines = {(line["section"], line["name"]): line for line in data["lines"]}
    assert lines[("engine", "Docker Engine")]["detail"] == f"version {client.version()['Version']}"
    assert data["host"]["platform"] == "x86" and data["host"]["kind"] == "cpu"
    assert lines[("gpu", "--device cuda")]["status"] == "n/a"
    assert "device cuda needs an NVIDIA GPU, and this host has none" in lines[("gpu", "--device cuda")]["detail"]
    built = {t for i in client.images.list() for t in i.tags}
    images = {i["ref"]: i for i in data["images"]}
    for ref, image in images.items():
        assert image["present"] == (ref in built)
    fw = images.get("edgeasr/faster-whisper:latest")
    if fw is not None and fw["present"]:
        label = dict(kv.split("=", 1) for kv in fw["labels"]["org.edgeasr.versions"].split(","))
        assert fw["probe"]["ctranslate2"]["version"] == label["ctranslate2"] and not fw["gpu_requested"]
        assert fw["probe"]["ctranslate2"]["cuda_devices"] == 0
    rapl = lines[("samplers", "rapl")]
    assert (rapl["status"] == "ok") == (rapl["detail"] == "works here")
    if not os.path.isdir("/sys/class/powercap"):
        assert rapl["status"] == "n/a" and "/sys/class/powercap" in rapl["detail"]
    assert (lines[("power", "root")]["detail"].startswith("running as root")) == (os.geteuid() == 0)
    tiny = lines.get(("models", "tiny.en"))
    assert tiny is not None and (tiny["status"] == "ok") == (ROOT / "models" / "tiny.en" / "model.bin").is_file()
    text = edgeasr("doctor", "--no-containers", timeout=300)
    assert text.returncode == 0 and "no NVIDIA GPU" in text.stdout and "problem(s)" in text.stdout


@pytest.fixture(scope="module")
def fresh_image():
    """The faster-whisper image built from this checkout under a test tag (the shared one may predate the
    adapters' device_used): only the layers above the pinned install are rebuilt. Removed afterwards."""
    tag = "edgeasr-test/doctor-faster-whisper:latest"
    r = edgeasr("images", "build", "faster-whisper", "--tag", tag, timeout=1800)
    assert r.returncode == 0, r.stderr[-2000:]
    yield tag
    try:
        docker.from_env().images.remove(tag, force=True)
    except docker.errors.DockerException:
        pass


def test_the_summary_records_the_device_the_backend_ran_on(fresh_image, tmp_path):
    """Issue 25, item 7, on the real engine and weights: the adapter reports where CTranslate2 loaded the model, and
    the summary of a CPU run says cpu (no GPU here to show a CUDA job ending on the CPU: the unit tests do)."""
    import json

    r = edgeasr("run", "--image", fresh_image, "--limit", "2", "--out", str(tmp_path / "r"), "--json", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["device"] == "cpu" and summary["device_used"] == "cpu"
    assert "device_used" not in summary["unavailable"]
    events = [json.loads(line) for line in (tmp_path / "r" / "raw" / "events.jsonl").read_text().splitlines()]
    assert next(e for e in events if e["event"] == "model_info")["device_used"] == "cpu"
