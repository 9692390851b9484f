"""Read a sweep's ``conditions.jsonl`` and aggregate each condition over its repeats.

One ``AggregateRow`` per (backend, model, quant, device, dataset, image,
noise_type, snr_db, and every other grid axis), with one ``Stat`` per metric: n,
mean, sample std, min and max, and a Student-t 95 % confidence half-width.

Honest at small n: with fewer than ``MIN_N_FOR_CI`` values the spread shown is
the range (min-max), not a t-interval (with 2 repeats t(0.975, 1) = 12.7 makes
the interval 12.7 x the spread); no interval reaches below 0 (every metric
here is non-negative); repeats whose coefficient of variation is above
``CV_DISAGREE`` are flagged as disagreeing. Pure functions over
the records on disk: the report never talks to Docker and never re-measures
anything.

Identity is full: a model is its reference (folder or hub name) and a dataset
its path, so two datasets that share a folder name are two rows; the short
names are what the table shows, with as much of the path as tells two apart
(``display_names``). Records written before schema 3 have no full identity and
are grouped by their short names, as they always were.

Unavailable is not zero: a null value is left out of the mean and counted in
``Stat.n_unavailable`` with its reason (from the record's ``unavailable``
maps). A failed run (status "error") is never averaged in, even where it has
a number: its figures count as unavailable with the reason "run failed: ...",
and the row counts it in ``n_failed``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..results import read_jsonl_checked

CONDITIONS_FILE = "conditions.jsonl"
MANIFEST_FILE = "manifest.json"

NO_REASON = "no reason recorded"
RUN_FAILED = "run failed"  # prefix of the reason given for every figure of a failed run

#: Axis paths that are already fields of GroupKey (or the repeat, which is what is averaged over): every other
#: path in a record's ``condition.axes`` becomes part of the key.
KEY_AXES = frozenset({"backend", "model", "quant", "device", "dataset", "image", "repeat"})
MISSING_AXIS = "–"  # shown for an axis a record does not carry (a record from before the axis was swept)

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
    Metric("rtf", ("rtf",)),
    Metric("latency_p50_ms", ("latency_ms", "p50")),
    Metric("peak_rss_mb", ("peak_rss_mb",)),
    Metric("load_s", ("load_s",)),
    Metric("total_j", ("energy", "total_j")),
    Metric("dynamic_j", ("energy", "dynamic_j")),
    Metric("j_per_audio_s", ("energy", "j_per_audio_s")),
    Metric("avg_w", ("energy", "avg_w")),
)
METRIC_NAMES = tuple(m.name for m in METRICS)


@dataclass(frozen=True)
class GroupKey:
    """What a condition varies, less the repeat: the repeats of one key are averaged."""

    backend: str
    model: str
    quant: str
    device: str
    dataset: str
    noise_type: str
    snr_db: float | None
    image: str = ""  # the image ref the condition ran in (two builds of one backend are two rows)
    versions: str = ""  # its org.edgeasr.versions label (else the versions the container reported)
    model_ref: str = ""  # the model's full reference (folder path or hub name); "" in records before schema 3
    data_path: str = ""  # the dataset's full path; "" in records before schema 3
    #: (dotted path, value) of every other grid axis at this point, sorted by path (e.g. decode.beam_size).
    axes: tuple[tuple[str, Any], ...] = ()

    @property
    def model_id(self) -> tuple[str, str]:
        """The model's identity: its reference where the record has one, the short name in any case."""
        return (self.model, self.model_ref)

    @property
    def dataset_id(self) -> tuple[str, str]:
        """The dataset's identity: its path where the record has one, the folder's name in any case."""
        return (self.dataset, self.data_path)

    def axis(self, path: str) -> Any:
        """This point's value on the axis ``path``; MISSING_AXIS when the record does not carry it."""
        return next((v for p, v in self.axes if p == path), MISSING_AXIS)

    @property
    def noise_label(self) -> str:
        """"clean", "white 10 dB", or the noise type alone when it has no SNR."""
        if self.noise_type == "clean":
            return "clean"
        if self.snr_db is None:
            return self.noise_type
        return f"{self.noise_type} {self.snr_db:g} dB"


