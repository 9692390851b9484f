"""A fleet on this machine, for the demo, the tests and the benchmark: a head and one node per target, all on
127.0.0.1, each started by the node agent's own command (runner/fleet/agent.py) as a host process.

    python -m runner.fleet.local up [--targets cpu-a,cpu-b] [--port 6379] [--client-port 10001]
    python -m runner.fleet.local down

The fleet is authenticated like any other (runner/fleet/auth.py): the head makes the token file on its first
start (``--token-file``, else $EDGEASR_FLEET_TOKEN_FILE, else ~/.config/edgeasr/fleet-token), the nodes and the
driver read it. ``down`` ends the processes of this fleet alone, by pid (``stop_cluster``): never ``ray stop``,
which ends every Ray process of the machine, a user's own cluster and another fleet's included. The agent's own
``stop`` likewise ends only the sessions it started (``session_processes``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import agent, auth

ROOT = Path(__file__).resolve().parents[2]


def agent_env(token_file: Path | None = None) -> dict[str, str]:
    """The agent's (and a driver's) environment: the project importable in Ray's workers (as the runner image
    has it), and the fleet's token file where one is given."""
    env = dict(os.environ)
    if token_file is not None:
        env[auth.TOKEN_FILE_ENV] = str(token_file)
    paths = [str(ROOT), str(ROOT / "containers" / "common")]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    # a lost node is noticed in seconds, not half a minute (the tests kill one)
    env.setdefault("RAY_health_check_period_ms", "1000")
    env.setdefault("RAY_health_check_failure_threshold", "3")
    return env


@dataclass(frozen=True)
class LocalFleet:
    targets: tuple[str, ...] = ("cpu-a", "cpu-b")
    port: int = 6379
    client_port: int = 10001
    token_file: Path | None = None  # None: the agent's default (auth.token_file)

    @property
    def address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def env(self) -> dict[str, str]:
        """The environment of this fleet's agents, and of a driver that joins it."""
        return agent_env(self.token_file)

    def _agent(self, *args: str) -> None:
        cmd = [sys.executable, "-m", "runner.fleet.agent", *args]
        done = subprocess.run(cmd, env=self.env(), cwd=ROOT, capture_output=True, text=True)
        if done.returncode == 2:  # the agent's own sentence (a token or a setting to fix)
            raise RuntimeError(done.stderr.strip().removeprefix("error: "))
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                               f"{done.stderr[-4000:]}")

    def up(self) -> None:
        self._agent("head", "--bind", "127.0.0.1", "--port", str(self.port), "--client-port", str(self.client_port))
        for target in self.targets:
            env_args = ["node", "--head", f"127.0.0.1:{self.port}", "--target", target, "--node-ip", "127.0.0.1"]
            self._agent(*env_args)

    @property
    def ports(self) -> tuple[int, int]:
        """The ports that name this fleet's processes (the GCS's and the Ray Client's)."""
        return self.port, self.client_port

    def down(self) -> None:
        """End this fleet's processes, and only them (``stop_cluster``)."""
        stop_cluster(self.ports)


