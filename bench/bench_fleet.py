"""Fleet benchmark: Ray's scheduling overhead per group, and the speed-up of two nodes over one on one plan.

A local fleet on 127.0.0.1 (runner/fleet/local.py, the node agent's own commands): first one node of target
``bench``, then two nodes of the same target, each running the same plan (GROUPS equal groups of faster-whisper
tiny.en int8, one thread each, no power sampling, so that nothing but the groups' own work differs). Printed:

- overhead per group, median over the groups of both runs: driver submit (or, for a group that waited for its
  node, the end of the group before it there) -> task start on the node, task start -> the container's first
  event (data from the object store or cache, engine start), and the task's end -> its files written in the
  results folder;
- the wall time of each run and the speed-up (ideal 2.0 for equal groups; on a machine with fewer free cores
  than nodes times threads, the containers compete and it is less; on a host other users load, two containers
  win a larger share of it than one, and it can pass 2);
- what bounds it on this host, measured in the same run (issue 26, item 5): the CPU seconds, over each run's
  makespan, of Ray's own processes (GCS, raylets, dashboard, agents, client server: read from /proc/<pid>/stat), of
  Ray's workers (the groups' host side: docker calls, checks, merge), of the driver, of the bench's containers
  (their cpuacct cgroup), of the container engine (dockerd, containerd, shims, fuse-overlayfs: every user's
  containers') and of everything else on the host (/proc/stat's busy time less those: other users' load); the
  cores that leaves the containers, the speed-up the containers' CPU rates explain (two nodes' over one's), the
  bound the cores left give, min(2, left / one node's container cores), and a quiet host's, with Ray's own
  processes alone taken out, min(2, (cores - Ray) / threads per group); all over each run's makespan;
- with ``--repeats N``, each figure's median and range over the repeats.

The bench ends only the processes of its own cluster (found by its ports, and their children), by pid, never
``ray stop`` (which would end every Ray process of the machine, other users' included): LocalFleet.down,
runner/fleet/local.py's stop_cluster.

    python bench/bench_fleet.py [--groups 4] [--limit 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _harness import ROOT  # the checkout's runner and entrypoint first on sys.path, as every bench

from runner.fleet.local import TICK_S, LocalFleet, cluster_processes, process_stat

PORT, CLIENT_PORT = 6395, 20041  # not the demo's nor the tests'
TARGET = "bench"  # the fleet target of the bench's nodes (not the demo's nor the tests')


def experiment(folder: Path, groups: int, limit: int) -> Path:
    # timeout_s values differ only to make GROUPS distinct containers of equal work
    timeouts = ", ".join(str(600 + i) for i in range(groups))
    path = folder / "fleet-bench.yaml"
    path.write_text(f"""name: fleet-bench
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {ROOT / 'data' / 'default'}
  limit: {limit}
  decode: {{beam_size: 1, language: en, threads: 1}}
  warmup: 1
  telemetry: {{sampler: none}}
  target: {TARGET}
grid:
  timeout_s: [{timeouts}]
""")
    return path


CPUACCT = Path("/sys/fs/cgroup/cpuacct/docker")  # cgroup v1 (Docker's cgroupfs driver), as on this host
CGROUP_V2 = Path("/sys/fs/cgroup/system.slice")  # cgroup v2 with systemd: docker-<id>.scope/cpu.stat


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process."""
    st = process_stat(pid)
    return None if st is None else (st[1], st[2])


def cluster_pids(seen: dict[int, str] | None = None) -> dict[int, str]:
    """This bench's Ray processes (runner/fleet/local.py's cluster_processes: those that name its ports, and
    their descendants), each with its kind. ``seen``: the command lines read before, by pid (each is read once:
    the scan runs beside the containers it measures)."""
    return {pid: kind_of(cmd) for pid, cmd in cluster_processes((PORT, CLIENT_PORT), seen).items()}


def kind_of(cmd: str) -> str:
    """A Ray process's kind: a worker (``ray::IDLE``, ``ray::<task>``) runs the groups' task code; every other
    one (GCS, raylet, dashboard and its agents, monitors, client server) is Ray's own."""
    title = cmd.split(" ", 1)[0]
    if title in ("ray::DashboardAgent", "ray::RuntimeEnvAgent"):
        return "daemons"
    if title.startswith("ray::") or "default_worker.py" in cmd:
        return "workers"
    return "daemons"


ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc", "fuse-overlayfs")


