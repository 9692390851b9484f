"""The engines a job runs on, behind one interface: ``run(job, mounts, env, on_event) -> ContainerRun``.

``docker``: the backend image on the Docker Engine, confined (launch/hardening.py), owner-labelled, the job's
folders bind-mounted. ``local``: the same entrypoint as a host process (a machine without Docker), the job
written with host paths. Both stream the same contract events (launch/event_lines.py) and leave the same raw
outputs, so the executor, the merge and the results never ask which engine ran.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from edgeasr_entrypoint.contract import CONTRACT_VERSION, GO_FILE

from ..errors import UserError
from .paths import check_mountable
from ..trust.safe_io import Unsafe, write_new
from ..settings import LimitsSettings
from . import docker_engine, local_engine
from .checked_images import contract_problem
from .docker_engine import BindMount, ContainerRun, ImageInfo
from .hardening import HUB_CACHE_TARGET, chown_for_container, reclaim
from .owner import Owner

ENGINES = ("docker", "local")


CONTAINER_LOG = "container.log"


@dataclass(frozen=True)
class Launch:
    """What one launch needs besides the job: where its raw outputs go and whose it is.

    ``raw_dir`` is the attempt's output folder, made new for it (safe_io.fresh_folder) and the only one the
    container can write; the log is kept beside it (``log_path``), where the container cannot write."""

    raw_dir: Path
    owner: Owner
    labels: dict[str, str] = field(default_factory=dict)
    on_started: Callable[[str], None] | None = None  # the container id (docker) marks its processes
    limits: LimitsSettings | None = None  # None: the defaults

    @property
    def log_path(self) -> Path:
        return self.raw_dir.parent / CONTAINER_LOG


def write_job(raw_dir: Path, job: dict[str, Any]) -> Path:
    """The job file, created in the attempt's new output folder before the container starts (never written
    through a name a container could have made: O_EXCL, O_NOFOLLOW)."""
    write_new(raw_dir, "job.json", (json.dumps(job, indent=2, ensure_ascii=False) + "\n").encode())
    return raw_dir / "job.json"


class Engine(Protocol):
    name: str
    #: True: the job names host paths (the local engine); False: paths as the container sees them.
    host_paths: bool

    def image(self, spec) -> ImageInfo | None:
        """The image the spec runs (None: no image, the local engine); refuses one of another contract."""

    def version(self) -> str | None:
        """The engine's version, for the host facts."""

    def reap(self, folders: tuple[str, ...]) -> list[str]:
        """Remove what earlier runs of these folders left behind; one line per thing removed."""

    def run(self, spec, job: dict[str, Any], mounts: list[BindMount], env: dict[str, str],
            on_event: Callable[[dict[str, Any]], None], launch: Launch) -> ContainerRun:
        """Run the job to its end (success, failure, timeout); nothing it started outlives the call."""

    # Optional (DockerEngine has it; an engine without it starts each container in its turn):
    # start(spec, job, mounts, env, launch) -> Held: the container started ahead, its job a held start
    # (job.hold_s, contract 5), to be told go(), then finish(on_event) -> ContainerRun, or discard()ed.


class Held(Protocol):
    """A container started ahead and held before its load (contract 5): it boots while the host finishes the
    previous one, and loads its model only after ``go()``."""

    container_id: str

    def go(self) -> None:
        """Tell it to load (its GO_FILE); nothing of the host's runs beside it from here."""

    def finish(self, on_event: Callable[[dict[str, Any]], None]) -> ContainerRun:
        """Stream its events and wait for its end; it is removed however that ends."""

    def discard(self) -> None:
        """It will not be needed (the sweep stopped): kill and remove it."""


def say_go(raw_dir: Path) -> None:
    """A held container's go: GO_FILE created in its output folder, never through a name the container made
    there (O_EXCL, O_NOFOLLOW): one it made itself already says go, or it is its own loss."""
    try:
        write_new(raw_dir, GO_FILE, b"")
    except (OSError, Unsafe):  # it exists already (the container's own), or the folder is gone: it will say so
        pass


def check_contract(ref: str, image: ImageInfo, version: int) -> None:
    """Refuse an image of another contract, or one without the label that check-image has not passed here
    (launch/checked_images.py)."""
    problem = contract_problem(ref, image.id, image.labels, version)
    if problem:
        raise UserError(problem)


