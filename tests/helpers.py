"""Shared test helpers: the repository root, and real audio files written with soundfile."""

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
