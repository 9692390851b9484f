"""Stream mode (contract 4): a condition's utterances played as live audio at real-time pace.

Why this is a scheduler and not a loop over files: a live deployment's questions (how long after a person stops
speaking does the final text arrive; does the device keep up) are only answered when audio keeps arriving while
the model works. So each stream's audio is cut into ``chunk_ms`` chunks, and chunk j of a stream exists only at
``stream start + (j+1) * chunk`` (its last sample has been "spoken" then) on the container's monotonic clock.

- Streams: ``concurrency`` (N) streams on the one loaded model. Stream k starts ``k * chunk / N`` after the first
  (staggered, so their chunks do not all arrive at once) and plays the utterances from index ``k * n // N``
  (n utterances), wrapping, back to back with ``gap_ms`` of silence between them, at least one whole pass and
  until ``sustain_s`` seconds were delivered (whole utterances; ``passes``/``looped`` record the repeats).
- One worker serves every stream's chunks in delivery order: it sleeps until the next chunk exists when it is
  ahead, and when it is behind it works through the backlog in order. A backend slower than real time therefore
  falls behind and the lag (a chunk's ``start_ns - delivered_ns``) grows chunk by chunk, in the events, never
  hidden or skipped. Batching across streams: none (BATCHING).
- Endpointing is the oracle's: the segment map says where each utterance ends, so after the chunk that holds an
  utterance's last sample the session's ``finish()`` gives its final text (finalization latency = the final's
  ``mono_ns - last_delivered_ns``). The audio of a gap is not fed to the sessions: each utterance is decoded from
  exactly its own samples, like the offline path, so the cost of streaming is the policy's alone.
- A long recording with a segment map (issue 23 item 2: the job's ``segments`` for the item, its speech
  segments) is streamed whole: the recording keeps its own timeline, non-speech included, and ``gap_ms`` only
  separates it from the next item; each speech segment is one utterance for endpointing (a play of its own with
  ``segment`` set, fed exactly its own samples; the non-speech between is played, not fed, as a gap is), so a
  FINAL follows the chunk holding each segment's last sample and partials are per segment. The item's transcript
  is its segments' finals joined. Looping and ``passes`` count items, not segments.
- Sessions: ``model.open_stream()`` (policy ``native``: the backend's own incremental decoder) or
  commit.LocalAgreement2 over ``model.transcribe`` (``local-agreement-2``); one per stream. A session has
  ``accept(chunk) -> str | None`` (the partial text, None: nothing new), ``finish() -> str`` (the utterance's
  final text; the session is then ready for the next utterance), optionally ``committed`` (text the policy will
  not take back) and ``close()``.

The clock is injected (``monotonic_ns()`` and ``sleep(seconds)``), so that unit tests drive the pacing on a
manual clock without waiting. The events are stamped by whoever emits them (EventLog.emit: ``mono_ns`` from the
same monotonic clock, at the moment each is written, so a chunk's ``mono_ns`` is when it was done); a test's
emitter stamps them from its manual clock. STREAM_EVENTS in contract.py documents each event's fields.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .audio import AudioError
from .contract import SAMPLE_RATE, Event, StreamJob

BATCHING = "none: one model serves the streams' chunks in turn, in delivery order"
"""How the streams share the model (stream_start's ``batching``): the one worker decodes one chunk at a time."""

NS_PER_S = 1000000000


class SystemClock:
    """The container's monotonic clock, and a real sleep."""

    @staticmethod
    def monotonic_ns() -> int:
        return time.monotonic_ns()

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


def samples_ns(samples: int) -> int:
    """Nanoseconds of ``samples`` at 16 kHz, exact (62500 ns a sample)."""
    return samples * NS_PER_S // SAMPLE_RATE


@dataclass(frozen=True)
class Play:
    """One utterance played on a stream's timeline: its ``play`` is the pass through the data it belongs to. For
    an item streamed whole by its speech segments, one segment: ``audio`` is that segment's samples and
    ``segment`` its index among the item's speech segments (None: the item is one utterance)."""

    uid: str
    play: int
    audio: Any  # float32 samples
    start_sample: int  # on the stream's timeline
    segment: Optional[int] = None

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.audio)


@dataclass(frozen=True)
class Piece:
    """The samples of one play that one chunk holds (offsets within the utterance)."""

    play_index: int
    start: int
    end: int
    first: bool  # holds the utterance's first sample
    last: bool  # holds its last sample: the utterance ends in this chunk


@dataclass(frozen=True)
class Chunk:
    stream: int
    seq: int
    start_sample: int
    end_sample: int
    delivered_ns: int  # when its last sample exists, at real-time pace
    pieces: Tuple[Piece, ...]


