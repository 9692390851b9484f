"""The study figures that read more than the aggregated rows: energy per rail, power over time with the run's
windows marked, the latency distribution per condition, and latency against input length.

Each reads the sweep's own files (runner/report/traces.py) and is drawn only where its data exists: a sweep
without per-rail energy, a telemetry trace or per-utterance results simply has fewer figures (the report's
notes say which and why), never a figure that is only a text box. Same style, determinism and
"unavailable is not zero" rules as runner/report/figures.py.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from ..telemetry.samplers.tegrastats_parse import INPUT_RAIL_NAMES
from .aggregate import AggregateRow
from .fit import fit_against_length
from .figure_kit import (MARKERS, PALETTE, FigureResult, category_ticks, energy_label, new_figure,
                         percentile_strips, save, series_labeller, styled, with_scope)
from .records import GroupKey, Sweep
from .traces import RecordFiles, Timeline, by_key, read_timeline, record_files, utterance_points, utterance_values

RAIL_FILE = "energy_by_rail.png"
TIMELINE_FILE = "power_over_time.png"
LATENCY_FILE = "latency_distribution.png"
LENGTH_FILE = "latency_vs_length.png"
GROWTH_FILE = "growth_with_duration.png"
#: Growth with duration's panels: (title, the utterance record's field(s), first found; factor; unit).
GROWTH_PANELS = (("latency", ("latency_s",), 1000.0, "ms"),
                 ("memory", ("container_mem_peak_mib", "mem_peak_mib"), 1.0, "MiB"),
                 ("energy", ("energy_j",), 1.0, "J"))

#: Channels that are totals, not parts: stacking them with the rails would count energy twice.
TOTAL_CHANNELS = frozenset({*INPUT_RAIL_NAMES, "psys", "total"})
MAX_TIMELINES = 4  # panels in the power-over-time figure; the rest are named in its notes
MAX_LATENCY_ROWS = 24  # conditions in the latency distribution; clean ones only beyond this
WINDOW_COLOURS = {"load": "#ff7f0e", "warmup": "#bcbd22", "inference": "#2ca02c"}

#: Why a study figure was not drawn, for the report's notes (filled by write_study_figures).
Skipped = list[str]


def write_study_figures(sweep: Sweep, rows: Sequence[AggregateRow], out_dir: Path,
                        skipped: Skipped | None = None) -> list[FigureResult]:
    """The study figures whose data the sweep has, in report order; ``skipped`` collects why others are not."""
    records = record_files(sweep)
    skipped = skipped if skipped is not None else []
    out = []
    for draw in (energy_by_rail, power_over_time, latency_distribution, latency_vs_length, growth_with_duration):
        result = draw(sweep, rows, records, Path(out_dir))
        if isinstance(result, str):
            skipped.append(result)
        else:
            out.append(result)
    return out


def _label(rows: Sequence[AggregateRow]):
    base = series_labeller(rows)
    noisy = any(r.key.noise_type != "clean" for r in rows)
    return lambda key: f"{base(key)}/{key.quant}" + (f" · {key.noise_label}" if noisy else "")


# ---------------------------------------------------------------- energy per rail

def is_total_channel(name: str) -> bool:
    """A channel that is a total or a part of another channel (RAPL's core and uncore sit inside their package,
    psys spans the platform): stacked with the rest it would count energy twice."""
    bare = name.split(":")[-1].split("/")[-1].split("#")[0]
    return name in TOTAL_CHANNELS or bare in TOTAL_CHANNELS or bare in ("core", "uncore")


def _rail_blocks(energy: dict) -> list[tuple[str, dict]]:
    """The energy block's per_rail, and each companion's (RAPL beside NVML) prefixed with its name, so that a
    CUDA host shows its GPU and CPU energy side by side."""
    blocks = [("", energy.get("per_rail"))]
    companions = energy.get("companions")
    if isinstance(companions, dict):
        blocks += [(f"{name}:", block.get("per_rail")) for name, block in companions.items() if isinstance(block, dict)]
    return [(prefix, rails) for prefix, rails in blocks if isinstance(rails, dict) and rails]


def rail_split(records: Sequence[RecordFiles]) -> tuple[dict[str, float], float | None]:
    """Mean J per audio second of each part rail over the ok repeats, and of the input rail (None without one)."""
    parts: dict[str, list[float]] = {}
    totals: list[float] = []
    for rec in records:
        energy = rec.summary.get("energy") if rec.status != "error" else None
        audio_s = rec.summary.get("audio_s")
        if not isinstance(energy, dict) or not isinstance(audio_s, (int, float)) or audio_s <= 0:
            continue
        for prefix, per_rail in _rail_blocks(energy):
            for name, joules in per_rail.items():
                if not isinstance(joules, (int, float)) or isinstance(joules, bool):
                    continue
                if name in INPUT_RAIL_NAMES and not prefix:
                    totals.append(joules / audio_s)
                elif not is_total_channel(name):
                    parts.setdefault(prefix + name, []).append(joules / audio_s)
    return ({k: statistics.fmean(v) for k, v in parts.items()},
            statistics.fmean(totals) if totals else None)


@styled
def energy_by_rail(sweep: Sweep, rows: Sequence[AggregateRow], records: Sequence[RecordFiles],
                   out_dir: Path) -> FigureResult | str:
    """Energy per audio second split by rail (CPU, GPU, SOC...), stacked, clean audio; where the board input
    rail is measured, the rest of the board (input minus the rails) tops the stack."""
    title = "Energy per audio second by rail (clean audio)"
    groups = by_key(records)
    clean = [r for r in rows if r.key.noise_type == "clean"]
    splits = {r.key: rail_split(groups.get(r.key, [])) for r in clean}
    splits = {k: v for k, v in splits.items() if v[0]}
    if not splits:
        return "energy by rail: no condition recorded per-rail energy (a sampler with rails: tegrastats, jtop)"
    label = with_scope(clean, series_labeller(clean))
    keys = [r.key for r in clean if r.key in splits]
    rails = sorted({name for parts, _ in splits.values() for name in parts})
    fig = new_figure(max(6.0, 1.1 * len(keys) + 3.0), 4.4)
    ax = fig.add_subplot()
    bottom = np.zeros(len(keys))
    for i, rail in enumerate(rails):
        values = np.array([splits[k][0].get(rail, 0.0) for k in keys])
        ax.bar(range(len(keys)), values, 0.6, bottom=bottom, color=PALETTE[i % len(PALETTE)], label=rail)
        bottom += values
    rest = np.array([max(0.0, (splits[k][1] or 0.0) - b) if splits[k][1] is not None else 0.0
                     for k, b in zip(keys, bottom)])
    notes = []
    if rest.any():
        ax.bar(range(len(keys)), rest, 0.6, bottom=bottom, color="white", edgecolor="0.5", hatch="///",
               label="rest of board (input rail - rails)")
        notes.append("hatched: the board input rail minus the rails above it (regulators, memory, I/O)")
    for x, k in enumerate(keys):
        total = splits[k][1] if splits[k][1] is not None else bottom[x]
        ax.text(x, max(total, bottom[x]), f"{total:.3f}", ha="center", va="bottom", fontsize=7)
    category_ticks(ax, [f"{label(k)}/{k.quant}" for k in keys])
    ax.set_ylabel(energy_label([r for r in clean if r.key in splits], "energy per audio second (J/s)"))
    ax.set_xlabel("model")
    ax.set_title(title)
    ax.margins(y=0.12)
    ax.legend(title="rail", frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if any(":" in rail for rail in rails):
        notes.append("a rail named sampler:rail (rapl:package-0) comes from the sampler beside the main one, of its "
                     "own scope (RAPL: CPU package+DRAM beside NVML's GPU)")
    missing = [f"{label(r.key)}/{r.key.quant}" for r in clean if r.key not in splits]
    if missing:
        notes.append("no per-rail energy: " + ", ".join(missing))
    path = out_dir / RAIL_FILE
    save(fig, path, ["bars: mean over repeats of each rail's energy in the timed window / audio seconds",
                      *notes])
    return FigureResult(path, title)


# ---------------------------------------------------------------- power over time

@styled
def power_over_time(sweep: Sweep, rows: Sequence[AggregateRow], records: Sequence[RecordFiles],
                    out_dir: Path) -> FigureResult | str:
    """Power against time for each container (group), with its load, warm-up and inference windows shaded
    and each utterance marked in a strip along the bottom."""
    title = "Power over time"
    groups: dict[str, list[GroupKey]] = {}
    scopes: dict[str, str] = {}  # the sampler's scope in each container: what "total" covers
    for rec in records:  # group key "": a run folder's one container, its files in the folder itself
        groups.setdefault(rec.group_key, [])
        if rec.key not in groups[rec.group_key]:
            groups[rec.group_key].append(rec.key)
        energy = rec.summary.get("energy")
        if isinstance(energy, dict) and energy.get("scope"):
            scopes.setdefault(rec.group_key, str(energy["scope"]))
    timelines: list[tuple[str, Timeline]] = []
    for group_key, keys in groups.items():
        tl = read_timeline(sweep.results_dir, group_key)
        if tl is not None:
            base = series_labeller(rows)
            scope = f" · scope: {scopes[group_key]}" if group_key in scopes else ""
            timelines.append((f"{base(keys[0])}/{keys[0].quant}{scope}", tl))
    if not timelines:
        return "power over time: no group folder holds a telemetry.csv with power and its raw/events.jsonl"
    shown, left_out = timelines[:MAX_TIMELINES], timelines[MAX_TIMELINES:]
    fig = new_figure(9.0, 2.3 * len(shown) + 0.6)
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    for ax, (name, tl) in zip(axes, shown):
        for window, (a, b) in tl.windows.items():
            ax.axvspan(a, b, color=WINDOW_COLOURS.get(window, "0.8"), alpha=0.12, linewidth=0)
        for j, (a, b) in enumerate(tl.utterances):
            ax.axvspan(a, b, ymin=0.0, ymax=0.05, color="#1f77b4" if j % 2 == 0 else "#9ecae1", linewidth=0)
        t = np.array(tl.t_s)
        total = np.array([np.nan if v is None else v for v in tl.total_w])
        ax.plot(t, total, color="black", linewidth=1.1, label="total")
        for i, (rail, values) in enumerate(tl.rails_w.items()):
            if rail in TOTAL_CHANNELS:
                continue
            ax.plot(t, [np.nan if v is None else v for v in values], linewidth=0.7, alpha=0.8,
                    color=PALETTE[(i + 1) % len(PALETTE)], label=rail)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("power (W)")
        ax.set_title(name, loc="left", fontsize=9)
        windows = [Patch(color=c, alpha=0.3, label=w) for w, c in WINDOW_COLOURS.items() if w in tl.windows]
        windows.append(Patch(color="#1f77b4", label="utterances"))
        lines, _ = ax.get_legend_handles_labels()
        ax.legend(handles=[*lines, *windows], loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  fontsize=7)
    axes[-1].set_xlabel("time since the container started (s)")
    fig.suptitle(title)
    notes = ["shaded: the load, warm-up and inference windows from the container's events; bottom strip: each "
             "utterance; before 0: the idle baseline"]
    if left_out:
        notes.append(f"{len(left_out)} more container(s) not drawn: " + ", ".join(n for n, _ in left_out))
    path = out_dir / TIMELINE_FILE
    save(fig, path, notes)
    return FigureResult(path, title)


# ---------------------------------------------------------------- latency distribution

def _streamed(rec: RecordFiles) -> bool:
    """A stream-mode record (issue 23): its utterances were heard chunk by chunk, never called whole; what a
    listener waits for is drawn by stream_figures.py (every play's finalization latency, not one call's), so the
    per-call latency figures leave it out rather than put two definitions on one axis."""
    return isinstance(rec.summary.get("stream"), dict)


def latency_percentiles(latencies_ms: Sequence[float]) -> tuple[float, float, float]:
    """p50, p90 and p99 (linear interpolation, as numpy's default)."""
    p50, p90, p99 = np.percentile(np.asarray(latencies_ms, dtype=float), [50, 90, 99])
    return float(p50), float(p90), float(p99)


@styled
def latency_distribution(sweep: Sweep, rows: Sequence[AggregateRow], records: Sequence[RecordFiles],
                         out_dir: Path) -> FigureResult | str:
    """Per condition: every utterance's latency as a faint dot, and p50, p90 and p99 over the repeats pooled
    (from utterances.jsonl; from the summaries' percentiles, averaged, where those files are missing)."""
    title = "Latency distribution per condition"
    chosen = list(rows) if len(rows) <= MAX_LATENCY_ROWS else [r for r in rows if r.key.noise_type == "clean"]
    chosen = chosen[:MAX_LATENCY_ROWS]
    groups = by_key(records)
    label = _label(chosen)
    lines = []
    for r in chosen:
        recs = [rec for rec in groups.get(r.key, []) if rec.status != "error" and not _streamed(rec)]
        points = [lat * 1000 for rec in recs for _, lat in utterance_points(sweep.results_dir, rec.condition_key)]
        if points:
            lines.append((label(r.key), points, latency_percentiles(points), "utterances"))
            continue
        summaries = [rec.summary.get("latency_ms") for rec in recs]
        pcts = [[s.get(p) for p in ("p50", "p90", "p99")] for s in summaries if isinstance(s, dict)]
        pcts = [p for p in pcts if all(isinstance(v, (int, float)) for v in p)]
        if pcts:
            lines.append((label(r.key), [], tuple(statistics.fmean(p[i] for p in pcts) for i in range(3)),
                          "summaries"))
    if not lines:
        return "latency distribution: no condition has per-utterance latencies or latency percentiles"
    fig = percentile_strips([line[:3] for line in lines], xlabel="latency per utterance (ms)",
                            dot_label="one utterance", title=title)
    notes = ["percentiles over every utterance of every repeat pooled"]
    from_summaries = [n for n, _, _, src in lines if src == "summaries"]
    if from_summaries:
        notes.append("from the summaries' percentiles (mean over repeats; no utterances.jsonl): "
                     + ", ".join(from_summaries))
    if len(chosen) < len(rows):
        notes.append(f"clean conditions only ({len(rows)} conditions in all)")
    path = out_dir / LATENCY_FILE
    save(fig, path, notes)
    return FigureResult(path, title)


# ---------------------------------------------------------------- latency against input length

@styled
def latency_vs_length(sweep: Sweep, rows: Sequence[AggregateRow], records: Sequence[RecordFiles],
                      out_dir: Path) -> FigureResult | str:
    """Each utterance's latency against its audio length (clean audio, repeats pooled), one colour per model
    and quant, with a least-squares line where the lengths span enough (runner/report/fit.py: drawn over the
    observed lengths only, its slope with its 95 % interval); where they do not, the notes say why."""
    title = "Latency against input length (clean audio)"
    clean = [r for r in rows if r.key.noise_type == "clean"]
    groups = by_key(records)
    base = series_labeller(clean)
    series = []
    for r in clean:
        points = [(d, lat * 1000) for rec in groups.get(r.key, []) if rec.status != "error" and not _streamed(rec)
                  for d, lat in utterance_points(sweep.results_dir, rec.condition_key)]
        if points:
            series.append((f"{base(r.key)}/{r.key.quant}", points))
    if not series:
        return "latency against input length: no clean condition has an utterances.jsonl with durations"
    fig = new_figure(7.5, 4.6)
    ax = fig.add_subplot()
    notes = []
    for i, (name, points) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        ax.scatter([d for d, _ in points], [lat for _, lat in points], s=12, color=colour, alpha=0.6,
                   marker=MARKERS[(i // len(PALETTE)) % len(MARKERS)], linewidths=0)
        fit = fit_against_length(points, name)
        if isinstance(fit, str):
            ax.scatter([], [], color=colour, label=f"{name} (no line: see the notes)")
            notes.append(fit)
            continue
        xs = np.array(fit.xs())
        ax.plot(xs, fit.at(xs), color=colour, linewidth=1.3, label=f"{name}: {fit.slope_text('ms')}")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("utterance length (s of audio)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False, fontsize=7)
    notes.insert(0, "dots: one utterance of one repeat; lines: least-squares fit over the lengths observed, its "
                    "slope with the 95 % interval (the cost of one more second of audio)")
    path = out_dir / LENGTH_FILE
    save(fig, path, notes)
    return FigureResult(path, title)


@styled
def growth_with_duration(sweep: Sweep, rows: Sequence[AggregateRow], records: Sequence[RecordFiles],
                         out_dir: Path) -> FigureResult | str:
    """Issue 24: latency, memory (each utterance's peak: the container's, else the sampler's) and energy of each
    utterance against its duration, up to the longest item (clean audio, repeats pooled), one panel each where
    the utterances record it, with the length fit's line and slope (runner/report/fit.py: the same rule as the
    latency figure), so that a backend whose memory grows with duration shows at a glance (its slope in MiB per
    audio second). Drawn only where some utterance records its memory or energy."""
    title = "Growth with duration (clean audio)"
    clean = [r for r in rows if r.key.noise_type == "clean"]
    groups = by_key(records)
    base = series_labeller(clean)
    panels = []
    for name, fields, factor, unit in GROWTH_PANELS:
        series = []
        for r in clean:
            recs = [rec for rec in groups.get(r.key, []) if rec.status != "error"]
            field = next((f for f in fields if any(utterance_values(sweep.results_dir, rec.condition_key, f)
                                                    for rec in recs)), None)
            points = [(d, v * factor) for rec in recs if field
                      for d, v in utterance_values(sweep.results_dir, rec.condition_key, field)]
            if points:
                series.append((f"{base(r.key)}/{r.key.quant}", points))
        if series:
            panels.append((name, unit, series))
    if not any(name != "latency" for name, _, _ in panels):
        return ("growth with duration: no utterance records its memory or energy (per-utterance memory needs "
                "the container's memory timeline or a memory-reporting sampler; energy a power sensor)")
    fig = new_figure(4.2 * len(panels) + 1.0, 4.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    notes = ["dots: one utterance of one repeat; lines: least-squares fit over the lengths observed, its slope with "
             "the 95 % interval (what one more second of audio costs)"]
    for ax, (name, unit, series) in zip(axes, panels):
        for i, (label, points) in enumerate(series):
            colour = PALETTE[i % len(PALETTE)]
            ax.scatter([d for d, _ in points], [v for _, v in points], s=10, color=colour, alpha=0.6, linewidths=0,
                       marker=MARKERS[(i // len(PALETTE)) % len(MARKERS)])
            fit = fit_against_length(points, f"{name} of {label}")
            if isinstance(fit, str):
                ax.scatter([], [], color=colour, label=f"{label} (no line: see the notes)")
                notes.append(fit)
                continue
            xs = np.array(fit.xs())
            ax.plot(xs, fit.at(xs), color=colour, linewidth=1.3,
                    label=f"{label}: {fit.slope_text(unit, 0 if unit == 'ms' else 2)}")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("utterance length (s of audio)")
        ax.set_ylabel(f"{name} ({unit})")
        ax.set_title(name)
        ax.legend(loc="upper left", frameon=False, fontsize=6)
    fig.suptitle(title)
    path = out_dir / GROWTH_FILE
    save(fig, path, notes)
    return FigureResult(path, title)
