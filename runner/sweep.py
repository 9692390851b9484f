"""Run an experiment: one container per (group, dataset), every condition inside it, one result per condition.

The model is loaded once per container and every noise level and repeat runs in
it, each with its own events, energy window and result. Each condition has a
stable key (a hash of its resolved settings, the image id, and the content
hashes of every audio file and of the model folder); its result is written atomically the moment the condition ends, in
``conditions/<key>/``. A re-run skips every condition that has a result, redoes
the one a crash interrupted, and never duplicates a row, because the derived
files (``conditions.jsonl``, ``results.csv``) are rebuilt from those folders.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import merge
from .content import HashCache
from .data import AUDIO_EXTS, Dataset
from .errors import UserError
from .experiment import Condition, Experiment, Group
from .launch import docker_engine
from .launch.backends import BACKENDS
from .launch.job import host_path_map, make_job, run_job_container
from .launch.owner import Owner
from .paths import mount_problem
from .results import Summary, read_jsonl, read_jsonl_checked, write_json_atomic, write_jsonl_atomic
from .spec import RunSpec, build_run_spec
from .telemetry import accounting
from .telemetry.base import Sampler

NOISE_TARGET = "/noise"
SWEEP_LABEL = "org.edgeasr.sweep"


def _hash(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def data_fingerprint(dataset: Dataset, hashes: HashCache) -> str:
    """What the audio and references are, not where they are: ids, the sha256 of each file's content,
    reference texts, and why an utterance is refused (so that allowing it later changes the key)."""
    rows = []
    for u in dataset.utterances:
        rows.append([u.id, None if u.problem else hashes.file(u.audio), u.reference, u.problem])
    return _hash(rows, 32)


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

    @property
    def label(self) -> str:
        c = self.condition
        noise = "clean" if c.noise_type == "clean" else f"{c.noise_type} {c.snr_db:g} dB"
        return f"{noise} · repeat {c.repeat + 1}"


@dataclass
class PlannedContainer:
    group: Group
    group_key: str
    spec: RunSpec
    image: docker_engine.ImageInfo
    conditions: list[PlannedCondition]
    noise_dir: Path | None = None

    @property
    def label(self) -> str:
        g = self.group
        return f"{g.backend} {Path(g.model).name} {g.quant} {g.device}"


def _noise_for(cond: Condition, noise_dir: Path | None) -> tuple[dict, str]:
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
        spec["files"] = [f"{NOISE_TARGET}/{p.relative_to(noise_dir).as_posix()}" for p in files]
    return spec, cond.noise_type


def plan(exp: Experiment, client, models_dir: Path, out: Path, hashes: HashCache | None = None
         ) -> list[PlannedContainer]:
    """Resolve every group against models, images and data; report every problem at once."""
    hashes = hashes or HashCache()
    problems: list[str] = []
    planned: list[PlannedContainer] = []
    for gi, group in enumerate(exp.groups):
        by_dataset: dict[tuple[str, tuple[str, ...]], list[Condition]] = {}
        for cond in group.conditions:
            by_dataset.setdefault((cond.dataset, cond.audio_roots), []).append(cond)
        backend = BACKENDS[group.backend]
        try:
            image_ref = group.image or backend.default_image()  # this platform's (jetson-r35 / -r36)
            image = docker_engine.image_info(client, image_ref)
        except UserError as exc:
            problems.append(f"groups[{gi}] ({group.model} {group.quant}): {exc}")
            continue
        for (dataset_path, audio_roots), conds in by_dataset.items():
            try:
                spec = build_run_spec(
                    replace(group.spec_settings, dataset=dataset_path, audio_roots=audio_roots, limit=None,
                            image=image_ref),
                    out=str(out / "groups" / "pending"), models_dir=models_dir,
                    where=lambda path: path)  # the message below names the group; a key names the setting
            except UserError as exc:
                problems.append(f"groups[{gi}] ({group.model} {group.quant}, {dataset_path}): {exc}")
                continue
            limits = [c.limit for c in conds]
            n = None if any(lim is None for lim in limits) else max(limits)
            dataset = replace(spec.dataset, utterances=spec.dataset.utterances[:n] if n else spec.dataset.utterances)
            fingerprint = data_fingerprint(dataset, hashes)
            inputs = {"data_sha256": fingerprint, "model_sha256": model_fingerprint(spec, hashes),
                      "image_id": image.id}
            group_key = _hash({"group": group.settings(), "image": image.id, "data": fingerprint,
                               "model": inputs["model_sha256"]})
            spec = replace(spec, dataset=dataset, out=out / "groups" / group_key)
            noise_dirs = {c.noise_files for c in conds if c.noise_type == "file"}
            if len(noise_dirs) > 1:
                problems.append(f"groups[{gi}]: one container can mount one noise folder, got {sorted(noise_dirs)}")
                continue
            noise_dir = Path(next(iter(noise_dirs))) if noise_dirs else None
            if noise_dir is not None and mount_problem(noise_dir, "noise.files"):
                problems.append(f"groups[{gi}]: {mount_problem(noise_dir, 'noise.files')}; a backend container "
                                f"may not see it")
                continue
            pcs = []
            for cond in conds:
                try:
                    noise, seed_key = _noise_for(cond, noise_dir)
                except UserError as exc:
                    problems.append(f"groups[{gi}]: {exc}")
                    continue
                ids = tuple(u.id for u in (dataset.utterances[:cond.limit] if cond.limit else dataset.utterances))
                settings = {**cond.settings(), "dataset": fingerprint}
                key = _hash({"group": group.settings(), "condition": settings, "image": image.id, "data": fingerprint,
                             "model": inputs["model_sha256"]})
                settings_key = _hash({"group": group.settings(), "condition": cond.settings()})
                pcs.append(PlannedCondition(key, group_key, cond, noise, seed_key, ids, settings_key, inputs))
            planned.append(PlannedContainer(group, group_key, spec, image, pcs, noise_dir))
    hashes.save()
    if problems:
        raise UserError(f"{exp.path.name}: {len(problems)} problem(s) before the sweep could start; "
                        f"nothing was started:", problems=problems)
    return planned


# --- results ----------------------------------------------------------------------------------------------


def condition_dir(out: Path, key: str) -> Path:
    return out / "conditions" / key


RESULT_STATUSES = ("ok", "partial", "error")


def result_problem(out: Path, key: str) -> str | None:
    """Why a condition's stored result cannot be taken as done (None: it can, or there is none)."""
    folder = condition_dir(out, key)
    path = folder / "summary.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"{path}: not valid JSON ({exc})"
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


