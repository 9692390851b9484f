"""What runs on a fleet node: its report, its content cache, one group on its own engine and sampler.

A group arrives as the planner's GroupJob (plain data) plus a ``Shipment``: the content hash of every audio
(and noise) file it reads and an object-store reference for each. The node keeps a cache of files by hash, so
only content it has never seen is fetched from the object store (later groups, and later sweeps, resend
nothing). ``localize`` rewrites the job's driver paths to the node's own (cached audio, its models folder, a
work folder), then ``run_group`` calls the single-machine executor (runner/execute.py) unchanged and returns
each condition's files and the group's artifacts as bytes; the driver writes them where they belong.

Everything here but ``run_group``, ``node_report`` and ``remove_containers`` is pure and tested without Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..plan import GroupJob, PlannedCondition
from ..tables import RESULT_STATUSES

WORK_ENV = "EDGEASR_FLEET_WORK"  # the node's cache and work folder (default ~/.cache/edgeasr/fleet)
TARGET_ENV = "EDGEASR_TARGET"


def work_root(env: dict | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get(WORK_ENV) or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeasr" / "fleet")
    return Path(base).resolve()


@dataclass(frozen=True)
class Shipment:
    """The driver-side files a group reads, by content: what travels through the object store.

    ``audio``: utterance id -> (sha256, suffix) for each utterance the container reads; ``noise``: a noise
    file's path under the group's noise folder -> (sha256, suffix); ``refs``: sha256 -> object reference
    (fetched by the node only when its cache lacks that hash); ``model_rel``: the model folder relative to the
    models folder (None: a hub name, nothing to find)."""

    audio: dict[str, tuple[str, str]] = field(default_factory=dict)
    noise: dict[str, tuple[str, str]] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)
    model_rel: str | None = None

    def hashes(self) -> dict[str, str]:
        """sha256 -> suffix of every file the group needs."""
        return {sha: suffix for sha, suffix in [*self.audio.values(), *self.noise.values()]}


@dataclass(frozen=True)
class Context:
    """Who asks: the sweep (its id labels every container) and the group's target."""

    sweep_id: str
    target: str
    driver_data_path: str  # the dataset path as the driver names it (identity in the results)
    driver_model_ref: str | None  # the model reference as the driver names it


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobCache:
    """Files by content hash under one folder (``<sha256><suffix>``); written atomically, checked on write."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fetched = 0
        self.cached = 0

    def path(self, sha: str, suffix: str) -> Path:
        return self.folder / f"{sha}{suffix}"

    def ensure(self, sha: str, suffix: str, fetch: Callable[[], bytes]) -> Path:
        """The cached file for ``sha``; ``fetch`` is called only when it is not cached yet."""
        path = self.path(sha, suffix)
        if path.exists():
            self.cached += 1
            return path
        data = fetch()
        if sha256_bytes(data) != sha:
            raise RuntimeError(f"content for {sha[:12]} arrived corrupt (its sha256 differs)")
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, 0o644)  # the backend container's unprivileged user reads it
        tmp.replace(path)
        self.fetched += 1
        return path


def localize(job: GroupJob, audio: dict[str, Path], noise_dir: Path | None, model_dir: Path | None,
             work: Path, image: str) -> GroupJob:
    """The job with the node's own paths: cached audio, noise folder, model folder, work folders, image.

    Pure: ``audio`` maps each shipped utterance id to its cached file; utterances the driver refused keep their
    problem (they are never read). Conditions write into ``work/conditions/<key>``, the group into
    ``work/groups/<group key>``."""
    spec = job.spec
    roots = tuple(sorted({p.parent for p in audio.values()})) or spec.dataset.roots
    utts = tuple(replace(u, audio=audio[u.id]) if u.id in audio else u for u in spec.dataset.utterances)
    dataset = replace(spec.dataset, utterances=utts, roots=roots,
                      path=roots[0] if roots else spec.dataset.path)
    model = spec.model if model_dir is None else replace(spec.model, host_dir=model_dir)
    group_dir = work / "groups" / job.key
    spec = replace(spec, dataset=dataset, model=model, out=group_dir, image=image)
    conds = tuple(replace(c, result_dir=work / "conditions" / c.key) for c in job.conditions)
    return replace(job, spec=spec, conditions=conds, group_dir=group_dir, noise_dir=noise_dir)


def group_file_names() -> tuple[str, ...]:
    """What a group's folder sends to the driver: the runner's own files and the container's contract outputs,
    never whatever else an image left in its output folder."""
    from ..launch.engines import CONTAINER_LOG
    from ..merge import RAW_NAMES

    return ("telemetry.csv", CONTAINER_LOG, "raw/job.json", *(f"raw/{n}" for n in RAW_NAMES))


def files_of(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """``names`` under ``folder`` (relative POSIX path -> bytes), each read by runner/trust/safe_io.py's rules: a
    name that is missing, or that an image left as a link, a FIFO or a file over the output limit, is not
    sent (the conditions' own records say what was refused)."""
    from ..trust.safe_io import IMAGE, Unsafe, read_bytes
    from ..settings import LimitsSettings, limit_name

    if not folder.is_dir():
        return {}
    out = {}
    for name in names:
        try:
            data = read_bytes(folder, name, label=name, origin=IMAGE, limit=LimitsSettings().output_bytes,
                              limit_name=limit_name("output_mib"))
        except Unsafe:
            continue
        if data is not None:
            out[name] = data
    return out


def restore_identity(summary: dict[str, Any], ctx: Context, fleet: dict[str, Any]) -> dict[str, Any]:
    """The summary as the driver names things: its dataset path and model reference are identity (the report
    keys rows by them, so two targets' rows line up); the node's own paths and facts go under ``fleet``."""
    node_paths = {"data_path": summary.get("data_path"), "model_ref": summary.get("model_ref")}
    model_ref = {} if ctx.driver_model_ref is None else {"model_ref": ctx.driver_model_ref}
    # built in one step, never the node's record edited: its keys keep their places, ``fleet`` comes last
    return {**summary, "data_path": ctx.driver_data_path, **model_ref, "fleet": {**fleet, "node_paths": node_paths}}


def proc_usage(pid: int) -> dict[str, float | None]:
    """A process's resident memory (MiB) and CPU time so far (s), from /proc; None where unreadable."""
    rss = cpu = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024.0
        fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return {"rss_mib": rss, "cpu_s": cpu}


def agent_usage(before: dict[str, dict], after: dict[str, dict], wall_s: float) -> dict[str, Any]:
    """The node agent's own cost over a group (Ray's raylet and this worker): memory at the end and mean CPU
    share over the group's wall time; it runs during the idle baseline too, so the baseline includes it."""
    out: dict[str, Any] = {"wall_s": wall_s}
    for name, end in after.items():
        start = before.get(name, {})
        cpu = None
        if end.get("cpu_s") is not None and start.get("cpu_s") is not None and wall_s > 0:
            cpu = (end["cpu_s"] - start["cpu_s"]) / wall_s
        out[name] = {"rss_mib": end.get("rss_mib"), "cpu_share": cpu}
    return out


class Ledger:
    """Each group's attempts (the nodes that started it, in order) and its conditions that ended: an actor on
    the head (the driver wraps this class with ray.remote; plain Python, so tested without Ray).

    Ray retries a lost node's group on another node of its target with the very same arguments; the retry asks
    here first, so it runs only the conditions the lost node did not finish (those came back as they ended and
    are kept as the lost node recorded them), and it records the nodes that tried before it."""

    def __init__(self) -> None:
        self._attempts: dict[str, list[dict[str, str]]] = {}
        self._done: dict[str, set[str]] = {}

    def start(self, group: str, node: dict[str, str]) -> dict[str, Any]:
        """An attempt of ``group`` begins on ``node``: every attempt so far (this one last) and the condition
        keys that earlier attempts finished."""
        attempts = self._attempts.setdefault(group, [])
        attempts.append(dict(node))
        return {"attempts": [dict(a) for a in attempts], "done": sorted(self._done.get(group, ()))}

    def finished(self, group: str, key: str) -> None:
        """A condition of ``group`` ended with a result, and the driver has it (it was sent before this call)."""
        self._done.setdefault(group, set()).add(key)


# --- what touches Ray, Docker and the node's files -------------------------------------------------------------


def node_facts(caps=None) -> dict[str, Any]:
    """This node as results name it: Ray node id, hostname, target, platform (with its L4T release) and kind
    (jetson / cuda / cpu), from the host preflight's facts (``caps``: already read, else read now)."""
    import ray

    from ..host import preflight
    from ..host.platforms import l4t_release_line

    caps = caps or preflight.probe("docker")
    # an unknown L4T release: the report says so, preflight decides
    platform = caps.platform if caps.platform != "unknown" else f"unknown ({caps.platform_how})"
    return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
            "target": os.environ.get(TARGET_ENV), "platform": platform, "kind": caps.kind,
            "l4t": l4t_release_line(), "pid": os.getpid()}


