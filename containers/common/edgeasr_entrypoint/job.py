"""The job spec a backend container receives: parsed and checked before the model loads.

The host writes it (runner/launch/job.py); this is the container's reading of the
same contract, whose record types live in contract.py. It stays free of any backend
library so that every image, and the host's tests, can import it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .contract import (CONTRACT_VERSION, IN_CONTAINER_DECODE, ConditionJob, DecodeOptions, Job,  # noqa: F401
                       UtteranceJob)  # (the record types live in contract.py; re-exported for older imports)


class JobError(ValueError):
    """The job spec is malformed; the container reports it in status.json and exits 2."""


def _require(obj: dict, key: str, kind: type, where: str = "job") -> Any:
    if key not in obj:
        raise JobError(f"{where}.{key} is missing")
    value = obj[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise JobError(f"{where}.{key} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _condition_decode(raw: Any, where: str) -> dict:
    """A condition's decode overrides: only the fields a loaded model can change (IN_CONTAINER_DECODE),
    each of the type the entrypoint relies on (the batch size slices the utterances)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise JobError(f"{where}.decode must be an object")
    for key in raw:
        if key not in IN_CONTAINER_DECODE:
            known = key in DecodeOptions.__dataclass_fields__
            fixed = " (it is fixed when the model loads: set it in job.decode)" if known else ""
            raise JobError(f"{where}.decode.{key} cannot be set per condition{fixed}; "
                           f"a condition may override {', '.join(IN_CONTAINER_DECODE)}")
    _check_decode(dict(raw), f"{where}.decode")
    return dict(raw)


def _check_decode(raw: dict, where: str) -> None:
    """The types and ranges of the overridable decode fields."""
    for key in ("beam_size", "batch_size"):
        if key in raw and (isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 1):
            raise JobError(f"{where}.{key} must be a positive integer, got {raw[key]!r}")
    if "temperature" in raw and (isinstance(raw["temperature"], bool)
                                 or not isinstance(raw["temperature"], (int, float)) or raw["temperature"] < 0):
        raise JobError(f"{where}.temperature must be a non-negative number, got {raw['temperature']!r}")
    if "language" in raw and raw["language"] is not None and not isinstance(raw["language"], str):
        raise JobError(f"{where}.language must be a language code or null, got {raw['language']!r}")
    weight = raw.get("ctc_weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                               or not 0 <= weight <= 1):
        raise JobError(f"{where}.ctc_weight must be a number from 0 to 1 or null, got {weight!r}")


def parse_job(data: dict) -> Job:
    """Check every field the entrypoint relies on; raise JobError naming the key."""
    if not isinstance(data, dict):
        raise JobError("job must be a JSON object")
    version = _require(data, "contract_version", int)
    if version != CONTRACT_VERSION:
        raise JobError(f"job.contract_version is {version}, this image speaks contract {CONTRACT_VERSION}")
    decode_raw = data.get("decode", {})
    if not isinstance(decode_raw, dict):
        raise JobError("job.decode must be an object")
    known = set(DecodeOptions.__dataclass_fields__)
    unknown = sorted(set(decode_raw) - known)
    if unknown:
        raise JobError(f"job.decode has unknown keys {unknown}; known: {sorted(known)}")
    _check_decode(decode_raw, "job.decode")
    decode = DecodeOptions(**decode_raw)
    utts_raw = _require(data, "utterances", list)
    utterances = []
    for i, u in enumerate(utts_raw):
        if not isinstance(u, dict):
            raise JobError(f"job.utterances[{i}] must be an object")
        utterances.append(UtteranceJob(id=str(_require(u, "id", str, f"job.utterances[{i}]")),
                                       audio=_require(u, "audio", str, f"job.utterances[{i}]")))
    warmup = data.get("warmup", 1)
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise JobError("job.warmup must be a non-negative integer")
    conditions = []
    for i, c in enumerate(data.get("conditions") or []):
        where = f"job.conditions[{i}]"
        if not isinstance(c, dict):
            raise JobError(f"{where} must be an object")
        ids = c.get("ids")
        if ids is not None and not isinstance(ids, list):
            raise JobError(f"{where}.ids must be a list of utterance ids or null")
        conditions.append(ConditionJob(key=_require(c, "key", str, where), noise=_require(c, "noise", dict, where),
                                       seed_key=str(c.get("seed_key", c["key"])),
                                       ids=tuple(ids) if ids is not None else None,
                                       decode=_condition_decode(c.get("decode"), where)))
    loaded_idle_s = data.get("loaded_idle_s", 0.0)
    if not isinstance(loaded_idle_s, (int, float)) or isinstance(loaded_idle_s, bool) or loaded_idle_s < 0:
        raise JobError("job.loaded_idle_s must be a non-negative number of seconds")
    return Job(
        loaded_idle_s=float(loaded_idle_s),
        conditions=conditions,
        contract_version=version,
        backend=_require(data, "backend", str),
        model=_require(data, "model", str),
        quant=_require(data, "quant", str),
        backend_quant=_require(data, "backend_quant", str),
        device=_require(data, "device", str),
        decode=decode,
        warmup=warmup,
        utterances=utterances,
        allow_download=bool(data.get("allow_download", False)),
    )


def read_job(path: Path) -> Job:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise JobError(f"cannot read job spec {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobError(f"job spec {path} is not valid JSON: {exc}") from exc
    return parse_job(data)
