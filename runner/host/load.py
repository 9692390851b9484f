"""How busy the host was during a timed window: other processes' CPU time over the window, other containers.

A benchmark on a shared machine measures the neighbours too. Every condition records (``summary["host_load"]``)
the host's load average and other containers before its container started and after it ended, and, over the
condition's own timed window, the CPU time that processes other than the run's took (read from /proc at the
window's start and end). It is marked ``busy`` (with what the other work was) only on that evidence: other
processes using at least ``BUSY_OTHER_CPUS`` during the window, or, where the window's CPU could not be read,
another container running. The load average is recorded but never judged: on a small host the 1-minute
average still carries the sweep's own previous container. Facts only: nothing here waits or refuses to run.
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

#: Other processes' CPU use over the timed window, in CPUs (CPU-seconds per second), from which the host
#: counts as busy: a quarter of one core taken from the benchmark is more than run-to-run noise.
BUSY_OTHER_CPUS = 0.25
#: Below this much other CPU time (seconds) a short window is not judged busy: /proc counts in clock ticks.
MIN_OTHER_CPU_S = 0.05
#: Processes that are the engine's own machinery (they serve the run's container too): recorded apart.
#: (Names as /proc shows them: at most 15 characters, so containerd-shim-runc-v2 is containerd-shim.)
ENGINE_PROCESSES = frozenset({"dockerd", "containerd", "containerd-shim", "docker-proxy", "runc"})
_KTHREAD = 0x00200000  # PF_KTHREAD in /proc/PID/stat's flags


@dataclass(frozen=True)
class LoadSnapshot:
    """The host at one moment: load averages (1, 5, 15 min; None where /proc/loadavg is not readable) and
    the running containers that are not this run's (None where the engine could not be asked)."""

    loadavg_1m: float | None
    loadavg_5m: float | None
    loadavg_15m: float | None
    other_containers: int | None
    other_container_names: tuple[str, ...] = ()
    #: id -> name of those containers (names the window's CPU by container; not written to summaries)
    other_container_ids: Mapping[str, str] = field(default_factory=dict, compare=False)


def read_loadavg(path: str = "/proc/loadavg") -> tuple[float | None, float | None, float | None]:
    try:
        with open(path) as fh:
            parts = fh.read().split()
        return float(parts[0]), float(parts[1]), float(parts[2])
    except (OSError, ValueError, IndexError):
        return None, None, None


_CONTAINER_ID = re.compile(r"/containers/([0-9a-f]{64})/")


