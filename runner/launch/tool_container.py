"""Run a one-off tool inside a backend image (tiny-model build, ONNX export), confined like every backend container.

The host has no torch, so these steps run in the backend's image. They get the same
hardening as runs (launch/hardening.py), read-only inputs, and a fresh staging folder
as their only writable mount (never the whole models folder); the caller moves the
finished result into place, so a failed tool leaves nothing half-written behind.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from docker.errors import APIError, ContainerError, ImageNotFound

from ..errors import UserError
from .docker_engine import MANAGED_LABEL, connect
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
        connect().containers.run(
            image, entrypoint=entrypoint, volumes=volumes, remove=True,
            labels={MANAGED_LABEL: "1", **Owner.me(staging_parent, "models").labels()},
            environment={"HF_HUB_OFFLINE": "1", **CACHE_ENV}, **Hardening().engine_kwargs())
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
