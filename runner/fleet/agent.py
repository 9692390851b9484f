"""The node agent: one command that starts a fleet head or node, the same on a Jetson, a server or a test.

    python -m runner.fleet.agent head [--bind 0.0.0.0] [--port 6379] [--client-port 10001] [--block]
    EDGEASR_HEAD=10.0.0.5:6379 EDGEASR_TARGET=orin-nano-8gb python -m runner.fleet.agent node [--block]

A node advertises exactly one custom resource, its target, with count 1: Ray then runs one group at a time on
that device (power measurements never overlap). It offers one logical CPU for Ray's own bookkeeping tasks and
a small object store (the audio of a dataset, cached on disk by hash after its first use). The head runs no
group (no target, no CPU). The compose `fleet` profile runs this module in the runner image (``--block``);
the demo and tests run it as host processes. Ray has no authentication: bind to a trusted network only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from ..errors import UserError
from . import target_problem

OBJECT_STORE_BYTES = 200 * 1024 * 1024  # audio in flight; Ray's minimum is 75 MB


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
    sub.add_parser("stop", help="stop the Ray processes of this machine (ray stop)")
    args = p.parse_args(argv)
    try:
        if args.role == "head":
            cmd = head_args(args.bind, args.port, args.client_port, args.block)
        elif args.role == "node":
            if not args.head or not args.target:
                raise UserError("a node needs EDGEASR_HEAD (HOST:PORT of the head) and EDGEASR_TARGET (its target)")
            cmd = node_args(args.head, args.target, args.node_ip, args.block)
        else:
            cmd = ["stop"]
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if args.role == "node":
        env["EDGEASR_TARGET"] = args.target  # node.node_facts reports it; Ray's workers inherit it
    return subprocess.call(ray_command(cmd), env=env)


if __name__ == "__main__":
    sys.exit(main())
