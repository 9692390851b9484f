"""Hub models at a pinned commit, downloaded on the host by default (issue 25, item 8), against the fake hub
(tests/fake_hub.py): no hub is reachable here. `make run MODEL=medium QUANT=int8` as typed; --offline and an
unreachable hub in one sentence; an interrupted download; a hub answering with another commit than the pin; the
transformers checkpoint and the ONNX export; sweeps."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from fake_hub import SHA1, SHA2, FakeHub, ct2_files, hf_files

from runner import cli
from runner.errors import UserError
from runner.launch.job import make_env, make_job
from runner.models.hub import PINS_FILE, download, staging_dir, hub_model
from runner.spec import Settings, build_run_spec, with_hub_models

QUIET = {"log": lambda *_: None}


@pytest.fixture
def hub(monkeypatch) -> FakeHub:
    return FakeHub().install(monkeypatch)


def _pins(models: Path) -> dict:
    return json.loads((models / PINS_FILE).read_text())


def _spec(root: Path, tmp_path: Path, models: Path | None = None, **settings):
    s = Settings(**{"backend": "faster-whisper", "model": "medium", "quant": "int8", "device": "cpu",
                    "dataset": str(root / "data" / "default"), **settings})
    return build_run_spec(s, out=str(tmp_path / "out"), models_dir=models or tmp_path / "models")


def test_the_first_download_pins_the_commit_and_later_ones_keep_it(hub, tmp_path):
    """The current commit is downloaded (only the files the backend loads) and pinned; when main moves on, the
    installed folder at its pin is used without asking the hub at all."""
    target = download("small", tmp_path, **QUIET)
    assert (target / "model.bin").read_bytes() == ct2_files(SHA1)["model.bin"]
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "edgeasr-model.json", "model.bin",
                                                        "tokenizer.json", "vocabulary.txt"]
    assert _pins(tmp_path)["small"] == {"repo": "Systran/faster-whisper-small", "revision": SHA1}
    marker = json.loads((target / "edgeasr-model.json").read_text())
    assert marker["revision"] == SHA1 and marker["files_sha256"]["model.bin"] == \
        hashlib.sha256(ct2_files(SHA1)["model.bin"]).hexdigest()
    hub.head, hub.calls[:] = SHA2, []
    assert download("small", tmp_path, **QUIET) == target and hub.calls == []
    assert not list(tmp_path.glob(".small.download-*"))


def test_an_explicit_revision_must_be_a_commit_and_moves_the_pin(hub, tmp_path):
    """--revision takes a 40-character commit (a branch can move), downloads it and pins it."""
    with pytest.raises(UserError, match="commit id"):
        download("small", tmp_path, "main", **QUIET)
    assert cli.main(["models", "download", "small", "--revision", SHA2, "--models-dir", str(tmp_path)]) == 0
    assert _pins(tmp_path)["small"]["revision"] == SHA2
    with pytest.raises(UserError, match="installs from PyPI"):
        download("base", tmp_path, **QUIET)
    with pytest.raises(UserError, match="no hub repository"):
        download("nonesuch", tmp_path, **QUIET)


def test_make_run_medium_int8_as_typed_downloads_on_the_host_and_runs_the_container_offline(hub, tmp_path, root):
    """`make run MODEL=medium QUANT=int8` (no flag): medium is not installed, so the spec resolves it to a download;
    after every check the host fetches it at its pinned commit, saying how much and where, and the container
    gets the folder read-only, with no network and offline hubs."""
    spec = _spec(root, tmp_path)
    assert spec.model.source == "hub" and spec.model.host_dir is None
    assert not spec.hardening.network and not spec.allow_download and spec.hub_cache_dir is None
    said: list[str] = []
    ready = with_hub_models(spec, tmp_path / "models", log=said.append)
    folder = tmp_path / "models" / "medium"
    assert ready.model.host_dir == folder and (folder / "model.bin").read_bytes() == ct2_files(SHA1)["model.bin"]
    assert not ready.hardening.network and make_job(ready)["model"] == "/models/medium"
    assert make_env(ready)["HF_HUB_OFFLINE"] == "1"
    assert f"downloading Systran/faster-whisper-medium at commit {SHA1[:12]}: 4 files" in said[0]
    assert " kB, into " in said[0] and str(folder) in said[0] and PINS_FILE in said[-1]
    assert _pins(tmp_path / "models")["medium"]["revision"] == SHA1
    again = _spec(root, tmp_path / "2", model=str(folder))  # installed now: a folder like any other
    assert with_hub_models(again, tmp_path / "models") is again


def test_offline_and_an_unreachable_hub_refuse_in_one_sentence_and_start_nothing(hub, tmp_path, root, capsys):
    """--offline: the hub is never asked; an unreachable hub: the same sentence with the reason; either way one
    line on stderr, exit 2, no run folder and no model folder."""
    models = tmp_path / "models"
    args = ["run", "--model", "medium", "--quant", "int8", "--data", str(root / "data" / "default"),
            "--models-dir", str(models), "--out", str(tmp_path / "run")]
    assert cli.main([*args, "--offline"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"edgeasr: --model: model 'medium' is not installed in {models} and --offline forbids "
                   f"downloading it; "
                   f"download it on a machine with network (`edgeasr models download medium`) and copy "
                   f"{models / 'medium'} and {PINS_FILE} here")
    assert hub.calls == []
    hub.unreachable = True
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the hub is not reachable for Systran/faster-whisper-medium (HubUnreachable)" in err[0]
    assert not (tmp_path / "run").exists() and not (models / "medium").exists()


def test_an_interrupted_download_leaves_no_model_and_the_next_run_resumes_it(hub, tmp_path):
    """Ctrl-C half-way through the weights: no medium folder (only the staging folder, whose name is never a
    model's), the interruption says what was kept; the next download resumes the partial file and installs the
    whole folder; a staging folder of another commit is removed, never mixed in."""
    hub.interrupt_once = True
    models = tmp_path / "models"
    with pytest.raises(KeyboardInterrupt) as stop:
        download("medium", models, **QUIET)
    assert not (models / "medium").exists() and "the next run resumes them" in stop.value.hint
    staging = staging_dir(models, hub_model("medium"), SHA1)
    assert staging.is_dir() and not (models / PINS_FILE).exists()
    (models / f".medium.download-{SHA2[:12]}").mkdir()  # left by a download of another commit
    said: list[str] = []
    target = download("medium", models, log=said.append)
    assert hub.resumed == ["model.bin"] and "resuming" in said[0]
    assert (target / "model.bin").read_bytes() == ct2_files(SHA1)["model.bin"]
    assert sorted(p.name for p in models.iterdir()) == [PINS_FILE, "medium"]


def test_a_hub_answering_with_another_commit_than_the_pin_is_refused(hub, tmp_path):
    """The pin says SHA1; a hub (a mirror, a proxy) that answers for it with SHA2, or serves files of SHA2, is
    refused: nothing is installed, the pin stays, the wrong bytes are not kept for a resume."""
    models = tmp_path / "models"
    models.mkdir()
    (models / PINS_FILE).write_text(json.dumps({"medium": {"repo": "Systran/faster-whisper-medium",
                                                           "revision": SHA1}}))
    hub.answer_commit = SHA2
    with pytest.raises(UserError, match=f"answered for Systran/faster-whisper-medium at commit {SHA1[:12]} with "
                                        f"commit {SHA2[:12]}"):
        download("medium", models, **QUIET)
    hub.answer_commit, hub.serve_commit = None, SHA2
    with pytest.raises(UserError, match=f"with config.json of commit {SHA2[:12]}"):
        download("medium", models, **QUIET)
    assert sorted(p.name for p in models.iterdir()) == [PINS_FILE]
    assert _pins(models)["medium"]["revision"] == SHA1


def test_transformers_gets_the_matching_openai_checkpoint_and_onnxruntime_exports_it(hub, tmp_path, root,
                                                                                     monkeypatch):
    """transformers' medium is openai/whisper-medium (its own folder, medium-hf, and pin; no TensorFlow, Flax or
    PyTorch-pickle weights); onnxruntime's is the ONNX export made from that checkpoint once it is on disk."""
    from runner import spec as spec_mod

    tf = _spec(root, tmp_path, backend="transformers", quant="fp32")
    ready = with_hub_models(tf, tmp_path / "models", **QUIET)
    folder = tmp_path / "models" / "medium-hf"
    assert ready.model.host_dir == folder and (folder / "model.safetensors").read_bytes() == \
        hf_files(SHA1)["model.safetensors"]
    assert not any((folder / f).exists() for f in ("tf_model.h5", "flax_model.msgpack", "pytorch_model.bin"))
    assert _pins(tmp_path / "models")["medium-hf"] == {"repo": "openai/whisper-medium", "revision": SHA1}
    exported = []

    def fake_export(hf_dir: Path, out_dir: Path) -> Path:  # the real export runs in the backend's image
        exported.append(hf_dir)
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        (out_dir / "edgeasr-onnx.json").write_text("{}")
        return out_dir

    monkeypatch.setattr(spec_mod, "_onnx_exporter", lambda image, engine: fake_export)
    models = tmp_path / "onnx-models"
    onnx = _spec(root, tmp_path / "o", models, backend="onnxruntime", quant="fp32")
    assert onnx.model.source == "hub"
    ready = with_hub_models(onnx, models, **QUIET)
    assert exported == [models / "medium-hf"] and ready.model.source == "exported"
    assert ready.model.host_dir.name.startswith("medium-onnx-")


