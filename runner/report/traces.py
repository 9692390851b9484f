"""What the richer figures read beyond conditions.jsonl: each condition's utterances.jsonl and each group's
telemetry.csv and raw/events.jsonl, found through the keys the records carry.

A sweep folder holds ``conditions/<key>/utterances.jsonl`` and ``groups/<group_key>/{telemetry.csv,
raw/events.jsonl}``; a record names both keys in its ``condition``. Pure reads: a missing or unreadable
file is "no data" (the figure that needs it says so in its notes or is left out), never an error, since a
results folder copied without its groups/ is still a valid report input.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..merge import read_raw
from ..results import read_jsonl_checked, upgraded_utterance
from .records import CONDITIONS_FILE, GroupKey, Sweep, parse_record


@dataclass(frozen=True)
class RecordFiles:
    """One (condition, repeat) record's keys and summary, and where its files are."""

    key: GroupKey
    condition_key: str
    group_key: str
    repeat: int
    status: str
    summary: Mapping[str, Any]


@dataclass(frozen=True)
class Timeline:
    """A group's power trace (seconds from the container's start) and its event windows on the same clock."""

    group_key: str
    t_s: tuple[float, ...]
    total_w: tuple[float | None, ...]
    rails_w: Mapping[str, tuple[float | None, ...]] = field(default_factory=dict)
    windows: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # load, warmup, inference
    utterances: tuple[tuple[float, float], ...] = ()


def record_files(sweep: Sweep) -> list[RecordFiles]:
    """Every usable record of the sweep with its condition and group keys (records without keys are left out).

    A run folder of one repeat has no conditions.jsonl: its records keep empty keys, and the files are found
    in the folder itself (condition_dir, group_dir)."""
    path = Path(sweep.results_dir) / CONDITIONS_FILE
    if not path.is_file():
        return [RecordFiles(r.key, "", "", r.repeat, r.status, r.summary) for r in sweep.records]
    rows, _ = read_jsonl_checked(path)
    out = []
    for row in rows:
        cond = row.get("condition") if isinstance(row, Mapping) else None
        if not isinstance(cond, Mapping) or not cond.get("key"):
            continue
        try:
            rec = parse_record(row)
        except Exception:  # noqa: BLE001 - a record the table already warned about
            continue
        out.append(RecordFiles(rec.key, str(cond["key"]), str(cond.get("group_key") or ""), rec.repeat, rec.status,
                               rec.summary))
    return out


def condition_dir(results_dir: Path, condition_key: str) -> Path:
    """A condition's folder: conditions/<key> in a sweep (or a run of several repeats), else the run folder."""
    folder = Path(results_dir) / "conditions" / condition_key
    return folder if condition_key and folder.is_dir() else Path(results_dir)


def group_dir(results_dir: Path, group_key: str) -> Path | None:
    """A container's folder (telemetry.csv, raw/): groups/<key> in a sweep, else the run folder; None if neither."""
    folder = Path(results_dir) / "groups" / group_key
    if group_key and folder.is_dir():
        return folder
    return Path(results_dir) if (Path(results_dir) / "telemetry.csv").is_file() else None


def utterance_points(results_dir: Path, condition_key: str) -> list[tuple[float, float]]:
    """(duration_s, latency_s) of each utterance that finished, from the condition's utterances.jsonl."""
    path = condition_dir(results_dir, condition_key) / "utterances.jsonl"
    if not path.is_file():
        return []
    rows, _ = read_jsonl_checked(path)
    points = []
    for row in rows:
        d, lat = row.get("duration_s"), row.get("latency_s")
        if _finite(d) and _finite(lat) and row.get("status", "ok") == "ok":
            points.append((float(d), float(lat)))
    return points


def utterance_values(results_dir: Path, condition_key: str, name: str) -> list[tuple[float, float]]:
    """(duration_s, the utterance record's ``name``) of each utterance that finished and has both (issue 24's
    growth with duration: ``container_mem_peak_mib``, ``mem_peak_mib``, ``energy_j``); an older file's rows are read
    under schema 4's names (results.upgraded_utterance)."""
    path = condition_dir(results_dir, condition_key) / "utterances.jsonl"
    if not path.is_file():
        return []
    rows = [upgraded_utterance(row) for row in read_jsonl_checked(path)[0]]
    return [(float(row["duration_s"]), float(row[name])) for row in rows
            if row.get("status", "ok") == "ok" and _finite(row.get("duration_s")) and _finite(row.get(name))]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


WINDOW_EVENTS = {"load": ("load_start", "load_end"), "warmup": ("warmup_start", "warmup_end"),
                 "inference": ("inference_start", "inference_end")}


def read_timeline(results_dir: Path, group_key: str) -> Timeline | None:
    """The group's trace and windows; None without a telemetry.csv with power or without events."""
    folder = group_dir(results_dir, group_key)
    if folder is None:
        return None
    trace = folder / "telemetry.csv"
    if not trace.is_file():
        return None
    with open(trace, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # raw/ is what the container left: read as the run read it (runner/trust/safe_io.py), a refused file is no data
    events = read_raw(folder / "raw").events if (folder / "raw").is_dir() else []
    if not rows or not events:
        return None
    mono = all(_number(r.get("mono_ns")) is not None for r in rows) and all("mono_ns" in e for e in events)
    clock = "mono_ns" if mono else "t_ns"
    start = next((e[clock] for e in events if e.get("event") == "container_start" and clock in e), None)
    if start is None:
        start = min(e[clock] for e in events if clock in e)
    t_s = [(float(r[clock]) - start) / 1e9 for r in rows]
    total = [_number(r.get("total_w")) for r in rows]
    if not any(v is not None for v in total):
        return None
    rails = {name[:-2]: tuple(_number(r.get(name)) for r in rows)
             for name in (rows[0].keys() - {"total_w"}) if name.endswith("_w")}
    windows = {}
    for name, (first, last) in WINDOW_EVENTS.items():
        starts = [e[clock] for e in events if e.get("event") == first and clock in e]
        ends = [e[clock] for e in events if e.get("event") == last and clock in e]
        if starts and ends:
            windows[name] = ((min(starts) - start) / 1e9, (max(ends) - start) / 1e9)
    open_at: dict[tuple[Any, Any], float] = {}
    spans = []
    for e in events:
        ident = (e.get("condition"), e.get("id"))
        if e.get("event") == "utterance_start" and clock in e:
            open_at[ident] = e[clock]
        elif e.get("event") in ("utterance_end", "utterance_error") and ident in open_at and clock in e:
            spans.append(((open_at.pop(ident) - start) / 1e9, (e[clock] - start) / 1e9))
    order = sorted(range(len(t_s)), key=t_s.__getitem__)
    return Timeline(group_key, tuple(t_s[i] for i in order), tuple(total[i] for i in order),
                    {k: tuple(v[i] for i in order) for k, v in sorted(rails.items())}, windows, tuple(spans))


def by_key(records: Sequence[RecordFiles]) -> dict[GroupKey, list[RecordFiles]]:
    out: dict[GroupKey, list[RecordFiles]] = {}
    for rec in records:
        out.setdefault(rec.key, []).append(rec)
    return out
