"""ONNX Runtime adapter: Whisper exported to ONNX (encoder + decoder with past key values), run by onnxruntime.

Two parts, one module:
- ``export`` (``python -m edgeasr_backend_onnxruntime export HF_DIR OUT_DIR``, run once per model by
  the host, see runner/launch/onnx_export.py): traces the Hugging Face Whisper weights with torch.onnx
  into ``encoder.onnx`` (log-mel features -> the cross-attention keys and values of every decoder layer,
  computed once per utterance) and ``decoder.onnx`` (tokens + self-attention cache + cross keys/values ->
  logits + the grown cache), then writes ONNX Runtime's dynamic int8 quantization of both
  (``*.int8.onnx``: int8 MatMul weights, activations quantized on the fly) and copies the tokenizer and
  configs beside them. Float16 (``*.fp16.onnx``, for CUDA) is the float32 graph exported in half precision.
- ``load(job)``: the contract's adapter. Features come from transformers' WhisperFeatureExtractor (the
  same numbers the transformers backend sees); decoding is greedy or beam search in numpy over
  onnxruntime sessions, with Whisper's suppress and begin-suppress tokens, without timestamps. Audio
  longer than one 30 s window is decoded window after window and joined (no timestamp-based seeking).
  A sweep condition may change the beam size and the language (``set_decode``); there is no sampling
  (temperature) and no batched decoding, so changes of those are refused.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
from edgeasr_entrypoint.contract import SAMPLE_RATE, decode_changes

WINDOW = 30 * SAMPLE_RATE
FILES = {"float32": ("encoder.onnx", "decoder.onnx"), "dynamic_int8": ("encoder.int8.onnx", "decoder.int8.onnx"),
         "float16": ("encoder.fp16.onnx", "decoder.fp16.onnx")}
COPIED = ("config.json", "generation_config.json", "tokenizer.json", "preprocessor_config.json")
EXPORT_VERSION = 2  # bump when the graphs change, so the host's content-hash cache re-exports


# -- export (needs torch and transformers; only the export container imports them) ---------------------------

def _export_modules(model):
    """Two torch modules over the HF Whisper weights whose graphs export cleanly (attention written out)."""
    import torch
    from torch import nn

    dec = model.model.decoder
    n_heads = model.config.decoder_attention_heads

    def heads(x):  # [B, T, D] -> [B, H, T, D/H]
        b, t, d = x.shape
        return x.reshape(b, t, n_heads, d // n_heads).transpose(1, 2)

    def merge(x):  # [B, H, T, D/H] -> [B, T, D]
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = model.model.encoder
            self.layers = dec.layers

        def forward(self, input_features):
            hidden = self.encoder(input_features).last_hidden_state
            # Laid out once per utterance the way every decoder step consumes them: keys as
            # [L, B, H, D/H, 1500] (already transposed for q @ k), values as [L, B, H, 1500, D/H].
            keys = torch.stack([heads(layer.encoder_attn.k_proj(hidden)).transpose(-1, -2) for layer in self.layers])
            values = torch.stack([heads(layer.encoder_attn.v_proj(hidden)) for layer in self.layers])
            return keys, values

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.dec = dec
            # One copy of the token embedding, stored transposed ([D, V]): the output projection multiplies by
            # it as is (a MatMul on an initializer, which int8 quantization handles) and the input embedding
            # gathers its columns; with the [V, D] original both ways, the exporter wrote it twice (~80 MB).
            self.embed_t = nn.Parameter(dec.embed_tokens.weight.detach().t().contiguous())

        def forward(self, tokens, self_k, self_v, cross_k, cross_v):
            past = self_k.shape[2]
            n = tokens.shape[1]
            positions = torch.arange(n, device=tokens.device) + past
            x = torch.index_select(self.embed_t, 1, tokens.reshape(-1)).t().reshape(tokens.shape[0], n, -1)
            x = x + self.dec.embed_positions.weight[positions]
            total = torch.arange(n + past, device=tokens.device)
            causal = (total[None, :] > positions[:, None]).to(x.dtype) * torch.finfo(x.dtype).min
            new_k, new_v = [], []
            for i, layer in enumerate(self.dec.layers):
                sa = layer.self_attn
                h = layer.self_attn_layer_norm(x)
                k = torch.cat([self_k[i], sa.k_proj(h)], dim=1)
                v = torch.cat([self_v[i], sa.v_proj(h)], dim=1)
                new_k.append(k)
                new_v.append(v)
                q = heads(sa.q_proj(h) * sa.scaling)
                att = torch.softmax(q @ heads(k).transpose(-1, -2) + causal, dim=-1)
                x = x + sa.out_proj(merge(att @ heads(v)))
                ca = layer.encoder_attn
                h = layer.encoder_attn_layer_norm(x)
                q = heads(ca.q_proj(h) * ca.scaling)
                att = torch.softmax(q @ cross_k[i], dim=-1)
                x = x + ca.out_proj(merge(att @ cross_v[i]))
                h = layer.final_layer_norm(x)
                x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
            x = self.dec.layer_norm(x)
            logits = x @ self.embed_t
            return logits, torch.stack(new_k), torch.stack(new_v)

    return Encoder().eval(), Decoder().eval()


def export(hf_dir: str, out_dir: str) -> None:
    """Trace the Hugging Face Whisper folder into fp32, int8 and fp16 ONNX graphs in out_dir (made whole
    in a staging folder, then renamed)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import WhisperForConditionalGeneration

    staging = out_dir.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    notes = {}
    n_params = None
    for dtype, suffix in ((torch.float32, ""), (torch.float16, ".fp16")):
        try:
            _export_pair(WhisperForConditionalGeneration.from_pretrained(hf_dir, torch_dtype=dtype).eval(),
                         staging, suffix)
        except Exception as exc:  # noqa: BLE001 - fp16 is best effort: recorded, and refused at load
            if dtype is torch.float32:
                raise
            notes["float16"] = f"not exported: {type(exc).__name__}: {exc}"
        if dtype is torch.float32:
            n_params = sum(p.numel() for p in WhisperForConditionalGeneration.from_pretrained(hf_dir).parameters())
    for part in ("encoder", "decoder"):
        quantize_dynamic(f"{staging}/{part}.onnx", f"{staging}/{part}.int8.onnx", weight_type=QuantType.QInt8)
    for name in COPIED:
        shutil.copy(os.path.join(hf_dir, name), os.path.join(staging, name))
    with open(os.path.join(staging, "edgeasr-onnx.json"), "w") as fh:
        json.dump({"export_version": EXPORT_VERSION, "torch": torch.__version__, "source": hf_dir,
                   "n_params": n_params, "notes": notes, "files": {k: list(v) for k, v in FILES.items()}}, fh,
                  indent=2)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)