@dataclass(frozen=True)
class StreamPlan:
    """One stream's whole timeline, fixed before it starts (so pacing is a schedule, not a guess)."""

    stream: int
    offset_ns: int
    first_index: int
    plays: Tuple[Play, ...]
    chunks: Tuple[Chunk, ...]
    total_samples: int
    passes: int
    looped: bool


Spans = Optional[Tuple[Tuple[int, int], ...]]
"""An item's speech segments as (start, end) sample indices in its audio; None: the whole item is one utterance."""


def speech_spans(segments: Optional[Sequence[Tuple[float, float]]], n_samples: int) -> Spans:
    """The job's speech segments (seconds, checked by contract.UtteranceJob) as sample spans of audio of
    ``n_samples`` samples (``round(s * 16000)``, the segment map's own rule); ValueError, one sentence, where a
    segment lies past the audio's end or is empty at 16 kHz."""
    if segments is None:
        return None
    out = []
    for i, (start_s, end_s) in enumerate(segments):
        a, b = int(round(start_s * SAMPLE_RATE)), int(round(end_s * SAMPLE_RATE))
        if b > n_samples:
            raise ValueError("speech segment {} ends at {:g} s, after the audio's end ({:g} s)".format(
                i, end_s, n_samples / float(SAMPLE_RATE)))
        if b <= a:
            raise ValueError("speech segment {} ({:g}-{:g} s) holds no sample at 16 kHz".format(i, start_s, end_s))
        out.append((a, b))
    return tuple(out)


def _item(entry: Sequence) -> Tuple[str, Any, Spans]:
    """(id, audio) or (id, audio, spans)."""
    return (entry[0], entry[1], entry[2]) if len(entry) > 2 else (entry[0], entry[1], None)


