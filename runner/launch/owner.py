"""Who owns a backend container, and whether that owner is still alive.

``kill -9`` of the runner skips every cleanup, so its container lives on. Every
container is labelled with its owner (host, boot id, pid and the pid's start time,
the run or sweep folder, the command); a later run or sweep removes only those whose
owner is gone. A container whose owner is alive is never touched: two runs on one
host never remove each other's containers.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

OWNER_PREFIX = "org.edgeasr.owner."


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def process_start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None when it is gone.
    Together with the pid it names one process: a reused pid has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Owner:
    host: str
    boot_id: str
    pid: int
    start_ticks: str
    folder: str
    command: str

    @classmethod
    def me(cls, folder: Path | str, command: str) -> "Owner":
        pid = os.getpid()
        return cls(socket.gethostname(), boot_id(), pid, process_start_ticks(pid) or "", str(folder), command)

    def labels(self) -> dict[str, str]:
        return {OWNER_PREFIX + k: str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> "Owner | None":
        try:
            return cls(labels[OWNER_PREFIX + "host"], labels[OWNER_PREFIX + "boot_id"],
                       int(labels[OWNER_PREFIX + "pid"]), labels[OWNER_PREFIX + "start_ticks"],
                       labels[OWNER_PREFIX + "folder"], labels[OWNER_PREFIX + "command"])
        except (KeyError, ValueError):
            return None

    def describe(self) -> str:
        return f"edgeasr {self.command} (pid {self.pid} on {self.host}, folder {self.folder})"


def is_orphan(owner: Owner, locked_folders: tuple[str, ...] = ()) -> bool:
    """True only when the owner is certainly gone.

    Same host and boot: its pid is dead, or now belongs to another process. Same boot but another host name
    (a runner inside a compose container has its own): only when it wrote to a folder whose lock we now
    hold, since the lock proves that no live edgeasr process uses that folder. Another boot of this host:
    the reboot ended it."""
    me_host, me_boot = socket.gethostname(), boot_id()
    if owner.boot_id == me_boot and owner.folder in locked_folders:
        return True
    if owner.host != me_host:
        return False
    if owner.boot_id != me_boot:
        return True
    return process_start_ticks(owner.pid) != owner.start_ticks
