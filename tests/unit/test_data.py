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


# --- dataset text files are data from strangers too (issue 20, item 5) ------------------------------------------

def _within(seconds, fn):
    """fn() in a thread that must return in time: a FIFO opened for reading blocks, /dev/zero never ends."""
    import threading

    box = {}

    def target():
        try:
            box["value"] = fn()
        except Exception as exc:  # noqa: BLE001 (raised again in the test's thread)
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the load blocked"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture
def secret(tmp_path):
    f = tmp_path / "host" / "shadow"
    f.parent.mkdir()
    f.write_text("root:HOSTILE-SECRET-CONTENT:19000::::::")
    f.chmod(0o600)
    return f


def test_a_reference_linked_out_of_the_dataset_is_refused_not_read(tmp_path, secret):
    """A `.txt` linked to a host file put its contents into the results and the terminal."""
    import os

    data = tmp_path / "data"
    for name in ("leak", "zero", "pipe", "ok", "alias"):
        write_tone(data / f"{name}.flac")
    (data / "leak.txt").symlink_to(secret)
    (data / "zero.txt").symlink_to("/dev/zero")
    os.mkfifo(data / "pipe.txt")
    (data / "ok.txt").write_text("hello")
    (data / "alias.txt").symlink_to(data / "ok.txt")  # a link within the dataset is fine
    ds = _within(10, lambda: load_dataset(data))
    by = {u.id: u for u in ds.utterances}
    assert by["ok"].reference == by["alias"].reference == "hello" and by["ok"].problem is None
    assert by["leak"].reference is None and by["leak"].problem == (
        f"refused: the reference {data / 'leak.txt'} is a link to {secret}, outside the dataset's root "
        f"({data}); not read")
    assert "is a link to /dev/zero, outside the dataset's root" in by["zero"].problem
    assert "pipe.txt is a FIFO (named pipe) (in the dataset); not read" in by["pipe"].problem
    assert "HOSTILE-SECRET-CONTENT" not in repr(ds)
    assert {u.id for u in ds.readable} == {"ok", "alias"}


def test_a_trans_file_or_manifest_linked_out_is_one_sentence(tmp_path, secret):
    chapter = tmp_path / "libri" / "84" / "121"
    write_tone(chapter / "84-121-0000.flac")
    (chapter / "84-121.trans.txt").symlink_to(secret)
    with pytest.raises(UserError, match=r"84-121.trans.txt is a link to .*shadow, outside the dataset's root"):
        load_dataset(tmp_path / "libri")
    folder = tmp_path / "m"
    write_tone(folder / "a.flac")
    (folder / "manifest.jsonl").symlink_to("/dev/zero")
    with pytest.raises(UserError, match="manifest.jsonl is a link to /dev/zero, outside the dataset's root"):
        _within(10, lambda: load_dataset(folder))


def test_a_manifest_over_its_limit_is_refused(tmp_path):
    write_tone(tmp_path / "a.flac")
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "a.flac", "text": "x" * 5000}) + "\n")
    with pytest.raises(UserError, match=r"m.jsonl is 4.9\d* KiB, over the limit of 1 KiB \(limits.data_text_mib; "
                                        r"in the dataset\); not read"):
        load_dataset(tmp_path / "m.jsonl", text_limit_bytes=1024)
    assert load_dataset(tmp_path / "m.jsonl").utterances[0].reference.startswith("xxx")  # default: 64 MiB


@pytest.mark.skipif(__import__("os").getuid() != 0, reason="giving a file to another owner needs root")
def test_a_hard_link_to_another_owners_file_is_refused(tmp_path):
    """A hard link looks like any file; one to a file its dataset's owner does not own may be a host file
    (made where fs.protected_hardlinks is off): refused, for audio and references alike. The owner's own
    hard links are read."""
    import os

    elsewhere = tmp_path / "elsewhere"
    write_tone(elsewhere / "private.flac")
    (elsewhere / "private.txt").write_text("someone else's words")
    for f in elsewhere.iterdir():
        os.chown(f, 4242, 4242)
    data = tmp_path / "data"
    write_tone(data / "mine.flac")
    os.link(data / "mine.flac", tmp_path / "mine-backup.flac")  # the owner's own second name: fine
    os.link(elsewhere / "private.flac", data / "theirs.flac")
    os.link(elsewhere / "private.txt", data / "theirs.txt")
    ds = load_dataset(data)
    by = {u.id: u for u in ds.utterances}
    assert by["mine"].problem is None
    assert "theirs.txt has 2 hard links and belongs to uid 4242, not to the folder's owner (uid 0)" in \
        by["theirs"].problem and by["theirs"].reference is None
    (data / "theirs.txt").unlink()
    again = {u.id: u for u in load_dataset(data).utterances}
    assert "theirs.flac has 2 hard links and belongs to uid 4242" in again["theirs"].problem
