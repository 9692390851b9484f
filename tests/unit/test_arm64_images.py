"""arm64 images (issue 25): the x86 Dockerfiles built for linux/arm64 on an arm64 local base, from a host
wheelhouse keyed by architecture and Python; the build sequence is exercised against stand-ins for the engine
and pip (the real builds under emulation are tests/e2e/test_arm64_e2e.py)."""

from __future__ import annotations

import argparse

import pytest

from runner.backends import BACKENDS, IMAGES, RUNNER_IMAGE
from runner.images import build as images
from runner.images import make


def test_the_wheelhouse_is_keyed_by_machine_and_python(monkeypatch, tmp_path):
    fw, es = BACKENDS["faster-whisper"], BACKENDS["espnet"]
    monkeypatch.setattr(type(fw), "wheelhouse", property(lambda self: tmp_path / self.name))
    assert images.wheelhouse(fw) == tmp_path / "faster-whisper" / "x86_64-py3.11"
    assert images.wheelhouse(fw, "arm64") == tmp_path / "faster-whisper" / "aarch64-py3.11"
    assert images.wheelhouse(es, "arm64") == tmp_path / "espnet" / "aarch64-py3.13"
    assert images.BASES["3.11"].wheel_platforms_for("arm64") == (
        ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 37)])
    assert images.BASES["3.11"].wheel_platforms[-1] == "manylinux_2_36_x86_64"  # unchanged


def test_wheels_of_an_unkeyed_wheelhouse_move_into_the_x86_key(monkeypatch, tmp_path):
    """A wheelhouse filled before the key existed holds x86_64 wheels of the image's Python at its top: they are
    kept (moved), not downloaded again; an arm64 build never sees them."""
    fw = BACKENDS["faster-whisper"]
    monkeypatch.setattr(type(fw), "wheelhouse", property(lambda self: tmp_path / self.name))
    old = tmp_path / "faster-whisper" / "ctranslate2-4.8.5-cp311-cp311-manylinux_2_27_x86_64.whl"
    old.parent.mkdir()
    old.write_bytes(b"w")
    assert not any(images.wheelhouse(fw, "arm64").glob("*.whl")) and old.exists()
    keyed = images.wheelhouse(fw)
    assert not old.exists() and (keyed / old.name).read_bytes() == b"w"


def test_the_arm64_wheelhouse_asks_pip_for_aarch64_wheels(monkeypatch, tmp_path):
    fw = BACKENDS["faster-whisper"]
    monkeypatch.setattr(type(fw), "wheelhouse", property(lambda self: tmp_path / self.name))
    calls = []
    monkeypatch.setattr(images, "_pip", lambda image, args, arch="amd64": calls.append((args, arch)))
    images.fill_wheelhouse(fw, log=lambda m: None, arch="arm64")
    ((download, arch),) = calls
    assert arch == "arm64"  # its markers evaluated for aarch64 (pip_command)
    plats = [download[i + 1] for i, a in enumerate(download) if a == "--platform"]
    assert plats and all(p.endswith("_aarch64") for p in plats)
    assert download[download.index("--dest") + 1] == str(tmp_path / "faster-whisper" / "aarch64-py3.11")
    assert download[download.index("--python-version") + 1] == "3.11"


class _Client:
    """An engine stand-in that holds ``present`` images and cannot pull."""

    def __init__(self, present=()):
        self.present = set(present)
        self.images = self
        self.pulled = []

    def get(self, ref):
        from docker.errors import ImageNotFound

        if ref not in self.present:
            raise ImageNotFound(ref)

    def pull(self, ref, *a, **k):
        self.pulled.append(ref)
        from docker.errors import APIError

        raise APIError("no registry", explanation="no such host")


def test_an_arm64_base_on_an_x86_host_is_the_local_arm64_one_never_the_public_tag(monkeypatch):
    """A pull by the public tag would put an arm64 image under the host's python:3.11-slim-bookworm: the arm64
    base is the local one with its own tag, debootstrapped for arm64 (ARCH=arm64) when missing."""
    monkeypatch.setattr(images, "host_arch", lambda machine=None: "amd64")
    calls = []
    monkeypatch.setattr(images.subprocess, "run",
                        lambda cmd, **k: calls.append((cmd, (k.get("env") or {}).get("ARCH"))) or
                        argparse.Namespace(returncode=0))
    client = _Client(["python:3.11-slim-bookworm"])
    assert images.ensure_base(client, images.PUBLIC_BASE, log=lambda m: None, arch="arm64") == \
        "edgeasr/base:bookworm-arm64"
    (cmd, arch), = calls
    assert cmd[-2:] == ["edgeasr/base:bookworm-arm64", "bookworm"] and arch == "arm64"
    assert client.pulled == []
    calls.clear()
    present = _Client(["edgeasr/base:bookworm-arm64"])
    assert images.ensure_base(present, images.PUBLIC_BASE, log=lambda m: None, arch="arm64") == \
        "edgeasr/base:bookworm-arm64" and not calls


