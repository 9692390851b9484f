"""Stream mode's figures (issue 23) from one condition's stream events: how soon the final words arrive, how
soon the first partial appears, whether the backend keeps up with live audio, and how often what it showed
was later taken back.

``stream_metrics(events, condition)`` -> ``StreamMetrics | None`` (None: the condition streamed nothing);
``StreamMetrics.to_json()`` is the summary's ``stream`` block. Pure: the events are the container's own
(contract.STREAM_EVENTS documents every field), every ``*_ns`` is its monotonic clock, nothing is measured
again here. Definitions (README "Live audio" says the same, beside each published anchor):

- finalization latency, per utterance play: ``final.mono_ns - final.last_delivered_ns``: from the moment the
  utterance's last chunk was delivered (its last sample existed, at real-time pace) to the moment its final
  text was emitted (Moonshine's "end of phrase to final transcript", with oracle endpointing: the segment map
  says where the utterance ends, so no VAD delay is in it).
- time to first partial: the first partial of the same (stream, id, play, segment: a long recording streamed
  whole has one utterance per speech segment) before its final, ``partial.mono_ns
  - final.first_delivered_ns``; an utterance play with no partial before its final has none, and is counted
  (``n_without_partial``), never given a 0.
- chunk latency: ``chunk.mono_ns - chunk.delivered_ns`` (Riva's latency of a response: received - sent).
- lag behind real time: ``chunk.start_ns - chunk.delivered_ns``: how long a delivered chunk waited for the
  model. The *window* is the span in which every stream was delivering (the last stream's first delivery to
  the first stream's last delivery; the whole span where that is empty). The lag at a moment t is the largest,
  over the streams, of the lag of each stream's last chunk delivered at or before t. ``bounded``: the lag at the
  window's end exceeds the lag at its middle by at most two chunks (``chunk_ms``): a backend that cannot keep up
  falls further behind with every chunk, and that shows as growth, whatever its absolute size.
- partial stability (``changed_share``): of every word shown in a partial (each partial's words counted once
  per partial, split on whitespace as shown), the share that was later changed. The words of a partial that
  stayed are its longest prefix found unchanged, word for word, at the start of *every* later text of the
  same utterance play (each later partial and the final); the rest of its words were changed (replaced or
  withdrawn). Computed backwards in one pass: ``stable[k] = lcp(P[k], final)``, ``stable[i] =
  min(lcp(P[i], P[i+1]), stable[i+1])``. 0 is a display that never took a word back; LocalAgreement-2's
  ``committed`` words are never changed by construction, its uncommitted tail is what this measures.
- percentiles: numpy's linear interpolation, with their ``n``; fewer than 100 values are few for a p99 (the
  table says n), one value has no spread.

Energy per audio second and average power per stream come from the condition's energy block
(runner/telemetry/energy/accounting.py: the inference work of the condition's window) over the audio every
stream delivered (``stream_energy``); unavailable with its reason, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from edgeasr_entrypoint.commit import agreed_prefix
from edgeasr_entrypoint.contract import STREAM_EVENTS, Event, EventRecord

#: Lag growth (end - middle) allowed for a bounded lag, in chunks (issue 23, item 6).
BOUNDED_CHUNKS = 2
#: Percentiles over fewer values than this say their n: p99 of 20 values is next to their largest.
SMALL_N = 100
#: The lag series kept for figures: at most this many points per stream (each the largest lag of its bucket, so
#: a peak is never averaged away) and this many streams (the worker serves them in turn: their lags agree).
SERIES_POINTS = 200
SERIES_STREAMS = 8
#: Finalization latencies kept for the distribution figure (every utterance play's, rounded to 0.01 ms).
MAX_VALUES = 5000

STABILITY_DEFINITION = ("share of the words shown in partials (each partial's words, split on whitespace) that "
                        "are not in the longest prefix it shares with every later partial and the final")


@dataclass(frozen=True)
class Percentiles:
    """p50/p90/p99 and the largest of ``n`` values (linear interpolation); all None when n is 0."""

    n: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        if not values:
            return cls(0)
        arr = np.asarray(values, dtype=float)
        p50, p90, p99 = (float(v) for v in np.percentile(arr, [50, 90, 99]))
        return cls(len(values), p50, p90, p99, float(arr.max()))

    @property
    def small_n(self) -> bool:
        return 0 < self.n < SMALL_N

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "p50": self.p50, "p90": self.p90, "p99": self.p99, "max": self.max}


@dataclass(frozen=True)
class Lag:
    """How far the model was behind real time (seconds a delivered chunk waited before the model began on it)."""

    max_s: float
    end_s: float  # at the end of the window (see the module's docstring)
    middle_s: float  # at its middle
    bound_s: float  # growth allowed from middle to end: BOUNDED_CHUNKS chunks
    window_s: tuple[float, float]  # the window, seconds from the condition's first delivery

    @property
    def growth_s(self) -> float:
        return self.end_s - self.middle_s

    @property
    def bounded(self) -> bool:
        return self.growth_s <= self.bound_s

    def to_json(self) -> dict[str, Any]:
        return {"max": self.max_s, "end": self.end_s, "middle": self.middle_s, "growth": self.growth_s,
                "bound": self.bound_s, "bounded": self.bounded, "window": list(self.window_s)}


@dataclass(frozen=True)
class Stability:
    """Partial stability: words shown in partials, and those of them later changed (see STABILITY_DEFINITION)."""

    n_partials: int
    words_shown: int
    words_changed: int

    @property
    def changed_share(self) -> float | None:
        return self.words_changed / self.words_shown if self.words_shown else None

    def to_json(self) -> dict[str, Any]:
        return {"changed_share": self.changed_share, "n_partials": self.n_partials,
                "words_shown": self.words_shown, "words_changed": self.words_changed,
                "definition": STABILITY_DEFINITION}


@dataclass(frozen=True)
class LagSeries:
    """One stream's lag over time, for the lag-over-time figure: seconds from the condition's first delivery
    (of the chunk's delivery) and the lag then, downsampled to SERIES_POINTS by the largest lag of each bucket."""

    stream: int
    t_s: tuple[float, ...]
    lag_s: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "t_s": [round(t, 3) for t in self.t_s],
                "lag_s": [round(v, 4) for v in self.lag_s]}


