"""FAKE host facts for tests (runner/host/preflight.py's HostCaps): an x86 box without a GPU, a GPU server with the
NVIDIA Container Toolkit, a Jetson with its nvidia runtime, and the engine's `docker info` they would answer.

No GPU and no Jetson is reachable here, so the preflight's checks are tested on these; the facts are the ones a
real host gives (docker info's Runtimes / DefaultRuntime / CDISpecDirs keys, the toolkit's hook path)."""

from __future__ import annotations

from runner.host.preflight import GpuRuntime, HostCaps

RUNC_ONLY = GpuRuntime(runtimes=("io.containerd.runc.v2", "runc"), default_runtime="runc")
TOOLKIT = GpuRuntime(runtimes=("io.containerd.runc.v2", "nvidia", "runc"), default_runtime="runc",
                     hook="/usr/bin/nvidia-container-runtime-hook")
JETSON_RUNTIME = GpuRuntime(runtimes=("io.containerd.runc.v2", "nvidia", "runc"), default_runtime="nvidia")


def docker_info(*runtimes: str, default: str = "runc", cdi_dirs: list[str] | None = None) -> dict:
    """What `docker info` answers (the keys the preflight reads)."""
    info = {"ServerVersion": "20.10.24", "Runtimes": {r: {"path": r} for r in ("runc", *runtimes)},
            "DefaultRuntime": default, "Architecture": "x86_64"}
    if cdi_dirs is not None:
        info["CDISpecDirs"] = cdi_dirs
    return info


def cpu_host(**kw) -> HostCaps:
    """An x86 host without an NVIDIA driver (this machine)."""
    return HostCaps(**{"machine": "x86_64", "platform": "x86", "platform_how": "no L4T release file: not a Jetson",
                       "jetson": False, "nvidia_driver": False, "engine": "20.10.24", "runtime": RUNC_ONLY, **kw})


def gpu_host(**kw) -> HostCaps:
    """An x86 GPU server: the driver loaded and the NVIDIA Container Toolkit in the engine."""
    return cpu_host(**{"nvidia_driver": True, "runtime": TOOLKIT, **kw})


def jetson_host(**kw) -> HostCaps:
    """A JetPack 6 board with the nvidia runtime (JetPack's nvidia-container)."""
    return HostCaps(**{"machine": "aarch64", "platform": "jetson-r36",
                       "platform_how": "/etc/nv_tegra_release says # R36 (release), REVISION: 4.0",
                       "jetson": True, "nvidia_driver": False, "engine": "27.5.1", "runtime": JETSON_RUNTIME, **kw})
