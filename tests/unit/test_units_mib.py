"""Issue 28 item 6: one unit per name. A figure the runner holds in MiB (2^20 bytes) is named ``_mib``; ``_mb`` is
only ever MB (10^6 bytes: ``model_size_mb``). Summaries say so from schema 4; results written before (schema 3 and
older: ``peak_rss_mb``, the energy block's ``ram_peak_mb``, ``container_memory.peak_mb``, an utterance's
``mem_peak_mb``, all holding MiB) are still read, under the new names and with the same values: by the report, by
compare, by the run view and by a resumed sweep. The container contract (status.json, events) keeps its names,
which older images write; the host renames them when it merges."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT
from helpers import run_folder as _run_folder
from helpers import summary_record
from rich.console import Console

from runner.report.aggregate import aggregate
from runner.report.records import load_results
from runner.report.table import csv_summary, print_summary, summary_rows
from runner.results import (RENAMED_IN_4, SCHEMA_VERSION, Summary, UtteranceResult, upgraded,
                            upgraded_utterance)

#: The summary's MiB figures, by their schema-4 names.
MIB_FIELDS = ("peak_rss_mib", "rss_after_load_mib", "audio_cache_mib", "peak_rss_excl_audio_mib",
              "peak_vram_torch_mib", "peak_vram_nvml_mib")


def _keys(value: Any, path: str = "") -> list[str]:
    """Every key of a JSON value, as a dotted path."""
    out = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(f"{path}{k}")
            out += _keys(v, f"{path}{k}.")
    elif isinstance(value, list):
        for v in value:
            out += _keys(v, path)
    return out


def _mb_keys(value: Any) -> list[str]:
    """Keys that say MB: only model_size_mb may (it is MB)."""
    return [k for k in _keys(value) if k.endswith("_mb") and k.rsplit(".", 1)[-1] != "model_size_mb"]


def old_summary(**extra) -> dict:
    """A summary as schema 3 wrote it: its MiB figures named _mb."""
    s = summary_record(rss=None, schema_version=3)
    s.pop("peak_rss_mib", None)
    s.update({
        "peak_rss_mb": 613.8, "audio_cache_mb": 12.5, "peak_rss_excl_audio_mb": 601.3, "rss_after_load_mb": 410.0,
        "model_size_mb": 75.5, "peak_vram_torch_mb": None, "peak_vram_nvml_mb": None,
        "unavailable": {"peak_vram_torch_mb": "no GPU: the run was on the CPU",
                        "peak_vram_nvml_mb": "no GPU: the run was on the CPU"},
        "host": {"hostname": "h", "mem_total_mb": 15890.2},
        "container_memory": {"source": "cgroup v2", "peak_mb": 700.0, "at_start_mb": 650.0, "rise_mb": 50.0,
                             "windows_mb": {"inference": 700.0, "load": 640.0}, "interval_ms": 100.0,
                             "unavailable": {}},
        "energy": {"source": "nvml", "total_j": 12.0, "j_per_audio_s": 3.0, "avg_w": 30.0, "scope": "GPU",
                   "gpu_mem_peak_mb": 3000.0, "gpu_mem_peak_delta_mb": None, "gpu_process_mem_peak_mb": 800.0,
                   "gpu_mem_at_start_mb": 2900.0, "gpu_mem_rise_mb": 100.0,
                   "memory_windows_mb": {"inference": 3000.0},
                   "unavailable": {"gpu_mem_peak_delta_mb": "no idle window was measured to compare with"},
                   "companions": {"rapl": {"source": "rapl", "total_j": 4.0, "unavailable": {}}}},
        "fleet": {"agent": {"wall_s": 3.0, "raylet": {"rss_mb": 80.0, "cpu_share": 0.1}}},
    })
    s.update(extra)
    return s


NEW_NAMES = {
    "peak_rss_mib": 613.8, "audio_cache_mib": 12.5, "peak_rss_excl_audio_mib": 601.3, "rss_after_load_mib": 410.0,
    "model_size_mb": 75.5,
}


# -- writing: a new summary names MiB as MiB ------------------------------------------------------------------------

def test_a_new_summary_names_mib_as_mib_and_its_schema_says_so():
    data = Summary(backend="b", model="m", quant="q", device="cpu", dataset="d", status="ok").to_json()
    assert SCHEMA_VERSION == 4 and data["schema_version"] == 4
    assert set(MIB_FIELDS) <= set(data) and "model_size_mb" in data
    assert _mb_keys(data) == []


def test_a_new_utterance_record_names_its_memory_mib():
    names = set(UtteranceResult.__dataclass_fields__)
    assert {"mem_peak_mib", "container_mem_peak_mib"} <= names
    assert not [n for n in names if n.endswith("_mb")]


def test_the_energy_blocks_memory_figures_are_named_mib():
    from runner.telemetry.energy.record import MemoryFigures

    data = MemoryFigures("gpu_mem", 3000.0, 250.0, per_process=True, process_peak_mib=800.0, at_start_mib=2900.0,
                         rise_mib=100.0, window_peaks_mib={"inference": 3000.0}).to_json()
    assert {k: v for k, v in data.items() if k.endswith("_mib")} == {
        "gpu_mem_peak_mib": 3000.0, "gpu_mem_peak_delta_mib": 250.0, "gpu_process_mem_peak_mib": 800.0,
        "gpu_mem_at_start_mib": 2900.0, "gpu_mem_rise_mib": 100.0, "memory_windows_mib": {"inference": 3000.0}}
    assert _mb_keys(data) == []
    from runner.telemetry.energy.accounting import MEMORY_HEADLINE

    assert "{label}_peak_mib" in MEMORY_HEADLINE and "_mb" not in MEMORY_HEADLINE


def test_the_container_memory_block_is_named_mib():
    from runner.telemetry.memory import FIGURES, container_memory_block

    block = container_memory_block([], [], None, 100, reason="no cgroup")
    assert {"peak_mib", "at_start_mib", "rise_mib", "windows_mib"} <= set(block)
    assert set(block["unavailable"]) == set(FIGURES) == {"peak_mib", "at_start_mib", "rise_mib"}
    assert _mb_keys(block) == [] and "peak_mib" in block["headline"] and "_mb" not in block["headline"]


def test_samples_and_the_telemetry_trace_name_memory_mib(tmp_path):
    from runner.telemetry.energy.accounting import write_trace_csv
    from runner.telemetry.samplers.base import Sample

    sample = Sample(t_ns=1, mem_used_mib=512.0, total_w=3.0)
    assert sample.to_json()["mem_used_mib"] == 512.0 and _mb_keys(sample.to_json()) == []
    write_trace_csv(tmp_path / "telemetry.csv", [sample])
    with open(tmp_path / "telemetry.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert "mem_used_mib" in header and not [h for h in header if h.endswith("_mb")]


def test_host_facts_and_hardening_name_mib():
    from runner.host.info import host_facts
    from runner.launch.hardening import Hardening

    assert "mem_total_mib" in host_facts() and _mb_keys(host_facts()) == []
    assert _mb_keys(Hardening().describe()) == []
    assert "size=2048m" in Hardening().engine_kwargs()["tmpfs"]["/tmp"]  # the kernel's m: MiB


def test_a_whole_merged_summary_has_no_mb_name_but_model_size():
    """Every scenario of the energy golden file (a merged summary each) names MiB figures _mib."""
    golden = json.loads((ROOT / "tests/unit/telemetry/energy_golden.json").read_text())
    for name, case in golden.items():
        assert _mb_keys(case["summary"]) == [], name
        assert case["summary"]["schema_version"] == SCHEMA_VERSION


# -- reading: an older summary under the new names, the same figures ------------------------------------------------

def test_an_older_summary_is_read_with_its_figures_under_the_new_names():
    old = old_summary(repeats={"n": 2, "peak_rss_mb": [600, 610], "folders": []})
    before = json.dumps(old)
    new = upgraded(old)
    assert json.dumps(old) == before  # the record read is left as it was
    assert {k: new[k] for k in NEW_NAMES} == NEW_NAMES
    assert not set(RENAMED_IN_4) & set(new)
    assert new["unavailable"] == {"peak_vram_torch_mib": "no GPU: the run was on the CPU",
                                  "peak_vram_nvml_mib": "no GPU: the run was on the CPU"}
    assert new["repeats"]["peak_rss_mib"] == [600, 610]
    assert new["host"]["mem_total_mib"] == 15890.2
    assert {k: v for k, v in new["container_memory"].items() if k.endswith("_mib")} == {
        "peak_mib": 700.0, "at_start_mib": 650.0, "rise_mib": 50.0, "windows_mib": {"inference": 700.0, "load": 640.0}}
    e = new["energy"]
    assert {k: v for k, v in e.items() if k.endswith("_mib")} == {
        "gpu_mem_peak_mib": 3000.0, "gpu_mem_peak_delta_mib": None, "gpu_process_mem_peak_mib": 800.0,
        "gpu_mem_at_start_mib": 2900.0, "gpu_mem_rise_mib": 100.0, "memory_windows_mib": {"inference": 3000.0}}
    assert e["unavailable"] == {"gpu_mem_peak_delta_mib": "no idle window was measured to compare with"}
    assert e["total_j"] == 12.0 and e["companions"] == old["energy"]["companions"]
    assert new["fleet"]["agent"]["raylet"] == {"rss_mib": 80.0, "cpu_share": 0.1}
    assert _mb_keys(new) == []
    assert upgraded(new) == new  # reading twice changes nothing
    assert upgraded(None) is None and upgraded([1]) == [1]


def test_an_older_utterance_record_is_read_under_the_new_names():
    old = {"id": "u1", "status": "ok", "duration_s": 2.0, "mem_peak_mb": 3000.0, "container_mem_peak_mb": 700.0}
    assert upgraded_utterance(old) == {"id": "u1", "status": "ok", "duration_s": 2.0, "mem_peak_mib": 3000.0,
                                       "container_mem_peak_mib": 700.0}
    assert "mem_peak_mb" in old


def _same_but_new(old: dict) -> dict:
    """The same run written by schema 4 (what upgraded gives, the schema said)."""
    return {**upgraded(old), "schema_version": SCHEMA_VERSION}


def test_report_and_compare_give_an_older_run_folder_the_same_figures(tmp_path):
    old, new = old_summary(), _same_but_new(old_summary())
    for name, s in (("old", old), ("new", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(s))
    rows_old = aggregate(load_results(tmp_path / "old").records)
    rows_new = aggregate(load_results(tmp_path / "new").records)
    for metric in ("peak_rss_mib", "container_mem_peak_mib", "wer", "rtf", "j_per_audio_s"):
        assert rows_old[0].stat(metric).mean == rows_new[0].stat(metric).mean, metric
    assert rows_old[0].stat("peak_rss_mib").mean == pytest.approx(613.8)
    assert rows_old[0].stat("container_mem_peak_mib").mean == pytest.approx(700.0)

    from runner.report import sweep_table

    tables = [sweep_table.csv_table(sweep_table.build_table(aggregate(load_results(tmp_path / n).records), "t"))
              for n in ("old", "new")]
    assert tables[0] == tables[1] and "614" in tables[0]

    from runner.report.compare import compare

    cmp = compare(load_results(tmp_path / "old"), [("new", load_results(tmp_path / "new"))])
    rss = [p.delta("peak_rss_mib") for p in cmp.pairs]
    assert rss and all(d.change == 0 and d.baseline.mean == pytest.approx(613.8) for d in rss)


def test_an_older_sweep_is_aggregated_in_mib():
    rows = aggregate(load_results(ROOT / "tests/fixtures/sweep").records)  # schema 3: peak_rss_mb
    assert rows[0].stat("peak_rss_mib").mean == pytest.approx((613.8 + 592.0) / 2)


def test_an_older_run_folder_shows_its_memory_in_mib_in_the_run_view(tmp_path):
    s = old_summary()
    rows = dict(summary_rows(s))
    assert rows["peak RSS"] == "614 MiB" and rows["model size"] == "76 MB"
    assert rows["GPU memory peak"] == "3000 MiB"
    out = io.StringIO()
    print_summary(s, Console(file=out, width=200))
    assert "614 MiB" in out.getvalue()
    header, values = csv_summary(s).splitlines()[:2]
    assert dict(zip(header.split(","), values.split(",")))["peak_rss_mib"] == "613.8"
    # and an older energy block's unified-RAM rise, the same way
    jetson = old_summary(energy={"source": "tegrastats", "total_j": 1.0, "ram_peak_mb": 3000.0,
                                 "ram_peak_delta_mb": 250.0, "unavailable": {}})
    assert dict(summary_rows(jetson))["unified RAM peak - idle"] == "250 MiB"


def test_a_stored_result_of_an_older_schema_still_counts_as_done_under_the_new_names(tmp_path):
    from runner import tables

    folder = tmp_path / "conditions" / "k1"
    folder.mkdir(parents=True)
    old = {"schema_version": 3, "status": "ok", "peak_rss_mb": 600.0, "condition": {"key": "k1"}}
    (folder / "summary.json").write_text(json.dumps(old))
    (folder / "utterances.jsonl").write_text("")
    data = tables.read_result(folder, "k1")
    assert data is not None and data["peak_rss_mib"] == 600.0 and "peak_rss_mb" not in data


def test_growth_with_duration_reads_an_older_utterances_file(tmp_path):
    from runner.report.traces import utterance_values

    folder = tmp_path / "conditions" / "k1"
    folder.mkdir(parents=True)
    rows = [{"id": "a", "status": "ok", "duration_s": 2.0, "container_mem_peak_mb": 700.0, "mem_peak_mb": 3000.0}]
    (folder / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert utterance_values(tmp_path, "k1", "container_mem_peak_mib") == [(2.0, 700.0)]
    assert utterance_values(tmp_path, "k1", "mem_peak_mib") == [(2.0, 3000.0)]


# -- what people read: MiB where it is MiB ----------------------------------------------------------------------------

def test_figures_and_check_image_say_mib_for_mib():
    from runner.commands.check_image import _status_ok

    for module in ("condition_figures", "study_figures", "sweep_table", "compare", "table"):
        text = (ROOT / f"runner/report/{module}.py").read_text()
        assert "(MB)" not in text and " MB peak" not in text, module
    ok, detail = _status_ok({"contract_version": 4, "status": "ok", "error": None, "backend": "b",
                             "n_utterances": 1, "n_ok": 1, "n_failed": 0, "peak_rss_mb": 250.0,
                             "versions": {"x": "1"}})
    assert ok and "250 MiB" in detail and " MB" not in detail


def test_the_readme_names_the_schema_and_the_units():
    text = (ROOT / "README.md").read_text()
    assert f"(schema version {SCHEMA_VERSION})" in text
    for name in (*MIB_FIELDS, "peak_mib", "mem_peak_mib", "container_mem_peak_mib", "gpu_process_mem_peak_mib"):
        assert f"`{name}`" in text, name
    table = text[text.index("| key | meaning |", text.index("**`summary.json`**")):]
    table = table[:table.index("\n\n")]  # the summary's keys, one row each
    assert not [w for w in table.split("`") if w.endswith("_mb") and w != "model_size_mb"]


def test_the_contract_keeps_its_names_and_the_merge_renames_them(tmp_path):
    """An image of any contract version writes peak_rss_mb (MiB): the summary holds it as peak_rss_mib."""
    from edgeasr_entrypoint.contract import NON_NEGATIVE_FIELDS

    assert "peak_rss_mb" in NON_NEGATIVE_FIELDS  # the wire name older images write
    from runner.merge import CONTRACT_MIB

    assert CONTRACT_MIB["peak_rss_mb"] == "peak_rss_mib" and CONTRACT_MIB["peak_vram_mb"] == "peak_vram_torch_mib"
    assert "model_size_mb" not in CONTRACT_MIB
    assert Path(ROOT / "runner/merge.py").read_text().count("CONTRACT_MIB") >= 2


def test_a_conditions_line_is_read_for_its_figures_under_the_new_names_and_kept_as_written():
    """parse_record (the report's reader) upgrades the summary; ConditionRecord.from_json keeps the line as it was
    written, so a record written back is the same bytes (test_condition_record)."""
    from runner.results import ConditionRecord, parse_record

    line = (ROOT / "tests/fixtures/sweep/conditions.jsonl").read_text().splitlines()[0]
    row = json.loads(line)
    assert "peak_rss_mb" in row["summary"]
    read = parse_record(row)
    assert read.summary["peak_rss_mib"] == row["summary"]["peak_rss_mb"] and "peak_rss_mb" not in read.summary
    assert json.dumps(ConditionRecord.from_json(row).to_json(), ensure_ascii=False) == line


def test_tegrastats_ram_is_named_mib():
    """tegrastats prints "MB" for MiB (/proc/meminfo's kB / 1024): the parsed record says MiB."""
    from runner.telemetry.samplers.tegrastats_parse import parse_line

    rec = parse_line("RAM 2330/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [5%@729,3%@729] VDD_IN 5000mW/5000mW")
    assert rec is not None and (rec.ram_used_mib, rec.ram_total_mib, rec.swap_total_mib) == (2330, 7620, 3810)
    assert _mb_keys(rec.to_json()) == []
