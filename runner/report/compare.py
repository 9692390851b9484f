"""Compare a baseline's results with one or more candidates': matched conditions, deltas, noise, gates.

Each side is a run folder or a sweep folder (records.load_results), aggregated over its repeats. Conditions
are matched on every key field except the ones that tell the two sides apart as a whole: a field with one
value in the baseline and another single value in the candidate (the image, the library versions, the
model...) is what is being compared, not a reason for two conditions not to match. Two single-condition
folders (two runs) always match.

Data: a matched pair is compared on the utterances both sides ran, by id and content hash (each utterance's
``audio_sha256``; by id and reference in records from before it was written). Where the sets differ, WER,
CER, RTF and latency are recomputed from each side's utterances.jsonl over the shared ones (peak RSS and
energy stay each side's whole run), and the comparison says how many it used; a gate on different data is
refused by the command unless asked for (``--allow-different-data``). Without utterance records only the
counts can be compared.

Deltas: WER in percentage points, RTF, p50 latency and energy per audio second in percent, peak RSS in MiB.
A delta the repeats cannot tell from noise is marked: Welch's t-test at 95 % where both sides have at least
2 repeats ("within noise"), "no repeats" where either side has one. The regression gates
(``--max-wer-increase`` and friends) judge the mean delta; a gate whose metric is unavailable on either side
fails, since a gate that cannot be checked must not pass silently. Figures that measure different things
(energy of the GPU alone against a CPU package) are never compared: runner/report/comparable.py says so in one
sentence ("not comparable: energy of GPU vs CPU package+DRAM"), which the delta shows and a gate on it fails with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..backends import BACKENDS
from ..errors import UserError
from ..results import read_jsonl
from ..trust.untrusted import csv_text
from .aggregate import AggregateRow, Stat, aggregate, t975
from .comparable import not_comparable
from .records import ConditionRecord, GroupKey, KeyNames, Sweep, display_names, format_axis_value
from .sweep_table import PERCENTILE_N_NOTE, Cell, TableModel, percentile_n


@dataclass(frozen=True)
class CompareMetric:
    """A compared metric: its aggregate name, header, how its change is expressed (``points``: x100
    difference, ``pct``: relative change in %, ``diff``: difference in the stored unit), and digits shown."""

    metric: str
    header: str
    change: str
    unit: str
    scale: float = 1.0
    digits: int = 3
    #: Stream mode's figure (issue 23): shown and written only for pairs where a side streamed, so that an
    #: offline comparison reads as it did.
    stream: bool = False
    change_digits: int | None = None  # digits of its change; None: by kind (points 2, pct 1, diff 0)


COMPARED: tuple[CompareMetric, ...] = (
    CompareMetric("wer", "WER %", "points", "points", 100.0, 2),
    CompareMetric("rtf", "RTF", "pct", "%", 1.0, 4),
    CompareMetric("latency_p50_ms", "p50 latency ms", "pct", "%", 1.0, 0),
    CompareMetric("peak_rss_mib", "peak RSS MiB", "diff", "MiB", 1.0, 0),
    CompareMetric("j_per_audio_s", "J / audio s", "pct", "%", 1.0, 3),
    CompareMetric("finalization_p99_ms", "p99 final ms", "pct", "%", 1.0, 0, stream=True),
    # issue 24: words said over non-speech per minute of it (hallucination); shown where a side has non-speech items
    CompareMetric("nonspeech_wpm", "non-speech words/min", "diff", "words/min", 1.0, 1, change_digits=1),
)
STREAM_GATE = "--max-latency-increase"
BY_NAME = {m.metric: m for m in COMPARED}

WITHIN_NOISE = "within noise"
NO_REPEATS = "no repeats"
#: A change no larger than the two sides' measurement bounds together (energy): not a regression.
WITHIN_BOUNDS = "within the measurement bounds"


@dataclass(frozen=True)
class Delta:
    """One metric of one matched condition: both sides' Stats, the change (None: unavailable on a side, a
    relative change from 0, or not comparable) and whether the repeats tell it from noise (``noise``: None when
    they do). ``not_comparable``: why the two sides' figures cannot be compared at all, or None."""

    metric: str
    baseline: Stat
    candidate: Stat
    change: float | None
    noise: str | None
    not_comparable: str | None = None

    @property
    def spec(self) -> CompareMetric:
        return BY_NAME[self.metric]


