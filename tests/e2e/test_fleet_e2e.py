"""The fleet end to end: a real Ray cluster on 127.0.0.1 (a head and two nodes, targets cpu-a and cpu-b, started
by the node agent's own command) and real backend containers; nothing of Ray or the engine is mocked.

One cluster serves the module (it starts in about 10 s); each test has its own results folder and sweep id.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest
from helpers import ROOT

pytest.importorskip("ray", reason="the fleet needs Ray: pip install -e '.[fleet]' (make venv installs it)")

from runner.fleet.local import LocalFleet, kill_node  # noqa: E402  (after the skip: needs no Ray)
from runner.plan import stable_hash  # noqa: E402

pytestmark = pytest.mark.e2e

SWEEP_LABEL = "org.edgeasr.sweep"
TARGET_LABEL = "org.edgeasr.target"
FLEET = LocalFleet(("cpu-a", "cpu-b"), port=6393, client_port=20031)  # not the demo's ports


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """The cluster, authenticated: its head makes the token file, its nodes and every driver here read it."""
    fleet = replace(FLEET, token_file=tmp_path_factory.mktemp("fleet") / "fleet-token")
    fleet.down()  # a cluster a crashed run left behind
    fleet.up()
    try:
        yield fleet
    finally:
        fleet.down()


def _experiment(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + body.replace("DATA", str(ROOT / "data" / "default")))
    return path


BASE = """\
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: DATA
  decode: {beam_size: 1, language: en}
  telemetry: {sampler: auto, baseline_s: 0.5}
  timeout_s: 600
