"""How fresh each image's libraries are: every pin against the newest release on the package index.

A benchmark that quietly runs an old library misleads about what the model can do (issue #16: CTranslate2
4.6.0 ran 12-16 % slower than 4.8.5 on the same CPU), so `edgeasr images versions` lists, per image, each
pinned library (from its requirements.txt and each variant's requirements-<platform>.txt, and from the
`org.edgeasr.versions` label of each built image) next to the newest release. A pin held back on purpose says why with a `# held: reason` comment on its
requirements line, and the reason is shown. Asking the index goes through pip (`pip index versions`), which
already knows this host's index, proxy and certificates; when the index cannot be reached each line says so.
The comparison itself (``compare``) is a pure function, tested with a fake index.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from packaging.version import InvalidVersion, Version

from ..backends import CONTAINERS_DIR, IMAGES, ImageDef
from ..errors import UserError
from ..host.platforms import PLATFORMS
from .build import parse_versions_label, pinned_versions, requirements_text, variant_requirements

NOT_REACHABLE = "index not reachable"
#: `name==version  # held: reason`, the reason last on the line (after a variant's `# replaces: NAME`, if any).
_HELD = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*==[^#]*(?:#[^#]*)*?#\s*held:\s*(.+?)\s*$")
_NEWEST = re.compile(r"^\S+ \(([^)]+)\)\s*$", re.MULTILINE)  # `pip index versions` first line: `name (1.2.3)`


@dataclass(frozen=True, kw_only=True)
class Pin:
    """One library pinned in one image: where the pin was read, and why it is held back if it is."""

    image: str  # an image name (requirements.txt) or a built tag (its label)
    source: str  # "requirements.txt" or "label"
    library: str  # PEP 503 name
    pinned: str
    held: str | None = None  # the `# held:` reason on the requirements line


@dataclass(frozen=True, kw_only=True)
class Freshness:
    """A pin compared with the index: status is current, behind, ahead, or unknown (with the reason)."""

    image: str
    source: str
    library: str
    pinned: str
    newest: str | None
    status: str  # "current" | "behind" | "ahead" | "unknown"
    note: str = ""  # why unknown, or the held reason of a pin that is behind


def held_reasons(requirements_text: str) -> dict[str, str]:
    """library -> reason, for each `name==version  # held: reason` line."""
    out = {}
    for line in requirements_text.splitlines():
        m = _HELD.match(line)
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return out


def requirement_pins(images: Iterable[ImageDef]) -> list[Pin]:
    """Every `==` pin of each image's requirements.txt, then those of each platform's own requirements (a variant
    installs them in place of some of requirements.txt's: onnxruntime-gpu in the CUDA image), whose ``source`` is
    that file's name (requirements-cuda.txt), so the platform shows."""
    pins = []
    for image in images:
        texts = [("requirements.txt", requirements_text(image))]  # its own pins and the shared ones
        for platform in PLATFORMS:
            variant = variant_requirements(image, platform)
            if variant.pins:
                texts.append((variant.path.name, variant.path.read_text()))
        for source, text in texts:
            held = held_reasons(text)
            for lib, version in pinned_versions(text).items():
                pins.append(Pin(image=image.name, source=source, library=lib, pinned=version, held=held.get(lib)))
    return pins


def label_pins(tag: str, labels: Mapping[str, str] | None) -> list[Pin]:
    """The versions a built image says it holds (its org.edgeasr.versions label)."""
    versions = parse_versions_label((labels or {}).get("org.edgeasr.versions"))
    return [Pin(image=tag, source="label", library=lib, pinned=v) for lib, v in versions.items()]


def compare(pins: Iterable[Pin], newest: Mapping[str, str | None], why_unknown: Mapping[str, str]) -> list[Freshness]:
    """Each pin against ``newest[library]`` (None: unknown, for ``why_unknown[library]``). Pure."""
    out = []
    for pin in pins:
        latest = newest.get(pin.library)
        if latest is None:
            out.append(Freshness(**_base(pin), newest=None, status="unknown",
                                 note=why_unknown.get(pin.library, NOT_REACHABLE)))
            continue
        try:
            order = (Version(pin.pinned) > Version(latest)) - (Version(pin.pinned) < Version(latest))
        except InvalidVersion:
            order = 0 if pin.pinned == latest else -1
        status = {0: "current", -1: "behind", 1: "ahead"}[order]
        note = f"held: {pin.held}" if pin.held and status == "behind" else ""
        out.append(Freshness(**_base(pin), newest=latest, status=status, note=note))
    return out


def _base(pin: Pin) -> dict:
    return {"image": pin.image, "source": pin.source, "library": pin.library, "pinned": pin.pinned}


def pip_newest(library: str, timeout_s: float = 30.0) -> tuple[str | None, str]:
    """The newest release of ``library`` on the package index pip uses, or (None, why not).

    `pip index versions` carries the host's index URL, proxy and certificate settings. Local wheel folders
    (PIP_FIND_LINKS) are left out: they say what is at hand, not what is released.
    """
    env = {**os.environ, "PIP_FIND_LINKS": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    cmd = [sys.executable, "-m", "pip", "index", "versions", library, "--retries", "0", "--timeout", "10"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{NOT_REACHABLE} ({type(exc).__name__})"
    m = _NEWEST.search(proc.stdout)
    if proc.returncode != 0 or not m:
        last = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("WARNING")]
        return None, f"{NOT_REACHABLE} ({last[-1][:120] if last else f'pip exit {proc.returncode}'})"
    return m.group(1), ""


def query_index(libraries: Iterable[str], ask: Callable[[str], tuple[str | None, str]] = pip_newest,
                workers: int = 6) -> tuple[dict[str, str | None], dict[str, str]]:
    """Ask the index for each library once, a few at a time; (newest, why_unknown)."""
    libs = sorted(set(libraries))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = dict(zip(libs, pool.map(ask, libs)))
    return ({lib: v for lib, (v, _) in answers.items()}, {lib: why for lib, (v, why) in answers.items() if v is None})


def built_image_pins(refs: list[str] | None) -> tuple[list[Pin], str]:
    """Pins from the labels of built images: the named refs, else every image with a versions label.
    Returns (pins, a note when the engine cannot be asked); a named ref that is not built is a UserError."""
    from docker.errors import ImageNotFound

    from ..launch import docker_engine

    try:
        client = docker_engine.connect()
    except UserError as exc:  # no engine: the requirements still answer
        return [], f"built images not read: {exc}"
    try:
        found = []
        if refs:
            for ref in refs:
                try:
                    found.append((ref, client.images.get(ref)))
                except ImageNotFound:
                    raise UserError(f"{ref} is neither an image name ({', '.join(IMAGES)}) nor an image built "
                                    "here (docker image ls)") from None
        else:
            found = [(tag, img) for img in client.images.list(filters={"label": "org.edgeasr.versions"})
                     for tag in img.tags]
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  (no engine: the requirements still answer)
        return [], f"built images not read: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}"
    pins = []
    for tag, img in sorted(found, key=lambda t: t[0]):
        pins += label_pins(tag, img.labels)
    return pins, ""


def render(rows: list[Freshness]) -> list[str]:
    """Aligned lines: image, source, library, pinned, newest, status and note."""
    head = ("image", "from", "library", "pinned", "newest", "status")
    table = [head] + [(r.image, r.source, r.library, r.pinned, r.newest or "-", r.status) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = []
    for row, r in zip(table, [None, *rows]):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
        if r is not None and r.note:
            line += f"  ({r.note})"
        lines.append(line)
    return lines


def main(args: argparse.Namespace) -> int:
    """`edgeasr images versions [IMAGE...]`: names take their requirements.txt, other refs a built image's label."""
    names = [i for i in args.images if i in IMAGES]
    refs = [i for i in args.images if i not in IMAGES]
    pins = requirement_pins([IMAGES[n] for n in names] if args.images else IMAGES.values())
    note = ""
    if refs or not args.images:
        built, note = built_image_pins(refs or None)
        pins += built
    if args.offline:
        newest, why = {}, {p.library: f"{NOT_REACHABLE} (--offline)" for p in pins}
    else:
        newest, why = query_index(p.library for p in pins)
    rows = compare(pins, newest, why)
    if args.json:
        for r in rows:
            print(json.dumps(asdict(r)))
    else:
        for line in render(rows):
            print(line)
        behind = [r for r in rows if r.status == "behind" and r.source != "label" and not r.note]
        if behind:
            print(f"{len(behind)} pin(s) behind the newest release without a `# held:` reason: "
                  + ", ".join(f"{r.image}/{r.library}" for r in behind)
                  + f" (the pins are in {CONTAINERS_DIR.name}/<image>/requirements*.txt)")
    if note:
        print(note, file=sys.stderr)
    return 0
