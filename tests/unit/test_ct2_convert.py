"""The CTranslate2 -> Hugging Face Whisper converter on tiny synthetic model.bin files written here.

The writer below follows CTranslate2's binary layout (version 6) independently of the reader under
test, so a reader that drifts from the layout fails these tests.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from runner.errors import UserError
from runner.models.ct2_convert import convert, is_current, map_to_hf, read_model_bin

TYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}
D, HEADS, FFN, VOCAB, MELS, SRC_POS, TGT_POS = 8, 2, 16, 40, 4, 6, 5


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<H", len(raw) + 1) + raw + b"\0"


def write_model_bin(path, variables: dict, aliases: dict | None = None, *, name="WhisperSpec", revision=3,
                    version=6, type_override: dict | None = None) -> None:
    out = [struct.pack("<I", version), _string(name), struct.pack("<I", revision),
           struct.pack("<I", len(variables))]
    for vname, value in variables.items():
        value = np.asarray(value)
        out.append(_string(vname))
        out.append(struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape))
        type_id = (type_override or {}).get(vname, TYPE_IDS[value.dtype.name])
        out.append(struct.pack("<B", type_id) + struct.pack("<I", value.nbytes) + value.tobytes())
    aliases = {} if aliases is None else aliases
    out.append(struct.pack("<I", len(aliases)))
    for a, t in aliases.items():
        out.append(_string(a) + _string(t))
    path.write_bytes(b"".join(out))


def synthetic_variables(n_enc=2, n_dec=2, dtype="float32") -> dict:
    """Every variable of a CTranslate2 WhisperSpec revision 3, with distinct random values."""
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(dtype)

    v: dict = {
        "decoder/activation": np.int8(3), "decoder/alibi": np.int8(0), "decoder/pre_norm": np.int8(1),
        "decoder/scale_embeddings": np.int8(0), "decoder/start_from_zero_embedding": np.int8(0),
        "decoder/num_heads": np.int16(HEADS), "encoder/num_heads": np.int16(HEADS),
        "decoder/alignment_heads": np.int16(HEADS), "decoder/alignment_layer": np.int16(-1),
        "decoder/embeddings/weight": r(VOCAB, D), "decoder/position_encodings/encodings": r(TGT_POS, D),
        "decoder/layer_norm/gamma": r(D), "decoder/layer_norm/beta": r(D),
        "encoder/conv1/weight": r(D, MELS, 3), "encoder/conv1/bias": r(D),
        "encoder/conv2/weight": r(D, D, 3), "encoder/conv2/bias": r(D),
        "encoder/position_encodings/encodings": r(SRC_POS, D),
        "encoder/layer_norm/gamma": r(D), "encoder/layer_norm/beta": r(D),
    }

    def zero_k(bias, n):  # CTranslate2 stores Whisper's missing key bias as zeros
        bias = bias.copy()
        start = 0 if n == 2 else D
        bias[start:start + D] = 0
        return bias

    for side, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            p = f"{side}/layer_{i}"
            v[f"{p}/self_attention/linear_0/weight"] = r(3 * D, D)
            v[f"{p}/self_attention/linear_0/bias"] = zero_k(r(3 * D), 3)
            v[f"{p}/self_attention/linear_1/weight"] = r(D, D)
            v[f"{p}/self_attention/linear_1/bias"] = r(D)
            v[f"{p}/self_attention/layer_norm/gamma"] = r(D)
            v[f"{p}/self_attention/layer_norm/beta"] = r(D)
            if side == "decoder":
                v[f"{p}/attention/linear_0/weight"] = r(D, D)
                v[f"{p}/attention/linear_0/bias"] = r(D)
                v[f"{p}/attention/linear_1/weight"] = r(2 * D, D)
                v[f"{p}/attention/linear_1/bias"] = zero_k(r(2 * D), 2)
                v[f"{p}/attention/linear_2/weight"] = r(D, D)
                v[f"{p}/attention/linear_2/bias"] = r(D)
                v[f"{p}/attention/layer_norm/gamma"] = r(D)
                v[f"{p}/attention/layer_norm/beta"] = r(D)
            v[f"{p}/ffn/linear_0/weight"] = r(FFN, D)
            v[f"{p}/ffn/linear_0/bias"] = r(FFN)
            v[f"{p}/ffn/linear_1/weight"] = r(D, FFN)
            v[f"{p}/ffn/linear_1/bias"] = r(D)
            v[f"{p}/ffn/layer_norm/gamma"] = r(D)
            v[f"{p}/ffn/layer_norm/beta"] = r(D)
    return v


TIED = {"decoder/projection/weight": "decoder/embeddings/weight"}
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def make_ct2_folder(folder, variables=None, **kw):
    folder.mkdir(parents=True, exist_ok=True)
    write_model_bin(folder / "model.bin", synthetic_variables() if variables is None else variables,
                    TIED, **kw)
    vocab = {f"t{i}": i for i in range(VOCAB - len(SPECIALS))}
    tokenizer = {"model": {"type": "BPE", "vocab": vocab, "merges": ["t 1"]},
                 "added_tokens": [{"id": len(vocab) + i, "content": s, "special": True}
                                  for i, s in enumerate(SPECIALS)]}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [1, 2], "suppress_ids_begin": [3],
                                                    "lang_ids": [len(vocab) + 2],
                                                    "alignment_heads": [[1, 0]]}))
    return folder


def read_safetensors(path) -> dict:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__")
    dt = {"F32": np.float32, "F16": np.float16}
    return {k: np.frombuffer(data[8 + n + h["data_offsets"][0]: 8 + n + h["data_offsets"][1]],
                             dtype=dt[h["dtype"]]).reshape(h["shape"]) for k, h in header.items()}


def test_every_variable_maps_to_its_whisper_name_and_fused_projections_split(tmp_path):
    """q|k|v and cross k|v are split by rows, the zero key biases are dropped, convs, norms and positions
    keep their values, and the tied output projection is not written (tie_word_embeddings)."""
    v = synthetic_variables()
    write_model_bin(tmp_path / "model.bin", v, TIED)
    m = read_model_bin(tmp_path / "model.bin")
    assert (m.spec_name, m.revision, m.binary_version) == ("WhisperSpec", 3, 6)
    assert m.aliases == TIED
    hf = map_to_hf(m.variables, m.aliases)
    qkv = v["encoder/layer_1/self_attention/linear_0/weight"]
    np.testing.assert_array_equal(hf["model.encoder.layers.1.self_attn.q_proj.weight"], qkv[:D])
    np.testing.assert_array_equal(hf["model.encoder.layers.1.self_attn.k_proj.weight"], qkv[D:2 * D])
    np.testing.assert_array_equal(hf["model.encoder.layers.1.self_attn.v_proj.weight"], qkv[2 * D:])
    np.testing.assert_array_equal(hf["model.encoder.layers.1.self_attn.v_proj.bias"],
                                  v["encoder/layer_1/self_attention/linear_0/bias"][2 * D:])
    kv = v["decoder/layer_0/attention/linear_1/weight"]
    np.testing.assert_array_equal(hf["model.decoder.layers.0.encoder_attn.k_proj.weight"], kv[:D])
    np.testing.assert_array_equal(hf["model.decoder.layers.0.encoder_attn.v_proj.weight"], kv[D:])
    np.testing.assert_array_equal(hf["model.decoder.layers.0.encoder_attn.out_proj.weight"],
                                  v["decoder/layer_0/attention/linear_2/weight"])
    np.testing.assert_array_equal(hf["model.decoder.layers.1.final_layer_norm.weight"],
                                  v["decoder/layer_1/ffn/layer_norm/gamma"])
    np.testing.assert_array_equal(hf["model.encoder.conv2.weight"], v["encoder/conv2/weight"])
    np.testing.assert_array_equal(hf["model.decoder.embed_positions.weight"],
                                  v["decoder/position_encodings/encodings"])
    assert not any(k.endswith("k_proj.bias") for k in hf)
    assert "proj_out.weight" not in hf
    # Whisper's tensor count: 11 global (2 convs, 2 positions, 2 final norms, the embedding), 15 per encoder
    # layer (q, k, v, out, 2 norms, fc1, fc2; k without bias) and 24 per decoder layer (plus cross-attention).
    assert len(hf) == 11 + 2 * 15 + 2 * 24


def test_convert_writes_a_loadable_folder_with_configs_from_the_ct2_config(tmp_path):
    src = make_ct2_folder(tmp_path / "ct2")
    result = convert(src, tmp_path / "hf", log=lambda *_: None)
    out = result.out_dir
    weights = read_safetensors(out / "model.safetensors")
    np.testing.assert_array_equal(weights["model.decoder.embed_tokens.weight"],
                                  synthetic_variables()["decoder/embeddings/weight"])
    config = json.loads((out / "config.json").read_text())
    assert (config["d_model"], config["encoder_layers"], config["decoder_attention_heads"]) == (D, 2, HEADS)
    assert (config["num_mel_bins"], config["max_source_positions"], config["vocab_size"]) == (MELS, SRC_POS, VOCAB)
    assert config["suppress_tokens"] == [1, 2] and config["begin_suppress_tokens"] == [3]
    gen = json.loads((out / "generation_config.json").read_text())
    first_special = VOCAB - len(SPECIALS)
    assert gen["decoder_start_token_id"] == first_special + 1  # <|startoftranscript|>
    assert gen["no_timestamps_token_id"] == first_special + 8
    assert gen["alignment_heads"] == [[1, 0]]
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "preprocessor_config.json", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    assert is_current(src, out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_int8_weights_with_row_scales_are_dequantized(tmp_path):
    v = synthetic_variables()
    w = v["encoder/layer_0/ffn/linear_0/weight"]
    scale = (127.0 / np.abs(w).max(axis=1)).astype(np.float32)
    v["encoder/layer_0/ffn/linear_0/weight"] = np.rint(w * scale[:, None]).astype(np.int8)
    v["encoder/layer_0/ffn/linear_0/weight_scale"] = scale
    result = convert(make_ct2_folder(tmp_path / "ct2", v), tmp_path / "hf", log=lambda *_: None)
    assert result.dequantized == ("encoder/layer_0/ffn/linear_0/weight",)
    got = read_safetensors(tmp_path / "hf" / "model.safetensors")["model.encoder.layers.0.fc1.weight"]
    np.testing.assert_allclose(got, w, atol=float((1 / scale).max()) / 2 + 1e-6)


@pytest.mark.parametrize(("kw", "message"), [
    ({"name": "TransformerSpec"}, "spec 'TransformerSpec' revision 3 is not supported"),
    ({"revision": 2}, "spec 'WhisperSpec' revision 2 is not supported"),
    ({"version": 5}, "binary version 5 is not supported"),
    ({"type_override": {"encoder/conv1/bias": 9}}, "dtype id 9"),
])
def test_unknown_spec_revision_version_or_dtype_is_refused_and_nothing_is_written(tmp_path, kw, message):
    src = make_ct2_folder(tmp_path / "ct2", **kw)
    with pytest.raises(UserError, match=message):
        convert(src, tmp_path / "hf", log=lambda *_: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2"]  # no half folder, no staging


def test_an_unmapped_variable_or_a_nonzero_key_bias_is_refused(tmp_path):
    v = synthetic_variables()
    v["encoder/layer_0/self_attention/relative_position_keys"] = np.zeros((3, D), np.float32)
    with pytest.raises(UserError, match="does not know how to map: encoder/layer_0/self_attention/relative"):
        map_to_hf(v, TIED)
    v = synthetic_variables()
    v["decoder/layer_1/attention/linear_1/bias"][0] = 1.0
    with pytest.raises(UserError, match="key projection's bias is not zero"):
        map_to_hf(v, TIED)
    v = synthetic_variables()
    v["decoder/activation"] = np.int8(0)
    with pytest.raises(UserError, match="decoder/activation = 0, but Whisper needs 3"):
        map_to_hf(v, TIED)


def test_a_failed_reconversion_keeps_the_previous_folder(tmp_path):
    src = make_ct2_folder(tmp_path / "ct2")
    convert(src, tmp_path / "hf", log=lambda *_: None)
    before = (tmp_path / "hf" / "model.safetensors").read_bytes()
    write_model_bin(src / "model.bin", synthetic_variables(), TIED, revision=99)
    with pytest.raises(UserError):
        convert(src, tmp_path / "hf", log=lambda *_: None)
    assert (tmp_path / "hf" / "model.safetensors").read_bytes() == before


def test_hf_backends_resolve_an_installed_name_to_its_conversion_made_on_first_use(tmp_path):
    from runner.models.resolve import MARKER, resolve_model

    src = make_ct2_folder(tmp_path / "tiny.en")
    (src / "vocabulary.txt").write_text("x\n")
    (src / MARKER).write_text("{}")
    ct2 = resolve_model("tiny.en", tmp_path, False)
    assert ct2.host_dir == src and ct2.source == "installed"
    hf = resolve_model("tiny.en", tmp_path, False, "hf", log=lambda *_: None)
    assert (hf.name, hf.source, hf.host_dir, hf.container_path) == ("tiny.en", "converted", tmp_path / "tiny.en-hf",
                                                                    "/models/tiny.en")
    stamp = (tmp_path / "tiny.en-hf" / "model.safetensors").stat().st_mtime_ns
    resolve_model("tiny.en", tmp_path, False, "hf", log=lambda *_: None)  # current: not converted again
    assert (tmp_path / "tiny.en-hf" / "model.safetensors").stat().st_mtime_ns == stamp


def test_onnx_exports_are_cached_by_content_hash(tmp_path):
    from runner.models.resolve import MARKER, resolve_model

    src = make_ct2_folder(tmp_path / "tiny.en")
    (src / MARKER).write_text("{}")
    calls = []

    def exporter(hf_dir, out_dir):
        calls.append(out_dir)
        out_dir.mkdir()
        (out_dir / "edgeasr-onnx.json").write_text("{}")

    with pytest.raises(UserError, match="has no ONNX export"):
        resolve_model("tiny.en", tmp_path, False, "onnx", log=lambda *_: None)
    first = resolve_model("tiny.en", tmp_path, False, "onnx", log=lambda *_: None, onnx_exporter=exporter)
    again = resolve_model("tiny.en", tmp_path, False, "onnx", log=lambda *_: None, onnx_exporter=exporter)
    assert first.host_dir == again.host_dir == calls[0] and len(calls) == 1 and first.source == "exported"
    assert first.host_dir.name.startswith("tiny.en-onnx-")
    # New weights: a new folder, exported again.
    write_model_bin(src / "model.bin", synthetic_variables(dtype="float16"), TIED)
    changed = resolve_model("tiny.en", tmp_path, False, "onnx", log=lambda *_: None, onnx_exporter=exporter)
    assert changed.host_dir != first.host_dir and len(calls) == 2
    assert not first.host_dir.exists()  # the stale export is removed once the new one is whole


def test_a_bundled_model_backend_refuses_other_model_names(tmp_path):
    from runner.models.resolve import resolve_model

    assert resolve_model("en-us", tmp_path, False, "bundled", bundled=("en-us",)).host_dir is None
    with pytest.raises(UserError, match="'tiny.en' is not a model this backend ships; it runs its bundled model en-us"):
        resolve_model("tiny.en", tmp_path, False, "bundled", bundled=("en-us",))


def test_a_multilingual_model_gets_language_detection_and_the_transcribe_task_in_its_prompt():
    """Regression: with forced_decoder_ids None, transformers 4.57 prompted [sot, lang] without the task token
    and base degenerated ('Glue the dark dark dark ...'); position 2 must be <|transcribe|>."""
    from runner.models.ct2_convert import build_configs

    v = synthetic_variables()
    hf = map_to_hf(v, TIED)
    hf["model.decoder.embed_tokens.weight"] = np.zeros((51865, D), np.float32)  # the multilingual vocabulary
    n = 50257
    tokenizer = {"model": {"vocab": {}, "merges": []},
                 "added_tokens": [{"id": n + i, "content": s, "special": True}
                                  for i, s in enumerate(["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>",
                                                         "<|translate|>", "<|transcribe|>", "<|startoflm|>",
                                                         "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"])]}
    gen = build_configs(hf, v, {"lang_ids": [n + 2, n + 3]}, tokenizer)["generation_config.json"]
    assert gen["is_multilingual"] and gen["lang_to_id"] == {"<|en|>": n + 2, "<|de|>": n + 3}
    assert gen["task_to_id"] == {"transcribe": n + 5, "translate": n + 4}
    assert gen["forced_decoder_ids"] == [[1, None], [2, n + 5]]
