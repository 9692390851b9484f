"""The one reader of an engine's output stream: every byte kept in the log, every contract event line decoded.

Both engines (a container's log stream, a host process's stdout) feed their chunks here, so the event-line
format is parsed in exactly one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Callable

from edgeasr_entrypoint.contract import EVENT_PREFIX


def parse_event_line(line: str) -> dict[str, Any] | None:
    """The event a stdout line carries, or None (an ordinary log line, or a cut-off one)."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


class EventLines:
    """Splits a byte stream into lines; writes every byte to ``log`` and hands each event to ``on_event``."""

    def __init__(self, log: BinaryIO, on_event: Callable[[dict[str, Any]], None]):
        self._log = log
        self._on_event = on_event
        self._buf = b""

    def feed(self, chunk: bytes) -> None:
        self._log.write(chunk)
        self._log.flush()
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            self._line(raw)

    def close(self) -> None:
        if self._buf:
            self._line(self._buf)
            self._buf = b""

    def _line(self, raw: bytes) -> None:
        event = parse_event_line(raw.decode("utf-8", "replace").rstrip("\r"))
        if event is not None:
            self._on_event(event)


def stream_to_log(chunks, log_path: Path, on_event: Callable[[dict[str, Any]], None]) -> None:
    """Feed an iterable of byte chunks through EventLines into ``log_path`` (appended)."""
    with open(log_path, "ab") as log:
        reader = EventLines(log, on_event)
        for chunk in chunks:
            reader.feed(chunk)
        reader.close()
