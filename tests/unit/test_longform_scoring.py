"""Issue 24: the repetition and insertion figures of every run and condition, non-speech items scored apart
from WER, and what a stored result from before them reads as."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import merge
from runner.data.dataset import Dataset, Utterance
from runner.report.aggregate import aggregate
from runner.results import ConditionRecord, Summary


def _ds(*utts):
    return Dataset("t", Path("/d"), "manifest", tuple(Utterance(i, Path(f"/d/{i}.flac"), r) for i, r in utts))


def _summary():
    return Summary(backend="b", model="m", quant="int8", device="cpu", dataset="t", status="ok")


def _t(uid, hyp, duration_s=2.0):
    return {"id": uid, "status": "ok", "hypothesis": hyp, "duration_s": duration_s, "processing_s": 0.1}


LOOP = "thank you. " * 20  # compression ratio 10.0: a loop by Whisper's own test


def test_insertion_repetition_and_compression_figures_of_a_run():
    """ins_rate over the scored words; repeats beyond the reference over referenced pairs; the compression
    share over every transcribed hypothesis, unreferenced ones included (it needs no reference)."""
    ds = _ds(("a", "the cat sat"), ("b", "a dog"), ("c", None), ("d", "never transcribed"))
    utts = merge.merge_utterances(ds, [_t("a", "the cat sat the cat sat"), _t("b", "a dog"), _t("c", LOOP)],
                                  "not transcribed: died")
    s = merge.score(_summary(), utts)
    assert (s.ins, s.ref_words) == (3, 5)
    assert s.ins_rate == pytest.approx(3 / 5)
    assert s.repeated_ngram_rate == pytest.approx(1 / 4)  # "the cat sat the cat sat": 1 of 4 trigrams, ref 0
    assert s.compression_over_share == pytest.approx(1 / 3)
    data = s.to_json()
    assert data["ins_rate"] == pytest.approx(0.6) and "ins_rate" not in s.unavailable


def test_without_references_the_figures_that_need_them_say_why():
    ds = _ds(("c", None))
    s = merge.score(_summary(), merge.merge_utterances(ds, [_t("c", "a b")], "died"))
    assert s.ins_rate is None and s.repeated_ngram_rate is None
    assert s.unavailable["ins_rate"] == "none of the 1 transcribed utterances has a reference"
    assert s.unavailable["repeated_ngram_rate"] == "none of the 1 transcribed utterances has a reference"
    assert s.compression_over_share == 0.0
    short = merge.score(_summary(), merge.merge_utterances(_ds(("a", "x y")), [_t("a", "x y")], "died"))
    assert short.repeated_ngram_rate is None
    assert short.unavailable["repeated_ngram_rate"] == "no hypothesis has 3 words (a repeated n-gram is 3 words)"
    nothing = merge.score(_summary(), merge.merge_utterances(_ds(("a", "x")), [], "died"))
    assert nothing.compression_over_share is None
    assert nothing.unavailable["compression_over_share"] == "no utterance was transcribed"


def test_a_random_weight_model_has_no_insertion_or_repetition_figures():
    utts = merge.merge_utterances(_ds(("a", "the cat sat")), [_t("a", LOOP)], "died")
    s, _ = merge.not_a_result(merge.score(_summary(), utts), utts, "random weights")
    assert (s.ins_rate, s.repeated_ngram_rate, s.compression_over_share) == (None, None, None)
    assert s.unavailable["compression_over_share"] == "random weights"


def _record(summary):
    return ConditionRecord.of({"backend": "b", "model": "m", "quant": "q", "key": "k"}, summary)


def test_the_sweep_aggregates_the_new_figures_and_a_stored_result_from_before_them_reads_as_unavailable():
    new = _record({"status": "ok", "ins_rate": 0.25, "repeated_ngram_rate": 0.5, "compression_over_share": 0.0})
    old = _record({"status": "ok", "wer": 0.1})
    row = aggregate([new])[0]
    assert (row.stat("ins_rate").mean, row.stat("repeated_ngram_rate").mean,
            row.stat("compression_over_share").mean) == (0.25, 0.5, 0.0)
    stat = aggregate([old])[0].stat("ins_rate")
    assert stat.mean is None and stat.reasons == ("not in the results",)


def test_the_run_view_shows_the_figures_and_a_summary_from_before_them_reads_as_it_did():
    from runner.report.table import summary_rows

    base = {"backend": "b", "model": "m", "quant": "q", "device": "cpu", "dataset": "t", "status": "ok",
            "n_utterances": 2, "n_failed": 0, "n_scored": 2, "n_unreferenced": 0, "wer": 0.5, "sub": 1, "del": 0,
            "ins": 1}
    new = dict(base, ins_rate=0.25, repeated_ngram_rate=None, compression_over_share=0.5,
               unavailable={"repeated_ngram_rate": "no hypothesis has 3 words (a repeated n-gram is 3 words)"})
    rows = dict(summary_rows(new))
    assert rows["insertions"] == "25.00% of reference words"
    assert rows["repeated 3-grams"] == ("unavailable: no hypothesis has 3 words (a repeated n-gram is 3 words)")
    assert rows["loops"] == "50.0% of hypotheses (compression ratio > 2.4)"
    assert "insertions" not in dict(summary_rows(base))
