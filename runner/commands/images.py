"""`edgeasr images base|build|versions`: the local base image and the backend images, through the Engine API;
and how fresh their pinned libraries are."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from ..launch import docker_engine
from ..errors import UserError
from ..launch.backends import BACKENDS, IMAGES, Backend, get_image
from ..launch.images import (PUBLIC_BASE, build_image, child_extras, ensure_base, fill_wheelhouse, parse_overrides,
                             platform_tag, read_carried_versions, requirements_text, versions_label)
from ..platforms import JETSON, PLATFORMS, resolve_platform


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
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VERSION",
                       help="build with another version of a pinned library (repeatable), e.g. --set "
                            "ctranslate2=4.6.0; needs --tag; the org.edgeasr.versions label says what is inside")
    build.add_argument("--platform", default="auto", choices=["auto", JETSON, *PLATFORMS],
                       help="x86 (CPU), cuda (x86 NVIDIA), jetson-r35 (JetPack 5) or jetson-r36 (JetPack 6): which "
                            "Dockerfile variant; jetson: the one for this board's L4T release "
                            "(/etc/nv_tegra_release); auto: that on a Jetson, else x86")
    build.add_argument("--log-dir", type=Path, default=Path("build"), help="where build logs go (default: build/)")
    versions = sub.add_parser("versions", help="each image's pinned libraries against the newest release on the index")
    versions.add_argument("images", nargs="*", default=[],
                          help=f"images to check: names ({', '.join(IMAGES)}) or built tags (default: every image "
                               "edgeasr builds, and the built tags of each)")
    versions.add_argument("--offline", action="store_true", help="do not ask the package index")
    versions.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")


def _build_variants(client, args, console: Console, platform: str) -> int:
    """CUDA / Jetson variants: their Dockerfile's own base (unless --base), packages from their index.
    A variant that records what its base carries (JetPack 5) is built twice: the second build, all cached but
    the LABEL step, labels those versions instead of the requirements' pins."""
    variant = PLATFORMS[platform]
    base = None if args.base == PUBLIC_BASE else args.base
    for name in args.backends:
        image = get_image(name)
        problem = image.platform_problem(platform) if isinstance(image, Backend) else None
        if problem:  # one backend without this variant must not stop the others
            console.print(f"[yellow]skipped[/]: {problem}")
            continue
        tag = args.tag or platform_tag(image, platform)
        log_path = args.log_dir / f"image-{image.name}-{platform}.log"
        build = dict(base=base, tag=tag, dockerfile=variant.dockerfile, log=console.log)
        with console.status(f"building {tag} from {variant.dockerfile}"):
            if variant.versions_file:
                build_image(client, image, log_path=log_path.with_suffix(".first.log"), versions="", **build)
                carried = read_carried_versions(client, tag, variant.versions_file)
                console.print(f"{tag} carries {carried}")
                image_id = build_image(client, image, log_path=log_path, versions=carried, **build)
            else:
                image_id = build_image(client, image, log_path=log_path, **build)
        console.print(f"built {tag} ({image_id[:19]})")
    return 0


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True, quiet=bool(getattr(args, "quiet", False)))
    if args.images_cmd == "versions":
        from .. import freshness

        return freshness.main(args)
    client = docker_engine.connect()
    platform = resolve_platform(getattr(args, "platform", "auto"))
    overrides = parse_overrides(getattr(args, "overrides", None))
    if overrides:
        if not args.tag:
            raise UserError("--set needs --tag with a tag of its own (e.g. --tag edgeasr/faster-whisper:ct2-4.6.0), "
                            "so that the default image keeps the pinned versions")
        if len(args.backends) != 1:
            raise UserError(f"--set builds one image; got {len(args.backends)}: {' '.join(args.backends)}")
        if platform != "x86":
            raise UserError(f"--set works on the x86 images, built from requirements.txt; the {platform} variant's "
                            "pins are in its Dockerfile (see containers/PLATFORMS.md): use --platform x86")
        requirements_text(get_image(args.backends[0]), overrides)  # refuses a name the image does not pin
    if args.images_cmd == "build" and platform != "x86":
        # Backends have CUDA / Jetson variants; the runner image is the same Dockerfile everywhere.
        args.log_dir.mkdir(parents=True, exist_ok=True)
        variants = [n for n in args.backends if n in BACKENDS]
        _build_variants(client, argparse.Namespace(**{**vars(args), "backends": variants}), console, platform)
        args.backends = [n for n in args.backends if n not in BACKENDS]
        if not args.backends:
            return 0
    base = ensure_base(client, args.base, log=console.print)
    if args.images_cmd == "base":
        print(base)
        return 0
    wanted = [get_image(name) for name in args.backends]
    order: list = []
    for image in wanted:  # a parent (the shared torch stack) is built first, once (from cache if unchanged)
        parent = get_image(image.parent) if image.parent else None
        if parent and parent not in order:
            order.append(parent)
        if image not in order:
            order.append(image)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    for image in order:
        image_base = get_image(image.parent).image if image.parent else base
        mine = overrides if image in wanted else None  # --set is for the image asked for, not its parent
        if not args.no_wheelhouse and not image.parent:  # a child's packages come with its parent...
            fill_wheelhouse(image, log=console.print, overrides=mine)
        elif not args.no_wheelhouse:
            if child_extras(image):  # ...except those the parent does not pin (with their dependencies)
                fill_wheelhouse(image, log=console.print, only=child_extras(image))
            if mine:  # ...and the ones --set swaps on top of it
                fill_wheelhouse(image, log=console.print, overrides=mine, only_overrides=True)
        tag = args.tag if args.tag and len(wanted) == 1 and image in wanted else image.image
        if mine:
            console.print(f"{tag}: {versions_label(image, mine)}")
        with console.status(f"building {tag} from {image_base}"):
            image_id = build_image(client, image, base=image_base, tag=tag, overrides=mine,
                                   log_path=args.log_dir / f"image-{image.name}.log", log=console.log)
        console.print(f"built {tag} ({image_id[:19]})")
    return 0

