"""faster-whisper adapter for the uniform entrypoint: load(job) -> model with transcribe(audio) -> str.

The model is loaded once (WhisperModel) and reused for every utterance. transcribe()
consumes faster-whisper's lazy segment generator before returning, so the timed
window covers the whole decoding, not just the creation of a generator.
"""

from __future__ import annotations

import os

import numpy as np


class FasterWhisperModel:
    def __init__(self, job):
        from faster_whisper import WhisperModel

        self._job = job
        d = job.decode
        # Hub names download into the mounted cache only when the host allowed it.
        self._model = WhisperModel(
            job.model,
            device=job.device,
            compute_type=job.backend_quant,
            cpu_threads=d.threads,
            num_workers=1,
            download_root=os.environ.get("EDGEASR_DOWNLOAD_ROOT"),
            local_files_only=not job.allow_download,
        )
        self._batched = None
        if d.batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(model=self._model)

    def transcribe(self, audio: np.ndarray) -> str:
        d = self._job.decode
        kwargs = dict(beam_size=d.beam_size, temperature=d.temperature, language=d.language)
        if self._batched is not None:
            segments, _info = self._batched.transcribe(audio, batch_size=d.batch_size, **kwargs)
        else:
            segments, _info = self._model.transcribe(audio, **kwargs)
        return "".join(segment.text for segment in segments).strip()

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        return {
            "n_params": None,  # CTranslate2 does not expose a parameter count; model_size_mb is reported
            "versions": library_versions(["faster-whisper", "ctranslate2", "tokenizers"]),
        }


def load(job) -> FasterWhisperModel:
    return FasterWhisperModel(job)
