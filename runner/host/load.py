"""How busy the host was around a timed window: load average and other containers, before and after.

A benchmark on a shared machine measures the neighbours too. Every condition records the host's load
before its container started and after it ended (``summary["host_load"]``), and is marked ``busy`` (with
the reason) when another container was running or the load before the window already filled half the
CPUs; the run view and the report warn about it. Facts only: nothing here waits or refuses to run.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from typing import Any

#: The 1-minute load average, as a share of the CPUs, above which the host counts as busy before a window.
BUSY_LOAD_SHARE = 0.5


@dataclass(frozen=True)
class LoadSnapshot:
    """The host at one moment: load averages (1, 5, 15 min; None where /proc/loadavg is not readable) and
    the running containers that are not this run's (None where the engine could not be asked)."""

    loadavg_1m: float | None
    loadavg_5m: float | None
    loadavg_15m: float | None
    other_containers: int | None
    other_container_names: tuple[str, ...] = ()


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


def _other_containers(engine: Any) -> tuple[int | None, tuple[str, ...]]:
    """Running containers other than this runner's own. None where the engine has no Docker client (the
    local engine) or could not be asked."""
    if getattr(engine, "name", None) != "docker":
        return None, ()
    try:
        running = engine.client.containers.list()
    except Exception:  # a load fact must never stop a run
        return None, ()
    me = own_container_id()
    names = tuple(sorted(c.name for c in running if str(c.id) != me))
    return len(names), names


def snapshot(engine: Any = None, loadavg_path: str = "/proc/loadavg") -> LoadSnapshot:
    """The host's load now (cheap: one file read and one engine call)."""
    one, five, fifteen = read_loadavg(loadavg_path)
    n, names = _other_containers(engine)
    return LoadSnapshot(one, five, fifteen, n, names)


def busy_reason(before: LoadSnapshot, after: LoadSnapshot | None, cpu_count: int | None) -> str | None:
    """Why the host counts as busy during the window between two snapshots, or None.

    The load after the window includes the run's own work, so only the load before is judged; another
    container at either end is a neighbour that shared the machine."""
    reasons = []
    others = sorted({*before.other_container_names, *(after.other_container_names if after else ())})
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        reasons.append(f"{len(others)} other container{'s' if len(others) != 1 else ''} running ({shown})")
    if cpu_count and before.loadavg_1m is not None and before.loadavg_1m > BUSY_LOAD_SHARE * cpu_count:
        reasons.append(f"load average {before.loadavg_1m:.2f} before the window on {cpu_count} CPUs")
    return "; ".join(reasons) or None


def host_load_record(before: LoadSnapshot, after: LoadSnapshot | None,
                     cpu_count: int | None = None) -> dict[str, Any]:
    """``summary["host_load"]``: both snapshots, the CPU count, and ``busy`` with its reason."""
    cpus = cpu_count if cpu_count is not None else os.cpu_count()
    why = busy_reason(before, after, cpus)
    return {"before": _json(before), "after": _json(after) if after else None, "cpu_count": cpus,
            "busy": why is not None, "busy_reason": why}


def _json(snap: LoadSnapshot) -> dict[str, Any]:
    data = asdict(snap)
    data["other_container_names"] = list(snap.other_container_names)
    return data
