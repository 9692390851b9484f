"""The transformers adapter's per-condition decode changes (set_decode, contract 3), without torch: the
model object is made without its loader and given just what generation-argument building reads."""

from __future__ import annotations

import importlib.util
import types
from dataclasses import replace

import pytest
from edgeasr_entrypoint.contract import DecodeOptions
from helpers import ROOT

spec = importlib.util.spec_from_file_location(
    "adapter_transformers_under_test", ROOT / "containers" / "transformers" / "edgeasr_backend_transformers.py")
adapter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(adapter)


def fake_model(kind: str, multilingual: bool = True, **decode):
    m = object.__new__(adapter.TransformersModel)
    m._job = types.SimpleNamespace(model="/models/whisper-small", decode=DecodeOptions(**decode))
    m._decode = m._job.decode
    m.kind = kind
    m._timestamps = False
    m.model = types.SimpleNamespace(generation_config=types.SimpleNamespace(is_multilingual=multilingual))
    return m


def test_whisper_generation_follows_the_conditions_settings():
    """Beam size, temperature (sampling) and language reach the next generate call; back again after."""
    m = fake_model("whisper", beam_size=5)
    assert m._generate_kwargs() == {"num_beams": 5, "do_sample": False}
    m.set_decode(DecodeOptions(beam_size=1, temperature=0.4, language="de", batch_size=8))
    assert m._generate_kwargs() == {"num_beams": 1, "do_sample": True, "temperature": 0.4, "language": "de",
                                    "task": "transcribe"}
    m.set_decode(m._job.decode)
    assert m._generate_kwargs() == {"num_beams": 5, "do_sample": False}


def test_ctc_takes_only_a_batch_size_change():
    """A CTC model decodes by argmax: a beam or temperature change is refused, not silently ignored."""
    m = fake_model("ctc")
    m.set_decode(replace(m._decode, batch_size=4))
    assert m._decode.batch_size == 4
    with pytest.raises(NotImplementedError, match="greedily"):
        m.set_decode(replace(m._decode, beam_size=1))
    assert m._decode.beam_size == 5


def test_english_only_whisper_refuses_another_language_but_not_english():
    m = fake_model("whisper", multilingual=False)
    m.set_decode(replace(m._decode, language="en"))
    with pytest.raises(ValueError, match="English-only"):
        m.set_decode(replace(m._decode, language="de"))
    assert m._decode.language == "en"

