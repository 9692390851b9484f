"""Plan: settings in, container groups out. What runs where, with which keys, before anything starts.

A plan is a list of ``GroupJob``s: one container each (the model loaded once), with its conditions
(dataset, noise level, in-container decode overrides, repeat). ``edgeasr run`` is a plan of one group (one
condition per repeat); ``edgeasr sweep`` plans every group of an experiment. The executor
(runner/execute.py) runs one GroupJob at a time, on any engine; a GroupJob is plain data (picklable), so a
remote executor can take it as it is.

Generated non-speech items (runner/data/nonspeech.py) are in every condition, except that digital silence is
left out of the noise conditions: noise is mixed at an SNR relative to an item's own power, and silence has none,
so there it would be an error, not a measurement. A --limit cuts the dataset's own items, never those.

Each sweep condition has a stable key: a hash of its effective settings (the group's, with the condition's
decode overrides applied), the image id, and the content hashes of every audio file and of the model folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeasr_entrypoint.contract import ConditionJob

from .backends import BACKENDS
from .content import HashCache
from .data.dataset import AUDIO_EXTS, Dataset
from .data.nonspeech import SILENCE, limited
from .errors import UserError
from .experiment import Condition, Experiment, Group
from .launch.docker_engine import ImageInfo
from .launch.paths import mount_problem
from .host import preflight
from .power import order_jobs
from .spec import RunSpec, build_run_spec, with_hub_models

NOISE_TARGET = "/noise"


def stable_hash(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def data_fingerprint(dataset: Dataset, hashes: HashCache) -> str:
    """What the audio and references are, not where they are: ids, the sha256 of each file's content,
    reference texts, and why an utterance is refused (so that allowing it later changes the key)."""
    rows = []
    for u in dataset.utterances:
        rows.append([u.id, None if u.problem else hashes.file(u.audio), u.reference, u.problem])
    return stable_hash(rows, 32)


def model_fingerprint(spec: RunSpec, hashes: HashCache) -> str:
    """The sha256 over the model folder's files; a hub name stands for itself (its files are not here)."""
    if spec.model.host_dir is None:
        return f"hub:{spec.model.container_path}"
    return hashes.folder(spec.model.host_dir)


@dataclass(frozen=True)
class PlannedCondition:
    key: str
    group_key: str
    condition: Condition
    noise: dict  # the container's NoiseSpec (file paths as the container sees them)
    seed_key: str
    ids: tuple[str, ...]
    settings_key: str = ""  # the key without inputs: equal settings, changed audio/model/image -> same settings_key
    inputs: dict = field(default_factory=dict)  # data_sha256, model_sha256, image_id
    result_dir: Path | None = None  # where its summary.json and utterances.jsonl go
    decode: dict = field(default_factory=dict)  # in-container decode overrides (contract: condition.decode)
    axes: dict = field(default_factory=dict)  # every axis value of its grid point (dotted path -> value)

    @property
    def label(self) -> str:
        c = self.condition
        noise = "clean" if c.noise_type == "clean" else f"{c.noise_type} {c.snr_db:g} dB"
        over = "".join(f" · {k} {v}" for k, v in self.decode.items())
        return f"{noise}{over} · repeat {c.repeat + 1}"

    def job_entry(self) -> ConditionJob:
        """This condition as the job spec names it (the contract's ConditionJob; containers/README.md,
        job.conditions)."""
        return ConditionJob(key=self.key, noise=dict(self.noise), seed_key=self.seed_key, ids=tuple(self.ids),
                            decode=dict(self.decode))


@dataclass(frozen=True)
class GroupJob:
    """One container and the conditions it runs: the unit the executor takes (plain, picklable data)."""

    key: str
    spec: RunSpec
    image: ImageInfo | None  # None: the local engine (no image)
    conditions: tuple[PlannedCondition, ...]
    group_dir: Path  # raw/ (the container's outputs) and telemetry.csv
    noise_dir: Path | None = None
    command: str = "sweep"  # run | sweep: whose containers these are (owner labels)
    settings: dict = field(default_factory=dict)  # the group's settings (JSON), as keyed

    @property
    def label(self) -> str:
        s = self.spec
        live = getattr(s, "stream", None)
        stream = (f" · {live.concurrency} stream{'s' if live.concurrency > 1 else ''} of {live.chunk_ms} ms chunks"
                  if live is not None else "")  # a concurrency sweep's containers differ only here
        return f"{s.backend.name} {s.model.name} {s.quant} {s.device}{stream}"

    def to_json(self) -> dict[str, Any]:
        """What --plan prints for this group (one JSON line)."""
        return {"group": self.key, "backend": self.spec.backend.name, "model": self.spec.model.name,
                "model_ref": str(self.spec.model.host_dir or self.spec.model.container_path),
                "quant": self.spec.quant, "device": self.spec.device, "image": self.spec.image,
                "image_id": self.image.id if self.image else None, "dataset": str(self.spec.dataset.path),
                "settings": self.settings,
                "conditions": [{"key": c.key, "noise_type": c.condition.noise_type, "snr_db": c.condition.snr_db,
                                "repeat": c.condition.repeat, "decode": c.decode, "axes": c.axes,
                                "n_utterances": len(c.ids)} for c in self.conditions]}


