"""Print one run's summary as a terminal table, Markdown or CSV (reads the summary record and, for the worst
utterances, the run folder's utterances.jsonl).

Units as named (schema 4): peak RSS is MiB (peak_rss_mib, the container's VmHWM in KiB / 1024), model size MB
(model_size_mb, bytes / 1e6); an older summary is read under the new names (results.upgraded).
Energy that no sensor measured is one short line; the full reasons are in summary.json's ``unavailable``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..host.load import busy_from_record
from ..host.platforms import emulated_text
from ..results import upgraded
from ..trust.untrusted import csv_text, line, markdown
from ..wording import plural
from . import stream_table
from . import worst as worst_mod


#: Columns for output that is not a terminal and has none behind it: wide enough that nothing is wrapped.
UNWRAPPED = 200


def real_width() -> int | None:
    """The width of the terminal behind a pipe (``edgeasr run | tee log``): $COLUMNS, else stderr's or stdin's
    terminal; None where there is none."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    for fd in (2, 0):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return None


def piped(console: Console) -> Console:
    """``console`` itself on a terminal; else one of the real width (or UNWRAPPED), never rich's 80 columns
    for a file, which wrapped paths and quotes in the middle."""
    if console.is_terminal:
        return console
    return Console(file=console.file, width=real_width() or UNWRAPPED, quiet=console.quiet)


def _fmt(value: Any, fmt: str = "{:.3f}", unit: str = "") -> str:
    if value is None:
        return "unavailable"
    return fmt.format(value) + unit


def _why(s: dict[str, Any], name: str) -> str:
    """": <reason>" for a field the summary marks unavailable with a reason, else nothing."""
    reason = (s.get("unavailable") or {}).get(name)
    return f": {reason}" if reason else ""


#: Percentiles over fewer utterances than this say their n: p99 of 20 values is the largest of them.
SMALL_N_PERCENTILES = 100


def _small_n(s: dict[str, Any]) -> str:
    """" (n = 3)" after percentiles over few utterances (the ones transcribed); "" otherwise."""
    try:
        n = int(s["n_utterances"]) - int(s.get("n_failed") or 0) - int(s.get("n_not_run") or 0)
    except (KeyError, TypeError, ValueError):
        return ""
    return f" (n = {n})" if n < SMALL_N_PERCENTILES else ""


def title(s: dict[str, Any]) -> str:
    return f"{s['backend']} · {s['model']} · {s['quant']} · {s['device']} · {s['dataset']}"


#: The run view's lines that are speed or energy: an emulated run's are marked (emulated) (its summary's
#: ``emulation`` block: the figures are the emulator's, runner/report/aggregate.EMULATED_METRICS alike).
EMULATED_ROWS = frozenset({"RTF", "latency p50/p90/p99", "model load", "warm-up", "energy (inference)",
                           "energy / audio s", "power avg / peak"})
_NOT_A_FIGURE = ("unavailable", "no sensor", "not measured")


