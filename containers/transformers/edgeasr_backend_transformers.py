"""transformers adapter: Whisper seq2seq and CTC models (wav2vec2, HuBERT, WavLM, anything AutoModelForCTC loads).

Precision: float32 / float16 / bfloat16 load the weights in that dtype; int8 on CPU is
torch's dynamic quantization of the Linear layers (qint8 weights, activations
quantized on the fly); int8 on CUDA is bitsandbytes' LLM.int8 (needs bitsandbytes).
Batching (transcribe_batch) pads a batch and masks the padding: CTC logits are cut
at each utterance's own output length, so batched and sequential transcripts agree
for models whose feature extractor returns an attention mask (layer-norm
feature encoders); group-norm models (e.g. wav2vec2-base) see the padding by design.

A sweep condition may change beam size, temperature and language (`set_decode`): Whisper's generation
arguments are built from the current settings at each call. The batch size is the entrypoint's (it hands
transcribe_batch that many utterances). CTC models decode greedily (argmax), so for them only the batch
size can change.

Stream mode (contract 4, policy native): a CTC model decodes chunk by chunk with left context (CtcStream): each
new chunk is run through the model with up to LEFT_CONTEXT_S seconds of the utterance's audio before it, and only
the output frames of the new audio are kept; the partial text is the CTC collapse of every frame so far. A Whisper
model has no incremental decoder: it streams under the entrypoint's local-agreement-2 policy.
"""

from __future__ import annotations

import os

import numpy as np
from edgeasr_entrypoint.contract import IN_CONTAINER_DECODE, SAMPLE_RATE, decode_changes

WHISPER_WINDOW_S = 30.0
LEFT_CONTEXT_S = 2.0  # audio before a new chunk that a CTC stream runs the model over with it (its left context)


class CtcStream:
    """A CTC model's live decoding of one utterance (contract 4's incremental interface), chunk by chunk.

    ``frame_ids(audio)``: the argmax token id of each output frame of ``audio``; ``n_frames(samples)``: how many
    frames that many samples give; ``stride``: samples per frame (the feature encoder's total stride: frame i of
    audio starting at a multiple of the stride covers the same samples as frame i of the whole utterance, so the
    window's frames line up with the utterance's exactly); ``decode(ids)``: the CTC collapse into text.
    Each accept runs the model over the new audio and at most ``left_samples`` before it (rounded to whole
    frames), keeps the frames not yet decoded, and returns the collapse of all frames so far when it changed.
    The newest frames see no audio after them (no right context): that is the cost of streaming measured."""

    def __init__(self, frame_ids, n_frames, stride: int, decode, left_samples: int):
        self._frame_ids, self._n_frames, self._stride, self._decode = frame_ids, n_frames, stride, decode
        self._left_frames = left_samples // stride
        self._reset()

    def _reset(self) -> None:
        self._audio = np.zeros(0, dtype=np.float32)
        self._ids: list = []  # the token id of every frame decoded so far
        self._text = ""

    def accept(self, chunk: np.ndarray):
        self._audio = np.concatenate([self._audio, np.asarray(chunk, dtype=np.float32)])
        total = max(0, self._n_frames(len(self._audio)))  # frames of the utterance so far
        done = len(self._ids)
        if total <= done:
            return None
        first = max(0, done - self._left_frames)  # the window starts this many frames in, on a frame boundary
        ids = self._frame_ids(self._audio[first * self._stride:])
        self._ids.extend(int(i) for i in ids[done - first:total - first])
        text = self._decode(self._ids)
        if text == self._text:
            return None
        self._text = text
        return text

    def finish(self) -> str:
        text = self._decode(self._ids) if self._ids else ""
        self._reset()
        return text


