"""Build tiny random-initialised Hugging Face ASR models offline, for the transformers backend's tests.

No model hub is reachable here, so the transformers code paths are exercised on
models made on the spot: a Whisper seq2seq model (1+1 layers, d_model 64) using the
real tiny.en tokenizer, and a wav2vec2 CTC model (layer-norm feature encoder, so
its feature extractor returns an attention mask and batching is exact) with a
character vocabulary. Weights are random and seeded: the transcripts are
meaningless but deterministic. They test the pipeline, batching, timing, memory
and the contract, not accuracy.

Runs inside the transformers image (it has torch and transformers):
    python make_tiny_models.py OUT_DIR TINY_EN_TOKENIZER_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import (GenerationConfig, Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                          Wav2Vec2ForCTC, Wav2Vec2Processor, WhisperConfig, WhisperFeatureExtractor,
                          WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizerFast)

NOTE = "random weights, made offline by make_tiny_models.py: for pipeline tests, not for accuracy"


def make_whisper(out: Path, tokenizer_json: Path) -> None:
    torch.manual_seed(0)
    tok = WhisperTokenizerFast(tokenizer_file=str(tokenizer_json), bos_token="<|endoftext|>",
                               eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>")}
    eot, sot, no_ts = ids["<|endoftext|>"], ids["<|startoftranscript|>"], ids["<|notimestamps|>"]
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=64, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=sot,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, begin_suppress_tokens=[220, eot], suppress_tokens=[],
    )
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        no_timestamps_token_id=no_ts, is_multilingual=False, forced_decoder_ids=[[1, no_ts]],
        begin_suppress_tokens=[220, eot], suppress_tokens=[], max_length=24,
    )
    model.save_pretrained(out)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tok).save_pretrained(out)


def make_ctc(out: Path) -> None:
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    letters = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(letters)}}
    (out / "vocab.json").write_text(json.dumps(vocab))
    tok = Wav2Vec2CTCTokenizer(str(out / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                               word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                  return_attention_mask=True)
    config = Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        feat_extract_norm="layer", do_stable_layer_norm=True, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, pad_token_id=0, ctc_loss_reduction="mean",
    )
    Wav2Vec2ForCTC(config).eval().save_pretrained(out)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(out)


def main() -> int:
    out, tokenizer_json = Path(sys.argv[1]), Path(sys.argv[2])
    for name, make in (("tiny-whisper-random", lambda d: make_whisper(d, tokenizer_json)),
                       ("tiny-ctc-random", make_ctc)):
        folder = out / name
        make(folder)
        (folder / "edgeasr-model.json").write_text(json.dumps({"name": name, "note": NOTE, "random_weights": True},
                                                              indent=2) + "\n")
        print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