def noise_for(cond: Condition, noise_dir: Path | None, target: str = NOISE_TARGET) -> tuple[dict, str]:
    """The container's noise spec and seed key. The seed key leaves out the SNR and the repeat:
    every level and repeat of one noise type hears the same noise sample (a paired comparison)."""
    if cond.noise_type == "clean":
        return {"type": "clean", "snr_db": None}, "clean"
    spec: dict[str, Any] = {"type": cond.noise_type, "snr_db": float(cond.snr_db)}
    if cond.noise_type == "babble":
        spec["babble_talkers"] = cond.babble_talkers
    if cond.noise_type == "file":
        files = sorted(p for p in Path(cond.noise_files).rglob("*") if p.suffix.lower() in AUDIO_EXTS)
        if not files:
            raise UserError(f"noise folder {cond.noise_files} holds no audio files")
        spec["files"] = [f"{target}/{p.relative_to(noise_dir).as_posix()}" for p in files]
    return spec, cond.noise_type


def _split_decode(cond: Condition) -> tuple[dict, dict]:
    """(the condition's settings without decode overrides, its decode overrides)."""
    settings = cond.settings()
    overrides = settings.pop("decode", None) or dict(getattr(cond, "decode", {}) or {})
    return settings, overrides


def _effective(group_settings: dict, overrides: dict) -> dict:
    """The group's settings with a condition's decode overrides applied: what that condition really ran."""
    if not overrides:
        return group_settings
    return {**group_settings, "decode": {**group_settings.get("decode", {}), **overrides}}


def group_spec(group: Group, dataset_path: str, audio_roots: tuple[str, ...], image_ref: str, models_dir: Path,
               out: Path, engine: str, host: preflight.HostCaps | None = None, host_checks: bool = True,
               offline: bool = False) -> RunSpec:
    """The RunSpec of one (group, dataset): the same resolution and checks as `edgeasr run`."""
    return build_run_spec(
        replace(group.spec_settings, dataset=dataset_path, audio_roots=audio_roots, limit=None, image=image_ref),
        out=str(out / "groups" / "pending"), models_dir=models_dir, engine=engine,
        where=lambda path: path,  # the planner's message names the group; a dotted path names the setting
        set_by=group.origins,  # what the file set, by its key: a decode value the model cannot honour is refused
        host=host, host_checks=host_checks, offline=offline)


def host_requests(exp: Experiment) -> list[preflight.Request]:
    """What the experiment's groups ask of the host they run on (the host preflight's requests)."""
    return [preflight.Request(g.device, g.spec_settings.power, tuple(g.gpus.split(",")) if g.gpus else None)
            for g in exp.groups]


def check_host(exp: Experiment, engine: str, host: preflight.HostCaps | None = None) -> preflight.HostCaps:
    """The host preflight of a local sweep, before anything is built, installed or started: a UserError when this
    host cannot take the groups' devices or operating points (each problem once). Returns the facts read, for
    the plan to reuse."""
    caps = host or preflight.probe(engine, ask_engine=any(g.device == "cuda" for g in exp.groups))
    preflight.refuse(host_requests(exp), caps, exp.path.name,
                     fix="set device: cpu in the experiment (or exclude its cuda groups)")
    return caps


