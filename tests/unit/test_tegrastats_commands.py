"""`edgeasr tegrastats parse` and `edgeasr energy` on logs recorded elsewhere."""

import json
import subprocess
import sys

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
        assert {"rails", "input_rail", "ram_used_mb", "ram_total_mb", "swap_used_mb", "gpu_load_pct",
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
    r = edgeasr("energy", "--tegrastats-log", str(log), "--start", "05-15-2025 18:30:02",
                "--end", "05-15-2025 18:30:06")
    assert json.loads(r.stdout)["total_j"] == pytest.approx(exact)


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
