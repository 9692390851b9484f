"""The report as one self-contained HTML page: title, the aggregated table, the figures inlined.

Self-contained so it can be mailed, attached to an issue or opened from a
device's SD card: styles are inline, figures are base64 PNG data URIs, and
nothing is fetched from anywhere. The table is the same ``TableModel`` the
terminal shows (sweep_table.build_table), with the HTML-only columns added.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from ..trust.untrusted import html as escape  # visible, then HTML-escaped (bidirectional controls too)
from .aggregate import AggregateRow
from .figure_kit import FigureResult
from .records import Sweep, axes_that_vary, format_axis_value, is_number
from .sweep_table import Cell, TableModel, build_table

REPORT_FILE = "report.html"

_STYLE = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #ddd; white-space: nowrap; }
th { background: #f3f3f3; text-align: left; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.na { color: #888; font-style: italic; }
sup a { color: #b36b00; text-decoration: none; }
ol.notes { font-size: 0.85em; color: #444; }
figure { margin: 2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; }
"""


def render_html(sweep: Sweep, rows: Sequence[AggregateRow], figures: Sequence[FigureResult] = (),
                worst: Sequence[str] = (), figure_notes: Sequence[str] = ()) -> str:
    """The whole page as a string; every text from the results is HTML-escaped. A figure with no data (only
    its "unavailable" text) is not shown as an image: it is one line in the notes under the figures.
    ``worst``: lines naming the worst utterances (report/worst.py), shown as a list; ``figure_notes``: one line
    per figure left out and why (write_figures' ``skipped``)."""
    table = build_table(rows, sweep.title, terminal=False)
    n_failed = sum(r.n_failed for r in rows)
    meta = (f"{len(sweep.records)} runs in {len(rows)} conditions"
            + (f", {n_failed} failed" if n_failed else "")
            + (f" · {table.subtitle}" if table.subtitle else "")
            + f" · results: {sweep.results_dir}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escape(sweep.title)} · edgeasr report</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(sweep.title)}</h1>",
        f'<p class="meta">{escape(meta)}</p>',
        '<p class="meta">Each cell: mean over repeats ± half-width of the 95 % confidence interval (Student t) '
        'from 3 repeats on; with 2, the mean and (min–max); "(n=1)" where one run gives no spread. '
        '"unavailable" means not measured, never zero; the numbered notes say why.</p>',
        *([f'<p class="meta axes">{escape(axes)}</p>'] if (axes := varying_axes_text(rows)) else []),
        table_html(table),
        *(_figure_html(f) for f in figures if not f.unavailable),
        *([f'<h2>Figures not drawn</h2><ul class="notes">'
           f'{"".join(f"<li>{escape(n)}</li>" for n in [*(f"{f.title}: not drawn ({f.unavailable})" for f in figures if f.unavailable), *figure_notes])}</ul>']
          if figure_notes or any(f.unavailable for f in figures) else []),
        *([f'<h2>Worst utterances</h2><ul class="notes">{"".join(f"<li>{escape(w)}</li>" for w in worst)}</ul>']
          if worst else []),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def varying_axes_text(rows: Sequence[AggregateRow]) -> str:
    """"Axes that vary: decode.batch_size (1, 4); decode.beam_size (1, 5)", or "" when the sweep varies
    no dotted axis: what a reader needs to read the table's extra columns."""
    keys = [r.key for r in rows]
    parts = []
    for path in axes_that_vary(keys):
        values = list(dict.fromkeys(k.axis(path) for k in keys))
        if all(is_number(v) for v in values):
            values.sort()
        parts.append(f"{path} ({', '.join(format_axis_value(v) for v in values)})")
    return "Axes that vary: " + "; ".join(parts) if parts else ""


def write_html(path: Path, sweep: Sweep, rows: Sequence[AggregateRow],
               figures: Sequence[FigureResult] = (), worst: Sequence[str] = (),
               figure_notes: Sequence[str] = ()) -> Path:
    """Write render_html's page to ``path`` (its folder created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(sweep, rows, figures, worst, figure_notes), encoding="utf-8")
    return path


def table_html(table: TableModel) -> str:
    """The TableModel as an HTML <table> followed by its numbered notes."""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "\n".join("<tr>" + "".join(_cell_html(c, i >= table.n_key_columns) for i, c in enumerate(cells)) + "</tr>"
                     for cells in table.rows)
    notes = "".join(f'<li id="note-{i}">{escape(n)}</li>' for i, n in enumerate(table.notes, start=1))
    remarks = "".join(f'<p class="meta">{escape(r)}</p>' for r in table.remarks)
    return (f'<div class="scroll"><table class="sweep">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            f"</tbody>\n</table></div>\n" + (f'<ol class="notes">{notes}</ol>' if notes else "") + remarks)


def _cell_html(cell: Cell, numeric: bool) -> str:
    classes = [c for c, on in (("num", numeric), ("na", cell.unavailable)) if on]
    attr = f' class="{" ".join(classes)}"' if classes else ""
    note = f'<sup><a href="#note-{cell.note}">[{cell.note}]</a></sup>' if cell.note is not None else ""
    return f"<td{attr}>{escape(cell.text)}{note}</td>"


def _figure_html(fig: FigureResult) -> str:
    """The figure inlined (the page stays self-contained), linked to its PNG file beside report.html so a
    click opens it full size; the caption names the file."""
    data = base64.b64encode(Path(fig.path).read_bytes()).decode("ascii")
    name = Path(fig.path).name
    caption = escape(fig.title) + (f" · {escape(fig.unavailable)}" if fig.unavailable else "")
    return (f'<figure id="{escape(Path(name).stem)}"><a href="{escape(name)}" title="open {escape(name)}">'
            f'<img src="data:image/png;base64,{data}" alt="{escape(fig.title)}"></a>'
            f'<figcaption>{caption} · <a href="{escape(name)}">{escape(name)}</a></figcaption></figure>')
