"""Adding a backend is its folder under containers/ plus one row in the backend table (issue 10): a fake one
(tests/fake_backend.py), built by the images module as `edgeasr images build` builds, passes every
`edgeasr check-image` check with no edit anywhere else."""

from __future__ import annotations

import docker
import pytest
from fake_backend import TAG, TRANSCRIPT, install

from runner.commands import check_image
from runner.images import build as images

pytestmark = pytest.mark.e2e


@pytest.fixture
def fake_backend(tmp_path, monkeypatch):
    return install(tmp_path, monkeypatch)


def test_a_new_row_and_folder_build_and_pass_check_image(fake_backend, tmp_path):
    client = docker.from_env()
    assert fake_backend.dockerfile.is_file() and fake_backend.requirements.is_file()
    if not any(fake_backend.wheelhouse.glob("*.whl")):  # no filled template wheelhouse: pip fills this one
        images.fill_wheelhouse(fake_backend, log=print)
    base = images.ensure_base(client, images.PUBLIC_BASE, log=print)
    try:
        images.build_image(client, fake_backend, base=base, log_path=tmp_path / "build.log", log=print)
        labels = client.images.get(TAG).labels
        assert labels["org.edgeasr.backend"] == "fake"
        assert set(images.parse_versions_label(labels["org.edgeasr.versions"])) == {"numpy", "soundfile", "soxr"}
        checks = check_image.run_checks(TAG, model=None, quant=None, models_dir=tmp_path / "models", timeout=300,
                                        log=lambda c: print(f"{'PASS' if c.ok else 'FAIL'}  {c.name}: {c.detail}"))
        failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
        assert not failed, failed
        assert len(checks) == 9  # 8 contract checks + the hardened settings, as for the shipped images
        assert any(TRANSCRIPT[:40] in c.detail for c in checks if c.name == "tiny job: transcripts.jsonl")
    finally:
        try:
            client.images.remove(TAG, force=True)
        except docker.errors.ImageNotFound:
            pass
