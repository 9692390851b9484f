"""Condition records and the derived tables: ``conditions.jsonl`` and ``results.csv``.

Each condition's result lives in its own folder (``summary.json`` written last, atomically). The tables are
rebuilt from those folders, never appended to, so a crash or a rerun can never leave a duplicate or half a row.
A stored result is taken as done only when it is whole and belongs to its condition; an interrupted one is
simply run again.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterable

from .plan import GroupJob, PlannedCondition
from .results import CONDITIONS_FILE, ConditionRecord, read_jsonl_checked, upgraded, write_jsonl_atomic
from .trust.untrusted import csv_cell

#: Statuses of a finished condition; "interrupted" is recorded too, but is not finished (it runs again).
RESULT_STATUSES = ("ok", "partial", "error")
#: Recorded but not finished: run again quietly (an interruption; a fleet node lost mid-group, runner/fleet/).
UNFINISHED_STATUSES = ("interrupted", "node_lost")


def result_problem(folder: Path, key: str) -> str | None:
    """Why a condition's stored result cannot be taken as done (None: it can, or there is none)."""
    path = folder / "summary.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"{path}: not valid JSON ({exc})"
    if isinstance(data, dict) and data.get("status") in UNFINISHED_STATUSES:
        return None  # not a corrupt result: a condition an interruption cut short, run again quietly
    if not isinstance(data, dict) or data.get("status") not in RESULT_STATUSES:
        return f"{path}: not a condition record (status {data.get('status') if isinstance(data, dict) else None!r})"
    if (data.get("condition") or {}).get("key") != key:
        return f"{path}: belongs to another condition"
    _, bad = read_jsonl_checked(folder / "utterances.jsonl")
    if bad:
        return bad[0]
    if not (folder / "utterances.jsonl").exists():
        return f"{folder / 'utterances.jsonl'} is missing"
    return None


def read_result(folder: Path, key: str) -> dict | None:
    """The stored result, or None when there is none, it is corrupt or it was interrupted (then it runs again)."""
    if result_problem(folder, key) is not None:
        return None
    path = folder / "summary.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    # a result of an older schema keeps counting as done, read under today's names (one results.csv column each)
    return None if data.get("status") in UNFINISHED_STATUSES else upgraded(data)


def pending(planned: list[GroupJob], retry_failed: bool = False,
            on_corrupt=lambda problem: None) -> list[tuple[GroupJob, list[PlannedCondition]]]:
    """Per group, the conditions still to run (resume): those without a finished result, and with
    ``retry_failed`` the failed ones. A corrupt stored result is redone; ``on_corrupt`` hears why."""
    todo = []
    for job in planned:
        conds = []
        for cond in job.conditions:
            problem = result_problem(cond.result_dir, cond.key)
            if problem:
                on_corrupt(problem)
            result = read_result(cond.result_dir, cond.key)
            if result is None or (retry_failed and result.get("status") == "error"):
                conds.append(cond)
        todo.append((job, conds))
    return todo


def changed_inputs(out: Path, planned: list[GroupJob]) -> dict[str, int]:
    """For conditions that will run again because an input changed since a stored result with the same
    settings: how many, by reason ("the audio changed", "the model changed", "the image changed")."""
    stored: dict[str, dict] = {}
    for path in (out / "conditions").glob("*/summary.json"):
        try:
            cond = json.loads(path.read_text(encoding="utf-8")).get("condition") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if cond.get("settings_key") and cond.get("inputs"):
            stored[cond["settings_key"]] = cond["inputs"]
    names = {"data_sha256": "the audio or references changed", "model_sha256": "the model changed",
             "image_id": "the image changed"}
    reasons: dict[str, int] = {}
    for job in planned:
        for c in job.conditions:
            old = stored.get(c.settings_key)
            if old is None or read_result(c.result_dir, c.key) is not None:
                continue
            for field_name, reason in names.items():
                if old.get(field_name) != c.inputs.get(field_name):
                    reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def condition_block(job: GroupJob, cond: PlannedCondition, summary: dict) -> dict[str, Any]:
    """A condition's stored block (in its summary.json and its conditions.jsonl line): identity in full (model
    reference, dataset path), every axis value, the settings key and inputs, the image and the target."""
    c, spec = cond.condition, job.spec
    return {"key": cond.key, "group_key": cond.group_key, "backend": spec.backend.name,
            "model": summary.get("model"), "model_ref": summary.get("model_ref"), "quant": spec.quant,
            "device": spec.device, "dataset": summary.get("dataset"), "data_path": summary.get("data_path"),
            "noise_type": c.noise_type, "snr_db": c.snr_db, "repeat": c.repeat,
            "decode": {**spec.decode.to_json(), **cond.decode}, "axes": dict(cond.axes),
            "settings_key": cond.settings_key, "inputs": cond.inputs, "image": spec.image,
            "target": spec.settings.target}


def condition_record(job: GroupJob, cond: PlannedCondition, summary: dict) -> ConditionRecord:
    """One line of conditions.jsonl: the condition's block, the status, and the condition's summary."""
    return ConditionRecord.of(condition_block(job, cond, summary), summary)


_SKIP = {"per_window", "per_rail", "labels", "unavailable", "host", "decode", "telemetry", "baseline_window_ns",
         "condition",
         # stream mode's figure data (every play's latency, the lag series): conditions.jsonl has them, a CSV
         # cell is no place for thousands of numbers
         "finalization_values_ms", "lag_series"}


def _flatten(prefix: str, value: Any, out: dict[str, Any], skip: set[str] = _SKIP) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in skip:
                _flatten(f"{prefix}.{k}" if prefix else k, v, out, skip)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def write_tables(out: Path, records: list[ConditionRecord]) -> None:
    """conditions.jsonl and results.csv (one row per condition; the axes as ``axes.<path>`` columns)."""
    write_jsonl_atomic(out / CONDITIONS_FILE, [r.to_json() for r in records])
    rows = []
    for r in records:
        row: dict[str, Any] = {}
        cond = dict(r.condition)
        _flatten("", {k: v for k, v in cond.items() if k != "axes"}, row, _SKIP - {"decode"})
        for path, value in (cond.get("axes") or {}).items():
            row[f"axes.{path}"] = value
        row["status"], row["error"] = r.status, r.error
        _flatten("", {k: v for k, v in r.summary.items() if k not in ("status", "error", "model", "dataset",
                                                                          "backend", "quant", "device",
                                                                          "condition", "model_ref", "data_path")},
                 row)
        rows.append(row)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    tmp = out / "results.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        # for spreadsheets: text made visible and never a formula (runner/trust/untrusted.py); conditions.jsonl is raw
        writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    tmp.replace(out / "results.csv")


def collect(planned: Iterable[GroupJob]) -> list[ConditionRecord]:
    """The records of every planned condition that has a finished result, in plan order."""
    records = []
    for job in planned:
        for cond in job.conditions:
            summary = read_result(cond.result_dir, cond.key)
            if summary is not None:
                records.append(condition_record(job, cond, summary))
    return records


def rebuild_tables(out: Path, planned: list[GroupJob]) -> list[ConditionRecord]:
    """conditions.jsonl and results.csv from the per-condition folders: one row per condition, never two."""
    records = collect(planned)
    write_tables(out, records)
    return records