def plan_stream(stream: int, utterances: Sequence[Sequence], settings: StreamJob, t0_ns: int) -> StreamPlan:
    """Stream ``stream``'s plays and chunks with their delivery times, the streams starting at ``t0_ns``.
    ``utterances``: (id, audio) or (id, audio, spans) items, spans (speech_spans) for a recording streamed whole."""
    n, streams = len(utterances), settings.concurrency
    if n == 0:
        raise ValueError("a stream needs at least one utterance")
    first = stream * n // streams
    gap = settings.gap_ms * SAMPLE_RATE // 1000
    sustain = settings.sustain_s * SAMPLE_RATE
    plays: List[Play] = []
    pos = 0
    i = 0  # items played
    while True:
        uid, audio, spans = _item(utterances[(first + i) % n])
        if i:
            pos += gap
        if spans is None:
            plays.append(Play(uid, i // n, audio, pos))
        else:
            plays.extend(Play(uid, i // n, audio[a:b], pos + a, k) for k, (a, b) in enumerate(spans))
        pos += len(audio)
        i += 1
        if i >= n and pos >= sustain:
            break
    chunk_ms = settings.chunk_ms
    offset_ns = stream * chunk_ms * 1000000 // streams
    start_ns = t0_ns + offset_ns
    size = chunk_ms * SAMPLE_RATE // 1000
    chunks: List[Chunk] = []
    p = 0  # the first play that may overlap the chunk
    for seq, a in enumerate(range(0, pos, size)):
        b = min(a + size, pos)
        while p < len(plays) and plays[p].end_sample <= a:
            p += 1
        pieces = []
        q = p
        while q < len(plays) and plays[q].start_sample < b:
            play = plays[q]
            lo, hi = max(a, play.start_sample), min(b, play.end_sample)
            if lo < hi:
                pieces.append(Piece(q, lo - play.start_sample, hi - play.start_sample,
                                    lo == play.start_sample, hi == play.end_sample))
            q += 1
        chunks.append(Chunk(stream, seq, a, b, start_ns + samples_ns(b), tuple(pieces)))
    passes = -(-i // n)
    return StreamPlan(stream, offset_ns, first, tuple(plays), tuple(chunks), pos, passes, i > n)


@dataclass
class PlayResult:
    """What became of one play: its final text (or error) and the seconds the model spent on it."""

    uid: str
    play: int
    duration_s: float
    segment: Optional[int] = None  # Play.segment
    text: Optional[str] = None
    error: Optional[str] = None
    processing_ns: int = 0
    first_delivered_ns: Optional[int] = None
    shown: Tuple[str, Optional[str]] = ("", None)  # the last partial emitted (text, committed)


def _committed(session) -> Optional[str]:
    value = getattr(session, "committed", None)
    return value if isinstance(value, str) else None


def run_streams(utterances: Sequence[Sequence], settings: StreamJob, open_session: Callable[[], Any],
                emit: Callable[..., Any], condition: Optional[str], clock=None) -> List[List[PlayResult]]:
    """Play ``utterances`` ((id, audio) in job order; (id, audio, spans) for a recording streamed whole by its
    speech segments, spans from speech_spans) on ``settings.concurrency`` paced streams and decode them
    with one session per stream; every event through ``emit(name, **fields)``, which stamps its clocks (the
    ``*_ns`` fields given here are ``clock``'s: the same clock as the emitter's).

    Returns each stream's play results, in play order. A session that raises fails that play only (an
    utterance_error event; the stream's session is replaced by a fresh one) and the stream goes on.
    """
    sessions = [open_session() for _ in range(settings.concurrency)]
    try:
        return _run(utterances, settings, sessions, open_session, emit, condition, clock or SYSTEM_CLOCK)
    finally:
        for session in sessions:
            closer = getattr(session, "close", None)
            if closer is not None:
                try:
                    closer()
                except Exception:  # a session that cannot close must not hide the results
                    pass


def _run(utterances, settings: StreamJob, sessions: list, open_session, emit, condition, clock) -> list:
    t0 = clock.monotonic_ns()
    plans = [plan_stream(k, utterances, settings, t0) for k in range(settings.concurrency)]
    results = [[PlayResult(p.uid, p.play, len(p.audio) / float(SAMPLE_RATE), p.segment) for p in plan.plays]
               for plan in plans]
    for plan in plans:
        emit(Event.STREAM_START, condition=condition, stream=plan.stream,
             chunk_ms=settings.chunk_ms, gap_ms=settings.gap_ms, concurrency=settings.concurrency,
             policy=settings.policy, batching=BATCHING, offset_ns=plan.offset_ns, first_index=plan.first_index,
             sustain_s=settings.sustain_s)
    queue = sorted((c for plan in plans for c in plan.chunks), key=lambda c: (c.delivered_ns, c.stream))
    for chunk in queue:
        now = clock.monotonic_ns()
        while now < chunk.delivered_ns:  # ahead of the audio: wait until the chunk exists
            clock.sleep((chunk.delivered_ns - now) / float(NS_PER_S))
            now = clock.monotonic_ns()
        start_ns = now  # behind: the backlog is worked through in order, and the lag shows here
        k = chunk.stream
        plan = plans[k]
        for piece in chunk.pieces:
            play, res = plan.plays[piece.play_index], results[k][piece.play_index]
            if piece.first:
                res.first_delivered_ns = chunk.delivered_ns
            if res.error is not None:
                continue
            began = clock.monotonic_ns()
            try:
                text = sessions[k].accept(play.audio[piece.start:piece.end])
                span = {"audio_start_s": play.start_sample / float(SAMPLE_RATE),
                        "audio_end_s": (play.start_sample + piece.end) / float(SAMPLE_RATE)}
                committed = _committed(sessions[k])
                seg = {"segment": play.segment} if play.segment is not None else {}
                if text is not None and (text, committed) != res.shown and (text or res.shown[0]):
                    res.shown = (text, committed)
                    extra = {"committed": committed} if committed is not None else {}
                    emit(Event.PARTIAL, condition=condition, stream=k, id=play.uid,
                         play=play.play, text=text, **span, **extra, **seg)
                if piece.last:
                    res.text = sessions[k].finish()
                    emit(Event.FINAL, condition=condition, stream=k, id=play.uid,
                         play=play.play, text=res.text, audio_start_s=span["audio_start_s"],
                         audio_end_s=span["audio_end_s"], first_delivered_ns=res.first_delivered_ns,
                         last_delivered_ns=chunk.delivered_ns, **seg)
            except Exception as exc:  # one utterance fails; the stream goes on with a fresh session
                res.error = "{}: {}".format(type(exc).__name__, exc)
                emit(Event.UTTERANCE_ERROR, condition=condition, stream=k,
                     id=play.uid, play=play.play, error=res.error)
                old, sessions[k] = sessions[k], open_session()
                closer = getattr(old, "close", None)
                if closer is not None:
                    try:
                        closer()
                    except Exception:
                        pass
            res.processing_ns += clock.monotonic_ns() - began
        held = {}  # type: Dict[str, Any]
        if chunk.pieces:
            first = plan.plays[chunk.pieces[0].play_index]
            held = {"id": first.uid, "play": first.play}
        emit(Event.CHUNK, condition=condition, stream=k, seq=chunk.seq,
             audio_start_s=chunk.start_sample / float(SAMPLE_RATE), audio_end_s=chunk.end_sample / float(SAMPLE_RATE),
             delivered_ns=chunk.delivered_ns, start_ns=start_ns, **held)
        if chunk.seq == len(plan.chunks) - 1:
            emit(Event.STREAM_END, condition=condition, stream=k,
                 n_chunks=len(plan.chunks), audio_s=plan.total_samples / float(SAMPLE_RATE), passes=plan.passes,
                 looped=plan.looped)
    return results


NATIVE_MISSING = ("stream policy native needs the backend's own incremental decoder (its adapter's open_stream), "
                  "which this backend does not have; use the local-agreement-2 policy")


def session_factory(model, policy: str) -> Tuple[Optional[Callable[[], Any]], Optional[str]]:
    """How to open one stream's session for ``policy``, or why this model cannot."""
    if policy == "native":
        opener = getattr(model, "open_stream", None)
        if opener is None:
            return None, NATIVE_MISSING
        return opener, None
    from .commit import LocalAgreement2

    return (lambda: LocalAgreement2(model.transcribe)), None


def run_stream_condition(settings: StreamJob, key: Optional[str], model, utterances: Sequence, events,
                         transcripts, prepare: Callable[[Any], Any], record_error: Callable[..., None],
                         refused: Optional[str] = None, ledger=None, held: Callable[[], float] = lambda: 0.0,
                         clock=None) -> Tuple[int, int]:
    """One condition in stream mode: prepare each utterance's audio (decode, noise) inside prepare_start/end, play
    them on the paced streams, then write one transcript per utterance from stream 0's first play (with the
    whole-utterance ``offline_hypothesis`` when ``settings.offline``, decoded untimed after the streams, inside a
    prepare window so the host leaves its energy out). Returns (n_ok, n_failed) over the condition's utterances.

    ``prepare(utt)`` is the offline path's own decoding and noise mixing; ``record_error(uid, key, message)``
    writes an utterance's error event and record.
    """
    from .noise import NoiseError

    opener, why = session_factory(model, settings.policy)
    why = refused or why
    if why is not None:
        for utt in utterances:
            record_error(utt.id, key, why)
        return 0, len(utterances)
    n_failed = 0
    prepared = []
    events.emit(Event.PREPARE_START, condition=key)
    for utt in utterances:
        try:
            audio = prepare(utt)
            try:
                spans = speech_spans(getattr(utt, "segments", None), len(audio))
            except ValueError as exc:
                raise AudioError("its segment map: {}".format(exc))
            prepared.append((utt.id, audio, spans))
        except (AudioError, NoiseError) as exc:
            n_failed += 1
            record_error(utt.id, key, str(exc))
    events.emit(Event.PREPARE_END, condition=key)
    if not prepared:
        return 0, n_failed
    if ledger is not None:
        ledger.close(held(), backend=False)
    try:
        results = run_streams(prepared, settings, opener, events.emit, key, clock or SYSTEM_CLOCK)
    except Exception as exc:  # the sessions could not be opened: every utterance of the condition fails
        message = "{}: {}".format(type(exc).__name__, exc)
        for item in prepared:
            record_error(item[0], key, message)
        return 0, n_failed + len(prepared)
    if ledger is not None:
        ledger.close(held())
    offline: Dict[str, Optional[str]] = {}
    if settings.offline:
        events.emit(Event.PREPARE_START, condition=key, reason="offline hypotheses (whole utterances, untimed)")
        for uid, audio, _ in prepared:
            try:
                offline[uid] = model.transcribe(audio)
            except Exception:  # the stream's own result stands; the offline text is only beside it
                offline[uid] = None
        events.emit(Event.PREPARE_END, condition=key)
        if ledger is not None:
            ledger.close(held())  # the backend's calls, beside the same audio
    n_ok = 0
    firsts = {}  # type: Dict[str, List[PlayResult]]
    for r in results[0]:  # an item's plays of its first pass: one, or one per speech segment
        if r.play == 0:
            firsts.setdefault(r.uid, []).append(r)
    for uid, audio, _ in prepared:
        parts = firsts[uid]
        processing_s = sum(r.processing_ns for r in parts) / float(NS_PER_S)
        duration_s = len(audio) / float(SAMPLE_RATE)
        failed = next((r for r in parts if r.error is not None or r.text is None), None)
        if failed is not None:
            n_failed += 1
            where = "" if failed.segment is None else "speech segment {}: ".format(failed.segment)
            transcripts.write({"id": uid, "condition": key, "status": "error",
                               "error": where + (failed.error or "the stream ended before the utterance's final text"),
                               "hypothesis": None, "duration_s": duration_s, "processing_s": processing_s})
            continue
        n_ok += 1
        text = " ".join(t for t in (r.text for r in parts) if t)  # an item streamed whole: its segments' finals
        record = {"id": uid, "condition": key, "status": "ok", "error": None, "hypothesis": text,
                  "duration_s": duration_s, "processing_s": processing_s}  # type: Dict[str, Any]
        if settings.offline:
            record["offline_hypothesis"] = offline.get(uid)
        transcripts.write(record)
    return n_ok, n_failed
