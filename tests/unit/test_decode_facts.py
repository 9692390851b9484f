"""Decode settings a model cannot honour are refused at plan time, before any container starts.

The backend table says which decode settings each backend, and each kind of model (runner.models.resolve.model_kind:
Whisper seq2seq or CTC), honours. A value the user set (a flag, a key of an experiment file) that the model
cannot honour is one sentence naming the setting, where it was set, the model, the backend and what the model
kind supports; a default is never refused. The model folders here are stand-ins holding the config.json that
model_kind reads (no weights: nothing here loads a model); tests/e2e/test_backends_e2e.py runs the real tiny
CTC model made by `edgeasr models make-tiny`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT

from runner import cli, plan
from runner import settings as st
from runner.commands import run as run_cmd
from runner.errors import UserError
from runner.experiment import load_experiment
from runner.launch.engines import make_engine
from runner.models.resolve import model_kind, ref_kind

DATA = str(ROOT / "data" / "default")
CTC_SUPPORTS = ("a CTC model decodes greedily (argmax), so it honours only decode.batch_size (it decodes with "
                "beam_size 1, temperature 0, language null, ctc_weight 1)")


def _folder(root: Path, name: str, config: dict, weights: str = "model.safetensors") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / weights).write_bytes(b"")
    return folder


def _ctc(tmp_path: Path) -> Path:
    """config.json as Wav2Vec2ForCTC.save_pretrained writes it (the keys model_kind reads)."""
    return _folder(tmp_path / "models", "tiny-ctc-random",
                   {"architectures": ["Wav2Vec2ForCTC"], "model_type": "wav2vec2", "vocab_size": 32})


def _whisper(tmp_path: Path) -> Path:
    return _folder(tmp_path / "models", "tiny-whisper-random",
                   {"architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper"})


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    run_cmd.add_arguments(p)
    return p


def _run_args(tmp_path: Path, model: Path, *flags: str, backend: str = "transformers") -> argparse.Namespace:
    return _parser().parse_args(["--backend", backend, "--model", str(model), "--quant", "fp32", "--device", "cpu",
                                 "--data", DATA, "--models-dir", str(tmp_path / "models"),
                                 "--out", str(tmp_path / "out"), *flags])


def _load(tmp_path: Path, text: str, name: str = "ctc.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_experiment(path, root=ROOT)


# -- what runner.models tells about a model folder -------------------------------------------------------------


def test_model_kind_reads_the_folders_config(tmp_path):
    """A Hugging Face Whisper folder, its CTranslate2 conversion and its ONNX export are Whisper; a *ForCTC
    folder is CTC (as the transformers adapter loads it: AutoModelForCTC for anything not Whisper); a config
    that says neither, or no config, is of unknown kind (nothing is refused for it)."""
    assert model_kind(_whisper(tmp_path)) == "whisper"
    assert model_kind(_ctc(tmp_path)) == "ctc"
    ct2 = _folder(tmp_path, "tiny.en", {"alignment_heads": [[2, 2]], "lang_ids": [], "suppress_ids": [1],
                                        "suppress_ids_begin": [220]}, weights="model.bin")
    assert model_kind(ct2) == "whisper"
    hubert = _folder(tmp_path, "hubert", {"model_type": "hubert"})  # no architectures: AutoModelForCTC loads it
    assert model_kind(hubert) == "ctc"
    assert model_kind(_folder(tmp_path, "blank", {})) is None
    assert model_kind(tmp_path / "missing") is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    assert model_kind(tmp_path / "broken") is None


def test_ref_kind_knows_the_whisper_names():
    """An installable or hub name is a Whisper model; a bundled model (pocketsphinx's en-us) is of no kind."""
    assert ref_kind("tiny.en") == ref_kind("base") == ref_kind("large-v3") == "whisper"
    assert ref_kind("en-us") is None


# -- edgeasr run: the flag is the origin ----------------------------------------------------------------------


def test_run_refuses_a_beam_size_flag_for_a_ctc_model(tmp_path):
    """--beam-size 5 for a CTC model under transformers: one sentence naming the setting, the flag, the model,
    the backend and what a CTC model honours, before any container starts (exit 2, no run folder)."""
    with pytest.raises(UserError) as exc:
        run_cmd.spec_from_args(_run_args(tmp_path, _ctc(tmp_path), "--beam-size", "5"))
    assert str(exc.value) == f"--beam-size 5 cannot apply to model tiny-ctc-random with backend transformers: " \
                             f"{CTC_SUPPORTS}"
    assert exc.value.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_run_lists_every_flag_a_ctc_model_cannot_honour(tmp_path):
    """Each refused flag is its own line; the batch size, which a CTC model honours, is not among them."""
    args = _run_args(tmp_path, _ctc(tmp_path), "--temperature", "0.3", "--language", "en", "--batch-size", "4")
    with pytest.raises(UserError) as exc:
        run_cmd.spec_from_args(args)
    assert exc.value.problems == [
        f"--temperature 0.3 cannot apply to model tiny-ctc-random with backend transformers: {CTC_SUPPORTS}",
        f"--language en cannot apply to model tiny-ctc-random with backend transformers: {CTC_SUPPORTS}",
    ]


def test_run_takes_a_ctc_models_defaults_and_the_values_it_decodes_with(tmp_path):
    """The defaults (beam size 5 among them) are never refused, and neither are the values a CTC model really
    decodes with (beam size 1, temperature 0) nor the batch size it honours."""
    ctc = _ctc(tmp_path)
    spec = run_cmd.spec_from_args(_run_args(tmp_path, ctc, "--batch-size", "4"))
    assert spec.decode.beam_size == 5 and spec.decode.batch_size == 4  # 5: the default, not the user's
    spec = run_cmd.spec_from_args(_run_args(tmp_path, ctc, "--beam-size", "1", "--temperature", "0"))
    assert spec.decode.beam_size == 1


def test_run_takes_a_beam_size_for_a_whisper_model(tmp_path):
    """The same flags with a Whisper model under transformers are the model's to honour."""
    spec = run_cmd.spec_from_args(_run_args(tmp_path, _whisper(tmp_path), "--beam-size", "3", "--temperature",
                                            "0.2", "--language", "en"))
    assert (spec.decode.beam_size, spec.decode.temperature, spec.decode.language) == (3, 0.2, "en")


def test_a_bad_flag_value_is_reported_once_by_its_own_check(tmp_path):
    """--beam-size 0 fails its field check; the decode check does not also quote the default it left."""
    with pytest.raises(UserError) as exc:
        run_cmd.spec_from_args(_run_args(tmp_path, _ctc(tmp_path), "--beam-size", "0"))
    assert str(exc.value) == "--beam-size must be at least 1, got 0"


def test_run_refuses_a_temperature_for_onnxruntime(tmp_path):
    """onnxruntime's decoder has no sampling: --temperature 0.5 is refused whatever the model."""
    folder = _folder(tmp_path / "models", "tiny.en-onnx", {"model_type": "whisper"}, weights="encoder.onnx")
    (folder / "edgeasr-onnx.json").write_text("{}")
    with pytest.raises(UserError) as exc:
        run_cmd.spec_from_args(_run_args(tmp_path, folder, "--temperature", "0.5", backend="onnxruntime"))
    assert str(exc.value) == (
        "--temperature 0.5 cannot apply to model tiny.en-onnx with backend onnxruntime: its ONNX decoder has no "
        "sampling (greedy or beam search only) and no CTC branch, so it honours only decode.beam_size, "
        "decode.batch_size, decode.language (it decodes with temperature 0, ctc_weight null)")


def test_the_cli_exits_2_with_the_sentence(tmp_path, capsys):
    """`edgeasr run --backend transformers --model <CTC> --beam-size 5`: exit 2, the sentence on stderr."""
    ctc = _ctc(tmp_path)
    code = cli.main(["run", "--backend", "transformers", "--model", str(ctc), "--quant", "fp32", "--device", "cpu",
                     "--data", DATA, "--out", str(tmp_path / "out"), "--beam-size", "5"])
    assert code == 2
    assert (f"edgeasr: --beam-size 5 cannot apply to model tiny-ctc-random with backend transformers: "
            f"{CTC_SUPPORTS}") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- edgeasr sweep: the experiment file's key is the origin -----------------------------------------------------


def test_a_ctc_models_beam_axis_makes_containers_and_the_batch_axis_makes_them_for_both(tmp_path):
    """transformers varies beam size inside a loaded Whisper model but not inside a CTC one: with the CTC model's
    beam size 5 excluded, its group decodes with beam size 1 (not with the axis' first value, 5, overridden per
    condition, which its adapter would refuse). The batch size changes the memory a loaded model holds, so each
    of its values is a container of its own for either kind (issue 22, item 1)."""
    ctc, whisper = _ctc(tmp_path), _whisper(tmp_path)
    exp = _load(tmp_path, f"""\
        defaults: {{backend: transformers, quant: fp32, device: cpu, limit: 1}}
        grid:
          models: [{ctc}, {whisper}]
          decode.beam_size: [5, 1]
          decode.batch_size: [1, 4]
        exclude: [{{model: {ctc}, decode.beam_size: 5, reason: a CTC model is greedy}}]
        """)
    c1, c4, w1, w4 = exp.groups
    assert c1.model == c4.model == str(ctc) and w1.model == w4.model == str(whisper)
    assert [g.decode["batch_size"] for g in exp.groups] == [1, 4, 1, 4]
    assert c1.decode["beam_size"] == c4.decode["beam_size"] == 1
    assert [c.decode for c in c1.conditions] == [c.decode for c in c4.conditions] == [{}]
    assert w1.decode["beam_size"] == 5 and [c.decode for c in w1.conditions] == [{}, {"beam_size": 1}]
    assert [c.decode for c in w4.conditions] == [{}, {"beam_size": 1}]
    assert c1.origins["decode.beam_size"] == "grid.decode.beam_size[1]"
    assert exp.resolved["axis_roles"]["transformers"]["in_container"] == ["dataset"]


def test_whisperx_with_alignment_runs_each_language_in_its_own_container(tmp_path):
    """The alignment model is loaded for one language: with decode.align a language axis makes containers;
    without it the language changes inside one."""
    grid = "grid: {decode.language: [en, de]}\n"
    aligned = _load(tmp_path, "defaults: {backend: whisperx, model: base, quant: int8, decode: {align: true}}\n"
                    + grid, name="a.yaml")
    assert [(g.decode["language"], [c.decode for c in g.conditions]) for g in aligned.groups] == [
        ("en", [{}]), ("de", [{}])]
    plain = _load(tmp_path, "defaults: {backend: whisperx, model: base, quant: int8}\n" + grid, name="b.yaml")
    (group,) = plain.groups
    assert [c.decode for c in group.conditions] == [{}, {"language": "de"}]


def test_groups_remember_where_each_setting_was_set(tmp_path):
    """Every setting the file set, by the key that set it: defaults, an entry's set (over defaults), a grid
    value; a default the file never named has no origin."""
    exp = _load(tmp_path, f"""\
        defaults: {{backend: transformers, model: {_whisper(tmp_path)}, quant: fp32, device: cpu,
                    decode: {{language: en}}}}
        grid:
          decode.beam_size: [1, 5]
        entries:
          - {{match: {{decode.beam_size: 5}}, set: {{decode: {{temperature: 0.2, language: fr}}}}}}
        """)
    one, five = exp.groups
    assert one.origins["decode.language"] == "defaults.decode.language"
    assert one.origins["decode.beam_size"] == "grid.decode.beam_size[0]"
    assert "decode.temperature" not in one.origins and "decode.batch_size" not in one.origins
    # beam size is in-container for a Whisper model: both groups load it at the axis' first value
    assert five.origins["decode.beam_size"] == "grid.decode.beam_size[0]"
    assert [c.decode for c in five.conditions] == [{"beam_size": 5}]
    assert five.origins["decode.temperature"] == "entries[0].set.decode.temperature"
    assert five.origins["decode.language"] == "entries[0].set.decode.language"


def test_loading_a_sweep_refuses_what_a_ctc_model_cannot_honour_naming_the_yaml_keys(tmp_path):
    """Each value the file set that a CTC group cannot honour (a grid value, an entry's set) is refused by its
    key path when the file loads, before `prepare` builds an image or installs a model; the group at beam size 1,
    temperature 0 (what a CTC model does) is not refused; each sentence once, exit 2."""
    ctc = _ctc(tmp_path)
    with pytest.raises(UserError) as exc:
        _load(tmp_path, f"""\
            defaults: {{backend: transformers, model: {ctc}, quant: fp32, device: cpu, limit: 1}}
            grid:
              decode.beam_size: [1, 5]
              decode.batch_size: [1, 4]
            entries:
              - {{match: {{decode.batch_size: 4}}, set: {{decode: {{temperature: 0.2}}}}}}
            """)
    assert exc.value.exit_code == 2 and "nothing was started" in str(exc.value)
    assert exc.value.problems == [
        f"ctc.yaml: entries[0].set.decode.temperature: 0.2 cannot apply to model tiny-ctc-random with backend "
        f"transformers: {CTC_SUPPORTS}",
        f"ctc.yaml: grid.decode.beam_size[1]: 5 cannot apply to model tiny-ctc-random with backend transformers: "
        f"{CTC_SUPPORTS}",
    ]


def test_a_defaults_value_is_refused_for_the_ctc_model_only_and_an_exclusion_removes_a_grid_point(tmp_path):
    """defaults.decode.language applies to every model: refused for the CTC one, by its key; a grid value a CTC
    model cannot honour, excluded with a reason for that model, runs for the Whisper model alone."""
    ctc, whisper = _ctc(tmp_path), _whisper(tmp_path)
    head = f"""\
        defaults: {{backend: transformers, quant: fp32, device: cpu, limit: 1}}
        grid:
          models: [{ctc}, {whisper}]
          decode.beam_size: [1, 5]
        """
    with pytest.raises(UserError) as exc:
        _load(tmp_path, head.replace("limit: 1", "limit: 1, decode: {language: en}"), name="a.yaml")
    assert exc.value.problems == [f"a.yaml: defaults.decode.language: en cannot apply to model tiny-ctc-random "
                                  f"with backend transformers: {CTC_SUPPORTS}",
                                  f"a.yaml: grid.decode.beam_size[1]: 5 cannot apply to model tiny-ctc-random "
                                  f"with backend transformers: {CTC_SUPPORTS}"]
    exp = _load(tmp_path, head + f"exclude: [{{model: {ctc}, decode.beam_size: 5, reason: CTC is greedy}}]\n",
                name="b.yaml")
    assert [(Path(g.model).name, g.decode["beam_size"]) for g in exp.groups] == [
        ("tiny-ctc-random", 1), ("tiny-whisper-random", 1)]
    assert exp.resolved["axis_roles"]["transformers"]["per_group"] == ["backend", "model", "quant", "device",
                                                                       "decode.beam_size"]


def test_sweep_planning_refuses_too_naming_the_group_and_the_key(tmp_path):
    """plan_sweep (which the fleet driver also calls) checks each group's file-set values again when it resolves
    the model: a group that reaches it with a beam size its CTC model cannot honour is refused, nothing started."""
    ctc = _ctc(tmp_path)
    exp = _load(tmp_path, f"""\
        defaults: {{backend: transformers, model: {ctc}, quant: fp32, device: cpu, limit: 1}}
        """)
    (group,) = exp.groups
    five = dataclasses.replace(group, spec_settings=st.apply(group.spec_settings, "decode.beam_size", 5),
                               origins={**group.origins, "decode.beam_size": "grid.decode.beam_size[1]"})
    with pytest.raises(UserError) as exc:
        plan.plan_sweep(dataclasses.replace(exp, groups=(five,)), make_engine("local"), tmp_path / "models",
                        tmp_path / "out")
    assert exc.value.exit_code == 2 and "nothing was started" in str(exc.value)
    assert exc.value.problems == [f"groups[0] ({ctc} fp32, {DATA}): grid.decode.beam_size[1]: 5 cannot apply to "
                                  f"model tiny-ctc-random with backend transformers: {CTC_SUPPORTS}"]


def test_sweep_planning_takes_a_ctc_group_of_defaults_and_batch_sizes(tmp_path):
    """A CTC sweep over batch sizes that leaves beam size and temperature at their defaults resolves."""
    ctc = _ctc(tmp_path)
    exp = _load(tmp_path, f"""\
        defaults: {{backend: transformers, model: {ctc}, quant: fp32, device: cpu, limit: 1}}
        grid: {{decode.batch_size: [1, 4]}}
        """)
    one, four = exp.groups  # a container per batch size (issue 22, item 1)
    for group, size in ((one, 1), (four, 4)):
        spec = plan.group_spec(group, DATA, (), "edgeasr/transformers:latest", tmp_path / "models",
                               tmp_path / "out", "docker")
        assert spec.decode.beam_size == 5 and spec.decode.batch_size == size
        assert [c.decode for c in group.conditions] == [{}]


@pytest.mark.parametrize("kind", ["ctc", "whisper"])
def test_the_adapter_takes_in_a_loaded_model_what_the_backend_table_says(kind):
    """The planner keeps in one container only what the table's in_container_for(kind) lists; the adapter (the
    second line of defence) takes a change of exactly those and refuses the other decode choices."""
    # host code (Python 3.10+): so this check lives here, not in test_transformers_decode.py, which also runs
    # on the images' Python 3.8 (tests/contract/test_python38.py)
    import importlib.util
    from dataclasses import replace

    from runner.backends import BACKENDS, DECODE_CHOICES

    spec = importlib.util.spec_from_file_location("transformers_decode_tests",
                                                  Path(__file__).with_name("test_transformers_decode.py"))
    sibling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sibling)
    fake_model = sibling.fake_model

    tf = BACKENDS["transformers"]
    # the memory axes the kind honours are changeable too: the planner alone keeps them apart (issue 22, item 1)
    inside = (*tf.in_container_for(kind), *(p for p in tf.memory_axes if p in tf.honours(kind)))
    other = {"beam_size": 2, "batch_size": 4, "temperature": 0.3, "language": "de", "ctc_weight": 0.3}
    for path in DECODE_CHOICES:
        name = path.split(".", 1)[1]
        m = fake_model(kind)
        change = replace(m._decode, **{name: other[name]})
        if path in inside:
            m.set_decode(change)
            assert getattr(m._decode, name) == other[name]
        else:
            with pytest.raises((NotImplementedError, ValueError)):
                m.set_decode(change)