@dataclass(frozen=True)
class ConditionRecord:
    """One line of conditions.jsonl: one (condition, repeat) and its run summary."""

    key: GroupKey
    repeat: int
    status: str  # ok | partial | error
    error: str | None
    summary: Mapping[str, Any]
    folder: Path | None = None  # where its utterances.jsonl is (None: not known, e.g. a record built in a test)
    source: str = ""  # the results folder it was read from, when a report or comparison reads several

    @property
    def busy_reason(self) -> str | None:
        """Why the host was busy during this record's timed window (summary["host_load"]), or None."""
        load = self.summary.get("host_load")
        if isinstance(load, Mapping) and load.get("busy"):
            return str(load.get("busy_reason") or "host busy")
        return None


@dataclass(frozen=True)
class Sweep:
    """A sweep's records as read from its results folder, and the title to show."""

    results_dir: Path
    title: str
    records: tuple[ConditionRecord, ...]
    manifest: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()  # 'FILE:LINE: why' for each record left out (corrupt, not a condition)


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
    #: What the energy figures cover ("GPU", "board input", "CPU package+DRAM"), distinct scopes of the
    #: repeats joined; None when no repeat measured energy.
    energy_scope: str | None = None
    n_busy: int = 0  # repeats whose host was busy during the timed window (hostload.py)
    busy_reasons: tuple[str, ...] = ()

    def stat(self, metric: str) -> Stat:
        return self.stats[metric]


def t975(df: int) -> float:
    """Two-sided 95 % Student-t quantile for ``df`` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return T_975[df - 1] if df <= len(T_975) else 1.96


def summarize(values: Iterable[float | None], reasons: Iterable[str | None] = ()) -> Stat:
    """A Stat over values, None meaning unavailable; ``reasons`` pairs with the Nones.

    Reasons are kept distinct and in first-seen order, so five repeats that all
    lacked an energy source give one reason, not five.
    """
    vals = list(values)
    why = list(reasons)
    present = [v for v in vals if v is not None]
    missing_reasons = [why[i] if i < len(why) and why[i] else NO_REASON
                       for i, v in enumerate(vals) if v is None]
    n = len(present)
    mean = statistics.fmean(present) if n else None
    std = statistics.stdev(present) if n >= 2 else None
    ci95 = t975(n - 1) * std / math.sqrt(n) if std is not None else None
    return Stat(n=n, mean=mean, std=std, ci95=ci95, n_unavailable=len(missing_reasons),
                reasons=tuple(dict.fromkeys(missing_reasons)), min=min(present) if n else None,
                max=max(present) if n else None)


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
            values, reasons = [], []
            for rec in members:
                if rec.status == "error":
                    values.append(None)
                    reasons.append(f"{RUN_FAILED}: {rec.error}" if rec.error else RUN_FAILED)
                    continue
                value, reason = metric_value(rec.summary, metric.path)
                values.append(value)
                reasons.append(reason)
            stats[metric.name] = summarize(values, reasons)
        rows.append(AggregateRow(
            key=key,
            n_runs=len(members),
            n_ok=sum(r.status == "ok" for r in members),
            n_partial=sum(r.status == "partial" for r in members),
            n_failed=sum(r.status == "error" for r in members),
            errors=tuple(dict.fromkeys(r.error or "no error message" for r in members if r.status == "error")),
            stats=stats,
            energy_scope=" / ".join(dict.fromkeys(
                s for r in members if (s := (r.summary.get("energy") or {}).get("scope")))) or None,
            n_busy=sum(r.busy_reason is not None for r in members),
            busy_reasons=tuple(dict.fromkeys(r.busy_reason for r in members if r.busy_reason)),
        ))
    return rows


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


def is_number(value: Any) -> bool:
    """An int or float axis value (a bool is a switch, not a number)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def axes_that_vary(keys: Sequence[GroupKey]) -> list[str]:
    """The dotted axes whose value differs between keys, sorted by path: the ones a table or figure must show."""
    paths = sorted({p for k in keys for p, _ in k.axes})
    return [p for p in paths if len({_axis_token(k.axis(p)) for k in keys}) > 1]


