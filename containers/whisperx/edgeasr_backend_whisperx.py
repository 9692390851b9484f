"""whisperx adapter for the uniform entrypoint: its batched pipeline (pyannote VAD + faster-whisper).

The VAD is whisperx's pyannote segmentation model. Decoding uses temperature 0 only
(no fallback ladder) so that runs are deterministic. Word alignment is optional and
off by default: its wav2vec2 model needs a download, and asking for it without one
is a clear error, not a silent skip.

It also runs on the whisperx 3.1-era build of the JetPack 5 image (dustynv/whisperx:r35.3.1, January
2024), found by feature detection (edgeasr_entrypoint.compat), not by version strings:
- load_model options it lacks (`vad_method`: that whisperx has only pyannote, the one asked for anyway;
  `local_files_only`, `threads`, `download_root`) are left out, and recorded in `compat` when they matter;
- its VAD model is not bundled but downloaded at first use (`whisperx.vad.load_vad_model`, which takes
  `model_fp`): the copy the image holds ($EDGEASR_WHISPERX_VAD, which Dockerfile.jetson-r35 fills) is passed
  through `vad_options`, and without one and without a network the load stops with a clear error instead of
  whisperx's urllib error;
- compute types are checked against the installed CTranslate2, as in the faster-whisper adapter.

A sweep condition may change beam size, temperature, language and batch size in the loaded pipeline
(`set_decode`): beam size and temperature replace those fields of the pipeline's TranscriptionOptions
(its `options`: a NamedTuple in faster-whisper < 1.1, a dataclass after), batch size and language are
transcribe arguments; a language change also resets the pipeline's tokenizer, as loading it with that
language would.
"""

from __future__ import annotations

import dataclasses
import importlib
import os

import numpy as np
from edgeasr_entrypoint.compat import check_compute_type, ct2_device, missing_feature, split_kwargs
from edgeasr_entrypoint.contract import IN_CONTAINER_DECODE, decode_changes

VAD_FILE_ENV = "EDGEASR_WHISPERX_VAD"


def vad_downloaded_at_first_use() -> bool:
    """Whether this whisperx fetches its VAD model over the network at first use (whisperx <= 3.1: a
    `whisperx.vad.load_vad_model` taking `model_fp`, and no bundled `whisperx/assets/pytorch_model.bin`)."""
    try:
        vad = importlib.import_module("whisperx.vad")
    except ImportError:
        return False  # whisperx >= 3.4: whisperx.vads, model bundled
    loader = getattr(vad, "load_vad_model", None)
    if loader is None or "model_fp" not in split_kwargs(loader, {"model_fp": None})[0]:
        return False
    bundled = os.path.join(os.path.dirname(os.path.abspath(vad.__file__)), "assets", "pytorch_model.bin")
    return not os.path.isfile(bundled)


def real_load_model(whisperx):
    """whisperx.load_model, or the function behind it where the package forwards *args, **kwargs lazily
    (whisperx >= 3.4), so that its signature can be read."""
    try:
        return importlib.import_module("whisperx.asr").load_model
    except (ImportError, AttributeError):
        return whisperx.load_model


