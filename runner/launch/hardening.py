"""How every backend container is confined: the settings, their defaults, and the engine arguments they become.

Backend images are meant to be swapped (``--image``, ``image:`` in experiments), so an
image's code is a stranger's code. Every engine call that starts one (runs, sweeps,
check-image, the tiny-model build) gets the same confinement: no network, every
capability dropped, ``no-new-privileges``, a read-only root filesystem with a tmpfs
for ``/tmp`` (where HOME and every cache folder point), a pids limit, a memory limit
the host can bear, and never uid 0 inside, even when the runner itself is root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# The uid/gid a container runs as when the runner is root: an unprivileged id that owns nothing on the host.
UNPRIVILEGED_UID = 10001
UNPRIVILEGED_GID = 10001
# Where the host's hub cache is mounted for a run that may download (--allow-download): the job's environment
# points the library there, the engine mounts it.
HUB_CACHE_TARGET = "/cache/hf"
# Environment that points every cache a backend library writes (HF, torch, numba, matplotlib, XDG) at the tmpfs.
CACHE_ENV = {
    "HOME": "/tmp",
    "XDG_CACHE_HOME": "/tmp/.cache",
    "HF_HOME": "/tmp/.cache/huggingface",
    "TORCH_HOME": "/tmp/.cache/torch",
    "NUMBA_CACHE_DIR": "/tmp/.cache/numba",
    "MPLCONFIGDIR": "/tmp/.cache/matplotlib",
}


def host_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def default_mem_limit_bytes() -> int | None:
    """Three quarters of the host's memory: a model that runs away is OOM-killed before the host swaps or dies."""
    total = host_memory_bytes()
    return None if total is None else int(total * 0.75)


def container_ids() -> tuple[int, int]:
    """The runner's own uid/gid (its files stay its own), or the unprivileged pair when the runner is root."""
    uid, gid = os.getuid(), os.getgid()
    if uid == 0:
        return UNPRIVILEGED_UID, UNPRIVILEGED_GID
    return uid, gid


#: Where the Docker Engine's socket may be: its group is never passed on to a backend container.
DOCKER_SOCKETS = (Path("/var/run/docker.sock"), Path("/run/docker.sock"))


def container_groups() -> tuple[int, ...]:
    """Supplementary groups a non-root runner passes on, so that group-readable datasets stay readable; less the
    Docker socket's group (a runner in the docker group, such as the compose runner as the project's owner): a
    backend container has no socket, and the group has no business in a stranger's image."""
    if os.getuid() == 0:
        return ()
    socket_groups = set()
    for sock in DOCKER_SOCKETS:
        try:
            socket_groups.add(sock.stat().st_gid)
        except OSError:
            pass
    return tuple(sorted(set(os.getgroups()) - {os.getgid()} - socket_groups))


@dataclass(frozen=True)
class Hardening:
    """The confinement of one backend container. The defaults are the policy; tests and check-image relax one
    setting at a time only to say which one an image cannot bear."""

    network: bool = False
    cap_drop_all: bool = True
    no_new_privileges: bool = True
    read_only_rootfs: bool = True
    #: /tmp, MiB (the kernel's size=...m); HOME and the caches point there (CACHE_ENV); counts against the memory limit
    tmpfs_mib: int = 2048
    pids_limit: int = 4096  # threads count: torch and CTranslate2 start one pool per core
    unprivileged_user: bool = True
    mem_limit_bytes: int | None = None  # None: default_mem_limit_bytes()

    # What each relaxable setting is called in messages (check-image), and how to relax it.
    RELAXABLE = {
        "cap_drop_all": ("all capabilities dropped", False),
        "no_new_privileges": ("no-new-privileges", False),
        "read_only_rootfs": ("a read-only root filesystem (only /tmp is writable)", False),
        "pids_limit": ("the pids limit", 0),
        "unprivileged_user": ("an unprivileged user (never uid 0)", False),
    }

    def relaxed(self, name: str) -> "Hardening":
        return replace(self, **{name: self.RELAXABLE[name][1]})

    def user(self) -> str:
        uid, gid = container_ids() if self.unprivileged_user else (0, 0)
        return f"{uid}:{gid}"

    def engine_kwargs(self) -> dict[str, Any]:
        """docker-py ``containers.create`` arguments (the HostConfig fields tests inspect)."""
        kwargs: dict[str, Any] = {"network_disabled": not self.network, "user": self.user()}
        if not self.network:
            kwargs["network_mode"] = "none"
        groups = container_groups() if self.unprivileged_user else ()
        if groups:
            kwargs["group_add"] = [str(g) for g in groups]
        if self.cap_drop_all:
            kwargs["cap_drop"] = ["ALL"]
        if self.no_new_privileges:
            kwargs["security_opt"] = ["no-new-privileges"]
        if self.read_only_rootfs:
            kwargs["read_only"] = True
        kwargs["tmpfs"] = {"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_mib}m,mode=1777"}
        if self.pids_limit:
            kwargs["pids_limit"] = self.pids_limit
        limit = self.mem_limit_bytes if self.mem_limit_bytes is not None else default_mem_limit_bytes()
        if limit:
            kwargs["mem_limit"] = limit
            kwargs["memswap_limit"] = limit  # no swap: an OOM is an OOM, not a slow run that distorts timing
        return kwargs

    def describe(self) -> dict[str, Any]:
        """The settings as recorded in results and printed by check-image."""
        k = self.engine_kwargs()
        return {"network": "none" if not self.network else "bridge", "user": k["user"],
                "cap_drop": k.get("cap_drop", []), "security_opt": k.get("security_opt", []),
                "read_only_rootfs": bool(k.get("read_only")), "tmpfs": k["tmpfs"],
                "pids_limit": k.get("pids_limit"), "mem_limit_bytes": k.get("mem_limit")}


def chown_for_container(folder: Path) -> None:
    """Give a writable mount (the output folder) to the container's uid when the runner is root."""
    if os.getuid() != 0:
        return
    uid, gid = container_ids()
    os.chown(folder, uid, gid)


def reclaim(folder: Path) -> None:
    """Give the container's files back to the runner (root) after the run, so no stray uid owns results;
    never through a link, and never deeper than an image can make Python recurse (safe_io.give_back)."""
    from ..trust.safe_io import give_back

    if os.getuid() != 0 or not folder.exists():
        return
    give_back(folder, 0, 0)
