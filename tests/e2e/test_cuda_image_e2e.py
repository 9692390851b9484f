"""The x86 CUDA faster-whisper image (issue 25, item 4b), built and checked on whatever host runs the tests.

Where NVIDIA's base (nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04) can be neither found nor pulled (no registry,
as here and in CI), `edgeasr images build --platform cuda` builds it on the local Debian base, with NVIDIA's CUDA
runtime, cuBLAS and cuDNN from their PyPI wheels (containers/common/cuda-requirements.txt) served from the host's
wheelhouse, and labels the CUDA libraries it holds. check-image then passes its contract checks and loads those
libraries without a GPU; its GPU check runs where a GPU is visible, and elsewhere says it was not run (SKIP), which
is no failure. Only faster-whisper: the torch images' CUDA variants are thin layers on the torch stack and need no
new packages, but the torch stack itself is a 7 GB build (`make images PLATFORM=cuda` builds them all).

Cost: a 1.3 GB download into the wheelhouse once (kept between runs), about 3 minutes of build on 2 cores, and
one check-image (about 20 s); a rebuild from an unchanged checkout is all cache.
"""

from __future__ import annotations

import subprocess
import sys

import docker
import pytest
from helpers import ROOT, engine_lock

from edgeasr_entrypoint import cuda_libs
from edgeasr_entrypoint.contract import CUDA_LIBS_LABEL
from runner.images.build import BASES, CUDA_REQUIREMENTS, pinned_versions

pytestmark = pytest.mark.e2e

IMAGE = "edgeasr/faster-whisper:cuda"


def edgeasr(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def cuda_image() -> dict[str, str]:
    """Build the image (from cache when the checkout is unchanged); its labels."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker Engine here ({exc}): the CUDA image cannot be built")
    with engine_lock("cuda-image"):  # test_doctor_e2e watches for CUDA builds (two test workers)
        r = edgeasr("images", "build", "faster-whisper", "--platform", "cuda")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return client.images.get(IMAGE).labels


def test_it_is_built_on_nvidias_base_or_the_local_one_with_nvidias_wheels(cuda_image):
    labels = cuda_image
    assert labels["org.edgeasr.platform"] == "cuda" and labels["org.edgeasr.backend"] == "faster-whisper"
    libs = cuda_libs.parse_label(labels.get(CUDA_LIBS_LABEL))
    assert {"cublas", "cudnn"} <= set(libs), labels.get(CUDA_LIBS_LABEL)
    if labels["org.edgeasr.base"] == BASES["3.11"].local:  # the fallback: exactly the wheels of the file
        wheels = {n[len("nvidia-"):-len("-cu12")]: v for n, v in pinned_versions(CUDA_REQUIREMENTS).items()}
        assert libs == wheels


def test_check_image_passes_and_says_whether_it_ran_the_gpu_check(cuda_image):
    r = edgeasr("check-image", IMAGE, timeout=900)
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    assert "FAIL" not in out
    assert f"PASS  label {CUDA_LIBS_LABEL}: " in out
    assert "PASS  CUDA libraries load: libcublas.so.12, libcublasLt.so.12, libcudart.so.12, libcudnn.so.9 load" in out
    assert "PASS  CUDA builds: CTranslate2 4.8.5" in out
    # 11 of every image, the CUDA label, builds and libraries' load, and the tiny job on cuda where a GPU is visible
    if "SKIP" in out:  # none here: said, and counted apart, never a failure
        assert "SKIP  tiny job on cuda: not run: no GPU visible here: device cuda needs" in out
        assert out.count("PASS") == 14
        assert "14 of 14 checks passed, 1 not run (tiny job on cuda: no GPU visible)" in out.splitlines()[-1]
    else:
        assert out.count("PASS") == 15 and "PASS  tiny job on cuda: exit 0, device used cuda" in out
