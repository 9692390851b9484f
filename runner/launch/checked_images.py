"""The images `edgeasr check-image` passed on this machine, by image id: what an image without the contract label
needs before a run or sweep starts it.

An image says which entrypoint contract it speaks with its ``org.edgeasr.contract`` label (``edgeasr images
build`` sets it). One without it (a hand build without ``EDGEASR_CONTRACT``, an image from elsewhere) says
nothing, so it is refused, unless ``edgeasr check-image`` ran its test jobs under the run's confinement and every
check passed: then its id is recorded here, with the contract version checked, which then says what a label
would (the image speaks every contract from the oldest up to it; its jobs are written in that). The record is the
user's own
(``$XDG_STATE_HOME/edgeasr/checked-images.json``, else ``~/.local/state/...``, mode 0600), keyed by image id,
so a rebuild (a new id) or a new contract version needs a new check, and a tag moved to another image does not
carry the trust with it.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RECORD_FILE = "checked-images.json"
CONTRACT_LABEL = "org.edgeasr.contract"


def record_path() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "edgeasr" / RECORD_FILE


def _read() -> dict[str, Any]:
    try:
        data = json.loads(record_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, or unreadable: nothing is trusted
        return {}
    return data if isinstance(data, dict) else {}


def checked_version(image_id: str) -> int | None:
    """The contract version check-image passed this image (by id) for, or None (never, or a record of no version):
    the image speaks every contract from the oldest up to it, as a label would say."""
    entry = _read().get(image_id)
    version = entry.get("contract") if isinstance(entry, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def passed(image_id: str) -> bool:
    """Whether check-image passed this image (by id) for a contract a job can still be written in."""
    from edgeasr_entrypoint.contract import MIN_CONTRACT_VERSION

    version = checked_version(image_id)
    return version is not None and version >= MIN_CONTRACT_VERSION


def label_problem(label: str, version: int) -> str | None:
    """Why an image whose contract label says ``label`` cannot run this runner's jobs (None: it can). The minimum
    version per feature (contract.FEATURES): an image speaks every contract from the oldest up to its label, jobs
    are written in the newest both speak (launch/job.image_contract), and only a job using a newer feature is
    refused; so only a label that is no version, or one older than any job can be written in, is a problem."""
    from edgeasr_entrypoint.contract import MIN_CONTRACT_VERSION

    if label.isdigit() and int(label) >= MIN_CONTRACT_VERSION:
        return None
    return f"speaks entrypoint contract {label}; this runner writes jobs in contract {MIN_CONTRACT_VERSION} to {version}"


def older_contract_note(label: str) -> str | None:
    """What an image of an older (still usable) contract lacks, in a phrase; None where it lacks nothing."""
    from edgeasr_entrypoint.contract import features_after

    lacking = features_after(int(label)) if label.isdigit() else []
    return f"lacks {', '.join(lacking)}: jobs that use them need a rebuild" if lacking else None


def remember(image_id: str, ref: str, contract: int) -> Path:
    """Record that every check passed for this image id; returns the record's path."""
    path = record_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = _read()
    data[image_id] = {"ref": ref, "contract": contract,
                      "checked_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
    return path


def contract_problem(ref: str, image_id: str, labels: dict[str, str], version: int,
                     checked: bool | None = None) -> str | None:
    """Why this image may not run a job of contract ``version``, or None. ``checked``: whether check-image passed
    it where it runs (a fleet node's report); None: look it up here."""
    label = labels.get(CONTRACT_LABEL)
    if label not in (None, ""):
        problem = label_problem(label, version)
        return None if problem is None else f"image {ref} {problem}"
    if passed(image_id) if checked is None else checked:
        return None
    return (f"image {ref} has no {CONTRACT_LABEL} label, so nothing says which entrypoint contract it speaks; run "
            f"`edgeasr check-image {ref}` once where it runs (an image that passes every check is remembered by its "
            f"id, {image_id[:19]}, in {record_path()}), or build it with EDGEASR_CONTRACT={version} "
            f"(containers/README.md)")
