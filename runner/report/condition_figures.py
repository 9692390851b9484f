"""The report's figures of conditions, drawn from aggregated rows with matplotlib's Agg renderer.

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

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from .aggregate import AggregateRow
from .figure_kit import (CI_NOTE, LINESTYLES, MARKERS, PALETTE, FigureResult, any_available, bar_handles,
                         clean_rows, energy_label, energy_scopes, failure_notes, grouped_bars, new_figure, round_nice,
                         save, series_labeller, styled, text_figure, text_in_axes, unavailable_text, whisker,
                         with_scope, yerr)
from .records import GroupKey, axes_that_vary, format_axis_value, is_number

ENERGY_FILE = "energy_by_model_quant.png"
WER_FILE = "wer_by_noise.png"
RTF_RAM_FILE = "rtf_ram_by_model_quant.png"
SCATTER_FILE = "accuracy_vs_energy.png"
ENERGY_SNR_FILE = "energy_by_noise.png"
INSERTIONS_FILE = "insertions_by_noise.png"  # issue 24: where the rows have the insertion rate and noise
NONSPEECH_FILE = "nonspeech_wpm_by_noise.png"  # issue 24: where the rows have non-speech items
SWITCH_FILE = "accuracy_vs_{path}.png"  # issue 24: one per long-form switch that varies (decode.vad, ...)
#: The switches a sweep may vary that change long-form decoding: each gets WER, insertions and non-speech words
LONG_FORM_SWITCHES = ("decode.vad", "decode.condition_on_previous_text", "decode.timestamps")
TARGETS_FILE = "targets.png"  # only where the rows hold more than one fleet target
AXIS_FILE = "rtf_vs_{path}.png"  # one per numeric dotted axis that varies
TARGET_AXIS = "target"  # the fleet's grid axis (grid.targets): the device class a condition ran on


def numeric_axes(rows: Sequence[AggregateRow]) -> list[str]:
    """The dotted axes that vary among the rows and hold only numbers (a text or switch axis has no x scale)."""
    keys = [r.key for r in rows]
    return [p for p in axes_that_vary(keys) if all(is_number(k.axis(p)) for k in keys)]


def axis_file(path: str) -> str:
    """The figure's file name for an axis: "rtf_vs_decode.batch_size.png" (odd characters become "_")."""
    return AXIS_FILE.format(path=re.sub(r"[^A-Za-z0-9._-]", "_", path))


