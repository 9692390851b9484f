"""The backend table: name -> image, inference library, devices, build folder.

Swapping a backend is a name here (or any image that honours the contract via --image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..platforms import detect_platform, platform_image

CONTAINERS_DIR = Path(__file__).resolve().parents[2] / "containers"


@dataclass(frozen=True, kw_only=True)
class ImageDef:
    """An image edgeasr builds: its tag and its folder under containers/ (Dockerfile, requirements, wheels)."""

    name: str
    image: str  # default tag built by `edgeasr images build`
    build_dir: str  # folder under containers/
    parent: str | None = None  # an ImageDef built first and used as this one's BASE_IMAGE (its packages too)

    @property
    def dockerfile(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "Dockerfile"

    @property
    def requirements(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "requirements.txt"

    @property
    def wheelhouse(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "wheels"


@dataclass(frozen=True, kw_only=True)
class Backend(ImageDef):
    """A backend image: an ImageDef whose entrypoint runs an ASR library behind the contract."""

    library: str  # key into runner.quant.QUANT_TABLE
    devices: tuple[str, ...]
    adapter: str  # the adapter module the entrypoint loads ($EDGEASR_ADAPTER)
    host_module: str  # the library's import name, checked before `--engine local`
    # What the backend loads (runner.models.MODEL_FORMATS): a CTranslate2 folder, a Hugging Face folder
    # (installed CTranslate2 Whisper models resolve to their conversion), or a model bundled in the image.
    model_format: str = "ctranslate2"
    bundled_models: tuple[str, ...] = ()  # model_format "bundled": the names the image ships
    default_model: str = "tiny.en"  # --model when none is given
    default_quant: str = "int8"  # --quant when none is given
    check_model: str = "tiny.en"  # the model `edgeasr check-image` runs its test job with
    # Platforms (runner/platforms.py) with a Dockerfile variant; a platform left out is refused with `no_variant`.
    platforms: tuple[str, ...] = ("x86", "cuda", "jetson-r35", "jetson-r36")
    no_variant: str = ""  # why a left-out platform has no image (said when one is asked for)
    #: Settings (dotted paths) the entrypoint can vary inside one loaded model, condition by condition
    #: (contract: a condition's ``decode`` overrides). A sweep axis over one of these stays a condition of one
    #: container; any other axis makes a new container (group). Noise and repeats are always in-container.
    in_container: tuple[str, ...] = ()

    def platform_problem(self, platform: str) -> str | None:
        """Why this backend has no image for ``platform``, or None when it has one."""
        if platform in self.platforms:
            return None
        return f"backend {self.name} has no {platform} image: {self.no_variant or 'no Dockerfile variant'}"

    def default_image(self, platform: str | None = None) -> str:
        """The image a run uses when none is named: this backend's image for the (detected) platform."""
        platform = platform or detect_platform()
        problem = self.platform_problem(platform)
        if problem:
            raise UserError(problem)
        return platform_image(self.image, platform)


BACKENDS: dict[str, Backend] = {
    "faster-whisper": Backend(
        name="faster-whisper",
        library="ctranslate2",
        image="edgeasr/faster-whisper:latest",
        devices=("cpu", "cuda"),
        build_dir="faster-whisper",
        adapter="edgeasr_backend_faster_whisper",
        in_container=("decode.beam_size", "decode.batch_size", "decode.temperature", "decode.language"),
        host_module="faster_whisper",
    ),
    "whisperx": Backend(
        name="whisperx",
        library="ctranslate2",
        image="edgeasr/whisperx:latest",
        devices=("cpu", "cuda"),
        build_dir="whisperx",
        adapter="edgeasr_backend_whisperx",
        in_container=("decode.beam_size", "decode.batch_size", "decode.temperature", "decode.language"),
        host_module="whisperx",
        parent="torch-base",
    ),
    "transformers": Backend(
        name="transformers",
        library="torch",
        image="edgeasr/transformers:latest",
        devices=("cpu", "cuda"),
        build_dir="transformers",
        adapter="edgeasr_backend_transformers",
        in_container=("decode.beam_size", "decode.batch_size", "decode.temperature", "decode.language"),
        host_module="transformers",
        parent="torch-base",
        model_format="hf",
        check_model="tiny-whisper-random",
    ),
    "onnxruntime": Backend(
        name="onnxruntime",
        library="onnxruntime",
        image="edgeasr/onnxruntime:latest",
        devices=("cpu", "cuda"),
        build_dir="onnxruntime",
        adapter="edgeasr_backend_onnxruntime",
        in_container=("decode.beam_size", "decode.language"),
        host_module="onnxruntime",
        platforms=("x86", "cuda", "jetson-r36"),
        no_variant="JetPack 5 (r35) has Python 3.8 and no onnxruntime-gpu in its jetson-containers bases yet; "
                   "use --device cpu with --image of a CPU build, or a JetPack 6 board",
        parent="torch-base",
        model_format="onnx",
    ),
    "pocketsphinx": Backend(
        name="pocketsphinx",
        library="pocketsphinx",
        image="edgeasr/pocketsphinx:latest",
        devices=("cpu",),  # the CMU decoder has no GPU path
        build_dir="pocketsphinx",
        adapter="edgeasr_backend_pocketsphinx",
        host_module="pocketsphinx",
        platforms=("x86", "cuda", "jetson-r36"),
        no_variant="no JetPack 5 (r35) variant yet; pocketsphinx is CPU-only, so the JetPack 6 (Dockerfile.jetson) "
                   "recipe or an arm64 build of the x86 Dockerfile serves a JetPack 5 board's CPU",
        model_format="bundled",
        bundled_models=("en-us",),
        default_model="en-us",
        default_quant="fp32",
        check_model="en-us",
    ),
}


# Backends asked for and not buildable here: the name is known, and a run is refused with the reason.
UNAVAILABLE: dict[str, str] = {
    "espnet": (
        "espnet does not install on the torch base (Python 3.11, torch 2.8): espnet 202609 and later need "
        "Python >= 3.12, and 202511, the last release for 3.11, does not resolve with pip: its dependency ci_sdr "
        "0.0.2 (a source distribution) declares a direct git URL dependency (padertorch @ git+https://...), "
        "which pip refuses from PyPI, and its dependency pyworld is a source distribution only (it needs a C "
        "compiler and Python headers, which the offline image bases lack); see containers/PLATFORMS.md, ESPnet"
    ),
}


def unavailable_reason(name: str) -> str | None:
    """Why a known but unbuildable backend cannot run, or None."""
    return UNAVAILABLE.get(name)


# Images that are not backends: the runner itself (for `docker compose up sweep`), and the shared torch
# stack that the torch backends are built on.
RUNNER_IMAGE = ImageDef(name="runner", image="edgeasr/runner:latest", build_dir="runner")
TORCH_BASE = ImageDef(name="torch-base", image="edgeasr/torch-base:2.8", build_dir="torch-base")
IMAGES: dict[str, ImageDef] = {**BACKENDS, RUNNER_IMAGE.name: RUNNER_IMAGE, TORCH_BASE.name: TORCH_BASE}


def get_image(name: str) -> ImageDef:
    try:
        return IMAGES[name]
    except KeyError:
        raise UserError(f"unknown image {name!r}; known: {', '.join(sorted(IMAGES))}") from None


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        if name in UNAVAILABLE:
            raise UserError(f"backend {name} is not available: {UNAVAILABLE[name]}") from None
        raise UserError(f"unknown backend {name!r}; known backends: {', '.join(sorted(BACKENDS))}") from None