def summary_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) lines of the run view, in the order shown."""
    s = upgraded(s)  # a summary written before schema 4: its MiB figures under the _mib names
    lat = s.get("latency_ms") or {}
    rows = [
        ("status", s["status"] + (f" ({s['error']})" if s.get("error") else "")),
        ("utterances", f"{plural(s['n_utterances'], 'utterance')} ({s['n_failed']} failed, "
                       + (f"{s['n_not_run']} not run, " if s.get("n_not_run") else "") + f"{s['n_scored']} scored, "
                       + (f"{s['n_nonspeech']} non-speech, " if s.get("n_nonspeech") else "")
                       + f"{s['n_unreferenced']} without reference)"),
        ("audio", _fmt(s.get("audio_s"), "{:.1f}", " s")),
        ("WER", _fmt(s.get("wer"), "{:.2%}") + (f"  (S {s['sub']} D {s['del']} I {s['ins']})"
                                               if s.get("wer") is not None else _why(s, "wer"))),
        ("CER", _fmt(s.get("cer"), "{:.2%}")),
        *_repetition_rows(s),
        ("RTF", _fmt(s.get("rtf"), "{:.4f}") + (f"  (RTFx {s['rtfx']:.1f})" if s.get("rtfx") else "")),
        ("latency p50/p90/p99", " / ".join(_fmt(lat.get(k), "{:.0f}", " ms") for k in ("p50", "p90", "p99"))
         + _small_n(s) if lat else "unavailable" + (_why(s, "latency_ms") if stream_table.stream_block(s) else "")),
        ("model load", _fmt(s.get("load_s"), "{:.2f}", " s")),
        ("warm-up", _fmt(s.get("warmup_s"), "{:.2f}", " s")),
        ("peak RSS", _fmt(s.get("peak_rss_mib"), "{:.0f}", " MiB")),
        ("model size", _fmt(s.get("model_size_mb"), "{:.0f}", " MB")),
    ]
    rows += _energy_rows(s.get("energy"))
    emulated = emulated_text(s.get("emulation"))
    if emulated:  # the emulator's speed and energy: marked on each such line, never shown as a device's
        rows = [(name, value + " (emulated)" if name in EMULATED_ROWS and not value.startswith(_NOT_A_FIGURE)
                 else value) for name, value in rows]
        rows.append(("emulated", f"{emulated}: speed and energy are the emulator's, not a device's; "
                                 "the WER is the model's"))
    repeats = s.get("repeats")
    if isinstance(repeats, dict) and repeats.get("n"):
        rows.append(("repeats", f"{repeats['n']}: RTF " + ", ".join(_fmt(v, "{:.4f}") for v in repeats.get("rtf", []))))
    busy = host_busy(s)
    if busy:
        rows.append(("host", f"busy during the timed window: {busy}"))
    return rows


def _repetition_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """Issue 24's figures (runner/scoring/metrics.py): none for a summary from before them, so it reads as it did."""
    if not any(k in s for k in ("ins_rate", "repeated_ngram_rate", "compression_over_share")):
        return []
    return [(name, _fmt(s.get(key), fmt, unit) + ("" if s.get(key) is not None else _why(s, key)))
            for name, key, fmt, unit in (
                ("insertions", "ins_rate", "{:.2%}", " of reference words"),
                ("repeated 3-grams", "repeated_ngram_rate", "{:.2%}", " beyond the reference's own"),
                ("loops", "compression_over_share", "{:.1%}", " of hypotheses (compression ratio > 2.4)"))] + (
        [("non-speech", f"{plural(s['n_nonspeech'], 'item')}: "
                        + _fmt(s.get("nonspeech_wpm"), "{:.1f}", " words/min")
                        + ", " + _fmt(s.get("nonspeech_output_share"), "{:.0%}", " with any output")
                        + ("" if s.get("nonspeech_wpm") is not None else _why(s, "nonspeech_wpm")))]
        if s.get("n_nonspeech") else []) + (
        [("inserted over gaps", f"{s['gap_ins']} words, " + _fmt(s.get("gap_ins_per_min"), "{:.1f}",
                                                                  " per minute of non-speech between the speech"))]
        if s.get("gap_ins") is not None else [])


def host_busy(s: dict[str, Any]) -> str | None:
    """Why the host was busy during the run's timed window (summary["host_load"]), or None."""
    return busy_from_record(s.get("host_load"))


