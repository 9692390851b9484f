"""Issue 28 item 5: machine-readable output keeps its promises. --json prints a JSON error object on stdout when the
command fails before it has a summary (bad input included), the exit code kept; --format csv writes numbers, one
column per figure with its unit in the header, never display strings."""

import csv
import io
import json

import pytest
from helpers import ROOT, summary_record

from runner import cli
from runner.report.table import csv_summary

FIXTURE = ROOT / "tests/fixtures/sweep"


def _json_line(out: str) -> dict:
    lines = [x for x in out.splitlines() if x.strip()]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_run_json_with_a_bad_model_prints_a_json_error_object(tmp_path, capsys):
    code = cli.main(["run", "--json", "--model", "no-such-model", "--models-dir", str(tmp_path / "m"),
                     "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert code == 2
    data = _json_line(out.out)
    assert data["status"] == "error" and data["exit_code"] == 2 and "no-such-model" in data["error"]
    assert "no-such-model" in out.err  # the person still reads it on stderr


def test_run_json_with_a_flag_argparse_refuses_prints_a_json_error_object(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--json", "--beam-size", "many"])
    assert exc.value.code == 2
    out = capsys.readouterr()
    data = _json_line(out.out)
    assert data["status"] == "error" and data["exit_code"] == 2 and "--beam-size" in data["error"]
    assert "usage:" in out.err


def test_without_json_stdout_stays_empty_on_failure(tmp_path, capsys):
    assert cli.main(["run", "--model", "no-such-model", "--models-dir", str(tmp_path / "m"),
                     "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().out == ""


def test_run_summary_csv_is_numbers_with_units_in_the_headers():
    s = summary_record(wer=0.125, p50=428.0, rss=613.8, j=0.5)
    s.update(cer=0.05, latency_ms={"p50": 428.0, "p90": 434.0, "p99": 435.0}, load_s=1.5, rtfx=20.0)
    rows = list(csv.DictReader(io.StringIO(csv_summary(s))))
    assert len(rows) == 1
    row = rows[0]
    assert float(row["wer_pct"]) == pytest.approx(12.5) and row["sub"] == "1" and row["del"] == "0"
    assert float(row["latency_p50_ms"]) == 428.0 and float(row["latency_p99_ms"]) == 435.0
    assert float(row["peak_rss_mib"]) == pytest.approx(613.8) and float(row["j_per_audio_s"]) == 0.5
    assert float(row["load_s"]) == 1.5 and row["status"] == "ok"
    for value in row.values():
        assert " ms" not in value and "%" not in value and "/" not in value


def test_an_unavailable_figure_is_an_empty_csv_cell():
    s = summary_record(wer=None)
    row = next(csv.DictReader(io.StringIO(csv_summary(s))))
    assert row["wer_pct"] == "" and row["j_per_audio_s"] == ""


def test_sweep_report_csv_is_numbers_with_units_in_the_headers(tmp_path, capsys):
    from runner.commands import report as report_cmd
    from helpers import command_args

    assert report_cmd.main(command_args(report_cmd, str(FIXTURE), "--no-figures", "--out", str(tmp_path / "r"),
                                        "--format", "csv")) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 12
    assert "wer_pct" in rows[0] and "rtf" in rows[0]
    float(rows[0]["wer_pct"]), float(rows[0]["rtf"])


def test_report_csv_over_two_runs_names_each_source(tmp_path, capsys):
    from helpers import command_args, run_folder

    from runner.commands import report as report_cmd

    a, b = run_folder(tmp_path, "run-a", rtf=0.05), run_folder(tmp_path, "run-b", rtf=0.07)
    assert report_cmd.main(command_args(report_cmd, str(a), str(b), "--no-figures", "--out", str(tmp_path / "r"),
                                        "--format", "csv")) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["source"] for r in rows] == ["run-a", "run-b"] and [float(r["rtf"]) for r in rows] == [0.05, 0.07]
