"""`edgeasr images base|build`: the local base image and the backend images, through the Engine API."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ..launch import docker_engine
from ..launch.backends import BACKENDS, IMAGES, get_image
from ..launch.images import PUBLIC_BASE, build_image, ensure_base, fill_wheelhouse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="images_cmd", required=True)
    base = sub.add_parser("base", help="make sure a base image exists (pull it, or debootstrap a local one)")
    base.add_argument("--base", default=PUBLIC_BASE)
    build = sub.add_parser("build", help="build backend images")
    build.add_argument("backends", nargs="*", default=list(BACKENDS),
                       help=f"images to build: {', '.join(IMAGES)} (default: {' '.join(BACKENDS)})")
    build.add_argument("--base", default=PUBLIC_BASE,
                       help=f"base image (default {PUBLIC_BASE}; falls back to a local debootstrapped bookworm)")
    build.add_argument("--no-wheelhouse", action="store_true",
                       help="do not fill the host-side wheelhouse; the build installs from the index itself")
    build.add_argument("--tag", default=None, help="image tag (only with one backend)")
    build.add_argument("--log-dir", type=Path, default=Path("build"), help="where build logs go (default: build/)")


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    client = docker_engine.connect()
    base = ensure_base(client, args.base, log=console.print)
    if args.images_cmd == "base":
        print(base)
        return 0
    backends = [get_image(name) for name in args.backends]
    args.log_dir.mkdir(parents=True, exist_ok=True)
    for backend in backends:
        if not args.no_wheelhouse:
            fill_wheelhouse(backend, log=console.print)
        tag = args.tag if args.tag and len(backends) == 1 else backend.image
        with console.status(f"building {tag} from {base}"):
            image_id = build_image(client, backend, base=base, tag=tag,
                                   log_path=args.log_dir / f"image-{backend.name}.log", log=console.log)
        console.print(f"built {tag} ({image_id[:19]})")
    return 0
