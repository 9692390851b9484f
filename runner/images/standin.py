"""Local stand-ins for the Jetson images' bases, their Python side only (issue 25 item 4): the project's own
Jetson Dockerfiles built FROM them for linux/arm64, so that their RUN steps, the entrypoint and the adapter run on
aarch64 under a Python near the Jetson base's, CPU only, where no NVIDIA base can be pulled (no registry).

A stand-in is a Debian arm64 base (containers/base/make-base.sh; the suite whose Python is nearest the real base's,
BASES) with the real base's Python layout (the system python3 with its own pip on Ubuntu 20.04 r35 images; a venv
first on PATH on the 24.04 r36 ones) and the libraries the real base carries on its Python side, as PyPI's CPU-only
aarch64 wheels from the host's wheelhouse (containers/base/jetson-standin/wheels/aarch64-py<X.Y>). It is not an
NVIDIA image: no L4T, CUDA, cuDNN or TensorRT, and every library is PyPI's CPU build, never the Jetson one. What
is left unbuilt is listed in containers/PLATFORMS.md ("Jetson stand-ins").

Usage: `make jetson-standin` (python -m runner.images.standin [r35 r36]).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..backends import IMAGES, ImageDef
from ..errors import UserError
from .build import BASES, build_image, ensure_base, fill_wheelhouse
from .make import BuildRequest, build_images

#: The folder of the stand-ins' one Dockerfile (its build arguments make each one) and of their wheelhouse.
STANDIN_DIR = "base/jetson-standin"


@dataclass(frozen=True, kw_only=True)
class StandIn:
    """One base stood in for: which (``stands_for``, the default BASE_IMAGE of the Dockerfiles in ``builds``, and
    its Python), the Debian Python that stands in for that one (``python``, a BASES key), where packages go
    (``venv``: empty for the system python3), what the real base carries that the Dockerfiles use (``packages``,
    pip pins installed with their dependencies; ``no_deps``, without them, where a dependency a package pins has no
    wheel and ``packages`` names another: PyPI's CPU-only aarch64 wheels of all) and which (backend, platform)
    variants are built on it."""

    name: str
    stands_for: str
    stands_for_python: str
    python: str
    venv: str
    packages: tuple[str, ...]
    builds: tuple[tuple[str, str], ...]
    no_deps: tuple[str, ...] = ()

    @property
    def pins(self) -> tuple[str, ...]:
        """Every package it carries (``packages`` and ``no_deps``): its org.edgeasr.versions label."""
        return self.packages + self.no_deps

    @property
    def tag(self) -> str:
        return f"edgeasr/standin:jetson-{self.name}"

    @property
    def image(self) -> ImageDef:
        """The stand-in as the builder's ImageDef: its folder (Dockerfile, wheelhouse) and Python (the wheels')."""
        return ImageDef(name=f"jetson-standin-{self.name}", image=self.tag, build_dir=STANDIN_DIR, python=self.python)

    def variant_tag(self, backend: str, platform: str) -> str:
        """The tag of a Jetson variant built on the stand-in: never the real variant's (it is not one)."""
        return f"{IMAGES[backend].image.rsplit(':', 1)[0]}:{platform}-standin-arm64"


