"""Build the tiny random Hugging Face models inside the transformers image (the host has no torch).

The script (containers/transformers/make_tiny_models.py) needs the tiny.en tokenizer,
which `make models` installs; the models land in the models folder as
tiny-whisper-random and tiny-ctc-random.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..backends import BACKENDS, CONTAINERS_DIR
from ..errors import UserError
from ..launch.tool_container import STAGING_TARGET, run_tool
from ..paths import make_readable
from .resolve import is_model_dir

NAMES = ("tiny-whisper-random", "tiny-ctc-random")


def make_tiny_models(models_dir: Path, image: str | None = None) -> list[Path]:
    tokenizer = models_dir / "tiny.en" / "tokenizer.json"
    if not tokenizer.is_file():
        raise UserError(f"the tiny models use the tiny.en tokenizer, not found at {tokenizer}; run `make models`")
    folders = [models_dir / n for n in NAMES]
    if all(is_model_dir(f) for f in folders):
        return folders
    image = image or BACKENDS["transformers"].image
    script = CONTAINERS_DIR / BACKENDS["transformers"].build_dir / "make_tiny_models.py"
    staging = run_tool(image, ["/opt/venv/bin/python", "/work/make_tiny_models.py", STAGING_TARGET, "/tok/tokenizer.json"],
                       inputs={script: "/work/make_tiny_models.py", tokenizer.parent: "/tok"},
                       staging_parent=models_dir, what="building the tiny models",
                       image_hint="build it with `make images BACKENDS=transformers`")
    try:
        for name in NAMES:
            if is_model_dir(staging / name):
                make_readable(staging / name)
                if (models_dir / name).exists():
                    shutil.rmtree(models_dir / name)
                os.replace(staging / name, models_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folders