def node_report(models_dir: str | None = None) -> dict[str, Any]:
    """What preflight needs from this node: facts, the backend images it has (by the backend table's tags for
    its platform, with ids), its models (by folder, with content hashes), which samplers work here and why a CUDA
    group could not run here (``cuda``: the host preflight's sentence, None when it can)."""
    from .. import backends
    from ..content import HashCache
    from ..host import preflight
    from ..launch.checked_images import passed
    from ..launch.docker_engine import connect, image_info
    from ..models.resolve import default_models_dir, is_model_dir

    caps = preflight.probe("docker")
    facts = node_facts(caps)
    report: dict[str, Any] = {**facts, "images": {}, "models": {}, "samplers": preflight.sampler_probes(),
                              "cuda": preflight.device_problem("cuda", caps, "exclude device cuda for this target"),
                              "problems": []}
    try:
        client = connect()
        report["docker_engine"] = client.version().get("Version")
        refs = set()
        for be in backends.BACKENDS.values():
            for device in be.devices:
                try:
                    refs.add(be.default_image(device=device))
                except Exception:
                    continue
        for ref in sorted(refs):
            try:
                info = image_info(client, ref)
                report["images"][ref] = {"id": info.id, "tags": info.tags, "labels": info.labels,
                                         "checked": passed(info.id)}  # check-image, here
            except Exception:
                continue
    except Exception as exc:
        report["problems"].append(f"Docker Engine: {exc}")
    folder = Path(models_dir) if models_dir else default_models_dir()
    report["models_dir"] = str(folder)
    hashes = HashCache()
    if folder.is_dir():
        # a dot-folder is a download in progress (runner/models/hub.py), never a model
        for sub in sorted(p for p in folder.iterdir()
                          if p.is_dir() and not p.name.startswith(".") and is_model_dir(p)):
            report["models"][sub.name] = hashes.folder(sub)
    hashes.save()
    return report


