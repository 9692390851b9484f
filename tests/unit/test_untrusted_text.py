"""Issue 20, item 3: text that came from an image or a dataset (hypotheses, references, utterance ids, error
strings, labels, file names) reaches no terminal, Markdown, CSV or HTML output with its control or
bidirectional characters working, and is never taken for rich markup: the real printers of `run`, `report`,
`compare`, `check-image`, `sweep` (its outcome, plan and progress), the fleet driver and the CLI's error lines
are driven with hostile strings and their captured output is checked."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.progress import Progress
from helpers import command_args, run_folder

from runner import cli
from runner.commands import check_image as check_image_cmd
from runner.commands import compare as compare_cmd
from runner.commands import report as report_cmd
from runner.commands import run as run_cmd
from runner.commands import sweep as sweep_cmd
from runner.errors import UserError
from runner.report.table import print_summary
from runner.sweep import SweepOutcome, SweepStart
from runner.trust.untrusted import csv_text, line, markdown, visible

TITLE = "\x1b]0;pwned\x07"  # sets the terminal window's title
CLEAR = "\x1b[2J"  # clears the screen
RED = "\x1b[31m"  # colours what follows
CSI8 = "\x9b2J"  # the C1 form of CSI
RLO = "\u202e"  # right-to-left override: "exe.txt" reads "txt.exe"
LINK = "[link=https://x]y[/link]"  # rich markup: a live link
CLOSE = "[/]"  # rich markup: closes nothing, a MarkupError
BOLD = "[bold]"
MARKUP = (LINK, CLOSE, BOLD)

EVIL_ID = f"{TITLE}u{RLO}1"
EVIL_REF = f"{LINK} {CLOSE} ref"
EVIL_HYP = f"{CLEAR}{RED}{BOLD}hyp{CSI8}\u2066"
EVIL_ERROR = f"{CLOSE} boom {CLEAR} {LINK} {RLO}exe.txt {BOLD}"
EVIL_NAME = f"m{RED}{BOLD}{RLO}"
EVIL_FOLDER = f"cand{CLEAR}{RLO}"


def raw_controls(text: str) -> list[str]:
    """The control, format (bidirectional, invisible) and separator characters in ``text``, newlines aside."""
    return sorted({f"U+{ord(c):04X}" for c in text
                   if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")})


def assert_shown_safely(out: str, markup: tuple[str, ...] = MARKUP) -> None:
    assert out.strip(), "nothing was printed"
    assert raw_controls(out) == [], f"raw control or bidirectional characters reached the output: {out!r}"
    for m in markup:
        assert m in out, f"{m!r} was taken for markup (or dropped): {out!r}"


def _console(buf: io.StringIO) -> Console:
    return Console(file=buf, width=400, color_system=None)


UTTS = [
    {"id": EVIL_ID, "status": "ok", "wer": 2.0, "latency_s": 1.0, "duration_s": 2.0, "reference": EVIL_REF,
     "hypothesis": EVIL_HYP},
    {"id": "plain", "status": "ok", "wer": 0.5, "latency_s": 0.1, "duration_s": 2.0, "reference": "a b",
     "hypothesis": "a"},
]


def _hostile_run(tmp_path: Path, name: str = "run") -> Path:
    return run_folder(tmp_path, name, utts=UTTS, model=EVIL_NAME, dataset=EVIL_NAME, status="error",
                       error=EVIL_ERROR, image=f"img{CLEAR}")


# ---------------------------------------------------------------- the one function


def test_visible_writes_out_control_bidi_and_invisible_characters():
    assert visible("a\x1b]0;t\x07b") == "a\\x1b]0;t\\x07b"
    assert visible(f"x{RLO}y\u2066z\u200ew\u061c") == "x<U+202E>y<U+2066>z<U+200E>w<U+061C>"
    assert visible("\x9b\x7f\x00") == "\\x9b\\x7f\\x00"
    assert visible("a\tb\nc\rd") == "a\\tb\\nc\\rd"
    assert visible("a\nb\x1b", lines=True) == "a\nb\\x1b"
    assert visible("\u2028\ufeff\u200b\udc80") == "<U+2028><U+FEFF><U+200B><U+DC80>"
    # what scripts need is kept: letters of every script, spaces, the joiners of Persian, Indic and emoji
    for fine in ("plain words", "é 日本語 \u00a0 عربى", "می\u200cخواهم", "\U0001f469\u200d\U0001f4bb", ""):
        assert visible(fine) == fine
    assert visible(3.5) == "3.5"


def test_line_is_never_markup():
    text = line(("failed", "red"), ": ", EVIL_ERROR)
    assert text.plain.startswith("failed: [/] boom \\x1b[2J [link=")
    buf = io.StringIO()
    _console(buf).print(text)
    assert_shown_safely(buf.getvalue())


def test_csv_cells_are_visible_and_never_a_formula():
    """A spreadsheet runs a cell that starts with = + - @; such a text cell gets a leading apostrophe, which
    spreadsheets show as text. Numbers keep their sign."""
    out = csv_text([["=HYPERLINK(\"http://x\")", "-0.5", "+1 555", "@SUM(A1)", "-", f"a{CLEAR}\nb", 3.0, None]])
    assert out.count("\n") == 1  # one record, one line
    assert next(csv.reader(io.StringIO(out))) == ["'=HYPERLINK(\"http://x\")", "-0.5", "'+1 555", "'@SUM(A1)", "'-",
                                                  "a\\x1b[2J\\nb", "3.0", ""]


def test_markdown_text_is_escaped():
    md = markdown(f"[x](http://e) ![i](http://t) <img src=x> a|b *b* _i_ `c` &#x202E; #h {RLO}")
    assert re.findall(r"(?<!\\)[\[\]<>|&`*_#~]", md) == []  # each one escaped: a link, an image, HTML, ...
    assert raw_controls(md) == [] and "U+202E" in md


# ---------------------------------------------------------------- run, report, compare


def test_run_view_shows_hostile_text_visibly_in_every_format(tmp_path, capsys):
    folder = _hostile_run(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    buf = io.StringIO()
    print_summary(summary, _console(buf), folder=folder)
    assert_shown_safely(buf.getvalue())
    assert "\\x1b]0;pwned\\x07u<U+202E>1" in buf.getvalue()
    for fmt in ("md", "csv"):
        print_summary(summary, None, folder=folder, fmt=fmt)
        out = capsys.readouterr().out
        assert raw_controls(out) == [] and "U+202E" in out, out


def test_run_error_line_with_markup_neither_crashes_nor_links(tmp_path, capsys):
    """Regression: `[red]run failed[/]: {error}` took the image's error for markup: `[/]` raised MarkupError (an
    "unexpected error" without a traceback) and `[link=...]` became a live link."""
    folder = _hostile_run(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    buf = io.StringIO()
    assert run_cmd.show_result(summary, folder, _console(buf), as_json=False, fmt="table") == 1
    assert_shown_safely(buf.getvalue())
    assert_shown_safely(capsys.readouterr().out)


@pytest.mark.parametrize("fmt", ["table", "md", "csv"])
def test_report_shows_hostile_text_visibly(tmp_path, capsys, fmt):
    folder = _hostile_run(tmp_path)
    assert report_cmd.main(command_args(report_cmd, str(folder), "--no-figures", "--format", fmt)) == 0
    out = capsys.readouterr()
    assert raw_controls(out.out + out.err) == [], out
    assert "U+202E" in out.out
    if fmt == "table":
        assert_shown_safely(out.out)


def test_report_html_escapes_and_shows_bidi_characters(tmp_path, capsys):
    folder = _hostile_run(tmp_path)
    assert report_cmd.main(command_args(report_cmd, str(folder), "--no-figures")) == 0
    page = (folder / "report" / "report.html").read_text()
    assert raw_controls(page) == [] and "&lt;U+202E&gt;" in page
    assert "<img src=x" not in page and "[link=https://x]y[/link]" in page


@pytest.mark.parametrize("fmt", ["table", "md", "csv", "json"])
def test_compare_shows_hostile_labels_visibly(tmp_path, capsys, fmt):
    base = run_folder(tmp_path, "base", model=EVIL_NAME)
    cand = run_folder(tmp_path, EVIL_FOLDER, model=EVIL_NAME, wer=0.5)
    code = compare_cmd.main(command_args(compare_cmd, str(base), str(cand), "--max-wer-increase", "1", "--format", fmt))
    assert code == 1
    out = capsys.readouterr()
    assert raw_controls(out.out + out.err) == [], out
    if fmt == "json":  # JSON stays raw: its encoder escapes control characters itself
        assert json.loads(out.out)["pairs"][0]["condition"].startswith(EVIL_NAME)
    elif fmt == "table":
        assert_shown_safely(out.out, markup=(BOLD,))
    else:
        assert "U+202E" in out.out


# ---------------------------------------------------------------- check-image, sweep, fleet, CLI


def test_check_image_prints_what_the_image_said_visibly(monkeypatch, capsys):
    from runner.commands.check_image import Check

    def fake_checks(image, model, quant, models_dir, timeout, log):
        checks = [Check("label org.edgeasr.versions", True, f"ct2={EVIL_NAME}"),
                  Check("tiny job: transcripts.jsonl", True, f"speech -> {EVIL_HYP}"),
                  Check("malformed job: error record", False, f"exit 1, status error: {EVIL_ERROR}")]
        for c in checks:
            log(c)
        return checks

    monkeypatch.setattr(check_image_cmd, "run_checks", fake_checks)
    args = argparse.Namespace(image=f"evil{TITLE}", model=None, quant=None, models_dir=None, timeout=1.0, quiet=False)
    assert check_image_cmd.main(args) == 1
    assert_shown_safely(capsys.readouterr().out)


def test_sweep_outcome_with_a_markup_error_neither_crashes_nor_links(tmp_path):
    from runner.results import ConditionRecord

    records = [ConditionRecord.of({"backend": "b", "model": EVIL_NAME, "quant": "int8", "noise_type": "clean",
                                   "snr_db": None, "repeat": 0, "target": EVIL_NAME},
                                  {"status": "error", "error": EVIL_ERROR})]
    buf = io.StringIO()
    outcome = SweepOutcome(tmp_path, tuple(records), 0, 1.0)
    sweep_cmd.print_outcome(outcome, _console(buf), target=True)
    assert len(outcome.failed) == 1 and outcome.exit_code == 1
    assert_shown_safely(buf.getvalue())


def test_sweep_plan_table_shows_names_visibly(capsys):
    """--plan: the table (stderr) and the JSON lines (stdout)."""
    group = SimpleNamespace(target="local", backend="faster-whisper", model=f"/m/{EVIL_NAME}", quant="int8",
                            device="cpu", image=f"img{LINK}{CLOSE}", power=None,
                            conditions=[SimpleNamespace(settings=lambda: {"dataset": EVIL_NAME})],
                            settings=lambda: {"model": EVIL_NAME})
    exp = SimpleNamespace(name="x", groups=[group], n_conditions=1, excluded=())
    assert sweep_cmd.show_plan(exp, Console(stderr=True)) == 0
    out = capsys.readouterr()
    assert_shown_safely(out.err, markup=(CLOSE, LINK))
    assert raw_controls(out.out) == [] and json.loads(out.out.splitlines()[0])["model"] == EVIL_NAME


def _rendered(progress: Progress) -> str:
    buf = io.StringIO()
    _console(buf).print(progress.make_tasks_table(progress.tasks))
    return buf.getvalue()


def test_progress_views_never_take_labels_for_markup(tmp_path):
    view = sweep_cmd.SweepConsoleView(_console(io.StringIO()))
    job = SimpleNamespace(label=f"faster-whisper {EVIL_NAME}", conditions=("c",))
    with view.running(SweepStart("x", tmp_path, (job,), ((job, ["c"]),))):
        callbacks = view.callbacks(job)
        callbacks.on_condition_start(SimpleNamespace(ids=("a",), label=EVIL_ERROR))
        assert_shown_safely(_rendered(view.progress))
    progress = Progress(*run_cmd.progress_columns(), console=_console(io.StringIO()))
    progress.add_task(EVIL_ERROR, total=1, rtf="", power="")
    assert_shown_safely(_rendered(progress))


def test_fleet_driver_notes_and_failures_are_shown_visibly(tmp_path):
    from runner.fleet import driver

    buf = io.StringIO()
    view = sweep_cmd.SweepConsoleView(_console(buf), cluster="ray://h:1")
    target = f"t{LINK}"
    job = SimpleNamespace(spec=SimpleNamespace(settings=SimpleNamespace(target=target)), conditions=("c",))
    with view.running(SweepStart("x", tmp_path, (job,), ((job, ["c"]),))):
        driver.heard({"kind": "note", "target": target, "hostname": f"h{TITLE}", "text": EVIL_ERROR},
                     driver.Tally(), tmp_path, view)
        driver.heard({"kind": "start", "target": target, "group": 0, "hostname": f"h{CLOSE}", "node_id": "n" * 20,
                      "attempts": [{"hostname": f"old{RLO}", "node_id": "o" * 20}, {}]}, driver.Tally(), tmp_path,
                     view)
        view.note(f"group failed on target {target}: {EVIL_ERROR}", "error")
        rendered = _rendered(view.progress)
    assert_shown_safely(buf.getvalue() + rendered, markup=(CLOSE,))


def test_cli_error_lines_show_hostile_text_visibly(monkeypatch, capsys, tmp_path):
    import runner.commands.report as report

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(report, "main", lambda args: (_ for _ in ()).throw(UserError(f"bad file {EVIL_ERROR}")))
    assert cli.main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert_shown_safely(err) and err.startswith("edgeasr: bad file [/] boom \\x1b[2J")
    monkeypatch.setattr(report, "main", lambda args: (_ for _ in ()).throw(RuntimeError(EVIL_ERROR)))
    assert cli.main(["report", str(tmp_path)]) == 1
    assert raw_controls(capsys.readouterr().err) == []


def test_results_csv_cells_are_visible_and_never_a_formula(tmp_path):
    """results.csv is for spreadsheets: the image's error and the names are shown like `--format csv` shows them;
    conditions.jsonl keeps them raw."""
    from runner.results import ConditionRecord
    from runner.tables import write_tables

    record = {"condition": {"key": "k", "backend": "b", "model": "=HYPERLINK(\"http://x\",\"m\")", "quant": "q",
                            "axes": {}}, "status": "error", "error": f"-{EVIL_ERROR}",
              "summary": {"wer": -0.0, "dataset": EVIL_NAME}}
    write_tables(tmp_path, [ConditionRecord.from_json(record)])
    rows = list(csv.DictReader((tmp_path / "results.csv").open(newline="")))
    assert rows[0]["model"].startswith("'=HYPERLINK") and rows[0]["error"].startswith("'-[/] boom \\x1b[2J")
    assert raw_controls((tmp_path / "results.csv").read_text()) == []
    assert json.loads((tmp_path / "conditions.jsonl").read_text())["error"] == f"-{EVIL_ERROR}"


def test_figure_labels_are_never_mathtext(tmp_path, capsys):
    """Regression: a model named "m$\\frac{$x" made matplotlib parse mathtext and the report crashed."""
    a = run_folder(tmp_path, "a", model="m$\\frac{$x")
    b = run_folder(tmp_path, "b", model="$\\alpha$", wer=0.2)
    assert report_cmd.main(command_args(report_cmd, str(a), str(b), "--out", str(tmp_path / "r"))) == 0
    assert "figure: " in capsys.readouterr().out


def test_figure_notes_show_an_image_error_visibly(tmp_path, capsys, recwarn):
    """Found by issue 20 item 4's e2e: a failed run's error goes into the figures' notes; its ESC and BEL had no
    glyph, and matplotlib's warning about that printed them raw on the terminal."""
    a = run_folder(tmp_path, "a")
    b = run_folder(tmp_path, "b", status="error", error=f"boom {TITLE}")
    assert report_cmd.main(command_args(report_cmd, str(a), str(b), "--out", str(tmp_path / "r"))) == 0
    captured = capsys.readouterr()
    assert raw_controls(captured.out + captured.err) == []
    assert not [w for w in recwarn.list if "missing from font" in str(w.message)]
