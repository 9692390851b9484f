"""The pins every backend image shares (soundfile, soxr) are written once, in containers/common/shared-requirements.txt:
no per-image requirements.txt nor Dockerfile repeats them, yet every image installs exactly the pins it installed
before (requirements_text adds them; the build context carries the assembled file; the CUDA/Jetson variants get
them as the SHARED_PINS build argument), and `--set` still swaps one."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from runner.backends import BACKENDS, CONTAINERS_DIR, IMAGES, RUNNER_IMAGE
from runner.host.platforms import PLATFORMS
from runner.images.build import (SHARED_REQUIREMENTS, _context, build_args, pinned_versions, requirements_text,
                                 shared_pins, versions_label)

#: Each image's pins (in order) as its requirements.txt wrote them before the shared pins moved to one file,
#: captured from the files of that commit (the assembled files were checked byte-identical to them then, so no
#: image's pip layer cache was lost). Update a line here when a pin is bumped on purpose.
PINS_BEFORE = {
    "faster-whisper": "faster-whisper=1.2.1,ctranslate2=4.8.5,soundfile=0.14.0,soxr=1.1.0",
    "whisperx": "whisperx=3.8.6,torch=2.8.0,torchaudio=2.8.0,faster-whisper=1.2.1,ctranslate2=4.8.5,"
                "soundfile=0.14.0,soxr=1.1.0",
    "transformers": "torch=2.8.0,transformers=4.57.6,soundfile=0.14.0,soxr=1.1.0",
    "onnxruntime": "torch=2.8.0,transformers=4.57.6,onnxruntime=1.32.0,onnx=1.23.2,tokenizers=0.22.2,"
                   "soundfile=0.14.0,soxr=1.1.0",
    "pocketsphinx": "pocketsphinx=5.1.1,numpy=2.4.6,soundfile=0.14.0,soxr=1.1.0",
    "espnet": "espnet=202611,antlr4-python3-runtime=4.9.3,torch=2.14.1,torchaudio=2.11.1,soundfile=0.14.0,soxr=1.1.0",
    "runner": "docker=7.2.0,jiwer=4.0.0,pyyaml=6.0.4,rich=15.0.0,numpy=2.4.6,soundfile=0.14.0,"
              "whisper-normalizer=0.1.15,matplotlib=3.11.2,huggingface-hub=2.4.0,ray=2.60.0",
    "torch-base": "torch=2.8.0,torchaudio=2.8.0,whisperx=3.8.6,faster-whisper=1.2.1,ctranslate2=4.8.5,"
                  "soundfile=0.14.0,soxr=1.1.0",
    "torch-base-py313": "torch=2.14.1,torchaudio=2.11.1,soundfile=0.14.0,soxr=1.1.0",
}
SHARED = pinned_versions(SHARED_REQUIREMENTS)
PIN = re.compile(r"(?<![\w.\-=<>~!])([A-Za-z0-9][A-Za-z0-9._\-]*)==([0-9][^\s\"'\\;,)]*)")
VARIANTS = sorted(p for b in BACKENDS.values() for p in (CONTAINERS_DIR / b.build_dir).glob("Dockerfile.*"))


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_shared_file_holds_the_pins_every_backend_image_shares():
    assert SHARED == {"soundfile": "0.14.0", "soxr": "1.1.0"}


def test_every_image_installs_the_pins_it_installed_before():
    """Same pins, same versions, same order: the versions label (and so every stored label) is unchanged."""
    assert set(PINS_BEFORE) == set(IMAGES)
    for name, image in IMAGES.items():
        assert versions_label(image) == PINS_BEFORE[name], name


@pytest.mark.parametrize("name", [n for n in IMAGES if n != RUNNER_IMAGE.name])
def test_no_image_requirements_file_repeats_a_shared_pin(name):
    own = pinned_versions(IMAGES[name].requirements)
    assert not set(own) & set(SHARED), f"{IMAGES[name].requirements} repeats {sorted(set(own) & set(SHARED))}"


def test_no_dockerfile_repeats_a_shared_pin():
    for path in sorted(CONTAINERS_DIR.glob("*/Dockerfile*")):
        written = {_normalize(n) for n, _ in PIN.findall(path.read_text())}
        assert not written & set(SHARED), f"{path} writes {sorted(written & set(SHARED))}: use $SHARED_PINS"


def test_the_build_context_carries_the_assembled_requirements_without_any_set():
    with _context(BACKENDS["faster-whisper"]) as buf, tarfile.open(fileobj=buf) as tar:
        sent = {n: tar.extractfile(f"{i.build_dir}/requirements.txt").read().decode() for n, i in IMAGES.items()}
    for name, image in IMAGES.items():
        assert sent[name] == requirements_text(image), name
        assert ",".join(f"{k}={v}" for k, v in pinned_versions(sent[name]).items()) == PINS_BEFORE[name], name
    assert sent["runner"] == RUNNER_IMAGE.requirements.read_text()  # its build records this very file


def test_set_swaps_a_shared_pin_in_requirements_label_and_variant_argument():
    fw = BACKENDS["faster-whisper"]
    assert pinned_versions(requirements_text(fw, {"soxr": "1.0.0"}))["soxr"] == "1.0.0"
    assert versions_label(fw, {"soxr": "1.0.0"}).endswith("soundfile=0.14.0,soxr=1.0.0")
    with _context(fw, {"soxr": "1.0.0"}) as buf, tarfile.open(fileobj=buf) as tar:
        sent = tar.extractfile("faster-whisper/requirements.txt").read().decode()
        other = tar.extractfile("whisperx/requirements.txt").read().decode()
    assert pinned_versions(sent)["soxr"] == "1.0.0" and pinned_versions(other)["soxr"] == "1.1.0"
    args = build_args(fw, wheels_url="", versions="", base=None, platform="cuda", overrides={"soxr": "1.0.0"})
    assert args["SHARED_PINS"].split() == ["soundfile==0.14.0", "soxr==1.0.0"]
    assert "soxr==1.0.0" in shared_pins({"soxr": "1.0.0"}) and "soxr==1.1.0" in shared_pins()


@pytest.mark.parametrize("path", VARIANTS, ids=[f"{p.parent.name}/{p.name}" for p in VARIANTS])
def test_a_variant_installs_the_shared_pins_from_the_build_argument(path: Path):
    """A variant that installs soundfile/soxr does so from $SHARED_PINS, declared after its FROM, and
    `edgeasr images build` sets that argument to the shared file's pins (a JetPack 5 variant pins nothing)."""
    text = path.read_text()
    platform = next(p for p, spec in PLATFORMS.items() if spec.dockerfile == path.name)
    uses = "${SHARED_PINS" in text
    assert uses == ("soxr" in text and not path.name.endswith("-r35")), path
    if uses:
        assert re.search(r"^FROM .*\n(?:.*\n)*?ARG SHARED_PINS$", text, re.M), f"{path}: ARG SHARED_PINS after FROM"
        args = build_args(BACKENDS[path.parent.name], wheels_url="", versions="", base=None, platform=platform)
        assert dict(p.split("==") for p in args["SHARED_PINS"].split()) == SHARED
    assert "SHARED_PINS" not in build_args(BACKENDS["faster-whisper"], wheels_url="", versions="", base=None)
    assert "SHARED_PINS" not in build_args(BACKENDS["faster-whisper"], wheels_url="", versions="", base=None,
                                           platform="jetson-r35")