def install_missing(commands: list[list[str]]) -> list[str]:
    """--build-missing on this node: run each `edgeasr` command (images build --missing, models install) here,
    in the node's project folder; one line per command with how it ended."""
    import subprocess
    import sys

    lines = []
    for cmd in commands:
        done = subprocess.run([sys.executable, "-m", "runner.cli", *cmd], capture_output=True, text=True)
        tail = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or [""])[-1]
        lines.append(f"{socket.gethostname()}: edgeasr {' '.join(cmd)}: "
                     f"{'done' if done.returncode == 0 else f'failed ({done.returncode}): {tail}'}")
    return lines


def remove_containers(sweep_id: str) -> list[str]:
    """Remove every container of this sweep on this node's engine (Ctrl-C of the driver, the sweep's end)."""
    from ..execute import SWEEP_LABEL
    from ..launch.docker_engine import connect

    removed = []
    client = connect()
    for c in client.containers.list(all=True, filters={"label": f"{SWEEP_LABEL}={sweep_id}"}):
        try:
            c.remove(force=True)
            removed.append(f"{socket.gethostname()}: removed container {c.name} of sweep {sweep_id}")
        except Exception:
            continue
    return removed


def fetch_shipment(shipment: Shipment, cache: BlobCache, work: Path, group_key: str
                   ) -> tuple[dict[str, Path], Path | None]:
    """The group's audio by utterance id and its noise folder, from the cache, fetching only missing hashes."""
    import ray

    def fetcher(sha: str) -> Callable[[], bytes]:
        return lambda: ray.get(shipment.refs[sha])

    audio = {uid: cache.ensure(sha, suffix, fetcher(sha)) for uid, (sha, suffix) in shipment.audio.items()}
    noise_dir = None
    if shipment.noise:
        noise_dir = work / "noise" / group_key
        for rel, (sha, suffix) in shipment.noise.items():
            src = cache.ensure(sha, suffix, fetcher(sha))
            dst = noise_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not dst.exists():
                os.link(src, dst)
    return audio, noise_dir


