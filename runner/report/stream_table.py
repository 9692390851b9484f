"""The run view's live-audio table: a stream-mode run's latency figures (the summary's ``stream`` block,
runner/scoring/stream_metrics.py), printed under the run's table; nothing at all for an offline run.

Every figure says its n where it is a percentile over few values, and an unavailable one says why, never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from ..scoring.stream_metrics import SMALL_N, stream_energy
from ..trust.untrusted import line, markdown
from ..wording import plural


def stream_block(s: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The summary's stream block, or None (an offline run)."""
    block = s.get("stream")
    return block if isinstance(block, Mapping) else None


def _why(block: Mapping[str, Any], name: str, default: str = "not recorded") -> str:
    reasons = block.get("unavailable") if isinstance(block.get("unavailable"), Mapping) else {}
    return f"unavailable: {reasons.get(name) or default}"


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def percentiles_text(p: Any, keys: tuple[str, ...] = ("p50", "p90", "p99")) -> str | None:
    """"120 / 180 / 240 ms (n = 20)", or None where there are no values."""
    if not isinstance(p, Mapping) or not p.get("n") or not all(_num(p.get(k)) for k in keys):
        return None
    n = p["n"]
    return " / ".join(f"{p[k]:.0f}" for k in keys) + " ms" + (f" (n = {n})" if n < SMALL_N else "")


def lag_text(lag: Any) -> str | None:
    """"max 0.02 s, end 0.01 s: bounded (end - middle 0.00 s <= 2 chunks, 1.00 s)"."""
    if not isinstance(lag, Mapping) or not all(_num(lag.get(k)) for k in ("max", "end", "middle", "bound")):
        return None
    growth = lag["end"] - lag["middle"]
    verdict = (f"bounded (end - middle {growth:.2f} s <= {lag['bound']:.2f} s)" if lag.get("bounded") else
               f"GROWING (end - middle {growth:.2f} s > {lag['bound']:.2f} s): the backend does not keep up")
    return f"max {lag['max']:.2f} s, end {lag['end']:.2f} s: {verdict}"


def offline_wer(s: Mapping[str, Any]) -> tuple[float | None, float | None, str | None]:
    """(the streamed final texts' WER, the offline WER of the same utterances, why not): the merge's ``offline``
    block (runner/merge.offline_block: ``stream_wer`` and ``wer`` over exactly the utterances both have), else
    the stream block's ``wer_offline`` beside the summary's WER."""
    block = s.get("offline")
    if isinstance(block, Mapping) and _num(block.get("wer")):
        live = block.get("stream_wer") if _num(block.get("stream_wer")) else s.get("wer")
        return (live if _num(live) else None), block["wer"], None
    stream = stream_block(s) or {}
    if _num(stream.get("wer_offline")):
        return (s["wer"] if _num(s.get("wer")) else None), stream["wer_offline"], None
    reasons = s.get("unavailable") if isinstance(s.get("unavailable"), Mapping) else {}
    inner = stream.get("unavailable") if isinstance(stream.get("unavailable"), Mapping) else {}
    return ((s["wer"] if _num(s.get("wer")) else None), None,
            reasons.get("offline") or inner.get("wer_offline") or "no offline pass (job.stream.offline)")


def wer_text(s: Mapping[str, Any]) -> str:
    """The final texts' WER beside the same utterances' offline WER: the cost of streaming, in points."""
    live, offline, why = offline_wer(s)
    stream_part = f"{live:.2%}" if live is not None else "unavailable"
    if offline is None:
        return f"{stream_part} / unavailable: {why}"
    delta = f"  ({(live - offline) * 100:+.2f} points)" if live is not None else ""
    return f"{stream_part} / {offline:.2%}{delta}"


def energy_of(s: Mapping[str, Any], block: Mapping[str, Any]) -> Mapping[str, Any]:
    """The block's energy figures (merge stores them); else computed here from the summary's energy block."""
    stored = block.get("energy")
    if isinstance(stored, Mapping):
        return stored
    audio = block.get("audio_s") if _num(block.get("audio_s")) else None
    n = block.get("n_streams") if isinstance(block.get("n_streams"), int) else 0
    return stream_energy(s.get("energy") if isinstance(s.get("energy"), Mapping) else None, audio, n).to_json()


