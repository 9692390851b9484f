"""Aggregate each condition over its repeats: one ``AggregateRow`` per ``GroupKey``, one ``Stat`` per metric.

One row per (backend, model, quant, device, dataset, image, noise_type, snr_db, and every other grid axis),
read by runner/report/records.py, with one ``Stat`` per metric: n, mean, sample std, min and max, and a
Student-t 95 % confidence half-width.

Honest at small n: with fewer than ``MIN_N_FOR_CI`` values the spread shown is
the range (min-max), not a t-interval (with 2 repeats t(0.975, 1) = 12.7 makes
the interval 12.7 x the spread); no interval reaches below 0 (every metric
here is non-negative); repeats whose coefficient of variation is above
``CV_DISAGREE`` are flagged as disagreeing. Pure functions over
the records on disk: the report never talks to Docker and never re-measures
anything.

Unavailable is not zero: a null value is left out of the mean and counted in
``Stat.n_unavailable`` with its reason (from the record's ``unavailable``
maps). A failed run (status "error") is never averaged in, even where it has
a number: its figures count as unavailable with the reason "run failed: ...",
and the row counts it in ``n_failed``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..host.platforms import emulated_text
from .records import ConditionRecord, GroupKey, is_number

NO_REASON = "no reason recorded"
RUN_FAILED = "run failed"  # prefix of the reason given for every figure of a failed run

# Two-sided 95 % Student-t quantiles t(0.975, df) for df = 1..30; 1.96 (the
# normal quantile) beyond, where the difference is under 4 %. A table, so the
# report needs no scipy.
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


@dataclass(frozen=True)
class Metric:
    """A number in the run summary, found at ``path`` (e.g. ("energy", "total_j"))."""

    name: str
    path: tuple[str, ...]


METRICS: tuple[Metric, ...] = (
    Metric("wer", ("wer",)),
    Metric("cer", ("cer",)),
    Metric("ins_rate", ("ins_rate",)),  # issue 24: runner/scoring/metrics.py defines these three
    Metric("repeated_ngram_rate", ("repeated_ngram_rate",)),
    Metric("compression_over_share", ("compression_over_share",)),
    Metric("nonspeech_wpm", ("nonspeech_wpm",)),  # issue 24: non-speech items, apart from WER
    Metric("nonspeech_output_share", ("nonspeech_output_share",)),
    Metric("gap_ins_per_min", ("gap_ins_per_min",)),  # words inserted over the gaps of segment-mapped items
    Metric("rtf", ("rtf",)),
    Metric("latency_p50_ms", ("latency_ms", "p50")),
    Metric("peak_rss_mib", ("peak_rss_mib",)),
    Metric("container_mem_peak_mib", ("container_memory", "peak_mib")),  # its own window's, on the host (issue 22)
    Metric("load_s", ("load_s",)),
    Metric("total_j", ("energy", "total_j")),
    Metric("dynamic_j", ("energy", "dynamic_j")),
    Metric("j_per_audio_s", ("energy", "j_per_audio_s")),
    Metric("avg_w", ("energy", "avg_w")),
    # stream mode (issue 23): the summary's stream block (runner/scoring/stream_metrics.py); absent offline, where the
    # table shows no column for it (unavailable everywhere)
    Metric("finalization_p99_ms", ("stream", "finalization_ms", "p99")),
)
METRIC_NAMES = tuple(m.name for m in METRICS)
#: The metrics that are energy: each has a scope (what hardware it covers) and a measurement bound.
ENERGY_METRICS = frozenset({"total_j", "dynamic_j", "j_per_audio_s", "avg_w"})
#: The metrics an emulated run (an image of another CPU architecture, under qemu) has only as the emulator's:
#: speed and energy. Its WER and CER are the model's (emulation changes the clock, not the arithmetic).
EMULATED_METRICS = frozenset({"rtf", "latency_p50_ms", "load_s"}) | ENERGY_METRICS

#: Fewer values than this show their range (min-max), not a Student-t interval.
MIN_N_FOR_CI = 3
#: Repeats whose coefficient of variation (std / mean) is above this disagree, and are flagged.
CV_DISAGREE = 0.10


@dataclass(frozen=True)
class Stat:
    """One metric over the repeats of one condition.

    ``std`` is the sample standard deviation (ddof=1) and ``ci95`` the
    half-width of the Student-t 95 % interval of the mean; both None when
    ``n < 2`` (one run says nothing about spread). ``mean`` is None when
    ``n == 0``: every value was unavailable, for ``reasons``. What to show
    as the spread is ``interval`` (range below MIN_N_FOR_CI, never below 0).
    """

    n: int
    mean: float | None
    std: float | None
    ci95: float | None
    n_unavailable: int = 0
    reasons: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    #: The measurement bound of the mean (same unit), for figures that carry one (energy: the energy block's
    #: ``bounds``): the mean of the repeats' bounds; None where a repeat did not record one.
    bound: float | None = None

    @property
    def available(self) -> bool:
        return self.n > 0

    @property
    def uses_range(self) -> bool:
        """True where the spread shown is min-max: 2 values, too few for a t-interval to mean anything."""
        return 2 <= self.n < MIN_N_FOR_CI

    @property
    def interval(self) -> tuple[float, float] | None:
        """(low, high) to show around the mean: min-max below MIN_N_FOR_CI values, else the 95 % t-interval,
        its low end clamped at 0; None for n < 2 (no spread to show)."""
        if self.mean is None or self.n < 2:
            return None
        if self.uses_range:
            return (self.min, self.max)  # type: ignore[return-value]
        assert self.ci95 is not None
        return (max(0.0, self.mean - self.ci95), self.mean + self.ci95)

    def whisker(self, scale: float = 1.0) -> tuple[float, float] | None:
        """(below, above) error-bar lengths around the mean for matplotlib's ``yerr=[[below], [above]]``:
        the interval's, so a whisker never reaches below 0 and n = 2 draws its range; None: draw none."""
        iv = self.interval
        if iv is None or self.mean is None:
            return None
        return ((self.mean - iv[0]) * scale, (iv[1] - self.mean) * scale)

    @property
    def cv(self) -> float | None:
        """Coefficient of variation (std / mean); None without spread or with a mean of 0."""
        if self.std is None or not self.mean:
            return None
        return self.std / abs(self.mean)

    @property
    def disagree(self) -> bool:
        """The repeats disagree: their coefficient of variation is above CV_DISAGREE."""
        return self.cv is not None and self.cv > CV_DISAGREE