def run_group(job: GroupJob, pending_keys: list[str], shipment: Shipment, ctx: Context, progress=None,
              ledger=None) -> dict[str, Any]:
    """The Ray task's body: one group on this node's engine and sampler; returns its files and facts.

    ``progress``: a ray.util.queue.Queue the driver reads (group start with this node named, each condition's
    end), or None. ``ledger``: the head's ``Ledger`` actor, or None: when Ray retries this group after its
    node was lost, the conditions that node finished are skipped and the attempts are recorded in each
    summary's ``fleet.attempts`` (the lost nodes, then this one)."""
    import ray

    from ..errors import UserError
    from ..execute import SWEEP_LABEL, Callbacks, execute_group
    from ..host.info import host_facts
    from ..launch.engines import make_engine
    from ..models.resolve import default_models_dir

    t_start = time.time()
    facts = node_facts()
    before = {"raylet": proc_usage(os.getppid()), "worker": proc_usage(os.getpid())}

    def tell(kind: str, **data: Any) -> bool:
        """Send one progress message; False when it could not be sent."""
        if progress is None:
            return False
        try:
            progress.put_nowait({"kind": kind, "group": job.key, "target": ctx.target,
                                 "node_id": facts["node_id"], "hostname": facts["hostname"],
                                 "t": time.time(), **data})
            return True
        except Exception:
            return False  # progress is a view; a full or gone queue must not fail the group

    me = {"node_id": facts["node_id"], "hostname": facts["hostname"]}
    seen: dict[str, Any] = {"attempts": [me], "done": []}
    if ledger is not None:
        try:
            seen = ray.get(ledger.start.remote(job.key, me))
        except Exception as exc:  # the head's ledger is gone: run every pending condition, as a first attempt
            tell("note", text=f"no record of earlier attempts ({exc.__class__.__name__}); running the whole group")
    attempts = seen["attempts"]
    tell("start", attempts=attempts)
    work = work_root() / "sweeps" / ctx.sweep_id
    cache = BlobCache(work_root() / "blobs")
    audio, noise_dir = fetch_shipment(shipment, cache, work, job.key)
    model_dir = None
    if shipment.model_rel is not None:
        model_dir = default_models_dir() / shipment.model_rel
        if not model_dir.is_dir():
            raise UserError(f"{facts['hostname']}: model {shipment.model_rel} is not installed in "
                            f"{default_models_dir()} (edgeasr models install on that node)")
    image = job.spec.image  # the driver chose this target's variant (preflight.FleetImages)
    local = localize(job, audio, noise_dir, model_dir, work, image)
    engine = make_engine("docker")
    for line in engine.reap(()):  # containers of earlier groups whose worker died (a lost node's, restarted)
        tell("note", text=line)
    pending = [c for c in local.conditions if c.key in set(pending_keys) - set(seen["done"])]
    first_event: list[float] = []

    def on_event(_event: dict) -> None:
        if not first_event:
            first_event.append(time.time())

    early = {"target": ctx.target, "node_id": facts["node_id"], "hostname": facts["hostname"],
             "platform": facts["platform"], "kind": facts["kind"], "l4t": facts["l4t"], "image": image,
             **({"attempts": attempts} if len(attempts) > 1 else {})}

    def done(cond: PlannedCondition, summary: dict) -> None:
        """Each condition travels back as it ends, so a node lost later in the group does not lose it."""
        files = files_of(cond.result_dir, ("utterances.jsonl", "summary.json"))
        if "summary.json" in files:
            files["summary.json"] = json.dumps(restore_identity(summary, ctx, early), indent=2).encode()
        sent = tell("done", key=cond.key, status=summary.get("status"), files=files)
        if sent and ledger is not None and summary.get("status") in RESULT_STATUSES:
            try:  # only what the driver has: a retry skips it
                ray.get(ledger.finished.remote(job.key, cond.key))
            except Exception:
                pass  # a retry would run it again: more work, nothing lost

    interrupted = False
    if pending:
        host = host_facts(engine.version())
        result = execute_group(local, pending, engine, host=host, owner_folder=work,
                               labels={SWEEP_LABEL: ctx.sweep_id, "org.edgeasr.target": ctx.target},
                               callbacks=Callbacks(on_event=on_event, on_condition_done=done))
        interrupted = result.interrupted is not None
    t_end = time.time()
    after = {"raylet": proc_usage(os.getppid()), "worker": proc_usage(os.getpid())}
    fleet = {**early, "agent": agent_usage(before, after, t_end - t_start),
             "cache": {"fetched": cache.fetched, "cached": cache.cached}}
    conditions: dict[str, dict[str, bytes]] = {}
    for cond in pending:
        files = files_of(cond.result_dir, ("utterances.jsonl", "summary.json"))
        if "summary.json" in files:
            summary = restore_identity(json.loads(files["summary.json"]), ctx, fleet)
            files["summary.json"] = json.dumps(summary, indent=2).encode()
        conditions[cond.key] = files
    group_files = files_of(local.group_dir, group_file_names())
    statuses = {k: json.loads(v["summary.json"]).get("status") if "summary.json" in v else None
                for k, v in conditions.items()}
    for cond in pending:
        shutil.rmtree(cond.result_dir, ignore_errors=True)
    from ..trust.safe_io import remove

    remove(local.group_dir)  # its raw/ holds what the image left: removed without following it
    return {"fleet": fleet, "conditions": conditions, "group_files": group_files, "statuses": statuses,
            "interrupted": interrupted,
            "timing": {"task_start": t_start, "container_first_event": first_event[0] if first_event else None,
                       "task_end": t_end}}
