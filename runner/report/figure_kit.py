"""The figure kit every report figure is drawn with: style, palette, markers, whiskers, labels, bars, saving.

Deterministic: no pyplot (no global figure state, no GUI backend), fixed rcParams (``styled``), and no
matplotlib version in the PNG metadata, so the same results give the same bytes. Honest: whiskers follow the
repeats (``whisker``: the Student-t 95 % interval where there are 3 repeats or more, the min-max where there
are 2, none where there is 1, never below 0), and a figure with nothing to draw is no PNG but a note that says
why (``text_figure``), never an empty or all-zero plot.
"""

from __future__ import annotations

import functools
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from .. import untrusted
from .aggregate import AggregateRow, Stat
from .records import (GroupKey, KeyNames, axes_that_vary, format_axis_value, is_number, varies_within_backend,
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
NOTES_GID = "figure-notes"  # the gid of the notes text under the plot (save): tests find it by this
NO_WHISKER = float("nan")  # n = 1: no interval, so no whisker (a 0 would draw a cap that looks like certainty)
MIN_REPEATS_FOR_CI = 3  # below this the whiskers show the repeats' min-max, not a t-interval
CI_NOTE = ("bars and points: mean over repeats; whiskers: 95 % CI (Student t) where n >= 3, min-max of the "
           "repeats where n = 2, none where n = 1; energy whiskers add the measurement bound (sample gaps x power "
           "steps + sensor resolution), so one run has one too; never below 0")


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


def whisker(st: Stat) -> tuple[float, float] | None:
    """How far the whisker reaches (below, above) the mean: the 95 % CI where n >= 3, the repeats' min-max
    where n = 2, None where there is no spread to show (n < 2). Never below 0: every figure here is a
    non-negative quantity, so a whisker that would cross 0 stops there.

    Reads ``min``/``max`` when the Stat has them; for n = 2 they also follow from the sample std (the two
    values are mean -/+ std/sqrt(2)), so older Stats without them draw the same. A figure with a measurement
    bound (energy) adds it on both sides, so one run still gets its error bar."""
    bound = getattr(st, "bound", None)
    if st.mean is not None and is_number(bound):
        spread = whisker(_without_bound(st)) or (0.0, 0.0)
        return max(0.0, min(spread[0] + bound, st.mean)), spread[1] + bound
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


def _without_bound(st: Stat) -> Stat:
    return replace(st, bound=None)


def yerr(whiskers: Sequence[tuple[float, float] | None], scale: float = 1.0) -> list[list[float]]:
    """Whiskers as matplotlib's asymmetric (2, N) error array; NaN where there is none."""
    return [[w[0] * scale if w else NO_WHISKER for w in whiskers], [w[1] * scale if w else NO_WHISKER
                                                                     for w in whiskers]]


def styled(draw: Callable[..., FigureResult]) -> Callable[..., FigureResult]:
    """Run a figure function under STYLE: fonts are fixed when artists are made, not when saved."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs) -> FigureResult:
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper


def clean_rows(rows: Sequence[AggregateRow]) -> list[AggregateRow]:
    return [r for r in rows if r.key.noise_type == "clean"]


def failure_notes(rows: Sequence[AggregateRow]) -> list[str]:
    """One line per condition with failed runs: a mean over fewer repeats should say so."""
    label = series_labeller(rows)
    return [f"{label(r.key)}/{r.key.quant} {r.key.noise_label}: {r.n_failed} of {r.n_runs} runs failed "
            f"({'; '.join(r.errors)}), not averaged in" for r in rows if r.n_failed]


def any_available(rows: Sequence[AggregateRow], metric: str) -> bool:
    return any(r.stat(metric).mean is not None for r in rows)


def _reasons(rows: Sequence[AggregateRow], metric: str) -> list[str]:
    return list(dict.fromkeys(reason for r in rows for reason in r.stat(metric).reasons))


def unavailable_text(what: str, rows: Sequence[AggregateRow], metric: str) -> str:
    """"energy unavailable: <reasons>", the line drawn in place of a figure or panel."""
    reasons = _reasons(rows, metric)
    return f"{what} unavailable: " + ("; ".join(reasons) if reasons else "no runs")


def energy_scopes(rows: Sequence[AggregateRow]) -> list[str]:
    """The distinct energy scopes of the rows ("board input", "GPU", "CPU package+DRAM"), in the rows' order."""
    return list(dict.fromkeys(r.energy_scope for r in rows if r.energy_scope))


def energy_label(rows: Sequence[AggregateRow], what: str) -> str:
    """An energy axis label that names what the energy covers: "<what>\nscope: GPU"; where the rows measured
    different scopes, they are named per bar or point (``with_scope``) and the axis says so."""
    scopes = energy_scopes(rows)
    if len(scopes) == 1:
        return f"{what}\nscope: {scopes[0]}"
    if scopes:
        return f"{what}\nscope per bar or point (scopes differ: not comparable across them)"
    return what


def with_scope(rows: Sequence[AggregateRow], label: Callable[[GroupKey], str]) -> Callable[[GroupKey], str]:
    """``label`` with each condition's energy scope appended where the rows measured more than one scope, so that
    no GPU-only bar stands unlabelled beside a board-input bar; ``label`` itself where they share one."""
    if len(energy_scopes(rows)) < 2:
        return label
    scope = {r.key: r.energy_scope or "no energy" for r in rows}
    return lambda key: f"{label(key)} · {scope.get(key, 'no energy')}"


def series_labeller(rows: Sequence[AggregateRow], exclude: Sequence[str] = ()) -> Callable[[GroupKey], str]:
    """The model as a category label (its display name: a path tail where two share a name), with backend,
    device and dataset where the sweep varies them, the library versions (else the image) where it varies
    the image, and each varying dotted axis as "path=value" (less those in ``exclude``: a figure's x axis)."""
    keys = [r.key for r in rows]
    names = KeyNames.of(keys)
    varying = [k for k in ("backend", "device") if len({getattr(key, k) for key in keys}) > 1]
    datasets = len({key.dataset_id for key in keys}) > 1
    axes = [p for p in axes_that_vary(keys) if p not in exclude]
    versions = versions_that_vary(keys)
    images = varies_within_backend(keys, "image")  # across backends the backend already tells them apart

    def label(key: GroupKey) -> str:
        parts = [key.backend] if "backend" in varying else []
        parts.append(names.model(key))
        parts += [key.device] if "device" in varying else []
        parts += [names.dataset(key)] if datasets else []
        if versions.get(key):
            parts.append(versions[key])
        elif images and not versions:
            parts.append(key.image)
        parts += [f"{p}={format_axis_value(key.axis(p))}" for p in axes]
        return " · ".join(parts)

    return label


def grouped_bars(ax, rows: Sequence[AggregateRow], metric: str, what: str, fmt: str, *, scale: float = 1.0,
                  category: Callable[[GroupKey], str] | None = None,
                  series: Callable[[GroupKey], str] | None = None, xlabel: str = "model",
                  legend_title: str | None = "quant") -> list[str]:
    """Bars of ``metric`` (times ``scale``: 100 for a WER in %) with one group per ``category`` on x (the model
    label unless given) and one bar per ``series`` in each (the quant unless given); returns notes for
    unavailable bars, "<category>/<series>: <what> unavailable (<reasons>)". ``legend_title`` None: no legend
    on the axes (a figure of several panels draws one for all)."""
    label = category or series_labeller(rows)
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
        bars = ax.bar(xs, heights, width * 0.95, yerr=yerr(ws, scale), capsize=3, color=PALETTE[j % len(PALETTE)],
                      label=quant, error_kw={"elinewidth": 0.9, "ecolor": "0.2"})
        ax.bar_label(bars, labels=[fmt.format(h) for h in heights], padding=2, fontsize=7)
    category_ticks(ax, models)
    ax.set_xlim(-0.6, len(models) - 0.4)
    ax.set_xlabel(xlabel)
    ax.margins(y=0.12)
    if legend_title is not None:
        ax.legend(handles=bar_handles(quants), title=legend_title, frameon=False)
    return notes


def bar_handles(names: Sequence[str]) -> list[Patch]:
    """Legend entries for grouped_bars' series, in its order and colours: made here rather than read off the
    axes, where a series with no bar at all (every value unavailable) has no colour to give."""
    return [Patch(color=PALETTE[j % len(PALETTE)], label=name) for j, name in enumerate(names)]


def category_ticks(ax, labels: Sequence[str]) -> None:
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


def round_nice(value: float) -> float:
    """A round number near ``value`` for a size legend (600, 250, 1000...)."""
    step = 10 ** max(0, len(str(int(value))) - 2)
    return max(step, round(value / step) * step)


def new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg raster canvas: no display, no global backend switch
    return fig


def text_in_axes(ax, text: str, width: int = 48) -> None:
    """``text`` in a box in place of the axes' plot, wrapped at ``width`` characters (narrower for a narrow panel)."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, _wrap(untrusted.figure(text), width), transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="0.25", bbox={"boxstyle": "round,pad=0.8", "facecolor": "0.95", "edgecolor": "0.7"})


def text_figure(path: Path, title: str, message: str) -> FigureResult:
    """A figure with nothing to plot: no PNG at all (an image holding only a text box is no figure; a stale one
    from an earlier report is removed), only the reason, which the report lists in its notes ("not drawn")."""
    Path(path).unlink(missing_ok=True)
    return FigureResult(path, title, unavailable=message)


def save(fig: Figure, path: Path, notes: Sequence[str]) -> None:
    """Reserve room under the plot for the notes, then write the PNG."""
    # notes quote what images and datasets said (a failed run's error): shown visible
    lines = [line for note in notes for line in textwrap.wrap(untrusted.figure(note),
                                                              width=int(fig.get_figwidth() * 15))]
    if lines:
        extra_in = 0.16 * len(lines) + 0.12
        height = fig.get_figheight()
        fig.set_figheight(height + extra_in)
        bottom = extra_in / (height + extra_in)
        fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
        fig.text(0.01, bottom - 0.03 / (height + extra_in), "\n".join(lines), ha="left", va="top", fontsize=7,
                 color="0.3", linespacing=1.4, gid=NOTES_GID)
    _write(fig, path)


def _write(fig: Figure, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, dpi=DPI, format="png", metadata=PNG_METADATA)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())
