"""The adapters meet older library APIs by feature detection (the JetPack 5 images' faster-whisper 0.10,
CTranslate2 3.x and whisperx 3.1-era builds): run against stand-in modules (tests/fixtures/standins, each
saying which real release it reproduces), they pass only the options the installed library accepts, record
the ones left out in `compat`, and refuse a missing feature that would change the result with an error that
names the installed version."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from helpers import ROOT

from edgeasr_entrypoint.contract import CONTRACT_VERSION
from edgeasr_entrypoint.job import parse_job

STANDINS = ROOT / "tests" / "fixtures" / "standins"
LIBRARIES = ("faster_whisper", "ctranslate2", "whisperx")


def job(device="cpu", backend_quant="int8", allow_download=False, **decode):
    return parse_job({"contract_version": CONTRACT_VERSION, "backend": "x", "model": "/models/tiny.en",
                      "quant": "int8",
                      "backend_quant": backend_quant, "device": device, "allow_download": allow_download,
                      "decode": decode, "warmup": 0, "utterances": []})


@pytest.fixture
def use(monkeypatch):
    """Put stand-in roots first on sys.path (fresh imports) and return a loader for an adapter module."""

    def _use(*roots: str):
        for name in list(sys.modules):
            if name.split(".")[0] in LIBRARIES:
                monkeypatch.delitem(sys.modules, name)
        for root in reversed(roots):
            monkeypatch.syspath_prepend(str(STANDINS / root))

        def adapter(folder: str):
            path = ROOT / "containers" / folder / f"edgeasr_backend_{folder.replace('-', '_')}.py"
            spec = importlib.util.spec_from_file_location(f"adapter_under_test_{folder.replace('-', '_')}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module

        return adapter

    yield _use
    for name in list(sys.modules):
        if name.split(".")[0] in LIBRARIES:
            del sys.modules[name]


AUDIO = np.zeros(16000, dtype=np.float32)


# -- faster-whisper ---------------------------------------------------------------------------------------


def test_faster_whisper_0_10_sequential_gets_every_option_it_has(use):
    adapter = use("faster_whisper_0_10")("faster-whisper")
    model = adapter.load(job(beam_size=3, threads=2, language="en"))
    import faster_whisper

    name, init = faster_whisper.CALLS[0]
    assert name == "WhisperModel"
    assert init == dict(model_size_or_path="/models/tiny.en", device="cpu", compute_type="int8", cpu_threads=2,
                        num_workers=1, download_root=None, local_files_only=True)
    assert model.transcribe(AUDIO) == "hello world"
    assert faster_whisper.CALLS[-1] == ("transcribe", dict(n=16000, language="en", beam_size=3, temperature=0.0))
    info = model.info()
    assert info["compat"] == []
    assert info["versions"]["faster-whisper"] == "0.10.0" and info["versions"]["ctranslate2"] == "3.24.0"


def test_faster_whisper_0_10_refuses_batching_naming_its_version(use):
    adapter = use("faster_whisper_0_10")("faster-whisper")
    with pytest.raises(RuntimeError) as err:
        adapter.load(job(batch_size=4))
    message = str(err.value)
    assert "BatchedInferencePipeline" in message and "faster-whisper 0.10.0" in message
    assert "--batch-size 1" in message


def test_faster_whisper_1_1_batches_through_its_pipeline(use):
    adapter = use("faster_whisper_1_1")("faster-whisper")
    model = adapter.load(job(batch_size=4, beam_size=2))
    import faster_whisper

    assert model.transcribe(AUDIO) == "batched"
    assert faster_whisper.CALLS[-1] == ("batched.transcribe", dict(language=None, beam_size=2, batch_size=4))


def test_a_compute_type_ctranslate2_lacks_on_the_device_is_refused_not_converted(use):
    """CTranslate2 3.x on Xavier (sm_72) has no bfloat16; CTranslate2 would fall back and only warn."""
    adapter = use("faster_whisper_0_10")("faster-whisper")
    with pytest.raises(RuntimeError) as err:
        adapter.load(job(device="cuda", backend_quant="bfloat16"))
    message = str(err.value)
    assert "bfloat16 on cuda" in message and "ctranslate2 3.24.0" in message
    assert "float16" in message and "int8_float16" in message  # what it can do instead
    import faster_whisper

    assert faster_whisper.CALLS == []  # refused before loading
    assert adapter.load(job(device="cuda", backend_quant="int8_float16"))  # a supported one loads


# -- whisperx ---------------------------------------------------------------------------------------------


def test_whisperx_of_january_2024_gets_what_its_load_model_has_and_the_images_vad_file(use, tmp_path, monkeypatch):
    vad = tmp_path / "whisperx-vad-segmentation.bin"
    vad.write_bytes(b"stand-in")
    monkeypatch.setenv("EDGEASR_WHISPERX_VAD", str(vad))
    adapter = use("whisperx_2024_01", "faster_whisper_0_10")("whisperx")
    model = adapter.load(job(beam_size=5, threads=3, language="en", batch_size=2))
    import whisperx

    name, kwargs = whisperx.CALLS[0]
    assert name == "load_model"
    assert kwargs["threads"] == 3 and kwargs["compute_type"] == "int8" and kwargs["language"] == "en"
    assert kwargs["vad_options"] == {"model_fp": str(vad)}
    assert model.transcribe(AUDIO) == "hello world"
    assert whisperx.CALLS[-1] == ("transcribe", dict(batch_size=2, language="en"))
    compat = model.info()["compat"]
    assert any("local_files_only" in note and "HF_HUB_OFFLINE" in note for note in compat), compat
    assert any(str(vad) in note for note in compat), compat


def test_whisperx_that_downloads_its_vad_model_without_a_copy_or_network_is_a_clear_error(use, monkeypatch):
    monkeypatch.delenv("EDGEASR_WHISPERX_VAD", raising=False)
    adapter = use("whisperx_2024_01", "faster_whisper_0_10")("whisperx")
    with pytest.raises(RuntimeError) as err:
        adapter.load(job())
    message = str(err.value)
    assert "whisperx 3.1.1" in message and "whisperx-vad-segmentation.bin" in message
    assert "Dockerfile.jetson-r35" in message and "--allow-download" in message
    import whisperx

    assert whisperx.CALLS == []  # stopped before whisperx tried the network


def test_whisperx_3_1_1_tag_without_threads_records_it(use, tmp_path, monkeypatch):
    vad = tmp_path / "vad.bin"
    vad.write_bytes(b"x")
    monkeypatch.setenv("EDGEASR_WHISPERX_VAD", str(vad))
    adapter = use("whisperx_3_1_1", "faster_whisper_0_10")("whisperx")
    model = adapter.load(job(threads=2))
    import whisperx

    assert whisperx.CALLS[0] == ("load_model", dict(device="cpu", compute_type="int8",
                                                    vad_options={"model_fp": str(vad)}))
    assert any("no threads" in note for note in model.info()["compat"])
    assert model.transcribe(AUDIO) == "tag"


def test_whisperx_3_8_behind_its_lazy_load_model_gets_every_option(use):
    """whisperx >= 3.4 forwards load_model(*args, **kwargs): the signature is read from whisperx.asr."""
    adapter = use("whisperx_3_8", "faster_whisper_1_1")("whisperx")
    model = adapter.load(job(threads=2))
    import whisperx

    assert whisperx.CALLS[0] == ("load_model", dict(device="cpu", compute_type="int8", vad_method="pyannote",
                                                    vad_options=None, local_files_only=True, threads=2))
    assert model.info()["compat"] == []
    assert model.info()["versions"]["whisperx"] == "3.8.6"


# -- per-condition decode changes (set_decode, contract 3) ------------------------------------------------


def test_faster_whisper_set_decode_wraps_and_unwraps_the_loaded_model_for_batching(use):
    """Batch size 1 -> 4 puts a BatchedInferencePipeline around the loaded model (no second WhisperModel),
    beam size and language go into the next transcribe call, and batch size 1 drops the pipeline again."""
    from dataclasses import replace

    adapter = use("faster_whisper_1_1")("faster-whisper")
    j = job(beam_size=5)
    model = adapter.load(j)
    import faster_whisper

    model.set_decode(replace(j.decode, batch_size=4, beam_size=2, language="de"))
    assert model.transcribe(AUDIO) == "batched"
    assert faster_whisper.CALLS[-1] == ("batched.transcribe", dict(language="de", beam_size=2, batch_size=4))
    model.set_decode(j.decode)
    assert model.transcribe(AUDIO) == "one"
    assert faster_whisper.CALLS[-1] == ("transcribe", dict(language=None, beam_size=5, temperature=0.0))
    assert [name for name, _ in faster_whisper.CALLS].count("WhisperModel") == 1


def test_faster_whisper_0_10_refuses_a_batched_condition_and_keeps_its_settings(use):
    from dataclasses import replace

    adapter = use("faster_whisper_0_10")("faster-whisper")
    j = job(beam_size=3)
    model = adapter.load(j)
    with pytest.raises(NotImplementedError, match="BatchedInferencePipeline"):
        model.set_decode(replace(j.decode, batch_size=4, beam_size=1))
    model.transcribe(AUDIO)
    import faster_whisper

    assert faster_whisper.CALLS[-1][1]["beam_size"] == 3


@pytest.mark.parametrize("roots", [("whisperx_3_8", "faster_whisper_1_1"),
                                   ("whisperx_2024_01", "faster_whisper_0_10")])
def test_whisperx_set_decode_replaces_the_pipelines_options(use, tmp_path, monkeypatch, roots):
    """Beam size and temperature replace fields of the pipeline's TranscriptionOptions (a dataclass in
    whisperx 3.8, faster-whisper 0.10's NamedTuple in the January 2024 build); batch size and language go to
    transcribe, and a new language drops the tokenizer made for the old one."""
    from dataclasses import replace

    vad = tmp_path / "vad.bin"
    vad.write_bytes(b"x")
    monkeypatch.setenv("EDGEASR_WHISPERX_VAD", str(vad))
    adapter = use(*roots)("whisperx")
    j = parse_job({"contract_version": CONTRACT_VERSION, "backend": "x", "model": "/models/small", "quant": "int8",
                   "backend_quant": "int8", "device": "cpu", "decode": {"beam_size": 5, "language": "en"},
                   "warmup": 0, "utterances": []})
    model = adapter.load(j)
    pipe = model._pipe
    assert pipe.options.beam_size == 5 and pipe.tokenizer is not None
    model.set_decode(replace(j.decode, beam_size=1, temperature=0.2, batch_size=8, language="fr"))
    assert (pipe.options.beam_size, pipe.options.best_of, pipe.options.temperatures) == (1, 1, [0.2])
    assert pipe.preset_language == "fr" and pipe.tokenizer is None
    model.transcribe(AUDIO)
    import whisperx

    assert whisperx.CALLS[-1] == ("transcribe", dict(batch_size=8, language="fr"))


def test_whisperx_english_only_model_refuses_another_language(use):
    from dataclasses import replace

    adapter = use("whisperx_3_8", "faster_whisper_1_1")("whisperx")
    j = job(beam_size=5)  # /models/tiny.en
    model = adapter.load(j)
    with pytest.raises(ValueError, match="English-only"):
        model.set_decode(replace(j.decode, language="de", beam_size=1))
    assert model._pipe.options.beam_size == 5  # nothing changed


def test_faster_whisper_english_only_model_refuses_another_language(use):
    """faster-whisper would decode an English-only model in English whatever the language: refused instead."""
    import types
    from dataclasses import replace

    adapter = use("faster_whisper_1_1")("faster-whisper")
    j = job()
    model = adapter.load(j)
    model._model.model = types.SimpleNamespace(is_multilingual=False)  # what CTranslate2's Whisper reports
    model.set_decode(replace(j.decode, language="en"))
    with pytest.raises(ValueError, match="English-only"):
        model.set_decode(replace(j.decode, language="de"))


def test_the_adapters_report_the_device_their_model_runs_on(use):
    """Issue 25, item 7: faster-whisper and whisperx read it from CTranslate2's model (``WhisperModel.model.device``,
    which resolves ``auto``), so a summary says where the work ran, not where it was asked to."""
    adapter = use("faster_whisper_1_1")("faster-whisper")
    assert adapter.load(job()).info()["device_used"] == "cpu"
    assert adapter.load(job(device="cuda", backend_quant="int8_float16")).info()["device_used"] == "cuda"
    adapter = use("whisperx_3_8", "faster_whisper_1_1")("whisperx")
    assert adapter.load(job()).info()["device_used"] == "cpu"
