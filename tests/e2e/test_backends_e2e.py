"""whisperx and transformers behind the same contract, on the real engine; `IMAGE=` swaps.

whisperx runs real Whisper weights on real speech. The transformers paths run tiny
random-initialised models built offline (no hub here): those tests check the
pipeline, batching equivalence, timing, memory and the contract, not WER.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from helpers import ROOT, subset_manifest

pytestmark = pytest.mark.e2e


def edgeasr(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def tiny_models():
    r = edgeasr("models", "make-tiny", timeout=900)
    assert r.returncode == 0, r.stderr
    return ROOT / "models"


def _subset(tmp_path: Path, ids: list[str] | None = None, n: int | None = None) -> Path:
    return subset_manifest(tmp_path, ids, n)


def _run(tmp_path: Path, name: str, *args: str) -> tuple[dict, list[dict]]:
    out = tmp_path / name
    r = edgeasr("run", "--out", str(out), *args)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    utts = [json.loads(line) for line in (out / "utterances.jsonl").read_text().splitlines()]
    return summary, utts


def test_whisperx_on_real_weights_and_speech(tmp_path):
    ids = ["harvard-01-01", "harvard-01-05", "harvard-02-03", "harvard-02-08", "pyannote-sample"]
    s, utts = _run(tmp_path, "wx", "--backend", "whisperx", "--model", "tiny.en", "--quant", "int8",
                   "--data", str(_subset(tmp_path, ids)), "--batch-size", "4")
    assert s["status"] == "ok" and s["backend"] == "whisperx" and s["n_utterances"] == 5
    assert s["wer"] < 0.3 and 0.005 < s["rtf"] < 2.0  # real weights, real speech, pyannote VAD offline
    assert s["versions"]["whisperx"] == "3.8.6" and s["versions"]["torch"].startswith("2.8")
    assert s["image"]["labels"]["org.edgeasr.backend"] == "whisperx" and s["peak_rss_mib"] > 200
    assert all(u["hypothesis"] for u in utts)


def test_whisperx_alignment_without_its_model_is_a_clear_error(tmp_path):
    out = tmp_path / "align"
    r = edgeasr("run", "--out", str(out), "--backend", "whisperx", "--align", "--language", "en",
                "--data", str(_subset(tmp_path, n=1)))
    assert r.returncode == 1
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "error" and "word alignment needs whisperx's wav2vec2 alignment model" in s["error"]


def test_transformers_whisper_fp32_and_int8(tmp_path, tiny_models):
    data = str(_subset(tmp_path, n=4))
    fp32, _ = _run(tmp_path, "w32", "--backend", "transformers", "--model", "tiny-whisper-random", "--quant", "fp32",
                   "--data", data)
    int8, _ = _run(tmp_path, "w8", "--backend", "transformers", "--model", "tiny-whisper-random", "--quant", "int8",
                   "--data", data)
    for s in (fp32, int8):
        assert s["status"] == "ok" and s["n_utterances"] == 4 and s["rtf"] > 0 and s["peak_rss_mib"] > 100
        assert s["n_params"] == fp32["n_params"] > 1_000_000  # counted before quantization packs the weights
        assert s["versions"]["transformers"] == "4.57.6"
    assert fp32["backend_quant"] == "float32" and int8["backend_quant"] == "dynamic_int8"
    assert int8["quant_method"] == "torch dynamic quantization (qint8 Linear weights)"
    assert fp32["peak_vram_torch_mib"] is None
    assert fp32["unavailable"]["peak_vram_torch_mib"] == "no GPU: the run was on the CPU"


def test_transformers_ctc_batched_equals_sequential(tmp_path, tiny_models):
    """Padding and attention masks handled: batch 4 gives exactly the sequential transcripts."""
    data = str(_subset(tmp_path, n=7))  # utterances of different lengths in one batch
    seq, seq_utts = _run(tmp_path, "seq", "--backend", "transformers", "--model", "tiny-ctc-random",
                         "--quant", "fp32", "--data", data)
    bat, bat_utts = _run(tmp_path, "bat", "--backend", "transformers", "--model", "tiny-ctc-random",
                         "--quant", "fp32", "--data", data, "--batch-size", "4")
    assert [u["hypothesis"] for u in bat_utts] == [u["hypothesis"] for u in seq_utts]
    assert any(u["hypothesis"] for u in seq_utts)
    assert seq["n_params"] == bat["n_params"] > 0
    # in a batch every utterance waits for the whole batch; its compute share is split by duration
    first = bat_utts[:4]
    assert len({round(u["latency_s"], 6) for u in first}) == 1
    assert sum(u["processing_s"] for u in first) == pytest.approx(first[0]["latency_s"], rel=1e-6)


def test_fp16_on_cpu_refused_for_transformers(tmp_path):
    r = edgeasr("run", "--backend", "transformers", "--model", "tiny-ctc-random", "--quant", "fp16",
                "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert "quant 'fp16' cannot run with torch on cpu; cpu supports: fp32, bf16, int8" in r.stderr


def test_a_beam_size_for_a_ctc_model_is_refused_before_any_container_starts(tmp_path, tiny_models):
    """`--beam-size 5` for the real tiny CTC model: exit 2 with one sentence naming the flag, the model, the
    backend and what a CTC model honours; refused while the run is planned, so the engine saw no container
    for this run (no create event with its folder's owner label) and no run folder was made. `--beam-size 1`,
    what a CTC model decodes with, runs (and its container's create event is seen: the filter finds one)."""
    import time

    client = docker.from_env()
    data = str(_subset(tmp_path, n=1))

    def run(name: str, beam: str) -> tuple[subprocess.CompletedProcess, Path, list]:
        out = tmp_path / name
        start = int(time.time()) - 1
        r = edgeasr("run", "--backend", "transformers", "--model", "tiny-ctc-random", "--quant", "fp32",
                    "--data", data, "--beam-size", beam, "--out", str(out))
        events = list(client.events(since=start, until=int(time.time()) + 1, decode=True,
                                    filters={"type": "container", "event": "create",
                                             "label": f"org.edgeasr.owner.folder={out.resolve()}"}))
        return r, out, events

    r, out, events = run("beam5", "5")
    assert r.returncode == 2, r.stderr[-2000:]
    assert ("edgeasr: --beam-size 5 cannot apply to model tiny-ctc-random with backend transformers: a CTC model "
            "decodes greedily (argmax), so it honours only decode.batch_size (it decodes with beam_size 1, "
            "temperature 0, language null, ctc_weight 1)") in r.stderr
    assert "Traceback" not in r.stderr and not out.exists() and events == []
    r, out, events = run("beam1", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["status"] == "ok" and len(events) == 1


def test_make_run_with_another_image(tmp_path):
    """`make run IMAGE=...`: any image that honours the contract."""
    client = docker.from_env()
    client.images.get("edgeasr/faster-whisper:latest").tag("edgeasr/my-own-image", "test")
    try:
        out = tmp_path / "run"
        r = subprocess.run(["make", "-s", "run", "IMAGE=edgeasr/my-own-image:test", f"OUT={out}",
                            f"DATA={_subset(tmp_path, n=3)}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        s = json.loads((out / "summary.json").read_text())
        assert s["image"]["ref"] == "edgeasr/my-own-image:test" and "edgeasr/my-own-image:test" in s["image"]["tags"]
        assert s["status"] == "ok" and s["n_utterances"] == 3
    finally:
        client.images.remove("edgeasr/my-own-image:test")