@styled
def energy_by_model_quant(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(a) Energy per second of audio (J/s) by model and quant, clean audio, grouped bars with CI."""
    title = "Energy per second of audio (clean audio)"
    path = Path(out_dir) / ENERGY_FILE
    clean = clean_rows(rows)
    if not clean:
        return text_figure(path, title, "energy unavailable: no clean-audio condition in this sweep")
    if not any_available(clean, "j_per_audio_s"):
        return text_figure(path, title, unavailable_text("energy", clean, "j_per_audio_s"))
    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    notes = grouped_bars(ax, clean, "j_per_audio_s", "energy", "{:.3f}",
                         category=with_scope(clean, series_labeller(clean)))
    ax.set_ylabel(energy_label(clean, "energy per audio second (J/s)"))
    ax.set_title(title)
    save(fig, path, [CI_NOTE, *notes, *failure_notes(clean)])
    return FigureResult(path, title)


@styled
def wer_by_noise(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(b) WER (%) against SNR as a numeric axis (harsher to the right), clean set apart at the left; one panel
    per noise type."""
    return _by_noise(rows, Path(out_dir) / WER_FILE, "WER against noise level", "wer", "WER", "WER (%)", 100.0)


@styled
def energy_by_noise(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """Energy per audio second (J/s) against SNR, clean set apart; one panel per noise type."""
    return _by_noise(rows, Path(out_dir) / ENERGY_SNR_FILE, "Energy against noise level", "j_per_audio_s",
                     "energy", energy_label(rows, "energy per audio second (J/s)"), 1.0)


@styled
def insertions_by_noise(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """Inserted words (% of reference words, apart from WER) against SNR, clean set apart; one panel per noise
    type: words said that nobody said, the first sign of hallucination."""
    return _by_noise(rows, Path(out_dir) / INSERTIONS_FILE, "Insertions against noise level", "ins_rate",
                     "insertion rate", "inserted words (% of reference words)", 100.0)


@styled
def nonspeech_by_noise(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """Words said over non-speech items per minute of them, against SNR (clean set apart), one panel per noise
    type, one series per model and quant: hallucination per model, quant and noise."""
    return _by_noise(rows, Path(out_dir) / NONSPEECH_FILE, "Words said over non-speech against noise level",
                     "nonspeech_wpm", "non-speech words per minute", "words per minute of non-speech", 1.0)


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
    if not any_available(rows, metric):
        return text_figure(path, title, unavailable_text(what, rows, metric))
    clean = clean_rows(rows)
    noise_types = list(dict.fromkeys(r.key.noise_type for r in rows if r.key.noise_type != "clean"))
    panels = noise_types or ["clean"]
    label = series_labeller(rows)
    if metric == "j_per_audio_s":
        label = with_scope(rows, label)
    series = list(dict.fromkeys((label(r.key), r.key.quant) for r in rows))
    models = list(dict.fromkeys(m for m, _ in series))
    quants = list(dict.fromkeys(q for _, q in series))
    fig = new_figure(max(5.0, 3.8 * len(panels)) + 0.5, 4.4)
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
                    ax.errorbar(xs, ys, yerr=yerr(ws, scale), linestyle=LINESTYLES[quants.index(quant)
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
    save(fig, path, [CI_NOTE.replace("bars and points", "points") + "; SNR on a numeric scale, clean set apart",
                      *dict.fromkeys(notes), *failure_notes(rows)])
    return FigureResult(path, title)


@styled
def rtf_ram_by_model_quant(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(c) RTF and peak RAM by model and quant, clean audio: two panels of grouped bars with CI."""
    title = "Speed and memory (clean audio)"
    path = Path(out_dir) / RTF_RAM_FILE
    clean = clean_rows(rows)
    if not clean:
        return text_figure(path, title, "RTF and peak RAM unavailable: no clean-audio condition in this sweep")
    panels = (("rtf", "RTF", "RTF (processing time / audio time)", "{:.3f}"),
              ("peak_rss_mib", "peak RAM", "peak RAM (MiB)", "{:.0f}"))
    if not any(any_available(clean, metric) for metric, *_ in panels):
        return text_figure(path, title, "\n".join(unavailable_text(what, clean, metric)
                                                   for metric, what, *_ in panels))
    fig = new_figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    notes: list[str] = []
    for ax, (metric, what, ylabel, fmt) in zip(axes, panels):
        ax.set_title(f"{what}, lower is better")
        if not any_available(clean, metric):
            text_in_axes(ax, unavailable_text(what, clean, metric))
            continue
        notes += grouped_bars(ax, clean, metric, what, fmt)
        ax.set_ylabel(ylabel)
    fig.suptitle(title)
    save(fig, path, [CI_NOTE, *dict.fromkeys(notes), *failure_notes(clean)])
    return FigureResult(path, title)


@styled
def accuracy_vs_energy(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """(d) WER against energy per audio second, clean audio: size = peak RAM, colour = RTF.

    Lower left is better. A model without energy or WER cannot be placed and is
    named in the notes; one without RAM or RTF is drawn at a fixed size or in
    grey, and named too.
    """
    title = "Accuracy against energy (clean audio)"
    path = Path(out_dir) / SCATTER_FILE
    clean = clean_rows(rows)
    if not clean:
        return text_figure(path, title, "energy and WER unavailable: no clean-audio condition in this sweep")
    missing = [unavailable_text(what, clean, metric)
               for metric, what in (("j_per_audio_s", "energy"), ("wer", "WER")) if not any_available(clean, metric)]
    if missing:
        return text_figure(path, title, "\n".join(missing))
    label = series_labeller(clean)
    placed = [r for r in clean if r.stat("j_per_audio_s").mean is not None and r.stat("wer").mean is not None]
    notes = [f"{label(r.key)}/{r.key.quant}: not placed, " + "; ".join(
        f"{what} unavailable ({'; '.join(r.stat(m).reasons)})"
        for m, what in (("j_per_audio_s", "energy"), ("wer", "WER")) if r.stat(m).mean is None)
        for r in clean if r not in placed]
    if not placed:
        return text_figure(path, title, "no model has both energy and WER on clean audio\n" + "\n".join(notes))
    label = with_scope(placed, label)
    fig = new_figure(7.5, 5.0)
    ax = fig.add_subplot()
    rss = [r.stat("peak_rss_mib").mean for r in placed]
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
            ax.errorbar([x.mean], [y.mean * 100], xerr=None if wx is None else yerr([wx]),
                        yerr=None if wy is None else yerr([wy], 100.0),
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
            notes.append(f"{name}: peak RAM unavailable ({'; '.join(r.stat('peak_rss_mib').reasons)}), drawn small")
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
        refs = sorted({round_nice(max_rss), round_nice(max_rss / 2)})
        handles = [ax.scatter([], [], s=area * v / max_rss, color="white", edgecolors="black", label=f"{v:g} MiB")
                   for v in refs]
        ax.legend(handles=handles, title="peak RAM", loc="best", labelspacing=1.6, borderpad=1.0, frameon=False)
    ax.margins(0.15)
    ax.set_xlabel(energy_label(placed, "energy per audio second (J/s)"))
    ax.set_ylabel("WER (%)")
    ax.set_title(title + ": lower left is better")
    save(fig, path, [CI_NOTE.replace("bars and points", "points") + "; marker area proportional to peak RAM",
                      *notes, *failure_notes(clean)])
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


def _target_names(rows: Sequence[AggregateRow]) -> list[str]:
    """The targets as the legend names them: with the scope of their energy where the targets measured different
    scopes (a Jetson's board input beside an x86 CPU package), so that no energy bar stands unlabelled."""
    targets = targets_of(rows)
    if len(energy_scopes(rows)) < 2:
        return targets
    scopes = {t: " / ".join(energy_scopes([r for r in rows if _target(r.key) == t])) or "no energy" for t in targets}
    return [f"{t} (energy: {scopes[t]})" for t in targets]


@styled
def targets_by_model_quant(rows: Sequence[AggregateRow], out_dir: Path) -> FigureResult:
    """The fleet's targets side by side (issue 11), clean audio: energy per audio second, RTF, WER (%) and peak
    RAM in four panels of grouped bars, model/quant (and any other varying axis) on x and one bar per target, mean
    with the whiskers of every bar figure. A metric no target measured is a panel saying why; one that a target
    did not measure is an "unavailable" mark and a note in its place, never a 0 bar."""
    title = "Targets side by side (clean audio)"
    path = Path(out_dir) / TARGETS_FILE
    clean = clean_rows(rows)
    if not clean:
        return text_figure(path, title, "targets not compared: no clean-audio condition in this sweep")
    # (metric, what a note calls it, panel title, y label, bar label format, scale)
    panels = (("j_per_audio_s", "energy", "energy per audio second", "energy per audio second (J/s)", "{:.3f}", 1.0),
              ("rtf", "RTF", "RTF", "RTF (processing time / audio time)", "{:.3f}", 1.0),
              ("wer", "WER", "WER", "WER (%)", "{:.1f}", 100.0),
              ("peak_rss_mib", "peak RAM", "peak RAM", "peak RAM (MiB)", "{:.0f}", 1.0))
    if not any(any_available(clean, metric) for metric, *_ in panels):
        return text_figure(path, title, "\n".join(unavailable_text(what, clean, metric)
                                                   for metric, what, *_ in panels))
    label = series_labeller(clean, exclude=(TARGET_AXIS,))
    fig = new_figure(15.0, 4.6)
    axes = fig.subplots(1, len(panels))
    notes: list[str] = []
    for ax, (metric, what, heading, ylabel, fmt, scale) in zip(axes, panels):
        ax.set_title(f"{heading}, lower is better")
        if not any_available(clean, metric):
            text_in_axes(ax, unavailable_text(what, clean, metric), width=30)  # a quarter-width panel
            continue
        notes += grouped_bars(ax, clean, metric, what, fmt, scale=scale,
                               category=lambda k: f"{label(k)}/{k.quant}", series=_target,
                               xlabel="model / quant", legend_title=None)
        ax.set_ylabel(energy_label(clean, ylabel) if metric == "j_per_audio_s" else ylabel)
    fig.legend(handles=bar_handles(_target_names(clean)), title="target", loc="outside right upper", frameon=False)
    fig.suptitle(title)
    save(fig, path, [CI_NOTE, *dict.fromkeys(notes), *failure_notes(clean)])
    return FigureResult(path, title)


@styled
def metrics_vs_axis(rows: Sequence[AggregateRow], path: str, out_dir: Path) -> FigureResult:
    """RTF and WER against a numeric dotted axis (e.g. decode.batch_size), clean audio: one line per model and
    quant (and per value of any other varying axis), mean with 95 % CI; an unavailable point is a gap, named."""
    title = f"Speed and accuracy against {path} (clean audio)"
    out = Path(out_dir) / axis_file(path)
    clean = [r for r in clean_rows(rows) if is_number(r.key.axis(path))]
    if not clean:
        return text_figure(out, title, f"RTF and WER unavailable: no clean-audio condition with a number for {path}")
    panels = (("rtf", "RTF", "RTF (processing time / audio time)", 1.0), ("wer", "WER", "WER (%)", 100.0))
    if not any(any_available(clean, metric) for metric, *_ in panels):
        return text_figure(out, title, "\n".join(unavailable_text(what, clean, metric)
                                                  for metric, what, *_ in panels))
    label = series_labeller(clean, exclude=(path,))
    series = list(dict.fromkeys(f"{label(r.key)}/{r.key.quant}" for r in clean))
    xs_all = sorted({r.key.axis(path) for r in clean})
    fig = new_figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    notes: list[str] = []
    for ax, (metric, what, ylabel, scale) in zip(axes, panels):
        ax.set_title(f"{what}, lower is better")
        if not any_available(clean, metric):
            text_in_axes(ax, unavailable_text(what, clean, metric))
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
            ax.errorbar(xs, ys, yerr=yerr(ws, scale), color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)],
                        linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)], markersize=4, capsize=3,
                        linewidth=1.4, elinewidth=0.9, label=name)
        ax.set_xticks(xs_all, [format_axis_value(x) for x in xs_all])
        ax.set_xlabel(path)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.margins(x=0.08)
    # the legend from a panel that drew a series (the last one may have none: a figure without RAM, say)
    handles, labels = next((hl for hl in (a.get_legend_handles_labels() for a in axes) if hl[0]), ([], []))
    if handles:
        axes[-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), title="model / quant",
                        frameon=False)
    fig.suptitle(title)
    save(fig, out, [CI_NOTE.replace("bars and points", "points"), *dict.fromkeys(notes), *failure_notes(clean)])
    return FigureResult(out, title)


def switch_axes(rows: Sequence[AggregateRow]) -> list[str]:
    """The long-form switches (LONG_FORM_SWITCHES) that vary among the rows."""
    keys = [r.key for r in rows]
    return [p for p in axes_that_vary(keys) if p in LONG_FORM_SWITCHES]


@styled
def accuracy_vs_switch(rows: Sequence[AggregateRow], path: str, out_dir: Path) -> FigureResult:
    """WER, insertion rate and non-speech words per minute for each value of a long-form switch (decode.vad on
    and off, ...): one panel per figure the rows have, bars per value of the switch in each group of model,
    quant and noise level (issue 24)."""
    title = f"Accuracy and hallucination against {path}"
    out = Path(out_dir) / SWITCH_FILE.format(path=re.sub(r"[^A-Za-z0-9._-]", "_", path))
    panels = [p for p in (("wer", "WER", "WER (%)", 100.0, "{:.1f}"),
                          ("ins_rate", "insertion rate", "inserted words (% of reference words)", 100.0, "{:.1f}"),
                          ("nonspeech_wpm", "non-speech words per minute", "words per minute of non-speech", 1.0,
                           "{:.1f}"))
              if any_available(rows, p[0])]
    if not panels:
        return text_figure(out, title, unavailable_text("WER", rows, "wer"))
    base = series_labeller(rows, exclude=(path,))
    noisy = any(r.key.noise_type != "clean" for r in rows)

    def category(key: GroupKey) -> str:
        return f"{base(key)}/{key.quant}" + (f" · {key.noise_label}" if noisy else "")

    fig = new_figure(4.6 * len(panels) + 1.2, 4.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    notes: list[str] = []
    for i, (ax, (metric, what, ylabel, scale, fmt)) in enumerate(zip(axes, panels)):
        notes += grouped_bars(ax, rows, metric, what, fmt, scale=scale, category=category,
                              series=lambda key: f"{path}={format_axis_value(key.axis(path))}", xlabel="",
                              legend_title=path if i == len(panels) - 1 else None)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{what}, lower is better")
    fig.suptitle(title)
    save(fig, out, [CI_NOTE, *dict.fromkeys(notes), *failure_notes(rows)])
    return FigureResult(out, title)
