"""A new backend is its folder under containers/ plus one table row (issue 10): everything that lists, builds,
tags or checks backends finds the fake one (tests/fake_backend.py) with no other edit. What needs an engine
(the build and check-image itself) is tests/e2e/test_fake_backend_e2e.py; here check-image's test job runs
through the entrypoint in this process and passes check-image's own output checks."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile

import pytest
from fake_backend import FAKE, TAG, TRANSCRIPT, install

from runner.commands import check_image
from runner.commands import images as images_cmd
from runner.images import build as images
from runner.models.resolve import resolve_backend_model


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", tmp_path / "no-release")  # an x86 host
    return install(tmp_path, monkeypatch)


def parser(add_arguments) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p


def test_the_images_command_builds_and_tags_the_new_row(fake, capsys):
    """`edgeasr images build` with no names includes it; `images tag` names its image."""
    assert "fake" in parser(images_cmd.add_arguments).parse_args(["build"]).backends
    assert images_cmd.main(parser(images_cmd.add_arguments).parse_args(["tag", "fake"])) == 0
    assert capsys.readouterr().out.strip() == TAG


def test_the_build_context_and_labels_come_from_its_folder(fake):
    """The build context holds its Dockerfile, its adapter and the shared entrypoint, not its wheelhouse; its
    versions label is its requirements' pins."""
    with images._context(fake) as context:
        names = tarfile.open(fileobj=io.BytesIO(context.read())).getnames()
    assert {"fake/Dockerfile", "fake/edgeasr_backend_fake.py", "fake/requirements.txt",
            "common/edgeasr_entrypoint/__main__.py"} <= set(names)
    assert not [n for n in names if n.startswith("fake/wheels/")]
    assert set(images.parse_versions_label(images.versions_label(fake))) == {"numpy", "soundfile", "soxr"}
    assert "EDGEASR_BACKEND=fake" in fake.dockerfile.read_text()  # the backend label is the image's own name


def test_check_image_needs_no_edit_for_it(fake, tmp_path, monkeypatch):
    """check-image's test job for the row (its check model, quant and backend quant) runs through the entrypoint
    with the fake adapter and passes check-image's checks of events, transcripts and status."""
    import edgeasr_entrypoint.__main__ as entry

    resolved = resolve_backend_model(fake, fake.check_model, tmp_path / "models", offline=True)
    assert resolved.host_dir is None and resolved.container_path == "fixed"
    data, out = tmp_path / "data", tmp_path / "out"
    check_image.write_test_data(data)
    out.mkdir()
    job = check_image.tiny_job(fake, resolved.container_path, fake.default_quant, data_dir=str(data))
    (out / "job.json").write_text(json.dumps(job))
    monkeypatch.setenv("EDGEASR_ADAPTER", fake.adapter)
    monkeypatch.setenv("EDGEASR_BACKEND", fake.name)
    monkeypatch.syspath_prepend(str(fake.dockerfile.parent))
    monkeypatch.delitem(sys.modules, fake.adapter, raising=False)
    assert entry.main(["x", str(out / "job.json")]) == 0
    from runner.results import read_jsonl

    assert check_image._events_ok(read_jsonl(out / "events.jsonl"))[0]
    ok, detail = check_image._transcripts_ok(read_jsonl(out / "transcripts.jsonl"))
    assert ok and TRANSCRIPT[:40] in detail, detail
    status = json.loads((out / "status.json").read_text())
    assert check_image._status_ok(status)[0], status
    assert status["backend"] == "fake" and status["backend_quant"] == "float32"


def test_the_row_is_gone_after_the_test():
    """monkeypatch undoes the row: the shipped table is untouched for every other test."""
    from runner.backends import BACKENDS, IMAGES

    assert FAKE.name not in BACKENDS and FAKE.name not in IMAGES
