"""Issue 24 on real containers: a 3-minute recording of real speech with non-speech gaps (edgeasr data lengths),
faster-whisper tiny.en with VAD off and on and pocketsphinx on it, each scored (WER, insertions, insertions over
the gaps, the long-form algorithm recorded); and generated noise-only items, whose output is counted as
hallucination (words per minute of non-speech), never as WER. Needs the faster-whisper and pocketsphinx images
built from this tree (an image from before the long-form settings refuses --vad: an unknown job key)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e


def edgeasr(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _run(out: Path, *args: str) -> dict:
    r = edgeasr("run", "--out", str(out), "--telemetry", "none", "--baseline-s", "0", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> Path:
    """One ~3-minute item: the embedded speech joined with 4-10 s of pink noise at -35 dBFS between the utterances."""
    out = tmp_path_factory.mktemp("long") / "data"
    r = edgeasr("data", "lengths", "--from", str(ROOT / "data/default"), "--seconds", "180", "--per-length", "1",
                "--gap-type", "pink", "--gap-s", "4", "--gap-max-s", "10", "--gap-dbfs", "-35", "--seed", "1",
                "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    [row] = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert row["duration_s"] > 150 and any(s["kind"] == "pink" for s in row["segments"])
    return out


@pytest.mark.parametrize("vad", [False, True])
def test_faster_whisper_on_a_long_recording_with_vad_off_and_on(tmp_path, long_recording, vad):
    s = _run(tmp_path / f"vad-{vad}", "--backend", "faster-whisper", "--model", "tiny.en", "--data",
             str(long_recording), *(["--vad"] if vad else []))
    assert s["status"] == "ok" and s["n_scored"] == 1 and s["wer"] is not None and s["wer"] < 0.5
    assert s["ins_rate"] is not None and s["gap_ins"] is not None and s["gap_ins_per_min"] is not None
    assert s["long_form"]["algorithm"] == "sequential" and s["long_form"]["vad"] == ("silero" if vad else None)


def test_pocketsphinx_on_the_same_recording(tmp_path, long_recording):
    s = _run(tmp_path / "ps", "--backend", "pocketsphinx", "--data", str(long_recording))
    assert s["status"] == "ok" and s["wer"] is not None and s["long_form"]["algorithm"] == "whole"
    assert s["gap_ins"] is not None


def test_noise_only_items_count_as_hallucination_not_as_wer(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEASR_DATA_CACHE", str(tmp_path / "cache"))
    s = _run(tmp_path / "ns", "--backend", "faster-whisper", "--model", "tiny.en", "--data", str(ROOT / "data/default"),
             "--limit", "2", "--nonspeech", "silence", "--nonspeech", "white", "--nonspeech-s", "10")
    assert (s["n_utterances"], s["n_scored"], s["n_nonspeech"]) == (4, 2, 2)
    assert s["nonspeech_wpm"] is not None and s["nonspeech_output_share"] is not None
    utts = [json.loads(line) for line in (tmp_path / "ns" / "utterances.jsonl").read_text().splitlines()]
    said = sum(len((u["hypothesis_norm"] or "").split()) for u in utts if u["reference_norm"] == "")
    assert s["nonspeech_words"] == said and all(u["wer"] is None for u in utts if u["reference_norm"] == "")
