"""The espnet backend on the host: its CTC-weight setting, where a CTC weight is refused, ESPnet model folders,
the job it gets, its sweep axes and its Python 3.13 build (base, wheelhouse, source-only packages).

Nothing here loads torch or ESPnet: model folders are stand-ins with the files runner.models.resolve reads
(config.yaml and model.pth, empty); tests/e2e/test_espnet_e2e.py runs the real image on the real tiny model.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT

from runner import settings as st
from runner.backends import BACKENDS, IMAGES
from runner.commands import run as run_cmd
from runner.errors import UserError
from runner.experiment import load_experiment
from runner.images import build as images
from runner.launch.job import make_job
from runner.models.resolve import is_espnet_dir, random_weights_reason, resolve_model

DATA = str(ROOT / "data" / "default")


def _espnet(models: Path, name: str = "tiny-espnet-random", random: bool = True) -> Path:
    """An ESPnet model folder as make_tiny_model.py writes it (config.yaml, model.pth, the marker)."""
    folder = models / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("encoder: conformer\ntoken_list: [<blank>, <unk>, A, <sos/eos>]\n")
    (folder / "model.pth").write_bytes(b"")
    (folder / "edgeasr-model.json").write_text(json.dumps({"name": name, "note": "random", "random_weights": random}))
    return folder


def _whisper(models: Path) -> Path:
    folder = models / "tiny.en"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"alignment_heads": [], "lang_ids": []}))
    (folder / "model.bin").write_bytes(b"")
    return folder


def _args(tmp_path: Path, *flags: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    run_cmd.add_arguments(p)
    return p.parse_args(["--device", "cpu", "--data", DATA, "--models-dir", str(tmp_path / "models"),
                         "--out", str(tmp_path / "out"), *flags])


# -- the setting ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-0.1, 1.5, "x"])
def test_ctc_weight_is_a_number_from_0_to_1(value):
    """Its check names the range, worded for a flag and for a file key."""
    with pytest.raises(st.SettingError) as exc:
        st.check("decode.ctc_weight", value)
    (cli,) = exc.value.messages("--ctc-weight")
    (file,) = exc.value.messages("x.yaml: defaults.decode.ctc_weight")
    assert "from 0 to 1" in cli and cli.startswith("--ctc-weight must be ")
    assert file.startswith("x.yaml: defaults.decode.ctc_weight: expected a number from 0 to 1 or null, got ")


def test_ctc_weight_defaults_to_the_backends_own():
    """null is "the backend's": espnet decodes with ESPnet's recipe value, 0.3; the help says so."""
    assert st.check("decode.ctc_weight", 0) == 0.0 and st.check("decode.ctc_weight", None) is None
    assert st.Settings().decode.ctc_weight is None
    assert st.default_text(st.LEAVES["decode.ctc_weight"]) == "the backend's (espnet: 0.3; none elsewhere)"


# -- a run: the spec and the job ----------------------------------------------------------------------------------


def test_an_espnet_run_decodes_with_its_default_ctc_weight_and_the_users(tmp_path):
    _espnet(tmp_path / "models")
    spec = run_cmd.spec_from_args(_args(tmp_path, "--backend", "espnet"))
    assert spec.model.name == "tiny-espnet-random" and spec.quant == "fp32" and spec.decode.ctc_weight == 0.3
    assert make_job(spec).to_json()["decode"]["ctc_weight"] == 0.3
    spec = run_cmd.spec_from_args(_args(tmp_path, "--backend", "espnet", "--ctc-weight", "1", "--beam-size", "3"))
    assert (spec.decode.ctc_weight, spec.decode.beam_size) == (1.0, 3)


