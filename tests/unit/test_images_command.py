"""`edgeasr images tag` and `images build --missing`: what `make run` / `make bench` ask the runner instead of
naming images in the Makefile (the table names them, per platform and device)."""

from __future__ import annotations

import argparse

import pytest

from runner.backends import BACKENDS
from runner.commands import images as images_cmd
from runner.images import make


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
    monkeypatch.setattr(make, "image_exists", lambda client, ref: ref == "edgeasr/faster-whisper:latest")

    def no_base(*a, **k):
        raise AssertionError("the base image was asked for")

    monkeypatch.setattr(make, "ensure_base", no_base)
    assert images_cmd.main(parse("build", "faster-whisper", "--missing")) == 0
    built = []
    monkeypatch.setattr(make, "ensure_base", lambda client, base, log: base)
    monkeypatch.setattr(make, "fill_wheelhouse", lambda *a, **k: None)
    monkeypatch.setattr(make, "build_image", lambda client, image, **k: built.append(k["tag"]) or "sha256:x")
    assert images_cmd.main(parse("build", "faster-whisper", "whisperx", "--missing", "--no-wheelhouse",
                                 "--log-dir", str(tmp_path / "logs"))) == 0
    assert built == ["edgeasr/torch-base:2.8", "edgeasr/whisperx:latest"]


@pytest.mark.parametrize("problem", [None, "it records no install of its Python packages"])
def test_build_missing_rebuilds_an_incomplete_runner_image(x86, monkeypatch, tmp_path, capsys, problem):
    """Regression (issue 26, item 4): compose built edgeasr/runner:latest behind a TLS-intercepting proxy without
    its packages, and `make runner-image` (`images build runner --missing`) took it as present. A present runner
    image is skipped only when it is complete; an incomplete one is built again (and says why), and the rebuilt
    one is checked in turn."""
    monkeypatch.setattr(images_cmd.docker_engine, "connect", lambda: object())
    monkeypatch.setattr(make, "image_exists", lambda client, ref: True)
    asked = []
    monkeypatch.setattr(make, "runner_image_problem", lambda client, ref: asked.append(ref) or problem)
    monkeypatch.setattr(make, "ensure_base", lambda client, base, log: base)
    monkeypatch.setattr(make, "fill_wheelhouse", lambda *a, **k: None)
    built = []
    monkeypatch.setattr(make, "build_image", lambda client, image, **k: built.append(k["tag"]) or "sha256:x")
    args = parse("build", "runner", "--missing", "--log-dir", str(tmp_path / "logs"))
    if problem is None:
        assert images_cmd.main(args) == 0 and built == [] and asked == ["edgeasr/runner:latest"]
        return
    with pytest.raises(images_cmd.UserError, match="built edgeasr/runner:latest, but it records no install"):
        images_cmd.main(args)  # the fake build keeps it incomplete: the check after the build says so
    assert built == ["edgeasr/runner:latest"] and asked == ["edgeasr/runner:latest"] * 2
    said = " ".join(capsys.readouterr().err.split())
    assert "runner:latest is present, but it records no install of its Python packages: building it again" in said


def test_the_runner_build_may_not_defer_its_install_and_pins_with_extras_are_read():
    """`edgeasr images build runner` serves a wheelhouse: a build that could not install is a failure there
    (EDGEASR_ALLOW_DEFERRED=0), never an incomplete image; and `ray[client]==...` is a pin of ray, so the versions
    label (and the freshness table) names it."""
    from runner.backends import RUNNER_IMAGE
    from runner.images.build import build_args, pinned_versions

    assert build_args(RUNNER_IMAGE, wheels_url="", versions="", base=None)["EDGEASR_ALLOW_DEFERRED"] == "0"
    assert "EDGEASR_ALLOW_DEFERRED" not in build_args(BACKENDS["faster-whisper"], wheels_url="", versions="",
                                                      base=None)
    pins = pinned_versions("ray[client]==2.60.0\nray [client, default] == 2.61.0  # x\ndocker==7.2.0\n")
    assert pins == {"ray": "2.61.0", "docker": "7.2.0"}
    assert pinned_versions(RUNNER_IMAGE.requirements)["ray"]
