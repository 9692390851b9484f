"""The aggregated sweep as a table: cell texts with numbered reasons, rendered for the terminal with rich.

``build_table`` decides what every cell says (mean ± 95 % CI, or the range
below 3 repeats, "unavailable", and a footnote number pointing at the reason)
once, so the terminal table, the HTML page (html.py renders the same
``TableModel``) and the Markdown and CSV forms (``--format md|csv``) can never
disagree. A metric unavailable in every row is no column at all; energy
unavailable everywhere is said in one line (``remarks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ..untrusted import csv_text, line, markdown
from ..wording import plural
from .aggregate import CV_DISAGREE, EMULATED_METRICS, ENERGY_METRICS, RUN_FAILED, AggregateRow, Stat
from .records import GroupKey, KeyNames, axes_that_vary, constant_axes, format_axis_value, versions_that_vary

UNAVAILABLE = "unavailable"
#: Output forms of a table: the terminal's (rich), Markdown, CSV.
FORMATS = ("table", "md", "csv")
DISAGREE_NOTE = f"repeats disagree: coefficient of variation above {CV_DISAGREE:.0%}"
BOUND_NOTE = ("energy: ± includes the measurement bound (sample gaps x the power steps across them, plus the "
              "sensor's resolution x the duration; see README: Energy), added to the repeats' spread")


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
    Column("peak RSS MiB", "peak_rss_mb", 1.0, 0),  # the entrypoint's ru_maxrss / 1024: MiB
    Column("container MiB", "container_mem_peak_mb", 1.0, 0, terminal=False),  # cgroup working set, its window
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
    remarks: tuple[str, ...] = ()  # one-line facts about the whole table ("energy: no sensor, ...")


class _Notes:
    """Numbers distinct reasons in first-seen order, so one reason shared by many cells is one footnote."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def number(self, text: str) -> int:
        return self._index.setdefault(text, len(self._index) + 1)

    def texts(self) -> tuple[str, ...]:
        return tuple(self._index)


def format_stat(stat: Stat, scale: float = 1.0, digits: int = 3) -> str:
    """"mean ± ci95" from 3 values on, "mean (min–max)" with 2 (a t-interval of 2 values is 12.7 x their
    spread), "mean (n=1)" when there is no spread to show, or "unavailable". A figure with a measurement bound
    (energy) adds it: "12.4 ± 0.3" for one run, the bound added to the CI from 3 on, "± bound" after a range."""
    if stat.mean is None:
        return UNAVAILABLE
    mean = f"{stat.mean * scale:.{digits}f}"
    bound = stat.bound * scale if stat.bound is not None else None
    if stat.uses_range:
        spread = f"{mean} ({stat.min * scale:.{digits}f}–{stat.max * scale:.{digits}f})"  # type: ignore[operator]
        return spread + (f" ± {bound:.{digits}f}" if bound is not None else "")
    if stat.ci95 is None:
        return f"{mean} ± {bound:.{digits}f}" if bound is not None else f"{mean} (n={stat.n})"
    return f"{mean} ± {stat.ci95 * scale + (bound or 0.0):.{digits}f}"


def energy_line(reasons: Sequence[str]) -> str:
    """The one short line that says energy is unavailable everywhere; the full reasons are in each
    summary.json's ``unavailable``."""
    if reasons and all("--telemetry none" in r for r in reasons):
        return "energy: not measured (--telemetry none)"
    return "energy: no sensor, see README: Energy"


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
    if row.n_busy:
        parts.append(f"{row.n_busy} on a busy host")
    text = str(row.n_runs) + (f" ({', '.join(parts)})" if parts else "")
    why = [f"{RUN_FAILED}: {e}" for e in row.errors]
    if row.n_busy:
        why.append("host busy during the timed window: " + "; ".join(row.busy_reasons))
    note = notes.number("; ".join(why)) if why else None
    return Cell(text, note)


def emulated_warning(rows: Sequence[AggregateRow]) -> str | None:
    """One line when some condition ran emulated (an image of another CPU, under qemu), or None."""
    emulated = list(dict.fromkeys(r.emulated for r in rows if r.emulated))
    if not emulated:
        return None
    return (f"warning: {plural(sum(1 for r in rows if r.emulated), 'condition')} ran emulated "
            f"({', '.join(emulated)}): their speed and energy, marked (emulated), are the emulator's, not a device's; "
            "their WER is the model's")


