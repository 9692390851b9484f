"""The Jetson images' Python side on local stand-ins (issue 25 item 4): a Debian arm64 base with the Python layout
and the CPU-only PyPI builds of the libraries the NVIDIA base carries, and the project's own Jetson Dockerfiles
built FROM it for linux/arm64. The sequence is checked here against stand-ins for the engine and pip; the real
emulated builds are tests/e2e/test_jetson_standin_e2e.py."""

from __future__ import annotations

import pytest

from runner.backends import BACKENDS, CONTAINERS_DIR
from runner.host.platforms import PLATFORMS
from runner.images import build as images
from runner.images import standin


def test_bullseye_is_the_python_39_base_with_ubuntu_2004s_glibc():
    """Python 3.9 is the nearest to JetPack 5's 3.8 that Debian has for aarch64; bullseye's glibc 2.31 is Ubuntu
    20.04's, so the wheels it takes are those an r35 image could take."""
    b = images.BASES["3.9"]
    assert b.suite == "bullseye" and b.glibc_minor == 31
    assert b.local_for("arm64") == "edgeasr/base:bullseye-arm64"
    assert b.wheel_platforms_for("arm64")[-1] == "manylinux_2_31_aarch64"


@pytest.mark.parametrize("s", standin.STANDINS.values(), ids=lambda s: s.name)
def test_each_standin_stands_for_the_default_base_of_the_dockerfiles_built_on_it(s):
    for backend, platform in s.builds:
        dockerfile = CONTAINERS_DIR / BACKENDS[backend].build_dir / PLATFORMS[platform].dockerfile
        assert images.dockerfile_base(dockerfile) == s.stands_for, dockerfile
        assert PLATFORMS[platform].arch == "arm64"
    assert s.python in images.BASES  # a Debian suite make-base.sh builds


def test_r35_is_a_system_python3_of_3_9_with_faster_whisper_0_10_on_ctranslate2_3():
    s = standin.STANDINS["r35"]
    assert (s.stands_for, s.stands_for_python, s.python, s.venv) == ("dustynv/whisperx:r35.3.1", "3.8", "3.9", "")
    pins = images.pinned_versions("\n".join(s.pins))
    assert pins["faster-whisper"] == "0.10.1" and pins["ctranslate2"] == "3.24.0"
    assert s.no_deps == ("faster-whisper==0.10.1",) and pins["av"] == "12.0.0"  # its av==10.* has no wheel
    assert pins["numpy"] == "1.24.4"  # the newest numpy of Python 3.8, the real base's Python
    assert images.wheelhouse(s.image, "arm64").parts[-3:] == ("jetson-standin", "wheels", "aarch64-py3.9")


def test_r36_is_a_venv_first_on_path_with_faster_whisper_1_1_on_ctranslate2_4_5():
    s = standin.STANDINS["r36"]
    assert (s.stands_for, s.stands_for_python, s.python, s.venv) == (
        "dustynv/faster-whisper:r36.4.0-cu128-24.04", "3.12", "3.11", "/opt/venv")
    pins = images.pinned_versions("\n".join(s.packages))
    assert pins["faster-whisper"] == "1.1.1" and pins["ctranslate2"] == "4.5.0"
    assert images.wheelhouse(s.image, "arm64").name == "aarch64-py3.11"


def test_the_standin_and_the_jetson_images_on_it_are_built_in_order(monkeypatch, tmp_path):
    """The Debian arm64 base (debootstrapped where missing), the wheelhouse of the stand-in's aarch64 wheels, the
    stand-in (the layout and packages as build arguments), then each Jetson Dockerfile FROM it under its own tag."""
    calls = []
    monkeypatch.setattr(standin, "ensure_base", lambda client, base, log, arch: calls.append(("base", base, arch))
                        or "edgeasr/base:bullseye-arm64")
    monkeypatch.setattr(standin, "fill_wheelhouse",
                        lambda image, log, arch, only=None, overrides=None, only_overrides=False:
                        calls.append(("wheels", image.python, tuple(only or ()), overrides, only_overrides, arch)))
    monkeypatch.setattr(standin, "build_image", lambda client, image, **k: calls.append(("standin", k)) or "sha256:s")
    monkeypatch.setattr(standin, "build_images", lambda client, req, log: calls.append(("variant", req)))
    s = standin.STANDINS["r35"]
    standin.build_standin(object(), s, log=lambda m: None, log_dir=tmp_path)
    (base, wheels, no_deps, (_, built), (_, req)) = calls
    assert base == ("base", "python:3.9-slim-bullseye", "arm64")
    assert wheels == ("wheels", "3.9", s.packages, None, False, "arm64")
    assert no_deps == ("wheels", "3.9", (), {"faster-whisper": "0.10.1"}, True, "arm64")
    assert built["base"] == "edgeasr/base:bullseye-arm64" and built["tag"] == s.tag == "edgeasr/standin:jetson-r35"
    assert built["platform"] == "arm64"
    assert built["extra_args"] == {"VENV": "", "PACKAGES": " ".join(s.packages), "NO_DEPS": "faster-whisper==0.10.1",
                                   "STANDS_FOR": s.stands_for}
    assert built["versions"] == ",".join(p.replace("==", "=") for p in s.pins) and "faster-whisper=0.10.1" in \
        built["versions"]
    assert (req.names, req.platform, req.base, req.tag) == (
        ("faster-whisper",), "jetson-r35", s.tag, "edgeasr/faster-whisper:jetson-r35-standin-arm64")


def test_the_build_context_leaves_the_standin_wheelhouse_out(monkeypatch, tmp_path):
    """The wheels are served to the build, never sent in its context (as for the table's images)."""
    import tarfile

    s = standin.STANDINS["r35"]
    house = images.wheelhouse(s.image, "arm64")
    house.mkdir(parents=True, exist_ok=True)
    probe = house / "probe-0-py3-none-any.whl"
    probe.write_bytes(b"w")
    try:
        with images._context(s.image) as ctx, tarfile.open(fileobj=ctx) as tar:
            names = tar.getnames()
    finally:
        probe.unlink()
    assert "base/jetson-standin/Dockerfile" in names
    assert not any("jetson-standin/wheels" in n for n in names)


def test_build_image_passes_extra_build_arguments(monkeypatch):
    """The stand-in's layout and packages reach its Dockerfile as build arguments (build_image's extra_args)."""
    seen = {}

    class _Api:
        def build(self, **k):
            seen.update(k["buildargs"])
            return iter([{"stream": "Step 1/1 : FROM x\n"}])

    class _Client:
        api = _Api()

        class images:  # noqa: N801 - the docker client's attribute
            @staticmethod
            def get(tag):
                return type("I", (), {"id": "sha256:abc"})()

    s = standin.STANDINS["r36"]
    images.build_image(_Client(), s.image, base="b", tag=s.tag, platform="arm64", versions="",
                       wheels_url="http://127.0.0.1:1/", extra_args={"VENV": "/opt/venv"})
    assert seen["VENV"] == "/opt/venv" and seen["BASE_IMAGE"] == "b"
