"""Memory per condition on the real engine (issue 22, item 1): a condition's headline memory does not depend on
what ran before it in the same experiment.

transformers tiny.en (its Hugging Face checkpoint, real weights) on real speech, batch sizes 8 then 1 in one
experiment, against batch size 1 alone. The batch size changes what a loaded model holds, so each size runs in
a container of its own; the host reads each container's memory from its cgroup and each condition reports the
peak over its own window.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e

BODY = """\
defaults:
  backend: transformers
  model: tiny.en
  quant: fp32
  device: cpu
  dataset: data/default
  limit: 8
  decode: {{language: en, beam_size: 1}}
  warmup: 1
  telemetry: {{sampler: none, interval_ms: 50}}
grid:
  decode.batch_size: {sizes}
"""


def _sweep(tmp_path: Path, name: str, sizes: str) -> list[dict]:
    exp = tmp_path / f"{name}.yaml"
    exp.write_text(f"name: {name}\n" + BODY.format(sizes=sizes))
    out = tmp_path / name
    r = subprocess.run([sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]


def test_batch_sizes_8_then_1_report_the_memory_each_has_alone(tmp_path):
    both = _sweep(tmp_path, "eight-then-one", "[8, 1]")
    alone = _sweep(tmp_path, "one-alone", "[1]")
    assert len(both) == 2 and len(alone) == 1 and all(r["status"] == "ok" for r in both + alone)
    by_size = {r["condition"]["decode"]["batch_size"]: r["summary"] for r in both}
    one, one_alone = by_size[1]["container_memory"], alone[0]["summary"]["container_memory"]
    for block in (one, one_alone, by_size[8]["container_memory"]):
        assert block["peak_mib"] is not None, block
        assert block["source"].startswith("cgroup") and block["clock"] == "monotonic"
        assert block["windows_mib"]["load"] is not None
    assert one["peak_mib"] == pytest.approx(one_alone["peak_mib"], rel=0.10), (one, one_alone)
    print(f"container peak MiB: batch 8 {by_size[8]['container_memory']['peak_mib']:.0f}, batch 1 after it "
          f"{one['peak_mib']:.0f}, batch 1 alone {one_alone['peak_mib']:.0f}")
