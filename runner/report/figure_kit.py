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
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ..trust import untrusted
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
#: The percentile markers of a strip plot (percentile_strips): name, marker, colour.
PERCENTILE_MARKS = (("p50", "o", PALETTE[0]), ("p90", "^", PALETTE[1]), ("p99", "D", PALETTE[3]))
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


CHARS_PER_INCH = 16  # about this many characters of an 8 pt label fit in an inch (DejaVu Sans)
MAX_TICK_LINES = 4  # a category label that would need more lines than this is a key letter instead
MIN_TICK_CHARS = 6  # nor is a label wrapped narrower than this: a key letter, the notes say what it stands for
LEGEND_CHARS = 36  # a legend entry wider than this wraps, one part per line, so the legend stays beside its plot
#: The key letters each figure's category_ticks handed out: label -> letter, shared by the figure's panels.
_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def wrap_label(text: str, width: int) -> str:
    """``text`` as lines of at most ``width`` characters: one part per line where it has " · " parts and is
    too long for one, each part wrapped at word (and hyphen) boundaries, a longer word cut."""
    if len(text) <= width and "\n" not in text:
        return text
    parts = [p for chunk in text.split("\n") for p in chunk.split(" · ")]
    return "\n".join(textwrap.fill(part, max(1, width)) or part for part in parts)


def category_ticks(ax, labels: Sequence[str]) -> None:
    """Category labels under bars, wrapped to the width each category has (one part per line: "tiny.en",
    "decode.batch_size=4"), never slanted (a slanted label runs off the figure); where they would still not
    fit, each is a key letter (A, B, ...) that the figure's notes spell out (save)."""
    axes_width_in = ax.get_position().width * ax.get_figure().get_figwidth() * 0.85  # less the y labels
    per_category = int(axes_width_in * CHARS_PER_INCH / max(1, len(labels))) - 1
    wrapped = [wrap_label(label, per_category) for label in labels]
    too_tall = max((w.count("\n") + 1 for w in wrapped), default=0) > MAX_TICK_LINES
    if len(labels) > 1 and (too_tall or per_category < MIN_TICK_CHARS):
        keys = _KEYS.setdefault(ax.get_figure(root=True), {})
        for label in labels:
            keys.setdefault(label, _key_name(len(keys)))
        ax.set_xticks(range(len(labels)), [keys[label] for label in labels])
    else:
        ax.set_xticks(range(len(labels)), wrapped)


def _key_name(i: int) -> str:
    """A, B, ..., Z, AA, AB, ...: the key letter of the i-th category."""
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(ord("A") + r) + name
    return name


def key_notes(fig: Figure) -> list[str]:
    """"A: faster-whisper · tiny.en · int8" for each key letter the figure's ticks use (category_ticks)."""
    return [f"{key}: {label}" for label, key in _KEYS.get(fig, {}).items()]


def round_nice(value: float) -> float:
    """A round number near ``value`` for a size legend (600, 250, 1000...)."""
    step = 10 ** max(0, len(str(int(value))) - 2)
    return max(step, round(value / step) * step)


def new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg raster canvas: no display, no global backend switch
    return fig


