"""Serve a host-side wheelhouse to an image build over loopback, so the wheels never enter the image.

Where the build itself cannot reach the package index, pip inside the build
installs from the host's wheelhouse instead: the build runs with the host's
network and pip reads `--find-links http://127.0.0.1:PORT/`. Nothing is copied
into the build context or a layer (a torch wheelhouse is 4 GB), and the server
listens on loopback only, for the length of one build.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass


#: The first of the fixed ports (build.wheel_port gives each image and platform its own): fixed, so that the
#: URL (a build argument) and with it Docker's build cache stay the same; one per wheelhouse, so that builds
#: side by side (`images build --jobs`) do not take each other's.
PORT = 38117


@contextmanager
def serve_wheelhouse(folder: Path, port: int = PORT) -> Iterator[str]:
    """Yield the URL of a directory listing of `folder` (pip's --find-links reads it), served on ``port``."""
    handler = partial(_QuietHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:  # taken: any free port works, at the price of a build-cache miss
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
