"""pocketsphinx adapter: the CMU Sphinx decoder with the en-us model its PyPI wheel ships.

A classic, non-neural baseline: a continuous-density HMM acoustic model (en-us, 16 kHz),
the en-us trigram language model and the CMU pronouncing dictionary, all inside the wheel,
so nothing is mounted and the job's model field must name the bundled model ("en-us").
The decoder is CPU-only and single-threaded; one Decoder is built at load and reused,
each utterance is decoded as one full utterance (start_utt / process_raw / end_utt).

Stream mode (``open_stream``, policy native): the decoder's own live decoding. Each chunk goes to
``process_raw(full_utt=False)`` as it arrives and ``hyp()`` is the partial text; the utterance's end is
``end_utt``. A stream holds an utterance in progress, so each open stream has its own Decoder (the same files),
kept for reuse by the next condition's streams. Live decoding normalizes the cepstra with a running mean (live
CMN) that a running recognizer carries over from the speech it heard before; a new stream decoder starts from the
loaded decoder's current mean (after the warm-up), not from the model's cold default, with which the first
utterances of every stream would be decoded with a mean far from any speech (measured on the embedded data: WER
0.42 against 0.29 offline on eight Harvard sentences; 0.29 with the carried mean).
"""

from __future__ import annotations

import os

import numpy as np

BUNDLED = ("en-us",)
SAMPLE_RATE = 16000


class PocketsphinxModel:
    def __init__(self, job):
        import pocketsphinx

        if os.path.basename(str(job.model).rstrip("/")) not in BUNDLED:
            raise ValueError(f"pocketsphinx runs its bundled model ({', '.join(BUNDLED)}), not {job.model!r}")
        if job.device != "cpu":
            raise ValueError("pocketsphinx has no GPU path; run it with --device cpu")
        if job.backend_quant != "float32":
            raise ValueError(f"pocketsphinx computes in float32 only, not {job.backend_quant!r}")
        self._ps = pocketsphinx
        folder = os.path.join(pocketsphinx.get_model_path(), "en-us")
        self.files = {"hmm": os.path.join(folder, "en-us"), "lm": os.path.join(folder, "en-us.lm.bin"),
                      "dict": os.path.join(folder, "cmudict-en-us.dict")}
        # loglevel FATAL: the C library's INFO lines would flood the container log at every utterance.
        self._decoder = self._new_decoder()
        self._free_decoders: list = []  # stream decoders a closed stream gave back

    def _new_decoder(self):
        return self._ps.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **self.files)

    def open_stream(self) -> "PocketsphinxStream":
        """One live stream's decoder (contract 4's incremental interface)."""
        if self._free_decoders:
            decoder = self._free_decoders.pop()  # it carries its own running mean from its last stream
        else:
            decoder = self._new_decoder()
            decoder.set_cmn(self._decoder.get_cmn())  # the running cepstral mean, as a live recognizer has it
        return PocketsphinxStream(decoder, self._free_decoders)

    def transcribe(self, audio: np.ndarray) -> str:
        pcm = (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2")
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm.tobytes(), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions, size_on_disk_mb

        size = sum(size_on_disk_mb(path) or 0.0 for path in self.files.values())
        return {
            "n_params": None,  # a GMM/HMM with a language model: no neural parameter count to report
            "versions": library_versions(["pocketsphinx", "numpy"]),
            "quant_method": "float32 (pocketsphinx's continuous-density acoustic model)",
            "model_size_mb": size,  # the bundled files: the job names no folder
            "device_used": "cpu",  # no GPU path (contract: model_info)
        }


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class PocketsphinxStream:
    """An utterance decoded as its audio arrives: ``accept(chunk)`` returns the partial hypothesis when it
    changed (None when not), ``finish()`` ends the utterance and returns its final text."""

    def __init__(self, decoder, free: list):
        self._d = decoder
        self._free = free
        self._open = False
        self._last = None  # the partial last returned

    def _text(self) -> str:
        hyp = self._d.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""

    def accept(self, chunk: np.ndarray):
        if not self._open:
            self._d.start_utt()
            self._open = True
        self._d.process_raw(_pcm16(chunk), full_utt=False)
        text = self._text()
        if text == self._last:
            return None
        self._last = text
        return text

    def finish(self) -> str:
        if not self._open:  # an utterance with no audio fed: nothing was heard
            return ""
        self._d.end_utt()
        self._open, self._last = False, None
        return self._text()

    def close(self) -> None:
        """Give the decoder back (an utterance left open is ended first)."""
        if self._open:
            self._d.end_utt()
            self._open = False
        if self._d is not None:
            self._free.append(self._d)
            self._d = None


def load(job) -> PocketsphinxModel:
    return PocketsphinxModel(job)
