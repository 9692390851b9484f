"""Build backend images through the Engine API: base image, wheelhouse, labels.

Where no registry is reachable the public base cannot be pulled, so a local Debian
base is made with mmdebstrap or debootstrap (containers/base/make-base.sh) and used instead:
bookworm for the Python 3.11 images, trixie for the Python 3.13 ones (BASES; each
image's row names its Python). Python packages come from a host-side wheelhouse
(filled with pip on the host, which reaches the package index even where builds do
not, with wheels for the image's Python), served to the build over loopback
(wheel_server.py) and passed as the WHEELS_URL build argument; without it the
Dockerfile installs from the index as usual.

The wheelhouse is keyed by CPU architecture and Python (`wheels/<machine>-py<X.Y>/`, e.g.
`x86_64-py3.11`, `aarch64-py3.11`): the arm64 images (platform arm64) are the same
Dockerfiles built for linux/arm64 on an arm64 local base (`<local tag>-arm64`), with
PyPI's aarch64 wheels. On an x86 host they are built and run under emulation (qemu-user-static).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, Callable

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from edgeasr_entrypoint.contract import CONTRACT_VERSION

from ..backends import CONTAINERS_DIR, IMAGES, RUNNER_IMAGE, Backend, ImageDef
from ..errors import UserError
from ..host.platforms import ARCHES, PLATFORMS, host_arch, platform_image
from ..launch.docker_engine import MANAGED_LABEL, removed_on_exit
from ..launch.hardening import Hardening
from .wheel_server import PORT, serve_wheelhouse


@dataclass(frozen=True, kw_only=True)
class BaseImage:
    """The base of the images of one Python: a public image, and the local Debian one that make-base.sh builds
    (debootstrap SUITE) where the public one cannot be pulled. Wheels for them must match the Python and may need
    at most the suite's glibc."""

    python: str
    public: str
    local: str  # the tag names what it holds: a stale base is never reused
    suite: str
    glibc_minor: int  # the suite's glibc 2.N: the newest manylinux_2_N wheel it runs

    @property
    def wheel_platforms(self) -> list[str]:
        """The x86_64 wheels' platform tags (wheel_platforms_for: another architecture's)."""
        return self.wheel_platforms_for("amd64")

    def wheel_platforms_for(self, arch: str) -> list[str]:
        """pip's `--platform` tags of the wheels this base runs on ``arch`` (Docker's name: amd64, arm64)."""
        machine = ARCHES[arch]
        return [f"manylinux2014_{machine}"] + [f"manylinux_2_{n}_{machine}" for n in range(17, self.glibc_minor + 1)]

    def local_for(self, arch: str) -> str:
        """The local base's tag for ``arch``: a tag holds one architecture, so another one's is named by its suite
        and architecture (``edgeasr/base:bookworm-arm64``: without FFmpeg, which no arm64 image loads, make-base.sh);
        amd64's is ``local`` itself."""
        return self.local if arch == "amd64" else f"edgeasr/base:{self.suite}-{arch}"