def test_a_ctc_weight_is_refused_for_a_backend_without_joint_decoding(tmp_path):
    """--ctc-weight with faster-whisper: one sentence with the reason, before any container starts."""
    _whisper(tmp_path / "models")
    with pytest.raises(UserError) as exc:
        run_cmd.spec_from_args(_args(tmp_path, "--backend", "faster-whisper", "--model", "tiny.en",
                                     "--ctc-weight", "0.3"))
    assert str(exc.value) == (
        "--ctc-weight 0.3 cannot apply to model tiny.en with backend faster-whisper: a model of this backend has "
        "no joint CTC/attention decoding (no CTC weight to set), so it honours only decode.beam_size, "
        "decode.batch_size, decode.temperature, decode.language (it decodes with ctc_weight null)")
    assert not (tmp_path / "out").exists()


def test_espnet_refuses_a_language_and_a_temperature(tmp_path):
    _espnet(tmp_path / "models")
    with pytest.raises(UserError) as exc:
        run_cmd.spec_from_args(_args(tmp_path, "--backend", "espnet", "--language", "en", "--temperature", "0.2"))
    assert [p.split(":")[0] for p in exc.value.problems] == [
        "--temperature 0.2 cannot apply to model tiny-espnet-random with backend espnet",
        "--language en cannot apply to model tiny-espnet-random with backend espnet"]


def test_a_job_without_a_ctc_weight_is_what_contract_3_always_wrote(tmp_path):
    """A backend without joint decoding gets no ctc_weight key in its job (DECODE_FEATURES): images built before
    the field existed (contract 3) read every job that does not use it."""
    _whisper(tmp_path / "models")
    spec = run_cmd.spec_from_args(_args(tmp_path, "--backend", "faster-whisper", "--model", "tiny.en"))
    typed = make_job(spec)
    job = typed.to_json()
    assert spec.decode.ctc_weight is None and typed.version_problem(3) is None
    assert set(job["decode"]) == {"beam_size", "temperature", "language", "threads", "batch_size", "align"}


def test_the_container_reads_a_ctc_weight_and_refuses_one_out_of_range():
    from edgeasr_entrypoint.job import JobError, parse_job

    job = {"contract_version": 4, "backend": "espnet", "model": "/models/m", "quant": "fp32",
           "backend_quant": "float32", "device": "cpu", "decode": {"beam_size": 2, "ctc_weight": 0.3},
           "utterances": [], "conditions": [{"key": "k", "noise": {"type": "clean"}, "decode": {"ctc_weight": 1}}]}
    parsed = parse_job(job)
    assert parsed.decode.ctc_weight == 0.3 and parsed.conditions[0].decode == {"ctc_weight": 1}
    assert parse_job({**job, "decode": {"beam_size": 2}}).decode.ctc_weight is None  # absent: none
    for where, bad in (("decode", {"ctc_weight": 1.5}), ("conditions", [{"key": "k", "noise": {"type": "clean"},
                                                                          "decode": {"ctc_weight": "x"}}])):
        with pytest.raises(JobError, match="ctc_weight must be a number from 0 to 1 or null"):
            parse_job({**job, where: bad})


# -- ESPnet model folders -----------------------------------------------------------------------------------------


def test_espnet_model_folders_resolve_for_espnet_only(tmp_path):
    models = tmp_path / "models"
    folder = _espnet(models)
    _whisper(models)
    assert is_espnet_dir(folder)
    by_name = resolve_model("tiny-espnet-random", models, model_format="espnet")
    by_path = resolve_model(str(folder), models, model_format="espnet")
    assert by_name.host_dir == by_path.host_dir == folder and by_name.container_path == "/models/tiny-espnet-random"
    with pytest.raises(UserError, match="'tiny.en' is a Whisper model; the espnet backend loads ESPnet models"):
        resolve_model("tiny.en", models, model_format="espnet")
    with pytest.raises(UserError, match="not found in .*edgeasr models make-tiny"):
        resolve_model("other-espnet", models, model_format="espnet")
    with pytest.raises(UserError, match="is an ESPnet model folder .*run it with --backend espnet"):
        resolve_model(str(folder), models, model_format="ctranslate2")


def test_a_model_zoo_archive_is_an_espnet_folder(tmp_path):
    """An unpacked ESPnet model-zoo archive names its config and weights in meta.yaml."""
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "meta.yaml").write_text("yaml_files: {asr_train_config: exp/a/config.yaml}\n"
                                   "files: {asr_model_file: exp/a/valid.acc.ave.pth}\n")
    assert is_espnet_dir(zoo) and resolve_model(str(zoo), tmp_path, model_format="espnet").host_dir == zoo


