"""Execute one GroupJob: sample power, run its container on an engine, turn each condition into a result.

The one executor behind `edgeasr run` and `edgeasr sweep` (and the seam a remote executor plugs into): a
GroupJob in (runner/plan.py, plain data), records out, each condition's folder written atomically the moment
the condition ends, so an interruption loses only the condition in progress. Progress views are passed in as
callbacks; nothing here draws.

Per condition: its events (the container-wide ones plus its own, its window renamed to the inference window),
its transcripts merged with the references, its energy over its own windows. After the container ends every
condition is merged once more with the container's final record (status.json, engine overhead).
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager

from edgeasr_entrypoint.contract import CONTAINER_WIDE_EVENTS, Event

from . import merge
from .errors import UserError, signal_name
from .host import load as hostload
from .launch.docker_engine import BindMount, ContainerRun
from .launch.engines import Engine, Launch
from .launch.job import audio_plan, host_path_map, make_env, make_job, make_mounts
from .launch.owner import Owner
from .models.resolve import random_weights_reason
from .plan import NOISE_TARGET, GroupJob, PlannedCondition
from .power import operating_point_for
from .results import Summary, write_json_atomic, write_jsonl_atomic
from .safe_io import fresh_folder
from .settings import LimitsSettings
from .tables import condition_record
from .telemetry.energy import accounting
from .telemetry.energy.idle import idle_baseline
from .telemetry.samplers.base import Sampler
from .telemetry.samplers.registry import health as sampler_health
from .telemetry.samplers.select import select_sampler

SWEEP_LABEL = "org.edgeasr.sweep"
_RENAME = {Event.CONDITION_START: Event.INFERENCE_START, Event.CONDITION_END: Event.INFERENCE_END}


def _noop(*_args, **_kwargs) -> None:
    return None


@dataclass
class Callbacks:
    """What the executor tells the view (all optional): every event, each condition's start and result."""

    on_event: Callable[[dict[str, Any]], None] = _noop
    on_condition_start: Callable[[PlannedCondition], None] = _noop
    on_condition_done: Callable[[PlannedCondition, dict[str, Any]], None] = _noop
    on_sampler: Callable[[Sampler | None], None] = _noop
    #: Wraps the idle-baseline wait (a spinner, say): called with a sentence, returns a context manager.
    waiting: Callable[[str], ContextManager] = lambda _text: contextlib.nullcontext()
    #: A sentence the person running it should read (plain text, never markup): what the container can see.
    on_notice: Callable[[str], None] = _noop


@dataclass
class GroupResult:
    records: list[dict[str, Any]]
    baseline: accounting.Baseline | None
    run: ContainerRun | None
    interrupted: KeyboardInterrupt | None = None


def stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def condition_events(events: list[dict], key: str) -> list[dict]:
    """The container-wide events plus this condition's own, its window renamed to the inference window,
    so that the merge and the energy accounting apply unchanged."""
    out = []
    for e in events:
        if e.get("event") in CONTAINER_WIDE_EVENTS:
            out.append(e)
        elif e.get("condition") == key:
            out.append({**e, "event": _RENAME.get(e["event"], e["event"])})
    return out


def condition_status(events: list[dict], status: dict | None, whole_container: bool) -> dict | None:
    """The container facts a condition reports: the final record (status.json) when there is one, else what
    the events said (model_info); memory peaks from the condition's own end, unless this condition was the
    container's whole work (then the process peak, load included, is its peak)."""
    info = next((e for e in events if e.get("event") == Event.MODEL_INFO), None)
    end = next((e for e in reversed(events) if e.get("event") == Event.INFERENCE_END), None)
    if status is None and info is None:
        return None
    out = dict(status or {})
    if info is not None:
        for k in ("versions", "n_params", "model_size_mb", "rss_after_load_mb", "device_used"):
            out.setdefault(k, info.get(k))
    if end is not None and not (whole_container and status is not None):
        for k in ("peak_rss_mb", "peak_vram_mb", "audio_cache_mb", "peak_rss_scope"):
            out[k] = end.get(k)
    return out