def own_container_id(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The id of the container this process runs in (compose runs the runner in one), from the engine's
    bind mounts of /etc/hostname and friends; None on the host. Not the hostname: with the host's network
    a container has the host's name."""
    try:
        with open(mountinfo) as fh:
            for line in fh:
                m = _CONTAINER_ID.search(line)
                if m:
                    return m.group(1)
    except OSError:
        pass
    return None


def _other_containers(engine: Any, own_labels: Mapping[str, str] | None = None) -> tuple[int | None, dict[str, str]]:
    """Running containers other than this runner's own (id -> name): not the one it runs in, nor those carrying
    every one of ``own_labels`` (a sweep's label: its next container, started while the last one ends and held
    before its load, runs nothing beside a timed window). None where the engine has no Docker client (the local
    engine) or could not be asked."""
    if getattr(engine, "name", None) != "docker":
        return None, {}
    try:
        running = engine.client.containers.list()
    except Exception:  # a load fact must never stop a run
        return None, {}
    me = own_container_id()

    def ours(c: Any) -> bool:
        labels = getattr(c, "labels", None) or {}
        return bool(own_labels) and all(labels.get(k) == v for k, v in own_labels.items())

    ids = {str(c.id): str(c.name) for c in running if str(c.id) != me and not ours(c)}
    return len(ids), ids


def snapshot(engine: Any = None, loadavg_path: str = "/proc/loadavg",
             own_labels: Mapping[str, str] | None = None) -> LoadSnapshot:
    """The host's load now (cheap: one file read and one engine call); containers with every one of
    ``own_labels`` are the run's own (see _other_containers)."""
    one, five, fifteen = read_loadavg(loadavg_path)
    n, ids = _other_containers(engine, own_labels)
    return LoadSnapshot(one, five, fifteen, n, tuple(sorted(ids.values())), ids)


@dataclass(frozen=True)
class ProcCpu:
    """One process at one moment: its name, its CPU time so far (clock ticks, user + system) and whose it is:
    ``run`` (the runner, its children, the run's container), ``engine``, ``kernel``, ``container:ID`` or
    ``other``."""

    name: str
    ticks: int
    owner: str


@dataclass(frozen=True)
class CpuSnapshot:
    """Every visible process's CPU time at one moment (monotonic seconds), keyed by (pid, start time) so that
    a reused pid is a new process; ``unavailable`` says why none could be read."""

    mono_s: float
    ticks_per_s: int
    procs: Mapping[tuple[int, int], ProcCpu] = field(default_factory=dict)
    unavailable: str | None = None


def _read_stat(text: str) -> tuple[str, int, int, int, int]:
    """(comm, ppid, flags, utime + stime, starttime) from /proc/PID/stat (comm may hold spaces and parens)."""
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    return comm, int(f[1]), int(f[6]), int(f[11]) + int(f[12]), int(f[19])


def _container_of(cgroup: str) -> str | None:
    m = re.search(r"(?:docker[/-]|/)([0-9a-f]{64})(?:\.scope)?\b", cgroup)
    return m.group(1) if m else None


def cpu_snapshot(run_container: str | None, *, proc: str = "/proc", self_pid: int | None = None,
                 clock: Callable[[], float] = time.monotonic, ticks_per_s: int | None = None) -> CpuSnapshot:
    """The CPU time of every process this host shows, each marked whose it is. ``run_container``: the run's
    container id (its processes are the run's own); the runner and its descendants are too. Cheap: three small
    file reads per process; processes that vanish while being read are skipped."""
    hz = ticks_per_s or os.sysconf("SC_CLK_TCK")
    now = clock()
    try:
        pids = [int(n) for n in os.listdir(proc) if n.isdigit()]
    except OSError as exc:
        return CpuSnapshot(now, hz, unavailable=f"{proc} not readable ({exc.strerror or exc})")
    me = os.getpid() if self_pid is None else self_pid
    raw: dict[int, tuple[str, int, int, int, int, str]] = {}
    for pid in pids:
        try:
            with open(f"{proc}/{pid}/stat") as fh:
                comm, ppid, flags, ticks, start = _read_stat(fh.read())
            with open(f"{proc}/{pid}/cgroup") as fh:
                cgroup = fh.read()
        except (OSError, ValueError, IndexError):
            continue
        raw[pid] = (comm, ppid, flags, ticks, start, cgroup)
    own = own_container_id()
    if own is not None and raw and all(own in r[5] for r in raw.values()):
        return CpuSnapshot(now, hz, unavailable="the runner runs in a container that sees only its own processes")

    def descends_from_me(pid: int) -> bool:
        seen = 0
        while pid > 1 and pid in raw and seen < 64:
            if pid == me:
                return True
            pid, seen = raw[pid][1], seen + 1
        return pid == me

    procs = {}
    for pid, (comm, ppid, flags, ticks, start, cgroup) in raw.items():
        container = _container_of(cgroup)
        if descends_from_me(pid) or (run_container and container == run_container):
            owner = "run"
        elif flags & _KTHREAD or ppid == 2 or pid == 2:
            owner = "kernel"
        elif container:
            owner = f"container:{container}"
        elif comm in ENGINE_PROCESSES:
            owner = "engine"
        else:
            owner = "other"
        procs[(pid, start)] = ProcCpu(comm, ticks, owner)
    return CpuSnapshot(now, hz, procs)


@dataclass(frozen=True)
class WindowLoad:
    """Other work during one timed window: seconds of CPU that processes other than the run's took
    (``other_cpu_s``, None when unavailable, with ``unavailable`` saying why), the largest of them by name
    (``top``: (name, CPU seconds)), and the engine's own daemons' share (recorded, not judged)."""

    window_s: float
    other_cpu_s: float | None
    top: tuple[tuple[str, float], ...] = ()
    engine_cpu_s: float | None = None
    unavailable: str | None = None

    @property
    def other_cpus(self) -> float | None:
        """Other processes' average CPU use over the window, in CPUs."""
        if self.other_cpu_s is None or self.window_s <= 0:
            return None
        return self.other_cpu_s / self.window_s

    def to_json(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "other_cpu_s": self.other_cpu_s,
                "other_cpus": None if self.other_cpus is None else round(self.other_cpus, 3),
                "top": [{"name": n, "cpu_s": c} for n, c in self.top], "engine_cpu_s": self.engine_cpu_s,
                "unavailable": self.unavailable}


def window_load(start: CpuSnapshot, end: CpuSnapshot, container_names: Mapping[str, str] | None = None,
                top: int = 3) -> WindowLoad:
    """The other processes' CPU time between two snapshots: each process's growth (a process that began inside
    the window counts whole; one that ended inside it is lost, so this is a lower bound), grouped by name, and
    other containers' processes by container (its name where ``container_names`` knows it)."""
    window_s = round(end.mono_s - start.mono_s, 3)
    why = start.unavailable or end.unavailable
    if why:
        return WindowLoad(window_s, None, unavailable=why)
    names = container_names or {}
    by_name: dict[str, int] = defaultdict(int)
    engine = 0
    for key, p in end.procs.items():
        if p.owner in ("run", "kernel"):
            continue
        before = start.procs.get(key)
        grew = max(0, p.ticks - (before.ticks if before is not None else 0))
        if p.owner == "engine":
            engine += grew
        elif grew:
            cid = p.owner.partition(":")[2]
            by_name[f"container {names.get(cid, cid[:12])}" if cid else p.name] += grew
    hz = end.ticks_per_s
    ranked = sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return WindowLoad(window_s, sum(by_name.values()) / hz, tuple((n, round(t / hz, 3)) for n, t in ranked),
                      engine / hz)


def _containers_reason(names: list[str]) -> str | None:
    if not names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} other container{'s' if len(names) != 1 else ''} running ({shown})"


