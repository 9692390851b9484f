"""Issue 24 item 4: every backend row declares how it decodes audio longer than its model's window, and every
summary records the declaration that applied (an undeclared long-form algorithm makes speed comparisons
meaningless: sequential, chunked and VAD-batched decoding of one recording are different work)."""

from __future__ import annotations

import pytest

from runner.backends import BACKENDS, LONG_FORM_ALGORITHMS


def test_every_backend_row_declares_its_long_form_algorithm():
    for be in BACKENDS.values():
        for lf in (be.long_form, be.long_form_batched, *be.long_form_kinds.values()):
            if lf is not None:
                assert lf.algorithm in LONG_FORM_ALGORITHMS and lf.how, be.name


@pytest.mark.parametrize("backend, batch, kind, expected", [
    ("faster-whisper", 1, "whisper", ("sequential", 30.0, None, True, True, False)),
    ("faster-whisper", 8, "whisper", ("vad-batched", 30.0, "silero", False, False, True)),
    ("whisperx", 1, "whisper", ("vad-batched", 30.0, "pyannote", False, False, True)),
    ("transformers", 1, "whisper", ("sequential", 30.0, None, True, False, False)),
    ("transformers", 4, "ctc", ("whole", None, None, False, False, False)),
    ("onnxruntime", 1, "whisper", ("chunked", 30.0, None, False, False, False)),
    ("pocketsphinx", 1, None, ("whole", None, None, False, False, False)),
    ("espnet", 1, None, ("whole", None, None, False, False, False)),
])
def test_what_each_backend_does_with_long_audio(backend, batch, kind, expected):
    """(algorithm, window_s, vad, timestamps, condition_on_previous_text, batched), as each adapter decodes."""
    lf = BACKENDS[backend].long_form_for(batch, kind)
    assert (lf.algorithm, lf.window_s, lf.vad, lf.timestamps, lf.condition_on_previous_text, lf.batched) == expected
    assert lf.to_json()["algorithm"] == expected[0]


def test_every_summary_records_the_long_form_algorithm_that_applied(tmp_path):
    from dataclasses import replace

    from helpers import tone_spec

    from runner import execute, plan

    spec = tone_spec(tmp_path)
    job = plan.plan_run(spec, None)
    summary = execute.new_summary(job, job.conditions[0], spec.dataset, {}, "t", "docker")
    assert summary.long_form["algorithm"] == "sequential" and summary.to_json()["long_form"]["timestamps"] is True
    batched = replace(job.conditions[0], decode={"batch_size": 4})
    assert execute.new_summary(job, batched, spec.dataset, {}, "t", "docker").long_form["algorithm"] == "vad-batched"
    vad_job = plan.plan_run(replace(spec, decode=replace(spec.decode, vad=True, vad_min_silence_ms=500)), None)
    lf = execute.new_summary(vad_job, vad_job.conditions[0], spec.dataset, {}, "t", "docker").long_form
    assert (lf["vad"], lf["settings"]) == ("silero", {"vad": True, "vad_min_silence_ms": 500})


# -- the long-form axes: decode.vad, vad_threshold, vad_min_silence_ms, condition_on_previous_text, timestamps,
# chunk_s; null is the backend's own, a value it cannot honour is refused with the reason -------------------------


def _problem(backend, path, value, batch=1, kind="whisper", **decode):
    return BACKENDS[backend].long_form_for(batch, kind).problem(path, value, {"batch_size": batch, **decode})


def test_sequential_faster_whisper_takes_every_long_form_axis_but_the_chunk():
    for path, value in (("decode.vad", True), ("decode.vad", False), ("decode.condition_on_previous_text", False),
                        ("decode.timestamps", False)):
        assert _problem("faster-whisper", path, value) is None, path
    assert _problem("faster-whisper", "decode.vad_threshold", 0.6, vad=True) is None
    assert _problem("faster-whisper", "decode.vad_min_silence_ms", 500, vad=True) is None
    assert _problem("faster-whisper", "decode.vad_threshold", 0.6) == (
        "decode.vad_threshold is a setting of the VAD, and decode.vad is not true")
    assert "30 s window" in _problem("faster-whisper", "decode.chunk_s", 20.0)


def test_batched_pipelines_always_segment_by_vad_and_never_condition_on_previous_text():
    """faster-whisper's batched pipeline (batch size > 1) and whisperx: VAD off and previous-text conditioning are
    refused with the reason; their VAD axes are the threshold and the chunk size."""
    off = _problem("faster-whisper", "decode.vad", False, batch=8)
    assert off.startswith("faster-whisper's batched pipeline (decode.batch_size > 1) always segments by VAD")
    assert _problem("faster-whisper", "decode.vad", True, batch=8) is None  # what it does anyway
    assert "does not condition on previous text" in _problem("faster-whisper", "decode.condition_on_previous_text",
                                                             True, batch=8)
    for path, value in (("decode.vad_threshold", 0.3), ("decode.chunk_s", 15.0), ("decode.vad_min_silence_ms", 300)):
        assert _problem("faster-whisper", path, value, batch=8) is None
    assert _problem("whisperx", "decode.vad", False).startswith("whisperx always segments by VAD")
    assert _problem("whisperx", "decode.vad_threshold", 0.4) is None
    assert _problem("whisperx", "decode.chunk_s", 20) is None
    assert "does not condition on previous text" in _problem("whisperx", "decode.condition_on_previous_text", True)
    assert "pyannote" in _problem("whisperx", "decode.vad_min_silence_ms", 300)


def test_backends_without_a_vad_refuse_its_axes_naming_their_algorithm():
    assert _problem("onnxruntime", "decode.vad", True) == (
        "onnxruntime decodes long audio chunked (fixed 30 s windows decoded one after another without timestamps "
        "and joined: a word cut by a window edge is decoded twice or not at all), with no VAD to set")
    assert _problem("pocketsphinx", "decode.vad", False, kind=None) is None  # no VAD is what it does
    assert "whole" in _problem("espnet", "decode.timestamps", True, kind=None)


def test_the_summary_records_the_long_form_settings_that_applied():
    lf = BACKENDS["faster-whisper"].long_form_for(1, "whisper")
    applied = lf.applied({"vad": True, "vad_threshold": 0.6, "condition_on_previous_text": False})
    assert (applied.vad, applied.condition_on_previous_text, applied.timestamps) == ("silero", False, True)
    assert applied.to_json()["settings"] == {"vad": True, "vad_threshold": 0.6, "condition_on_previous_text": False}
    assert applied.how.endswith("; set for this run: decode.vad true, decode.vad_threshold 0.6, "
                                "decode.condition_on_previous_text false")
    assert lf.applied({}).to_json()["settings"] == {} and lf.applied({}).how == lf.how


def test_a_run_refuses_a_long_form_value_its_backend_cannot_honour(tmp_path):
    from dataclasses import replace

    from helpers import tone_spec

    from runner import settings as st
    from runner.errors import UserError

    with pytest.raises(UserError, match="--vad false cannot apply with backend whisperx: whisperx always "
                                        "segments by VAD"):
        tone_spec(tmp_path, backend="whisperx", decode=replace(st.DecodeSettings(), vad=False))
    spec = tone_spec(tmp_path / "ok", decode=replace(st.DecodeSettings(), vad=True, vad_threshold=0.6))
    assert spec.decode.vad is True and spec.decode.vad_threshold == 0.6