BY_HASH = "id and content hash"
BY_REFERENCE = "id and reference"  # records written before utterances carried audio_sha256
BY_COUNT = "utterance count (no utterances.jsonl on a side)"


@dataclass(frozen=True)
class DataMatch:
    """The utterances a matched pair was compared on: how many both sides share (None: a side has no
    utterance records, so only the counts were compared), how many each side ran, and how they were matched."""

    n_shared: int | None
    n_baseline: int | None
    n_candidate: int | None
    by: str

    @property
    def differs(self) -> bool:
        """The two sides did not run the same utterances (or, without records, not as many)."""
        if self.n_shared is None:
            return self.n_baseline != self.n_candidate
        return not (self.n_shared == self.n_baseline == self.n_candidate)

    def to_json(self) -> dict[str, Any]:
        return {"n_shared": self.n_shared, "n_baseline": self.n_baseline, "n_candidate": self.n_candidate,
                "by": self.by, "differs": self.differs}


@dataclass(frozen=True)
class Pair:
    """A baseline condition and its match in one candidate."""

    label: str
    candidate: str  # the candidate's label (its folder's name)
    baseline_row: AggregateRow
    candidate_row: AggregateRow
    deltas: tuple[Delta, ...]
    data: DataMatch = DataMatch(None, None, None, BY_COUNT)

    def delta(self, metric: str) -> Delta:
        return next(d for d in self.deltas if d.metric == metric)

    @property
    def streamed(self) -> tuple[bool, bool]:
        """Whether the baseline's and the candidate's condition have stream data (a repeat that did not fail
        recorded a p99 finalization latency or a lag verdict)."""
        return tuple(bool(row.lag_bounded) or row.stat("finalization_p99_ms").n > 0  # type: ignore[return-value]
                     for row in (self.baseline_row, self.candidate_row))

    def shown(self) -> tuple[Delta, ...]:
        """The deltas an output shows: a stream figure only where a side streamed."""
        return tuple(d for d in self.deltas if not d.spec.stream or any(self.streamed))


@dataclass(frozen=True)
class Gates:
    """Regression limits; None: not checked."""

    max_wer_increase_points: float | None = None
    max_rtf_increase_pct: float | None = None
    max_energy_increase_pct: float | None = None
    max_latency_increase_pct: float | None = None  # stream mode: p99 finalization latency
    max_hallucination_increase_wpm: float | None = None  # non-speech words per minute, absolute increase

    def items(self) -> list[tuple[str, str, float]]:
        """(metric, flag, limit) of every gate set."""
        out = []
        for metric, flag, limit in (("wer", "--max-wer-increase", self.max_wer_increase_points),
                                    ("rtf", "--max-rtf-increase", self.max_rtf_increase_pct),
                                    ("j_per_audio_s", "--max-energy-increase", self.max_energy_increase_pct),
                                    ("finalization_p99_ms", STREAM_GATE, self.max_latency_increase_pct),
                                    ("nonspeech_wpm", "--max-hallucination-increase",
                                     self.max_hallucination_increase_wpm)):
            if limit is not None:
                out.append((metric, flag, limit))
        return out


