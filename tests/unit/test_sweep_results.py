"""Stored sweep results: corrupt ones are redone (never taken as done), and changed inputs are explained."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from runner import tables as sw


def _store(out: Path, key: str, status: str = "ok", settings_key: str = "s1", inputs: dict | None = None,
           utterances: str = '{"id": "a"}\n') -> Path:
    folder = out / "conditions" / key
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"status": status, "condition": {
        "key": key, "settings_key": settings_key, "inputs": inputs or {"data_sha256": "d1", "model_sha256": "m1",
                                                                     "image_id": "i1"}}}))
    (folder / "utterances.jsonl").write_text(utterances)
    return folder


def test_a_valid_result_is_done(tmp_path):
    _store(tmp_path, "k1")
    assert sw.result_problem(tmp_path / "conditions" / "k1", "k1") is None and sw.read_result(tmp_path / "conditions" / "k1", "k1")["status"] == "ok"


def test_a_truncated_utterances_line_is_not_done(tmp_path):
    _store(tmp_path, "k1", utterances='{"id": "a"}\n{"id": "b", "hyp')
    problem = sw.result_problem(tmp_path / "conditions" / "k1", "k1")
    assert problem.endswith("utterances.jsonl:2: not valid JSON (Unterminated string starting at)")
    assert sw.read_result(tmp_path / "conditions" / "k1", "k1") is None


def test_a_summary_that_is_not_a_record_is_not_done(tmp_path):
    folder = _store(tmp_path, "k1")
    (folder / "summary.json").write_text('{"status": "maybe"}')
    assert "not a condition record" in sw.result_problem(tmp_path / "conditions" / "k1", "k1")
    (folder / "summary.json").write_text('{"status": "ok", "condition": {"key": "k2"}}')
    assert "belongs to another condition" in sw.result_problem(tmp_path / "conditions" / "k1", "k1")
    (folder / "summary.json").write_text('{"status": "ok", "condi')
    assert "not valid JSON" in sw.result_problem(tmp_path / "conditions" / "k1", "k1")
    assert sw.read_result(tmp_path / "conditions" / "k1", "k1") is None


def test_changed_inputs_are_counted_by_reason(tmp_path):
    _store(tmp_path, "old-1", settings_key="s1")
    _store(tmp_path, "old-2", settings_key="s2")
    new_inputs = {"data_sha256": "d2", "model_sha256": "m1", "image_id": "i1"}
    conds = [SimpleNamespace(key="new-1", settings_key="s1", inputs=new_inputs, result_dir=tmp_path / "conditions" / "new-1"),
             SimpleNamespace(key="new-2", settings_key="s2", inputs={**new_inputs, "model_sha256": "m2"},
                             result_dir=tmp_path / "conditions" / "new-2"),
             SimpleNamespace(key="new-3", settings_key="s3", inputs=new_inputs,
                             result_dir=tmp_path / "conditions" / "new-3")]  # never ran: not a change
    reasons = sw.changed_inputs(tmp_path, [SimpleNamespace(conditions=conds)])
    assert reasons == {"the audio or references changed": 2, "the model changed": 1}


def test_an_interrupted_result_is_not_done_and_not_called_corrupt(tmp_path):
    """A condition an interruption cut short is recorded (status interrupted) and simply runs again on resume,
    without the corrupt-result warning."""
    folder = _store(tmp_path, "k1", status="interrupted")
    assert sw.result_problem(folder, "k1") is None
    assert sw.read_result(folder, "k1") is None
