"""Energy accounting for one run: samples + the container's events + the idle baseline -> the energy block.

Pure functions: the timeline was recorded by a sampler, the windows come from
the container's own events (load, warm-up, inference, each utterance), and
nothing is sampled again here. Windows are cut on the monotonic clock
(``mono_ns``): CLOCK_MONOTONIC is one clock for the host and every container on
its kernel, and it never steps, so an NTP correction inside a window cannot
become energy. The wall clock (``t_ns``) is kept beside it for display, and is
used only for timelines recorded without monotonic stamps (``clock: wall``).

The headline figures (total_j, dynamic_j, avg_w) are those of the inference
work, the work a deployment pays for per audio second: the inference window
less its prepare windows (audio decoding and noise mixing, which RTF leaves out
too); load, warm-up and the loaded-idle window are reported beside it. Each
figure says its scope (``scope_of``): board input, CPU package+DRAM, GPU.

The result is a frozen ``EnergyBlock`` (runner/telemetry/energy/record.py), built
here only: ``energy_block``, ``unavailable_block``, and ``with_companions`` for the
samplers that ran beside it; the summary stores its ``to_json()``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from edgeasr_entrypoint.contract import PREPARE_WINDOW, UTTERANCE_WINDOW, WINDOWS, Event

from ..samplers.base import ARRIVAL_MONO_NS, Sample
from . import IDLE, LOADED_IDLE
from ..samplers.registry import find_row, memory_labels, sampler_row
from .integrate import GAP_FLAG, LOST_FLAG, WindowEnergy, integrate, on_clock
from .record import NULL_FIGURES, CombinedEnergy, EnergyBlock, MemoryFigures, PsysFigure

#: The event field that carries each clock.
CLOCK_FIELDS = {"monotonic": "mono_ns", "wall": "t_ns"}


@dataclass(frozen=True)
class Baseline:
    """The idle power subtracted from each window: measured before the run, or given by the user. ``use``: which
    idle the run asked to subtract (``BASELINES``); ``energy_block`` swaps in the loaded idle where it is asked."""

    power_w: float | None
    source: str  # measured | given | unavailable
    start_ns: int | None = None
    end_ns: int | None = None
    reason: str | None = None
    clock: str = "wall"  # the clock start_ns/end_ns are on (wall | monotonic)
    wall_window_ns: tuple[int, int] | None = None  # the same window on the wall clock, for display
    cooldown: dict[str, Any] | None = None  # the wait for power to settle before the idle window
    use: str = IDLE


@dataclass(frozen=True)
class ProcessOwner:
    """What marks the run's own processes on the host, so that another user's GPU memory is never counted.

    ``container_id``: the Docker container's id, which appears in its processes' cgroup path;
    ``session_id``: the local engine's entrypoint, which leads its own session.
    """

    container_id: str | None = None
    session_id: int | None = None

    def owns(self, proc: dict[str, Any]) -> bool:
        if self.container_id and self.container_id in (proc.get("cgroup") or ""):
            return True
        return self.session_id is not None and proc.get("sid") == self.session_id

    @classmethod
    def of(cls, run: Any) -> ProcessOwner | None:
        """From what an engine reported (``ContainerRun``); None when it reported neither."""
        cid, sid = getattr(run, "container_id", None), getattr(run, "session_id", None)
        return cls(cid, sid) if cid or sid is not None else None


def _process_mem_peak(samples: Sequence[Sample], start_ns: int, end_ns: int,
                      owner: ProcessOwner | None) -> tuple[float | None, str | None]:
    """Peak GPU memory of the run's own processes (MiB) over a window, or None and why."""
    if owner is None:
        return None, ("cannot tell the run's processes from other users' on the GPU "
                      "(the engine reported no container id or session)")
    listed = False
    peaks = []
    for s in samples:
        if not start_ns <= s.t_ns <= end_ns or "processes" not in s.extras:
            continue
        listed = True
        used = [p.get("used_mib") for p in s.extras["processes"] if owner.owns(p)]
        if used and all(u is not None for u in used):
            peaks.append(sum(used))
    if peaks:
        return max(peaks), None
    return None, ("NVML listed none of the run's processes with their memory (per-process accounting off, "
                  "or usedGpuMemory unknown)" if listed else "NVML reported no per-process GPU memory")


def measured_baseline(samples: Sequence[Sample], start_ns: int, end_ns: int, clock: str = "wall") -> Baseline:
    """Time-weighted mean power over the idle window, or unavailable with integrate()'s reason."""
    w = integrate(samples, start_ns, end_ns, clock)
    if w.avg_w is None:
        return Baseline(None, "unavailable", start_ns, end_ns, f"idle window: {w.reason}", clock)
    return Baseline(w.avg_w, "measured", start_ns, end_ns, clock=clock)


