"""The CLI from an empty folder outside the checkout (issue 28 item 4): the embedded data is found, models are
looked for in the per-user folder and `edgeasr models install` is named, an experiment's relative dataset is
found next to its file. Real pocketsphinx image, real engine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e


def edgeasr_in(folder: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(folder / "home"), "XDG_DATA_HOME": str(folder / "xdg"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "containers" / "common")])}
    env.pop("EDGEASR_MODELS_DIR", None)
    return subprocess.run([sys.executable, "-m", "runner.cli", *args], cwd=folder, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_run_from_an_empty_folder_uses_the_embedded_data(empty):
    r = edgeasr_in(empty, "run", "--backend", "pocketsphinx", "--limit", "2", "--telemetry", "none", "--warmup", "0",
                   "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert Path(summary["data_path"]).resolve() == (ROOT / "data" / "default").resolve(), summary["data_path"]
    assert summary["status"] == "ok" and summary["n_utterances"] == 2 and summary["n_failed"] == 0


def test_a_model_not_installed_names_the_per_user_folder_and_the_command(empty):
    r = edgeasr_in(empty, "run", "--model", "tiny.en", "--limit", "1")
    assert r.returncode == 2
    assert str(empty / "xdg" / "edgeasr" / "models") in r.stderr and "edgeasr models install tiny.en" in r.stderr
    assert "make models" not in r.stderr and "data/default" not in r.stderr  # the data was found


def test_sweep_finds_the_files_relative_dataset_next_to_it(empty, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(ROOT / "data" / "default", study / "speech")
    (study / "x.yaml").write_text("name: x\ndefaults: {dataset: speech, limit: 1, model: en-us, quant: fp32, "
                                  "warmup: 0, telemetry: {sampler: none}}\ngrid: {backends: [pocketsphinx]}\n")
    r = edgeasr_in(empty, "sweep", str(study / "x.yaml"), "--out", str(empty / "out"))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in (empty / "out" / "conditions.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["ok"]
