"""The fleet driver: `edgeasr sweep FILE --cluster ray://HOST:PORT`.

Connects to the cluster, asks each node that serves a target of the experiment for its report, plans the
sweep with those nodes' image ids (runner/fleet/preflight.py), checks every target and shows one table, then
runs the one sweep (runner/sweep.py) with ``RayDispatcher``: each group a Ray task that requires its target's
resource (count 1 per device: one group at a time per device). Each finished condition comes back twice: as
it ends, through a progress queue (so a node lost later does not lose it), and with the group's artifacts as
the task's return value; the driver writes both into the one results folder, atomically, under the planner's
condition keys (the target is part of them).

Failures: a node lost mid-group (Ray reports the task's node or worker died) leaves that group's unfinished
conditions recorded as ``node_lost`` with the node named, and a rerun of the same command runs just those.
Where the target has another node, Ray itself retries the group there first (``max_retries``; never after an
application failure, ``retry_exceptions=False``): the head's ledger (node.Ledger) tells the retry which
conditions the lost node finished, so it runs only the others and records ``fleet.attempts``.
Ctrl-C cancels every task (the executor on the node stops its container) and then every node removes the
containers labelled with this sweep's id.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from .. import tables
from ..content import HashCache
from ..data.dataset import AUDIO_EXTS
from ..errors import UserError
from ..host.info import host_facts
from ..models.resolve import default_models_dir
from ..plan import GroupJob, plan_sweep, stable_hash
from ..results import write_json_atomic
from ..settings import FleetSettings
from ..sweep import FixedPlan, GroupDone, SweepOptions, SweepOutcome, SweepView, run_sweep
from . import RAY_PIN, auth, preflight
from .agent import CLIENT_SERVER_TIMEOUT_ENV
from .node import Context, Ledger, Shipment

HEAD_RESOURCE = "node:__internal_head__"  # Ray's resource of the head node
REPORT_TIMEOUT_S = 180.0  # a node's report hashes its models once (then cached)
CLEANUP_TIMEOUT_S = 60.0
#: How long a driver the head refused waits for its log stream to end (below, _bounded_log_stream_close).
LOG_STREAM_CLOSE_S = 5.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"a fleet sweep needs Ray: pip install 'edgeasr[fleet]' (ray=={RAY_PIN}, the same "
                        f"version as the cluster's nodes)") from None
    return ray


def _bounded_log_stream_close() -> None:
    """Ray's client (2.60), refused by the head, closes its log stream before its channel, and waits for that
    stream to end; when the head's proxy could not start this driver's server (the server process died as it
    started), the proxy holds that stream open for its whole channel wait (client_server_timeout_s, then ten
    seconds of retries). Seen in `make test`: a fleet test idled 190 s before its second attempt joined. The
    log stream's close is given LOG_STREAM_CLOSE_S: the client then closes its channel, which ends the stream
    (and the thread still closing it), and `connect` asks again."""
    try:
        from ray.util.client.logsclient import LogstreamClient
    except ImportError:  # another Ray: its own close
        return
    original = LogstreamClient.close
    if getattr(original, "edgeasr_bounded", False):
        return

    def close(self) -> None:
        closing = threading.Thread(target=original, args=(self,), daemon=True, name="edgeasr-log-stream-close")
        closing.start()
        closing.join(LOG_STREAM_CLOSE_S)

    close.edgeasr_bounded = True  # type: ignore[attr-defined]
    LogstreamClient.close = close  # type: ignore[method-assign]


def connect(ray, address: str, settings: FleetSettings = FleetSettings()) -> None:
    """Join the cluster as a driver (Ray Client for ray://), quietly, with the fleet's token (auth.py); a
    UserError when it cannot, one sentence at once when the head refuses the token. The head starts a server
    per driver; one that did not start in time ("Initialization failure", a loaded head) is asked again, up to
    ``settings.connect_attempts`` times in all, and the sentence then names the head's wait to raise."""
    token = auth.token_file()
    auth.use_in_this_process(token)
    auth.check_head(address, token, "driver")
    _bounded_log_stream_close()
    error: Exception | None = None
    for attempt in range(settings.connect_attempts):
        try:
            ray.init(address=address, log_to_driver=False, logging_level="error")
            return
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError or its own (address, versions)
            error = exc
            if "Initialization failure" not in str(exc):
                break
            if attempt + 1 < settings.connect_attempts:
                time.sleep(2.0 * (attempt + 1))
    first = str(error).splitlines()[0] if str(error) else ""
    if "Initialization failure" in str(error):
        raise UserError(f"cannot join the Ray cluster at {address}: {first} ({settings.connect_attempts} "
                        f"attempts): the head did not start this driver's server in time; on a loaded head, "
                        f"raise {CLIENT_SERVER_TIMEOUT_ENV} in the head's environment (the node agent gives "
                        f"{int(settings.client_server_timeout_s)} s) and start the head again")
    raise UserError(f"cannot join the Ray cluster at {address}: {error.__class__.__name__}: {first} (is the head "
                    f"up, and do driver and nodes run the same Ray {RAY_PIN} and Python, and the same RAY_USE_TLS?)")


def identity(job: GroupJob) -> dict[str, Any]:
    """The identity fields a summary carries (the report groups by them), for records the driver writes."""
    spec = job.spec
    return {"backend": spec.backend.name, "model": spec.model.name, "quant": spec.quant, "device": spec.device,
            "dataset": spec.dataset.name, "data_path": str(spec.dataset.path),
            "model_ref": str(spec.model.host_dir) if spec.model.host_dir else spec.model.container_path}


def write_record(folder: Path, summary: dict[str, Any]) -> None:
    """A condition's summary.json (and an empty utterances.jsonl, so the folder reads as whole) written by the
    driver itself: a lost node's or a failed group's conditions."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "utterances.jsonl").touch()
    write_json_atomic(folder / "summary.json", summary)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def write_condition_files(folder: Path, files: dict[str, bytes]) -> None:
    """One condition's folder as the node wrote it: utterances first, summary.json last (it marks it done)."""
    for name in sorted(files, key=lambda n: n == "summary.json"):
        write_bytes_atomic(folder / name, files[name])


@dataclass(frozen=True)
class NodeLost:
    """The record of a condition whose node was lost before it finished: not done, so a rerun runs it. No
    figures, so no Summary: its summary.json is ``to_json()`` (status, condition key, error, fleet), whole."""

    key: str
    target: str
    node: Mapping[str, Any] | None  # the node's facts (node_id, hostname); None: not known which node ran it
    reason: str

    @property
    def error(self) -> str:
        who = f"node {self.node['node_id'][:12]} ({self.node['hostname']})" if self.node else "the node running it"
        return f"node_lost: {who} of target {self.target} was lost before this condition finished ({self.reason})"

    def to_json(self) -> dict[str, Any]:
        node = {k: self.node[k] for k in ("node_id", "hostname")} if self.node else {}
        return {"status": "node_lost", "condition": {"key": self.key}, "error": self.error,
                "fleet": {"target": self.target, **node}}


def node_lost_summary(key: str, target: str, node: dict[str, Any] | None, reason: str) -> dict[str, Any]:
    """The stored record of a lost condition (NodeLost)."""
    return NodeLost(key, target, node, reason).to_json()


def shipment_for(job: GroupJob, hashes: HashCache, put, blobs: dict[str, Any], models_dir: Path) -> Shipment:
    """The group's audio and noise files by content; each new hash is put in the object store once a sweep."""
    def ref(path: Path) -> tuple[str, str]:
        sha = hashes.file(path)
        if sha is None:
            raise UserError(f"{path}: cannot be read any more (it was when the sweep was planned)")
        if sha not in blobs:
            blobs[sha] = put(Path(path).read_bytes())
        return sha, Path(path).suffix.lower()

    audio = {u.id: ref(u.audio) for u in job.spec.dataset.readable}
    noise = {}
    if job.noise_dir is not None:
        for p in sorted(q for q in Path(job.noise_dir).rglob("*") if q.suffix.lower() in AUDIO_EXTS):
            noise[p.relative_to(job.noise_dir).as_posix()] = ref(p)
    rel, _ = preflight.model_rel(job, models_dir)
    needed = {sha for sha, _ in [*audio.values(), *noise.values()]}
    return Shipment(audio=audio, noise=noise, refs={s: blobs[s] for s in needed}, model_rel=rel)


@dataclass
class Tally:
    """What the driver has heard, per group and per target (the live view and the node_lost records)."""

    nodes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # group key -> nodes that started it
    done: dict[str, set[str]] = field(default_factory=dict)  # target -> condition keys finished
    written: set[str] = field(default_factory=set)  # condition keys with a result written
    deaf: bool = False  # the progress queue is gone


def gather_reports(ray, nodes: list[preflight.Node], targets: list[str], models_dir: str | None
                   ) -> dict[str, list[dict[str, Any]]]:
    """Each live node that serves a planned target reports itself (a task pinned to that node)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .node import node_report

    remote = ray.remote(node_report)
    asked = {}
    for n in nodes:
        if set(n.targets) & set(targets):
            strategy = NodeAffinitySchedulingStrategy(n.node_id, soft=False)
            asked[n.node_id] = (n, remote.options(num_cpus=0, scheduling_strategy=strategy).remote(models_dir))
    reports: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    for node_id, (n, ref) in asked.items():
        try:
            report = ray.get(ref, timeout=REPORT_TIMEOUT_S)
        except Exception as exc:
            report = {"node_id": node_id, "hostname": n.address, "platform": "?", "kind": "?",
                      "problems": [f"the node did not report: {exc.__class__.__name__}: {exc}"]}
        for t in n.targets:
            if t in reports:
                reports[t].append(report)
    return reports


def cleanup(ray, nodes: list[preflight.Node], sweep_id: str, note: Callable[[str], None]) -> None:
    """Every live node removes the containers of this sweep (after Ctrl-C, and at the sweep's end)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .node import remove_containers

    remote = ray.remote(remove_containers)
    refs = []
    for n in nodes:
        strategy = NodeAffinitySchedulingStrategy(n.node_id, soft=True)
        refs.append(remote.options(num_cpus=0, scheduling_strategy=strategy, max_retries=0).remote(sweep_id))
    for ref in refs:
        try:
            for line in ray.get(ref, timeout=CLEANUP_TIMEOUT_S):
                note(line)
        except Exception:
            continue  # a lost node: its agent's restart reaps what it left (node.run_group's engine.reap)


class FleetView(SweepView, Protocol):
    """What a fleet sweep tells its view besides a sweep's own (runner/sweep.py)."""

    def preflight(self, rows: list[list[str]]) -> None:
        """The preflight table: per target, its nodes, platform, groups / conditions, samplers and checks."""

    def node_started(self, target: str, hostname: str) -> None:
        """A group of ``target`` started on ``hostname``."""

    def condition_finished(self, target: str, hostname: str, status: str | None) -> None:
        """A condition of ``target`` finished on ``hostname`` with ``status``."""


def fleet_sweep(exp, out: Path, address: str, view: FleetView, *, engine: str = "docker",
                models_dir: Path | None = None, build_missing: bool = False,
                options: SweepOptions = SweepOptions(), fleet: FleetSettings = FleetSettings()) -> SweepOutcome:
    """`edgeasr sweep --cluster ADDRESS`: join the cluster (``fleet``: how), check every target against its nodes
    (building what they lack with ``build_missing``), then the one sweep (runner/sweep.py) with the Ray
    dispatcher."""
    if engine != "docker":
        raise UserError(f"--engine {engine}: a fleet runs backend containers on each node's Docker Engine; "
                        f"drop --engine, or drop the cluster to run here")
    from . import target_problem

    ray = import_ray()
    targets = sorted({g.target for g in exp.groups})
    for t in targets:
        if target_problem(t):
            raise UserError(f"{exp.path.name}: {target_problem(t)}")
    connect(ray, address, fleet)
    try:
        nodes = preflight.live_nodes(ray.nodes())
        problem = preflight.unknown_targets(targets, nodes)
        if problem:
            raise UserError(f"{exp.path.name}: {problem}")
        models_dir = models_dir or default_models_dir()
        node_models = None  # each node reports its own models folder ($EDGEASR_MODELS_DIR there)
        hashes = HashCache()
        reports, planned, problems, needs = _preflight(ray, exp, out, nodes, targets, node_models, models_dir,
                                                       hashes)
        if needs and build_missing:
            _build_missing(ray, needs, view.note)
            reports, planned, problems, needs = _preflight(ray, exp, out, nodes, targets, node_models, models_dir,
                                                           hashes)
        view.preflight(preflight.summary_rows(planned, reports, problems))
        preflight.fail_if_problems(problems)
        dispatcher = RayDispatcher(ray, out, address, reports, hashes, models_dir, view)
        return run_sweep(exp, out, FixedPlan(tuple(planned)), dispatcher, view, options)
    finally:
        ray.shutdown()


def _preflight(ray, exp, out: Path, nodes, targets: list[str], node_models: str | None, models_dir: Path,
               hashes: HashCache):
    """The nodes' reports, the plan with the targets' image ids, every problem, and what --build-missing can
    make."""
    reports = gather_reports(ray, nodes, targets, node_models)
    images = preflight.FleetImages(reports)
    # the nodes check themselves (their reports): this host runs no group
    planned = plan_sweep(exp, images, models_dir, out, hashes, host_checks=False)
    planned = [replace(j, spec=replace(j.spec, image=images.refs.get((j.spec.settings.target, j.spec.image),
                                                                      j.spec.image)))
               for j in planned]
    needs = list(images.needs)
    problems = images.problems + preflight.check_plan(planned, reports, models_dir, needs)
    return reports, planned, problems, needs


def _build_missing(ray, needs: list[preflight.Need], note: Callable[..., None]) -> None:
    """--build-missing: each node that lacks an image or an installable model builds or installs it itself
    (a task pinned to that node; the node's own engine and models folder)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .node import install_missing

    remote = ray.remote(install_missing)
    by_node: dict[str, list[preflight.Need]] = {}
    for need in needs:
        by_node.setdefault(need.node_id, []).append(need)
    refs = []
    for node_id, mine in by_node.items():
        commands = preflight.install_commands(mine)
        if not commands:
            continue
        note(f"{mine[0].hostname}: building what it lacks: " + "; ".join(f"edgeasr {' '.join(c)}" for c in commands))
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        refs.append(remote.options(num_cpus=0, scheduling_strategy=strategy, max_retries=0).remote(commands))
    for ref in refs:
        try:
            for line in ray.get(ref):
                note(line)
        except Exception as exc:
            note(f"--build-missing failed on a node: {exc.__class__.__name__}: {exc}", "error")


class RayDispatcher:
    """The sweep's groups as Ray tasks, each on a node of its target (see the module doc): all submitted at
    once, each condition written as it ends and the group's files when it ends; a lost node's unfinished
    conditions recorded as node_lost; the sweep's containers removed on every node at the end or on Ctrl-C."""

    def __init__(self, ray, out: Path, address: str, reports: dict[str, list[dict[str, Any]]], hashes: HashCache,
                 models_dir: Path, view: FleetView) -> None:
        self.ray, self.out, self.view = ray, out, view
        self.reports, self.hashes, self.models_dir = reports, hashes, models_dir
        self.host = host_facts(None)
        self.sweep_id = stable_hash(str(out))
        self.fleet_facts = {"cluster": address,
                            "nodes": {t: [{k: r.get(k) for k in ("node_id", "hostname", "platform", "kind", "l4t",
                                                                  "docker_engine")} for r in rs]
                                      for t, rs in reports.items()}}
        self.tally = Tally()
        self.timings: list[dict[str, Any]] = []
        self._blobs: dict[str, Any] = {}
        self._running: dict[Any, tuple[GroupJob, list, float]] = {}
        self._per_target_nodes = {t: len(rs) for t, rs in reports.items()}
        self._queue = self._ledger = self._remote = None

    def start(self) -> list[str]:
        from ray.util.queue import Queue

        from .node import run_group

        # The progress queue and the ledger live on the head (a node of a target may be lost, and its queue
        # with it).
        self._queue = Queue(maxsize=0, actor_options={"num_cpus": 0, "resources": {HEAD_RESOURCE: 0.001}})
        self._ledger = self.ray.remote(Ledger).options(num_cpus=0, resources={HEAD_RESOURCE: 0.001}).remote()
        self._remote = self.ray.remote(run_group)
        return []

    def manifest(self) -> dict[str, Any]:
        return {"fleet": self.fleet_facts}

    def submit(self, job: GroupJob, pending: list) -> None:
        target = job.spec.settings.target
        shipment = shipment_for(job, self.hashes, self.ray.put, self._blobs, self.models_dir)
        ctx = Context(self.sweep_id, target, str(job.spec.dataset.path),
                      str(job.spec.model.host_dir) if job.spec.model.host_dir else job.spec.model.container_path)
        # Ray retries a lost node's group on another node of its target, as long as one is left (else it would
        # wait for the lost node forever); an application failure is never retried.
        retries = max(0, self._per_target_nodes.get(target, 0) - 1)
        ref = self._remote.options(resources={target: 1}, num_cpus=0, max_retries=retries, retry_exceptions=False,
                                   name=f"edgeasr {target} {job.label}").remote(
            job, [c.key for c in pending], shipment, ctx, self._queue, self._ledger)
        self._running[ref] = (job, pending, time.time())

    def busy(self) -> bool:
        return bool(self._running)

    def wait(self) -> list[GroupDone]:
        self.hashes.save()
        while True:
            ready, _ = self.ray.wait(list(self._running), num_returns=1, timeout=0.5)
            self._drain()
            done = []
            for ref in ready:
                job, pending, submitted = self._running.pop(ref)
                lost = self._finish(ref, job, pending, submitted)
                self._drain()
                done.append(GroupDone(job, tuple(tables.collect([job])), lost=lost))
            if done:
                return done

    def cancel(self, interrupted: bool) -> None:
        if interrupted:
            self.view.note(f"interrupted: cancelling {len(self._running)} group(s) and removing this sweep's "
                           f"containers on every node", "warning")
        for ref in self._running:
            try:
                self.ray.cancel(ref)
            except Exception:
                pass
        cleanup(self.ray, preflight.live_nodes(self.ray.nodes()), self.sweep_id, self.view.note)

    def close(self) -> None:
        cleanup(self.ray, preflight.live_nodes(self.ray.nodes()), self.sweep_id, self.view.note)
        if self.timings:
            write_json_atomic(self.out / "fleet-timing.json", self.timings)

    def _drain(self) -> None:
        from ray.util.queue import Empty

        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                return
            except Exception as exc:  # the head's queue is gone: results still come with each group
                if not self.tally.deaf:
                    self.view.note(f"no more progress from the nodes: {exc.__class__.__name__}", "warning")
                self.tally.deaf = True
                return
            heard(item, self.tally, self.out, self.view)

    def _finish(self, ref, job: GroupJob, pending: list, submitted: float) -> int:
        """Write a finished group's files; a lost node's unfinished conditions as node_lost. Returns how many
        conditions were lost."""
        from ray.exceptions import RayTaskError, TaskCancelledError

        target = job.spec.settings.target
        tally = self.tally
        try:
            result = self.ray.get(ref)
        except TaskCancelledError:
            return 0
        except RayTaskError as exc:  # the group's own failure on the node (a missing model, a bug): not retried
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            message = str(cause).splitlines()[0] if str(cause) else cause.__class__.__name__
            for cond in pending:
                if cond.key not in tally.written:
                    write_record(cond.result_dir, {**identity(job),
                                                   **node_lost_summary(cond.key, target, _last_node(tally, job),
                                                                       message),
                                                   "status": "error", "error": f"on target {target}: {message}"})
            self.view.note(f"group failed on target {target}: {message}", "error")
            return 0
        except Exception as exc:  # the node or its worker died (NodeDiedError, WorkerCrashedError, ...)
            node = _last_node(tally, job)
            n = 0
            for cond in pending:
                if cond.key not in tally.written:
                    write_record(cond.result_dir, {**identity(job),
                                                   **node_lost_summary(cond.key, target, node,
                                                                       exc.__class__.__name__)})
                    n += 1
            who = f"{node['hostname']} ({node['node_id'][:12]})" if node else "its node"
            self.view.note(f"node lost: {who} of target {target}; {n} condition(s) recorded as node_lost", "error")
            return n
        for key, files in result["conditions"].items():  # a retry's summaries name every attempt (node.run_group)
            write_condition_files(self.out / "conditions" / key, files)
            tally.written.add(key)
        gdir = self.out / "groups" / job.key
        for rel, data in result["group_files"].items():
            write_bytes_atomic(gdir / rel, data)
        written = time.time()
        timing = {"group": job.key, "target": target, "node": result["fleet"]["hostname"],
                  "node_id": result["fleet"]["node_id"], "submitted": submitted,
                  **result["timing"], "written": written, "n_conditions": len(result["conditions"]),
                  "attempt": len(result["fleet"].get("attempts") or [None]),
                  "cache": result["fleet"].get("cache")}
        write_json_atomic(gdir / "fleet.json", {"fleet": result["fleet"], "timing": timing})
        self.timings.append(timing)
        return 0


def heard(item: dict[str, Any], tally: Tally, out: Path, view: FleetView) -> None:
    """One progress message from a node: a group started there, or a condition finished (with its files)."""
    target = item.get("target", "?")
    if item["kind"] == "start":
        tally.nodes.setdefault(item["group"], []).append({k: item[k] for k in ("node_id", "hostname")})
        view.node_started(target, item["hostname"])
        earlier = (item.get("attempts") or [])[:-1]
        if earlier:
            lost = ", ".join(f"{a['hostname']} ({a['node_id'][:12]})" for a in earlier)
            view.note(f"group {item['group']} of target {target} retried on {item['hostname']} "
                      f"({item['node_id'][:12]}) after losing {lost}; it runs only the unfinished conditions",
                      "warning")
    elif item["kind"] == "done":
        key = item["key"]
        if item.get("status") not in tables.RESULT_STATUSES:
            return  # interrupted there (its worker stopped as the node went): recorded when the group ends
        if item.get("files") and key not in tally.written:
            write_condition_files(out / "conditions" / key, item["files"])
        tally.written.add(key)
        if key not in tally.done.setdefault(target, set()):
            tally.done[target].add(key)
            view.condition_finished(target, item["hostname"], item.get("status"))
    elif item["kind"] == "note":
        view.note(f"{item['hostname']}: {item.get('text')}")


def _last_node(tally: Tally, job: GroupJob) -> dict[str, Any] | None:
    nodes = tally.nodes.get(job.key)
    return nodes[-1] if nodes else None
