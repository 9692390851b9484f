"""Build a set of the table's images, in order: what `edgeasr images build` and a sweep's preparation ask for.

One sequence for both (runner/commands/images.py parses the flags and renders; runner/images/prepare.py builds
what a sweep lacks): CUDA and Jetson variants from their own Dockerfiles, only the missing ones with
``missing``, the base image only when something is left to build (one per Python: the Python 3.13 images, espnet's,
are built FROM a Debian 13 base), a parent (the shared torch stack) before its
children, the host's wheelhouse filled first unless told not to; the runner image counts as present only when
complete, and a build of it that stays incomplete is refused.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from ..backends import BACKENDS, CONTAINERS_DIR, RUNNER_IMAGE, Backend, ImageDef, get_image
from ..errors import UserError
from ..host.platforms import PLATFORMS, host_arch
from .build import (BASES, CUDA_REQUIREMENTS, PUBLIC_BASE, base_for, build_image, child_extras, dockerfile_base,
                    ensure_base, fill_wheelhouse, image_exists, pinned_versions, platform_tag, present_or_pulled,
                    read_carried_versions, runner_image_problem, variant_requirements, versions_label, wheel_port,
                    wheelhouse)
from .wheel_server import serve_wheelhouse


@dataclass(frozen=True)
class BuildRequest:
    """Which images to build and how. ``names``: table names (backends and shared images); ``platform``: the
    resolved variant (backends.image_platform); ``base``: the base the Python 3.11 images are built FROM
    (PUBLIC_BASE: the public one, else the local debootstrapped fallback; the other Pythons' images take their
    own, build.base_for); ``tag``: with one image, its tag; ``overrides``: pinned libraries
    swapped (``--set``); ``missing``: only what the engine does not hold; ``wheelhouse``: fill the host-side
    wheelhouse first; ``jobs``: how many images are built side by side (build_jobs)."""

    names: tuple[str, ...]
    platform: str = "x86"
    base: str = PUBLIC_BASE
    tag: str | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    missing: bool = False
    wheelhouse: bool = True
    log_dir: Path = Path("build")
    jobs: int | None = None

    @property
    def build_jobs(self) -> int:
        """How many images are built at once (``jobs``; None: one per CPU, at most 4). One build uses under a
        core on a 2-core host (pip in the build ~60 %, fuse-overlayfs ~27 %), so two side by side nearly halve a
        fresh `make images`; more than 4 mostly contend for the disk."""
        return self.jobs if self.jobs is not None else max(1, min(4, os.cpu_count() or 1))


def _no_status(_text: str) -> ContextManager:
    return contextlib.nullcontext()


def build_images(client, req: BuildRequest, *, log: Callable[[str], None] = print,
                 detail: Callable[[str], None] | None = None,
                 status: Callable[[str], ContextManager] = _no_status) -> None:
    """Build ``req``'s images on ``client``'s engine. ``log``: one line per step; ``detail``: the build's own
    lines (default ``log``); ``status``: wraps each build (a spinner). UserError from a failed build."""
    detail = detail or log
    names = list(req.names)
    # The platform the sequence below builds for: x86, or arm64 (the x86 Dockerfiles for another CPU, on its
    # local base, from its own wheelhouse); CUDA / Jetson variants are built apart, the rest (the runner) as x86.
    platform = req.platform if PLATFORMS[req.platform].dockerfile == PLATFORMS["x86"].dockerfile else "x86"
    arch = PLATFORMS[platform].arch
    if platform != "x86":
        names = _same_dockerfile_names(names, platform, arch, log)
        if not names:
            return
    elif req.platform != "x86":
        # Backends have CUDA / Jetson variants; the runner image is the same Dockerfile everywhere.
        req.log_dir.mkdir(parents=True, exist_ok=True)
        _build_variants(client, req, [n for n in names if n in BACKENDS], log, detail, status)
        names = [n for n in names if n not in BACKENDS]
        if not names:
            return
    if req.missing:  # before the base: present images need none
        present = [n for n in names if _ready(client, get_image(n), req.tag or build_tag(get_image(n), platform),
                                              log)]
        for name in present:
            log(f"{req.tag or build_tag(get_image(name), platform)} is present")
        names = [n for n in names if n not in present]
        if not names:
            return
    wanted = [get_image(name) for name in names]
    order: list = []
    for image in wanted:  # a parent (the shared torch stack) comes first, once (from cache if unchanged)
        parent = get_image(image.parent) if image.parent else None
        if parent and parent not in order:
            order.append(parent)
        if image not in order:
            order.append(image)
    req.log_dir.mkdir(parents=True, exist_ok=True)
    bases = _Bases(client, arch, log)
    jobs = min(req.build_jobs, len(order))
    if jobs > 1:  # side by side: a spinner per build cannot be drawn, a line says what starts
        log(f"building {len(order)} images, {jobs} at a time: {', '.join(i.name for i in order)}")

        def status(text: str) -> ContextManager:
            log(text)
            return contextlib.nullcontext()

    stop = threading.Event()

    def one(image: ImageDef) -> None:
        _build_one(client, req, image, wanted=wanted, platform=platform, bases=bases, log=log, detail=detail,
                   status=status, stop=stop)

    _in_order(order, one, jobs, stop=stop, log=log)


def _in_order(order: list[ImageDef], build: Callable[[ImageDef], None], jobs: int, *, stop: threading.Event,
              log: Callable[[str], None]) -> None:
    """``build`` each image of ``order``, ``jobs`` at a time, a child only once its parent is built; those on
    whom most of ``order`` waits (the torch stacks) first. A failure lets the builds under way end, starts no
    other, and is raised (the first one). Ctrl-C sets ``stop`` (each build under way is left at its next line)."""
    if jobs <= 1:
        for image in order:
            build(image)
        return
    names = {o.name for o in order}
    waiting = sorted(order, key=lambda i: -sum(other.parent == i.name for other in order))
    done: set[str] = set()
    running: dict[concurrent.futures.Future, ImageDef] = {}
    failure: BaseException | None = None
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="image-build") as pool:
        try:
            while (waiting and failure is None) or running:
                while failure is None and len(running) < jobs:
                    ready = next((i for i in waiting if not i.parent or i.parent in done or i.parent not in names),
                                 None)
                    if ready is None:
                        break
                    waiting.remove(ready)
                    running[pool.submit(build, ready)] = ready
                finished, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in finished:
                    image = running.pop(future)
                    if future.exception() is not None:
                        failure = failure or future.exception()
                    else:
                        done.add(image.name)
        except KeyboardInterrupt:
            log(f"interrupted: stopping {len(running)} build(s) under way")
            stop.set()
            raise
    if failure is not None:
        raise failure


class _Bases:
    """The base each Python's images are built FROM, made once per build (pulled, or debootstrapped) however many
    builds ask for it side by side."""

    def __init__(self, client, arch: str, log: Callable[[str], None]) -> None:
        self._client, self._arch, self._log = client, arch, log
        self._made: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, wanted: str) -> str:
        with self._guard:
            lock = self._locks.setdefault(wanted, threading.Lock())
        with lock:
            if wanted not in self._made:
                self._made[wanted] = ensure_base(self._client, wanted, log=self._log, **_arch_kwargs(self._arch))
            return self._made[wanted]


def _build_one(client, req: BuildRequest, image: ImageDef, *, wanted: list[ImageDef], platform: str, bases: _Bases,
               log: Callable[[str], None], detail: Callable[[str], None],
               status: Callable[[str], ContextManager], stop: threading.Event) -> None:
    """One image of a request: its base (a parent's image, or the Python's base), its wheelhouse, its build, and
    for the runner image the check that it is complete. ``stop``: build_image's (set by Ctrl-C side by side)."""
    arch = PLATFORMS[platform].arch
    tag = req.tag if req.tag and len(wanted) == 1 and image in wanted else build_tag(image, platform)
    if req.missing and image not in wanted and image_exists(client, tag):  # a parent already built
        return
    if image.parent:
        image_base = build_tag(get_image(image.parent), platform)
    else:  # ``req.base`` for the Python 3.11 images, the public base of its own Python for the others
        image_base = bases.get(base_for(image, req.base))
    mine = (req.overrides or None) if image in wanted else None  # --set is for the image asked for
    house = _arch_kwargs(arch)  # the wheels of the platform's architecture (the x86 call stays as it was)
    if req.wheelhouse and not image.parent:  # a child's packages come with its parent...
        fill_wheelhouse(image, log=log, overrides=mine, **house)
    elif req.wheelhouse:
        if child_extras(image):  # ...except those the parent does not pin (with their dependencies)
            fill_wheelhouse(image, log=log, only=child_extras(image), **house)
        if mine:  # ...and the ones --set swaps on top of it
            fill_wheelhouse(image, log=log, overrides=mine, only_overrides=True, **house)
    if mine:
        log(f"{tag}: {versions_label(image, mine)}")
    suffix = "" if platform == "x86" else f"-{platform}"
    with status(f"building {tag} from {image_base}"):
        image_id = build_image(client, image, base=image_base, tag=tag, overrides=mine,
                               log_path=req.log_dir / f"image-{image.name}{suffix}.log", log=detail,
                               **({"platform": platform} if platform != "x86" else {}), stop=stop)
    if image.name == RUNNER_IMAGE.name and (problem := runner_image_problem(client, tag)):
        raise UserError(f"built {tag}, but {problem}; see {req.log_dir / f'image-{image.name}.log'}")
    log(f"built {tag} ({image_id[:19]})")