@dataclass(frozen=True)
class Comparison:
    baseline: str
    candidates: tuple[str, ...]
    pairs: tuple[Pair, ...]
    ignored: tuple[str, ...]  # key fields left out of the matching: what the sides differ in as a whole
    unmatched: tuple[str, ...]  # one line per condition of either side with no match on the other

    def stream_problem(self) -> str | None:
        """Why the stream gate cannot be set on these results (one sentence), or None: every matched condition
        must have stream data on both sides."""
        for p in self.pairs:
            for side, label in zip(p.streamed, (self.baseline, p.candidate)):
                if not side:
                    return (f"{STREAM_GATE} gates stream mode's p99 finalization latency, and {label} has no stream "
                            f"data for {p.label} (run it with --stream).")
        return None

    @property
    def different_data(self) -> list[Pair]:
        """The pairs whose sides ran different utterances."""
        return [p for p in self.pairs if p.data.differs]

    def gate_failures(self, gates: Gates) -> list[str]:
        """One sentence per condition and gate exceeded (or that could not be checked); [] when all pass."""
        failures = []
        for metric, flag, limit in gates.items():
            spec = BY_NAME[metric]
            for pair in self.pairs:
                d = pair.delta(metric)
                where = f"{pair.label} ({pair.candidate})"
                if d.not_comparable is not None:
                    failures.append(f"{where}: {flag} cannot be checked: {spec.header} {d.not_comparable}")
                elif d.change is None:
                    why = "; ".join(dict.fromkeys((*d.baseline.reasons, *d.candidate.reasons))) or "no value"
                    failures.append(f"{where}: {flag} cannot be checked: {spec.header} unavailable ({why})")
                elif d.change > limit and d.noise != WITHIN_BOUNDS:  # inside the bounds is not a regression
                    noise = f", {d.noise}" if d.noise else ""
                    failures.append(f"{where}: {spec.header} rose {format_change(d)} (limit {limit:g} "
                                    f"{spec.unit}{noise})")
        return failures


def _fields(key: GroupKey) -> dict[str, Any]:
    """Every field a condition can be matched on."""
    fields = {"backend": key.backend, "model": key.model_id, "quant": key.quant, "device": key.device,
              "dataset": key.dataset_id, "image": key.image, "versions": key.versions,
              "noise": (key.noise_type, key.snr_db)}
    fields.update({f"axes.{p}": v for p, v in key.axes})
    return fields


def _constant(rows: Sequence[AggregateRow], name: str) -> tuple[bool, Any]:
    values = {_fields(r.key).get(name) for r in rows}
    return len(values) == 1, next(iter(values)) if len(values) == 1 else None


def ignored_fields(base: Sequence[AggregateRow], cand: Sequence[AggregateRow]) -> list[str]:
    """The key fields with one value on each side, different between the sides: what is being compared."""
    names = sorted({n for r in (*base, *cand) for n in _fields(r.key)})
    out = []
    for name in names:
        one_b, vb = _constant(base, name)
        one_c, vc = _constant(cand, name)
        if one_b and one_c and vb != vc:
            out.append(name)
    return out


def _match_key(key: GroupKey, ignored: Sequence[str]) -> tuple:
    return tuple(sorted((n, json.dumps(v, default=str)) for n, v in _fields(key).items() if n not in ignored))


def distinguishable(a: Stat, b: Stat) -> bool | None:
    """Whether the means differ at 95 % by Welch's t-test; None when a side has fewer than 2 values."""
    if a.mean is None or b.mean is None or a.n < 2 or b.n < 2 or a.std is None or b.std is None:
        return None
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    se = math.sqrt(va + vb)
    diff = abs(b.mean - a.mean)
    if se == 0:
        return diff > 0
    df = (va + vb) ** 2 / ((va ** 2 / (a.n - 1) if va else 0.0) + (vb ** 2 / (b.n - 1) if vb else 0.0))
    return diff / se > t975(max(1, int(df)))


def delta(metric: str, a: Stat, b: Stat, not_comparable: str | None = None) -> Delta:
    """The change of ``metric`` from ``a`` to ``b``; none at all where ``not_comparable`` says why it cannot be."""
    spec = BY_NAME[metric]
    change = None
    if not_comparable is not None:
        return Delta(metric, a, b, None, None, not_comparable)
    if a.mean is not None and b.mean is not None:
        if spec.change == "points":
            change = (b.mean - a.mean) * 100.0
        elif spec.change == "pct":
            change = (b.mean / a.mean - 1.0) * 100.0 if a.mean else None
        else:
            change = b.mean - a.mean
    tells = distinguishable(a, b)
    noise = None if tells else (NO_REPEATS if tells is None else WITHIN_NOISE)
    if change is None:
        noise = None
    elif within_bounds(a, b):
        noise = WITHIN_BOUNDS
    return Delta(metric, a, b, change, noise)