class DockerEngine:
    name = "docker"
    host_paths = False

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = docker_engine.connect()
        return self._client

    def image(self, spec) -> ImageInfo:
        info = docker_engine.image_info(self.client, spec.image)
        check_contract(spec.image, info, CONTRACT_VERSION)
        return info

    def version(self) -> str | None:
        return self.client.version().get("Version")

    def reap(self, folders: tuple[str, ...]) -> list[str]:
        return docker_engine.reap_orphans(self.client, folders)

    def run(self, spec, job, mounts, env, on_event, launch: Launch) -> ContainerRun:
        """Write the job and run it in the backend container, confined (spec.hardening) and owner-labelled.

        The output folder is handed to the container's unprivileged uid for the run and taken back after,
        so results stay the runner's own."""
        return self.start(spec, job, mounts, env, launch).finish(on_event)

    def start(self, spec, job, mounts, env, launch: Launch) -> "DockerHeld":
        """Write the job and start its container (created, attached, started; not waited for): with a job whose
        hold_s is set it boots and waits for ``go()`` before its load (a sweep's next container, contract 5)."""
        write_job(launch.raw_dir, job)
        mounts = list(mounts)
        for m in mounts:
            check_mountable(m.source, "a mount source")
        if spec.hub_cache_dir is not None:
            spec.hub_cache_dir.mkdir(parents=True, exist_ok=True)
            chown_for_container(spec.hub_cache_dir)
            mounts.append(BindMount(spec.hub_cache_dir, HUB_CACHE_TARGET, False))
        chown_for_container(launch.raw_dir)
        try:
            started = docker_engine.start_container(
                self.client, spec.image, mounts=mounts, env=env, log_path=launch.log_path, device=spec.device,
                hardening=spec.hardening, owner=launch.owner, timeout_s=spec.timeout_s, labels=launch.labels,
                gpus=spec.gpus, limits=launch.limits)
        except BaseException:
            reclaim(launch.raw_dir)
            raise
        return DockerHeld(started, launch)


@dataclass
class DockerHeld:
    """A started backend container (DockerEngine.start): its go, its end, or its discard; the output folder is
    taken back from the container's uid however it ends."""

    started: docker_engine.StartedContainer
    launch: Launch

    @property
    def container_id(self) -> str:
        return self.started.id

    def go(self) -> None:
        say_go(self.launch.raw_dir)

    def finish(self, on_event: Callable[[dict[str, Any]], None]) -> ContainerRun:
        try:
            return docker_engine.finish_container(self.started, on_event=on_event, on_started=self.launch.on_started,
                                                  limits=self.launch.limits, watch_dir=self.launch.raw_dir)
        finally:
            reclaim(self.launch.raw_dir)

    def discard(self) -> None:
        try:
            docker_engine.discard_container(self.started)
        finally:
            reclaim(self.launch.raw_dir)


class LocalEngine:
    """The entrypoint as a host process; mounts are not needed (the job names host paths)."""

    name = "local"
    host_paths = True

    def image(self, spec) -> None:
        local_engine.check_host_backend(spec.backend)
        return None

    def version(self) -> str | None:
        return None

    def reap(self, folders: tuple[str, ...]) -> list[str]:
        return []  # a local run's process group always ends with the run (local_engine._kill_group)

    def run(self, spec, job, mounts, env, on_event, launch: Launch) -> ContainerRun:
        job_path = write_job(launch.raw_dir, job)
        # The run's GPUs, in NVML's (PCI bus) order, as the docker engine would give them.
        gpu_env = {"CUDA_VISIBLE_DEVICES": ",".join(spec.gpus), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"} if spec.gpus else {}
        return local_engine.run_local(spec.backend, job_path, env={**env, **gpu_env}, log_path=launch.log_path,
                                      on_event=on_event, timeout_s=spec.timeout_s, limits=launch.limits)


def make_engine(name: str, client=None) -> Engine:
    if name == "docker":
        return DockerEngine(client)
    if name == "local":
        return LocalEngine()
    raise UserError(f"--engine {name!r} is unknown; choose one of {', '.join(ENGINES)}")
