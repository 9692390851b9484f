"""Stream mode (issue 23) in what edgeasr prints and draws: the run view's latency table, the sweep table's
columns, the report's figures and compare's --max-latency-increase gate; and offline results as they were.

The stream blocks are made by runner/scoring/stream_metrics.py from synthetic timelines (tests/unit/test_stream_metrics.py),
as the merge stores them, so the view reads what the metrics write.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from helpers import ROOT, command_args, summary_record
from rich.console import Console
from stream_timelines import end, paced, start, utterance

from runner.commands import compare as compare_cmd
from runner.errors import UserError
from runner.report import figures
from runner.report.aggregate import aggregate
from runner.report.compare import Gates, compare, to_json
from runner.report.numbers_csv import numbers_csv
from runner.report.records import ConditionRecord, Sweep, load_results, load_sweep
from runner.report.stream_figures import CONCURRENCY_FILE, FINALIZATION_FILE, LAG_FILE, stream_figures
from runner.report.sweep_table import build_table
from runner.report.table import csv_summary, print_summary
from runner.scoring.stream_metrics import stream_block, stream_metrics

FIXTURE = ROOT / "tests/fixtures/sweep"
ENERGY = {"total_j": 8.0, "dynamic_j": 4.0, "avg_w": 4.0, "baseline_w": 2.0, "scope": "CPU package+DRAM",
          "source": "rapl", "total_kind": "rapl:package+dram", "n_samples": 20, "interval_ms": 100.0}


def block(work_ms: int = 50, n_chunks: int = 4, **extra) -> dict:
    """A stream block as the merge stores it: one stream, one utterance (finalization 150 ms), 2 s of audio."""
    events = [start(), *paced(n_chunks, work_ms), *utterance(), end(n_chunks=n_chunks, audio_s=n_chunks / 2)]
    return {**stream_block(stream_metrics(events, "c0"), ENERGY), **extra}


def stream_summary(**extra) -> dict:
    s = summary_record(wer=0.125, j=1.0)
    s["energy"] = dict(ENERGY)
    s["stream"] = block(**extra)
    return s


# ---------------------------------------------------------------- the run view


def test_the_run_view_prints_the_live_audio_table():
    out = io.StringIO()
    s = stream_summary()
    s["offline"] = {"wer": 0.10, "stream_wer": 0.125, "wer_cost": 0.025, "n_scored": 2}  # runner/merge.offline_block
    print_summary(s, Console(file=out, width=220))
    text = out.getvalue()
    assert "live audio (stream mode)" in text
    assert "1 stream (concurrency 1), policy native, chunk 500 ms" in text
    assert "150 / 150 / 150 ms (n = 1), max 150 ms" in text  # finalization
    assert "300 / 300 / 300 ms (n = 1)" in text  # first partial: 0.8 s - 0.5 s
    assert "max 0.00 s, end 0.00 s: bounded" in text
    assert "33.3% of 6 words shown in 3 partials later changed" in text
    assert "12.50% / 10.00%  (+2.50 points)" in text
    assert "4.000 J/s" in text  # 8 J over 2 s of audio delivered
    assert "4.00 W" in text  # 4 W over one stream


def test_a_growing_lag_and_a_missing_offline_wer_are_said():
    s = stream_summary(work_ms=600, n_chunks=40)
    s["unavailable"]["offline"] = "the offline pass was not asked for"
    out = io.StringIO()
    print_summary(s, Console(file=out, width=220))
    text = out.getvalue()
    assert "GROWING (end - middle 2.00 s > 1.00 s): the backend does not keep up" in text
    assert "12.50% / unavailable: the offline pass was not asked for" in text


def test_stream_energy_is_computed_from_the_summary_when_the_block_has_none():
    s = stream_summary()
    del s["stream"]["energy"]
    s["energy"] = {"total_j": None, "avg_w": None, "unavailable": {"total_j": "no power sensor found",
                                                                   "avg_w": "no power sensor found"}}
    out = io.StringIO()
    print_summary(s, Console(file=out, width=220))
    assert out.getvalue().count("unavailable: no power sensor found") == 2  # never 0 J/s or 0 W


def test_an_offline_run_view_has_no_live_audio_table_and_the_same_csv():
    s = summary_record(wer=0.1, j=0.5)
    out = io.StringIO()
    print_summary(s, Console(file=out, width=220))
    assert "live audio" not in out.getvalue()
    header = csv_summary(s).splitlines()[0].split(",")
    assert header[-1] == "host_busy" and not any("final" in h or "lag" in h for h in header)


def test_the_stream_run_csv_adds_numbers_after_the_offline_columns():
    s = stream_summary()
    s["offline"] = {"wer": 0.10, "stream_wer": 0.125}
    row = next(csv.DictReader(io.StringIO(csv_summary(s))))
    assert float(row["finalization_p99_ms"]) == pytest.approx(150.0) and row["lag_bounded"] == "True"
    assert float(row["offline_wer_pct"]) == pytest.approx(10.0) and float(row["stream_wer_pct"]) == 12.5
    assert float(row["w_per_stream"]) == 4.0
    assert row["first_partial_p50_ms"] == "300.0"


def test_the_progress_bar_counts_stream_zeros_first_pass_and_shows_the_lag():
    from rich.progress import Progress

    from runner.commands.run import LiveProgress

    events = [start(), *paced(40, work_ms=600), *utterance(0, "u1", 0), *utterance(0, "u1", 1),
              *utterance(1, "u1", 0)]
    with Progress(console=Console(file=io.StringIO())) as progress:
        live = LiveProgress(progress, total=1)
        for e in events:
            live(e.to_json())
        task = progress.tasks[0]
        assert task.completed == 1 and task.description == "streaming"
        assert task.fields["rtf"] == "lag 3.90 s"


def test_a_stream_runs_latency_row_says_why_it_is_empty():
    s = stream_summary()
    s["latency_ms"] = None
    s["unavailable"]["latency_ms"] = "stream mode: see the finalization latency"
    out = io.StringIO()
    print_summary(s, Console(file=out, width=220))
    assert "unavailable: stream mode: see the finalization latency" in out.getvalue()


# ---------------------------------------------------------------- sweep table and numbers


def record(concurrency: int, p99_ms: float, bounded: bool, repeat: int = 0, status: str = "ok") -> ConditionRecord:
    s = stream_summary()
    s["stream"]["concurrency"] = concurrency
    s["stream"]["finalization_ms"]["p99"] = p99_ms
    s["stream"]["lag_s"]["bounded"] = bounded
    s["status"] = status
    cond = {**s["condition"], "repeat": repeat, "axes": {"stream.concurrency": concurrency}}
    return ConditionRecord.of(cond, s)


def test_the_sweep_table_shows_p99_finalization_and_whether_the_lag_stayed_bounded():
    recs = [record(1, 200.0, True), record(1, 240.0, True, repeat=1), record(4, 900.0, True),
            record(4, 1500.0, False, repeat=1), record(8, 4000.0, False)]
    model = build_table(aggregate(recs), "t")
    p99, lag = model.headers.index("p99 final ms"), model.headers.index("lag bounded")
    assert [cells[lag].text for cells in model.rows] == ["yes", "1 of 2", "no"]
    assert model.rows[0][p99].text == "220 (200–240)"
    text = numbers_csv(aggregate(recs))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["lag_bounded_runs"] for r in rows] == ["2/2", "1/2", "0/1"]
    assert float(rows[2]["finalization_p99_ms"]) == 4000.0


def test_an_offline_sweep_table_has_no_stream_columns():
    rows = aggregate(load_sweep(FIXTURE).records)
    for terminal in (True, False):
        headers = build_table(rows, "t", terminal=terminal).headers
        assert "p99 final ms" not in headers and "lag bounded" not in headers
    assert "final" not in numbers_csv(rows).splitlines()[0]


# ---------------------------------------------------------------- figures


def test_stream_figures_are_drawn_from_the_stream_blocks(tmp_path):
    recs = [record(1, 200.0, True), record(2, 400.0, True), record(4, 1500.0, False)]
    skipped: list[str] = []
    drawn = stream_figures(aggregate(recs), recs, tmp_path, skipped)
    assert [f.path.name for f in drawn] == [FINALIZATION_FILE, CONCURRENCY_FILE, LAG_FILE]
    assert all(f.available and f.path.read_bytes().startswith(b"\x89PNG") for f in drawn) and skipped == []
    again = stream_figures(aggregate(recs), recs, tmp_path / "again")
    assert [f.path.read_bytes() for f in drawn] == [f.path.read_bytes() for f in again]  # deterministic


def test_one_concurrency_draws_no_concurrency_figure_and_says_why(tmp_path):
    recs = [record(1, 200.0, True)]
    skipped: list[str] = []
    drawn = stream_figures(aggregate(recs), recs, tmp_path, skipped)
    assert [f.path.name for f in drawn] == [FINALIZATION_FILE, LAG_FILE]
    assert len(skipped) == 1 and skipped[0].startswith("latency against concurrency: ")
    assert not (tmp_path / CONCURRENCY_FILE).exists()


def test_a_report_without_stream_data_gets_no_stream_figure_and_no_note(tmp_path):
    sweep = load_sweep(FIXTURE)
    rows = aggregate(sweep.records)
    skipped: list[str] = []
    assert stream_figures(rows, sweep.records, tmp_path, skipped) == [] and skipped == []
    names = [f.path.name for f in figures.write_figures(rows, tmp_path / "all", sweep=sweep, skipped=skipped)]
    assert not {FINALIZATION_FILE, CONCURRENCY_FILE, LAG_FILE} & set(names)
    assert not any("concurrency" in s or "finalization" in s or "lag" in s for s in skipped)


def test_write_figures_adds_the_stream_figures_of_a_streamed_sweep(tmp_path):
    recs = (record(1, 200.0, True), record(2, 400.0, True))
    sweep = Sweep(tmp_path, "stream", recs)
    names = [f.path.name for f in figures.write_figures(aggregate(recs), tmp_path / "fig", sweep=sweep)]
    assert names[-3:] == [FINALIZATION_FILE, CONCURRENCY_FILE, LAG_FILE]


# ---------------------------------------------------------------- compare


def run(tmp_path: Path, name: str, summary: dict) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def with_p99(p99_ms: float) -> dict:
    s = stream_summary()
    s["stream"]["finalization_ms"]["p99"] = p99_ms
    return s


def test_max_latency_increase_gates_on_p99_finalization(tmp_path, capsys):
    a, b = run(tmp_path, "a", with_p99(200.0)), run(tmp_path, "b", with_p99(300.0))
    cmp = compare(load_results(a), [("b", load_results(b))], "a")
    assert cmp.pairs[0].delta("finalization_p99_ms").change == pytest.approx(50.0)
    failures = cmp.gate_failures(Gates(max_latency_increase_pct=20))
    assert len(failures) == 1 and "p99 final ms rose +50.0 %" in failures[0]
    assert cmp.gate_failures(Gates(max_latency_increase_pct=60)) == []
    assert compare_cmd.main(command_args(compare_cmd, str(a), str(b), "--max-latency-increase", "20")) == 1
    assert "p99 final ms" in capsys.readouterr().out
    assert compare_cmd.main(command_args(compare_cmd, str(a), str(b), "--max-latency-increase", "60")) == 0


def test_max_latency_increase_is_refused_where_a_side_has_no_stream_data(tmp_path):
    a, b = run(tmp_path, "a", with_p99(200.0)), run(tmp_path, "b", summary_record(wer=0.125, j=1.0))
    with pytest.raises(UserError) as exc:
        compare_cmd.main(command_args(compare_cmd, str(a), str(b), "--max-latency-increase", "20"))
    assert str(exc.value) == ("--max-latency-increase gates stream mode's p99 finalization latency, and b has no "
                              "stream data for tiny.en int8 clean (run it with --stream).")
    with pytest.raises(UserError, match="a limit must be 0 or more"):
        compare_cmd.main(command_args(compare_cmd, str(a), str(a), "--max-latency-increase", "-1"))


def test_an_offline_comparison_shows_no_stream_figure(tmp_path):
    a, b = run(tmp_path, "a", summary_record(wer=0.1)), run(tmp_path, "b", summary_record(wer=0.12))
    data = to_json(compare(load_results(a), [("b", load_results(b))], "a"), Gates())
    assert "finalization_p99_ms" not in data["pairs"][0]["metrics"]


def test_the_target_line_is_the_capacity_searchs_own_where_its_folder_says(tmp_path):
    from runner.report.stream_figures import capacity_target

    assert capacity_target(tmp_path) is None
    (tmp_path / "capacity.json").write_text(json.dumps({"streams": 2, "latency_ms": 500.0}))
    assert capacity_target(tmp_path) == (500.0, "the capacity search's target (--latency-ms 500, capacity.json)")
    (tmp_path / "capacity.json").write_text("{not json")
    assert capacity_target(tmp_path) is None
    (tmp_path / "capacity.json").write_text(json.dumps({"latency_ms": True}))
    assert capacity_target(tmp_path) is None


def test_the_offline_latency_figures_leave_streamed_records_out(tmp_path):
    """A streamed utterance was never one call: the per-call latency figures leave it out (the stream figures draw
    what a listener waits for, every play's finalization latency)."""
    from runner.report.study_figures import latency_distribution, latency_vs_length
    from runner.report.traces import RecordFiles

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "utterances.jsonl").write_text(json.dumps({"id": "a", "status": "ok", "latency_s": 1.6,
                                                          "duration_s": 1.0}) + "\n")
    rec = record(1, 200.0, True)
    rec.summary["latency_ms"] = None
    files = [RecordFiles(rec.key, "", "", 0, "ok", rec.summary)]
    sweep = Sweep(folder, "stream", (rec,))
    rows = aggregate([rec])
    assert latency_distribution(sweep, rows, files, tmp_path).startswith("latency distribution: no condition")
    assert latency_vs_length(sweep, rows, files, tmp_path).startswith("latency against input length: no clean")
    offline = dict(rec.summary)
    del offline["stream"]
    drawn = latency_distribution(sweep, rows, [RecordFiles(rec.key, "", "", 0, "ok", offline)], tmp_path)
    assert not isinstance(drawn, str)  # the same utterances offline: drawn


def test_results_csv_has_the_stream_figures_but_not_their_thousands_of_points(tmp_path):
    from runner.tables import write_tables

    write_tables(tmp_path, [record(2, 400.0, True)])
    row = next(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text())))
    assert float(row["stream.finalization_ms.p99"]) == 400.0 and row["stream.lag_s.bounded"] == "True"
    assert not any("finalization_values_ms" in k or "lag_series" in k for k in row)
    stored = json.loads((tmp_path / "conditions.jsonl").read_text().splitlines()[0])
    assert stored["summary"]["stream"]["lag_series"]  # the figures' data stays in conditions.jsonl
