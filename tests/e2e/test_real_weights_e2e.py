"""Backends on real Whisper weights converted from the installed CTranslate2 models, and pocketsphinx.

The transformers and onnxruntime backends run tiny.en converted by `edgeasr models convert`
(runner/models/ct2_convert.py); the figures are compared with faster-whisper on the same data, greedy
(beam 1, temperature 0). Runs write to tmp_path; the Hugging Face and ONNX folders are cached in
the models folder (the ONNX export once, by content hash), so reruns are quicker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from helpers import ROOT, subset_manifest

from runner.backends import BACKENDS
from runner.scoring.metrics import error_counts, normalize
from runner.models.resolve import default_models_dir, ensure_converted

pytestmark = pytest.mark.e2e

HARVARD = [f"harvard-0{a}-{b:02d}" for a in (1, 2) for b in range(1, 11)]


def edgeasr(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _subset(tmp_path: Path, ids: list[str]) -> Path:
    return subset_manifest(tmp_path, ids)


def _run(tmp_path: Path, name: str, *args: str) -> tuple[dict, dict[str, dict]]:
    out = tmp_path / name
    r = edgeasr("run", "--out", str(out), "--telemetry", "none", "--baseline-s", "0", "--beam-size", "1", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    utts = {u["id"]: u for u in map(json.loads, (out / "utterances.jsonl").read_text().splitlines())}
    return summary, utts


def _wer(utts: dict[str, dict], ids: list[str]) -> float:
    rows = [utts[i] for i in ids]
    return error_counts([normalize(u["reference"]) for u in rows], [normalize(u["hypothesis"]) for u in rows]).wer


def _differences(a: dict[str, dict], b: dict[str, dict]) -> list[str]:
    return [f"{k}: {a[k]['hypothesis']!r} vs {b[k]['hypothesis']!r}" for k in a if a[k]["hypothesis"] != b[k]["hypothesis"]]


@pytest.fixture(scope="module")
def transformers_fp32(tmp_path_factory) -> tuple[dict, dict[str, dict]]:
    """transformers tiny.en fp32 greedy on the whole embedded set, run once for the module: the reference of the
    batched and ONNX Runtime tests too (batch 1 decodes each utterance alone, so its rows for a subset are what a
    run of that subset gives; two runs fewer in `make test`, issue 26)."""
    return _run(tmp_path_factory.mktemp("transformers-fp32"), "hf", "--backend", "transformers", "--model", "tiny.en",
                "--quant", "fp32")


def test_converted_tiny_en_decodes_exactly_like_ctranslate2_on_the_same_features():
    """Every weight lands where transformers expects it (no missing or unexpected key) and, fed the same
    log-mel features, the converted model's greedy transcripts equal CTranslate2's own, word for word."""
    models = default_models_dir()
    hf = ensure_converted("tiny.en", models, log=lambda *_: None)
    files = [f"/data/{i}.flac" for i in ("harvard-01-01", "harvard-01-02", "harvard-01-09", "harvard-02-02")]
    out = docker.from_env().containers.run(
        BACKENDS["transformers"].image, entrypoint=["/opt/venv/bin/python", "/work/parity.py", "/models/hf",
                                                    "/models/ct2", *files],
        volumes={str(hf): {"bind": "/models/hf", "mode": "ro"},
                 str(models / "tiny.en"): {"bind": "/models/ct2", "mode": "ro"},
                 str(ROOT / "data/default"): {"bind": "/data", "mode": "ro"},
                 str(Path(__file__).with_name("ct2_hf_parity.py")): {"bind": "/work/parity.py", "mode": "ro"}},
        network_disabled=True, remove=True, stderr=False, environment={"HF_HUB_OFFLINE": "1", "HOME": "/tmp"})
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report["loading"] == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert report["n_params"] == 37_760_256  # Whisper tiny.en, the tied output projection counted once
    differing = [r for r in report["rows"] if r["hf"] != r["ct2"]]
    assert not differing, differing
    assert all(r["hf"] for r in report["rows"])


def test_transformers_tiny_en_fp32_greedy_against_faster_whisper(transformers_fp32, tmp_path):
    """The whole embedded set, both backends fp32 greedy, both decoding with timestamp tokens (faster-whisper's
    default; the transformers adapter asks for them too). The converted weights are exact (test above); each
    backend's own log-mel front end differs, so transcripts may differ on a few utterances: the assertion
    message names them. WER agrees within 1 point, on the 20 Harvard sentences and over the whole set."""
    hf, hf_utts = transformers_fp32
    fw, fw_utts = _run(tmp_path, "fw", "--backend", "faster-whisper", "--model", "tiny.en", "--quant", "fp32")
    assert hf["status"] == fw["status"] == "ok" and hf["n_utterances"] == 21
    assert hf["model_source"] == "converted" and hf["n_params"] == 37_760_256
    diffs = _differences(hf_utts, fw_utts)
    print(f"transformers WER {hf['wer']:.4f}, faster-whisper WER {fw['wer']:.4f}; differing utterances:",
          *diffs, sep="\n  ")
    assert len(diffs) <= 5, diffs
    assert abs(_wer(hf_utts, HARVARD) - _wer(fw_utts, HARVARD)) <= 0.01, diffs
    assert abs(hf["wer"] - fw["wer"]) <= 0.01, diffs
    assert hf["wer"] < 0.2


@pytest.mark.parametrize("quant", ["int8", "bf16"])
def test_transformers_tiny_en_int8_and_bf16_on_cpu(tmp_path, quant):
    ids = HARVARD[:6]
    s, utts = _run(tmp_path, quant, "--backend", "transformers", "--model", "tiny.en", "--quant", quant,
                   "--data", str(_subset(tmp_path, ids)))
    assert s["status"] == "ok" and s["n_utterances"] == 6 and s["rtf"] > 0
    assert s["wer"] < 0.25, {k: u["hypothesis"] for k, u in utts.items()}  # real weights: real transcripts
    assert s["n_params"] == 37_760_256


def test_transformers_tiny_en_batched_equals_sequential(transformers_fp32, tmp_path):
    """Whisper pads every utterance to one 30-s window, so a batch of 4 decodes like 4 single calls; only
    float summation order differs, which may flip a rare near-tie token (at most one utterance here). The
    sequential side is the module's fp32 run, on the same 8 utterances."""
    ids = HARVARD[:8]
    seq, all_utts = transformers_fp32
    seq_utts = {i: all_utts[i] for i in ids}
    bat, bat_utts = _run(tmp_path, "bat", "--backend", "transformers", "--model", "tiny.en", "--quant", "fp32",
                         "--data", str(_subset(tmp_path, ids)), "--batch-size", "4")
    assert seq["status"] == bat["status"] == "ok" and set(bat_utts) == set(ids)
    assert len(_differences(seq_utts, bat_utts)) <= 1, _differences(seq_utts, bat_utts)
    assert abs(_wer(seq_utts, ids) - _wer(bat_utts, ids)) <= 0.02


