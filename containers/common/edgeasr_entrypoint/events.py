"""Append-only JSONL writers for the container's raw outputs.

Every event carries the wall clock (``t_ns``, time.time_ns) so that the host can
align it with its own telemetry samples (same kernel clock inside and outside
the container), and the monotonic clock (``mono_ns``) for exact durations inside
the container. Each event is also printed to stdout behind a fixed prefix, so the
host can draw live progress from the container's log stream.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from .contract import EVENT_PREFIX, EventRecord


class JsonlWriter:
    """Writes one JSON object per line and flushes it, so nothing is lost if the container dies."""

    def __init__(self, path: Path):
        self._fh = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class EventLog(JsonlWriter):
    """events.jsonl, and each event on stdout behind EVENT_PREFIX."""

    def emit(self, event: str, **fields) -> EventRecord:
        """Stamp both clocks, check the event as the host will (``EventRecord.build``), write it; the checked
        record. A field that breaks the contract raises RecordError and nothing is written."""
        record = EventRecord.build(event, time.time_ns(), time.monotonic_ns(), **fields)
        line = record.to_json()
        self.write(line)
        sys.stdout.write(EVENT_PREFIX + json.dumps(line, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return record


def write_json_atomic(path: Path, data: dict) -> None:
    """Temp file + rename: a reader sees the old file or the whole new one, never half."""
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
