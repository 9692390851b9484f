"""Stream mode's figures (issue 23): the finalization-latency distribution per condition, p99 finalization
latency against the number of concurrent streams with the latency target, and the lag behind real time over
the stream.

Each reads the summaries' ``stream`` blocks (runner/scoring/stream_metrics.py: the finalization latencies of every
utterance play and a downsampled lag series are in it), so a report needs no other file. A report without
stream data gets none of these figures and no note about them: offline reports are as they were. Same style,
determinism and "unavailable is not zero" rules as runner/report/figure_kit.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .aggregate import AggregateRow
from .figure_kit import (MARKERS, PALETTE, FigureResult, new_figure, percentile_strips, save, series_labeller, styled,
                         whisker, yerr)
from .records import ConditionRecord, GroupKey

FINALIZATION_FILE = "finalization_distribution.png"
CONCURRENCY_FILE = "latency_vs_concurrency.png"
LAG_FILE = "lag_over_time.png"

#: The latency target drawn where the results name none: the capacity search's default (issue 23: --latency-ms
#: 1000; runner/capacity.py's DEFAULT_LATENCY_MS). A capacity search's folder names its own in capacity.json.
DEFAULT_TARGET_MS = 1000.0
CAPACITY_FILE = "capacity.json"  # what `edgeasr capacity` writes beside its sweep (runner/capacity.py)
MAX_ROWS = 24  # conditions in the distribution
MAX_LAG_PANELS = 4  # conditions in the lag figure; the rest are named in its notes
CONCURRENCY_AXIS = "stream.concurrency"


def stream_of(summary: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    block = summary.get("stream") if isinstance(summary, Mapping) else None
    return block if isinstance(block, Mapping) else None


def _streamed(records: Sequence[ConditionRecord]) -> dict[GroupKey, list[Mapping[str, Any]]]:
    """key -> the stream blocks of its repeats that did not fail, in the records' order."""
    out: dict[GroupKey, list[Mapping[str, Any]]] = {}
    for rec in records:
        block = stream_of(rec.summary)
        if block is not None and rec.status != "error":
            out.setdefault(rec.key, []).append(block)
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def capacity_target(results_dir: Path | None) -> tuple[float, str] | None:
    """The latency target of the capacity search whose folder this is (its capacity.json's ``latency_ms``), and
    where it comes from; None where the folder holds no readable one."""
    if results_dir is None:
        return None
    try:
        data = json.loads((Path(results_dir) / CAPACITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("latency_ms") if isinstance(data, Mapping) else None
    if not _number(value) or not math.isfinite(value) or value <= 0:
        return None
    return float(value), f"the capacity search's target (--latency-ms {value:g}, {CAPACITY_FILE})"


def stream_figures(rows: Sequence[AggregateRow], records: Sequence[ConditionRecord], out_dir: Path,
                   skipped: list[str] | None = None, target: tuple[float, str] | None = None) -> list[FigureResult]:
    """The stream figures whose data the records have, in report order; [] (and no note) without stream data.
    ``skipped`` receives a line for a stream figure that could not be drawn although there was stream data;
    ``target``: the latency target line and where it comes from (capacity_target), else the default's."""
    blocks = _streamed(records)
    if not blocks:
        return []
    skipped = skipped if skipped is not None else []
    chosen = [r for r in rows if r.key in blocks]
    target = target or (DEFAULT_TARGET_MS, f"the default target of edgeasr capacity (--latency-ms "
                                           f"{DEFAULT_TARGET_MS:g})")
    out = []
    for draw in (finalization_distribution, latency_vs_concurrency, lag_over_time):
        result = draw(chosen, blocks, Path(out_dir), target)
        if isinstance(result, str):
            skipped.append(result)
        else:
            out.append(result)
    return out


def _label(rows: Sequence[AggregateRow], exclude: Sequence[str] = ()):
    base = series_labeller(rows, exclude)
    noisy = any(r.key.noise_type != "clean" for r in rows)
    return lambda key: f"{base(key)}/{key.quant}" + (f" · {key.noise_label}" if noisy else "")


@styled
def finalization_distribution(rows: Sequence[AggregateRow], blocks: Mapping[GroupKey, list[Mapping[str, Any]]],
                              out_dir: Path, target: tuple[float, str]) -> FigureResult | str:
    """Per condition: every utterance play's finalization latency as a faint dot, and p50, p90 and p99 over the
    repeats pooled (the summaries' percentiles, averaged, where the values were not kept)."""
    title = "Finalization latency per condition (end of an utterance's audio to its final text)"
    label = _label(rows)
    lines = []
    for r in rows[:MAX_ROWS]:
        points = [float(v) for b in blocks[r.key] for v in (b.get("finalization_values_ms") or ()) if _number(v)]
        if points:
            p50, p90, p99 = (float(v) for v in np.percentile(np.asarray(points), [50, 90, 99]))
            lines.append((label(r.key), points, (p50, p90, p99)))
            continue
        pcts = [[(b.get("finalization_ms") or {}).get(p) for p in ("p50", "p90", "p99")] for b in blocks[r.key]]
        pcts = [p for p in pcts if all(_number(v) for v in p)]
        if pcts:
            lines.append((label(r.key), [], tuple(float(np.mean([p[i] for p in pcts])) for i in range(3))))
    if not lines:
        return "finalization latency: no streamed condition reached a final text"
    fig = percentile_strips(lines, xlabel="finalization latency per utterance play (ms)",
                            dot_label="one utterance play", title=title)
    notes = ["from the delivery of an utterance's last chunk (at real-time pace) to its final text, on the "
             "container's monotonic clock; percentiles over every play of every repeat pooled"]
    if len(rows) > MAX_ROWS:
        notes.append(f"the first {MAX_ROWS} of {len(rows)} streamed conditions")
    path = out_dir / FINALIZATION_FILE
    save(fig, path, notes)
    return FigureResult(path, title)


def concurrency_of(blocks: Sequence[Mapping[str, Any]]) -> int | None:
    values = {b.get("concurrency") for b in blocks if isinstance(b.get("concurrency"), int)}
    return next(iter(values)) if len(values) == 1 else None


@styled
def latency_vs_concurrency(rows: Sequence[AggregateRow], blocks: Mapping[GroupKey, list[Mapping[str, Any]]],
                           out_dir: Path, target: tuple[float, str]) -> FigureResult | str:
    """p99 finalization latency (mean over repeats, whiskers as every figure's) against the number of concurrent
    streams, one line per condition less its concurrency, the latency target dashed; a probe whose lag grew
    (not bounded) is a hollow marker. Drawn where the concurrency varies."""
    title = "p99 finalization latency against concurrent streams"
    points = [(r, concurrency_of(blocks[r.key])) for r in rows]
    points = [(r, c) for r, c in points if c is not None and r.stat("finalization_p99_ms").mean is not None]
    if len({c for _, c in points}) < 2:
        return ("latency against concurrency: the streamed conditions ran at one concurrency (sweep "
                "stream.concurrency, or run edgeasr capacity)")
    label = _label([r for r, _ in points], exclude=(CONCURRENCY_AXIS,))
    series: dict[str, list[tuple[int, AggregateRow]]] = {}
    for r, c in points:
        series.setdefault(label(r.key), []).append((c, r))
    target_ms, origin = target
    fig = new_figure(7.5, 4.6)
    ax = fig.add_subplot()
    for i, (name, pts) in enumerate(series.items()):
        pts.sort(key=lambda p: p[0])
        colour = PALETTE[i % len(PALETTE)]
        xs = [c for c, _ in pts]
        stats = [r.stat("finalization_p99_ms") for _, r in pts]
        ys = [s.mean for s in stats]
        ax.errorbar(xs, ys, yerr=yerr([whisker(s) for s in stats]), color=colour, linewidth=1.3, capsize=3,
                    marker=MARKERS[(i // len(PALETTE)) % len(MARKERS)], markersize=5, label=name)
        grew = [(c, s.mean) for (c, r), s in zip(pts, stats) if r.lag_bounded and not all(r.lag_bounded)]
        if grew:
            ax.scatter([c for c, _ in grew], [y for _, y in grew], s=70, facecolors="white", edgecolors=colour,
                       linewidths=1.5, zorder=4)
    ax.axhline(target_ms, color="0.2", linestyle="--", linewidth=1.0, label=f"target {target_ms:g} ms")
    ax.set_xscale("log", base=2)
    ticks = sorted({c for _, c in points})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrent streams (one model)")
    ax.set_ylabel("p99 finalization latency (ms)")
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False, fontsize=7)
    notes = [f"dashed: {origin}; hollow ring: a repeat's lag behind real time grew (not bounded: end - middle of "
             "the window above two chunks), so the latency there is not a steady state"]
    path = out_dir / CONCURRENCY_FILE
    save(fig, path, notes)
    return FigureResult(path, title)


@styled
def lag_over_time(rows: Sequence[AggregateRow], blocks: Mapping[GroupKey, list[Mapping[str, Any]]],
                  out_dir: Path, target: tuple[float, str]) -> FigureResult | str:
    """The lag behind real time (seconds a delivered chunk waited for the model) over the stream, one panel per
    condition (its first repeat that kept a series), one line per stream, the window's middle and end marked."""
    title = "Lag behind real time over the stream"
    label = _label(rows)
    panels = []
    for r in rows:
        block = next((b for b in blocks[r.key] if b.get("lag_series")), None)
        if block is not None:
            panels.append((label(r.key), block))
    if not panels:
        return "lag over time: no streamed condition kept a lag series"
    shown, left_out = panels[:MAX_LAG_PANELS], panels[MAX_LAG_PANELS:]
    fig = new_figure(8.0, 2.2 * len(shown) + 0.6)
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    for ax, (name, block) in zip(axes, shown):
        for j, s in enumerate(block["lag_series"]):
            if not isinstance(s, Mapping):
                continue
            ax.plot(s.get("t_s") or [], s.get("lag_s") or [], color=PALETTE[j % len(PALETTE)], linewidth=0.9,
                    label=f"stream {s.get('stream')}")
        lag = block.get("lag_s") if isinstance(block.get("lag_s"), Mapping) else {}
        window = lag.get("window") if isinstance(lag.get("window"), list) and len(lag.get("window")) == 2 else None
        verdict = ""
        top = max([float(v) for v in (lag.get("max"),) if _number(v)] or [0.0])
        if window and all(_number(v) for v in window):
            middle = (window[0] + window[1]) / 2
            ax.axvspan(window[0], window[1], color="0.9", alpha=0.5, linewidth=0)
            ax.axvline(middle, color="0.4", linestyle=":", linewidth=0.9)
            if all(_number(lag.get(k)) for k in ("middle", "end", "bound")):
                # the test itself: the lag at the end may be at most the middle's plus two chunks
                allowed = lag["middle"] + lag["bound"]
                ax.plot([middle, window[1]], [allowed, allowed], color="0.3", linestyle="--", linewidth=0.9)
                ax.scatter([middle, window[1]], [lag["middle"], lag["end"]], s=22, color="black", zorder=4)
                top = max(top, allowed)
        if isinstance(lag.get("bounded"), bool):
            verdict = " · lag bounded" if lag["bounded"] else " · lag GROWING"
        ax.set_ylim(0, max(top * 1.15, 0.05))
        ax.set_ylabel("lag (s)")
        ax.set_title(f"{name}{verdict}", loc="left", fontsize=9)
        if len(block["lag_series"]) <= 8:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=7)
    axes[-1].set_xlabel("time since the condition's first chunk was delivered (s)")
    fig.suptitle(title)
    notes = ["lag: a chunk's start of processing - its delivery; shaded: the window every stream was delivering "
             "in, dotted: its middle; dots: the lag at the middle and at the end; dashed: the most the end may reach "
             "(the middle's lag plus two chunks) for the lag to be bounded; each line point the largest lag of its "
             "stretch of chunks (peaks are never averaged away)"]
    if left_out:
        notes.append(f"{len(left_out)} more condition(s) not drawn: " + ", ".join(n for n, _ in left_out))
    path = out_dir / LAG_FILE
    save(fig, path, notes)
    return FigureResult(path, title)
