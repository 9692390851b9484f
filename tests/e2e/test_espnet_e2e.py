"""The espnet backend on the real engine: its image (Python 3.13, torch 2.14, espnet 202611) runs the tiny random
ESPnet Conformer CTC/attention model that `edgeasr models make-tiny espnet` builds in it, on real speech.

The weights are random, so these tests check the pipeline, the timings, the CTC-weight conditions of one loaded
model and the contract, not WER (which the summaries report as not a result). `edgeasr check-image` on the image is
tests/e2e/test_check_image_e2e.py's (every row of the backend table).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, subset_manifest

pytestmark = pytest.mark.e2e


def edgeasr(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tiny_espnet():
    r = edgeasr("models", "make-tiny", "espnet", timeout=900)
    assert r.returncode == 0, r.stderr
    folder = ROOT / "models" / "tiny-espnet-random"
    assert (folder / "config.yaml").is_file() and (folder / "model.pth").is_file()
    return folder


def _run(tmp_path: Path, name: str, *args: str) -> tuple[dict, list[dict]]:
    out = tmp_path / name
    r = edgeasr("run", "--out", str(out), "--backend", "espnet", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    utts = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    return summary, utts


def test_the_tiny_model_is_espnets_format_from_its_conformer_recipe(tiny_espnet):
    import yaml

    config = yaml.safe_load((tiny_espnet / "config.yaml").read_text())
    marker = json.loads((tiny_espnet / "edgeasr-model.json").read_text())
    assert config["encoder"] == "conformer" and config["decoder"] == "transformer"
    assert config["token_list"][0] == "<blank>" and config["token_list"][-1] == "<sos/eos>"
    assert "<space>" in config["token_list"] and config["token_type"] == "char"
    assert config["model_conf"]["ctc_weight"] == 0.3  # the recipe's training weight, kept
    assert marker["random_weights"] is True and "spgispeech" in marker["recipe"]


def test_a_run_reports_timings_and_size_but_no_wer(tmp_path, tiny_espnet):
    """Parameter count, model size, load time, RTF and per-utterance latency, like every backend; the WER of
    random weights is unavailable with the reason; the image's Python and library versions are recorded."""
    s, utts = _run(tmp_path, "run", "--data", str(subset_manifest(tmp_path, n=3)))
    assert s["status"] == "ok" and s["backend"] == "espnet" and s["n_utterances"] == 3
    assert s["n_params"] == json.loads((tiny_espnet / "edgeasr-model.json").read_text())["n_params"] > 100_000
    assert s["model_size_mb"] > 0 and s["load_s"] > 0 and s["rtf"] > 0
    assert s["latency_ms"]["p50"] > 0 and all(u["latency_s"] > 0 for u in utts)
    assert s["wer"] is None and "random weights" in s["unavailable"]["wer"]
    assert s["device_used"] == "cpu" and "device_used" not in s["unavailable"]  # the adapter says it (model_info)
    assert s["decode"]["ctc_weight"] == 0.3 and s["quant_method"] == "float32"
    assert s["versions"]["espnet"] == "202611" and s["versions"]["torch"].startswith("2.14")
    assert s["image"]["labels"]["org.edgeasr.backend"] == "espnet"


def test_int8_is_espnets_dynamic_quantization(tmp_path, tiny_espnet):
    s, _ = _run(tmp_path, "int8", "--quant", "int8", "--data", str(subset_manifest(tmp_path, n=1)))
    assert s["status"] == "ok" and s["backend_quant"] == "dynamic_int8"
    assert s["quant_method"] == "ESPnet dynamic quantization (qint8 Linear weights)"
    assert s["n_params"] > 100_000  # the float model's count, not the packed one's


def test_a_ctc_weight_sweep_is_one_container_and_its_report_plots_latency_against_length(tmp_path, tiny_espnet):
    """ctc_weight 0, 0.3 and 1 over an input-length ladder: one model load, one condition per weight, each
    condition_start carrying its weight; the report draws latency against length and RTF against the weight."""
    ladder = tmp_path / "lengths"
    r = edgeasr("data", "lengths", "--from", str(ROOT / "data" / "default"), "--seconds", "2,6",
                "--per-length", "1", "--out", str(ladder))
    assert r.returncode == 0, r.stderr
    exp = tmp_path / "ctc.yaml"
    exp.write_text(textwrap.dedent(f"""\
        name: ctc
        defaults: {{backend: espnet, model: tiny-espnet-random, quant: fp32, device: cpu, dataset: {ladder},
                    decode: {{beam_size: 2, threads: 2}}, warmup: 0, telemetry: {{sampler: none, baseline_s: 0}}}}
        grid: {{decode.ctc_weight: [0.0, 0.3, 1.0]}}
        """))
    out = tmp_path / "sweep"
    r = edgeasr("sweep", str(exp), "--out", str(out), timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    (group,) = (out / "groups").iterdir()
    events = [json.loads(line) for line in (group / "raw" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("load_start") == 1
    assert [e["decode"]["ctc_weight"] for e in events if e["event"] == "condition_start"] == [0.0, 0.3, 1.0]
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    assert sorted(r["summary"]["decode"]["ctc_weight"] for r in records) == [0.0, 0.3, 1.0]
    assert all(r["status"] == "ok" and r["summary"]["rtf"] > 0 for r in records)
    r = edgeasr("report", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    figures = {p.name for p in (out / "report").glob("*.png")}
    assert "latency_vs_length.png" in figures and "rtf_vs_decode.ctc_weight.png" in figures
