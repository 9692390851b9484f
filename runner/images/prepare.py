"""Before a sweep: build the backend images and install the models the experiment needs, where missing.

So that `docker compose up sweep` works from a fresh clone (and `edgeasr sweep` on a fresh machine): the
runner sees which images and PyPI-shipped models the experiment's groups use, and makes only the missing
ones, with progress, through the same code as `edgeasr images build --missing` (runner/images/make.py) and
`edgeasr models install`.
An image the experiment names itself (``image:``) is never built: only the backend table's own images are.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, ContextManager

from ..backends import BACKENDS, image_platform
from ..errors import UserError
from ..models.resolve import PACKAGED, ensure_converted, install_model, is_model_dir

HF_SUFFIX = "-hf"  # <name>-hf: the Hugging Face conversion of a packaged model (models install converts it)


def missing_models(groups, models_dir: Path) -> list[tuple[str, bool]]:
    """(packaged name, needs the Hugging Face conversion) for every model the groups use that is not
    installed and that `models install` can install; other model references are left to the plan."""
    out: list[tuple[str, bool]] = []
    for g in groups:
        name = str(g.model)
        base, hf = (name[:-len(HF_SUFFIX)], True) if name.endswith(HF_SUFFIX) else (name, False)
        if base not in PACKAGED:
            continue
        if not is_model_dir(models_dir / name) and (base, hf) not in out:
            out.append((base, hf))
    return out


def backends_needing_images(groups) -> list[tuple[str, str]]:
    """(backend, device) of the groups that run the backend's own image (no ``image:`` of their own)."""
    out: list[tuple[str, str]] = []
    for g in groups:
        if g.image is None and g.backend in BACKENDS and (g.backend, g.device) not in out:
            out.append((g.backend, g.device))
    return out


def prepare(exp, models_dir: Path, *, engine: str, log: Callable[[str], None],
            status: Callable[[str], ContextManager] = lambda _text: contextlib.nullcontext()) -> None:
    """Install missing models; with the docker engine, build missing images (BASE_IMAGE: the base to build
    FROM, as `make images` takes it; default the public base, else the local debootstrapped one). ``log``:
    one line per step; ``status``: wraps each build (a spinner)."""
    done: set[str] = set()
    for name, hf in missing_models(exp.groups, models_dir):
        if name not in done and not is_model_dir(models_dir / name):
            log(f"installing model {name} (the experiment uses it; not in {models_dir})")
            install_model(name, models_dir, log=log)
            done.add(name)
        if hf:
            ensure_converted(name, models_dir, log=log)
    if engine != "docker":
        return
    from ..launch.docker_engine import connect
    from .build import PUBLIC_BASE
    from .make import BuildRequest, build_images

    base = os.environ.get("BASE_IMAGE") or PUBLIC_BASE
    client = None
    for backend, device in backends_needing_images(exp.groups):
        request = BuildRequest(names=(backend,), platform=image_platform("auto", device if device != "auto" else None),
                               base=base, missing=True, log_dir=Path("build"))
        try:
            client = client or connect()
            build_images(client, request, log=log, status=status)
        except UserError as exc:
            raise UserError(f"the experiment needs the {backend} image, and building it failed: {exc}") from None