def within_bounds(a: Stat, b: Stat) -> bool:
    """The means differ by no more than both sides' measurement bounds together (where both carry one): the
    samples cannot tell the two apart, whatever the repeats say."""
    if a.mean is None or b.mean is None or a.bound is None or b.bound is None:
        return False
    return abs(b.mean - a.mean) <= a.bound + b.bound


def compare(baseline: Sweep, candidates: Sequence[tuple[str, Sweep]], baseline_label: str = "baseline") -> Comparison:
    """Match each candidate's conditions with the baseline's and compute every delta."""
    base_rows = aggregate(baseline.records)
    base_recs = _records_by_key(baseline.records)
    pairs: list[Pair] = []
    unmatched: list[str] = []
    ignored_all: list[str] = []
    for cand_label, cand in candidates:
        cand_rows = aggregate(cand.records)
        cand_recs = _records_by_key(cand.records)
        if len(base_rows) == 1 and len(cand_rows) == 1:  # two runs: they are the comparison
            ignored = sorted(set(_fields(base_rows[0].key)) | set(_fields(cand_rows[0].key)))
            ignored = [n for n in ignored if _fields(base_rows[0].key).get(n) != _fields(cand_rows[0].key).get(n)]
        else:
            ignored = ignored_fields(base_rows, cand_rows)
        for n in ignored:
            before, after = _values_text(n, base_rows[0].key, cand_rows[0].key)
            text = f"{n} ({before} → {after})"
            if text not in ignored_all:
                ignored_all.append(text)
        labels = _labeller([r.key for r in (*base_rows, *cand_rows)], ignored)
        by_key = {}
        for r in cand_rows:
            by_key.setdefault(_match_key(r.key, ignored), r)
        used = set()
        for b in base_rows:
            k = _match_key(b.key, ignored)
            c = by_key.get(k)
            if c is None:
                unmatched.append(f"{labels(b.key)}: only in {baseline_label}")
                continue
            used.add(k)
            b_on, c_on, data = on_shared_data(b, base_recs[b.key], c, cand_recs[c.key])
            pairs.append(Pair(labels(b.key), cand_label, b_on, c_on,
                              tuple(delta(m.metric, b_on.stat(m.metric), c_on.stat(m.metric),
                                          not_comparable(m.metric, b_on, c_on)) for m in COMPARED),
                              data))
        for k, c in by_key.items():
            if k not in used:
                unmatched.append(f"{labels(c.key)}: only in {cand_label}")
    return Comparison(baseline_label, tuple(lbl for lbl, _ in candidates), tuple(pairs), tuple(ignored_all),
                      tuple(unmatched))


def _records_by_key(records: Sequence[ConditionRecord]) -> dict[GroupKey, list[ConditionRecord]]:
    out: dict[GroupKey, list[ConditionRecord]] = {}
    for rec in records:
        out.setdefault(rec.key, []).append(rec)
    return out


def _utterance_rows(rec: ConditionRecord) -> list[dict[str, Any]] | None:
    """The record's utterances.jsonl rows, or None when it has none to read."""
    if rec.folder is None or not (rec.folder / "utterances.jsonl").is_file():
        return None
    return [r for r in read_jsonl(rec.folder / "utterances.jsonl")
            if isinstance(r.get("id"), str) and r.get("status") != "not_run"]  # an interrupt: never its data


def _identity(row: Mapping[str, Any], by_hash: bool) -> tuple[str, str]:
    return (row["id"], str(row.get("audio_sha256") if by_hash else row.get("reference")))


