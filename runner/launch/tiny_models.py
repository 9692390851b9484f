"""Build the tiny random Hugging Face models inside the transformers image (the host has no torch).

The script (containers/transformers/make_tiny_models.py) needs the tiny.en tokenizer,
which `make models` installs; the models land in the models folder as
tiny-whisper-random and tiny-ctc-random.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from docker.errors import APIError, ContainerError, ImageNotFound

from ..errors import UserError
from ..models import is_model_dir, make_readable
from .backends import BACKENDS, CONTAINERS_DIR
from .docker_engine import MANAGED_LABEL, connect
from .hardening import CACHE_ENV, Hardening, chown_for_container, reclaim
from .owner import Owner

NAMES = ("tiny-whisper-random", "tiny-ctc-random")


def make_tiny_models(models_dir: Path, image: str | None = None) -> list[Path]:
    tokenizer = models_dir / "tiny.en" / "tokenizer.json"
    if not tokenizer.is_file():
        raise UserError(f"the tiny models use the tiny.en tokenizer, not found at {tokenizer}; run `make models`")
    folders = [models_dir / n for n in NAMES]
    if all(is_model_dir(f) for f in folders):
        return folders
    image = image or BACKENDS["transformers"].image
    client = connect()
    script = CONTAINERS_DIR / "transformers" / "make_tiny_models.py"
    # The container writes into a staging folder of its own (never the whole models folder), confined like
    # every backend container; the finished models are moved into place by the runner.
    staging = Path(tempfile.mkdtemp(prefix=".tiny-models.", dir=models_dir))
    try:
        chown_for_container(staging)
        client.containers.run(
            image, entrypoint=["/opt/venv/bin/python", "/work/make_tiny_models.py", "/out", "/tok/tokenizer.json"],
            volumes={str(script): {"bind": "/work/make_tiny_models.py", "mode": "ro"},
                     str(staging): {"bind": "/out", "mode": "rw"},
                     str(tokenizer.parent): {"bind": "/tok", "mode": "ro"}},
            remove=True, labels={MANAGED_LABEL: "1", **Owner.me(models_dir, "models").labels()},
            environment={"HF_HUB_OFFLINE": "1", **CACHE_ENV}, **Hardening().engine_kwargs())
        reclaim(staging)
        for name in NAMES:
            if is_model_dir(staging / name):
                make_readable(staging / name)
                if (models_dir / name).exists():
                    shutil.rmtree(models_dir / name)
                os.replace(staging / name, models_dir / name)
    except ImageNotFound:
        raise UserError(f"image {image} is not present; build it with `make images BACKENDS=transformers`") from None
    except (ContainerError, APIError) as exc:
        raise UserError(f"building the tiny models failed in {image}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folders
