"""x86 CUDA images without NVIDIA's base (issue 25, item 4b): where the Dockerfile's default base (nvidia/cuda,
pytorch/pytorch) can be neither found nor pulled, `edgeasr images build --platform cuda` builds on the local base
(the Debian one with CUDA from PyPI's wheels, or the torch stack, whose torch wheels carry CUDA), labels the CUDA
libraries the image holds (org.edgeasr.cuda-libs, read back from the image), and check-image checks that label,
loads the libraries and says plainly that its GPU check was not run where no GPU is visible.

The library inventory runs on real files (dist-info folders, shared-library links); the build sequence against
stand-ins for the engine and pip, as tests/unit/test_arm64_images.py does (the real build and check are
tests/e2e/test_cuda_image_e2e.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from docker.errors import APIError, ImageNotFound

from edgeasr_entrypoint import cuda_libs
from edgeasr_entrypoint.contract import CUDA_LIBS_FILE, CUDA_LIBS_LABEL
from runner.backends import BACKENDS
from runner.commands import check_image
from runner.host.platforms import PLATFORMS
from runner.images import build as images
from runner.images import make

ROOT = Path(__file__).resolve().parents[2]


def _dist(site: Path, name: str, version: str, files: list[str]) -> None:
    """An installed distribution as pip leaves it: its dist-info (METADATA, RECORD) and its files."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
    for f in files:
        (site / f).parent.mkdir(parents=True, exist_ok=True)
        (site / f).write_bytes(b"")


def test_the_wheels_name_the_cuda_libraries_and_nvml_is_none_of_them(tmp_path):
    _dist(tmp_path, "nvidia-cublas-cu12", "12.8.4.1", ["nvidia/cublas/lib/libcublas.so.12"])
    _dist(tmp_path, "nvidia-cudnn-cu12", "9.10.2.21", ["nvidia/cudnn/lib/libcudnn.so.9"])
    _dist(tmp_path, "nvidia-nccl", "2.28.3", ["nvidia/nccl/lib/libnccl.so.2"])  # CUDA 13's wheels: no -cuNN
    _dist(tmp_path, "nvidia-ml-py", "13.615.71", ["pynvml.py"])  # NVML's binding: no library
    found = cuda_libs.wheel_libs(metadata.distributions(path=[str(tmp_path)]))
    assert found == {"cublas": "12.8.4.1", "cudnn": "9.10.2.21", "nccl": "2.28.3"}


def test_system_libraries_take_the_version_of_the_file_their_soname_points_at(tmp_path):
    """A CUDA base keeps `libcublas.so.12 -> libcublas.so.12.8.4.1`; a wheel's copy registered with ldconfig is
    named by its soname alone and says no version (its wheel does)."""
    (tmp_path / "libcublas.so.12.8.4.1").write_bytes(b"")
    (tmp_path / "libcublas.so.12").symlink_to("libcublas.so.12.8.4.1")
    (tmp_path / "libcudnn.so.9").write_bytes(b"")  # a wheel's copy
    ldconfig = (f"3 libs found in cache `/etc/ld.so.cache'\n"
                f"\tlibcublas.so.12 (libc6,x86-64) => {tmp_path}/libcublas.so.12\n"
                f"\tlibcudnn.so.9 (libc6,x86-64) => {tmp_path}/libcudnn.so.9\n"
                f"\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n")
    paths = cuda_libs.linker_paths(ldconfig)
    assert paths["libcublas.so.12"] == f"{tmp_path}/libcublas.so.12"
    assert cuda_libs.system_libs(paths) == {"cublas": "12.8.4.1"}
    # a wheel's version wins over a system copy's; the label value is sorted and parses back
    libs = cuda_libs.cuda_libs(dists=[], ldconfig_output=ldconfig)
    assert cuda_libs.label_value(libs) == "cublas=12.8.4.1"
    assert cuda_libs.parse_label("cublas=12.8.4.1,cudnn=9.10.2.21") == {"cublas": "12.8.4.1", "cudnn": "9.10.2.21"}
    assert cuda_libs.parse_label(None) == {} == cuda_libs.parse_label("")


