"""Execute one GroupJob: sample power, run its container on an engine, turn each condition into a result.

The one executor behind `edgeasr run` and `edgeasr sweep` (and the seam a remote executor plugs into): a
GroupJob in (runner/plan.py, plain data), records out, each condition's folder written atomically the moment
the condition ends, so an interruption loses only the condition in progress. Progress views are passed in as
callbacks; nothing here draws.

Per condition: its events (the container-wide ones plus its own, its window renamed to the inference window),
its transcripts merged with the references, its energy over its own windows. After the container ends every
condition is merged once more with the container's final record (status.json, engine overhead).

Nothing that goes wrong inside a group escapes it: a refused operating point, an engine that fails, a merge
that raises on a bad container's output all end as that group's conditions recorded as errors with the
reason, so that a sweep goes on with its other groups. An interruption (Ctrl-C, SIGTERM) is returned as a
typed ``Interrupted`` carrying the signal and the operating point's record. Every wait is on a ``Clock``
(runner/host/clock.py), so a test drives it step by step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional, Union

from edgeasr_entrypoint.contract import CONTAINER_WIDE_EVENTS, FEATURES, Event

from . import merge
from .trust import validate
from .content import HashCache
from .errors import Interrupted, UserError
from .host import load as hostload
from .host.clock import SYSTEM_CLOCK, Clock, elapsed_s
from .host.platforms import emulation_record
from .launch.docker_engine import BindMount, ContainerRun
from .launch.engines import Engine, Launch
from .launch.job import audio_plan, host_path_map, image_contract, make_env, make_job, make_mounts
from .launch.owner import Owner
from .models.resolve import random_weights_reason, resolved_kind
from .plan import NOISE_TARGET, GroupJob, PlannedCondition
from .power import operating_point_for
from .results import ConditionRecord, Summary, UtteranceResult, write_json_atomic, write_jsonl_atomic
from .trust.safe_io import fresh_folder
from .settings import LimitsSettings
from .tables import condition_block, condition_record
from .telemetry.energy import accounting
from .telemetry.energy.idle import idle_baseline
from .telemetry.memory import ContainerMemorySampler, container_memory_block
from .telemetry.samplers.base import Sampler
from .telemetry.samplers.registry import health as sampler_health
from .telemetry.samplers.select import select_sampler

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class GroupResult:
    """What one group left: a record per condition (ok or not), the idle baseline (the next group cools down
    to it), the container's run, the operating point's record (frozen; None when none was set or readable),
    and the interruption that ended it, if one did (its ``power`` is the same record)."""

    records: list[ConditionRecord]
    baseline: accounting.Baseline | None
    run: ContainerRun | None
    interrupted: Interrupted | None = None
    power: Any = None
    #: Where the group's wall went on the host (perf_counter seconds): baseline_s (the idle baseline and its
    #: cool-down), container_s (engine.run: create, start, the container's life, exit), tail_s (sampling past
    #: the end), final_s (the final merge and the trace), total_s; beside_s and beside_cpu_s (the host merging each
    #: condition as it ended, while the container ran on: wall and CPU seconds), ahead_s (a container started ahead:
    #: from its start to its go). A sweep records them (sweep-timing.json).
    timing_s: dict[str, float] = field(default_factory=dict)


#: A condition's overhead figures (engine start, boot, exit, merge seconds), or what measures them when its
#: summary is assembled; None: not known (the condition's summary is written before the container ends).
Overhead = Optional[Union[dict[str, float], Callable[[], dict[str, float]]]]


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
    container's whole work (then the process peak, load included, is its peak). In the contract's names (its
    memory ``_mb`` figures are MiB): runner/merge.apply_container_facts gives them the summary's (CONTRACT_MIB)."""
    info = next((e for e in events if e.get("event") == Event.MODEL_INFO), None)
    end = next((e for e in reversed(events) if e.get("event") == Event.INFERENCE_END), None)
    if status is None and info is None:
        return None
    out = dict(status or {})
    if info is not None:
        for k in ("versions", "n_params", "model_size_mb", "rss_after_load_mb", "device_used"):
            out.setdefault(k, info.get(k))
    if end is not None and not (whole_container and status is not None):
        for k in ("peak_rss_mb", "peak_vram_mb", "audio_cache_mb", "peak_rss_scope", "peak_rss_excl_audio_mb",
                  "peak_rss_excl_audio_method"):
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
                   long_form=spec.backend.long_form_for(int(decode.get("batch_size") or 1),
                                                        resolved_kind(spec.model)).applied(decode).to_json(),
                   image={"ref": spec.image, "id": job.image.id if job.image else None,
                          "tags": job.image.tags if job.image else [],
                          "labels": job.image.labels if job.image else {},
                          **({"architecture": job.image.architecture} if job.image and job.image.architecture
                             else {})},
                   host=dict(host), started_at=started_at, engine=engine, telemetry=spec.telemetry.to_json(),
                   hardening=spec.hardening.describe() if engine == "docker" else {},
                   emulation=emulation_record(job.image.architecture if job.image else None))


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
    window: Any = None  # the operating point's window (runner/power.OperatingPointWindow): its record so far
    clock: Clock = SYSTEM_CLOCK
    load_before: hostload.LoadSnapshot | None = None  # the host just before the container started
    load_after: hostload.LoadSnapshot | None = None  # and just after it ended (None while it runs)
    audio_s: dict[str, float | None] = field(default_factory=dict)  # the audio files' own lengths, by id
    cpu_start: dict[str, hostload.CpuSnapshot] = field(default_factory=dict)  # at each condition's start
    windows: dict[str, hostload.WindowLoad] = field(default_factory=dict)  # other work in each timed window
    #: the container's memory timeline (its cgroup, on the host); None: not sampled (the local engine)
    memory: ContainerMemorySampler | None = None

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

    @property
    def power(self) -> Any:
        """The operating point's record as far as it has gone (runner/power.PowerRecord), or None."""
        return getattr(self.window, "record", None)


