"""The fleet is authenticated, end to end: a real Ray 2.60 cluster on 127.0.0.1 (a head and one node, started by
the node agent's own commands with the fleet's token file) refuses a driver and a node without the right token,
and edgeasr says so in one sentence instead of Ray's traceback or its 30 s Ray Client timeout.

Ray's own servers are asked too, without edgeasr in between (a plain Ray Client, and one gRPC call to the GCS and
to the Ray Client server with no token and with a wrong one): the refusal is theirs, not only our driver's.
Its own module and ports (neither the demo's nor the other fleet tests').
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT

pytest.importorskip("ray", reason="the fleet needs Ray: pip install -e '.[fleet]' (make fleet-venv installs it)")

import grpc  # noqa: E402  (Ray's dependency: after the skip)

from runner.fleet.local import LocalFleet, raylet_pid  # noqa: E402

pytestmark = pytest.mark.e2e

PORT, CLIENT_PORT = 6391, 20029


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    token = tmp_path_factory.mktemp("fleet-auth") / "fleet-token"  # the head's first start writes it
    fleet = LocalFleet(("auth-a",), port=PORT, client_port=CLIENT_PORT, token_file=token)
    fleet.down()  # a cluster a crashed run left behind
    fleet.up()
    try:
        yield fleet
    finally:
        fleet.down()


def _token_file(folder: Path, text: str, name: str = "token") -> Path:
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    return path


def _experiment(tmp_path: Path) -> Path:
    path = tmp_path / "fleet-auth.yaml"
    path.write_text(f"""\
name: fleet-auth
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: {ROOT / "data" / "default"}
  limit: 1
  target: auth-a
""")
    return path


def _sweep(fleet: LocalFleet, tmp_path: Path, token_file: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = dict(fleet.env(), EDGEASR_FLEET_TOKEN_FILE=str(token_file))
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "runner.cli", "sweep", str(_experiment(tmp_path)), "--out",
                        str(tmp_path / "out"), "--cluster", fleet.address], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=180)
    return r, time.monotonic() - t0


def _one_sentence(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr  # one sentence: no traceback, no Ray log lines
    assert "Traceback" not in stderr
    return lines[0]


def _ask(address: str, service: str, token: str | None) -> grpc.StatusCode:
    """One gRPC call to Ray's own server (the GCS, or the Ray Client server) with ``token`` or none."""
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, ray_client_pb2, ray_client_pb2_grpc

    metadata = [("authorization", f"Bearer {token}")] if token else []
    channel = grpc.insecure_channel(address)
    try:
        if service == "gcs":
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                gcs_service_pb2.GetClusterIdRequest(), timeout=10, metadata=metadata)
        else:
            ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(
                ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING), timeout=10,
                metadata=metadata)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        channel.close()


def test_the_head_wrote_a_token_only_its_owner_can_read(fleet):
    """The head's first start made the fleet's token: one line of 64 hex digits, mode 0600."""
    path = fleet.token_file
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text().strip()
    assert len(token) == 64 and int(token, 16) >= 0


def test_rays_own_servers_refuse_a_caller_without_the_right_token(fleet, tmp_path):
    """The GCS (nodes join there) and the Ray Client server (the driver's ray://) answer UNAUTHENTICATED to a
    call with no token or a wrong one, and answer the fleet's token: Ray 2.60's token authentication covers the
    Ray Client port."""
    token = fleet.token_file.read_text().strip()
    for service, port in (("gcs", PORT), ("client", CLIENT_PORT)):
        address = f"127.0.0.1:{port}"
        assert _ask(address, service, None) == grpc.StatusCode.UNAUTHENTICATED, service
        assert _ask(address, service, "0" * 64) == grpc.StatusCode.UNAUTHENTICATED, service
        assert _ask(address, service, token) == grpc.StatusCode.OK, service


def test_a_plain_ray_client_without_the_token_never_connects(fleet, tmp_path):
    """Ray's own client, with no token anywhere (no edgeasr, a fresh HOME: no ~/.ray/auth_token), cannot join:
    it never gets to run anything on the cluster."""
    script = ("import ray\nray.init(address=%r, logging_level='error')\n"
              "print('CONNECTED', ray.get(ray.remote(num_cpus=0)(lambda: 1).remote()))\n") % fleet.address
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "EDGEASR_FLEET"))}
    env.update(HOME=str(tmp_path), RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S="1")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "CONNECTED" not in r.stdout, r.stdout + r.stderr[-2000:]


def test_a_driver_with_a_wrong_token_is_refused_in_one_sentence(fleet, tmp_path):
    """`edgeasr sweep --cluster` with another token: exit 2 within seconds (not Ray Client's 30 s timeout), one
    sentence naming the head and the token file; nothing is written."""
    wrong = _token_file(tmp_path, "0" * 64)
    r, took = _sweep(fleet, tmp_path, wrong)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_sentence(r.stderr)
    assert "refused this driver's token" in line and fleet.address in line and str(wrong) in line, line
    assert took < 25 and not (tmp_path / "out").exists()


def test_a_driver_without_a_token_is_refused_in_one_sentence(fleet, tmp_path):
    """No token file where the driver looks: exit 2, one sentence saying where it looked and what to do."""
    missing = tmp_path / "nowhere" / "fleet-token"
    r, _ = _sweep(fleet, tmp_path, missing)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_sentence(r.stderr)
    assert "no fleet token" in line and str(missing) in line and "EDGEASR_FLEET_TOKEN_FILE" in line, line


@pytest.mark.parametrize("case", ["wrong", "missing"])
def test_a_node_without_the_right_token_is_refused_in_one_sentence_and_never_joins(fleet, tmp_path, case):
    """The node agent with a wrong token (or none) stops before `ray start` with one sentence and exit 2; no
    raylet of its target is left running."""
    token = _token_file(tmp_path, "f" * 64) if case == "wrong" else tmp_path / "absent"
    env = dict(fleet.env(), EDGEASR_FLEET_TOKEN_FILE=str(token))
    r = subprocess.run([sys.executable, "-m", "runner.fleet.agent", "node", "--head", f"127.0.0.1:{PORT}",
                        "--target", "auth-intruder", "--node-ip", "127.0.0.1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_sentence(r.stderr)
    expected = "refused this node's token" if case == "wrong" else "no fleet token"
    assert expected in line and str(token) in line, line
    assert raylet_pid("auth-intruder") is None

