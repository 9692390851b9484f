"""whisperx adapter for the uniform entrypoint: its batched pipeline (pyannote VAD + faster-whisper).

The VAD is whisperx's bundled pyannote segmentation model (works offline). Decoding
uses temperature 0 only (no fallback ladder) so that runs are deterministic. Word
alignment is optional and off by default: its wav2vec2 model needs a download, and
asking for it without one is a clear error, not a silent skip.
"""

from __future__ import annotations

import os

import numpy as np


class WhisperXModel:
    def __init__(self, job):
        import whisperx

        self._job = job
        d = job.decode
        self._whisperx = whisperx
        options = {"beam_size": d.beam_size, "best_of": d.beam_size, "temperatures": [d.temperature]}
        self._pipe = whisperx.load_model(
            job.model, device=job.device, compute_type=job.backend_quant, asr_options=options,
            language=d.language, vad_method="pyannote", threads=d.threads or os.cpu_count() or 1,
            download_root=os.environ.get("EDGEASR_DOWNLOAD_ROOT"), local_files_only=not job.allow_download,
        )
        self._align = None
        if d.align:
            try:
                self._align = whisperx.load_align_model(language_code=d.language or "en", device=job.device)
            except Exception as exc:
                raise RuntimeError(
                    "word alignment needs whisperx's wav2vec2 alignment model, which could not be loaded "
                    f"({type(exc).__name__}: {exc}); run with --allow-download on a machine with network, "
                    "or leave alignment off") from None

    def transcribe(self, audio: np.ndarray) -> str:
        d = self._job.decode
        result = self._pipe.transcribe(audio, batch_size=max(1, d.batch_size), language=d.language)
        segments = result["segments"]
        if self._align is not None:
            model, metadata = self._align
            segments = self._whisperx.align(segments, model, metadata, audio, self._job.device)["segments"]
        return " ".join(s["text"].strip() for s in segments).strip()

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        versions = library_versions(["whisperx", "faster-whisper", "ctranslate2", "torch", "pyannote.audio"])
        return {"n_params": None, "versions": versions}  # CTranslate2 exposes no parameter count


def load(job) -> WhisperXModel:
    return WhisperXModel(job)