def _wait_for_sample_past(g: _Group, events: list[dict]) -> None:
    """A sample past the window's end must exist before the window is integrated."""
    end = next((e["mono_ns"] for e in reversed(events) if e.get("event") == Event.INFERENCE_END), None)
    interval = g.job.spec.telemetry.interval_ms
    if g.energy_reason is not None or end is None:
        return
    started = g.clock.monotonic_ns()
    while g.sampler.running and g.sampler.samples[-1:] and (g.sampler.samples[-1].mono_ns or 0) < end \
            and elapsed_s(g.clock, started) < 2.0 + 3 * interval / 1000.0:
        g.clock.sleep(interval / 4000.0)


def audio_seconds(g: _Group, dataset) -> dict[str, float | None]:
    """id -> seconds of each utterance's audio as its file's header says (WAV and FLAC, whose frame count is
    exact), None where the host cannot tell; read once per group, without following a link or waiting on a
    FIFO, and only the header. The container's durations are checked against these (runner/trust/validate.py)."""
    out = {}
    for u in dataset.utterances:
        if u.id not in g.audio_s:
            g.audio_s[u.id] = None if u.problem is not None else header_seconds(u.audio)
        out[u.id] = g.audio_s[u.id]
    return out


def header_seconds(path) -> float | None:
    """Seconds of audio a WAV or FLAC file's header says it holds, or None (another format, or unreadable)."""
    import os
    import stat

    import soundfile as sf

    if str(path).lower().rsplit(".", 1)[-1] not in ("wav", "flac"):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as fh:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            info = sf.info(fh)
        except (OSError, RuntimeError, ValueError, TypeError):
            return None
    return float(info.frames) / info.samplerate if info.samplerate and info.frames > 0 else None


def limits_of(spec) -> LimitsSettings:
    return getattr(getattr(spec, "settings", None), "limits", None) or LimitsSettings()


