"""A JetPack 6 (jetson-r36) image's org.edgeasr.versions label is what the image holds, not the requirements' pins.

Its Dockerfile.jetson keeps whatever its base already carries (dustynv/faster-whisper:r36.4.0 brings its own
faster-whisper and CTranslate2) and installs the pins only where a package is missing, so the pins say nothing
about the image: the build writes what it ended up with (edgeasr_entrypoint/held_versions.py) to the platform's
versions file and `edgeasr images build` labels that, built twice as JetPack 5's. Checked here against stand-ins for
the engine (the stand-in base's figures: faster-whisper 1.1.1 on CTranslate2 4.5.0, requirements.txt pins 1.2.1
on 4.8.5); the real emulated build is `python -m runner.images.standin r36`."""

from __future__ import annotations

import contextlib
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from edgeasr_entrypoint import held_versions
from edgeasr_entrypoint.contract import VERSIONS_FILE
from runner.backends import BACKENDS
from runner.host.platforms import PLATFORMS
from runner.images import build as images
from runner.images import make

#: What the r36 stand-in base carries (runner/images/standin.py STANDINS["r36"]), as its build writes it.
HELD = "faster-whisper=1.1.1,ctranslate2=4.5.0,soundfile=0.14.0,soxr=1.1.0"


def test_a_jetson_r36_build_labels_what_the_image_holds_not_the_pins(monkeypatch, tmp_path):
    builds, reads = [], []
    monkeypatch.setattr(make, "build_image", lambda client, image, **k: builds.append(k) or "sha256:" + "a" * 64)
    monkeypatch.setattr(make, "read_carried_versions",
                        lambda client, tag, path, allow_empty=False: reads.append((tag, path)) or HELD)
    monkeypatch.setattr(make, "serve_wheelhouse", lambda folder, port: contextlib.nullcontext("http://127.0.0.1:1/"))
    tag = "edgeasr/faster-whisper:jetson-r36-standin-arm64"
    make.build_images(object(), make.BuildRequest(names=("faster-whisper",), platform="jetson-r36",
                                                  base="edgeasr/standin:jetson-r36", tag=tag, log_dir=tmp_path),
                      log=lambda m: None)
    assert reads == [(tag, VERSIONS_FILE)]
    first, second = builds
    assert first["versions"] == "" and second["versions"] == HELD
    assert "faster-whisper=1.2.1" in images.versions_label(BACKENDS["faster-whisper"], platform="jetson-r36")
    assert first["base"] == second["base"] == "edgeasr/standin:jetson-r36" and first["tag"] == second["tag"] == tag


def test_jetpack6_records_its_versions_where_jetpack5_does():
    assert PLATFORMS["jetson-r36"].versions_file == PLATFORMS["jetson-r35"].versions_file == VERSIONS_FILE


@pytest.mark.parametrize("platform, passed", [("jetson-r36", True), ("jetson-r35", False), ("cuda", True),
                                              ("x86", False)])
def test_the_shared_pins_go_to_the_variants_that_install_them(platform, passed):
    """JetPack 6's Dockerfiles install the shared pins where the base lacks them (their SHARED_PINS), whether or
    not they record what they hold; JetPack 5's keep their base's builds and declare none."""
    args = images.build_args(BACKENDS["faster-whisper"], wheels_url="", versions="", base=None, platform=platform)
    assert ("SHARED_PINS" in args) == passed
    if passed:
        assert args["SHARED_PINS"] == images.shared_pins()


def test_held_versions_are_the_installed_ones_of_the_pinned_names(tmp_path):
    """Each package the requirements pin, at the version installed (not the pin's), names normalized as the label
    spells them; a package the image lacks is left out, not claimed."""
    pytest_version = importlib.metadata.version("pytest")
    text = ("# a comment\nPyTest==0.0.1  # pinned, not installed at that version\n"
            "edgeasr-no-such-package==1.0\nPluggy[extra]==0.0.2\n")
    assert held_versions.held(held_versions.pinned_names(text)) == {
        "pytest": pytest_version, "pluggy": importlib.metadata.version("pluggy")}
    req = tmp_path / "requirements.txt"
    req.write_text(text)
    out = subprocess.run([sys.executable, "-m", "edgeasr_entrypoint.held_versions", str(req)], capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(Path(held_versions.__file__).parents[1])})
    assert out.stdout == f"pytest={pytest_version},pluggy={importlib.metadata.version('pluggy')}\n"
    assert "edgeasr-no-such-package" in out.stderr


def test_a_module_installed_under_another_distribution_name_reports_its_own_version(monkeypatch):
    """The Jetson index's onnxruntime-gpu holds the `onnxruntime` module that requirements.txt pins as onnxruntime:
    its version comes from the module where no distribution has the pinned name."""
    fake = type(sys)("edgeasr_fake_gpu_build")
    fake.__version__ = "1.23.0"
    monkeypatch.setitem(sys.modules, "edgeasr_fake_gpu_build", fake)
    assert held_versions.held(["edgeasr-fake-gpu-build"]) == {"edgeasr-fake-gpu-build": "1.23.0"}