def test_a_random_weights_models_wer_is_not_a_result(tmp_path):
    """The tiny models' marker says their weights are random: their WER is unavailable with that reason."""
    from runner import merge
    from runner.results import Summary, UtteranceResult

    random, real = _espnet(tmp_path, "a"), _espnet(tmp_path, "b", random=False)
    reason = random_weights_reason(random)
    assert reason.startswith("a has random weights") and "WER is not a result" in reason
    assert random_weights_reason(real) is None and random_weights_reason(None) is None
    s = Summary(backend="espnet", model="a", quant="fp32", device="cpu", dataset="d", status="ok", wer=0.9, cer=0.8,
                sub=3, deletions=1, ins=2)
    utt = UtteranceResult(id="u", status="ok", error=None, reference="a b", hypothesis="X", reference_norm="a b",
                          hypothesis_norm="x", duration_s=1.0, latency_s=0.1, wer=1.0)
    s, (unscored,) = merge.not_a_result(s, [utt], reason)
    assert unscored.wer is None and unscored.hypothesis == "X" and unscored.latency_s == 0.1
    assert (s.wer, s.cer, s.sub, s.deletions, s.ins) == (None,) * 5
    assert s.to_json()["unavailable"]["wer"] == reason and s.to_json()["unavailable"]["del"] == reason


# -- a sweep over the CTC weight ------------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str):
    path = tmp_path / "x.yaml"
    path.write_text(textwrap.dedent(text))
    return load_experiment(path, root=ROOT)


def test_a_ctc_weight_axis_stays_inside_one_espnet_container(tmp_path):
    """espnet varies the CTC weight (and the beam size) inside one loaded model: one group, a condition per value,
    decoding with the axis' first value and overriding it in the others."""
    exp = _load(tmp_path, """\
        defaults: {backend: espnet, model: tiny-espnet-random, quant: fp32, device: cpu, limit: 1}
        grid: {decode.ctc_weight: [0, 0.3, 1.0], decode.beam_size: [1, 5]}
        """)
    (group,) = exp.groups
    assert group.decode["ctc_weight"] == 0.0 and group.decode["beam_size"] == 1
    assert [c.decode for c in group.conditions] == [
        {}, {"beam_size": 5}, {"ctc_weight": 0.3}, {"ctc_weight": 0.3, "beam_size": 5},
        {"ctc_weight": 1.0}, {"ctc_weight": 1.0, "beam_size": 5}]
    assert exp.resolved["axis_roles"]["espnet"]["in_container"] == ["dataset", "decode.ctc_weight",
                                                                    "decode.beam_size"]


def test_a_ctc_weight_axis_is_refused_for_whisper_naming_the_key(tmp_path):
    with pytest.raises(UserError) as exc:
        _load(tmp_path, """\
            defaults: {backend: faster-whisper, model: tiny.en, quant: int8, device: cpu}
            grid: {decode.ctc_weight: [0.3]}
            """)
    assert "x.yaml: grid.decode.ctc_weight[0]: 0.3 cannot apply to model tiny.en with backend faster-whisper" in \
        "\n".join([str(exc.value), *exc.value.problems])


def test_the_shipped_experiment_sweeps_ctc_weight_over_input_lengths():
    """experiments/espnet-ctc-weight.yaml: espnet's tiny model over the length ladder, CTC weight 0, 0.3, 1 in one
    container (one model load)."""
    import yaml

    data = yaml.safe_load((ROOT / "experiments" / "espnet-ctc-weight.yaml").read_text())
    assert data["defaults"]["backend"] == "espnet" and data["defaults"]["dataset"] == "data/lengths"
    assert data["grid"]["decode.ctc_weight"] == [0.0, 0.3, 1.0]
    assert set(data["grid"]) <= set(BACKENDS["espnet"].in_container)