def finalize(g: _Group, cond: PlannedCondition, error: str | None = None, status: dict | None = None,
             overhead: Overhead = None, interrupted: bool = False) -> dict:
    """Merge, score and account one condition; write its folder atomically (summary.json last). What the
    container left that was not read (merge.read_raw: a link, a FIFO, a line over its limit) fails it.
    ``overhead``: the container's overhead, or what measures it when the summary is assembled (the merge's
    own time included), so the summary is written once, whole."""
    spec = g.job.spec
    limits = limits_of(spec)
    raw = merge.read_raw(g.raw_dir, limits)
    if raw.problem:
        error = raw.problem if error is None else f"{error}; {raw.problem}"
    events = condition_events(raw.events, cond.key)
    wanted = set(cond.ids)
    dataset = replace(spec.dataset, utterances=tuple(u for u in spec.dataset.utterances if u.id in wanted))
    transcripts, wrong = validate.audio_check([t for t in raw.transcripts if t.get("condition") == cond.key],
                                              audio_seconds(g, dataset))
    rejected = [*raw.rejected_for(cond.key), *wrong]  # records that broke the contract (runner/trust/validate.py)
    broke = validate.sentence(rejected)
    if broke:
        error = broke if error is None else f"{error}; {broke}"
    # a stream job answered offline is never taken for a stream (nor for an offline run: it was not asked for)
    error = error or merge.stream_error(spec.stream is not None, events, transcripts, cond.key)
    summary = new_summary(g.job, cond, dataset, g.host, g.started_at, g.engine)
    finished = any(e.get("event") == Event.INFERENCE_END for e in events)
    if error is None and not finished:
        error = "the condition did not finish"
    utts = merge.merge_utterances(dataset, transcripts, f"not transcribed: {error or 'the condition did not run'}",
                                  g.paths, limits.hypothesis_bytes, {r.id: r.text for r in rejected if r.id})
    scored = merge.score(summary, utts)
    unscored = random_weights_reason(spec.model.host_dir)
    if unscored is not None:
        scored, utts = merge.not_a_result(scored, utts, unscored)
    whole = len(g.pending) == 1
    facts = merge.apply_container_facts(scored, merge.RawOutputs(events, transcripts,
                                                                 condition_status(events, status, whole)))
    error = error or merge.device_error(facts)  # an image that does not refuse it itself: never a GPU figure
    _wait_for_sample_past(g, events)
    accounted, utts = merge.account_energy(facts, utts, g.sampler.name, g.sampler.samples, events, g.baseline,
                                           g.energy_reason, spec.telemetry.interval_ms, g.owner,
                                           sampler_health(g.sampler), g.sampler.companions)
    # stream mode: the stream figures (with the energy just accounted) and the offline WER beside the streamed
    # text's; an offline condition is returned as it is
    accounted = merge.apply_stream(accounted, events, utts, transcripts, cond.key, limits.hypothesis_bytes, unscored)
    utts = merge.stream_utterances(utts, events, cond.key)
    if g.memory is not None and g.memory.samples:  # each utterance's call, on the same timeline
        peaks = accounting.utterance_memory(g.memory.samples, events)
        utts = [replace(u, container_mem_peak_mib=peaks[u.id]) if u.id in peaks else u for u in utts]
    state = "interrupted" if interrupted and not finished else "error" if error else (
        "partial" if accounted.n_failed else "ok")
    if interrupted:
        accounted, utts = not_run(accounted, utts, dataset, transcripts)
    summary = replace(accounted, error=merge.host_paths(error, g.paths), status=state,
                      container_memory=container_memory_of(g, events),
                      overhead_s=overhead() if callable(overhead) else overhead,
                      power=g.power.to_json() if g.power is not None else None)
    folder = cond.result_dir
    folder.mkdir(parents=True, exist_ok=True)
    try:
        write_jsonl_atomic(folder / "utterances.jsonl", utterance_rows(utts, dataset))
    finally:  # a full disk: the small summary may still fit, and says what happened
        summary = _published(g, cond, summary)
        data = summary.to_json()
        write_json_atomic(folder / "summary.json", data)
    g.done[cond.key] = data
    return data


