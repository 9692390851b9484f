"""`edgeasr images base|build|tag|versions|list`: the local base image and the backend images, through the Engine
API; the image a run uses; how fresh their pinned libraries are; and the table's images, for scripts and docs.

Every list of backends here is the backend table's (runner/backends.py): a new row is built, tagged
and checked without an edit here."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from ..backends import BACKENDS, DEVICES, IMAGES, Backend, ImageDef, get_image, image_platform
from ..errors import UserError
from ..host.platforms import JETSON, PLATFORMS
from ..images.build import PUBLIC_BASE, ensure_base, parse_overrides, requirements_text
from ..images.make import BuildRequest, build_images
from ..launch import docker_engine
from ..trust.untrusted import line, printer

PLATFORM_HELP = ("x86 (CPU), cuda (x86 NVIDIA), jetson-r35 (JetPack 5), jetson-r36 (JetPack 6) or arm64 (CPU: the x86 "
                 "Dockerfiles for linux/arm64, emulated on an x86 host): which Dockerfile variant; jetson: the one for "
                 "this board's L4T release (/etc/nv_tegra_release); auto (default): that on a Jetson, arm64 on another "
                 "aarch64 machine, else x86, or cuda with --device cuda")
DEVICE_HELP = "the device the image is for (default: none given): on x86, cuda picks the cuda variant, as `run` does"


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse says the sentence and exits 2 otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="images_cmd", required=True)
    base = sub.add_parser("base", help="make sure a base image exists (pull it, or debootstrap a local one)")
    base.add_argument("--base", default=PUBLIC_BASE)
    build = sub.add_parser("build", help="build backend images")
    build.add_argument("backends", nargs="*", default=list(BACKENDS),
                       help=f"images to build: {', '.join(IMAGES)} (default: {' '.join(BACKENDS)})")
    build.add_argument("--base", default=PUBLIC_BASE,
                       help=f"base image of the Python 3.11 images (default {PUBLIC_BASE}; falls back to a local "
                            "debootstrapped bookworm); the Python 3.13 ones (espnet) take python:3.13-slim-trixie, "
                            "else a local debootstrapped trixie")
    build.add_argument("--no-wheelhouse", action="store_true",
                       help="do not fill the host-side wheelhouse; the build installs from the index itself")
    build.add_argument("--tag", default=None, help="image tag (only with one backend)")
    build.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VERSION",
                       help="build with another version of a pinned library (repeatable), e.g. --set "
                            "ctranslate2=4.6.0; needs --tag; the org.edgeasr.versions label says what is inside")
    build.add_argument("--platform", default="auto", choices=["auto", JETSON, *PLATFORMS], help=PLATFORM_HELP)
    build.add_argument("--device", default=None, choices=DEVICES, help=DEVICE_HELP)
    build.add_argument("--missing", action="store_true",
                       help="build only the images the engine does not hold yet (`make run` builds its image so)")
    build.add_argument("--log-dir", type=Path, default=Path("build"), help="where build logs go (default: build/)")
    build.add_argument("--jobs", type=positive_int, default=None, metavar="N",
                       help="images built side by side, a child after its parent (default: one per CPU, at most 4)")
    tag = sub.add_parser("tag", help="print the image a run of BACKEND uses when it names none (this platform's)")
    tag.add_argument("backend", choices=list(BACKENDS), help=f"one of {', '.join(BACKENDS)}")
    tag.add_argument("--platform", default="auto", choices=["auto", JETSON, *PLATFORMS], help=PLATFORM_HELP)
    tag.add_argument("--device", default=None, choices=DEVICES, help=DEVICE_HELP)
    versions = sub.add_parser("versions", help="each image's pinned libraries against the newest release on the index")
    versions.add_argument("images", nargs="*", default=[],
                          help=f"images to check: names ({', '.join(IMAGES)}) or built tags (default: every image "
                               "edgeasr builds, and the built tags of each)")
    versions.add_argument("--offline", action="store_true", help="do not ask the package index")
    versions.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    listing = sub.add_parser("list", help="the images of the backend table: backends first, then the others")
    listing.add_argument("--backends", action="store_true", help="backends only, their names one per line")
    listing.add_argument("--json", action="store_true", help="one JSON object per line (name, tag, platforms, ...)")


def image_facts(image: ImageDef) -> dict:
    """What `images list --json` says of one image: the table row's facts that scripts and docs need."""
    out = {"name": image.name, "image": image.image, "kind": "backend" if isinstance(image, Backend) else "image",
           "build_dir": image.build_dir, "parent": image.parent}
    if isinstance(image, Backend):
        out.update(library=image.library, devices=list(image.devices),
                   quants={d: list(image.quants(d)) for d in image.devices}, platforms=list(image.platforms),
                   default_model=image.default_model, default_quant=image.default_quant)
    return out


def list_images(args: argparse.Namespace) -> int:
    """`images list`: every image of the table (backends in table order, then the runner and shared bases)."""
    images = list(BACKENDS.values()) if args.backends else list(IMAGES.values())
    for image in images:
        if args.json:
            print(json.dumps(image_facts(image)))
        elif args.backends:
            print(image.name)
        else:
            facts = image_facts(image)
            where = f"platforms {', '.join(facts['platforms'])}; devices {', '.join(facts['devices'])}" \
                if facts["kind"] == "backend" else f"{facts['kind']} (containers/{image.build_dir})"
            print(f"{image.name:16s} {image.image:36s} {where}")
    return 0


def build_console(quiet: bool) -> Console:
    """Where build logs go: stderr, each line with its time; never the source line that logged it
    (rich's ``images.py:241`` means nothing to a user)."""
    return Console(stderr=True, quiet=quiet, log_path=False)


def main(args: argparse.Namespace) -> int:
    if args.images_cmd == "list":
        return list_images(args)
    console = build_console(bool(getattr(args, "quiet", False)))
    if args.images_cmd == "versions":
        from ..images import freshness

        return freshness.main(args)
    platform = image_platform(getattr(args, "platform", "auto"), getattr(args, "device", None))
    if args.images_cmd == "tag":
        print(BACKENDS[args.backend].default_image(platform))
        return 0
    client = docker_engine.connect()
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
    say = printer(console)  # tags, versions and build lines quote what images and indexes said
    if args.images_cmd == "base":
        print(ensure_base(client, args.base, log=say))
        return 0
    request = BuildRequest(names=tuple(args.backends), platform=platform, base=args.base, tag=args.tag,
                           overrides=overrides, missing=args.missing, wheelhouse=not args.no_wheelhouse,
                           log_dir=args.log_dir, jobs=args.jobs)
    build_images(client, request, log=say, detail=lambda text: console.log(line(text)),
                 status=lambda text: console.status(line(text)))
    return 0
