"""Percentiles say their n where n is small (issue 28 item 2), in the sweep table and the compare table as the run
view does: a p50 over 5 utterances is the 3rd of them, not a latency distribution's middle."""

from __future__ import annotations

import json

from helpers import ROOT, summary_record
from helpers import run_folder as _run_folder

from runner.report.aggregate import aggregate
from runner.report.compare import compare, table_model
from runner.report.records import load_many, load_results, load_sweep, parse_record
from runner.report.sweep_table import PERCENTILE_N_NOTE, build_table

THREE = ROOT / "tests/fixtures/three_backends"


def _cell(model, header: str, row: int = 0) -> str:
    return model.rows[row][model.headers.index(header)].text


def test_the_sweep_table_says_the_n_of_a_percentile_over_few_utterances():
    """Each run transcribed 5 utterances: "402 (of 5)", and one remark says what "of 5" means."""
    sweep = load_many([THREE / "fw-tiny.en", THREE / "ps-en-us"])
    table = build_table(aggregate(sweep.records), "t")
    assert _cell(table, "p50 latency ms") == "402 (of 5)"
    assert PERCENTILE_N_NOTE in table.remarks
    assert not any("(of" in _cell(table, h) for h in ("WER %", "RTF"))  # only the percentile has one


def test_repeats_over_different_counts_say_the_range_and_failed_utterances_are_not_counted():
    rows = []
    for repeat, (n, failed) in enumerate(((5, 0), (5, 1))):
        s = summary_record(p50=300.0 + repeat)
        s.update(n_utterances=n, n_failed=failed)
        s["condition"]["repeat"] = repeat
        rows.append(parse_record({"condition": s["condition"], "status": "ok", "summary": s}))
    table = build_table(aggregate(rows), "t")
    assert _cell(table, "p50 latency ms").endswith("(of 4–5)")


def test_a_percentile_over_many_utterances_says_no_n():
    """The stored sweep's runs transcribed 21 utterances each... and one over 100 or more says nothing."""
    s = summary_record()
    s.update(n_utterances=400)
    table = build_table(aggregate([parse_record({"condition": s["condition"], "status": "ok", "summary": s})]), "t")
    assert "(of" not in _cell(table, "p50 latency ms") and PERCENTILE_N_NOTE not in table.remarks
    fixture = build_table(aggregate(load_sweep(ROOT / "tests/fixtures/sweep").records), "t")
    assert _cell(fixture, "p50 latency ms").endswith("(of 21)")


def _utts(n: int) -> list[dict]:
    return [{"id": f"u{i}", "status": "ok", "error": None, "reference": "a b", "hypothesis": "a b",
             "reference_norm": "a b", "hypothesis_norm": "a b", "duration_s": 2.0, "latency_s": 0.2,
             "processing_s": 0.2, "wer": 0.0, "audio_sha256": f"h{i}"} for i in range(n)]


def test_the_compare_table_says_the_n_of_its_percentiles(tmp_path):
    """Both sides over the same 3 utterances: "(of 3)" after the p50 change; the remark once."""
    a = _run_folder(tmp_path, "a", utts=_utts(3), n_utterances=3, n_scored=3)
    b = _run_folder(tmp_path, "b", utts=_utts(3), n_utterances=3, n_scored=3, p50=250.0)
    model = table_model(compare(load_results(a), [("b", load_results(b))], "a"))
    cell = _cell(model, "p50 latency ms")
    assert cell.endswith("(of 3)") and "200 → 250" in cell
    assert PERCENTILE_N_NOTE in model.remarks
    assert "(of" not in _cell(model, "WER %")


def test_compare_on_shared_utterances_counts_the_shared_ones(tmp_path):
    """A 4-utterance baseline against a 3-utterance candidate is compared on the 3 shared: "(of 3)", not 4."""
    a = _run_folder(tmp_path, "a", utts=_utts(4), n_utterances=4, n_scored=4)
    b = _run_folder(tmp_path, "b", utts=_utts(3), n_utterances=3, n_scored=3)
    model = table_model(compare(load_results(a), [("b", load_results(b))], "a"))
    assert _cell(model, "p50 latency ms").endswith("(of 3)")
    assert json.loads((a / "summary.json").read_text())["n_utterances"] == 4
