"""The report stage: aggregation by hand, unavailable values kept apart from zeros, figures, HTML and the CLI."""

import argparse
import io
import json
import math
import shutil
import struct
from pathlib import Path

import pytest
from helpers import ROOT
from rich.console import Console

from runner.commands import report as report_cmd
from runner.errors import UserError
from runner.report import condition_figures, figure_kit, figures
from runner.report.aggregate import NO_REASON, aggregate, metric_value, summarize, t975
from runner.report.html import render_html, write_html
from runner.report.records import GroupKey, load_sweep, parse_record
from runner.report.sweep_table import PERCENTILE_N_NOTE, build_table, format_stat, print_sweep_table

FIXTURE = ROOT / "tests/fixtures/sweep"
NO_ENERGY = "no energy source on this host (no tegrastats, RAPL or NVML)"
OOM = "container exited with code 137 (out of memory)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _rows(results_dir: Path = FIXTURE):
    return aggregate(load_sweep(results_dir).records)


def _row(rows, model, quant, noise="clean", snr=None):
    key = GroupKey("faster-whisper", model, quant, "cuda", "default", noise, snr)
    return next(r for r in rows if r.key == key)


def _copy_fixture(tmp_path: Path) -> Path:
    dest = tmp_path / "results"
    shutil.copytree(FIXTURE, dest)
    return dest


