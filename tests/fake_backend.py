"""A fake backend made as a person adds one: a folder under containers/ and one table row (issue 10).

The folder's Dockerfile is pocketsphinx's x86 one with the name replaced, so that it carries whatever the image
rules ask of every backend (the shared entrypoint, the contract and versions labels); its requirements are
pocketsphinx's pins without the library (numpy; soundfile and soxr, which the entrypoint itself needs too, come
from containers/common/shared-requirements.txt as for every backend image); its adapter's
transcribe() returns a fixed string and its info() returns versions. The backend is x86-only: its row names one
platform and its folder holds one Dockerfile, as a CPU library's would.

Two ways in: ``install`` puts the folder into a temporary copy of containers/ (tests/unit/test_fake_backend.py:
everything that reads the table finds the row, without an engine); ``in_tree`` puts it into the checkout's own
containers/ for the length of a block, and this module is also a pytest plugin (``-p fake_backend`` with
``EDGEASR_FAKE_BACKEND_IN_TREE=1``) that adds the row to the table of a pytest run in another process, so the
contract suite runs with the new backend as it would after a person added it
(tests/e2e/test_fake_backend_e2e.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import backends
from runner.backends import Backend, quant_map
from runner.images import build as images

TAG = "edgeasr/fake-backend-for-test:latest"
TRANSCRIPT = "the fake backend always hears this"
TEMPLATE = "pocketsphinx"  # the x86 Dockerfile and requirements the fake one is made from

ADAPTER = f'''"""A fake backend for tests/e2e/test_fake_backend_e2e.py: a fixed transcript, whatever the audio."""

from __future__ import annotations


class FakeModel:
    def __init__(self, job):
        if job.model != "fixed" or job.device != "cpu" or job.backend_quant != "float32":
            raise ValueError(f"the fake backend runs its bundled model on cpu in float32, not {{job!r}}")

    def transcribe(self, audio) -> str:
        return {TRANSCRIPT!r}

    def info(self) -> dict:
        from edgeasr_entrypoint.system import library_versions

        return {{"n_params": None, "versions": library_versions(["numpy", "soundfile"])}}


def load(job) -> FakeModel:
    return FakeModel(job)
'''

FAKE = Backend(
    name="fake",
    library="fake-asr",
    quant_map=quant_map(cpu={"fp32": "float32"}),
    image=TAG,
    build_dir="fake",
    adapter="edgeasr_backend_fake",
    host_module="edgeasr_backend_fake",
    model_format="bundled",
    bundled_models=("fixed",),
    default_model="fixed",
    default_quant="fp32",
    check_model="fixed",
    platforms=("x86",),
    no_variant="a test backend: x86 only",
)


IN_TREE_ENV = "EDGEASR_FAKE_BACKEND_IN_TREE"


def make_containers(tmp: Path) -> Path:
    """A copy of containers/ (sources only, no wheels or caches) with the fake backend's folder added."""
    src = backends.CONTAINERS_DIR
    dst = tmp / "containers"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.whl", "__pycache__"))
    write_folder(src, dst / FAKE.build_dir)
    return dst


def write_folder(src: Path, folder: Path) -> None:
    """The fake backend's folder (Dockerfile, requirements, adapter, the template's wheels), made from the
    template's in ``src`` (a containers/ folder)."""
    folder.mkdir()
    dockerfile = (src / TEMPLATE / "Dockerfile").read_text()
    assert f"edgeasr_backend_{TEMPLATE}" in dockerfile and f"EDGEASR_BACKEND={TEMPLATE}" in dockerfile
    # Docker drops comment lines (also inside a continuation), so they go: they describe the template.
    steps = [line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")]
    (folder / "Dockerfile").write_text("\n".join(steps).replace(TEMPLATE, FAKE.name) + "\n")
    pins = [line for line in (src / TEMPLATE / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#") and not line.lower().startswith(TEMPLATE)]
    (folder / "requirements.txt").write_text("".join(f"{line}\n" for line in pins))
    (folder / f"{FAKE.adapter}.py").write_text(ADAPTER)
    wheels = folder / "wheels"
    wheels.mkdir()
    template = src / TEMPLATE / "wheels"
    for wheel in template.rglob("*.whl"):  # the template's wheelhouse holds these pins (in its arch/Python keys)
        (wheels / wheel.relative_to(template)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wheel, wheels / wheel.relative_to(template))


@contextlib.contextmanager
def in_tree() -> Iterator[Backend]:
    """The fake backend's folder in the checkout's containers/ and its row in this process's table, for the
    block: removed after, whatever happens (a folder left behind would be a backend without a row)."""
    folder = backends.CONTAINERS_DIR / FAKE.build_dir
    if folder.exists():
        raise RuntimeError(f"{folder} exists: a fake backend left behind by an interrupted test? remove it")
    try:
        write_folder(backends.CONTAINERS_DIR, folder)
        backends.BACKENDS[FAKE.name] = FAKE
        backends.IMAGES[FAKE.name] = FAKE
        yield FAKE
    finally:
        backends.BACKENDS.pop(FAKE.name, None)
        backends.IMAGES.pop(FAKE.name, None)
        shutil.rmtree(folder, ignore_errors=True)


def pytest_configure(config) -> None:
    """As a plugin (``pytest -p fake_backend``) with EDGEASR_FAKE_BACKEND_IN_TREE=1: the row is in the table
    before any test module reads it (the folder is the calling test's, already in containers/)."""
    if os.environ.get(IN_TREE_ENV) == "1":
        backends.BACKENDS[FAKE.name] = FAKE
        backends.IMAGES[FAKE.name] = FAKE



def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Put the fake row into the table (BACKENDS, IMAGES) and its folder into a containers/ of its own, for one
    test (monkeypatch undoes both)."""
    containers = make_containers(tmp_path)
    monkeypatch.setattr(backends, "CONTAINERS_DIR", containers)
    monkeypatch.setattr(images, "CONTAINERS_DIR", containers)
    monkeypatch.setitem(backends.BACKENDS, FAKE.name, FAKE)
    monkeypatch.setitem(backends.IMAGES, FAKE.name, FAKE)
    return FAKE