"""


def _sweep_cmd(exp: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out), "--cluster", FLEET.address]


def sweep(fleet: LocalFleet, exp: Path, out: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(_sweep_cmd(exp, out), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=fleet.env())


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]


def _containers(sweep_id: str, **labels: str) -> list:
    filters = [f"{SWEEP_LABEL}={sweep_id}", *(f"{k}={v}" for k, v in labels.items())]
    # sparse: no inspect per container, which would race with a container being removed
    return docker.from_env().containers.list(all=True, sparse=True, filters={"label": filters})


def _wait_for_container(sweep_id: str, timeout_s: float = 120, **labels: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not _containers(sweep_id, **labels):
        assert time.monotonic() < deadline, f"no container of sweep {sweep_id} {labels} started"
        time.sleep(0.2)


def test_each_group_runs_on_its_target_one_at_a_time_per_node(fleet, tmp_path):
    """Every condition ran on a node of its own target (recorded with node id, hostname and platform); a node
    runs its groups one after another, never two at once; the report's rows are keyed by target; the audio
    crossed the object store once (later groups found it in the node's cache); no container is left."""
    exp = _experiment(tmp_path, "fleet-e2e", BASE + "  limit: 2\ngrid:\n  targets: [cpu-a, cpu-b]\n  warmup: [0, 1]\n")
    out = tmp_path / "out"
    r = sweep(fleet, exp, out)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    records = _records(out)
    assert len(records) == 4 and all(x["status"] == "ok" for x in records)
    for x in records:
        fleet_block = x["summary"]["fleet"]
        assert x["condition"]["target"] == fleet_block["target"] == x["condition"]["axes"]["target"]
        assert fleet_block["node_id"] and fleet_block["hostname"] and fleet_block["platform"] == "x86"
        assert x["summary"]["data_path"] == str(ROOT / "data" / "default")  # identity: the driver's path
    nodes = {}
    for x in records:
        nodes.setdefault(x["condition"]["target"], set()).add(x["summary"]["fleet"]["node_id"])
    assert set(nodes) == {"cpu-a", "cpu-b"} and not (nodes["cpu-a"] & nodes["cpu-b"])
    timings = json.loads((out / "fleet-timing.json").read_text())
    by_target: dict[str, list] = {}
    for t in timings:
        by_target.setdefault(t["target"], []).append((t["task_start"], t["task_end"]))
    for spans in by_target.values():
        (s1, e1), (s2, e2) = sorted(spans)
        assert e1 <= s2, f"two groups overlapped on one node: {spans}"
    later = sorted(timings, key=lambda t: t["task_start"])[2:]
    assert all(t["cache"]["fetched"] == 0 for t in later)  # the second group on each node resent nothing
    report = subprocess.run([sys.executable, "-m", "runner.cli", "report", str(out), "--no-figures"], cwd=ROOT,
                            capture_output=True, text=True, env=fleet.env())
    assert report.returncode == 0 and "cpu-a" in report.stdout and "cpu-b" in report.stdout
    assert not _containers(stable_hash(str(out.resolve())))


def test_unknown_target_fails_before_anything_runs(fleet, tmp_path):
    """A target no node serves is refused at once, naming it and the targets that exist; nothing is written."""
    exp = _experiment(tmp_path, "fleet-unknown", BASE + "  limit: 1\ngrid:\n  targets: [cpu-a, orin-nano-8gb]\n")
    out = tmp_path / "out"
    t0 = time.monotonic()
    r = sweep(fleet, exp, out, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "orin-nano-8gb" in r.stderr and "cpu-a, cpu-b" in r.stderr
    assert time.monotonic() - t0 < 60 and not out.exists()


def test_node_killed_mid_sweep_then_rerun_completes_only_the_missing(fleet, tmp_path):
    """Killing cpu-b's node (its raylet, by pid) mid-group records its unfinished conditions as node_lost with
    the node named, keeps cpu-a's results, and leaves no container; after the node is back, rerunning the same
    command runs only the lost conditions."""
    exp = _experiment(tmp_path, "fleet-kill", BASE + "  limit: 4\n  repeats: 2\ngrid:\n  targets: [cpu-a, cpu-b]\n")
    out = tmp_path / "out"
    sweep_id = stable_hash(str(out.resolve()))
    proc = subprocess.Popen(_sweep_cmd(exp, out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=fleet.env())
    try:
        _wait_for_container(sweep_id, **{TARGET_LABEL: "cpu-b"})
        assert kill_node("cpu-b") is not None
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
        subprocess.run([sys.executable, "-m", "runner.fleet.agent", "node", "--head", f"127.0.0.1:{FLEET.port}",
                        "--target", "cpu-b", "--node-ip", "127.0.0.1"], cwd=ROOT, env=fleet.env(),
                       capture_output=True, timeout=120)
    assert proc.returncode == 1, stdout[-2000:] + stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in (out / "conditions").glob("*/summary.json")]
    lost = [s for s in summaries if s["status"] == "node_lost"]
    done = {p.parent.name: p.stat().st_mtime_ns for p in (out / "conditions").glob("*/summary.json")
            if json.loads(p.read_text())["status"] == "ok"}
    why = json.dumps([(s["status"], s.get("error")) for s in summaries]) + stdout[-1500:] + stderr[-3000:]
    assert lost and all(s["fleet"]["target"] == "cpu-b" and "cpu-b" in s["error"] for s in lost), why
    assert all(s["fleet"].get("node_id") for s in lost)  # the node is named
    assert len(done) + len(lost) == 4 and len(done) >= 2  # 2 targets x 2 repeats; cpu-a's group finished
    assert not _containers(sweep_id)
    r = sweep(fleet, exp, out)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert f"{len(done)} already done" in r.stderr.replace("\n", " ")
    records = _records(out)
    assert len(records) == 4 and all(x["status"] == "ok" for x in records)
    for key, mtime in done.items():  # finished conditions were not run again
        assert (out / "conditions" / key / "summary.json").stat().st_mtime_ns == mtime
    assert not _containers(sweep_id)


def test_ctrl_c_cancels_and_leaves_no_container(fleet, tmp_path):
    """Ctrl-C of the driver cancels the groups and every node removes this sweep's containers; exit 130."""
    exp = _experiment(tmp_path, "fleet-int", BASE + "  limit: 4\n  repeats: 2\ngrid:\n  targets: [cpu-a, cpu-b]\n")
    out = tmp_path / "out"
    sweep_id = stable_hash(str(out.resolve()))
    proc = subprocess.Popen(_sweep_cmd(exp, out), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=fleet.env())
    try:
        _wait_for_container(sweep_id)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 130, stdout[-2000:] + stderr[-3000:]
    deadline = time.monotonic() + 30
    while _containers(sweep_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _containers(sweep_id)
    assert "rerun the same command" in stderr
