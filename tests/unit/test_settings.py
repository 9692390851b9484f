"""The settings model: one default and one check per field, messages that name where a value came from,
a CLI generated from the field metadata, and sweep group keys that did not move."""

import argparse
import json

import pytest
from helpers import ROOT

from runner import settings as st
from runner.commands import run as run_cmd
from runner.errors import UserError
from runner.experiment import load_experiment
from runner.spec import build_run_spec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    run_cmd.add_arguments(p)
    return p


def test_one_check_phrased_for_the_flag_or_the_file_key():
    """The same check says `--beam-size must be at least 1` on the CLI and names the key path in a file."""
    with pytest.raises(st.SettingError) as exc:
        st.apply(st.Settings(), "decode.beam_size", 0)
    assert exc.value.messages("--beam-size") == ["--beam-size must be at least 1, got 0"]
    assert exc.value.messages("smoke.yaml: defaults.decode.beam_size") == [
        "smoke.yaml: defaults.decode.beam_size: expected an integer >= 1, got 0"]


def test_apply_normalises_and_leaves_the_original_alone():
    """apply returns a new Settings with the checked value; integers given for a float setting become floats."""
    base = st.Settings()
    s = st.apply(base, "telemetry.baseline_s", 2)
    assert s.telemetry.baseline_s == 2.0 and isinstance(s.telemetry.baseline_s, float)
    assert base.telemetry.baseline_s == 5.0
    assert st.apply(base, "gpus", [0, "GPU-a"]).gpus == "0,GPU-a"


