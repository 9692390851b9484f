"""`edgeasr energy --tegrastats-log FILE --start T --end T`: integrate a log someone already recorded."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import UserError
from ..telemetry.energy.accounting import sensor_terms
from ..telemetry.energy.integrate import integrate
from ..telemetry.samplers.tegrastats_log import parse_time, read_log
from ..trust.untrusted import visible


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tegrastats-log", required=True, type=Path, help="a recorded tegrastats log")
    p.add_argument("--start", required=True, help="seconds from the first line, or 'MM-DD-YYYY HH:MM:SS'")
    p.add_argument("--end", required=True, help="seconds from the first line, or 'MM-DD-YYYY HH:MM:SS'")
    p.add_argument("--baseline-w", type=float, default=None, help="idle power to subtract (W)")
    p.add_argument("--interval-ms", type=float, default=None,
                   help="the log's sampling interval, checked against its timestamps when it has them "
                        "(default: fitted to the timestamps, else 1000)")


def main(args: argparse.Namespace) -> int:
    try:
        text = args.tegrastats_log.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read {args.tegrastats_log}: {exc.strerror}") from None
    timeline = read_log(text, args.interval_ms)
    for warning in timeline.warnings:
        print(visible(f"edgeasr energy: warning: {warning}"), file=sys.stderr)
    start, end = parse_time(args.start, timeline), parse_time(args.end, timeline)
    if end <= start:
        raise UserError(f"--end ({args.end}) must be after --start ({args.start})")
    w = integrate(timeline.samples, start, end, **sensor_terms("tegrastats", timeline.interval_ms))
    out = {
        "source": "tegrastats-log",
        "file": str(args.tegrastats_log),
        "start_s": (start - timeline.origin_ns) / 1e9,
        "end_s": (end - timeline.origin_ns) / 1e9,
        "duration_s": w.duration_s,
        "total_j": w.total_j,
        "bound_j": w.bound_j,  # how far total_j may be off: sample gaps x power steps + resolution x duration
        "flags": list(w.flags),
        "dynamic_j": w.dynamic_j(args.baseline_w),
        "baseline_w": args.baseline_w,
        "avg_w": w.avg_w,
        "peak_w": w.peak_w,
        "total_kind": w.total_kind,
        "per_rail_j": dict(w.per_channel_j),
        "n_samples": w.n_samples,
        "interval_ms": timeline.interval_ms,
        "interval_source": timeline.interval_source,
        "lines_unparsed": timeline.n_unparsed,
        "warnings": timeline.warnings,
        "unavailable": {"total_j": w.reason} if w.total_j is None else {},
    }
    print(json.dumps(out, indent=2))
    return 0 if w.total_j is not None else 1
