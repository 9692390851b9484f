#!/usr/bin/env python3
"""Record an image's CPU architecture in its config: `set-arch.py TAG ARCH` (Docker's name: arm64, amd64).

Why: `docker import --platform linux/arm64` sets the architecture only on an engine with experimental features
on; a stock engine (Docker 20.10 here) records the host's (amd64) for the arm64 root filesystem make-base.sh
imported. An image that says amd64 but holds arm64 binaries misleads everything that reads it: a build for
linux/arm64 refuses it as a base, and a run of an image built on it would not be known as emulated. So the image
is saved, its config's `architecture` (and `variant`, v8 for arm64) rewritten, and loaded again under the same
tag: the layer is untouched, only the config (and so the image id) changes. Standard library only.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile

VARIANTS = {"arm64": "v8"}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: set-arch.py TAG ARCH", file=sys.stderr)
        return 2
    tag, arch = argv
    current = subprocess.run(["docker", "image", "inspect", "-f", "{{.Architecture}}", tag], capture_output=True,
                             text=True)
    if current.returncode != 0:
        print(f"set-arch.py: no image {tag}: {current.stderr.strip()}", file=sys.stderr)
        return 1
    if current.stdout.strip() == arch:
        return 0
    saved = subprocess.run(["docker", "save", tag], capture_output=True, check=True).stdout
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(saved)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        manifest = json.loads(src.extractfile("manifest.json").read())  # type: ignore[union-attr]
        configs = {entry["Config"] for entry in manifest}
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name in configs and data is not None:
                config = json.loads(data)
                config["architecture"] = arch
                if arch in VARIANTS:
                    config["variant"] = VARIANTS[arch]
                else:
                    config.pop("variant", None)
                data = json.dumps(config).encode()
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    loaded = subprocess.run(["docker", "load"], input=out.getvalue(), capture_output=True)
    if loaded.returncode != 0:
        print(f"set-arch.py: docker load failed: {loaded.stderr.decode(errors='replace').strip()}", file=sys.stderr)
        return 1
    now = subprocess.run(["docker", "image", "inspect", "-f", "{{.Architecture}}", tag], capture_output=True,
                         text=True).stdout.strip()
    if now != arch:
        print(f"set-arch.py: {tag} still says {now!r}, not {arch!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
