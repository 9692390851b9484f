"""The backend table: name -> image, inference library, devices, build folder.

Swapping a backend is a name here (or any image that honours the contract via --image).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

CONTAINERS_DIR = Path(__file__).resolve().parents[2] / "containers"


@dataclass(frozen=True)
class Backend:
    name: str
    library: str  # key into runner.quant.QUANT_TABLE
    image: str  # default tag built by `edgeasr images build`
    devices: tuple[str, ...]
    build_dir: str  # folder under containers/
    adapter: str  # the adapter module the entrypoint loads ($EDGEASR_ADAPTER)
    host_module: str  # the library's import name, checked before `--engine local`

    @property
    def dockerfile(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "Dockerfile"

    @property
    def requirements(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "requirements.txt"

    @property
    def wheelhouse(self) -> Path:
        return CONTAINERS_DIR / self.build_dir / "wheels"


BACKENDS: dict[str, Backend] = {
    "faster-whisper": Backend(
        name="faster-whisper",
        library="ctranslate2",
        image="edgeasr/faster-whisper:latest",
        devices=("cpu", "cuda"),
        build_dir="faster-whisper",
        adapter="edgeasr_backend_faster_whisper",
        host_module="faster_whisper",
    ),
}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UserError(f"unknown backend {name!r}; known backends: {', '.join(sorted(BACKENDS))}") from None
