"""Library versions as an axis, end to end: two images built with `--set`, one sweep over both, and a report
that shows both versions; `images versions` reads the built images' labels. Real engine, real weights."""

from __future__ import annotations

import json
import subprocess
import sys

import docker
import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e

VERSIONS = ("4.6.0", "4.8.5")  # an older CTranslate2 and the pin (experiments/ct2-versions.yaml names both tags)


def edgeasr(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def ct2_images():
    """edgeasr/faster-whisper:ct2-<version> for each version, built with --set (cached layers where unchanged)."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the end-to-end tests need a running Docker Engine: {exc}")
    tags = {}
    for version in VERSIONS:
        tag = f"edgeasr/faster-whisper:ct2-{version}"
        r = edgeasr("images", "build", "faster-whisper", "--set", f"ctranslate2={version}", "--tag", tag)
        assert r.returncode == 0, r.stderr[-2000:]
        tags[version] = tag
    r = edgeasr("models", "install", "tiny.en")
    assert r.returncode == 0, r.stderr
    return client, tags


def test_set_builds_say_what_is_inside(ct2_images):
    client, tags = ct2_images
    for version, tag in tags.items():
        label = client.images.get(tag).labels["org.edgeasr.versions"]
        assert f"ctranslate2={version}" in label.split(","), label
    r = edgeasr("images", "versions", *tags.values(), "--offline", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    ct2 = {row["image"]: row["pinned"] for row in rows if row["library"] == "ctranslate2"}
    assert ct2 == {tag: version for version, tag in tags.items()}
    assert all(row["status"] == "unknown" and "index not reachable" in row["note"] for row in rows)


def test_a_sweep_over_two_ctranslate2_versions_reports_both(ct2_images, tmp_path):
    out = tmp_path / "sweep"
    r = edgeasr("sweep", "ct2-versions", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    records = [json.loads(line) for line in (out / "conditions.jsonl").read_text().splitlines()]
    ran = {(rec["condition"]["image"], rec["summary"]["versions"]["ctranslate2"]) for rec in records}
    assert ran == {(f"edgeasr/faster-whisper:ct2-{v}", v) for v in VERSIONS}  # each image ran its own library
    assert all(rec["status"] == "ok" for rec in records)
    r = edgeasr("report", str(out))
    assert r.returncode == 0, r.stderr
    html = (out / "report" / "report.html").read_text()
    assert ">versions<" in html and all(f"ctranslate2={v}" in html for v in VERSIONS)