def stream_rows(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) lines of the live-audio table; [] for an offline run."""
    block = stream_block(s)
    if block is None:
        return []
    n_streams = block.get("n_streams") or 0
    batching = block.get("batching")
    rows = [("streams", f"{plural(n_streams, 'stream')} (concurrency {block.get('concurrency')}), policy "
                        f"{block.get('policy')}, chunk {block.get('chunk_ms')} ms, gap {block.get('gap_ms')} ms"
             + (f"; batching: {batching}" if batching else "")),
            ("audio delivered", (f"{block['audio_s']:.1f} s" if _num(block.get("audio_s")) else "unavailable")
             + (f" ({plural(block['passes'], 'pass', 'passes')} through the data"
                + (", looped to fill sustain_s" if block.get("looped") else "") + ")"
                if isinstance(block.get("passes"), int) else ""))]
    fin = block.get("finalization_ms") or {}
    fin_text = percentiles_text(fin)
    rows.append(("finalization p50/p90/p99", (fin_text + (f", max {fin['max']:.0f} ms" if _num(fin.get("max"))
                                                          else "")) if fin_text else _why(block, "finalization_ms")))
    first = block.get("first_partial_ms") or {}
    first_text = percentiles_text(first)
    missing = first.get("n_without_partial") if isinstance(first, Mapping) else None
    rows.append(("first partial p50/p90/p99", (first_text or _why(block, "first_partial_ms"))
                 + (f"; {plural(missing, 'utterance')} without a partial before its final" if missing else "")))
    rows.append(("chunk latency p50/p90/p99", percentiles_text(block.get("chunk_latency_ms"))
                 or _why(block, "chunk_latency_ms")))
    rows.append(("lag behind real time", lag_text(block.get("lag_s")) or _why(block, "lag_s")))
    stab = block.get("partial_stability") or {}
    share = stab.get("changed_share") if isinstance(stab, Mapping) else None
    rows.append(("partial stability", f"{share:.1%} of {stab.get('words_shown')} words shown in "
                                      f"{plural(stab.get('n_partials') or 0, 'partial')} later changed"
                 if _num(share) else _why(block, "partial_stability")))
    rows.append(("WER stream / offline", wer_text(s)))
    energy = energy_of(s, block)
    reasons = energy.get("unavailable") if isinstance(energy.get("unavailable"), Mapping) else {}
    scope = f"  · {energy['scope']}" if energy.get("scope") else ""
    for key, label, unit, digits in (("j_per_audio_s", "energy / audio s", "J/s", 3),
                                     ("w_per_stream", "power per stream", "W", 2)):
        value = energy.get(key)
        rows.append((label, f"{value:.{digits}f} {unit}{scope}" if _num(value) else
                     f"unavailable: {reasons.get(key) or 'not measured'}"))
    return rows


def stream_table(s: Mapping[str, Any]) -> Table | None:
    """The live-audio table for the terminal, or None for an offline run."""
    rows = stream_rows(s)
    if not rows:
        return None
    t = Table(title=line("live audio (stream mode)"), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for name, value in rows:
        t.add_row(line(name), line(value))
    return t


def stream_markdown(s: Mapping[str, Any]) -> str:
    """The live-audio table in Markdown; "" for an offline run."""
    rows = stream_rows(s)
    if not rows:
        return ""
    return "\n".join(["", "**live audio (stream mode)**", "", "| | |", "|---|---|",
                      *(f"| {markdown(n)} | {markdown(v)} |" for n, v in rows)]) + "\n"


#: The run view's CSV columns for a stream run, after the offline ones: (header, path in the stream block).
CSV_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("stream_n_streams", ("n_streams",)), ("stream_chunk_ms", ("chunk_ms",)), ("stream_policy", ("policy",)),
    ("stream_audio_s", ("audio_s",)),
    *((f"finalization_{k}_ms", ("finalization_ms", k)) for k in ("p50", "p90", "p99", "max")),
    ("finalization_n", ("finalization_ms", "n")),
    *((f"first_partial_{k}_ms", ("first_partial_ms", k)) for k in ("p50", "p90", "p99")),
    *((f"chunk_latency_{k}_ms", ("chunk_latency_ms", k)) for k in ("p50", "p90", "p99")),
    ("lag_max_s", ("lag_s", "max")), ("lag_end_s", ("lag_s", "end")), ("lag_middle_s", ("lag_s", "middle")),
    ("lag_bounded", ("lag_s", "bounded")), ("partial_changed_share", ("partial_stability", "changed_share")),
)


def csv_cells(s: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """Headers and values of the stream columns ([] and [] for an offline run); unavailable is an empty cell."""
    block = stream_block(s)
    if block is None:
        return [], []
    values: list[Any] = []
    for header, path in CSV_COLUMNS:
        v: Any = block
        for part in path:
            v = v.get(part) if isinstance(v, Mapping) else None
        values.append("" if v is None else v)
    live, offline, _ = offline_wer(s)
    values += ["" if v is None else round(v * 100, 10) for v in (live, offline)]
    energy = energy_of(s, block)
    values += ["" if energy.get(k) is None else energy.get(k) for k in ("j_per_audio_s", "w_per_stream")]
    return ([h for h, _ in CSV_COLUMNS] + ["stream_wer_pct", "offline_wer_pct", "stream_j_per_audio_s",
                                           "w_per_stream"], values)