def summary_table(s: dict[str, Any]) -> Table:
    t = Table(title=line(title(s)), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    for name, value in summary_rows(s):
        t.add_row(line(name), line(value))
    return t


def energy_short(e: dict[str, Any]) -> str:
    """The one short line for energy no sensor measured; the reasons are in summary.json."""
    reason = (e.get("unavailable") or {}).get("total_j", "")
    if "--telemetry none" in reason:
        return "not measured (--telemetry none)"
    return "no sensor, see README: Energy"


def _energy_rows(e: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not e:
        return []
    if e.get("total_j") is None:
        return [("energy", energy_short(e))]
    base = e.get("baseline_w")
    dyn = e.get("dynamic_j")
    bounds = e.get("bounds") or {}

    def pm(key: str, digits: int) -> str:  # "± 0.30": the figure's measurement bound, where it has one
        return f" ± {bounds[key]:.{digits}f}" if isinstance(bounds.get(key), (int, float)) else ""

    rows = [
        ("energy (inference)", f"{e['total_j']:.2f} J{pm('total_j', 2)}"
         + (f", dynamic {dyn:.2f} J{pm('dynamic_j', 2)}" if dyn is not None else "")
         # parentheses, not brackets: rich would take "[...]" for markup and drop it
         + f"  · {e.get('scope') or 'scope unknown'} ({e['source']}, {e.get('total_kind')})"),
        ("energy / audio s", _fmt(e.get("j_per_audio_s"), "{:.3f}", " J/s") + pm("j_per_audio_s", 3)),
        ("power avg / peak", f"{_fmt(e.get('avg_w'), '{:.2f}', ' W')} / {_fmt(e.get('peak_w'), '{:.2f}', ' W')}"),
        ("idle baseline", _fmt(base, "{:.2f}", " W") + (f" ({e.get('baseline_source')})" if base is not None else
                                                       f" ({(e.get('unavailable') or {}).get('baseline_w', '')})")),
        ("samples", f"{e.get('n_samples')} at {_fmt(e.get('interval_ms'), '{:.0f}', ' ms')} mean interval"),
    ]
    for flag in e.get("flags") or ():
        rows.append(("energy flag", str(flag)))
    for name, c in (e.get("companions") or {}).items():
        rows.append((f"energy ({c.get('scope') or name})",
                     _fmt(c.get("total_j"), "{:.2f}", " J") + f"  ({name})" if c.get("total_j") is not None else
                     f"unavailable: {(c.get('unavailable') or {}).get('total_j', 'not measured')}"))
    if "gpu_plus_cpu_j" in e:
        rows.append((f"energy ({e.get('gpu_plus_cpu_scope')})", _fmt(e.get("gpu_plus_cpu_j"), "{:.2f}", " J")))
    for key, label in (("ram_peak_delta_mib", "unified RAM peak - idle"), ("gpu_mem_peak_mib", "GPU memory peak")):
        if e.get(key) is not None:
            rows.append((label, f"{e[key]:.0f} MiB"))
    return rows


def markdown_summary(s: dict[str, Any]) -> str:
    lines = [f"**{markdown(title(s))}**", "", "| | |", "|---|---|",
             *(f"| {markdown(n)} | {markdown(v)} |" for n, v in summary_rows(s))]
    return "\n".join(lines) + "\n" + stream_table.stream_markdown(s)  # a stream run's latency table under it


#: The run view's CSV columns: (header, path in the summary, factor). One number per figure, its unit in the
#: header (a ratio as wer_pct is x100); the settings and the status as text; an unavailable figure is empty.
CSV_COLUMNS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    *((name, (name,), 1.0) for name in ("backend", "model", "quant", "device", "dataset", "status", "n_utterances",
                                        "n_failed", "n_not_run", "n_scored", "n_unreferenced", "audio_s")),
    ("wer_pct", ("wer",), 100.0), ("sub", ("sub",), 1.0), ("del", ("del",), 1.0), ("ins", ("ins",), 1.0),
    ("cer_pct", ("cer",), 100.0), ("rtf", ("rtf",), 1.0), ("rtfx", ("rtfx",), 1.0),
    ("latency_p50_ms", ("latency_ms", "p50"), 1.0), ("latency_p90_ms", ("latency_ms", "p90"), 1.0),
    ("latency_p99_ms", ("latency_ms", "p99"), 1.0), ("load_s", ("load_s",), 1.0),
    ("warmup_s", ("warmup_s",), 1.0), ("peak_rss_mib", ("peak_rss_mib",), 1.0),
    ("model_size_mb", ("model_size_mb",), 1.0), ("energy_total_j", ("energy", "total_j"), 1.0),
    ("energy_dynamic_j", ("energy", "dynamic_j"), 1.0), ("j_per_audio_s", ("energy", "j_per_audio_s"), 1.0),
    ("power_avg_w", ("energy", "avg_w"), 1.0), ("power_peak_w", ("energy", "peak_w"), 1.0),
    ("idle_baseline_w", ("energy", "baseline_w"), 1.0),
    ("ins_rate_pct", ("ins_rate",), 100.0), ("repeated_3gram_pct", ("repeated_ngram_rate",), 100.0),
    ("compression_over_2p4_pct", ("compression_over_share",), 100.0),  # issue 24, last: older columns keep places
    ("n_nonspeech", ("n_nonspeech",), 1.0), ("nonspeech_wpm", ("nonspeech_wpm",), 1.0),
    ("nonspeech_output_pct", ("nonspeech_output_share",), 100.0),
)


def _at(s: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        s = s.get(part) if isinstance(s, dict) else None
    return s


def csv_summary(s: dict[str, Any]) -> str:
    """The run as CSV: a header line and one line of numbers (``CSV_COLUMNS``), the host's busy reason last;
    the display strings of the table ("12.50%  (S 2 D 0 I 0)") are never a cell."""
    s = upgraded(s)
    values = []
    for _, path, factor in CSV_COLUMNS:
        v = _at(s, path)
        if isinstance(v, bool) or v is None:
            v = None
        elif isinstance(v, (int, float)) and factor != 1.0:
            v = round(v * factor, 10)
        values.append("" if v is None else v)
    # a stream run adds its latency columns after these (report/stream_table.py); an offline run's are as ever
    stream_headers, stream_values = stream_table.csv_cells(s)
    return csv_text([[h for h, _, _ in CSV_COLUMNS] + ["host_busy"] + stream_headers,
                     values + [host_busy(s) or ""] + stream_values])


def run_worst(summary: dict[str, Any], folder: Path | None, n: int = worst_mod.TOP_N) -> worst_mod.Worst:
    """The run's worst utterances: its own utterances.jsonl, or each repeat's (``repeats.folders``)."""
    folders = [Path(f) for f in ((summary.get("repeats") or {}).get("folders") or [])] or [folder]
    sources = [("", worst_mod.read_utterances(f), i + 1 if len(folders) > 1 else None)
               for i, f in enumerate(folders)]  # one line per utterance, its repeat counted from 1
    return worst_mod.worst(sources, n)


def print_summary(summary: dict[str, Any], console: Console | None = None, folder: Path | None = None,
                  fmt: str = "table") -> None:
    """The run view in ``fmt`` (table | md | csv; md and csv go to stdout); with ``folder``, the worst
    utterances under the table (table and md)."""
    bad = run_worst(summary, folder) if folder is not None else worst_mod.Worst((), ())
    if fmt == "md":
        text = markdown_summary(summary)
        for item in worst_mod.lines(bad):
            text += f"- {markdown(item.strip())}\n" if item.startswith("  ") else f"\n{markdown(item)}\n\n"
        print(text, end="")
        return
    if fmt == "csv":
        print(csv_summary(summary), end="")
        return
    console = piped(console or Console())
    console.print(summary_table(summary))
    live = stream_table.stream_table(summary)  # a stream-mode run: its latency table (None offline)
    if live is not None:
        console.print(live)
    for item in worst_mod.lines(bad):  # a quote is never wrapped in its middle (the terminal wraps, if any)
        console.print(line((item, "" if item.startswith(" ") else "bold")), soft_wrap=True)
