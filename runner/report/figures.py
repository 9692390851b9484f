"""The report's PNG figures, drawn from aggregated rows with matplotlib's Agg renderer.

Four always; one putting the fleet's targets side by side where the rows hold more than one target; and one
more per numeric dotted axis that varies (e.g. ``decode.batch_size``): RTF and WER against that axis' value, one
line per model and quant.

Every figure shows the mean over repeats; whiskers are the Student-t 95 % interval where
there are 3 repeats or more, the min-max of the repeats where there are 2 (a t-interval over
2 values is 12.7 times their spread), none where there is 1, and never reach below 0. An
unavailable value is never drawn as 0: a missing bar is labelled
"unavailable", a missing point is left out and named in the notes under the
plot, and a figure whose data is entirely unavailable becomes a text panel
saying so and why ("energy unavailable: <reason>"), so a reader of the image
alone cannot mistake "not measured" for "free".

Deterministic: no pyplot (no global figure state, no GUI backend), fixed
rcParams, and no matplotlib version in the PNG metadata, so the same results
give the same bytes.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from .aggregate import (AggregateRow, GroupKey, KeyNames, Stat, axes_that_vary, format_axis_value, is_number,
                        versions_that_vary)

DPI = 150
PNG_METADATA = {"Software": None}  # drop the matplotlib version: same data, same bytes
STYLE = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every host
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "text.parse_math": False,  # names come from strangers: "$\\frac{$" is text, not mathtext that fails to parse
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
NO_WHISKER = float("nan")  # n = 1: no interval, so no whisker (a 0 would draw a cap that looks like certainty)
MIN_REPEATS_FOR_CI = 3  # below this the whiskers show the repeats' min-max, not a t-interval
CI_NOTE = ("bars and points: mean over repeats; whiskers: 95 % CI (Student t) where n >= 3, min-max of the "
           "repeats where n = 2, none where n = 1; never below 0")

ENERGY_FILE = "energy_by_model_quant.png"
WER_FILE = "wer_by_noise.png"
RTF_RAM_FILE = "rtf_ram_by_model_quant.png"
SCATTER_FILE = "accuracy_vs_energy.png"
ENERGY_SNR_FILE = "energy_by_noise.png"
TARGETS_FILE = "targets.png"  # only where the rows hold more than one fleet target
AXIS_FILE = "rtf_vs_{path}.png"  # one per numeric dotted axis that varies
TARGET_AXIS = "target"  # the fleet's grid axis (grid.targets): the device class a condition ran on


@dataclass(frozen=True)
class FigureResult:
    """A written figure. ``unavailable`` is the text drawn instead of the data when
    none of it was available (e.g. "energy unavailable: no energy source"), else None."""

    path: Path
    title: str
    unavailable: str | None = None

    @property
    def available(self) -> bool:
        return self.unavailable is None


def write_figures(rows: Sequence[AggregateRow], out_dir: Path, sweep=None,
                  skipped: list[str] | None = None) -> list[FigureResult]:
    """Every figure into ``out_dir`` (created), in the order the report shows them: the four, the targets side by
    side where the rows hold more than one, then one per numeric dotted axis that varies.

    With ``sweep`` (the Sweep the rows came from: its results folder holds the per-utterance and per-group
    files) the study figures follow, each only where its data exists: energy against SNR, energy per rail,
    power over time, latency distribution, latency against input length (runner/report/study_figures.py);
    ``skipped`` (a list) receives one line per study figure left out and why, for the report's notes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [energy_by_model_quant(rows, out_dir), wer_by_noise(rows, out_dir),
               rtf_ram_by_model_quant(rows, out_dir), accuracy_vs_energy(rows, out_dir),
               *([targets_by_model_quant(rows, out_dir)] if len(targets_of(rows)) > 1 else []),
               *(metrics_vs_axis(rows, path, out_dir) for path in numeric_axes(rows)),
               *power_figures(rows, out_dir)]
    if sweep is not None:
        from .study_figures import write_study_figures

        if _has_noise(rows) and _any_available([r for r in rows if r.key.noise_type != "clean"], "j_per_audio_s"):
            figures.append(energy_by_noise(rows, out_dir))
        figures += write_study_figures(sweep, rows, out_dir, skipped)
    return figures


def _has_noise(rows: Sequence[AggregateRow]) -> bool:
    return any(r.key.noise_type != "clean" for r in rows)


def whisker(st: Stat) -> tuple[float, float] | None:
    """How far the whisker reaches (below, above) the mean: the 95 % CI where n >= 3, the repeats' min-max
    where n = 2, None where there is no spread to show (n < 2). Never below 0: every figure here is a
    non-negative quantity, so a whisker that would cross 0 stops there.

    Reads ``min``/``max`` when the Stat has them; for n = 2 they also follow from the sample std (the two
    values are mean -/+ std/sqrt(2)), so older Stats without them draw the same."""
    if st.mean is None or st.n < 2:
        return None
    if st.n < MIN_REPEATS_FOR_CI:
        lo, hi = getattr(st, "min", None), getattr(st, "max", None)
        if not (is_number(lo) and is_number(hi)):
            if st.std is None:
                return None
            half = st.std / 2 ** 0.5
            lo, hi = st.mean - half, st.mean + half
        below, above = st.mean - lo, hi - st.mean
    else:
        ci = getattr(st, "ci95", None)
        if ci is None:
            return None
        below = above = ci
    return max(0.0, min(below, st.mean)), max(0.0, above)


