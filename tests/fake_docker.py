"""A FAKE Docker Engine client for tests: docker-py's ``DockerClient`` as the runner calls it, with no engine.

``client.containers`` is docker-py's own ``ContainerCollection`` (its ``run``: create, start, wait, logs on a
failure, remove), with ``create``, ``get`` and ``list`` answered from memory; a container has docker-py's
``Container`` methods the runner calls (``start``, ``attach``, ``wait``, ``logs``, ``kill``, ``reload``, ``remove``,
``get_archive``: a fake image holds no files) and its errors (``NotFound`` once removed, ``APIError`` 409 to remove a
running one without ``force``).
``client.images.get`` answers the images given, else ``ImageNotFound``.

What a container does is ``program(container)``, called in ``wait``: it returns the exit code, or raises (as the
CLI's SIGTERM handler does inside a blocking wait). ``client.created`` lists every container ever created;
``client.present()`` those not removed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import ContainerCollection

_ids = itertools.count(1)


@dataclass
class FakeImage:
    id: str
    tags: list[str]
    labels: dict[str, str]
    attrs: dict[str, Any] = field(default_factory=lambda: {"Architecture": "amd64"})


class FakeImages:
    def __init__(self, images: dict[str, FakeImage]) -> None:
        self._images = images

    def get(self, ref: str) -> FakeImage:
        if ref not in self._images:
            raise ImageNotFound(f"No such image: {ref}")
        return self._images[ref]


class FakeContainer:
    def __init__(self, client: "FakeClient", kwargs: dict[str, Any]) -> None:
        self.client, self.kwargs = client, kwargs
        self.id = f"{next(_ids):064x}"
        self.name = kwargs.get("name") or f"fake_{self.id[-6:]}"
        self.labels = dict(kwargs.get("labels") or {})
        self.status = "created"
        self.removed = False
        self.exit_code: int | None = None
        self.stdout = b""  # what it printed: ``program`` may set it; ``logs(stdout=True)`` returns it
        log_type = getattr(kwargs.get("log_config"), "type", None) or "json-file"
        self.attrs: dict[str, Any] = {"Id": self.id, "State": {"Status": "created", "OOMKilled": False},
                                      "HostConfig": {"LogConfig": {"Type": log_type}}}

    def _exists(self) -> None:
        if self.removed:
            raise NotFound(f"No such container: {self.id}")

    def start(self) -> None:
        self._exists()
        self.status = self.attrs["State"]["Status"] = "running"

    def attach(self, stdout: bool = True, stderr: bool = True, stream: bool = False, logs: bool = False):
        self._exists()
        return iter(()) if stream else b""

    def wait(self, timeout: float | None = None, condition: str | None = None) -> dict[str, Any]:
        self._exists()
        if self.exit_code is None:
            self.exit_code = self.client.program(self)
            self.status = self.attrs["State"]["Status"] = "exited"
        return {"StatusCode": self.exit_code, "Error": None}

    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False, follow: bool = False, **kw):
        self._exists()
        return iter(()) if stream else (self.stdout if stdout else b"")

    def get_archive(self, path: str, **kw):
        """A fake image holds no files."""
        self._exists()
        raise NotFound(f"Could not find the file {path} in container {self.id}")

    def kill(self, signal: str | int | None = None) -> None:
        self._exists()
        if self.status != "running":
            raise APIError(f"Container {self.id} is not running")
        self.exit_code = 137
        self.status = self.attrs["State"]["Status"] = "exited"

    def reload(self) -> None:
        self._exists()

    def remove(self, v: bool = False, link: bool = False, force: bool = False) -> None:
        self._exists()
        if self.status == "running" and not force:
            raise APIError(f"409 Conflict: cannot remove container {self.id}: it is running: stop it first or "
                           f"use force")
        self.removed = True


class FakeContainers(ContainerCollection):
    """docker-py's collection: its ``run`` is the real one, on these ``create``, ``get`` and ``list``."""

    def create(self, image: str, command: Any = None, **kwargs: Any) -> FakeContainer:
        self.client.images.get(image)
        kwargs.pop("detach", None)
        container = FakeContainer(self.client, {"image": image, "command": command, **kwargs})
        self.client.created.append(container)
        return container

    def get(self, container_id: str) -> FakeContainer:
        for c in self.client.present():
            if container_id in (c.id, c.name):
                return c
        raise NotFound(f"No such container: {container_id}")

    def list(self, all: bool = False, filters: dict[str, Any] | None = None, **kw: Any) -> list[FakeContainer]:
        found = [c for c in self.client.present() if all or c.status == "running"]
        wanted = (filters or {}).get("label") or []
        for label in [wanted] if isinstance(wanted, str) else wanted:
            key, _, value = label.partition("=")
            found = [c for c in found if key in c.labels and (not value or c.labels[key] == value)]
        return found


class FakeClient:
    def __init__(self, images: dict[str, FakeImage], program: Callable[[FakeContainer], int] = lambda c: 0) -> None:
        self.images = FakeImages(images)
        self.containers = FakeContainers(client=self)
        self.program = program
        self.created: list[FakeContainer] = []

    def present(self) -> list[FakeContainer]:
        return [c for c in self.created if not c.removed]


def cut_creates_short(client: FakeClient) -> None:
    """Every later create of ``client`` is cut short by an interruption: the engine makes the container, but the
    KeyboardInterrupt comes before its id does (what removed_on_exit must still clean up)."""
    real = client.containers.create

    def cut_short(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    client.containers.create = cut_short
