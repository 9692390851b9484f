"""Experiment files are validated whole (every problem named by its key path) and expand into groups."""

import json
import textwrap

import pytest
from helpers import ROOT, write_tone

from runner.backends import BACKENDS
from runner.errors import UserError
from runner.experiment import Condition, load_experiment
from runner.telemetry.samplers import registry

HUB_LIST = ("tiny, tiny.en, base, base.en, small, small.en, medium, medium.en, large-v1, large-v2, large-v3, "
            "large, large-v3-turbo, turbo, distil-small.en, distil-medium.en, distil-large-v2, distil-large-v3, "
            "distil-large-v3.5")


def _load(tmp_path, text, name="x.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_experiment(path, root=ROOT)


def _problems(tmp_path, text, name="x.yaml"):
    with pytest.raises(UserError) as exc:
        _load(tmp_path, text, name)
    assert exc.value.exit_code == 2
    return exc.value.problems


BASE = """\
defaults: {model: tiny.en, quant: int8}
"""


# --- shipped files ---------------------------------------------------------------------------------------


def test_shipped_smoke():
    exp = load_experiment(ROOT / "experiments" / "smoke.yaml", root=ROOT)
    assert exp.name == "smoke" and exp.path == (ROOT / "experiments" / "smoke.yaml").resolve()
    assert [(g.model, g.quant, g.device) for g in exp.groups] == [
        ("tiny.en", "fp32", "cpu"), ("tiny.en", "int8", "cpu"), ("base", "fp32", "cpu"), ("base", "int8", "cpu")]
    for g in exp.groups:
        assert [(c.noise_type, c.snr_db) for c in g.conditions] == [
            ("clean", None)] * 2 + [("white", 10.0)] * 2 + [("white", 0.0)] * 2
        assert {c.limit for c in g.conditions} == {6}
        assert {c.dataset for c in g.conditions} == {str(ROOT / "data" / "default")}
    assert exp.n_conditions == 24 and exp.excluded == ()


def test_shipped_test_tiny():
    exp = load_experiment("test-tiny", root=ROOT)  # a bare name is looked up in experiments/
    (group,) = exp.groups
    assert (group.backend, group.model, group.quant, group.device) == ("faster-whisper", "tiny.en", "int8", "cpu")
    assert group.conditions == tuple(
        Condition(str(ROOT / "data" / "default"), kind, snr, r, limit=3)
        for kind, snr in (("clean", None), ("white", 10.0)) for r in (0, 1))


def test_shipped_orin_nano_paper():
    exp = load_experiment(ROOT / "experiments" / "orin-nano-paper.yaml", root=ROOT)
    assert len(exp.groups) == 4 * 3 - 1
    assert all(len(g.conditions) == (1 + 2 * 4) * 3 for g in exp.groups)
    assert exp.n_conditions == 297
    assert ("medium", "fp32") not in {(g.model, g.quant) for g in exp.groups}
    assert exp.excluded == ({"backend": "whisperx", "model": "medium", "quant": "fp32", "device": "cuda",
                             "dataset": str(ROOT / "data" / "default"),
                             "reason": "does not fit the Orin Nano's 8 GB of unified memory"},)
    g = exp.groups[0]
    # no image named: the sweep takes the board's own variant (jetson-r35 / jetson-r36; test_platforms.py)
    assert (g.backend, g.device, g.image) == ("whisperx", "cuda", None)
    assert g.telemetry == {"sampler": "tegrastats", "interval_ms": 100, "baseline_s": 5, "baseline_w": None}
    assert [c.noise_type for c in g.conditions[::3]] == ["clean"] + ["white"] * 4 + ["babble"] * 4
    assert [c.snr_db for c in g.conditions[3:15:3]] == [20.0, 10.0, 5.0, 0.0]


# --- expansion -------------------------------------------------------------------------------------------


def test_three_models_two_quants_five_levels_two_repeats(tmp_path):
    exp = _load(tmp_path, """\
        defaults:
          repeats: 2
          noise: {types: [white, pink], snr_db: [0, 10], clean: true}
        grid:
          models: [tiny.en, base, small]
          quants: [fp32, int8]
        """)
    assert len(exp.groups) == 6 and all(len(g.conditions) == 10 for g in exp.groups)
    assert [(g.model, g.quant) for g in exp.groups] == [
        (m, q) for m in ("tiny.en", "base", "small") for q in ("fp32", "int8")]
    assert [(c.noise_type, c.snr_db, c.repeat) for c in exp.groups[0].conditions] == [
        ("clean", None, 0), ("clean", None, 1), ("white", 10.0, 0), ("white", 10.0, 1), ("white", 0.0, 0),
        ("white", 0.0, 1), ("pink", 10.0, 0), ("pink", 10.0, 1), ("pink", 0.0, 0), ("pink", 0.0, 1)]
    assert exp.resolved["counts"] == {"groups": 6, "conditions": 60, "excluded": 0}


def test_conditions_ordered_by_dataset_first(tmp_path):
    write_tone(tmp_path / "d2" / "a.wav")
    exp = _load(tmp_path, f"""\
        defaults: {{model: tiny.en, quant: int8, repeats: 2, noise: {{types: [brown], snr_db: [5]}}}}
        grid: {{datasets: [data/default, {tmp_path / 'd2'}]}}
        """)
    (group,) = exp.groups
    assert [(c.dataset, c.noise_type, c.repeat) for c in group.conditions] == [
        (str(ROOT / "data" / "default"), "clean", 0), (str(ROOT / "data" / "default"), "clean", 1),
        (str(ROOT / "data" / "default"), "brown", 0), (str(ROOT / "data" / "default"), "brown", 1),
        (str(tmp_path / "d2"), "clean", 0), (str(tmp_path / "d2"), "clean", 1),
        (str(tmp_path / "d2"), "brown", 0), (str(tmp_path / "d2"), "brown", 1)]


def test_clean_false_and_noise_settings_on_conditions(tmp_path):
    (tmp_path / "noises").mkdir()
    exp = _load(tmp_path, f"""\
        defaults:
          model: tiny.en
          quant: int8
          noise: {{types: [babble, file], snr_db: [5], clean: false, files: {tmp_path / 'noises'},
                  babble_talkers: 6}}
        """)
    assert exp.groups[0].conditions == (
        Condition(str(ROOT / "data" / "default"), "babble", 5.0, 0, babble_talkers=6),
        Condition(str(ROOT / "data" / "default"), "file", 5.0, 0, noise_files=str(tmp_path / "noises")))


def test_entries_override_and_split_groups(tmp_path):
    exp = _load(tmp_path, """\
        defaults: {quant: int8, decode: {beam_size: 5, language: en}, repeats: 2}
        grid: {models: [tiny.en, base, small]}
        entries:
          - match: {model: base}
            set: {decode: {beam_size: 1}}
          - match: {model: [base, small]}
            set: {repeats: 1, warmup: 0}
        """)
    by_model = {g.model: g for g in exp.groups}
    assert by_model["tiny.en"].decode["beam_size"] == 5 and by_model["tiny.en"].warmup == 1
    assert by_model["base"].decode == {"beam_size": 1, "temperature": 0.0, "language": "en", "threads": None,
                                       "batch_size": 1}  # merged, not replaced
    assert by_model["base"].warmup == 0 and by_model["small"].decode["beam_size"] == 5
    assert [len(by_model[m].conditions) for m in ("tiny.en", "base", "small")] == [2, 1, 1]


def test_entry_matching_one_dataset_makes_its_own_group(tmp_path):
    write_tone(tmp_path / "d2" / "a.wav")
    exp = _load(tmp_path, f"""\
        defaults: {{model: tiny.en, quant: int8}}
        grid: {{datasets: [data/default, {tmp_path / 'd2'}]}}
        entries:
          - {{match: {{dataset: {tmp_path / 'd2'}}}, set: {{decode: {{beam_size: 2}}, limit: 1}}}}
        """)
    assert [(g.decode["beam_size"], [c.dataset for c in g.conditions]) for g in exp.groups] == [
        (5, [str(ROOT / "data" / "default")]), (2, [str(tmp_path / "d2")])]
    assert exp.groups[1].conditions[0].limit == 1


def test_same_settings_share_a_group_across_datasets(tmp_path):
    write_tone(tmp_path / "d2" / "a.wav")
    exp = _load(tmp_path, f"""\
        defaults: {{model: tiny.en, quant: int8}}
        grid: {{datasets: [data/default, {tmp_path / 'd2'}]}}
        entries:
          - {{match: {{dataset: {tmp_path / 'd2'}}}, set: {{repeats: 3}}}}  # condition-level: same container
        """)
    (group,) = exp.groups
    assert len(group.conditions) == 1 + 3


def test_exclusions_honoured_and_recorded(tmp_path):
    exp = _load(tmp_path, """\
        grid: {models: [tiny.en, base], quants: [fp32, fp16, int8]}
        exclude:
          - {quant: fp16, device: cpu, reason: "CTranslate2 has no fp16 CPU kernels"}
          - {model: base, quant: [fp32], reason: too slow}
        """)
    assert [(g.model, g.quant) for g in exp.groups] == [("tiny.en", "fp32"), ("tiny.en", "int8"), ("base", "int8")]
    data = str(ROOT / "data" / "default")
    assert exp.excluded == (
        {"backend": "faster-whisper", "model": "tiny.en", "quant": "fp16", "device": "cpu", "dataset": data,
         "reason": "CTranslate2 has no fp16 CPU kernels"},
        {"backend": "faster-whisper", "model": "base", "quant": "fp32", "device": "cpu", "dataset": data,
         "reason": "too slow"},
        {"backend": "faster-whisper", "model": "base", "quant": "fp16", "device": "cpu", "dataset": data,
         "reason": "CTranslate2 has no fp16 CPU kernels"},
    )
    assert exp.resolved["excluded"] == list(exp.excluded)


def test_resolved_is_json_and_settings_are_stable(tmp_path):
    exp = _load(tmp_path, BASE)
    text = json.dumps(exp.resolved, sort_keys=True)
    assert json.loads(text)["groups"][0]["conditions"][0]["noise_type"] == "clean"
    g = exp.groups[0]
    assert g.settings() == {
        "backend": "faster-whisper", "model": "tiny.en", "quant": "int8", "device": "cpu", "image": None,
        "decode": {"beam_size": 5, "temperature": 0.0, "language": None, "threads": None, "batch_size": 1},
        "warmup": 1, "timeout_s": None, "mem_limit": None,
        "telemetry": {"sampler": "auto", "interval_ms": 100, "baseline_s": 5, "baseline_w": None}}
    g.settings()["decode"]["beam_size"] = 99  # a copy: the group is not changed through it
    assert g.decode["beam_size"] == 5
    assert exp.name == "x" and exp.description == ""  # name defaults to the file's stem


def test_model_folder_path(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "model.bin").write_bytes(b"x")
    (tmp_path / "mine" / "config.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    exp = _load(tmp_path, f"defaults: {{quant: int8}}\ngrid: {{models: [{tmp_path / 'mine'}]}}\n")
    assert exp.groups[0].model == str(tmp_path / "mine")
    assert _problems(tmp_path, f"defaults: {{quant: int8, model: {tmp_path / 'empty'}}}\n") == [
        f"x.yaml: defaults.model: '{tmp_path / 'empty'}' is not a model folder: {tmp_path / 'empty'} "
        "lacks model.bin or config.json"]


# --- validation: every message exact ---------------------------------------------------------------------


def test_unknown_quant(tmp_path):
    assert _problems(tmp_path, BASE + "grid: {quants: [int8, fp61]}\n", name="smoke.yaml") == [
        "smoke.yaml: grid.quants[1]: 'fp61' is not a quant; allowed: fp32, fp16, bf16, int8"]


def test_unknown_backend_device_model(tmp_path):
    assert _problems(tmp_path, """\
        defaults: {quant: int8}
        grid: {backends: [nemo], devices: [gpu], models: [tiny.enn]}
        """) == [
        f"x.yaml: grid.backends[0]: 'nemo' is not a backend; allowed: {', '.join(BACKENDS)}",
        "x.yaml: grid.models[0]: 'tiny.enn' is not a model; allowed: an installable name (tiny.en, base), "
        f"a hub name ({HUB_LIST}), or a model folder (model.bin + config.json)",
        "x.yaml: grid.devices[0]: 'gpu' is not a device; allowed: cpu, cuda, auto",
    ]


def test_combination_the_device_cannot_run(tmp_path):
    assert _problems(tmp_path, "defaults: {model: base}\ngrid: {quants: [int8, fp16]}\n") == [
        "x.yaml: grid point (backend=faster-whisper, model=base, quant=fp16, device=cpu): quant 'fp16' cannot run "
        "with ctranslate2 on cpu; cpu supports: fp32, int8 (remove it from the grid, or exclude it with a reason)"]


def test_unknown_keys_with_suggestions(tmp_path):
    assert _problems(tmp_path, """\
        defualts: {model: tiny.en}
        grid: {model: [tiny.en], quants: [int8]}
        defaults:
          model: tiny.en
          decode: {beam: 1}
          zzz: 1
        """) == [
        "x.yaml: defualts: unknown key; allowed: name, description, defaults, grid, entries, exclude, cluster "
        "(did you mean 'defaults'?)",
        "x.yaml: defaults.decode.beam: unknown key; allowed: beam_size, temperature, language, threads, "
        "batch_size, align, ctc_weight, vad, vad_threshold, vad_min_silence_ms, "
        "condition_on_previous_text, timestamps, chunk_s (did you mean 'beam_size'?)",
        "x.yaml: defaults.zzz: unknown key; allowed: backend, model, quant, device, dataset, image, limit, decode, "
        "warmup, repeats, noise, nonspeech, telemetry, timeout_s, mem_limit, audio_roots, gpus, power, stream, target, "
        "limits",
        "x.yaml: grid.model: unknown key; allowed: backends, models, quants, devices, datasets, images, "
        "or a setting's dotted path (e.g. decode.beam_size) (did you mean 'models'?)",
    ]


def test_wrong_types_name_the_expected_type(tmp_path):
    assert _problems(tmp_path, """\
        name: my sweep
        description: [a]
        defaults:
          model: tiny.en
          quant: int8
          repeats: two
          warmup: -1
          limit: 0
          timeout_s: 0
          mem_limit: 4 gigs
          image: 3
          decode: {beam_size: 1.5, temperature: -1, language: no, threads: -2, batch_size: 0}
          noise: {clean: "yes", babble_talkers: 0}
          telemetry: []
        grid: {models: tiny.en}
        entries: {match: {}}
        exclude: [3]
        """) == [
        "x.yaml: name: expected a name of letters, digits, '.', '_' or '-', got 'my sweep'",
        "x.yaml: description: expected a string, got a list",
        "x.yaml: defaults.repeats: expected an integer >= 1, got 'two'",
        "x.yaml: defaults.warmup: expected an integer >= 0, got -1",
        "x.yaml: defaults.limit: expected an integer >= 1 or null, got 0",
        "x.yaml: defaults.timeout_s: expected a number > 0 or null, got 0",
        "x.yaml: defaults.mem_limit: expected a memory size such as '512m' or '4g' (units b, k, m, g) or null, "
        "got '4 gigs'",
        "x.yaml: defaults.image: expected a non-empty string or null, got 3",
        "x.yaml: defaults.decode.beam_size: expected an integer >= 1, got 1.5",
        "x.yaml: defaults.decode.temperature: expected a number >= 0, got -1",
        "x.yaml: defaults.decode.language: expected a non-empty string or null, got false",
        "x.yaml: defaults.decode.threads: expected an integer >= 1 or null, got -2",
        "x.yaml: defaults.decode.batch_size: expected an integer >= 1, got 0",
        "x.yaml: defaults.noise.clean: expected true or false, got 'yes'",
        "x.yaml: defaults.noise.babble_talkers: expected an integer >= 1, got 0",
        "x.yaml: defaults.telemetry: expected a mapping (keys: sampler, interval_ms, baseline_s, baseline_w, loaded_idle_s, cooldown_max_s, "
        "cooldown_tolerance, baseline), "
        "got a list",
        "x.yaml: grid.models: expected a non-empty list of model values, got 'tiny.en'",
        "x.yaml: entries: expected a list of {match, set} mappings, got a mapping",
        "x.yaml: exclude[0]: expected a mapping (keys: backend, model, quant, device, dataset, reason), got 3",
    ]


def test_noise_problems(tmp_path):
    assert _problems(tmp_path, """\
        defaults:
          model: tiny.en
          quant: int8
          noise: {types: [white, pinkk, file, white], snr_db: [10, ten]}
        """) == [
        "x.yaml: defaults.noise.types[1]: 'pinkk' is not a noise type; allowed: white, pink, brown, babble, file",
        "x.yaml: defaults.noise.types[3]: 'white' is repeated; each value may appear once",
        "x.yaml: defaults.noise.snr_db[1]: expected a number, got 'ten'",
        "x.yaml: defaults.noise.files: required when noise.types includes 'file' (a folder of noise recordings)",
    ]


def test_noise_files_folder_and_levels(tmp_path):
    assert _problems(tmp_path, """\
        defaults:
          model: tiny.en
          quant: int8
          noise: {types: [file], files: no-such-noise}
        entries:
          - {match: {quant: int8}, set: {noise: {clean: false, types: []}}}
        """) == [
        f"x.yaml: defaults.noise.files: 'no-such-noise' is not a folder (looked for {ROOT / 'no-such-noise'})",
        "x.yaml: defaults.noise.files: required when noise.types includes 'file' (a folder of noise recordings)",
        "x.yaml: defaults.noise.snr_db: needs at least one SNR level when noise.types is not empty",
        "x.yaml: entries[0].set.noise: no noise levels: clean is false and types is empty",
    ]


def test_telemetry_problems(tmp_path):
    assert _problems(tmp_path, BASE.replace("}", ", telemetry: {sampler: tegra, interval_ms: 0, baseline_s: -1, "
                                                 "baseline_w: -2}}")) == [
        "x.yaml: defaults.telemetry.sampler: 'tegra' is not a telemetry sampler; allowed: auto, "
        + ", ".join(registry.SAMPLER_NAMES),
        "x.yaml: defaults.telemetry.interval_ms: expected an integer > 0, got 0",
        "x.yaml: defaults.telemetry.baseline_s: expected a number >= 0, got -1",
        "x.yaml: defaults.telemetry.baseline_w: expected a number >= 0 or null, got -2",
    ]


def test_missing_dataset(tmp_path):
    assert _problems(tmp_path, BASE.replace("}", ", dataset: data/nope}")) == [
        f"x.yaml: defaults.dataset: 'data/nope' does not exist (looked for {tmp_path.resolve() / 'data' / 'nope'} "
        f"and {ROOT / 'data' / 'nope'})"]  # next to the file first, then the current folder
    (tmp_path / "empty").mkdir()
    problems = _problems(tmp_path, BASE + f"grid: {{datasets: [data/default, {tmp_path / 'empty'}, ./data/default]}}\n")
    assert problems[0].startswith(f"x.yaml: grid.datasets[1]: '{tmp_path / 'empty'}': no utterances found in ")
    assert problems[1:] == ["x.yaml: grid.datasets[2]: './data/default' is repeated; each value may appear once"]


def test_missing_model_and_quant(tmp_path):
    assert _problems(tmp_path, "description: nothing to measure\n") == [
        "x.yaml: grid.models: missing; list the models to run here, or set defaults.model",
        "x.yaml: grid.quants: missing; list the quants to run here, or set defaults.quant",
    ]


def test_entries_and_exclude_problems(tmp_path):
    assert _problems(tmp_path, BASE + textwrap.dedent("""\
        entries:
          - {match: {model: tiny}, set: {backend: faster-whisper, repeats: 0}}
          - {match: {quant: [int8, int4]}}
        exclude:
          - {model: base}
          - {reason: everything}
          - {model: base, why: x, reason: y}
        """)) == [
        "x.yaml: entries[0].set.backend: unknown key; allowed: image, limit, decode, warmup, repeats, noise, "
        "nonspeech, telemetry, timeout_s, mem_limit, audio_roots, gpus, power, stream, target, limits; grid axes (backend, model, quant, device, dataset) are chosen by grid "
        "and match, not set",
        "x.yaml: entries[0].set.repeats: expected an integer >= 1, got 0",
        "x.yaml: entries[1].set: required: the settings this entry changes",
        "x.yaml: entries[1].match.quant[1]: 'int4' is not a quant; allowed: fp32, fp16, bf16, int8",
        "x.yaml: exclude[0].reason: required: a non-empty string saying why, got null",
        "x.yaml: exclude[1]: needs at least one of backend, model, quant, device, dataset to match",
        "x.yaml: exclude[2].why: unknown key; allowed: backend, model, quant, device, dataset, reason",
    ]


def test_several_problems_reported_together_and_nothing_returned(tmp_path):
    with pytest.raises(UserError) as exc:
        _load(tmp_path, """\
            defaults: {model: tiny.en, repeats: 0}
            grid: {quants: [fp61], devices: [cpu, cpu]}
            """, name="smoke.yaml")
    assert exc.value.problems == [
        "smoke.yaml: defaults.repeats: expected an integer >= 1, got 0",
        "smoke.yaml: grid.quants[0]: 'fp61' is not a quant; allowed: fp32, fp16, bf16, int8",
        "smoke.yaml: grid.devices[1]: 'cpu' is repeated; each value may appear once",
    ]
    text = str(exc.value)
    assert text.startswith(f"{tmp_path / 'smoke.yaml'} has 3 problems; nothing was started:\n  - smoke.yaml: ")


def test_everything_excluded_is_an_error(tmp_path):
    assert _problems(tmp_path, BASE + "exclude: [{model: tiny.en, reason: none of it}]\n") == [
        "x.yaml: exclude: every grid point is excluded; nothing would run"]


def test_yaml_problems(tmp_path):
    assert _problems(tmp_path, "name: a\nname: b\n") == [
        "x.yaml: not valid YAML: key 'name' is given twice (line 2, column 1)"]
    assert _problems(tmp_path, "grid: [a\n")[0].startswith("x.yaml: not valid YAML: ")
    assert _problems(tmp_path, "- a\n") == [
        "x.yaml: expected a mapping with keys name, description, defaults, grid, entries, exclude, cluster at the top, "
        "got a list"]


def test_missing_file_lists_the_shipped_experiments(tmp_path):
    with pytest.raises(UserError, match=r"experiment file nope does not exist; experiments here: .*smoke"):
        load_experiment("nope", root=ROOT)


def test_empty_sections_and_relative_file_path(tmp_path):
    exp = _load(tmp_path, "defaults: {model: tiny.en, quant: int8}\ngrid:\nentries:\nexclude:\n")
    assert len(exp.groups) == 1
    assert load_experiment("experiments/test-tiny.yaml", root=ROOT).name == "test-tiny"  # from the root


def test_relative_paths_start_next_to_the_file_then_from_the_current_folder(tmp_path, monkeypatch):
    """Issue 28 item 4: a relative path is looked for next to the experiment file, then in the current folder;
    the embedded dataset's name, found in neither, is the copy that ships with edgeasr (runner/host/places.py)."""
    monkeypatch.chdir(ROOT)
    assert load_experiment("smoke").groups[0].conditions[0].dataset == str(ROOT / "data" / "default")
    monkeypatch.chdir(tmp_path)
    assert load_experiment(ROOT / "experiments" / "smoke.yaml").groups[0].conditions[0].dataset == \
        str(ROOT / "data" / "default")
    (tmp_path / "x.yaml").write_text((ROOT / "experiments" / "smoke.yaml").read_text().replace(
        "data/default", "data/mine"))
    with pytest.raises(UserError) as exc:
        load_experiment(tmp_path / "x.yaml")
    assert "'data/mine' does not exist" in exc.value.problems[0]


def test_numbers_are_normalised_so_equal_settings_share_a_group(tmp_path):
    exp = _load(tmp_path, """\
        defaults: {quant: int8, decode: {temperature: 0.0}}
        grid: {models: [tiny.en]}
        entries: [{match: {model: tiny.en}, set: {decode: {temperature: 0}, telemetry: {baseline_s: 5}}}]
        """)
    assert len(exp.groups) == 1 and json.dumps(exp.groups[0].decode["temperature"]) == "0.0"


def test_gpus_are_a_group_setting_and_unset_leaves_keys_unchanged(tmp_path):
    """An experiment names its GPUs (device ids for the engine and NVML); leaving them out keeps the group's
    settings, and so every condition key of earlier results, as they were."""
    base = "defaults: {model: tiny.en, quant: int8, device: cuda}\n"
    plain = _load(tmp_path, base).groups[0]
    assert "gpus" not in plain.settings() and plain.gpus is None
    named = _load(tmp_path, base.replace("device: cuda", "device: cuda, gpus: [0, GPU-abc]")).groups[0]
    assert named.gpus == "0,GPU-abc" and named.settings()["gpus"] == "0,GPU-abc"
    problems = _problems(tmp_path, base.replace("device: cuda", "device: cuda, gpus: {a: 1}"))
    assert any("defaults.gpus: expected a GPU index or UUID" in p for p in problems)
def test_a_bundled_model_is_a_model_in_experiment_files(tmp_path):
    """pocketsphinx's en-us ships in its image: a sweep may name it like an installed model."""
    path = tmp_path / "ps.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: ps
        defaults: {{quant: fp32, dataset: {ROOT / 'data/default'}}}
        grid: {{backends: [pocketsphinx], models: [en-us]}}
        """))
    exp = load_experiment(path)
    assert [g.model for g in exp.groups] == ["en-us"]


# --- grid.images: library versions as an axis ---------------------------------------------------------------


def test_images_axis_makes_one_group_per_image(tmp_path):
    exp = _load(tmp_path, """\
        defaults: {model: tiny.en, quant: int8, limit: 3}
        grid:
          images: [edgeasr/faster-whisper:ct2-4.6.0, edgeasr/faster-whisper:ct2-4.8.5]
        entries:
          - match: {image: edgeasr/faster-whisper:ct2-4.8.5}
            set: {warmup: 2}
        """)
    assert [(g.image, g.warmup) for g in exp.groups] == [("edgeasr/faster-whisper:ct2-4.6.0", 1),
                                                         ("edgeasr/faster-whisper:ct2-4.8.5", 2)]
    assert exp.resolved["grid"]["images"] == ["edgeasr/faster-whisper:ct2-4.6.0", "edgeasr/faster-whisper:ct2-4.8.5"]


def test_images_axis_can_be_excluded_by_image(tmp_path):
    exp = _load(tmp_path, """\
        defaults: {model: tiny.en}
        grid:
          quants: [fp32, int8]
          images: [a/b:1, a/b:2]
        exclude:
          - {image: a/b:1, quant: fp32, reason: only int8 was built}
        """)
    assert [(g.image, g.quant) for g in exp.groups] == [("a/b:2", "fp32"), ("a/b:1", "int8"), ("a/b:2", "int8")]
    assert exp.excluded[0]["image"] == "a/b:1" and exp.excluded[0]["reason"] == "only int8 was built"


def test_images_axis_refuses_a_second_way_to_name_the_image(tmp_path):
    problems = _problems(tmp_path, """\
        defaults: {model: tiny.en, quant: int8, image: a/b:0}
        grid:
          images: [a/b:1, a/b:1]
        entries:
          - match: {image: a/b:1}
            set: {image: a/b:3}
        """)
    text = "\n".join(problems)
    assert "grid.images[1]: 'a/b:1' is repeated" in text
    assert "defaults.image: grid.images chooses the image" in text
    assert "entries[0].set.image: grid.images chooses the image" in text


def test_without_images_axis_image_is_a_setting_and_not_a_match_key(tmp_path):
    exp = _load(tmp_path, BASE + "entries:\n  - {match: {model: tiny.en}, set: {image: my/img:1}}\n")
    assert [g.image for g in exp.groups] == ["my/img:1"]
    problems = _problems(tmp_path, BASE + "entries:\n  - {match: {image: my/img:1}, set: {warmup: 0}}\n")
    assert any("entries[0].match" in p and "image" in p for p in problems)


def test_shipped_ct2_versions():
    """The library-version sweep of issue #16: two images, one group each, the same settings otherwise."""
    exp = load_experiment("ct2-versions", root=ROOT)
    assert [g.image for g in exp.groups] == ["edgeasr/faster-whisper:ct2-4.6.0", "edgeasr/faster-whisper:ct2-4.8.5"]
    assert {(g.model, g.quant, g.decode["threads"]) for g in exp.groups} == {("tiny.en", "int8", 2)}
    assert all(c.limit == 3 for g in exp.groups for c in g.conditions)


# --- dotted axes: any scalar setting is a grid axis ------------------------------------------------------------


def test_in_container_axis_stays_in_one_group_with_decode_overrides(tmp_path):
    """decode.beam_size is in faster-whisper's in_container: one container; the group decodes with the axis'
    first value and each condition carries its override; conditions go dataset, beam, noise level, repeat."""
    write_tone(tmp_path / "d2" / "a.wav")
    exp = _load(tmp_path, f"""\
        defaults: {{model: tiny.en, quant: int8, repeats: 2, noise: {{types: [white], snr_db: [10]}}}}
        grid:
          datasets: [data/default, {tmp_path / 'd2'}]
          decode.beam_size: [1, 5]
        """)
    (group,) = exp.groups
    assert group.decode["beam_size"] == 1 and group.spec_settings.decode.beam_size == 1
    d1, d2 = str(ROOT / "data" / "default"), str(tmp_path / "d2")
    assert [(c.dataset, c.decode, c.noise_type, c.repeat) for c in group.conditions] == [
        (d, over, kind, r) for d in (d1, d2) for over in ({}, {"beam_size": 5})
        for kind in ("clean", "white") for r in (0, 1)]
    first = group.conditions[0]
    assert "decode" not in first.settings() and "axes" not in first.settings()
    assert group.conditions[4].settings()["decode"] == {"beam_size": 5}
    assert group.conditions[4].axes == {"backend": "faster-whisper", "model": "tiny.en", "quant": "int8",
                                        "device": "cpu", "dataset": d1, "decode.beam_size": 5}


def test_group_settings_do_not_change_for_the_first_in_container_value(tmp_path):
    """The group of a beam-size sweep has the settings (so the keys) of a plain sweep at the first beam size."""
    plain = _load(tmp_path, BASE.replace("}", ", decode: {beam_size: 1}}"), name="a.yaml").groups[0]
    swept = _load(tmp_path, BASE + "grid: {decode.beam_size: [1, 5]}\n", name="b.yaml").groups[0]
    assert swept.settings() == plain.settings()
    assert swept.conditions[0].settings() == plain.conditions[0].settings()


def test_axis_outside_the_backends_in_container_makes_groups(tmp_path):
    """pocketsphinx varies nothing in-container, so a beam-size axis gives it one group per value."""
    exp = _load(tmp_path, """\
        defaults: {backend: pocketsphinx, model: en-us, quant: fp32}
        grid: {decode.beam_size: [1, 5]}
        """)
    assert [(g.decode["beam_size"], [c.decode for c in g.conditions]) for g in exp.groups] == [(1, [{}]), (5, [{}])]
    assert exp.resolved["axis_roles"] == {"pocketsphinx": {
        "in_container": ["dataset"], "per_group": ["backend", "model", "quant", "device", "decode.beam_size"]}}


@pytest.mark.parametrize("axis, values, attr", [
    ("decode.threads", "[1, 2]", lambda g: g.decode["threads"]),
    ("warmup", "[0, 1]", lambda g: g.warmup),
    ("telemetry.interval_ms", "[50, 100]", lambda g: g.telemetry["interval_ms"]),
    ("timeout_s", "[60, 120]", lambda g: g.timeout_s),
])
def test_container_axes_make_one_group_per_value(tmp_path, axis, values, attr):
    """threads, warmup, telemetry and timeout change the container: one group per value, in grid order."""
    exp = _load(tmp_path, BASE + f"grid: {{{axis}: {values}}}\n")
    assert len(exp.groups) == 2 and [attr(g) for g in exp.groups] == json.loads(values)
    assert all(c.decode == {} for g in exp.groups for c in g.conditions)
    assert exp.resolved["axes"][axis] == json.loads(values)


def test_limit_axis_stays_conditions_of_one_group(tmp_path):
    """limit is a condition setting: a limit axis adds conditions to the same container."""
    exp = _load(tmp_path, BASE + "grid: {limit: [2, 4]}\n")
    (group,) = exp.groups
    assert [c.limit for c in group.conditions] == [2, 4]


def test_dotted_axis_values_are_checked_by_the_field_check(tmp_path):
    """Grid values go through the same checks as defaults; the message names the grid key and item."""
    assert _problems(tmp_path, BASE + "grid: {decode.beam_size: [1, 0], decode.temperature: [x]}\n",
                     name="smoke.yaml") == [
        "smoke.yaml: grid.decode.beam_size[1]: expected an integer >= 1, got 0",
        "smoke.yaml: grid.decode.temperature[0]: expected a number >= 0, got 'x'",
    ]


def test_list_settings_and_repeats_are_refused_as_axes(tmp_path):
    """noise levels, audio_roots and repeats cannot be axes; the message points at the right setting."""
    problems = _problems(tmp_path, BASE + "grid: {noise.types: [[white]], audio_roots: [[a]], repeats: [1, 2],"
                                          " decode.beam: [1]}\n")
    text = "\n".join(problems)
    assert "grid.noise.types: not a grid axis" in text and "`noise:`" in text
    assert "grid.audio_roots: not a grid axis" in text and "grid.repeats: not a grid axis" in text
    assert "grid.decode.beam: unknown key" in text and "did you mean 'decode.beam_size'?" in text


def test_entries_and_exclude_match_on_dotted_axes(tmp_path):
    """A dotted axis is a match key: an entry that sets a container setting for one value splits its group;
    an exclusion records the axis value; setting the axis itself in an entry is refused."""
    exp = _load(tmp_path, BASE + textwrap.dedent("""\
        grid: {decode.beam_size: [1, 2, 5]}
        entries:
          - {match: {decode.beam_size: 5}, set: {warmup: 0}}
        exclude:
          - {decode.beam_size: 2, reason: not needed}
        """))
    assert [(g.warmup, [c.decode for c in g.conditions]) for g in exp.groups] == [
        (1, [{}]), (0, [{"beam_size": 5}])]
    assert exp.excluded[0]["decode.beam_size"] == 2 and exp.excluded[0]["reason"] == "not needed"
    problems = _problems(tmp_path, BASE + "grid: {decode.beam_size: [1, 5]}\n"
                                          "entries: [{match: {model: tiny.en}, set: {decode: {beam_size: 2}}}]\n")
    assert problems == ["x.yaml: entries[0].set.decode.beam_size: grid.decode.beam_size chooses it; match on "
                        "decode.beam_size instead of setting it"]


def test_resolved_lists_axes_and_their_roles(tmp_path):
    """The manifest lists every axis with its values and, per backend, which vary in-container."""
    exp = _load(tmp_path, BASE + "grid: {decode.beam_size: [1, 5], decode.threads: [1, 2]}\n")
    assert exp.resolved["axes"]["decode.beam_size"] == [1, 5] and exp.resolved["grid"]["decode.threads"] == [1, 2]
    roles = exp.resolved["axis_roles"]["faster-whisper"]
    assert roles["in_container"] == ["dataset", "decode.beam_size"]
    assert "decode.threads" in roles["per_group"] and "decode.beam_size" not in roles["per_group"]
    assert [g.decode["threads"] for g in exp.groups] == [1, 2]
    assert all([c.decode for c in g.conditions] == [{}, {"beam_size": 5}] for g in exp.groups)
