"""Issue 14: compare and its regression gates, report over run folders, small-n statistics, host load,
worst utterances, energy said once, --format md|csv, units and wording."""

import argparse
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import ROOT, command_args
from helpers import run_folder as _run_folder
from helpers import summary_record as _summary
from rich.console import Console

from runner.commands import compare as compare_cmd
from runner.commands import noise as noise_cmd
from runner.commands import report as report_cmd
from runner.errors import UserError
from runner.host import load as hostload
from runner.report import worst
from runner.report.aggregate import aggregate, summarize
from runner.report.compare import NO_REPEATS, WITHIN_NOISE, Gates, compare, delta, distinguishable
from runner.report.records import load_many, load_results
from runner.report.sweep_table import build_table, csv_table, markdown_table
from runner.report.table import csv_summary, markdown_summary, print_summary, summary_rows
from runner.wording import plural, seconds

FIXTURE = ROOT / "tests/fixtures/sweep"


# ---------------------------------------------------------------- helpers

def _shifted_sweep(tmp_path: Path, name: str, wer_add: float = 0.0, rtf_mul: float = 1.0) -> Path:
    """The fixture sweep with every WER raised by ``wer_add`` and every RTF multiplied by ``rtf_mul``."""
    dest = tmp_path / name
    shutil.copytree(FIXTURE, dest)
    lines = []
    for line in (FIXTURE / "conditions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        s = rec["summary"]
        if s.get("wer") is not None:
            s["wer"] += wer_add
        if s.get("rtf") is not None:
            s["rtf"] *= rtf_mul
        lines.append(json.dumps(rec))
    (dest / "conditions.jsonl").write_text("\n".join(lines) + "\n")
    return dest


def _compare_args(*argv: str) -> argparse.Namespace:
    return command_args(compare_cmd, *argv)


def _report_args(*argv: str) -> argparse.Namespace:
    return command_args(report_cmd, *argv)


# ---------------------------------------------------------------- small-n statistics

def test_two_values_show_their_range_not_a_t_interval():
    """With 2 repeats the interval is min-max (a t-interval would be 12.7 x the spread)."""
    st = summarize([0.05, 0.07])
    assert st.uses_range and st.interval == (0.05, 0.07)
    assert st.whisker() == pytest.approx((0.01, 0.01))


def test_no_whisker_reaches_below_zero():
    """A wide t-interval around a small mean is clamped at 0: RTF cannot be negative."""
    st = summarize([0.01, 0.02, 0.30])
    assert st.mean - st.ci95 < 0
    low, high = st.interval
    assert low == 0.0 and high == pytest.approx(st.mean + st.ci95)
    below, _ = st.whisker()
    assert below == pytest.approx(st.mean)


def test_one_value_has_no_interval_and_no_whisker():
    st = summarize([0.05])
    assert st.interval is None and st.whisker() is None and not st.disagree


def test_repeats_that_disagree_are_flagged_in_the_table():
    """CV above 10 % flags the cell with a note; CV below does not."""
    assert summarize([1.0, 1.5, 2.0]).disagree and not summarize([1.0, 1.02, 0.98]).disagree
    rows = aggregate(load_results(FIXTURE).records)
    model = build_table(rows, "t")
    assert not any("disagree" in n for n in model.notes)  # the fixture's repeats agree


# ---------------------------------------------------------------- compare

def test_compare_gates_a_wer_regression_and_passes_within_the_limit(tmp_path, capsys):
    """WER +1 point: --max-wer-increase 0.5 exits 1 naming it; --max-wer-increase 2 exits 0."""
    worse = _shifted_sweep(tmp_path, "worse", wer_add=0.01)
    assert compare_cmd.main(_compare_args(str(FIXTURE), str(worse), "--max-wer-increase", "0.5")) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "rose +1.00 points" in out
    assert compare_cmd.main(_compare_args(str(FIXTURE), str(worse), "--max-wer-increase", "2")) == 0


def test_compare_never_passes_a_gate_on_a_failed_condition(tmp_path, capsys):
    """Issue 20, item 4: a candidate whose output broke the contract is a failed condition (status error); even
    with figures that would pass (here the baseline's own), every gate fails, naming the error."""
    base = _run_folder(tmp_path, "base")
    failed = _run_folder(tmp_path, "failed", status="error",
                         error="the container's output broke the contract: rtf is -2.5")
    for gate in ("--max-wer-increase", "--max-rtf-increase"):
        assert compare_cmd.main(_compare_args(str(base), str(failed), gate, "100")) == 1
        out = capsys.readouterr()
        assert "cannot be checked" in out.out and "rtf is -2.5" in out.out and "regression" in out.err
    assert compare_cmd.main(_compare_args(str(base), str(base), "--max-wer-increase", "100")) == 0


def test_compare_rtf_gate_in_percent_and_json(tmp_path, capsys):
    slower = _shifted_sweep(tmp_path, "slower", rtf_mul=1.2)
    assert compare_cmd.main(_compare_args(str(FIXTURE), str(slower), "--max-rtf-increase", "10",
                                          "--format", "json")) == 1
    data = json.loads(capsys.readouterr().out)
    assert not data["passed"] and len(data["regressions"]) == 12
    first = data["pairs"][0]["metrics"]["rtf"]
    assert first["change"] == pytest.approx(20.0) and first["unit"] == "%"


def test_energy_gate_fails_where_energy_is_unavailable(tmp_path):
    """A gate that cannot be checked must not pass silently."""
    a = _run_folder(tmp_path, "a")
    b = _run_folder(tmp_path, "b")
    cmp = compare(load_results(a), [("b", load_results(b))], "a")
    failures = cmp.gate_failures(Gates(max_energy_increase_pct=5))
    assert len(failures) == 1 and "cannot be checked" in failures[0] and "no power sensor" in failures[0]


def test_two_runs_of_different_images_match_and_the_image_is_what_is_compared(tmp_path, capsys):
    a = _run_folder(tmp_path, "old", image="edgeasr/fw:1", rtf=0.05, j=0.5)
    b = _run_folder(tmp_path, "new", image="edgeasr/fw:2", rtf=0.06, j=0.5)
    cmp = compare(load_results(a), [("new", load_results(b))], "old")
    assert len(cmp.pairs) == 1 and "image (edgeasr/fw:1 → edgeasr/fw:2)" in cmp.ignored
    d = cmp.pairs[0].delta("rtf")
    assert d.change == pytest.approx(20.0) and d.noise == NO_REPEATS
    for fmt in ("md", "csv", "table"):
        assert compare_cmd.main(_compare_args(str(a), str(b), "--format", fmt)) == 0
    text = capsys.readouterr().out
    assert "| condition |" in text and "condition,candidate,metric" in text and "0.0500 → 0.0600" in text


def test_no_matching_condition_is_a_user_error(tmp_path):
    """A sweep against a sweep of other models: nothing matches, exit 2 with what is unmatched."""
    other = _shifted_sweep(tmp_path, "other")
    lines = [json.loads(x) for x in (other / "conditions.jsonl").read_text().splitlines()]
    for i, rec in enumerate(lines):  # every condition a model of its own: nothing can be matched
        rec["condition"]["model"] = f"m{i}"
    (other / "conditions.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with pytest.raises(UserError, match="matches") as exc:
        compare_cmd.main(_compare_args(str(FIXTURE), str(other)))
    assert exc.value.exit_code == 2


def test_noise_judged_by_welch_over_the_repeats():
    a, b = summarize([1.0, 1.1, 0.9]), summarize([1.02, 1.12, 0.92])
    assert distinguishable(a, b) is False and delta("rtf", a, b).noise == WITHIN_NOISE
    far = summarize([2.0, 2.1, 1.9])
    assert distinguishable(a, far) is True and delta("rtf", a, far).noise is None
    assert distinguishable(summarize([1.0]), far) is None


def test_negative_gate_is_refused():
    with pytest.raises(UserError, match="0 or more"):
        compare_cmd.main(_compare_args(str(FIXTURE), str(FIXTURE), "--max-rtf-increase", "-1"))


# ---------------------------------------------------------------- report over runs

def test_report_over_two_run_folders_is_one_table_with_a_source_column(tmp_path, capsys):
    a = _run_folder(tmp_path, "run-a", rtf=0.05)
    b = _run_folder(tmp_path, "run-b", rtf=0.07)
    sweep = load_many([a, b])
    rows = aggregate(sweep.records)
    assert len(rows) == 2  # equal settings from two folders are not averaged as repeats
    model = build_table(rows, sweep.title)
    assert "source" in model.headers
    assert report_cmd.main(_report_args(str(a), str(b), "--no-figures", "--out", str(tmp_path / "r"),
                                        "--format", "md")) == 0
    out = capsys.readouterr().out
    assert "run-a" in out and "run-b" in out and out.lstrip().startswith("**")
    assert (tmp_path / "r" / "report.html").is_file()


def test_report_reads_a_single_run_folder(tmp_path, capsys):
    a = _run_folder(tmp_path, "run-a")
    assert report_cmd.main(_report_args(str(a), "--no-figures")) == 0
    assert (a / "report" / "report.html").is_file()


def test_report_csv_is_one_line_per_condition(tmp_path, capsys):
    assert report_cmd.main(_report_args(str(FIXTURE), "--no-figures", "--out", str(tmp_path / "r"),
                                        "--format", "csv")) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("backend,model,quant,device,dataset") and "wer_pct" in lines[0] and len(lines) == 13


# ---------------------------------------------------------------- worst utterances

UTTS = [
    {"id": "u1", "status": "ok", "wer": 0.0, "latency_s": 0.2, "duration_s": 2.0, "reference": "a b",
     "hypothesis": "a b"},
    {"id": "u2", "status": "ok", "wer": 4.0, "latency_s": 1.5, "duration_s": 2.0, "reference": "hello there",
     "hypothesis": "hello hello hello hello hello hello hello hello there"},
    {"id": "u3", "status": "error", "wer": None, "latency_s": None, "duration_s": 2.0, "reference": "x",
     "hypothesis": None},
]


def test_worst_utterances_by_wer_and_latency_with_reference_and_hypothesis():
    w = worst.worst([("", UTTS)], n=3)
    assert [u.id for u in w.by_wer] == ["u2"]  # a WER of 0 is not "worst"; a failed one has no figures
    assert [u.id for u in w.by_latency] == ["u2", "u1"]
    text = "\n".join(worst.lines(w))
    assert 'WER 400%' in text and 'ref "hello there"' in text and "latency 1500 ms for 2.0 s of audio" in text


def test_run_view_lists_the_worst_utterances(tmp_path):
    folder = _run_folder(tmp_path, "run", utts=UTTS)
    out = io.StringIO()
    print_summary(json.loads((folder / "summary.json").read_text()), Console(file=out, width=200), folder=folder)
    text = out.getvalue()
    assert "worst by WER:" in text and "u2" in text and "slowest:" in text


def test_report_lists_the_worst_utterances_of_a_run(tmp_path, capsys):
    folder = _run_folder(tmp_path, "run", utts=UTTS)
    assert report_cmd.main(_report_args(str(folder), "--no-figures")) == 0
    assert "worst by WER:" in capsys.readouterr().out
    assert "Worst utterances" in (folder / "report" / "report.html").read_text()


# ---------------------------------------------------------------- energy said once, units, formats

def test_run_view_says_energy_unavailable_in_one_short_line():
    rows = dict(summary_rows(_summary()))
    assert rows["energy"] == "no sensor, see README: Energy"
    s = _summary()
    s["energy"]["unavailable"]["total_j"] = "telemetry turned off (--telemetry none)"
    assert dict(summary_rows(s))["energy"] == "not measured (--telemetry none)"


def test_units_peak_rss_is_mib_and_model_size_is_mb():
    rows = dict(summary_rows(_summary(model_size_mb=75.5)))
    assert rows["peak RSS"] == "600 MiB" and rows["model size"] == "76 MB"
    assert "peak RSS MiB" in build_table(aggregate(load_results(FIXTURE).records), "t").headers


def test_one_utterance_is_singular():
    assert plural(1, "utterance") == "1 utterance" and plural(2, "utterance") == "2 utterances"
    s = _summary(n_utterances=1, n_scored=1)
    assert dict(summary_rows(s))["utterances"].startswith("1 utterance (")


def test_seconds_have_no_float_noise():
    assert seconds(0.1 + 0.2) == "0.3 s" and seconds(12.0) == "12 s" and seconds(1.25) == "1.25 s"
    assert seconds(0.0004) == "0.0004 s" and seconds(250.4) == "250 s" and seconds(12.34) == "12.3 s"


def test_run_summary_as_markdown_and_csv():
    s = _summary()
    md = markdown_summary(s)
    assert md.startswith("**faster-whisper") and "| WER | 10.00%" in md
    lines = csv_summary(s).splitlines()
    assert len(lines) == 2 and lines[0].startswith("backend,model,quant") and ",rtf," in lines[0]


def test_sweep_table_as_markdown_escapes_pipes():
    model = build_table(aggregate(load_results(FIXTURE).records), "a|b")
    md = markdown_table(model)
    assert "a\\|b" in md and md.count("\n| ") >= 12
    assert csv_table(model).splitlines()[0].endswith(",notes")


def test_noise_preview_refuses_a_format_it_does_not_write(tmp_path):
    """`--out x.mp3` is a clear error naming WAV and FLAC, before any work."""
    with pytest.raises(UserError, match=r"writes WAV or FLAC.*\.wav or \.flac.*not \.mp3"):
        noise_cmd.check_out(tmp_path / "x.mp3")
    assert noise_cmd.check_out(tmp_path / "x.FLAC") == "flac"


# ---------------------------------------------------------------- host load

def test_host_load_is_busy_with_another_container_but_not_a_high_load_before(tmp_path):
    """Issue 28 item 1: the load average is recorded, never judged (see test_host_window_load.py)."""
    idle = hostload.LoadSnapshot(0.2, 0.3, 0.3, 0)
    assert hostload.busy_reason(idle, idle) is None
    loaded = hostload.LoadSnapshot(6.0, 3.0, 1.0, 0)
    assert hostload.busy_reason(loaded, idle) is None
    neighbour = hostload.LoadSnapshot(0.1, 0.1, 0.1, 1, ("postgres",))
    rec = hostload.host_load_record(idle, neighbour, 8)
    assert rec["busy"] and "1 other container running (postgres)" in rec["busy_reason"]
    assert rec["before"]["loadavg_1m"] == 0.2


def test_loadavg_is_read_and_a_missing_file_is_unknown(tmp_path):
    f = tmp_path / "loadavg"
    f.write_text("0.50 0.40 0.30 1/200 1234\n")
    assert hostload.read_loadavg(str(f)) == (0.5, 0.4, 0.3)
    assert hostload.read_loadavg(str(tmp_path / "nope")) == (None, None, None)
    snap = hostload.snapshot(None, str(f))
    assert snap.other_containers is None  # no docker engine: not asked, not 0


def test_a_busy_host_is_warned_in_the_run_view_and_the_report(tmp_path, capsys):
    busy = {"busy": True, "busy_reason": "1 other container running (x)", "window": None}
    folder = _run_folder(tmp_path, "run", host_load=busy)
    assert "busy during the timed window" in dict(summary_rows(json.loads((folder / "summary.json").read_text())))["host"]
    rows = aggregate(load_results(folder).records)
    model = build_table(rows, "t")
    assert rows[0].n_busy == 1 and any("warning" in r and "busy host" in r for r in model.remarks)
    assert any("other container running" in n for n in model.notes)


def test_own_container_is_found_from_mountinfo_not_the_hostname(tmp_path):
    """With the host's network a container has the host's name; its id is in the engine's bind mounts."""
    cid = "a" * 64
    f = tmp_path / "mountinfo"
    f.write_text(f"1 2 0:1 /var/lib/docker/containers/{cid}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n")
    assert hostload.own_container_id(str(f)) == cid
    f.write_text("1 2 0:1 / / rw - ext4 /dev/sda1 rw\n")
    assert hostload.own_container_id(str(f)) is None


def test_compare_of_gpu_energy_against_cpu_package_energy_is_not_a_rise(tmp_path, capsys):
    """Regression (issue 22, item 2): a GPU-only (NVML) run against a CPU-package (RAPL) run printed "J / audio s
    rose +20 %" and the gate failed on it. Energies of different scopes are not comparable: the delta says so,
    and a gate on energy fails with that sentence instead of a made-up rise."""
    a = _run_folder(tmp_path, "gpu", image="edgeasr/fw:1", j=0.5)
    b = _run_folder(tmp_path, "cpu", image="edgeasr/fw:2", j=0.6)
    for folder, scope, source in ((a, "GPU", "nvml"), (b, "CPU package+DRAM", "rapl")):
        s = json.loads((folder / "summary.json").read_text())
        s["energy"].update(scope=scope, source=source)
        (folder / "summary.json").write_text(json.dumps(s))
    cmp = compare(load_results(a), [("cpu", load_results(b))], "gpu")
    d = cmp.pairs[0].delta("j_per_audio_s")
    assert d.change is None and d.not_comparable == "not comparable: energy of GPU vs CPU package+DRAM"
    assert cmp.pairs[0].delta("rtf").not_comparable is None  # speed is still compared
    failures = cmp.gate_failures(Gates(max_energy_increase_pct=5))
    assert len(failures) == 1 and "not comparable: energy of GPU vs CPU package+DRAM" in failures[0]
    assert "rose" not in failures[0]
    assert compare_cmd.main(_compare_args(str(a), str(b), "--max-energy-increase", "50")) == 1
    out = capsys.readouterr().out
    assert "not comparable: energy of GPU vs CPU package+DRAM" in out and "+20.0 %" not in out
    assert compare_cmd.main(_compare_args(str(a), str(b), "--format", "json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pairs"][0]["metrics"]["j_per_audio_s"]["not_comparable"].startswith("not comparable")


def test_energy_is_shown_with_its_bound_and_a_change_inside_the_bounds_is_not_a_regression(tmp_path, capsys):
    """Regression (issue 22, item 9): energy figures were printed bare and compared bare. The run view says
    "12.40 J ± 0.30", the sweep table "0.500 ± 0.050" for one run, and compare does not call a rise inside both
    sides' bounds a regression (one outside them still is)."""
    def with_bounds(folder, j, bound):
        s = json.loads((folder / "summary.json").read_text())
        s["energy"].update(total_j=12.4, bounds={"total_j": 0.3, "j_per_audio_s": bound})
        s["energy"]["j_per_audio_s"] = j
        (folder / "summary.json").write_text(json.dumps(s))
        return folder

    a = with_bounds(_run_folder(tmp_path, "a", image="edgeasr/fw:1", j=0.5), 0.5, 0.05)
    b = with_bounds(_run_folder(tmp_path, "b", image="edgeasr/fw:2", j=0.58), 0.58, 0.05)
    c = with_bounds(_run_folder(tmp_path, "c", image="edgeasr/fw:3", j=0.7), 0.7, 0.05)
    rows = dict(summary_rows(json.loads((a / "summary.json").read_text())))
    assert rows["energy (inference)"].startswith("12.40 J ± 0.30") and rows["energy / audio s"] == "0.500 J/s ± 0.050"
    table = build_table(aggregate(load_results(a).records), "t", terminal=False)
    col = table.headers.index("J / audio s")
    assert table.rows[0][col].text == "0.500 ± 0.050" and any("measurement bound" in r for r in table.remarks)
    inside = compare(load_results(a), [("b", load_results(b))], "a")
    d = inside.pairs[0].delta("j_per_audio_s")
    assert d.change == pytest.approx(16.0) and d.noise == "within the measurement bounds"
    assert inside.gate_failures(Gates(max_energy_increase_pct=5)) == []
    outside = compare(load_results(a), [("c", load_results(c))], "a")
    assert len(outside.gate_failures(Gates(max_energy_increase_pct=5))) == 1


def test_the_sweep_table_shows_each_conditions_container_memory():
    """Issue 22, item 1: the container's memory over each condition's own window is a column of the HTML table
    (not the terminal's), and a condition without it carries the reason the block gives."""
    from runner.report.aggregate import aggregate
    from runner.report.sweep_table import build_table

    records = load_results(FIXTURE).records
    for i, rec in enumerate(records):
        rec.summary["container_memory"] = ({"peak_mib": 900.0 + i, "unavailable": {}} if i else
                                           {"peak_mib": None, "unavailable": {"peak_mib": "the local engine runs no "
                                                                                        "container"}})
    rows = aggregate(records)
    assert "container MiB" in build_table(rows, "t", terminal=False).headers
    assert "container MiB" not in build_table(rows, "t").headers
    reasons = {r for row in rows for r in row.stat("container_mem_peak_mib").reasons}
    assert "the local engine runs no container" in reasons