def _published(g: _Group, cond: PlannedCondition, summary: Summary) -> Summary:
    """The summary as it is written: failed where its figures contradict each other (never NaN, never a figure
    below 0, whatever came in), with the host's load around it and the condition's block."""
    wrong = validate.published_problems(summary.to_json())
    if wrong.problems:
        summary = summary.unavailable_because(
            wrong.reasons, **{("deletions" if k == "del" else k): None for k in wrong.nulled},
            status="interrupted" if summary.status == "interrupted" else "error",
            error="; ".join(x for x in (summary.error, "the container's figures contradict each other: "
                                        + "; ".join(wrong.problems)) if x))
    if g.load_before is not None:
        summary = replace(summary, host_load=hostload.host_load_record(g.load_before, g.load_after,
                                                                       window=g.windows.get(cond.key)))
    return replace(summary, condition=condition_block(g.job, cond, summary.to_json()))


def not_run(summary: Summary, utts: list, dataset, transcripts: list[dict]) -> tuple[Summary, list]:
    """After an interrupt, the utterances the container never reached are not run (status ``not_run``,
    counted in ``n_not_run``), not failures: nothing went wrong with them (issue 28). The summary with those
    counts (a new one: it is frozen) and the utterances."""
    reached = {t.get("id") for t in transcripts}
    never = {u.id for u in dataset.utterances if u.problem is None and u.id not in reached}
    n_not_run = sum(1 for u in utts if u.id in never and u.status != "ok")
    return (replace(summary, n_not_run=n_not_run, n_failed=summary.n_failed - n_not_run),
            [replace(u, status="not_run") if u.id in never and u.status != "ok" else u for u in utts])


def utterance_rows(utts: list, dataset) -> list[dict]:
    """utterances.jsonl's rows: each result with the sha256 of the audio it was read from (None where it was
    not read), which `compare` matches the two sides' utterances on (issue 28)."""
    hashes = HashCache()  # the plan hashed a sweep's audio already: read from the cache
    audio = {u.id: u.audio for u in dataset.utterances if u.problem is None}
    rows = [{**u.__dict__, "audio_sha256": hashes.file(audio[u.id]) if u.id in audio else None} for u in utts]
    hashes.save()
    return rows


def container_memory_of(g: _Group, events: list[dict]) -> dict[str, Any]:
    """The condition's container memory (issue 22, item 1): its cgroup's timeline over the condition's windows,
    or every figure null with the reason there is none."""
    interval = g.job.spec.telemetry.interval_ms
    if g.memory is None:
        reason = ("the local engine runs no container: the entrypoint's peak_rss_mib is its only memory figure"
                  if g.engine == "local" else "the container's memory was not sampled")
        return container_memory_block([], events, None, interval, reason=reason)
    group = g.memory.cgroup
    out = container_memory_block(g.memory.samples, events, group.describe() if group is not None else None,
                                 interval, reason=g.memory.reason)
    if g.memory.n_errors:  # readings lost: a peak between them may be missed
        out["read_errors"] = {"n": g.memory.n_errors, "last": list(g.memory.errors[-3:])}
    return out


def failed_group(job: GroupJob, pending: list[PlannedCondition], error: str, *, host: dict[str, Any],
                 engine: str) -> GroupResult:
    """Every pending condition of a group that could not be run at all, recorded as an error with ``error``:
    the caller (a sweep) goes on with its other groups, and a rerun tries this one again (--retry-failed)."""
    records = []
    for c in pending:
        try:
            data = failed_record(job, c, error, host, engine)
        except OSError as exc:  # its folder cannot be written (a full disk): the record still says it all
            data = failed_summary(job, c, f"{error}; could not record it either: {exc!r}", host, engine).to_json()
        records.append(condition_record(job, c, data))
    return GroupResult(records, None, None, None)


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


