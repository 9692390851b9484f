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
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from ..trust.untrusted import csv_text, line, markdown
from ..wording import plural
from .aggregate import CV_DISAGREE, EMULATED_METRICS, ENERGY_METRICS, RUN_FAILED, AggregateRow, Stat
from .table import SMALL_N_PERCENTILES
from .records import GroupKey, KeyNames, axes_that_vary, constant_axes, format_axis_value, versions_that_vary

UNAVAILABLE = "unavailable"
#: Output forms of a table: the terminal's (rich), Markdown, CSV.
FORMATS = ("table", "md", "csv")
DISAGREE_NOTE = f"repeats disagree: coefficient of variation above {CV_DISAGREE:.0%}"
PERCENTILE_N_NOTE = ("p50 latency \"(of n)\": the median of each run's n transcribed utterances; a percentile of "
                     "few values is a rough one (n is said below 100)")
#: The metrics that are a percentile over each run's utterances: their cells say that n where it is small.
PERCENTILE_METRICS = frozenset({"latency_p50_ms"})
ONE_RUN_NOTE = "one run per row (n=1): no spread to show; run with --repeats 3 or more for a 95 % interval"
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
    #: "stat": the metric's mean over repeats; "bounded": stream mode's lag verdict over the repeats (yes, no, or
    #: "k of n bounded"), from AggregateRow.lag_bounded, shown only where a row streamed
    kind: str = "stat"


COLUMNS: tuple[Column, ...] = (
    Column("WER %", "wer", 100.0, 2),
    Column("CER %", "cer", 100.0, 2, terminal=False),
    Column("ins %", "ins_rate", 100.0, 2, terminal=False),  # issue 24: inserted words over reference words
    Column("repeated 3-grams %", "repeated_ngram_rate", 100.0, 2, terminal=False),  # beyond the reference's own
    Column("loops %", "compression_over_share", 100.0, 1, terminal=False),  # compression ratio > 2.4
    Column("non-speech words/min", "nonspeech_wpm", 1.0, 1, terminal=False),  # said over an empty reference
    Column("non-speech with output %", "nonspeech_output_share", 100.0, 1, terminal=False),
    Column("gap insertions/min", "gap_ins_per_min", 1.0, 1, terminal=False),  # over segment-mapped items' gaps
    Column("RTF", "rtf", 1.0, 3),
    Column("p50 latency ms", "latency_p50_ms", 1.0, 0),
    # stream mode (issue 23): only where a row streamed (offline tables are as they were)
    Column("p99 final ms", "finalization_p99_ms", 1.0, 0),
    Column("lag bounded", "lag_bounded", kind="bounded"),
    Column("peak RSS MiB", "peak_rss_mib", 1.0, 0),  # the entrypoint's ru_maxrss / 1024: MiB
    Column("container MiB", "container_mem_peak_mib", 1.0, 0, terminal=False),  # cgroup working set, its window
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


def format_stat(stat: Stat, scale: float = 1.0, digits: int = 3, say_n: bool = True) -> str:
    """"mean ± ci95" from 3 values on, "mean (min–max)" with 2 (a t-interval of 2 values is 12.7 x their
    spread), "mean (n=1)" when there is no spread to show, or "unavailable". A figure with a measurement bound
    (energy) adds it: "12.4 ± 0.3" for one run, the bound added to the CI from 3 on, "± bound" after a range.
    ``say_n`` False: no "(n=1)" (a table of one run per row says it once, not in every cell)."""
    if stat.mean is None:
        return UNAVAILABLE
    mean = f"{stat.mean * scale:.{digits}f}"
    bound = stat.bound * scale if stat.bound is not None else None
    if stat.uses_range:
        spread = f"{mean} ({stat.min * scale:.{digits}f}–{stat.max * scale:.{digits}f})"  # type: ignore[operator]
        return spread + (f" ± {bound:.{digits}f}" if bound is not None else "")
    if stat.ci95 is None:
        if bound is not None:
            return f"{mean} ± {bound:.{digits}f}"
        return f"{mean} (n={stat.n})" if say_n else mean
    return f"{mean} ± {stat.ci95 * scale + (bound or 0.0):.{digits}f}"


def percentile_n(row: AggregateRow) -> str | None:
    """"5" (or "4–5" where repeats differ): the utterances ``row``'s latency percentiles are over, where that
    is fewer than SMALL_N_PERCENTILES (the run view's threshold); None where it is more or not known."""
    counts = row.latency_n
    if not counts or counts[-1] >= SMALL_N_PERCENTILES:
        return None
    return str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"


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
               and any(_shown(r, c) for r in rows)]  # unavailable everywhere: no column
    energy_reasons = [why for r in rows for m in ENERGY_METRICS for why in r.stat(m).reasons]
    remarks = []
    if rows and not any(r.stat(m).mean is not None for r in rows for m in ENERGY_METRICS):
        remarks.append(energy_line(energy_reasons))
    if any(r.stat(c.metric).bound is not None for r in rows for c in columns if c.metric in ENERGY_METRICS):
        remarks.append(BOUND_NOTE)
    busy = busy_warning(rows)
    if busy:
        remarks.append(busy)
    one_run_each = bool(rows) and all(r.n_runs == 1 for r in rows)  # "(n=1)" in every cell: said once instead
    if one_run_each:
        remarks.append(ONE_RUN_NOTE)
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
    said_n = False
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
            if col.kind == "bounded":
                cells.append(bounded_cell(row))
                continue
            stat = row.stat(col.metric)
            why = unavailable_note(stat)
            if stat.disagree:
                why = f"{why}; {DISAGREE_NOTE}" if why else DISAGREE_NOTE
            text = format_stat(stat, col.scale, col.digits, say_n=not one_run_each)
            n = percentile_n(row) if col.metric in PERCENTILE_METRICS and stat.mean is not None else None
            if n is not None:
                text += f" (of {n})"
                said_n = True
            if row.emulated and col.metric in EMULATED_METRICS and stat.mean is not None:
                text += " (emulated)"  # never a device's figure (emulated_warning says whose)
            cells.append(Cell(text, notes.number(why) if why else None,
                              unavailable=stat.mean is None))
        table_rows.append(tuple(cells))
    if said_n:
        remarks.append(PERCENTILE_N_NOTE)
    return TableModel(title=title, subtitle=subtitle, headers=(*key_headers, *(c.header for c in columns)),
                      n_key_columns=len(key_headers), rows=tuple(table_rows), notes=notes.texts(),
                      remarks=tuple(remarks))


