"""The job spec a backend container receives: parsed and checked before the model loads.

The host writes it (runner/launch/job.py); this is the container's reading of the
same contract, whose record types live in contract.py. It stays free of any backend
library so that every image, and the host's tests, can import it.
"""

from __future__ import annotations

import json
from pathlib import Path

from .contract import (CONTRACT_VERSION, IN_CONTAINER_DECODE, ConditionJob, DecodeOptions, Job,  # noqa: F401
                       JobError, UtteranceJob)  # (the record types and their checks live in contract.py;
#                                                  re-exported for older imports)


def parse_job(data: dict) -> Job:
    """Check every field the entrypoint relies on; raise JobError naming the key (Job.from_json)."""
    return Job.from_json(data)


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