def test_the_sonames_loaded_are_those_of_the_labelled_majors_and_a_missing_one_says_why():
    libs = {"cublas": "12.8.4.1", "cudnn": "9.10.2.21", "cuda-runtime": "12.8.90", "cufft": "11.3.3.83"}
    assert cuda_libs.sonames(libs) == ["libcudart.so.12", "libcublas.so.12", "libcublasLt.so.12", "libcudnn.so.9"]
    loaded = cuda_libs.load(["libc.so.6", "libcublas-not-here.so.12"])
    assert loaded["libc.so.6"] is None and "libcublas-not-here.so.12" in loaded["libcublas-not-here.so.12"]


def test_the_module_prints_the_label_value_and_its_load_line():
    env = {"PYTHONPATH": str(ROOT / "containers" / "common"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    plain = subprocess.run([sys.executable, "-m", "edgeasr_entrypoint.cuda_libs"], env=env, capture_output=True,
                           text=True, check=True)
    assert "\n" not in plain.stdout.strip() and "EDGEASR" not in plain.stdout
    load = subprocess.run([sys.executable, "-m", "edgeasr_entrypoint.cuda_libs", "--load"], env=env,
                          capture_output=True, text=True, check=True)
    said = json.loads(load.stdout.strip()[len(cuda_libs.LOAD_PREFIX):])
    assert load.stdout.startswith(cuda_libs.LOAD_PREFIX) and set(said) == {"libs", "load"}


def test_every_cuda_dockerfile_writes_its_libraries_and_labels_them_from_the_build_argument():
    """One name for the label (contract.py), one file the build writes and the builder reads back."""
    for backend in BACKENDS.values():
        if "cuda" not in backend.platforms:
            continue
        text = (ROOT / "containers" / backend.build_dir / "Dockerfile.cuda").read_text()
        assert f'{CUDA_LIBS_LABEL}="${{EDGEASR_CUDA_LIBS}}"' in text, backend.name
        assert f"python -m edgeasr_entrypoint.cuda_libs > {CUDA_LIBS_FILE}" in text, backend.name
        assert "${WHEELS_URL:+--no-index --find-links $WHEELS_URL}" in text, backend.name
    assert PLATFORMS["cuda"].cuda_libs_file == CUDA_LIBS_FILE and PLATFORMS["cuda"].local_fallback
    assert not any(p.local_fallback for p in PLATFORMS.values() if p.l4t_major)  # a Jetson needs its JetPack base


def test_the_cuda_requirements_are_the_nvidia_wheels_torch_pins():
    pins = images.pinned_versions(images.CUDA_REQUIREMENTS)
    assert set(pins) == {"nvidia-cuda-runtime-cu12", "nvidia-cublas-cu12", "nvidia-cudnn-cu12"}
    assert images.dockerfile_base(ROOT / "containers" / "faster-whisper" / "Dockerfile.cuda") == \
        "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04"
    args = images.build_args(BACKENDS["faster-whisper"], wheels_url="", versions="v", base=None, platform="cuda",
                             cuda_libs="cublas=12.8.4.1")
    assert args["EDGEASR_CUDA_LIBS"] == "cublas=12.8.4.1" and args["EDGEASR_PLATFORM"] == "cuda"
    assert "EDGEASR_CUDA_LIBS" not in images.build_args(BACKENDS["faster-whisper"], wheels_url="", versions="v",
                                                        base=None)


class _Client:
    """An engine that holds ``present`` images and reaches no registry."""

    def __init__(self, present=()):
        self.present = set(present)
        self.images = self
        self.pulled: list[str] = []

    def get(self, ref):
        if ref not in self.present:
            raise ImageNotFound(ref)

    def pull(self, ref, *a, **k):
        self.pulled.append(ref)
        raise APIError("no registry", explanation="dial tcp: lookup registry-1.docker.io: no such host")


@pytest.fixture
def recorded(monkeypatch):
    """The builder's engine-facing steps recorded: builds (tag, base, labels passed), wheelhouse fills, the
    local base, and what each image's build wrote to CUDA_LIBS_FILE."""
    rec = {"built": [], "filled": [], "bases": [], "said": []}
    monkeypatch.setattr(make, "ensure_base", lambda client, base, log, **k: rec["bases"].append(base) or base)
    monkeypatch.setattr(make, "fill_wheelhouse",
                        lambda image, **k: rec["filled"].append((image.name, tuple(k.get("only") or ()))))
    monkeypatch.setattr(make, "build_image", lambda client, image, **k: rec["built"].append(
        (k["tag"], k["base"], k.get("cuda_libs"))) or rec.setdefault("urls", []).append(k.get("wheels_url"))
        or "sha256:x")
    monkeypatch.setattr(make, "read_carried_versions",
                        lambda client, tag, path, allow_empty=False: "" if "pocketsphinx" in tag else "cublas=12.8.4.1")
    return rec


def test_without_nvidias_base_faster_whisper_builds_on_the_local_base_from_the_wheelhouse(recorded, tmp_path):
    client = _Client()
    make.build_images(client, make.BuildRequest(names=("faster-whisper", "pocketsphinx"), platform="cuda",
                                                log_dir=tmp_path), log=recorded["said"].append)
    assert client.pulled == ["nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04", "python:3.11-slim-bookworm"]
    assert recorded["bases"] == ["edgeasr/base:bookworm-ffmpeg"] * 2
    cuda_pins = tuple(f"{n}=={v}" for n, v in images.pinned_versions(images.CUDA_REQUIREMENTS).items())
    assert recorded["filled"] == [("faster-whisper", ()), ("faster-whisper", cuda_pins),
                                  ("pocketsphinx", ())]  # a CPU-only backend gets no CUDA wheels
    # built twice each: the second labels what the first wrote (empty for the CPU-only backend)
    assert recorded["built"] == [
        ("edgeasr/faster-whisper:cuda", "edgeasr/base:bookworm-ffmpeg", ""),
        ("edgeasr/faster-whisper:cuda", "edgeasr/base:bookworm-ffmpeg", "cublas=12.8.4.1"),
        ("edgeasr/pocketsphinx:cuda", "edgeasr/base:bookworm-ffmpeg", ""),
        ("edgeasr/pocketsphinx:cuda", "edgeasr/base:bookworm-ffmpeg", "")]
    # both builds of one image see the wheelhouse at one URL (a build argument): another port would miss the cache
    assert recorded["urls"][0] == recorded["urls"][1] and recorded["urls"][0].startswith("http://127.0.0.1:")
    said = "\n".join(recorded["said"])
    assert "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 is not here; building on edgeasr/base:bookworm-ffmpeg" in said
    assert "holds the CUDA libraries cublas=12.8.4.1" in said


def test_without_the_pytorch_base_a_torch_backend_builds_on_the_torch_stack(recorded, tmp_path):
    """The torch stack (edgeasr/torch-base:2.8, built first where missing) carries torch's CUDA wheels: nothing
    of CUDA is downloaded again."""
    client = _Client()
    make.build_images(client, make.BuildRequest(names=("whisperx",), platform="cuda", log_dir=tmp_path),
                      log=recorded["said"].append)
    tags = [(tag, base) for tag, base, _ in recorded["built"]]
    assert tags[0] == ("edgeasr/torch-base:2.8", "python:3.11-slim-bookworm")  # the x86 parent, first
    assert tags[1:] == [("edgeasr/whisperx:cuda", "edgeasr/torch-base:2.8")] * 2
    assert not any("nvidia" in " ".join(only) for _, only in recorded["filled"])


def test_a_present_or_named_base_is_used_as_it_is(recorded, tmp_path):
    client = _Client(["nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04"])
    make.build_images(client, make.BuildRequest(names=("faster-whisper",), platform="cuda", log_dir=tmp_path),
                      log=recorded["said"].append)
    assert recorded["built"][-1][1] is None and not recorded["filled"] and not client.pulled  # the Dockerfile's
    recorded["built"].clear()
    make.build_images(_Client(), make.BuildRequest(names=("faster-whisper",), platform="cuda", base="my/cuda:12",
                                                   log_dir=tmp_path), log=recorded["said"].append)
    assert recorded["built"][-1][1] == "my/cuda:12"


def test_check_image_checks_the_cuda_label_only_on_a_cuda_backends_cuda_image():
    cuda = {"org.edgeasr.platform": "cuda", "org.edgeasr.backend": "faster-whisper"}
    assert check_image.is_cuda_image(cuda)
    assert not check_image.is_cuda_image({**cuda, "org.edgeasr.backend": "pocketsphinx"})  # a CPU image, tagged :cuda
    assert not check_image.is_cuda_image({**cuda, "org.edgeasr.platform": "x86"})
    name, ok, detail = check_image.cuda_label_check(cuda)
    assert name == f"label {CUDA_LIBS_LABEL}" and not ok and "edgeasr images build --platform cuda" in detail
    _, ok, detail = check_image.cuda_label_check({**cuda, CUDA_LIBS_LABEL: "cublas=12.8.4.1,cudnn=9.10.2.21"})
    assert ok and detail == "cublas=12.8.4.1, cudnn=9.10.2.21"


def _load_line(libs: dict, load: dict) -> str:
    return "noise\n" + cuda_libs.LOAD_PREFIX + json.dumps({"libs": libs, "load": load}) + "\n"


def test_check_image_loads_what_the_label_names():
    labels = {CUDA_LIBS_LABEL: "cublas=12.8.4.1,cudnn=9.10.2.21"}
    libs = {"cublas": "12.8.4.1", "cudnn": "9.10.2.21"}
    good = {"libcublas.so.12": None, "libcublasLt.so.12": None, "libcudnn.so.9": None}
    name, ok, detail = check_image.cuda_load_check(labels, 0, _load_line(libs, good))
    assert ok and detail == "libcublas.so.12, libcublasLt.so.12, libcudnn.so.9 load (without a GPU)"
    _, ok, detail = check_image.cuda_load_check(labels, 0, _load_line(libs, {**good, "libcudnn.so.9": "not found"}))
    assert not ok and detail == "libcudnn.so.9: not found"
    _, ok, detail = check_image.cuda_load_check(labels, 0, _load_line({"cublas": "12.8.4.1"}, good))
    assert not ok and "the label says cublas=12.8.4.1,cudnn=9.10.2.21" in detail
    _, ok, detail = check_image.cuda_load_check(labels, 1, "Traceback ...\nModuleNotFoundError: edgeasr_entrypoint")
    assert not ok and "(exit 1): ModuleNotFoundError" in detail
    _, ok, detail = check_image.cuda_load_check({}, 0, _load_line({}, {}))
    assert not ok and "none of libcudart" in detail


def test_check_image_fails_a_cuda_image_whose_libraries_are_cpu_builds():
    """What a container without a GPU can tell: torch's build, onnxruntime's providers (the torch stack's CPU
    onnxruntime under an onnxruntime:cuda label is the case this catches)."""
    from runner.host import gpu_probe

    def said(probe: dict) -> str:
        return "x\n" + gpu_probe.PREFIX + json.dumps(probe) + "\n"

    name, ok, detail = check_image.cuda_build_check("faster-whisper", 0, said({"ctranslate2": {"version": "4.8.5"}}))
    assert name == "CUDA builds" and ok and detail == "CTranslate2 4.8.5 (its CUDA devices show only on a GPU)"
    _, ok, detail = check_image.cuda_build_check("whisperx", 0, said({"torch": {"version": "2.8.0", "cuda_build": None}}))
    assert not ok and detail.startswith("torch 2.8.0 is a CPU-only build")
    cpu_ort = {"torch": {"version": "2.8.0+cu128", "cuda_build": "12.8"},
               "onnxruntime": {"version": "1.32.0", "providers": ["CPUExecutionProvider"]}}
    _, ok, detail = check_image.cuda_build_check("onnxruntime", 0, said(cpu_ort))
    assert not ok and detail.startswith("onnxruntime has no CUDAExecutionProvider (the CPU wheel)")
    assert check_image.cuda_build_check("whisperx", 0, said(cpu_ort))[1]  # whisperx's VAD onnxruntime is not its GPU path
    _, ok, detail = check_image.cuda_build_check("faster-whisper", 137, "Killed")
    assert not ok and detail == "the image's libraries did not answer (exit 137): Killed"


def test_a_check_not_run_for_want_of_a_gpu_is_a_skip_not_a_failure(capsys, monkeypatch):
    checks = [check_image.Check("label org.edgeasr.backend", True, "'faster-whisper'"),
              check_image.Check("tiny job on cuda", True, "not run: no GPU visible here: ...", skipped=True)]
    monkeypatch.setattr(check_image, "run_checks", lambda *a, log, **k: [log(c) for c in checks] and checks)
    monkeypatch.setattr(check_image, "load_dataset", lambda path: None)
    monkeypatch.setattr(check_image.checked_images, "record_path", lambda: Path("/state/checked-images.json"))
    args = type("A", (), dict(image="edgeasr/faster-whisper:cuda", model=None, quant=None, models_dir=Path("/m"),
                              timeout=1.0, quiet=True))()
    assert check_image.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "SKIP  tiny job on cuda: not run: no GPU visible here: ..."  # shown even with -q
    assert out[-1] == ("edgeasr/faster-whisper:cuda: 1 of 1 checks passed, 1 not run (tiny job on cuda: no GPU "
                       "visible); recorded by its id in /state/checked-images.json")


# -- onnxruntime's CUDA variant: onnxruntime-gpu in place of the CPU wheel (the pin in one file) ----------------

ORT = BACKENDS["onnxruntime"]
#: The newest onnxruntime-gpu on PyPI built for CUDA 12 (1.27 and later link libcublas.so.13 / libcudart.so.13;
#: the image's CUDA is torch 2.8.0's 12.8). PyPI has no onnxruntime-gpu 1.32.0, the CPU pin.
ORT_GPU = "1.26.0"


def test_onnxruntimes_cuda_variant_takes_the_gpu_wheel_from_its_own_file_in_place_of_the_cpu_one():
    """One file says what the CUDA variant installs instead of requirements.txt's CPU package (both own the
    `onnxruntime` module): the Dockerfile installs it, the wheelhouse is filled from it, and the versions label
    names what the image really holds (onnxruntime-gpu, in the CPU pin's place), not the CPU pin."""
    variant = images.variant_requirements(ORT, "cuda")
    assert variant.path == ROOT / "containers" / "onnxruntime" / "requirements-cuda.txt"
    assert variant.pins == {"onnxruntime-gpu": ORT_GPU} and variant.replaces == {"onnxruntime": "onnxruntime-gpu"}
    cuda = images.parse_versions_label(images.versions_label(ORT, platform="cuda"))
    assert list(cuda) == ["torch", "transformers", "onnxruntime-gpu", "onnx", "tokenizers", "soundfile", "soxr"]
    assert cuda["onnxruntime-gpu"] == ORT_GPU
    x86 = images.parse_versions_label(images.versions_label(ORT))
    assert x86["onnxruntime"] == "1.32.0" and "onnxruntime-gpu" not in x86
    # no variant file: the requirements' pins, whatever the platform
    assert images.variant_requirements(ORT, "jetson-r36").pins == {}
    assert images.versions_label(BACKENDS["faster-whisper"], platform="cuda") == \
        images.versions_label(BACKENDS["faster-whisper"])
    # a child's CUDA extras: the GPU wheel, not the CPU one the parent (torch stack) already holds
    extras = images.child_extras(ORT, platform="cuda")
    assert f"onnxruntime-gpu=={ORT_GPU}" in extras and "onnx==1.23.2" in extras
    assert not any(e.startswith("onnxruntime==") for e in extras)


def test_a_replaced_package_must_be_one_requirements_txt_pins(tmp_path, monkeypatch):
    """A `# replaces:` that names no pin of requirements.txt is a typo the label would hide: refused."""
    folder = tmp_path / "onnxruntime"
    folder.mkdir()
    (folder / "requirements-cuda.txt").write_text("onnxruntime-gpu==1.26.0  # replaces: onnxruntme\n")
    monkeypatch.setattr(images, "CONTAINERS_DIR", tmp_path)
    monkeypatch.setattr("runner.backends.CONTAINERS_DIR", tmp_path)
    (folder / "requirements.txt").write_text("onnxruntime==1.32.0\n")
    with pytest.raises(ValueError, match="replaces onnxruntme, which requirements.txt does not pin"):
        images.platform_pins(ORT, "cuda")


def test_onnxruntimes_cuda_build_fills_the_gpu_wheel_and_labels_it(recorded, tmp_path):
    """On the torch stack (no registry): the wheelhouse gets onnxruntime-gpu (the CPU wheel is the parent's), and
    the label each build passes says onnxruntime-gpu."""
    client = _Client(["edgeasr/torch-base:2.8"])
    make.build_images(client, make.BuildRequest(names=("onnxruntime",), platform="cuda", log_dir=tmp_path),
                      log=recorded["said"].append)
    [(name, only)] = recorded["filled"]
    assert name == "onnxruntime" and only == tuple(images.child_extras(ORT, platform="cuda"))
    assert [(tag, base) for tag, base, _ in recorded["built"]] == [("edgeasr/onnxruntime:cuda",
                                                                    "edgeasr/torch-base:2.8")] * 2


def test_build_image_labels_the_variants_own_pins():
    """build_image's default versions label is the platform's (platform_pins), so no caller can label the CUDA
    variant with the CPU pin."""

    class Api:
        def build(self, **kwargs):
            self.kwargs = kwargs
            return iter([{"stream": "Step 1/1 : FROM base\n"}])

    class Client:
        api = Api()
        images = type("Images", (), {"get": staticmethod(lambda tag: type("I", (), {"id": "sha256:1"})())})()

    client = Client()
    images.build_image(client, ORT, base="edgeasr/torch-base:2.8", tag="t:cuda", platform="cuda", wheels_url="",
                       log=lambda _: None)
    assert client.api.kwargs["buildargs"]["EDGEASR_VERSIONS"] == images.versions_label(ORT, platform="cuda")
    assert f"onnxruntime-gpu={ORT_GPU}" in client.api.kwargs["buildargs"]["EDGEASR_VERSIONS"]


def test_doctor_compares_a_cuda_image_with_its_variants_pins():
    from runner.host import doctor

    label = images.versions_label(ORT, platform="cuda")
    facts = doctor.ImageFacts("onnxruntime", "edgeasr/onnxruntime:cuda", "cuda", True,
                              labels={"org.edgeasr.versions": label})
    assert doctor._pins_line(facts)[0].startswith("current:")
    cpu = doctor.ImageFacts(**{**facts.__dict__, "labels": {"org.edgeasr.versions": images.versions_label(ORT)}})
    line, fix = doctor._pins_line(cpu)
    assert "onnxruntime-gpu not in the image" in line and fix.endswith("--device cuda")
