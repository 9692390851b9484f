"""The host's half of the entrypoint contract: the job spec, the mounts and the environment.

Mirrors containers/common/edgeasr_entrypoint/job.py (the container's reading of
the same spec); tests/contract pins that both sides agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..spec import RunSpec
from .docker_engine import BindMount

CONTRACT_VERSION = 2
OUT_TARGET = "/out"
HUB_CACHE_TARGET = "/cache/hf"


def make_job(spec: RunSpec, host_paths: bool = False) -> dict[str, Any]:
    """The job spec; with host_paths (the local engine) audio and model are the host's own paths."""
    ds = spec.dataset
    model = spec.model.container_path
    if host_paths and spec.model.host_dir is not None:
        model = str(spec.model.host_dir)
    return {
        "contract_version": CONTRACT_VERSION,
        "backend": spec.backend.name,
        "model": model,
        "quant": spec.quant,
        "backend_quant": spec.backend_quant,
        "device": spec.device,
        "decode": spec.decode.to_json(),
        "warmup": spec.warmup,
        "loaded_idle_s": spec.telemetry.loaded_idle_s if spec.telemetry.sampler != "none" else 0.0,
        "allow_download": spec.allow_download,
        "utterances": [{"id": u.id, "audio": str(u.audio) if host_paths else ds.container_path(u)}
                       for u in ds.utterances],
    }


def make_mounts(spec: RunSpec, raw_dir: Path) -> list[BindMount]:
    """Audio and model read-only; only the run's raw folder is writable."""
    mounts = [BindMount(spec.dataset.mount_root, "/data", True), BindMount(raw_dir, OUT_TARGET, False)]
    if spec.model.host_dir is not None:
        mounts.append(BindMount(spec.model.host_dir, spec.model.container_path, True))
    return mounts


def make_env(spec: RunSpec) -> dict[str, str]:
    env = {"EDGEASR_JOB": f"{OUT_TARGET}/job.json", "HF_HUB_OFFLINE": "1", "PYANNOTE_METRICS_ENABLED": "0"}
    if spec.allow_download:
        env.update(HF_HUB_OFFLINE="0", HF_HOME=HUB_CACHE_TARGET, EDGEASR_DOWNLOAD_ROOT=HUB_CACHE_TARGET)
    return env
