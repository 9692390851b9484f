"""Reports over several runs stay readable (issue 28 item 3), over tests/fixtures/three_backends: a
faster-whisper, a pocketsphinx and an onnxruntime run as this host recorded them. Each row names its model as
its run does, versions are compared within a backend, the table keeps to the terminal's width without cutting
a cell, and every figure's labels, legends and notes lie inside its canvas without running into each other
(bounding boxes after drawing; and the HTML page in a headless browser, where one is installed)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import matplotlib.text
import pytest
from helpers import ROOT
from matplotlib.legend import Legend
from rich.console import Console

from runner.report import figure_kit
from runner.report.aggregate import aggregate
from runner.report.figures import write_figures
from runner.report.html import write_html
from runner.report.make import make_report
from runner.report.records import load_many
from runner.report.sweep_table import build_table, render

FIXTURE = ROOT / "tests/fixtures/three_backends"
RUNS = [FIXTURE / "fw-tiny.en", FIXTURE / "ps-en-us", FIXTURE / "onnx-tiny.en"]


def _rows():
    sweep = load_many(RUNS)
    return sweep, aggregate(sweep.records)


# --- names and versions ------------------------------------------------------------------------------------


def test_each_row_names_its_model_the_way_its_run_does():
    """The ONNX run says "tiny.en" (its folder is the hashed export "tiny.en-onnx-9ce5..."): so does the table
    and every figure label; the backend column already tells it from faster-whisper's tiny.en."""
    _, rows = _rows()
    table = build_table(rows, "t")
    col = table.headers.index("model")
    assert [cells[col].text for cells in table.rows] == ["tiny.en", "en-us", "tiny.en"]
    label = figure_kit.series_labeller(rows)
    assert all("9ce5" not in label(r.key) for r in rows)
    assert [label(r.key).split(" · ")[:2] for r in rows] == [["faster-whisper", "tiny.en"], ["pocketsphinx", "en-us"],
                                                            ["onnxruntime", "tiny.en"]]


def test_two_folders_of_one_name_in_one_backend_are_still_told_apart():
    """Within one backend the path tail still tells two models of one name apart (issue 10 item 8 stays)."""
    from runner.report.records import KeyNames, GroupKey

    a = GroupKey("faster-whisper", "tiny.en", "int8", "cpu", "d", "clean", None, model_ref="/m/v1/tiny.en")
    b = GroupKey("faster-whisper", "tiny.en", "int8", "cpu", "d", "clean", None, model_ref="/m/v2/tiny.en")
    c = GroupKey("onnxruntime", "tiny.en", "fp32", "cpu", "d", "clean", None, model_ref="/m/tiny.en-onnx-9ce5")
    names = KeyNames.of([a, b, c])
    assert [names.model(k) for k in (a, b, c)] == ["v1/tiny.en", "v2/tiny.en", "tiny.en"]


def test_versions_are_compared_within_a_backend_never_across():
    """pocketsphinx has no faster-whisper library: no "faster-whisper=?" in its row, and three backends with one
    build each have no versions (nor image) to tell apart, so the table and labels carry none."""
    _, rows = _rows()
    table = build_table(rows, "t")
    assert "versions" not in table.headers
    texts = [c.text for cells in table.rows for c in cells]
    assert not any("=?" in t for t in texts)
    label = figure_kit.series_labeller(rows)
    assert not any("=?" in label(r.key) or "edgeasr/" in label(r.key) for r in rows)


def test_two_builds_of_one_backend_beside_another_backend_show_only_their_own_versions():
    """A versions column where one backend has two builds: that backend's rows name what changed, the other
    backend's row is empty (never "?" for libraries it does not have)."""
    sweep, _ = _rows()
    recs = list(sweep.records)
    from dataclasses import replace

    other = replace(recs[0], key=replace(recs[0].key, versions=recs[0].key.versions.replace("4.8.5", "4.6.0"),
                                         image="edgeasr/faster-whisper:ct2-4.6.0"))
    rows = aggregate([*recs, other])
    table = build_table(rows, "t")
    col = table.headers.index("versions")
    by_backend = {}
    for cells in table.rows:
        by_backend.setdefault(cells[table.headers.index("backend")].text, []).append(cells[col].text)
    assert sorted(by_backend["faster-whisper"]) == ["ctranslate2=4.6.0", "ctranslate2=4.8.5"]
    assert by_backend["pocketsphinx"] == [""] and by_backend["onnxruntime"] == [""]


# --- the table keeps to the width ------------------------------------------------------------------------


