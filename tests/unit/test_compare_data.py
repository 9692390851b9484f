"""Issue 28 item 2: compare on the utterances both sides share (by id and content hash), say how many, refuse a
gate on different data unless --allow-different-data; formats named; no "-0 MiB"; small-n percentiles say n."""

import json

import pytest
from helpers import command_args
from helpers import run_folder as _run_folder

from runner.commands import compare as compare_cmd
from runner.errors import UserError
from runner.report.compare import compare, format_change
from runner.report.records import load_results
from runner.report.table import summary_rows


def _utt(uid: str, ref: str, hyp: str, sha: str | None = None, latency: float = 0.2) -> dict:
    row = {"id": uid, "status": "ok", "error": None, "reference": ref, "hypothesis": hyp,
           "reference_norm": ref, "hypothesis_norm": hyp, "duration_s": 2.0, "latency_s": latency,
           "wer": None, "processing_s": latency}
    if sha is not None:
        row["audio_sha256"] = sha
    return row


GOOD = [_utt(f"u{i}", "one two three four", "one two three four", sha=f"h{i}") for i in range(3)]
BAD = _utt("u3", "one two three four", "one five six seven", sha="h3")  # 3 errors in 4 words


def test_a_limit_3_run_against_a_limit_4_run_is_compared_on_the_3_shared_utterances(tmp_path):
    """The 4th utterance (only in the baseline) made the baseline look worse: on the shared three both are 0 %."""
    base = _run_folder(tmp_path, "base", utts=[*GOOD, BAD], wer=3 / 16)
    cand = _run_folder(tmp_path, "cand", utts=GOOD, wer=0.0)
    cmp = compare(load_results(base), [("cand", load_results(cand))], "base")
    pair = cmp.pairs[0]
    assert (pair.data.n_shared, pair.data.n_baseline, pair.data.n_candidate) == (3, 4, 3)
    assert pair.data.differs and pair.data.by == "id and content hash"
    d = pair.delta("wer")
    assert d.baseline.mean == pytest.approx(0.0) and d.change == pytest.approx(0.0)


def test_an_utterance_with_the_same_id_but_other_audio_is_not_shared(tmp_path):
    base = _run_folder(tmp_path, "base", utts=GOOD)
    cand = _run_folder(tmp_path, "cand", utts=[*GOOD[:2], dict(GOOD[2], audio_sha256="other")])
    pair = compare(load_results(base), [("cand", load_results(cand))], "base").pairs[0]
    assert pair.data.n_shared == 2 and pair.data.differs


def test_records_without_a_hash_are_matched_by_id_and_reference(tmp_path):
    old = [{k: v for k, v in u.items() if k != "audio_sha256"} for u in GOOD]
    base = _run_folder(tmp_path, "base", utts=old)
    cand = _run_folder(tmp_path, "cand", utts=old[:2])
    pair = compare(load_results(base), [("cand", load_results(cand))], "base").pairs[0]
    assert pair.data.n_shared == 2 and pair.data.by == "id and reference"


def test_the_table_says_how_many_utterances_were_compared(tmp_path, capsys):
    base = _run_folder(tmp_path, "base", utts=[*GOOD, BAD])
    cand = _run_folder(tmp_path, "cand", utts=GOOD)
    assert compare_cmd.main(command_args(compare_cmd, str(base), str(cand), "--format", "md")) == 0
    out = capsys.readouterr().out
    assert "3 shared utterances" in out and "base 4, cand 3" in out
    assert compare_cmd.main(command_args(compare_cmd, str(base), str(cand), "--format", "csv")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(",shared_utterances,different_data") and lines[1].endswith(",3,true")
    same = _run_folder(tmp_path, "same", utts=GOOD)
    assert compare_cmd.main(command_args(compare_cmd, str(cand), str(same), "--format", "json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pairs"][0]["data"] == {"n_shared": 3, "n_baseline": 3, "n_candidate": 3,
                                        "by": "id and content hash", "differs": False}


def test_a_gate_on_different_data_is_refused_unless_allowed(tmp_path, capsys):
    base = _run_folder(tmp_path, "base", utts=[*GOOD, BAD])
    cand = _run_folder(tmp_path, "cand", utts=GOOD)
    with pytest.raises(UserError, match="--allow-different-data") as exc:
        compare_cmd.main(command_args(compare_cmd, str(base), str(cand), "--max-wer-increase", "1"))
    assert exc.value.exit_code == 2 and "different utterances" in str(exc.value)
    assert compare_cmd.main(command_args(compare_cmd, str(base), str(cand), "--max-wer-increase", "1",
                                         "--allow-different-data")) == 0


def test_different_counts_without_utterance_records_refuse_a_gate(tmp_path):
    base = _run_folder(tmp_path, "base")
    cand = _run_folder(tmp_path, "cand", n_utterances=3)
    (base / "utterances.jsonl").unlink()
    (cand / "utterances.jsonl").unlink()
    pair = compare(load_results(base), [("cand", load_results(cand))], "base").pairs[0]
    assert pair.data.differs and pair.data.n_shared is None
    with pytest.raises(UserError, match="different utterances"):
        compare_cmd.main(command_args(compare_cmd, str(base), str(cand), "--max-rtf-increase", "5"))


def test_two_formats_of_one_model_are_named_by_their_format(tmp_path):
    a = _run_folder(tmp_path, "ct2", utts=GOOD)
    b = _run_folder(tmp_path, "onnx", utts=GOOD)
    s = json.loads((b / "summary.json").read_text())
    s["backend"] = s["condition"]["backend"] = "onnxruntime"
    s["model_ref"] = s["condition"]["model_ref"] = "/models/tiny.en-onnx-9ce5"
    (b / "summary.json").write_text(json.dumps(s))
    cmp = compare(load_results(a), [("onnx", load_results(b))], "ct2")
    model = next(t for t in cmp.ignored if t.startswith("model"))
    assert model == "model (tiny.en ctranslate2 → tiny.en onnx)"


def test_a_change_that_rounds_to_zero_has_no_sign(tmp_path):
    a = _run_folder(tmp_path, "a", rss=600.0)
    b = _run_folder(tmp_path, "b", rss=599.7)
    d = compare(load_results(a), [("b", load_results(b))], "a").pairs[0].delta("peak_rss_mib")
    assert format_change(d) == "0 MiB"


def test_percentiles_of_few_utterances_say_their_n():
    s = {"status": "ok", "n_utterances": 3, "n_failed": 0, "n_scored": 3, "n_unreferenced": 0,
         "latency_ms": {"p50": 428.0, "p90": 434.0, "p99": 435.0}}
    rows = dict(summary_rows(s))
    assert rows["latency p50/p90/p99"] == "428 ms / 434 ms / 435 ms (n = 3)"
    s.update(n_utterances=500, n_scored=500)
    assert "n =" not in dict(summary_rows(s))["latency p50/p90/p99"]


def test_each_utterance_record_carries_its_audio_content_hash(tmp_path, monkeypatch):
    """What compare matches on: the sha256 of the audio each utterance was read from, written by the merge."""
    from helpers import recorded_group

    from runner import execute
    from runner.content import file_sha256

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    job, g = recorded_group(tmp_path)
    execute.finalize(g, job.conditions[0])
    rows = [json.loads(x) for x in (tmp_path / "conditions" / "kA" / "utterances.jsonl").read_text().splitlines()]
    assert [r["audio_sha256"] for r in rows] == [file_sha256(tmp_path / "d" / f"{r['id']}.wav") for r in rows]