def group_job_spec(job: GroupJob, pending: list[PlannedCondition], host_paths: bool, plan=None,
                   power_measured: bool | None = None, hold_s: float = 0.0) -> dict[str, Any]:
    """The job spec the entrypoint reads (job.json): the group's settings and the pending conditions, in the
    contract version the image speaks; UserError where the group needs a newer one (only this group fails).
    ``power_measured``: a sampler runs (no loaded-idle wait without one, launch/job.make_job); ``hold_s``: a held
    start (start_ahead)."""
    entries = [c.job_entry() for c in pending]
    if host_paths and job.noise_dir is not None:  # the local engine reads the noise files where they are
        entries = [replace(e, noise={**e.noise, "files": [str(job.noise_dir) + f[len(NOISE_TARGET):]
                                                          for f in e.noise["files"]]})
                   if "files" in e.noise else e for e in entries]
    spec = make_job(job.spec, plan, host_paths=host_paths, conditions=tuple(entries),
                    version=_contract_of(job), power_measured=power_measured, hold_s=hold_s)
    problem = spec.version_problem(spec.contract_version)
    if problem:
        raise UserError(f"image {job.spec.image}: {problem}; rebuild it (edgeasr images build "
                        f"{job.spec.backend.name}) or leave that setting out of this group")
    return spec.to_json()


def _contract_of(job: GroupJob) -> int:
    """The contract the group's job is written in: the newest its image and this runner both speak."""
    return image_contract(job.image.labels if job.image is not None else None,
                          job.image.id if job.image is not None else None)


#: The feature a held start is (contract 5) and the longest a held container waits for its go before it gives up
#: (it ends with the reason): the go comes seconds after, once the previous container is merged; a bound, no wait.
HELD_START = "a held start (job.hold_s)"
HOLD_S = 600.0


@dataclass(frozen=True)
class Ahead:
    """A group's container started ahead (``start_ahead``): booting while the previous group finishes, then held
    before its load until ``execute_group`` tells it to go. ``started_s``: perf_counter as it was started."""

    job: GroupJob
    raw_dir: Path
    plan: Any
    held: Any  # launch/engines.Held: go(), finish(on_event), discard(), container_id
    started_s: float


def _power_requested(spec) -> bool:
    power = getattr(getattr(spec, "settings", None), "power", None)
    return power is not None and power.requested()


def start_ahead(job: GroupJob, pending: list[PlannedCondition], engine: Engine, *, owner_folder: Path,
                labels: dict[str, str] | None = None, clock: Clock = SYSTEM_CLOCK) -> Ahead | None:
    """Start ``job``'s container now, held before its load (contract 5), so that its engine start, interpreter
    boot and imports overlap the previous container's exit and merge (issue 26 item 2); ``execute_group(...,
    ahead=)`` tells it to go once the host has finished the previous one, so nothing runs beside its load,
    warm-up and inference that would not have otherwise. None (the group then starts in its turn, as ever) where
    that cannot be had honestly or at all: a power sensor (the group's idle baseline is measured first, and
    nothing may boot during it), an operating point to set (the container starts under it), an image of an older
    contract, an engine without ``start`` (the local one), or any failure to start it."""
    start = getattr(engine, "start", None)
    spec = job.spec
    if start is None or not pending or _power_requested(spec) or _contract_of(job) < FEATURES[HELD_START]:
        return None
    t0 = time.perf_counter()
    try:
        t = spec.telemetry
        if select_sampler(t.sampler, spec.device, t.interval_ms, spec.gpus, clock)[1] is None:
            return None  # a sensor: its idle baseline before this container comes first, with nothing booting
        raw_dir = fresh_folder(job.group_dir, "raw")
        plan = audio_plan(spec) if not engine.host_paths else None
        extra = (BindMount(job.noise_dir, NOISE_TARGET, True),) if job.noise_dir is not None else ()
        mounts = [*make_mounts(spec, raw_dir, plan), *extra] if plan is not None else []
        launch = Launch(raw_dir, Owner.me(owner_folder, job.command), dict(labels or {}), None, limits_of(spec))
        held = start(spec, group_job_spec(job, pending, engine.host_paths, plan, False, HOLD_S), mounts,
                     make_env(spec), launch)
    except Exception:  # noqa: BLE001 - the group starts in its turn instead, and says what is wrong then
        log.debug("group %s could not start ahead", job.key, exc_info=True)
        return None
    return Ahead(job, raw_dir, plan, held, t0)