def new_summary(job: GroupJob, cond: PlannedCondition, dataset, host: dict[str, Any], started_at: str,
                engine: str) -> Summary:
    """The one place a condition's Summary is begun: settings, identity in full, image, host, engine."""
    spec = job.spec
    decode = {**spec.decode.to_json(), **cond.decode}
    return Summary(backend=spec.backend.name, model=spec.model.name, quant=spec.quant, device=spec.device,
                   dataset=dataset.name, status="error", backend_quant=spec.backend_quant,
                   model_source=spec.model.source,
                   model_ref=str(spec.model.host_dir) if spec.model.host_dir else spec.model.container_path,
                   data_path=str(dataset.path), decode=decode, warmup=spec.warmup,
                   image={"ref": spec.image, "id": job.image.id if job.image else None,
                          "tags": job.image.tags if job.image else [],
                          "labels": job.image.labels if job.image else {}},
                   host=dict(host), started_at=started_at, engine=engine, telemetry=spec.telemetry.to_json(),
                   hardening=spec.hardening.describe() if engine == "docker" else {})


@dataclass
class _Group:
    job: GroupJob
    pending: list[PlannedCondition]
    raw_dir: Path
    sampler: Sampler
    energy_reason: str | None
    host: dict[str, Any]
    engine: str
    paths: dict[str, str]
    started_at: str = field(default_factory=stamp)
    baseline: accounting.Baseline | None = None
    owner: accounting.ProcessOwner | None = None
    done: dict[str, dict] = field(default_factory=dict)
    power: Any = None  # the operating point's record (runner/power.PowerRecord), None when none was set
    load_before: hostload.LoadSnapshot | None = None  # the host just before the container started
    load_after: hostload.LoadSnapshot | None = None  # and just after it ended (None while it runs)
    cpu_start: dict[str, hostload.CpuSnapshot] = field(default_factory=dict)  # at each condition's start
    windows: dict[str, hostload.WindowLoad] = field(default_factory=dict)  # other work in each timed window

    def cpu_now(self) -> hostload.CpuSnapshot:
        """Every process's CPU time now, the run's own container marked (a load fact never stops a run)."""
        try:
            return hostload.cpu_snapshot(self.owner.container_id if self.owner is not None else None)
        except Exception as exc:  # noqa: BLE001 - /proc in an unexpected shape: recorded, never fatal
            return hostload.CpuSnapshot(time.monotonic(), 1, unavailable=f"/proc could not be read: {exc!r}")

    def close_window(self, key: str) -> None:
        """The other work during condition ``key``'s timed window, from its start's snapshot to now."""
        start = self.cpu_start.pop(key, None)
        if start is not None:
            names = self.load_before.other_container_ids if self.load_before is not None else {}
            self.windows[key] = hostload.window_load(start, self.cpu_now(), names)


def _wait_for_sample_past(g: _Group, events: list[dict]) -> None:
    """A sample past the window's end must exist before the window is integrated."""
    end = next((e["mono_ns"] for e in reversed(events) if e.get("event") == Event.INFERENCE_END), None)
    interval = g.job.spec.telemetry.interval_ms
    if g.energy_reason is not None or end is None:
        return
    deadline = time.monotonic() + 2.0 + 3 * interval / 1000.0
    while g.sampler.running and g.sampler.samples[-1:] and (g.sampler.samples[-1].mono_ns or 0) < end \
            and time.monotonic() < deadline:
        time.sleep(interval / 4000.0)


def limits_of(spec) -> LimitsSettings:
    return getattr(getattr(spec, "settings", None), "limits", None) or LimitsSettings()


