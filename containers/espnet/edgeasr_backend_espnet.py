"""espnet adapter: an ESPnet2 ASR model (encoder, CTC and attention decoder) decoded by ESPnet's own joint
CTC/attention beam search (espnet2.bin.asr_inference.Speech2Text).

The model folder is in ESPnet's format: the training config (``config.yaml``, with its token list) and the
weights (``model.pth``); or an unpacked ESPnet model-zoo archive, whose ``meta.yaml`` names both
(``yaml_files.asr_train_config``, ``files.asr_model_file``, relative to the folder). Relative paths inside the
config (a BPE model, normalisation statistics) are read from the folder, as ESPnet reads them from its recipe
directory.

Decoding: beam size and the CTC weight (``decode.ctc_weight``: each hypothesis scores ``(1 - w)`` times the
attention decoder's log-probability plus ``w`` times the CTC prefix score; 0 is attention only, 1 CTC only) may
change per condition (``set_decode``): a new beam search is built over the loaded model, which is not reloaded.
There is no sampling (temperature 0 only) and no language prompt (language null only). Precision: float32,
bfloat16, or ESPnet's own dynamic int8 quantization of the Linear layers (``quantize_asr_model``, qint8).
"""

from __future__ import annotations

import os

import numpy as np
from edgeasr_entrypoint.contract import IN_CONTAINER_DECODE, decode_changes

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.pth"
MARKER_FILE = "edgeasr-model.json"  # what `edgeasr models make-tiny` writes beside a model it made

RANDOM_WEIGHTS_MAXLENRATIO = 0.1
"""The output cap of a model with random weights. Such a model (edgeasr's tiny-espnet-random: its marker says
``random_weights``) never emits end-of-sentence, so ESPnet's beam search runs to its longest output, one token
per encoder frame (maxlenratio 0): 286 s for a 30 s clip. Capped at 0.1 tokens per encoder frame (2.5 per second
of audio after the Conformer's 4x subsampling), its cost still grows with the input as a real model's does, and a
length ladder finishes in minutes. A real model decodes uncapped (maxlenratio 0) and ends at its own
end-of-sentence."""