def on_shared_data(b: AggregateRow, b_recs: Sequence[ConditionRecord], c: AggregateRow,
                   c_recs: Sequence[ConditionRecord]) -> tuple[AggregateRow, AggregateRow, DataMatch]:
    """Both rows over the utterances both sides ran, and how many those are (module docstring)."""
    rows = {id(r): _utterance_rows(r) for r in (*b_recs, *c_recs)}
    if any(v is None for v in rows.values()):
        def count(recs: Sequence[ConditionRecord]) -> int | None:
            counts = {r.summary.get("n_utterances") for r in recs}
            return next(iter(counts)) if len(counts) == 1 else None
        return b, c, DataMatch(None, count(b_recs), count(c_recs), BY_COUNT)
    every = [row for v in rows.values() for row in v or ()]
    by_hash = bool(every) and all(row.get("audio_sha256") for row in every)
    sets = {k: {_identity(row, by_hash) for row in v or ()} for k, v in rows.items()}
    b_all = set().union(*(sets[id(r)] for r in b_recs))
    c_all = set().union(*(sets[id(r)] for r in c_recs))
    shared = set.intersection(*sets.values())
    data = DataMatch(len(shared), len(b_all), len(c_all), BY_HASH if by_hash else BY_REFERENCE)
    if not data.differs:
        return b, c, data

    def restricted(recs: Sequence[ConditionRecord]) -> AggregateRow:
        out = []
        for rec in recs:
            kept = [row for row in rows[id(rec)] or () if _identity(row, by_hash) in shared]
            out.append(replace(rec, summary=rescored(rec.summary, kept)))
        row = aggregate(out)[0]
        return replace(row, key=recs[0].key)

    return restricted(b_recs), restricted(c_recs), data


