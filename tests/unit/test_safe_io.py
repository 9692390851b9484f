"""runner/trust/safe_io.py: what an image or a dataset planted is never followed, opened, waited on or held whole.

Issue 20, item 1 and 5: a rerun wrote through a planted ``*.tmp`` link, a root-only JSON file was copied into
summary.json, a FIFO hung the run and a link to /dev/zero exhausted memory.
"""

from __future__ import annotations

import os
import stat
import threading

import pytest

from runner.trust import safe_io
from runner.trust.safe_io import IMAGE, MIB, Unsafe


def read(folder, rel, limit=MIB, owner_uid=None, label=None):
    return safe_io.read_bytes(folder, rel, label=label or f"raw/{rel}", origin=IMAGE, limit=limit,
                              limit_name="limits.x", owner_uid=owner_uid)


def returns_within(fn, seconds=5.0):
    """Run fn in a thread; fail if it has not returned (a FIFO opened for reading blocks forever)."""
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the reader blocked"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def secret(tmp_path):
    """A host file the image must never make the runner read."""
    f = tmp_path / "secret.json"
    f.write_text('{"root_only": "contents"}')
    f.chmod(0o600)
    return f


def test_a_regular_file_is_read_and_a_missing_one_is_none(tmp_path):
    (tmp_path / "status.json").write_text("{}")
    assert read(tmp_path, "status.json") == b"{}"
    assert read(tmp_path, "events.jsonl") is None


def test_a_symbolic_link_is_refused_naming_it_and_who_left_it(tmp_path, secret):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "transcripts.jsonl").symlink_to(secret)
    with pytest.raises(Unsafe, match=r"^raw/transcripts.jsonl is a symbolic link \(left by the image\); not read$"):
        read(raw, "transcripts.jsonl")


def test_a_link_in_a_folder_on_the_way_is_refused(tmp_path, secret):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "sub").symlink_to(secret.parent)
    with pytest.raises(Unsafe, match=r"^raw/sub is a symbolic link \(left by the image\)"):
        read(raw, f"sub/{secret.name}")


def test_the_folder_itself_must_not_be_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(Unsafe, match="cannot open the folder"):
        read(tmp_path / "link", "a")


def test_a_fifo_is_refused_at_once_never_opened(tmp_path):
    os.mkfifo(tmp_path / "status.json")
    with pytest.raises(Unsafe, match=r"raw/status.json is a FIFO \(named pipe\) \(left by the image\); not read"):
        returns_within(lambda: read(tmp_path, "status.json"))


