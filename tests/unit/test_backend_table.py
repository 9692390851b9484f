"""The backend table owns everything backend-specific: each row's quant map, capabilities and hub naming.

OLD_QUANT_TABLE is the (library, device) -> {quant: library compute type} literal that runner/quant.py held
before the maps moved into the rows (the module is gone: its callers read the rows): the rows must give exactly these mappings, no more and no fewer.
"""

from __future__ import annotations

import pytest

from runner import backends
from runner.backends import BACKENDS, DEVICES, QUANTS
from runner.errors import UserError
from runner.models.resolve import resolve_backend_model

OLD_QUANT_TABLE: dict[tuple[str, str], dict[str, str]] = {
    ("ctranslate2", "cpu"): {"fp32": "float32", "int8": "int8"},
    ("ctranslate2", "cuda"): {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "int8_float16"},
    ("torch", "cpu"): {"fp32": "float32", "bf16": "bfloat16", "int8": "dynamic_int8"},
    ("torch", "cuda"): {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int8": "bnb_int8"},
    ("onnxruntime", "cpu"): {"fp32": "float32", "int8": "dynamic_int8"},
    ("onnxruntime", "cuda"): {"fp32": "float32", "fp16": "float16"},
    ("pocketsphinx", "cpu"): {"fp32": "float32"},
}


def test_the_generic_names_are_unchanged():
    """QUANTS and DEVICES keep their order: messages list them in it."""
    assert QUANTS == ("fp32", "fp16", "bf16", "int8")
    assert DEVICES == ("cpu", "cuda")


def test_the_rows_reach_exactly_the_old_table():
    """Each row's quant map is its library's entry of the old table: the same (device, quant) pairs and
    compute types, and the rows' devices are the devices the old table had for that library."""
    from_rows = {(be.library, dev): dict(m) for be in BACKENDS.values() for dev, m in be.quant_map.items()}
    assert from_rows == OLD_QUANT_TABLE
    for be in BACKENDS.values():
        assert be.devices == tuple(d for d in DEVICES if (be.library, d) in OLD_QUANT_TABLE)
        for dev in DEVICES:
            old = OLD_QUANT_TABLE.get((be.library, dev), {})
            assert be.quants(dev) == tuple(q for q in QUANTS if q in old)
            for quant in QUANTS:
                if quant in old:
                    assert be.quant_problem(dev, quant) is None and be.backend_quant(dev, quant) == old[quant]
                else:
                    assert be.quant_problem(dev, quant)


def test_rows_that_share_a_library_share_its_map():
    """A library's quant map is one fact: two backends on CTranslate2 cannot disagree about it."""
    by_library: dict[str, object] = {}
    for be in BACKENDS.values():
        assert by_library.setdefault(be.library, be.quant_map) == be.quant_map


def test_a_row_refuses_a_quant_naming_what_the_device_supports():
    """The row's message names the library and the device's quants, as the by-library one always did."""
    fw = BACKENDS["faster-whisper"]
    assert fw.quant_problem("cpu", "fp16") == ("quant 'fp16' cannot run with ctranslate2 on cpu; "
                                               "cpu supports: fp32, int8")
    assert fw.quant_problem("cpu", "int4") == "unknown quant 'int4'; choose one of fp32, fp16, bf16, int8"
    assert BACKENDS["pocketsphinx"].quant_problem("cuda", "fp32") == "pocketsphinx has no cuda support in edgeasr"
    with pytest.raises(UserError, match="cpu supports: fp32, int8"):
        fw.backend_quant("cpu", "fp16")


def test_a_quant_map_names_only_known_quants_and_devices():
    """A typo in a new row's map ('int4', 'gpu') fails at import, not at the first run that asks for it."""
    with pytest.raises(ValueError, match="int4"):
        backends.quant_map(cpu={"int4": "int4"})
    with pytest.raises(ValueError, match="gpu"):
        backends.quant_map(gpu={"fp32": "float32"})


def test_capabilities():
    """Alignment is whisperx's alone; batching is what the adapters honour (BatchedInferencePipeline, whisperx's
    batched pipeline, transformers' transcribe_batch); a backend that varies batch size inside one container
    must batch at all."""
    assert [n for n, b in BACKENDS.items() if b.align] == ["whisperx"]
    assert {n for n, b in BACKENDS.items() if b.batching} == {"faster-whisper", "whisperx", "transformers"}
    for be in BACKENDS.values():
        if "decode.batch_size" in be.in_container:
            assert be.batching


def test_hub_names_resolve_to_a_download_for_every_whisper_backend_and_never_for_a_bundled_one(tmp_path):
    """Every Whisper backend takes the hub's short names (the CTranslate2 conversion, or the Hugging Face checkpoint
    for transformers and the ONNX export): not installed, a name resolves to a download on the host (source hub, no
    folder yet); --offline refuses it; pocketsphinx runs its bundled model only."""
    for name in ("faster-whisper", "whisperx", "transformers", "onnxruntime"):
        assert "medium" in BACKENDS[name].hub_names
        hub = resolve_backend_model(BACKENDS[name], "medium", tmp_path)
        assert hub.source == "hub" and hub.container_path == "medium" and hub.host_dir is None
        with pytest.raises(UserError, match="--offline forbids downloading it"):
            resolve_backend_model(BACKENDS[name], "medium", tmp_path, offline=True)
    with pytest.raises(UserError, match="bundled model en-us"):
        resolve_backend_model(BACKENDS["pocketsphinx"], "medium", tmp_path)


def test_the_models_module_hub_names_are_the_rows():
    """runner.models.resolve.HUB_NAMES (for checks not yet about one backend) is derived from the rows, not a copy."""
    from runner.models.resolve import HUB_NAMES

    assert set(HUB_NAMES) == {n for b in BACKENDS.values() for n in b.hub_names}


@pytest.mark.parametrize("release, device, image", [
    (None, "cpu", "edgeasr/faster-whisper:latest"),
    (None, "cuda", "edgeasr/faster-whisper:cuda"),
    (None, None, "edgeasr/faster-whisper:latest"),
    ("r36.4.0", "cuda", "edgeasr/faster-whisper:jetson-r36"),
    ("r36.4.0", "cpu", "edgeasr/faster-whisper:jetson-r36"),
])
def test_the_default_image_follows_the_platform_and_the_device(monkeypatch, tmp_path, release, device, image):
    """A run names no image: an x86 host runs the CPU image, or the CUDA one for a CUDA run (never detected
    otherwise); a Jetson runs its release's image whatever the device."""
    from helpers import ROOT

    path = ROOT / "tests" / "fixtures" / "nv_tegra_release" / release if release else tmp_path / "none"
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", path)
    assert BACKENDS["faster-whisper"].default_image(device=device) == image
    assert BACKENDS["faster-whisper"].default_image("cuda") == "edgeasr/faster-whisper:cuda"


def test_get_backend_is_gone():
    """Dead code (issue 10): callers look rows up in BACKENDS and say what is unknown in their own terms."""
    assert not hasattr(backends, "get_backend")


# -- the decode settings a backend, and a kind of model, honours ------------------------------------------------

CTC_REFUSAL = ("a CTC model decodes greedily (argmax), so it honours only decode.batch_size "
               "(it decodes with beam_size 1, temperature 0, language null, ctc_weight 1)")


def test_the_decode_choices_are_the_contracts_in_container_fields():
    """The table's decode choices are the contract's IN_CONTAINER_DECODE by dotted path (one list, two names),
    and every row's in_container is a subset of them."""
    from edgeasr_entrypoint.contract import IN_CONTAINER_DECODE

    assert backends.DECODE_CHOICES == tuple(f"decode.{n}" for n in IN_CONTAINER_DECODE)
    assert backends.WHISPER_IN_CONTAINER == tuple(p for p in backends.DECODE_CHOICES if p != "decode.ctc_weight")
    for be in BACKENDS.values():
        assert set(be.in_container) <= set(backends.DECODE_CHOICES), be.name
        assert set(be.model_kinds) <= set(backends.MODEL_KINDS), be.name


def test_a_ctc_model_with_transformers_honours_only_the_batch_size():
    """transformers decodes a CTC model by argmax: of the decode choices it honours the batch size alone, so
    only that varies inside its loaded model; a Whisper model (or one of unknown kind) keeps the row's list.
    The values a CTC model really decodes with (beam 1, temperature 0, no language) are not refused."""
    tf = BACKENDS["transformers"]
    # the batch size changes the memory a loaded model holds: never inside one (issue 22, item 1)
    whisper = tuple(p for p in backends.WHISPER_IN_CONTAINER if p not in backends.MEMORY_AXES)
    assert tf.in_container_for("whisper") == tf.in_container_for(None) == whisper
    assert tf.in_container_for("ctc") == ()
    assert tf.honours("ctc") == ("decode.batch_size",) and tf.honours("whisper") == backends.WHISPER_IN_CONTAINER
    for path, value in (("decode.batch_size", 8), ("decode.beam_size", 1), ("decode.temperature", 0.0),
                        ("decode.language", None), ("decode.threads", 2), ("decode.align", False)):
        assert tf.decode_problem(path, value, "ctc") is None, path
    assert tf.decode_problem("decode.beam_size", 5, "ctc") == CTC_REFUSAL
    assert tf.decode_problem("decode.temperature", 0.4, "ctc") == CTC_REFUSAL
    assert tf.decode_problem("decode.language", "en", "ctc") == CTC_REFUSAL
    for path, value in (("decode.beam_size", 5), ("decode.temperature", 0.4), ("decode.language", "de")):
        assert tf.decode_problem(path, value, "whisper") is None and tf.decode_problem(path, value, None) is None


def test_onnxruntime_has_no_sampling_for_any_model():
    """The ONNX decoder is greedy or beam search: a temperature other than 0 cannot be honoured (its adapter
    ignores it in a job and refuses it in set_decode), so the row says so; beam size and language it takes."""
    ort = BACKENDS["onnxruntime"]
    assert ort.decode_problem("decode.temperature", 0.5, "whisper") == (
        "its ONNX decoder has no sampling (greedy or beam search only) and no CTC branch, so it honours only "
        "decode.beam_size, decode.batch_size, decode.language (it decodes with temperature 0, ctc_weight null)")
    assert ort.decode_problem("decode.temperature", 0.0, None) is None
    assert ort.decode_problem("decode.beam_size", 5, None) is None
    assert ort.in_container_for("whisper") == ("decode.beam_size", "decode.language")


def test_whisperx_cannot_change_the_language_of_a_loaded_aligner():
    """whisperx loads its wav2vec2 alignment model for one language: with decode.align on, the language no longer
    varies inside one container (each language is its own container); without it, it does."""
    wx = BACKENDS["whisperx"]
    assert "decode.language" in wx.in_container_for("whisper")
    assert wx.in_container_for("whisper", align=True) == ("decode.beam_size", "decode.temperature")
    assert BACKENDS["faster-whisper"].in_container_for(None, align=True) == tuple(
        p for p in backends.WHISPER_IN_CONTAINER if p not in backends.MEMORY_AXES)


def test_decode_facts_must_cover_every_decode_choice():
    """A row's facts name each decode choice once, honoured or fixed at one value: a typo or a forgotten
    choice fails at import, not as a silently unchecked setting."""
    with pytest.raises(ValueError, match="decode.language"):
        backends.DecodeFacts(what="x", why="y", honours=("decode.batch_size",),
                             fixed={"decode.beam_size": 1, "decode.temperature": 0.0})
    with pytest.raises(ValueError, match="decode.beam"):
        backends.DecodeFacts(what="x", why="y", honours=("decode.beam", *backends.DECODE_CHOICES), fixed={})


def test_only_a_backend_with_joint_decoding_honours_a_ctc_weight():
    """decode.ctc_weight weighs the CTC branch of joint CTC/attention decoding: espnet honours it at any value and
    varies it inside one loaded model; every other backend is refused a value with the reason (a Whisper model has
    no CTC branch: it decodes with none; a transformers CTC model decodes with CTC only, a weight of 1)."""
    es = BACKENDS["espnet"]
    assert "decode.ctc_weight" in es.honours(None) and "decode.ctc_weight" in es.in_container_for(None)
    for value in (0.0, 0.3, 1.0):
        assert es.decode_problem("decode.ctc_weight", value) is None
    for name in ("faster-whisper", "whisperx", "transformers", "onnxruntime", "pocketsphinx"):
        be = BACKENDS[name]
        assert "decode.ctc_weight" not in be.in_container_for("whisper"), name
        assert be.decode_problem("decode.ctc_weight", None, "whisper") is None, name  # the value it decodes with
        refusal = be.decode_refusal("decode.ctc_weight", 0.3, "whisper", "tiny.en", "--ctc-weight")
        assert refusal.startswith(f"--ctc-weight 0.3 cannot apply to model tiny.en with backend {name}: "), name
        assert "ctc_weight null" in refusal, name
    tf = BACKENDS["transformers"]
    assert tf.decode_problem("decode.ctc_weight", 1.0, "ctc") is None
    assert tf.decode_problem("decode.ctc_weight", 0.3, "ctc") == CTC_REFUSAL
    assert "no joint CTC/attention decoding" in BACKENDS["faster-whisper"].decode_problem("decode.ctc_weight", 0.0)


def test_espnet_row_decodes_by_beam_search_without_sampling_or_language():
    """ESPnet's beam search has no sampling and an ESPnet ASR model no language prompt: those values are refused
    with the reason; beam size and CTC weight vary per condition, the batch size is taken (one at a time)."""
    es = BACKENDS["espnet"]
    assert es.in_container_for(None) == ("decode.beam_size", "decode.ctc_weight") and not es.batching
    assert es.decode_problem("decode.temperature", 0.0) is None and es.decode_problem("decode.language", None) is None
    assert es.decode_problem("decode.temperature", 0.5) == es.decode_problem("decode.language", "en") == (
        "an ESPnet ASR model decodes by joint CTC/attention beam search, without sampling or a language prompt, so "
        "it honours only decode.beam_size, decode.batch_size, decode.ctc_weight (it decodes with temperature 0, "
        "language null)")
    assert es.decode_problem("decode.beam_size", 10) is None and es.decode_problem("decode.batch_size", 4) is None


def test_espnet_row_is_x86_cpu_on_the_python_313_torch_base():
    """espnet's releases need Python >= 3.12: its parent is the Python 3.13 torch stack (its own image, not the
    Python 3.11 torch-base), its only platform is x86 and any other is refused with the reason; it is no longer
    among the unavailable backends, and its CTC weight defaults to ESPnet's recipe value."""
    es = BACKENDS["espnet"]
    parent = backends.IMAGES[es.parent]
    assert es.python == parent.python == "3.13" and parent is backends.TORCH_BASE_PY313
    assert backends.TORCH_BASE.python == "3.11"
    assert es.platforms == ("x86",) and es.devices == ("cpu", "cuda")
    for platform in ("cuda", "jetson-r35", "jetson-r36"):
        assert es.platform_problem(platform).startswith(f"backend espnet has no {platform} image: espnet runs on the "
                                                        "x86 CPU only")
    assert es.default_image("x86") == "edgeasr/espnet:latest"
    assert backends.unavailable_reason("espnet") is None
    assert dict(es.decode_defaults) == {"decode.ctc_weight": 0.3}
    assert es.model_format == "espnet" and es.check_model == es.default_model == "tiny-espnet-random"


def test_a_decode_default_must_be_a_choice_the_row_honours():
    """A row cannot default a decode setting its models do not honour (a CTC weight on a Whisper backend)."""
    with pytest.raises(ValueError, match="decode defaults for choices it does not honour"):
        backends.Backend(name="x", library="torch", quant_map=backends.TORCH_QUANTS, image="x", build_dir="x",
                         adapter="x", host_module="x", decode_defaults={"decode.ctc_weight": 0.3})