def _without_energy(tmp_path: Path) -> Path:
    """The fixture sweep as a host with no energy source writes it: energy figures null, with the reason."""
    dest = tmp_path / "no-energy"
    dest.mkdir()
    lines = []
    for line in (FIXTURE / "conditions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["summary"].get("energy") is not None:
            fields = ("total_j", "dynamic_j", "j_per_audio_s", "avg_w", "peak_w", "baseline_w")
            rec["summary"]["energy"] = {"source": None, **{f: None for f in fields},
                                        "unavailable": {f: NO_ENERGY for f in fields}}
        lines.append(json.dumps(rec))
    (dest / "conditions.jsonl").write_text("\n".join(lines) + "\n")
    return dest


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _assert_readable_png(path: Path) -> None:
    width, height = _png_size(path)
    assert 600 <= width <= 3000 and 300 <= height <= 2000, (path, width, height)
    assert path.stat().st_size > 10_000  # a real drawing, not an empty canvas


# ---------------------------------------------------------------- statistics by hand

def test_t_quantiles_from_the_table_and_normal_beyond():
    assert t975(1) == 12.706 and t975(2) == 4.303 and t975(30) == 2.042
    assert t975(31) == 1.96 and t975(500) == 1.96
    with pytest.raises(ValueError):
        t975(0)


def test_summarize_by_hand_ignores_nulls_and_keeps_their_reasons():
    st = summarize([0.10, 0.14, None, None], [None, None, "no GPU", "no GPU"])
    assert st.n == 2 and st.mean == pytest.approx(0.12)
    assert st.std == pytest.approx(0.04 / math.sqrt(2))  # sample std, ddof=1
    assert st.ci95 == pytest.approx(12.706 * (0.04 / math.sqrt(2)) / math.sqrt(2))  # = 12.706 * 0.02
    assert st.ci95 == pytest.approx(0.25412)
    assert st.n_unavailable == 2 and st.reasons == ("no GPU",)

    three = summarize([1.0, 2.0, 3.0])
    assert (three.mean, three.std) == (2.0, 1.0) and three.ci95 == pytest.approx(4.303 / math.sqrt(3))

    one = summarize([5.0, None])
    assert one.mean == 5.0 and one.std is None and one.ci95 is None and one.reasons == (NO_REASON,)

    none = summarize([None], ["killed"])
    assert none.n == 0 and none.mean is None and not none.available and none.reasons == ("killed",)


def test_reasons_are_found_in_every_unavailable_map_innermost_first():
    s = {"wer": None, "rtf": 0.5, "flag": True, "unavailable": {"wer": "no references", "energy": "no sensor",
                                                                "latency_ms.p50": "one utterance"},
         "latency_ms": None}
    assert metric_value(s, ("rtf",)) == (0.5, None)
    assert metric_value(s, ("wer",)) == (None, "no references")
    assert metric_value(s, ("energy", "total_j")) == (None, "no sensor")  # block absent: its summary-level reason
    assert metric_value(s, ("latency_ms", "p50")) == (None, "one utterance")
    assert metric_value({"energy": {"total_j": None, "unavailable": {"total_j": "too few samples"}},
                         "unavailable": {"energy": "outer"}}, ("energy", "total_j")) == (None, "too few samples")
    assert metric_value({"cer": None}, ("cer",)) == (None, NO_REASON)
    assert metric_value({}, ("cer",)) == (None, "not in the results")
    assert metric_value(s, ("flag",))[0] is None  # a bool is not a measurement
    assert metric_value({"wer": float("nan")}, ("wer",))[0] is None


# ---------------------------------------------------------------- the fixture sweep

def test_fixture_aggregates_by_hand():
    sweep = load_sweep(FIXTURE)
    assert sweep.title == "Jetson Orin smoke sweep" and len(sweep.records) == 24
    rows = aggregate(sweep.records)
    assert len(rows) == 12  # 2 models x 2 quants x (clean + 2 SNRs), repeats folded
    assert [r.key.noise_label for r in rows[:3]] == ["clean", "white 20 dB", "white 5 dB"]  # clean, then harsher
    assert [(r.key.model, r.key.quant) for r in rows[::3]] == [
        ("tiny.en", "int8"), ("tiny.en", "float16"), ("base.en", "int8"), ("base.en", "float16")]

    row = _row(rows, "tiny.en", "int8")
    wer = row.stat("wer")  # repeats: 0.0572, 0.058
    assert (wer.n, wer.n_unavailable) == (2, 0)
    assert wer.mean == pytest.approx(0.0576)
    assert wer.std == pytest.approx(0.0008 / math.sqrt(2))
    assert wer.ci95 == pytest.approx(12.706 * 0.0008 / 2)
    energy = row.stat("j_per_audio_s")  # repeats: 0.4771, 0.4989
    assert energy.mean == pytest.approx(0.488) and energy.ci95 == pytest.approx(12.706 * 0.0218 / 2)


def test_failed_run_is_counted_not_averaged():
    row = _row(_rows(), "base.en", "float16", "white", 5.0)
    assert (row.n_runs, row.n_ok, row.n_failed) == (2, 1, 1) and row.errors == (OOM,)
    load = row.stat("load_s")  # the failed run recorded load_s 3.5; only the good run's 3.53 counts
    assert load.n == 1 and load.mean == pytest.approx(3.53) and load.ci95 is None
    assert load.n_unavailable == 1 and load.reasons == (f"run failed: {OOM}",)


def test_partial_run_is_averaged():
    row = _row(_rows(), "tiny.en", "int8", "white", 5.0)
    assert row.n_partial == 1 and row.n_failed == 0
    assert row.stat("wer").n == 2 and row.stat("wer").mean == pytest.approx((0.1922 + 0.1926) / 2)


def test_energy_unavailable_is_counted_with_its_reason(tmp_path):
    rows = _rows(_without_energy(tmp_path))
    st = _row(rows, "tiny.en", "int8").stat("j_per_audio_s")
    assert (st.n, st.mean, st.n_unavailable, st.reasons) == (0, None, 2, (NO_ENERGY,))
    failed = _row(rows, "base.en", "float16", "white", 5.0).stat("total_j")
    assert failed.n_unavailable == 2 and set(failed.reasons) == {NO_ENERGY, f"run failed: {OOM}"}
    assert _row(rows, "tiny.en", "int8").stat("wer").n == 2  # the rest is untouched


def test_record_without_condition_is_a_user_error():
    with pytest.raises(UserError, match="record 3"):
        parse_record({"status": "ok"}, "conditions.jsonl", 3)


# ---------------------------------------------------------------- table

def test_table_hides_energy_unavailable_everywhere_and_says_so_once(tmp_path):
    """Energy unavailable in every row is no column and one short line, not a column of "unavailable"
    (issue 14 item 7; this test pinned the column before); the fixture's 2 repeats show their range."""
    rows = _rows(_without_energy(tmp_path))
    model = build_table(rows, "t")
    assert "J / audio s" not in model.headers and "avg W" not in model.headers
    assert model.remarks == ("energy: no sensor, see README: Energy", PERCENTILE_N_NOTE)  # 21 utterances a run
    first = model.rows[0]
    assert first[model.headers.index("WER %")].text == "5.76 (5.72–5.80)"
    assert model.subtitle == "faster-whisper · cuda · default"  # constant keys leave the columns

    out = io.StringIO()
    print_sweep_table(rows, "no-energy sweep", Console(file=out, width=200))
    text = out.getvalue()
    assert "no-energy sweep" in text and "5.76 (5.72–5.80)" in text and "energy: no sensor" in text
    assert NO_ENERGY not in text  # the full reason is in summary.json, not repeated in the table
    assert "0.000" not in text  # unavailable energy is never printed as zero


def test_a_metric_unavailable_in_some_rows_keeps_its_column_with_the_reason(tmp_path):
    """Only a column unavailable in every row is hidden; one gap is "unavailable" with its footnote."""
    dest = _without_energy(tmp_path)
    lines = (dest / "conditions.jsonl").read_text().splitlines()
    good = json.loads((FIXTURE / "conditions.jsonl").read_text().splitlines()[0])
    lines[0] = json.dumps(good)
    (dest / "conditions.jsonl").write_text("\n".join(lines) + "\n")
    model = build_table(_rows(dest), "t")
    col = model.headers.index("J / audio s")
    gaps = [r[col] for r in model.rows if r[col].unavailable]
    assert gaps and model.notes[gaps[0].note - 1] == NO_ENERGY and model.remarks == (PERCENTILE_N_NOTE,)


def test_format_stat():
    """Two values show their range, not a t-interval 12.7 x their spread (issue 14 item 5; this pinned
    "5.5 ± 6.4" before); three or more show mean ± the 95 % half-width."""
    assert format_stat(summarize([0.05, 0.06]), 100, 1) == "5.5 (5.0–6.0)"
    assert format_stat(summarize([1.0, 2.0, 3.0]), 1, 2) == "2.00 ± 2.48"
    assert format_stat(summarize([0.05]), 100, 1) == "5.0 (n=1)"
    assert format_stat(summarize([None])) == "unavailable"


# ---------------------------------------------------------------- figures

def test_four_figures_are_written_as_readable_pngs(tmp_path):
    results = figures.write_figures(_rows(), tmp_path / "fig")
    names = [r.path.name for r in results]
    assert names == ["energy_by_model_quant.png", "wer_by_noise.png", "rtf_ram_by_model_quant.png",
                     "accuracy_vs_energy.png"]
    for r in results:
        assert r.available, r
        _assert_readable_png(r.path)


def test_figures_are_deterministic(tmp_path):
    rows = _rows()
    a = condition_figures.energy_by_model_quant(rows, tmp_path / "a").path.read_bytes()
    b = condition_figures.energy_by_model_quant(rows, tmp_path / "b").path.read_bytes()
    assert a == b


def test_energy_unavailable_figures_are_no_png_only_a_note(tmp_path):
    """Regression (issue 22, item 15): a figure without data was written as a PNG holding only a text box
    (accuracy_vs_energy.png on a host without a sensor). It is no PNG at all (a stale one is removed); the reason
    is listed in the report's notes, never plotted as zeros."""
    out = tmp_path / "fig"
    out.mkdir()
    (out / "accuracy_vs_energy.png").write_bytes(PNG_SIGNATURE)  # from an earlier report, with energy
    folder = _without_energy(tmp_path)
    results = {r.path.name: r for r in figures.write_figures(_rows(folder), out)}
    for name in ("energy_by_model_quant.png", "accuracy_vs_energy.png"):
        r = results[name]
        assert not r.available and r.unavailable == f"energy unavailable: {NO_ENERGY}"
        assert not r.path.exists()
    assert results["wer_by_noise.png"].available and results["rtf_ram_by_model_quant.png"].available
    html = write_html(tmp_path / "report.html", load_sweep(folder), _rows(folder), list(results.values())).read_text()
    assert f"not drawn (energy unavailable: {NO_ENERGY})" in html


def test_wer_unavailable_figure_says_so(tmp_path):
    src = FIXTURE / "conditions.jsonl"
    recs = [json.loads(line) for line in src.read_text().splitlines()]
    for rec in recs:
        rec["summary"]["wer"] = None
        rec["summary"]["unavailable"] = {"wer": "no reference transcripts"}
    (tmp_path / "conditions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = condition_figures.wer_by_noise(_rows(tmp_path), tmp_path / "fig")
    assert r.unavailable.startswith("WER unavailable: ") and "no reference transcripts" in r.unavailable
    assert not r.path.exists()  # a note in the report, not a PNG of a text box


def test_one_missing_bar_leaves_the_figure_available(tmp_path):
    recs = [json.loads(line) for line in (FIXTURE / "conditions.jsonl").read_text().splitlines()]
    for rec in recs:
        c = rec["condition"]
        if (c["model"], c["quant"], c["noise_type"]) == ("base.en", "int8", "clean"):
            rec["summary"]["peak_rss_mb"] = None
            rec["summary"]["unavailable"] = {"peak_rss_mb": "cgroup memory stats not readable"}
    (tmp_path / "conditions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    rows = _rows(tmp_path)
    assert _row(rows, "base.en", "int8").stat("peak_rss_mib").reasons == ("cgroup memory stats not readable",)
    r = condition_figures.rtf_ram_by_model_quant(rows, tmp_path / "fig")
    assert r.available
    _assert_readable_png(r.path)
    assert condition_figures.accuracy_vs_energy(rows, tmp_path / "fig").available  # drawn at a fixed size, named in notes


# ---------------------------------------------------------------- HTML and CLI

def test_html_is_self_contained_with_table_and_four_images(tmp_path):
    sweep = load_sweep(FIXTURE)
    rows = aggregate(sweep.records)
    figs = figures.write_figures(rows, tmp_path)
    page = write_html(tmp_path / "report.html", sweep, rows, figs).read_text()
    assert page.count('src="data:image/png;base64,') == 4
    assert "<table" in page and "<h1>Jetson Orin smoke sweep</h1>" in page and "5.76 (5.72–5.80)" in page  # 2 repeats: their range
    assert OOM in page
    for external in ('src="http', "<link", "<script", "url("):
        assert external not in page


def test_html_escapes_text_from_the_results(tmp_path):
    recs = [json.loads(line) for line in (FIXTURE / "conditions.jsonl").read_text().splitlines()]
    recs[-1]["error"] = "<b>boom</b>"
    (tmp_path / "conditions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    sweep = load_sweep(tmp_path)
    page = render_html(sweep, aggregate(sweep.records))
    assert "<b>boom</b>" not in page and "&lt;b&gt;boom&lt;/b&gt;" in page


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    report_cmd.add_arguments(p)
    return p.parse_args(list(argv))


def test_cli_writes_table_figures_and_html(tmp_path, capsys):
    results = _copy_fixture(tmp_path)
    assert report_cmd.main(_args(str(results))) == 0
    out_dir = results / "report"
    for name in ("energy_by_model_quant.png", "wer_by_noise.png", "rtf_ram_by_model_quant.png",
                 "accuracy_vs_energy.png"):
        _assert_readable_png(out_dir / name)
    # the four, then the study figures this fixture has data for: energy against SNR, latency distribution
    assert (out_dir / "report.html").read_text().count("data:image/png;base64,") == 6
    printed = capsys.readouterr().out
    assert "Jetson Orin smoke sweep" in printed and str(out_dir / "report.html") in printed


def test_cli_no_figures_and_out(tmp_path):
    out_dir = tmp_path / "elsewhere"
    assert report_cmd.main(_args(str(_copy_fixture(tmp_path)), "--out", str(out_dir), "--no-figures")) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["report.html"]
    assert "data:image/png" not in (out_dir / "report.html").read_text()


def test_missing_or_empty_results_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist") as exc:
        report_cmd.main(_args(str(tmp_path / "nope")))
    assert exc.value.exit_code == 2
    with pytest.raises(UserError, match="neither summary.json .* nor conditions.jsonl"):  # runs are read too
        report_cmd.main(_args(str(tmp_path)))
    (tmp_path / "conditions.jsonl").write_text("")
    with pytest.raises(UserError, match="holds no conditions"):
        report_cmd.main(_args(str(tmp_path)))


def test_corrupt_lines_are_warned_with_file_and_line_not_silently_dropped(tmp_path, capsys):
    """A truncated line and a record without a condition are each named (file:line) on stderr; the rest
    of the report is drawn."""
    folder = _copy_fixture(tmp_path)
    path = folder / "conditions.jsonl"
    lines = path.read_text().splitlines()
    n = len(lines)
    path.write_text("\n".join(lines) + '\n{"status": "ok"}\n' + lines[0][:40] + "\n")
    sweep = load_sweep(folder)
    assert len(sweep.records) == n
    assert sweep.warnings[0] == f"{path}:{n + 2}: not valid JSON (Unterminated string starting at)" or \
        sweep.warnings[0].startswith(f"{path}:{n + 2}: not valid JSON")
    assert sweep.warnings[1].startswith(f"record {n + 1} of {path}")
    assert report_cmd.main(_args(str(folder), "--no-figures")) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 2 and f"{path}:{n + 2}" in err
def test_energy_of_different_scopes_is_labelled_in_the_table(tmp_path):
    """GPU-only and board-input energy never sit side by side unlabelled: a scope column appears when they differ."""
    dest = tmp_path / "mixed"
    dest.mkdir()
    lines = []
    for i, line in enumerate((FIXTURE / "conditions.jsonl").read_text().splitlines()):
        rec = json.loads(line)
        if rec["summary"].get("energy") is not None:
            rec["summary"]["energy"]["scope"] = "GPU" if rec["summary"]["model"] == "tiny.en" else "board input"
        lines.append(json.dumps(rec))
    (dest / "conditions.jsonl").write_text("\n".join(lines) + "\n")
    rows = _rows(dest)
    model = build_table(rows, "t")
    col = model.headers.index("energy scope")
    assert {cells[col].text for cells in model.rows} == {"GPU", "board input"}
    same = build_table(_rows(FIXTURE), "t")
    assert "energy scope" not in same.headers


def test_run_table_shows_the_energy_scope():
    """The scope label must survive rich's markup (brackets would be swallowed as a tag)."""
    from runner.report.table import print_summary

    s = {"backend": "b", "model": "m", "quant": "q", "device": "cpu", "dataset": "d", "status": "ok",
         "n_utterances": 1, "n_failed": 0, "n_scored": 1, "n_unreferenced": 0,
         "energy": {"total_j": 3.0, "dynamic_j": 1.0, "source": "rapl", "total_kind": "rapl:package+dram",
                    "scope": "CPU package+DRAM", "n_samples": 9, "interval_ms": 100.0}}
    out = io.StringIO()
    print_summary(s, Console(file=out, width=200))
    assert "CPU package+DRAM (rapl, rapl:package+dram)" in out.getvalue()


# --- library versions as an axis ---------------------------------------------------------------------------


def _two_builds() -> list:
    """Two builds of one backend (one CTranslate2 version each) over one condition, two repeats each."""
    recs = []
    for tag, ct2, wer in (("ct2-4.6.0", "4.6.0", 0.10), ("ct2-4.8.5", "4.8.5", 0.09)):
        for repeat in (0, 1):
            recs.append(parse_record({
                "condition": {"backend": "faster-whisper", "model": "tiny.en", "quant": "int8", "device": "cpu",
                              "dataset": "default", "noise_type": "clean", "repeat": repeat,
                              "image": f"edgeasr/faster-whisper:{tag}"},
                "status": "ok",
                "summary": {"wer": wer, "rtf": 0.1, "image": {"ref": f"edgeasr/faster-whisper:{tag}", "labels": {
                    "org.edgeasr.versions": f"faster-whisper=1.2.1,ctranslate2={ct2},soundfile=0.14.0"}}}}))
    return recs


def test_two_library_builds_are_two_rows_with_a_versions_column():
    rows = aggregate(_two_builds())
    assert len(rows) == 2 and [r.stat("wer").n for r in rows] == [2, 2]
    model = build_table(rows, "t")
    assert "versions" in model.headers and "image" in model.headers
    col = model.headers.index("versions")
    assert [r[col].text for r in model.rows] == ["ctranslate2=4.6.0", "ctranslate2=4.8.5"]


def test_versions_column_is_left_out_when_every_row_has_the_same():
    recs = [r for r in _two_builds() if "4.8.5" in r.key.versions]
    model = build_table(aggregate(recs), "t")
    assert "versions" not in model.headers and "image" not in model.headers


def test_versions_fall_back_to_what_the_container_reported():
    rec = parse_record({"condition": {"backend": "b", "model": "m", "quant": "int8"}, "status": "ok",
                        "summary": {"versions": {"ctranslate2": "4.8.5"}, "image": {"ref": "x", "labels": {}}}})
    assert rec.key.versions == "ctranslate2=4.8.5" and rec.key.image == "x"


def test_figure_labels_name_the_versions(tmp_path):
    label = figure_kit.series_labeller(aggregate(_two_builds()))
    assert {label(r.key) for r in aggregate(_two_builds())} == {"tiny.en · ctranslate2=4.6.0",
                                                                "tiny.en · ctranslate2=4.8.5"}


# --- identity in full (issue 10, item 8) ---------------------------------------------------------------------


def _v3(model: str = "tiny.en", model_ref: str = "/models/tiny.en", dataset: str = "test",
        data_path: str = "/data/a/test", repeat: int = 0, axes: dict | None = None, wer: float = 0.1) -> dict:
    """One schema-3 conditions.jsonl line, as runner/tables.condition_record writes it."""
    return {"schema_version": 3, "condition": {
        "key": f"k{repeat}", "group_key": "g", "backend": "faster-whisper", "model": model, "model_ref": model_ref,
        "quant": "int8", "device": "cpu", "dataset": dataset, "data_path": data_path, "noise_type": "clean",
        "snr_db": None, "repeat": repeat, "decode": {"beam_size": 5}, "axes": axes or {},
        "settings_key": "s", "inputs": {}, "image": "edgeasr/faster-whisper:latest"},
        "status": "ok", "error": None, "summary": {"wer": wer, "rtf": 0.1}}


def test_two_datasets_with_one_folder_name_are_two_rows_told_apart_by_their_path():
    """Two datasets both called "test" in different folders are never averaged together: two rows, and the
    dataset column shows enough of each path to tell them apart."""
    recs = [parse_record(_v3(data_path=p, repeat=r)) for p in ("/data/a/test", "/data/b/test") for r in (0, 1)]
    rows = aggregate(recs)
    assert len(rows) == 2 and [r.n_runs for r in rows] == [2, 2]
    model = build_table(rows, "t")
    col = model.headers.index("dataset")
    assert [cells[col].text for cells in model.rows] == ["a/test", "b/test"]


def test_two_model_folders_with_one_name_are_two_rows_told_apart_by_their_path():
    """Two model folders both called tiny.en are two rows; the model column names their parent folders."""
    recs = [parse_record(_v3(model_ref=p, repeat=r)) for p in ("/m/v1/tiny.en", "/m/v2/tiny.en") for r in (0, 1)]
    rows = aggregate(recs)
    assert len(rows) == 2
    model = build_table(rows, "t")
    col = model.headers.index("model")
    assert [cells[col].text for cells in model.rows] == ["v1/tiny.en", "v2/tiny.en"]
    assert "dataset" not in model.headers  # one dataset: its short name goes into the subtitle
    assert "test" in model.subtitle.split(" · ")
    label = figure_kit.series_labeller(rows)
    assert [label(r.key) for r in rows] == ["v1/tiny.en", "v2/tiny.en"]


def test_short_names_are_shown_where_the_full_identity_is_unambiguous():
    """One dataset per folder name and one model per name: the table shows the short names, as before."""
    recs = [parse_record(_v3(dataset=d, data_path=f"/data/{d}", repeat=0)) for d in ("clean", "other")]
    model = build_table(aggregate(recs), "t")
    assert [cells[model.headers.index("dataset")].text for cells in model.rows] == ["clean", "other"]
    assert [cells[model.headers.index("model")].text for cells in model.rows] == ["tiny.en", "tiny.en"]


def test_old_records_without_full_identity_still_group_by_short_name():
    """Schema 1/2 records have no data_path or model_ref: their repeats are grouped by the short names."""
    recs = [parse_record({"condition": {"backend": "b", "model": "tiny.en", "quant": "int8", "dataset": "test",
                                        "repeat": r}, "status": "ok", "summary": {"wer": 0.1}}) for r in (0, 1)]
    rows = aggregate(recs)
    assert len(rows) == 1 and rows[0].n_runs == 2
    assert rows[0].key.model_ref == "" and rows[0].key.data_path == "" and rows[0].key.axes == ()


# --- any setting is a sweep axis (issue 10, item 4) ------------------------------------------------------------

AXES_FIXTURE = ROOT / "tests/fixtures/sweep_axes"  # decode.batch_size [1, 4] x decode.beam_size [1, 5], 2 repeats


def test_each_axis_point_is_a_row_averaged_over_its_repeats():
    """A sweep over decode.batch_size x decode.beam_size with 2 repeats gives 4 rows of n=2, batch ascending
    then beam ascending; the repeats of one point are averaged, two points never are."""
    rows = _rows(AXES_FIXTURE)
    assert len(rows) == 4 and [r.n_runs for r in rows] == [2, 2, 2, 2]
    assert [(r.key.axis("decode.batch_size"), r.key.axis("decode.beam_size")) for r in rows] == [
        (1, 1), (1, 5), (4, 1), (4, 5)]
    assert rows[0].stat("rtf").n == 2 and rows[0].stat("rtf").mean == pytest.approx((0.080 + 0.082) / 2)
    assert dict(rows[0].key.axes) == {"decode.batch_size": 1, "decode.beam_size": 1, "warmup": 1}  # key axes out


def test_table_has_a_column_per_varying_axis_and_none_for_a_constant_one():
    """The table shows decode.batch_size and decode.beam_size, headed by their paths; warmup (one value) gets
    no column but is named in the subtitle."""
    model = build_table(_rows(AXES_FIXTURE), "t")
    assert "decode.batch_size" in model.headers and "decode.beam_size" in model.headers
    assert "warmup" not in model.headers and "dataset" not in model.headers
    assert model.headers[:model.headers.index("noise")] == ("model", "quant", "decode.batch_size",
                                                           "decode.beam_size")
    batch, beam = model.headers.index("decode.batch_size"), model.headers.index("decode.beam_size")
    assert [(c[batch].text, c[beam].text) for c in model.rows] == [("1", "1"), ("1", "5"), ("4", "1"), ("4", "5")]
    assert "warmup=1" in model.subtitle.split(" · ")
    assert all(c[model.headers.index("runs")].text == "2" for c in model.rows)


def test_old_fixture_table_is_unchanged_by_axes():
    """Records without axes (schema 1/2) render with the columns they always had."""
    model = build_table(_rows(), "t")
    assert model.headers[:model.n_key_columns] == ("model", "quant", "noise", "runs")
    assert model.subtitle == "faster-whisper · cuda · default"


def test_figures_label_the_varying_axes_and_add_one_per_numeric_axis(tmp_path):
    """Series labels carry the varying axes; each numeric axis that varies gets an RTF and WER figure."""
    rows = _rows(AXES_FIXTURE)
    label = figure_kit.series_labeller(rows)
    assert label(rows[1].key) == "tiny.en · decode.batch_size=1 · decode.beam_size=5"
    results = figures.write_figures(rows, tmp_path)
    names = [r.path.name for r in results]
    assert names[4:] == ["rtf_vs_decode.batch_size.png", "rtf_vs_decode.beam_size.png"]
    for r in results:
        assert r.available, r
        _assert_readable_png(r.path)


def test_no_axis_figure_for_a_text_axis_or_an_old_sweep(tmp_path):
    """An axis whose values are not numbers (decode.language) has no x scale: no figure for it, and the old
    fixture (no axes) still writes exactly its four figures."""
    recs = [parse_record(_v3(repeat=0, axes={"decode.language": lang}, wer=w)) for lang, w in (("en", .1), ("de", .2))]
    rows = aggregate(recs)
    assert condition_figures.numeric_axes(rows) == []
    assert len(figures.write_figures(rows, tmp_path / "text")) == 4
    assert len(figures.write_figures(_rows(), tmp_path / "old")) == 4


def test_axis_figure_leaves_a_gap_for_an_unavailable_value(tmp_path):
    """A point whose RTF is unavailable is left out of its line (never drawn at 0) and the figure stays drawn."""
    recs = [json.loads(line) for line in (AXES_FIXTURE / "conditions.jsonl").read_text().splitlines()]
    for rec in recs:
        if rec["condition"]["axes"]["decode.batch_size"] == 4:
            rec["summary"]["rtf"] = None
            rec["summary"]["unavailable"] = {"rtf": "no timings"}
    (tmp_path / "conditions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    r = condition_figures.metrics_vs_axis(_rows(tmp_path), "decode.batch_size", tmp_path / "fig")
    assert r.available and r.path.name == "rtf_vs_decode.batch_size.png"
    _assert_readable_png(r.path)


def test_html_lists_the_axes_that_vary(tmp_path):
    """The HTML page names each varying axis with its values; a sweep without axes has no such line."""
    sweep = load_sweep(AXES_FIXTURE)
    page = render_html(sweep, aggregate(sweep.records))
    assert "Axes that vary: decode.batch_size (1, 4); decode.beam_size (1, 5)" in page
    assert "<th>decode.batch_size</th>" in page
    old = load_sweep(FIXTURE)
    assert "Axes that vary" not in render_html(old, aggregate(old.records))


def test_cli_reports_an_axes_sweep(tmp_path, capsys):
    """`edgeasr report` on a dotted-axes sweep prints the axis columns and writes the axis figures."""
    results = tmp_path / "results"
    shutil.copytree(AXES_FIXTURE, results)
    assert report_cmd.main(_args(str(results))) == 0
    printed = capsys.readouterr().out
    assert "decode.batch_size" in printed and "Batch size and beam size on CPU" in printed
    assert (results / "report" / "rtf_vs_decode.batch_size.png").is_file()
    assert (results / "report" / "report.html").read_text().count("data:image/png;base64,") == 7  # + the latency distribution (study figures)


# --- targets side by side (issue 11, item 5) -------------------------------------------------------------------


def _fleet_record(target: str, quant: str, repeat: int, energy: bool = True) -> dict:
    """One schema-3 conditions.jsonl line of a fleet sweep over ``grid.targets``: the target is an axis. Without
    ``energy`` the target measured none and says why (the energy block's nulls and its reason)."""
    rec = _v3(repeat=repeat, axes={"target": target})
    rec["condition"].update(quant=quant, target=target, key=f"{target}-{quant}-{repeat}")
    fast = target == "cpu-a"
    rec["summary"] = {"wer": 0.10 + 0.01 * repeat, "rtf": (0.05 if fast else 0.2) + 0.01 * repeat,
                      "peak_rss_mb": 400.0 + repeat,
                      "energy": ({"j_per_audio_s": 1.5 + 0.1 * repeat} if energy else
                                 {"j_per_audio_s": None, "unavailable": {"j_per_audio_s": NO_ENERGY}})}
    return rec


def _fleet_rows(targets=("cpu-a", "cpu-b"), no_energy_on=()):
    """Two quants on each target, two repeats each."""
    return aggregate([parse_record(_fleet_record(t, q, r, energy=t not in no_energy_on))
                      for t in targets for q in ("int8", "fp32") for r in (0, 1)])


def _capture_saves(monkeypatch) -> list:
    """Record (figure, notes) of every figure written, then write it as usual."""
    saved = []
    real = figure_kit.save

    def save(fig, path, notes):
        saved.append((fig, list(notes)))
        real(fig, path, notes)

    monkeypatch.setattr(condition_figures, "save", save)
    return saved


def _bar_heights(ax) -> dict[str, list[float]]:
    """Each bar series' drawn heights, by its legend label."""
    return {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers
            if hasattr(c, "patches")}


def _bar_colour(ax, label: str):
    """The face colour of the bars labelled ``label``."""
    return next(c.patches[0].get_facecolor() for c in ax.containers if c.get_label() == label)


def test_targets_figure_has_four_panels_with_one_bar_per_target(tmp_path, monkeypatch):
    """With two targets, write_figures adds targets.png: energy per audio second, RTF, WER (%) and peak RAM side by
    side, model/quant on x (the target is not in the category label) and one bar per target in each group, at the
    mean over repeats; the figure legend names the targets."""
    saved = _capture_saves(monkeypatch)
    results = figures.write_figures(_fleet_rows(), tmp_path)
    by_name = {r.path.name: r for r in results}
    r = by_name[condition_figures.TARGETS_FILE]
    assert r.available
    _assert_readable_png(r.path)
    fig, _ = next((f, n) for f, n in saved if f.get_suptitle() == r.title)
    axes = fig.axes
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes] == ["energy per audio second, lower is better", "RTF, lower is better",
                                              "WER, lower is better", "peak RAM, lower is better"]
    assert [t.get_text() for t in axes[1].get_xticklabels()] == ["tiny.en/int8", "tiny.en/fp32"]
    rtf = _bar_heights(axes[1])
    assert set(rtf) == {"cpu-a", "cpu-b"}
    assert rtf["cpu-a"] == pytest.approx([0.055, 0.055]) and rtf["cpu-b"] == pytest.approx([0.205, 0.205])
    assert _bar_heights(axes[2])["cpu-a"] == pytest.approx([10.5, 10.5])  # WER in %
    assert _bar_heights(axes[3])["cpu-b"] == pytest.approx([400.5, 400.5])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["cpu-a", "cpu-b"]


def test_energy_unavailable_on_one_target_is_a_note_not_a_zero_bar(tmp_path, monkeypatch):
    """A target that measured no energy gets no energy bar (no 0): an "unavailable" mark where its bar would be
    and a note naming the target and the reason; its other panels and the other target's energy are drawn."""
    saved = _capture_saves(monkeypatch)
    r = condition_figures.targets_by_model_quant(_fleet_rows(no_energy_on=("cpu-b",)), tmp_path)
    assert r.available
    (fig, notes), = saved
    energy = fig.axes[0]
    heights = _bar_heights(energy)
    assert heights["cpu-a"] == pytest.approx([1.55, 1.55]) and heights.get("cpu-b", []) == []
    assert [t.get_text() for t in energy.texts].count("unavailable") == 2
    assert f"tiny.en/int8/cpu-b: energy unavailable ({NO_ENERGY})" in notes
    assert all(h > 0 for ax in fig.axes for hs in _bar_heights(ax).values() for h in hs)
    assert len(_bar_heights(fig.axes[1])["cpu-b"]) == 2
    legend = fig.legends[0]  # its colours are the bars', even where the first panel has none for cpu-b
    assert [t.get_text() for t in legend.get_texts()] == ["cpu-a", "cpu-b"]
    colours = [tuple(h.get_facecolor()) for h in legend.legend_handles]
    assert colours == [tuple(_bar_colour(fig.axes[1], t)) for t in ("cpu-a", "cpu-b")] and colours[0] != colours[1]


def test_energy_unavailable_on_every_target_is_a_panel_that_says_why(tmp_path, monkeypatch):
    """No target measured energy: the energy panel is the reason in words, with no bars; the other three are drawn."""
    saved = _capture_saves(monkeypatch)
    r = condition_figures.targets_by_model_quant(_fleet_rows(no_energy_on=("cpu-a", "cpu-b")), tmp_path)
    assert r.available
    (fig, _), = saved
    energy = fig.axes[0]
    assert not energy.containers
    assert [t.get_text().replace("\n", " ") for t in energy.texts] == [f"energy unavailable: {NO_ENERGY}"]
    fig.canvas.draw()  # the words stay inside their panel (a narrow one: a quarter of the figure)
    box = energy.texts[0].get_bbox_patch().get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.axes[1].get_window_extent().x0
    assert all(ax.containers for ax in fig.axes[1:])


def test_one_target_writes_no_targets_figure(tmp_path):
    """A sweep on one target (or none: no target axis) has nothing to put side by side: no targets.png."""
    for name, rows in (("one", _fleet_rows(targets=("cpu-a",))), ("old", _rows())):
        out = tmp_path / name
        names = [r.path.name for r in figures.write_figures(rows, out)]
        assert condition_figures.TARGETS_FILE not in names and not (out / condition_figures.TARGETS_FILE).exists()


def test_html_shows_and_links_the_targets_figure(tmp_path):
    """The report page inlines targets.png and links the file beside it."""
    (tmp_path / "conditions.jsonl").write_text("".join(json.dumps(_fleet_record(t, q, r)) + "\n"
                                                       for t in ("cpu-a", "cpu-b") for q in ("int8", "fp32")
                                                       for r in (0, 1)))
    sweep = load_sweep(tmp_path)
    rows = aggregate(sweep.records)
    page = write_html(tmp_path / "report.html", sweep, rows, figures.write_figures(rows, tmp_path)).read_text()
    assert '<figure id="targets"><a href="targets.png"' in page


def _scoped_fleet_rows(scopes: dict[str, str]):
    """Fleet rows whose targets measured energy of the given scopes (target -> scope)."""
    recs = []
    for t in scopes:
        for q in ("int8", "fp32"):
            for r in (0, 1):
                rec = _fleet_record(t, q, r)
                rec["summary"]["energy"]["scope"] = scopes[t]
                recs.append(parse_record(rec))
    return aggregate(recs)


def test_energy_figures_name_their_scope(tmp_path, monkeypatch):
    """Regression (issue 22, item 2): the energy figures put GPU-only, board-input and CPU-package energies on one
    unlabelled axis. Every energy figure names the scope: on the axis where the rows share one; per bar (and in
    the targets' legend) where they differ, and the axis says they are not comparable."""
    saved = _capture_saves(monkeypatch)
    one = _scoped_fleet_rows({"cpu-a": "GPU", "cpu-b": "GPU"})
    condition_figures.energy_by_model_quant(one, tmp_path / "one")
    fig, _ = saved[-1]
    assert fig.axes[0].get_ylabel() == "energy per audio second (J/s)\nscope: GPU"
    condition_figures.accuracy_vs_energy(one, tmp_path / "one")
    assert saved[-1][0].axes[0].get_xlabel().endswith("scope: GPU")
    mixed = _scoped_fleet_rows({"cpu-a": "board input", "cpu-b": "CPU package+DRAM"})
    condition_figures.targets_by_model_quant(mixed, tmp_path / "mixed")
    fig, _ = saved[-1]
    assert "scopes differ" in fig.axes[0].get_ylabel() and "scope" not in fig.axes[1].get_ylabel()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["cpu-a (energy: board input)",
                                                                  "cpu-b (energy: CPU package+DRAM)"]
    condition_figures.energy_by_model_quant(mixed, tmp_path / "mixed")
    ticks = [t.get_text() for t in saved[-1][0].axes[0].get_xticklabels()]
    assert any("board input" in t for t in ticks) and any("CPU package+DRAM" in t for t in ticks)


def test_energy_bars_of_one_run_carry_its_measurement_bound(tmp_path, monkeypatch):
    """Regression (issue 22, item 9): an energy bar of one run had no error bar, as if exact. Its whisker is now the
    run's measurement bound (energy.bounds), and with repeats the bound is added to their spread."""
    saved = _capture_saves(monkeypatch)
    recs = []
    for q in ("int8", "fp32"):
        rec = _fleet_record("cpu-a", q, 0)
        rec["summary"]["energy"]["bounds"] = {"j_per_audio_s": 0.2}
        recs.append(parse_record(rec))
    condition_figures.energy_by_model_quant(aggregate(recs), tmp_path)
    fig, notes = saved[-1]
    bars = [c for c in fig.axes[0].containers if hasattr(c, "errorbar") and c.errorbar is not None]
    segments = [seg for c in bars for seg in c.errorbar.lines[2][0].get_segments()]
    assert len(segments) == 2 and all(abs(seg[1][1] - seg[0][1]) == pytest.approx(0.4) for seg in segments)
    assert any("measurement bound" in n for n in notes)


def test_memory_axes_say_mib_where_the_numbers_are_mib(tmp_path, monkeypatch):
    """Regression (issue 22, item 15): peak RSS is stored in MiB (VmHWM KiB / 1024) but the axes said "peak RAM
    (MB)". Every memory axis and legend says MiB."""
    saved = _capture_saves(monkeypatch)
    rows = _rows()
    condition_figures.rtf_ram_by_model_quant(rows, tmp_path)
    assert saved[-1][0].axes[1].get_ylabel() == "peak RAM (MiB)"
    condition_figures.accuracy_vs_energy(rows, tmp_path)
    legend = saved[-1][0].axes[0].get_legend()
    assert all(t.get_text().endswith(" MiB") for t in legend.get_texts())
    condition_figures.targets_by_model_quant(_fleet_rows(), tmp_path)
    assert saved[-1][0].axes[3].get_ylabel() == "peak RAM (MiB)"
    from runner.report.table import summary_rows

    rows_text = dict(summary_rows({"status": "ok", "n_utterances": 1, "n_failed": 0, "n_scored": 1,
                                   "n_unreferenced": 0, "energy": {"total_j": 1.0, "source": "nvml",
                                                                   "gpu_mem_peak_mb": 900.0}}))
    assert rows_text["GPU memory peak"] == "900 MiB"