def finalize(g: _Group, cond: PlannedCondition, error: str | None = None, status: dict | None = None,
             overhead: dict[str, float] | None = None, interrupted: bool = False) -> dict:
    """Merge, score and account one condition; write its folder atomically (summary.json last). What the
    container left that was not read (merge.read_raw: a link, a FIFO, a line over its limit) fails it."""
    spec = g.job.spec
    limits = limits_of(spec)
    raw = merge.read_raw(g.raw_dir, limits)
    if raw.problem:
        error = raw.problem if error is None else f"{error}; {raw.problem}"
    events = condition_events(raw.events, cond.key)
    transcripts = [t for t in raw.transcripts if t.get("condition") == cond.key]
    wanted = set(cond.ids)
    dataset = replace(spec.dataset, utterances=tuple(u for u in spec.dataset.utterances if u.id in wanted))
    summary = new_summary(g.job, cond, dataset, g.host, g.started_at, g.engine)
    finished = any(e.get("event") == Event.INFERENCE_END for e in events)
    if error is None and not finished:
        error = "the condition did not finish"
    utts = merge.merge_utterances(dataset, transcripts, f"not transcribed: {error or 'the condition did not run'}",
                                  g.paths, limits.hypothesis_bytes)
    merge.score(summary, utts)
    unscored = random_weights_reason(spec.model.host_dir)
    if unscored is not None:
        utts = merge.not_a_result(summary, utts, unscored)
    whole = len(g.pending) == 1
    merge.apply_container_facts(summary, merge.RawOutputs(events, transcripts,
                                                          condition_status(events, status, whole)))
    error = error or merge.device_error(summary)  # an image that does not refuse it itself: never a GPU figure
    summary.error = merge.host_paths(error, g.paths)
    summary.status = ("interrupted" if interrupted and not finished else "error" if error
                      else ("partial" if summary.n_failed else "ok"))
    _wait_for_sample_past(g, events)
    utts = merge.account_energy(summary, utts, g.sampler.name, g.sampler.samples, events, g.baseline,
                                g.energy_reason, spec.telemetry.interval_ms, g.owner, sampler_health(g.sampler),
                                g.sampler.companions)
    summary.overhead_s = overhead
    summary.power = g.power.to_json() if g.power is not None else None
    folder = cond.result_dir
    folder.mkdir(parents=True, exist_ok=True)
    try:
        write_jsonl_atomic(folder / "utterances.jsonl", [u.__dict__ for u in utts])
    finally:  # a full disk: the small summary may still fit, and says what happened
        data = summary.to_json()
        if g.load_before is not None:
            data["host_load"] = hostload.host_load_record(g.load_before, g.load_after,
                                                          window=g.windows.get(cond.key))
        data["condition"] = condition_record(g.job, cond, data)["condition"]
        write_json_atomic(folder / "summary.json", data)
    g.done[cond.key] = data
    return data


def overhead(run: ContainerRun, events: list[dict], merge_s: float) -> dict[str, float]:
    """Seconds spent outside the model's work: engine start, interpreter boot, exit, merge."""
    out = {"engine_start_s": run.create_to_start_s, "merge_s": merge_s, "container_wall_s": run.wall_s}
    first = next((e for e in events if e.get("event") == Event.CONTAINER_START), None)
    last = next((e for e in reversed(events) if e.get("event") == Event.CONTAINER_END), None)
    if first:
        out["boot_s"] = max(0.0, (first["t_ns"] - run.started_ns) / 1e9)
    if last:
        out["exit_s"] = max(0.0, (run.exited_ns - last["t_ns"]) / 1e9)
    return out


def group_job_spec(job: GroupJob, pending: list[PlannedCondition], host_paths: bool, plan=None) -> dict[str, Any]:
    """The job spec the entrypoint reads: the group's settings and the pending conditions."""
    spec = make_job(job.spec, plan, host_paths=host_paths)
    entries = [c.job_entry() for c in pending]
    if host_paths and job.noise_dir is not None:  # the local engine reads the noise files where they are
        for e in entries:
            if "files" in e["noise"]:
                e["noise"] = {**e["noise"], "files": [str(job.noise_dir) + f[len(NOISE_TARGET):]
                                                      for f in e["noise"]["files"]]}
    spec["conditions"] = entries
    return spec


