"""Turn a tegrastats log that someone already recorded into a timeline of samples.

A log line carries no sub-second time: JetPack 5+ prefixes a `MM-DD-YYYY HH:MM:SS`
stamp, JetPack 4 nothing. Line i is therefore placed at t0 + i x interval, where
t0 is the first line's own stamp (or 0 s when there is none) and the interval is
the one the log was recorded with: given, or inferred from the stamps' span.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import UserError
from .base import Sample
from .tegrastats import record_to_sample
from .tegrastats_parse import TegrastatsRecord, parse_line

STAMP_FORMAT = "%m-%d-%Y %H:%M:%S"
DEFAULT_INTERVAL_MS = 1000  # tegrastats' own default


@dataclass(frozen=True)
class LogTimeline:
    samples: list[Sample]
    origin_ns: int  # time of the first line: its stamp (epoch ns), or 0 when the log has none
    stamped: bool
    interval_ms: float
    interval_source: str  # given | inferred from timestamps | tegrastats default
    n_lines: int
    n_unparsed: int


def _stamp_ns(record: TegrastatsRecord) -> int | None:
    if not record.timestamp:
        return None
    return int(datetime.strptime(record.timestamp, STAMP_FORMAT).timestamp() * 1e9)


def read_log(text: str, interval_ms: float | None = None) -> LogTimeline:
    lines = [line for line in text.splitlines() if line.strip()]
    records = [parse_line(line) for line in lines]
    parsed = [r for r in records if r is not None]
    if not parsed:
        raise UserError("the tegrastats log holds no line that parses as tegrastats output")
    stamps = [_stamp_ns(r) for r in parsed]
    stamped = stamps[0] is not None
    source = "given"
    if interval_ms is None:
        span_s = (stamps[-1] - stamps[0]) / 1e9 if stamped and stamps[-1] is not None else 0.0
        if span_s >= 5 and len(parsed) > 1:
            # Stamps have 1 s resolution: over a span of several seconds the mean spacing is close.
            interval_ms, source = 1000.0 * span_s / (len(parsed) - 1), "inferred from timestamps"
        else:
            interval_ms, source = float(DEFAULT_INTERVAL_MS), "tegrastats default"
    origin = stamps[0] if stamped else 0
    samples = [record_to_sample(origin + int(i * interval_ms * 1e6), r) for i, r in enumerate(parsed)]
    return LogTimeline(samples, origin, stamped, interval_ms, source, len(lines), len(lines) - len(parsed))


def parse_time(value: str, timeline: LogTimeline) -> int:
    """A window edge: seconds from the log's first line, or an absolute `MM-DD-YYYY HH:MM:SS` stamp."""
    try:
        return timeline.origin_ns + int(float(value) * 1e9)
    except ValueError:
        pass
    for fmt in (STAMP_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            t = int(datetime.strptime(value, fmt).timestamp() * 1e9)
        except ValueError:
            continue
        if not timeline.stamped:
            raise UserError(f"time {value!r} is absolute but the log lines carry no timestamps; "
                            f"give seconds from the first line instead")
        return t
    raise UserError(f"time {value!r} is neither seconds from the log's start nor a 'MM-DD-YYYY HH:MM:SS' stamp")
