"""Issue 24 item 4: the adapters pass the long-form decode settings (decode.vad, vad_threshold, vad_min_silence_ms,
condition_on_previous_text, timestamps, chunk_s) to their library, only where set (null: the library's own), and
refuse one the installed library lacks. Run against the stand-in libraries (tests/fixtures/standins)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from helpers import ROOT

from edgeasr_entrypoint.contract import CONTRACT_VERSION, DecodeOptions, JobError
from edgeasr_entrypoint.job import parse_job

STANDINS = ROOT / "tests" / "fixtures" / "standins"
LIBRARIES = ("faster_whisper", "ctranslate2", "whisperx")
AUDIO = np.zeros(16000, dtype=np.float32)


def job(**decode):
    return parse_job({"contract_version": CONTRACT_VERSION, "backend": "x", "model": "/models/tiny.en",
                      "quant": "int8", "backend_quant": "int8", "device": "cpu", "allow_download": False,
                      "decode": decode, "warmup": 0, "utterances": []})


@pytest.fixture
def use(monkeypatch):
    def _use(*roots: str):
        for name in list(sys.modules):
            if name.split(".")[0] in LIBRARIES:
                monkeypatch.delitem(sys.modules, name)
        for root in reversed(roots):
            monkeypatch.syspath_prepend(str(STANDINS / root))

        def adapter(folder: str):
            path = ROOT / "containers" / folder / f"edgeasr_backend_{folder.replace('-', '_')}.py"
            spec = importlib.util.spec_from_file_location(f"lf_adapter_{folder.replace('-', '_')}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module

        return adapter

    yield _use
    for name in list(sys.modules):
        if name.split(".")[0] in LIBRARIES:
            del sys.modules[name]


def test_sequential_faster_whisper_gets_its_vad_and_previous_text_settings(use):
    adapter = use("faster_whisper_1_1")("faster-whisper")
    model = adapter.load(job(vad=True, vad_threshold=0.6, vad_min_silence_ms=500, condition_on_previous_text=False,
                             timestamps=False))
    import faster_whisper

    model.transcribe(AUDIO)
    assert faster_whisper.CALLS[-1] == ("transcribe", dict(
        language=None, beam_size=5, temperature=0.0, vad_filter=True,
        vad_parameters={"threshold": 0.6, "min_silence_duration_ms": 500}, condition_on_previous_text=False,
        without_timestamps=True))


def test_the_batched_pipeline_gets_its_vad_tuning_and_chunk_and_nothing_unset(use):
    adapter = use("faster_whisper_1_1")("faster-whisper")
    model = adapter.load(job(batch_size=4, vad_threshold=0.3, chunk_s=15))
    import faster_whisper

    model.transcribe(AUDIO)
    assert faster_whisper.CALLS[-1] == ("batched.transcribe", dict(
        language=None, beam_size=5, batch_size=4, vad_parameters={"threshold": 0.3}, chunk_length=15))
    plain = adapter.load(job())
    plain.transcribe(AUDIO)
    assert faster_whisper.CALLS[-1] == ("transcribe", dict(language=None, beam_size=5, temperature=0.0))


def test_whisperx_gets_its_vad_onset_and_chunk_size(use):
    adapter = use("whisperx_3_8", "faster_whisper_1_1")("whisperx")
    model = adapter.load(job(vad_threshold=0.4, chunk_s=20))
    import whisperx

    load = next(kw for name, kw in whisperx.CALLS if name == "load_model")
    assert load["vad_options"] == {"vad_onset": 0.4, "chunk_size": 20}
    model.transcribe(AUDIO)
    assert whisperx.CALLS[-1] == ("transcribe", dict(batch_size=1, language=None, chunk_size=20))


def test_the_job_checks_the_long_form_values_and_leaves_unset_ones_out():
    assert "vad" not in DecodeOptions().to_json()
    assert DecodeOptions(vad=False).to_json()["vad"] is False
    for bad in ({"vad": "yes"}, {"vad_threshold": 1.5}, {"chunk_s": 0}, {"vad_min_silence_ms": -1}):
        with pytest.raises(JobError):
            DecodeOptions.from_json(bad)