@dataclass(frozen=True)
class StreamMetrics:
    """One condition's stream figures; ``to_json()`` is the summary's ``stream`` block. Durations are in the unit
    their field names (the JSON's blocks: ``finalization_ms``, ``first_partial_ms``, ``chunk_latency_ms``,
    ``lag_s``); a figure that could not be had is None with its reason in ``unavailable``."""

    policy: str | None
    chunk_ms: int | None
    gap_ms: int | None
    concurrency: int | None
    batching: str | None
    sustain_s: float | None  # the audio each stream was to deliver at least (it plays whole utterances)
    n_streams: int
    audio_s: float  # seconds of audio delivered, all streams together
    passes: int | None  # the most times a stream played the data
    looped: bool | None
    n_chunks: int
    finalization_ms: Percentiles
    first_partial_ms: Percentiles
    n_without_partial: int  # utterance plays whose final came with no partial before it
    chunk_latency_ms: Percentiles
    lag: Lag | None
    stability: Stability
    n_finals: int
    finalization_values_ms: tuple[float, ...] = ()
    lag_series: tuple[LagSeries, ...] = ()
    unavailable: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "chunk_ms": self.chunk_ms, "gap_ms": self.gap_ms,
            "concurrency": self.concurrency, "n_streams": self.n_streams, "batching": self.batching,
            "sustain_s": self.sustain_s,
            "audio_s": self.audio_s, "passes": self.passes, "looped": self.looped, "n_chunks": self.n_chunks,
            "n_finals": self.n_finals,
            "finalization_ms": self.finalization_ms.to_json(),
            "first_partial_ms": {**self.first_partial_ms.to_json(), "n_without_partial": self.n_without_partial},
            "chunk_latency_ms": self.chunk_latency_ms.to_json(),
            "lag_s": self.lag.to_json() if self.lag is not None else None,
            "partial_stability": self.stability.to_json(),
            "finalization_values_ms": [round(v, 2) for v in self.finalization_values_ms],
            "lag_series": [s.to_json() for s in self.lag_series],
            "unavailable": dict(self.unavailable),
        }


