"""TLS between the fleet's nodes, end to end: Ray's TLS variables in the node agent's environment reach Ray (the
head and a node run mutual TLS, with the token), a driver with them joins, one without them does not.

Its own module and ports, apart from test_fleet_auth_e2e.py's cluster (a fleet goes down by its ports alone).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytest.importorskip("ray", reason="the fleet needs Ray: pip install -e '.[fleet]' (make fleet-venv installs it)")

from runner.fleet.local import LocalFleet, raylet_pid  # noqa: E402

pytestmark = pytest.mark.e2e

TLS_PORT, TLS_CLIENT_PORT = 6389, 20027  # neither the demo's nor the other fleet tests'


def _wrong_token(folder: Path) -> Path:
    path = folder / "wrong-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("e" * 64 + "\n")
    return path


CONNECT = """\
from runner.errors import UserError
from runner.fleet import driver
ray = driver.import_ray()
try:
    driver.connect(ray, {address!r})
    print("RAN", ray.get(ray.remote(num_cpus=0)(lambda: 6 * 7).remote()))
except UserError as exc:
    print("REFUSED", exc)
"""


def _certificates(folder: Path) -> dict[str, str]:
    """A CA and one certificate for this machine's addresses (Ray verifies the address it dials)."""
    from ray._private.services import get_node_ip_address

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=edgeasr-test-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj",
            "/CN=edgeasr-test-node")
    (folder / "san.ext").write_text(f"subjectAltName=IP:127.0.0.1,IP:{get_node_ip_address()},DNS:localhost\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "node.crt", "-days", "2", "-extfile", "san.ext")
    return {"RAY_USE_TLS": "1", "RAY_TLS_SERVER_CERT": str(folder / "node.crt"),
            "RAY_TLS_SERVER_KEY": str(folder / "node.key"), "RAY_TLS_CA_CERT": str(folder / "ca.crt")}


@pytest.mark.skipif(not shutil.which("openssl"), reason="making test certificates needs the openssl command")
def test_tls_passes_through_the_agent_to_nodes_and_driver(tmp_path):
    """With Ray's TLS variables (and certificates) in the agent's environment, head and node run mutual TLS
    and the node joins; a driver with the same variables and the token runs a task; a driver with the token
    but without TLS cannot join, and a wrong token is still refused in one sentence over TLS."""
    tls = _certificates(tmp_path)
    fleet = LocalFleet(("tls-a",), port=TLS_PORT, client_port=TLS_CLIENT_PORT, token_file=tmp_path / "fleet-token")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in tls.items():
            mp.setenv(key, value)
        fleet.down()
        fleet.up()  # the node joins only over TLS: the head's GCS speaks nothing else
    try:
        assert raylet_pid("tls-a") is not None

        def driver(env: dict[str, str]) -> str:
            r = subprocess.run([sys.executable, "-c", CONNECT.format(address=fleet.address)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=240)
            return r.stdout + r.stderr[-2000:]

        assert "RAN 42" in driver({**fleet.env(), **tls})
        plain = driver({**fleet.env(), "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1"})
        assert "RAN" not in plain and "REFUSED cannot join the Ray cluster" in plain, plain
        wrong = driver({**fleet.env(), **tls, "EDGEASR_FLEET_TOKEN_FILE": str(_wrong_token(tmp_path))})
        assert "refused this driver's token" in wrong, wrong
    finally:
        fleet.down()