BASES: dict[str, BaseImage] = {b.python: b for b in (
    BaseImage(python="3.11", public="python:3.11-slim-bookworm", local="edgeasr/base:bookworm-ffmpeg",
              suite="bookworm", glibc_minor=36),
    BaseImage(python="3.13", public="python:3.13-slim-trixie", local="edgeasr/base:trixie", suite="trixie",
              glibc_minor=41),
    # Only the JetPack 5 stand-in's (runner/images/standin.py): Debian's nearest Python to JetPack 5's 3.8, on
    # Ubuntu 20.04's glibc 2.31; a system python3 with pip (make-base.sh).
    BaseImage(python="3.9", public="python:3.9-slim-bullseye", local="edgeasr/base:bullseye", suite="bullseye",
              glibc_minor=31),
)}
PUBLIC_BASE = BASES["3.11"].public  # `--base`: the base of the Python 3.11 images (every image's but espnet's)
LOCAL_BASE = BASES["3.11"].local
WHEEL_PYTHON = "3.11"  # the python of both bases above; wheels must match it
WHEEL_PLATFORMS = BASES[WHEEL_PYTHON].wheel_platforms
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:\[[A-Za-z0-9_.,\s\-]*\])?\s*==\s*([^\s;#]+)")  # name[extras]==version
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_VERSION = re.compile(r"[0-9][0-9A-Za-z.+!\-]*")


def pinned_versions(requirements: Path | str) -> dict[str, str]:
    """name -> version for every `name==version` line (a path, or the file's text): they become the image's
    version labels."""
    text = requirements.read_text() if isinstance(requirements, Path) else requirements
    pins = {}
    for line in text.splitlines():
        m = _PIN.match(line)
        if m:
            pins[_normalize(m.group(1))] = m.group(2)
    return pins


def _normalize(name: str) -> str:
    """PEP 503 name: `CTranslate2`, `faster_whisper` and `faster-whisper` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`--set name=version` arguments as {normalized name: version}; UserError naming the bad one."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, version = item.partition("=")
        name, version = name.strip(), version.strip().lstrip("=")  # `name==version` is accepted too
        if not sep or not _NAME.fullmatch(name) or not _VERSION.fullmatch(version):
            raise UserError(f"--set {item!r} is not NAME=VERSION (for example --set ctranslate2=4.6.0)")
        out[_normalize(name)] = version
    return out


#: The pins every backend image (and its parents) shares, in one file: requirements_text adds them to each image's
#: requirements, build_args passes them to the CUDA/Jetson variants as SHARED_PINS.
SHARED_REQUIREMENTS = CONTAINERS_DIR / "common" / "shared-requirements.txt"


#: NVIDIA's CUDA libraries as PyPI wheels, for a CUDA variant built on a base without them (the local fallback,
#: make.py): the Dockerfiles install the file, fill_wheelhouse downloads it.
CUDA_REQUIREMENTS = CONTAINERS_DIR / "common" / "cuda-requirements.txt"
_BASE_ARG = re.compile(r"^\s*ARG\s+BASE_IMAGE=(\S+)\s*$", re.MULTILINE)


def dockerfile_base(dockerfile: Path) -> str | None:
    """The default of a Dockerfile's first ``ARG BASE_IMAGE=``: the base it is built FROM when none is given."""
    m = _BASE_ARG.search(dockerfile.read_text())
    return m.group(1) if m else None


def present_or_pulled(client: docker.DockerClient, ref: str, log: Callable[[str], None] = print) -> bool:
    """Whether the engine holds ``ref`` or can pull it now; a pull that fails is said in one line."""
    if image_exists(client, ref):
        return True
    try:
        client.images.pull(ref)
        return True
    except APIError as exc:
        log(f"cannot pull {ref} ({exc.explanation.splitlines()[0] if exc.explanation else exc})")
        return False


def shares_pins(image: ImageDef) -> bool:
    """Whether an image installs the shared pins: every image but the host runner's (no backend: no soxr)."""
    return image.name != RUNNER_IMAGE.name


def shared_pins(overrides: dict[str, str] | None = None) -> str:
    """The shared pins as pip arguments (`name==version ...`, with any `--set` version): the SHARED_PINS build
    argument of the CUDA/Jetson variants, which install them with their own pip."""
    pins = pinned_versions(SHARED_REQUIREMENTS)
    return " ".join(f"{n}=={(overrides or {}).get(n, v)}" for n, v in pins.items())


def requirements_text(image: ImageDef, overrides: dict[str, str] | None = None) -> str:
    """The image's requirements.txt, followed by the shared pins (SHARED_REQUIREMENTS) for every image but the
    runner's, with each `--set` pin put in its line; an unpinned name is refused.

    Only pinned packages can be swapped: a name the file does not pin would be a package the image does
    not have, and its label would claim it.
    """
    text = image.requirements.read_text()
    if shares_pins(image):  # just the pin lines, last: the file an image installed before, byte for byte (and cache)
        text += "".join(f"{line}\n" for line in SHARED_REQUIREMENTS.read_text().splitlines() if _PIN.match(line))
    if not overrides:
        return text
    pinned = pinned_versions(text)
    unknown = sorted(set(overrides) - set(pinned))
    if unknown:
        where = image.requirements.relative_to(CONTAINERS_DIR.parent)
        if shares_pins(image):
            where = f"{where} or {SHARED_REQUIREMENTS.relative_to(CONTAINERS_DIR.parent)}"
        raise UserError(f"--set {', '.join(unknown)}: not pinned in {where}"
                        f"; the pinned packages of {image.name} are {', '.join(pinned)}")
    lines = []
    for line in text.splitlines():
        m = _PIN.match(line)
        name = _normalize(m.group(1)) if m else None
        if name in overrides and overrides[name] != pinned[name]:  # the same pin: the same file (and cache)
            line = f"{m.group(1)}=={overrides[name]}  # --set (requirements.txt pins {pinned[name]})"
        lines.append(line)
    return "\n".join(lines) + "\n"


_REPLACES = re.compile(r"#\s*replaces:\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)")


@dataclass(frozen=True)
class VariantRequirements:
    """What one platform's variant of an image installs in place of requirements.txt's packages: its
    ``requirements-<platform>.txt`` (ImageDef.variant_requirements), which that variant's Dockerfile installs and
    the host's wheelhouse is filled from, so each version is written once. ``pins``: name -> version;
    ``replaces``: the requirements.txt package -> the pin that takes its place, from a ``# replaces: NAME``
    comment on the pin's line (onnxruntime-gpu replaces onnxruntime: both own the `onnxruntime` module, so the
    image holds one). Empty where the folder has no such file."""

    path: Path
    pins: Mapping[str, str]
    replaces: Mapping[str, str]


def variant_requirements(image: ImageDef, platform: str) -> VariantRequirements:
    """``platform``'s own requirements of ``image`` (VariantRequirements; empty where there are none)."""
    path = image.variant_requirements(platform)
    if not path.is_file():
        return VariantRequirements(path, MappingProxyType({}), MappingProxyType({}))
    text = path.read_text()
    replaces = {}
    for line in text.splitlines():
        pin, replaced = _PIN.match(line), _REPLACES.search(line)
        if pin and replaced:
            replaces[_normalize(replaced.group(1))] = _normalize(pin.group(1))
    return VariantRequirements(path, MappingProxyType(pinned_versions(text)), MappingProxyType(replaces))


def platform_pins(image: ImageDef, platform: str = "x86", overrides: dict[str, str] | None = None) -> dict[str, str]:
    """name -> version of what ``platform``'s variant of ``image`` installs: the pinned requirements (the shared
    pins and any `--set` in), each package the variant's own file replaces swapped, in its place, for the pin that
    replaces it, and that file's other pins last. ValueError where the file replaces a package nothing pins (a
    typo the label would hide)."""
    pins = pinned_versions(requirements_text(image, overrides))
    variant = variant_requirements(image, platform)
    for replaced, by in variant.replaces.items():
        if replaced not in pins:
            raise ValueError(f"{variant.path}: {by} replaces {replaced}, which requirements.txt does not pin")
    out: dict[str, str] = {}
    for name, version in pins.items():
        by = variant.replaces.get(name)
        out[by or name] = variant.pins[by] if by else version
    for name, version in variant.pins.items():
        out.setdefault(name, version)
    return out


def versions_label(backend: ImageDef, overrides: dict[str, str] | None = None, platform: str = "x86") -> str:
    """`name=version,...` of what ``platform``'s variant installs (platform_pins: the pinned requirements, with any
    `--set`, and the variant's own in place of those they replace): the image's org.edgeasr.versions label.

    One label set by the Dockerfile's single LABEL step (build argument EDGEASR_VERSIONS): the legacy
    builder turns every label passed by the API into a step of its own, each seconds long on a big base.
    """
    return ",".join(f"{n}={v}" for n, v in platform_pins(backend, platform, overrides).items())


def build_args(image: ImageDef, *, wheels_url: str, versions: str, base: str | None,
               platform: str = "x86", overrides: dict[str, str] | None = None,
               cuda_libs: str | None = None) -> dict[str, str]:
    """The build arguments of one image: wheelhouse, version label, base, and for a backend the contract version
    it speaks (edgeasr_entrypoint/contract.py) and the platform of the variant built (runner/host/platforms.py):
    the Dockerfile's one LABEL step turns them into labels, with the backend named by the image's own
    EDGEASR_BACKEND, so no Dockerfile spells the contract version or its platform. ``cuda_libs``: a CUDA variant's
    CUDA libraries (`name=version,...`, CUDA_LIBS_LABEL), as its first build wrote them (make.py)."""
    args = {"WHEELS_URL": wheels_url, "EDGEASR_VERSIONS": versions}
    if image.name == RUNNER_IMAGE.name:  # built here from a wheelhouse: an install deferred to its start is a failure
        args["EDGEASR_ALLOW_DEFERRED"] = "0"
    if isinstance(image, Backend):
        args["EDGEASR_CONTRACT"] = str(CONTRACT_VERSION)
        args["EDGEASR_PLATFORM"] = platform
        # The CUDA/Jetson variants install the shared pins with their own pip (x86: its requirements.txt); a
        # JetPack 5 variant keeps its base's own builds and pins nothing (Platform.shared_pins).
        if platform != "x86" and PLATFORMS[platform].shared_pins:
            args["SHARED_PINS"] = shared_pins(overrides)
    if not PLATFORMS[platform].ffmpeg:  # the torch stack's FFmpeg step (containers/torch-base/Dockerfile)
        args["FFMPEG_LIBS"] = "none"
    if base is not None:
        args["BASE_IMAGE"] = base
    if cuda_libs is not None:  # the CUDA libraries the build found (CUDA_LIBS_LABEL, read back by the builder)
        args["EDGEASR_CUDA_LIBS"] = cuda_libs
    for name in INDEX_ARGS:  # the host's own choice of index, never one written here (Dockerfile.jetson*)
        if os.environ.get(name) and platform != "x86":
            args[name] = os.environ[name]
    return args


#: Package indexes a Jetson variant may be pointed at from the host's environment; unset, a Jetson build uses its
#: base image's PIP_INDEX_URL for the CUDA wheels and pip's own default for the rest (containers/PLATFORMS.md).
INDEX_ARGS = ("JETSON_PIP_INDEX_URL", "PYPI_INDEX_URL")


def parse_versions_label(value: str | None) -> dict[str, str]:
    return dict(item.split("=", 1) for item in (value or "").split(",") if "=" in item)


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    """Whether the engine holds an image by this reference (nothing is pulled)."""
    try:
        client.images.get(ref)
        return True
    except ImageNotFound:
        return False


RUNNER_RECORD = "/opt/venv/edgeasr-installed.txt"  # the requirements.txt its venv holds (containers/runner/Dockerfile)


def runner_image_problem(client: docker.DockerClient, ref: str) -> str | None:
    """Why the runner image `ref` is not complete (None: it is): it records no install (its build could not
    reach the package index, so every start would install them), or an install of other pins than
    containers/runner/requirements.txt. The record is read from a created, never started, container (removed
    however this ends, an interruption of its create included: removed_on_exit)."""
    with removed_on_exit(client) as create:
        try:
            container = create(image=ref, entrypoint=["/bin/true"], network_disabled=True,
                               labels={MANAGED_LABEL: "1"})
        except ImageNotFound:
            return "it is not built"
        try:
            stream, _ = container.get_archive(RUNNER_RECORD)
        except docker.errors.NotFound:
            return ("it records no install of its Python packages (its build could not reach the package index; "
                    "every start would install them)")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            handle = tar.extractfile(member) if member is not None else None
            recorded = handle.read().decode(errors="replace") if handle is not None else ""
    if recorded != RUNNER_IMAGE.requirements.read_text():
        return f"it holds the packages of another {RUNNER_IMAGE.requirements.relative_to(CONTAINERS_DIR.parent)}"
    return None


def ensure_base(client: docker.DockerClient, base: str, log: Callable[[str], None] = print,
                arch: str | None = None) -> str:
    """Return a base image that exists locally: `base` if present or pullable, else the local Debian base of its
    Python (the trixie one for python:3.13-slim-trixie; the bookworm one for any other).

    ``arch`` (Docker's name; None: this host's): a base for another architecture than the host's is never pulled
    by the public tag (a tag holds one architecture, and the pull would replace the host's image under it): the
    local base of that architecture (``BaseImage.local_for``) is used, built by make-base.sh under emulation."""
    arch = arch or host_arch()
    local = next((b for b in BASES.values() if base in (b.public, b.local, b.local_for(arch))), BASES[WHEEL_PYTHON])
    local_tag = local.local_for(arch)
    if arch != host_arch():
        if base not in (local.public, local.local) and image_exists(client, base):  # a base of the user's own
            return base
        if not image_exists(client, local_tag):
            _make_base(local, local_tag, arch, log)
        return local_tag
    if image_exists(client, base):
        return base
    if base != local_tag:
        try:
            client.images.pull(base)
            return base
        except APIError as exc:
            log(f"cannot pull {base} ({exc.explanation.splitlines()[0] if exc.explanation else exc}); "
                f"using the local base {local_tag}")
    if not image_exists(client, local_tag):
        _make_base(local, local_tag, arch, log)
    return local_tag


def _make_base(local: BaseImage, tag: str, arch: str, log: Callable[[str], None]) -> None:
    """Build the local Debian base ``tag`` of ``local``'s suite for ``arch`` (containers/base/make-base.sh)."""
    emulated = "" if arch == host_arch() else f", {arch} under emulation: several minutes"
    log(f"building {tag} with make-base.sh ({local.suite}{emulated})")  # it says which tool makes it
    script = CONTAINERS_DIR / "base" / "make-base.sh"
    env = None if arch == host_arch() else {**os.environ, "ARCH": arch}
    proc = subprocess.run(["bash", str(script), tag, local.suite], env=env)
    if proc.returncode != 0:
        raise UserError(f"could not build the local base image {tag} (see the messages above); "
                        f"pass --base with an image that exists or can be pulled")


def base_for(image: ImageDef, asked: str) -> str:
    """The base an image without a parent is built FROM: ``asked`` (``--base``) for the Python 3.11 images, the
    public base of its own Python for the others (a Python 3.11 base cannot hold a Python 3.13 venv)."""
    return asked if image.python == WHEEL_PYTHON else BASES[image.python].public


def child_extras(image: ImageDef, platform: str = "x86") -> list[str]:
    """The pins of a child image (``platform``'s variant: platform_pins) that its parent does not pin: what its own
    build must install (e.g. onnx on top of the torch stack; on CUDA onnxruntime-gpu too). Empty for an image
    whose parent holds everything."""
    if image.parent is None:
        return []
    parent = pinned_versions(requirements_text(IMAGES[image.parent]))
    return [f"{n}=={v}" for n, v in platform_pins(image, platform).items() if n not in parent]


def wheelhouse(image: ImageDef, arch: str = "amd64") -> Path:
    """The host-side wheelhouse of ``image`` for ``arch`` (Docker's name), keyed by machine and Python:
    ``<image folder>/wheels/<machine>-py<X.Y>`` (``x86_64-py3.11``, ``aarch64-py3.11``): one image built for two
    architectures, or an image whose Python changes, never mixes wheels pip would then refuse or pick wrongly.
    Wheels left at the top of the folder by an older checkout (x86_64 ones of the image's Python: the only ones it
    made) are moved into their key, so a filled wheelhouse is not downloaded again (a torch one is gigabytes)."""
    folder = image.wheelhouse / f"{ARCHES[arch]}-py{image.python}"
    if arch == "amd64" and image.wheelhouse.is_dir():
        unkeyed = list(image.wheelhouse.glob("*.whl"))
        if unkeyed:
            folder.mkdir(parents=True, exist_ok=True)
            for wheel in unkeyed:
                wheel.replace(folder / wheel.name)
    return folder


def wheel_port(image: ImageDef, platform: str = "x86") -> int:
    """The loopback port ``image``'s wheelhouse is served on while ``platform``'s variant is built: fixed (the URL
    is the WHEELS_URL build argument, and a changed one misses Docker's build cache) and distinct for each image
    and platform, so that builds side by side (`images build --jobs`; the arm64 and CUDA builds `make test` runs
    beside the x86 ones) each get their own. An image outside the table (a Jetson stand-in's base) takes a port
    after the table's."""
    names, platforms = list(IMAGES), list(PLATFORMS)
    index = names.index(image.name) if image.name in names else len(names) + zlib.crc32(image.name.encode()) % 64
    return PORT + len(platforms) * index + platforms.index(platform)


def _wheel_options(image: ImageDef, arch: str = "amd64") -> list[str]:
    """pip's options for wheels an image's Python and base can install on ``arch`` (cpXY, the base's manylinux
    tags for that machine), local wheels (packed source-only packages) found first in the image's own wheelhouse."""
    options = ["--only-binary=:all:", "--python-version", image.python, "--implementation", "cp",
               "--find-links", str(wheelhouse(image, arch))]
    for plat in BASES[image.python].wheel_platforms_for(arch):
        options += ["--platform", plat]
    return options


#: pip run as if on another machine: `--platform` picks the wheels' tags, but pip evaluates the requirements'
#: environment markers for the machine it runs on, so torch's `triton; platform_machine == "x86_64"` and its
#: nvidia-* wheels would be fetched for an aarch64 image (and fail: triton has no aarch64 wheel of that version).
#: The markers' machine is the target's (platform.machine, read once by pip's marker environment).
_PIP_AS_MACHINE = ("import platform, runpy, sys; machine = sys.argv.pop(1); platform.machine = lambda: machine; "
                   "sys.argv[0] = 'pip'; runpy.run_module('pip', run_name='__main__', alter_sys=True)")


def pip_command(args: list[str], arch: str = "amd64") -> list[str]:
    """The host's pip with ``args``, its environment markers evaluated for ``arch``'s machine where that is not
    the host's (_PIP_AS_MACHINE)."""
    if arch == host_arch():
        return [sys.executable, "-m", "pip", *args]
    return [sys.executable, "-c", _PIP_AS_MACHINE, ARCHES[arch], *args]


def _pip(image: ImageDef, args: list[str], arch: str = "amd64") -> None:
    """Run pip on the host for ``image``'s wheelhouse of ``arch``; UserError with pip's last line when it fails."""
    proc = subprocess.run(pip_command(args, arch), capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"could not fill the wheelhouse for {image.name}: {last}")


def pack_source_only(image: ImageDef, pins: dict[str, str], log: Callable[[str], None] = print,
                     arch: str = "amd64") -> None:
    """Pack each of the image's source-only packages that ``pins`` pins into a wheel in its wheelhouse (pip wheel,
    without dependencies). They are pure Python, so the wheel is py3-none-any and serves any Python: a package
    that would need compiling is refused, since the image installs wheels only."""
    house = wheelhouse(image, arch)
    for name in image.source_only:
        version = pins.get(_normalize(name))
        if version is None:
            continue
        stem = f"{re.sub(r'[-_.]+', '_', name)}-{version}-"
        if any(p.name.lower().startswith(stem.lower()) for p in house.glob("*.whl")):
            continue
        log(f"{image.name}: packing {name}=={version} (a pure-Python source distribution) into a wheel")
        house.mkdir(parents=True, exist_ok=True)
        _pip(image, ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(house), f"{name}=={version}"], arch)
        built = [p.name for p in house.glob("*.whl") if p.name.lower().startswith(stem.lower())]
        if not built or not all(n.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")) for n in built):
            raise UserError(f"{image.name}: {name}=={version} is not pure Python ({', '.join(built) or 'no wheel'}); "
                            f"it needs compiling for Python {image.python}, which this wheelhouse does not do")


def resolve_pins(image: ImageDef, requirements: str, arch: str = "amd64") -> dict[str, str]:
    """What pip installs for ``requirements`` on the image's Python and base on ``arch`` (name -> version,
    dependencies included), from the index's metadata: `pip install --dry-run --report`, nothing downloaded but
    metadata."""
    with tempfile.TemporaryDirectory(prefix="edgeasr-resolve-") as tmp:
        req, report = Path(tmp) / "requirements.txt", Path(tmp) / "report.json"
        req.write_text(requirements)
        _pip(image, ["install", "--quiet", "--dry-run", "--ignore-installed", "--target", str(Path(tmp) / "t"),
                     "--report", str(report), *_wheel_options(image, arch), "-r", str(req)], arch)
        entries = json.loads(report.read_text()).get("install", [])
    return {_normalize(e["metadata"]["name"]): e["metadata"]["version"] for e in entries}


#: Each parent's resolution (its Python, the architecture, its requirements' text -> pins), made once per process:
#: every child of the torch stack asked pip for it again (40 to 50 s through the index on a 2-core host).
_PARENT_RESOLUTIONS: dict[tuple[str, str, str], dict[str, str]] = {}
_PARENT_RESOLUTIONS_LOCK = threading.Lock()


def _parent_resolution(image: ImageDef, parent: str, arch: str) -> dict[str, str]:
    """resolve_pins of the parent's requirements ``parent`` for ``image``'s Python on ``arch``, once per process."""
    key = (image.python, arch, parent)
    with _PARENT_RESOLUTIONS_LOCK:
        held = _PARENT_RESOLUTIONS.get(key)
    if held is None:
        held = resolve_pins(image, parent, arch)
        with _PARENT_RESOLUTIONS_LOCK:
            _PARENT_RESOLUTIONS[key] = held
    return dict(held)


def fill_wheelhouse(backend: ImageDef, log: Callable[[str], None] = print, only: list[str] | None = None, *,
                    overrides: dict[str, str] | None = None, only_overrides: bool = False,
                    arch: str = "amd64") -> None:
    """pip download the image's requirements (with any `--set` pins) as manylinux wheels for its Python into its
    build folder. ``only``: just these pins, with their dependencies (a child image's extras on its parent): those
    the parent's own resolution installs (the torch stack) are not downloaded again. ``only_overrides``: just the
    swapped packages, without dependencies (an image on a parent, whose other packages the parent already holds).
    Source-only pure-Python pins (the row's ``source_only``) are packed into wheels first. ``arch``: the
    architecture (Docker's name) whose wheels it holds (wheelhouse: keyed by it)."""
    house = wheelhouse(backend, arch)
    log(f"{backend.name}: filling the wheelhouse {house} (Python {backend.python} {ARCHES[arch]} wheels)")
    if only_overrides:
        text = "".join(f"{n}=={v}\n" for n, v in (overrides or {}).items())
    elif only is not None:
        text = "".join(f"{p}\n" for p in only)
    else:
        text = requirements_text(backend, overrides)
    pack_source_only(backend, pinned_versions(text), log, arch)
    no_deps = only_overrides
    if only is not None and backend.parent:
        # The extras resolved together with the parent's pins, less what the parent's resolution installs: a
        # dependency on the parent's torch must not fetch the torch stack again (gigabytes) into this wheelhouse.
        parent = requirements_text(IMAGES[backend.parent])
        held = _parent_resolution(backend, parent, arch)
        extras = pinned_versions(text)
        if all(held.get(name) == version for name, version in extras.items()):
            # the parent's resolution installs each extra at its pin, so with its dependencies: nothing to add
            log(f"{backend.name}: {backend.parent} holds them ({', '.join(f'{n}=={v}' for n, v in extras.items())})")
            return
        wanted = resolve_pins(backend, parent + "\n" + text, arch)
        text = "".join(f"{n}=={v}\n" for n, v in wanted.items() if held.get(n) != v)
        no_deps = True
    with tempfile.TemporaryDirectory(prefix="edgeasr-req-") as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text(text)
        _pip(backend, ["download", "--quiet", *_wheel_options(backend, arch), "--dest", str(house),
                       "-r", str(req), *(["--no-deps"] if no_deps else [])], arch)


def _context(backend: ImageDef, overrides: dict[str, str] | None = None) -> IO[bytes]:
    """The containers/ folder as a tar, without wheelhouses (they are served, not sent) or caches; each image's
    requirements.txt in it is the assembled one (requirements_text: the shared pins added, and for
    ``backend`` its `--set` pins), so a Dockerfile's `COPY <image>/requirements.txt` installs everything (the
    checkout is not touched)."""
    skip = {CONTAINERS_DIR / b.build_dir / "wheels" for b in [*IMAGES.values(), backend]}
    requirements_of = {i.requirements: i for i in [*IMAGES.values(), backend] if shares_pins(i)}
    buf = tempfile.TemporaryFile()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(CONTAINERS_DIR.rglob("*")):
            if any(parent in skip for parent in [path, *path.parents]) or "__pycache__" in path.parts:
                continue
            image = requirements_of.get(path)
            if image is not None:  # what the image installs: its own pins, the shared ones and any `--set`
                data = requirements_text(image, overrides if image is backend else None).encode()
                info = tar.gettarinfo(str(path), arcname=path.relative_to(CONTAINERS_DIR).as_posix())
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif path.is_file():
                tar.add(path, arcname=path.relative_to(CONTAINERS_DIR).as_posix(), recursive=False)
    buf.seek(0)
    return buf


def platform_tag(image: ImageDef, platform: str) -> str:
    """The tag a platform's variant of `image` gets (runner/host/platforms.py holds the table)."""
    return platform_image(image.image, platform)


def build_image(client: docker.DockerClient, backend: ImageDef, *, base: str | None, tag: str | None = None,
                log_path: Path | None = None, log: Callable[[str], None] = print,
                platform: str = "x86", versions: str | None = None,
                overrides: dict[str, str] | None = None, cuda_libs: str | None = None,
                wheels_url: str | None = None, extra_args: Mapping[str, str] | None = None,
                stop: threading.Event | None = None) -> str:
    """Build ``platform``'s variant of the image FROM `base` (None: the Dockerfile's own default); returns the
    image id (its labels: build_args).
    `versions`: the org.edgeasr.versions label (None: the platform's pins, with `overrides` put in: versions_label).
    `overrides`: `--set` pins written into the build context's requirements.txt. `cuda_libs`: the CUDA libraries
    label's value (None: not set). `wheels_url`: the wheelhouse as already served (a build run twice keeps one URL,
    a build argument, and so its cache; None: served for this build). `extra_args`: build arguments of an image
    outside the table (a Jetson stand-in's layout and packages, standin.py). The build's output goes to log_path.
    ``stop``: once set (Ctrl-C while builds run side by side), the build is left at its next line of output (the
    engine ends a build whose client has gone) and UserError says so."""
    tag = tag or backend.image
    lines: list[str] = []
    variant = PLATFORMS[platform]
    wheels = wheelhouse(backend, variant.arch)
    has_wheels = wheels.is_dir() and any(wheels.glob("*.whl"))
    served = contextlib.nullcontext(wheels_url) if wheels_url is not None \
        else serve_wheelhouse(wheels, wheel_port(backend, platform))
    # Another architecture than the host's (arm64 here): built for it, its RUN steps emulated (qemu-user-static).
    foreign = {"platform": variant.docker_platform} if variant.arch != host_arch() else {}
    try:
        with _context(backend, overrides) as context, served as url:
            buildargs = build_args(backend, wheels_url=url if has_wheels else "", base=base, platform=platform,
                                   overrides=overrides, cuda_libs=cuda_libs,
                                   versions=versions_label(backend, overrides, platform) if versions is None
                                   else versions)
            buildargs.update(extra_args or {})
            stream = client.api.build(
                fileobj=context, custom_context=True,
                dockerfile=f"{backend.build_dir}/{PLATFORMS[platform].dockerfile}",
                tag=tag, buildargs=buildargs, rm=True, forcerm=True, decode=True,
                network_mode="host",  # so that RUN steps reach the wheelhouse on the host's loopback
                **foreign,
            )
            for chunk in stream:
                if stop is not None and stop.is_set():
                    raise UserError(f"building {tag}: stopped")
                if "error" in chunk:
                    lines.append(chunk["error"])
                    raise BuildError(chunk["error"], iter(()))
                text = chunk.get("stream", "")
                if text:
                    lines.append(text.rstrip("\n"))
                    if text.startswith("Step "):
                        log(f"{backend.name}: {text.strip().splitlines()[0][:100]}")
    except (BuildError, APIError) as exc:
        tail = "\n".join(lines[-15:])
        where = f" (full log: {log_path})" if log_path else ""
        raise UserError(f"building {tag} failed: {exc}{where}\n{tail}") from None
    finally:
        if log_path and lines:
            log_path.write_text("\n".join(lines) + "\n")
    return client.images.get(tag).id


def read_carried_versions(client: docker.DockerClient, image: str, path: str, *, allow_empty: bool = False) -> str:
    """The `name=version,...` line a variant's build wrote to `path` in the image (what its base carries; the CUDA
    libraries it holds, CUDA_LIBS_FILE, where ``allow_empty``: a CPU-only backend's CUDA variant holds none)."""
    entrypoint = ["cat", path]
    try:
        # confined like every backend container: the image is freshly built from a stranger's base. Not
        # containers.run(remove=True): it removes the container only once it exited, never on an interruption.
        with removed_on_exit(client) as create:
            container = create(image=image, entrypoint=entrypoint, labels={MANAGED_LABEL: "1"},
                               **Hardening().engine_kwargs())
            container.start()
            status = container.wait()["StatusCode"]
            if status != 0:
                raise docker.errors.ContainerError(container, status, entrypoint, image,
                                                   container.logs(stdout=False, stderr=True))
            out = container.logs(stdout=True, stderr=False)
    except (APIError, docker.errors.ContainerError) as exc:
        raise UserError(f"{image}: cannot read the carried versions from {path}: {exc}") from None
    line = out.decode(errors="replace").strip()
    if allow_empty and not line:
        return line
    if not re.fullmatch(r"([a-z0-9][a-z0-9.-]*=[^,=\s]+)(,[a-z0-9][a-z0-9.-]*=[^,=\s]+)*", line):
        raise UserError(f"{image}: {path} does not hold `name=version,...`: {line[:200]!r}")
    return line
