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
and the audio file's header say. The checks of one record are the contract's record types' own
(``EventRecord``, ``TranscriptRecord``, ``StatusRecord``.from_json in contract.py, issue 21 item 2); what needs
several records (order, duplicates, windows, the audio file) stays here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeasr_entrypoint.contract import (STREAM_EVENTS, Event, EventRecord, RecordError, StatusRecord,
                                         TranscriptRecord, finite_everywhere, shown,
                                         value_problem)  # noqa: F401 (re-exported)

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

@dataclass(frozen=True)
class Rejected:
    """A record (or part of one) that broke the contract: the condition it belongs to (None: the whole
    container, so every condition), the utterance it names (None: none), and one sentence."""

    condition: str | None
    id: str | None
    text: str


#: The contract's record types (containers/common/edgeasr_entrypoint/contract.py) under the names the merge uses.
EventRow = EventRecord
TranscriptRow = TranscriptRecord
_shown = shown


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def event_row(record: Mapping[str, Any]) -> EventRow | str:
    """One event checked on its own (fields, types, ranges): EventRecord.from_json; the row, or why not."""
    try:
        return EventRecord.from_json(record)
    except RecordError as exc:
        return str(exc)


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


@dataclass
class StreamClocks:
    """What the stream events so far said, for the checks of the next ones (stream_clock_problem): each stream's
    last chunk, (condition, stream) -> (seq, delivered_ns), and each utterance play's first partial,
    (condition, stream, id, play) -> its mono_ns."""

    chunks: dict[tuple[str | None, int], tuple[int, int]] = field(default_factory=dict)
    partials: dict[tuple[str | None, int, str | None, Any], int] = field(default_factory=dict)


def stream_clock_problem(row: EventRow, seen: StreamClocks) -> str | None:
    """Why a stream event's own clocks contradict each other or the stream's earlier events, in a phrase (None:
    they do not). A chunk is delivered, then begun, then done (``delivered_ns <= start_ns <= mono_ns``), and comes
    after its stream's previous chunk (a higher ``seq``, delivered no earlier); a final's utterance was delivered
    from its first chunk to its last before the final was emitted (``first_delivered_ns <= last_delivered_ns <=
    mono_ns``), and no partial of it came before its first chunk was delivered. Otherwise a latency, a lag or a
    time to first partial would come out below 0. ``seen`` is updated here."""
    r = row.record
    if row.event == Event.CHUNK:
        delivered, start = r["delivered_ns"], r["start_ns"]
        if not delivered <= start <= row.mono_ns:
            return (f"chunk {r['seq']} of stream {r['stream']} was delivered at {delivered} ns, begun at {start} ns "
                    f"and done at {row.mono_ns} ns: not in that order")
        key = (row.condition, r["stream"])
        if key in seen.chunks:
            seq, before = seen.chunks[key]
            if r["seq"] <= seq or delivered < before:
                return (f"chunk {r['seq']} of stream {r['stream']} (delivered at {delivered} ns) comes after chunk "
                        f"{seq} (delivered at {before} ns): a stream's chunks go forward")
        seen.chunks[key] = (r["seq"], delivered)
    elif row.event == Event.PARTIAL:
        seen.partials.setdefault((row.condition, r["stream"], row.id, r.get("play")), row.mono_ns)
    elif row.event == Event.FINAL:
        first, final_last = r["first_delivered_ns"], r["last_delivered_ns"]
        if not first <= final_last <= row.mono_ns:
            return (f"the final of utterance {row.id!r} says its audio was delivered from {first} ns to "
                    f"{final_last} ns, and it was emitted at {row.mono_ns} ns: not in that order")
        partial = seen.partials.pop((row.condition, r["stream"], row.id, r.get("play")), None)
        if partial is not None and partial < first:
            return (f"the final of utterance {row.id!r} says its audio was first delivered at {first} ns, after its "
                    f"first partial ({partial} ns): a partial cannot come before the audio it reads")
    return None


def check_events(records: Iterable[Mapping[str, Any]]) -> tuple[list[EventRow], list[Rejected]]:
    """Every event checked, in file order: the valid ones, and one Rejected per event that is not (a field
    of the wrong type or range, a monotonic clock behind an earlier event's, or a stream event whose clocks
    contradict each other (stream_clock_problem): dropped, never a negative window or latency)."""
    rows: list[EventRow] = []
    rejected: list[Rejected] = []
    last_mono = -1
    seen = StreamClocks()
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
        problem = stream_clock_problem(got, seen)
        if problem:
            rejected.append(Rejected(cond, uid, f"events.jsonl, event {n} ({got.event}): {problem}"))
            continue
        last_mono = got.mono_ns
        rows.append(got)
    return rows, rejected