def _export_pair(model, staging: str, suffix: str) -> None:
    """Trace one precision of the model into encoder{suffix}.onnx and decoder{suffix}.onnx."""
    import torch

    dtype = model.dtype
    cfg = model.config
    encoder, decoder = _export_modules(model)
    feats = torch.zeros(1, cfg.num_mel_bins, 2 * cfg.max_source_positions, dtype=dtype)
    layers, d = cfg.decoder_layers, cfg.d_model
    past = torch.zeros(layers, 1, 3, d, dtype=dtype)
    h = cfg.decoder_attention_heads
    cross_k = torch.zeros(layers, 1, h, d // h, cfg.max_source_positions, dtype=dtype)
    cross_v = torch.zeros(layers, 1, h, cfg.max_source_positions, d // h, dtype=dtype)
    tokens = torch.zeros(1, 2, dtype=torch.int64)
    with torch.no_grad():
        torch.onnx.export(encoder, (feats,), f"{staging}/encoder{suffix}.onnx", dynamo=False,
                          input_names=["input_features"], output_names=["cross_k", "cross_v"],
                          dynamic_axes={"input_features": {0: "batch"}, "cross_k": {1: "batch"},
                                        "cross_v": {1: "batch"}}, opset_version=17)
        torch.onnx.export(decoder, (tokens, past, past, cross_k, cross_v), f"{staging}/decoder{suffix}.onnx",
                          dynamo=False,
                          input_names=["tokens", "self_k", "self_v", "cross_k", "cross_v"],
                          output_names=["logits", "new_self_k", "new_self_v"],
                          dynamic_axes={"tokens": {0: "batch", 1: "n"},
                                        "self_k": {1: "batch", 2: "past"}, "self_v": {1: "batch", 2: "past"},
                                        "cross_k": {1: "batch"}, "cross_v": {1: "batch"},
                                        "logits": {0: "batch", 1: "n"},
                                        "new_self_k": {1: "batch", 2: "total"},
                                        "new_self_v": {1: "batch", 2: "total"}}, opset_version=17)


# -- inference ----------------------------------------------------------------------------------------------

class OnnxWhisper:
    def __init__(self, job):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        from transformers import WhisperFeatureExtractor

        self._ort = ort
        self._job = job
        self._decode = job.decode
        q = job.backend_quant
        if q not in FILES:
            raise ValueError(f"unknown backend_quant {q!r} for onnxruntime; known: {', '.join(FILES)}")
        folder = job.model
        enc_file, dec_file = (os.path.join(folder, f) for f in FILES[q])
        for path in (enc_file, dec_file):
            if not os.path.isfile(path):
                with open(os.path.join(folder, "edgeasr-onnx.json")) as fh:
                    why = json.load(fh).get("notes", {}).get(q, "the folder is not a complete edgeasr ONNX export")
                raise FileNotFoundError(f"{path} is missing: {why}")
        opts = ort.SessionOptions()
        if job.decode.threads:
            opts.intra_op_num_threads = job.decode.threads
            opts.inter_op_num_threads = 1
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if job.device == "cuda" else \
            ["CPUExecutionProvider"]
        if job.device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("this onnxruntime build has no CUDAExecutionProvider; use the CUDA image")
        self.encoder = ort.InferenceSession(enc_file, opts, providers=providers)
        self.decoder = ort.InferenceSession(dec_file, opts, providers=providers)
        self.float = np.float16 if q == "float16" else np.float32
        with open(os.path.join(folder, "config.json")) as fh:
            self.config = json.load(fh)
        with open(os.path.join(folder, "generation_config.json")) as fh:
            self.gen = json.load(fh)
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.features = WhisperFeatureExtractor.from_pretrained(folder)
        self.files = (enc_file, dec_file)
        self.eot = self.gen["eos_token_id"]
        self.suppress = np.array(self.gen.get("suppress_tokens") or [], dtype=np.int64)
        self.begin_suppress = np.array(self.gen.get("begin_suppress_tokens") or [], dtype=np.int64)
        self.max_length = int(self.gen.get("max_length", 448))

    def _prompt(self) -> list:
        sot = self.gen["decoder_start_token_id"]
        prompt = [sot]
        if self.gen.get("is_multilingual"):
            lang = self._decode.language or "en"  # no language detection here: English unless told
            prompt += [self.gen["lang_to_id"][f"<|{lang}|>"], self.gen["task_to_id"]["transcribe"]]
        return prompt + [self.gen["no_timestamps_token_id"]]

    def _logprobs(self, logits: np.ndarray, first: bool) -> np.ndarray:
        logits = logits.astype(np.float32)
        logits[:, self.suppress] = -np.inf
        if first:
            logits[:, self.begin_suppress] = -np.inf
        m = logits.max(axis=-1, keepdims=True)
        return logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))

    def _decode_window(self, audio: np.ndarray) -> str:
        feats = self.features(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        cross_k, cross_v = self.encoder.run(None, {"input_features": feats.astype(self.float)})
        beam = max(1, int(self._decode.beam_size))
        layers, d = cross_k.shape[0], cross_k.shape[2] * cross_k.shape[3]
        prompt = self._prompt()
        # One hypothesis per row: tokens so far, summed log-probability; the cache rows follow them.
        seqs = [list(prompt)]
        scores = np.zeros(1, dtype=np.float64)
        self_k = np.zeros((layers, 1, 0, d), dtype=self.float)
        self_v = np.zeros_like(self_k)
        step_tokens = np.array([prompt], dtype=np.int64)
        finished: list = []
        for step in range(self.max_length - len(prompt)):
            rows = len(seqs)
            ck = np.repeat(cross_k, rows, axis=1) if rows > 1 else cross_k
            cv = np.repeat(cross_v, rows, axis=1) if rows > 1 else cross_v
            logits, self_k, self_v = self.decoder.run(None, {"tokens": step_tokens, "self_k": self_k,
                                                             "self_v": self_v, "cross_k": ck, "cross_v": cv})
            logp = self._logprobs(logits[:, -1, :], first=step == 0)
            if beam == 1:
                token = int(np.argmax(logp[0]))
                if token == self.eot:
                    finished.append((scores[0], seqs[0]))
                    break
                seqs[0].append(token)
                step_tokens = np.array([[token]], dtype=np.int64)
                continue
            # Beam search: the best `beam` continuations of all rows; an end-of-text one is set aside.
            total = scores[:, None] + logp
            flat = np.argsort(total, axis=None)[::-1][: 2 * beam]
            keep_rows, keep_tokens, keep_scores = [], [], []
            for idx in flat:
                r, tok = divmod(int(idx), total.shape[1])
                if not np.isfinite(total[r, tok]):
                    continue
                if tok == self.eot:
                    finished.append((total[r, tok] / (len(seqs[r]) - len(prompt) + 1), seqs[r]))
                else:
                    keep_rows.append(r)
                    keep_tokens.append(tok)
                    keep_scores.append(total[r, tok])
                if len(keep_rows) == beam:
                    break
            if len(finished) >= beam or not keep_rows:
                break
            seqs = [seqs[r] + [t] for r, t in zip(keep_rows, keep_tokens)]
            scores = np.array(keep_scores)
            self_k, self_v = self_k[:, keep_rows], self_v[:, keep_rows]
            step_tokens = np.array(keep_tokens, dtype=np.int64)[:, None]
        else:
            finished.extend((s / max(1, len(q) - len(prompt)), q) for s, q in zip(scores, seqs))
        if not finished:
            finished = [(scores[0], seqs[0])]
        best = max(finished, key=lambda f: f[0])[1] if beam > 1 else finished[0][1]
        text_ids = [t for t in best[len(prompt):] if t < self.eot]
        return self.tokenizer.decode(text_ids, skip_special_tokens=True)

    def set_decode(self, decode) -> None:
        """A condition's beam size or language; the decoder loop reads them at each call."""
        changes = decode_changes(self._decode, decode)
        if "temperature" in changes:
            raise NotImplementedError("this ONNX decoder is greedy or beam search only: it has no sampling, so "
                                      "temperature cannot change")
        if "batch_size" in changes:
            raise NotImplementedError("this ONNX decoder takes one utterance at a time: batch size cannot change")
        fixed = [n for n in changes if n not in ("beam_size", "language")]
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot change in a loaded model")
        if "language" in changes and decode.language is not None:
            if not self.gen.get("is_multilingual"):
                if decode.language != "en":
                    raise ValueError(f"{self._job.model} is an English-only model: language {decode.language!r}")
            elif f"<|{decode.language}|>" not in self.gen.get("lang_to_id", {}):
                raise ValueError(f"language {decode.language!r} is not one this model's tokenizer knows")
        self._decode = decode

    def transcribe(self, audio: np.ndarray) -> str:
        audio = np.asarray(audio, dtype=np.float32)
        windows = [audio[i:i + WINDOW] for i in range(0, max(len(audio), 1), WINDOW)]
        return " ".join(t.strip() for t in (self._decode_window(w) for w in windows) if t.strip())

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        with open(os.path.join(self._job.model, "edgeasr-onnx.json")) as fh:
            n_params = json.load(fh).get("n_params")
        method = {"dynamic_int8": "onnxruntime dynamic quantization (int8 MatMul weights)",
                  "float16": "float16 graph", "float32": "float32 graph"}[self._job.backend_quant]
        return {"n_params": n_params, "versions": library_versions(["onnxruntime", "tokenizers", "transformers"]),
                "quant_method": method,
                "model_size_mb": sum(os.path.getsize(f) for f in self.files) / 1e6,
                # ONNX Runtime falls back to the CPU by itself when its CUDA provider cannot load (a missing cuDNN):
                # the providers each session really registered say where it runs (contract: model_info)
                "device_used": "cuda" if all("CUDAExecutionProvider" in s.get_providers()
                                             for s in (self.encoder, self.decoder)) else "cpu"}


def load(job) -> OnnxWhisper:
    return OnnxWhisper(job)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "export":
        sys.exit("usage: python -m edgeasr_backend_onnxruntime export HF_DIR OUT_DIR")
    export(sys.argv[2], sys.argv[3])
