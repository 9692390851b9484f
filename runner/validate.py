"""What a container hands back, checked against the contract before the merge reads a single field of it.

An image is a stranger's (issue 20, item 4): its events, transcripts and status record can hold a string, a
null, a zero, a negative number or NaN where the contract says seconds; a hypothesis that is not text; one
utterance reported twice; a clock that runs backwards. Read as they were, these crashed the merge (no
summary.json at all, and a sweep stopped at the first such group) or became figures (RTF -2.5, a latency of
-5000 ms, NaN in JSON) that ``compare`` then passed. So every record is checked here, in one place, and comes
out either as a validated record (frozen ``EventRow`` / ``TranscriptRow``, whose fields the merge can trust:
seconds finite and in range, texts text, a clock that never goes back) or as a ``Rejected`` sentence naming
what was wrong; a condition with any rejected record fails with that sentence (runner/execute.py), and the
records that were fine are still merged, so its figures stay finite and non-negative.

Cross-checks where the host can make them: a result's processing and latency times fit inside its own
utterance's window in the events (the same monotonic clock), and its audio duration is the one its events
and the audio file's header say. When the one-sweep issue's typed records land, these checks move onto them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeasr_entrypoint.contract import Event

#: Slack for a time compared with a window of the events: the windows are stamped a few instructions outside
#: the timed call (same clock), and floats are summed and divided on the way.
WINDOW_SLACK_S = 1e-3
WINDOW_SLACK_FRACTION = 0.01
#: How far a reported audio duration may be from the events' or the file header's: resampling to 16 kHz
#: rounds to a sample, a decoder may pad a frame.
DURATION_SLACK_S = 0.05
DURATION_SLACK_FRACTION = 0.01
#: How many of a condition's problems its error sentence quotes (the rest are counted).
QUOTED = 3

# What each field of the contract may hold. ``positive``: seconds of audio (> 0); ``seconds``/``mb``: >= 0.
_POSITIVE = ("duration_s",)
_NON_NEGATIVE = ("processing_s", "latency_s", "audio_s", "peak_rss_mb", "peak_vram_mb", "audio_cache_mb",
                 "rss_after_load_mb", "model_size_mb", "seconds", "peak_rss_excl_audio_mb")
_COUNTS = ("n_params", "batch_size", "count", "n_ok", "n_failed", "n", "n_conditions", "n_utterances")
_TEXTS = ("condition", "id", "error", "peak_rss_scope", "device_used", "quant_method", "model", "status",
          "model_kind", "backend", "traceback", "reason", "peak_rss_excl_audio_method")
#: The fields an event must carry, beyond its name and clocks (the entrypoint always writes them).
_REQUIRED = {Event.UTTERANCE_START: ("id",), Event.UTTERANCE_END: ("id", "duration_s", "processing_s"),
             Event.UTTERANCE_ERROR: ("id",)}


@dataclass(frozen=True)
class Rejected:
    """A record (or part of one) that broke the contract: the condition it belongs to (None: the whole
    container, so every condition), the utterance it names (None: none), and one sentence."""

    condition: str | None
    id: str | None
    text: str


@dataclass(frozen=True)
class EventRow:
    """One event that passed the checks: its name, both clocks (non-negative integers; ``mono_ns`` never
    behind an earlier event's), the condition and utterance it names, and the record as the merge reads it."""

    event: str
    t_ns: int
    mono_ns: int
    condition: str | None
    id: str | None
    record: Mapping[str, Any] = field(compare=False)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.record)


@dataclass(frozen=True)
class TranscriptRow:
    """One utterance's result that passed the checks. An ``ok`` one has text and audio seconds > 0 and
    processing seconds >= 0 (finite); an ``error`` one has its sentence (or None)."""

    id: str
    condition: str | None
    status: str  # ok | error
    hypothesis: str | None
    error: str | None
    duration_s: float | None
    processing_s: float | None
    latency_s: float | None
    record: Mapping[str, Any] = field(compare=False)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.record)


