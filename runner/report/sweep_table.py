"""The aggregated sweep as a table: cell texts with numbered reasons, rendered for the terminal with rich.

``build_table`` decides what every cell says (mean ± 95 % CI, "unavailable",
and a footnote number pointing at the reason) once, so the terminal table and
the HTML page (html.py renders the same ``TableModel``) can never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .aggregate import (RUN_FAILED, AggregateRow, GroupKey, KeyNames, Stat, axes_that_vary, constant_axes,
                        format_axis_value, versions_that_vary)

UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class Column:
    """A metric column: ``scale`` turns the stored unit into the shown one (WER 0.05 -> 5 %)."""

    header: str
    metric: str
    scale: float = 1.0
    digits: int = 3
    terminal: bool = True  # False: HTML only, to keep the terminal table narrow


COLUMNS: tuple[Column, ...] = (
    Column("WER %", "wer", 100.0, 2),
    Column("CER %", "cer", 100.0, 2, terminal=False),
    Column("RTF", "rtf", 1.0, 3),
    Column("p50 latency ms", "latency_p50_ms", 1.0, 0),
    Column("peak RSS MB", "peak_rss_mb", 1.0, 0),
    Column("load s", "load_s", 1.0, 2, terminal=False),
    Column("energy J", "total_j", 1.0, 1, terminal=False),
    Column("dynamic J", "dynamic_j", 1.0, 1, terminal=False),
    Column("J / audio s", "j_per_audio_s", 1.0, 3),
    Column("avg W", "avg_w", 1.0, 2),
)

# Key fields shown as columns only when they differ between rows; when they
# are the same everywhere they go into the subtitle instead. The dotted axes
# (decode.beam_size, ...) follow the same rule, each headed by its path.
OPTIONAL_KEYS = ("backend", "device", "dataset", "image")


@dataclass(frozen=True)
class Cell:
    text: str
    note: int | None = None  # footnote number (1-based) in TableModel.notes
    unavailable: bool = False


@dataclass(frozen=True)
class TableModel:
    """What the table says, independent of how it is drawn."""

    title: str
    subtitle: str
    headers: tuple[str, ...]
    n_key_columns: int
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[str, ...]


class _Notes:
    """Numbers distinct reasons in first-seen order, so one reason shared by many cells is one footnote."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def number(self, text: str) -> int:
        return self._index.setdefault(text, len(self._index) + 1)

    def texts(self) -> tuple[str, ...]:
        return tuple(self._index)


def format_stat(stat: Stat, scale: float = 1.0, digits: int = 3) -> str:
    """"mean ± ci95", "mean (n=1)" when there is no spread to show, or "unavailable"."""
    if stat.mean is None:
        return UNAVAILABLE
    mean = f"{stat.mean * scale:.{digits}f}"
    if stat.ci95 is None:
        return f"{mean} (n={stat.n})"
    return f"{mean} ± {stat.ci95 * scale:.{digits}f}"


def unavailable_note(stat: Stat) -> str | None:
    """Why a stat is (partly) unavailable, or None when there is nothing to add.

    A stat with values whose only gaps are failed runs needs no note of its
    own: its "(n=1)" and the runs column's failure note already say it.
    """
    if not stat.n_unavailable:
        return None
    if stat.n and all(r.startswith(RUN_FAILED) for r in stat.reasons):
        return None
    why = "; ".join(stat.reasons)
    if stat.n == 0:
        return why
    return f"{stat.n_unavailable} of {stat.n + stat.n_unavailable} runs unavailable: {why}"


def runs_cell(row: AggregateRow, notes: _Notes) -> Cell:
    parts = [f"{row.n_failed} failed"] if row.n_failed else []
    if row.n_partial:
        parts.append(f"{row.n_partial} partial")
    text = str(row.n_runs) + (f" ({', '.join(parts)})" if parts else "")
    note = notes.number("; ".join(f"{RUN_FAILED}: {e}" for e in row.errors)) if row.errors else None
    return Cell(text, note)


def _identity(key: GroupKey, name: str) -> object:
    """What makes two keys differ on ``name``: the dataset's full path, not only its folder's name."""
    return key.dataset_id if name == "dataset" else getattr(key, name)


def key_text(key: GroupKey, name: str, names: KeyNames) -> str:
    """A key field as the table and figures show it (models and datasets by their display names)."""
    if name == "model":
        return names.model(key)
    if name == "dataset":
        return names.dataset(key)
    return str(getattr(key, name))


