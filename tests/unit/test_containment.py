"""Containment: what a backend container may see of the host (runner/launch/paths.py, runner/data/local.py).

A manifest from a stranger once made the runner mount the host's `/` at /data. These tests pin
that audio outside the dataset's roots, system files and symlinks to them become per-utterance
errors, and that the mount plan holds only the folders of the job's own audio files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import write_tone

from runner.data.load import load_dataset
from runner.errors import UserError
from runner.launch.paths import is_system_file, mount_problem, plan_audio_mounts, readable_by


def _manifest(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_absolute_system_path_escape_and_symlink_become_per_utterance_errors(tmp_path):
    """The review's three escapes: an absolute system file, a ../ escape, and a symlink to a system file."""
    data = tmp_path / "data"
    write_tone(data / "ok.flac")
    write_tone(tmp_path / "outside.flac")
    (data / "link.flac").symlink_to("/etc/passwd")
    m = _manifest(data, [{"id": "ok", "audio": "ok.flac"}, {"id": "abs", "audio": "/etc/passwd"},
                         {"id": "up", "audio": "../outside.flac"}, {"id": "link", "audio": "link.flac"},
                         {"id": "sock", "audio": "/var/run/docker.sock"}])
    ds = load_dataset(m)
    problems = {u.id: u.problem for u in ds.utterances}
    assert problems["ok"] is None
    assert "system file" in problems["abs"] and "/etc/passwd" in problems["abs"]
    assert "outside the dataset's root" in problems["up"] and "--audio-root" in problems["up"]
    assert "system file" in problems["link"]
    assert "system file" in problems["sock"]
    assert [u.id for u in ds.readable] == ["ok"]


def test_a_system_file_is_refused_even_under_a_trusted_audio_root(tmp_path):
    """--audio-root cannot open a system location: the option itself is refused."""
    m = _manifest(tmp_path / "d", [{"id": "x", "audio": "/etc/hostname"}])
    with pytest.raises(UserError, match="system location /etc"):
        load_dataset(m, audio_roots=("/etc",))
    with pytest.raises(UserError, match="root folder"):
        load_dataset(m, audio_roots=("/",))


def test_missing_audio_is_an_error_decided_on_the_host_with_the_host_path(tmp_path):
    m = _manifest(tmp_path / "d", [{"id": "gone", "audio": "gone.flac"}])
    ds = load_dataset(m)
    assert ds.utterances[0].problem == f"audio file not found: {(tmp_path / 'd' / 'gone.flac').resolve()}"


def test_a_folder_is_not_a_regular_file(tmp_path):
    (tmp_path / "d" / "dir.flac").mkdir(parents=True)
    ds = load_dataset(_manifest(tmp_path / "d", [{"id": "x", "audio": "dir.flac"}]))
    assert "not a regular file" in ds.utterances[0].problem


def test_manifest_with_bom_and_numeric_zero_id(tmp_path):
    """A UTF-8 BOM is accepted, and "id": 0 stays "0" (not replaced by the file's stem)."""
    write_tone(tmp_path / "a.flac")
    (tmp_path / "m.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps({"id": 0, "audio": "a.flac"}).encode() + b"\n")
    ds = load_dataset(tmp_path / "m.jsonl")
    assert [u.id for u in ds.utterances] == ["0"]


@pytest.mark.parametrize("audio", [None, "", "  ", 3])
def test_null_or_empty_audio_is_one_sentence(tmp_path, audio):
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "a", "audio": audio}) + "\n")
    with pytest.raises(UserError, match=r"m.jsonl:1: \"audio\" must be a non-empty path"):
        load_dataset(tmp_path / "m.jsonl")


def test_dataset_at_the_root_or_in_a_system_folder_is_refused(tmp_path):
    with pytest.raises(UserError, match="system location"):
        load_dataset("/etc")


@pytest.mark.parametrize("path,expected", [
    ("/", "root folder"), ("/etc", "is the system location /etc"), ("/etc/ssl", "is inside the system location"),
    ("/var", "contains the system location"), ("/home", "home folder"), ("/proc/1", "is inside"),
    ("/root", "home folder"),
])
def test_mount_rules(path, expected):
    assert expected in mount_problem(Path(path), "x")


def test_mount_rules_allow_a_data_folder(tmp_path):
    assert mount_problem(tmp_path, "x") is None
    assert mount_problem(Path("/root/datasets/librispeech"), "x") is None  # inside root's home, not the home


