"""`edgeasr doctor` (runner/host/doctor.py) against the fakes: the Orin Nano's sysfs and tools (fake_jetson.py), the
fake NVML (telemetry/fake_pynvml.py), fake hosts (fake_host.py) and GPU probes answered as an image would (issue 25,
item 6). Each test checks that a line says what is true of that host, and gives the fix where something stands in
the way."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from fake_host import RUNC_ONLY, cpu_host, gpu_host, jetson_host
from fake_jetson import make_orin_nano

import runner.power.base as power_base
from runner import cli
from runner.host import doctor, platforms, preflight
from runner.host.doctor import NA, OK, PROBLEM, ImageFacts, Line

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RELEASE = ROOT / "tests" / "fixtures" / "nv_tegra_release" / "r36.4.0"


def _fake_nvml_module():
    spec = importlib.util.spec_from_file_location("edgeasr_tests_fake_pynvml_doctor",
                                                  HERE / "telemetry" / "fake_pynvml.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FAKE_NVML = _fake_nvml_module()


def by_name(lines: list[Line]) -> dict[str, Line]:
    return {line.name: line for line in lines}


@pytest.fixture
def orin(tmp_path, monkeypatch):
    """The fake Orin Nano (JetPack 6), its tools first on PATH, as root; no NVML."""
    board = make_orin_nano(tmp_path / "board")
    for k, v in board.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(platforms, "TEGRA_RELEASE", RELEASE)
    monkeypatch.setattr(power_base, "is_root", lambda: True)
    monkeypatch.setitem(sys.modules, "pynvml", FAKE_NVML.FakePynvml(
        init_error=FAKE_NVML.NVML_ERROR_LIBRARY_NOT_FOUND))
    return board


@pytest.fixture
def gpu_server(tmp_path, monkeypatch):
    """An x86 server with one fake A100 (NVML) and the driver's node; no Jetson; as root."""
    node = tmp_path / "nvidiactl"
    node.touch()
    monkeypatch.setattr(platforms, "NVIDIA_CTL", node)
    monkeypatch.setattr(platforms, "TEGRA_RELEASE", tmp_path / "absent")
    monkeypatch.setenv("EDGEASR_SYSFS_ROOT", str(tmp_path / "no-sys"))
    monkeypatch.setenv("EDGEASR_NVPMODEL_CONF", str(tmp_path / "nvpmodel.conf"))
    monkeypatch.setattr(power_base, "is_root", lambda: True)
    fake = FAKE_NVML.FakePynvml([FAKE_NVML.FakeGpu(name="NVIDIA A100-SXM4-40GB", cuda_capability=(8, 0))])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_on_the_fake_orin_nano_the_jetson_lines_are_true_and_each_missing_thing_has_its_fix(orin, monkeypatch):
    """Platform from the release file; the iGPU; modes and clocks from nvpmodel.conf and the devfreq node; the
    INA3221 and tegrastats probes work, jtop lacks its package (a problem on a Jetson, with pip's fix), RAPL and
    NVML do not apply; without the nvidia runtime CUDA cannot start, and without root nothing can be set."""
    caps = preflight.probe("docker", {"ServerVersion": "27.5.1", "Runtimes": {"nvidia": {}, "runc": {}}})
    assert caps.platform == "jetson-r36" and caps.kind == "jetson"
    nvml = doctor.read_nvml()
    lines = by_name(doctor.platform_lines(caps) + doctor.gpu_lines(caps, nvml) + doctor.power_lines(caps, nvml)
                    + doctor.sampler_lines(preflight.sampler_probes(), caps))
    assert lines["platform"].status == OK and "R36 (release), REVISION: 4.0" in lines["platform"].detail
    assert lines["GPU"].status == OK and lines["--device cuda"].status == OK
    jetson = lines["Jetson modes and clocks"]
    assert jetson.status == OK and "0 (15W), 1 (25W), 2 (MAXN_SUPER), 3 (7W)" in jetson.detail
    assert "306, 408, 510, 612, 714, 816, 918, 1020 on 17000000.gpu" in jetson.detail
    assert lines["NVIDIA clocks, power limit"].status == NA and lines["root"].status == OK
    assert lines["ina3221"].status == OK and lines["tegrastats"].status == OK
    assert lines["jtop"].status == PROBLEM and "pip install jetson-stats" in lines["jtop"].detail
    assert lines["nvml"].status == NA and lines["rapl"].status == NA

    no_runtime = jetson_host(runtime=RUNC_ONLY)
    gpu = by_name(doctor.gpu_lines(no_runtime, nvml))
    assert gpu["GPU runtime"].status == PROBLEM and "nvidia-ctk runtime configure" in gpu["GPU runtime"].fix
    assert gpu["--device cuda"].status == PROBLEM and "its nvidia runtime" in gpu["--device cuda"].detail
    monkeypatch.setattr(power_base, "is_root", lambda: False)
    root = by_name(doctor.power_lines(caps, nvml))["root"]
    assert root.status == PROBLEM and "sudo -E edgeasr" in root.detail


