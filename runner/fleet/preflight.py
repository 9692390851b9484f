"""Preflight: before anything runs, every target has a live node and every group can run there.

Pure functions over the nodes' reports (runner/fleet/node.py ``node_report``) and the plan: an unknown target
fails at once (a Ray task for a resource no node has would wait forever); then each target's groups are
checked against each of its nodes (the image for that node's platform, the model with the same content, a
CUDA run on a node without a GPU, a sampler asked for by name that does not work there) and every problem is
one row of one table. ``FleetImages`` is the planner's image source: the condition keys take the image id a
target's nodes have, not the driver's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeasr_entrypoint.contract import CONTRACT_VERSION

from .. import backends
from ..errors import UserError
from ..launch.checked_images import contract_problem
from ..launch.docker_engine import ImageInfo
from ..plan import GroupJob

MISSING_IMAGE_ID = "missing"


@dataclass(frozen=True)
class Node:
    """A live Ray node that serves a target (from ``ray.nodes()``)."""

    node_id: str
    address: str
    targets: tuple[str, ...]


def live_nodes(ray_nodes: list[dict[str, Any]], known: set[str] | None = None) -> list[Node]:
    """The alive nodes and the targets each advertises (custom resources, Ray's own left out)."""
    from . import target_problem

    out = []
    for n in ray_nodes:
        if not n.get("Alive"):
            continue
        targets = tuple(sorted(r for r in (n.get("Resources") or {})
                               if target_problem(r) is None and not r.startswith("node:")
                               and (known is None or r in known)))
        out.append(Node(n.get("NodeID", ""), n.get("NodeManagerAddress", ""), targets))
    return out


def unknown_targets(targets: list[str], nodes: list[Node]) -> str | None:
    """A sentence naming the targets no live node serves, and the ones that exist (None: all served)."""
    served = {t for n in nodes for t in n.targets}
    missing = sorted(set(targets) - served)
    if not missing:
        return None
    have = ", ".join(sorted(served)) or "none (no node advertises a target)"
    return (f"no live node serves target(s) {', '.join(missing)}; the cluster's targets: {have}. Start a node "
            f"for it (EDGEASR_TARGET=<target> docker compose --profile fleet up -d node) or fix the experiment")


def platform_ref(backend: str, device: str, image: str, platform: str, driver_default: str) -> str:
    """The image a target's node runs: the one named, or, where the plan took the backend's default for the
    driver's platform, the same backend's default for the node's platform (a Jetson's jetson-r36 tag)."""
    if image != driver_default:
        return image
    be = backends.BACKENDS[backend]
    try:
        return be.default_image(platform=platform, device=device)
    except Exception:
        return image


@dataclass(frozen=True)
class Need:
    """Something a node lacks that ``--build-missing`` can make there: an image (``what`` = backend, ``device``)
    or an installable model (``what`` = its name in the models folder)."""

    target: str
    node_id: str
    hostname: str
    kind: str  # image | model
    what: str
    device: str | None = None


def install_commands(needs: list[Need]) -> list[list[str]]:
    """The `edgeasr` commands (argument lists) that make one node's needs: each image built if missing, each
    installable model installed (a converted ``NAME-hf`` folder by installing NAME, which converts it)."""
    from ..models.resolve import PACKAGED

    out: list[list[str]] = []
    for n in needs:
        if n.kind == "image":
            cmd = ["images", "build", n.what, "--missing", *(["--device", n.device] if n.device else [])]
        else:
            hf = n.what.endswith("-hf")
            name = n.what[:-3] if hf else n.what
            if name not in PACKAGED:
                continue  # not installable by name: preflight's row says to install it by hand
            cmd = ["models", "install", name, *([] if hf else ["--no-convert"])]
        if cmd not in out:
            out.append(cmd)
    return out


@dataclass
class FleetImages:
    """An engine-shaped image source for the planner (``name``, ``image(spec)``): the image id of the target's
    nodes. A node without it, or nodes that disagree, are recorded as problems (the table shows them) and the
    planner goes on with a placeholder, so that every problem is found in one pass."""

    reports: dict[str, list[dict[str, Any]]]  # target -> its nodes' reports
    name: str = "docker"
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (target, node, problem)
    needs: list[Need] = field(default_factory=list)  # what --build-missing can build
    refs: dict[tuple[str, str], str] = field(default_factory=dict)  # (target, driver ref) -> the target's ref

    def image(self, spec) -> ImageInfo:
        target = spec.settings.target
        be = backends.BACKENDS[spec.backend.name]
        driver_default = be.default_image(device=spec.device)
        ids: dict[str, list[str]] = {}
        info = None
        for report in self.reports.get(target, []):
            ref = platform_ref(spec.backend.name, spec.device, spec.image, report.get("platform", "x86"),
                               driver_default)
            self.refs[(target, spec.image)] = ref
            have = (report.get("images") or {}).get(ref)
            if have is None:
                self._add(target, report.get("hostname", "?"),
                          f"image {ref} missing (on that node: edgeasr images build {spec.backend.name}; or "
                          f"--build-missing)")
                need = Need(target, report.get("node_id", ""), report.get("hostname", "?"), "image",
                            spec.backend.name, spec.device)
                if need not in self.needs:
                    self.needs.append(need)
                continue
            ids.setdefault(have["id"], []).append(report.get("hostname", "?"))
            info = ImageInfo(have["id"], list(have.get("tags") or []), dict(have.get("labels") or {}))
            unsure = contract_problem(ref, info.id, info.labels, CONTRACT_VERSION, checked=bool(have.get("checked")))
            if unsure:
                self._add(target, report.get("hostname", "?"), unsure)
        if len(ids) > 1:
            builds = "; ".join(f"{i[:19]} on {', '.join(h)}" for i, h in ids.items())
            self._add(target, "*", f"its nodes have different builds of {spec.image} ({builds}); build the same "
                                   f"image on each, or give each build its own target")
        return info or ImageInfo(MISSING_IMAGE_ID, [], {})

    def _add(self, target: str, node: str, problem: str) -> None:
        row = (target, node, problem)
        if row not in self.problems:
            self.problems.append(row)


def model_rel(job: GroupJob, models_dir: Path) -> tuple[str | None, str | None]:
    """(the model folder relative to the models folder, a problem): nodes hold models by name, in their own
    models folder; a hub name has no folder (None, None)."""
    host_dir = job.spec.model.host_dir
    if host_dir is None:
        return None, None
    try:
        return Path(host_dir).resolve().relative_to(Path(models_dir).resolve()).as_posix(), None
    except ValueError:
        return None, (f"model folder {host_dir} is outside the models folder {models_dir}; nodes find models by "
                      f"name in their own models folder: install it there under a name")


def check_plan(planned: list[GroupJob], reports: dict[str, list[dict[str, Any]]], models_dir: Path,
               needs: list[Need] | None = None) -> list[tuple[str, str, str]]:
    """Every (target, node, problem) of the plan against the nodes' reports: the model (present, same
    content), CUDA on a node without a GPU, a sampler named that does not work there, a Docker Engine the node
    cannot reach."""
    rows: list[tuple[str, str, str]] = []

    def add(target: str, node: str, problem: str) -> None:
        if (target, node, problem) not in rows:
            rows.append((target, node, problem))

    for target, nodes in reports.items():
        for report in nodes:
            for problem in report.get("problems") or []:
                add(target, report.get("hostname", "?"), problem)
    for job in planned:
        target = job.spec.settings.target
        rel, problem = model_rel(job, models_dir)
        if problem:
            add(target, "*", problem)
        want_sha = (job.conditions[0].inputs.get("model_sha256") if job.conditions else None)
        sampler = job.spec.telemetry.sampler
        for report in reports.get(target, []):
            host = report.get("hostname", "?")
            if rel is not None:
                have = (report.get("models") or {}).get(rel)
                if have is None:
                    add(target, host, f"model {rel} missing in {report.get('models_dir')} "
                                      f"(on that node: edgeasr models install {rel}; or --build-missing)")
                    need = Need(target, report.get("node_id", ""), host, "model", rel)
                    if needs is not None and need not in needs:
                        needs.append(need)
                elif want_sha and have != want_sha:
                    add(target, host, f"model {rel} differs from the driver's (sha256 {have[:12]} vs "
                                      f"{want_sha[:12]}); install the same files")
            if job.spec.device == "cuda" and (report.get("cuda") or report.get("kind") == "cpu"):
                # the node's own host preflight says why (an older node: only its kind)
                add(target, host, f"{job.label}: " + (report.get("cuda") or
                                                      f"device cuda on a node without an NVIDIA GPU "
                                                      f"({report.get('platform')}); exclude it for this target"))
            if sampler not in ("auto", "none"):
                reason = (report.get("samplers") or {}).get(sampler, "not reported")
                if reason is not None:
                    add(target, host, f"telemetry.sampler {sampler} does not work there: {reason}")
    return rows


def summary_rows(planned: list[GroupJob], reports: dict[str, list[dict[str, Any]]],
                 problems: list[tuple[str, str, str]]) -> list[list[str]]:
    """One row per (target, node): what it is, what it will run, and its problems (or ok)."""
    rows = []
    for target in sorted(reports):
        jobs = [j for j in planned if j.spec.settings.target == target]
        n_cond = sum(len(j.conditions) for j in jobs)
        for report in reports[target]:
            host = report.get("hostname", "?")
            mine = [p for t, n, p in problems if t == target and n in (host, "*")]
            working = [name for name, reason in (report.get("samplers") or {}).items()
                       if reason is None and name != "none"]
            rows.append([target, f"{host} ({str(report.get('node_id', ''))[:8]})",
                         str(report.get("platform")), f"{len(jobs)} / {n_cond}",
                         ", ".join(working) or "none", "; ".join(mine) or "ok"])
    return rows


def fail_if_problems(problems: list[tuple[str, str, str]]) -> None:
    if problems:
        raise UserError(f"fleet preflight: {len(problems)} problem(s); nothing was started:",
                        problems=[f"{t} on {n}: {p}" if n != "*" else f"{t}: {p}" for t, n, p in problems])
