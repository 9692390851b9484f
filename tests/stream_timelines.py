"""Synthetic stream-mode event timelines (issue 23) for the stream metrics' and the stream report's tests: built as
the container writes them (contract.STREAM_EVENTS) and checked by the contract's own record check
(EventRecord.from_json), so a timeline the host would refuse cannot make a test pass."""

from __future__ import annotations

from edgeasr_entrypoint.contract import Event, EventRecord

MS = 1_000_000  # ns


def ev(name: str, mono_ns: int, **fields) -> EventRecord:
    return EventRecord.from_json({"event": name, "t_ns": mono_ns, "mono_ns": mono_ns, "condition": "c0", **fields})


def start(stream: int = 0, chunk_ms: int = 500, concurrency: int = 1, policy: str = "native") -> EventRecord:
    return ev(Event.STREAM_START, 0, stream=stream, chunk_ms=chunk_ms, gap_ms=500, concurrency=concurrency,
              policy=policy, batching="none: one model serves the streams' chunks in turn, in delivery order",
              offset_ns=0, first_index=0, sustain_s=60.0)


def paced(n_chunks: int, work_ms: int, chunk_ms: int = 500, stream: int = 0, offset_ms: int = 0) -> list[EventRecord]:
    """One stream's chunks fed at real-time pace to one worker that takes ``work_ms`` per chunk: chunk j is
    delivered at offset + (j + 1) * chunk_ms and started when both it and the previous chunk are done."""
    out, free = [], 0
    for j in range(n_chunks):
        delivered = (offset_ms + (j + 1) * chunk_ms) * MS
        begun = max(delivered, free)
        free = begun + work_ms * MS
        out.append(ev(Event.CHUNK, free, stream=stream, seq=j, delivered_ns=delivered, start_ns=begun,
                      audio_start_s=j * chunk_ms / 1000, audio_end_s=(j + 1) * chunk_ms / 1000))
    return out


def end(stream: int = 0, n_chunks: int = 0, audio_s: float = 0.0) -> EventRecord:
    return ev(Event.STREAM_END, 10**12, stream=stream, n_chunks=n_chunks, audio_s=audio_s, passes=1, looped=False)


def utterance(stream: int = 0, uid: str = "u1", play: int = 0) -> list[EventRecord]:
    """An utterance whose chunks were delivered at 0.5 .. 2.0 s, three partials, then its final at 2.15 s."""
    common = {"stream": stream, "id": uid, "play": play}
    return [ev(Event.PARTIAL, 800 * MS, text="hello", **common),
            ev(Event.PARTIAL, 1300 * MS, text="hello word", **common),
            ev(Event.PARTIAL, 1800 * MS, text="hello world how", **common),
            ev(Event.FINAL, 2150 * MS, text="hello world now", first_delivered_ns=500 * MS,
               last_delivered_ns=2000 * MS, **common)]