def test_a_cpu_only_wheel_on_a_jetson_is_the_problem_it_names(orin):
    """The most common failure on a Jetson: the image's torch is a CPU-only wheel; asked for the GPU, its container
    sees none, and the line says why and how to fix it. A CUDA build that sees the iGPU is fine."""
    cpu_only = {"python": "3.10.12", "torch": {"version": "2.5.1", "cuda_build": None, "cuda_available": False,
                                                "cuda_devices": 0, "devices": []}}
    facts = ImageFacts("transformers", "edgeasr/transformers:jetson-r36", "jetson-r36", True, "sha256:" + "a" * 64,
                       {}, gpu_requested=True, probe=cpu_only)
    status, detail, fix = doctor.probe_summary(facts)
    assert status == PROBLEM and "torch 2.5.1 is a CPU-only build" in detail and "edgeasr images build transformers" in fix
    good = {"torch": {"version": "2.5.0a0+nv24.8", "cuda_build": "12.6", "cuda_available": True, "cuda_devices": 1,
                      "devices": [{"name": "Orin", "capability": "8.7"}], "bf16": True},
            "ctranslate2": {"version": "4.5.0", "cuda_devices": 1, "compute_types_cpu": ["float32", "int8"],
                            "compute_types_cuda": ["bfloat16", "float16", "float32", "int8_float16"]}}
    status, detail, fix = doctor.probe_summary(ImageFacts("whisperx", "edgeasr/whisperx:jetson-r36", "jetson-r36",
                                                          True, gpu_requested=True, probe=good))
    assert status == OK and "Orin 8.7" in detail and "cuda: bfloat16, float16, float32, int8_float16" in detail
    assert fix is None


def test_on_a_fake_gpu_server_nvml_and_the_toolkit_make_cuda_ok(gpu_server):
    """NVML's GPU with its compute capability and driver, the toolkit's runtime, --device cuda ok, NVML's sampler
    works, NVIDIA clocks can be set as root; a driver without a runtime in the engine is the problem with the fix."""
    caps = preflight.probe("docker", {"ServerVersion": "24.0.7", "Runtimes": {"nvidia": {}, "runc": {}}})
    nvml = doctor.read_nvml()
    assert nvml.gpus == (("NVIDIA A100-SXM4-40GB", "8.0"),) and nvml.driver == "550.54.15"
    lines = by_name(doctor.gpu_lines(caps, nvml) + doctor.power_lines(caps, nvml)
                    + doctor.sampler_lines(preflight.sampler_probes(), caps))
    assert lines["GPU"].status == OK and "A100-SXM4-40GB (compute capability 8.0)" in lines["GPU"].detail
    assert lines["GPU runtime"].status == OK and lines["--device cuda"].status == OK
    assert lines["nvml"].status == OK and lines["NVIDIA clocks, power limit"].status == OK
    assert lines["Jetson modes and clocks"].status == NA
    runc = by_name(doctor.gpu_lines(preflight.probe("docker", {"Runtimes": {"runc": {}}}), nvml))
    assert runc["GPU runtime"].status == PROBLEM and runc["--device cuda"].status == PROBLEM
    refs = doctor.image_refs(caps)
    assert ("faster-whisper", "cuda", "edgeasr/faster-whisper:cuda") in refs
    assert ("faster-whisper", "x86", "edgeasr/faster-whisper:latest") in refs