def execute_group(job: GroupJob, pending: list[PlannedCondition], engine: Engine, *, host: dict[str, Any],
                  owner_folder: Path, labels: dict[str, str] | None = None, callbacks: Callbacks | None = None,
                  previous: accounting.Baseline | None = None,
                  operating_point: Callable[[Any], ContextManager[Any]] | None = None) -> GroupResult:
    """Run ``pending`` (conditions of ``job``) in one container; every one ends with a record, ok or not.

    ``previous``: the last container's idle baseline; this one's waits for power to settle back to it.
    ``operating_point``: ``factory(spec)`` -> a context manager that sets the device's operating point around
    the idle baseline and the container and restores it after (yields a record with ``to_json()``, or None);
    default: runner.power's, from ``spec.settings.power``.
    An interruption (Ctrl-C, SIGTERM) is returned, not raised, after the conditions are recorded: finished
    ones as they are, the rest as interrupted."""
    cb = callbacks or Callbacks()
    spec = job.spec
    # A new, empty output folder for every attempt: what an earlier container left (links, FIFOs) is gone.
    raw_dir = fresh_folder(job.group_dir, "raw")
    t = spec.telemetry
    sampler, reason = select_sampler(t.sampler, spec.device, t.interval_ms, spec.gpus)
    cb.on_sampler(sampler if reason is None else None)
    plan = audio_plan(spec) if not engine.host_paths else None
    if plan is not None and plan.notice:
        cb.on_notice(plan.notice)
    paths = host_path_map(spec, raw_dir, plan) if plan is not None else {}
    g = _Group(job, list(pending), raw_dir, sampler, reason, host, engine.name, paths)
    by_key = {c.key: c for c in pending}

    def on_event(event: dict[str, Any]) -> None:
        cb.on_event(event)
        kind = event.get("event")
        cond = by_key.get(event.get("condition"))
        if cond is None:
            return
        if kind == Event.CONDITION_START:
            g.cpu_start[cond.key] = g.cpu_now()
            cb.on_condition_start(cond)
        elif kind == Event.CONDITION_END:
            g.close_window(cond.key)
            try:
                summary = finalize(g, cond)
            except Exception as exc:  # one condition's bookkeeping must not end the group
                summary = finalize(g, cond, f"could not merge: {exc!r}")
            cb.on_condition_done(cond, summary)

    def on_started(container_id: str) -> None:
        g.owner = accounting.ProcessOwner(container_id)

    extra = (BindMount(job.noise_dir, NOISE_TARGET, True),) if job.noise_dir is not None else ()
    mounts = [*make_mounts(spec, raw_dir, plan), *extra] if plan is not None else []
    launch = Launch(raw_dir, Owner.me(owner_folder, job.command), dict(labels or {}), on_started, limits_of(spec))
    run: ContainerRun | None = None
    error: str | None = None
    interrupted: KeyboardInterrupt | None = None
    power = getattr(getattr(spec, "settings", None), "power", None)
    if power is not None and power.requested():
        previous = None  # a baseline at another operating point is not the level to settle back to
    try:
        # The operating point wraps the idle baseline too: dynamic energy is relative to the same point.
        with (operating_point or operating_point_for)(spec) as g.power, sampler:
            if reason is None:
                g.baseline = idle_baseline(t, sampler, previous, on_wait=cb.waiting)
            g.load_before = hostload.snapshot(engine)
            try:
                run = engine.run(spec, group_job_spec(job, pending, engine.host_paths, plan), mounts,
                                 make_env(spec), on_event, launch)
                if run.session_id is not None and g.owner is None:
                    g.owner = accounting.ProcessOwner.of(run)
            except UserError as exc:
                error = str(exc)
            g.load_after = hostload.snapshot(engine)
            if reason is None:
                # Keep sampling a little past the end so that the last window is bracketed by samples.
                time.sleep(1.5 * t.interval_ms / 1000.0)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the container is gone; record what finished
        interrupted = exc
        g.power = getattr(exc, "power_record", g.power)
    except UserError as exc:  # the operating point was refused (the device is restored; see power_record)
        error = str(exc)
        g.power = getattr(exc, "power_record", g.power)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if interrupted else {}
    try:
        records = _final_pass(g, run, error, interrupted, cb)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if reason is None and sampler.samples:
        accounting.write_trace_csv(job.group_dir / "telemetry.csv", sampler.samples)
    return GroupResult(records, g.baseline, run, interrupted)


def _final_pass(g: _Group, run: ContainerRun | None, error: str | None, interrupted: KeyboardInterrupt | None,
                cb: Callbacks) -> list[dict]:
    """Every pending condition merged with the container's final record; the unfinished ones with the reason."""
    t_merge = time.perf_counter()
    raw = merge.read_raw(g.raw_dir, limits_of(g.job.spec))
    if interrupted is not None:
        error = f"interrupted by {signal_name(interrupted)}"
    elif error is None and run is not None:
        error = merge.container_error(run, raw.status, g.job.spec.timeout_s, g.job.spec.mem_limit_text,
                                      raw.status_refused)
    records = []
    for cond in g.pending:
        reported = cond.key in g.done
        cond_error = None if reported else (error or "the container ended before this condition")
        try:
            data = finalize(g, cond, cond_error, raw.status, None, interrupted is not None)
        except Exception as exc:
            data = finalize(g, cond, f"could not merge: {exc!r}", None, None, interrupted is not None)
        if run is not None:  # the container's own overhead, now that it has ended
            data["overhead_s"] = overhead(run, raw.events, time.perf_counter() - t_merge)
            write_json_atomic(cond.result_dir / "summary.json", data)
        if not reported:
            cb.on_condition_done(cond, data)
        records.append(condition_record(g.job, cond, data))
    return records

