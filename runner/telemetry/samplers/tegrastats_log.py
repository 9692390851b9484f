"""Turn a tegrastats log that someone already recorded into a timeline of samples.

A log line carries no sub-second time: JetPack 5+ prefixes a `MM-DD-YYYY HH:MM:SS`
stamp (1 s resolution), JetPack 4 nothing. A stamp is the second the line was
written in, truncated: a line stamped 18:30:05 was written in [05, 06), half a
second later on average, so placing it at its stamp puts it early. Where lines
are stamped, the stamps decide where each line goes, without that bias:

* regular stamps (every line within a second of a straight line through them):
  line i is placed at ``a + b x i``. The spacing ``b`` is the one that leaves the
  widest range of phases consistent with every stamp (searched near their
  least-squares slope), or a given ``--interval-ms`` that agrees with it
  (overruled with a warning when not). The phase ``a`` is the
  middle of the range every stamp allows (``stamp_i <= a + b x i < stamp_i + 1``):
  where lines cross a second boundary this pins ``a`` to a fraction of the
  spacing; with one line a second it is the middle of the second;
* irregular stamps (a gap, a restart): each line sits in its own second, lines
  that share a second spread evenly across it at the middles of their shares.

Unstamped lines can only be placed on a grid, at the given interval or tegrastats'
default of 1 s, and the result says which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from ...errors import UserError
from .base import Sample
from .tegrastats import record_to_sample
from .tegrastats_parse import TegrastatsRecord, parse_line

STAMP_FORMAT = "%m-%d-%Y %H:%M:%S"
DEFAULT_INTERVAL_MS = 1000  # tegrastats' own default
#: A stamp further than this from the fitted line means the log is not evenly spaced (a gap, a restart).
MAX_FIT_RESIDUAL_S = 1.0
#: A given interval agrees with the stamps when within this share of the fitted spacing
#: (or within the fit's own uncertainty, 2 s over the log's span, whichever is larger).
INTERVAL_TOLERANCE = 0.1


@dataclass(frozen=True)
class LogTimeline:
    samples: list[Sample]
    origin_ns: int  # time of the first line: where it was placed (epoch ns), or 0 when the log has no stamps
    stamped: bool
    interval_ms: float
    interval_source: str  # how the lines were placed (see the module doc)
    n_lines: int
    n_unparsed: int
    warnings: list[str] = field(default_factory=list)


def _stamp_s(record: TegrastatsRecord) -> int | None:
    if not record.timestamp:
        return None
    return int(datetime.strptime(record.timestamp, STAMP_FORMAT).timestamp())


def _by_own_stamp(stamps: list[int]) -> list[float]:
    """Each line in its own second; k lines sharing a second at stamp + (j + 1/2)/k: the middle of each one's
    share of the second (a truncated stamp is the start of the second, not where the line was written)."""
    out: list[float] = []
    i = 0
    while i < len(stamps):
        j = i
        while j < len(stamps) and stamps[j] == stamps[i]:
            j += 1
        out += [stamps[i] + (k - i + 0.5) / (j - i) for k in range(i, j)]
        i = j
    return out


def _slack(stamps: np.ndarray, idx: np.ndarray, spacing_s: float) -> float:
    """How wide the range of phases that every truncated stamp allows is, for lines ``spacing_s`` apart (negative
    where no phase fits them all): a concave function of the spacing, widest at the spacing the stamps imply."""
    t = stamps - spacing_s * idx
    return float(np.min(t + 1.0) - np.max(t))


def stamp_spacing(stamps: Sequence[int], fitted_s: float) -> float:
    """The spacing of lines whose stamps are truncated to the second: the one that leaves the widest range of
    phases consistent with every stamp (where the stamps cross a second boundary, this pins it far closer than a
    least-squares slope through truncated values), searched near the least-squares slope ``fitted_s``."""
    values = np.asarray(stamps, dtype=np.float64)
    idx = np.arange(len(stamps), dtype=np.float64)
    lo, hi = fitted_s * 0.9, fitted_s * 1.1
    for _ in range(80):  # ternary search on a concave function
        m1, m2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        if _slack(values, idx, m1) < _slack(values, idx, m2):
            lo = m1
        else:
            hi = m2
    return (lo + hi) / 2


def stamp_phase(stamps: Sequence[int], spacing_s: float) -> float:
    """Where line 0 was written (epoch s), for lines ``spacing_s`` apart whose stamps are truncated to the second:
    the middle of the range of phases every stamp allows (``stamp_i <= a + spacing_s x i < stamp_i + 1``). Where
    the stamps disagree a little (the spacing is a fit), the middle between the tightest bounds, which is still
    unbiased: never the stamp itself, which is on average half a second early."""
    idx = np.arange(len(stamps), dtype=np.float64)
    t = np.asarray(stamps, dtype=np.float64) - spacing_s * idx
    return float((np.max(t) + np.min(t + 1.0)) / 2.0)


def place_lines(stamps: list[int] | None, n: int, interval_ms: float | None
                ) -> tuple[list[float], float, str, list[str]]:
    """(seconds per line, interval ms, how they were placed, warnings) for n lines; stamps in epoch seconds."""
    warnings: list[str] = []
    if stamps is None or n < 2:
        if interval_ms is None:
            interval_ms, source = float(DEFAULT_INTERVAL_MS), "tegrastats default (the lines carry no timestamps)"
        else:
            source = "given (the lines carry no timestamps to check it against)"
        base = float(stamps[0]) if stamps else 0.0
        return [base + i * interval_ms / 1000.0 for i in range(n)], interval_ms, source, warnings
    idx = np.arange(n, dtype=np.float64)
    b, a = np.polyfit(idx, np.array(stamps, dtype=np.float64), 1)
    residual = float(np.max(np.abs(np.array(stamps) - (a + b * idx))))
    if b <= 0 or residual > MAX_FIT_RESIDUAL_S:
        times = _by_own_stamp(stamps)
        spacing_ms = 1000.0 * (times[-1] - times[0]) / (n - 1)
        if interval_ms is not None:
            warnings.append(f"--interval-ms {interval_ms:g} was not used: the timestamps are irregular (a gap "
                            f"or a restart, {residual:.1f} s off a straight line), so each line sits at its stamp")
        return times, spacing_ms, "timestamps (irregular: each line at its own stamp)", warnings
    b = stamp_spacing(stamps, b)
    fitted_ms = 1000.0 * b
    if interval_ms is not None:
        tolerance_ms = max(INTERVAL_TOLERANCE * fitted_ms, 2000.0 / (n - 1))
        if abs(interval_ms - fitted_ms) <= tolerance_ms:
            phase = stamp_phase(stamps, interval_ms / 1000.0)
            return [phase + i * interval_ms / 1000.0 for i in range(n)], interval_ms, \
                "given (consistent with the timestamps)", warnings
        warnings.append(f"--interval-ms {interval_ms:g} disagrees with the log's timestamps, which put its "
                        f"lines {fitted_ms:.0f} ms apart: the timestamps were used")
    phase = stamp_phase(stamps, b)
    return [phase + b * i for i in range(n)], fitted_ms, f"timestamps (fitted: {fitted_ms:.0f} ms a line)", warnings


def read_log(text: str, interval_ms: float | None = None) -> LogTimeline:
    lines = [line for line in text.splitlines() if line.strip()]
    records = [parse_line(line) for line in lines]
    parsed = [r for r in records if r is not None]
    if not parsed:
        raise UserError("the tegrastats log holds no line that parses as tegrastats output")
    stamps = [_stamp_s(r) for r in parsed]
    stamped = all(s is not None for s in stamps)
    times_s, interval, source, warnings = place_lines(stamps if stamped else None, len(parsed), interval_ms)
    if not stamped and any(s is not None for s in stamps):
        warnings.append("only some lines carry a timestamp: all were placed on a grid")
    times_ns = [int(round(t * 1e9)) for t in times_s]
    samples = [record_to_sample(t, r) for t, r in zip(times_ns, parsed)]
    return LogTimeline(samples, times_ns[0] if stamped else 0, stamped, interval, source, len(lines),
                       len(lines) - len(parsed), warnings)


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
