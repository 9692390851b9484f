"""A long recording streamed whole (issue 23, item 2), real speech and real weights: `edgeasr data lengths` joins
three embedded utterances with white-noise gaps into one ~8 s item with its segment map, and `edgeasr run
--stream` plays it as one recording, its speech segments the utterance boundaries. faster-whisper tiny.en
(LocalAgreement-2) as a host process (``--engine local``: no image needed; the entrypoint and the library as the
container runs them).

Asserted, whatever this host's load: one final per speech segment, each after its own segment's last chunk and
covering its span; the item's transcript is the finals joined, scored against the item's reference; the stream
block counts three utterances. Wall time is the audio's (about 8 s) plus the model's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.alone]  # timing: run with no test beside it (tests/conftest.py)

MODELS = ROOT / "models"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "COLUMNS": "200"})


def test_a_long_recording_streams_whole_with_a_final_at_each_speech_segment(tmp_path):
    pytest.importorskip("faster_whisper", reason="--engine local needs faster-whisper on the host")
    if not (MODELS / "tiny.en" / "model.bin").is_file():
        pytest.fail(f"tiny.en is not installed in {MODELS}: `edgeasr models install tiny.en`")
    data = tmp_path / "long"
    made = _cli("data", "lengths", "--from", str(ROOT / "data" / "default"), "--seconds", "8", "--per-length", "1",
                "--gap-type", "white", "--out", str(data))
    assert made.returncode == 0, made.stderr[-3000:]
    (row,) = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    speech = [s for s in row["segments"] if s["kind"] == "speech"]
    assert len(speech) == 3

    out = tmp_path / "run"
    ran = _cli("run", "--engine", "local", "--backend", "faster-whisper", "--model", "tiny.en", "--quant", "int8",
               "--device", "cpu", "--models-dir", str(MODELS), "--data", str(data), "--stream", "--sustain-s", "1",
               "--chunk-ms", "1000", "--telemetry", "none", "--warmup", "0", "--out", str(out))
    assert ran.returncode == 0, ran.stderr[-4000:]

    events = [json.loads(line) for line in (out / "raw" / "events.jsonl").read_text().splitlines()]
    finals = [e for e in events if e["event"] == "final"]
    assert [f["segment"] for f in finals] == [0, 1, 2] and all(f["id"] == row["id"] for f in finals)
    for f, seg in zip(finals, speech):
        assert f["audio_start_s"] == pytest.approx(seg["start_s"], abs=1e-4)
        assert f["audio_end_s"] == pytest.approx(seg["end_s"], abs=1e-4)
        # its last chunk is the one holding the segment's end (1 s chunks from the stream's start), and the final
        # comes after it was delivered
        start = min(e["delivered_ns"] for e in events if e["event"] == "chunk") - 1_000_000_000
        chunk_end_s = (f["last_delivered_ns"] - start) / 1e9
        assert chunk_end_s - 1.0 < seg["end_s"] <= chunk_end_s + 1e-6
        assert f["mono_ns"] >= f["last_delivered_ns"]
    assert all("segment" in p for p in events if p["event"] == "partial")

    (transcript,) = [json.loads(line) for line in (out / "raw" / "transcripts.jsonl").read_text().splitlines()]
    assert transcript["status"] == "ok" and transcript["duration_s"] == pytest.approx(row["duration_s"])
    assert transcript["hypothesis"] == " ".join(f["text"] for f in finals if f["text"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stream"]["finalization_ms"]["n"] == 3
    assert summary["wer"] is not None and summary["wer"] < 0.3  # the joined finals scored against the item's text
