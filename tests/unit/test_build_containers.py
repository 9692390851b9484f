"""The containers `edgeasr images build` makes for itself (reading the carried versions a variant's build wrote, the
runner image's recorded install) are removed however the build ends, an interruption included: they go through
docker_engine.removed_on_exit like every other container of the runner. On a FAKE engine client
(tests/fake_docker.py: docker-py's own ``run`` over containers kept in memory)."""

from __future__ import annotations

import pytest
from fake_docker import FakeClient, FakeImage, cut_creates_short

from runner.errors import Interrupted
from runner.images.build import read_carried_versions, runner_image_problem

IMAGE = "edgeasr/faster-whisper:jetson-r35"
RUNNER = "edgeasr/runner:latest"


def _client(program=lambda c: 0) -> FakeClient:
    return FakeClient({ref: FakeImage("sha256:" + "a" * 64, [ref], {}) for ref in (IMAGE, RUNNER)}, program)


def _interrupted(container) -> int:
    raise Interrupted("SIGTERM")  # what the CLI's SIGTERM handler raises inside a blocking wait


def test_reading_the_carried_versions_removes_its_container_when_interrupted():
    """docker-py's ``containers.run(remove=True)`` removes the container only after it exits: an interruption while
    it ran left it behind."""
    client = _client(_interrupted)
    with pytest.raises(Interrupted):
        read_carried_versions(client, IMAGE, "/opt/edgeasr/versions.txt")
    assert len(client.created) == 1 and client.present() == []


def test_reading_the_carried_versions_is_confined_and_leaves_nothing():
    def program(container):
        container.stdout = b"ctranslate2=3.24.0,faster-whisper=0.10.1\n"
        return 0

    client = _client(program)
    line = read_carried_versions(client, IMAGE, "/opt/edgeasr/versions.txt")
    assert line == "ctranslate2=3.24.0,faster-whisper=0.10.1"
    [container] = client.created
    assert container.kwargs["network_disabled"] and container.kwargs["read_only"] and client.present() == []


def test_a_runner_image_check_whose_create_an_interruption_cut_short_leaves_nothing():
    """The engine made the container, but the interruption came before its id did."""
    client = _client()
    cut_creates_short(client)
    with pytest.raises(KeyboardInterrupt):
        runner_image_problem(client, RUNNER)
    assert len(client.created) == 1 and client.present() == []


def test_a_runner_image_check_removes_its_container():
    client = _client()
    assert "records no install" in runner_image_problem(client, RUNNER)
    assert len(client.created) == 1 and client.present() == []
    assert runner_image_problem(client, "edgeasr/runner:absent") == "it is not built"
