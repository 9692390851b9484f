"""Issue 28 item 1: the busy-host warning is judged on evidence of other work during the timed window (other
processes' CPU time over the window, read from /proc, and other containers), never on the 1-minute load average
that still carries the sweep's own previous container; the warning says what the other work was.

The /proc trees here are fakes in tmp_path, written in the kernel's own formats (stat, cgroup)."""

from __future__ import annotations

import json
from pathlib import Path

from runner.host import load as hostload

RUN = "a" * 64  # the run's container
NEIGHBOUR = "b" * 64  # another container
HZ = 100


def _proc(root: Path, procs: dict[int, tuple[str, int, int, str, int]]) -> Path:
    """A fake /proc: pid -> (comm, ppid, cpu ticks (utime+stime), cgroup path, flags)."""
    for pid, (comm, ppid, ticks, cgroup, flags) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True, exist_ok=True)
        utime, stime = ticks - ticks // 3, ticks // 3
        # fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        # cutime cstime priority nice threads itrealvalue starttime ...
        (d / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 {flags} 0 0 0 0 {utime} {stime} "
                                f"0 0 20 0 1 0 {1000 + pid} 0 0\n")
        (d / "cgroup").write_text("".join(f"{i}:{c}:{cgroup}\n" for i, c in enumerate(("cpu", "memory"))) +
                                  f"0::{cgroup}\n")
    return root


def _snap(root: Path, mono_s: float, self_pid: int = 10) -> hostload.CpuSnapshot:
    return hostload.cpu_snapshot(RUN, proc=str(root), self_pid=self_pid, clock=lambda: mono_s, ticks_per_s=HZ)


def _tree(tmp_path: Path, name: str, stress: int, runner_child: int, container: int, other_ct: int,
          kworker: int, dockerd: int) -> Path:
    return _proc(tmp_path / name, {
        1: ("init", 0, 5, "/", 0),
        2: ("kthreadd", 0, 0, "/", 0x00200000),
        30: ("kworker/0:1", 2, kworker, "/", 0x00200000),
        10: ("edgeasr", 1, 50, "/user.slice", 0),  # the runner itself
        11: ("docker-cred", 10, runner_child, "/user.slice", 0),  # a child of the runner
        20: ("dockerd", 1, dockerd, "/system.slice/docker.service", 0),
        40: ("python3", 39, container, f"/docker/{RUN}", 0),  # the benchmark itself
        50: ("postgres", 49, other_ct, f"/docker/{NEIGHBOUR}", 0),
        60: ("stress-ng", 1, stress, "/user.slice", 0),
    })


def test_the_load_average_left_by_the_sweeps_own_previous_container_is_not_a_busy_host(tmp_path):
    """Regression (issue 28): 12 of 16 conditions were flagged busy on a 2-core host with no other container,
    because the 1-minute load average before the window still carried the sweep's previous container. Only the
    window's own evidence counts: here nothing else used the CPU during it."""
    quiet_before = _snap(_tree(tmp_path, "t0", 0, 0, 0, 0, 0, 0), 100.0)
    quiet_after = _snap(_tree(tmp_path, "t1", 0, 0, 400, 0, 0, 0), 104.0)
    window = hostload.window_load(quiet_before, quiet_after)
    loaded = hostload.LoadSnapshot(6.0, 3.0, 1.0, 0)  # a load average of 3x the CPUs before the window
    rec = hostload.host_load_record(loaded, loaded, 2, window)
    assert rec["busy"] is False and rec["busy_reason"] is None
    assert rec["window"]["other_cpu_s"] == 0.0 and rec["window"]["window_s"] == 4.0
    assert rec["before"]["loadavg_1m"] == 6.0  # still recorded, as a fact


def test_other_processes_cpu_time_over_the_window_makes_a_busy_host_and_the_warning_says_what_it_was(tmp_path):
    """stress-ng took 2.0 CPU-s and another container 0.5 CPU-s of a 4 s window: busy, named with their shares;
    the benchmark's own container, the runner and its children, the engine's daemons and kernel threads are
    not neighbours."""
    before = _snap(_tree(tmp_path, "t0", 1000, 0, 0, 300, 0, 0), 100.0)
    after = _snap(_tree(tmp_path, "t1", 1200, 90, 390, 350, 40, 30), 104.0)
    window = hostload.window_load(before, after, {NEIGHBOUR: "db"})
    assert window.other_cpu_s == 2.5 and window.window_s == 4.0
    assert window.top[:2] == (("stress-ng", 2.0), ("container db", 0.5))
    assert window.engine_cpu_s == 0.3  # dockerd: recorded, not a neighbour
    rec = hostload.host_load_record(hostload.LoadSnapshot(0.1, 0.1, 0.1, 0), None, 2, window)
    assert rec["busy"]
    why = rec["busy_reason"]
    assert "other processes used 0.62 CPUs (2.5 CPU-s over 4.0 s: " in why
    assert "stress-ng 2.0 CPU-s" in why and "container db 0.5 CPU-s" in why
    json.dumps(rec)  # the record is plain JSON (summary.json)


def test_a_process_started_during_the_window_counts_whole_and_a_reused_pid_is_a_new_process(tmp_path):
    before = _snap(_proc(tmp_path / "t0", {60: ("make", 1, 500, "/", 0)}), 10.0)
    root = _proc(tmp_path / "t1", {61: ("cc1", 1, 80, "/", 0), 60: ("make", 1, 30, "/", 0)})
    # pid 60 now belongs to another process (another start time): its 30 ticks all fall in the window
    stat = (root / "60" / "stat").read_text().replace(" 1060 ", " 9999 ")
    (root / "60" / "stat").write_text(stat)
    window = hostload.window_load(before, _snap(root, 12.0))
    assert window.other_cpu_s == 1.1 and dict(window.top) == {"cc1": 0.8, "make": 0.3}