def plan_sweep(exp: Experiment, engine, models_dir: Path, out: Path, hashes: HashCache | None = None,
               host: preflight.HostCaps | None = None, host_checks: bool = True, offline: bool = False,
               log=print) -> list[GroupJob]:
    """Resolve every group against models, images and data; report every problem at once.

    ``host_checks``: this host runs the groups, so its preflight (devices, operating points) comes first, once
    per distinct request (``host``: the facts already read); off for a fleet, whose nodes report their own.
    A hub name that is not installed is downloaded at its pinned commit (``log`` says so), unless ``offline``."""
    hashes = hashes or HashCache()
    if host_checks:
        host = check_host(exp, getattr(engine, "name", "docker"), host)
    problems: list[str] = []
    planned: list[GroupJob] = []
    for gi, group in enumerate(exp.groups):
        by_dataset: dict[tuple[str, tuple[str, ...]], list[Condition]] = {}
        for cond in group.conditions:
            by_dataset.setdefault((cond.dataset, cond.audio_roots), []).append(cond)
        backend = BACKENDS[group.backend]
        try:
            image_ref = group.image or backend.default_image(device=group.device)  # this platform's (jetson-r35 / -r36)
        except UserError as exc:
            problems.append(f"groups[{gi}] ({group.model} {group.quant}): {exc}")
            continue
        for (dataset_path, audio_roots), conds in by_dataset.items():
            try:
                spec = group_spec(group, dataset_path, audio_roots, image_ref, models_dir, out, engine.name, host,
                                  host_checks, offline)
                spec = with_hub_models(spec, models_dir, log)  # a hub name: downloaded at its pinned commit
                image = engine.image(spec)
            except UserError as exc:
                problems.append(f"groups[{gi}] ({group.model} {group.quant}, {dataset_path}): {exc}")
                continue
            image_id = image.id if image is not None else f"local:{spec.backend.name}"
            limits = [c.limit for c in conds]
            n = None if any(lim is None for lim in limits) else max(limits)
            dataset = replace(spec.dataset, utterances=limited(spec.dataset.utterances, n))
            fingerprint = data_fingerprint(dataset, hashes)
            inputs = {"data_sha256": fingerprint, "model_sha256": model_fingerprint(spec, hashes),
                      "image_id": image_id}
            settings = group.settings()
            group_key = stable_hash({"group": settings, "image": image_id, "data": fingerprint,
                                     "model": inputs["model_sha256"]})
            spec = replace(spec, dataset=dataset, out=out / "groups" / group_key)
            noise_dirs = {c.noise_files for c in conds if c.noise_type == "file"}
            if len(noise_dirs) > 1:
                problems.append(f"groups[{gi}]: one container can mount one noise folder, got {sorted(noise_dirs)}")
                continue
            noise_dir = Path(next(iter(noise_dirs))) if noise_dirs else None
            if any(c.noise_type == "babble" for c in conds) and any(u.nonspeech for u in dataset.utterances):
                problems.append(f"groups[{gi}]: babble noise conditions cannot run beside non-speech items "
                                f"(nonspeech): the container draws babble talkers from every utterance of its job, "
                                f"and the non-speech items would be among them; sweep them apart")
                continue
            if noise_dir is not None and mount_problem(noise_dir, "noise.files"):
                problems.append(f"groups[{gi}]: {mount_problem(noise_dir, 'noise.files')}; a backend container "
                                f"may not see it")
                continue
            pcs = []
            for cond in conds:
                try:
                    noise, seed_key = noise_for(cond, noise_dir)
                except UserError as exc:
                    problems.append(f"groups[{gi}]: {exc}")
                    continue
                ids = tuple(u.id for u in limited(dataset.utterances, cond.limit)
                            if not (u.nonspeech == SILENCE and cond.noise_type != "clean"))
                cond_settings, overrides = _split_decode(cond)
                effective = _effective(settings, overrides)
                key = stable_hash({"group": effective, "condition": {**cond_settings, "dataset": fingerprint},
                                   "image": image_id, "data": fingerprint, "model": inputs["model_sha256"]})
                settings_key = stable_hash({"group": effective, "condition": cond_settings})
                pcs.append(PlannedCondition(key, group_key, cond, noise, seed_key, ids, settings_key, inputs,
                                            result_dir=out / "conditions" / key, decode=overrides,
                                            axes=dict(getattr(cond, "axes", {}) or {})))
            planned.append(GroupJob(group_key, spec, image, tuple(pcs), out / "groups" / group_key, noise_dir,
                                    "sweep", settings))
    hashes.save()
    if problems:
        raise UserError(f"{exp.path.name}: {len(problems)} problem(s) before the sweep could start; "
                        f"nothing was started:", problems=problems)
    return order_jobs(planned)  # each power mode's groups together: few mode switches


def plan_run(spec: RunSpec, image: ImageInfo | None, repeats: int = 1, limit: int | None = None) -> GroupJob:
    """`edgeasr run` as a plan: one group, one clean condition per repeat over the first ``limit`` utterances.

    One repeat writes its result into the run folder itself (summary.json, utterances.jsonl, as always);
    several write one folder each under conditions/, with the run folder's summary.json over all of them."""
    dataset = spec.dataset
    if limit:
        dataset = replace(dataset, utterances=limited(dataset.utterances, limit))
        spec = replace(spec, dataset=dataset)
    key = stable_hash({"run": str(spec.out)})
    ids = tuple(u.id for u in dataset.utterances)
    conds = []
    for r in range(repeats):
        cond = Condition(dataset=str(dataset.path), noise_type="clean", snr_db=None, repeat=r, limit=limit)
        ckey = key if repeats == 1 else f"{key}-r{r + 1}"
        result_dir = spec.out if repeats == 1 else spec.out / "conditions" / ckey
        conds.append(PlannedCondition(ckey, key, cond, {"type": "clean", "snr_db": None}, "clean", ids,
                                      result_dir=result_dir, axes={"repeat": r} if repeats > 1 else {}))
    settings = {"backend": spec.backend.name, "model": spec.model.name, "quant": spec.quant, "device": spec.device,
                "image": spec.image, "decode": spec.decode.to_json(), "warmup": spec.warmup}
    if spec.stream is not None:  # stream mode (its policy resolved); an offline run's settings stay as they were
        settings["stream"] = spec.stream.to_json()
    return GroupJob(key, spec, image, tuple(conds), spec.out, None, "run", settings)
