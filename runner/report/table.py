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
    rows += _energy_rows(s.get("energy"))
    for name, value in rows:
        t.add_row(name, value)
    return t


def _energy_rows(e: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not e:
        return []
    if e.get("total_j") is None:
        reason = (e.get("unavailable") or {}).get("total_j", "not measured")
        return [("energy", f"unavailable: {reason}")]
    base = e.get("baseline_w")
    dyn = e.get("dynamic_j")
    rows = [
        ("energy (inference)", f"{e['total_j']:.2f} J" + (f", dynamic {dyn:.2f} J" if dyn is not None else "")
         # parentheses, not brackets: rich would take "[...]" for markup and drop it
         + f"  · {e.get('scope') or 'scope unknown'} ({e['source']}, {e.get('total_kind')})"),
        ("energy / audio s", _fmt(e.get("j_per_audio_s"), "{:.3f}", " J/s")),
        ("power avg / peak", f"{_fmt(e.get('avg_w'), '{:.2f}', ' W')} / {_fmt(e.get('peak_w'), '{:.2f}', ' W')}"),
        ("idle baseline", _fmt(base, "{:.2f}", " W") + (f" ({e.get('baseline_source')})" if base is not None else
                                                       f" ({(e.get('unavailable') or {}).get('baseline_w', '')})")),
        ("samples", f"{e.get('n_samples')} at {_fmt(e.get('interval_ms'), '{:.0f}', ' ms')} mean interval"),
    ]
    for name, c in (e.get("companions") or {}).items():
        rows.append((f"energy ({c.get('scope') or name})",
                     _fmt(c.get("total_j"), "{:.2f}", " J") + f"  ({name})" if c.get("total_j") is not None else
                     f"unavailable: {(c.get('unavailable') or {}).get('total_j', 'not measured')}"))
    if "gpu_plus_cpu_j" in e:
        rows.append((f"energy ({e.get('gpu_plus_cpu_scope')})", _fmt(e.get("gpu_plus_cpu_j"), "{:.2f}", " J")))
    for key, label in (("ram_peak_delta_mb", "unified RAM peak - idle"), ("gpu_mem_peak_mb", "GPU memory peak")):
        if e.get(key) is not None:
            rows.append((label, f"{e[key]:.0f} MB"))
    return rows


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(summary_table(summary))
