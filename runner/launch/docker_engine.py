"""Run one backend container through the Docker Engine API (docker-py), and always clean it up.

The container gets the audio and the model read-only, an output folder read-write,
and the confinement of launch/hardening.py (no network unless a hub download was
allowed, no capabilities, read-only root, never uid 0). It is labelled with its owner
(launch/owner.py) so that only containers whose owner died are ever reaped. Its output is attached before it
starts and streamed: contract events drive live progress, and the log is kept (its start and its end,
launch/event_lines.py) in a file the runner opened before the container started, in a folder the container
cannot write. The engine itself keeps no log of it (log driver ``none``): the engine's own files would
fill the host's disk with what an image prints, and its rotation dropped the end of a long log while it
was followed. What the container leaves is bounded while it runs (launch/bounds.py). On any exit —
success, error, timeout, a bound passed, Ctrl-C, SIGTERM — the container is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest, LogConfig, Mount

from ..errors import UserError
from ..host.platforms import is_jetson, stand_in_cpuinfo
from ..trust.safe_io import create_log
from ..settings import LimitsSettings, limit_name
from .bounds import OutputWatch, Stop
from .event_lines import EVENT_PREFIX, HeadTailLog, stream_to_log  # noqa: F401  (EVENT_PREFIX: re-exported)
from .hardening import Hardening
from .owner import Owner, is_orphan

MANAGED_LABEL = "org.edgeasr.managed"
#: A value of its own for each ``removed_on_exit`` block: it finds a container the engine created while an
#: interruption cut the create call short (its id never came back).
CALL_LABEL = "org.edgeasr.call"


@dataclass(frozen=True)
class BindMount:
    source: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: list[str]
    labels: dict[str, str]
    #: The CPU architecture the image is built for (the engine's `Architecture`: amd64, arm64); None unknown.
    architecture: str | None = None


@dataclass(frozen=True)
class ContainerRun:
    """How the container ended, as the engine reports it."""

    exit_code: int | None
    oom_killed: bool
    timed_out: bool
    log_path: Path
    create_to_start_s: float  # engine overhead: create + start, measured on the host
    wall_s: float  # create to exit, measured on the host
    started_ns: int  # host wall clock when start() returned
    exited_ns: int  # host wall clock when wait() returned
    container_id: str | None = None  # marks its processes on the host (their cgroup), for GPU memory
    session_id: int | None = None  # the local engine's process session, likewise
    limit_exceeded: str | None = None  # the bound it passed (launch/bounds.py): it was stopped for this


def connect() -> docker.DockerClient:
    """A client that has answered a ping, or a UserError saying why not."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except DockerException as exc:
        raise UserError(unreachable_engine(exc)) from None


def unreachable_engine(exc: Exception) -> str:
    """One sentence: where the engine was looked for (DOCKER_HOST's value, or the default) and why it did not
    answer."""
    host = os.environ.get("DOCKER_HOST")
    url = host or "unix:///var/run/docker.sock"
    where = f"DOCKER_HOST={host}" if host else f"{url} (the default; DOCKER_HOST is not set)"
    sock = Path(urlparse(url).path) if url.startswith("unix://") else None
    if sock is not None and not sock.exists():
        why = "no socket there"
    elif sock is not None and not os.access(sock, os.R_OK | os.W_OK):
        why = "this user may not use its socket"
    else:
        why = f"it did not answer ({exc.__class__.__name__})"
    return f"cannot reach the Docker Engine at {where}: {why}; start the daemon, or point DOCKER_HOST at one that runs"


def engine_info(client: docker.DockerClient | None = None) -> dict[str, Any]:
    """The engine's ``docker info`` (ServerVersion, Runtimes, DefaultRuntime, CDISpecDirs, ...): what the host
    preflight reads its GPU runtimes from. A UserError when the engine cannot be reached."""
    client = client or connect()
    try:
        return dict(client.info())
    except (APIError, DockerException) as exc:
        raise UserError(f"the Docker Engine did not answer `docker info` ({exc.__class__.__name__})") from None