def _yerr(whiskers: Sequence[tuple[float, float] | None], scale: float = 1.0) -> list[list[float]]:
    """Whiskers as matplotlib's asymmetric (2, N) error array; NaN where there is none."""
    return [[w[0] * scale if w else NO_WHISKER for w in whiskers], [w[1] * scale if w else NO_WHISKER
                                                                     for w in whiskers]]


def numeric_axes(rows: Sequence[AggregateRow]) -> list[str]:
    """The dotted axes that vary among the rows and hold only numbers (a text or switch axis has no x scale)."""
    keys = [r.key for r in rows]
    return [p for p in axes_that_vary(keys) if all(is_number(k.axis(p)) for k in keys)]


def axis_file(path: str) -> str:
    """The figure's file name for an axis: "rtf_vs_decode.batch_size.png" (odd characters become "_")."""
    return AXIS_FILE.format(path=re.sub(r"[^A-Za-z0-9._-]", "_", path))


def _styled(draw: Callable[..., FigureResult]) -> Callable[..., FigureResult]:
    """Run a figure function under STYLE: fonts are fixed when artists are made, not when saved."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> FigureResult:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------- the figures

@_styled
def energy_by_model_quant(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(a) Energy per second of audio (J/s) by model and quant, clean audio, grouped bars with CI."""
    title = "Energy per second of audio (clean audio)"
    path = Path(out_dir) / ENERGY_FILE
    clean = _clean(rows)
    if not clean:
        return _text_figure(path, title, "energy unavailable: no clean-audio condition in this sweep")
    if not _any_available(clean, "j_per_audio_s"):
        return _text_figure(path, title, _unavailable_text("energy", clean, "j_per_audio_s"))
    fig = _figure(7.0, 4.2)
    ax = fig.add_subplot()
    notes = _grouped_bars(ax, clean, "j_per_audio_s", "energy", "{:.3f}")
    ax.set_ylabel("energy per audio second (J/s)")
    ax.set_title(title)
    _save(fig, path, [CI_NOTE, *notes, *_failure_notes(clean)])
    return FigureResult(path, title)


