"""Which platform this host is, and so which backend image variant it builds and runs by default.

The one place that reads /etc/nv_tegra_release: `is_jetson()`, `l4t_release_line()`, `l4t_release()` and
`detect_platform()` answer for hostinfo, spec checks and the Docker engine alike. Tests point
`TEGRA_RELEASE` (or a function's `path`) at a fake release file (tests/fixtures/nv_tegra_release).
Likewise the one place that looks for the NVIDIA driver's control node: `has_nvidia_driver()` (`NVIDIA_CTL`),
which `--device auto` asks.

One table (Dockerfile variant, image tag, CPU architecture) and one detection, used by `edgeasr images build`,
`run` and `sweep` (and mirrored by the Makefile's PLATFORM / PLATFORM_TAG): on a Jetson the L4T major release in
/etc/nv_tegra_release picks the JetPack image: R35 (JetPack 5: Xavier, Orin on 5.x) or R36 (JetPack 6: Orin);
another aarch64 machine (a Raspberry Pi 5, a Graviton or Ampere server) is arm64, the x86 Dockerfiles built for
linux/arm64; any other machine x86. `cuda` (x86 NVIDIA GPUs) is never detected, only asked for by name.

An image whose architecture is not the host's runs under emulation (qemu-user-static through binfmt_misc):
`is_emulated` says so, and such a run's speed and energy are the emulator's, never a device's.
"""

from __future__ import annotations

import os
import platform as _platform
import re
from dataclasses import dataclass
from pathlib import Path

from edgeasr_entrypoint.contract import CUDA_LIBS_FILE, VERSIONS_FILE

from ..errors import UserError

TEGRA_RELEASE = Path("/etc/nv_tegra_release")
#: The NVIDIA driver's control device: it exists wherever the kernel driver is loaded (x86 GPUs and Jetsons).
NVIDIA_CTL = Path("/dev/nvidiactl")


@dataclass(frozen=True, kw_only=True)
class Platform:
    """A build and run target: the Dockerfile variant in each backend folder and the image tag it gets."""

    name: str
    dockerfile: str
    tag: str
    l4t_major: int | None = None  # the L4T release this Jetson variant is built for
    # Where the variant's build writes the versions the image holds (`name=version,...`: what its base carries,
    # and any pin installed where the base lacked the package): they, not the requirements' pins, become its
    # org.edgeasr.versions label (`edgeasr images build` builds twice). A Jetson's: its base's builds win.
    versions_file: str | None = None
    #: Whether its Dockerfiles install the shared pins (soundfile, soxr) with their own pip where the base lacks
    #: them: the SHARED_PINS build argument (build_args). JetPack 5's keep their base's builds and pin nothing.
    shared_pins: bool = True
    #: The CPU architecture its images are built for, as Docker and Debian name it (ARCHES).
    arch: str = "amd64"
    #: Where the variant's build writes the CUDA libraries it holds (edgeasr_entrypoint/cuda_libs.py): they become
    #: its CUDA_LIBS_LABEL (the second build, as for ``versions_file``).
    cuda_libs_file: str | None = None
    #: Where its Dockerfile's default base can be neither found nor pulled (no registry), build on the local base
    #: instead (runner/images/make.py local_variant_base: the Debian base with CUDA from PyPI's wheels, or the
    #: torch stack). Not for a Jetson: its images need the CUDA builds only a JetPack base carries.
    local_fallback: bool = False
    #: Whether its images may load FFmpeg's shared libraries (torchcodec, whisperx's VAD): the torch stack installs
    #: them where its base lacks them. The arm64 row has no whisperx, and its local base leaves FFmpeg out
    #: (containers/base/make-base.sh): its torch stack (onnxruntime's) skips them, which under emulation is minutes.
    ffmpeg: bool = True

    @property
    def docker_platform(self) -> str:
        """The `linux/<arch>` an engine builds and runs its images for."""
        return f"linux/{self.arch}"


#: Docker's (and Debian's) architecture name -> the machine name (`uname -m`, wheel tags) of its CPUs. An
#: engine's image records the first; `platform.machine()` and manylinux wheels name the second.
ARCHES: dict[str, str] = {"amd64": "x86_64", "arm64": "aarch64"}
_MACHINE_ALIASES = {"arm64": "aarch64", "amd64": "x86_64"}  # macOS and Windows spell them so


PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    Platform(name="x86", dockerfile="Dockerfile", tag="latest"),
    Platform(name="cuda", dockerfile="Dockerfile.cuda", tag="cuda", cuda_libs_file=CUDA_LIBS_FILE,
             local_fallback=True),
    Platform(name="jetson-r35", dockerfile="Dockerfile.jetson-r35", tag="jetson-r35", l4t_major=35,
             versions_file=VERSIONS_FILE, shared_pins=False, arch="arm64"),
    Platform(name="jetson-r36", dockerfile="Dockerfile.jetson", tag="jetson-r36", l4t_major=36,
             versions_file=VERSIONS_FILE, arch="arm64"),
    # CPU only, any aarch64 board or server: the x86 Dockerfile built for linux/arm64 on a local Debian base.
    Platform(name="arm64", dockerfile="Dockerfile", tag="arm64", arch="arm64", ffmpeg=False),
)}
JETSON = "jetson"  # asked for by name: the Jetson variant of this board's L4T release
_RELEASE = re.compile(r"^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")


def is_jetson(path: Path | None = None) -> bool:
    """Whether this host is a Jetson: it has an L4T release file (``TEGRA_RELEASE``, or ``path`` in tests)."""
    return (path or TEGRA_RELEASE).exists()


def default_device(path: Path | None = None) -> str:
    """The device a run uses when none is named: a Jetson's integrated GPU (what it is bought for), else the CPU
    (an x86 GPU host runs on its GPU only when asked: --device cuda or auto)."""
    return "cuda" if is_jetson(path) else "cpu"


def has_nvidia_driver(path: Path | None = None) -> bool:
    """Whether the NVIDIA kernel driver is loaded here (its control node ``NVIDIA_CTL`` exists, or ``path`` in
    tests): `--device auto` then means cuda. It says nothing about whether Docker can hand the GPU to a
    container; the run's own checks say that."""
    return (path or NVIDIA_CTL).exists()


def l4t_release_line(path: Path | None = None) -> str | None:
    """The L4T release file's first line as written (`# R36 (release), REVISION: 4.0, GCID: ...`), or None
    where there is none (not a Jetson). Never raises: an unknown format is still a fact for a manifest."""
    path = path or TEGRA_RELEASE
    try:
        text = path.read_text(errors="replace").strip("\x00\n ") if path.exists() else ""
    except OSError:
        return None
    return text.splitlines()[0] if text else None


def l4t_release(path: Path | None = None) -> tuple[int, str] | None:
    """(major, revision) from an L4T release file (`# R35 (release), REVISION: 4.1, GCID: ...` -> (35, "4.1")),
    or None where there is no such file (not a Jetson)."""
    path = path or TEGRA_RELEASE
    first = l4t_release_line(path)
    if first is None:
        return None
    m = _RELEASE.match(first.strip())
    if not m:
        raise UserError(f"{path} does not start like `# R36 (release), REVISION: 4.0, ...`: {first.strip()!r}; "
                        f"pass the platform by name (--platform / PLATFORM=)")
    return int(m.group(1)), m.group(2)


def jetson_platform(path: Path | None = None) -> str:
    """The Jetson variant for this board's L4T release; a release without one is a UserError."""
    path = path or TEGRA_RELEASE
    release = l4t_release(path)
    if release is None:
        raise UserError(f"platform {JETSON} needs an L4T release file ({path}); this is not a Jetson")
    by_major = {p.l4t_major: p.name for p in PLATFORMS.values() if p.l4t_major is not None}
    if release[0] not in by_major:
        known = ", ".join(f"R{major} ({name})" for major, name in sorted(by_major.items()))
        raise UserError(f"L4T R{release[0]}.{release[1]} ({path}) has no GPU image variant; there are {known}. "
                        f"Use the CPU image (--platform x86) or --image with an image of your own")
    return by_major[release[0]]


def host_arch(machine: str | None = None) -> str:
    """This host's architecture as Docker names it (amd64, arm64), from ``machine`` (`uname -m`; this host's
    when None). A machine outside ARCHES is returned as it is: nothing of ours is built for it."""
    machine = (machine or _platform.machine()).lower()
    machine = _MACHINE_ALIASES.get(machine, machine)
    return next((arch for arch, name in ARCHES.items() if name == machine), machine)