def test_this_kind_of_host_has_no_gpu_problem_and_its_missing_cuda_images_are_not_asked_for():
    """No GPU: the GPU lines are n/a, and unbuilt :cuda images are left out (nothing to miss); a missing CPU image
    is a problem with its build command."""
    nvml = doctor.NvmlFacts(reason="libnvidia-ml.so.1 not found: no NVIDIA driver is installed on this host")
    assert {line.status for line in doctor.gpu_lines(cpu_host(), nvml)} == {NA}
    images = [ImageFacts("faster-whisper", "edgeasr/faster-whisper:cuda", "cuda", False),
              ImageFacts("pocketsphinx", "edgeasr/pocketsphinx:latest", "x86", False)]
    [line] = doctor.image_lines(images, cpu_host())
    assert line.status == PROBLEM and line.fix == "edgeasr images build pocketsphinx"
    [info] = doctor.image_lines(images[:1], gpu_host())
    assert info.fix == "edgeasr images build faster-whisper --device cuda"


def test_image_pins_are_current_or_say_what_to_rebuild():
    """An image's versions label against this checkout's requirements.txt pins (runner/images/freshness.py's
    comparison): equal is current; an older library, a missing label or another contract is a problem with the
    rebuild command."""
    from runner.backends import BACKENDS
    from runner.images.build import pinned_versions, requirements_text

    pins = pinned_versions(requirements_text(BACKENDS["faster-whisper"]))  # its own pins and the shared ones
    label = ",".join(f"{k}={v}" for k, v in pins.items())
    current = ImageFacts("faster-whisper", "edgeasr/faster-whisper:latest", "x86", True, "sha256:" + "b" * 64,
                         {"org.edgeasr.versions": label, "org.edgeasr.contract": "3"})
    [line] = doctor.image_lines([current], cpu_host())
    assert line.status == OK and "current" in line.detail and "bbbbbbbbbbbb" in line.detail
    old = label.replace(f"ctranslate2={pins['ctranslate2']}", "ctranslate2=4.6.0")
    [line] = doctor.image_lines([ImageFacts(**{**current.__dict__, "labels": {"org.edgeasr.versions": old}})],
                                cpu_host())
    assert line.status == PROBLEM and f"ctranslate2 4.6.0 (requirements.txt pins {pins['ctranslate2']})" in line.detail
    assert line.fix == "rebuild it: edgeasr images build faster-whisper"
    [line] = doctor.image_lines([ImageFacts(**{**current.__dict__, "labels": {}})], cpu_host())
    assert line.status == PROBLEM and "no org.edgeasr.versions label" in line.detail
    # an older contract is no problem (issue 21 item 2: a minimum version per feature): the line names what it
    # lacks and how to get it; a label below the oldest contract a job is written in, or no version, is a problem
    from edgeasr_entrypoint.contract import CONTRACT_VERSION, features_after

    other = {"org.edgeasr.versions": label, "org.edgeasr.contract": "2"}
    [line] = doctor.image_lines([ImageFacts(**{**current.__dict__, "labels": other})], cpu_host())
    assert line.status == OK and "speaks contract 2" in line.detail and features_after(2)
    assert all(f in line.detail for f in features_after(2)) and "edgeasr images build faster-whisper" in line.detail
    newest = {"org.edgeasr.versions": label, "org.edgeasr.contract": str(CONTRACT_VERSION)}
    [line] = doctor.image_lines([ImageFacts(**{**current.__dict__, "labels": newest})], cpu_host())
    assert line.status == OK and "speaks contract" not in line.detail
    for bad in ("1", "x"):
        [line] = doctor.image_lines([ImageFacts(**{**current.__dict__, "labels": {**other,
                                                   "org.edgeasr.contract": bad}})], cpu_host())
        assert line.status == PROBLEM and f"speaks contract {bad}" in line.detail
        assert line.fix == "rebuild it: edgeasr images build faster-whisper"