STANDINS: dict[str, StandIn] = {s.name: s for s in (
    # JetPack 5: Ubuntu 20.04, Python 3.8 (none for aarch64 can be had here: Debian's nearest is bullseye's 3.9,
    # with 20.04's glibc 2.31). What dustynv/whisperx:r35.3.1 (2024-01-19) carries for faster-whisper: faster-whisper
    # 0.10.x and CTranslate2 3.x from git master of January 2024 (here the releases 0.10.1 and 3.24.0, PyPI's CPU
    # builds; faster-whisper without its dependencies, since its av==10.* has no wheel: av 12.0.0 instead, and the
    # others at their January 2024 releases), numpy 1.24.4 (the newest for Python 3.8), soundfile
    # (pyannote.audio 3.1's dependency; 0.13.1, the first with an aarch64 wheel that bundles libsndfile) and soxr
    # 0.3.7 (the newest for 3.8; containers here reach no index: a Dockerfile's PyPI branch cannot run, so the
    # stand-in holds them).
    StandIn(name="r35", stands_for="dustynv/whisperx:r35.3.1", stands_for_python="3.8", python="3.9", venv="",
            packages=("ctranslate2==3.24.0", "av==12.0.0", "tokenizers==0.15.2", "huggingface-hub==0.20.3",
                      "onnxruntime==1.16.3", "numpy==1.24.4", "soundfile==0.13.1", "soxr==0.3.7"),
            no_deps=("faster-whisper==0.10.1",),
            builds=(("faster-whisper", "jetson-r35"),)),
    # JetPack 6: dustynv/faster-whisper:r36.4.0-cu128-24.04 (2025-03-03): Ubuntu 24.04, Python 3.12 in /opt/venv
    # first on PATH. bookworm's 3.11 stands in (trixie's 3.13 is as near, but bookworm's arm64 base is the one the
    # arm64 images already use, and CTranslate2 4.5.0 has no cp313 wheel). Its faster-whisper and CTranslate2:
    # the newest releases before its date, 1.1.1 and 4.5.0 (PyPI's CPU builds), with huggingface-hub of then
    # (0.29.1, not the newest release pip would take today); the shared pins as
    # Dockerfile.jetson would install them.
    StandIn(name="r36", stands_for="dustynv/faster-whisper:r36.4.0-cu128-24.04", stands_for_python="3.12",
            python="3.11", venv="/opt/venv",
            packages=("faster-whisper==1.1.1", "ctranslate2==4.5.0", "huggingface-hub==0.29.1", "soundfile==0.14.0",
                      "soxr==1.1.0"),
            builds=(("faster-whisper", "jetson-r36"),)),
)}


def build_standin(client, s: StandIn, *, log: Callable[[str], None] = print, log_dir: Path = Path("build"),
                  variants: bool = True) -> None:
    """Build the stand-in ``s`` for linux/arm64 (its Debian base first, debootstrapped under emulation where
    missing; its wheelhouse filled) and, with ``variants``, the Jetson Dockerfiles of ``s.builds`` FROM it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = ensure_base(client, BASES[s.python].public, log=log, arch="arm64")
    fill_wheelhouse(s.image, log=log, only=list(s.packages), arch="arm64")
    if s.no_deps:
        fill_wheelhouse(s.image, log=log, overrides=dict(p.split("==") for p in s.no_deps), only_overrides=True,
                        arch="arm64")
    build_image(client, s.image, base=base, tag=s.tag, platform="arm64", log=log,
                log_path=log_dir / f"standin-{s.name}.log",
                versions=",".join(p.replace("==", "=") for p in s.pins),
                extra_args={"VENV": s.venv, "PACKAGES": " ".join(s.packages), "NO_DEPS": " ".join(s.no_deps),
                            "STANDS_FOR": s.stands_for})
    log(f"built {s.tag} (for {s.stands_for}) in {time.monotonic() - started:.0f} s")
    for backend, platform in s.builds if variants else ():
        started = time.monotonic()
        build_images(client, BuildRequest(names=(backend,), platform=platform, base=s.tag,
                                          tag=s.variant_tag(backend, platform), log_dir=log_dir), log=log)
        log(f"built {s.variant_tag(backend, platform)} in {time.monotonic() - started:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.images.standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"stand-ins to build ({', '.join(STANDINS)}; "
                        "default: all)")
    parser.add_argument("--no-variants", action="store_true", help="only the stand-ins, not the Jetson images")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(STANDINS))
    if unknown:
        parser.error(f"unknown stand-in {', '.join(unknown)}; known: {', '.join(STANDINS)}")
    import docker

    client = docker.from_env(timeout=3600)
    try:
        for name in args.names or STANDINS:
            build_standin(client, STANDINS[name], variants=not args.no_variants)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