def rescored(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The summary with its accuracy and speed figures scored again over ``rows`` alone (merge.score, the one
    place they are computed); memory and energy stay the whole run's."""
    from ..merge import score
    from ..results import Summary, UtteranceResult

    names = set(UtteranceResult.__dataclass_fields__)
    utts = [UtteranceResult(**{n: row.get(n) for n in names}) for row in rows]
    try:
        fresh = score(Summary(backend="", model="", quant="", device="", dataset="", status="ok"), utts)
    except (TypeError, ValueError, AttributeError) as exc:  # a file that was not the merge's own
        raise UserError(f"an utterances.jsonl of {summary.get('model')} holds a row that is not a result the "
                        f"merge wrote ({exc}); compare results edgeasr wrote.") from None
    out = dict(summary)
    out["n_not_run"] = 0  # rows holds no utterance that never ran: the counts below are over what did
    unavailable = dict(summary.get("unavailable") or {})
    for name in ("wer", "cer", "rtf", "rtfx", "latency_ms", "audio_s", "n_utterances", "n_failed", "n_scored",
                 "n_nonspeech", "nonspeech_words", "nonspeech_wpm", "nonspeech_output_share"):
        out[name] = getattr(fresh, name)
        unavailable.pop(name, None)
    unavailable.update(fresh.unavailable)
    out["unavailable"] = unavailable
    return out


def _model_format(key: GroupKey) -> str:
    backend = BACKENDS.get(key.backend)
    return backend.model_format if backend is not None else ""


def _values_text(name: str, a: GroupKey, b: GroupKey) -> tuple[str, str]:
    """Both sides' values of a field they differ in, as "compared across" shows them. One model name on both
    sides is told apart by what differs: its format (tiny.en ctranslate2 → tiny.en onnx), else its path."""
    va, vb = _fields(a).get(name), _fields(b).get(name)
    ta, tb = _value_text(name, va), _value_text(name, vb)
    if name == "model" and ta == tb:
        fa, fb = _model_format(a), _model_format(b)
        if fa != fb:
            return f"{ta} {fa}", f"{tb} {fb}"
        names = display_names([a.model_id, b.model_id])
        return names(a.model_id), names(b.model_id)
    return ta, tb


def _value_text(name: str, value: Any) -> str:
    """A key field's value as compare shows it in "compared across": a model or dataset by its short name."""
    if value is None:
        return "–"
    if name == "noise":
        kind, snr = value
        return kind if snr is None else f"{kind} {snr:g} dB"
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return value[0]
    return format_axis_value(value) if not isinstance(value, str) else (value or "–")


def _labeller(keys: Sequence[GroupKey], ignored: Sequence[str]):
    """A condition's label: model and quant, then each other field that varies among ``keys`` (and is not
    what the sides differ in), then the noise."""
    names = KeyNames.of(keys)
    varying = [n for n in sorted({n for k in keys for n in _fields(k)})
               if n not in ignored and n not in ("model", "quant", "noise")
               and len({json.dumps(_fields(k).get(n), default=str) for k in keys}) > 1]

    def label(key: GroupKey) -> str:
        parts = [names.model(key), key.quant]
        for n in varying:
            if n.startswith("axes."):
                parts.append(f"{n[5:]}={format_axis_value(key.axis(n[5:]))}")
            elif n == "dataset":
                parts.append(names.dataset(key))
            else:
                parts.append(str(getattr(key, n)))
        return " ".join([*parts, key.noise_label])

    return label


def format_value(stat: Stat, spec: CompareMetric) -> str:
    return "unavailable" if stat.mean is None else f"{stat.mean * spec.scale:.{spec.digits}f}"


def format_change(d: Delta) -> str:
    """"+0.34 points", "-12.5 %", "+18 MiB"; the not-comparable sentence; "n/a" when unavailable."""
    if d.not_comparable is not None:
        return d.not_comparable
    if d.change is None:
        return "n/a"
    spec = d.spec
    digits = spec.change_digits if spec.change_digits is not None else (
        2 if spec.change == "points" else (1 if spec.change == "pct" else 0))
    text = f"{d.change:+.{digits}f}"
    if float(text) == 0:  # "-0 MiB" or "+0.00 points" says a direction that is not there
        text = f"{0:.{digits}f}"
    return f"{text} {spec.unit}"


def table_model(cmp: Comparison, gates: Gates | None = None) -> TableModel:
    """The comparison as a TableModel (rendered like the sweep table: terminal, Markdown): one row per matched
    condition and candidate, each metric "baseline → candidate (change)", ``~`` marking a change within
    noise and ``?`` one without repeats to judge."""
    metrics = [m for m in COMPARED if any(p.delta(m.metric).baseline.mean is not None
                                          or p.delta(m.metric).candidate.mean is not None for p in cmp.pairs)]
    many = len(cmp.candidates) > 1
    headers = ("condition", *(("candidate",) if many else ()), *(m.header for m in metrics))
    rows = []
    said_n = False
    for p in cmp.pairs:
        cells = [Cell(p.label), *((Cell(p.candidate),) if many else ())]
        for m in metrics:
            d = p.delta(m.metric)
            mark = {WITHIN_NOISE: " ~", NO_REPEATS: " ?", WITHIN_BOUNDS: " ±"}.get(d.noise or "", "")
            text = f"{format_value(d.baseline, m)} → {format_value(d.candidate, m)} ({format_change(d)}){mark}"
            n = _percentile_n(p) if m.metric == "latency_p50_ms" else None
            if n is not None:
                text += f" (of {n})"
                said_n = True
            cells.append(Cell(text, unavailable=d.change is None))
        rows.append(tuple(cells))
    marks = {d.noise for p in cmp.pairs for d in p.deltas}
    remarks = [*(["~ within noise: the repeats cannot tell this change from noise (Welch t-test, 95 %)"]
                 if WITHIN_NOISE in marks else []),
               *(["? no repeats on a side, so noise cannot be judged (run with --repeats 3 or more)"]
                 if NO_REPEATS in marks else []),
               *(["± within the measurement bounds of both sides (sample gaps x power steps + sensor resolution): "
                  "the samples cannot tell them apart, so it is not a regression"] if WITHIN_BOUNDS in marks else [])]
    if said_n:
        remarks.append(PERCENTILE_N_NOTE)
    if cmp.ignored:
        remarks.append("compared across: " + ", ".join(cmp.ignored))
    remarks += data_remarks(cmp)
    remarks += [f"unmatched: {u}" for u in cmp.unmatched]
    if gates is not None:
        failures = cmp.gate_failures(gates)
        remarks += [f"REGRESSION: {f}" for f in failures]
        if gates.items() and not failures:
            remarks.append("gates passed: " + ", ".join(f"{flag} {limit:g}" for _, flag, limit in gates.items()))
    return TableModel(title=f"{', '.join(cmp.candidates)} against {cmp.baseline}", subtitle="",
                      headers=headers, n_key_columns=2 if many else 1, rows=tuple(rows), notes=(),
                      remarks=tuple(remarks))


def _percentile_n(p: Pair) -> str | None:
    """"5", or "5 → 3" where the sides' differ: the utterances each side's latency percentiles are over (the
    shared ones where the pair was compared on those), where either is small (sweep_table.percentile_n)."""
    b, c = percentile_n(p.baseline_row), percentile_n(p.candidate_row)
    if b is None and c is None:
        return None
    b = b or "/".join(map(str, p.baseline_row.latency_n)) or "?"
    c = c or "/".join(map(str, p.candidate_row.latency_n)) or "?"
    return b if b == c else f"{b} → {c}"


def data_remarks(cmp: Comparison) -> list[str]:
    """What data each pair was compared on: once when every pair ran the same utterances, else per pair."""
    if not cmp.pairs:
        return []
    if not cmp.different_data:
        by = {p.data.by for p in cmp.pairs}
        counts = {p.data.n_shared for p in cmp.pairs}
        if by == {BY_COUNT}:
            return ["utterances: the same count on both sides, not checked one by one (no utterances.jsonl)"]
        n = f"{next(iter(counts))} " if len(counts) == 1 else ""
        return [f"compared on the same {n}utterances on both sides (by {' / '.join(sorted(by))})"]
    out = []
    for p in cmp.different_data:
        d = p.data
        sides = f"{cmp.baseline} {d.n_baseline}, {p.candidate} {d.n_candidate}"
        if d.n_shared is None:
            out.append(f"DIFFERENT DATA: {p.label}: {sides} utterances, not checked one by one (no "
                       f"utterances.jsonl); the figures are each side's whole run")
        else:
            out.append(f"DIFFERENT DATA: {p.label}: compared on the {d.n_shared} shared utterances ({sides}; by "
                       f"{d.by}); peak RSS and energy are each side's whole run")
    return out


def _stat_json(stat: Stat) -> dict[str, Any]:
    return {"mean": stat.mean, "n": stat.n, "min": stat.min, "max": stat.max, "std": stat.std, "bound": stat.bound,
            "unavailable": list(stat.reasons) or None}


def to_json(cmp: Comparison, gates: Gates) -> dict[str, Any]:
    """The comparison as one JSON object (``--format json``)."""
    failures = cmp.gate_failures(gates)
    return {
        "baseline": cmp.baseline,
        "candidates": list(cmp.candidates),
        "compared_across": list(cmp.ignored),
        "pairs": [{"condition": p.label, "candidate": p.candidate, "data": p.data.to_json(),
                   "metrics": {d.metric: {"baseline": _stat_json(d.baseline), "candidate": _stat_json(d.candidate),
                                          "change": d.change, "unit": d.spec.unit, "noise": d.noise,
                                          "not_comparable": d.not_comparable}
                               for d in p.shown()}} for p in cmp.pairs],
        "unmatched": list(cmp.unmatched),
        "gates": {flag.lstrip("-"): limit for _, flag, limit in gates.items()},
        "regressions": failures,
        "passed": not failures,
    }


def to_csv(cmp: Comparison) -> str:
    """One line per matched condition, candidate and metric (long form, for spreadsheets and scripts)."""
    rows: list[list[Any]] = [["condition", "candidate", "metric", "baseline", "baseline_n", "candidate_value",
                              "candidate_n", "change", "unit", "noise", "shared_utterances", "different_data"]]
    for p in cmp.pairs:
        shared = "" if p.data.n_shared is None else p.data.n_shared
        for d in p.shown():
            rows.append([p.label, p.candidate, d.metric, d.baseline.mean, d.baseline.n, d.candidate.mean,
                         d.candidate.n, d.change, d.spec.unit, d.noise or d.not_comparable or "", shared,
                         str(p.data.differs).lower()])
    return csv_text(rows)