class TransformersModel:
    def __init__(self, job):
        import torch
        from transformers import AutoConfig, AutoProcessor

        self._torch = torch
        self._job = job
        # Timestamp tokens only for real Whisper weights (edgeasr's conversion of a CTranslate2 model, marked by
        # edgeasr-converted.json): a random-initialised model may generate no token at all, which transformers'
        # timestamp post-processing cannot take.
        self._timestamps = os.path.isfile(os.path.join(str(job.model), "edgeasr-converted.json"))
        d = job.decode
        self._decode = d
        if d.threads:
            torch.set_num_threads(d.threads)
        torch.manual_seed(0)
        local = not job.allow_download
        config = AutoConfig.from_pretrained(job.model, local_files_only=local)
        self.kind = "whisper" if config.model_type == "whisper" else "ctc"
        self.device = torch.device("cuda" if job.device == "cuda" else "cpu")
        q = job.backend_quant
        kwargs: dict = {"local_files_only": local}
        if q in ("float32", "float16", "bfloat16"):
            kwargs["torch_dtype"] = getattr(torch, q)
        elif q == "bnb_int8":
            from transformers import BitsAndBytesConfig  # LLM.int8 on CUDA; needs the bitsandbytes package

            kwargs.update(quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cuda")
        elif q != "dynamic_int8":
            raise ValueError(f"unknown backend_quant {q!r} for transformers")
        if self.kind == "whisper":
            from transformers import WhisperForConditionalGeneration as model_class
        else:
            from transformers import AutoModelForCTC as model_class
        model = model_class.from_pretrained(job.model, **kwargs)
        self.n_params = sum(p.numel() for p in model.parameters())  # before quantization packs the weights
        if q == "dynamic_int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        elif q != "bnb_int8":
            model = model.to(self.device)
        self.model = model.eval()
        self.input_dtype = kwargs.get("torch_dtype", torch.float32)
        self.processor = AutoProcessor.from_pretrained(job.model, local_files_only=local)
        fe = self.processor.feature_extractor
        self._use_mask = bool(getattr(fe, "return_attention_mask", False))
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    # -- the contract ---------------------------------------------------------------------------------

    def transcribe(self, audio: np.ndarray) -> str:
        return self.transcribe_batch([audio])[0]

    def transcribe_batch(self, audios: list) -> list:
        with self._torch.inference_mode():
            if self.kind == "ctc":
                return self._ctc(audios)
            return self._whisper(audios)

    def set_decode(self, decode) -> None:
        """A condition's decode settings (contract: IN_CONTAINER_DECODE). Whisper takes beam size, temperature
        and language per generate call; batch size is the entrypoint's. A CTC model has no beam, temperature or
        language to change: refused, rather than labelling identical greedy output with them."""
        changes = decode_changes(self._decode, decode)
        fixed = [n for n in changes if n not in IN_CONTAINER_DECODE]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change in a loaded model")
        unused = [n for n in changes if n != "batch_size"]
        if self.kind == "whisper" and "ctc_weight" in changes:
            raise NotImplementedError("a Whisper model has no CTC branch: ctc_weight does not apply")
        if self.kind == "ctc" and unused:
            raise NotImplementedError(f"a CTC model decodes greedily (argmax): {', '.join(unused)} does not apply")
        if self.kind == "whisper" and "language" in changes and decode.language not in (None, "en") \
                and not getattr(self.model.generation_config, "is_multilingual", False):
            raise ValueError(f"{self._job.model} is an English-only Whisper model: language {decode.language!r}")
        self._decode = decode

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        versions = library_versions(["transformers", "torch", "tokenizers"])
        method = {"dynamic_int8": "torch dynamic quantization (qint8 Linear weights)",
                  "bnb_int8": "bitsandbytes LLM.int8"}.get(self._job.backend_quant, self._job.backend_quant)
        return {"n_params": self.n_params, "versions": versions, "quant_method": method, "model_kind": self.kind,
                "device_used": self.device_used()}

    def device_used(self):
        """The device the model's weights are on (contract: model_info), not the one asked for."""
        try:
            return next(self.model.parameters()).device.type
        except (StopIteration, AttributeError):
            return None

    def peak_vram_mb(self):
        """torch's allocator high-water mark on CUDA; None on CPU (no VRAM)."""
        if self.device.type != "cuda":
            return None
        return self._torch.cuda.max_memory_allocated() / (1024 * 1024)

    def open_stream(self) -> CtcStream:
        """One live stream (stream mode, policy native): a CTC model's chunk-by-chunk decoding with left context."""
        if self.kind != "ctc":
            raise NotImplementedError("a Whisper model has no incremental decoder of its own; stream it with the "
                                      "local-agreement-2 policy")
        torch = self._torch
        stride = int(np.prod(self.model.config.conv_stride))

        def n_frames(samples: int) -> int:
            return int(self.model._get_feat_extract_output_lengths(torch.tensor([samples]))[0])

        return CtcStream(self._ctc_frame_ids, n_frames, stride, lambda ids: self.processor.decode(list(ids)),
                         int(LEFT_CONTEXT_S * SAMPLE_RATE))

    # -- CTC --------------------------------------------------------------------------------------------

    def _ctc_frame_ids(self, audio: np.ndarray) -> np.ndarray:
        """The argmax token id of each output frame of one audio (no padding: every frame is its own)."""
        with self._torch.inference_mode():
            inputs = self.processor([audio], sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                    return_attention_mask=self._use_mask)
            values = inputs.input_values.to(self.device, dtype=self.input_dtype)
            mask = inputs.get("attention_mask") if self._use_mask else None
            if mask is not None:
                mask = mask.to(self.device)
            return self.model(values, attention_mask=mask).logits.argmax(dim=-1)[0].cpu().numpy()

    def _ctc(self, audios: list) -> list:
        torch = self._torch
        inputs = self.processor(audios, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True,
                                return_attention_mask=self._use_mask)
        values = inputs.input_values.to(self.device, dtype=self.input_dtype)
        mask = inputs.get("attention_mask") if self._use_mask else None
        if mask is not None:
            mask = mask.to(self.device)
        logits = self.model(values, attention_mask=mask).logits
        ids = logits.argmax(dim=-1).cpu()
        samples = torch.tensor([len(a) for a in audios])
        lengths = self.model._get_feat_extract_output_lengths(samples)  # frames that belong to each utterance
        return [self.processor.decode(ids[i, : int(lengths[i])]) for i in range(len(audios))]

    # -- Whisper ----------------------------------------------------------------------------------------

    def _generate_kwargs(self) -> dict:
        d = self._decode
        kwargs = {"num_beams": d.beam_size, "do_sample": False}
        if d.temperature > 0:
            kwargs.update(do_sample=True, temperature=d.temperature)
        if d.language and getattr(self.model.generation_config, "is_multilingual", False):
            kwargs.update(language=d.language, task="transcribe")
        if self._timestamps:
            # decode with timestamp tokens, as faster-whisper and openai-whisper do by default: the
            # timestamped prompt changes what the model writes, and the text is what is compared
            kwargs["return_timestamps"] = True
        return kwargs

    def _whisper(self, audios: list) -> list:
        short = [i for i, a in enumerate(audios) if len(a) <= WHISPER_WINDOW_S * SAMPLE_RATE]
        texts: list = [None] * len(audios)
        if short:
            feats = self.processor([audios[i] for i in short], sampling_rate=SAMPLE_RATE, return_tensors="pt")
            features = feats.input_features.to(self.device, dtype=self.input_dtype)
            out = self.model.generate(features, **self._generate_kwargs())
            for i, text in zip(short, self.processor.batch_decode(out, skip_special_tokens=True)):
                texts[i] = text.strip()
        for i, audio in enumerate(audios):  # longer than one window: transformers' sequential long-form
            if texts[i] is None:
                feats = self.processor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt", truncation=False,
                                       padding="longest", return_attention_mask=True)
                out = self.model.generate(feats.input_features.to(self.device, dtype=self.input_dtype),
                                          attention_mask=feats.attention_mask.to(self.device),
                                          **self._generate_kwargs())
                texts[i] = self.processor.batch_decode(out, skip_special_tokens=True)[0].strip()
        return texts


def load(job) -> TransformersModel:
    return TransformersModel(job)