# -- the build: Python 3.13 base and wheelhouse -----------------------------------------------------------------------


def test_espnet_builds_on_the_python_313_base_whatever_the_311_base_is():
    es, parent = BACKENDS["espnet"], IMAGES["torch-base-py313"]
    assert images.base_for(parent, images.PUBLIC_BASE) == "python:3.13-slim-trixie"
    assert images.base_for(parent, "my/py311:base") == "python:3.13-slim-trixie"  # --base is the 3.11 images'
    assert images.base_for(IMAGES["torch-base"], "my/py311:base") == "my/py311:base"
    assert images.BASES[es.python].local == "edgeasr/base:trixie" and images.BASES["3.13"].suite == "trixie"
    assert images.BASES["3.13"].wheel_platforms[-1] == "manylinux_2_41_x86_64"
    assert images.WHEEL_PLATFORMS[-1] == "manylinux_2_36_x86_64"  # bookworm's, unchanged


class _Client:
    """A Docker client stand-in that holds ``present`` images and cannot pull."""

    def __init__(self, present):
        self.present = set(present)
        self.images = self

    def get(self, ref):
        from docker.errors import ImageNotFound

        if ref not in self.present:
            raise ImageNotFound(ref)

    def pull(self, ref):
        from docker.errors import APIError

        raise APIError("no registry", explanation="no such host")


def test_without_a_registry_the_313_base_falls_back_to_the_local_trixie_one(monkeypatch):
    calls = []
    monkeypatch.setattr(images.subprocess, "run", lambda cmd, **k: calls.append(cmd) or argparse.Namespace(
        returncode=0))
    assert images.ensure_base(_Client([]), "python:3.13-slim-trixie", log=lambda m: None) == "edgeasr/base:trixie"
    assert calls and calls[0][-2:] == ["edgeasr/base:trixie", "trixie"]
    calls.clear()
    assert images.ensure_base(_Client(["edgeasr/base:bookworm-ffmpeg"]), images.PUBLIC_BASE,
                              log=lambda m: None) == "edgeasr/base:bookworm-ffmpeg" and not calls


def test_one_build_takes_each_images_base_by_its_python(monkeypatch, tmp_path):
    """Regression (the merge of runner/images/make.py): `make images` builds every row in one request, and the
    build sequence asked for one base, --base's, so espnet's parent was built FROM the Python 3.11 bookworm base.
    Each image without a parent takes the base of its own Python, each asked for once; a child its parent."""
    from runner.images import make

    asked, built = [], []
    monkeypatch.setattr(make, "image_exists", lambda client, ref: False)
    monkeypatch.setattr(make, "ensure_base", lambda client, base, log: asked.append(base) or f"local/{base}")
    monkeypatch.setattr(make, "fill_wheelhouse", lambda *a, **k: None)
    monkeypatch.setattr(make, "build_image",
                        lambda client, image, **k: built.append((k["tag"], k["base"])) or "sha256:x")
    make.build_images(object(), make.BuildRequest(names=("faster-whisper", "espnet", "pocketsphinx"), jobs=1,
                                                  log_dir=tmp_path), log=lambda m: None)
    assert asked == [images.PUBLIC_BASE, "python:3.13-slim-trixie"]
    assert built == [("edgeasr/faster-whisper:latest", f"local/{images.PUBLIC_BASE}"),
                     ("edgeasr/torch-base:2.14-py3.13", "local/python:3.13-slim-trixie"),
                     ("edgeasr/espnet:latest", "edgeasr/torch-base:2.14-py3.13"),
                     ("edgeasr/pocketsphinx:latest", f"local/{images.PUBLIC_BASE}")]


