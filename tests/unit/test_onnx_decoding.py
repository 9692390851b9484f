"""The onnxruntime adapter's decoding loop (greedy and beam search) against scripted fake sessions.

The fake decoder is a tiny language model with fixed next-token log-probabilities, so the best
sequence is known: greedy takes the locally best token, beam search finds the globally best one.
"""

from __future__ import annotations

import importlib.util
import types

import numpy as np
import pytest
from edgeasr_entrypoint.contract import DecodeOptions
from helpers import ROOT

spec = importlib.util.spec_from_file_location(
    "edgeasr_backend_onnxruntime", ROOT / "containers/onnxruntime/edgeasr_backend_onnxruntime.py")
adapter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adapter)

V, SOT, NOTS, EOT = 12, 9, 10, 8  # vocabulary size and the special tokens of the fake model
L, D = 2, 4


class FakeEncoder:
    def run(self, _outputs, feeds):
        b = feeds["input_features"].shape[0]
        return np.zeros((L, b, 1, D, 5), np.float32), np.zeros((L, b, 1, 5, D), np.float32)


class FakeDecoder:
    """Next-token table: after the prompt, 1 (p .6) or 2 (p .4); after 1: 3 (p .5) or 4 (p .5);
    after 2: 5 (p .95); after 3/4/5: EOT. Greedy gives 1 3 (.30); the best sequence is 2 5 (.38).
    Token 0 is suppressed and would otherwise win at the first step."""

    table = {NOTS: {0: 0.9, 1: 0.06, 2: 0.04}, 1: {3: 0.5, 4: 0.5}, 2: {5: 0.95, 6: 0.05},
             3: {EOT: 1.0}, 4: {EOT: 1.0}, 5: {EOT: 1.0}, 6: {EOT: 1.0}}

    def __init__(self):
        self.calls = 0

    def run(self, _outputs, feeds):
        self.calls += 1
        tokens = feeds["tokens"]
        rows, n = tokens.shape
        logits = np.full((rows, n, V), -30.0, np.float32)
        for r in range(rows):
            for tok, p in self.table.get(int(tokens[r, -1]), {EOT: 1.0}).items():
                logits[r, -1, tok] = np.log(p)
        grow = np.zeros((L, rows, n, D), np.float32)
        return logits, np.concatenate([feeds["self_k"], grow], axis=2), np.concatenate([feeds["self_v"], grow], axis=2)


def fake_model(beam: int):
    m = object.__new__(adapter.OnnxWhisper)
    m._job = types.SimpleNamespace(model="/models/tiny.en", decode=DecodeOptions(beam_size=beam))
    m._decode = m._job.decode  # the settings the decoder reads (set_decode changes them)
    m.encoder, m.decoder = FakeEncoder(), FakeDecoder()
    m.features = lambda audio, sampling_rate, return_tensors: types.SimpleNamespace(
        input_features=np.zeros((1, 3, 7), np.float32))
    m.float = np.float32
    m.gen = {"decoder_start_token_id": SOT, "no_timestamps_token_id": NOTS, "is_multilingual": False}
    m.eot = EOT
    m.suppress = np.array([0], np.int64)
    m.begin_suppress = np.array([EOT], np.int64)
    m.max_length = 20
    m.tokenizer = types.SimpleNamespace(decode=lambda ids, skip_special_tokens: " ".join(map(str, ids)))
    return m


@pytest.mark.parametrize(("beam", "text"), [(1, "1 3"), (2, "2 5"), (5, "2 5")])
def test_greedy_takes_the_local_best_and_beam_search_the_global_best(beam, text):
    assert fake_model(beam).transcribe(np.zeros(16000, np.float32)) == text


def test_audio_longer_than_one_window_is_decoded_window_after_window():
    m = fake_model(1)
    assert m.transcribe(np.zeros(adapter.WINDOW + 10, np.float32)) == "1 3 1 3"


def test_a_condition_can_change_the_beam_size_of_the_loaded_model():
    """set_decode(beam 2) on a greedy model: the next call searches the beam (contract 3 overrides)."""
    m = fake_model(1)
    m.set_decode(DecodeOptions(beam_size=2))
    assert m.transcribe(np.zeros(16000, np.float32)) == "2 5"


@pytest.mark.parametrize(("change", "error", "words"), [
    ({"temperature": 0.5}, NotImplementedError, "no sampling"),
    ({"batch_size": 4}, NotImplementedError, "one utterance at a time"),
    ({"language": "de"}, ValueError, "English-only"),
])
def test_changes_the_onnx_decoder_cannot_make_are_refused_and_nothing_changes(change, error, words):
    m = fake_model(1)
    with pytest.raises(error, match=words):
        m.set_decode(DecodeOptions(beam_size=2, **change))
    assert m._decode.beam_size == 1 and m.transcribe(np.zeros(16000, np.float32)) == "1 3"