def execute_group(job: GroupJob, pending: list[PlannedCondition], engine: Engine, *, host: dict[str, Any],
                  owner_folder: Path, labels: dict[str, str] | None = None, callbacks: Callbacks | None = None,
                  previous: accounting.Baseline | None = None,
                  operating_point: Callable[[Any], ContextManager[Any]] | None = None,
                  clock: Clock = SYSTEM_CLOCK, ahead: Ahead | None = None,
                  on_container_end: Callable[[], None] | None = None) -> GroupResult:
    """Run ``pending`` (conditions of ``job``) in one container; every one ends with a record, ok or not.

    ``previous``: the last container's idle baseline; this one's waits for power to settle back to it.
    ``operating_point``: ``factory(spec)`` -> the window (runner/power.OperatingPointWindow, or a context
    manager with a ``record``) that sets the device's operating point around the idle baseline and the
    container and restores it after; default: runner.power's, from ``spec.settings.power``.
    ``clock``: what the sampler, the idle baseline and the waits here run on.
    ``ahead``: this group's container, started ahead and held (start_ahead): told to go where it would have
    been started (discarded, and one started then, should a sensor have appeared since). ``on_container_end``:
    called once, as the container says container_end (its measured work is over): a sweep starts the next
    container ahead then.
    An interruption (Ctrl-C, SIGTERM) is returned, not raised, after the conditions are recorded: finished
    ones as they are, the rest as interrupted. Any other failure inside the group (the operating point
    refused, the engine failing, a merge raising on what the container wrote) is recorded as the unfinished
    conditions' error, never raised: the caller's other groups go on."""
    went = [False]
    try:
        return _execute_group(job, pending, engine, host, owner_folder, labels, callbacks, previous,
                              operating_point, clock, ahead, on_container_end, went)
    finally:
        if ahead is not None and not went[0]:  # never told to go: it must not outlive the group
            ahead.held.discard()


