"""The operating-point figures (issue 12): energy per audio second and RTF against the GPU clock or the
power mode, clean audio, one line per model and quant, each line's energy-optimal point starred."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .aggregate import AggregateRow
from .figure_kit import (CI_NOTE, LINESTYLES, MARKERS, NO_WHISKER, PALETTE, FigureResult, any_available, clean_rows,
                         energy_label, failure_notes, new_figure, save, series_labeller, styled, text_figure,
                         text_in_axes, unavailable_text, with_scope)
from .records import MISSING_AXIS, axes_that_vary, format_axis_value, is_number

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


@styled
def energy_rtf_vs_power_axis(rows: Sequence[AggregateRow], path: str, out_dir: Path) -> FigureResult:
    """Energy per audio second and RTF against an operating-point axis (the GPU clock in MHz, or the power
    mode as a category), clean audio, one line per model and quant (and any other varying axis), mean with
    95 % CI; each line's energy-optimal point is marked with a star on both panels. An unavailable point is a
    gap, named in the notes."""
    numeric = path == POWER_FREQ_AXIS
    what_x = "GPU clock (MHz)" if numeric else "power mode"
    title = f"Energy and speed against the {'GPU clock' if numeric else 'power mode'} (clean audio)"
    out = Path(out_dir) / (POWER_FREQ_FILE if numeric else POWER_MODE_FILE)
    clean = [r for r in clean_rows(rows) if r.key.axis(path) not in (None, MISSING_AXIS)
             and (is_number(r.key.axis(path)) or not numeric)]
    if not clean:
        return text_figure(out, title, f"energy and RTF unavailable: no clean-audio condition with a value for {path}")
    panels = (("j_per_audio_s", "energy per audio second", "energy per audio second (J/s)"),
              ("rtf", "RTF", "RTF (processing time / audio time)"))
    if not any(any_available(clean, metric) for metric, *_ in panels):
        return text_figure(out, title, "\n".join(unavailable_text(what, clean, metric) for metric, what, _ in panels))
    label = with_scope(clean, series_labeller(clean, exclude=(path,)))
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
    fig = new_figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    notes: list[str] = []
    for ax, (metric, what, ylabel) in zip(axes, panels):
        ax.set_title(f"{what}, lower is better")
        if not any_available(clean, metric):
            text_in_axes(ax, unavailable_text(what, clean, metric))
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
                spread = [v for v in (st.ci95, st.bound) if v is not None]  # energy adds its measurement bound
                errs.append(sum(spread) if spread else NO_WHISKER)
                if name in optimum and r.key.axis(path) == optimum[name]:
                    ax.plot([x], [st.mean], marker="*", markersize=14, color=color, markeredgecolor="black",
                            linestyle="none", zorder=5)
            ax.errorbar(xs, ys, yerr=errs, color=color, marker=MARKERS[i % len(MARKERS)],
                        linestyle=LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)], markersize=4, capsize=3,
                        linewidth=1.4, elinewidth=0.9, label=name)
        ax.set_xticks([position[v] for v in values], [format_axis_value(v) for v in values])
        ax.set_xlabel(what_x)
        ax.set_ylabel(energy_label(clean, ylabel) if metric == "j_per_audio_s" else ylabel)
        ax.set_ylim(bottom=0)
        ax.margins(x=0.08)
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="model / quant", frameon=False)
    fig.suptitle(title)
    best = [f"{name}: energy-optimal at {path}={format_axis_value(v)}" for name, v in optimum.items()]
    save(fig, out, [CI_NOTE.replace("bars and points", "points"), OPTIMUM_NOTE, *best, *dict.fromkeys(notes),
                     *failure_notes(clean)])
    return FigureResult(out, title)