def percentile_strips(lines: Sequence[tuple[str, Sequence[float], tuple[float, float, float]]], *, xlabel: str,
                      dot_label: str, title: str) -> Figure:
    """A distribution per row, the first at the top: each (label, values, (p50, p90, p99)) as its values in faint
    dots (spread up and down the same way every time), a line from p50 to p99 and a marker at each percentile;
    the legend names the markers and what one dot is (``dot_label``); a long label breaks at its " · ". The
    latency and the finalization distributions are drawn so; the caller adds the notes and saves it."""
    fig = new_figure(8.0, 0.42 * len(lines) + 1.6)
    ax = fig.add_subplot()
    for y, (_, points, percentiles) in enumerate(lines):
        if len(points):
            jitter = ((np.arange(len(points)) * 0.618) % 1.0 - 0.5) * 0.35
            ax.scatter(points, y + jitter, s=6, color="0.55", alpha=0.5, linewidths=0, zorder=1)
        ax.plot([percentiles[0], percentiles[2]], [y, y], color="0.2", linewidth=1.0, zorder=2)
        for value, (_, marker, colour) in zip(percentiles, PERCENTILE_MARKS):
            ax.scatter([value], [y], marker=marker, s=28, color=colour, edgecolors="black", linewidths=0.5,
                       zorder=3)
    ax.set_yticks(range(len(lines)), [n.replace(" · ", "\n") if len(n) > 40 else n for n, *_ in lines])
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.grid(axis="y", alpha=0)
    handles = [ax.scatter([], [], marker=m, s=28, color=c, edgecolors="black", linewidths=0.5, label=t)
               for t, m, c in PERCENTILE_MARKS]
    handles.append(ax.scatter([], [], s=6, color="0.55", label=dot_label))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
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
    """Reserve room under the plot for the notes (and the key of any key-letter ticks), keep every label,
    legend and note inside the canvas (``fit_canvas``), then write the PNG."""
    # notes quote what images and datasets said (a failed run's error): shown visible
    notes = list(dict.fromkeys([*notes, *key_notes(fig)]))
    lines = [line for note in notes for line in textwrap.wrap(untrusted.figure(note),
                                                              width=int(fig.get_figwidth() * 15))]
    wrap_legends(fig)
    text = None
    notes_in = 0.0
    if lines:
        notes_in = 0.16 * len(lines) + 0.12
        fig.set_figheight(fig.get_figheight() + notes_in)
        text = fig.text(0.01, 0.0, "\n".join(lines), ha="left", va="top", fontsize=7, color="0.3",
                        linespacing=1.4, gid=NOTES_GID)
    fit_canvas(fig, text, notes_in)
    _write(fig, path)


def wrap_legends(fig: Figure, width: int = LEGEND_CHARS) -> None:
    """Wrap every legend entry wider than ``width`` characters (one part per line), so that a legend of long
    condition labels stays a column beside its plot rather than pushing the plot off the canvas."""
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)]
    for legend in legends:
        for t in legend.get_texts():
            t.set_text(wrap_label(t.get_text(), width))


def _place_notes(fig: Figure, text, notes_in: float) -> None:
    """The layout keeps ``notes_in`` inches at the bottom free, and the notes sit there."""
    if text is None:
        return
    bottom = notes_in / fig.get_figheight()
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    text.set_y(bottom - 0.03 / fig.get_figheight())


def fit_canvas(fig: Figure, notes=None, notes_in: float = 0.0, tries: int = 4) -> None:
    """Grow the figure until its layout keeps every artist inside the canvas and clear of the notes: a long
    legend or a tall tick label the size a figure was given cannot hold would otherwise be cut at the edge
    or drawn over the notes. Deterministic: the same figure grows the same way."""
    for _ in range(tries):
        _place_notes(fig, notes, notes_in)
        with warnings.catch_warnings():  # a layout that does not fit yet is what this grows the figure for
            warnings.simplefilter("ignore", UserWarning)
            fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes = [b for b in (*(ax.get_tightbbox(renderer) for ax in fig.axes),
                             *(lg.get_window_extent(renderer) for lg in fig.legends),
                             *(t.get_window_extent(renderer) for t in fig.texts if t is not notes),
                             *([fig._suptitle.get_window_extent(renderer)] if fig._suptitle else []))
                 if b is not None]
        if not boxes:
            return
        width_px, height_px = fig.bbox.width, fig.bbox.height
        x0, x1 = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
        y0, y1 = min(b.y0 for b in boxes), max(b.y1 for b in boxes)
        floor = notes.get_window_extent(renderer).y1 if notes is not None else 0.0
        if notes is not None:
            x0, x1 = min(x0, notes.get_window_extent(renderer).x0), max(x1, notes.get_window_extent(renderer).x1)
        grow_w = max(0.0, -x0) + max(0.0, x1 - width_px)
        grow_h = max(0.0, floor - y0) + max(0.0, y1 - height_px)
        if grow_w < 1 and grow_h < 1:
            return
        dpi = fig.dpi
        extra_w = grow_w / dpi + (0.2 if grow_w >= 1 else 0.0)
        extra_h = grow_h / dpi + (0.2 if grow_h >= 1 else 0.0)
        fig.set_size_inches(fig.get_figwidth() + extra_w, fig.get_figheight() + extra_h)


def _write(fig: Figure, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, dpi=DPI, format="png", metadata=PNG_METADATA)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())