def build_tag(image: ImageDef, platform: str) -> str:
    """The tag ``image`` gets when built from its x86 Dockerfile for ``platform`` (x86 or arm64): x86 its own;
    a backend on arm64 its platform tag (``edgeasr/faster-whisper:arm64``, what `run` picks there); a shared
    image (the torch stack) its own tag with the platform's after it (``edgeasr/torch-base:2.8-arm64``)."""
    if platform == "x86" or image.name == RUNNER_IMAGE.name:  # the runner: the host's CPU only, one tag
        return image.image
    if isinstance(image, Backend):
        return platform_tag(image, platform)
    return f"{image.image}-{PLATFORMS[platform].tag}"


def _arch_kwargs(arch: str) -> dict[str, str]:
    """``arch=`` for the wheelhouse and base calls where it is not the x86 default."""
    return {} if arch == "amd64" else {"arch": arch}


def _same_dockerfile_names(names: list[str], platform: str, arch: str, log: Callable[[str], None]) -> list[str]:
    """The images of ``names`` that ``platform`` (one built from the x86 Dockerfiles: arm64) builds: each backend
    that has the platform (the others are skipped, saying why), and the runner image only where the platform's
    CPU is the host's (it runs on the host: an emulated runner image is of no use)."""
    kept = []
    for name in names:
        image = get_image(name)
        problem = image.platform_problem(platform) if isinstance(image, Backend) else None
        if problem:
            log(f"skipped: {problem}")
        elif image.name == RUNNER_IMAGE.name and arch != host_arch():
            log(f"skipped: the runner image runs on this host ({host_arch()}); build it with --platform x86")
        else:
            kept.append(name)
    return kept