def _shown(value: Any) -> str:
    """A value as a sentence quotes it: short, and never the whole of a long one."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def value_problem(name: str, value: Any, *, required: bool = False) -> str | None:
    """Why ``value`` cannot be the contract's field ``name`` (None: it can). Unknown names only need to be
    free of NaN and infinities."""
    if value is None:
        return f"{name} is missing" if required else None
    if name in _POSITIVE or name in _NON_NEGATIVE:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} is {_shown(value)}, not a number"
        if not math.isfinite(value):
            return f"{name} is {_shown(value)}, not a finite number"
        if name in _POSITIVE and value <= 0:
            return f"{name} is {value!r}: seconds of audio must be more than 0"
        if value < 0:
            return f"{name} is {value!r}, below 0"
        return None
    if name in _COUNTS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name} is {_shown(value)}, not a count"
        return None
    if name in _TEXTS:
        return None if isinstance(value, str) else f"{name} is {_shown(value)}, not text"
    if name == "versions":
        if not isinstance(value, Mapping) or not all(isinstance(v, (str, type(None))) for v in value.values()):
            return f"versions is {_shown(value)}, not a map of names to version texts"
        return None
    return None if finite_everywhere(value) else f"{name} holds NaN or an infinity"


def finite_everywhere(value: Any) -> bool:
    """Whether a JSON value holds no NaN and no infinity at any depth (Python's JSON reader accepts both);
    iterative, so that a deeply nested value cannot exhaust the stack."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            return False
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def _fields_problem(record: Mapping[str, Any], required: Iterable[str] = ()) -> str | None:
    for name in required:
        if record.get(name) is None:
            return f"{name} is missing"
    for name, value in record.items():
        problem = value_problem(str(name), value)
        if problem:
            return problem
    return None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def event_row(record: Mapping[str, Any]) -> EventRow | str:
    """One event checked on its own (fields, types, ranges); the row, or why not."""
    name = record.get("event")
    if not isinstance(name, str):
        return f"an event whose name is {_shown(name)}, not text"
    for clock in ("t_ns", "mono_ns"):
        value = record.get(clock)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{name}: {clock} is {_shown(value)}, not a time in nanoseconds"
    problem = _fields_problem(record, _REQUIRED.get(name, ()))
    if problem:
        return f"{name}: {problem}"
    return EventRow(name, record["t_ns"], record["mono_ns"], record.get("condition"), record.get("id"), dict(record))


def live_event(record: Any) -> dict[str, Any] | None:
    """An event from the container's output stream as the live views and the executor may read it, or None
    (it broke the contract: the merge of events.jsonl says so, with the condition)."""
    if not isinstance(record, Mapping):
        return None
    row = event_row(record)
    return row.as_dict() if isinstance(row, EventRow) else None


def _label(record: Mapping[str, Any]) -> tuple[str | None, str | None, str]:
    """The condition and utterance a record names (None where it names none, or not as text), and a phrase."""
    cond, uid = _text_or_none(record.get("condition")), _text_or_none(record.get("id"))
    where = ", ".join(x for x in (f"utterance {uid!r}" if uid is not None else None,
                                  f"condition {cond}" if cond is not None else None) if x)
    return cond, uid, where


def check_events(records: Iterable[Mapping[str, Any]]) -> tuple[list[EventRow], list[Rejected]]:
    """Every event checked, in file order: the valid ones, and one Rejected per event that is not (a field
    of the wrong type or range, or a monotonic clock behind an earlier event's: dropped, never a negative
    window)."""
    rows: list[EventRow] = []
    rejected: list[Rejected] = []
    last_mono = -1
    for n, record in enumerate(records, 1):
        cond, uid, _ = _label(record)
        got = event_row(record)
        if isinstance(got, str):
            rejected.append(Rejected(cond, uid, f"events.jsonl, event {n}: {got}"))
            continue
        if got.mono_ns < last_mono:
            rejected.append(Rejected(cond, uid, f"events.jsonl, event {n} ({got.event}): the monotonic clock runs "
                                                f"backwards ({got.mono_ns} ns after {last_mono} ns)"))
            continue
        last_mono = got.mono_ns
        rows.append(got)
    return rows, rejected


def transcript_row(record: Mapping[str, Any]) -> TranscriptRow | str:
    """One result checked on its own; the row, or why not."""
    status = record.get("status")
    if status not in ("ok", "error"):
        return f"status is {_shown(status)}, not 'ok' or 'error'"
    if status == "ok":
        problem = _fields_problem(record, ("duration_s", "processing_s"))
        if problem is None and not isinstance(record.get("hypothesis"), str):
            problem = f"hypothesis is {_shown(record.get('hypothesis'))}, not text"
    else:
        problem = _fields_problem({k: v for k, v in record.items() if k != "hypothesis"})
    if problem:
        return problem
    return TranscriptRow(record["id"], record.get("condition"), status, record.get("hypothesis") if status == "ok"
                         else None, record.get("error"), record.get("duration_s"), record.get("processing_s"),
                         record.get("latency_s"), dict(record))


def check_transcripts(records: Iterable[Mapping[str, Any]]) -> tuple[list[TranscriptRow], list[Rejected]]:
    """Every result checked: the valid ones, and a Rejected for each that is not; an utterance reported more
    than once in one condition keeps none of its results (which one would be true?)."""
    rows: list[TranscriptRow] = []
    rejected: list[Rejected] = []
    for n, record in enumerate(records, 1):
        cond, uid, where = _label(record)
        if uid is None:
            rejected.append(Rejected(cond, None, f"transcripts.jsonl, result {n}: id is "
                                                 f"{_shown(record.get('id'))}, not text"))
            continue
        got = transcript_row(record)
        if isinstance(got, str):
            rejected.append(Rejected(cond, uid, f"transcripts.jsonl, result {n} ({where}): {got}"))
            continue
        rows.append(got)
    seen: dict[tuple[str | None, str], int] = {}
    for r in rows:
        seen[(r.condition, r.id)] = seen.get((r.condition, r.id), 0) + 1
    for (cond, uid), count in seen.items():
        if count > 1:
            rejected.append(Rejected(cond, uid, f"transcripts.jsonl: utterance {uid!r}"
                                                f"{f', condition {cond},' if cond else ''} is reported {count} times"))
    return [r for r in rows if seen[(r.condition, r.id)] == 1], rejected


def check_status(record: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, list[Rejected]]:
    """The status record with each field that broke the contract taken out (and said), or None."""
    if record is None:
        return None, []
    out: dict[str, Any] = {}
    rejected = []
    for name, value in record.items():
        problem = value_problem(str(name), value)
        if problem:
            rejected.append(Rejected(None, None, f"status.json: {problem}"))
        else:
            out[name] = value
    if out.get("status") not in ("ok", "error"):
        if "status" in out or "status" not in record:
            rejected.append(Rejected(None, None, f"status.json: status is {_shown(record.get('status'))}, "
                                                 f"not 'ok' or 'error'"))
        out["status"] = "error"
    return out, rejected


def _fits(value: float, window_s: float) -> bool:
    return value <= window_s * (1 + WINDOW_SLACK_FRACTION) + WINDOW_SLACK_S


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= max(DURATION_SLACK_S, DURATION_SLACK_FRACTION * max(a, b))


def cross_check(events: list[EventRow], transcripts: list[TranscriptRow]
                ) -> tuple[list[TranscriptRow], list[Rejected]]:
    """Each ok result against its utterance's events (same condition): it must have ended there (an
    ``utterance_end``), its processing and latency times must fit in the window from its ``utterance_start``
    to its ``utterance_end`` (the same monotonic clock), and its audio seconds must be the events'. The
    results that pass, and a Rejected for each that does not."""
    starts: dict[tuple[str | None, str], EventRow] = {}
    ends: dict[tuple[str | None, str], EventRow] = {}
    for e in events:
        if e.id is None:
            continue
        if e.event == Event.UTTERANCE_START:
            starts.setdefault((e.condition, e.id), e)
        elif e.event == Event.UTTERANCE_END:
            ends[(e.condition, e.id)] = e
    kept, rejected = [], []
    for t in transcripts:
        if t.status != "ok":
            kept.append(t)
            continue
        key = (t.condition, t.id)
        where = f"utterance {t.id!r}" + (f", condition {t.condition}" if t.condition else "")
        start, end = starts.get(key), ends.get(key)
        problem = None
        if start is None or end is None:
            problem = (f"a result with no {'utterance_start' if start is None else 'utterance_end'} event: its "
                       f"times cannot be checked")
        else:
            window_s = (end.mono_ns - start.mono_ns) / 1e9
            for name in ("processing_s", "latency_s"):
                value = getattr(t, name)
                if value is not None and not _fits(value, window_s):
                    problem = (f"{name} {value:g} s is longer than its window in the events "
                               f"({window_s:g} s from utterance_start to utterance_end)")
                    break
            told = end.record.get("duration_s", start.record.get("duration_s"))
            if problem is None and told is not None and not _near(t.duration_s, told):
                problem = f"duration_s {t.duration_s:g} s, but its events say {told:g} s"
        if problem:
            rejected.append(Rejected(t.condition, t.id, f"{where}: {problem}"))
        else:
            kept.append(t)
    return kept, rejected


def audio_check(transcripts: list[dict[str, Any]], audio_s: Mapping[str, float | None]
                ) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """Each validated ok result's audio seconds against the host's own reading of its file (``audio_s``: id ->
    seconds from the file's header, None where the host cannot tell)."""
    kept, rejected = [], []
    for t in transcripts:
        known = audio_s.get(t["id"])
        if t["status"] == "ok" and known is not None and not _near(t["duration_s"], known):
            rejected.append(Rejected(t.get("condition"), t["id"], f"utterance {t['id']!r}: duration_s "
                                     f"{t['duration_s']:g} s, but its audio file is {known:g} s long"))
        else:
            kept.append(t)
    return kept, rejected


def sentence(rejected: Iterable[Rejected]) -> str | None:
    """The one sentence a condition fails with: the first problems, and how many more (None: none)."""
    texts = list(dict.fromkeys(r.text for r in rejected))
    if not texts:
        return None
    more = f"; and {len(texts) - QUOTED} more" if len(texts) > QUOTED else ""
    return "the container's output broke the contract: " + "; ".join(texts[:QUOTED]) + more


#: The summary's figures: finite, and never below 0 (energy is left out of "never below 0": a dynamic energy
#: below the idle baseline is a measurement, and the energy block says so itself).
FIGURES = ("audio_s", "wer", "cer", "sub", "del", "ins", "ref_words", "rtf", "rtfx", "load_s", "warmup_s",
           "inference_s", "container_s", "peak_rss_mb", "audio_cache_mb", "peak_rss_excl_audio_mb",
           "rss_after_load_mb", "model_size_mb", "n_params", "peak_vram_torch_mb", "peak_vram_nvml_mb")


def published_problems(summary: dict[str, Any]) -> list[str]:
    """The last look before a summary is written: the figures that are not finite or are below 0 are set to
    None (with the reason in ``unavailable``) and named; NaN or an infinity anywhere else is set to None too.
    Returns what was wrong, in sentences (empty: nothing)."""
    out = []
    unavailable = summary.setdefault("unavailable", {})
    for name in FIGURES:
        value = summary.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                not math.isfinite(value) or value < 0):
            out.append(f"{name} came out as {value!r}")
            summary[name] = None
            unavailable[name] = "the container's figures contradict each other (see error)"
    latency = summary.get("latency_ms")
    if isinstance(latency, dict) and any(not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
                                         for v in latency.values()):
        out.append(f"latency_ms came out as {latency!r}")
        summary["latency_ms"] = None
        unavailable["latency_ms"] = "the container's figures contradict each other (see error)"
    for name, value in list(summary.items()):
        if not finite_everywhere(value):
            out.append(f"{name} held NaN or an infinity")
            summary[name] = None
    return out