def image_info(client: docker.DockerClient, ref: str, hint: str = "build it with `edgeasr images build` (`make images` in a checkout)") -> ImageInfo:
    try:
        image = client.images.get(ref)
    except ImageNotFound:
        raise UserError(f"image {ref} is not present in the Docker Engine; {hint}") from None
    except APIError as exc:
        raise UserError(f"cannot inspect image {ref}: {exc.explanation}") from None
    return ImageInfo(id=image.id, tags=list(image.tags), labels=dict(image.labels or {}),
                     architecture=(image.attrs or {}).get("Architecture"))


def open_log(log_path: Path, limits: LimitsSettings) -> HeadTailLog:
    """The container's log, opened (never through a link) before it starts, keeping its start and its end."""
    return HeadTailLog(create_log(log_path), limits.log_head_bytes, limits.log_tail_bytes,
                       note=f"{limit_name('log_head_mib')}; {limit_name('log_tail_mib')}")


def watch_output(stream, log: HeadTailLog, on_event: Callable[[dict[str, Any]], None], limits: LimitsSettings,
                 stop: Stop, watch_dir: Path | None, wait: Callable[[], Any]) -> Any:
    """Stream the output into the log and the events while the output folder is watched; ``wait()`` for the
    end; measure the folder once more (a burst between two polls). Returns what ``wait`` returned."""
    watch = OutputWatch(watch_dir, limits.output_bytes, limit_name("output_mib"), stop) if watch_dir else None
    with watch or contextlib.nullcontext():
        stream_to_log(stream, log, on_event, limits.event_line_bytes,
                      lambda reason: stop(f"{reason} ({limit_name('event_line_mib')})"))
        result = wait()
    if watch is not None:
        watch.check()
    return result


@contextlib.contextmanager
def removed_on_exit(client: docker.DockerClient) -> Iterator[Callable[..., Any]]:
    """Create containers with the function this yields (docker-py's ``containers.create`` arguments); every one
    is removed, forced, when the block ends, however it ends: done, an error, Ctrl-C or SIGTERM (which the CLI
    turns into an interruption), so that a command never says its containers were removed while one still runs.
    Each carries CALL_LABEL with this block's own value: one the engine made while an interruption cut
    ``create`` short is found by it and removed too."""
    call = uuid.uuid4().hex
    made: list[Any] = []
    creating = False

    def create(**kwargs: Any) -> Any:
        nonlocal creating
        kwargs["labels"] = {**(kwargs.get("labels") or {}), CALL_LABEL: call}
        creating = True
        container = client.containers.create(**kwargs)
        made.append(container)
        creating = False
        return container

    try:
        yield create
    finally:
        if creating:  # cut short: the engine may hold a container this call never heard of
            with contextlib.suppress(APIError, DockerException):
                known = {c.id for c in made}
                made += [c for c in client.containers.list(all=True, filters={"label": f"{CALL_LABEL}={call}"})
                         if c.id not in known]
        for container in made:
            with contextlib.suppress(APIError, NotFound):
                container.remove(force=True)


@dataclass
class StartedContainer:
    """A container created, attached and started, not yet waited for (run_container's first half): a held start
    (contract 5) waits like this, booting, while the host finishes the previous container. ``finish_container``
    or ``discard_container`` ends it; nothing else does."""

    container: Any
    stream: Any  # its output, attached before it started
    log: HeadTailLog
    t_create: float  # perf_counter before the create
    create_to_start_s: float
    started_ns: int
    stop: Stop
    timed_out: threading.Event
    watchdog: threading.Timer | None
    log_path: Path
    removal: contextlib.ExitStack  # its removed_on_exit block, closed (the container removed) when it ends

    @property
    def id(self) -> str:
        return self.container.id