@_styled
def wer_by_noise(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(b) WER (%) against SNR as a numeric axis (harsher to the right), clean set apart at the left; one panel
    per noise type."""
    return _by_noise(rows, Path(out_dir) / WER_FILE, "WER against noise level", "wer", "WER", "WER (%)", 100.0)


@_styled
def energy_by_noise(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """Energy per audio second (J/s) against SNR, clean set apart; one panel per noise type."""
    return _by_noise(rows, Path(out_dir) / ENERGY_SNR_FILE, "Energy against noise level", "j_per_audio_s",
                     "energy", "energy per audio second (J/s)", 1.0)


def snr_positions(snrs: Sequence[float]) -> tuple[dict[float, float], float, float]:
    """x positions on a numeric SNR axis: each SNR at its own value, clean one gap above the highest (drawn at
    the left of an inverted axis, past a break), "no SNR" one gap below the lowest. Returns (SNR -> x,
    clean x, no-SNR x)."""
    if not snrs:
        return {}, 0.0, -1.0
    hi, lo = max(snrs), min(snrs)
    gap = max(4.0, 0.3 * (hi - lo))
    return {s: float(s) for s in snrs}, hi + gap, lo - gap


def _by_noise(rows: Sequence[AggregateRow], path: Path, title: str, metric: str, what: str, ylabel: str,
              scale: float) -> FigureResult:
    if not _any_available(rows, metric):
        return _text_figure(path, title, _unavailable_text(what, rows, metric))
    clean = _clean(rows)
    noise_types = list(dict.fromkeys(r.key.noise_type for r in rows if r.key.noise_type != "clean"))
    panels = noise_types or ["clean"]
    label = _series_labeller(rows)
    series = list(dict.fromkeys((label(r.key), r.key.quant) for r in rows))
    models = list(dict.fromkeys(m for m, _ in series))
    quants = list(dict.fromkeys(q for _, q in series))
    fig = _figure(max(5.0, 3.8 * len(panels)) + 0.5, 4.4)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    notes: list[str] = []
    top = 0.0  # highest mean + whisker drawn: the shared y axis runs from 0 to a little above it
    for ax, noise in zip(axes, panels):
        noisy = [r for r in rows if r.key.noise_type == noise and noise != "clean"]
        snrs = sorted({r.key.snr_db for r in noisy if r.key.snr_db is not None}, reverse=True)
        xs_of, clean_x, none_x = snr_positions(snrs)
        levels: list[tuple[str, float, Callable[[GroupKey], bool]]] = []
        if clean:
            levels.append(("clean", clean_x, lambda k: k.noise_type == "clean"))
        levels += [(f"{s:g}", xs_of[s], lambda k, s=s: k.snr_db == s) for s in snrs]
        if any(r.key.snr_db is None for r in noisy):
            levels.append(("no SNR", none_x, lambda k: k.noise_type == noise and k.snr_db is None))
        span = (max(x for _, x, _ in levels) - min(x for _, x, _ in levels)) or 1.0
        dodge = 0.012 * span if len(series) > 1 else 0.0
        for i, (model, quant) in enumerate(series):
            offset = (i - (len(series) - 1) / 2) * dodge
            segments: list[tuple[list[float], list[float], list]] = [([], [], []), ([], [], [])]  # clean, SNRs
            for level, x, match in levels:
                row = next((r for r in (clean if level == "clean" else noisy)
                            if match(r.key) and label(r.key) == model and r.key.quant == quant), None)
                if row is None:
                    continue  # never run: nothing to say
                part = segments[0] if level == "clean" else segments[1]
                st = row.stat(metric)
                part[0].append(x + offset)
                if st.mean is None:
                    where = "clean" if level == "clean" else f"{noise} {level} dB"
                    notes.append(f"{model}/{quant} {where}: {what} unavailable ({'; '.join(st.reasons)})")
                    part[1].append(float("nan"))  # a gap in the line, not a 0
                    part[2].append(None)
                    continue
                w = whisker(st)
                part[1].append(st.mean * scale)
                part[2].append(w)
                top = max(top, st.mean * scale + (w[1] * scale if w else 0.0))
            style = dict(color=PALETTE[models.index(model) % len(PALETTE)], marker=MARKERS[quants.index(quant)
                         % len(MARKERS)], markersize=4, capsize=3, linewidth=1.4, elinewidth=0.9)
            for xs, ys, ws in segments:  # clean is not joined to the SNR line: it is not on the SNR scale
                if xs:
                    ax.errorbar(xs, ys, yerr=_yerr(ws, scale), linestyle=LINESTYLES[quants.index(quant)
                                % len(LINESTYLES)], **style)
        ax.set_xticks([x for _, x, _ in levels], [lv for lv, _, _ in levels])
        pad = 0.08 * span
        ax.set_xlim(max(x for _, x, _ in levels) + pad, min(x for _, x, _ in levels) - pad)  # harsher right
        if clean and snrs:
            brk = (clean_x + max(snrs)) / 2
            ax.axvline(brk, color="0.6", linewidth=0.8, linestyle=(0, (2, 2)))
            ax.text(brk, 1.0, "//", transform=blended_transform_factory(ax.transData, ax.transAxes),
                    ha="center", va="center", fontsize=9, color="0.4", clip_on=False)
        ax.set_xlabel("SNR (dB), harsher to the right" if noise != "clean" else "")
        ax.set_title(f"{noise} noise" if noise != "clean" else "clean audio only")
    axes[0].set_ylim(0, top * 1.08 if top > 0 else 1.0)
    axes[0].set_ylabel(ylabel)
    handles = [Line2D([], [], color=PALETTE[i % len(PALETTE)], linewidth=2, label=m) for i, m in enumerate(models)]
    handles += [Line2D([], [], color="0.3", linestyle=LINESTYLES[j % len(LINESTYLES)],
                       marker=MARKERS[j % len(MARKERS)], label=q) for j, q in enumerate(quants)]
    axes[-1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="model / quant",
                    frameon=False)
    fig.suptitle(title)
    _save(fig, path, [CI_NOTE.replace("bars and points", "points") + "; SNR on a numeric scale, clean set apart",
                      *dict.fromkeys(notes), *_failure_notes(rows)])
    return FigureResult(path, title)


@_styled
def rtf_ram_by_model_quant(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(c) RTF and peak RAM by model and quant, clean audio: two panels of grouped bars with CI."""
    title = "Speed and memory (clean audio)"
    path = Path(out_dir) / RTF_RAM_FILE
    clean = _clean(rows)
    if not clean:
        return _text_figure(path, title, "RTF and peak RAM unavailable: no clean-audio condition in this sweep")
    panels = (("rtf", "RTF", "RTF (processing time / audio time)", "{:.3f}"),
              ("peak_rss_mb", "peak RAM", "peak RAM (MB)", "{:.0f}"))
    if not any(_any_available(clean, metric) for metric, *_ in panels):
        return _text_figure(path, title, "\n".join(_unavailable_text(what, clean, metric)
                                                   for metric, what, *_ in panels))
    fig = _figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    notes: list[str] = []
    for ax, (metric, what, ylabel, fmt) in zip(axes, panels):
        ax.set_title(f"{what}, lower is better")
        if not _any_available(clean, metric):
            _text_in_axes(ax, _unavailable_text(what, clean, metric))
            continue
        notes += _grouped_bars(ax, clean, metric, what, fmt)
        ax.set_ylabel(ylabel)
    fig.suptitle(title)
    _save(fig, path, [CI_NOTE, *dict.fromkeys(notes), *_failure_notes(clean)])
    return FigureResult(path, title)


@_styled
def accuracy_vs_energy(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(d) WER against energy per audio second, clean audio: size = peak RAM, colour = RTF.

    Lower left is better. A model without energy or WER cannot be placed and is
    named in the notes; one without RAM or RTF is drawn at a fixed size or in
    grey, and named too.
    """
    title = "Accuracy against energy (clean audio)"
    path = Path(out_dir) / SCATTER_FILE
    clean = _clean(rows)
    if not clean:
        return _text_figure(path, title, "energy and WER unavailable: no clean-audio condition in this sweep")
    missing = [_unavailable_text(what, clean, metric)
               for metric, what in (("j_per_audio_s", "energy"), ("wer", "WER")) if not _any_available(clean, metric)]
    if missing:
        return _text_figure(path, title, "\n".join(missing))
    label = _series_labeller(clean)
    placed = [r for r in clean if r.stat("j_per_audio_s").mean is not None and r.stat("wer").mean is not None]
    notes = [f"{label(r.key)}/{r.key.quant}: not placed, " + "; ".join(
        f"{what} unavailable ({'; '.join(r.stat(m).reasons)})"
        for m, what in (("j_per_audio_s", "energy"), ("wer", "WER")) if r.stat(m).mean is None)
        for r in clean if r not in placed]
    if not placed:
        return _text_figure(path, title, "no model has both energy and WER on clean audio\n" + "\n".join(notes))
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    rss = [r.stat("peak_rss_mb").mean for r in placed]
    max_rss = max((v for v in rss if v is not None), default=None)
    rtfs = [r.stat("rtf").mean for r in placed]
    known_rtf = [v for v in rtfs if v is not None]
    norm = Normalize(min(known_rtf), max(known_rtf)) if known_rtf else Normalize(0, 1)
    if known_rtf and norm.vmin == norm.vmax:
        norm = Normalize(norm.vmin * 0.9, norm.vmax * 1.1 + 1e-9)
    cmap = matplotlib.colormaps["viridis"]
    area = 500.0  # points² for the largest peak RAM; area is proportional to RAM
    for r, mem, speed in zip(placed, rss, rtfs):
        x, y = r.stat("j_per_audio_s"), r.stat("wer")
        wx, wy = whisker(x), whisker(y)
        if wx is not None or wy is not None:  # n = 1 has no spread: draw no whisker, not a 0-wide one
            ax.errorbar([x.mean], [y.mean * 100], xerr=None if wx is None else _yerr([wx]),
                        yerr=None if wy is None else _yerr([wy], 100.0),
                        fmt="none", ecolor="0.6", elinewidth=0.8, capsize=2, zorder=1)
        size = area * mem / max_rss if mem is not None and max_rss else 60.0
        colour = cmap(norm(speed)) if speed is not None else "lightgrey"
        ax.scatter([x.mean], [y.mean * 100], s=size, color=colour, edgecolors="black", linewidths=0.6,
                   alpha=0.9, zorder=2, linestyle="-" if mem is not None else "--")
        name = f"{label(r.key)}/{r.key.quant}"
        # Beside the marker (its radius is sqrt(area)/2 points), boxed so a neighbour cannot hide it.
        # One part a line ("tiny.en", "decode.batch_size=4"): a sweep over axes makes long names.
        ax.annotate(name.replace(" · ", "\n"), (x.mean, y.mean * 100),
                    xytext=(size ** 0.5 / 2 + 3, 0), textcoords="offset points",
                    fontsize=8, va="center", zorder=3,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        if mem is None:
            notes.append(f"{name}: peak RAM unavailable ({'; '.join(r.stat('peak_rss_mb').reasons)}), drawn small")
        if speed is None:
            notes.append(f"{name}: RTF unavailable ({'; '.join(r.stat('rtf').reasons)}), drawn grey")
    front = pareto_front([(r.stat("j_per_audio_s").mean, r.stat("wer").mean * 100) for r in placed])
    if len(placed) > 1:
        fx, fy = zip(*front)
        ax.step(fx, fy, where="post", color="0.25", linestyle="--", linewidth=1.0, zorder=1.5)
        ax.scatter(fx, fy, s=14, color="0.15", marker="x", linewidths=0.8, zorder=2.5)
        notes.insert(0, "dashed line: the Pareto front (no other model is both more accurate and cheaper): "
                        + ", ".join(f"{label(r.key)}/{r.key.quant}" for r in placed
                                    if (r.stat("j_per_audio_s").mean, r.stat("wer").mean * 100) in front))
    if known_rtf:
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
        bar.set_label("RTF (processing time / audio time)")
    if max_rss:
        refs = sorted({_round_nice(max_rss), _round_nice(max_rss / 2)})
        handles = [ax.scatter([], [], s=area * v / max_rss, color="white", edgecolors="black", label=f"{v:g} MB")
                   for v in refs]
        ax.legend(handles=handles, title="peak RAM", loc="best", labelspacing=1.6, borderpad=1.0, frameon=False)
    ax.margins(0.15)
    ax.set_xlabel("energy per audio second (J/s)")
    ax.set_ylabel("WER (%)")
    ax.set_title(title + ": lower left is better")
    _save(fig, path, [CI_NOTE.replace("bars and points", "points") + "; marker area proportional to peak RAM",
                      *notes, *_failure_notes(clean)])
    return FigureResult(path, title)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both (lower x and lower y better), by ascending x: each one is
    strictly more accurate than every cheaper one."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(set(points)):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


def targets_of(rows: Sequence[AggregateRow]) -> list[str]:
    """The fleet targets among the rows, in the rows' order, as the table shows them ("–" for a row without the
    target axis: one from a sweep that did not vary it)."""
    return list(dict.fromkeys(_target(r.key) for r in rows))


def _target(key: GroupKey) -> str:
    return format_axis_value(key.axis(TARGET_AXIS))


@_styled
def targets_by_model_quant(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """The fleet's targets side by side (issue 11), clean audio: energy per audio second, RTF, WER (%) and peak
    RAM in four panels of grouped bars, model/quant (and any other varying axis) on x and one bar per target, mean
    with the whiskers of every bar figure. A metric no target measured is a panel saying why; one that a target
    did not measure is an "unavailable" mark and a note in its place, never a 0 bar."""
    title = "Targets side by side (clean audio)"
    path = Path(out_dir) / TARGETS_FILE
    clean = _clean(rows)
    if not clean:
        return _text_figure(path, title, "targets not compared: no clean-audio condition in this sweep")
    # (metric, what a note calls it, panel title, y label, bar label format, scale)
    panels = (("j_per_audio_s", "energy", "energy per audio second", "energy per audio second (J/s)", "{:.3f}", 1.0),
              ("rtf", "RTF", "RTF", "RTF (processing time / audio time)", "{:.3f}", 1.0),
              ("wer", "WER", "WER", "WER (%)", "{:.1f}", 100.0),
              ("peak_rss_mb", "peak RAM", "peak RAM", "peak RAM (MB)", "{:.0f}", 1.0))
    if not any(_any_available(clean, metric) for metric, *_ in panels):
        return _text_figure(path, title, "\n".join(_unavailable_text(what, clean, metric)
                                                   for metric, what, *_ in panels))
    label = _series_labeller(clean, exclude=(TARGET_AXIS,))
    fig = _figure(15.0, 4.6)
    axes = fig.subplots(1, len(panels))
    notes: list[str] = []
    for ax, (metric, what, heading, ylabel, fmt, scale) in zip(axes, panels):
        ax.set_title(f"{heading}, lower is better")
        if not _any_available(clean, metric):
            _text_in_axes(ax, _unavailable_text(what, clean, metric), width=30)  # a quarter-width panel
            continue
        notes += _grouped_bars(ax, clean, metric, what, fmt, scale=scale,
                               category=lambda k: f"{label(k)}/{k.quant}", series=_target,
                               xlabel="model / quant", legend_title=None)
        ax.set_ylabel(ylabel)
    fig.legend(handles=bar_handles(targets_of(clean)), title="target", loc="outside right upper", frameon=False)
    fig.suptitle(title)
    _save(fig, path, [CI_NOTE, *dict.fromkeys(notes), *_failure_notes(clean)])
    return FigureResult(path, title)


@_styled
def metrics_vs_axis(rows: Sequence[AggregateRow], path: str, out_dir: Path) -> FigureResult:
    """RTF and WER against a numeric dotted axis (e.g. decode.batch_size), clean audio: one line per model and
    quant (and per value of any other varying axis), mean with 95 % CI; an unavailable point is a gap, named."""
    title = f"Speed and accuracy against {path} (clean audio)"
    out = Path(out_dir) / axis_file(path)
    clean = [r for r in _clean(rows) if is_number(r.key.axis(path))]
    if not clean:
        return _text_figure(out, title, f"RTF and WER unavailable: no clean-audio condition with a number for {path}")
    panels = (("rtf", "RTF", "RTF (processing time / audio time)", 1.0), ("wer", "WER", "WER (%)", 100.0))
    if not any(_any_available(clean, metric) for metric, *_ in panels):
        return _text_figure(out, title, "\n".join(_unavailable_text(what, clean, metric)
                                                  for metric, what, *_ in panels))
    label = _series_labeller(clean, exclude=(path,))
    series = list(dict.fromkeys(f"{label(r.key)}/{r.key.quant}" for r in clean))
    xs_all = sorted({r.key.axis(path) for r in clean})
    fig = _figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    notes: list[str] = []
    for ax, (metric, what, ylabel, scale) in zip(axes, panels):
        ax.set_title(f"{what}, lower is better")
        if not _any_available(clean, metric):
            _text_in_axes(ax, _unavailable_text(what, clean, metric))
            continue
        for i, name in enumerate(series):
            points = sorted(((r.key.axis(path), r) for r in clean if f"{label(r.key)}/{r.key.quant}" == name),
                            key=lambda point: point[0])
            xs, ys, ws = [], [], []
            for x, r in points:
                st = r.stat(metric)
                xs.append(x)
                if st.mean is None:
                    notes.append(f"{name} {path}={format_axis_value(x)}: {what} unavailable "
                                 f"({'; '.join(st.reasons)})")
                    ys.append(float("nan"))  # a gap in the line, not a 0
                    ws.append(None)
                    continue
                ys.append(st.mean * scale)
                ws.append(whisker(st))
            ax.errorbar(xs, ys, yerr=_yerr(ws, scale), color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)],
                        linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)], markersize=4, capsize=3,
                        linewidth=1.4, elinewidth=0.9, label=name)
        ax.set_xticks(xs_all, [format_axis_value(x) for x in xs_all])
        ax.set_xlabel(path)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.margins(x=0.08)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="model / quant", frameon=False)
    fig.suptitle(title)
    _save(fig, out, [CI_NOTE.replace("bars and points", "points"), *dict.fromkeys(notes), *_failure_notes(clean)])
    return FigureResult(out, title)


# ---------------------------------------------------------------- helpers

def _clean(rows: Sequence[AggregateRow]) -> list[AggregateRow]:
    return [r for r in rows if r.key.noise_type == "clean"]


def _failure_notes(rows: Sequence[AggregateRow]) -> list[str]:
    """One line per condition with failed runs: a mean over fewer repeats should say so."""
    label = _series_labeller(rows)
    return [f"{label(r.key)}/{r.key.quant} {r.key.noise_label}: {r.n_failed} of {r.n_runs} runs failed "
            f"({'; '.join(r.errors)}), not averaged in" for r in rows if r.n_failed]


def _any_available(rows: Sequence[AggregateRow], metric: str) -> bool:
    return any(r.stat(metric).mean is not None for r in rows)


def _reasons(rows: Sequence[AggregateRow], metric: str) -> list[str]:
    return list(dict.fromkeys(reason for r in rows for reason in r.stat(metric).reasons))


def _unavailable_text(what: str, rows: Sequence[AggregateRow], metric: str) -> str:
    """"energy unavailable: <reasons>", the line drawn in place of a figure or panel."""
    reasons = _reasons(rows, metric)
    return f"{what} unavailable: " + ("; ".join(reasons) if reasons else "no runs")


def _series_labeller(rows: Sequence[AggregateRow], exclude: Sequence[str] = ()) -> Callable[[GroupKey], str]:
    """The model as a category label (its display name: a path tail where two share a name), with backend,
    device and dataset where the sweep varies them, the library versions (else the image) where it varies
    the image, and each varying dotted axis as "path=value" (less those in ``exclude``: a figure's x axis)."""
    keys = [r.key for r in rows]
    names = KeyNames.of(keys)
    varying = [k for k in ("backend", "device") if len({getattr(key, k) for key in keys}) > 1]
    datasets = len({key.dataset_id for key in keys}) > 1
    axes = [p for p in axes_that_vary(keys) if p not in exclude]
    versions = versions_that_vary(keys)
    images = len({key.image for key in keys}) > 1

    def label(key: GroupKey) -> str:
        parts = [key.backend] if "backend" in varying else []
        parts.append(names.model(key))
        parts += [key.device] if "device" in varying else []
        parts += [names.dataset(key)] if datasets else []
        if versions:
            parts.append(versions[key])
        elif images:
            parts.append(key.image)
        parts += [f"{p}={format_axis_value(key.axis(p))}" for p in axes]
        return " · ".join(parts)

    return label


def _grouped_bars(ax, rows: Sequence[AggregateRow], metric: str, what: str, fmt: str, *, scale: float = 1.0,
                  category: Callable[[GroupKey], str] | None = None,
                  series: Callable[[GroupKey], str] | None = None, xlabel: str = "model",
                  legend_title: str | None = "quant") -> list[str]:
    """Bars of ``metric`` (times ``scale``: 100 for a WER in %) with one group per ``category`` on x (the model
    label unless given) and one bar per ``series`` in each (the quant unless given); returns notes for
    unavailable bars, "<category>/<series>: <what> unavailable (<reasons>)". ``legend_title`` None: no legend
    on the axes (a figure of several panels draws one for all)."""
    label = category or _series_labeller(rows)
    series_of = series or (lambda key: key.quant)
    models = list(dict.fromkeys(label(r.key) for r in rows))
    quants = list(dict.fromkeys(series_of(r.key) for r in rows))
    by_cell = {(label(r.key), series_of(r.key)): r for r in rows}
    width = 0.8 / len(quants)
    bottom_of_axes = blended_transform_factory(ax.transData, ax.transAxes)
    notes = []
    for j, quant in enumerate(quants):
        xs, heights, ws = [], [], []
        for i, model in enumerate(models):
            row = by_cell.get((model, quant))
            if row is None:
                continue  # never run: nothing to say
            x = i - 0.4 + width * (j + 0.5)
            st: Stat = row.stat(metric)
            if st.mean is None:
                ax.text(x, 0.02, "unavailable", transform=bottom_of_axes, rotation=90, ha="center", va="bottom",
                        fontsize=7, color="0.35", style="italic")
                notes.append(f"{model}/{quant}: {what} unavailable ({'; '.join(st.reasons)})")
                continue
            xs.append(x)
            heights.append(st.mean * scale)
            ws.append(whisker(st))
        if not xs:
            ax.bar([], [], width, color=PALETTE[j % len(PALETTE)], label=quant)
            continue
        bars = ax.bar(xs, heights, width * 0.95, yerr=_yerr(ws, scale), capsize=3, color=PALETTE[j % len(PALETTE)],
                      label=quant, error_kw={"elinewidth": 0.9, "ecolor": "0.2"})
        ax.bar_label(bars, labels=[fmt.format(h) for h in heights], padding=2, fontsize=7)
    _category_ticks(ax, models)
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_xlabel(xlabel)
    ax.margins(y=0.12)
    if legend_title is not None:
        ax.legend(handles=bar_handles(quants), title=legend_title, frameon=False)
    return notes


def bar_handles(names: Sequence[str]) -> list[Patch]:
    """Legend entries for _grouped_bars' series, in its order and colours: made here rather than read off the
    axes, where a series with no bar at all (every value unavailable) has no colour to give."""
    return [Patch(color=PALETTE[j % len(PALETTE)], label=name) for j, name in enumerate(names)]


def _category_ticks(ax, labels: Sequence[str]) -> None:
    """Category labels under bars, one part per line ("tiny.en", "decode.batch_size=4"), slanted when even
    so they would run into each other: a sweep over axes makes long labels."""
    lines = [label.replace(" · ", "\n") for label in labels]
    widest = max((len(part) for label in lines for part in label.splitlines()), default=0)
    axes_width_in = ax.get_position().width * ax.get_figure().get_figwidth()
    per_category_chars = axes_width_in * 14 / max(1, len(labels))  # about 14 characters an inch at 8 pt
    if widest > per_category_chars and len(labels) > 1:
        ax.set_xticks(range(len(labels)), lines, rotation=30, ha="right", rotation_mode="anchor")
    else:
        ax.set_xticks(range(len(labels)), lines)


def _round_nice(value: float) -> float:
    """A round number near ``value`` for a size legend (600, 250, 1000...)."""
    step = 10 ** max(0, len(str(int(value))) - 2)
    return max(step, round(value / step) * step)


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg raster canvas: no display, no global backend switch
    return fig


def _text_in_axes(ax, text: str, width: int = 48) -> None:
    """``text`` in a box in place of the axes' plot, wrapped at ``width`` characters (narrower for a narrow panel)."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, _wrap(text, width), transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="0.25", bbox={"boxstyle": "round,pad=0.8", "facecolor": "0.95", "edgecolor": "0.7"})


def _text_figure(path: Path, title: str, message: str) -> FigureResult:
    """A PNG that says in words why there is nothing to plot: never an empty or all-zero plot."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(7.0, 3.2)
        ax = fig.add_subplot()
        ax.set_title(title)
        _text_in_axes(ax, message)
        _write(fig, path)
    return FigureResult(path, title, unavailable=message)


def _save(fig: Figure, path: Path, notes: Sequence[str]) -> None:
    """Reserve room under the plot for the notes, then write the PNG."""
    lines = [line for note in notes for line in textwrap.wrap(note, width=int(fig.get_figwidth() * 15))]
    if lines:
        extra_in = 0.16 * len(lines) + 0.12
        height = fig.get_figheight()
        fig.set_figheight(height + extra_in)
        bottom = extra_in / (height + extra_in)
        fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
        fig.text(0.01, bottom - 0.03 / (height + extra_in), "\n".join(lines), ha="left", va="top", fontsize=7,
                 color="0.3", linespacing=1.4)
    _write(fig, path)


def _write(fig: Figure, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, dpi=DPI, format="png", metadata=PNG_METADATA)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


# ---------------------------------------------------------------- operating points (issue 12)

POWER_FREQ_AXIS = "power.gpu_freq_mhz"
POWER_MODE_AXIS = "power.mode"
POWER_FREQ_FILE = "energy_rtf_vs_gpu_freq.png"
POWER_MODE_FILE = "energy_rtf_by_power_mode.png"
OPTIMUM_NOTE = "star: each line's energy-optimal point (lowest mean energy per audio second)"


def power_figures(rows: Sequence[AggregateRow], out_dir: Path) -> list[FigureResult]:
    """The operating-point figures for the power axes this sweep varies (none when it varies neither):
    energy per audio second and RTF against the GPU clock, and per power mode."""
    keys = [r.key for r in rows]
    varying = axes_that_vary(keys)
    out = []
    if POWER_FREQ_AXIS in varying:
        out.append(energy_rtf_vs_power_axis(rows, POWER_FREQ_AXIS, out_dir))
    if POWER_MODE_AXIS in varying:
        out.append(energy_rtf_vs_power_axis(rows, POWER_MODE_AXIS, out_dir))
    return out


@_styled
def energy_rtf_vs_power_axis(rows: Sequence[AggregateRow], path: str, out_dir: Path) -> FigureResult:
    """Energy per audio second and RTF against an operating-point axis (the GPU clock in MHz, or the power
    mode as a category), clean audio, one line per model and quant (and any other varying axis), mean with
    95 % CI; each line's energy-optimal point is marked with a star on both panels. An unavailable point is a
    gap, named in the notes."""
    numeric = path == POWER_FREQ_AXIS
    what_x = "GPU clock (MHz)" if numeric else "power mode"
    title = f"Energy and speed against the {'GPU clock' if numeric else 'power mode'} (clean audio)"
    out = Path(out_dir) / (POWER_FREQ_FILE if numeric else POWER_MODE_FILE)
    clean = [r for r in _clean(rows) if r.key.axis(path) not in (None, _missing_axis())
             and (is_number(r.key.axis(path)) or not numeric)]
    if not clean:
        return _text_figure(out, title, f"energy and RTF unavailable: no clean-audio condition with a value for {path}")
    panels = (("j_per_audio_s", "energy per audio second", "energy per audio second (J/s)"),
              ("rtf", "RTF", "RTF (processing time / audio time)"))
    if not any(_any_available(clean, metric) for metric, *_ in panels):
        return _text_figure(out, title, "\n".join(_unavailable_text(what, clean, metric) for metric, what, _ in panels))
    label = _series_labeller(clean, exclude=(path,))
    series = list(dict.fromkeys(f"{label(r.key)}/{r.key.quant}" for r in clean))
    values = list(dict.fromkeys(r.key.axis(path) for r in clean))
    values = sorted(values) if numeric else values  # modes in the sweep's order (the plan runs them so)
    position = {v: (v if numeric else i) for i, v in enumerate(values)}
    optimum: dict[str, object] = {}
    for name in series:
        cands = [(r.stat("j_per_audio_s").mean, r.key.axis(path)) for r in clean
                 if f"{label(r.key)}/{r.key.quant}" == name and r.stat("j_per_audio_s").mean is not None]
        if cands:
            optimum[name] = min(cands, key=lambda c: c[0])[1]
    fig = _figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    notes: list[str] = []
    for ax, (metric, what, ylabel) in zip(axes, panels):
        ax.set_title(f"{what}, lower is better")
        if not _any_available(clean, metric):
            _text_in_axes(ax, _unavailable_text(what, clean, metric))
            continue
        for i, name in enumerate(series):
            color = PALETTE[i % len(PALETTE)]
            points = sorted(((position[r.key.axis(path)], r) for r in clean if f"{label(r.key)}/{r.key.quant}" == name),
                            key=lambda point: point[0])
            xs, ys, errs = [], [], []
            for x, r in points:
                st = r.stat(metric)
                xs.append(x)
                if st.mean is None:
                    notes.append(f"{name} {path}={format_axis_value(r.key.axis(path))}: {what} unavailable "
                                 f"({'; '.join(st.reasons)})")
                    ys.append(float("nan"))
                    errs.append(float("nan"))
                    continue
                ys.append(st.mean)
                errs.append(st.ci95 if st.ci95 is not None else NO_WHISKER)
                if name in optimum and r.key.axis(path) == optimum[name]:
                    ax.plot([x], [st.mean], marker="*", markersize=14, color=color, markeredgecolor="black",
                            linestyle="none", zorder=5)
            ax.errorbar(xs, ys, yerr=errs, color=color, marker=MARKERS[i % len(MARKERS)],
                        linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)], markersize=4, capsize=3,
                        linewidth=1.4, elinewidth=0.9, label=name)
        ax.set_xticks([position[v] for v in values], [format_axis_value(v) for v in values])
        ax.set_xlabel(what_x)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.margins(x=0.08)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="model / quant", frameon=False)
    fig.suptitle(title)
    best = [f"{name}: energy-optimal at {path}={format_axis_value(v)}" for name, v in optimum.items()]
    _save(fig, out, [CI_NOTE.replace("bars and points", "points"), OPTIMUM_NOTE, *best, *dict.fromkeys(notes),
                     *_failure_notes(clean)])
    return FigureResult(out, title)


def _missing_axis() -> object:
    from .aggregate import MISSING_AXIS

    return MISSING_AXIS
