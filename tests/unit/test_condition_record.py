"""The one condition record (runner/results.ConditionRecord): runner/tables.py writes it, the report reads it,
and a stored line read and written again is the same bytes, so resume and results from before the type keep
working (issue 21 item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.errors import UserError
from runner.results import ConditionRecord

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("name", ["sweep", "sweep_axes", "sweep_traces"])
def test_a_stored_line_read_and_written_again_is_the_same_bytes(name):
    """Old results (the fixtures predate the type; some lines have no schema_version) keep their keys."""
    for line in (FIXTURES / name / "conditions.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        rec = ConditionRecord.from_json(json.loads(line))
        assert json.dumps(rec.to_json(), ensure_ascii=False) == line


def test_a_line_without_a_condition_is_one_sentence():
    with pytest.raises(UserError, match="record 4 of f.jsonl has no condition with backend, model and quant"):
        ConditionRecord.from_json({"condition": {"backend": "b"}, "status": "ok"}, "f.jsonl", 4)


def test_records_are_frozen():
    rec = ConditionRecord.from_json({"condition": {"backend": "b", "model": "m", "quant": "q"}, "status": "ok"})
    with pytest.raises(AttributeError):
        rec.status = "error"  # type: ignore[misc]