def test_cli_problems_name_flags(tmp_path):
    """A bad value on the command line is reported by its flag, every problem in one error."""
    args = _parser().parse_args(["--beam-size", "0", "--interval-ms", "0", "--telemetry", "tegra",
                                 "--timeout", "0", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    with pytest.raises(UserError) as exc:
        run_cmd.spec_from_args(args)
    assert "--beam-size must be at least 1, got 0" in exc.value.problems
    assert "--interval-ms must be positive, got 0" in exc.value.problems
    assert "--timeout must be positive, got 0.0" in exc.value.problems
    assert any(p.startswith("--telemetry 'tegra' is unknown; choose one of auto, ") for p in exc.value.problems)
    assert any(p.startswith("--data: ") for p in exc.value.problems)


def test_build_run_spec_names_settings_by_where(tmp_path):
    """The sweep planner's where() replaces flags: a bad value from a file is never reported as `--beam-size`."""
    bad = st.Settings(model="tiny.en", quant="int8", dataset=str(ROOT / "data" / "default"),
                      decode=st.DecodeSettings(beam_size=0))
    with pytest.raises(UserError) as exc:
        build_run_spec(bad, out=str(tmp_path / "o"), models_dir=tmp_path,
                       where=lambda path: f"groups[0] {path}")
    assert "groups[0] decode.beam_size: expected an integer >= 1, got 0" in str(exc.value)
    assert "--beam-size" not in str(exc.value)


def test_yaml_problem_is_never_reported_as_a_flag(tmp_path):
    """A bad beam size in an experiment file names the file and key, not the CLI flag."""
    path = tmp_path / "smoke.yaml"
    path.write_text("defaults: {model: tiny.en, quant: int8, decode: {beam_size: 0}}\n")
    with pytest.raises(UserError) as exc:
        load_experiment(path, root=ROOT)
    assert exc.value.problems == ["smoke.yaml: defaults.decode.beam_size: expected an integer >= 1, got 0"]


def test_cli_defaults_are_none_and_help_states_defaults_and_units():
    """argparse defaults are None (the settings own the defaults); every option's help states its default,
    with its unit; --quant lists bf16 and model/quant default to the backend's."""
    p = _parser()
    args = p.parse_args([])
    for action in p._actions:
        if action.dest in ("help", "engine", "offline", "container_network"):
            continue
        assert getattr(args, action.dest) is None, action.dest
        assert "(default: " in (action.help or ""), action.option_strings
    helps = {a.option_strings[0]: a.help for a in p._actions if a.option_strings}
    assert "(default: 5)" in helps["--beam-size"]
    assert "(default: 100 ms)" in helps["--interval-ms"]
    assert "(default: 5 s)" in helps["--baseline-s"]
    assert "fp32 | fp16 | bf16 | int8" in helps["--quant"] and "the backend's" in helps["--quant"]
    assert "the backend's" in helps["--model"]
    for flag in ("--backend", "--model", "--quant", "--device", "--data", "--audio-root", "--out", "--image",
                 "--models-dir", "--beam-size", "--temperature", "--language", "--threads", "--batch-size",
                 "--align", "--warmup", "--timeout", "--mem-limit", "--telemetry", "--interval-ms", "--baseline-s",
                 "--baseline-w", "--gpus", "--loaded-idle-s", "--engine", "--offline", "--container-network", "--repeats",
                 "--limit"):
        assert flag in helps, flag


def test_run_flags_fill_settings_and_repeats_limit_reach_the_spec(tmp_path):
    """Only the flags given change a setting; --repeats and --limit reach the RunSpec (limit cuts the dataset)."""
    models = tmp_path / "models" / "tiny.en"
    models.mkdir(parents=True)
    (models / "model.bin").write_bytes(b"x")
    (models / "config.json").write_text("{}")
    args = _parser().parse_args(["--data", str(ROOT / "data" / "default"), "--beam-size", "2", "--repeats", "3",
                                 "--limit", "4", "--align", "--backend", "whisperx", "--image", "x/y:1",
                                 "--models-dir", str(tmp_path / "models"), "--out", str(tmp_path / "o")])
    spec = run_cmd.spec_from_args(args)
    assert spec.decode.beam_size == 2 and spec.decode.align and spec.decode.temperature == 0.0
    assert spec.repeats == 3 and spec.limit == 4 and len(spec.dataset.utterances) == 4
    assert spec.settings.decode.threads is None and spec.decode.threads >= 1  # resolved: all cores
    assert spec.settings.backend == "whisperx" and spec.settings.model is None  # the backend's, unresolved


@pytest.mark.parametrize("name", ["ct2-versions", "orin-nano-paper", "smoke", "test-tiny"])
def test_shipped_experiments_keep_their_group_and_condition_settings(name):
    """Result keys are hashes of Group.settings() and Condition.settings(): for every shipped experiment they
    equal what the loader gave before the settings model (fixtures made with the old loader)."""
    exp = load_experiment(ROOT / "experiments" / f"{name}.yaml", root=ROOT)
    got = [{"group": g.settings(), "conditions": [c.settings() for c in g.conditions]} for g in exp.groups]
    text = json.dumps(got, indent=1, sort_keys=True).replace(str(ROOT), "<ROOT>")
    fixture = ROOT / "tests" / "fixtures" / "experiment_settings" / f"{name}.json"
    assert json.loads(text) == json.loads(fixture.read_text())
    assert text + "\n" == fixture.read_text()  # the same JSON, so the same hashes (0 vs 0.0 included)


def test_new_fields_enter_group_settings_only_when_not_default(tmp_path):
    """A field added since result keys existed (decode.align, telemetry.cooldown_tolerance) changes a group's
    settings only when it differs from its default."""
    path = tmp_path / "x.yaml"
    path.write_text("defaults: {model: tiny.en, quant: int8, backend: whisperx, decode: {align: true},"
                    " telemetry: {cooldown_tolerance: 0.1}}\n")
    g = load_experiment(path, root=ROOT).groups[0]
    assert g.decode["align"] is True and "cooldown_tolerance" not in g.telemetry
    assert g.spec_settings.decode.align and g.spec_settings.model == "tiny.en"


def test_memory_sizes_the_run_accepts_pass_the_field_check():
    """The field check and the run's parser agree: 1.5G and 512m are sizes, '4 gigs' is not."""
    assert st.check("mem_limit", "1.5G") == "1.5G" and st.check("mem_limit", 4096) == "4096"
    with pytest.raises(st.SettingError):
        st.check("mem_limit", "4 gigs")
