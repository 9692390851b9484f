"""What a running container may leave behind, watched while it runs; past a bound it is stopped, with the reason.

An image can write without end into its output folder (a file, or a million empty ones) and fill the host's
disk long before it exits. Both engines poll the folder's size (``OutputWatch``, safe_io.folder_usage: never
following a link, every entry counted at least 4 KiB) and the event-line reader reports an over-long event
line; either calls a ``Stop``, which keeps the first reason and ends the container. The poll is not a quota:
between two polls (``interval_s``) a container can write what its disk takes in that time, which is why the
folder is measured once more after the container ended.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from ..trust.safe_io import Unsafe, folder_usage, size_text


class Stop:
    """Ends the container once, for the first reason given (later reasons are the same stop seen twice).

    The ending runs in a thread of its own: the caller may be the thread that reads the container's output,
    and the engine does not finish a SIGKILL (the API call waits) until that output has been read to its end.
    Ending it from the reader deadlocked until the client's timeout."""

    def __init__(self, end: Callable[[], None]):
        self._end = end
        self._lock = threading.Lock()
        self.reason: str | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            self._thread = threading.Thread(target=self._end, name="edgeasr-stop", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the ending to be done (after the output ended, before the container is removed)."""
        if self._thread is not None:
            self._thread.join(timeout)


class OutputWatch:
    """Polls ``folder`` every ``interval_s`` while the container runs; past ``limit_bytes`` calls ``stop``.

    A context manager: the thread starts on entry and is joined on exit. ``check()`` is one poll (the
    thread's, and the one after the container ended)."""

    def __init__(self, folder: Path, limit_bytes: int, limit_name: str, stop: Callable[[str], None],
                 interval_s: float = 0.5):
        self.folder, self.limit_bytes, self.limit_name = folder, limit_bytes, limit_name
        self._stop = stop
        self._interval_s = interval_s
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> str | None:
        """The reason the folder is over its bound (and ``stop`` was called with it), or None."""
        try:
            used = folder_usage(self.folder, stop_above=self.limit_bytes)
        except Unsafe as exc:
            reason = f"the container's output folder cannot be measured: {exc}"
        except OSError:
            return None  # the folder is being made or removed: the next poll sees it
        else:
            if used <= self.limit_bytes:
                return None
            reason = f"the container's output folder grew past {size_text(self.limit_bytes)} ({self.limit_name})"
        self._stop(reason)
        return reason

    def _run(self) -> None:
        while not self._done.wait(self._interval_s):
            if self.check() is not None:
                return

    def __enter__(self) -> "OutputWatch":
        self._thread = threading.Thread(target=self._run, name="edgeasr-output-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
