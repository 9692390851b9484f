"""Build the tiny random models inside their backends' images (the host has no torch).

Each maker is a script in its backend's build folder, run in that backend's image:
- transformers (containers/transformers/make_tiny_models.py): tiny-whisper-random and tiny-ctc-random, Hugging
  Face models; they use the tiny.en tokenizer, which `make models` installs;
- espnet (containers/espnet/make_tiny_model.py): tiny-espnet-random, an ESPnet Conformer CTC/attention model in
  ESPnet's format, made from the Conformer recipe the espnet wheel ships.
The models land in the models folder, each one whole or not at all.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..backends import BACKENDS, CONTAINERS_DIR
from ..errors import UserError
from ..launch.tool_container import STAGING_TARGET, run_tool
from ..launch.paths import make_readable
from .resolve import is_model_dir


@dataclass(frozen=True)
class TinyMaker:
    """A backend's tiny-model script and the models it writes."""

    backend: str
    script: str  # in the backend's build folder
    names: tuple[str, ...]
    tokenizer: bool = False  # takes the tiny.en tokenizer as its second argument


MAKERS: dict[str, TinyMaker] = {m.backend: m for m in (
    TinyMaker("transformers", "make_tiny_models.py", ("tiny-whisper-random", "tiny-ctc-random"), tokenizer=True),
    TinyMaker("espnet", "make_tiny_model.py", ("tiny-espnet-random",)),
)}
NAMES = tuple(n for m in MAKERS.values() for n in m.names)


def make_tiny_models(models_dir: Path, image: str | None = None, backends: list[str] | None = None) -> list[Path]:
    """Every tiny model of ``backends`` (default: all; with ``image``, the transformers ones, in that image)."""
    names = backends or (["transformers"] if image else list(MAKERS))
    unknown = [b for b in names if b not in MAKERS]
    if unknown:
        raise UserError(f"no tiny models for {', '.join(unknown)}; backends with tiny models: {', '.join(MAKERS)}")
    if image and len(names) != 1:
        raise UserError(f"--image names the image of one backend's tiny models; got {', '.join(names)}")
    return [f for name in names for f in _make(MAKERS[name], models_dir, image)]


def _make(maker: TinyMaker, models_dir: Path, image: str | None) -> list[Path]:
    folders = [models_dir / n for n in maker.names]
    if all(is_model_dir(f) for f in folders):
        return folders
    backend = BACKENDS[maker.backend]
    image = image or backend.image
    script = CONTAINERS_DIR / backend.build_dir / maker.script
    command = ["/opt/venv/bin/python", f"/work/{maker.script}", STAGING_TARGET]
    inputs = {script: f"/work/{maker.script}"}
    if maker.tokenizer:
        tokenizer = models_dir / "tiny.en" / "tokenizer.json"
        if not tokenizer.is_file():
            raise UserError(f"the tiny models use the tiny.en tokenizer, not found at {tokenizer}; run `edgeasr models install`")
        command.append("/tok/tokenizer.json")
        inputs[tokenizer.parent] = "/tok"
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = run_tool(image, command, inputs=inputs, staging_parent=models_dir,
                       what=f"building the tiny {maker.backend} models",
                       image_hint=f"build it with `make images BACKENDS={maker.backend}`")
    try:
        for name in maker.names:
            if is_model_dir(staging / name):
                make_readable(staging / name)
                if (models_dir / name).exists():
                    shutil.rmtree(models_dir / name)
                os.replace(staging / name, models_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    missing = [f for f in folders if not is_model_dir(f)]
    if missing:
        raise UserError(f"the tiny {maker.backend} model script wrote no {', '.join(f.name for f in missing)}")
    return folders