def build_table(rows: Sequence[AggregateRow], title: str, *, terminal: bool = True) -> TableModel:
    """Cells for every aggregated row; ``terminal=False`` keeps the HTML-only columns too.

    A key field or dotted axis gets a column only where the rows differ on it; one value everywhere goes
    into the subtitle (a dotted axis as "path=value")."""
    columns = [c for c in COLUMNS if c.terminal or not terminal]
    keys = [r.key for r in rows]
    names = KeyNames.of(keys)
    varying = [k for k in OPTIONAL_KEYS if len({_identity(key, k) for key in keys}) > 1]
    constant = [k for k in OPTIONAL_KEYS if k not in varying and rows]
    axes = axes_that_vary(keys)
    subtitle = " · ".join([*(key_text(keys[0], k, names) for k in constant if getattr(keys[0], k)),
                           *(f"{p}={format_axis_value(v)}" for p, v in constant_axes(keys))]) if rows else ""
    # Energy of different scopes (GPU only, board input, CPU package+DRAM) must not sit side by side
    # unlabelled: a column when the rows differ, else the one scope in the subtitle.
    scopes = {r.energy_scope for r in rows if r.energy_scope}
    scope_column = len(scopes) > 1
    if len(scopes) == 1:
        subtitle += (" · " if subtitle else "") + f"energy: {next(iter(scopes))}"
    versions = versions_that_vary([r.key for r in rows])
    key_headers = (*varying, *(("versions",) if versions else ()), "model", "quant", *axes, "noise", "runs",
                   *(("energy scope",) if scope_column else ()))
    notes = _Notes()
    table_rows = []
    for row in rows:
        cells = [Cell(key_text(row.key, k, names)) for k in varying]
        if versions:
            cells.append(Cell(versions[row.key]))
        cells += [Cell(key_text(row.key, k, names)) for k in ("model", "quant")]
        cells += [Cell(format_axis_value(row.key.axis(p))) for p in axes]
        cells.append(Cell(row.key.noise_label))
        cells.append(runs_cell(row, notes))
        if scope_column:
            cells.append(Cell(row.energy_scope or UNAVAILABLE, unavailable=row.energy_scope is None))
        for col in columns:
            stat = row.stat(col.metric)
            why = unavailable_note(stat)
            cells.append(Cell(format_stat(stat, col.scale, col.digits), notes.number(why) if why else None,
                              unavailable=stat.mean is None))
        table_rows.append(tuple(cells))
    return TableModel(title=title, subtitle=subtitle, headers=(*key_headers, *(c.header for c in columns)),
                      n_key_columns=len(key_headers), rows=tuple(table_rows), notes=notes.texts())


def rich_table(model: TableModel, *, keep_numbers_whole: bool = True) -> Table:
    """The TableModel as a rich Table; footnote numbers in brackets, unavailable cells dimmed.

    ``keep_numbers_whole`` gives metric columns their widest cell as minimum
    width, so "5.76 ± 0.51" is not split over two lines; print_sweep_table
    turns it off where the terminal is too narrow for that (rich would crop).
    """
    title = model.title + (f"  ({model.subtitle})" if model.subtitle else "")
    t = Table(title=Text(title, style="bold"), title_justify="left", header_style="bold",
              box=box.SIMPLE_HEAD)
    for i, header in enumerate(model.headers):
        # Metric columns ask for their widest cell, so that "5.76 ± 0.51" wraps
        # only when the terminal is too narrow for anything else to give way.
        widest = max((len(cells[i].text) for cells in model.rows), default=0)
        metric = i >= model.n_key_columns
        t.add_column(header, justify="right" if metric else "left",
                     min_width=widest if metric and keep_numbers_whole else None)
    for cells in model.rows:
        t.add_row(*(_rich_cell(c) for c in cells))
    return t


def _rich_cell(cell: Cell) -> Text:
    text = Text(cell.text, style="dim italic" if cell.unavailable else "")
    if cell.note is not None:
        text.append(f" [{cell.note}]", style="yellow")
    return text


def print_sweep_table(rows: Sequence[AggregateRow], title: str, console: Console | None = None) -> TableModel:
    """Print the table and its numbered reasons; returns the model that was printed."""
    console = console or Console()
    model = build_table(rows, title)
    table = rich_table(model)
    unclamped = console.options.update_width(10_000)  # measure what the table needs, not what fits
    if Measurement.get(console, unclamped, table).minimum > console.width:
        table = rich_table(model, keep_numbers_whole=False)
    console.print(table)
    for i, note in enumerate(model.notes, start=1):
        console.print(Text.assemble((f"[{i}] ", "yellow"), note))
    return model