def _ready(client, image: ImageDef, tag: str, log: Callable[[str], None]) -> bool:
    """Whether ``missing`` may skip ``tag``: the engine holds it, and for the runner image, complete (an image
    compose built behind a TLS-intercepting proxy holds no packages; one built before a pin changed, others)."""
    if not image_exists(client, tag):
        return False
    if image.name != RUNNER_IMAGE.name:
        return True
    problem = runner_image_problem(client, tag)
    if problem:
        log(f"{tag} is present, but {problem}: building it again")
    return problem is None


def _build_variants(client, req: BuildRequest, names: list[str], log: Callable[[str], None],
                    detail: Callable[[str], None], status: Callable[[str], ContextManager]) -> None:
    """CUDA / Jetson variants: their Dockerfile's own base (unless another base is given), packages from their
    index. A variant that records what its base carries (JetPack 5) or the CUDA libraries it holds (cuda) is built
    twice: the second build, all cached but the LABEL step, labels what the first wrote into the image.
    A variant with a local fallback (cuda) whose default base is neither here nor pullable is built on the local
    base instead (local_variant_base), its packages from the host's wheelhouse."""
    variant = PLATFORMS[req.platform]
    base = None if req.base == PUBLIC_BASE else req.base
    for name in names:
        image = get_image(name)
        problem = image.platform_problem(req.platform) if isinstance(image, Backend) else None
        if problem:  # one backend without this variant must not stop the others
            log(f"skipped: {problem}")
            continue
        tag = req.tag or platform_tag(image, req.platform)
        if req.missing and image_exists(client, tag):
            log(f"{tag} is present")
            continue
        image_base = base
        dockerfile = CONTAINERS_DIR / image.build_dir / variant.dockerfile
        if base is None and variant.local_fallback:
            default = dockerfile_base(dockerfile)
            if default and not present_or_pulled(client, default, log):
                image_base = local_variant_base(client, image, req, log=log, detail=detail, status=status)
                log(f"{tag}: {default} is not here; building on {image_base}"
                    + (", packages from the host's wheelhouse" if req.wheelhouse else ""))
                if req.wheelhouse:
                    fill_variant_wheelhouse(image, req.platform, log)
        log_path = req.log_dir / f"image-{image.name}-{req.platform}.log"
        build = dict(base=image_base, tag=tag, platform=req.platform, log=detail)
        with status(f"building {tag} from {variant.dockerfile}" + (f" on {image_base}" if image_base else "")), \
                serve_wheelhouse(wheelhouse(image, variant.arch), wheel_port(image, req.platform)) as url:
            # one wheelhouse URL (a build argument) for both builds below: another port would miss every cache
            build["wheels_url"] = url
            if variant.versions_file or variant.cuda_libs_file:
                build_image(client, image, log_path=log_path.with_suffix(".first.log"),
                            **({"versions": ""} if variant.versions_file else {}),
                            **({"cuda_libs": ""} if variant.cuda_libs_file else {}), **build)
                second = {}
                if variant.versions_file:
                    second["versions"] = read_carried_versions(client, tag, variant.versions_file)
                    log(f"{tag} carries {second['versions']}")
                if variant.cuda_libs_file:
                    second["cuda_libs"] = read_carried_versions(client, tag, variant.cuda_libs_file,
                                                                allow_empty=True)
                    log(f"{tag} holds the CUDA libraries {second['cuda_libs'] or '(none)'}")
                image_id = build_image(client, image, log_path=log_path, **second, **build)
            else:
                image_id = build_image(client, image, log_path=log_path, **build)
        log(f"built {tag} ({image_id[:19]})")


