"""The one reader of an engine's output stream: contract event lines decoded, the log kept, both bounded.

Both engines (a container's attached output, a host process's stdout) feed their chunks here, so the
event-line format is parsed in exactly one place. What a stranger's image prints is bounded on the way in:
the reader is linear in its input and holds at most one line of ``max_line_bytes`` (an event line longer
than that is reported through ``on_limit``, and the engine stops the container); the log keeps its first and
its last bytes (``HeadTailLog``), with a line saying what was cut between them, so a run that prints without
end fills neither the host's memory nor its disk, and the final traceback is never the part that is lost.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO, Callable

from edgeasr_entrypoint.contract import EVENT_PREFIX

from ..trust.safe_io import size_text

_PREFIX = EVENT_PREFIX.encode()


def parse_event_line(line: str) -> dict[str, Any] | None:
    """The event a stdout line carries, or None (an ordinary log line, or a cut-off one)."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:
        event = json.loads(line[len(EVENT_PREFIX):])
    except (json.JSONDecodeError, RecursionError):
        return None
    return event if isinstance(event, dict) else None


class HeadTailLog:
    """A log file that keeps the first ``head`` and the last ``tail`` bytes of what is written to it.

    Bytes go straight to the file until ``head + tail`` of them have (most logs never get there, and their
    file is the whole log, readable live). Past that the file stops growing and the last ``tail`` bytes are
    kept in memory; ``finish`` cuts the file back to ``head``, writes a line saying how much was cut and
    which settings (``note``) keep more, then the tail. Memory: at most twice ``tail`` plus one chunk."""

    def __init__(self, fh: BinaryIO, head: int, tail: int, note: str = ""):
        self._fh, self._head, self._tail, self._note = fh, head, tail, note
        self._total = 0
        self._ring = bytearray()
        self._finished = False

    def write(self, chunk: bytes) -> None:
        room = self._head + self._tail - self._total
        if room > 0:
            self._fh.write(chunk[:room])
            self._fh.flush()
        self._total += len(chunk)
        if self._tail:
            self._ring += chunk
            if len(self._ring) > 2 * self._tail:  # amortised: trimmed once per ``tail`` bytes
                del self._ring[: len(self._ring) - self._tail]

    def held_bytes(self) -> int:
        return len(self._ring)

    @property
    def cut_bytes(self) -> int:
        return max(0, self._total - self._head - self._tail)

    def finish(self) -> None:
        """Write the note and the tail where something was cut (the file is complete otherwise); once."""
        if self._finished:
            return
        self._finished = True
        cut = self.cut_bytes
        if cut:
            self._fh.seek(self._head)
            self._fh.truncate()
            self._fh.write(f"\n[edgeasr: {cut} bytes of this log were cut here; it keeps the first "
                           f"{size_text(self._head)} and the last {size_text(self._tail)}"
                           f"{f' ({self._note})' if self._note else ''}]\n".encode())
            self._fh.write(bytes(self._ring[len(self._ring) - self._tail:]) if self._tail else b"")
        self._fh.flush()
        self._ring = bytearray()

    def close(self) -> None:
        self.finish()
        self._fh.close()


class EventLines:
    """Splits a byte stream into lines; writes every byte to ``log`` and hands each event to ``on_event``.

    Linear: a chunk is searched for newlines once, and the pieces of an unfinished line are joined once, when
    it ends. A line longer than ``max_line_bytes`` is dropped as it streams (the log still has it); when it is
    an event line, ``on_limit`` gets one sentence saying so (once per line)."""

    def __init__(self, log, on_event: Callable[[dict[str, Any]], None], max_line_bytes: int | None = None,
                 on_limit: Callable[[str], None] | None = None):
        self._log = log
        self._on_event = on_event
        self._max = max_line_bytes
        self._on_limit = on_limit
        self._parts: list[bytes] = []
        self._len = 0
        self._skipping = False  # inside a line already over the limit: its bytes are dropped until it ends

    def feed(self, chunk: bytes) -> None:
        self._log.write(chunk)
        if hasattr(self._log, "flush"):
            self._log.flush()
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                self._add(chunk[start:])
                return
            self._add(chunk[start:nl])
            self._end_line()
            start = nl + 1

    def close(self) -> None:
        if self._parts or self._skipping:
            self._end_line()

    def held_bytes(self) -> int:
        return self._len

    def _add(self, piece: bytes) -> None:
        if self._skipping or not piece:
            return
        self._parts.append(piece)
        self._len += len(piece)
        if self._max is not None and self._len > self._max:
            start = b"".join(self._parts)[: len(_PREFIX)]
            self._parts, self._len, self._skipping = [], 0, True
            if start == _PREFIX and self._on_limit is not None:
                self._on_limit(f"the container printed an event line of more than {size_text(self._max)}")

    def _end_line(self) -> None:
        if self._skipping:
            self._skipping = False
            return
        raw = b"".join(self._parts)
        self._parts, self._len = [], 0
        event = parse_event_line(raw.decode("utf-8", "replace").rstrip("\r"))
        if event is not None:
            self._on_event(event)


def stream_to_log(chunks, log: HeadTailLog, on_event: Callable[[dict[str, Any]], None],
                  max_line_bytes: int | None = None, on_limit: Callable[[str], None] | None = None) -> None:
    """Feed an iterable of byte chunks through EventLines into ``log``, then finish the log."""
    reader = EventLines(log, on_event, max_line_bytes, on_limit)
    try:
        for chunk in chunks:
            reader.feed(chunk)
        reader.close()
    finally:
        log.finish()
