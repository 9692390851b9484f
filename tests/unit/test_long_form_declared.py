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
