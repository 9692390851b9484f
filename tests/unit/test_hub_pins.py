"""Hub models at a pinned commit (edgeasr models download), with a fake huggingface_hub: no hub here."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from runner import cli
from runner.errors import UserError
from runner.hub import PINS_FILE, download

SHA1, SHA2 = "a" * 40, "b" * 40


@pytest.fixture
def fake_hub(monkeypatch):
    """A hub whose main branch is at SHA1; records what was asked for."""
    calls: list[tuple[str, str]] = []
    state = {"head": SHA1}

    def snapshot_download(repo, *, revision, local_dir):
        calls.append((repo, revision))
        (local_dir_path := __import__("pathlib").Path(local_dir)).mkdir(parents=True, exist_ok=True)
        (local_dir_path / "config.json").write_text("{}")
        (local_dir_path / "model.bin").write_text(revision)
        return local_dir

    module = SimpleNamespace(snapshot_download=snapshot_download,
                             HfApi=lambda: SimpleNamespace(model_info=lambda repo: SimpleNamespace(sha=state["head"])))
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return SimpleNamespace(calls=calls, state=state)


def test_the_first_download_pins_the_commit_and_later_ones_keep_it(fake_hub, tmp_path):
    """The current commit is downloaded and pinned; when main moves on, the pinned commit is still the one used."""
    target = download("small", tmp_path, log=lambda *_: None)
    assert (target / "model.bin").read_text() == SHA1
    pins = json.loads((tmp_path / PINS_FILE).read_text())
    assert pins["small"] == {"repo": "Systran/faster-whisper-small", "revision": SHA1}
    fake_hub.state["head"] = SHA2
    download("small", tmp_path, log=lambda *_: None)
    assert fake_hub.calls == [("Systran/faster-whisper-small", SHA1)]  # already there at the pinned commit
    assert json.loads((target / "edgeasr-model.json").read_text())["revision"] == SHA1


def test_an_explicit_revision_must_be_a_commit_and_moves_the_pin(fake_hub, tmp_path):
    """--revision takes a 40-character commit (a branch can move), downloads it and pins it."""
    with pytest.raises(UserError, match="commit id"):
        download("small", tmp_path, "main", log=lambda *_: None)
    assert cli.main(["models", "download", "small", "--revision", SHA2, "--models-dir", str(tmp_path)]) == 0
    assert json.loads((tmp_path / PINS_FILE).read_text())["small"]["revision"] == SHA2
    with pytest.raises(UserError, match="installs from PyPI"):
        download("base", tmp_path, log=lambda *_: None)
    with pytest.raises(UserError, match="no hub repository"):
        download("nonesuch", tmp_path, log=lambda *_: None)
