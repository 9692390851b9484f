"""Issue 24: the repetition and insertion figures of every run and condition, non-speech items scored apart
from WER, and what a stored result from before them reads as."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner import merge
from runner.data.dataset import Dataset, Utterance
from runner.report.aggregate import aggregate
from runner.errors import UserError
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


# -- issue 24 item 2: an empty reference is non-speech; a missing one is still "not scored" -------------------------


def test_an_empty_reference_is_read_as_non_speech_and_a_missing_one_as_none(tmp_path):
    import json

    from helpers import write_tone

    from runner.data.load import load_dataset

    for name in ("a", "b", "c", "d"):
        write_tone(tmp_path / "m" / f"{name}.flac")
    rows = [{"id": "a", "audio": "a.flac", "text": ""}, {"id": "b", "audio": "b.flac"},
            {"id": "c", "audio": "c.flac", "text": None}, {"id": "d", "audio": "d.flac", "text": "  "}]
    (tmp_path / "m" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [u.reference for u in load_dataset(tmp_path / "m").utterances] == ["", None, None, ""]
    write_tone(tmp_path / "f" / "x.wav")
    write_tone(tmp_path / "f" / "y.wav")
    (tmp_path / "f" / "x.txt").write_text("\n")
    assert [(u.id, u.reference) for u in load_dataset(tmp_path / "f").utterances] == [("x", ""), ("y", None)]
    chapter = tmp_path / "ls" / "1" / "2"
    write_tone(chapter / "1-2-0000.flac")
    write_tone(chapter / "1-2-0001.flac")
    (chapter / "1-2.trans.txt").write_text("1-2-0000\n1-2-0001 SOME WORDS\n")
    assert [u.reference for u in load_dataset(tmp_path / "ls").utterances] == ["", "SOME WORDS"]


def test_non_speech_items_are_scored_apart_from_wer():
    """Words per minute of non-speech and the share with any output (words after Whisper's normalizer: a
    "[BLANK_AUDIO]" tag is no word); WER is the speech's alone, and an unreferenced item is still not scored."""
    ds = _ds(("a", "the cat sat"), ("s1", ""), ("s2", ""), ("s3", ""), ("c", None), ("s4", ""))
    utts = merge.merge_utterances(ds, [_t("a", "the cat sat"), _t("s1", "", 30.0),
                                       _t("s2", "Thank you. Thank you.", 30.0), _t("s3", "[BLANK_AUDIO]", 30.0),
                                       _t("c", "x")], "not transcribed: died")
    s = merge.score(_summary(), utts)
    assert (s.n_utterances, s.n_failed, s.n_scored, s.n_unreferenced, s.n_nonspeech) == (6, 1, 1, 1, 4)
    assert (s.wer, s.ins, s.ins_rate) == (0.0, 0, 0.0)
    assert s.nonspeech_words == 4
    assert s.nonspeech_wpm == pytest.approx(4 / 1.5)  # 4 words over 90 s of non-speech
    assert s.nonspeech_output_share == pytest.approx(1 / 3)
    assert [u.wer for u in utts[:4]] == [0.0, None, None, None]
    assert (utts[1].reference, utts[1].reference_norm) == ("", "")
    assert utts[4].reference_norm is None


def test_without_non_speech_items_their_figures_say_why():
    s = merge.score(_summary(), merge.merge_utterances(_ds(("a", "x y")), [_t("a", "x y")], "died"))
    assert (s.n_nonspeech, s.nonspeech_wpm, s.nonspeech_output_share) == (0, None, None)
    assert s.unavailable["nonspeech_wpm"] == "no non-speech item (an empty reference) in the data"
    failed = merge.score(_summary(), merge.merge_utterances(_ds(("s", "")), [], "died"))
    assert failed.unavailable["nonspeech_output_share"] == "no non-speech item was transcribed"
    only = merge.score(_summary(), merge.merge_utterances(_ds(("s", "")), [_t("s", "")], "died"))
    assert only.nonspeech_wpm == 0.0 and only.nonspeech_output_share == 0.0
    assert only.unavailable["wer"] == ("none of the 1 transcribed utterances is speech with a reference "
                                       "(1 non-speech, scored apart from WER)")


def test_the_worst_list_shows_what_was_said_over_non_speech():
    from runner.report import worst as worst_mod

    rows = [{"id": "s2", "status": "ok", "reference": "", "reference_norm": "", "hypothesis": "Thank you. Thank you.",
             "hypothesis_norm": "thank you thank you", "wer": None, "latency_s": 0.1, "duration_s": 30.0},
            {"id": "s1", "status": "ok", "reference": "", "reference_norm": "", "hypothesis": "",
             "hypothesis_norm": "", "wer": None, "latency_s": 0.1, "duration_s": 30.0},
            {"id": "s3", "status": "ok", "reference": "", "reference_norm": "", "hypothesis": "you",
             "hypothesis_norm": "you", "wer": None, "latency_s": 0.1, "duration_s": 10.0}]
    w = worst_mod.worst([("", rows)])
    assert [u.id for u in w.by_nonspeech] == ["s2", "s3"]  # any output, most words first; silence kept silent
    assert w.by_wer == ()
    assert worst_mod.lines(w)[4:] == ["said over non-speech:",
                                       '  4 words in 30.0 s of non-speech · s2 · hyp "Thank you. Thank you."',
                                       '  1 word in 10.0 s of non-speech · s3 · hyp "you"']