# -- the computation ---------------------------------------------------------------------------------------


def _record(event: EventRecord | Mapping[str, Any]) -> Mapping[str, Any]:
    return event.record if isinstance(event, EventRecord) else event


def _words(text: Any) -> list[str]:
    return text.split() if isinstance(text, str) else []


def changed_words(partials: Sequence[str], final: str) -> tuple[int, int]:
    """(words shown, words later changed) over one utterance play's partials in order and its final text."""
    texts = [_words(p) for p in partials]
    stable = agreed_prefix(texts[-1], _words(final)) if texts else 0
    shown = changed = 0
    for i in range(len(texts) - 1, -1, -1):
        if i < len(texts) - 1:
            stable = min(agreed_prefix(texts[i], texts[i + 1]), stable)
        shown += len(texts[i])
        changed += len(texts[i]) - min(stable, len(texts[i]))
    return shown, changed


def lag_at(chunks: Mapping[int, Sequence[tuple[int, float]]], t_ns: int) -> float:
    """The largest, over the streams, of the lag of each one's last chunk delivered at or before ``t_ns``
    (``chunks``: stream -> (delivered_ns, lag_s) in delivery order); 0 before any chunk was delivered."""
    out = 0.0
    for rows in chunks.values():
        before = [lag for delivered, lag in rows if delivered <= t_ns]
        if before:
            out = max(out, before[-1])
    return out


def _window(chunks: Mapping[int, Sequence[tuple[int, float]]]) -> tuple[int, int]:
    """Where every stream was delivering: the last stream's first delivery to the first stream's last one; the
    whole span where that is empty (one stream ended before another began)."""
    firsts = [rows[0][0] for rows in chunks.values()]
    lasts = [rows[-1][0] for rows in chunks.values()]
    start, end = max(firsts), min(lasts)
    return (start, end) if end > start else (min(firsts), max(lasts))