def constant_axes(keys: Sequence[GroupKey]) -> list[tuple[str, Any]]:
    """(path, value) of the dotted axes every key has with one value: said once, not in a column."""
    paths = sorted({p for k in keys for p, _ in k.axes})
    varying = set(axes_that_vary(keys))
    return [(p, keys[0].axis(p)) for p in paths if p not in varying]


def _axis_token(value: Any) -> tuple[str, Any]:
    """Tells 1 from True and 1.0 from "1" when counting distinct values."""
    return (type(value).__name__, value)


def format_axis_value(value: Any) -> str:
    """An axis value as text: strings as they are, numbers without a trailing .0 noise, the rest as JSON."""
    if isinstance(value, str):
        return value
    if is_number(value):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(_thawed(value))


def _thawed(value: Any) -> Any:
    return [_thawed(v) for v in value] if isinstance(value, tuple) else value


def _frozen(value: Any) -> Any:
    """A JSON axis value made hashable: lists become tuples, mappings their sorted JSON text."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return value


def display_names(ids: Iterable[tuple[str, str]]) -> Callable[[tuple[str, str]], str]:
    """A label for each (short name, full identity): the short name, unless two different full identities
    share it; then the shortest path tail that tells them apart ("a/test" and "b/test"), else the full text.

    ``ids`` are the identities shown together (one table, one figure), so a name is lengthened only where
    it would otherwise be ambiguous there."""
    by_short: dict[str, list[str]] = {}
    for short, full in dict.fromkeys(ids):
        by_short.setdefault(short, []).append(full)
    labels: dict[tuple[str, str], str] = {}
    for short, fulls in by_short.items():
        if len(fulls) == 1:
            labels[(short, fulls[0])] = short
            continue
        parts = {f: [p for p in f.replace("\\", "/").split("/") if p] for f in fulls}
        longest = max(len(p) for p in parts.values())
        tails = {f: f for f in fulls}
        for k in range(1, longest + 1):
            candidate = {f: "/".join(p[-k:]) or short for f, p in parts.items()}
            if len(set(candidate.values())) == len(fulls):
                tails = candidate
                break
        for f in fulls:
            labels[(short, f)] = tails[f] if f else short
    return lambda ident: labels.get(ident, ident[0])


@dataclass(frozen=True)
class KeyNames:
    """How one table or figure names its keys' models and datasets (see display_names)."""

    model_of: Callable[[tuple[str, str]], str]
    dataset_of: Callable[[tuple[str, str]], str]

    @classmethod
    def of(cls, keys: Iterable[GroupKey]) -> KeyNames:
        keys = list(keys)
        return cls(display_names(k.model_id for k in keys), display_names(k.dataset_id for k in keys))

    def model(self, key: GroupKey) -> str:
        return self.model_of(key.model_id)

    def dataset(self, key: GroupKey) -> str:
        return self.dataset_of(key.dataset_id)