def _execute_group(job, pending, engine, host, owner_folder, labels, callbacks, previous, operating_point, clock,
                   ahead: Ahead | None, on_container_end, went: list[bool]) -> GroupResult:
    cb = callbacks or Callbacks()
    spec = job.spec
    timing = {"baseline_s": 0.0, "container_s": 0.0, "tail_s": 0.0, "beside_s": 0.0, "beside_cpu_s": 0.0}
    t_group = time.perf_counter()
    t = spec.telemetry
    sampler, reason = select_sampler(t.sampler, spec.device, t.interval_ms, spec.gpus, clock)
    if ahead is not None and (ahead.job.key != job.key or reason is None or _power_requested(spec)):
        ahead.held.discard()  # a sensor appeared since (or another group's): started in its turn instead
        went[0], ahead = True, None
    # A new, empty output folder for every attempt: what an earlier container left (links, FIFOs) is gone
    # (a container started ahead has its own, made new as it started).
    raw_dir = ahead.raw_dir if ahead is not None else fresh_folder(job.group_dir, "raw")
    cb.on_sampler(sampler if reason is None else None)
    plan = ahead.plan if ahead is not None else (audio_plan(spec) if not engine.host_paths else None)
    if plan is not None and plan.notice:
        cb.on_notice(plan.notice)
    paths = host_path_map(spec, raw_dir, plan) if plan is not None else {}
    g = _Group(job, list(pending), raw_dir, sampler, reason, host, engine.name, paths, clock=clock)
    if engine.name != "local":  # a container: its cgroup is read on the host, from its start to its end
        g.memory = ContainerMemorySampler(t.interval_ms, clock=clock)
    by_key = {c.key: c for c in pending}
    ended: list[bool] = []

    def on_event(record: dict[str, Any]) -> None:
        event = validate.live_event(record)  # one that broke the contract: the merge of events.jsonl says so
        if event is None:
            return
        cb.on_event(event)
        kind = event.get("event")
        if kind == Event.CONTAINER_END and on_container_end is not None and not ended:
            ended.append(True)
            on_container_end()
        cond = by_key.get(event.get("condition"))
        if cond is None or cond.key in g.done:
            return
        if kind == Event.CONDITION_START:
            g.cpu_start[cond.key] = g.cpu_now()
            cb.on_condition_start(cond)
        elif kind == Event.CONDITION_END:
            g.close_window(cond.key)
            t_wall, t_cpu = time.perf_counter(), time.thread_time()
            data = _finalize_safely(g, cond)
            timing["beside_s"] += time.perf_counter() - t_wall
            timing["beside_cpu_s"] += time.thread_time() - t_cpu
            cb.on_condition_done(cond, data)

    def on_started(container_id: str) -> None:
        g.owner = accounting.ProcessOwner(container_id)
        if g.memory is not None:
            g.memory.attach(container_id)

    extra = (BindMount(job.noise_dir, NOISE_TARGET, True),) if job.noise_dir is not None else ()
    mounts = [*make_mounts(spec, raw_dir, plan), *extra] if plan is not None else []
    launch = Launch(raw_dir, Owner.me(owner_folder, job.command), dict(labels or {}), on_started, limits_of(spec))
    run: ContainerRun | None = None
    error: str | None = None
    interrupted: Interrupted | None = None
    power = getattr(getattr(spec, "settings", None), "power", None)
    if power is not None and power.requested():
        previous = None  # a baseline at another operating point is not the level to settle back to
    g.window = (operating_point or (lambda s: operating_point_for(s, clock)))(spec)
    try:
        # The operating point wraps the idle baseline too: dynamic energy is relative to the same point.
        with g.window, sampler:
            if reason is None:
                t_base = time.perf_counter()
                g.baseline = idle_baseline(t, sampler, previous, on_wait=cb.waiting)
                timing["baseline_s"] = time.perf_counter() - t_base
            g.load_before = hostload.snapshot(engine, own_labels=labels)
            if g.memory is not None:
                g.memory.start()
            t_run = time.perf_counter()
            try:
                if ahead is not None:  # started ahead, booted and held: now it loads, nothing of ours beside it
                    on_started(ahead.held.container_id)
                    timing["ahead_s"] = t_run - ahead.started_s
                    ahead.held.go()
                    went[0] = True  # from here finish() removes it, however it ends
                    run = ahead.held.finish(on_event)
                else:
                    run = engine.run(spec, group_job_spec(job, pending, engine.host_paths, plan, reason is None),
                                     mounts, make_env(spec), on_event, launch)
                if run.session_id is not None and g.owner is None:
                    g.owner = accounting.ProcessOwner.of(run)
            except UserError as exc:
                error = str(exc)
            except Exception as exc:  # a defect or an engine's surprise: this group's conditions fail, with it
                error = f"the runner could not run the container: {exc!r}"
            finally:
                if g.memory is not None:
                    g.memory.stop()
            timing["container_s"] = time.perf_counter() - t_run
            g.load_after = hostload.snapshot(engine, own_labels=labels)
            if reason is None:
                # Keep sampling a little past the end so that the last window is bracketed by samples.
                clock.sleep(1.5 * t.interval_ms / 1000.0)
                timing["tail_s"] = 1.5 * t.interval_ms / 1000.0
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the container is gone; record what finished
        interrupted = Interrupted.of(exc)
    except UserError as exc:  # the operating point was refused (the device is restored; see its record)
        error = str(exc)
    except Exception as exc:  # the engine or this group's bookkeeping failed: its conditions say why
        log.debug("group %s failed", job.key, exc_info=True)
        error = f"the group failed: {exc.__class__.__name__}: {exc}"
    if interrupted is not None:
        interrupted = interrupted.with_power(g.power)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)} if interrupted else {}
    t_final = time.perf_counter()
    try:
        records = _final_pass(g, run, error, interrupted, cb)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    if reason is None and sampler.samples:
        accounting.write_trace_csv(job.group_dir / "telemetry.csv", sampler.samples)
    now = time.perf_counter()
    timing.update(final_s=now - t_final, total_s=now - t_group)
    return GroupResult(records, g.baseline, run, interrupted, g.power, timing)


