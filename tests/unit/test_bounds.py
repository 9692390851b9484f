"""launch/bounds.py: a container's output folder is bounded while it runs; the first reason stops it, once."""

from __future__ import annotations

import os

from runner.launch.bounds import OutputWatch, Stop


def test_stop_keeps_the_first_reason_and_ends_once_in_a_thread_of_its_own():
    """The reader of the container's output may be the caller: ending the container there deadlocked (the
    engine finishes a SIGKILL only once the output was read), so the ending never runs in the caller."""
    import threading

    ended = []
    stop = Stop(lambda: ended.append(threading.current_thread().name))
    stop("first")
    stop("second")
    stop.join(10)
    assert stop.reason == "first" and ended == ["edgeasr-stop"]


def test_a_folder_past_its_bound_stops_the_container_with_the_setting_named(tmp_path):
    reasons = []
    watch = OutputWatch(tmp_path, 64 * 1024, "limits.output_mib", reasons.append)
    (tmp_path / "a").write_bytes(os.urandom(32 * 1024))
    assert watch.check() is None and reasons == []
    (tmp_path / "b").write_bytes(os.urandom(64 * 1024))
    assert watch.check() == "the container's output folder grew past 64 KiB (limits.output_mib)"
    assert reasons == ["the container's output folder grew past 64 KiB (limits.output_mib)"]


def test_many_empty_files_count_too(tmp_path):
    """A million empty files fill a file system's inodes: each entry counts at least 4 KiB."""
    reasons = []
    for i in range(40):
        (tmp_path / f"e{i}").touch()
    assert OutputWatch(tmp_path, 128 * 1024, "limits.output_mib", reasons.append).check() is not None


def test_the_watch_thread_polls_until_it_is_left(tmp_path):
    import threading

    stopped = threading.Event()
    reasons = []

    def stop(reason):
        reasons.append(reason)
        stopped.set()

    with OutputWatch(tmp_path, 8 * 1024, "limits.output_mib", stop, interval_s=0.01):
        (tmp_path / "big").write_bytes(os.urandom(64 * 1024))
        assert stopped.wait(10)
    assert len(reasons) == 1
