"""faster-whisper adapter for the uniform entrypoint: load(job) -> model with transcribe(audio) -> str.

The model is loaded once (WhisperModel) and reused for every utterance. transcribe()
consumes faster-whisper's lazy segment generator before returning, so the timed
window covers the whole decoding, not just the creation of a generator.

It also runs on the older builds of the JetPack 5 images (faster-whisper 0.10 / 1.0, CTranslate2 3.x),
found by feature detection (edgeasr_entrypoint.compat), not by version strings: a compute type the
installed CTranslate2 cannot run on this device is refused (CTranslate2 would silently fall back to
another), `--batch-size` > 1 needs BatchedInferencePipeline (faster-whisper >= 1.1), and a loader option
the installed WhisperModel lacks is left out and recorded in `compat` when it could matter.
"""

from __future__ import annotations

import os

import numpy as np
from edgeasr_entrypoint.compat import check_compute_type, ct2_device, missing_feature, split_kwargs
from edgeasr_entrypoint.contract import IN_CONTAINER_DECODE, decode_changes


def _check_batching(faster_whisper, batch_size: int) -> None:
    """Batch size > 1 needs BatchedInferencePipeline (faster-whisper >= 1.1): refused with the installed version."""
    if batch_size > 1 and not hasattr(faster_whisper, "BatchedInferencePipeline"):
        raise missing_feature(f"--batch-size {batch_size} needs faster-whisper's BatchedInferencePipeline "
                              "(added in faster-whisper 1.1)", "faster-whisper",
                              "run with --batch-size 1 (sequential decoding)")


def long_form_kwargs(d, batched: bool) -> dict:
    """The transcribe options of the long-form decode settings that are set (None: faster-whisper's own; the host
    refused what this pipeline cannot honour, runner/backends.py): the VAD filter and its tuning, previous-text
    conditioning and timestamps for sequential decoding; the VAD tuning, timestamps and chunk for the batched
    pipeline (which always segments by VAD and never conditions on previous text)."""
    out = {}
    if d.vad is not None and not batched:
        out["vad_filter"] = d.vad
    params = {}
    if d.vad_threshold is not None:
        params["threshold"] = d.vad_threshold
    if d.vad_min_silence_ms is not None:
        params["min_silence_duration_ms"] = d.vad_min_silence_ms
    if params:
        out["vad_parameters"] = params
    if d.condition_on_previous_text is not None and not batched:
        out["condition_on_previous_text"] = d.condition_on_previous_text
    if d.timestamps is not None:
        out["without_timestamps"] = not d.timestamps
    if d.chunk_s is not None and batched:
        out["chunk_length"] = d.chunk_s
    return out


class FasterWhisperModel:
    def __init__(self, job):
        import ctranslate2
        import faster_whisper
        from faster_whisper import WhisperModel

        self._job = job
        self.compat: list = []
        d = job.decode
        check_compute_type(ctranslate2, job.device, job.backend_quant)
        _check_batching(faster_whisper, d.batch_size)  # before the load
        # Hub names download into the mounted cache only when the host allowed it.
        wanted = dict(device=job.device, compute_type=job.backend_quant, cpu_threads=d.threads, num_workers=1,
                      download_root=os.environ.get("EDGEASR_DOWNLOAD_ROOT"),
                      local_files_only=not job.allow_download)
        kwargs, missing = split_kwargs(WhisperModel.__init__, wanted)
        for name in missing:
            if name in ("device", "compute_type"):
                raise missing_feature(f"WhisperModel({name}=...)", "faster-whisper")
            if name == "local_files_only":
                self.compat.append("WhisperModel has no local_files_only: offline only through HF_HUB_OFFLINE=1")
            elif name != "num_workers" and wanted[name]:
                self.compat.append(f"WhisperModel has no {name}: {name}={wanted[name]!r} not applied")
        self._model = WhisperModel(job.model, **kwargs)
        self._faster_whisper = faster_whisper
        self._decode = d
        self._batched, self._kwargs = self._plan(d, None)

    def _plan(self, d, batched):
        """The runner (the model, or a BatchedInferencePipeline around it) and transcribe kwargs for decode
        settings `d`; `batched` is the pipeline there is now, kept when still needed. Nothing is assigned
        here, so a refused change leaves the model as it was."""
        _check_batching(self._faster_whisper, d.batch_size)
        if d.batch_size > 1:  # the pipeline wraps the loaded model: no reload
            batched = batched or self._faster_whisper.BatchedInferencePipeline(model=self._model)
        else:
            batched = None
        runner = batched if batched is not None else self._model
        kwargs = dict(beam_size=d.beam_size, temperature=d.temperature, language=d.language)
        if batched is not None:
            kwargs["batch_size"] = d.batch_size
        kwargs.update(long_form_kwargs(d, batched is not None))
        _kept, missing = split_kwargs(runner.transcribe, kwargs)
        if missing:  # each of these changes the result: refuse rather than decode differently
            raise missing_feature(f"transcribe({', '.join(missing)}=...)", "faster-whisper")
        return batched, kwargs

    def set_decode(self, decode) -> None:
        """A condition's beam size, temperature, language or batch size (contract: IN_CONTAINER_DECODE),
        on the loaded model; batch size > 1 wraps it in a BatchedInferencePipeline, 1 drops that."""
        fixed = [n for n in decode_changes(self._decode, decode) if n not in IN_CONTAINER_DECODE]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change in a loaded model")
        if decode.ctc_weight != self._decode.ctc_weight:
            raise NotImplementedError("a Whisper model has no CTC branch: ctc_weight does not apply")
        multilingual = getattr(getattr(self._model, "model", None), "is_multilingual", True)
        if decode.language not in (None, "en") and not multilingual:  # faster-whisper would decode English
            raise ValueError(f"{self._job.model} is an English-only model: language {decode.language!r}")
        try:
            self._batched, self._kwargs = self._plan(decode, self._batched)
        except RuntimeError as exc:  # missing_feature: this library version cannot do it
            raise NotImplementedError(str(exc)) from None
        self._decode = decode

    def transcribe(self, audio: np.ndarray) -> str:
        runner = self._batched if self._batched is not None else self._model
        segments, _info = runner.transcribe(audio, **self._kwargs)
        return "".join(segment.text for segment in segments).strip()

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        return {
            "n_params": None,  # CTranslate2 does not expose a parameter count; model_size_mb is reported
            "versions": library_versions(["faster-whisper", "ctranslate2", "tokenizers"]),
            "compat": list(self.compat),
            "device_used": ct2_device(self._model),  # where CTranslate2 loaded it (contract: model_info)
        }


def load(job) -> FasterWhisperModel:
    return FasterWhisperModel(job)
