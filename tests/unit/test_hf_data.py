"""Hugging Face datasets (--data hf:...), offline: a save_to_disk folder and parquet files built from data/default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from runner.data.hf import parse_ref
from runner.data.load import load_dataset
from runner.errors import UserError

datasets = pytest.importorskip("datasets", reason="the optional `datasets` library is not installed")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "data" / "default"


def _rows(n: int = 3) -> list[dict]:
    return [json.loads(line) for line in (DEFAULT / "manifest.jsonl").read_text().splitlines()[:n]]


def _hf_dataset(text_column: str = "sentence"):
    rows = _rows()
    data = datasets.Dataset.from_dict({
        "audio": [{"bytes": (DEFAULT / r["audio"]).read_bytes(), "path": r["audio"]} for r in rows],
        text_column: [r["text"] for r in rows],
        "id": [r["id"] for r in rows],
    })
    return data.cast_column("audio", datasets.Audio(decode=False)), rows


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEASR_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "cache"


def test_a_save_to_disk_dataset_dict_loads_by_split_with_the_sentence_column(tmp_path, cache):
    """hf:PATH:SPLIT reads a DatasetDict's split; `sentence` is found as the text; ids from the id column;
    audio written as FLAC into the cache, once."""
    data, rows = _hf_dataset("sentence")
    datasets.DatasetDict({"test": data}).save_to_disk(str(tmp_path / "saved"))
    ds = load_dataset(f"hf:{tmp_path / 'saved'}:test")
    assert [u.id for u in ds.utterances] == [r["id"] for r in rows]
    assert [u.reference for u in ds.utterances] == [r["text"] for r in rows]
    assert all(u.audio.suffix == ".flac" and u.problem is None for u in ds.utterances)
    original, _ = sf.read(DEFAULT / rows[0]["audio"])
    cached, _ = sf.read(ds.utterances[0].audio)
    assert len(cached) == len(original)
    stamp = ds.utterances[0].audio.stat().st_mtime_ns
    again = load_dataset(f"hf:{tmp_path / 'saved'}:test")  # read from the cache, not written again
    assert again.utterances[0].audio.stat().st_mtime_ns == stamp
    assert ds.name == "saved-test"


def test_parquet_files_with_named_columns_and_a_limit(tmp_path):
    """hf:FOLDER of parquet files; ?text= and ?limit= choose the column and the first N examples."""
    data, rows = _hf_dataset("normalized")
    (tmp_path / "pq").mkdir()
    data.to_parquet(str(tmp_path / "pq" / "test-00000.parquet"))
    ds = load_dataset(f"hf:{tmp_path / 'pq'}:test?text=normalized&limit=2")
    assert [u.reference for u in ds.utterances] == [r["text"] for r in rows[:2]]
    with pytest.raises(UserError, match="no text column"):
        load_dataset(f"hf:{tmp_path / 'pq'}:test")
    none = load_dataset(f"hf:{tmp_path / 'pq'}:test?text=")
    assert all(u.reference is None for u in none.utterances)


def test_references_are_parsed_and_mistakes_named():
    """NAME:SPLIT and NAME:CONFIG:SPLIT for the hub; an unknown option, a bad limit or a missing split is one
    clear error."""
    ref = parse_ref("hf:openslr/librispeech_asr:clean:test?audio=speech", limit=5)
    assert (ref.name, ref.config, ref.split, ref.audio_column, ref.limit, ref.local) == \
        ("openslr/librispeech_asr", "clean", "test", "speech", 5, False)
    assert parse_ref("hf:mozilla/cv:validation").split == "validation"
    for bad, words in (("hf:name", "expected hf:NAME:SPLIT"), ("hf:a:b?colour=x", "unknown option"),
                       ("hf:a:b?limit=0", "whole number"), ("hf:/no/such/folder:test", "does not exist")):
        with pytest.raises(UserError, match=words):
            parse_ref(bad)