def load_sweep(results_dir: Path) -> Sweep:
    """Read ``conditions.jsonl`` (and ``manifest.json`` when there) from a results folder.

    Raises UserError when the folder, the file or its records are missing,
    since a report over nothing would only hide the mistake.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"results folder {results_dir} does not exist; pass the folder a sweep wrote.")
    path = results_dir / CONDITIONS_FILE
    if not path.is_file():
        raise UserError(f"{results_dir} has no {CONDITIONS_FILE}; pass the folder a sweep wrote.")
    raw, warnings = read_jsonl_checked(path)
    records = []
    for i, row in enumerate(raw, start=1):
        try:
            records.append(_with_folder(parse_record(row, path, i), results_dir))
        except UserError as exc:  # one bad record is reported, not allowed to hide the others
            warnings.append(str(exc))
    if not records:
        raise UserError(f"{path} holds no conditions; the sweep has not finished any run yet."
                        + (f" ({'; '.join(warnings)})" if warnings else ""))
    manifest = _read_manifest(results_dir / MANIFEST_FILE)
    return Sweep(results_dir=results_dir, title=sweep_title(manifest, results_dir), records=tuple(records),
                 manifest=manifest, warnings=tuple(warnings))


def _with_folder(rec: ConditionRecord, results_dir: Path) -> ConditionRecord:
    """The record with the folder of its utterances.jsonl (results_dir/conditions/<key>) when it exists."""
    key = rec.summary.get("condition", {}).get("key") if isinstance(rec.summary.get("condition"), Mapping) else None
    folder = results_dir / "conditions" / str(key) if key else None
    return replace(rec, folder=folder if folder is not None and folder.is_dir() else None)


def load_results(path: Path) -> Sweep:
    """A sweep folder (conditions.jsonl) or a run folder (summary.json; conditions.jsonl with --repeats) as a
    Sweep: `report` and `compare` take either. UserError naming what a results folder must hold."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"results folder {path} does not exist; pass a run folder (holds summary.json) or the "
                        f"folder a sweep wrote (holds {CONDITIONS_FILE}).")
    if (path / CONDITIONS_FILE).is_file():
        return load_sweep(path)
    summary_path = path / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{path} holds neither summary.json (a run folder) nor {CONDITIONS_FILE} (a sweep "
                        f"folder); pass the folder `edgeasr run --out` or `edgeasr sweep` wrote.")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{summary_path} is not valid JSON ({exc}).") from None
    if not isinstance(summary, Mapping):
        raise UserError(f"{summary_path} is not a run summary (not a JSON object).")
    cond = dict(summary.get("condition") or {}) if isinstance(summary.get("condition"), Mapping) else {}
    for name in ("backend", "model", "quant", "device", "dataset", "model_ref", "data_path"):
        cond.setdefault(name, summary.get(name))  # a summary from before conditions were recorded in it
    row = {"condition": cond, "status": summary.get("status"), "error": summary.get("error"), "summary": summary}
    rec = parse_record(row, summary_path, 1)
    folder = path if (path / "utterances.jsonl").is_file() else None
    return Sweep(results_dir=path, title=path.resolve().name, records=(replace(rec, folder=folder),))


def load_many(paths: Sequence[Path]) -> Sweep:
    """Several run and sweep folders as one Sweep. With more than one, each record gets a ``source`` axis
    (the folder's name, or as much of its path as tells two apart), so equal settings from two folders are
    two rows compared side by side, never averaged together as if they were repeats."""
    sweeps = [load_results(Path(p)) for p in paths]
    if len(sweeps) == 1:
        return sweeps[0]
    labels = source_labels([s.results_dir for s in sweeps])
    records = []
    for sweep, label in zip(sweeps, labels):
        for rec in sweep.records:
            key = replace(rec.key, axes=tuple(sorted((*rec.key.axes, (SOURCE_AXIS, label)))))
            records.append(replace(rec, key=key, source=label))
    warnings = tuple(w for s in sweeps for w in s.warnings)
    title = " vs ".join(labels)
    return Sweep(results_dir=sweeps[0].results_dir, title=title, records=tuple(records), manifest=None,
                 warnings=warnings)


#: The axis that tells apart records from different results folders in one report or comparison.
SOURCE_AXIS = "source"