def test_onnxruntime_tiny_en_fp32_and_int8_against_transformers(transformers_fp32, tmp_path):
    """ONNX Runtime on the exported tiny.en (cached by content hash): fp32 equals transformers fp32 within
    2 WER points on the same utterances, and dynamic int8 stays a working model."""
    ids = HARVARD[:8]
    data = str(_subset(tmp_path, ids))
    _, all_ref = transformers_fp32
    ref_utts = {i: all_ref[i] for i in ids}
    f32, f32_utts = _run(tmp_path, "ort32", "--backend", "onnxruntime", "--model", "tiny.en", "--quant", "fp32",
                         "--data", data)
    i8, _ = _run(tmp_path, "ort8", "--backend", "onnxruntime", "--model", "tiny.en", "--quant", "int8",
                 "--data", data)
    assert f32["status"] == i8["status"] == "ok" and f32["model_source"] == "exported" and set(f32_utts) == set(ids)
    assert abs(_wer(f32_utts, ids) - _wer(ref_utts, ids)) <= 0.02, _differences(f32_utts, ref_utts)
    assert i8["wer"] < 0.25 and i8["quant_method"].startswith("onnxruntime dynamic quantization")
    assert i8["model_size_mb"] < f32["model_size_mb"] / 2  # int8 weights


def test_pocketsphinx_on_the_embedded_set(tmp_path):
    """The CMU decoder with its bundled en-us model: a real, non-neural baseline, reported as is."""
    s, utts = _run(tmp_path, "ps", "--backend", "pocketsphinx")
    assert s["status"] == "ok" and s["model"] == "en-us" and s["quant"] == "fp32" and s["n_utterances"] == 21
    assert 0.1 < s["wer"] < 0.8  # far worse than Whisper, far better than noise
    assert s["n_params"] is None and "n_params" in s["unavailable"]
    assert s["versions"]["pocketsphinx"] == "5.1.1" and s["model_size_mb"] > 10