@dataclass(frozen=True)
class AggregateRow:
    """One condition over its repeats: run counts, distinct errors, and a Stat per metric."""

    key: GroupKey
    n_runs: int
    n_ok: int
    n_partial: int
    n_failed: int
    errors: tuple[str, ...]
    stats: Mapping[str, Stat] = field(hash=False)
    #: How many utterances the repeats' latency percentiles are over (distinct counts, ascending; () where
    #: none has a percentile): a p99 of 20 values is the largest of them, so a table says so (sweep_table).
    latency_n: tuple[int, ...] = ()
    #: What the energy figures cover ("GPU", "board input", "CPU package+DRAM"), distinct scopes of the
    #: repeats joined; None when no repeat measured energy.
    energy_scope: str | None = None
    n_busy: int = 0  # repeats whose host was busy during the timed window (hostload.py)
    busy_reasons: tuple[str, ...] = ()
    #: Stream mode: whether each repeat's lag stayed bounded (summary stream.lag_s.bounded), for the repeats that
    #: streamed and did not fail; () offline.
    lag_bounded: tuple[bool, ...] = ()
    #: "arm64 emulated on x86_64" where a repeat ran emulated (platforms.emulated_text); None: all native.
    emulated: str | None = None

    def stat(self, metric: str) -> Stat:
        return self.stats[metric]


