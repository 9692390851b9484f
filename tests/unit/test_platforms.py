"""Platform selection: on a Jetson the L4T release in /etc/nv_tegra_release picks the JetPack 5 (jetson-r35)
or JetPack 6 (jetson-r36) image variant, for `images build`, `run` and `sweep` alike (runner/host/platforms.py),
and the Makefile picks the same; elsewhere x86. Read from fake release files with the real first lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

import fake_docker
import pytest
from helpers import ROOT

from runner.errors import UserError
from runner.host.platforms import (PLATFORMS, default_image, detect_platform, l4t_release, platform_image,
                                   resolve_platform)

RELEASES = ROOT / "tests" / "fixtures" / "nv_tegra_release"


@pytest.mark.parametrize("name, release, platform", [
    ("r35.4.1", (35, "4.1"), "jetson-r35"),
    ("r35.5.0", (35, "5.0"), "jetson-r35"),
    ("r36.4.0", (36, "4.0"), "jetson-r36"),
])
def test_the_l4t_release_picks_the_jetpack_variant(name, release, platform):
    path = RELEASES / name
    assert l4t_release(path) == release
    assert detect_platform(path) == platform
    assert resolve_platform("auto", path) == resolve_platform("jetson", path) == platform
    assert default_image("edgeasr/whisperx:latest", path) == f"edgeasr/whisperx:{platform}"


def test_without_a_release_file_it_is_x86_and_the_cpu_image(tmp_path):
    missing = tmp_path / "nv_tegra_release"
    assert l4t_release(missing) is None
    assert detect_platform(missing) == "x86"
    assert default_image("edgeasr/faster-whisper:latest", missing) == "edgeasr/faster-whisper:latest"
    with pytest.raises(UserError, match="not a Jetson"):
        resolve_platform("jetson", missing)


def test_a_release_without_a_gpu_variant_is_a_clear_error():
    with pytest.raises(UserError) as err:
        detect_platform(RELEASES / "r32.7.4")
    message = str(err.value)
    assert "R32.7.4" in message and "R35 (jetson-r35)" in message and "R36 (jetson-r36)" in message
    assert "--platform x86" in message


def test_an_unreadable_release_line_is_a_clear_error(tmp_path):
    bad = tmp_path / "nv_tegra_release"
    bad.write_text("R35.4.1\n")
    with pytest.raises(UserError, match="does not start like"):
        detect_platform(bad)


def test_a_platform_named_explicitly_wins_and_an_unknown_one_is_refused():
    assert resolve_platform("cuda", RELEASES / "r35.4.1") == "cuda"
    assert resolve_platform("jetson-r36", RELEASES / "r35.4.1") == "jetson-r36"
    with pytest.raises(UserError, match="unknown platform 'jetson-r34'"):
        resolve_platform("jetson-r34")


def test_every_platform_tag_is_distinct():
    tags = [p.tag for p in PLATFORMS.values()]
    assert len(tags) == len(set(tags))
    assert platform_image("edgeasr/transformers:latest", "jetson-r35") == "edgeasr/transformers:jetson-r35"


def make_variable(name: str, **overrides: str) -> str:
    args = ["make", "-s", "-C", str(ROOT), "--no-print-directory", f"print-{name}"]
    args += [f"{k}={v}" for k, v in overrides.items()]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout.strip()


@pytest.mark.parametrize("name, platform", [("r35.4.1", "jetson-r35"), ("r36.4.0", "jetson-r36")])
def test_the_makefile_picks_the_same_platform_and_tag(name, platform):
    release = RELEASES / name
    assert make_variable("PLATFORM_NAME", TEGRA_RELEASE=str(release)) == platform
    assert make_variable("PLATFORM_TAG", TEGRA_RELEASE=str(release)) == PLATFORMS[platform].tag
    # `make run` passes no image and no device of its own: the runner picks the board's image itself
    flags = make_variable("RUN_FLAGS", TEGRA_RELEASE=str(release), BACKEND="whisperx").split()
    assert "--image" not in flags and "--device" not in flags
    # PLATFORM=jetson (as before) means this board's release
    assert make_variable("PLATFORM_TAG", TEGRA_RELEASE=str(release), PLATFORM="jetson") == PLATFORMS[platform].tag


def test_the_makefile_is_x86_without_a_release_file(tmp_path):
    assert make_variable("PLATFORM_NAME", TEGRA_RELEASE=str(tmp_path / "none")) == "x86"
    assert make_variable("PLATFORM_TAG", TEGRA_RELEASE=str(tmp_path / "none")) == "latest"



def test_the_makefile_passes_only_what_the_user_set():
    """Issue 10: one default for each setting, the runner's; `make run` adds --device, --image, --model and
    --quant (and --data) only when DEVICE, IMAGE, MODEL and QUANT (DATA) are given (its DEVICE default once differed from the CLI's)."""
    assert make_variable("RUN_FLAGS").split() == ["--backend", "faster-whisper"]
    flags = make_variable("RUN_FLAGS", DEVICE="cuda", IMAGE="my/image:1", MODEL="base", QUANT="fp16").split()
    for option, value in (("--device", "cuda"), ("--image", "my/image:1"), ("--model", "base"), ("--quant", "fp16")):
        assert flags[flags.index(option) + 1] == value
    assert make_variable("BACKENDS") == ""  # `edgeasr images build` with no names builds every row of the table


@pytest.mark.parametrize("name, platform", [("r35.4.1", "jetson-r35"), ("r36.4.0", "jetson-r36")])
def test_run_without_an_image_takes_the_boards_variant(tmp_path, root, monkeypatch, name, platform):
    from dataclasses import replace

    from runner.spec import Settings, build_run_spec

    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", RELEASES / name)
    medium = Settings(model="medium", quant="int8", dataset=str(root / "data" / "default"))
    spec = build_run_spec(medium, out=str(tmp_path / "o"), models_dir=tmp_path)
    assert spec.image == f"edgeasr/faster-whisper:{platform}"
    named = build_run_spec(replace(medium, image="my/image:1"), out=str(tmp_path / "o2"), models_dir=tmp_path)
    assert named.image == "my/image:1"


def test_run_on_a_jetson_release_without_a_variant_says_so_with_the_fix(tmp_path, root, monkeypatch):
    from runner.spec import Settings, build_run_spec

    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", RELEASES / "r32.7.4")
    with pytest.raises(UserError, match=r"R32\.7\.4.*--image"):
        build_run_spec(Settings(model="medium", quant="int8", dataset=str(root / "data" / "default")),
                       out=str(tmp_path / "o"), models_dir=tmp_path)


@pytest.mark.parametrize("name, platform", [("r35.4.1", "jetson-r35"), ("r36.4.0", "jetson-r36")])
def test_the_orin_nano_study_runs_the_boards_whisperx_image(name, platform):
    """experiments/orin-nano-paper.yaml names no image, so it works on JetPack 5 and 6 alike."""
    from runner.experiment import load_experiment
    from runner.backends import BACKENDS

    exp = load_experiment(ROOT / "experiments" / "orin-nano-paper.yaml", root=ROOT)
    images = {g.image or default_image(BACKENDS[g.backend].image, RELEASES / name) for g in exp.groups}
    assert images == {f"edgeasr/whisperx:{platform}"}


def _printing(output: bytes) -> fake_docker.FakeClient:
    """A fake engine whose every container prints ``output`` (tests/fake_docker.py)."""
    def program(container) -> int:
        container.stdout = output
        return 0

    return fake_docker.FakeClient({ref: fake_docker.FakeImage("sha256:" + "b" * 64, [ref], {})
                                   for ref in ("edgeasr/faster-whisper:jetson-r35", "x")}, program)


def test_the_carried_versions_are_read_from_the_built_image_for_its_label():
    from runner.images.build import read_carried_versions

    client = _printing(b"ctranslate2=3.24.0,faster-whisper=0.10.1,numpy=1.24.4,torch=2.0.0+nv23.05\n")
    line = read_carried_versions(client, "edgeasr/faster-whisper:jetson-r35", PLATFORMS["jetson-r35"].versions_file)
    assert line == "ctranslate2=3.24.0,faster-whisper=0.10.1,numpy=1.24.4,torch=2.0.0+nv23.05"
    [container] = client.created
    assert container.kwargs["entrypoint"] == ["cat", "/opt/edgeasr/versions.txt"]
    assert container.kwargs["network_disabled"] and client.present() == []
    with pytest.raises(UserError, match="does not hold"):
        read_carried_versions(_printing(b"faster-whisper==0.10.1\n"), "x", "/opt/edgeasr/versions.txt")


def test_a_sweeps_manifest_records_the_platform(monkeypatch):
    from runner.host import info as hostinfo

    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", RELEASES / "r35.4.1")
    assert hostinfo._platform() == "jetson-r35"
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", RELEASES / "r32.7.4")
    assert hostinfo._platform() is None  # no variant: l4t_release still says which board it is


# -- platform detection once: every reader asks runner/host/platforms.py -------------------------------

def test_is_jetson_and_the_release_line_come_from_the_release_file(tmp_path):
    """A host is a Jetson when it has an L4T release file; its first line is kept as written, also for a
    release without an image variant (R32) and for a line the parser does not know (a manifest records it)."""
    from runner.host.platforms import is_jetson, l4t_release_line

    r36 = RELEASES / "r36.4.0"
    assert is_jetson(r36) and l4t_release_line(r36).startswith("# R36 (release), REVISION: 4.0, GCID: 37537400")
    assert is_jetson(RELEASES / "r32.7.4") and l4t_release_line(RELEASES / "r32.7.4").startswith("# R32")
    missing = tmp_path / "nv_tegra_release"
    assert not is_jetson(missing) and l4t_release_line(missing) is None
    odd = tmp_path / "odd"
    odd.write_text("\x00R35.4.1\nsecond line\n")
    assert l4t_release_line(odd) == "R35.4.1"


def test_the_host_facts_read_the_platform_from_one_place(monkeypatch):
    """A sweep's manifest takes the L4T line and platform from runner/host/platforms.py, so a test's fake
    release file (and nothing else) makes the host a Jetson."""
    from runner.host import info as hostinfo

    monkeypatch.setattr(hostinfo, "_run", lambda cmd: None)
    monkeypatch.setattr(hostinfo, "_read", lambda path: "NVIDIA Jetson Orin Nano" if "device-tree" in path else None)
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", RELEASES / "r36.4.0")
    facts = hostinfo.device_facts()
    assert facts["l4t_release"].startswith("# R36 (release)") and facts["platform"] == "jetson-r36"
    assert facts["jetson_model"] == "NVIDIA Jetson Orin Nano"
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", RELEASES / "absent")
    facts = hostinfo.device_facts()
    assert facts["l4t_release"] is None and facts["jetson_model"] is None and facts["platform"] == "x86"


def test_gpu_selection_and_the_gpus_check_ask_the_platform(tmp_path, root, monkeypatch):
    """On a Jetson (fake release file) a CUDA run names no GPUs (one iGPU) and --gpus is refused with the fix;
    elsewhere the run's GPUs default to GPU 0."""
    from runner.spec import Settings, build_run_spec, resolve_gpus

    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", RELEASES / "r36.4.0")
    assert resolve_gpus(None, "cuda", env={}) is None
    with pytest.raises(UserError, match="does not apply on a Jetson"):
        build_run_spec(Settings(backend="faster-whisper", model="medium", quant="int8", device="cuda", gpus="0",
                                dataset=str(root / "data" / "default")), out=str(tmp_path / "o"), models_dir=tmp_path)
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", tmp_path / "absent")
    assert resolve_gpus(None, "cuda", env={}) == ("0",)


def test_nothing_else_reads_the_release_file():
    """runner/host/platforms.py is the only module that names /etc/nv_tegra_release in code (help texts aside)."""
    import re

    pattern = re.compile(r"""["']/etc/nv_tegra_release["']""")
    readers = [str(p.relative_to(ROOT)) for p in (ROOT / "runner").rglob("*.py") if pattern.search(p.read_text())]
    assert readers == ["runner/host/platforms.py"]


def test_device_auto_follows_the_nvidia_driver_node(tmp_path, monkeypatch):
    """`--device auto` is cuda exactly where the driver's control node exists: platforms.NVIDIA_CTL is the one
    place that knows where, so pointing it at a fake node moves spec's detection too."""
    from runner.host import platforms
    from runner.spec import detect_device

    node = tmp_path / "nvidiactl"
    monkeypatch.setattr(platforms, "NVIDIA_CTL", node)
    assert platforms.has_nvidia_driver() is False and detect_device("auto") == "cpu"
    node.touch()
    assert platforms.has_nvidia_driver() is True and detect_device("auto") == "cuda"
    assert platforms.has_nvidia_driver(tmp_path / "absent") is False
    assert detect_device("cpu") == "cpu"  # a device by name is never second-guessed


# -- arm64 (issue 25): an aarch64 host without L4T is arm64; an image of another architecture runs emulated -------

@pytest.mark.parametrize("machine, platform", [("aarch64", "arm64"), ("arm64", "arm64"), ("x86_64", "x86")])
def test_an_aarch64_host_without_l4t_is_arm64(tmp_path, machine, platform):
    """A Raspberry Pi 5 or a Graviton server (`uname -m` aarch64; macOS says arm64) with no L4T release file runs
    the arm64 images, tagged :arm64, built from the x86 Dockerfiles for linux/arm64."""
    from runner.host.platforms import host_arch

    missing = tmp_path / "nv_tegra_release"
    assert detect_platform(missing, machine) == resolve_platform("auto", missing, machine) == platform
    assert host_arch(machine) == PLATFORMS[platform].arch
    assert PLATFORMS["arm64"].dockerfile == PLATFORMS["x86"].dockerfile == "Dockerfile"
    assert PLATFORMS["arm64"].docker_platform == "linux/arm64" and PLATFORMS["x86"].docker_platform == "linux/amd64"
    assert platform_image("edgeasr/pocketsphinx:latest", "arm64") == "edgeasr/pocketsphinx:arm64"


def test_a_jetson_stays_a_jetson_on_its_aarch64_cpu():
    assert detect_platform(RELEASES / "r36.4.0", "aarch64") == "jetson-r36"
    assert PLATFORMS["jetson-r36"].arch == PLATFORMS["jetson-r35"].arch == "arm64"


@pytest.mark.parametrize("image_arch, machine, emulated", [
    ("arm64", "x86_64", True),    # this machine building and checking the arm64 images under qemu
    ("amd64", "aarch64", True),   # an x86 image on a Pi (Docker would run it under qemu too)
    ("arm64", "aarch64", False),  # a Pi running its own images
    ("amd64", "x86_64", False),
    ("", "x86_64", False),        # an image that records no architecture: taken as native
])
def test_an_image_of_another_architecture_runs_emulated(image_arch, machine, emulated):
    from runner.host.platforms import is_emulated

    assert is_emulated(image_arch, machine) is emulated


def test_the_makefile_picks_arm64_on_an_aarch64_host_without_l4t(tmp_path):
    none = str(tmp_path / "none")
    assert make_variable("PLATFORM_NAME", TEGRA_RELEASE=none, MACHINE="aarch64") == "arm64"
    assert make_variable("PLATFORM_TAG", TEGRA_RELEASE=none, MACHINE="aarch64") == "arm64"
    assert make_variable("PLATFORM_NAME", TEGRA_RELEASE=none, MACHINE="x86_64") == "x86"
    assert make_variable("PLATFORM_TAG", TEGRA_RELEASE=none, PLATFORM="arm64") == "arm64"
    # a Jetson's CPU is aarch64 too: its L4T release wins
    assert make_variable("PLATFORM_NAME", TEGRA_RELEASE=str(RELEASES / "r36.4.0"), MACHINE="aarch64") == "jetson-r36"


def test_make_run_platform_arm64_on_x86_runs_the_arm64_image(tmp_path):
    """`make run PLATFORM=arm64` on an x86 host: the runner would pick this host's image, so the Makefile names the
    arm64 one (`edgeasr images tag --platform arm64`) and ensure-image builds that platform's; on a Pi (arm64
    detected) and without PLATFORM nothing is added; an IMAGE the user gave wins."""
    none = str(tmp_path / "none")
    flags = make_variable("RUN_FLAGS", TEGRA_RELEASE=none, MACHINE="x86_64", PLATFORM="arm64",
                          BACKEND="pocketsphinx").split()
    assert flags[flags.index("--image") + 1] == "edgeasr/pocketsphinx:arm64"
    assert make_variable("PLATFORM_FLAG", TEGRA_RELEASE=none, MACHINE="x86_64", PLATFORM="arm64") == "--platform arm64"
    assert "--image" not in make_variable("RUN_FLAGS", TEGRA_RELEASE=none, MACHINE="aarch64").split()
    assert make_variable("PLATFORM_FLAG", TEGRA_RELEASE=none, MACHINE="aarch64") == ""
    assert make_variable("PLATFORM_FLAG", TEGRA_RELEASE=none, MACHINE="x86_64") == ""
    mine = make_variable("RUN_FLAGS", TEGRA_RELEASE=none, MACHINE="x86_64", PLATFORM="arm64", IMAGE="my/i:1").split()
    assert mine.count("--image") == 1 and mine[mine.index("--image") + 1] == "my/i:1"


def test_the_host_preflight_and_doctor_say_arm64_and_how(tmp_path):
    """The one host preflight (doctor, the fleet's node report) tells arm64 from x86 by the machine."""
    from runner.host import doctor, preflight

    missing = tmp_path / "nv_tegra_release"
    name, how = preflight.platform_facts(missing, "aarch64")
    assert name == "arm64" and "machine aarch64" in how and "not a Jetson" in how
    assert preflight.platform_facts(missing, "x86_64")[0] == "x86"
    caps = preflight.HostCaps(machine="aarch64", platform=name, platform_how=how, jetson=False, nvidia_driver=False,
                              driver_node="/dev/nvidiactl", root=False, engine_name="docker", engine="24.0",
                              engine_problem=None, runtime=None)
    (line,) = doctor.platform_lines(caps)
    assert "arm64 (CPU images, built for linux/arm64)" in line.detail
