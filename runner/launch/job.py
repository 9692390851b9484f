"""The host's half of the entrypoint contract: the job spec, the mounts and the environment.

Mirrors containers/common/edgeasr_entrypoint/job.py (the container's reading of
the same spec); tests/contract pins that both sides agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeasr_entrypoint.contract import CONTRACT_VERSION, DecodeOptions, Job, UtteranceJob

from ..data.lengths import SPEECH
from .paths import AudioPlan, plan_audio_mounts
from .checked_images import CONTRACT_LABEL, checked_version
from .docker_engine import BindMount
from .hardening import CACHE_ENV, HUB_CACHE_TARGET

if TYPE_CHECKING:  # the spec is read, never built, here: launch stays below spec
    from ..spec import RunSpec

OUT_TARGET = "/out"


def audio_plan(spec: RunSpec) -> AudioPlan:
    """The audio mounts of this job: only utterances whose audio passed the host's checks are mounted."""
    limits = getattr(getattr(spec, "settings", None), "limits", None)
    return plan_audio_mounts([(u.id, u.audio) for u in spec.dataset.readable],
                             limits.audio_mounts if limits is not None else None)


def make_job(spec: RunSpec, plan: AudioPlan | None = None, host_paths: bool = False,
             conditions: tuple = (), version: int = CONTRACT_VERSION, power_measured: bool | None = None,
             hold_s: float = 0.0) -> Job:
    """The job spec (the contract's Job; its ``to_json()`` is job.json); with host_paths (the local engine) audio
    and model are the host's own paths; written in contract ``version`` (what the image speaks).

    Utterances the host refused (outside the dataset's roots, missing, ...) are not in the job: merge
    records them as errors with the host's reason. ``power_measured``: whether a power sampler runs beside
    the container (None: unless --telemetry none); the loaded-idle window exists only to measure power, so
    without one it is zero rather than seconds of waiting per container (issue 26). In stream mode the job
    carries ``stream`` (its policy resolved, runner.spec.stream_job), which needs contract 4: the executor refuses
    it for an older image (Job.version_problem), and only it. ``hold_s``: a held start (contract 5; a sweep's next
    container, runner/execute.start_ahead), 0 for none."""
    stream = getattr(spec, "stream", None)
    if power_measured is None:
        power_measured = spec.telemetry.sampler != "none"
    if not host_paths:
        plan = plan or audio_plan(spec)
    model = spec.model.container_path
    if host_paths and spec.model.host_dir is not None:
        model = str(spec.model.host_dir)
    return Job(
        contract_version=version, backend=spec.backend.name, model=model, quant=spec.quant,
        backend_quant=spec.backend_quant, device=spec.device,
        decode=DecodeOptions(**spec.decode.to_json()),  # as the settings say (threads may be null: the backend's)
        warmup=spec.warmup,
        loaded_idle_s=spec.telemetry.loaded_idle_s if power_measured else 0.0,
        allow_download=spec.allow_download,
        utterances=[UtteranceJob(u.id, str(u.audio) if host_paths else plan.container_paths[u.id],
                                 segments=speech_segments(u) if stream is not None else None)
                    for u in spec.dataset.readable],
        conditions=list(conditions),
        stream=stream,  # stream mode: contract 4 (an older image is refused for it only)
        hold_s=hold_s)


def speech_segments(utt) -> tuple[tuple[float, float], ...] | None:
    """An item's speech segments (start_s, end_s) from its segment map (runner/data/lengths.py), for a stream job
    to stream it whole with them as the utterance boundaries (issue 23 item 2); None where it has none (or no
    speech in its map: it is then one utterance, as any item). Only a stream job carries them, so an offline job
    of such a dataset is still what contract 3 wrote."""
    spans = tuple((s.start_s, s.end_s) for s in getattr(utt, "segments", ()) if s.kind == SPEECH)
    return spans or None


def image_contract(labels: dict[str, str] | None, image_id: str | None = None) -> int:
    """The contract version to write a job in for an image: the newest both it (its org.edgeasr.contract label,
    else the version check-image passed the image ``image_id`` for) and this runner speak; this runner's own where
    nothing says (the local engine)."""
    label = (labels or {}).get(CONTRACT_LABEL)
    if label in (None, "") and image_id:
        checked = checked_version(image_id)
        if checked is not None:
            return min(checked, CONTRACT_VERSION)
    try:
        return min(int(label), CONTRACT_VERSION) if label not in (None, "") else CONTRACT_VERSION
    except ValueError:
        return CONTRACT_VERSION


def make_mounts(spec: RunSpec, raw_dir: Path, plan: AudioPlan | None = None) -> list[BindMount]:
    """Each audio file (or, past limits.audio_mounts, each audio folder) and the model read-only; only the
    attempt's raw folder is writable. Nothing else."""
    plan = plan or audio_plan(spec)
    mounts = [BindMount(m.source, m.target, True) for m in plan.mounts]
    mounts.append(BindMount(raw_dir, OUT_TARGET, False))
    if spec.model.host_dir is not None:
        mounts.append(BindMount(spec.model.host_dir, spec.model.container_path, True))
    return mounts


def host_path_map(spec: RunSpec, raw_dir: Path, plan: AudioPlan | None = None) -> dict[str, str]:
    """Container path -> host path, longest first, so that messages from the container name host paths."""
    plan = plan or audio_plan(spec)
    pairs = {m.target: str(m.source) for m in plan.mounts}
    pairs[OUT_TARGET] = str(raw_dir)
    if spec.model.host_dir is not None:
        pairs[spec.model.container_path] = str(spec.model.host_dir)
    return dict(sorted(pairs.items(), key=lambda kv: -len(kv[0])))


# The environment of every job container: the job's path, offline hubs, no telemetry, caches on the tmpfs.
OFFLINE_ENV = {"EDGEASR_JOB": f"{OUT_TARGET}/job.json", "HF_HUB_OFFLINE": "1", "PYANNOTE_METRICS_ENABLED": "0",
               **CACHE_ENV}


def make_env(spec: RunSpec) -> dict[str, str]:
    env = dict(OFFLINE_ENV)
    if spec.allow_download:
        env.update(HF_HUB_OFFLINE="0", HF_HOME=HUB_CACHE_TARGET, EDGEASR_DOWNLOAD_ROOT=HUB_CACHE_TARGET)
    return env