def test_the_run_view_and_the_sweep_show_the_non_speech_figures():
    from runner.report.table import csv_summary, summary_rows

    s = {"backend": "b", "model": "m", "quant": "q", "device": "cpu", "dataset": "t", "status": "ok",
         "n_utterances": 3, "n_failed": 0, "n_scored": 1, "n_unreferenced": 0, "n_nonspeech": 2,
         "nonspeech_wpm": 2.5, "nonspeech_output_share": 0.5, "ins_rate": 0.0}
    assert dict(summary_rows(s))["non-speech"] == "2 items: 2.5 words/min, 50% with any output"
    assert dict(summary_rows(s))["utterances"] == ("3 utterances (0 failed, 1 scored, 2 non-speech, "
                                                    "0 without reference)")
    header, values = csv_summary(s).splitlines()[:2]
    got = dict(zip(header.split(","), values.split(",")))
    assert (got["n_nonspeech"], got["nonspeech_wpm"], got["nonspeech_output_pct"]) == ("2", "2.5", "50.0")
    row = aggregate([_record({"status": "ok", "nonspeech_wpm": 2.5, "nonspeech_output_share": 0.5})])[0]
    assert (row.stat("nonspeech_wpm").mean, row.stat("nonspeech_output_share").mean) == (2.5, 0.5)