def _shown(row: AggregateRow, col: Column) -> bool:
    """Whether the row has something for the column (a column nothing has is left out)."""
    return bool(row.lag_bounded) if col.kind == "bounded" else row.stat(col.metric).mean is not None


def bounded_cell(row: AggregateRow) -> Cell:
    """Stream mode's lag verdict over the repeats: "yes", "no" (the lag grew: the backend falls behind), "2 of 3"
    where they disagree, "unavailable" where the row did not stream."""
    verdicts = row.lag_bounded
    if not verdicts:
        return Cell(UNAVAILABLE, unavailable=True)
    if all(verdicts):
        return Cell("yes")
    if not any(verdicts):
        return Cell("no")
    return Cell(f"{sum(verdicts)} of {len(verdicts)}")


def _plain(cell: Cell) -> str:
    return cell.text + (f" [{cell.note}]" if cell.note is not None else "")


def markdown_table(model: TableModel) -> str:
    """The TableModel as a GitHub-flavoured Markdown table, with its notes and remarks under it (every text
    escaped: runner/trust/untrusted.py; a line break in a text is a space)."""
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


def rich_table(model: TableModel, *, keep_numbers_whole: bool = True, keep_words_whole: bool = True) -> Table:
    """The TableModel as a rich Table; footnote numbers in brackets, unavailable cells dimmed.

    ``keep_numbers_whole`` gives metric columns their widest cell as minimum
    width, so "5.76 ± 0.51" is not split over two lines; print_sweep_table
    turns it off where the terminal is too narrow for that (rich would crop); ``keep_words_whole`` gives key
    columns their longest word, turned off only where nothing else fits (a word then folds, never is cut).
    """
    title = model.title + (f"  ({model.subtitle})" if model.subtitle else "")
    t = Table(title=line((title, "bold")), title_justify="left", header_style="bold",
              box=box.SIMPLE_HEAD)
    for i, header in enumerate(model.headers):
        # Metric columns ask for their widest cell, so that "5.76 ± 0.51" wraps
        # only when the terminal is too narrow for anything else to give way.
        widest = max((len(cells[i].text) for cells in model.rows), default=0)
        metric = i >= model.n_key_columns
        # a key column is as wide as its longest word, so "faster-whisper" is never folded in two
        word = max((len(w) for cells in model.rows for w in cells[i].text.split()), default=0)
        t.add_column(line(header), justify="right" if metric else "left", overflow="fold",  # never cut to "…"
                     min_width=widest if metric and keep_numbers_whole else
                     (word if not metric and keep_words_whole else None))
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


