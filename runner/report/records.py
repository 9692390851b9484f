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
from ..results import (CONDITIONS_FILE, KEY_AXES, MISSING_AXIS, ConditionRecord, GroupKey,  # noqa: F401
                       _frozen, is_number, parse_record, read_jsonl_checked, record_versions)
# (the record types live in runner/results.py, where runner/tables.py writes them; re-exported for the report)
MANIFEST_FILE = "manifest.json"

@dataclass(frozen=True)
class Sweep:
    """A sweep's records as read from its results folder, and the title to show."""

    results_dir: Path
    title: str
    records: tuple[ConditionRecord, ...]
    manifest: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()  # 'FILE:LINE: why' for each record left out (corrupt, not a condition)


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
    """How one table or figure names its keys' models and datasets (see display_names).

    Models are told apart within their backend only: the backend is shown wherever it varies, so an ONNX
    export ("tiny.en-onnx-9ce5...") beside faster-whisper's tiny.en is "tiny.en", as its run calls it; two
    folders called tiny.en in one backend still get their path tails."""

    model_of: Callable[[tuple[str, str]], str]
    dataset_of: Callable[[tuple[str, str]], str]
    by_backend: Mapping[str, Callable[[tuple[str, str]], str]] | None = None

    @classmethod
    def of(cls, keys: Iterable[GroupKey]) -> KeyNames:
        keys = list(keys)
        backends = {k.backend for k in keys}
        by_backend = {b: display_names(k.model_id for k in keys if k.backend == b) for b in backends}
        return cls(display_names(k.model_id for k in keys), display_names(k.dataset_id for k in keys), by_backend)

    def model(self, key: GroupKey) -> str:
        within = self.by_backend.get(key.backend) if self.by_backend else None
        return (within or self.model_of)(key.model_id)

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


def versions_that_vary(keys: Sequence[GroupKey]) -> dict[GroupKey, str]:
    """Per key, only the libraries whose version differs between keys of its backend ("ctranslate2=4.6.0");
    {} when none do.

    A sweep over library builds shows what changed, not the whole label. Versions are compared within a
    backend only: pocketsphinx has no faster-whisper library to differ in (the backend column says they
    differ), so a backend whose builds all agree gets "" while another's rows name what changed; "?" marks a
    library one build of a backend names and another does not."""
    parsed = {k: dict(i.split("=", 1) for i in k.versions.split(",") if "=" in i) for k in keys}
    out: dict[GroupKey, str] = {}
    for backend in dict.fromkeys(k.backend for k in keys):
        mine = {k: v for k, v in parsed.items() if k.backend == backend}
        libs = list(dict.fromkeys(lib for v in mine.values() for lib in v))
        differ = [lib for lib in libs if len({v.get(lib) for v in mine.values()}) > 1]
        out.update({k: ",".join(f"{lib}={mine[k].get(lib, '?')}" for lib in differ) for k in mine})
    return out if any(out.values()) else {}


def varies_within_backend(keys: Sequence[GroupKey], name: str) -> bool:
    """Whether the field ``name`` (image, say) takes two values among keys of one backend: across backends
    it differs anyway, and the backend already says so."""
    seen: dict[str, set] = {}
    for k in keys:
        seen.setdefault(k.backend, set()).add(getattr(k, name))
    return any(len(v) > 1 for v in seen.values())


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