def busy_reason(before: LoadSnapshot, after: LoadSnapshot | None, window: WindowLoad | None = None) -> str | None:
    """Why the host counts as busy during the timed window, or None: other processes' CPU time over the window
    itself; where that could not be measured, another container running at either end of the container's run.
    The load average is never evidence (it still carries the run's own earlier work)."""
    if window is not None and window.other_cpu_s is not None:
        share = window.other_cpus or 0.0
        if share < BUSY_OTHER_CPUS or window.other_cpu_s < MIN_OTHER_CPU_S:
            return None
        parts = ", ".join(f"{name} {cpu:.1f} CPU-s" for name, cpu in window.top)
        return (f"other processes used {share:.2f} CPUs ({window.other_cpu_s:.1f} CPU-s over {window.window_s:.1f} s: "
                f"{parts})")
    others = sorted({*before.other_container_names, *(after.other_container_names if after else ())})
    reason = _containers_reason(others)
    if reason is None:
        return None
    why = window.unavailable if window is not None else "the condition did not finish"
    return f"{reason}; their CPU use during the window could not be measured: {why}"


def host_load_record(before: LoadSnapshot, after: LoadSnapshot | None, cpu_count: int | None = None,
                     window: WindowLoad | None = None) -> dict[str, Any]:
    """``summary["host_load"]``: both snapshots, the CPU count, the timed window's other work, and ``busy`` with
    its reason."""
    cpus = cpu_count if cpu_count is not None else os.cpu_count()
    why = busy_reason(before, after, window)
    return {"before": _json(before), "after": _json(after) if after else None, "cpu_count": cpus,
            "window": window.to_json() if window is not None else None, "busy": why is not None,
            "busy_reason": why}


def busy_from_record(load: Any) -> str | None:
    """Why a recorded ``host_load`` says the host was busy, or None. A record written before the window was
    measured (no ``window`` key) judged the load average too: it is judged again on its other containers."""
    if not isinstance(load, Mapping):
        return None
    if "window" in load:
        return str(load.get("busy_reason") or "host busy") if load.get("busy") else None
    names = set()
    for end in ("before", "after"):
        snap = load.get(end)
        if isinstance(snap, Mapping):
            names.update(str(n) for n in snap.get("other_container_names") or ())
    return _containers_reason(sorted(names))


def _json(snap: LoadSnapshot) -> dict[str, Any]:
    data = asdict(snap)
    data["other_container_names"] = list(snap.other_container_names)
    del data["other_container_ids"]
    return data