def _with_nonspeech(tmp_path, name, wpm):
    import json
    import shutil

    from helpers import ROOT

    fixture = ROOT / "tests/fixtures/sweep"
    dest = tmp_path / name
    shutil.copytree(fixture, dest)
    lines = []
    for line in (fixture / "conditions.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if wpm is not None:
            rec["summary"].update(nonspeech_wpm=wpm, nonspeech_output_share=0.5, n_nonspeech=2)
        lines.append(json.dumps(rec))
    (dest / "conditions.jsonl").write_text("\n".join(lines) + "\n")
    return dest


def test_compare_gates_on_non_speech_words_per_minute(tmp_path, capsys):
    """--max-hallucination-increase N: non-speech words per minute, absolute increase; unavailable on a side
    (results without non-speech items) is a gate that cannot be checked, so it fails."""
    from helpers import command_args

    from runner.commands import compare as compare_cmd

    base, worse = _with_nonspeech(tmp_path, "base", 2.0), _with_nonspeech(tmp_path, "worse", 5.0)
    args = lambda *a: command_args(compare_cmd, str(base), *a)  # noqa: E731
    assert compare_cmd.main(args(str(worse), "--max-hallucination-increase", "2")) == 1
    assert "non-speech words/min rose +3.0 words/min (limit 2 words/min)" in capsys.readouterr().out
    assert compare_cmd.main(args(str(worse), "--max-hallucination-increase", "4")) == 0
    none = _with_nonspeech(tmp_path, "none", None)
    assert compare_cmd.main(args(str(none), "--max-hallucination-increase", "4")) == 1
    assert "--max-hallucination-increase cannot be checked" in capsys.readouterr().out
    with pytest.raises(UserError, match="--max-hallucination-increase -1: a limit must be 0 or more"):
        compare_cmd.main(args(str(worse), "--max-hallucination-increase", "-1"))


def test_the_report_draws_insertions_and_non_speech_words_against_noise_where_it_has_them(tmp_path):
    from runner.report.figures import write_figures

    def rec(noise, snr, ins, wpm):
        cond = {"backend": "b", "model": "m", "quant": "q", "key": f"{noise}{snr}", "noise_type": noise,
                "snr_db": snr}
        return ConditionRecord.of(cond, {"status": "ok", "wer": 0.1, "ins_rate": ins, "nonspeech_wpm": wpm,
                                         "rtf": 0.1})

    rows = aggregate([rec("clean", None, 0.01, 1.0), rec("white", 10.0, 0.02, 3.0), rec("white", 0.0, 0.05, 9.0)])
    names = {f.path.name for f in write_figures(rows, tmp_path / "new")}
    assert {"insertions_by_noise.png", "nonspeech_wpm_by_noise.png"} <= names
    old = aggregate([_record({"status": "ok", "wer": 0.1, "rtf": 0.1})])
    names = {f.path.name for f in write_figures(old, tmp_path / "old")}
    assert not {"insertions_by_noise.png", "nonspeech_wpm_by_noise.png"} & names  # results from before: as before


def test_growth_with_duration_fits_memory_and_energy_per_audio_second(tmp_path):
    """Issue 24 item 5: where utterances record their memory and energy, one figure draws latency, memory and
    energy against duration with the length fit's slope; the slope of a memory that grows is in MiB per audio s."""
    import json
    import shutil

    from helpers import ROOT

    from runner.report.records import load_sweep
    from runner.report.study_figures import growth_with_duration
    from runner.report.traces import record_files

    src = ROOT / "tests/fixtures/sweep_traces"
    dest = tmp_path / "sweep"
    shutil.copytree(src, dest)
    for path in dest.glob("conditions/*/utterances.jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for row in rows:  # memory grows 10 MiB per audio second from 200 MiB; energy 0.5 J per second
            row.update(container_mem_peak_mib=200.0 + 10.0 * row["duration_s"], energy_j=0.5 * row["duration_s"])
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sweep = load_sweep(dest)
    rows = aggregate(sweep.records)
    result = growth_with_duration(sweep, rows, record_files(sweep), tmp_path)
    assert result.path.name == "growth_with_duration.png" and result.path.is_file()
    from runner.report.fit import fit_against_length  # the rule the figure draws its lines and slopes by

    fit = fit_against_length([(d, 200.0 + 10.0 * d) for d in (1.2, 2.4, 3.1, 4.8, 6.0, 7.5)])
    assert fit.slope_text("MiB", 2) == "10.00 ± 0.00 MiB per audio s (95 %)"
    plain = load_sweep(ROOT / "tests/fixtures/sweep_traces")
    assert growth_with_duration(plain, aggregate(plain.records), record_files(plain), tmp_path / "p").startswith(
        "growth with duration: no utterance records its memory or energy")


def test_a_manifest_segment_map_scores_the_insertions_over_its_gaps(tmp_path):
    """An item from `edgeasr data lengths` with non-speech gaps: the words the alignment puts at a gap are
    counted per item and per minute of gap audio, apart from (and also inside) the insertion rate."""
    import json

    from helpers import write_tone

    from runner.data.load import load_dataset

    write_tone(tmp_path / "m" / "long.flac", seconds=10.0)
    segments = [{"kind": "speech", "start_s": 0.0, "end_s": 3.0, "source": "a", "text": "the cat sat"},
                {"kind": "pink", "start_s": 3.0, "end_s": 6.0, "level_dbfs": -30.0},
                {"kind": "speech", "start_s": 6.0, "end_s": 10.0, "source": "b", "text": "on the mat"}]
    row = {"id": "long", "audio": "long.flac", "text": "the cat sat on the mat", "duration_s": 10.0,
           "segments": segments}
    (tmp_path / "m" / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    ds = load_dataset(tmp_path / "m")
    assert [s.kind for s in ds.utterances[0].segments] == ["speech", "pink", "speech"]
    utts = merge.merge_utterances(ds, [_t("long", "The cat sat. Thank you. On the mat, yes.", 10.0)], "died")
    assert utts[0].gap_insertions == 2 and utts[0].gap_s == 3.0
    s = merge.score(_summary(), utts)
    assert (s.ins, s.gap_ins) == (3, 2)  # "thank you" over the gap; "yes" inside speech
    assert s.gap_ins_per_min == pytest.approx(2 / (3.0 / 60))
    from runner.report.table import summary_rows

    assert dict(summary_rows(s.to_json()))["inserted over gaps"] == (
        "2 words, 40.0 per minute of non-speech between the speech")
    row = aggregate([_record(s.to_json())])[0]
    assert row.stat("gap_ins_per_min").mean == pytest.approx(40.0)
    plain = merge.score(_summary(), merge.merge_utterances(_ds(("a", "x")), [_t("a", "x")], "died"))
    assert plain.gap_ins is None and plain.unavailable["gap_ins_per_min"] == (
        "no transcribed item has a segment map with non-speech in it (edgeasr data lengths --gap-type)")


def test_the_report_draws_accuracy_and_hallucination_against_vad_on_and_off(tmp_path):
    """Issue 24 item 6: a long-form switch that varies (decode.vad) gets WER, insertion rate and non-speech words
    per minute side by side for each value; a sweep without one gets no such figure."""
    from runner.report.figures import write_figures

    def rec(vad, wer, ins, wpm):
        cond = {"backend": "b", "model": "m", "quant": "q", "key": f"v{vad}", "axes": {"decode.vad": vad}}
        return ConditionRecord.of(cond, {"status": "ok", "wer": wer, "ins_rate": ins, "nonspeech_wpm": wpm,
                                         "rtf": 0.1})

    rows = aggregate([rec(False, 0.2, 0.08, 12.0), rec(True, 0.15, 0.02, 1.0)])
    figures = {f.path.name: f for f in write_figures(rows, tmp_path)}
    assert "accuracy_vs_decode.vad.png" in figures and figures["accuracy_vs_decode.vad.png"].path.is_file()
    one = {f.path.name for f in write_figures(aggregate([rec(False, 0.2, 0.08, 12.0)]), tmp_path / "one")}
    assert "accuracy_vs_decode.vad.png" not in one  # one value: nothing varies
