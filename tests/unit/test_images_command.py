"""`edgeasr images tag` and `images build --missing`: what `make run` / `make bench` ask the runner instead of
naming images in the Makefile (the table names them, per platform and device)."""

from __future__ import annotations

import argparse

import pytest

from runner.backends import BACKENDS
from runner.commands import images as images_cmd


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    images_cmd.add_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture
def x86(monkeypatch, tmp_path):
    monkeypatch.setattr("runner.host.platforms.TEGRA_RELEASE", tmp_path / "none")


def test_tag_prints_the_image_a_run_uses(x86, capsys):
    """The CPU image on x86, the cuda variant for a CUDA run; no engine is asked."""
    assert images_cmd.main(parse("tag", "whisperx")) == 0
    assert images_cmd.main(parse("tag", "whisperx", "--device", "cuda")) == 0
    assert capsys.readouterr().out.split() == ["edgeasr/whisperx:latest", "edgeasr/whisperx:cuda"]


def test_build_without_names_builds_every_row():
    """`make images` passes no names: the table's rows are the default list."""
    assert parse("build").backends == list(BACKENDS)


def test_build_missing_skips_present_images_without_touching_the_base(x86, monkeypatch, tmp_path):
    """`make run` builds its image only when absent; when it is present nothing is built and no base image
    is pulled or debootstrapped."""
    monkeypatch.setattr(images_cmd.docker_engine, "connect", lambda: object())
    monkeypatch.setattr(images_cmd, "image_exists", lambda client, ref: ref == "edgeasr/faster-whisper:latest")

    def no_base(*a, **k):
        raise AssertionError("the base image was asked for")

    monkeypatch.setattr(images_cmd, "ensure_base", no_base)
    assert images_cmd.main(parse("build", "faster-whisper", "--missing")) == 0
    built = []
    monkeypatch.setattr(images_cmd, "ensure_base", lambda client, base, log: base)
    monkeypatch.setattr(images_cmd, "fill_wheelhouse", lambda *a, **k: None)
    monkeypatch.setattr(images_cmd, "build_image", lambda client, image, **k: built.append(k["tag"]) or "sha256:x")
    assert images_cmd.main(parse("build", "faster-whisper", "whisperx", "--missing", "--no-wheelhouse",
                                 "--log-dir", str(tmp_path / "logs"))) == 0
    assert built == ["edgeasr/torch-base:2.8", "edgeasr/whisperx:latest"]