def test_a_sweep_downloads_its_hub_models_pinned_and_offline_refuses_them(hub, tmp_path, root):
    """The planner resolves a group's hub name like a run: downloaded at its pinned commit before its key is
    made (the key hashes the folder); with --offline the group is refused with the same sentence."""
    from runner import plan
    from runner.experiment import load_experiment
    from runner.launch.engines import make_engine

    exp_file = tmp_path / "hub.yaml"
    exp_file.write_text(f"name: hub\ndefaults: {{backend: faster-whisper, quant: int8, device: cpu, "
                        f"dataset: {root / 'data' / 'default'}}}\ngrid: {{models: [medium]}}\n")
    exp = load_experiment(str(exp_file))
    models = tmp_path / "models"
    with pytest.raises(UserError, match="--offline forbids downloading it"):
        plan.plan_sweep(exp, make_engine("local"), models, tmp_path / "out", offline=True)
    assert hub.calls == []
    [job] = plan.plan_sweep(exp, make_engine("local"), models, tmp_path / "out", **QUIET)
    assert job.spec.model.host_dir == models / "medium" and _pins(models)["medium"]["revision"] == SHA1
    assert job.conditions[0].inputs["model_sha256"] != "hub:medium"


def test_every_hub_name_of_every_backend_has_a_repository_for_its_format():
    """One table of names in the backend table, one of repositories per format in hub.py: they must agree."""
    from runner.backends import BACKENDS

    for be in BACKENDS.values():
        for name in be.hub_names:
            model = hub_model(name, be.model_format)
            assert model is not None or name in ("tiny.en", "base"), (be.name, name)
    assert hub_model("medium", "hf").repo == "openai/whisper-medium" and hub_model("medium", "onnx").folder == \
        "medium-hf"
    assert replace(hub_model("large"), name="x").repo == "Systran/faster-whisper-large-v3"