def source_labels(folders: Sequence[Path]) -> list[str]:
    """A short label per folder: its name, or the shortest path tail that tells two apart."""
    full = [str(Path(f).resolve()) for f in folders]
    name = display_names((Path(f).name, f) for f in full)
    labels = [name((Path(f).name, f)) for f in full]
    seen: dict[str, int] = {}
    out = []
    for label in labels:  # one folder given twice: two columns, numbered
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def parse_record(row: Mapping[str, Any], path: Path | str = CONDITIONS_FILE, line: int = 0) -> ConditionRecord:
    """One conditions.jsonl object as a ConditionRecord; UserError when it has no usable condition."""
    cond = row.get("condition") if isinstance(row, Mapping) else None
    if not isinstance(cond, Mapping) or not all(cond.get(k) for k in ("backend", "model", "quant")):
        raise UserError(f"record {line} of {path} has no condition with backend, model and quant.")
    noise = str(cond.get("noise_type") or "clean")
    snr = cond.get("snr_db")
    axes = cond.get("axes") if isinstance(cond.get("axes"), Mapping) else {}
    key = GroupKey(
        backend=str(cond["backend"]), model=str(cond["model"]), quant=str(cond["quant"]),
        device=str(cond.get("device") or "unknown"), dataset=str(cond.get("dataset") or "unknown"),
        noise_type=noise, snr_db=None if noise == "clean" or snr is None else float(snr),
        image=str(cond.get("image") or _image_ref(row.get("summary"))), versions=record_versions(row.get("summary")),
        model_ref=str(cond.get("model_ref") or ""), data_path=str(cond.get("data_path") or ""),
        axes=tuple(sorted((str(p), _frozen(v)) for p, v in axes.items() if str(p) not in KEY_AXES)),
    )
    summary = row.get("summary")
    return ConditionRecord(key=key, repeat=int(cond.get("repeat") or 0), status=str(row.get("status") or "error"),
                           error=row.get("error"), summary=summary if isinstance(summary, Mapping) else {})


def _image_ref(summary: Any) -> str:
    image = summary.get("image") if isinstance(summary, Mapping) else None
    return str(image.get("ref") or "") if isinstance(image, Mapping) else ""


def record_versions(summary: Any) -> str:
    """`name=version,...` of the libraries a run had: its image's org.edgeasr.versions label, else the
    versions the container reported (an image built without the label); "" when neither is there."""
    if not isinstance(summary, Mapping):
        return ""
    image = summary.get("image")
    labels = image.get("labels") if isinstance(image, Mapping) else None
    label = labels.get("org.edgeasr.versions") if isinstance(labels, Mapping) else None
    if isinstance(label, str) and label.strip():
        return label.strip()
    versions = summary.get("versions")
    if isinstance(versions, Mapping):
        return ",".join(f"{k}={v}" for k, v in versions.items() if isinstance(v, str))
    return ""


def versions_that_vary(keys: Sequence[GroupKey]) -> dict[GroupKey, str]:
    """Per key, only the libraries whose version differs between keys ("ctranslate2=4.6.0"); {} when none do.

    A sweep over library builds shows what changed, not the whole label; "?" marks a library a key's image
    does not name."""
    parsed = {k: dict(i.split("=", 1) for i in k.versions.split(",") if "=" in i) for k in keys}
    libs = list(dict.fromkeys(lib for v in parsed.values() for lib in v))
    differ = [lib for lib in libs if len({v.get(lib) for v in parsed.values()}) > 1]
    if not differ:
        return {}
    return {k: ",".join(f"{lib}={parsed[k].get(lib, '?')}" for lib in differ) for k in keys}


def _read_manifest(path: Path) -> Mapping[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}).") from exc
    return data if isinstance(data, Mapping) else None


def sweep_title(manifest: Mapping[str, Any] | None, results_dir: Path) -> str:
    """The experiment's title or name from the manifest, else the results folder's name."""
    experiment = manifest.get("experiment") if manifest else None
    experiment = experiment if isinstance(experiment, Mapping) else {}
    for value in (manifest and manifest.get("title"), experiment.get("title"),
                  manifest and manifest.get("name"), experiment.get("name")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return Path(results_dir).resolve().name