def test_make_images_platform_arm64_builds_the_three_backends_for_arm64(monkeypatch, tmp_path):
    """`make images PLATFORM=arm64`: the backends with an arm64 row, each from its x86 Dockerfile with the
    platform arm64 (so linux/arm64 and its label), tagged :arm64; onnxruntime on the arm64 torch stack; the others
    skipped saying why; the runner (a host tool) not built for another CPU; wheels of aarch64."""
    monkeypatch.setattr(make, "host_arch", lambda machine=None: "amd64")
    asked, built, filled, said = [], [], [], []
    monkeypatch.setattr(make, "image_exists", lambda client, ref: False)
    monkeypatch.setattr(make, "ensure_base", lambda client, base, log, **k: asked.append((base, k)) or "arm64/base")
    monkeypatch.setattr(make, "fill_wheelhouse", lambda image, **k: filled.append((image.name, k.get("arch"))))
    monkeypatch.setattr(make, "build_image",
                        lambda client, image, **k: built.append((k["tag"], k["base"], k.get("platform"))) or "sha256:x")
    names = (*BACKENDS, RUNNER_IMAGE.name)
    make.build_images(object(), make.BuildRequest(names=names, platform="arm64", log_dir=tmp_path), log=said.append)
    assert asked == [(images.PUBLIC_BASE, {"arch": "arm64"})]
    assert sorted(built) == [("edgeasr/faster-whisper:arm64", "arm64/base", "arm64"),
                             ("edgeasr/onnxruntime:arm64", "edgeasr/torch-base:2.8-arm64", "arm64"),
                             ("edgeasr/pocketsphinx:arm64", "arm64/base", "arm64"),
                             ("edgeasr/torch-base:2.8-arm64", "arm64/base", "arm64")]
    tags = [tag for tag, _, _ in built]  # side by side (--jobs), the parent still before its child
    assert tags.index("edgeasr/torch-base:2.8-arm64") < tags.index("edgeasr/onnxruntime:arm64")
    assert all(arch == "arm64" for _, arch in filled)
    skipped = [s for s in said if s.startswith("skipped")]
    assert any("whisperx" in s for s in skipped) and any("runner image" in s for s in skipped)


def test_the_x86_build_is_unchanged_by_the_arm64_row(monkeypatch, tmp_path):
    built = []
    monkeypatch.setattr(make, "image_exists", lambda client, ref: False)
    monkeypatch.setattr(make, "ensure_base", lambda client, base, log, **k: f"local/{base}" if not k else pytest.fail())
    monkeypatch.setattr(make, "fill_wheelhouse", lambda image, **k: "arch" in k and pytest.fail())
    monkeypatch.setattr(make, "build_image",
                        lambda client, image, **k: built.append((k["tag"], k.get("platform"))) or "sha256:x")
    make.build_images(object(), make.BuildRequest(names=("onnxruntime",), log_dir=tmp_path), log=lambda m: None)
    assert built == [("edgeasr/torch-base:2.8", None), ("edgeasr/onnxruntime:latest", None)]
    assert IMAGES["torch-base"].image == "edgeasr/torch-base:2.8"


def test_pip_for_another_machine_evaluates_markers_for_it(monkeypatch):
    """pip evaluates a requirement's environment markers for the machine it runs on, whatever --platform says:
    torch's `triton; platform_machine == "x86_64"` was fetched for the arm64 wheelhouse (and failed). pip run by
    pip_command for arm64 takes aarch64 as its machine; for the host's architecture it is plain `python -m pip`."""
    import subprocess
    import sys

    monkeypatch.setattr(images, "host_arch", lambda machine=None: "amd64")
    assert images.pip_command(["--version"]) == [sys.executable, "-m", "pip", "--version"]
    probe = ("from pip._vendor.packaging.markers import Marker; "
             "print(Marker(\"platform_machine == 'x86_64'\").evaluate())")
    cmd = images.pip_command(["--version"], "arm64")
    code = cmd[cmd.index("-c") + 1].replace("runpy.run_module('pip', run_name='__main__', alter_sys=True)", probe)
    out = subprocess.run([sys.executable, "-c", code, "aarch64"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-c", code, "x86_64"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    version = subprocess.run(cmd, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("pip ")


def test_the_arm64_torch_stack_skips_ffmpeg_and_the_x86_one_keeps_it():
    """The arm64 base has no FFmpeg and no arm64 image loads it: the torch stack (onnxruntime's parent) is told
    not to apt-get it, which under emulation would configure FFmpeg's dependencies for many minutes."""
    arm = images.build_args(IMAGES["torch-base"], wheels_url="", versions="", base="b", platform="arm64")
    x86 = images.build_args(IMAGES["torch-base"], wheels_url="", versions="", base="b", platform="x86")
    assert arm["FFMPEG_LIBS"] == "none" and "FFMPEG_LIBS" not in x86
    dockerfile = (images.CONTAINERS_DIR / "torch-base" / "Dockerfile").read_text()
    assert 'ARG FFMPEG_LIBS=' in dockerfile and '[ "$FFMPEG_LIBS" = none ] ||' in dockerfile
