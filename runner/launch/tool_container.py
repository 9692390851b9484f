"""Run a one-off tool inside a backend image (tiny-model build, ONNX export, the doctor's GPU probe), confined like
every backend container.

The host has no torch, so these steps run in the backend's image. They get the same
hardening as runs (launch/hardening.py), read-only inputs, and a fresh staging folder
as their only writable mount (never the whole models folder); the caller moves the
finished result into place, so a failed tool leaves nothing half-written behind. The container is removed
however the tool ends, an interruption included (docker_engine.removed_on_exit).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from docker.errors import APIError, ContainerError, ImageNotFound
from docker.types import DeviceRequest

from ..errors import UserError
from ..host.platforms import is_jetson
from .docker_engine import MANAGED_LABEL, connect, removed_on_exit
from .hardening import CACHE_ENV, Hardening, chown_for_container, reclaim
from .owner import Owner

STAGING_TARGET = "/out"


def run_tool(image: str, entrypoint: list[str], *, inputs: dict[Path, str], staging_parent: Path, what: str,
             image_hint: str) -> Path:
    """Run ``entrypoint`` in ``image`` with ``inputs`` (host path -> container path, read-only) and a new staging
    folder under ``staging_parent`` at /out; returns the staging folder (the caller moves what it needs and
    removes it). A failure is a UserError naming ``what``."""
    staging = Path(tempfile.mkdtemp(prefix=".staging.", dir=staging_parent))
    try:
        chown_for_container(staging)
        volumes = {str(src): {"bind": dst, "mode": "ro"} for src, dst in inputs.items()}
        volumes[str(staging)] = {"bind": STAGING_TARGET, "mode": "rw"}
        client = connect()
        # docker-py's containers.run(remove=True) removes the container only after it exits: an interruption
        # (Ctrl-C, SIGTERM) while it ran left it running. removed_on_exit removes it on every exit.
        with removed_on_exit(client) as create:
            container = create(image=image, entrypoint=entrypoint, volumes=volumes,
                               labels={MANAGED_LABEL: "1", **Owner.me(staging_parent, "models").labels()},
                               environment={"HF_HUB_OFFLINE": "1", **CACHE_ENV}, **Hardening().engine_kwargs())
            container.start()
            status = container.wait()["StatusCode"]
            if status != 0:
                raise ContainerError(container, status, entrypoint, image, container.logs(stdout=False, stderr=True))
        reclaim(staging)
        return staging
    except ImageNotFound:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"image {image} is not present; {image_hint}") from None
    except (ContainerError, APIError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{what} failed in {image}: {exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


#: The most of a probe's output the host keeps (its last bytes): it is read, never stored.
PROBE_OUTPUT_BYTES = 256 * 1024


def run_probe(image: str, code: str, *, gpu: bool = False, timeout_s: float = 180.0) -> tuple[int | None, str]:
    """Run ``code`` with the image's own Python in a container of ``image`` (no mounts, confined like every backend
    container), with the GPU asked for when ``gpu`` (every GPU through the engine's device request; on a Jetson its
    nvidia runtime, as runs do). Returns (exit code, the last PROBE_OUTPUT_BYTES of its output); None: timed out.
    A UserError when the image is missing or the engine refuses the container (a GPU request it cannot serve)."""
    client = connect()
    try:
        entrypoint = (client.images.get(image).attrs.get("Config") or {}).get("Entrypoint") or []
    except ImageNotFound:
        raise UserError(f"image {image} is not present") from None
    python = entrypoint[0] if entrypoint and "python" in str(entrypoint[0]) else "python3"
    kwargs = dict(entrypoint=[python, "-c", code], environment={"HF_HUB_OFFLINE": "1", **CACHE_ENV},
                  labels={MANAGED_LABEL: "1", **Owner.me(Path.cwd(), "doctor").labels()}, **Hardening().engine_kwargs())
    if gpu:
        kwargs["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
        if is_jetson():
            kwargs["runtime"] = "nvidia"
    with removed_on_exit(client) as create:
        try:
            container = create(image=image, **kwargs)
            container.start()
        except APIError as exc:
            raise UserError(f"the Docker Engine refused a container of {image}: {exc.explanation}") from None
        try:
            status = container.wait(timeout=timeout_s).get("StatusCode")
        except Exception:  # noqa: BLE001 - the read timed out: the probe hangs; its output still says something
            status = None
        out = container.logs(stdout=True, stderr=True, tail=2000)[-PROBE_OUTPUT_BYTES:]
        return status, out.decode("utf-8", "replace")