def read_result(out: Path, key: str) -> dict | None:
    """The stored result, or None when there is none or it is corrupt (then the condition is redone)."""
    if result_problem(out, key) is not None:
        return None
    path = condition_dir(out, key) / "summary.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def changed_inputs(out: Path, planned: list[PlannedContainer]) -> dict[str, int]:
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
    for pc in planned:
        for c in pc.conditions:
            old = stored.get(c.settings_key)
            if old is None or read_result(out, c.key) is not None:
                continue
            for field_name, reason in names.items():
                if old.get(field_name) != c.inputs.get(field_name):
                    reasons[reason] = reasons.get(reason, 0) + 1
    return reasons


def condition_record(pc: PlannedContainer, cond: PlannedCondition, summary: dict) -> dict:
    c = cond.condition
    return {
        "condition": {"key": cond.key, "group_key": cond.group_key, "backend": pc.group.backend,
                      "model": summary.get("model"), "quant": pc.group.quant, "device": pc.group.device,
                      "dataset": summary.get("dataset"), "noise_type": c.noise_type, "snr_db": c.snr_db,
                      "repeat": c.repeat, "settings_key": cond.settings_key, "inputs": cond.inputs,
                      "image": pc.spec.image},
        "status": summary.get("status"),
        "error": summary.get("error"),
        "summary": summary,
    }


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    skip = {"per_window", "per_rail", "labels", "unavailable", "host", "decode", "telemetry", "baseline_window_ns"}
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in skip:
                _flatten(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value


def rebuild_tables(out: Path, planned: list[PlannedContainer]) -> list[dict]:
    """conditions.jsonl and results.csv from the per-condition folders: one row per condition, never two."""
    records = []
    for pc in planned:
        for cond in pc.conditions:
            summary = read_result(out, cond.key)
            if summary is not None:
                records.append(condition_record(pc, cond, summary))
    write_jsonl_atomic(out / "conditions.jsonl", records)
    rows = []
    for r in records:
        row: dict[str, Any] = {}
        _flatten("", r["condition"], row)
        row["status"], row["error"] = r["status"], r["error"]
        _flatten("", {k: v for k, v in r["summary"].items() if k not in ("status", "error", "model", "dataset",
                                                                          "backend", "quant", "device",
                                                                          "condition")}, row)
        rows.append(row)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    tmp = out / "results.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(out / "results.csv")
    return records


# --- one condition's result from the container's raw outputs ---------------------------------------------


def condition_events(events: list[dict], key: str) -> list[dict]:
    """The container-wide events plus this condition's own, its window renamed to the inference window,
    so that the single-run merge and energy accounting apply unchanged."""
    shared = {"container_start", "load_start", "load_end", "model_info", "warmup_start", "warmup_end",
              "warmup_skipped", "loaded_idle_start", "loaded_idle_end", "container_end"}
    rename = {"condition_start": "inference_start", "condition_end": "inference_end"}
    out = []
    for e in events:
        if e.get("event") in shared:
            out.append(e)
        elif e.get("condition") == key:
            out.append({**e, "event": rename.get(e["event"], e["event"])})
    return out


def _status_from_events(events: list[dict]) -> dict | None:
    """The status facts a condition can know before the container ends (model_info + condition_end)."""
    info = next((e for e in events if e.get("event") == "model_info"), None)
    end = next((e for e in reversed(events) if e.get("event") == "inference_end"), None)
    if info is None:
        return None
    return {"versions": info.get("versions"), "n_params": info.get("n_params"),
            "model_size_mb": info.get("model_size_mb"), "rss_after_load_mb": info.get("rss_after_load_mb"),
            "peak_rss_mb": end.get("peak_rss_mb") if end else None,
            "peak_vram_mb": end.get("peak_vram_mb") if end else None,
            "audio_cache_mb": end.get("audio_cache_mb") if end else None,
            "peak_rss_scope": end.get("peak_rss_scope") if end else None}


@dataclass
class GroupContext:
    """What the finalizer of a condition needs from its container's run."""

    pc: PlannedContainer
    raw_dir: Path
    out: Path
    sampler: Sampler
    energy_reason: str | None
    baseline: accounting.Baseline | None
    started_at: str
    done: set = field(default_factory=set)
    owner: accounting.ProcessOwner | None = None  # set when the container starts (its id marks its processes)


def finalize_condition(ctx: GroupContext, cond: PlannedCondition, error: str | None = None) -> dict:
    """Merge, score and account one condition; write its folder atomically (summary.json last)."""
    pc, spec = ctx.pc, ctx.pc.spec
    events = condition_events(read_jsonl(ctx.raw_dir / "events.jsonl"), cond.key)
    transcripts = [t for t in read_jsonl(ctx.raw_dir / "transcripts.jsonl") if t.get("condition") == cond.key]
    wanted = set(cond.ids)
    dataset = replace(spec.dataset, utterances=tuple(u for u in spec.dataset.utterances if u.id in wanted))
    summary = Summary(backend=spec.backend.name, model=spec.model.name, quant=spec.quant, device=spec.device,
                      dataset=dataset.name, status="error", backend_quant=spec.backend_quant,
                      model_source=spec.model.source, data_path=str(dataset.path), decode=spec.decode.to_json(),
                      warmup=spec.warmup, image={"ref": spec.image, "id": pc.image.id, "tags": pc.image.tags,
                                                 "labels": pc.image.labels},
                      started_at=ctx.started_at, telemetry=spec.telemetry.to_json())
    paths = host_path_map(spec, ctx.raw_dir)
    utts = merge.merge_utterances(dataset, transcripts, f"not transcribed: {error or 'the condition did not run'}",
                                  paths)
    merge.score(summary, utts)
    merge.apply_container_facts(summary, merge.RawOutputs(events, transcripts, _status_from_events(events)))
    if error is None and not any(e.get("event") == "inference_end" for e in events):
        error = "the condition did not finish"
    summary.error = merge.host_paths(error, paths)
    summary.hardening = spec.hardening.describe()
    summary.status = "error" if error else ("partial" if summary.n_failed else "ok")
    if ctx.energy_reason is None:
        end = next((e["mono_ns"] for e in reversed(events) if e.get("event") == "inference_end"), None)
        if end is not None:  # a sample past the window's end must exist before the window is integrated
            deadline = time.monotonic() + 2.0 + 3 * spec.telemetry.interval_ms / 1000.0
            while ctx.sampler.running and ctx.sampler.samples[-1:] and (ctx.sampler.samples[-1].mono_ns or 0) < end \
                    and time.monotonic() < deadline:
                time.sleep(spec.telemetry.interval_ms / 4000.0)
    utts = merge.account_energy(summary, utts, ctx.sampler.name, ctx.sampler.samples, events, ctx.baseline,
                                ctx.energy_reason, spec.telemetry.interval_ms, ctx.owner, ctx.sampler.health(),
                                ctx.sampler.companions)
    folder = condition_dir(ctx.out, cond.key)
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(folder / "utterances.jsonl", [u.__dict__ for u in utts])
    data = summary.to_json()
    data["condition"] = condition_record(pc, cond, data)["condition"]
    write_json_atomic(folder / "summary.json", data)
    ctx.done.add(cond.key)
    return data


def container_job(pc: PlannedContainer, pending: list[PlannedCondition]) -> dict:
    job = make_job(pc.spec)
    job["conditions"] = [{"key": c.key, "noise": c.noise, "seed_key": c.seed_key, "ids": list(c.ids)}
                         for c in pending]
    return job


def run_container(client, pc: PlannedContainer, pending: list[PlannedCondition], raw_dir: Path,
                  on_event: Callable[[dict], None], sweep_id: str, out: Path,
                  on_started: Callable[[str], None] | None = None) -> docker_engine.ContainerRun:
    extra = (docker_engine.BindMount(pc.noise_dir, NOISE_TARGET, True),) if pc.noise_dir is not None else ()
    return run_job_container(client, pc.spec, container_job(pc, pending), raw_dir, on_event=on_event,
                             owner=Owner.me(out, "sweep"), extra_mounts=extra, labels={SWEEP_LABEL: sweep_id},
                             on_started=on_started)


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
