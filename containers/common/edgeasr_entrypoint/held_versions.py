"""What an image holds of the packages its requirements pin: the ``name=version,...`` line its build writes to
VERSIONS_FILE, which `edgeasr images build` reads back into the org.edgeasr.versions label.

A Jetson (JetPack 6) Dockerfile keeps what its base already carries (a jetson-containers image brings its own
CUDA builds of CTranslate2, torch, onnxruntime) and installs a pin only where the package is missing, so the pins
cannot be its label: ``python -m edgeasr_entrypoint.held_versions REQUIREMENTS > VERSIONS_FILE`` runs after the
installs and lists each package REQUIREMENTS pins (the build context's requirements.txt, the shared pins
appended: the names the x86 image's label has) at the version installed. A package the image lacks is left out
(said on stderr), never claimed. Standard library only, Python 3.8 (it runs in every image).
"""

from __future__ import annotations

import importlib
import re
import sys
from importlib import metadata
from typing import Dict, Iterable, List, Optional

#: ``name[extras]==version`` at the start of a requirements line: the name is what counts here.
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*(?:\[[^\]]*\])?\s*==")


def _normalize(name: str) -> str:
    """PEP 503 name, as the label spells it: `CTranslate2`, `faster_whisper` -> `ctranslate2`, `faster-whisper`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_names(text: str) -> List[str]:
    """The normalized names of the ``name==version`` lines of a requirements text, in its order, each once."""
    names: List[str] = []
    for line in text.splitlines():
        m = _PIN.match(line)
        if m and _normalize(m.group(1)) not in names:
            names.append(_normalize(m.group(1)))
    return names


def _installed(name: str) -> Optional[str]:
    """The installed version of ``name``: its distribution's metadata (both spellings: Python 3.8's lookup does
    not normalize), else the module of that name's ``__version__`` (onnxruntime-gpu, a Jetson build, holds the
    `onnxruntime` module), else None."""
    for spelling in dict.fromkeys((name, name.replace("-", "_"))):
        try:
            return metadata.version(spelling)
        except metadata.PackageNotFoundError:
            pass
    module_name = name.replace("-", "_")
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - absent, or present and broken: either way no version to claim
        return None
    version = getattr(module, "__version__", None)
    return str(version) if version else None


def held(names: Iterable[str]) -> Dict[str, str]:
    """name -> installed version for each of ``names`` the image holds, in their order."""
    out: Dict[str, str] = {}
    for name in names:
        version = _installed(name)
        if version:
            out[name] = version
    return out


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m edgeasr_entrypoint.held_versions REQUIREMENTS", file=sys.stderr)
        return 2
    with open(argv[0]) as fh:
        names = pinned_names(fh.read())
    versions = held(names)
    missing = [n for n in names if n not in versions]
    if missing:
        print(f"held_versions: not installed, left out: {', '.join(missing)}", file=sys.stderr)
    print(",".join(f"{n}={v}" for n, v in versions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