def _series(stream: int, rows: Sequence[tuple[int, float]], t0_ns: int) -> LagSeries:
    """Downsampled to SERIES_POINTS: each bucket of consecutive chunks as its largest lag, at that chunk's time."""
    if len(rows) <= SERIES_POINTS:
        picked = list(rows)
    else:
        edges = np.linspace(0, len(rows), SERIES_POINTS + 1).astype(int)
        picked = [max(rows[a:b], key=lambda r: r[1]) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    return LagSeries(stream, tuple((d - t0_ns) / 1e9 for d, _ in picked), tuple(lag for _, lag in picked))


def stream_metrics(events: Sequence[EventRecord | Mapping[str, Any]], condition: str | None) -> StreamMetrics | None:
    """The stream figures of one condition (``condition`` None: every stream event, a run of one condition);
    None when it has no stream events (an offline condition)."""
    rows = [_record(e) for e in events]
    rows = [r for r in rows
            if r.get("event") in STREAM_EVENTS and (condition is None or r.get("condition") == condition)]
    if not rows:
        return None
    unavailable: dict[str, str] = {}
    starts = {r.get("stream"): r for r in rows if r["event"] == Event.STREAM_START}
    ends = {r.get("stream"): r for r in rows if r["event"] == Event.STREAM_END}
    first = next(iter(starts.values()), {})
    chunk_ms = first.get("chunk_ms")

    chunks: dict[int, list[tuple[int, float]]] = {}
    chunk_latency: list[float] = []
    for r in rows:
        if r["event"] == Event.CHUNK:
            chunks.setdefault(r["stream"], []).append((r["delivered_ns"], (r["start_ns"] - r["delivered_ns"]) / 1e9))
            chunk_latency.append((r["mono_ns"] - r["delivered_ns"]) / 1e6)
    for stream_rows in chunks.values():
        stream_rows.sort()

    partials: dict[tuple, list[Mapping[str, Any]]] = {}
    finals: list[Mapping[str, Any]] = []
    for r in rows:
        key = (r.get("stream"), r.get("id"), r.get("play", 0), r.get("segment"))
        if r["event"] == Event.PARTIAL:
            partials.setdefault(key, []).append(r)
        elif r["event"] == Event.FINAL:
            finals.append(r)
    finalization, first_partial, without = [], [], 0
    shown = changed = n_partials = 0
    for f in finals:
        key = (f.get("stream"), f.get("id"), f.get("play", 0), f.get("segment"))
        finalization.append((f["mono_ns"] - f["last_delivered_ns"]) / 1e6)
        before = [p for p in partials.pop(key, []) if p["mono_ns"] <= f["mono_ns"]]
        if before:
            first_partial.append((before[0]["mono_ns"] - f["first_delivered_ns"]) / 1e6)
            s, c = changed_words([p.get("text") or "" for p in before], f.get("text") or "")
            shown, changed, n_partials = shown + s, changed + c, n_partials + len(before)
        else:
            without += 1

    if not finals:
        unavailable["finalization_ms"] = "no utterance reached its final text"
    if not first_partial:
        unavailable["first_partial_ms"] = ("no utterance had a partial before its final" if finals
                                          else "no utterance reached its final text")
    if not shown:
        unavailable["partial_stability"] = ("no partial showed a word before its utterance's final" if finals
                                            else "no utterance reached its final text")
    if not chunk_latency:
        unavailable["chunk_latency_ms"] = unavailable["lag_s"] = "no chunk was processed"
    lag = None
    t0 = min((rows_[0][0] for rows_ in chunks.values()), default=0)
    if chunks:
        w0, w1 = _window(chunks)
        if not isinstance(chunk_ms, int):
            unavailable["lag_s"] = "the streams did not record their chunk size (stream_start)"
        else:
            lag = Lag(max_s=max(v for rows_ in chunks.values() for _, v in rows_), end_s=lag_at(chunks, w1),
                      middle_s=lag_at(chunks, w0 + (w1 - w0) // 2), bound_s=BOUNDED_CHUNKS * chunk_ms / 1000,
                      window_s=((w0 - t0) / 1e9, (w1 - t0) / 1e9))
    audio = [e.get("audio_s") for e in ends.values() if isinstance(e.get("audio_s"), (int, float))]
    if len(ends) < len(starts):
        unavailable["audio_s"] = (f"{len(starts) - len(ends)} of {len(starts)} streams did not end "
                                  "(the container stopped): their audio is not counted")
    passes = [e.get("passes") for e in ends.values() if isinstance(e.get("passes"), int)]
    return StreamMetrics(
        policy=first.get("policy"), chunk_ms=chunk_ms, gap_ms=first.get("gap_ms"),
        concurrency=first.get("concurrency"), batching=first.get("batching"),
        sustain_s=float(first["sustain_s"]) if isinstance(first.get("sustain_s"), (int, float))
        and not isinstance(first.get("sustain_s"), bool) else None,
        n_streams=len(starts or chunks), audio_s=float(sum(audio)), passes=max(passes) if passes else None,
        looped=any(bool(e.get("looped")) for e in ends.values()) if ends else None,
        n_chunks=len(chunk_latency), finalization_ms=Percentiles.of(finalization),
        first_partial_ms=Percentiles.of(first_partial), n_without_partial=without,
        chunk_latency_ms=Percentiles.of(chunk_latency), lag=lag,
        stability=Stability(n_partials, shown, changed), n_finals=len(finals),
        finalization_values_ms=tuple(finalization[:MAX_VALUES]),
        lag_series=tuple(_series(k, chunks[k], t0) for k in sorted(chunks)[:SERIES_STREAMS]),
        unavailable=unavailable)


# -- energy per audio second and power per stream ------------------------------------------------------------


@dataclass(frozen=True)
class StreamEnergy:
    """The condition's inference energy over the audio its streams delivered, and its average power shared over
    the streams; a figure that could not be had is None with its reason in ``unavailable`` (never 0)."""

    j_per_audio_s: float | None
    dynamic_j_per_audio_s: float | None
    w_per_stream: float | None
    dynamic_w_per_stream: float | None
    scope: str | None
    unavailable: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"j_per_audio_s": self.j_per_audio_s, "dynamic_j_per_audio_s": self.dynamic_j_per_audio_s,
                "w_per_stream": self.w_per_stream, "dynamic_w_per_stream": self.dynamic_w_per_stream,
                "scope": self.scope, "unavailable": dict(self.unavailable)}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def stream_energy(energy: Mapping[str, Any] | None, audio_s: float | None, n_streams: int) -> StreamEnergy:
    """From the summary's energy block (``EnergyBlock.to_json()``: ``total_j``, ``dynamic_j`` and ``avg_w`` of the
    condition's inference work, ``baseline_w``) and the stream block's delivered ``audio_s`` and ``n_streams``:
    J per audio second = total_j / audio_s; W per stream = avg_w / n_streams (dynamic: less the idle baseline)."""
    why: dict[str, str] = {}
    if not isinstance(energy, Mapping):
        reason = "no energy block (no sampler ran)"
        return StreamEnergy(None, None, None, None, None, dict.fromkeys(
            ("j_per_audio_s", "dynamic_j_per_audio_s", "w_per_stream", "dynamic_w_per_stream"), reason))
    told = energy.get("unavailable") if isinstance(energy.get("unavailable"), Mapping) else {}
    total, dynamic, avg, base = (_num(energy.get(k)) for k in ("total_j", "dynamic_j", "avg_w", "baseline_w"))
    j = dj = w = dw = None
    if not audio_s:
        why["j_per_audio_s"] = why["dynamic_j_per_audio_s"] = "no audio was delivered"
    else:
        if total is None:
            why["j_per_audio_s"] = told.get("total_j") or "the inference energy was not measured"
        else:
            j = total / audio_s
        if dynamic is None:
            why["dynamic_j_per_audio_s"] = told.get("dynamic_j") or "no idle baseline"
        else:
            dj = dynamic / audio_s
    if n_streams <= 0:
        why["w_per_stream"] = why["dynamic_w_per_stream"] = "no stream ran"
    else:
        if avg is None:
            why["w_per_stream"] = told.get("avg_w") or "the average power was not measured"
        else:
            w = avg / n_streams
        if avg is None or base is None:
            why["dynamic_w_per_stream"] = (told.get("baseline_w") or "no idle baseline") if avg is not None else \
                why["w_per_stream"]
        else:
            dw = (avg - base) / n_streams
    return StreamEnergy(j, dj, w, dw, energy.get("scope"), why)


def metrics_energy(energy: Mapping[str, Any] | None, metrics: StreamMetrics) -> StreamEnergy:
    """``stream_energy`` for a condition's metrics."""
    return stream_energy(energy, metrics.audio_s, metrics.n_streams)


def stream_block(metrics: StreamMetrics, energy: Mapping[str, Any] | None) -> dict[str, Any]:
    """The summary's ``stream`` block with its ``energy`` (what merge stores: ``summary["stream"]``)."""
    return {**metrics.to_json(), "energy": metrics_energy(energy, metrics).to_json()}
