"""Print one run's summary as a terminal table (reads the summary record only)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any, fmt: str = "{:.3f}", unit: str = "") -> str:
    if value is None:
        return "unavailable"
    return fmt.format(value) + unit


def summary_table(s: dict[str, Any]) -> Table:
    t = Table(title=f"{s['backend']} · {s['model']} · {s['quant']} · {s['device']} · {s['dataset']}",
              show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    lat = s.get("latency_ms") or {}
    rows = [
        ("status", s["status"] + (f" ({s['error']})" if s.get("error") else "")),
        ("utterances", f"{s['n_utterances']} ({s['n_failed']} failed, {s['n_scored']} scored, "
                       f"{s['n_unreferenced']} without reference)"),
        ("audio", _fmt(s.get("audio_s"), "{:.1f}", " s")),
        ("WER", _fmt(s.get("wer"), "{:.2%}") + (f"  (S {s['sub']} D {s['del']} I {s['ins']})"
                                               if s.get("wer") is not None else "")),
        ("CER", _fmt(s.get("cer"), "{:.2%}")),
        ("RTF", _fmt(s.get("rtf"), "{:.4f}") + (f"  (RTFx {s['rtfx']:.1f})" if s.get("rtfx") else "")),
        ("latency p50/p90/p99", " / ".join(_fmt(lat.get(k), "{:.0f}", " ms") for k in ("p50", "p90", "p99"))
         if lat else "unavailable"),
        ("model load", _fmt(s.get("load_s"), "{:.2f}", " s")),
        ("warm-up", _fmt(s.get("warmup_s"), "{:.2f}", " s")),
        ("peak RSS", _fmt(s.get("peak_rss_mb"), "{:.0f}", " MB")),
        ("model size", _fmt(s.get("model_size_mb"), "{:.0f}", " MB")),
    ]
    for name, value in rows:
        t.add_row(name, value)
    return t


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(summary_table(summary))