def busy_warning(rows: Sequence[AggregateRow]) -> str | None:
    """One line when some condition ran while the host was busy, or None."""
    n = sum(r.n_busy for r in rows)
    if not n:
        return None
    return (f"warning: {n} run{'s' if n != 1 else ''} had a busy host during the timed window (see the runs "
            "column's notes); their speed and energy include the neighbours' work")


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
    columns = [c for c in COLUMNS if (c.terminal or not terminal)
               and any(r.stat(c.metric).mean is not None for r in rows)]  # unavailable everywhere: no column
    energy_reasons = [why for r in rows for m in ENERGY_METRICS for why in r.stat(m).reasons]
    remarks = []
    if rows and not any(r.stat(m).mean is not None for r in rows for m in ENERGY_METRICS):
        remarks.append(energy_line(energy_reasons))
    if any(r.stat(c.metric).bound is not None for r in rows for c in columns if c.metric in ENERGY_METRICS):
        remarks.append(BOUND_NOTE)
    busy = busy_warning(rows)
    if busy:
        remarks.append(busy)
    emulated = emulated_warning(rows)
    if emulated:
        remarks.append(emulated)
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
            if stat.disagree:
                why = f"{why}; {DISAGREE_NOTE}" if why else DISAGREE_NOTE
            text = format_stat(stat, col.scale, col.digits)
            if row.emulated and col.metric in EMULATED_METRICS and stat.mean is not None:
                text += " (emulated)"  # never a device's figure (emulated_warning says whose)
            cells.append(Cell(text, notes.number(why) if why else None, unavailable=stat.mean is None))
        table_rows.append(tuple(cells))
    return TableModel(title=title, subtitle=subtitle, headers=(*key_headers, *(c.header for c in columns)),
                      n_key_columns=len(key_headers), rows=tuple(table_rows), notes=notes.texts(),
                      remarks=tuple(remarks))


def _plain(cell: Cell) -> str:
    return cell.text + (f" [{cell.note}]" if cell.note is not None else "")


def markdown_table(model: TableModel) -> str:
    """The TableModel as a GitHub-flavoured Markdown table, with its notes and remarks under it (every text
    escaped: runner/untrusted.py; a line break in a text is a space)."""
    def md(text: str) -> str:
        return markdown(text.replace("\n", " "))

    title = model.title + (f" ({model.subtitle})" if model.subtitle else "")
    lines = [f"**{md(title)}**", "", "| " + " | ".join(md(h) for h in model.headers) + " |",
             "|" + "|".join("---:" if i >= model.n_key_columns else "---" for i in range(len(model.headers))) + "|"]
    lines += ["| " + " | ".join(md(_plain(c)) for c in cells) + " |" for cells in model.rows]
    extra = [md(f"[{i}] {n}") for i, n in enumerate(model.notes, start=1)]
    extra += [md(r) for r in model.remarks]
    if extra:
        lines += ["", *(f"- {e}" for e in extra)]
    return "\n".join(lines) + "\n"


def csv_table(model: TableModel) -> str:
    """The TableModel as CSV: one header line, one line per row, cell texts as shown (footnote numbers in a
    ``notes`` column, their texts are not repeated); for the raw numbers use results.csv."""
    rows = [[*model.headers, "notes"]]
    for cells in model.rows:
        notes = sorted({c.note for c in cells if c.note is not None})
        rows.append([*(c.text for c in cells), "; ".join(model.notes[n - 1] for n in notes)])
    return csv_text(rows)


def render(model: TableModel, fmt: str, console: Console | None = None) -> None:
    """Print ``model`` in one of FORMATS: rich for the terminal, else plain text on stdout."""
    if fmt == "md":
        print(markdown_table(model), end="")
    elif fmt == "csv":
        print(csv_table(model), end="")
    else:
        _print_rich(model, console or Console())


def rich_table(model: TableModel, *, keep_numbers_whole: bool = True) -> Table:
    """The TableModel as a rich Table; footnote numbers in brackets, unavailable cells dimmed.

    ``keep_numbers_whole`` gives metric columns their widest cell as minimum
    width, so "5.76 ± 0.51" is not split over two lines; print_sweep_table
    turns it off where the terminal is too narrow for that (rich would crop).
    """
    title = model.title + (f"  ({model.subtitle})" if model.subtitle else "")
    t = Table(title=line((title, "bold")), title_justify="left", header_style="bold",
              box=box.SIMPLE_HEAD)
    for i, header in enumerate(model.headers):
        # Metric columns ask for their widest cell, so that "5.76 ± 0.51" wraps
        # only when the terminal is too narrow for anything else to give way.
        widest = max((len(cells[i].text) for cells in model.rows), default=0)
        metric = i >= model.n_key_columns
        t.add_column(line(header), justify="right" if metric else "left",
                     min_width=widest if metric and keep_numbers_whole else None)
    for cells in model.rows:
        t.add_row(*(_rich_cell(c) for c in cells))
    return t


def _rich_cell(cell: Cell) -> Text:
    return line((cell.text, "dim italic" if cell.unavailable else ""),
                *(((f" [{cell.note}]", "yellow"),) if cell.note is not None else ()))


def print_sweep_table(rows: Sequence[AggregateRow], title: str, console: Console | None = None) -> TableModel:
    """Print the table and its numbered reasons; returns the model that was printed."""
    model = build_table(rows, title)
    _print_rich(model, console or Console())
    return model


def _print_rich(model: TableModel, console: Console) -> None:
    table = rich_table(model)
    unclamped = console.options.update_width(10_000)  # measure what the table needs, not what fits
    if Measurement.get(console, unclamped, table).minimum > console.width:
        table = rich_table(model, keep_numbers_whole=False)
    console.print(table)
    for i, note in enumerate(model.notes, start=1):
        console.print(line((f"[{i}] ", "yellow"), note))
    for remark in model.remarks:
        console.print(line((remark, "yellow" if remark.startswith("warning") else "dim")))
