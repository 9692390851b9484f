"""`images build` builds independent images side by side (issue 26, item 3: a fresh `make test`'s set-up).

An image build on this 2-core host uses under one core (pip in the build at ~60 %, fuse-overlayfs ~27 %: load
0.9 while `make images` ran), so `--jobs 2` builds two at a time: a child (whisperx on the torch stack) never
before its parent, a failure stops what has not started, and each image's wheelhouse is served on a port of its
own, fixed (the URL is a build argument: a changed one misses Docker's build cache).
"""

from __future__ import annotations

import argparse
import threading

import pytest
from helpers import command_args

from runner.backends import IMAGES
from runner.commands import images as images_cmd
from runner.errors import UserError
from runner.images import build, make


def parse(*argv: str) -> argparse.Namespace:
    return command_args(images_cmd, *argv)


@pytest.fixture
def engine(monkeypatch, tmp_path):
    """No engine: nothing is present, bases are given back as asked, the wheelhouse is not filled."""
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", tmp_path / "none")
    monkeypatch.setattr(images_cmd.docker_engine, "connect", lambda: object())
    monkeypatch.setattr(make, "image_exists", lambda client, ref: False)
    monkeypatch.setattr(make, "ensure_base", lambda client, base, log, **k: base)
    monkeypatch.setattr(make, "fill_wheelhouse", lambda *a, **k: None)
    monkeypatch.setattr(make, "runner_image_problem", lambda client, ref: None)
    return tmp_path


def record_builds(monkeypatch, together: int = 0, fail: str | None = None) -> list[tuple[str, str]]:
    """Fake build_image: no engine, no sleep; events (start|end, tag) in the order they happened. The first
    ``together`` builds each wait (10 s at most) until all of them are under way: they can only end if they run
    at the same time."""
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    meet = threading.Barrier(together, timeout=10) if together else None
    count = iter(range(10**6))

    def fake(client, image, **k):
        with lock:
            events.append(("start", k["tag"]))
            first = next(count) < together
        if first:
            meet.wait()
        if fail and k["tag"] == fail:
            raise UserError(f"building {fail} failed: a RUN step exited 1")
        with lock:
            events.append(("end", k["tag"]))
        return "sha256:" + "0" * 64

    monkeypatch.setattr(make, "build_image", fake)
    return events


def test_two_jobs_build_two_independent_images_at_once(engine, monkeypatch):
    events = record_builds(monkeypatch, together=2)  # a barrier of two: one at a time would break it
    assert images_cmd.main(parse("build", "faster-whisper", "pocketsphinx", "--jobs", "2", "--no-wheelhouse",
                                 "--log-dir", str(engine / "logs"))) == 0
    assert [e[0] for e in events] == ["start", "start", "end", "end"], events


def test_one_job_builds_one_at_a_time(engine, monkeypatch):
    events = record_builds(monkeypatch)
    assert images_cmd.main(parse("build", "faster-whisper", "pocketsphinx", "--jobs", "1", "--no-wheelhouse",
                                 "--log-dir", str(engine / "logs"))) == 0
    assert [e[0] for e in events] == ["start", "end", "start", "end"]


def test_a_child_starts_only_after_its_parent_is_built_and_the_parents_go_first(engine, monkeypatch):
    events = record_builds(monkeypatch, together=2)  # the first two must be under way at once
    assert images_cmd.main(parse("build", "faster-whisper", "whisperx", "transformers", "espnet", "--jobs", "2",
                                 "--no-wheelhouse", "--log-dir", str(engine / "logs"))) == 0
    at = {event: n for n, event in enumerate(events)}
    torch, py313 = IMAGES["torch-base"].image, IMAGES["torch-base-py313"].image
    for child, parent in [("edgeasr/whisperx:latest", torch), ("edgeasr/transformers:latest", torch),
                          ("edgeasr/espnet:latest", py313)]:
        assert at[("start", child)] > at[("end", parent)], f"{child} started before {parent} was built"
    # The two parents (the longest chains) start first, ahead of faster-whisper that nothing waits for.
    assert {tag for kind, tag in events[:2]} == {torch, py313}
    assert len([e for e in events if e[0] == "end"]) == 6


def test_a_failed_build_stops_what_has_not_started_and_is_said(engine, monkeypatch):
    events = record_builds(monkeypatch, fail=IMAGES["torch-base"].image)
    with pytest.raises(UserError, match="building edgeasr/torch-base:2.8 failed"):
        images_cmd.main(parse("build", "whisperx", "transformers", "pocketsphinx", "--jobs", "2", "--no-wheelhouse",
                              "--log-dir", str(engine / "logs")))
    started = [tag for kind, tag in events if kind == "start"]
    assert "edgeasr/whisperx:latest" not in started and "edgeasr/transformers:latest" not in started


