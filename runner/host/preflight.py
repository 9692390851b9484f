"""The one host preflight: what this host can run and measure, read before anything is built, installed or started.

Three commands ask it, so that they never disagree about a host: `run` and `sweep` (the device a run asks for and
the operating points it sets: a CUDA run on a host without an NVIDIA GPU or without the NVIDIA container runtime
is refused at once, in one sentence, before any image is built or any model installed), the fleet's node report
(runner/fleet/node.py: a node's kind and what its samplers can do), and `edgeasr doctor` (runner/host/doctor.py,
which shows every fact here line by line, with the fix).

``probe`` reads the facts once (``HostCaps``: the platform and how it was told, the NVIDIA driver's control node,
the engine's GPU runtimes, root); the checks are pure functions of them, so tests build a ``HostCaps`` of a
Jetson or a GPU server by hand. Sampler probes (``sampler_probes``) and the operating-point checks
(runner/power, whose controllers know a Jetson's nvpmodel and NVML's clocks) are asked from here too.
"""

from __future__ import annotations

import os
import platform as _platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import power
from ..errors import UserError
from . import platforms

#: Where CDI specs live when the engine does not say (the CDI specification's defaults).
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
#: The CDI device kind of NVIDIA GPUs (``nvidia-ctk cdi generate`` writes it).
CDI_NVIDIA_KIND = "nvidia.com/gpu"
#: The program through which the Docker Engine serves ``--gpus`` (DeviceRequests) on x86: dockerd registers its
#: ``nvidia`` device driver when this hook is on its PATH (the NVIDIA Container Toolkit installs it).
NVIDIA_HOOK = "nvidia-container-runtime-hook"
#: The fix for an engine without a GPU runtime, one wording for every message.
TOOLKIT_FIX = ("install the NVIDIA Container Toolkit and run `sudo nvidia-ctk runtime configure --runtime=docker` "
               "then restart the Docker Engine")


@dataclass(frozen=True)
class GpuRuntime:
    """How the Docker Engine can hand a GPU to a container: its ``nvidia`` runtime (Jetson needs it by name), the
    toolkit's hook on PATH (x86 ``--gpus``), or CDI specs for nvidia.com/gpu (Docker 25+)."""

    runtimes: tuple[str, ...] = ()
    default_runtime: str | None = None
    hook: str | None = None  # the hook's path, where it is on this host's PATH
    cdi_specs: tuple[str, ...] = ()  # CDI spec files that declare nvidia.com/gpu
    cdi_dirs: tuple[str, ...] = CDI_DIRS

    @property
    def nvidia_runtime(self) -> bool:
        return "nvidia" in self.runtimes

    def serves(self, jetson: bool) -> bool:
        """Whether a GPU request can be served: a Jetson's containers run with the ``nvidia`` runtime (as
        runner/launch/docker_engine.py asks); x86 takes the runtime, the hook or a CDI spec."""
        if jetson:
            return self.nvidia_runtime
        return self.nvidia_runtime or self.hook is not None or bool(self.cdi_specs)

    def describe(self) -> str:
        parts = [f"runtimes {', '.join(self.runtimes) or 'none'} (default {self.default_runtime or '?'})"]
        parts.append(f"{NVIDIA_HOOK} {'at ' + self.hook if self.hook else 'not on PATH'}")
        parts.append(f"CDI specs for {CDI_NVIDIA_KIND}: {', '.join(self.cdi_specs)}" if self.cdi_specs else
                     f"no CDI spec for {CDI_NVIDIA_KIND} in {', '.join(self.cdi_dirs)}")
        return "; ".join(parts)


@dataclass(frozen=True)
class HostCaps:
    """The facts every check reads. ``engine`` is the Docker Engine's version (None: not asked, or not reached:
    ``engine_problem`` says why); ``runtime`` is None when the engine was not asked."""

    machine: str
    platform: str  # x86 / arm64 / jetson-r35 / jetson-r36, or "unknown" (platform_how says why)
    platform_how: str  # how it was told, in words
    jetson: bool
    nvidia_driver: bool  # the driver's control node exists (x86 GPUs)
    driver_node: str = str(platforms.NVIDIA_CTL)
    root: bool = False
    engine_name: str = "docker"
    engine: str | None = None
    engine_problem: str | None = None
    runtime: GpuRuntime | None = None

    @property
    def kind(self) -> str:
        """jetson / cuda / cpu: what a run here can ask for by default (a fleet node's ``kind``)."""
        if self.jetson:
            return "jetson"
        return "cuda" if device_problem("cuda", self) is None else "cpu"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind}


def _cdi_specs(dirs: Iterable[str]) -> tuple[str, ...]:
    """The CDI spec files under ``dirs`` that declare NVIDIA GPUs (their ``kind``)."""
    found = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            path = Path(d) / name
            if path.suffix not in (".yaml", ".yml", ".json"):
                continue
            try:
                if CDI_NVIDIA_KIND in path.read_text(errors="replace")[:65536]:
                    found.append(str(path))
            except OSError:
                continue
    return tuple(found)


def gpu_runtime(info: dict[str, Any], which=shutil.which) -> GpuRuntime:
    """The engine's GPU runtimes from its ``info`` (docker info: Runtimes, DefaultRuntime, CDISpecDirs)."""
    dirs = tuple(info.get("CDISpecDirs") or CDI_DIRS)
    return GpuRuntime(runtimes=tuple(sorted(info.get("Runtimes") or {})), default_runtime=info.get("DefaultRuntime"),
                      hook=which(NVIDIA_HOOK), cdi_specs=_cdi_specs(dirs), cdi_dirs=dirs)


