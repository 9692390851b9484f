"""`edgeasr check-image` removes every container it started before it says so, a SIGTERM or Ctrl-C included: the
ONNX export's (a tool container, launch/tool_container.py) as well as the test jobs'. On a FAKE engine client
(tests/fake_docker.py: docker-py's own ``run`` over containers kept in memory), with a real SIGTERM sent to this
process while a container runs, turned into an interruption by the CLI's own handler."""

from __future__ import annotations

import os
import signal
import time

import pytest
from edgeasr_entrypoint.contract import CONTRACT_VERSION
from fake_docker import FakeClient, FakeImage, cut_creates_short

IMAGE = "edgeasr/onnxruntime:latest"
LABELS = {"org.edgeasr.backend": "onnxruntime", "org.edgeasr.contract": str(CONTRACT_VERSION),
          "org.edgeasr.versions": "onnxruntime=1.20.0"}


def _exporting(container) -> bool:
    return "export" in (container.kwargs.get("entrypoint") or [])


def _check_image(tmp_path, monkeypatch, program) -> tuple[int, FakeClient]:
    """`edgeasr check-image` of an onnxruntime image whose check model (a Hugging Face folder) has no ONNX export
    yet, so the export runs first; every container does what ``program`` says."""
    from runner import cli
    from runner.launch import docker_engine, tool_container

    hf = tmp_path / "models" / "small.en-hf"
    hf.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json"):
        (hf / name).write_text("{}")
    (hf / "model.safetensors").write_bytes(b"x")
    client = FakeClient({IMAGE: FakeImage("sha256:" + "a" * 64, [IMAGE], LABELS)}, program)
    monkeypatch.setattr(docker_engine, "connect", lambda: client)
    monkeypatch.setattr(tool_container, "connect", lambda: client)
    old = signal.getsignal(signal.SIGTERM)
    try:
        code = cli.main(["check-image", IMAGE, "--model", "small.en", "--models-dir", str(tmp_path / "models")])
    finally:
        signal.signal(signal.SIGTERM, old)
    return code, client


def _sigterm_in(which):
    def program(container):
        if which(container):
            os.kill(os.getpid(), signal.SIGTERM)  # the runner is told to stop while this container runs
            time.sleep(5)
            pytest.fail("SIGTERM did not interrupt")
        return 0
    return program


def test_a_sigterm_during_the_onnx_export_removes_the_export_container(tmp_path, monkeypatch, capsys):
    code, client = _check_image(tmp_path, monkeypatch, _sigterm_in(_exporting))
    err = capsys.readouterr().err
    assert code == 143 and "interrupted by SIGTERM; containers were removed" in err
    [export] = [c for c in client.created if _exporting(c)]
    assert export.removed and client.present() == [], [c.kwargs.get("entrypoint") for c in client.present()]
    assert not list((tmp_path / "models").glob(".staging.*"))


def test_a_sigterm_during_a_test_job_removes_its_container(tmp_path, monkeypatch, capsys):
    """The export passes (it leaves its marker), then the first test job is interrupted."""
    def program(container):
        if _exporting(container):
            out = container.kwargs["volumes"]
            staging = next(src for src, m in out.items() if m["bind"] == "/out")
            target = container.kwargs["entrypoint"][-1].rsplit("/", 1)[-1]
            os.makedirs(f"{staging}/{target}")
            open(f"{staging}/{target}/edgeasr-onnx.json", "w").write("{}")
            return 0
        return _sigterm_in(lambda c: True)(container)

    code, client = _check_image(tmp_path, monkeypatch, program)
    assert code == 143 and "containers were removed" in capsys.readouterr().err
    assert len(client.created) == 2 and client.present() == []


def test_a_container_whose_create_an_interruption_cut_short_is_found_by_its_label_and_removed():
    """The engine made the container, but the interruption came before its id did: removed_on_exit finds it by
    the label of its own block, and no other block's container."""
    from runner.launch.docker_engine import removed_on_exit

    client = FakeClient({IMAGE: FakeImage("sha256:" + "a" * 64, [IMAGE], LABELS)})
    other = client.containers.create(IMAGE, labels={"org.edgeasr.call": "another"})
    cut_creates_short(client)
    with pytest.raises(KeyboardInterrupt):
        with removed_on_exit(client) as create:
            create(image=IMAGE)
    assert len(client.created) == 2 and client.present() == [other]
