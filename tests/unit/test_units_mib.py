"""Issue 28 item 6: one unit per name. Memory the runner measures in MiB is named ``_mib`` in the results (schema
4); ``model_size_mb`` stays MB (10^6 bytes); results written before (schema 3, ``peak_rss_mb`` holding MiB) are
still read, as MiB."""

import io
import json

import pytest
from helpers import ROOT
from helpers import run_folder as _run_folder
from rich.console import Console

from runner.report.aggregate import aggregate
from runner.report.records import load_results
from runner.report.table import print_summary, summary_rows
from runner.results import SCHEMA_VERSION, Summary, upgraded

MIB_FIELDS = ("peak_rss_mib", "rss_after_load_mib", "audio_cache_mib", "peak_rss_excl_audio_mib",
              "peak_vram_torch_mib", "peak_vram_nvml_mib")


def test_a_new_summary_names_mib_as_mib_and_its_schema_says_so():
    data = Summary(backend="b", model="m", quant="q", device="cpu", dataset="d", status="ok").to_json()
    assert SCHEMA_VERSION == 4 and data["schema_version"] == 4
    assert set(MIB_FIELDS) <= set(data) and "model_size_mb" in data
    assert not [k for k in data if k.endswith("_mb") and k != "model_size_mb"]


def test_an_older_summary_is_read_with_its_figures_under_the_new_names():
    old = {"schema_version": 3, "peak_rss_mb": 613.8, "peak_vram_torch_mb": None, "model_size_mb": 75.5,
           "unavailable": {"peak_vram_torch_mb": "no GPU"}, "repeats": {"n": 2, "peak_rss_mb": [600, 610]}}
    new = upgraded(old)
    assert new["peak_rss_mib"] == 613.8 and "peak_rss_mb" not in new and new["model_size_mb"] == 75.5
    assert new["unavailable"] == {"peak_vram_torch_mib": "no GPU"}
    assert new["repeats"]["peak_rss_mib"] == [600, 610]
    assert old["peak_rss_mb"] == 613.8  # the record read is left as it was
    current = {"schema_version": 4, "peak_rss_mib": 1.0}
    assert upgraded(current) == current


def test_an_older_sweep_is_aggregated_in_mib():
    rows = aggregate(load_results(ROOT / "tests/fixtures/sweep").records)  # schema 3: peak_rss_mb
    assert rows[0].stat("peak_rss_mib").mean == pytest.approx((613.8 + 592.0) / 2)


def test_an_older_run_folder_shows_its_peak_rss_in_mib(tmp_path, capsys):
    folder = _run_folder(tmp_path, "old", rss=614.0)
    s = json.loads((folder / "summary.json").read_text())
    assert "peak_rss_mb" in s  # the helper writes a schema-3 summary
    rec = load_results(folder).records[0]
    assert rec.summary["peak_rss_mib"] == 614.0
    assert dict(summary_rows(s))["peak RSS"] == "614 MiB"
    out = io.StringIO()
    print_summary(s, Console(file=out, width=200))
    assert "614 MiB" in out.getvalue()


def test_figures_and_check_image_say_mib_for_mib():
    from runner.commands.check_image import _status_ok
    from runner.report import condition_figures

    text = (ROOT / "runner/report/condition_figures.py").read_text()
    assert "(MB)" not in text and "(MiB)" in text
    assert condition_figures is not None
    ok, detail = _status_ok({"contract_version": 1, "status": "ok", "error": None, "backend": "b",
                             "n_utterances": 1, "n_ok": 1, "n_failed": 0, "peak_rss_mb": 250.0,
                             "versions": {"x": "1"}})
    assert "250 MiB" in detail and " MB" not in detail


def test_a_stored_result_of_an_older_schema_still_counts_as_done_under_the_new_names(tmp_path):
    from runner import tables

    folder = tmp_path / "conditions" / "k1"
    folder.mkdir(parents=True)
    old = {"schema_version": 3, "status": "ok", "peak_rss_mb": 600.0, "condition": {"key": "k1"}}
    (folder / "summary.json").write_text(json.dumps(old))
    (folder / "utterances.jsonl").write_text("")
    data = tables.read_result(folder, "k1")
    assert data is not None and data["peak_rss_mib"] == 600.0 and "peak_rss_mb" not in data


def test_the_energy_blocks_memory_figures_are_named_mib():
    from runner.telemetry.energy.record import MemoryFigures

    data = MemoryFigures("gpu_mem", 3000.0, 250.0, per_process=True, process_peak_mib=800.0).to_json()
    assert data == {"gpu_mem_peak_mib": 3000.0, "gpu_mem_peak_delta_mib": 250.0, "gpu_process_mem_peak_mib": 800.0}


def test_an_older_energy_block_is_read_under_the_new_names():
    old = {"schema_version": 3, "energy": {"total_j": 1.0, "ram_peak_mb": 3000.0, "ram_peak_delta_mb": None,
                                           "unavailable": {"ram_peak_delta_mb": "no idle window"}}}
    e = upgraded(old)["energy"]
    assert e == {"total_j": 1.0, "ram_peak_mib": 3000.0, "ram_peak_delta_mib": None,
                 "unavailable": {"ram_peak_delta_mib": "no idle window"}}
    rows = dict(summary_rows({**upgraded(old), "status": "ok", "n_utterances": 1, "n_failed": 0, "n_scored": 1,
                              "n_unreferenced": 0, "energy": {**e, "ram_peak_delta_mib": 250.0, "source": "x"}}))
    assert rows["unified RAM peak - idle"] == "250 MiB"
