"""Read results folders into condition records: a sweep's ``conditions.jsonl`` or a run's ``summary.json``.

Each record is one (condition, repeat) with its run summary and a ``GroupKey``: what the condition varies,
less the repeat (runner/report/aggregate.py averages the records of one key). Identity is full: a model is
its reference (folder or hub name) and a dataset its path, so two datasets that share a folder name are two
keys; the short names are what a table shows, with as much of the path as tells two apart
(``display_names``). Records written before schema 3 have no full identity and are grouped by their short
names, as they always were. A record that cannot be read is a warning naming its line, not the end of the
report; a folder with nothing to read is a UserError.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..host.load import busy_from_record
from ..results import read_jsonl_checked

CONDITIONS_FILE = "conditions.jsonl"
MANIFEST_FILE = "manifest.json"

#: Axis paths that are already fields of GroupKey (or the repeat, which is what is averaged over): every other
#: path in a record's ``condition.axes`` becomes part of the key.
KEY_AXES = frozenset({"backend", "model", "quant", "device", "dataset", "image", "repeat"})
MISSING_AXIS = "–"  # shown for an axis a record does not carry (a record from before the axis was swept)


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
        return busy_from_record(self.summary.get("host_load"))


@dataclass(frozen=True)
class Sweep:
    """A sweep's records as read from its results folder, and the title to show."""

    results_dir: Path
    title: str
    records: tuple[ConditionRecord, ...]
    manifest: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()  # 'FILE:LINE: why' for each record left out (corrupt, not a condition)


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
    if path.is_file():
        raise UserError(f"{path} is a file; pass the folder that holds it ({path.parent}): a run folder (holds "
                        f"summary.json) or the folder a sweep wrote (holds {CONDITIONS_FILE}).")
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