def latency_n(summary: Mapping[str, Any]) -> int | None:
    """How many utterances a run's latency percentiles are over: the ones it transcribed (runner/merge.py's
    score takes them over the utterances with status ok); None where the summary does not say."""
    try:
        n = int(summary["n_utterances"]) - int(summary.get("n_failed") or 0) - int(summary.get("n_not_run") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    return max(n, 0)


def _latency_counts(members: Sequence[ConditionRecord]) -> tuple[int, ...]:
    counts = {latency_n(r.summary) for r in members
              if r.status != "error" and metric_value(r.summary, ("latency_ms", "p50"))[0] is not None}
    return tuple(sorted(n for n in counts if n is not None))


def bound_path(metric: Metric) -> tuple[str, ...]:
    """Where a metric's measurement bound is in a summary: ("energy", "bounds", "total_j") for energy.total_j."""
    return (*metric.path[:-1], "bounds", metric.path[-1])


def t975(df: int) -> float:
    """Two-sided 95 % Student-t quantile for ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return T_975[df - 1] if df <= len(T_975) else 1.96


def summarize(values: Iterable[float | None], reasons: Iterable[str | None] = (),
              bounds: Iterable[float | None] | None = None) -> Stat:
    """A Stat over values, None meaning unavailable; ``reasons`` pairs with the Nones, ``bounds`` (where the
    metric has them) with the values: the Stat's bound is their mean over the values present, None where one
    of those has none.

    Reasons are kept distinct and in first-seen order, so five repeats that all
    lacked an energy source give one reason, not five.
    """
    vals = list(values)
    why = list(reasons)
    present = [v for v in vals if v is not None]
    bound = None
    if bounds is not None:
        paired = [b for v, b in zip(vals, list(bounds)) if v is not None]
        if paired and all(b is not None for b in paired):
            bound = statistics.fmean(paired)
    missing_reasons = [why[i] if i < len(why) and why[i] else NO_REASON
                       for i, v in enumerate(vals) if v is None]
    n = len(present)
    mean = statistics.fmean(present) if n else None
    std = statistics.stdev(present) if n >= 2 else None
    ci95 = t975(n - 1) * std / math.sqrt(n) if std is not None else None
    return Stat(n=n, mean=mean, std=std, ci95=ci95, n_unavailable=len(missing_reasons),
                reasons=tuple(dict.fromkeys(missing_reasons)), min=min(present) if n else None,
                max=max(present) if n else None, bound=bound)


def metric_value(summary: Mapping[str, Any] | None, path: Sequence[str]) -> tuple[float | None, str | None]:
    """The number at ``path`` in a summary, or (None, reason).

    The reason is looked up in every ``unavailable`` map on the way down,
    innermost first: ``energy.unavailable["total_j"]``, then
    ``unavailable["energy.total_j"]``, then ``unavailable["energy"]``.
    """
    node: Any = summary
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None, _reason(summary, path) or "not in the results"
        node = node[part]
        if node is None:
            return None, _reason(summary, path) or NO_REASON
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        return None, f"not a number in the results: {node!r}"
    if not math.isfinite(node):
        return None, _reason(summary, path) or f"not a finite number in the results: {node!r}"
    return float(node), None


def _reason(summary: Mapping[str, Any] | None, path: Sequence[str]) -> str | None:
    """The innermost recorded reason why the value at ``path`` is missing, if any."""
    containers: list[Mapping[str, Any]] = []  # containers[d] holds the value at path[:d]
    node: Any = summary
    for part in path:
        if not isinstance(node, Mapping):
            break
        containers.append(node)
        node = node.get(part)
    for depth in range(len(containers) - 1, -1, -1):
        unavailable = containers[depth].get("unavailable")
        if not isinstance(unavailable, Mapping):
            continue
        rest = path[depth:]
        for k in range(len(rest), 0, -1):  # "energy.total_j" before "energy"
            reason = unavailable.get(".".join(rest[:k]))
            if reason:
                return str(reason)
    return None


def aggregate(records: Iterable[ConditionRecord]) -> list[AggregateRow]:
    """Group records by condition (over repeats) and summarize every metric.

    Rows come in a stable order: backends, models, quants, devices, datasets and
    images in the order the sweep first ran them, then each other axis (numbers
    ascending, other values as first run), then clean before noisy, then SNR
    from high (mild) to low (harsh).
    """
    recs = list(records)
    groups: dict[GroupKey, list[ConditionRecord]] = {}
    for rec in recs:
        groups.setdefault(rec.key, []).append(rec)
    order = _first_seen(recs)
    rows = []
    for key in sorted(groups, key=lambda k: _sort_key(k, order)):
        members = sorted(groups[key], key=lambda r: r.repeat)
        stats = {}
        for metric in METRICS:
            values, reasons, bounds = [], [], []
            for rec in members:
                if rec.status == "error":
                    values.append(None)
                    reasons.append(f"{RUN_FAILED}: {rec.error}" if rec.error else RUN_FAILED)
                    bounds.append(None)
                    continue
                value, reason = metric_value(rec.summary, metric.path)
                values.append(value)
                reasons.append(reason)
                bounds.append(metric_value(rec.summary, bound_path(metric))[0] if metric.name in ENERGY_METRICS
                              else None)
            stats[metric.name] = summarize(values, reasons, bounds if metric.name in ENERGY_METRICS else None)
        rows.append(AggregateRow(
            key=key,
            n_runs=len(members),
            n_ok=sum(r.status == "ok" for r in members),
            n_partial=sum(r.status == "partial" for r in members),
            n_failed=sum(r.status == "error" for r in members),
            errors=tuple(dict.fromkeys(r.error or "no error message" for r in members if r.status == "error")),
            stats=stats,
            latency_n=_latency_counts(members),
            energy_scope=" / ".join(dict.fromkeys(
                s for r in members if (s := (r.summary.get("energy") or {}).get("scope")))) or None,
            n_busy=sum(r.busy_reason is not None for r in members),
            busy_reasons=tuple(dict.fromkeys(r.busy_reason for r in members if r.busy_reason)),
            lag_bounded=tuple(b for r in members if r.status != "error"
                              for b in (lag_bounded_of(r.summary),) if b is not None),
            emulated=" / ".join(dict.fromkeys(
                e for r in members if (e := emulated_text((r.summary or {}).get("emulation"))))) or None,
        ))
    return rows


def lag_bounded_of(summary: Mapping[str, Any] | None) -> bool | None:
    """A stream run's verdict on its lag (stream.lag_s.bounded, runner/scoring/stream_metrics.py); None offline or where
    the lag was not measured."""
    stream = summary.get("stream") if isinstance(summary, Mapping) else None
    lag = stream.get("lag_s") if isinstance(stream, Mapping) else None
    bounded = lag.get("bounded") if isinstance(lag, Mapping) else None
    return bounded if isinstance(bounded, bool) else None


_ORDERED = ("backend", "model_id", "quant", "device", "dataset_id", "image")


def _first_seen(recs: Sequence[ConditionRecord]) -> dict[str, dict[Any, int]]:
    order: dict[str, dict[Any, int]] = {}
    for rec in recs:
        for name in (*_ORDERED, "noise_type"):
            seen = order.setdefault(name, {})
            seen.setdefault(getattr(rec.key, name), len(seen))
        for path, value in rec.key.axes:
            seen = order.setdefault(f"axes.{path}", {})
            seen.setdefault(value, len(seen))
    return order


def _sort_key(key: GroupKey, order: Mapping[str, Mapping[Any, int]]) -> tuple:
    noise_rank = -1 if key.noise_type == "clean" else order["noise_type"][key.noise_type]
    snr_rank = -math.inf if key.snr_db is None else -key.snr_db
    paths = sorted(p[len("axes."):] for p in order if p.startswith("axes."))
    axes = []
    for path in paths:  # numbers ascending (batch 1, 4, 16), before any other value in the order first run
        value = key.axis(path)
        axes.append((0, value, 0) if is_number(value) else (1, 0, order[f"axes.{path}"].get(value, -1)))
    return (*(order[name][getattr(key, name)] for name in _ORDERED), *axes, noise_rank, snr_rank)
