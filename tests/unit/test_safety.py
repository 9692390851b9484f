"""Data safety: the folder lock, container owner labels, hardened engine arguments, content keys,
atomic writes on a full disk, and input checks made before any container starts."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, write_tone

from runner.content import HashCache
from runner.errors import UserError
from runner.host.lock import FolderLock
from runner.launch.hardening import UNPRIVILEGED_UID, Hardening
from runner.launch.owner import Owner, is_orphan, process_start_ticks
from runner.merge import host_paths
from runner.results import write_json_atomic
from runner.spec import out_problem, parse_mem_limit


# --- lock -------------------------------------------------------------------------------------------------

def test_second_holder_is_refused_naming_the_first(tmp_path):
    """A second run into a folder in use is refused with pid, host and since; the first keeps its lock."""
    with FolderLock(tmp_path / "run", "run"):
        holder = subprocess.run(
            [sys.executable, "-c", "from runner.host.lock import FolderLock; import sys; from pathlib import Path\n"
             "try:\n FolderLock(Path(sys.argv[1]), 'sweep').acquire()\n"
             "except Exception as e: print(e); sys.exit(2)", str(tmp_path / "run")],
            cwd=ROOT, capture_output=True, text=True)
        assert holder.returncode == 2
        assert f"is in use by edgeasr run (pid {os.getpid()} on " in holder.stdout
        assert "since" in holder.stdout and "choose another --out" in holder.stdout


def test_lock_dies_with_its_holder(tmp_path):
    """kill -9 of the holder frees the folder at once: no stale lock to remove by hand."""
    proc = subprocess.Popen([sys.executable, "-c", "from runner.host.lock import FolderLock; import signal, sys\n"
                             "from pathlib import Path\nheld = FolderLock(Path(sys.argv[1]), 'run').acquire()\n"
                             "print('locked', flush=True); signal.pause()", str(tmp_path / "f")],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(UserError, match="in use"):
        FolderLock(tmp_path / "f", "run").acquire()
    proc.kill()
    proc.wait()
    FolderLock(tmp_path / "f", "run").acquire().release()


# --- owner labels -----------------------------------------------------------------------------------------

def test_owner_labels_round_trip_and_a_live_owner_is_not_an_orphan(tmp_path):
    me = Owner.me(tmp_path, "run")
    assert Owner.from_labels(me.labels()) == me
    assert not is_orphan(me)


def test_dead_owner_or_reused_pid_is_an_orphan(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = process_start_ticks(proc.pid)
    proc.wait()
    me = Owner.me(tmp_path, "run")
    dead = Owner(me.host, me.boot_id, proc.pid, ticks or "1", str(tmp_path), "run")
    assert is_orphan(dead)
    reused = Owner(me.host, me.boot_id, os.getpid(), "1", str(tmp_path), "run")  # our pid, another start time
    assert is_orphan(reused)


def test_owner_on_another_host_is_left_alone_unless_we_hold_its_folder_lock(tmp_path):
    me = Owner.me(tmp_path, "sweep")
    other = Owner("compose-runner-1", me.boot_id, 1, "1", str(tmp_path), "sweep")
    assert not is_orphan(other)
    assert is_orphan(other, locked_folders=(str(tmp_path),))


def test_unlabelled_containers_are_never_judged():
    assert Owner.from_labels({"org.edgeasr.managed": "1"}) is None


# --- hardening --------------------------------------------------------------------------------------------

def test_hardened_engine_arguments():
    k = Hardening(mem_limit_bytes=2 << 30).engine_kwargs()
    assert k["cap_drop"] == ["ALL"] and k["security_opt"] == ["no-new-privileges"] and k["read_only"] is True
    assert k["network_disabled"] is True and k["network_mode"] == "none"
    assert k["pids_limit"] > 0 and k["mem_limit"] == k["memswap_limit"] == 2 << 30
    assert "/tmp" in k["tmpfs"] and "size=" in k["tmpfs"]["/tmp"]
    uid = int(k["user"].split(":")[0])
    assert uid != 0
    if os.getuid() == 0:
        assert uid == UNPRIVILEGED_UID
    else:
        assert uid == os.getuid()


def test_default_memory_limit_is_a_share_of_the_host():
    k = Hardening().engine_kwargs()
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < k["mem_limit"] < total


def test_relaxing_one_setting_changes_only_that_one():
    base = Hardening(mem_limit_bytes=1 << 30)
    relaxed = base.relaxed("read_only_rootfs").engine_kwargs()
    assert "read_only" not in relaxed and relaxed["cap_drop"] == ["ALL"]


@pytest.mark.parametrize("value,expected", [("4g", 4 << 30), ("512m", 512 << 20), ("1.5G", int(1.5 * 2**30)),
                                            ("100000000", 100000000)])
def test_mem_limit_parsing(value, expected):
    assert parse_mem_limit(value) == expected


@pytest.mark.parametrize("value,message", [("lots", "is not a size"), ("1k", "below the engine's minimum"),
                                           ("99999t", "more than this host's memory")])
def test_bad_mem_limit_is_one_sentence(value, message):
    with pytest.raises(UserError, match=message):
        parse_mem_limit(value)


# --- output folder ----------------------------------------------------------------------------------------

def test_out_that_is_a_file_or_not_writable(tmp_path):
    (tmp_path / "f").write_text("x")
    assert "is a file" in out_problem(tmp_path / "f")
    assert "is a file" in out_problem(tmp_path / "f" / "sub")
    assert "system location" in out_problem(Path("/etc/edgeasr-out"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.getuid() != 0:  # root may write anywhere
            assert "not writable" in out_problem(ro / "run")
    finally:
        ro.chmod(0o755)
    assert out_problem(tmp_path / "new" / "run") is None


# --- atomic writes on a full disk ------------------------------------------------------------------------

def test_atomic_write_on_a_full_disk_leaves_no_tmp(tmp_path, monkeypatch):
    """ENOSPC mid-write: the error reaches the caller (the CLI says it in one sentence) and no *.tmp stays."""
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as exc:
        write_json_atomic(tmp_path / "summary.json", {"a": 1})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert exc.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_cli_says_a_full_disk_in_one_sentence(tmp_path, monkeypatch, capsys):
    from runner import cli

    def boom(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))

    import runner.commands.report as report
    monkeypatch.setattr(report, "main", boom)
    assert cli.main(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edgeasr: no space left on the device while writing") and "Traceback" not in err


def test_unexpected_errors_go_to_a_per_user_debug_log(tmp_path, monkeypatch, capsys):
    from runner import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    import runner.commands.report as report
    monkeypatch.setattr(report, "main", lambda args: 1 / 0)
    assert cli.main(["report", str(tmp_path)]) == 1
    log = tmp_path / "cache" / "edgeasr" / "debug.log"
    assert "ZeroDivisionError" in log.read_text() and oct(log.stat().st_mode)[-3:] == "600"
    assert str(log) in capsys.readouterr().err


# --- messages name host paths -----------------------------------------------------------------------------

def test_container_paths_in_messages_become_host_paths():
    paths = {"/data/10": "/srv/a", "/data/1": "/srv/b", "/models/tiny.en": "/m/tiny.en", "/out": "/r/raw"}
    paths = dict(sorted(paths.items(), key=lambda kv: -len(kv[0])))
    msg = "cannot decode /data/1/x.flac; also /data/10/y.flac and /models/tiny.en/model.bin, not /output"
    assert host_paths(msg, paths) == ("cannot decode /srv/b/x.flac; also /srv/a/y.flac and /m/tiny.en/model.bin, "
                                      "not /output")


# --- content hashes ---------------------------------------------------------------------------------------

def test_content_hash_sees_a_change_of_the_same_size_and_caches_by_identity(tmp_path):
    f = tmp_path / "a.flac"
    f.write_bytes(b"A" * 1000)
    cache = HashCache(tmp_path / "cache.json")
    first = cache.file(f)
    cache.save()
    again = HashCache(tmp_path / "cache.json")
    assert again.file(f) == first and not again._dirty  # served from the cache: no re-read
    stat = f.stat()
    f.write_bytes(b"B" * 1000)  # same size, new content, new mtime (set: a coarse file clock may not move)
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert again.file(f) != first


def test_folder_hash_covers_names_and_contents(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.bin").write_bytes(b"1")
    cache = HashCache(tmp_path / "c.json")
    h1 = cache.folder(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{}")
    assert cache.folder(tmp_path / "m") != h1


def test_a_non_root_runner_does_not_pass_the_docker_sockets_group_to_backend_containers(tmp_path, monkeypatch):
    """A runner in the docker group (the compose runner as the project's owner, or a user on the host) passes its
    supplementary groups on so that group-readable datasets stay readable, but never the Docker socket's group:
    a backend container has no socket mounted, and its image comes from a stranger."""
    from runner.launch import hardening

    sock = tmp_path / "docker.sock"
    sock.touch()
    os.chown(sock, 0, 4242)
    monkeypatch.setattr(hardening, "DOCKER_SOCKETS", (sock, tmp_path / "absent.sock"))
    monkeypatch.setattr(hardening.os, "getuid", lambda: 1000)
    monkeypatch.setattr(hardening.os, "getgid", lambda: 1000)
    monkeypatch.setattr(hardening.os, "getgroups", lambda: [1000, 44, 4242, 1001])
    assert hardening.container_groups() == (44, 1001)
