"""Fleet: one sweep across many devices, on Ray core.

Each device runs a Ray node (the node agent, ``agent.py``) that advertises one custom resource named after its
*target* (a device class the user names, e.g. ``orin-nano-8gb``) with count 1, so one device runs one group at a
time and power measurements never overlap. Each planned group is a Ray task that requires its target's resource
(``driver.py``); on the node it runs the single-machine executor (runner/execute.py) against that node's own
Docker Engine and sampler (``node.py``) and returns the records and artifacts, which the driver writes into the
one results folder. Before anything runs, ``preflight.py`` checks every target against its nodes' reports.

Ray is an optional dependency (``pip install 'edgeasr[fleet]'``); nothing here imports it at module level, so
the rest of the runner and the pure parts' tests work without it.
"""

from __future__ import annotations

import os
import re

from ..errors import UserError

LOCAL = "local"  # the target of a sweep without a cluster: this machine
CLUSTER_ENV = "EDGEASR_CLUSTER"
RAY_PIN = "2.60.0"  # pyproject's `fleet` extra; head, nodes and driver must run the same Ray (and Python)
_TARGET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
#: Ray's own resource names: a target called so would be satisfied by every node.
_RAY_RESOURCES = {"CPU", "GPU", "memory", "object_store_memory", "accelerator_type"}


def target_problem(name: str) -> str | None:
    """Why ``name`` cannot be a fleet target (None: it can)."""
    if not isinstance(name, str) or not _TARGET_RE.match(name):
        return f"target {name!r}: expected letters, digits, '.', '_' or '-' (at most 63), e.g. orin-nano-8gb"
    if name in _RAY_RESOURCES or name.startswith("node:"):
        return f"target {name!r} is one of Ray's own resource names; choose another"
    return None


def cluster_address(cli: str | None, experiment: str | None, env: dict | None = None) -> str | None:
    """The Ray address a sweep runs on: --cluster, else the experiment's ``cluster:``, else $EDGEASR_CLUSTER;
    None: run here. ``ray://HOST:PORT`` (Ray Client, the usual) or ``HOST:PORT`` (a driver inside the
    cluster's network)."""
    env = os.environ if env is None else env
    for value in (cli, experiment, env.get(CLUSTER_ENV)):
        if value is not None and str(value).strip():
            address = str(value).strip()
            if not re.match(r"^(ray://)?[A-Za-z0-9.\-\[\]:]+:\d+$", address):
                raise UserError(f"cluster address {address!r}: expected ray://HOST:PORT (the head's Ray Client "
                                f"port, 10001 by default) or HOST:PORT")
            return address
    return None


def local_targets_problem(targets: list[str]) -> str | None:
    """Without a cluster only the ``local`` target runs; any other is refused before anything starts."""
    others = sorted({t for t in targets if t != LOCAL})
    if not others:
        return None
    return (f"target(s) {', '.join(others)} need a fleet: give --cluster ray://HEAD:10001 (or `cluster:` in the "
            f"experiment, or ${CLUSTER_ENV}); without one a sweep runs here, as target {LOCAL}")