def test_an_idle_neighbour_container_is_recorded_but_is_not_a_busy_host(tmp_path):
    before = _snap(_tree(tmp_path, "t0", 0, 0, 0, 300, 0, 0), 100.0)
    after = _snap(_tree(tmp_path, "t1", 0, 0, 400, 301, 0, 0), 104.0)
    snap = hostload.LoadSnapshot(0.1, 0.1, 0.1, 1, ("db",))
    rec = hostload.host_load_record(snap, snap, 2, hostload.window_load(before, after, {NEIGHBOUR: "db"}))
    assert not rec["busy"] and rec["before"]["other_container_names"] == ["db"]


def test_without_a_view_of_the_hosts_processes_other_containers_are_the_evidence(tmp_path):
    """A runner inside a container (compose) sees only its own processes: the window's CPU is unavailable with
    the reason, and another running container still makes the host busy."""
    before = hostload.cpu_snapshot(RUN, proc=str(tmp_path / "none"), self_pid=10, clock=lambda: 1.0)
    window = hostload.window_load(before, before)
    assert window.other_cpu_s is None and "not readable" in window.unavailable
    neighbour = hostload.LoadSnapshot(0.1, 0.1, 0.1, 1, ("postgres",))
    rec = hostload.host_load_record(neighbour, None, 2, window)
    assert rec["busy"] and "1 other container running (postgres)" in rec["busy_reason"]
    assert "could not be measured" in rec["busy_reason"]


def test_the_real_proc_of_this_host_is_read(tmp_path):
    """The reader works on the real /proc: this process is the runner's own, never a neighbour."""
    a = hostload.cpu_snapshot(None)
    sum(i * i for i in range(200_000))  # some CPU of our own
    b = hostload.cpu_snapshot(None)
    window = hostload.window_load(a, b)
    assert window.unavailable is None and window.window_s > 0
    assert all(name != "python" or cpu < 0.5 for name, cpu in window.top)


def test_older_records_judged_on_the_load_average_are_read_again_on_their_containers_only():
    """A summary written before issue 28 says busy from its load average: readers judge it again on the
    evidence it has (other containers), so an old false warning is not repeated in reports."""
    old = {"before": {"loadavg_1m": 3.1, "other_container_names": []}, "after": {"other_container_names": []},
           "cpu_count": 2, "busy": True, "busy_reason": "load average 3.10 before the window on 2 CPUs"}
    assert hostload.busy_from_record(old) is None
    old_neighbour = {**old, "after": {"other_container_names": ["x"]}}
    assert "1 other container running (x)" in hostload.busy_from_record(old_neighbour)
    new = {"busy": True, "busy_reason": "other processes used ...", "window": {"other_cpu_s": 3.0}}
    assert hostload.busy_from_record(new) == "other processes used ..."


class _ReplayEngine:
    """An engine that replays a recorded two-condition container (tests/fixtures/group_raw) into the raw folder,
    event by event, as the Docker engine streams them."""

    name = "docker"
    host_paths = True

    class client:  # noqa: N801 - shaped like docker-py's client.containers
        class containers:  # noqa: N801
            @staticmethod
            def list():
                return [type("C", (), {"id": NEIGHBOUR, "name": "db"})()]

    def run(self, spec, job, mounts, env, on_event, launch):
        import shutil

        from runner.launch.docker_engine import ContainerRun

        fixture = Path(__file__).resolve().parents[1] / "fixtures" / "group_raw"
        for name in ("transcripts.jsonl", "status.json"):
            shutil.copy(fixture / name, launch.raw_dir / name)
        launch.on_started(RUN)
        with open(launch.raw_dir / "events.jsonl", "w") as out:
            for text in (fixture / "events.jsonl").read_text().splitlines():
                out.write(text + "\n")
                out.flush()
                on_event(json.loads(text))
        return ContainerRun(0, False, False, launch.raw_dir / "container.log", 0.1, 1.0, 0, 0, RUN)


def test_each_condition_of_a_container_is_judged_on_its_own_timed_window(tmp_path, monkeypatch):
    """The executor reads /proc at each condition's start and end: a neighbour that ran during kA's window makes
    kA busy (named, with its container's name), and kB, whose window was quiet, is not; the run's own container
    (identified by the id the engine started) is never a neighbour."""
    from helpers import recorded_group

    from runner import execute

    job, _ = recorded_group(tmp_path)
    trees = iter([_tree(tmp_path, "t0", 0, 0, 0, 0, 0, 0), _tree(tmp_path, "t1", 0, 0, 300, 100, 0, 0),
                  _tree(tmp_path, "t2", 0, 0, 300, 100, 0, 0), _tree(tmp_path, "t3", 0, 0, 600, 101, 0, 0)])
    clock = iter([1.0, 1.4, 1.5, 2.0])
    seen_run = []

    def fake_snapshot(run_container, **_kw):
        seen_run.append(run_container)
        return hostload.cpu_snapshot.__wrapped__(run_container, proc=str(next(trees)), self_pid=10,
                                                 clock=lambda: next(clock), ticks_per_s=HZ)

    fake_snapshot.__wrapped__ = hostload.cpu_snapshot
    monkeypatch.setattr(hostload, "cpu_snapshot", fake_snapshot)
    result = execute.execute_group(job, list(job.conditions), _ReplayEngine(), host={}, owner_folder=tmp_path)
    a, b = (r["summary"]["host_load"] for r in result.records)
    assert seen_run == [RUN] * 4
    assert a["busy"] and "container db 1.0 CPU-s" in a["busy_reason"] and a["window"]["window_s"] == 0.4
    assert not b["busy"] and b["window"]["other_cpu_s"] == 0.01