def test_the_wheelhouse_is_filled_for_the_images_python(monkeypatch, tmp_path):
    """pip is asked for cp313 wheels that trixie's glibc runs, the source-only pure-Python pin is packed into a
    wheel first, and the child's download leaves out what its parent's own resolution installs (the torch stack)."""
    es = BACKENDS["espnet"]
    monkeypatch.setattr(type(es), "wheelhouse", property(lambda self: tmp_path / self.name))
    calls = []

    def pip(image, args, arch="amd64"):
        calls.append(args)
        if args[0] == "wheel":  # into the wheelhouse's key (x86_64-py3.13)
            house = Path(args[args.index("--wheel-dir") + 1])
            house.mkdir(parents=True, exist_ok=True)
            (house / "antlr4_python3_runtime-4.9.3-py3-none-any.whl").write_bytes(b"")

    resolved = {"torch": "2.14.1", "nvidia-cublas": "13.1.0.3"}
    monkeypatch.setattr(images, "_pip", pip)
    monkeypatch.setattr(images, "_PARENT_RESOLUTIONS", {})  # this fake resolution stays out of the process's
    monkeypatch.setattr(images, "resolve_pins", lambda image, text, arch="amd64": dict(resolved) if "espnet==" not in text else {
        **resolved, "espnet": "202611", "antlr4-python3-runtime": "4.9.3", "scipy": "1.18.1"})
    images.fill_wheelhouse(es, log=lambda m: None, only=images.child_extras(es))
    wheel, download = calls
    assert wheel[:3] == ["wheel", "--quiet", "--no-deps"] and wheel[-1] == "antlr4-python3-runtime==4.9.3"
    assert download[0] == "download" and "--no-deps" in download
    assert download[download.index("--python-version") + 1] == "3.13"
    assert "manylinux_2_41_x86_64" in download
    req = Path(download[download.index("-r") + 1])
    assert not req.exists()  # a temporary file; what it held is checked through the resolution above


def test_a_source_only_package_that_is_not_pure_python_is_refused(monkeypatch, tmp_path):
    es = BACKENDS["espnet"]
    monkeypatch.setattr(type(es), "wheelhouse", property(lambda self: tmp_path / self.name))

    def pip(image, args, arch="amd64"):
        house = Path(args[args.index("--wheel-dir") + 1])
        house.mkdir(parents=True, exist_ok=True)
        (house / "antlr4_python3_runtime-4.9.3-cp311-cp311-linux_x86_64.whl").write_bytes(b"")

    monkeypatch.setattr(images, "_pip", pip)
    with pytest.raises(UserError, match=r"is not pure Python \(antlr4_python3_runtime-4.9.3-cp311.*\).* needs compiling for Python 3.13"):
        images.pack_source_only(es, {"antlr4-python3-runtime": "4.9.3"}, log=lambda m: None)


def test_the_run_view_says_why_there_is_no_wer():
    from runner.report.table import summary_rows

    reason = "m has random weights (a tiny model made offline for pipeline and latency tests): ..."
    s = {"status": "ok", "n_utterances": 1, "n_failed": 0, "n_scored": 1, "n_unreferenced": 0, "wer": None,
         "unavailable": {"wer": reason}}
    assert dict(summary_rows(s))["WER"] == f"unavailable: {reason}"


def _adapter():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("edgeasr_backend_espnet_under_test",
                                                  ROOT / "containers" / "espnet" / "edgeasr_backend_espnet.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_a_random_weights_models_beam_search_is_capped_and_a_real_ones_is_not(tmp_path):
    """Issue 27: a random model never emits end-of-sentence, so ESPnet's beam search ran to one token per encoder
    frame (286 s for a 30 s clip) and the ctc-weight ladder could not run. Its output is capped (maxlenratio 0.1);
    a real model (no marker, or one that does not say random) decodes uncapped (0: up to the frame count)."""
    adapter = _adapter()
    random_model = _espnet(tmp_path / "models")
    assert adapter.output_cap(str(random_model)) == adapter.RANDOM_WEIGHTS_MAXLENRATIO == 0.1
    real = _espnet(tmp_path / "models", name="real", random=False)
    assert adapter.output_cap(str(real)) == 0.0
    (real / adapter.MARKER_FILE).unlink(missing_ok=True)
    assert adapter.output_cap(str(real)) == 0.0
    (real / adapter.MARKER_FILE).write_text("not json")
    assert adapter.output_cap(str(real)) == 0.0
