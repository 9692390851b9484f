"""Ray's retry of a lost node's group, end to end: a real Ray cluster on 127.0.0.1 (a head and TWO nodes of the
one target cpu-a, each started by the node agent's own command), real backend containers, a node killed by the
pid of its raylet mid-group; nothing of Ray or the engine is mocked.

Its own module (and ports): the cluster differs from test_fleet_e2e.py's (a fleet goes down by its ports alone).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest
from helpers import ROOT

pytest.importorskip("ray", reason="the fleet needs Ray: pip install -e '.[fleet]' (make fleet-venv installs it)")

from runner.fleet.local import LocalFleet, kill_node  # noqa: E402  (after the skip: needs no Ray)
from runner.plan import stable_hash  # noqa: E402

pytestmark = pytest.mark.e2e

SWEEP_LABEL = "org.edgeasr.sweep"
FLEET = LocalFleet(("cpu-a", "cpu-a"), port=6395, client_port=20033)  # neither the demo's nor test_fleet_e2e's
N_CONDITIONS = 6  # enough that the node dies mid-group on a quick machine too

EXPERIMENT = f"""\
name: fleet-retry
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {ROOT / "data" / "default"}
  decode: {{beam_size: 1, language: en}}
  telemetry: {{sampler: auto, baseline_s: 0.2}}
  timeout_s: 120
  limit: 3
  repeats: {N_CONDITIONS}
grid:
  targets: [cpu-a]
"""


def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them (by /proc's parent pids)."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, grew = set(roots) & set(parents), True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def _cluster_pids() -> set[int]:
    """This cluster's processes: those whose command line names its head's GCS port (the GCS, raylets, Ray
    Client server, monitors), and their children (the workers, whose titles Ray rewrites)."""
    gcs = re.compile(rf"(gcs[-_]address=|--address=)\S*:{FLEET.port}\b|gcs_server_port={FLEET.port}\b")
    mine = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if gcs.search(cmd):
                mine.add(int(proc.name))
    return _descendants(mine)


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _containers(sweep_id: str) -> list:
    return docker.from_env().containers.list(all=True, sparse=True, filters={"label": f"{SWEEP_LABEL}={sweep_id}"})


def _summaries(out: Path) -> dict[str, dict]:
    found = {}
    for p in (out / "conditions").glob("*/summary.json"):
        try:
            found[p.parent.name] = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
    return found


@pytest.fixture
def fleet(tmp_path_factory):
    """The cluster, authenticated: its head makes the token file, its nodes and the driver read it."""
    fleet = replace(FLEET, token_file=tmp_path_factory.mktemp("fleet") / "fleet-token")
    fleet.down()  # a cluster a crashed run left behind
    fleet.up()
    try:
        yield fleet
    finally:
        fleet.down()


def test_a_lost_nodes_group_is_retried_on_the_other_node_of_its_target(fleet, tmp_path):
    """Killing (by its raylet's pid) the node running a group, after its first condition ended: Ray retries the
    group on the target's other node, which runs only the conditions still unfinished; those end ok there and
    record the retry (`fleet.attempts`: the lost node, then the node that ran them); the condition finished
    before the loss keeps its record from the lost node, untouched; the sweep exits 0 with every condition ok;
    the group's fleet.json names both attempts; no container of the sweep and no process of the lost node (nor,
    after the fleet is stopped, of the cluster) is left."""
    exp = tmp_path / "fleet-retry.yaml"
    exp.write_text(EXPERIMENT)
    out = tmp_path / "out"
    sweep_id = stable_hash(str(out.resolve()))
    cmd = [sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out), "--cluster", FLEET.address]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=fleet.env())
    try:
        deadline = time.monotonic() + 240
        while not (first := {k: s for k, s in _summaries(out).items() if s.get("status") == "ok"}):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no condition finished"
            time.sleep(0.1)
        lost_id = next(iter(first.values()))["fleet"]["node_id"]
        assert len(first) < N_CONDITIONS, "the group ended before its node could be killed"
        raylet = kill_node("cpu-a", lost_id)
        assert raylet is not None, f"no raylet of node {lost_id}"
        lost_pids = _descendants({raylet}) | {raylet}
        before_kill = {k: (out / "conditions" / k / "summary.json").stat().st_mtime_ns for k in first}
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    why = stdout[-2000:] + stderr[-4000:]
    assert proc.returncode == 0, why
    summaries = _summaries(out)
    assert len(summaries) == N_CONDITIONS and all(s["status"] == "ok" for s in summaries.values()), why
    for key, mtime in before_kill.items():  # finished before the loss: kept as the lost node wrote it
        assert (out / "conditions" / key / "summary.json").stat().st_mtime_ns == mtime
    on_lost = {k: s for k, s in summaries.items() if s["fleet"]["node_id"] == lost_id}
    retried = {k: s for k, s in summaries.items() if k not in on_lost}
    assert set(before_kill) <= set(on_lost) and retried, why
    assert all("attempts" not in s["fleet"] for s in on_lost.values())
    other_ids = {s["fleet"]["node_id"] for s in retried.values()}
    assert len(other_ids) == 1, other_ids
    other_id = other_ids.pop()
    for s in retried.values():
        assert s["fleet"]["target"] == "cpu-a"
        attempts = s["fleet"]["attempts"]
        assert [a["node_id"] for a in attempts] == [lost_id, other_id] and all(a["hostname"] for a in attempts)
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    assert len(records) == N_CONDITIONS and all(r["status"] == "ok" for r in records)
    (group,) = list((out / "groups").iterdir())
    fleet_json = json.loads((group / "fleet.json").read_text())
    assert fleet_json["fleet"]["node_id"] == other_id
    assert [a["node_id"] for a in fleet_json["fleet"]["attempts"]] == [lost_id, other_id]
    assert fleet_json["timing"]["n_conditions"] == len(retried)  # the retry ran only the unfinished ones
    assert "retried on" in stderr and lost_id[:12] in stderr, why
    assert not _containers(sweep_id)
    assert not _alive(lost_pids), f"processes of the lost node outlived it: {_alive(lost_pids)}"
    cluster = _cluster_pids()
    assert cluster
    fleet.down()
    assert not _alive(cluster), f"processes of the cluster outlived fleet.down(): {_alive(cluster)}"