def platform_facts(release: Path | None = None, machine: str | None = None) -> tuple[str, str]:
    """(platform, how it was told): a Jetson by its L4T release file, else arm64 or x86 by the machine
    (``machine``: `uname -m`, this host's when None)."""
    path = release or platforms.TEGRA_RELEASE
    line = platforms.l4t_release_line(path)
    if line is None:
        machine = machine or _platform.machine()
        return platforms.detect_platform(path, machine), f"no L4T release file ({path}): not a Jetson; machine {machine}"
    try:
        name = platforms.jetson_platform(path)
    except UserError as exc:
        return "unknown", str(exc)
    return name, f"{path} says {line.strip()}"


def probe(engine: str = "docker", info: dict[str, Any] | None = None, *, ask_engine: bool = True) -> HostCaps:
    """This host's facts. ``engine``: the engine a run would use (docker: its info is read for GPU runtimes,
    unless ``info`` is given, as tests do, or ``ask_engine`` is off); never raises."""
    name, how = platform_facts()
    version = problem = None
    runtime = None
    if engine == "docker" and (info is not None or ask_engine):
        if info is None:
            try:
                from ..launch.docker_engine import engine_info

                info = engine_info()
            except UserError as exc:
                problem = str(exc)
        if info is not None:
            version = info.get("ServerVersion")
            runtime = gpu_runtime(info)
    return HostCaps(machine=_platform.machine(), platform=name, platform_how=how, jetson=platforms.is_jetson(),
                    nvidia_driver=platforms.has_nvidia_driver(), driver_node=str(platforms.NVIDIA_CTL),
                    root=power.base.is_root(), engine_name=engine, engine=version, engine_problem=problem,
                    runtime=runtime)


CPU_FIX = "run with --device cpu"


def device_problem(device: str, caps: HostCaps, fix: str = CPU_FIX) -> str | None:
    """Why a run on ``device`` cannot run on this host, in one sentence with the fix; None when it can (or when
    the engine could not be asked: the run then says why the engine is unreachable).

    cuda needs an NVIDIA GPU (a Jetson, or the driver's control node on x86) and, with the docker engine, a GPU
    runtime in it: without them the backend would load on the CPU or the engine would refuse the request, after
    images were built and models installed for nothing. ``fix``: how the caller's user asks for the CPU instead
    (a flag, an experiment's key)."""
    if device != "cuda":
        return None
    if not caps.jetson and not caps.nvidia_driver:
        return (f"device cuda needs an NVIDIA GPU, and this host has none (no NVIDIA driver: {caps.driver_node} "
                f"does not exist); {fix}, or on a host with an NVIDIA GPU, its driver and the "
                f"NVIDIA Container Toolkit")
    if caps.engine_name != "docker" or caps.runtime is None:
        return None
    if not caps.runtime.serves(caps.jetson):
        need = "its nvidia runtime (a Jetson's containers run with it)" if caps.jetson else "a GPU runtime"
        return (f"device cuda needs {need} in the Docker Engine, and it has none ({caps.runtime.describe()}); "
                f"{TOOLKIT_FIX}")
    return None


def sampler_probes() -> dict[str, str | None]:
    """Each sampler of the table (runner/telemetry/samplers/registry.py) -> None when its probe says it works
    here, else its reason (which names the permission or the package it lacks)."""
    from ..telemetry.samplers.registry import SAMPLERS

    out: dict[str, str | None] = {}
    for row in SAMPLERS:
        try:
            availability = row.factory(100, None).probe()
            out[row.name] = None if availability.ok else (availability.reason or "unavailable")
        except Exception as exc:  # noqa: BLE001 - a probe that breaks is a reason, never a crash
            out[row.name] = f"{exc.__class__.__name__}: {exc}"
    return out


@dataclass(frozen=True)
class Request:
    """What one run (or one sweep group) asks of the host: a device, the operating point, its GPUs."""

    device: str
    power: Any = None  # PowerSettings, or None
    gpus: tuple[str, ...] | None = None


def problems(requests: Sequence[Request], caps: HostCaps, fix: str = CPU_FIX) -> list[str]:
    """Every distinct request's problems with this host, each sentence once (a sweep of 20 CUDA groups on a host
    without a GPU says so once): the device first, then the operating point (runner/power's controllers check
    the values against the device and the rights to set them). A group whose device is missing is not asked
    about its operating point: the device's sentence is the one that matters."""
    out: list[str] = []
    seen: list[Request] = []
    for req in requests:
        if req in seen:
            continue
        seen.append(req)
        missing = device_problem(req.device, caps, fix)
        found = [missing] if missing else (power.problems(req.power, req.gpus) if req.power is not None else [])
        out += [p for p in found if p not in out]
    return out


def refuse(requests: Sequence[Request], caps: HostCaps, what: str, fix: str = CPU_FIX) -> None:
    """A UserError naming every problem, said once (one problem: one sentence), when this host cannot take the
    requests; ``what`` names them (an experiment file's name)."""
    found = problems(requests, caps, fix)
    if not found:
        return
    if len(found) == 1:
        raise UserError(f"{what}: {found[0]}; nothing was started")
    raise UserError(f"{what}: this host cannot run it; nothing was started:", problems=found)