@pytest.mark.skipif(os.getuid() != 0, reason="making a device node needs root")
def test_a_device_is_refused_never_opened(tmp_path):
    os.mknod(tmp_path / "events.jsonl", 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
    with pytest.raises(Unsafe, match="is a character device"):
        returns_within(lambda: read(tmp_path, "events.jsonl"))


def test_a_file_over_its_limit_is_refused_with_the_setting_that_raises_it(tmp_path):
    (tmp_path / "status.json").write_bytes(b"x" * 2048)
    with pytest.raises(Unsafe, match=r"raw/status.json is 2 KiB, over the limit of 1 KiB \(limits.x; left by the "
                                     r"image\); not read"):
        read(tmp_path, "status.json", limit=1024)


def test_hard_links_need_the_folders_owner(tmp_path, secret):
    os.link(secret, tmp_path / "status.json")
    with pytest.raises(Unsafe, match=r"raw/status.json has 2 hard links \(left by the image\)"):
        read(tmp_path, "status.json")  # a container's outputs: never
    assert read(tmp_path, "status.json", owner_uid=os.getuid()) == secret.read_bytes()  # the owner's own file


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another owner needs root")
def test_a_hard_link_to_another_owners_file_is_refused(tmp_path, secret):
    os.chown(secret, 4242, 4242)
    os.link(secret, tmp_path / "ref.txt")
    with pytest.raises(Unsafe, match=r"has 2 hard links and belongs to uid 4242, not to the folder's owner \(uid 0\)"):
        read(tmp_path, "ref.txt", owner_uid=0)


def test_lines_are_capped_one_at_a_time_and_reading_goes_on(tmp_path):
    (tmp_path / "events.jsonl").write_bytes(b'{"a": 1}\n' + b'{"b": "' + b"x" * 5000 + b'"}\n[1]\n{"c": 3}\n{"cut')
    got = safe_io.read_jsonl(tmp_path, "events.jsonl", label="raw/events.jsonl", origin=IMAGE, line_limit=1000,
                             limit_name="limits.event_line_mib", file_limit=MIB, file_limit_name="limits.output_mib")
    assert got.rows == [{"a": 1}, {"c": 3}]
    assert got.over_limit == ["raw/events.jsonl:2: a line of more than 1000 bytes (limits.event_line_mib); not read"]
    assert got.malformed[0] == "raw/events.jsonl:3: not a JSON object" and got.malformed[1].startswith(
        "raw/events.jsonl:5: not valid JSON")


def test_a_line_exactly_at_the_limit_is_read(tmp_path):
    (tmp_path / "t").write_bytes(b"a" * 10 + b"\n" + b"b" * 11 + b"\n" + b"c" * 10)
    with open(tmp_path / "t", "rb") as fh:
        assert list(safe_io.lines(fh, 10)) == [(1, b"a" * 10), (2, None), (3, b"c" * 10)]


def test_write_new_never_writes_through_a_planted_name(tmp_path, secret):
    before = secret.read_bytes()
    (tmp_path / "job.json").symlink_to(secret)
    with pytest.raises(FileExistsError):
        safe_io.write_new(tmp_path, "job.json", b"{}")
    assert secret.read_bytes() == before
    safe_io.write_new(tmp_path, "other.json", b"{}")
    assert (tmp_path / "other.json").read_bytes() == b"{}"


def test_fresh_folder_removes_what_an_image_left_without_following_it(tmp_path, secret):
    """The previous attempt's folder held a link to a host folder, a link to a host file, a FIFO and a folder
    the image made unreadable: the new attempt's folder is empty, and nothing outside it was touched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    group = tmp_path / "group"
    raw = group / "raw"
    raw.mkdir(parents=True)
    (raw / "dir-link").symlink_to(outside)
    (raw / "job.json.tmp").symlink_to(secret)
    os.mkfifo(raw / "status.json")
    (raw / "locked" / "deep").mkdir(parents=True)
    (raw / "locked" / "deep" / "f").write_text("x")
    (raw / "locked").chmod(0)
    fresh = returns_within(lambda: safe_io.fresh_folder(group, "raw"))
    assert fresh == raw and raw.is_dir() and not raw.is_symlink() and list(raw.iterdir()) == []
    assert (outside / "keep.txt").read_text() == "keep" and secret.exists()
    assert [p.name for p in group.iterdir()] == ["raw"]  # the old one is gone, not parked


def test_create_log_truncates_and_refuses_a_link(tmp_path, secret):
    with safe_io.create_log(tmp_path / "container.log") as fh:
        fh.write(b"new")
    (tmp_path / "linked.log").symlink_to(secret)
    with pytest.raises(Unsafe, match="cannot create the log"):
        safe_io.create_log(tmp_path / "linked.log")
    assert secret.read_text() == '{"root_only": "contents"}'


def test_folder_usage_counts_every_entry_never_follows_links_and_stops_early(tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob").write_bytes(os.urandom(256 * 1024))
    out = tmp_path / "out"
    out.mkdir()
    (out / "link").symlink_to(big)
    for i in range(10):
        (out / f"empty-{i}").touch()
    used = safe_io.folder_usage(out)
    assert 11 * safe_io.ENTRY_BYTES <= used < 64 * 1024  # the linked 256 KiB is not counted
    (out / "data").write_bytes(os.urandom(512 * 1024))
    assert safe_io.folder_usage(out) >= 512 * 1024
    assert safe_io.folder_usage(out, stop_above=100 * 1024) < 1024 * 1024  # stopped once past the bound


@pytest.mark.skipif(os.getuid() == 0, reason="root can open any folder")
def test_folder_usage_refuses_a_folder_it_cannot_measure(tmp_path):
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden").chmod(0)
    try:
        with pytest.raises(Unsafe, match="hidden is a folder the runner cannot open"):
            safe_io.folder_usage(tmp_path)
    finally:
        (tmp_path / "hidden").chmod(0o700)


def test_dataset_text_follows_a_link_only_within_its_root(tmp_path, secret):
    data = tmp_path / "data"
    data.mkdir()
    (data / "real.txt").write_text("hello")
    (data / "alias.txt").symlink_to(data / "real.txt")
    (data / "leak.txt").symlink_to(secret)
    (data / "zero.txt").symlink_to("/dev/zero")
    os.mkfifo(data / "pipe.txt")
    read_text = lambda name: returns_within(lambda: safe_io.read_dataset_text(  # noqa: E731
        data / name, (data,), limit=MIB, limit_name="limits.data_text_mib"))
    assert read_text("real.txt") == read_text("alias.txt") == "hello"
    with pytest.raises(Unsafe, match=rf"leak.txt is a link to {secret}, outside the dataset's root"):
        read_text("leak.txt")
    with pytest.raises(Unsafe, match="zero.txt is a link to /dev/zero, outside the dataset's root"):
        read_text("zero.txt")
    with pytest.raises(Unsafe, match=r"pipe.txt is a FIFO \(named pipe\) \(in the dataset\); not read"):
        read_text("pipe.txt")
    (data / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(Unsafe, match=r"bad.txt is not UTF-8 text \(byte 0\)"):
        read_text("bad.txt")


def test_a_tree_deeper_than_python_recurses_is_measured_refused_and_removed(tmp_path):
    """An image nests folders thousands deep in a second: Path.rglob, os.walk and shutil.rmtree recurse once
    per level. The walk is iterative and bounded; the folder is over its bound, and a new attempt's folder is
    still made (what cannot be removed stays under a hidden name, never read)."""
    group = tmp_path / "group"
    deep = group / "raw"
    deep.mkdir(parents=True)
    fd = os.open(deep, os.O_RDONLY)
    for _ in range(1500):  # by descriptors: the path itself would pass PATH_MAX
        os.mkdir("d", dir_fd=fd)
        nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nxt
    os.close(fd)
    with pytest.raises(safe_io.TooDeep, match="nests folders more than 64 deep"):
        safe_io.folder_usage(deep)
    assert safe_io.folder_usage(deep, stop_above=4096 * 10) > 4096 * 10  # the bound is found before the depth
    safe_io.give_back(deep, os.getuid(), os.getgid())  # no RecursionError
    assert safe_io.fresh_folder(group, "raw").is_dir() and list((group / "raw").iterdir()) == []
    assert [p.name for p in group.iterdir()] == ["raw"]  # the old tree is gone, not parked
