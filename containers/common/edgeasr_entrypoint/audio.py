"""Decode one audio file to 16 kHz mono float32, the input every ASR backend here expects.

soundfile (libsndfile) reads WAV, FLAC, OGG and MP3; anything else goes through
PyAV (FFmpeg) when the image has it. Resampling uses soxr (high quality, deterministic).
"""

from __future__ import annotations

import numpy as np

from .contract import SAMPLE_RATE as TARGET_SR  # the rate every backend is given


class AudioError(ValueError):
    """The file is missing, empty or undecodable: a per-utterance error, not a crash."""


def _read_soundfile(path: str):
    import soundfile as sf

    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def _read_av(path: str):
    import av  # optional: only images that ship PyAV (faster-whisper, whisperx) have it

    with av.open(path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_SR)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, dtype=np.float32), TARGET_SR
    return np.concatenate(chunks).astype(np.float32), TARGET_SR


def load_audio(path: str) -> np.ndarray:
    """Return mono float32 samples at 16 kHz, or raise AudioError with a readable reason."""
    import os

    if not os.path.exists(path):
        raise AudioError(f"audio file not found: {path}")
    if os.path.getsize(path) == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    try:
        samples, sr = _read_soundfile(path)
    except Exception as sf_exc:  # libsndfile cannot read it: try FFmpeg before giving up
        try:
            samples, sr = _read_av(path)
        except ImportError:
            raise AudioError(f"cannot decode {path}: {sf_exc}") from sf_exc
        except Exception as av_exc:
            raise AudioError(f"cannot decode {path}: {sf_exc}; ffmpeg: {av_exc}") from av_exc
    if samples.size == 0:
        raise AudioError(f"audio has no samples: {path}")
    if not np.isfinite(samples).all():  # a float file can hold NaN/inf; a backend would turn it into garbage text
        bad = int(samples.size - np.count_nonzero(np.isfinite(samples)))
        raise AudioError(f"audio holds {bad} NaN or infinite sample(s): {path}")
    if sr != TARGET_SR:
        import soxr

        samples = soxr.resample(samples, sr, TARGET_SR, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)
