"""The JetPack 5 whisperx build step (containers/whisperx/store_vad_model.py) keeps whisperx's VAD model in
the image only when that whisperx downloads it at first use, and only a copy whose SHA-256 is the one
whisperx checks; nothing found is a warning, not a failed build. Run against the whisperx stand-ins
(tests/fixtures/standins), with the network sources replaced."""

from __future__ import annotations

import hashlib
import importlib.util
import sys

import pytest
from helpers import ROOT

STANDINS = ROOT / "tests" / "fixtures" / "standins"


@pytest.fixture
def store(monkeypatch):
    def _load(standin: str):
        for name in list(sys.modules):
            if name.split(".")[0] == "whisperx":
                monkeypatch.delitem(sys.modules, name)
        monkeypatch.syspath_prepend(str(STANDINS / standin))
        spec = importlib.util.spec_from_file_location("store_vad_model_under_test",
                                                      ROOT / "containers" / "whisperx" / "store_vad_model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.from_url = lambda url, tmp: []  # no network in tests
        module.from_pypi = lambda tmp: []
        return module

    yield _load
    for name in list(sys.modules):
        if name.split(".")[0] == "whisperx":
            del sys.modules[name]


def test_a_copy_in_the_bases_torch_home_with_whisperxs_checksum_is_stored(store, tmp_path, monkeypatch, capsys):
    module = store("whisperx_2024_01")
    home = tmp_path / "torch"
    home.mkdir()
    (home / "whisperx-vad-segmentation.bin").write_bytes(b"segmentation weights")
    digest = hashlib.sha256(b"segmentation weights").hexdigest()
    import whisperx.vad

    url = f"https://example.invalid/segmentation/{digest}/pytorch_model.bin"  # whisperx checks the sha in its URL
    monkeypatch.setattr(whisperx.vad, "VAD_SEGMENTATION_URL", url)
    monkeypatch.setenv("TORCH_HOME", str(home))
    dest = tmp_path / "opt" / "whisperx-vad-segmentation.bin"
    assert module.main(str(dest)) == 0
    assert dest.read_bytes() == b"segmentation weights"
    assert "stored" in capsys.readouterr().out


def test_a_copy_with_another_checksum_is_not_stored_and_the_build_only_warns(store, tmp_path, monkeypatch, capsys):
    module = store("whisperx_2024_01")
    (tmp_path / "whisperx-vad-segmentation.bin").write_bytes(b"something else")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    dest = tmp_path / "out" / "vad.bin"
    assert module.main(str(dest)) == 0
    assert not dest.exists()
    out = capsys.readouterr().out
    assert "WARNING" in out and "--allow-download" in out


def test_a_whisperx_that_bundles_its_model_needs_nothing(store, tmp_path, capsys):
    module = store("whisperx_3_8")
    dest = tmp_path / "vad.bin"
    assert module.main(str(dest)) == 0
    assert not dest.exists()
    assert "nothing to store" in capsys.readouterr().out