def engine_pids(seen: dict[int, str]) -> list[int]:
    """The container engine's processes (dockerd, containerd, shims, runc, fuse-overlayfs): they serve the
    bench's containers and every other user's alike, so they are their own line, not the bench's."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid not in seen:
                try:
                    seen[pid] = Path(f"/proc/{pid}/comm").read_text().strip()
                except OSError:
                    continue
            if seen[pid] in ENGINE_PROCESSES:
                out.append(pid)
    return out


def host_busy_s() -> float:
    """CPU seconds the whole host has been busy (all cores, /proc/stat: everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK_S


def container_cpu() -> dict[str, float]:
    """CPU seconds of each running container, by id, from its cpuacct cgroup (v1) or cpu.stat (v2)."""
    out: dict[str, float] = {}
    if CPUACCT.is_dir():
        for d in CPUACCT.iterdir():
            try:
                out[d.name] = int((d / "cpuacct.usage").read_text()) / 1e9
            except (OSError, ValueError):
                pass
    elif CGROUP_V2.is_dir():
        for d in CGROUP_V2.glob("docker-*.scope"):
            try:
                usage = next(ln for ln in (d / "cpu.stat").read_text().splitlines() if ln.startswith("usage_usec"))
                out[d.name[len("docker-"):-len(".scope")]] = int(usage.split()[1]) / 1e6
            except (OSError, ValueError, StopIteration):
                pass
    return out


def container_target(cid: str) -> str:
    """The fleet target a container ran a group of (its label), "" where it has none or cannot be read."""
    r = subprocess.run(["docker", "inspect", "--format", '{{index .Config.Labels "org.edgeasr.target"}}', cid],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


@dataclass
class CpuWatch:
    """CPU seconds by whom, sampled every ``period_s`` with the wall clock (the clock fleet-timing.json's
    submitted and written are on), so that any window of the sweep can be read afterwards: the speed-up's
    own, first submit to last group written. A process or container that ends between two samples loses at
    most its last period (the figures are lower bounds); one first seen after the first sample started after
    it, and counts from zero."""

    target: str = TARGET  # the containers of this target are the bench's (their org.edgeasr.target label)
    period_s: float = 0.5
    history: dict[tuple[str, object], list[tuple[float, float]]] = field(default_factory=dict)
    kinds: dict[tuple[str, object], str] = field(default_factory=dict)
    host: list[tuple[float, float]] = field(default_factory=list)  # the whole host's busy CPU seconds
    own: list[tuple[float, float]] = field(default_factory=list)  # this bench process's (the sampler's cost)
    _targets: dict[str, str] = field(default_factory=dict)
    _cmdlines: dict[int, str] = field(default_factory=dict)
    _comms: dict[int, str] = field(default_factory=dict)
    _previous_t: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def _put(self, key: tuple[str, object], kind: str, t: float, seconds: float) -> None:
        if key not in self.history:
            # started since the previous sample: nothing before it
            self.history[key] = [(self._previous_t, 0.0)] if self._previous_t is not None else []
            self.kinds[key] = kind
        self.history[key].append((t, seconds))

    def sample(self) -> None:
        t = time.time()
        for pid, kind in cluster_pids(self._cmdlines).items():
            st = _stat(pid)
            if st is not None:
                self._put(("pid", pid), kind, t, st[1])
        for pid in engine_pids(self._comms):
            st = _stat(pid)
            if st is not None:
                self._put(("pid", pid), "engine", t, st[1])
        for cid, seconds in container_cpu().items():
            if cid not in self._targets:
                self._targets[cid] = container_target(cid)
            if self._targets[cid] == self.target:
                self._put(("container", cid), "containers", t, seconds)
        self.host.append((t, host_busy_s()))
        self.own.append((t, time.process_time()))
        self._previous_t = t

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.sample()

    def __enter__(self) -> "CpuWatch":
        self.sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @staticmethod
    def _at(series: list[tuple[float, float]], t: float) -> float:
        """The series' value at ``t``: its last sample at or before ``t`` (its first where none is)."""
        value = series[0][1]
        for when, v in series:
            if when > t:
                break
            value = v
        return value

    def seconds(self, kind: str, a: float, b: float) -> float:
        """CPU seconds of ``kind`` between the wall-clock times ``a`` and ``b``."""
        return sum(self._at(h, b) - self._at(h, a) for k, h in self.history.items() if self.kinds[k] == kind and h)

    def window(self, a: float, b: float) -> dict[str, float]:
        """CPU seconds by whom between ``a`` and ``b``: daemons, workers, containers, engine, other (the host's
        busy time less those, less this bench's own sampling)."""
        cpu = {k: self.seconds(k, a, b) for k in ("daemons", "workers", "containers", "engine")}
        host = self._at(self.host, b) - self._at(self.host, a)
        own = self._at(self.own, b) - self._at(self.own, a)
        cpu["other"] = max(0.0, host - sum(cpu.values()) - own)
        return cpu


@dataclass(frozen=True)
class Run:
    wall_s: float  # the sweep command's, connecting and preflight included
    timings: list
    cpu: dict  # CPU seconds by whom over the makespan (first submit to last written): daemons, workers,
    #            containers, engine, driver (its rusage at its mean rate), other
    threads: int

    @property
    def span_s(self) -> float:
        return makespan(self.timings)

    def cores(self, who: str) -> float:
        """Cores ``who`` took on average over the makespan."""
        return self.cpu[who] / self.span_s


def run(targets: tuple[str, ...], exp: Path, out: Path, threads: int) -> Run:
    fleet = LocalFleet(targets, PORT, CLIENT_PORT, token_file=exp.parent / "fleet-token")  # not the user's token
    fleet.down()  # a cluster an interrupted bench left on these ports
    fleet.up()
    try:
        cmd = [sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out), "--cluster", fleet.address]
        with CpuWatch() as watch:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=ROOT, env=fleet.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    text=True)
            stderr = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        fleet.down()
    if proc.returncode != 0:
        raise SystemExit(f"the sweep failed ({proc.returncode}):\n{stderr[-3000:]}")
    timings = json.loads((out / "fleet-timing.json").read_text())
    # the rest is read over the speed-up's own window; the driver's CPU is its whole command's (rusage), taken
    # at its mean rate over that window, and out of "other", which held it
    first, last = min(t["submitted"] for t in timings), max(t["written"] for t in timings)
    cpu = watch.window(first, last)
    cpu["driver"] = (usage.ru_utime + usage.ru_stime) * min(1.0, (last - first) / wall)
    cpu["other"] = max(0.0, cpu["other"] - cpu["driver"])
    return Run(wall, timings, cpu, threads)


