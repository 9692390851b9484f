"""Run an experiment: one container per (group, dataset), every condition inside it, one result per condition.

The model is loaded once per container and every noise level and repeat runs in
it, each with its own events, energy window and result. Each condition has a
stable key (a hash of its resolved settings, the image id and the data's
fingerprint); its result is written atomically the moment the condition ends, in
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
from .data import AUDIO_EXTS, Dataset
from .errors import UserError
from .experiment import Condition, Experiment, Group
from .launch import docker_engine
from .launch.backends import BACKENDS
from .launch.job import HUB_CACHE_TARGET, make_env, make_job, make_mounts
from .results import Summary, read_jsonl, write_json_atomic, write_jsonl_atomic
from .spec import RunSpec, build_run_spec
from .telemetry import accounting
from .telemetry.base import Sampler

NOISE_TARGET = "/noise"
SWEEP_LABEL = "org.edgeasr.sweep"


def _hash(obj: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def data_fingerprint(dataset: Dataset) -> str:
    """What the audio and references are, not where they are: ids, file sizes and reference texts."""
    rows = []
    for u in dataset.utterances:
        size = u.audio.stat().st_size if u.audio.exists() else None
        rows.append([u.id, size, u.reference])
    return _hash(rows, 32)


@dataclass(frozen=True)
class PlannedCondition:
    key: str
    group_key: str
    condition: Condition
    noise: dict  # the container's NoiseSpec (file paths as the container sees them)
    seed_key: str
    ids: tuple[str, ...]

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


def plan(exp: Experiment, client, models_dir: Path, out: Path) -> list[PlannedContainer]:
    """Resolve every group against models, images and data; report every problem at once."""
    problems: list[str] = []
    planned: list[PlannedContainer] = []
    for gi, group in enumerate(exp.groups):
        by_dataset: dict[str, list[Condition]] = {}
        for cond in group.conditions:
            by_dataset.setdefault(cond.dataset, []).append(cond)
        backend = BACKENDS[group.backend]
        image_ref = group.image or backend.image
        try:
            image = docker_engine.image_info(client, image_ref)
        except UserError as exc:
            problems.append(f"groups[{gi}] ({group.model} {group.quant}): {exc}")
            continue
        for dataset_path, conds in by_dataset.items():
            d = group.decode
            t = group.telemetry
            try:
                spec = build_run_spec(
                    backend=group.backend, model=group.model, quant=group.quant, device=group.device,
                    data=dataset_path, out=str(out / "groups" / "pending"), image=image_ref, models_dir=models_dir,
                    beam_size=d.get("beam_size", 5), temperature=d.get("temperature", 0.0),
                    language=d.get("language"), threads=d.get("threads"), batch_size=d.get("batch_size", 1),
                    warmup=group.warmup, timeout_s=group.timeout_s, mem_limit=group.mem_limit,
                    telemetry=t.get("sampler", "auto"), interval_ms=t.get("interval_ms", 100),
                    baseline_s=t.get("baseline_s", 5.0), baseline_w=t.get("baseline_w"),
                    loaded_idle_s=t.get("loaded_idle_s", 2.0), cooldown_max_s=t.get("cooldown_max_s", 30.0),
                    gpus=group.gpus)
            except UserError as exc:
                problems.append(f"groups[{gi}] ({group.model} {group.quant}, {dataset_path}): {exc}")
                continue
            limits = [c.limit for c in conds]
            n = None if any(lim is None for lim in limits) else max(limits)
            dataset = replace(spec.dataset, utterances=spec.dataset.utterances[:n] if n else spec.dataset.utterances)
            fingerprint = data_fingerprint(dataset)
            group_key = _hash({"group": group.settings(), "image": image.id, "data": fingerprint})
            spec = replace(spec, dataset=dataset, out=out / "groups" / group_key)
            noise_dirs = {c.noise_files for c in conds if c.noise_type == "file"}
            if len(noise_dirs) > 1:
                problems.append(f"groups[{gi}]: one container can mount one noise folder, got {sorted(noise_dirs)}")
                continue
            noise_dir = Path(next(iter(noise_dirs))) if noise_dirs else None
            pcs = []
            for cond in conds:
                try:
                    noise, seed_key = _noise_for(cond, noise_dir)
                except UserError as exc:
                    problems.append(f"groups[{gi}]: {exc}")
                    continue
                ids = tuple(u.id for u in (dataset.utterances[:cond.limit] if cond.limit else dataset.utterances))
                settings = {**cond.settings(), "dataset": fingerprint}
                key = _hash({"group": group.settings(), "condition": settings, "image": image.id, "data": fingerprint})
                pcs.append(PlannedCondition(key, group_key, cond, noise, seed_key, ids))
            planned.append(PlannedContainer(group, group_key, spec, image, pcs, noise_dir))
    if problems:
        raise UserError(f"{exp.path.name}: {len(problems)} problem(s) before the sweep could start; "
                        f"nothing was started:", problems=problems)
    return planned


# --- results ----------------------------------------------------------------------------------------------


def condition_dir(out: Path, key: str) -> Path:
    return out / "conditions" / key


def read_result(out: Path, key: str) -> dict | None:
    path = condition_dir(out, key) / "summary.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # cut short by a crash: redo it


def condition_record(pc: PlannedContainer, cond: PlannedCondition, summary: dict) -> dict:
    c = cond.condition
    return {
        "condition": {"key": cond.key, "group_key": cond.group_key, "backend": pc.group.backend,
                      "model": summary.get("model"), "quant": pc.group.quant, "device": pc.group.device,
                      "dataset": summary.get("dataset"), "noise_type": c.noise_type, "snr_db": c.snr_db,
                      "repeat": c.repeat},
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
    utts = merge.merge_utterances(dataset, transcripts, f"not transcribed: {error or 'the condition did not run'}")
    merge.score(summary, utts)
    merge.apply_container_facts(summary, merge.RawOutputs(events, transcripts, _status_from_events(events)))
    if error is None and not any(e.get("event") == "inference_end" for e in events):
        error = "the condition did not finish"
    summary.error = error
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
                  on_event: Callable[[dict], None], sweep_id: str,
                  on_started: Callable[[str], None] | None = None) -> docker_engine.ContainerRun:
    spec = pc.spec
    write_json_atomic(raw_dir / "job.json", container_job(pc, pending))
    mounts = make_mounts(spec, raw_dir)
    if pc.noise_dir is not None:
        mounts.append(docker_engine.BindMount(pc.noise_dir, NOISE_TARGET, True))
    return docker_engine.run_container(
        client, spec.image, mounts=mounts, env=make_env(spec), log_path=raw_dir / "container.log",
        on_event=on_event, device=spec.device, network=spec.allow_download, timeout_s=spec.timeout_s,
        mem_limit=spec.mem_limit, labels={SWEEP_LABEL: sweep_id},
        volumes={spec.hub_cache_volume: HUB_CACHE_TARGET} if spec.allow_download else None,
        gpus=spec.gpus, on_started=on_started,
    )


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