def _finalize_safely(g: _Group, cond: PlannedCondition, error: str | None = None, status: dict | None = None,
                     interrupted: bool = False, overhead: Overhead = None) -> dict:
    """finalize(), and when the merge raises (a bad container's output), the condition as an error with the
    reason; when even that cannot be merged, the bare record (settings, identity, the reason)."""
    try:
        return finalize(g, cond, error, status, overhead, interrupted)
    except Exception as exc:  # one condition's bookkeeping must not end the group
        reason = f"could not merge: {exc!r}"
        try:
            return finalize(g, cond, reason, None, overhead, interrupted)
        except Exception:
            log.debug("condition %s: the merge failed twice", cond.key, exc_info=True)
            return failed_record(g.job, cond, reason, g.host, g.engine, g.started_at, g.power,
                                 overhead() if callable(overhead) else overhead)


def failed_summary(job: GroupJob, cond: PlannedCondition, reason: str, host: dict[str, Any], engine: str,
                   started_at: str | None = None, power: Any = None,
                   overhead: dict[str, float] | None = None) -> Summary:
    """The frozen Summary of a condition that failed before anything could be merged: the settings, identity and
    image it was planned with, every utterance failed with ``reason``, its condition block; no figure at all.
    Nothing is written (failed_record writes it; failed_group falls back to it alone when that cannot)."""
    wanted = set(cond.ids)
    dataset = replace(job.spec.dataset, utterances=tuple(u for u in job.spec.dataset.utterances if u.id in wanted))
    summary = replace(new_summary(job, cond, dataset, host, started_at or stamp(), engine), status="error",
                      error=reason, n_utterances=len(cond.ids), n_failed=len(cond.ids),
                      power=power.to_json() if power is not None else None, overhead_s=overhead)
    return replace(summary, condition=condition_block(job, cond, summary.to_json()))


def failed_record(job: GroupJob, cond: PlannedCondition, reason: str, host: dict[str, Any], engine: str,
                  started_at: str | None = None, power: Any = None,
                  overhead: dict[str, float] | None = None) -> dict:
    """A condition that failed before anything could be merged: its folder written with the settings,
    identity and image it was planned with (failed_summary), every utterance failed with ``reason``."""
    data = failed_summary(job, cond, reason, host, engine, started_at, power, overhead).to_json()
    utts = [UtteranceResult(id=u, status="error", error=reason, reference=None, hypothesis=None, reference_norm=None,
                            hypothesis_norm=None, duration_s=None, latency_s=None, wer=None) for u in cond.ids]
    folder = cond.result_dir
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(folder / "utterances.jsonl", [u.__dict__ for u in utts])
    write_json_atomic(folder / "summary.json", data)
    return data


def _final_pass(g: _Group, run: ContainerRun | None, error: str | None, interrupted: Interrupted | None,
                cb: Callbacks) -> list[ConditionRecord]:
    """Every pending condition merged with the container's final record; the unfinished ones with the reason."""
    t_merge = time.perf_counter()
    try:
        raw = merge.read_raw(g.raw_dir, limits_of(g.job.spec))
    except Exception as exc:  # what the container left cannot be read: every condition says so
        raw = merge.RawOutputs([], [], None)
        error = error or f"could not read the container's outputs: {exc!r}"
    if interrupted is not None:
        error = f"interrupted by {interrupted.signal}"
    elif error is None and run is not None:
        error = merge.container_error(run, raw.status, g.job.spec.timeout_s, g.job.spec.mem_limit_text,
                                      raw.status_refused)
    own = run is not None and interrupted is None and merge.failed_itself(run, raw.status)
    records = []
    for cond in g.pending:
        reported = cond.key in g.done
        if not reported:
            cond_error = error or "the container ended before this condition"
        elif own:  # it finished, then the container said it failed: nothing it reported is taken as ok
            cond_error = f"the container failed after this condition had finished: {error}"
        else:
            cond_error = None
        # the container's own overhead, now that it has ended, measured as the summary is assembled
        measured = None if run is None else (
            lambda: overhead(run, raw.events, time.perf_counter() - t_merge))  # noqa: B023 (called at once)
        data = _finalize_safely(g, cond, cond_error, raw.status, interrupted is not None, measured)
        if not reported:
            cb.on_condition_done(cond, data)
        records.append(condition_record(g.job, cond, data))
    return records