@pytest.mark.parametrize("width", [60, 80, 100, 200])
def test_the_table_keeps_to_the_terminal_width_and_cuts_no_cell(width):
    """Every line within the width, no cell cut to "…"; columns left out for the width are named, with the
    formats that keep them."""
    _, rows = _rows()
    out = io.StringIO()
    render(build_table(rows, "fw-tiny.en vs ps-en-us vs onnx-tiny.en"), "table",
           Console(file=out, width=width, force_terminal=False, color_system=None))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text
    assert "RTF" in text and "0.331" in text  # the last column kept is drawn whole, not cropped at the edge
    for name in ("tiny.en", "en-us", *(("faster-whisper", "pocketsphinx", "onnxruntime") if width >= 80 else ())):
        assert name in text  # narrower than 80, a word longer than its column folds (is never cut)
    if width == 80:
        assert "--format md" in text  # what was left out, and where to find it


def test_a_narrow_table_keeps_its_identity_columns(tmp_path):
    """What is left out for the width is the least needed metric columns, never the backend, model, quant or
    noise a row is."""
    _, rows = _rows()
    out = io.StringIO()
    render(build_table(rows, "t"), "table", Console(file=out, width=80, color_system=None))
    header = next(line for line in out.getvalue().splitlines() if "model" in line)
    for name in ("backend", "model", "quant", "noise", "WER"):
        assert name in header


def test_report_to_a_pipe_keeps_every_column_in_md(tmp_path, capsys):
    """--format md has every column, whatever the width."""
    make_report(RUNS, tmp_path / "report", fmt="md", figures=False)
    md = capsys.readouterr().out
    header = next(line for line in md.splitlines() if line.startswith("| "))
    for name in ("backend", "image", "model", "WER %", "RTF", "p50 latency ms", "peak RSS MiB", "J / audio s"):
        assert name in header


# --- figures: inside the canvas ----------------------------------------------------------------------------


def _drawn_figures(monkeypatch, rows, out: Path):
    """Every report figure over ``rows``, as the Figure objects written (captured at the write)."""
    drawn = []
    real_write = figure_kit._write

    def capture(fig, path):
        real_write(fig, path)
        drawn.append((Path(path).name, fig))

    monkeypatch.setattr(figure_kit, "_write", capture)
    write_figures(rows, out)
    return drawn


def _outside(fig) -> list[str]:
    """Each visible text or legend whose drawn extent leaves the figure's canvas, and each text that runs into
    the notes under the plot."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    problems = []
    notes = [t for t in fig.texts if t.get_gid() == figure_kit.NOTES_GID]
    notes_box = notes[0].get_window_extent(renderer) if notes else None
    artists = [a for a in fig.findobj(lambda a: isinstance(a, (matplotlib.text.Text, Legend)))
               if a.get_visible() and a.get_figure(root=True) is fig]
    for a in artists:
        if isinstance(a, matplotlib.text.Text) and not a.get_text().strip():
            continue
        if isinstance(a, matplotlib.text.Text) and not _tick_shown(a, fig):
            continue
        box = a.get_window_extent(renderer)
        name = a.get_text()[:40] if isinstance(a, matplotlib.text.Text) else "legend"
        if box.x0 < canvas.x0 - 1 or box.y0 < canvas.y0 - 1 or box.x1 > canvas.x1 + 1 or box.y1 > canvas.y1 + 1:
            problems.append(f"{name!r} at {box.bounds} outside {canvas.bounds}")
        if notes_box is not None and a is not notes[0] and box.overlaps(notes_box):
            problems.append(f"{name!r} runs into the notes")
    for ax in fig.axes:  # category labels side by side never run into each other
        shown = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text() and _tick_shown(t, fig)]
        problems += [f"x labels {i} and {i + 1} overlap" for i, (a, b) in enumerate(zip(shown, shown[1:]))
                     if a.overlaps(b)]
    return problems


def _tick_shown(text, fig) -> bool:
    """A tick label matplotlib draws: ticks past the view limits exist as artists but are not drawn (the
    axis' own list of the ticks it draws decides); any other text is drawn."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            if any(text in (tick.label1, tick.label2) for tick in axis.majorTicks + axis.minorTicks):
                return any(text in (tick.label1, tick.label2) for tick in axis._update_ticks())
    return True


def test_three_backend_figures_keep_labels_and_legends_inside_the_canvas(tmp_path, monkeypatch):
    _, rows = _rows()
    drawn = _drawn_figures(monkeypatch, rows, tmp_path)
    assert {name for name, _ in drawn} >= {"energy_by_model_quant.png", "wer_by_noise.png",
                                           "rtf_ram_by_model_quant.png", "accuracy_vs_energy.png"}
    problems = {name: _outside(fig) for name, fig in drawn}
    assert not any(problems.values()), problems
    for name, _ in drawn:  # and in the PNG itself: nothing drawn touches its edges (a cut legend would)
        assert _blank_border(tmp_path / name), name


def _blank_border(png: Path, px: int = 2) -> bool:
    import matplotlib.image

    image = matplotlib.image.imread(png)[..., :3]
    border = [image[:px], image[-px:], image[:, :px], image[:, -px:]]
    return all(float(b.min()) >= 0.99 for b in border)


def test_many_long_categories_are_abbreviated_with_a_key(tmp_path, monkeypatch):
    """Twelve conditions with long labels: the ticks are short keys and the notes say what each stands for,
    still inside the canvas."""
    sweep, _ = _rows()
    from dataclasses import replace

    recs = [replace(rec, key=replace(rec.key, axes=(("decode.initial_prompt", f"a rather long prompt number {i}"),)))
            for rec in sweep.records for i in range(4)]
    rows = aggregate(recs)
    drawn = dict(_drawn_figures(monkeypatch, rows, tmp_path))
    fig = drawn["energy_by_model_quant.png"]
    problems = _outside(fig)
    assert not problems, problems
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(ticks) == 12 and all(len(t) <= 3 for t in ticks)
    notes = next(t for t in fig.texts if t.get_gid() == figure_kit.NOTES_GID).get_text()
    assert f"{ticks[0]}: faster-whisper" in notes.replace("\n", " ")


# --- the page in a headless browser ------------------------------------------------------------------------


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(b)), None)