#: The columns the terminal leaves out, in this order, where the table is wider than the terminal: a key column
#: (image, versions, source) only while the rest still tell every row apart; the ones a row is (backend, model,
#: quant, other axes, noise), its runs, WER and RTF never. `--format md` and `csv` keep every column.
NARROW_DROPS = ("image", "versions", "source", "avg W", "p50 latency ms", "peak RSS MiB", "J / audio s",
                "energy scope")
#: The metric columns the terminal keeps whatever its width (any other, not named above, goes from the right).
NARROW_KEEPS = ("WER %", "RTF")


def without_columns(model: TableModel, headers: Sequence[str]) -> TableModel:
    """``model`` less the columns headed ``headers`` (its notes kept whole, so their numbers stay those of
    the Markdown and HTML forms)."""
    keep = [i for i, h in enumerate(model.headers) if h not in headers]
    return TableModel(title=model.title, subtitle=model.subtitle, headers=tuple(model.headers[i] for i in keep),
                      n_key_columns=sum(1 for i in keep if i < model.n_key_columns),
                      rows=tuple(tuple(cells[i] for i in keep) for cells in model.rows), notes=model.notes,
                      remarks=model.remarks)


def _rows_distinct(model: TableModel, header: str) -> bool:
    """Whether the key columns less ``header`` still tell every row apart."""
    keys = [i for i in range(model.n_key_columns) if model.headers[i] != header]
    return len({tuple(cells[i].text for i in keys) for cells in model.rows}) == len(model.rows)


def rendered_width(console: Console, table: Table) -> int:
    """The columns ``table`` takes when drawn on ``console``: drawn, not measured (rich's minimum width of a
    table is a lower bound its layout can exceed, and the console would then crop the right-hand columns)."""
    lines = Segment.split_lines(console.render(table, console.options))
    return max((Segment.get_line_length(line) for line in lines), default=0)


def fit_to_width(model: TableModel, console: Console) -> tuple[Table, list[str]]:
    """The rich table for ``model`` within ``console.width``, and the headers left out to get there.

    Columns go in NARROW_DROPS' order until the table fits with every number whole; where it still does not,
    numbers may wrap. No cell is ever cut: a text wider than its column folds onto the next line."""
    dropped: list[str] = []
    current = model
    while rendered_width(console, rich_table(current)) > console.width:
        named = [h for h in NARROW_DROPS if h in current.headers
                 and (current.headers.index(h) >= current.n_key_columns or _rows_distinct(current, h))]
        others = [h for h in reversed(current.headers[current.n_key_columns:]) if h not in NARROW_KEEPS]
        left = [h for h in dict.fromkeys([*named, *others]) if h not in dropped]  # a new column: from the right
        if not left:
            break
        dropped.append(left[0])
        if not any(h in current.headers for h in ("J / audio s", "avg W", "energy J", "dynamic J")
                   if h not in dropped) and "energy scope" in current.headers and "energy scope" not in dropped:
            dropped.append("energy scope")  # a scope with no energy beside it says nothing
        current = without_columns(model, dropped)
    table = rich_table(current)
    if rendered_width(console, table) > console.width:
        table = rich_table(current, keep_numbers_whole=False)
    if rendered_width(console, table) > console.width:
        table = rich_table(current, keep_numbers_whole=False, keep_words_whole=False)
    return table, dropped


def _print_rich(model: TableModel, console: Console) -> None:
    table, dropped = fit_to_width(model, console)
    console.print(table)
    for i, note in enumerate(model.notes, start=1):
        console.print(line((f"[{i}] ", "yellow"), note))
    for remark in model.remarks:
        if remark == PERCENTILE_N_NOTE and "p50 latency ms" in dropped:
            continue  # says what a column not shown means
        console.print(line((remark, "yellow" if remark.startswith("warning") else "dim")))
    if dropped:
        console.print(line((f"not shown at this width ({console.width} columns): {', '.join(dropped)}; "
                            "`--format md` or `--format csv` has every column", "dim")))