def output_cap(folder: str) -> float:
    """ESPnet's maxlenratio for the model in ``folder``: RANDOM_WEIGHTS_MAXLENRATIO when its marker says its weights
    are random, else 0 (no cap: the encoder's frame count)."""
    import json

    try:
        with open(os.path.join(folder, MARKER_FILE), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return 0.0
    return RANDOM_WEIGHTS_MAXLENRATIO if isinstance(marker, dict) and marker.get("random_weights") is True else 0.0


def model_files(folder: str):
    """(config, weights) of an ESPnet model folder: meta.yaml's when it has one (a model-zoo archive), else
    config.yaml and model.pth. FileNotFoundError naming what is missing."""
    meta = os.path.join(folder, "meta.yaml")
    if os.path.isfile(meta):
        import yaml

        with open(meta, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
        config = (data.get("yaml_files") or {}).get("asr_train_config")
        weights = (data.get("files") or {}).get("asr_model_file")
        if not config or not weights:
            raise FileNotFoundError(f"{meta} names no asr_train_config and asr_model_file: not an ESPnet ASR model")
        config, weights = os.path.join(folder, config), os.path.join(folder, weights)
    else:
        config, weights = os.path.join(folder, CONFIG_FILE), os.path.join(folder, MODEL_FILE)
    missing = [p for p in (config, weights) if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"not an ESPnet model folder: {', '.join(missing)} missing (expected {CONFIG_FILE} "
                                f"and {MODEL_FILE}, or a model-zoo meta.yaml)")
    return config, weights


class EspnetModel:
    def __init__(self, job):
        import torch
        from espnet2.bin.asr_inference import Speech2Text

        self._torch = torch
        self._job = job
        d = job.decode
        _check_fixed(d)
        if d.threads:
            torch.set_num_threads(d.threads)
        torch.manual_seed(0)
        q = job.backend_quant
        if q not in ("float32", "bfloat16", "float16", "dynamic_int8"):
            raise ValueError(f"unknown backend_quant {q!r} for espnet")
        self.device = "cuda" if job.device == "cuda" else "cpu"
        self._dtype = "float32" if q == "dynamic_int8" else q
        self._default_ctc_weight = _signature_default(Speech2Text, "ctc_weight")
        config, weights = model_files(str(job.model))
        self.maxlenratio = output_cap(str(job.model))
        here = os.getcwd()
        os.chdir(str(job.model))  # relative paths in an ESPnet config are the recipe folder's
        try:
            self.s2t = Speech2Text(asr_train_config=config, asr_model_file=weights, device=self.device,
                                   dtype=self._dtype, beam_size=d.beam_size, ctc_weight=self._ctc_weight(d),
                                   maxlenratio=self.maxlenratio, minlenratio=0.0, nbest=1,
                                   quantize_asr_model=q == "dynamic_int8", quantize_modules=["Linear"],
                                   quantize_dtype="qint8")
        finally:
            os.chdir(here)
        if self.s2t.beam_search is None:
            raise ValueError(f"{job.model} is not a CTC/attention model (a transducer or another decoder): the "
                             f"espnet backend decodes with ESPnet's joint CTC/attention beam search only")
        self.n_params = self._count_params(self.s2t.asr_model)
        self._decode = d

    def _count_params(self, model) -> int:
        """The model's parameters, the same number quantized or not: a dynamically quantized Linear packs its
        weight and bias out of parameters(), so they are counted from the packed module."""
        dynamic = self._torch.ao.nn.quantized.dynamic.Linear
        n = sum(p.numel() for p in model.parameters())
        for m in model.modules():
            if isinstance(m, dynamic):
                bias = m.bias()
                n += m.weight().numel() + (bias.numel() if bias is not None else 0)
        return int(n)

    def _ctc_weight(self, decode) -> float:
        """The job's CTC weight; when it names none (a host that leaves it out), Speech2Text's own default."""
        return float(self._default_ctc_weight if decode.ctc_weight is None else decode.ctc_weight)

    # -- the contract ---------------------------------------------------------------------------------

    def transcribe(self, audio: np.ndarray) -> str:
        speech = self._torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
        with self._torch.inference_mode():
            results = self.s2t(speech)
        if not results:  # the beam search ended without a hypothesis
            return ""
        text = results[0][0]
        return text if isinstance(text, str) else ""

    def set_decode(self, decode) -> None:
        """A condition's decode settings (contract: IN_CONTAINER_DECODE): a beam size or CTC weight builds a new
        beam search over the loaded model, as Speech2Text builds it; the batch size is the entrypoint's (decoded
        one utterance at a time). Sampling and a language prompt do not exist here: refused."""
        changes = decode_changes(self._decode, decode)
        fixed = [n for n in changes if n not in IN_CONTAINER_DECODE]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change in a loaded model")
        _check_fixed(decode)
        if "beam_size" in changes or "ctc_weight" in changes:
            self.s2t.beam_search = self._beam_search(decode.beam_size, self._ctc_weight(decode))
        self._decode = decode

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        versions = library_versions(["espnet", "torch", "torchaudio"])
        method = {"dynamic_int8": "ESPnet dynamic quantization (qint8 Linear weights)"}.get(
            self._job.backend_quant, self._job.backend_quant)
        out = {"n_params": self.n_params, "versions": versions, "quant_method": method,
               "model_kind": "ctc-attention", "device_used": self.device_used()}
        if self.maxlenratio:  # recorded in status.json: the timings are those of a capped beam search
            out["compat"] = {"maxlenratio": "{:g}: random weights never emit end-of-sentence, so the output is "
                                            "capped".format(self.maxlenratio)}
        return out

    def device_used(self):
        """The device the model's weights are on (contract: model_info), not the one asked for."""
        try:
            return next(self.s2t.asr_model.parameters()).device.type
        except (StopIteration, AttributeError):
            return None

    def peak_vram_mb(self):
        """torch's allocator high-water mark on CUDA; None on CPU (no VRAM)."""
        if self.device != "cuda":
            return None
        return self._torch.cuda.max_memory_allocated() / (1024 * 1024)

    # -- the beam search ------------------------------------------------------------------------------

    def _beam_search(self, beam_size: int, ctc_weight: float):
        """ESPnet's joint CTC/attention beam search over the loaded model, with Speech2Text's scorers and weights
        (espnet2/bin/asr_inference.py, its attention/CTC branch; no language model, no n-gram)."""
        from espnet2.legacy.nets.batch_beam_search import BatchBeamSearch
        from espnet2.legacy.nets.beam_search import BeamSearch
        from espnet2.legacy.nets.scorer_interface import BatchScorerInterface
        from espnet2.legacy.nets.scorers.ctc import CTCPrefixScorer
        from espnet2.legacy.nets.scorers.length_bonus import LengthBonus

        model = self.s2t.asr_model
        token_list = model.token_list
        scorers = {"decoder": model.decoder, "ctc": CTCPrefixScorer(ctc=model.ctc, eos=model.eos),
                   "length_bonus": LengthBonus(len(token_list))}
        weights = {"decoder": 1.0 - ctc_weight, "ctc": ctc_weight, "length_bonus": 0.0}
        search = BeamSearch(beam_size=beam_size, weights=weights, scorers=scorers, sos=model.sos, eos=model.eos,
                            vocab_size=len(token_list), token_list=token_list,
                            pre_beam_score_key=None if ctc_weight == 1.0 else "full")
        if all(isinstance(v, BatchScorerInterface) for v in search.full_scorers.values()):
            search.__class__ = BatchBeamSearch
        dtype = getattr(self._torch, self._dtype)
        search.to(device=self.device, dtype=dtype).eval()
        for scorer in scorers.values():
            if isinstance(scorer, self._torch.nn.Module):
                scorer.to(device=self.device, dtype=dtype).eval()
        return search


def _check_fixed(decode) -> None:
    """ESPnet's beam search has no sampling and an ESPnet ASR model no language prompt."""
    if decode.temperature:
        raise ValueError(f"temperature {decode.temperature!r}: ESPnet's beam search does not sample (temperature 0 "
                         f"only)")
    if decode.language is not None:
        raise ValueError(f"language {decode.language!r}: an ESPnet ASR model has no language prompt; it transcribes "
                         f"the language of its token list (language null only)")
    if decode.ctc_weight is not None and not 0.0 <= decode.ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight {decode.ctc_weight!r} must be from 0 to 1")


def _signature_default(func, name: str):
    import inspect

    return inspect.signature(func).parameters[name].default


def load(job) -> EspnetModel:
    return EspnetModel(job)
