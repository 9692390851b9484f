"""`edgeasr tegrastats parse` and `edgeasr energy` on logs recorded elsewhere."""

import json
import subprocess
import sys
from datetime import datetime

import pytest
from helpers import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "tegrastats"


def edgeasr(*args, input=None):
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          input=input)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.txt")))
def test_parse_prints_one_json_object_per_line(name):
    text = (FIXTURES / name).read_text()
    r = edgeasr("tegrastats", "parse", "-", input=text)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows, r.stderr
    for row in rows:
        assert {"rails", "input_rail", "ram_used_mib", "ram_total_mib", "swap_used_mib", "gpu_load_pct",
                "gpu_freq_mhz", "cpu", "temps_c"} <= set(row)
        assert all(set(v) >= {"inst_mw", "avg_mw"} for v in row["rails"].values())


def _jp6_log(tmp_path, watts, interval_s=1):
    lines = []
    for i, w in enumerate(watts):
        stamp = f"05-15-2025 18:30:{i * interval_s:02d}"
        mw = int(w * 1000)
        lines.append(f"{stamp} RAM 2330/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [5%@729,3%@729,off,off,"
                     f"1%@729,0%@729] GR3D_FREQ 0% cpu@47.375C soc2@46.656C VDD_IN {mw}mW/{mw}mW "
                     f"VDD_CPU_GPU_CV 500mW/500mW VDD_SOC 1200mW/1200mW")
    log = tmp_path / "t.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def test_energy_of_a_recorded_log(tmp_path):
    log = _jp6_log(tmp_path, [4, 4, 6, 8, 8, 8, 6, 4, 4, 4, 4])  # one line a second
    r = edgeasr("energy", "--tegrastats-log", str(log), "--start", "2", "--end", "6", "--baseline-w", "4")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["interval_source"] == "timestamps (fitted: 1000 ms a line)" and out["interval_ms"] == pytest.approx(1000)
    exact = (6 + 8) / 2 + (8 + 8) / 2 + (8 + 8) / 2 + (8 + 6) / 2  # trapezoid over samples at 2..6 s
    assert out["total_j"] == pytest.approx(exact) and out["dynamic_j"] == pytest.approx(exact - 16)
    assert out["total_kind"] == "input_rail:VDD_IN" and out["per_rail_j"]["VDD_SOC"] == pytest.approx(4.8)
    # a line stamped 18:30:02 was written in [02, 03): it sits at 02.5, so the stamped window 02-06 holds the
    # samples of 02.5 ... 05.5 and half a second of the lines either side
    r = edgeasr("energy", "--tegrastats-log", str(log), "--start", "05-15-2025 18:30:02",
                "--end", "05-15-2025 18:30:06")
    shifted = 0.5 * (5 + 6) / 2 + (6 + 8) / 2 + 8 + 8 + 0.5 * (8 + 7) / 2
    assert json.loads(r.stdout)["total_j"] == pytest.approx(shifted)


def test_energy_refuses_bad_windows(tmp_path):
    log = _jp6_log(tmp_path, [4, 4, 4])
    r = edgeasr("energy", "--tegrastats-log", str(log), "--start", "2", "--end", "1")
    assert r.returncode == 2 and r.stderr.strip() == "edgeasr: --end (1) must be after --start (2)"
    r = edgeasr("energy", "--tegrastats-log", str(tmp_path / "none.log"), "--start", "0", "--end", "1")
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr


def _stamped_log(tmp_path, rows):
    """rows: (seconds after 18:30:00, watts), one line each."""
    lines = []
    for sec, w in rows:
        mw = int(w * 1000)
        lines.append(f"05-15-2025 18:{30 + sec // 60:02d}:{sec % 60:02d} RAM 2330/7620MB (lfb 2x4MB) "
                     f"CPU [5%@729,3%@729] GR3D_FREQ 0% cpu@47.375C VDD_IN {mw}mW/{mw}mW VDD_SOC 1200mW/1200mW")
    log = tmp_path / "t.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def test_tegrastats_log_lines_follow_their_timestamps_not_a_fixed_grid(tmp_path):
    """Two lines a second for 20 s, read with a wrong --interval-ms 100: the stamps win, with a warning."""
    log = _stamped_log(tmp_path, [(i // 2, 4.0) for i in range(40)])
    r = edgeasr("energy", "--tegrastats-log", str(log), "--start", "2", "--end", "12", "--interval-ms", "100")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["interval_ms"] == pytest.approx(500, rel=0.05) and out["interval_source"].startswith("timestamps")
    assert out["total_j"] == pytest.approx(40.0, rel=1e-6)
    assert "--interval-ms 100" in r.stderr and "disagrees" in r.stderr and out["warnings"]


def test_tegrastats_log_with_a_gap_places_each_line_at_its_stamp(tmp_path):
    """tegrastats paused for 10 s: lines after the gap sit at their own stamps, not at i x interval."""
    log = _stamped_log(tmp_path, [(s, 4.0) for s in range(5)] + [(s, 8.0) for s in range(15, 21)])
    r = edgeasr("energy", "--tegrastats-log", str(log), "--start", "05-15-2025 18:30:15",
                "--end", "05-15-2025 18:30:19")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["total_j"] == pytest.approx(32.0, rel=0.02)
    assert "irregular" in out["interval_source"]


def test_a_given_interval_that_agrees_with_the_stamps_is_used(tmp_path):
    log = _stamped_log(tmp_path, [(i, 4.0) for i in range(11)])
    out = json.loads(edgeasr("energy", "--tegrastats-log", str(log), "--start", "0", "--end", "10",
                             "--interval-ms", "1000").stdout)
    assert out["interval_source"] == "given (consistent with the timestamps)" and out["warnings"] == []


def test_energy_of_a_log_does_not_place_lines_half_a_second_early(tmp_path):
    """Regression (issue 22, item 5): ``energy --tegrastats-log`` placed lines 0.45 s early (stamps truncated to the
    second, fitted as if exact): +20 % on a window next to a power step. A log written at 100 ms with a known
    sub-second phase (0.45 s past the second) and a step from 4 W to 12 W at 18:30:06.0: each line is placed
    within a spacing of where it was written, and the window 05-07 holds 4 W + 12 W = 16 J."""
    rows = []
    for i in range(120):
        t = 0.45 + 0.1 * i  # seconds after 18:30:00 when line i was written
        rows.append((int(t), 4.0 if t < 6.0 else 12.0))
    log = _stamped_log(tmp_path, rows)
    from runner.telemetry.samplers.tegrastats_log import read_log

    timeline = read_log(log.read_text())
    first = timeline.samples[0].t_ns
    placed = [(s.t_ns - first) / 1e9 for s in timeline.samples]
    assert placed == pytest.approx([0.1 * i for i in range(120)], abs=1e-6)  # the spacing is measured
    origin = datetime.strptime("05-15-2025 18:30:00", "%m-%d-%Y %H:%M:%S").timestamp()
    assert first / 1e9 - origin == pytest.approx(0.45, abs=0.05)  # the phase: not 0.0, where the stamp says
    r = edgeasr("energy", "--tegrastats-log", str(log), "--start", "05-15-2025 18:30:05",
                "--end", "05-15-2025 18:30:07")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["total_j"] == pytest.approx(16.0, abs=0.8)  # a step within a 0.1 s spacing: 0.8 J
