"""The fleet driver: `edgeasr sweep FILE --cluster ray://HOST:PORT`.

Connects to the cluster, asks each node that serves a target of the experiment for its report, plans the
sweep with those nodes' image ids (runner/fleet/preflight.py), checks every target and prints one table, then
submits each group as a Ray task that requires its target's resource (count 1 per device: one group at a time
per device). Each finished condition comes back twice: as it ends, through a progress queue (so a node lost
later does not lose it), and with the group's artifacts as the task's return value; the driver writes both
into the one results folder, atomically, under the planner's condition keys (the target is part of them).

Failures: a node lost mid-group (Ray reports the task's node or worker died) leaves that group's unfinished
conditions recorded as ``node_lost`` with the node named, and a rerun of the same command runs just those.
Where the target has another node, Ray itself retries the group there first (``max_retries``; never after an
application failure, ``retry_exceptions=False``): the head's ledger (node.Ledger) tells the retry which
conditions the lost node finished, so it runs only the others and records ``fleet.attempts``.
Ctrl-C cancels every task (the executor on the node stops its container) and then every node removes the
containers labelled with this sweep's id.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from .. import tables
from ..content import HashCache
from ..data.dataset import AUDIO_EXTS
from ..errors import UserError
from ..execute import stamp
from ..host.info import host_facts
from ..host.lock import FolderLock
from ..models.resolve import default_models_dir
from ..plan import GroupJob, plan_sweep, stable_hash
from ..results import write_json_atomic
from ..untrusted import PlainColumn, line
from . import RAY_PIN, auth, preflight
from .node import Context, Ledger, Shipment

HEAD_RESOURCE = "node:__internal_head__"  # Ray's resource of the head node
REPORT_TIMEOUT_S = 180.0  # a node's report hashes its models once (then cached)
CLEANUP_TIMEOUT_S = 60.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"a fleet sweep needs Ray: pip install 'edgeasr[fleet]' (ray=={RAY_PIN}, the same "
                        f"version as the cluster's nodes)") from None
    return ray


def connect(ray, address: str) -> None:
    """Join the cluster as a driver (Ray Client for ray://), quietly, with the fleet's token (auth.py); a
    UserError when it cannot, one sentence at once when the head refuses the token."""
    token = auth.token_file()
    auth.use_in_this_process(token)
    auth.check_head(address, token, "driver")
    error: Exception | None = None
    for attempt in range(3):  # the head starts a server per client; on a loaded head that start can time out
        try:
            ray.init(address=address, log_to_driver=False, logging_level="error")
            return
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError or its own (address, versions)
            error = exc
            if "Initialization failure" not in str(exc):
                break
            time.sleep(2.0 * (attempt + 1))
    first = str(error).splitlines()[0] if str(error) else ""
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


def node_lost_summary(key: str, target: str, node: dict[str, Any] | None, reason: str) -> dict[str, Any]:
    """The record of a condition whose node was lost before it finished: not done, so a rerun runs it."""
    who = f"node {node['node_id'][:12]} ({node['hostname']})" if node else "the node running it"
    return {"status": "node_lost", "condition": {"key": key},
            "error": f"node_lost: {who} of target {target} was lost before this condition finished ({reason})",
            "fleet": {"target": target, **({k: node[k] for k in ("node_id", "hostname")} if node else {})}}


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


def cleanup(ray, nodes: list[preflight.Node], sweep_id: str, console: Console) -> None:
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
            for removed in ray.get(ref, timeout=CLEANUP_TIMEOUT_S):
                console.print(line(removed))
        except Exception:
            continue  # a lost node: its agent's restart reaps what it left (node.run_group's engine.reap)


def _preflight_table(rows: list[list[str]]) -> Table:
    table = Table(title="fleet preflight")
    for name in ("target", "node", "platform", "groups / conditions", "samplers", "checks"):
        table.add_column(name)
    for row in rows:  # what nodes report (host names, image labels): plain text, never markup
        table.add_row(*map(line, row))
    return table


def progress_columns() -> list:
    """The fleet view's columns (target names, host names): plain text, never markup."""
    return [PlainColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            PlainColumn("{task.fields[info]}")]


def main(args: argparse.Namespace, console: Console, exp, out: Path, address: str) -> int:
    """The fleet sweep, start to end; exit codes as `edgeasr sweep`'s."""
    if getattr(args, "engine", "docker") != "docker":
        raise UserError(f"--engine {args.engine}: a fleet runs backend containers on each node's Docker Engine; "
                        f"drop --engine, or drop the cluster to run here")
    ray = import_ray()
    targets = sorted({g.target for g in exp.groups})
    for t in targets:
        from . import target_problem

        if target_problem(t):
            raise UserError(f"{exp.path.name}: {target_problem(t)}")
    connect(ray, address)
    try:
        nodes = preflight.live_nodes(ray.nodes())
        problem = preflight.unknown_targets(targets, nodes)
        if problem:
            raise UserError(f"{exp.path.name}: {problem}")
        models_dir = args.models_dir or default_models_dir()
        node_models = None  # each node reports its own models folder ($EDGEASR_MODELS_DIR there)
        hashes = HashCache()
        reports, planned, problems, needs = _preflight(ray, exp, out, nodes, targets, node_models, models_dir,
                                                       hashes)
        if needs and getattr(args, "build_missing", False):
            build_missing(ray, needs, console)
            reports, planned, problems, needs = _preflight(ray, exp, out, nodes, targets, node_models, models_dir,
                                                           hashes)
        console.print(_preflight_table(preflight.summary_rows(planned, reports, problems)))
        preflight.fail_if_problems(problems)
        with FolderLock(out, "sweep"):
            return _run(ray, args, console, exp, out, address, nodes, reports, planned, hashes, models_dir)
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


def build_missing(ray, needs: list[preflight.Need], console: Console) -> None:
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
        console.print(line(f"{mine[0].hostname}: building what it lacks: "
                           + "; ".join(f"edgeasr {' '.join(c)}" for c in commands)))
        strategy = NodeAffinitySchedulingStrategy(node_id, soft=False)
        refs.append(remote.options(num_cpus=0, scheduling_strategy=strategy, max_retries=0).remote(commands))
    for ref in refs:
        try:
            for said in ray.get(ref):
                console.print(line(said))
        except Exception as exc:
            console.print(line(("--build-missing failed on a node", "red"), f": {exc.__class__.__name__}: {exc}"))


def _pending(args, console: Console, planned: list[GroupJob]) -> list[tuple[GroupJob, list]]:
    """The groups with conditions still to run: the same resume rule as a local sweep (tables.pending)."""
    return [(job, conds) for job, conds in tables.pending(planned, args.retry_failed, lambda problem: console.print(
        line(("redoing a condition whose stored result is corrupt", "yellow"), f": {problem}"))) if conds]


def _run(ray, args, console: Console, exp, out: Path, address: str, nodes, reports, planned: list[GroupJob],
         hashes: HashCache, models_dir: Path) -> int:
    from ray.util.queue import Empty, Queue

    from ..commands.sweep import _manifest, _report, print_outcome
    from .node import run_group

    sweep_id = stable_hash(str(out))
    if args.force:
        shutil.rmtree(out / "conditions", ignore_errors=True)
    started = stamp()
    host = host_facts(None)
    fleet_facts = {"cluster": address, "nodes": {t: [{k: r.get(k) for k in ("node_id", "hostname", "platform",
                                                                              "kind", "l4t", "docker_engine")}
                                                     for r in rs] for t, rs in reports.items()}}
    write_json_atomic(out / "manifest.json", {**_manifest(exp, planned, out, started, None, host),
                                              "fleet": fleet_facts})
    todo = _pending(args, console, planned)
    n_total = sum(len(j.conditions) for j in planned)
    n_pending = sum(len(p) for _, p in todo)
    console.print(line(("edgeasr sweep", "bold"), f" {exp.name} on {address}: {len(planned)} group(s) on "
                       f"{len({j.spec.settings.target for j in planned})} target(s), {n_total} condition(s), "
                       f"{n_total - n_pending} already done; results in {out}"))
    # The progress queue lives on the head (a node of a target may be lost, and its queue with it).
    queue = Queue(maxsize=0, actor_options={"num_cpus": 0, "resources": {HEAD_RESOURCE: 0.001}})
    ledger = ray.remote(Ledger).options(num_cpus=0, resources={HEAD_RESOURCE: 0.001}).remote()
    blobs: dict[str, Any] = {}
    remote = ray.remote(run_group)
    per_target_nodes = {t: len(rs) for t, rs in reports.items()}
    running: dict[Any, tuple[GroupJob, list, float]] = {}
    for job, pending in todo:
        target = job.spec.settings.target
        shipment = shipment_for(job, hashes, ray.put, blobs, models_dir)
        ctx = Context(sweep_id, target, str(job.spec.dataset.path),
                      str(job.spec.model.host_dir) if job.spec.model.host_dir else job.spec.model.container_path)
        # Ray retries a lost node's group on another node of its target, as long as one is left (else it would
        # wait for the lost node forever); an application failure is never retried.
        retries = max(0, per_target_nodes.get(target, 0) - 1)
        ref = remote.options(resources={target: 1}, num_cpus=0, max_retries=retries, retry_exceptions=False,
                             name=f"edgeasr {target} {job.label}").remote(
            job, [c.key for c in pending], shipment, ctx, queue, ledger)
        running[ref] = (job, pending, time.time())
    hashes.save()
    tally = Tally()
    totals: dict[str, int] = {}
    for job, pending in todo:
        totals[job.spec.settings.target] = totals.get(job.spec.settings.target, 0) + len(pending)
    timings: list[dict[str, Any]] = []
    lost = 0
    t0 = time.perf_counter()
    try:
        with Progress(*progress_columns(), console=console, refresh_per_second=2, disable=console.quiet) as progress:
            bars = {t: progress.add_task(t, total=n, info="waiting for its node") for t, n in sorted(totals.items())}

            def drain() -> None:
                while True:
                    try:
                        item = queue.get_nowait()
                    except Empty:
                        return
                    except Exception as exc:  # the head's queue is gone: results still come with each group
                        if not tally.deaf:
                            console.print(line(("no more progress from the nodes", "yellow"),
                                               f": {exc.__class__.__name__}"))
                        tally.deaf = True
                        return
                    _heard(item, tally, planned, out, progress, bars, console)

            while running:
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                drain()
                for ref in ready:
                    job, pending, submitted = running.pop(ref)
                    lost += _finish(ray, ref, job, pending, submitted, tally, out, timings, console)
                    drain()
                    tables.rebuild_tables(out, planned)
    except BaseException as exc:  # Ctrl-C (or a bug here): no task and no container outlives the driver
        if isinstance(exc, KeyboardInterrupt):
            console.print(line(("interrupted", "yellow"), f": cancelling {len(running)} group(s) and removing "
                               "this sweep's containers on every node"))
        for ref in running:
            try:
                ray.cancel(ref)
            except Exception:
                pass
        cleanup(ray, preflight.live_nodes(ray.nodes()), sweep_id, console)
        records = tables.rebuild_tables(out, planned)
        if isinstance(exc, KeyboardInterrupt):
            exc.hint = (f"{len(records)} of {n_total} condition(s) are recorded in {out}; rerun the same "
                        f"command to resume")
        raise
    cleanup(ray, preflight.live_nodes(ray.nodes()), sweep_id, console)
    if timings:
        write_json_atomic(out / "fleet-timing.json", timings)
    records = tables.rebuild_tables(out, planned)
    write_json_atomic(out / "manifest.json", {**_manifest(exp, planned, out, started, stamp(), host),
                                              "fleet": fleet_facts})
    _report(out, console)
    lost_note = f", {lost} lost with their node (rerun the same command to run them)" if lost else ""
    failed = print_outcome(records, out, time.perf_counter() - t0, console, lost_note, target=True)
    return 1 if failed or lost else 0


def _heard(item: dict[str, Any], tally: Tally, planned: list[GroupJob], out: Path, progress, bars,
           console: Console) -> None:
    """One progress message from a node: a group started there, or a condition finished (with its files)."""
    target = item.get("target", "?")
    if item["kind"] == "start":
        tally.nodes.setdefault(item["group"], []).append({k: item[k] for k in ("node_id", "hostname")})
        if target in bars:
            progress.update(bars[target], info=f"on {item['hostname']}")
        earlier = (item.get("attempts") or [])[:-1]
        if earlier:
            lost = ", ".join(f"{a['hostname']} ({a['node_id'][:12]})" for a in earlier)
            console.print(line((f"group {item['group']} of target {target} retried on", "yellow"),
                               f" {item['hostname']} ({item['node_id'][:12]}) after losing {lost}; it runs only "
                               "the unfinished conditions"))
    elif item["kind"] == "done":
        key = item["key"]
        if item.get("status") not in tables.RESULT_STATUSES:
            return  # interrupted there (its worker stopped as the node went): recorded when the group ends
        if item.get("files") and key not in tally.written:
            write_condition_files(out / "conditions" / key, item["files"])
        tally.written.add(key)
        if key not in tally.done.setdefault(target, set()):
            tally.done[target].add(key)
            if target in bars:
                progress.update(bars[target], advance=1, info=f"on {item['hostname']}: last {item.get('status')}")
    elif item["kind"] == "note":
        console.print(line(f"{item['hostname']}: {item.get('text')}"))


def _finish(ray, ref, job: GroupJob, pending: list, submitted: float, tally: Tally, out: Path,
            timings: list[dict[str, Any]], console: Console) -> int:
    """Write a finished group's files; a lost node's unfinished conditions as node_lost. Returns how many
    conditions were lost."""
    from ray.exceptions import RayTaskError, TaskCancelledError

    target = job.spec.settings.target
    try:
        result = ray.get(ref)
    except TaskCancelledError:
        return 0
    except RayTaskError as exc:  # the group's own failure on the node (a missing model, a bug): not retried
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        message = str(cause).splitlines()[0] if str(cause) else cause.__class__.__name__
        for cond in pending:
            if cond.key not in tally.written:
                write_record(cond.result_dir, {**identity(job),
                                               **node_lost_summary(cond.key, target, _last_node(tally, job), message),
                                               "status": "error", "error": f"on target {target}: {message}"})
        console.print(line((f"group failed on target {target}", "red"), f": {message}"))
        return 0
    except Exception as exc:  # the node or its worker died (NodeDiedError, WorkerCrashedError, ...)
        node = _last_node(tally, job)
        n = 0
        for cond in pending:
            if cond.key not in tally.written:
                write_record(cond.result_dir, {**identity(job),
                                               **node_lost_summary(cond.key, target, node, exc.__class__.__name__)})
                n += 1
        who = f"{node['hostname']} ({node['node_id'][:12]})" if node else "its node"
        console.print(line(("node lost", "red"), f": {who} of target {target}; {n} condition(s) recorded as node_lost"))
        return n
    for key, files in result["conditions"].items():  # a retry's summaries name every attempt (node.run_group)
        write_condition_files(out / "conditions" / key, files)
        tally.written.add(key)
    gdir = out / "groups" / job.key
    for rel, data in result["group_files"].items():
        write_bytes_atomic(gdir / rel, data)
    written = time.time()
    timing = {"group": job.key, "target": target, "node": result["fleet"]["hostname"],
              "node_id": result["fleet"]["node_id"], "submitted": submitted,
              **result["timing"], "written": written, "n_conditions": len(result["conditions"]),
              "attempt": len(result["fleet"].get("attempts") or [None]),
              "cache": result["fleet"].get("cache")}
    write_json_atomic(gdir / "fleet.json", {"fleet": result["fleet"], "timing": timing})
    timings.append(timing)
    return 0


def _last_node(tally: Tally, job: GroupJob) -> dict[str, Any] | None:
    nodes = tally.nodes.get(job.key)
    return nodes[-1] if nodes else None
