"""An advisory lock on a run or sweep folder: one writer at a time, and the lock dies with its holder.

Two runs into one folder would delete each other's raw files and containers. The
lock is ``fcntl.flock`` on ``.edgeasr.lock`` in the folder: the kernel releases it
when the holder exits, even by ``kill -9``, so a stale lock never blocks anyone.
The file keeps the holder's pid, host and start time so that the refusal can name
who holds it. It works across containers that share the folder (one kernel).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from ..errors import UserError

LOCK_NAME = ".edgeasr.lock"


class FolderLock:
    """``with FolderLock(folder, "run"):`` or acquire()/release(); a second holder gets a UserError (exit 2)."""

    def __init__(self, folder: Path, command: str, option: str = "--out"):
        self.folder = Path(folder)
        self.command = command
        self.option = option
        self._fh: IO[str] | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = _describe(fh.read())
            fh.close()
            raise UserError(f"{self.folder} is in use by {holder}; wait for it to finish or choose another "
                            f"{self.option}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"command": self.command, "pid": os.getpid(), "host": socket.gethostname(),
                             "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}) + "\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(text: str) -> str:
    try:
        h = json.loads(text)
        return f"edgeasr {h['command']} (pid {h['pid']} on {h['host']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        return "another edgeasr process"
