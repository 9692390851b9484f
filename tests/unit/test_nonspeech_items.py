"""Issue 24 item 2: generated non-speech items (silence, noise at a level in dBFS RMS), added to any run or
sweep by the ``nonspeech`` setting, with an empty reference (non-speech, scored apart from WER)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import tone_study, write_tone

from runner import settings as st
from runner.data import nonspeech
from runner.data.dataset import Dataset, Utterance
from runner.errors import UserError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEASR_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _dataset(tmp_path: Path, n: int = 3) -> Dataset:
    utts = tuple(Utterance(f"u{i}", write_tone(tmp_path / "d" / f"u{i}.flac", seconds=1.0 + i).resolve(), "words")
                 for i in range(n))
    return Dataset("d", (tmp_path / "d").resolve(), "folder", utts, ((tmp_path / "d").resolve(),))


def _rms_dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(math.sqrt(float(np.mean(np.asarray(x, dtype=np.float64) ** 2))))


def test_items_are_named_sized_levelled_and_seeded(tmp_path):
    """count items of each type, ``seconds`` long exactly, noise at level_dbfs RMS (16-bit FLAC: within
    0.01 dB), silence all zeros; the same settings give the same samples, another seed others."""
    ns = st.NonspeechSettings(types=("silence", "white", "pink"), seconds=2.0, count=2)
    ds = nonspeech.with_nonspeech(_dataset(tmp_path), ns)
    added = [u for u in ds.utterances if u.nonspeech]
    assert [u.id for u in added] == ["nonspeech-silence-01", "nonspeech-silence-02", "nonspeech-white-01",
                                     "nonspeech-white-02", "nonspeech-pink-01", "nonspeech-pink-02"]
    assert [u.reference for u in added] == [""] * 6 and all(u.problem is None for u in added)
    assert [u.nonspeech for u in added] == ["silence"] * 2 + ["white"] * 2 + ["pink"] * 2
    audio = {u.id: sf.read(u.audio, dtype="float64")[0] for u in added}
    assert all(len(a) == 32000 for a in audio.values())
    assert not np.any(audio["nonspeech-silence-01"])
    for uid in ("nonspeech-white-01", "nonspeech-pink-02"):
        assert _rms_dbfs(audio[uid]) == pytest.approx(-30.0, abs=0.01)
    assert not np.array_equal(audio["nonspeech-white-01"], audio["nonspeech-white-02"])
    again = nonspeech.with_nonspeech(_dataset(tmp_path), ns)
    assert np.array_equal(sf.read([u for u in again.utterances if u.id == "nonspeech-white-01"][0].audio)[0],
                          sf.read([u for u in added if u.id == "nonspeech-white-01"][0].audio)[0])
    other = nonspeech.with_nonspeech(_dataset(tmp_path), replace(ns, seed=1, level_dbfs=-50.0))
    white = sf.read([u for u in other.utterances if u.id == "nonspeech-white-01"][0].audio, dtype="float64")[0]
    assert abs(np.corrcoef(white, audio["nonspeech-white-01"])[0, 1]) < 0.1  # another seed: other noise
    assert _rms_dbfs(white) == pytest.approx(-50.0, abs=0.05)
    assert ds.utterances[:3] == _dataset(tmp_path).utterances  # the dataset's own come first, unchanged
    assert nonspeech.folder_of(ns) in ds.roots


def test_no_types_or_no_count_add_nothing(tmp_path):
    ds = _dataset(tmp_path)
    assert nonspeech.with_nonspeech(ds, st.NonspeechSettings()) is ds
    assert nonspeech.with_nonspeech(ds, st.NonspeechSettings(types=("white",), count=0)) is ds


def test_babble_is_made_from_the_datasets_own_speech_and_file_from_noise_files(tmp_path):
    ds = _dataset(tmp_path)
    got = nonspeech.with_nonspeech(ds, st.NonspeechSettings(types=("babble",), seconds=1.0, count=1))
    babble = sf.read(got.utterances[-1].audio, dtype="float64")[0]
    assert got.utterances[-1].id == "nonspeech-babble-01" and _rms_dbfs(babble) == pytest.approx(-30.0, abs=0.01)
    write_tone(tmp_path / "noises" / "hum.wav", seconds=0.5)
    got = nonspeech.with_nonspeech(ds, st.NonspeechSettings(types=("file",), seconds=1.0, count=1),
                                   noise_files=str(tmp_path / "noises"))
    assert _rms_dbfs(sf.read(got.utterances[-1].audio, dtype="float64")[0]) == pytest.approx(-30.0, abs=0.01)
    with pytest.raises(UserError, match="non-speech of type file needs noise recordings: set noise.files"):
        nonspeech.with_nonspeech(ds, st.NonspeechSettings(types=("file",)))


def test_a_level_that_would_clip_is_refused_not_clipped(tmp_path):
    with pytest.raises(UserError, match="nonspeech.level_dbfs -1 dBFS makes white noise peak above full scale"):
        nonspeech.with_nonspeech(_dataset(tmp_path), st.NonspeechSettings(types=("white",), level_dbfs=-1.0))


def test_the_settings_check_their_values():
    assert st.NonspeechSettings().level_dbfs == -30.0
    with pytest.raises(st.SettingError):
        st.apply(st.Settings(), "nonspeech.level_dbfs", 3.0)
    with pytest.raises(st.SettingError):
        st.apply(st.Settings(), "nonspeech.types", ["hum"])
    assert st.apply(st.Settings(), "nonspeech.types", ["silence", "brown"]).nonspeech.types == ("silence", "brown")
    assert st.sweep_axis_problem("nonspeech.count")  # set once, in defaults: not a grid axis


def test_a_limit_cuts_the_datasets_own_items_and_keeps_every_non_speech_one(tmp_path):
    ds = nonspeech.with_nonspeech(_dataset(tmp_path), st.NonspeechSettings(types=("silence",), count=2,
                                                                          seconds=0.5))
    assert [u.id for u in nonspeech.limited(ds.utterances, 1)] == ["u0", "nonspeech-silence-01",
                                                                    "nonspeech-silence-02"]
    assert nonspeech.limited(ds.utterances, None) == ds.utterances


def test_a_run_with_nonspeech_holds_the_items_and_a_limit_keeps_them(tmp_path):
    from helpers import tone_spec

    from runner import plan

    spec = tone_spec(tmp_path, nonspeech=st.NonspeechSettings(types=("silence", "white"), seconds=1.0))
    assert [u.id for u in spec.dataset.utterances] == ["a", "b", "nonspeech-silence-01", "nonspeech-white-01"]
    assert [u.reference for u in spec.dataset.utterances] == ["a tone", "b tone", "", ""]
    assert all(u.problem is None for u in spec.dataset.utterances)
    job = plan.plan_run(spec, None, limit=1)
    assert job.conditions[0].ids == ("a", "nonspeech-silence-01", "nonspeech-white-01")
    limited = tone_spec(tmp_path / "l", limit=1, nonspeech=st.NonspeechSettings(types=("pink",), seconds=1.0))
    assert [u.id for u in limited.dataset.utterances] == ["a", "nonspeech-pink-01"]


def _sweep(tmp_path, noise_types):
    from runner import plan
    from runner.experiment import load_experiment
    from runner.launch.engines import make_engine

    tone_study(tmp_path)
    exp_file = tmp_path / "ns.yaml"
    exp_file.write_text(
        "name: ns\ndefaults: {backend: faster-whisper, model: tiny.en, quant: int8, device: cpu, "
        f"dataset: {tmp_path / 'd'}, telemetry: {{sampler: none}}, "
        f"nonspeech: {{types: [silence, white], seconds: 1}}, noise: {{types: {noise_types}, snr_db: [10]}}}}\n"
        "grid: {models: [tiny.en]}\n")
    return plan.plan_sweep(load_experiment(str(exp_file)), make_engine("local"), tmp_path / "models",
                           tmp_path / "out", host_checks=False, log=lambda *a: None)


def test_a_sweep_adds_the_items_to_every_condition_and_silence_only_to_clean_ones(tmp_path):
    """Noise is mixed at an SNR relative to the item's own power: digital silence has none, so under a noise
    condition it would be an error, not a measurement; it is left out of those conditions (said in the plan)."""
    [job] = _sweep(tmp_path, "[white]")
    ids = {c.condition.noise_type: c.ids for c in job.conditions}
    assert ids["clean"] == ("a", "b", "nonspeech-silence-01", "nonspeech-white-01")
    assert ids["white"] == ("a", "b", "nonspeech-white-01")


def test_babble_conditions_with_non_speech_items_are_refused(tmp_path):
    """The container draws babble talkers from every utterance of its job: non-speech items would be talkers."""
    with pytest.raises(UserError) as exc:
        _sweep(tmp_path, "[babble]")
    assert "babble noise conditions cannot run beside non-speech items" in str(exc.value.problems)


def test_the_sweep_estimate_counts_the_non_speech_seconds():
    from runner.experiment.estimate import nonspeech_s

    ns = st.NonspeechSettings(types=("silence", "white", "pink"), seconds=10.0, count=2)
    assert nonspeech_s(ns, "clean") == 60.0
    assert nonspeech_s(ns, "white") == 40.0  # silence stays out of noise conditions
    assert nonspeech_s(st.NonspeechSettings(), "clean") == 0.0


def test_a_cut_off_write_is_made_again_and_an_id_clash_is_refused(tmp_path):
    ns = st.NonspeechSettings(types=("white",), seconds=0.5)
    folder = nonspeech.folder_of(ns)
    folder.mkdir(parents=True)
    (folder / "nonspeech-white-01.flac").write_bytes(b"cut off")  # no .complete: a write that never finished
    ds = nonspeech.with_nonspeech(_dataset(tmp_path), ns)
    assert len(sf.read(ds.utterances[-1].audio)[0]) == 8000 and (folder / nonspeech.COMPLETE).is_file()
    clash = replace(_dataset(tmp_path), utterances=(Utterance("nonspeech-white-01", ds.utterances[0].audio, "x"),))
    with pytest.raises(UserError, match="already has an utterance 'nonspeech-white-01'"):
        nonspeech.with_nonspeech(clash, ns)