def timeline_clock(samples: Sequence[Sample], events: Sequence[dict[str, Any]]) -> str:
    """``monotonic`` when every sample and event carries a monotonic stamp, else ``wall``."""
    if all(s.mono_ns is not None for s in samples) and all(isinstance(e.get("mono_ns"), int) for e in events):
        return "monotonic"
    return "wall"


def event_windows(events: Sequence[dict[str, Any]], clock: str = "monotonic") -> dict[str, tuple[int, int]]:
    """name -> (start_ns, end_ns) on ``clock``, for the windows the container recorded."""
    key = CLOCK_FIELDS[clock]
    out = {}
    for name, (start, end) in WINDOWS.items():
        t0 = next((e[key] for e in events if e.get("event") == start), None)
        t1 = next((e[key] for e in reversed(events) if e.get("event") == end), None)
        if t0 is not None and t1 is not None and t1 >= t0:
            out[name] = (t0, t1)
    return out


def _wall_edges(events: Sequence[dict[str, Any]], name: str) -> tuple[int | None, int | None]:
    start, end = WINDOWS[name]
    t0 = next((e.get("t_ns") for e in events if e.get("event") == start), None)
    t1 = next((e.get("t_ns") for e in reversed(events) if e.get("event") == end), None)
    return t0, t1


def utterance_windows(events: Sequence[dict[str, Any]], clock: str = "monotonic") -> dict[str, tuple[int, int]]:
    """id -> (start_ns, end_ns) on ``clock`` for each utterance that ended."""
    key = CLOCK_FIELDS[clock]
    starts: dict[str, int] = {}
    out = {}
    for e in events:
        if e.get("event") == UTTERANCE_WINDOW[0]:
            starts[e["id"]] = e[key]
        elif e.get("event") == UTTERANCE_WINDOW[1] and e.get("id") in starts:
            out[e["id"]] = (starts[e["id"]], e[key])
    return out


def _window_json(w: WindowEnergy, base: Baseline) -> dict[str, Any]:
    """A window's block with its energy above the idle baseline (WindowEnergy.to_json_above)."""
    return w.to_json_above(base.power_w, base.reason or "no idle baseline")


#: psys must cover at least package+DRAM (it contains them); allow for counter granularity.
PSYS_MIN_RATIO = 0.95
#: ... and a platform is not more than this many times its CPU package + DRAM.
PSYS_MAX_RATIO = 20.0


def psys_check(samples: Sequence[Sample], base: Baseline, clock: str) -> str | None:
    """None when RAPL's psys counter moved consistently with package+DRAM over the idle window, else why not.

    psys contains the package and DRAM, so over the same window it must count at least their sum
    (PSYS_MIN_RATIO) and not absurdly more (PSYS_MAX_RATIO); a stuck counter counts 0 J.
    """
    if base.start_ns is None or base.end_ns is None:
        return "no idle window was measured to check the psys counter against package+DRAM"
    w = integrate(samples, base.start_ns, base.end_ns, clock)
    psys = w.per_channel_j.get("psys")
    if psys is None or w.total_j is None:
        return f"the idle window could not be measured: {w.reason or 'psys does not cover it'}"
    if psys <= 0.0:
        return "the psys counter did not move over the idle window (stuck)"
    ratio = psys / w.total_j if w.total_j > 0 else float("inf")
    if not PSYS_MIN_RATIO <= ratio <= PSYS_MAX_RATIO:
        return (f"the psys counter moved {ratio:.2f}x package+DRAM over the idle window "
                f"(expected {PSYS_MIN_RATIO}-{PSYS_MAX_RATIO}x): it does not measure the platform here")
    return None


def peak_mib(samples: Sequence[Sample], start_ns: int, end_ns: int) -> float | None:
    """Samples must already be on the window's clock (``on_clock``)."""
    values = [s.mem_used_mib for s in samples if start_ns <= s.t_ns <= end_ns and s.mem_used_mib is not None]
    return max(values) if values else None


def mem_at(samples: Sequence[Sample], t_ns: int) -> float | None:
    """The memory resident at ``t_ns``: the last sample at or before it that reports memory (on its clock)."""
    before = [s for s in samples if s.t_ns <= t_ns and s.mem_used_mib is not None]
    return max(before, key=lambda s: s.t_ns).mem_used_mib if before else None


#: Which memory figure is the headline (the block's ``memory_headline``), for the sampler's memory ``label``.
MEMORY_HEADLINE = ("{label}_peak_mib: the peak over the condition's own window (its inference window), sampled on "
                   "the host at memory_interval_ms; {label}_rise_mib beside it is over what was resident at its "
                   "start; settings that change a loaded model's memory (the batch size) run in containers of "
                   "their own, so the conditions before it in its container ran the same settings")


