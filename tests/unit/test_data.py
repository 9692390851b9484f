"""Dataset layouts: LibriSpeech tree, JSONL manifest, plain folder; and the errors a person can fix."""

import json

import pytest
from helpers import write_tone

from runner.data.load import load_dataset
from runner.errors import UserError


def test_manifest_paths_are_relative_to_the_manifest(tmp_path):
    """Relative paths resolve against the manifest's folder; a `../` outside it needs --audio-root."""
    write_tone(tmp_path / "audio" / "a.flac")
    write_tone(tmp_path / "audio" / "sub" / "b.wav")
    (tmp_path / "lists").mkdir()
    rows = [{"id": "a", "audio": "../audio/a.flac", "text": "hello"},
            {"id": "b", "audio": "../audio/sub/b.wav"}]
    (tmp_path / "lists" / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = load_dataset(tmp_path / "lists" / "m.jsonl")
    assert ds.layout == "manifest"
    assert [u.id for u in ds.utterances] == ["a", "b"]
    assert ds.utterances[0].audio == (tmp_path / "audio" / "a.flac").resolve()
    assert ds.utterances[1].reference is None
    assert all("outside the dataset's root" in u.problem and "--audio-root" in u.problem for u in ds.utterances)
    trusted = load_dataset(tmp_path / "lists" / "m.jsonl", audio_roots=(tmp_path / "audio",))
    assert [u.problem for u in trusted.utterances] == [None, None]
    assert len(trusted.readable) == 2


def test_folder_with_manifest_jsonl_is_a_manifest(root):
    ds = load_dataset(root / "data" / "default")
    assert ds.layout == "manifest" and ds.name == "default"
    assert len(ds.utterances) == 21
    assert all(u.audio.exists() and u.reference for u in ds.utterances)


def test_librispeech_layout(tmp_path):
    chapter = tmp_path / "dev" / "84" / "121123"
    write_tone(chapter / "84-121123-0000.flac")
    write_tone(chapter / "84-121123-0001.flac")
    (chapter / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n84-121123-0001 BUT IN LESS\n")
    ds = load_dataset(tmp_path)
    assert ds.layout == "librispeech"
    assert [(u.id, u.reference) for u in ds.utterances] == [("84-121123-0000", "GO DO YOU HEAR"),
                                                           ("84-121123-0001", "BUT IN LESS")]


def test_plain_folder_with_same_name_txt_references(tmp_path):
    write_tone(tmp_path / "x.wav")
    (tmp_path / "x.txt").write_text("  the reference \n")
    write_tone(tmp_path / "y.ogg", fmt="OGG")
    (tmp_path / "z.txt").write_text("   ")  # no audio: ignored
    ds = load_dataset(tmp_path)
    assert ds.layout == "folder"
    assert [(u.id, u.reference) for u in ds.utterances] == [("x", "the reference"), ("y", None)]


def test_missing_path_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_empty_folder_says_what_was_expected(tmp_path):
    with pytest.raises(UserError, match="no utterances found.*manifest.jsonl"):
        load_dataset(tmp_path)


def test_bad_manifest_line_names_the_line(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "a", "audio": "a.flac"}\n{not json\n')
    with pytest.raises(UserError, match=r"m.jsonl:2: not valid JSON"):
        load_dataset(m)


def test_duplicate_ids_are_refused(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "a", "audio": "a.flac"}\n{"id": "a", "audio": "b.flac"}\n')
    with pytest.raises(UserError, match="unique.*a"):
        load_dataset(m)
