"""Live audio's capacity (issue 23, item 6): the most concurrent streams this device sustains at a latency target.

A **probe** runs ``n`` live streams in one container (``stream.concurrency = n``) over ``stream.sustain_s`` and
passes when both hold, for every condition it ran:

- the p99 finalization latency (summary ``stream`` block) is at most the target (``--latency-ms``, 1000 ms);
- the lag behind real time is bounded: the lag at the end of the window exceeds the lag at its middle by at
  most two chunks (the stream block's ``bounded``; a backend that falls further behind all the time is not
  keeping up, however good its latency looked while the backlog was short).

A probe whose condition failed (an error, a crash, no stream figures, no utterance finalized) fails with that
reason: capacity is what was shown to work, never what was not disproved.

**The search** (``CapacitySearch``, pure and immutable, a state machine over the probes recorded so far):
doubling from 1 (1, 2, 4, ... up to the cap, the cap itself probed last) until a probe fails, then bisection
between the last pass and the first fail. The answer is the last passing ``n``: 0 when even one stream fails (a
backend that can never keep up gets 0 and the reason, never a fake real-time result), the cap when every probe
passed (said so: the device may carry more). The search assumes more streams never make it easier; it only ever
probes between the last pass and the first fail, so a recorded probe out of that order is a bug and refused.

**In the one sweep** (``CapacityPlanner``, a runner/sweep.py ``Planner``): each probe is a group planned like
any other (``plan(n)`` plans the base settings with ``stream.concurrency = n``), keyed and stored in the results
folder; the planner adds the next probe when the last one's records are in. A search resumed after an
interruption hears every stored probe again (ran False) and takes the same decisions without running them.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .experiment import experiment_from_data
from .launch.engines import Engine, make_engine
from .plan import GroupJob, check_host, plan_sweep
from .results import ConditionRecord, write_json_atomic
from .scoring.stream_metrics import BOUNDED_CHUNKS
from .sweep import GroupDone, LocalDispatcher, LocalOptions, LocalView, SweepOptions, SweepOutcome, run_sweep

DEFAULT_LATENCY_MS = 1000.0
DEFAULT_MAX_STREAMS = 64


# --- what one condition's summary says (the stream block, runner/scoring/stream_metrics.py) --------------------------


@dataclass(frozen=True)
class StreamFigures:
    """The figures of one condition a probe is judged on, read from its summary (``StreamFigures.of``); None
    where the summary does not have them. The one place that knows the stream block's names."""

    p99_ms: float | None  # p99 finalization latency
    lag_end_s: float | None
    lag_middle_s: float | None
    bounded: bool | None  # end - middle <= BOUNDED_CHUNKS chunks (runner/scoring/stream_metrics.py decides)
    chunk_ms: float | None
    n_finalized: int | None  # utterances finalized (the latency's n)
    power_per_stream_w: float | None
    power_reason: str | None  # why there is no power per stream
    unavailable: Mapping[str, str] = field(default_factory=dict)  # the block's reasons, by figure (lag_s, ...)

    @classmethod
    def of(cls, summary: Mapping[str, Any]) -> StreamFigures | None:
        """The figures of ``summary`` (None: it has no stream block)."""
        block = summary.get("stream")
        if not isinstance(block, Mapping) or not block:
            return None
        latency = _mapping(block.get("finalization_ms"))
        lag = _mapping(block.get("lag_s"))
        chunk_ms = _number(block.get("chunk_ms"))
        end, middle = _number(lag.get("end")), _number(lag.get("middle"))
        bounded = lag.get("bounded") if isinstance(lag.get("bounded"), bool) else None  # stream_metrics' verdict
        n = latency.get("n")
        power, reason = _power_per_stream(summary, block)
        return cls(p99_ms=_number(latency.get("p99")), lag_end_s=end, lag_middle_s=middle, bounded=bounded,
                   chunk_ms=chunk_ms, n_finalized=n if isinstance(n, int) and not isinstance(n, bool) else None,
                   power_per_stream_w=power, power_reason=reason,
                   unavailable={str(k): str(v) for k, v in _mapping(block.get("unavailable")).items()})


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _power_per_stream(summary: Mapping[str, Any], block: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """The stream block's average power per stream (runner/scoring/stream_metrics.py: the inference work's average power
    shared over the streams), else the reason it gives, else the summary's reason energy is unavailable."""
    energy = _mapping(block.get("energy"))
    own = _number(energy.get("w_per_stream"))
    if own is not None:
        return own, None
    reason = (_mapping(energy.get("unavailable")).get("w_per_stream")
              or _mapping(summary.get("unavailable")).get("energy"))
    return None, str(reason) if reason else "energy was not measured"


# --- one probe ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """One probe's verdict: ``streams`` concurrent streams passed or not, and why not (one sentence)."""

    streams: int
    passed: bool
    reason: str | None = None  # why it failed; None when it passed
    p99_ms: float | None = None  # the worst p99 finalization latency of its conditions
    lag_growth_s: float | None = None  # the worst lag at the end less the lag at the middle
    power_per_stream_w: float | None = None  # mean over its conditions
    power_reason: str | None = None  # why there is no power per stream
    keys: tuple[str, ...] = ()  # its conditions' keys (where its results are)

    def to_json(self) -> dict[str, Any]:
        return {"streams": self.streams, "passed": self.passed, "reason": self.reason, "p99_ms": self.p99_ms,
                "lag_growth_s": self.lag_growth_s, "power_per_stream_w": self.power_per_stream_w,
                "power_reason": self.power_reason, "keys": list(self.keys)}


def not_ok_reason(record: ConditionRecord) -> str:
    """Why a condition is not ok, in one phrase: its error, else how many utterances failed (a partial one)."""
    if record.error:
        return str(record.error)
    n_failed = record.summary.get("n_failed")
    where = f" (see {record.folder / 'utterances.jsonl'})" if record.folder is not None else " (see utterances.jsonl)"
    if isinstance(n_failed, int) and not isinstance(n_failed, bool) and n_failed > 0:
        return f"{n_failed} utterance(s) failed{where}"
    return "no reason recorded"


def _why(figures: StreamFigures, name: str) -> str:
    why = figures.unavailable.get(name)
    return f" ({why})" if why else ""


def judge_probe(streams: int, records: Sequence[ConditionRecord], latency_ms: float = DEFAULT_LATENCY_MS,
                lost: int = 0) -> ProbeResult:
    """The verdict on ``streams`` from its conditions' records: every one ok, with stream figures, a p99
    finalization latency at most ``latency_ms`` and a bounded lag; else failed with the first reason found."""
    keys = tuple(str(r.condition.get("key", "")) for r in records)
    figures: list[StreamFigures] = []
    reason: str | None = None
    if lost:
        reason = f"{lost} condition(s) were lost with their node"
    elif not records:
        reason = "the probe recorded no condition"
    for r in records:
        if reason is not None:
            break
        if r.status != "ok":
            reason = f"the condition failed ({r.status}): {not_ok_reason(r)}"
            break
        f = StreamFigures.of(r.summary)
        if f is None:
            reason = "the condition recorded no stream figures (was stream mode on?)"
        elif f.p99_ms is None:
            reason = "no utterance was finalized in the window, so there is no finalization latency" + _why(
                f, "finalization_ms")
        elif f.bounded is None:
            reason = "the lag behind real time was not measured" + _why(f, "lag_s")
        else:
            figures.append(f)
    p99 = max((f.p99_ms for f in figures if f.p99_ms is not None), default=None)
    growths = [f.lag_end_s - f.lag_middle_s for f in figures if f.lag_end_s is not None and f.lag_middle_s is not None]
    growth = max(growths) if growths else None
    if reason is None and p99 is not None and p99 > latency_ms:
        reason = f"p99 finalization latency {p99:.0f} ms is over the {latency_ms:g} ms target"
    if reason is None and not all(f.bounded for f in figures):
        worst = next(f for f in figures if not f.bounded)
        chunks = (f", more than {BOUNDED_CHUNKS} chunks of {worst.chunk_ms:g} ms" if worst.chunk_ms else "")
        grew = (f"grew by {worst.lag_end_s - worst.lag_middle_s:.2f} s from the middle of the window to its end"
                if worst.lag_end_s is not None and worst.lag_middle_s is not None else "was not bounded")
        reason = f"the lag behind real time {grew}{chunks}: the backend is falling behind"
    powers = [f.power_per_stream_w for f in figures if f.power_per_stream_w is not None]
    power_reason = None if powers else next((f.power_reason for f in figures if f.power_reason), None)
    return ProbeResult(streams, reason is None, reason, p99, growth,
                       sum(powers) / len(powers) if powers else None, power_reason, keys)


# --- the search ----------------------------------------------------------------------------------------------


def _streams(n: int) -> str:
    return f"{n} stream{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class Capacity:
    """The search's answer: ``streams`` sustained (0: not even one), the probe that showed it, the first probe
    that failed (None: none failed, the cap was reached), and every probe in the order it ran."""

    streams: int
    latency_ms: float
    max_streams: int
    best: ProbeResult | None  # the passing probe at ``streams`` (None when 0)
    first_failed: ProbeResult | None
    probes: tuple[ProbeResult, ...]

    @property
    def capped(self) -> bool:
        """Every probe passed up to the cap: the device may carry more than the answer."""
        return self.first_failed is None

    def headline(self) -> str:
        """"N streams at p99 X ms, Y W per stream" (issue 23), or why there is no power figure."""
        if self.best is None:
            return f"0 streams at a p99 finalization latency of {self.latency_ms:g} ms: not even one stream keeps up"
        b = self.best
        power = (f"{b.power_per_stream_w:.2f} W per stream" if b.power_per_stream_w is not None
                 else f"power unavailable: {b.power_reason or 'energy was not measured'}")
        more = f" (the cap, --max-streams {self.max_streams}: it may carry more)" if self.capped else ""
        return f"{self.streams} streams at p99 {b.p99_ms:.0f} ms, {power}{more}"

    @property
    def above(self) -> ProbeResult | None:
        """The failed probe of one stream more than the answer (what stops it there), when it ran."""
        return next((p for p in self.probes if not p.passed and p.streams == self.streams + 1), None)

    def failure_line(self) -> str:
        """The first probe that failed and why; and the probe one stream above the answer, where it is another."""
        f = self.first_failed
        if f is None:
            return f"no probe failed up to the cap of {self.max_streams} streams"
        line = f"first failed probe: {_streams(f.streams)}: {f.reason}"
        above = self.above
        if above is not None and above is not f:
            line += f"; one more than the answer, {_streams(above.streams)}: {above.reason}"
        return line

    def to_json(self) -> dict[str, Any]:
        return {"streams": self.streams, "latency_ms": self.latency_ms, "max_streams": self.max_streams,
                "capped": self.capped, "headline": self.headline(),
                "best": self.best.to_json() if self.best else None,
                "first_failed": self.first_failed.to_json() if self.first_failed else None,
                "above": self.above.to_json() if self.above else None,
                "probes": [p.to_json() for p in self.probes]}


@dataclass(frozen=True)
class CapacitySearch:
    """Doubling, then bisection (see the module doc): ``next_probe()`` the streams to probe next (None: done),
    ``record(result)`` a new search with it, ``answer()`` the Capacity once done."""

    max_streams: int = DEFAULT_MAX_STREAMS
    latency_ms: float = DEFAULT_LATENCY_MS
    probes: tuple[ProbeResult, ...] = ()

    def __post_init__(self) -> None:
        if self.max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, got {self.max_streams}")

    def _bounds(self) -> tuple[int, int | None]:
        """(the most streams that passed, 0 for none; the fewest that failed, None for none)."""
        lo = max((p.streams for p in self.probes if p.passed), default=0)
        hi = min((p.streams for p in self.probes if not p.passed), default=None)
        return lo, hi

    def next_probe(self) -> int | None:
        lo, hi = self._bounds()
        if hi is None:  # doubling: every probe so far passed
            if lo >= self.max_streams:
                return None
            return 1 if lo == 0 else min(2 * lo, self.max_streams)
        if hi - lo <= 1:
            return None
        return (lo + hi) // 2  # bisection between the last pass and the first fail

    def record(self, result: ProbeResult) -> CapacitySearch:
        expected = self.next_probe()
        if result.streams != expected:
            raise ValueError(f"the search expected a probe of {expected} streams, got {result.streams}")
        return replace(self, probes=(*self.probes, result))

    @property
    def done(self) -> bool:
        return self.next_probe() is None

    def answer(self) -> Capacity | None:
        """The answer once the search is done; None before."""
        if not self.done:
            return None
        lo, _ = self._bounds()
        best = next((p for p in self.probes if p.passed and p.streams == lo), None)
        first_failed = next((p for p in self.probes if not p.passed), None)
        return Capacity(lo, self.latency_ms, self.max_streams, best, first_failed, self.probes)


# --- the search as a planner of the one sweep (runner/sweep.py) ----------------------------------------------


Judge = Callable[[int, Sequence[ConditionRecord], int], ProbeResult]


@dataclass
class CapacityPlanner:
    """The search as an adaptive ``Planner`` (see the module doc). ``plan(n)``: the groups of the probe of ``n``
    streams (normally one). ``judge(n, records, lost)``: its verdict (default ``judge_probe`` at the search's
    target). ``search`` holds every probe heard so far, ``answer()`` the Capacity once it is done."""

    plan: Callable[[int], list[GroupJob]]
    search: CapacitySearch = field(default_factory=CapacitySearch)
    judge: Judge | None = None
    _waiting: dict[str, int] = field(default_factory=dict)  # group key -> its probe's streams
    _heard: dict[int, list[GroupDone]] = field(default_factory=dict)

    def _probe(self) -> list[GroupJob]:
        n = self.search.next_probe()
        if n is None:
            return []
        jobs = self.plan(n)
        self._waiting.update({job.key: n for job in jobs})
        self._heard[n] = []
        if not jobs:  # nothing to run for it (a bug in plan): it fails, so the search still ends
            return self._verdict(n, [])
        return jobs

    def first(self) -> list[GroupJob]:
        return self._probe()

    def after(self, done: GroupDone) -> list[GroupJob]:
        n = self._waiting.pop(done.job.key, None)
        if n is None:
            return []
        self._heard[n].append(done)
        if any(v == n for v in self._waiting.values()):  # the probe's other groups are still running
            return []
        return self._verdict(n, self._heard[n])

    def _verdict(self, n: int, heard: list[GroupDone]) -> list[GroupJob]:
        records = [r for d in heard for r in d.records]
        lost = sum(d.lost for d in heard)
        judge = self.judge or (lambda k, recs, lo: judge_probe(k, recs, self.search.latency_ms, lo))
        self.search = self.search.record(judge(n, records, lost))
        return self._probe()

    def answer(self) -> Capacity | None:
        return self.search.answer()


# --- the probes as experiments, and the search run here -------------------------------------------------------

#: The setting a probe sets: the live streams one container serves.
CONCURRENCY = "stream.concurrency"


def probe_data(defaults: Mapping[str, Any], streams: int, name: str) -> dict[str, Any]:
    """The experiment data of the probe of ``streams``: ``defaults`` (an experiment file's ``defaults:``, nested
    as written) with stream mode on and ``stream.concurrency`` set to ``streams``; one group, keyed like any
    other (its key holds the concurrency: each probe is its own)."""
    data = copy.deepcopy(dict(defaults))
    stream = data.setdefault("stream", {})
    stream.update(enabled=True, concurrency=streams)
    return {"name": name, "description": f"capacity probe: {streams} live stream(s)", "defaults": data}


def local_capacity(defaults: Mapping[str, Any], file: Path, out: Path, view: LocalView, local: LocalOptions,
                   search: CapacitySearch, options: SweepOptions = SweepOptions(), root: Path | None = None,
                   engine: Engine | None = None) -> tuple[SweepOutcome, Capacity]:
    """`edgeasr capacity` here, as `edgeasr sweep` (runner/sweep.local_sweep) with the search as its planner:
    the probe of 1 checked first (a bad setting stops here, nothing started), the host preflight, missing images
    and models made (unless told not), then every probe planned into ``out`` as the search asks for it.
    ``file``: the path the probes' experiments are named by (messages, the manifest); ``engine``: this host's
    (default: ``local.engine``'s). Returns the sweep's outcome and the answer
    (the search always ends: every probe is judged, a failed one included), also written to capacity.json."""
    name = file.stem

    def probe(n: int):
        return experiment_from_data(probe_data(defaults, n, name), file, root=root)

    first_n = search.next_probe() or 1
    first = probe(first_n)
    engine = engine or make_engine(local.engine)
    host = check_host(first, engine.name)
    if local.prepare:
        from .images.prepare import prepare

        prepare(first, local.models_dir, engine=engine.name, log=view.note, status=view.status)
    planned: dict[int, list[GroupJob]] = {}

    def plan(n: int) -> list[GroupJob]:
        if n not in planned:
            planned[n] = plan_sweep(probe(n), engine, local.models_dir, out, host=host, offline=local.offline,
                                    log=view.note)
        return planned[n]

    plan(first_n)  # a model, an image or data the first probe lacks stops here, before the folder is touched
    planner = CapacityPlanner(plan=plan, search=search)
    outcome = run_sweep(first, out, planner, LocalDispatcher(engine, out, view.callbacks), view, options)
    answer = planner.answer()
    assert answer is not None, "the sweep ended with the search still asking for a probe"
    write_json_atomic(out / CAPACITY_FILE, answer.to_json())
    return outcome, answer


CAPACITY_FILE = "capacity.json"