TICK_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None: the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_stat(pid: int) -> tuple[str, int, float] | None:
    """(state, parent pid, user + system CPU seconds) of a process, from /proc/<pid>/stat; None: it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return fields[0], int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK_S


def alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, ended and waiting for its parent to reap it, does not)."""
    st = process_stat(pid)
    return st is not None and st[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def cluster_processes(ports: tuple[int, ...], seen: dict[int, str] | None = None) -> dict[int, str]:
    """The processes of the Ray cluster on ``ports``, each with its command line: those whose command line names
    Ray and one of the ports (GCS, raylets, dashboard, monitors, client server), and all their descendants
    (workers, agents). Another cluster has other ports, so none of its processes is here. ``seen``: the command
    lines read before, by pid (each is read once: a caller that scans often, the fleet bench, keeps them)."""
    seen = {} if seen is None else seen
    named = re.compile(r"(?<!\d)(" + "|".join(str(p) for p in ports) + r")(?!\d)")
    parents: dict[int, int] = {}
    ours: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        st = process_stat(pid)
        if st is None:
            continue
        parents[pid] = st[1]
        cmd = seen[pid] if pid in seen else seen.setdefault(pid, command_line(pid))
        if "ray" in cmd and named.search(cmd):
            ours.add(pid)
    return {pid: seen[pid] for pid in _with_descendants(ours, parents)}


def _with_descendants(ours: set[int], parents: dict[int, int]) -> set[int]:
    """``ours`` and every descendant of them, from ``parents`` (pid -> parent pid)."""
    ours = set(ours)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                grew = True
    return ours


def session_processes(sessions: set[int]) -> dict[int, int]:
    """The processes of the process sessions ``sessions`` (the node agent starts `ray start` in a session of its own,
    runner/fleet/agent.py: Ray's daemons and their workers stay in it after `ray start` exits) and all their
    descendants (one that began a session of its own under them too), each with the session it is counted in. A
    process of any other session, another Ray cluster's included, is not here."""
    parents: dict[int, int] = {}
    ours: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        parents[int(entry.name)] = int(fields[1])
        if int(fields[3]) in sessions:
            ours[int(entry.name)] = int(fields[3])
    for pid in _with_descendants(set(ours), parents) - set(ours):
        parent = parents[pid]
        while parent not in ours:
            parent = parents[parent]
        ours[pid] = ours[parent]
    return ours


def stop_cluster(ports: tuple[int, ...], grace_s: float = 10.0) -> None:
    """End the processes of the Ray cluster on ``ports`` (cluster_processes) by pid (stop_processes). Nothing else
    on the machine is touched."""
    stop_processes(list(cluster_processes(ports)), grace_s)


def stop_processes(pids: list[int], grace_s: float = 10.0) -> None:
    """End ``pids``: SIGTERM, then SIGKILL to those still running after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):  # gone, or another user's: not ours to end
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            time.sleep(0.2)
        pids = [pid for pid in pids if alive(pid)]
        if not pids:
            return


def raylet_pid(target: str, node_id: str | None = None) -> int | None:
    """The pid of the raylet that advertises ``target`` (its command line carries the node's resources), and
    is the node ``node_id`` (hex, as results record it) when given: a target may have several nodes."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        cmd = command_line(int(proc.name))
        # the raylet's static resources read `--static_resource_list=CPU,1,cpu-a,1,...`
        if cmd.split(" ", 1)[0].endswith("raylet") and re.search(rf"[=,]{re.escape(target)},\d", cmd):
            if node_id is None or f"--node_id={node_id} " in f"{cmd} ":
                return int(proc.name)
    return None


def kill_node(target: str, node_id: str | None = None) -> int | None:
    """Kill the node of ``target`` (the node ``node_id`` when given) by its raylet's pid, as a power cut
    would; its workers follow."""
    pid = raylet_pid(target, node_id)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    return pid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runner.fleet.local", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=("up", "down"))
    p.add_argument("--targets", default="cpu-a,cpu-b")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--client-port", type=int, default=10001)
    p.add_argument("--token-file", type=Path, default=None,
                   help=f"the fleet's token file (default: ${auth.TOKEN_FILE_ENV}, else ~/.config/edgeasr/fleet-token)")
    args = p.parse_args(argv)
    fleet = LocalFleet(tuple(t for t in args.targets.split(",") if t), args.port, args.client_port,
                       args.token_file)
    if args.action == "up":
        t0 = time.perf_counter()
        try:
            fleet.up()
        except RuntimeError as exc:
            fleet.down()
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"fleet up in {time.perf_counter() - t0:.0f} s: head 127.0.0.1:{fleet.port}, targets "
              f"{', '.join(fleet.targets)}, token {fleet.token_file or auth.token_file()}; driver: --cluster "
              f"{fleet.address}")
    else:
        fleet.down()
        print(f"fleet down: the Ray processes of ports {fleet.port} and {fleet.client_port} ended")
    return 0


if __name__ == "__main__":
    sys.exit(main())
