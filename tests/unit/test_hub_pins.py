"""Hub models at a pinned commit (edgeasr models download), with a fake huggingface_hub: no hub here."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import pytest

from runner import cli
from runner.errors import UserError
from runner.models.hub import PINS_FILE, download

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


def test_allow_download_of_a_hub_name_downloads_it_pinned_and_runs_the_container_offline(fake_hub, tmp_path, root):
    """`run --allow-download --model small`: the host downloads small at its pinned commit into the models
    folder and the backend container gets it read-only, with no network and offline hubs (issue 14, item 13)."""
    from runner.models.hub import pinned_spec
    from runner.launch.job import make_env, make_job
    from runner.spec import Settings, build_run_spec

    spec = build_run_spec(Settings(backend="faster-whisper", model="small", quant="int8", device="cpu",
                                   dataset=str(root / "data" / "default")),
                          out=str(tmp_path / "o"), models_dir=tmp_path / "models", allow_download=True)
    assert spec.model.source == "hub" and spec.model.host_dir is None and spec.hardening.network
    pinned = pinned_spec(spec, tmp_path / "models", log=lambda *_: None)
    assert pinned.model.host_dir == tmp_path / "models" / "small"
    assert (pinned.model.host_dir / "model.bin").read_text() == SHA1
    assert not pinned.hardening.network and not pinned.allow_download and pinned.hub_cache_dir is None
    assert make_job(pinned)["model"] == "/models/small" and make_env(pinned)["HF_HUB_OFFLINE"] == "1"
    assert json.loads((tmp_path / "models" / PINS_FILE).read_text())["small"]["revision"] == SHA1
    again = build_run_spec(Settings(backend="faster-whisper", model="small", quant="int8", device="cpu",
                                    dataset=str(root / "data" / "default")),
                           out=str(tmp_path / "p"), models_dir=tmp_path / "models")  # now installed: no download
    assert again.model.host_dir == tmp_path / "models" / "small" and pinned_spec(again, tmp_path / "models") is again