def transcript_row(record: Mapping[str, Any]) -> TranscriptRow | str:
    """One result checked on its own: TranscriptRecord.from_json; the row, or why not."""
    try:
        return TranscriptRecord.from_json(record)
    except RecordError as exc:
        return str(exc)


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
    """The status record with each field that broke the contract taken out (and said), or None
    (StatusRecord.from_json)."""
    if record is None:
        return None, []
    status = StatusRecord.from_json(record)
    return status.to_json(), [Rejected(None, None, f"status.json: {p}") for p in status.problems]


def _fits(value: float, window_s: float) -> bool:
    return value <= window_s * (1 + WINDOW_SLACK_FRACTION) + WINDOW_SLACK_S


def _near(a: float, b: float) -> bool:
    return abs(a - b) <= max(DURATION_SLACK_S, DURATION_SLACK_FRACTION * max(a, b))


def _stream_windows(events: list[EventRow]) -> dict[str | None, tuple[int, int]]:
    """Each streamed condition's window on the monotonic clock: from its first stream_start to the last of its
    stream events (stream mode has no utterance windows: its utterances are heard, not called one by one)."""
    out: dict[str | None, tuple[int, int]] = {}
    for e in events:
        if e.event == Event.STREAM_START and e.condition not in out:
            out[e.condition] = (e.mono_ns, e.mono_ns)
        elif e.event in STREAM_EVENTS and e.condition in out:
            out[e.condition] = (out[e.condition][0], e.mono_ns)
    return out


def _stream_result_problem(t: TranscriptRow, window: tuple[int, int], finals: set[tuple[str | None, str]]
                           ) -> str | None:
    """Why a streamed condition's ok result contradicts its events (None: it does not): its utterance must have
    had a final, and its processing seconds (its chunks' and its final's) must fit in the condition's stream
    window."""
    if (t.condition, t.id) not in finals:
        return "a streamed result with no final event: its text was never emitted as final"
    window_s = (window[1] - window[0]) / 1e9
    for name in ("processing_s", "latency_s"):
        value = getattr(t, name)
        if value is not None and not _fits(value, window_s):
            return (f"{name} {value:g} s is longer than the condition's streams in the events ({window_s:g} s "
                    f"from the first stream_start to its last stream event)")
    return None


def cross_check(events: list[EventRow], transcripts: list[TranscriptRow]
                ) -> tuple[list[TranscriptRow], list[Rejected]]:
    """Each ok result against its utterance's events (same condition): it must have ended there (an
    ``utterance_end``), its processing and latency times must fit in the window from its ``utterance_start``
    to its ``utterance_end`` (the same monotonic clock), and its audio seconds must be the events'. In stream
    mode (the condition has a ``stream_start``), where there are no utterance windows, it must have had a
    ``final`` and its times must fit in the condition's stream window. The results that pass, and a Rejected
    for each that does not."""
    starts: dict[tuple[str | None, str], EventRow] = {}
    ends: dict[tuple[str | None, str], EventRow] = {}
    streamed = _stream_windows(events)
    finals = {(e.condition, e.id) for e in events if e.event == Event.FINAL and e.id is not None}
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
        if t.condition in streamed:
            problem = _stream_result_problem(t, streamed[t.condition], finals)
        elif start is None or end is None:
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
           "inference_s", "container_s", "peak_rss_mib", "audio_cache_mib", "peak_rss_excl_audio_mib",
           "rss_after_load_mib", "model_size_mb", "n_params", "peak_vram_torch_mib", "peak_vram_nvml_mib")


CONTRADICT = "the container's figures contradict each other (see error)"


@dataclass(frozen=True)
class Unpublishable:
    """What the last look before a summary is written found: each wrong figure in a sentence, the names of the
    fields to write as None instead, and the reason each of those gets in ``unavailable``."""

    problems: tuple[str, ...] = ()
    nulled: tuple[str, ...] = ()  # summary.json names ("del", not "deletions")
    reasons: dict[str, str] = field(default_factory=dict)


def published_problems(summary: dict[str, Any]) -> Unpublishable:
    """The last look before a summary is written (its JSON, not changed here): the figures that are not finite or
    are below 0 are to be None (with the reason in ``unavailable``), and named; NaN or an infinity anywhere else
    is to be None too. Nothing wrong: an Unpublishable with no problems."""
    out, nulled, reasons = [], [], {}
    for name in FIGURES:
        value = summary.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                not math.isfinite(value) or value < 0):
            out.append(f"{name} came out as {value!r}")
            nulled.append(name)
            reasons[name] = CONTRADICT
    latency = summary.get("latency_ms")
    if isinstance(latency, dict) and any(not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0
                                         for v in latency.values()):
        out.append(f"latency_ms came out as {latency!r}")
        nulled.append("latency_ms")
        reasons["latency_ms"] = CONTRADICT
    for name, value in summary.items():
        if name not in nulled and not finite_everywhere(value):
            out.append(f"{name} held NaN or an infinity")
            nulled.append(name)
    return Unpublishable(tuple(out), tuple(nulled), reasons)
