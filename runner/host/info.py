"""Facts about the machine a result came from (a result carries the host that produced it).

Jetson facts come from runner/host/platforms.py, the one reader of the L4T release file."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from ..errors import UserError
from .platforms import detect_platform, l4t_release_line


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_mib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def host_facts(engine_version: str | None = None) -> dict[str, Any]:
    from .. import __version__

    return {
        "hostname": socket.gethostname(),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "mem_total_mib": _mem_total_mib(),
        "docker_engine": engine_version,
        "edgeasr": __version__,
    }


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").strip("\x00\n ") or None
    except OSError:
        return None


def _run(cmd: list[str]) -> str | None:
    import shutil
    import subprocess

    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def device_facts() -> dict[str, Any]:
    """GPU and Jetson facts for a sweep's manifest; None where this machine has no such thing."""
    release = l4t_release_line()  # "# R36 (release), REVISION: 4.0, ..." on L4T, None elsewhere
    return {
        "gpus": (_run(["nvidia-smi", "-L"]) or "").splitlines() or None,
        "jetson_model": _read("/proc/device-tree/model") if release else None,
        "l4t_release": release,
        "platform": _platform(),  # x86 / jetson-r35 / jetson-r36: which image variant this host runs
        "jetpack": _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"]),
        "power_mode": _run(["nvpmodel", "-q"]),
    }


def _platform() -> str | None:
    try:
        return detect_platform()
    except UserError:
        return None  # a Jetson release without an image variant: l4t_release says which


def git_commit(root) -> str | None:
    """The project's commit: from git, or read from .git itself where git is not installed (the runner image)."""
    from pathlib import Path

    commit = _run(["git", "-C", str(root), "rev-parse", "HEAD"])
    if commit:
        if _run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"]):
            commit += "+dirty"
        return commit
    git = Path(root) / ".git"
    head = _read(str(git / "HEAD"))
    if not head:
        return None
    if not head.startswith("ref: "):
        return head
    ref = head[5:].strip()
    direct = _read(str(git / ref))
    if direct:
        return direct
    for line in (_read(str(git / "packed-refs")) or "").splitlines():
        if line.endswith(" " + ref):
            return line.split()[0]
    return None
