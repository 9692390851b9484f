"""`edgeasr report --format csv`: the aggregated conditions as numbers, for spreadsheets and scripts.

One line per condition (as the table), its settings as text and, per metric, the mean over its repeats and
their sample standard deviation, each a number in the unit its header names (``wer_pct`` is x100,
``peak_rss_mib``); an unavailable figure is an empty cell. The table's display strings ("5.76 ± 0.51",
footnote marks) are for people and never a CSV cell (issue 28).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..trust.untrusted import csv_text
from .aggregate import AggregateRow
from .records import SOURCE_AXIS, KeyNames, format_axis_value

#: (aggregate metric, CSV header with its unit, factor from the stored unit).
COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("wer", "wer_pct", 100.0), ("cer", "cer_pct", 100.0), ("rtf", "rtf", 1.0),
    ("latency_p50_ms", "latency_p50_ms", 1.0), ("peak_rss_mib", "peak_rss_mib", 1.0), ("load_s", "load_s", 1.0),
    ("total_j", "energy_total_j", 1.0), ("dynamic_j", "energy_dynamic_j", 1.0),
    ("j_per_audio_s", "j_per_audio_s", 1.0), ("avg_w", "power_avg_w", 1.0),
    # issue 24 (runner/scoring/metrics.py defines them): last, so the columns scripts already read keep their places
    ("ins_rate", "ins_rate_pct", 100.0), ("repeated_ngram_rate", "repeated_3gram_pct", 100.0),
    ("compression_over_share", "compression_over_2p4_pct", 100.0), ("nonspeech_wpm", "nonspeech_wpm", 1.0),
    ("nonspeech_output_share", "nonspeech_output_pct", 100.0), ("gap_ins_per_min", "gap_ins_per_min", 1.0),
)

#: Stream mode's columns (issue 23), only where a row streamed, so an offline report's CSV is as it was.
STREAM_COLUMNS: tuple[tuple[str, str, float], ...] = (("finalization_p99_ms", "finalization_p99_ms", 1.0),)


def _number(value: float | None, factor: float) -> float | str:
    return "" if value is None else round(value * factor, 10)


def numbers_csv(rows: Sequence[AggregateRow]) -> str:
    """The rows as CSV: settings, run counts, then ``<metric>`` and ``<metric>_std`` per COLUMNS."""
    names = KeyNames.of(r.key for r in rows)
    axes = sorted({p for r in rows for p, _ in r.key.axes})
    streamed = any(r.lag_bounded or r.stat("finalization_p99_ms").n for r in rows)
    columns = COLUMNS + (STREAM_COLUMNS if streamed else ())
    header = ["backend", "model", "quant", "device", "dataset", "image", "noise", "snr_db",
              *(p if p == SOURCE_AXIS else f"axes.{p}" for p in axes), "runs", "ok", "partial", "failed"]
    for _, name, _ in columns:
        header += [name, f"{name}_std"]
    if streamed:
        header.append("lag_bounded_runs")
    out: list[list[object]] = [header]
    for r in rows:
        k = r.key
        line: list[object] = [k.backend, names.model(k), k.quant, k.device, names.dataset(k), k.image, k.noise_type,
                              "" if k.snr_db is None else k.snr_db,
                              *(format_axis_value(k.axis(p)) for p in axes), r.n_runs, r.n_ok, r.n_partial,
                              r.n_failed]
        for metric, _, factor in columns:
            st = r.stat(metric)
            line += [_number(st.mean, factor), _number(st.std, factor)]
        if streamed:  # repeats whose lag stayed bounded, of those that streamed ("" where none did)
            line.append(f"{sum(r.lag_bounded)}/{len(r.lag_bounded)}" if r.lag_bounded else "")
        out.append(line)
    return csv_text(out)