def utterance_memory(samples: Sequence[Sample], events: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """id -> the sampler's memory peak over the utterance's call (its batch's, when batched), MiB; None when no
    sample fell inside it (a call shorter than the sampling interval)."""
    clock = timeline_clock(samples, events)
    timeline = on_clock(samples, clock)
    out: dict[str, float | None] = {}
    for (t0, t1), members in utterance_batches(events, clock):
        peak = peak_mib(timeline, t0, t1)
        for uid in members:
            out[uid] = peak
    return out


def _mean(samples: Sequence[Sample], start_ns: int, end_ns: int) -> float | None:
    values = [s.mem_used_mib for s in samples if start_ns <= s.t_ns <= end_ns and s.mem_used_mib is not None]
    return sum(values) / len(values) if values else None


#: Two samples closer than this fraction of the interval arrived in a burst (read late, stamped together).
BURST_FRACTION = 0.25
#: ... and a timeline is flagged bursty when this share of its intervals are bursts.
BURSTY_SHARE = 0.1


def arrival_stats(samples: Sequence[Sample], interval_ms: float) -> dict[str, Any] | None:
    """Inter-arrival statistics of a timeline (ms, on the monotonic clock where there is one), and bursts.

    Samplers stamp a reading when Python receives it: tegrastats lines that sat in a pipe arrive
    together, and their power is then placed at the wrong time. ``n_bursty`` counts intervals shorter
    than a quarter of the requested interval; ``bursty`` flags a timeline where they are common.
    """
    # when a sample arrived (a line placed by cadence keeps its arrival beside its stamp): what bursts are seen in
    times = [(s.extras or {}).get(ARRIVAL_MONO_NS) or (s.mono_ns if s.mono_ns is not None else s.t_ns)
             for s in samples]
    if len(times) < 3:
        return None
    gaps = np.diff(np.array(times, dtype=np.int64)).astype(np.float64) / 1e6
    n_bursty = int(np.sum(gaps < BURST_FRACTION * interval_ms))
    return {"n_intervals": len(gaps), "mean_ms": float(np.mean(gaps)), "p50_ms": float(np.percentile(gaps, 50)),
            "p5_ms": float(np.percentile(gaps, 5)), "p95_ms": float(np.percentile(gaps, 95)),
            "min_ms": float(np.min(gaps)), "max_ms": float(np.max(gaps)), "n_bursty": n_bursty,
            "bursty": n_bursty >= max(3, BURSTY_SHARE * len(gaps)), "requested_ms": interval_ms}


#: What every NVML figure covers besides the run: NVML reads the device, whoever uses it.
NVML_SHARED = "all processes on it"


def scope_of(total_kind: str | None) -> str | None:
    """What an energy figure covers, from its total's kind: the label tables show beside it."""
    if not total_kind:
        return None
    if total_kind.startswith("input_rail:"):
        return "board input"
    if total_kind == "partial_sum_of_rails":
        return "board rails (partial sum)"
    if total_kind == "rapl:package+dram":
        return "CPU package+DRAM"
    if total_kind == "rapl:package":
        return "CPU package"
    # NVML measures the whole device: every process on it, not only the run's, and the label says so
    if total_kind == "nvml:mig_parent_gpu":
        return f"GPU (MIG slice's parent GPU, {NVML_SHARED})"
    if total_kind.startswith("nvml:"):
        return f"GPU ({NVML_SHARED})"
    return None


#: What each sampler's ``Sample.mem_used_mib`` is, from the sampler table: host RAM on Jetson (GPU memory lives
#: there), GPU memory on NVML. RAPL measures no memory, so its runs carry no memory keys at all.
MEMORY_LABELS = memory_labels()


def unavailable_block(source: str | None, reason: str, *, n_samples: int = 0,
                      per_window: Mapping[str, Mapping[str, Any]] | None = None,
                      clock: str | None = None) -> EnergyBlock:
    """The energy block when the inference work could not be measured: every figure null, one reason; never 0.
    Without an inference window the windows that were seen (``per_window``) and the timeline's ``n_samples``
    and ``clock`` are still reported."""
    return EnergyBlock(source=source, measured=False, n_samples=n_samples, per_window=per_window or {},
                       clock=clock, unavailable={f: reason for f in NULL_FIGURES})


def prepare_windows(events: Sequence[dict[str, Any]], clock: str) -> list[tuple[int, int]]:
    """(start, end) of each prepare window (audio decoding and noise mixing) the container recorded."""
    key = CLOCK_FIELDS[clock]
    out, start = [], None
    for e in events:
        if e.get("event") == PREPARE_WINDOW[0]:
            start = e[key]
        elif e.get("event") == PREPARE_WINDOW[1] and start is not None:
            out.append((start, e[key]))
            start = None
    return out


def _headline(samples: Sequence[Sample], events: Sequence[dict[str, Any]], clock: str, inf: dict[str, Any],
              base: Baseline, window: tuple[int, int], sensor: dict[str, Any]
              ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The inference figures: the inference window's energy less its prepare windows' (decoding and mixing,
    which RTF leaves out too), so that energy and RTF cover the same work. Without prepare windows (an older
    image) the whole window, labelled so. ``bound_j``: the inference window's bound plus the prepare windows'
    (a difference is as uncertain as both its terms); ``work_s``: the seconds the figures cover. Returned with
    the prepare windows' own block (``per_window.prepare``; None where none was taken out), each built once."""
    whole = {"total_j": inf.get("total_j"), "dynamic_j": inf.get("dynamic_j"), "avg_w": inf.get("avg_w"),
             "reason": inf.get("reason"), "method": "inference window (no prepare windows recorded)",
             "per_channel_j": dict(inf.get("per_channel_j") or {}), "flags": tuple(inf.get("flags") or ()),
             "bound_j": inf.get("bound_j"), "work_s": inf.get("duration_s")}
    t0, t1 = window
    prep = [(a, b) for a, b in prepare_windows(events, clock) if t0 <= a < b <= t1]
    if not prep or inf.get("total_j") is None:
        return whole, None
    parts = [integrate(samples, a, b, clock, min_samples=0, **sensor) for a, b in prep]
    failed = next((p.reason for p in parts if p.total_j is None), None)
    if failed is not None:
        return {**whole, "method": f"inference window, prepare windows included: they could not be measured "
                                   f"({failed})"}, None
    prep_j = sum(p.total_j for p in parts)
    prep_s = sum(p.duration_s for p in parts)
    work_s = inf["duration_s"] - prep_s
    total = inf["total_j"] - prep_j
    # each channel less its prepare share; a channel that does not cover every prepare window is left out
    per_channel = {c: j - sum(p.per_channel_j[c] for p in parts) for c, j in whole["per_channel_j"].items()
                   if all(c in p.per_channel_j for p in parts)}
    bound = None if whole["bound_j"] is None else whole["bound_j"] + sum(p.bound_j or 0.0 for p in parts)
    head = {**whole, "total_j": total, "dynamic_j": None if base.power_w is None else total - base.power_w * work_s,
            "avg_w": total / work_s if work_s > 0 else None,
            "method": f"inference window minus {len(prep)} prepare window(s)", "per_channel_j": per_channel,
            "flags": tuple(dict.fromkeys([*whole["flags"], *(f for p in parts for f in p.flags)])),
            "bound_j": bound, "work_s": work_s}
    prepare = {"total_j": prep_j, "duration_s": prep_s, "n_windows": len(prep),
               "dynamic_j": None if base.power_w is None else prep_j - base.power_w * prep_s,
               "scope": scope_of(inf.get("total_kind")), "clock": clock}
    return head, prepare


def sensor_terms(source: str | None, interval_ms: float | None) -> dict[str, Any]:
    """What ``integrate`` needs to bound and flag a window of this sampler: its row's stated power resolution and
    the sampling interval asked for."""
    row = find_row(source)
    return {"resolution_w": row.power_resolution_w if row is not None else None, "interval_ms": interval_ms}


def loaded_idle_baseline(samples: Sequence[Sample], windows: Mapping[str, tuple[int, int]], clock: str,
                         sensor: dict[str, Any], host: Baseline, wall: tuple[Any, Any] = (None, None)) -> Baseline:
    """The loaded idle as the baseline (``--baseline loaded-idle``): its window's mean power, recorded as such
    (``source: loaded_idle``), or unavailable with the reason; never the host idle in its place."""
    window = windows.get("loaded_idle")
    if window is None:
        return Baseline(None, "unavailable", clock=clock, use=LOADED_IDLE,
                        reason="--baseline loaded-idle: the container recorded no loaded-idle window (--loaded-idle-s "
                               "0, or an image built before it existed)")
    w = integrate(samples, window[0], window[1], clock, **sensor)
    if w.avg_w is None:
        return Baseline(None, "unavailable", clock=clock, use=LOADED_IDLE,
                        reason=f"--baseline loaded-idle: the loaded-idle window: {w.reason}")
    return Baseline(w.avg_w, "loaded_idle", window[0], window[1], clock=clock, use=LOADED_IDLE,
                    wall_window_ns=wall if None not in wall else None, cooldown=host.cooldown)


def figure_bounds(head: dict[str, Any], base: Baseline, samples: Sequence[Sample], clock: str,
                  sensor: dict[str, Any], audio_s: float | None, n_ok: int,
                  baseline_w: float | None) -> dict[str, float | None]:
    """The bound of each headline figure (same units), from the inference work's bound (``head["bound_j"]``) and,
    for the figures above idle, the idle window's own bound (as power) times the work's duration. A baseline given
    by the user (``--baseline-w``) is taken as exact: its bound is the user's."""
    total = head.get("bound_j")
    work_s = head.get("work_s") or 0.0
    base_bound_w = 0.0 if base.source == "given" else None
    if base.source in ("measured", "loaded_idle") and base.start_ns is not None and base.end_ns is not None:
        base_bound_w = integrate(samples, base.start_ns, base.end_ns, clock, **sensor).bound_w()
    dynamic = None if total is None or base_bound_w is None or baseline_w is None else total + base_bound_w * work_s
    return {
        "total_j": total,
        "avg_w": None if total is None or work_s <= 0 else total / work_s,
        "dynamic_j": dynamic,
        "j_per_audio_s": None if total is None or not audio_s else total / audio_s,
        "dynamic_j_per_audio_s": None if dynamic is None or not audio_s else dynamic / audio_s,
        "j_per_utterance": None if total is None or not n_ok else total / n_ok,
        "baseline_w": base_bound_w if baseline_w is not None else None,
    }


def failed_windows(events: Sequence[dict[str, Any]], clock: str) -> list[tuple[int, int]]:
    """The backend calls that failed (utterance_start -> utterance_error, matched by condition and id), merged where
    they overlap (a failed batch: one call for all its utterances), on ``clock``. An error with no open call (bad
    audio, refused decode settings) had no backend work; a call that ended well is closed, so the same id in a later
    condition is never matched to it."""
    key = CLOCK_FIELDS[clock]
    starts: dict[tuple[Any, str], int] = {}
    spans = []
    for e in events:
        uid = (e.get("condition"), e.get("id"))
        if e.get("event") == UTTERANCE_WINDOW[0] and uid[1] is not None:
            starts[uid] = e[key]
        elif e.get("event") == UTTERANCE_WINDOW[1]:
            starts.pop(uid, None)
        elif e.get("event") == Event.UTTERANCE_ERROR and uid in starts:
            t0, t1 = starts.pop(uid), e[key]
            if t1 > t0:
                spans.append((t0, t1))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


#: The one rule of the per-audio-second and per-utterance figures (the summary's ``energy.per_audio_rule``).
PER_AUDIO_RULE = ("the energy of the transcribed utterances' work over their audio seconds (per utterance: over "
                  "their count): the inference work less its prepare windows and less the backend calls that "
                  "failed, so that numerator and denominator cover the same utterances")


def _transcribed_work(samples: Sequence[Sample], events: Sequence[dict[str, Any]], clock: str, head: dict[str, Any],
                      base: Baseline, sensor: dict[str, Any], window: tuple[int, int]) -> dict[str, Any] | None:
    """The headline less the failed backend calls' windows: its energy, dynamic energy and bound, the failed calls'
    energy, seconds and count, and ``reason`` (not None when a failed window could not be measured)."""
    t0, t1 = window
    failed = [(a, b) for a, b in failed_windows(events, clock) if t0 <= a < b <= t1]
    out = {"total_j": head["total_j"], "dynamic_j": head["dynamic_j"], "bound_j": head.get("bound_j"),
           "failed_j": 0.0, "failed_s": 0.0, "n_failed_calls": len(failed), "reason": None}
    if not failed or head["total_j"] is None:
        return out
    parts = [integrate(samples, a, b, clock, min_samples=0, **sensor) for a, b in failed]
    why = next((p.reason for p in parts if p.total_j is None), None)
    if why is not None:
        return {**out, "reason": f"the failed utterances' work could not be measured to leave it out ({why})"}
    failed_j, failed_s = sum(p.total_j for p in parts), sum(p.duration_s for p in parts)
    return {**out, "total_j": head["total_j"] - failed_j,
            "dynamic_j": None if head["dynamic_j"] is None or base.power_w is None
            else head["dynamic_j"] - (failed_j - base.power_w * failed_s),
            "bound_j": None if head.get("bound_j") is None else head["bound_j"] + sum(p.bound_j or 0.0 for p in parts),
            "failed_j": failed_j, "failed_s": failed_s}


def energy_block(source: str, samples: Sequence[Sample], events: Sequence[dict[str, Any]], base: Baseline,
                 audio_s: float | None, n_ok: int, interval_ms_requested: int,
                 owner: ProcessOwner | None = None) -> EnergyBlock:
    """The summary's energy block (``EnergyBlock.to_json()``); every missing figure is null with its reason in
    ``unavailable``. Companions of another scope are added by ``with_companions``."""
    clock = timeline_clock(samples, events)
    windows = event_windows(events, clock)
    unavailable: dict[str, str] = {}
    if base.start_ns is not None and base.clock != clock:
        base = Baseline(None, "unavailable", reason=f"the idle window is on the {base.clock} clock, "
                                                    f"the run's windows on the {clock} clock")
    sensor = sensor_terms(source, interval_ms_requested)
    host = base
    if base.use == LOADED_IDLE and base.source == "measured":
        base = loaded_idle_baseline(samples, windows, clock, sensor, host, _wall_edges(events, "loaded_idle"))
    per_window = {}
    for name, (t0, t1) in windows.items():
        w = integrate(samples, t0, t1, clock, **sensor)
        wall_start_ns, wall_end_ns = _wall_edges(events, name)
        per_window[name] = {**_window_json(w, base), "scope": scope_of(w.total_kind), "wall_start_ns": wall_start_ns,
                            "wall_end_ns": wall_end_ns}
    inf = per_window.get("inference")
    if inf is None:
        return unavailable_block(source, "the container recorded no inference window", n_samples=len(samples),
                                 per_window=per_window, clock=clock)
    head, prepare = _headline(samples, events, clock, inf, base, windows["inference"], sensor)
    if prepare is not None:
        per_window["prepare"] = prepare
    times = [s.t_ns for s in on_clock(samples, clock)]
    mean_interval = ((times[-1] - times[0]) / (len(times) - 1) / 1e6) if len(times) > 1 else None
    loaded_idle_w = (per_window.get("loaded_idle") or {}).get("avg_w")
    loaded_idle_uplift_w = None
    if base.power_w is None:
        unavailable["baseline_w"] = base.reason or "not measured"
    if loaded_idle_w is None:
        unavailable["loaded_idle_w"] = ((per_window.get("loaded_idle") or {}).get("reason") or
                                        "the container recorded no loaded-idle window (--loaded-idle-s 0, or an "
                                        "image built before it existed)")
        unavailable["loaded_idle_uplift_w"] = unavailable["loaded_idle_w"]
    elif host.power_w is None:
        unavailable["loaded_idle_uplift_w"] = host.reason or "not measured"
    else:
        loaded_idle_uplift_w = loaded_idle_w - host.power_w
    j_per_audio_s = dynamic_j_per_audio_s = j_per_utterance = None
    if head["total_j"] is None:
        reason = head["reason"] or "the inference window could not be integrated"
        for f in ("total_j", "dynamic_j", "avg_w", "peak_w", "j_per_audio_s", "dynamic_j_per_audio_s",
                  "j_per_utterance"):
            unavailable[f] = reason
    else:
        # One rule: numerator and denominator cover the same utterances (the transcribed ones).
        ok_work = _transcribed_work(samples, events, clock, head, base, sensor, windows["inference"])
        if ok_work["n_failed_calls"]:
            per_window["failed_calls"] = {"total_j": ok_work["failed_j"], "duration_s": ok_work["failed_s"],
                                          "n_windows": ok_work["n_failed_calls"], "reason": ok_work["reason"],
                                          "scope": scope_of(inf.get("total_kind")), "clock": clock}
        if ok_work["reason"] is not None:
            for f in ("j_per_audio_s", "dynamic_j_per_audio_s", "j_per_utterance"):
                unavailable[f] = ok_work["reason"]
        elif audio_s:
            j_per_audio_s = ok_work["total_j"] / audio_s
            if ok_work["dynamic_j"] is not None:
                dynamic_j_per_audio_s = ok_work["dynamic_j"] / audio_s
            else:
                unavailable["dynamic_j_per_audio_s"] = base.reason or "no idle baseline"
        else:
            unavailable["j_per_audio_s"] = unavailable["dynamic_j_per_audio_s"] = "no audio was transcribed"
        if ok_work["reason"] is None and n_ok:
            j_per_utterance = ok_work["total_j"] / n_ok
        elif ok_work["reason"] is None:
            unavailable["j_per_utterance"] = "no utterance was transcribed"
        if head["dynamic_j"] is None:
            unavailable["dynamic_j"] = base.reason or "no idle baseline"
    bounds = figure_bounds(head, base, samples, clock, sensor, audio_s, n_ok, baseline_w=base.power_w)
    if head["total_j"] is not None and ok_work["n_failed_calls"] and ok_work["bound_j"] is not None:
        per_audio = figure_bounds({**head, "bound_j": ok_work["bound_j"]}, base, samples, clock, sensor, audio_s,
                                  n_ok, baseline_w=base.power_w)
        bounds.update({k: per_audio[k] for k in ("j_per_audio_s", "dynamic_j_per_audio_s", "j_per_utterance")})
    host_idle_w = host.power_w if base.source == "loaded_idle" else None
    per_rail = head["per_channel_j"]
    psys = None
    if source == "rapl" and any(s.energy_j and "psys" in s.energy_j for s in samples):
        why = psys_check(samples, base, clock)
        psys = PsysFigure(per_rail.get("psys") if why is None else None,
                          "consistent with package+dram over the idle window" if why is None else why)
        if psys.psys_j is None:
            unavailable["psys_j"] = why or "psys does not cover the inference window"
    memory = None
    row = find_row(source)
    if source in MEMORY_LABELS:
        # the condition's own window (its inference window), never the container's: what ran before it in the
        # same container is not its memory (issue 22, item 1)
        i0, i1 = windows["inference"]
        timeline = on_clock(samples, clock)
        peak = peak_mib(timeline, i0, i1)
        idle = _mean(timeline, base.start_ns, base.end_ns) if base.start_ns is not None else None
        at_start = mem_at(timeline, i0)
        label = MEMORY_LABELS[source]
        process_peak_mib = None
        if row is not None and row.process_memory:
            process_peak_mib, why = _process_mem_peak(timeline, i0, i1, owner)
            if why:
                unavailable["gpu_process_mem_peak_mib"] = why
        # On Jetson GPU memory lives in RAM: the peak above idle is what the model costs.
        memory = MemoryFigures(label, peak, peak - idle if peak is not None and idle is not None else None,
                               per_process=row is not None and row.process_memory, process_peak_mib=process_peak_mib,
                               at_start_mib=at_start,
                               rise_mib=peak - at_start if peak is not None and at_start is not None else None,
                               window_peaks_mib={name: peak_mib(timeline, a, b) for name, (a, b) in windows.items()},
                               clock=clock, interval_ms=mean_interval, headline=MEMORY_HEADLINE.format(label=label))
        if memory.peak_delta_mib is None:
            unavailable[f"{label}_peak_delta_mib"] = ("the sampler reports no memory" if peak is None else
                                                    "no idle window was measured to compare with")
        if memory.rise_mib is None:
            unavailable[f"{label}_rise_mib"] = ("the sampler reports no memory" if peak is None else
                                              "no sample at or before the condition's start")
    return EnergyBlock(
        source=source, measured=True, total_kind=inf.get("total_kind"), scope=scope_of(inf.get("total_kind")),
        clock=clock, baseline_w=base.power_w, baseline_source=base.source,
        baseline_window_ns=(base.start_ns, base.end_ns) if base.start_ns is not None else None,
        baseline_window_wall_ns=tuple(base.wall_window_ns) if base.wall_window_ns else None,
        baseline_cooldown=host.cooldown, host_idle_w=host_idle_w, loaded_idle_w=loaded_idle_w,
        loaded_idle_uplift_w=loaded_idle_uplift_w,
        total_j=head["total_j"], dynamic_j=head["dynamic_j"], avg_w=head["avg_w"], inference_method=head["method"],
        method=inf.get("method"), flags=head["flags"], per_audio_rule=PER_AUDIO_RULE, peak_w=inf.get("peak_w"),
        j_per_audio_s=j_per_audio_s,
        dynamic_j_per_audio_s=dynamic_j_per_audio_s, j_per_utterance=j_per_utterance,
        bounds={k: v for k, v in bounds.items() if v is not None and
                {"total_j": head["total_j"], "dynamic_j": head["dynamic_j"], "avg_w": head["avg_w"],
                 "j_per_audio_s": j_per_audio_s, "dynamic_j_per_audio_s": dynamic_j_per_audio_s,
                 "j_per_utterance": j_per_utterance, "baseline_w": base.power_w}.get(k) is not None},
        per_window=per_window,
        per_rail=per_rail, n_samples=len(samples), interval_ms=mean_interval,
        interval_ms_requested=interval_ms_requested, arrival=arrival_stats(samples, interval_ms_requested),
        psys=psys, memory=memory, unavailable=unavailable)


def health_of_windows(health: Mapping[str, Any], block: EnergyBlock) -> dict[str, Any]:
    """``telemetry.health`` with the windows whose readings were lost, whose queries failed or that have a gap of
    more than three intervals named (``windows_affected``: window -> the flags), and ``ok`` False when there is one;
    the same for each companion's health and block. A health the sampler already judged not ok stays not ok."""
    out = dict(health)
    affected = {name: [f for f in (w.get("flags") or ()) if str(f).startswith((LOST_FLAG, GAP_FLAG))]
                for name, w in block.per_window.items()}
    affected = {name: flags for name, flags in affected.items() if flags}
    if affected:
        out.update(ok=False, windows_affected=affected)
    companions = out.get("companions")
    if isinstance(companions, Mapping):
        out["companions"] = {name: (health_of_windows(h, block.companions[name]) if name in block.companions else h)
                             for name, h in companions.items()}
    return out


def with_companions(block: EnergyBlock, companions: Mapping[str, EnergyBlock]) -> EnergyBlock:
    """``block`` with the blocks of the samplers that ran beside it (each of its own scope), and, where the
    sampler table names a sum for them (``SamplerRow.combined_key``: GPU + CPU), their total energy.

    The sum needs every companion the table lists and a figure with a scope to label it; when one part's
    energy is null the sum is null, with that part's reason (``GPU: ...``, ``CPU: ...``).
    """
    if not companions:
        return block
    row = find_row(block.source)
    combined = None
    unavailable = dict(block.unavailable)
    if (row is not None and row.combined_key and row.companions and block.scope is not None
            and all(name in companions for name in row.companions)):
        parts = [(row, block)] + [(sampler_row(name), companions[name]) for name in row.companions]
        missing = next(((r, b) for r, b in parts if b.total_j is None), None)
        combined = CombinedEnergy(row.combined_key, None if missing else sum(b.total_j for _, b in parts),
                                  " + ".join(str(b.scope) for _, b in parts))
        if missing is not None:
            part_row, part = missing
            unavailable[f"{row.combined_key}_j"] = f"{part_row.part}: {part.unavailable.get('total_j')}"
    return replace(block, companions=companions, combined=combined, unavailable=unavailable)


def utterance_batches(events: Sequence[dict[str, Any]], clock: str = "monotonic"
                      ) -> list[tuple[tuple[int, int], dict[str, float | None]]]:
    """The utterance windows grouped into batches: ((start_ns, end_ns), {id: processing_s}) per batch.

    A batch is a run of overlapping utterance windows: with cross-utterance batching every
    utterance of a batch starts before the batch's call and ends after it, so their windows
    overlap; sequential utterances never do (one ends before the next starts).
    """
    windows = utterance_windows(events, clock)
    processing = {e["id"]: e.get("processing_s", e.get("duration_s")) for e in events
                  if e.get("event") == Event.UTTERANCE_END and e.get("id") in windows}
    batches: list[tuple[tuple[int, int], dict[str, float | None]]] = []
    for uid, (t0, t1) in sorted(windows.items(), key=lambda kv: kv[1]):
        if batches and t0 < batches[-1][0][1]:
            (b0, b1), members = batches[-1]
            members[uid] = processing.get(uid)
            batches[-1] = ((b0, max(b1, t1)), members)
        else:
            batches.append(((t0, t1), {uid: processing.get(uid)}))
    return batches


def utterance_energy(samples: Sequence[Sample], events: Sequence[dict[str, Any]], base: Baseline) -> dict[str, dict]:
    """id -> {energy_j, dynamic_j, energy_method} (or the reason it is unavailable) for each utterance.

    An utterance decoded alone gets its own window's energy (``energy_method: window``). Utterances
    decoded in one batch share the batch window's energy by their ``processing_s`` share, the same
    split RTF uses (``energy_method: batch_share``), so that the utterances' energies add up to the
    utterance windows' energy instead of counting each batch once per utterance.
    """
    out = {}
    clock = timeline_clock(samples, events)
    for (t0, t1), members in utterance_batches(events, clock):
        w = integrate(samples, t0, t1, clock)
        dyn = w.dynamic_j(base.power_w)
        if len(members) == 1:
            (uid,) = members
            out[uid] = {"energy_j": w.total_j, "dynamic_j": dyn, "energy_method": "window",
                        "energy_unavailable": w.reason if w.total_j is None else None}
            continue
        known = {u: p for u, p in members.items() if p is not None and p > 0}
        total_p = sum(known.values())
        for uid in members:
            if w.total_j is None:
                why = f"batch of {len(members)}: {w.reason}"
            elif uid not in known or total_p <= 0:
                why = f"batch of {len(members)}: this utterance has no processing_s to share the batch's energy by"
            else:
                share = known[uid] / total_p
                out[uid] = {"energy_j": w.total_j * share, "dynamic_j": None if dyn is None else dyn * share,
                            "energy_method": "batch_share", "energy_unavailable": None}
                continue
            out[uid] = {"energy_j": None, "dynamic_j": None, "energy_method": "batch_share",
                        "energy_unavailable": why}
    return out


def write_trace_csv(path: Path, samples: Sequence[Sample]) -> None:
    """The raw timeline: one row per sample, one column per channel (W), host wall and monotonic clocks in ns."""
    channels = sorted({name for s in samples for name in s.power_w})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["t_ns", "total_w", "total_kind", "total_energy_j", "mem_used_mib", "mono_ns",
                         *[f"{c}_w" for c in channels]])
        for s in samples:
            writer.writerow([s.t_ns, s.total_w, s.total_kind, s.total_energy_j, s.mem_used_mib, s.mono_ns,
                             *[s.power_w.get(c) for c in channels]])
    tmp.replace(path)
