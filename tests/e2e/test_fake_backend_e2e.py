"""Adding a backend is its folder under containers/ plus one row in the backend table (issue 10): a fake one
(tests/fake_backend.py), x86-only as a CPU library is, put into the checkout's containers/ as a person adds it,
passes the contract suite and, built by the images module as `edgeasr images build` builds, every
`edgeasr check-image` check, with no edit anywhere else."""

from __future__ import annotations

import os
import subprocess
import sys

import docker
import pytest
from fake_backend import IN_TREE_ENV, TAG, TRANSCRIPT, in_tree
from helpers import ROOT

from runner.commands import check_image
from runner.images import build as images

pytestmark = pytest.mark.e2e


@pytest.fixture
def fake_backend():
    """The fake backend's folder in the checkout's containers/ (the real layout) and its row in the table."""
    with in_tree() as fake:
        yield fake


def test_a_new_row_and_folder_build_and_pass_check_image(fake_backend, tmp_path):
    client = docker.from_env()
    assert fake_backend.dockerfile.is_file() and fake_backend.requirements.is_file()
    if not any(images.wheelhouse(fake_backend).glob("*.whl")):  # no filled template wheelhouse: pip fills this one
        images.fill_wheelhouse(fake_backend, log=print)
    base = images.ensure_base(client, images.PUBLIC_BASE, log=print)
    try:
        images.build_image(client, fake_backend, base=base, log_path=tmp_path / "build.log", log=print)
        labels = client.images.get(TAG).labels
        assert labels["org.edgeasr.backend"] == "fake" and labels["org.edgeasr.platform"] == "x86"
        assert set(images.parse_versions_label(labels["org.edgeasr.versions"])) == {"numpy", "soundfile", "soxr"}
        checks = check_image.run_checks(TAG, model=None, quant=None, models_dir=tmp_path / "models", timeout=300,
                                        log=lambda c: print(f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}"))
        failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
        assert not failed, failed
        assert len(checks) == 11  # 10 contract checks + the hardened settings, as for the shipped images
        assert any(TRANSCRIPT[:40] in c.detail for c in checks if c.name == "tiny job: transcripts.jsonl")
    finally:
        try:
            client.images.remove(TAG, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_an_x86_only_backend_in_the_real_tree_passes_the_contract_suite():
    """Regression (issue 21): a backend whose row names only x86 and whose folder has only its Dockerfile failed
    the suite: test_dockerfile_variants required a Dockerfile.jetson of every backend, test_contract required
    it absent. The contract tests run in a pytest of their own with the row in the table (the plugin) and the
    folder in containers/."""
    with in_tree() as fake:
        assert [p.name for p in fake.dockerfile.parent.glob("Dockerfile*")] == ["Dockerfile"]
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "fake_backend", "-p", "no:cacheprovider",
                               "tests/contract/test_contract.py", "tests/contract/test_dockerfile_variants.py"],
                              cwd=ROOT, env={**os.environ, IN_TREE_ENV: "1"}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "fake" in proc.stdout or " passed" in proc.stdout
