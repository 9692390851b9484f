"""Before a sweep the runner installs the models and builds the images the experiment needs, only where
missing (runner/images/prepare.py): what it picks, and that present ones are left alone."""

from pathlib import Path
from types import SimpleNamespace

from runner.images import prepare


def _group(model="tiny.en", backend="faster-whisper", device="cpu", image=None):
    return SimpleNamespace(model=model, backend=backend, device=device, image=image)


def test_missing_packaged_models_and_their_conversions_are_picked(tmp_path):
    (tmp_path / "base").mkdir()  # a folder, but not a model: still missing
    groups = [_group("tiny.en"), _group("tiny.en"), _group("base-hf"), _group("/my/model"), _group("org/hub-name")]
    assert prepare.missing_models(groups, tmp_path) == [("tiny.en", False), ("base", True)]


def test_installed_models_are_not_picked(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "is_model_dir", lambda path: True)
    assert prepare.missing_models([_group("tiny.en"), _group("base-hf")], tmp_path) == []


def test_only_the_backend_tables_own_images_are_built():
    groups = [_group(), _group(device="cuda"), _group(image="my/own:tag"), _group(backend="nope"), _group()]
    assert prepare.backends_needing_images(groups) == [("faster-whisper", "cpu"), ("faster-whisper", "cuda")]


def test_prepare_installs_each_missing_model_once_and_builds_nothing_for_the_local_engine(tmp_path, monkeypatch):
    installed, converted, lines = [], [], []
    monkeypatch.setattr(prepare, "install_model", lambda name, d, log: installed.append(name))
    monkeypatch.setattr(prepare, "ensure_converted", lambda name, d, log: converted.append(name))
    exp = SimpleNamespace(groups=[_group("tiny.en"), _group("tiny.en-hf"), _group("base")])
    prepare.prepare(exp, Path(tmp_path), engine="local", log=lines.append)
    assert installed == ["tiny.en", "base"] and converted == ["tiny.en"]
    assert any("installing model tiny.en" in line for line in lines)