def local_variant_base(client, image: ImageDef, req: BuildRequest, *, log: Callable[[str], None],
                       detail: Callable[[str], None], status: Callable[[str], ContextManager]) -> str:
    """The base a variant is built on where its own cannot be had (no registry): an image with a parent (the
    torch stack, whose torch wheels carry CUDA 12.8, cuBLAS and cuDNN) its parent's x86 image, built first where
    missing; any other the local Debian base of its Python (debootstrapped where missing), on which its
    Dockerfile installs the CUDA libraries from their wheels (CUDA_REQUIREMENTS)."""
    if image.parent:
        parent = get_image(image.parent)
        if not image_exists(client, parent.image):
            build_images(client, BuildRequest(names=(parent.name,), base=req.base, missing=True,
                                              wheelhouse=req.wheelhouse, log_dir=req.log_dir),
                         log=log, detail=detail, status=status)
        return parent.image
    return ensure_base(client, BASES[image.python].local, log=log)


def fill_variant_wheelhouse(image: ImageDef, platform: str, log: Callable[[str], None]) -> None:
    """The host wheelhouse of ``platform``'s variant built on the local fallback (x86_64 wheels of its Python, the
    x86 image's key): its requirements, as for the x86 image (a child's extras only: its parent holds the rest),
    with the variant's own in place of those they replace (requirements-<platform>.txt: onnxruntime-gpu), and for
    a backend that runs on CUDA without a parent, the CUDA libraries' wheels (CUDA_REQUIREMENTS)."""
    if image.parent:
        if child_extras(image, platform):
            fill_wheelhouse(image, log=log, only=child_extras(image, platform))
        return
    fill_wheelhouse(image, log=log)
    own = variant_requirements(image, platform).pins
    if own:
        fill_wheelhouse(image, log=log, only=[f"{n}=={v}" for n, v in own.items()])
    if isinstance(image, Backend) and "cuda" in image.devices:
        fill_wheelhouse(image, log=log, only=[f"{n}=={v}" for n, v in pinned_versions(CUDA_REQUIREMENTS).items()])
