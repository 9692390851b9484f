"""Shared test helpers: the repository root, real audio files written with soundfile, shared experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def write_tone(path: Path, seconds: float = 1.0, sr: int = 16000, channels: int = 1, fmt: str | None = None) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.1 * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, format=fmt)
    return path


def subset_manifest(folder: Path, ids: list[str] | None = None, n: int | None = None) -> Path:
    """A manifest of some embedded utterances, with their audio copied beside it: audio must sit under the
    manifest's own folder (runner/paths.py), so a manifest elsewhere pointing into data/default would be refused."""
    import json
    import shutil

    rows = [json.loads(line) for line in (ROOT / "data/default/manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if ids is None or r["id"] in ids][:n]
    folder = folder / "subset"
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(ROOT / "data/default" / r["audio"], folder / Path(r["audio"]).name)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(dict(r, audio=Path(r["audio"]).name)) + "\n" for r in rows))
    return path


def decode_axes_experiment(dataset: str) -> str:
    """Issue 10's sweep: batch size and beam size vary inside one loaded model, threads make two containers."""
    return f"""
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {dataset}
  limit: 4
  decode: {{language: en}}
  warmup: 1
  telemetry: {{sampler: none}}
grid:
  decode.batch_size: [1, 2]
  decode.beam_size: [1, 5]
  decode.threads: [1, 2]
"""