class WhisperXModel:
    def __init__(self, job):
        import ctranslate2
        import whisperx

        check_compute_type(ctranslate2, job.device, job.backend_quant)
        self._job = job
        self.compat: list = []
        d = job.decode
        self._whisperx = whisperx
        options = {"beam_size": d.beam_size, "best_of": d.beam_size, "temperatures": [d.temperature]}
        wanted = dict(device=job.device, compute_type=job.backend_quant, asr_options=options, language=d.language,
                      vad_method="pyannote", threads=d.threads or os.cpu_count() or 1,
                      download_root=os.environ.get("EDGEASR_DOWNLOAD_ROOT"), local_files_only=not job.allow_download)
        vad_options = self._old_vad_options(job) if vad_downloaded_at_first_use() else {}
        if d.vad_threshold is not None:  # issue 24: the VAD's onset threshold (its axis here)
            vad_options["vad_onset"] = d.vad_threshold
        if d.chunk_s is not None:  # the longest merged VAD segment (whisperx merges at load and at transcribe)
            vad_options["chunk_size"] = d.chunk_s
        if vad_options or vad_downloaded_at_first_use():
            wanted["vad_options"] = vad_options
        kwargs, missing = split_kwargs(real_load_model(whisperx), wanted)
        for name in missing:
            if name in ("device", "compute_type", "asr_options", "language") or (
                    name == "vad_options" and (d.vad_threshold is not None or d.chunk_s is not None)):
                raise missing_feature(f"whisperx.load_model({name}=...)", "whisperx")
            if name == "local_files_only":
                self.compat.append("load_model has no local_files_only: offline only through HF_HUB_OFFLINE=1")
            elif name == "threads":
                self.compat.append(f"load_model has no threads: CTranslate2's default CPU threads, not {wanted[name]}")
            elif name == "download_root" and wanted[name]:
                self.compat.append(f"load_model has no download_root: {wanted[name]!r} not applied")
            # vad_method: a whisperx without it has only the pyannote VAD, which is the one asked for
        self._pipe = whisperx.load_model(job.model, **kwargs)
        self._decode = d
        self._kwargs = {"batch_size": max(1, d.batch_size), "language": d.language}
        if d.chunk_s is not None:
            self._kwargs["chunk_size"] = d.chunk_s
        _kept, missing = split_kwargs(self._pipe.transcribe, self._kwargs)
        if missing:
            raise missing_feature(f"the pipeline's transcribe({', '.join(missing)}=...)", "whisperx")
        self._align = None
        if d.align:
            try:
                self._align = whisperx.load_align_model(language_code=d.language or "en", device=job.device)
            except Exception as exc:
                raise RuntimeError(
                    "word alignment needs whisperx's wav2vec2 alignment model, which could not be loaded "
                    f"({type(exc).__name__}: {exc}); run with --allow-download on a machine with network, "
                    "or leave alignment off") from None

    def _old_vad_options(self, job) -> dict:
        """vad_options for a whisperx that downloads its VAD model: the image's copy, when there is one."""
        path = os.environ.get(VAD_FILE_ENV, "")
        if path and os.path.isfile(path):
            self.compat.append(f"whisperx downloads its VAD model at first use; the image's copy {path} is used")
            return {"model_fp": path}
        if job.allow_download:
            self.compat.append("whisperx downloads its VAD model at first use (allowed for this run)")
            return {}
        raise missing_feature(
            "the VAD model file (whisperx-vad-segmentation.bin) in the image, since this whisperx downloads it at "
            f"first use and the container has no network (${VAD_FILE_ENV}={path or 'unset'})", "whisperx",
            "rebuild the image with containers/whisperx/Dockerfile.jetson-r35 on a machine with network (it "
            "stores the file), or run with --allow-download")

    def set_decode(self, decode) -> None:
        """A condition's beam size, temperature, language or batch size (contract: IN_CONTAINER_DECODE), in the
        loaded pipeline. Everything is checked before anything changes, so a refusal leaves it as it was."""
        changes = decode_changes(self._decode, decode)
        fixed = [n for n in changes if n not in IN_CONTAINER_DECODE]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change in a loaded model")
        if "ctc_weight" in changes:
            raise NotImplementedError("a Whisper model has no CTC branch: ctc_weight does not apply")
        pipe = self._pipe
        options = None
        if "beam_size" in changes or "temperature" in changes:
            options = _replace_options(getattr(pipe, "options", None), beam_size=decode.beam_size,
                                       best_of=decode.beam_size, temperatures=[decode.temperature])
        if "language" in changes:
            if self._align is not None:
                raise NotImplementedError("word alignment loaded its wav2vec2 model for language "
                                          f"{self._decode.language or 'en'!r}; the language cannot change with it")
            if str(self._job.model).rstrip("/").endswith(".en") and decode.language not in (None, "en"):
                raise ValueError(f"{self._job.model} is an English-only model: language {decode.language!r}")
        if options is not None:
            pipe.options = options
        if "language" in changes:
            # as load_model(language=...) leaves it: a preset language and a tokenizer made for it on the next
            # call (whisperx detects the language per file when none is preset)
            if hasattr(pipe, "preset_language"):
                pipe.preset_language = decode.language
            if hasattr(pipe, "tokenizer"):
                pipe.tokenizer = None
        self._kwargs = dict(self._kwargs, batch_size=max(1, decode.batch_size), language=decode.language)
        self._decode = decode

    def transcribe(self, audio: np.ndarray) -> str:
        result = self._pipe.transcribe(audio, **self._kwargs)
        segments = result["segments"]
        if self._align is not None:
            model, metadata = self._align
            segments = self._whisperx.align(segments, model, metadata, audio, self._job.device)["segments"]
        return " ".join(s["text"].strip() for s in segments).strip()

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        versions = library_versions(["whisperx", "faster-whisper", "ctranslate2", "torch", "pyannote.audio"])
        # CTranslate2 exposes no parameter count
        return {"n_params": None, "versions": versions, "compat": list(self.compat),
                "device_used": ct2_device(getattr(self._pipe, "model", None))}  # contract: model_info


def _replace_options(options, **fields):
    """A copy of the pipeline's TranscriptionOptions with `fields` replaced (NamedTuple or dataclass)."""
    if options is None:
        raise NotImplementedError("this whisperx pipeline keeps no TranscriptionOptions (`options`): beam size "
                                  "and temperature are fixed when it loads")
    missing = [f for f in fields if not hasattr(options, f)]
    if missing:
        raise NotImplementedError(f"this whisperx pipeline's options have no {', '.join(missing)}")
    if hasattr(options, "_replace"):  # faster-whisper < 1.1: a NamedTuple
        return options._replace(**fields)
    if dataclasses.is_dataclass(options):
        return dataclasses.replace(options, **fields)
    raise NotImplementedError(f"cannot replace fields of the pipeline's {type(options).__name__}")


def load(job) -> WhisperXModel:
    return WhisperXModel(job)