def test_jobs_default_is_the_cpu_count_at_most_four_and_must_be_positive(monkeypatch):
    monkeypatch.setattr(make.os, "cpu_count", lambda: 2)
    assert make.BuildRequest(names=("faster-whisper",)).build_jobs == 2
    monkeypatch.setattr(make.os, "cpu_count", lambda: 64)
    assert make.BuildRequest(names=("faster-whisper",)).build_jobs == 4
    assert make.BuildRequest(names=("faster-whisper",), jobs=1).build_jobs == 1
    with pytest.raises(SystemExit):
        parse("build", "--jobs", "0")


def test_each_image_and_architecture_has_a_wheelhouse_port_of_its_own_and_it_is_fixed():
    from runner.host.platforms import PLATFORMS

    ports = {(name, platform): build.wheel_port(image, platform) for name, image in IMAGES.items()
             for platform in PLATFORMS}
    assert len(set(ports.values())) == len(ports)
    assert all(1024 < p < 65536 for p in ports.values())
    assert build.wheel_port(IMAGES["faster-whisper"], "x86") == ports[("faster-whisper", "x86")]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_wheelhouse_is_served_on_the_port_asked_and_two_at_once(tmp_path):
    from runner.images.wheel_server import serve_wheelhouse
    import urllib.request

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x-1.0-py3-none-any.whl").write_bytes(b"x")
    (tmp_path / "b").mkdir()
    port_a, port_b = free_port(), free_port()  # the table's may be taken by a build running on this host
    with serve_wheelhouse(tmp_path / "a", port_a) as a, serve_wheelhouse(tmp_path / "b", port_b) as b:
        assert a == f"http://127.0.0.1:{port_a}/" and b == f"http://127.0.0.1:{port_b}/"
        assert b"x-1.0-py3-none-any.whl" in urllib.request.urlopen(a, timeout=5).read()


def test_make_test_builds_its_images_side_by_side_and_the_other_cpus_only_on_x86(tmp_path):
    """`make test`'s set-up (make -n: nothing runs): every backend and the runner in one `images build` (so
    --jobs applies), and on x86 faster-whisper's arm64 and CUDA images in a process beside it."""
    import subprocess

    from helpers import ROOT

    def dry(*extra: str) -> str:
        return subprocess.run(["make", "-n", "-C", str(ROOT), "test-images", f"VENV={tmp_path}/venv", *extra],
                              capture_output=True, text=True, check=True).stdout

    x86 = dry("PLATFORM=x86")
    assert "images list --backends) runner --base" in x86 and "--platform x86" in x86
    assert "images build faster-whisper --platform arm64 --missing" in x86
    assert "images build faster-whisper --platform cuda" in x86
    arm = dry("PLATFORM=arm64")
    assert "--platform arm64 --missing" not in arm and "--platform cuda" not in arm
    assert "runner --base" in arm and "& other=" in arm


def test_ctrl_c_while_images_build_side_by_side_stops_the_builds_under_way(engine, monkeypatch):
    """Ctrl-C reaches the main thread, which only waits: the builds in their threads are told to stop (build_image
    leaves its stream at the next line), no other starts, and the interrupt goes on."""
    stopped, started = [], []
    both = threading.Barrier(3, timeout=10)  # the two builds and the interrupt

    def fake(client, image, **k):
        started.append(k["tag"])
        both.wait()
        assert k["stop"].wait(timeout=10), "the build was never told to stop"
        stopped.append(k["tag"])
        raise UserError(f"building {k['tag']}: stopped")

    monkeypatch.setattr(make, "build_image", fake)
    real_wait = make.concurrent.futures.wait

    def interrupted(*a, **k):
        both.wait()  # once both builds are under way
        raise KeyboardInterrupt

    monkeypatch.setattr(make.concurrent.futures, "wait", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            images_cmd.main(parse("build", "faster-whisper", "pocketsphinx", "espnet", "--jobs", "2",
                                  "--no-wheelhouse", "--log-dir", str(engine / "logs")))
    finally:
        monkeypatch.setattr(make.concurrent.futures, "wait", real_wait)
    assert sorted(stopped) == sorted(started) and len(started) == 2


def test_build_image_leaves_its_stream_once_told_to_stop(tmp_path):
    stop = threading.Event()
    read = []

    def lines():
        for n in range(5):
            read.append(n)
            if n == 1:
                stop.set()
            yield {"stream": f"Step {n + 1}/5 : RUN true\n"}

    class Api:
        def build(self, **kwargs):
            return lines()

    class Client:
        api = Api()

    with pytest.raises(UserError, match="building edgeasr/pocketsphinx:latest: stopped"):
        build.build_image(Client(), IMAGES["pocketsphinx"], base="b", wheels_url="", stop=stop,
                          log_path=tmp_path / "log", log=lambda m: None)
    assert read == [0, 1]  # not a line more