def test_a_batch_size_sweep_runs_each_size_in_its_own_container(tmp_path):
    """Regression (issue 22, item 1): batch sizes 8 then 1 ran in one container, and what the batch of 8 left
    resident (freed memory stays with the process) was the batch of 1's memory too: 1130 MiB after batch 8,
    984 alone. The backend table names the settings that change what a loaded model holds (memory_axes: the batch
    size); an axis over one makes one container per value, so each condition's memory is its own. Beam size and
    the other decode choices still vary inside one loaded model."""
    from runner import backends

    for be in backends.BACKENDS.values():
        assert "decode.batch_size" in be.memory_axes, be.name
        assert not set(be.memory_axes) & set(be.in_container_for("whisper")), be.name
        assert not set(be.memory_axes) & set(be.in_container_for("ctc")), be.name
    whisper = _whisper(tmp_path)
    exp = _load(tmp_path, f"""\
        defaults: {{backend: transformers, model: {whisper}, quant: fp32, device: cpu, limit: 1}}
        grid:
          decode.batch_size: [8, 1]
          decode.beam_size: [5, 1]
        """)
    assert [g.decode["batch_size"] for g in exp.groups] == [8, 1]
    assert all([c.decode for c in g.conditions] == [{}, {"beam_size": 1}] for g in exp.groups)
    roles = exp.resolved["axis_roles"]["transformers"]
    assert roles["in_container"] == ["dataset", "decode.beam_size"] and "decode.batch_size" in roles["per_group"]