def detect_platform(path: Path | None = None, machine: str | None = None) -> str:
    """jetson-r35 / jetson-r36 on a Jetson (by its L4T release), arm64 on another aarch64 machine, else x86.
    ``machine``: `uname -m` (this host's when None; tests name one)."""
    if is_jetson(path):
        return jetson_platform(path)
    return "arm64" if host_arch(machine) == "arm64" else "x86"


def is_emulated(image_arch: str | None, machine: str | None = None) -> bool:
    """Whether an image of architecture ``image_arch`` (Docker's name: an image's `Architecture`) runs emulated
    on this host (``machine``: `uname -m`, this host's when None): its CPU is not the host's. An image that
    records no architecture is taken as native (every engine records one)."""
    return bool(image_arch) and host_arch(image_arch) != host_arch(machine)


def emulation_record(image_arch: str | None, machine: str | None = None) -> dict[str, str] | None:
    """What a run's summary records (its ``emulation`` block) when an image of ``image_arch`` runs on this host
    (``machine``: `uname -m`, this host's when None) under emulation, else None: its speed and energy are then the
    emulator's, never figures of a device of that architecture."""
    if not is_emulated(image_arch, machine):
        return None
    host = ARCHES.get(host_arch(machine), machine or _platform.machine())
    return {"image_arch": str(image_arch), "host_machine": host, "emulator": "qemu-user (binfmt_misc)",
            "note": f"speed and energy are of {image_arch} emulated on {host}, not of an {image_arch} device"}


def stand_in_cpuinfo(image_arch: str | None, machine: str | None = None, cpus: int | None = None) -> str | None:
    """A FAKE /proc/cpuinfo for an arm64 image emulated on this host (``machine``), else None.

    Why: qemu-user (Debian 12's 7.2) passes the host's own /proc/cpuinfo through, an x86 one, and ARM CPU detection
    cannot parse it: onnxruntime's (pytorch's cpuinfo) dereferences NULL on it at `import onnxruntime`, and the
    emulated process then waits forever (seen with qemu's -strace). This stand-in says ``cpus`` (the host's count)
    ARMv8.0 cores with only the baseline features every qemu CPU model has, and names itself a fake; the container
    gets it read-only over /proc/cpuinfo (runner/launch/docker_engine.py). Its figures are the emulator's anyway."""
    if not is_emulated(image_arch, machine) or host_arch(image_arch) != "arm64":
        return None
    blocks = [f"processor\t: {n}\nmodel name\t: FAKE ARMv8 stand-in (edgeasr: the host's x86 /proc/cpuinfo under "
              f"qemu-user)\nBogoMIPS\t: 100.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid\n"
              f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
              f"CPU revision\t: 0\n" for n in range(cpus or os.cpu_count() or 1)]
    return "\n".join(blocks)


def emulated_text(record: dict | None) -> str | None:
    """``"arm64 emulated on x86_64"`` for a summary's ``emulation`` block, None for a native run."""
    if not isinstance(record, dict) or not record.get("image_arch"):
        return None
    return f"{record['image_arch']} emulated on {record.get('host_machine') or 'another CPU'}"


def resolve_platform(name: str, path: Path | None = None, machine: str | None = None) -> str:
    """A platform name as a user gives it: `auto` (detect), `jetson` (this board's release) or a table name."""
    if name == "auto":
        return detect_platform(path, machine)
    if name == JETSON:
        return jetson_platform(path)
    if name not in PLATFORMS:
        raise UserError(f"unknown platform {name!r}; choose auto, {JETSON} or one of {', '.join(PLATFORMS)}")
    return name


def platform_image(image: str, platform: str) -> str:
    """The image reference of a backend image (its default tag) for a platform: `repo:<platform tag>`."""
    return image.rsplit(":", 1)[0] + ":" + PLATFORMS[platform].tag


def default_image(image: str, path: Path | None = None) -> str:
    """The image a run uses when none is named: the backend's image for the detected platform."""
    return platform_image(image, detect_platform(path))