def dispatch(timings: list[dict]) -> list[dict]:
    """Each group with ``ready``: when Ray could first start it, its submit or the end of the previous group on
    the node that ran it (groups wait for their node by design; that wait is not overhead)."""
    out, last_end = [], {}
    for t in sorted(timings, key=lambda t: t["task_start"]):
        out.append({**t, "ready": max(t["submitted"], last_end.get(t["node_id"], 0.0))})
        last_end[t["node_id"]] = t["task_end"]
    return out


def makespan(timings: list[dict]) -> float:
    """Seconds from the first group submitted to the last group's files written."""
    return max(t["written"] for t in timings) - min(t["submitted"] for t in timings)


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """One figure, or the median and range of several (the repeats)."""
    if len(values) == 1:
        return fmt.format(values[0])
    return (f"{fmt.format(statistics.median(values))} (range {fmt.format(min(values))}-{fmt.format(max(values))}, "
            f"n={len(values)})")


def cores_available() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def bounds(one: Run, two: Run, cores: int) -> dict[str, float]:
    """What bounds the two-node speed-up, from one repeat's two runs, each over its makespan.

    Equal work (the containers' CPU seconds) done at c1 cores on one node and c2 on two takes a time ratio of
    c2 / c1: ``by_cores``, the speed-up the containers' CPU rates explain. c2 is at most ``left``, the cores
    less what Ray's own processes, its workers, the driver, the container engine and the host's other load
    took over the two-node run, so the speed-up is at most ``bound`` = min(2, left / c1). ``ray_bound``: a
    quiet host's, min(2, (cores - Ray's processes) / threads per group), each container then getting its
    thread's core on one node."""
    taken = sum(two.cores(k) for k in ("daemons", "workers", "driver", "engine", "other"))
    ray_only = sum(two.cores(k) for k in ("daemons", "workers"))
    left = cores - taken
    c1 = one.cores("containers")
    return {"left": left, "c1": c1, "bound": min(2.0, left / c1) if c1 else float("nan"),
            "ray_bound": min(2.0, (cores - ray_only) / two.threads),
            "by_cores": two.cores("containers") / c1 if c1 else float("nan")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--limit", type=int, default=8, help="utterances per group")
    p.add_argument("--repeats", type=int, default=1, help="one-node and two-node runs, each this many times "
                                                          "(interleaved); figures are then medians with ranges")
    p.add_argument("--quick", action="store_true", help="CI's check that the bench still runs: 2 groups of 2 "
                                                        "utterances (the speed-up is then mostly start-up)")
    args = p.parse_args()
    if args.quick:
        args.groups, args.limit = 2, 2
    threads = 1  # each group's decode threads (the experiment's)
    pairs: list[tuple[Run, Run]] = []
    tmp = Path(tempfile.mkdtemp(prefix="edgeasr-bench-fleet-"))
    try:
        exp = experiment(tmp, args.groups, args.limit)
        for i in range(args.repeats):
            pairs.append((run((TARGET,), exp, tmp / f"one-{i}", threads),
                          run((TARGET, TARGET), exp, tmp / f"two-{i}", threads)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cores = cores_available()
    one, two = pairs[-1]
    timings = [t for a, b in pairs for t in dispatch(a.timings) + dispatch(b.timings)]
    med = {name: statistics.median(t[b] - t[a] for t in timings if t.get(a) is not None and t.get(b) is not None)
           for name, (a, b) in {"submit (or its node free) -> task start": ("ready", "task_start"),
                                "task start -> container's first event": ("task_start", "container_first_event"),
                                "task end -> written": ("task_end", "written")}.items()}
    print(f"fleet: {args.groups} equal groups (faster-whisper tiny.en int8, {args.limit} utterances, 1 thread), "
          f"Ray on 127.0.0.1")
    for name, seconds in med.items():
        print(f"  overhead per group, {name}: {seconds * 1000:.0f} ms (median of {len(timings)})")
    spans_one = [makespan(a.timings) for a, _ in pairs]
    spans_two = [makespan(b.timings) for _, b in pairs]
    print(f"  one node:  {spread(spans_one, '{:.1f}')} s from the first submit to the last group written "
          f"({spread([a.wall_s for a, _ in pairs], '{:.1f}')} s wall, with connecting and preflight)")
    print(f"  two nodes: {spread(spans_two, '{:.1f}')} s ({spread([b.wall_s for _, b in pairs], '{:.1f}')} s wall) "
          f"on {len({t['node_id'] for t in two.timings})} node(s)")
    print(f"  speed-up of two nodes over one: {spread([a / b for a, b in zip(spans_one, spans_two)])} (ideal 2.0 "
          f"for equal groups); wall to wall {spread([a.wall_s / b.wall_s for a, b in pairs])}")
    load = os.getloadavg()[0]
    print(f"  what bounds it on this host ({cores} cores, load average {load:.1f} at the end; CPU over each "
          f"run's makespan, in cores):")
    for label, index in (("one node", 0), ("two nodes", 1)):
        runs = [pair[index] for pair in pairs]
        print(f"    {label:9}: " + ", ".join(
            f"{name} {spread([r.cores(key) for r in runs])}"
            for name, key in (("Ray's daemons", "daemons"), ("Ray's workers (groups' host side)", "workers"),
                              ("driver", "driver"), ("containers", "containers"),
                              ("container engine (all users')", "engine"), ("other load", "other"))))
    b = [bounds(a, c, cores) for a, c in pairs]
    print(f"    the containers' CPU rate, two nodes / one node: {spread([x['by_cores'] for x in b])} (the speed-up "
          f"equal work at those rates gives)")
    print(f"    cores left to the two nodes' containers (cores - Ray - driver - engine - other load): "
          f"{spread([x['left'] for x in b])}; bound min(2, left / one node's container cores): "
          f"{spread([x['bound'] for x in b])}")
    print(f"    quiet-host bound min(2, left / {threads} thread per group), with Ray's processes alone taken out of "
          f"the {cores} cores: {spread([x['ray_bound'] for x in b])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