def test_home_folder_as_a_whole_is_never_mounted(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    from runner.launch import paths
    paths.home_folders.cache_clear()
    try:
        assert "home folder" in mount_problem(tmp_path, "x")
        assert mount_problem(tmp_path / "data", "x") is None
        # a file right in the home folder is mounted alone, never the home folder
        write_tone(tmp_path / "a.flac")
        write_tone(tmp_path / "data" / "b.flac")
        plan = plan_audio_mounts([("a", tmp_path / "a.flac"), ("b", tmp_path / "data" / "b.flac")],
                                 max_file_mounts=1)  # over the per-file limit: folders
        sources = {m.source for m in plan.mounts}
        assert sources == {tmp_path / "a.flac", tmp_path / "data"}
    finally:
        paths.home_folders.cache_clear()


def test_distinct_audio_folders_are_mounted_separately_not_their_ancestor(tmp_path):
    for d in ("x/1", "x/2", "y"):
        write_tone(tmp_path / d / "a.flac")
    files = [("1", tmp_path / "x/1/a.flac"), ("2", tmp_path / "x/2/a.flac"), ("3", tmp_path / "y/a.flac")]
    plan = plan_audio_mounts(files, max_file_mounts=2)
    assert [m.source for m in plan.mounts] == [tmp_path / "x/1", tmp_path / "x/2", tmp_path / "y"]
    assert plan.container_paths == {"1": "/data/0/a.flac", "2": "/data/1/a.flac", "3": "/data/2/a.flac"}
    assert plan.host_paths["/data/2/a.flac"] == str(tmp_path / "y/a.flac")


def test_each_listed_audio_file_is_mounted_alone_up_to_the_limit(tmp_path):
    """Issue 20, item 5: a folder mount showed the container every neighbour of the audio (other recordings,
    and the references a benchmarked image must never read). Up to limits.audio_mounts, only the listed files."""
    for name in ("a", "b"):
        write_tone(tmp_path / "x" / f"{name}.flac")
        (tmp_path / "x" / f"{name}.txt").write_text("the reference")
    write_tone(tmp_path / "y" / "a.flac")
    files = [("a", tmp_path / "x/a.flac"), ("b", tmp_path / "x/b.flac"), ("c", tmp_path / "y/a.flac")]
    plan = plan_audio_mounts(files)  # the default limit (512)
    assert [(m.source, m.target) for m in plan.mounts] == [
        (tmp_path / "x/a.flac", "/data/0/a.flac"), (tmp_path / "x/b.flac", "/data/0/b.flac"),
        (tmp_path / "y/a.flac", "/data/1/a.flac")]
    assert plan.container_paths == {"a": "/data/0/a.flac", "b": "/data/0/b.flac", "c": "/data/1/a.flac"}
    assert plan.host_paths["/data/1/a.flac"] == str(tmp_path / "y/a.flac") and plan.notice is None


def test_past_the_limit_folders_are_mounted_and_the_run_says_what_else_they_show(tmp_path):
    for name in ("a", "b", "c"):
        write_tone(tmp_path / "x" / f"{name}.flac")
        (tmp_path / "x" / f"{name}.txt").write_text("the reference")
    (tmp_path / "x" / "sub").mkdir()
    (tmp_path / "x" / "sub" / "private.wav").write_bytes(b"x")
    (tmp_path / "x" / "dirlink").symlink_to(tmp_path)  # shown as one entry, never walked
    files = [(n, tmp_path / "x" / f"{n}.flac") for n in ("a", "b", "c")]
    plan = plan_audio_mounts(files, max_file_mounts=2)
    assert [m.source for m in plan.mounts] == [tmp_path / "x"]
    assert plan.notice == ("3 audio files are more than 2 (limits.audio_mounts, --audio-mount-limit), so their "
                           "1 folder(s) are mounted whole: the container can also see 5 other file(s) there")


def test_system_files():
    assert is_system_file(Path("/etc/passwd")) and is_system_file(Path("/proc/self/environ"))
    assert not is_system_file(Path("/srv/data/a.flac"))


def test_readable_by_an_unprivileged_uid(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    f.chmod(0o600)
    assert not readable_by(f, 10001, (10001,))
    f.chmod(0o644)
    assert readable_by(f, 10001, (10001,))
    assert readable_by(f, os.getuid(), ())