PROBE = """<script>
window.addEventListener('load', () => {
  const page = document.documentElement.clientWidth;
  const out = [...document.images].map(img => { const r = img.getBoundingClientRect();
    return {alt: img.alt, loaded: img.complete && img.naturalWidth > 0, left: r.left, right: r.right, page}; });
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_the_three_backend_report_renders_inside_the_page_in_a_headless_browser(tmp_path):
    """The page's figures load and each lies within the page's width in a real browser (a 1280 px window)."""
    browser = _browser()
    if browser is None:
        pytest.skip("no headless browser (chromium) installed")
    sweep, rows = _rows()
    figures = write_figures(rows, tmp_path / "report")
    page = write_html(tmp_path / "report" / "report.html", sweep, rows, figures)
    probed = page.with_name("probed.html")  # the page as written, with a probe that reports the layout
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1280,2000",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert 'id="probe"' in dom, proc.stderr[-2000:]
    import html as html_mod
    import re

    images = json.loads(html_mod.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    assert len(images) == len([f for f in figures if f.available]) >= 4
    for img in images:
        assert img["loaded"], img
        assert img["left"] >= 0 and img["right"] <= img["page"] + 0.5, img


@pytest.mark.parametrize("fixture", ["sweep", "sweep_traces", "sweep_axes"])
def test_every_figure_of_the_stored_sweeps_lies_inside_its_canvas(fixture, tmp_path, monkeypatch):
    """The same check over every figure a sweep's report draws, the study figures included."""
    from runner.report.records import load_sweep

    sweep = load_sweep(ROOT / "tests/fixtures" / fixture)
    drawn = []
    real_write = figure_kit._write
    monkeypatch.setattr(figure_kit, "_write", lambda fig, path: (real_write(fig, path), drawn.append((path, fig))))
    write_figures(aggregate(sweep.records), tmp_path, sweep=sweep)
    assert len(drawn) >= 4
    problems = {Path(path).name: _outside(fig) for path, fig in drawn}
    assert not any(problems.values()), problems


def test_a_column_the_narrow_order_does_not_name_goes_from_the_right():
    """A metric column added later (stream mode's, say) is left out at a narrow width too, before WER and RTF."""
    from dataclasses import replace

    from runner.report.sweep_table import Cell

    _, rows = _rows()
    model = build_table(rows, "t")
    wide = replace(model, headers=(*model.headers, "first partial ms"),
                   rows=tuple((*cells, Cell("1234.5 ± 12.3")) for cells in model.rows))
    out = io.StringIO()
    render(wide, "table", Console(file=out, width=80, color_system=None))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "first partial ms" in text.split("not shown at this width")[1] and "0.331" in text
