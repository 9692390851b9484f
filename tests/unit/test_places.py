"""Where edgeasr finds models and data inside a checkout and outside one (issue 28 item 4: the CLI works from an
empty folder after a pip install; paths in an experiment file resolve next to the file)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from runner.host import places
from runner.experiment import load_experiment


@pytest.fixture
def no_models_env(monkeypatch, tmp_path):
    monkeypatch.delenv(places.MODELS_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def test_models_live_in_the_checkout_inside_it_and_in_the_per_user_folder_elsewhere(no_models_env, tmp_path):
    assert places.default_models_dir(ROOT) == ROOT / "models"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert places.default_models_dir(empty) == tmp_path / "xdg" / "edgeasr" / "models"
    (empty / "models").mkdir()  # a folder that already holds models/ (compose's mount of a checkout) keeps it
    assert places.default_models_dir(empty) == (empty / "models").resolve()


def test_the_models_folder_can_be_overridden(monkeypatch, tmp_path):
    monkeypatch.setenv(places.MODELS_ENV, str(tmp_path / "m"))
    assert places.default_models_dir(ROOT) == tmp_path / "m"


def test_the_embedded_dataset_is_found_from_any_folder(tmp_path):
    assert places.data_path("data/default", tmp_path) == ROOT / "data" / "default"
    assert places.data_path("data/other", tmp_path) == tmp_path / "data" / "other"  # the error names where
    here = tmp_path / "data" / "default"
    here.mkdir(parents=True)
    assert places.data_path("data/default", tmp_path) == here  # one of the user's own is theirs


def test_a_pip_installed_copy_finds_the_embedded_dataset_under_its_prefix(monkeypatch, tmp_path):
    """No checkout around the code (a wheel): the copy pyproject's data-files installs under <prefix>/share."""
    monkeypatch.setattr(places, "ROOT", tmp_path / "site-packages")
    shared = tmp_path / "prefix" / "share" / "edgeasr" / "data" / "default"
    shared.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "prefix"))
    assert places.embedded_dataset() == shared
    assert places.data_path("data/default", tmp_path / "elsewhere") == shared


def test_the_wheel_carries_the_embedded_dataset():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"share/edgeasr/data/default" = ["data/default/*"]' in text
    assert (ROOT / places.EMBEDDED_DATASET / "manifest.jsonl").is_file()


def test_an_experiments_relative_dataset_is_found_next_to_the_file(monkeypatch, tmp_path):
    """Regression: `edgeasr sweep <elsewhere>/x.yaml` looked for the YAML's relative dataset in the current
    folder, never next to the YAML."""
    folder = tmp_path / "study"
    shutil.copytree(ROOT / "data" / "default", folder / "speech")
    (folder / "x.yaml").write_text("name: x\ndefaults: {dataset: speech, limit: 1, model: tiny.en, quant: int8}\n"
                                   "grid: {backends: [faster-whisper]}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    exp = load_experiment(folder / "x.yaml")
    assert {c.dataset for g in exp.groups for c in g.conditions} == {str((folder / "speech").resolve())}


def test_a_missing_dataset_says_both_places_it_was_looked_for(monkeypatch, tmp_path):
    from runner.errors import UserError

    (tmp_path / "x.yaml").write_text("name: x\ndefaults: {dataset: nowhere, model: tiny.en, quant: int8}\n"
                                     "grid: {backends: [faster-whisper]}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(UserError) as err:
        load_experiment(tmp_path / "x.yaml")
    text = str(err.value) + " ".join(getattr(err.value, "problems", []) or [])
    assert str(tmp_path / "nowhere") in text and str(elsewhere / "nowhere") in text