def test_models_are_verified_against_their_pins(tmp_path, root):
    """A packaged model whose file changed on disk, a hub download whose commit hub-pins.json no longer pins, and a
    hub file that changed are problems with the command that fixes them; a folder of one's own is not pinned."""
    models = tmp_path / "models"
    shutil.copytree(root / "models" / "tiny.en", models / "tiny.en") if (root / "models" / "tiny.en").is_dir() \
        else pytest.skip("models/tiny.en is not installed (make models)")
    lines = by_name(doctor.model_lines(models))
    assert lines["tiny.en"].status == OK and "sha256" in lines["tiny.en"].detail
    assert lines["base"].status == PROBLEM and lines["base"].fix == "edgeasr models install base"
    with open(models / "tiny.en" / "vocabulary.txt", "a") as fh:
        fh.write("x")
    assert by_name(doctor.model_lines(models))["tiny.en"].status == PROBLEM
    small = models / "small"
    small.mkdir()
    (small / "config.json").write_text("{}")
    (small / "model.bin").write_text("weights")
    from runner.content import file_sha256

    marker = {"name": "small", "repo": "Systran/faster-whisper-small", "revision": "a" * 40,
              "files_sha256": {"model.bin": file_sha256(small / "model.bin")}}
    (small / "edgeasr-model.json").write_text(json.dumps(marker))
    (models / "hub-pins.json").write_text(json.dumps({"small": {"repo": marker["repo"], "revision": "a" * 40}}))
    assert by_name(doctor.model_lines(models))["small"].status == OK
    (models / "hub-pins.json").write_text(json.dumps({"small": {"repo": marker["repo"], "revision": "b" * 40}}))
    line = by_name(doctor.model_lines(models))["small"]
    assert line.status == PROBLEM and "pins Systran/faster-whisper-small@bbbbbbbbbbbb" in line.detail
    assert line.fix.startswith("edgeasr models download small")
    (models / "hub-pins.json").write_text(json.dumps({"small": {"repo": marker["repo"], "revision": "a" * 40}}))
    (small / "model.bin").write_text("other weights")
    assert "model.bin has sha256" in by_name(doctor.model_lines(models))["small"].detail
    mine = models / "mine"
    shutil.copytree(small, mine)
    (mine / "edgeasr-model.json").unlink()
    assert by_name(doctor.model_lines(models))["mine"].status == "info"


def test_the_command_prints_every_section_exits_0_and_json_carries_the_probe_as_the_image_said(monkeypatch, tmp_path,
                                                                                               capsys):
    """`edgeasr doctor` exits 0 with problems found; --json is one object with the host, each image's probe answer
    as the image gave it, and the lines; the text view writes a hostile string's control characters out."""
    hostile = "4.8.5\x1b]0;pwned\x07\x1b[2J"
    image = ImageFacts("faster-whisper", "edgeasr/faster-whisper:latest", "x86", True, "sha256:" + "c" * 64, {},
                       probe={"ctranslate2": {"version": hostile, "cuda_devices": 0}})
    monkeypatch.setattr(preflight, "probe", lambda *a, **k: cpu_host())
    monkeypatch.setattr(doctor, "read_images", lambda *a, **k: [image])
    monkeypatch.setattr(doctor, "read_nvml", lambda: doctor.NvmlFacts(reason="no NVML here"))
    assert cli.main(["doctor", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for section in ("engine", "platform", "gpu", "images", "samplers", "power", "models"):
        assert section in out
    assert "\x1b" not in out and "\\x1b]0;pwned\\x07" in out and "problem(s)" in out
    assert cli.main(["doctor", "--json", "--models-dir", str(tmp_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["host"]["kind"] == "cpu" and data["images"][0]["probe"]["ctranslate2"]["version"] == hostile
    assert {line["section"] for line in data["lines"]} >= {"engine", "gpu", "images", "samplers", "power", "models"}
    assert all(line["status"] in doctor.STATUSES for line in data["lines"])
