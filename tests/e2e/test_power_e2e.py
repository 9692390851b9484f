"""Power modes end to end: a three-mode sweep on the FAKE Orin Nano (tests/fake_jetson.py: its sysfs tree,
nvpmodel and jetson_clocks), real faster-whisper tiny.en containers, energy from the fake INA3221 rails; the
board's own mode is restored after each group and at the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from fake_jetson import make_orin_nano
from helpers import ROOT

pytestmark = pytest.mark.e2e


def test_a_three_mode_sweep_applies_each_mode_and_restores_the_original(tmp_path):
    """Modes 7W, 25W and MAXN_SUPER each run one container at that mode (read back, no mismatch), the idle
    baseline and energy come from the INA3221 rails, and the board is back in 15W (mode 0) after every group:
    the fake nvpmodel saw -m 3, -m 0, -m 1, -m 0, -m 2, -m 0."""
    board = make_orin_nano(tmp_path / "board", mode=0, input_w=6.0)
    exp = tmp_path / "power-e2e.yaml"
    exp.write_text(f"""name: power-e2e
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {ROOT / 'data' / 'default'}
  limit: 2
  decode: {{beam_size: 1, temperature: 0.0, language: en}}
  warmup: 0
  telemetry: {{sampler: ina3221, interval_ms: 50, baseline_s: 0.5, loaded_idle_s: 0}}
  power: {{settle_s: 0.2}}
  timeout_s: 300
grid:
  power.mode: [7W, 25W, MAXN_SUPER]
""")
    env = {**os.environ, **board.env(),
           "EDGEASR_MODELS_DIR": os.environ.get("EDGEASR_MODELS_DIR", str(ROOT / "models"))}
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert board.mode() == 0
    modes = [line for line in board.log.read_text().splitlines() if line.startswith("nvpmodel -m")]
    assert modes == ["nvpmodel -m 3", "nvpmodel -m 0", "nvpmodel -m 1", "nvpmodel -m 0", "nvpmodel -m 2",
                     "nvpmodel -m 0"]
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(rec["status"] == "ok" for rec in records)
    seen = set()
    for rec in records:
        summary = json.loads((out / "conditions" / rec["condition"]["key"] / "summary.json").read_text())
        p = summary["power"]
        assert p["controller"] == "jetson" and p["mismatches"] == [] and p["restore_error"] is None
        assert p["before"]["mode_id"] == 0 and p["restored"]["mode_id"] == 0
        assert p["applied"]["mode_name"] == p["requested"]["mode"] and p["settle_s"] == 0.2
        assert p["observed"]["n"] >= 1 and "gpu_mhz" in p["observed"]
        seen.add(p["applied"]["mode_name"])
        energy = summary["energy"]
        assert summary["telemetry"]["health"]["sampler"] == "ina3221"
        assert energy["total_j"] is not None and energy["total_j"] > 0, energy
    assert seen == {"7W", "25W", "MAXN_SUPER"}
