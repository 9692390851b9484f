"""The node agent: one command that starts a fleet head or node, the same on a Jetson, a server or a test.

    python -m runner.fleet.agent head [--bind 0.0.0.0] [--port 6379] [--client-port 10001] [--block]
    EDGEASR_HEAD=10.0.0.5:6379 EDGEASR_TARGET=orin-nano-8gb python -m runner.fleet.agent node [--block]
    python -m runner.fleet.agent token     # make the fleet's token file if it is missing, and say where it is
    python -m runner.fleet.agent stop      # end what this user's agent started on this machine, and nothing else

A node advertises exactly one custom resource, its target, with count 1: Ray then runs one group at a time on
that device (power measurements never overlap). It offers one logical CPU for Ray's own bookkeeping tasks and
a small object store (the audio of a dataset, cached on disk by hash after its first use). The head runs no
group (no target, no CPU); its Ray Client proxy gives each driver's server settings.FleetSettings'
client_server_timeout_s to start. The compose `fleet` profile runs this module in the runner image (``--block``);
the demo and tests run it as host processes.

Every role runs with Ray's token authentication (auth.py): the head makes the fleet's token file on its first
start; a node checks its token with the head before `ray start`, and stops with one sentence when the head
refuses it. Ray's TLS variables (RAY_USE_TLS, RAY_TLS_SERVER_CERT, RAY_TLS_SERVER_KEY, RAY_TLS_CA_CERT) pass
through to Ray, checked first.

`ray start` runs in a process session of its own, recorded (``sessions_file``) before it starts anything: Ray's
daemons stay in that session after `ray start` exits, so ``stop`` ends them, their workers included, by pid
(runner/fleet/local.py session_processes), and nothing else. Never `ray stop`: it ends every Ray process of the
user on the machine, a cluster this project did not start included. With ``--block`` the agent's own end ends
its session too.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from ..errors import UserError
from ..settings import FleetSettings
from . import auth, target_problem

OBJECT_STORE_BYTES = 200 * 1024 * 1024  # audio in flight; Ray's minimum is 75 MB
#: Ray's variable for how long the head's Ray Client proxy waits for a driver's server (settings.FleetSettings).
CLIENT_SERVER_TIMEOUT_ENV = "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S"


def head_args(bind: str, port: int, client_port: int, block: bool = False) -> list[str]:
    """`ray start` for the head: the GCS on ``port``, Ray Client (the driver's ray://) on ``client_port``."""
    out = ["start", "--head", f"--node-ip-address={bind}", f"--port={port}", f"--ray-client-server-port={client_port}",
           "--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats",
           f"--object-store-memory={OBJECT_STORE_BYTES}"]
    return out + (["--block"] if block else [])


def node_args(head: str, target: str, node_ip: str | None, block: bool = False) -> list[str]:
    """`ray start` for a node of ``target``: the target's resource with count 1."""
    problem = target_problem(target)
    if problem:
        raise UserError(f"EDGEASR_TARGET: {problem}")
    out = ["start", f"--address={head}", "--num-cpus=1", f"--resources={json.dumps({target: 1})}",
           "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_BYTES}"]
    if node_ip:
        out.append(f"--node-ip-address={node_ip}")
    return out + (["--block"] if block else [])


def ray_command(args: list[str]) -> list[str]:
    """Ray's CLI with this interpreter (the one whose Ray and Python the cluster must share)."""
    return [sys.executable, "-m", "ray.scripts.scripts", *args]


def sessions_file() -> Path:
    """Where this user's agent records the sessions it started `ray start` in: $XDG_STATE_HOME/edgeasr/
    fleet-agent-sessions, else ~/.local/state/edgeasr/fleet-agent-sessions. One line a session, ``SID BOOT_ID``: a
    session of an earlier boot is never taken for one of now."""
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "edgeasr" / "fleet-agent-sessions"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@contextlib.contextmanager
def _recorded() -> Iterator[set[int]]:
    """The sessions of this boot that the agent recorded and that still hold a process, held under the record's
    lock (agents may start at once); what the block leaves in the set is written back."""
    from .local import session_processes  # local imports this module

    path = sessions_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        boot = _boot_id()
        recorded = {int(sid) for sid, _, rest in (line.partition(" ") for line in fh.read().splitlines())
                    if sid.isdigit() and rest == boot}
        sessions = set(session_processes(recorded).values()) & recorded
        yield sessions
        fh.seek(0)
        fh.truncate()
        fh.write("".join(f"{sid} {boot}\n" for sid in sorted(sessions)))


def stop_sessions(sessions: set[int]) -> int:
    """End every process of ``sessions`` (session_processes) by pid; returns how many there were."""
    from .local import session_processes, stop_processes  # local imports this module

    pids = sorted(session_processes(sessions))
    stop_processes(pids)
    return len(pids)


def start_ray(args: list[str], env: dict[str, str], block: bool) -> int:
    """Run `ray start` (``ray_command(args)``) in a session of its own, recorded at once for ``stop``; with ``block``
    its session is ended as it ends (an interruption included). Returns its exit code."""
    proc = subprocess.Popen(ray_command(args), env=env, start_new_session=True)
    try:
        with _recorded() as sessions:
            sessions.add(proc.pid)
    except OSError as exc:  # a read-only home (a container): `stop` will not find it; --block still ends it
        print(f"warning: cannot record the Ray session in {sessions_file()} ({exc.strerror}): `python -m "
              f"runner.fleet.agent stop` will not end it", file=sys.stderr)
    try:
        return proc.wait()
    finally:
        if block:
            if proc.poll() is None:
                proc.terminate()  # Ray's foreground process: its own shutdown first
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            stop_sessions({proc.pid})


def stop() -> int:
    """`stop`: end the Ray processes of the sessions the agent recorded (and forget them); nothing else."""
    ended = found = 0
    if sessions_file().exists():
        with _recorded() as sessions:
            ended = stop_sessions(sessions) if sessions else 0
            found = len(sessions)
            sessions.clear()
    print(f"ended {ended} Ray process(es) of {found} session(s) this agent started" if found
          else "no Ray process this agent started is running (other Ray processes are left alone)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runner.fleet.agent", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="role", required=True)
    h = sub.add_parser("head", help="start the head (no target: it runs no group)")
    h.add_argument("--bind", default=os.environ.get("EDGEASR_BIND", "127.0.0.1"),
                   help="the address nodes and the driver reach the head at (default 127.0.0.1: this machine only)")
    h.add_argument("--port", type=int, default=int(os.environ.get("EDGEASR_HEAD_PORT", "6379")))
    h.add_argument("--client-port", type=int, default=int(os.environ.get("EDGEASR_CLIENT_PORT", "10001")))
    h.add_argument("--block", action="store_true", help="stay in the foreground (a container's main process)")
    n = sub.add_parser("node", help="start a node of one target")
    n.add_argument("--head", default=os.environ.get("EDGEASR_HEAD"), help="HOST:PORT of the head's GCS")
    n.add_argument("--target", default=os.environ.get("EDGEASR_TARGET"), help="this device's target")
    n.add_argument("--node-ip", default=os.environ.get("EDGEASR_NODE_IP"),
                   help="the address other nodes reach this one at (default: Ray's guess)")
    n.add_argument("--block", action="store_true")
    sub.add_parser("stop", help="end the Ray processes this user's agent started on this machine (never `ray stop`: "
                                "other Ray clusters keep running)")
    sub.add_parser("token", help=f"make the fleet's token file if it is missing (${auth.TOKEN_FILE_ENV}, default "
                                 f"~/.config/edgeasr/fleet-token) and say where it is")
    args = p.parse_args(argv)
    env = dict(os.environ)
    try:
        if args.role == "stop":
            return stop()
        token = auth.token_file()
        if args.role == "token":
            made = auth.make_token(token)
            auth.read_token(token)
            print(f"{'made' if made else 'kept'} the fleet token {token}: copy it to each node and driver "
                  f"(mode 0600; ${auth.TOKEN_FILE_ENV} names another place)")
            return 0
        if args.role == "head":
            cmd = head_args(args.bind, args.port, args.client_port, args.block)
            if auth.make_token(token):
                print(f"made the fleet token {token}: copy it to each node and driver (mode 0600)", file=sys.stderr)
            auth.read_token(token)
            env = auth.ray_env(token, env)
            # a driver's server gets the fleet's time to start, not Ray's 30 s (a loaded head refused drivers)
            env.setdefault(CLIENT_SERVER_TIMEOUT_ENV, str(int(FleetSettings().client_server_timeout_s)))
        else:
            if not args.head or not args.target:
                raise UserError("a node needs EDGEASR_HEAD (HOST:PORT of the head) and EDGEASR_TARGET (its target)")
            cmd = node_args(args.head, args.target, args.node_ip, args.block)
            env = auth.ray_env(token, env)
            auth.check_head(args.head, token, "node", env)
            env["EDGEASR_TARGET"] = args.target  # node.node_facts reports it; Ray's workers inherit it
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return start_ray(cmd, env, args.block)


if __name__ == "__main__":
    sys.exit(main())
