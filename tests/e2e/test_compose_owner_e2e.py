"""Whose files the compose runner writes: the runner image starts as root, and containers/runner/as-owner.sh runs
the runner as the owner of the mounted project, so results/, build/ and models/ stay deletable without sudo.

Real engine, real runner image (`make runner-image`, checked complete by the runner_image fixture), real socket. Making a project owned by another uid needs
chown, so the switching tests need root (as CI runs them); the uid is one no account here holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import docker
import pytest
from helpers import ROOT

from runner.images.build import RUNNER_RECORD
from runner.models.resolve import default_models_dir

pytestmark = pytest.mark.e2e

OWNER = 4321  # a uid and gid with no account: nothing but the project ties the runner to it
SOCKET = "/var/run/docker.sock"
SCRIPTS = ROOT / "containers" / "runner"
CA_BUNDLE = os.environ.get("EDGEASR_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")  # what compose mounts
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="giving a project to another uid needs root (chown)")


def _run_as_owner(image: str, project: Path, command: str, *, env: dict[str, str] | None = None,
                  user: str | None = None, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`command` (sh -c) through the project's as-owner.sh in the runner image, mounted as compose mounts it."""
    args = ["docker", "run", "--rm", "-v", f"{SOCKET}:{SOCKET}", "-v", f"{project}:{project}", "-w", str(project),
            "-v", f"{SCRIPTS}:{SCRIPTS}:ro", "--entrypoint", "/bin/sh", *extra]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    if user:
        args += ["--user", user]
    args += [image, str(SCRIPTS / "as-owner.sh"), "sh", "-c", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _ids(out: str) -> tuple[int, int, set[int]]:
    uid, gid, groups = out.strip().splitlines()[:3]
    return int(uid), int(gid), {int(g) for g in groups.split()}


@pytest.fixture
def owned_project(tmp_path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    os.chown(project, OWNER, OWNER)
    return project


@needs_root
def test_root_switches_to_the_project_owner_keeping_the_engine_and_root_only_counters(runner_image, owned_project):
    """As root in a project another uid owns, the command runs as that uid and gid, with the Docker socket's group
    (the engine answers a ping), a file it makes is the owner's on the host, and a root-only file (as RAPL's
    energy_uj is) stays readable through the one capability it keeps."""
    secret = owned_project / "energy_uj"
    secret.write_text("123456\n")
    secret.chmod(0o400)  # root's, 0400, as /sys/class/powercap/*/energy_uj on Linux 5.10+
    r = _run_as_owner(runner_image, owned_project, "id -u; id -g; id -G; touch made-here; cat energy_uj; "
                                                   "python -c 'import docker; print(docker.from_env().ping())'")
    assert r.returncode == 0, r.stderr
    uid, gid, groups = _ids(r.stdout)
    assert (uid, gid) == (OWNER, OWNER)
    assert os.stat(SOCKET).st_gid in groups
    made = (owned_project / "made-here").stat()
    assert (made.st_uid, made.st_gid) == (OWNER, OWNER)
    assert r.stdout.splitlines()[3:] == ["123456", "True"]
    assert r.stderr == ""  # nothing to say when it switches


@needs_root
def test_without_the_capability_it_still_switches_and_says_what_that_costs(runner_image, owned_project):
    """A container started without CAP_DAC_OVERRIDE still runs as the owner (the files matter more), and one line
    says that root-only energy counters will not be readable; they are not."""
    secret = owned_project / "energy_uj"
    secret.write_text("123456\n")
    secret.chmod(0o400)
    r = _run_as_owner(runner_image, owned_project, "id -u; id -g; id -G; cat energy_uj || echo unreadable",
                      extra=("--cap-drop", "DAC_OVERRIDE"))
    assert r.returncode == 0, r.stderr
    assert _ids(r.stdout)[:2] == (OWNER, OWNER) and r.stdout.splitlines()[-1] == "unreadable"
    assert "without CAP_DAC_OVERRIDE" in r.stderr.splitlines()[0] and "RAPL" in r.stderr.splitlines()[0]


@needs_root
def test_pip_cache_of_a_first_start_install_is_the_owners(runner_image, owned_project):
    """An image built without its packages installs them at first start, as root (the venv is root's), with its
    pip cache in the project's build/: the entrypoint gives build/ and the cache to the project's owner."""
    script = (f"rm {RUNNER_RECORD} && "  # no record of an install: the entrypoint completes the image
              f"exec /bin/sh {SCRIPTS / 'entrypoint.sh'} --version")  # packages present: pip needs no index
    r = subprocess.run(["docker", "run", "--rm", "-v", f"{owned_project}:{owned_project}", "-w", str(owned_project),
                        "-v", f"{SCRIPTS}:{SCRIPTS}:ro", "-e", f"PYTHONPATH={ROOT}:{ROOT}/containers/common",
                        "-v", f"{CA_BUNDLE}:/etc/edgeasr/ca-bundle.crt:ro",
                        "-v", f"{ROOT}:{ROOT}:ro", "--entrypoint", "/bin/sh", runner_image, "-c", script],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("edgeasr ")
    made = [owned_project / "build", *(owned_project / "build").rglob("*")]
    assert len(made) >= 2  # build/ and build/pip-cache at least
    assert {(p.lstat().st_uid, p.lstat().st_gid) for p in made} == {(OWNER, OWNER)}


@pytest.mark.parametrize("case", ["root-owned project", "EDGEASR_KEEP_ROOT=1", "not root (--user)"])
def test_root_stays_root_where_it_should(runner_image, tmp_path, case):
    """Root stays root in a root-owned project (CI) and with EDGEASR_KEEP_ROOT=1 (runs that change the hardware);
    a container started as another user is left as it is."""
    project = tmp_path / "project"
    project.mkdir()
    env, user, expected = {}, None, 0
    if case != "root-owned project":
        if os.getuid() != 0:
            pytest.skip("giving a project to another uid needs root (chown)")
        os.chown(project, OWNER, OWNER)
    if case == "EDGEASR_KEEP_ROOT=1":
        env = {"EDGEASR_KEEP_ROOT": "1"}
    if case == "not root (--user)":
        user, expected = "5555:5555", 5555
    if case == "root-owned project" and os.getuid() != 0:
        expected = os.getuid()  # "root-owned" is the developer's own here; it runs as them, as before
        os.chmod(project, 0o777)
    r = _run_as_owner(runner_image, project, "id -u; id -g; id -G", env=env, user=user)
    assert r.returncode == 0, r.stderr
    assert _ids(r.stdout)[0] == expected
    assert r.stderr == ""


def test_a_bad_keep_root_value_is_one_sentence_and_exit_2(runner_image, tmp_path):
    """EDGEASR_KEEP_ROOT is 1 or 0: another value stops before anything runs, with one sentence naming it."""
    r = _run_as_owner(runner_image, tmp_path, "echo ran", env={"EDGEASR_KEEP_ROOT": "maybe"})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "edgeasr runner: EDGEASR_KEEP_ROOT must be 1 (run as root) or 0 (run as the project's owner), not 'maybe'"]


def _project_copy(dest: Path) -> Path:
    """The project's files (tracked and new, not ignored) and the tiny.en model: a clone, as a user would have."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    shutil.copytree(default_models_dir() / "tiny.en", dest / "models" / "tiny.en")
    return dest


@needs_root
def test_docker_compose_up_sweep_in_a_users_project_leaves_only_the_users_files(runner_image, tmp_path):
    """`docker compose up sweep` in a project another uid owns (root runs compose, as `sudo docker compose` or a
    root-less user in the docker group would get): the sweep succeeds, its backend container runs as that uid, and
    afterwards no file in the project is root's: results/ and everything else the runner wrote are the owner's."""
    project = _project_copy(tmp_path / "edgeasr-owned")
    for path in [project, *project.rglob("*")]:
        os.lchown(path, OWNER, OWNER)
    name = f"edgeasr-owner-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, EXPERIMENT="test-tiny", PWD=str(project), COMPOSE_PROJECT_NAME=name,
               EDGEASR_RUNNER_IMAGE=runner_image)
    env.pop("EDGEASR_RESULTS_DIR", None)
    env.pop("EDGEASR_KEEP_ROOT", None)
    try:
        r = subprocess.run(["docker", "compose", "up", "--exit-code-from", "sweep", "sweep"], cwd=project, env=env,
                           capture_output=True, text=True, timeout=900)
    finally:
        subprocess.run(["docker", "compose", "down"], cwd=project, env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = project / "results" / "sweeps" / "test-tiny"
    assert (out / "results.csv").is_file() and (out / "report" / "report.html").is_file()
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(rec["status"] == "ok" for rec in records)
    # the backend container ran as the owner (hardening: a non-root runner passes on its own uid and groups)
    assert {rec["summary"]["hardening"]["user"] for rec in records} == {f"{OWNER}:{OWNER}"}
    not_owners = [str(p.relative_to(project)) for p in [project, *project.rglob("*")] if p.lstat().st_uid != OWNER]
    assert not_owners == []


FLEET_EXPERIMENT = """\
name: compose-owner-fleet
defaults:
  backend: faster-whisper
  model: tiny.en
  quant: int8
  device: cpu
  dataset: DATA
  limit: 2
  decode: {beam_size: 1, language: en}
  warmup: 0
  telemetry: {sampler: none, baseline_s: 0}
  timeout_s: 600
  target: compose-owner
"""


@needs_root
def test_compose_fleet_node_runs_as_the_owner_and_its_work_folder_is_theirs(runner_image, tmp_path):
    """The compose fleet (head and node services, in the runner image) in a project another uid owns, authenticated
    with the owner's token file (mode 0600) as the compose secret: a sweep from the host driver runs its group on
    the node, whose backend container runs as the owner, and the node's work folder (results/fleet-node: cached
    audio, raw outputs) is the owner's; no file in the project is root's."""
    pytest.importorskip("ray", reason="the fleet's driver needs Ray: pip install -e '.[fleet]'")
    from runner.fleet.auth import make_token
    from runner.fleet.local import agent_env, raylet_pid

    project = _project_copy(tmp_path / "edgeasr-fleet-owned")
    for path in [project, *project.rglob("*")]:
        os.lchown(path, OWNER, OWNER)
    token = tmp_path / "owner-config" / "fleet-token"  # the owner's, as `python3 -m runner.fleet.agent token` makes
    make_token(token)
    os.chown(token, OWNER, OWNER)
    port, client_port = 6397, 20037  # neither the demo's nor the fleet tests' ports
    env = dict(os.environ, PWD=str(project), COMPOSE_PROJECT_NAME=f"edgeasr-fleet-owner-{uuid.uuid4().hex[:8]}",
               EDGEASR_BIND="127.0.0.1", EDGEASR_HEAD_PORT=str(port), EDGEASR_CLIENT_PORT=str(client_port),
               EDGEASR_HEAD=f"127.0.0.1:{port}", EDGEASR_TARGET="compose-owner", EDGEASR_NODE_IP="127.0.0.1",
               EDGEASR_FLEET_TOKEN_FILE=str(token))
    env.pop("EDGEASR_KEEP_ROOT", None)
    compose = ["docker", "compose", "--profile", "fleet"]
    exp = tmp_path / "compose-owner-fleet.yaml"
    exp.write_text(FLEET_EXPERIMENT.replace("DATA", str(ROOT / "data" / "default")))
    out = tmp_path / "out"
    try:
        up = subprocess.run([*compose, "up", "-d", "head", "node"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        deadline = time.monotonic() + 120
        while raylet_pid("compose-owner") is None:  # the node's raylet (pid: host, so it is in our /proc)
            logs = subprocess.run([*compose, "logs", "node"], cwd=project, env=env, capture_output=True, text=True)
            assert time.monotonic() < deadline, logs.stdout[-3000:] + logs.stderr[-3000:]
            time.sleep(1)
        owner = os.stat(f"/proc/{raylet_pid('compose-owner')}").st_uid
        assert owner == OWNER  # the node's Ray runs as the project's owner
        for attempt in range(10):  # the raylet is up; its registration with the head follows within seconds
            r = subprocess.run([sys.executable, "-m", "runner.cli", "sweep", str(exp), "--out", str(out),
                                "--cluster", f"ray://127.0.0.1:{client_port}"], cwd=ROOT, env=agent_env(token),
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 2 or "compose-owner" not in r.stderr or attempt == 9:
                break
            time.sleep(2)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    finally:
        subprocess.run([*compose, "down"], cwd=project, env=env, capture_output=True, timeout=120)
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    assert records and all(rec["status"] == "ok" for rec in records)
    assert {rec["summary"]["fleet"]["target"] for rec in records} == {"compose-owner"}
    assert {rec["summary"]["hardening"]["user"] for rec in records} == {f"{OWNER}:{OWNER}"}
    work = project / "results" / "fleet-node"
    assert (work / "blobs").is_dir() and any((work / "sweeps").rglob("*"))
    not_owners = [str(p.relative_to(project)) for p in [project, *project.rglob("*")] if p.lstat().st_uid != OWNER]
    assert not_owners == []
