"""Hugging Face datasets as edgeasr datasets: ``--data hf:NAME[:CONFIG]:SPLIT``.

The ``datasets`` library is optional (``pip install edgeasr[hf]``). A reference names:

* a dataset on the hub: ``hf:openslr/librispeech_asr:clean:test`` (NAME, CONFIG, SPLIT) or
  ``hf:google/fleurs:en_us:test``; read by streaming, so ``--limit N`` (or ``?limit=N``) downloads only
  the first N examples, not the whole split;
* offline, a local folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or parquet
  files (a ``.parquet`` file or a folder of them): ``hf:/data/my_set:test`` (the split is needed for a
  DatasetDict, or to pick ``*test*.parquet`` files among others).

Options after ``?``, joined with ``&``: ``audio=COLUMN`` (default ``audio``), ``text=COLUMN`` (default the
first of ``text``, ``sentence``, ``transcription``; ``text=`` with nothing: no references), ``id=COLUMN``
(default ``id`` when there, else ``SPLIT-000001``...), ``limit=N``.

The examples are written ONCE, as 16-bit FLAC at their own sample rate with a ``manifest.jsonl``, into a
cache folder ($EDGEASR_DATA_CACHE, else ~/.cache/edgeasr/datasets/<name>-<hash>); later runs read the
cache, so a container mounts plain files and never needs ``datasets`` or the network. The audio is read
from the column's encoded bytes (``Audio(decode=False)``) with soundfile, so no torch or torchcodec is
needed on the host.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..errors import UserError
from ..trust.untrusted import say
from .dataset import HF_PREFIX

TEXT_COLUMNS = ("text", "sentence", "transcription")
COMPLETE = "edgeasr-hf.json"  # written last into a cache folder: its presence means the folder is whole
OPTIONS = ("audio", "text", "id", "limit")


@dataclass(frozen=True)
class HfRef:
    """A parsed ``hf:`` reference: a hub name or a local path, and what to read from it."""

    name: str  # hub name (org/name) or a local path
    config: str | None
    split: str | None
    audio_column: str = "audio"
    text_column: str | None = None  # None: the first of TEXT_COLUMNS there; "": no references
    id_column: str | None = None
    limit: int | None = None
    local: bool = False

    def cache_key(self) -> str:
        source = self.name
        if self.local:
            path = Path(self.name)
            stamps = sorted((str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size,
                             p.stat().st_mtime_ns) for p in ([path] if path.is_file() else path.rglob("*"))
                            if p.is_file())
            source = json.dumps([str(path.resolve()), stamps])
        text = json.dumps([source, self.config, self.split, self.audio_column, self.text_column, self.id_column,
                           self.limit])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        base = Path(self.name).name if self.local else self.name.replace("/", "_")
        return "-".join(p for p in (base, self.config, self.split) if p)


def parse_ref(text: str, limit: int | None = None) -> HfRef:
    """``hf:NAME[:CONFIG]:SPLIT[?audio=..&text=..&id=..&limit=N]``; a NAME that exists on disk is local."""
    body, _, query = text[len(HF_PREFIX):].partition("?")
    options: dict[str, str] = {}
    for item in filter(None, query.split("&")):
        key, eq, value = item.partition("=")
        if key not in OPTIONS or not eq:
            raise UserError(f"{text}: unknown option {item!r}; options: {', '.join(f'{o}=...' for o in OPTIONS)}")
        options[key] = value
    if "limit" in options:
        if not re.fullmatch(r"[1-9][0-9]*", options["limit"]):
            raise UserError(f"{text}: limit must be a whole number of examples >= 1, got {options['limit']!r}")
        limit = int(options["limit"])
    parts = body.split(":")
    head = parts[0]
    local = bool(head) and Path(head).expanduser().exists()
    if local:
        name, rest = str(Path(head).expanduser().resolve()), parts[1:]
        if len(rest) > 2:
            raise UserError(f"{text}: expected hf:PATH[:SPLIT] for a local dataset")
        config, split = (None, rest[0] if rest else None) if len(rest) < 2 else (rest[0], rest[1])
    else:
        if head.startswith(("/", ".", "~")):
            raise UserError(f"{text}: {head} does not exist (a local save_to_disk folder or parquet files)")
        if len(parts) == 2:
            name, config, split = parts[0], None, parts[1]
        elif len(parts) == 3:
            name, config, split = parts
        else:
            raise UserError(f"{text}: expected hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT (e.g. "
                            f"hf:openslr/librispeech_asr:clean:test), or a local folder hf:PATH[:SPLIT]")
        if not name or not split:
            raise UserError(f"{text}: the dataset name and the split must not be empty")
    return HfRef(name=name, config=config or None, split=split or None,
                 audio_column=options.get("audio") or "audio", text_column=options.get("text"),
                 id_column=options.get("id") or None, limit=limit, local=local)


def cache_root() -> Path:
    env = os.environ.get("EDGEASR_DATA_CACHE")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgeasr" / "datasets"


def _datasets():
    try:
        import datasets
    except ImportError:
        raise UserError("hf: datasets need the `datasets` library; install it with `pip install 'edgeasr[hf]'` "
                        "(or `pip install datasets`)") from None
    return datasets


def _open(ref: HfRef):
    """The examples as an iterable (a Dataset, or an IterableDataset when streamed from the hub)."""
    datasets = _datasets()
    if ref.local:
        path = Path(ref.name)
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                if ref.split not in data:
                    raise UserError(f"hf:{ref.name}: name a split; it has {', '.join(data)} "
                                    f"(e.g. hf:{ref.name}:{next(iter(data))})")
                data = data[ref.split]
            return data
        files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        files = [f for f in files if f.suffix == ".parquet"]
        if not files:
            raise UserError(f"hf:{ref.name}: neither a save_to_disk folder (dataset_dict.json or state.json) nor "
                            f"parquet files")
        if ref.split and len(files) > 1:
            chosen = [f for f in files if ref.split in f.name or ref.split in f.parent.name]
            files = chosen or files
        return datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    try:
        return datasets.load_dataset(ref.name, ref.config, split=ref.split, streaming=True)
    except Exception as exc:  # the library raises many kinds (offline, gated, no such config)
        raise UserError(f"hf:{ref.name}: cannot open split {ref.split!r}"
                        + (f" of config {ref.config!r}" if ref.config else "")
                        + f" from the hub ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                          "without a network, save it with save_to_disk elsewhere and pass hf:PATH") from None


def _columns(data: Any) -> list[str]:
    names = getattr(data, "column_names", None)
    if names is None:
        features = getattr(data, "features", None)
        names = list(features) if features else []
    return list(names)


def _undecoded(data: Any, column: str) -> Any:
    """The audio column as encoded bytes + path (no decoding library needed), where the column is Audio."""
    datasets = _datasets()
    features = getattr(data, "features", None) or {}
    if isinstance(features.get(column), datasets.Audio):
        return data.cast_column(column, datasets.Audio(decode=False))
    return data


def audio_of(value: Any, base: Path | None = None) -> tuple[np.ndarray, int]:
    """Samples and sample rate from an audio cell: {bytes, path}, {array, sampling_rate}, or a path."""
    if isinstance(value, Mapping):
        if value.get("bytes"):
            data, sr = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
            return data.mean(axis=1), sr
        if value.get("array") is not None:
            return np.asarray(value["array"], dtype=np.float32).reshape(-1), int(value["sampling_rate"])
        value = value.get("path")
    if isinstance(value, str) and value:
        path = Path(value)
        if not path.is_absolute() and base is not None:
            path = base / path
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data.mean(axis=1), sr
    raise ValueError(f"not an audio value: {type(value).__name__}")


def materialize(ref: HfRef, log=say) -> Path:
    """The cache folder holding the reference's examples as FLAC + manifest.jsonl, written on first use."""
    folder = cache_root() / f"{ref.label}-{ref.cache_key()}"
    if (folder / COMPLETE).is_file():
        return folder
    data = _open(ref)
    columns = _columns(data)
    if columns and ref.audio_column not in columns:
        raise UserError(f"hf:{ref.name}: no audio column {ref.audio_column!r}; columns: {', '.join(columns)}; "
                        f"name it with ?audio=COLUMN")
    text_column = ref.text_column
    if text_column is None:
        text_column = next((c for c in TEXT_COLUMNS if c in columns), None)
        if text_column is None and columns:
            raise UserError(f"hf:{ref.name}: no text column ({', '.join(TEXT_COLUMNS)}); columns: "
                            f"{', '.join(columns)}; name it with ?text=COLUMN (?text= for none)")
    elif text_column and columns and text_column not in columns:
        raise UserError(f"hf:{ref.name}: no text column {text_column!r}; columns: {', '.join(columns)}")
    id_column = ref.id_column or ("id" if "id" in columns else None)
    data = _undecoded(data, ref.audio_column)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    log(f"hf:{ref.name}: writing {ref.split or 'the'} examples as FLAC into {folder} (once)")
    rows = []
    seen: set[str] = set()
    for i, example in enumerate(_limited(data, ref.limit)):
        uid = str(example[id_column]) if id_column else f"{ref.split or 'item'}-{i + 1:06d}"
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", uid)
        if safe in seen:
            safe = f"{safe}-{i + 1}"
        seen.add(safe)
        try:
            samples, sr = audio_of(example[ref.audio_column], Path(ref.name) if ref.local else None)
        except (ValueError, RuntimeError, OSError, sf.LibsndfileError) as exc:
            raise UserError(f"hf:{ref.name}: example {i} ({uid}): cannot read its audio ({exc})") from None
        rel = f"audio/{safe}.flac"
        sf.write(folder / rel, np.clip(samples, -1.0, 1.0), sr, format="FLAC", subtype="PCM_16")
        text = example.get(text_column) if text_column else None
        rows.append({"id": uid, "audio": rel, "text": text if isinstance(text, str) else None})
    if not rows:
        raise UserError(f"hf:{ref.name}: the split {ref.split!r} holds no examples")
    with open(folder / "manifest.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (folder / COMPLETE).write_text(json.dumps({"source": ref.name, "config": ref.config, "split": ref.split,
                                               "audio_column": ref.audio_column, "text_column": text_column,
                                               "limit": ref.limit, "n": len(rows)}, indent=2) + "\n")
    return folder


def _limited(data: Iterable[Mapping[str, Any]], limit: int | None) -> Iterable[Mapping[str, Any]]:
    if limit is None:
        yield from data
        return
    for i, example in enumerate(data):
        if i >= limit:
            return
        yield example