def _stand_in_cpuinfo(client: docker.DockerClient, image: str) -> Path | None:
    """The file of a FAKE /proc/cpuinfo (platforms.stand_in_cpuinfo) for ``image`` where it runs emulated as arm64,
    else None (native, or an image the engine does not hold: its create says so). Written once per process, in a
    folder of its own, readable by the container's user."""
    try:
        arch = client.images.get(image).attrs.get("Architecture")
    except (DockerException, AttributeError):
        return None
    text = stand_in_cpuinfo(arch)
    if text is None:
        return None
    if text not in _CPUINFO_FILES:
        folder = Path(tempfile.mkdtemp(prefix="edgeasr-cpuinfo-"))
        folder.chmod(0o755)
        path = folder / "cpuinfo"
        path.write_text(text)
        path.chmod(0o444)
        _CPUINFO_FILES[text] = path
    return _CPUINFO_FILES[text]


_CPUINFO_FILES: dict[str, Path] = {}


def start_container(
    client: docker.DockerClient,
    image: str,
    *,
    mounts: list[BindMount],
    env: dict[str, str],
    log_path: Path,
    device: str = "cpu",
    hardening: Hardening = Hardening(),
    owner: Owner | None = None,
    timeout_s: float | None = None,
    name: str | None = None,
    labels: dict[str, str] | None = None,
    gpus: Sequence[str] | None = None,
    limits: LimitsSettings | None = None,
) -> StartedContainer:
    """Create, attach and start (the timeout's watchdog runs from here); a failure removes what was made."""
    limits = limits or LimitsSettings()
    kwargs: dict[str, Any] = dict(
        image=image,
        mounts=[Mount(target=m.target, source=str(m.source), type="bind", read_only=m.read_only) for m in mounts],
        environment=env,
        labels={MANAGED_LABEL: "1", **(owner.labels() if owner else {}), **(labels or {})},
        detach=True,
        name=name,
        log_config=LogConfig(type=LogConfig.types.NONE),  # the runner keeps the log (see the module's docstring)
        **hardening.engine_kwargs(),
    )
    cpuinfo = _stand_in_cpuinfo(client, image)
    if cpuinfo is not None:  # an arm64 image under qemu-user: the host's x86 one crashes ARM CPU detection
        kwargs["mounts"].append(Mount(target="/proc/cpuinfo", source=str(cpuinfo), type="bind", read_only=True))
    if device == "cuda":
        # Exactly the run's GPUs (what NVML measures), not "all"; None only on Jetson (one iGPU).
        kwargs["device_requests"] = [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]]) if gpus
                                     else DeviceRequest(count=-1, capabilities=[["gpu"]])]
        if is_jetson():
            # Jetson: the NVIDIA toolkit serves a GPU request only when its runtime runs the container
            # (containers/PLATFORMS.md).
            kwargs["runtime"] = "nvidia"
    t_create = time.perf_counter()
    log = open_log(log_path, limits)
    removal = contextlib.ExitStack()  # outlives this call: finish_container or discard_container closes it
    try:
        create = removal.enter_context(removed_on_exit(client))
        try:
            container = create(**kwargs)
            # Attached before it starts, so that nothing it prints is missed.
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=False)
            container.start()
        except ImageNotFound:
            raise UserError(f"image {image} is not present in the Docker Engine; build it with `edgeasr images "
                            f"build` (`make images` in a checkout)") from None
        except APIError as exc:
            raise UserError(f"the Docker Engine refused to start {image}: {exc.explanation}") from None
        started = time.perf_counter() - t_create
        started_ns = time.time_ns()
    except BaseException:
        log.close()
        removal.close()
        raise

    def _kill() -> None:
        try:
            container.kill()
        except (APIError, NotFound):
            pass

    timed_out = threading.Event()
    watchdog = None
    if timeout_s:
        def _expire() -> None:
            timed_out.set()
            _kill()
        watchdog = threading.Timer(timeout_s, _expire)
        watchdog.daemon = True
        watchdog.start()
    return StartedContainer(container, stream, log, t_create, started, started_ns, Stop(_kill), timed_out, watchdog,
                            log_path, removal)


def finish_container(
    run: StartedContainer,
    *,
    on_event: Callable[[dict[str, Any]], None] = lambda e: None,
    on_started: Callable[[str], None] | None = None,
    limits: LimitsSettings | None = None,
    watch_dir: Path | None = None,
) -> ContainerRun:
    """Stream and wait for a started container (``on_started`` first, with its id); it is removed however this
    ends."""
    limits = limits or LimitsSettings()
    container = run.container
    try:
        if on_started is not None:
            on_started(container.id)
        try:
            result = watch_output(run.stream, run.log, on_event, limits, run.stop, watch_dir, container.wait)
            exited_ns = time.time_ns()
        finally:
            if run.watchdog:
                run.watchdog.cancel()
            run.stop.join(timeout=30)
        container.reload()
        state = container.attrs.get("State", {})
        return ContainerRun(
            exit_code=result.get("StatusCode"),
            oom_killed=bool(state.get("OOMKilled")),
            timed_out=run.timed_out.is_set(),
            log_path=run.log_path,
            create_to_start_s=run.create_to_start_s,
            wall_s=time.perf_counter() - run.t_create,
            started_ns=run.started_ns,
            exited_ns=exited_ns,
            container_id=container.id,
            limit_exceeded=run.stop.reason,
        )
    finally:
        run.log.close()
        run.removal.close()


def discard_container(run: StartedContainer) -> None:
    """A started container that will never be waited for (a held start the sweep no longer needs): killed and
    removed."""
    if run.watchdog:
        run.watchdog.cancel()
    try:
        run.container.kill()
    except (APIError, NotFound):
        pass
    run.log.close()
    run.removal.close()


def run_container(
    client: docker.DockerClient,
    image: str,
    *,
    mounts: list[BindMount],
    env: dict[str, str],
    log_path: Path,
    on_event: Callable[[dict[str, Any]], None] = lambda e: None,
    device: str = "cpu",
    hardening: Hardening = Hardening(),
    owner: Owner | None = None,
    timeout_s: float | None = None,
    name: str | None = None,
    labels: dict[str, str] | None = None,
    gpus: Sequence[str] | None = None,
    on_started: Callable[[str], None] | None = None,
    limits: LimitsSettings | None = None,
    watch_dir: Path | None = None,
) -> ContainerRun:
    """Create, attach, start, stream and wait; the container never outlives this call.

    ``log_path`` must be in a folder the container cannot write; ``watch_dir`` is the output folder it can
    (its size is bounded by ``limits``)."""
    started = start_container(client, image, mounts=mounts, env=env, log_path=log_path, device=device,
                              hardening=hardening, owner=owner, timeout_s=timeout_s, name=name, labels=labels,
                              gpus=gpus, limits=limits)
    return finish_container(started, on_event=on_event, on_started=on_started, limits=limits, watch_dir=watch_dir)


def reap_orphans(client: docker.DockerClient, locked_folders: tuple[str, ...] = ()) -> list[str]:
    """Remove the containers whose owning edgeasr process is gone (kill -9 skips every cleanup).

    Returns one line per removed container, naming it and its dead owner. A container whose owner
    is alive, or whose owner cannot be judged from here, is left alone."""
    removed = []
    for c in client.containers.list(all=True, filters={"label": MANAGED_LABEL}):
        owner = Owner.from_labels(c.labels or {})
        if owner is None or not is_orphan(owner, locked_folders):
            continue
        try:
            c.remove(force=True)
        except (APIError, NotFound):
            continue
        removed.append(f"removed leftover container {c.name} of {owner.describe()}, whose process is gone")
    return removed

