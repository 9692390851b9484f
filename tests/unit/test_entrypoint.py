"""The container entrypoint's loop, run in-process with a scripted adapter.

The adapter here stands in for a backend only to drive the loop (its outputs are
scripted, so the assertions can be exact); real backends run in tests/e2e.
"""

import json
import sys
import types

import numpy as np
import pytest
from helpers import write_tone

from edgeasr_entrypoint import __main__ as entry
from edgeasr_entrypoint.audio import AudioError, load_audio
from edgeasr_entrypoint.contract import CONTRACT_VERSION


class ScriptedModel:
    def __init__(self, job):
        self.calls = 0

    def transcribe(self, audio):
        self.calls += 1
        if len(audio) == 8000:  # the half-second file: simulate a decoder failure
            raise RuntimeError("decoder blew up")
        return f"{len(audio)} samples"

    def info(self):
        return {"n_params": 42, "versions": {"scripted": "1"}}


@pytest.fixture
def adapter(monkeypatch):
    mod = types.ModuleType("scripted_adapter")
    mod.load = ScriptedModel
    monkeypatch.setitem(sys.modules, "scripted_adapter", mod)
    monkeypatch.setenv("EDGEASR_ADAPTER", "scripted_adapter")
    monkeypatch.delenv("EDGEASR_OUT", raising=False)
    return mod


def _job(tmp_path, utts, **kw):
    job = {"contract_version": CONTRACT_VERSION, "backend": "scripted", "model": str(tmp_path), "quant": "int8",
           "backend_quant": "int8", "device": "cpu", "decode": {"beam_size": 1}, "warmup": 2, "utterances": utts}
    job.update(kw)
    path = tmp_path / "out" / "job.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(job))
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failed_utterances_are_recorded_and_the_rest_go_on(tmp_path, adapter):
    write_tone(tmp_path / "good.wav", seconds=1.0)
    write_tone(tmp_path / "half.wav", seconds=0.5)
    (tmp_path / "empty.flac").write_bytes(b"")
    (tmp_path / "corrupt.flac").write_bytes(b"fLaC not really a flac file")
    utts = [{"id": i, "audio": str(tmp_path / f)} for i, f in
            [("missing", "missing.wav"), ("good", "good.wav"), ("empty", "empty.flac"),
             ("corrupt", "corrupt.flac"), ("half", "half.wav"), ("good2", "good.wav")]]
    job = _job(tmp_path, utts)
    assert entry.main(["x", str(job)]) == 0
    out = job.parent
    tr = {t["id"]: t for t in _read(out / "transcripts.jsonl")}
    assert tr["good"]["hypothesis"] == "16000 samples" and tr["good"]["duration_s"] == 1.0
    assert tr["good"]["processing_s"] >= 0
    assert "not found" in tr["missing"]["error"]
    assert "empty" in tr["empty"]["error"]
    assert "cannot decode" in tr["corrupt"]["error"]
    assert tr["half"]["error"] == "RuntimeError: decoder blew up"
    assert tr["good2"]["status"] == "ok"
    status = json.loads((out / "status.json").read_text())
    assert status["status"] == "ok" and status["n_ok"] == 2 and status["n_failed"] == 4
    assert status["n_params"] == 42 and status["versions"]["scripted"] == "1" and status["peak_rss_mb"] > 0
    # what the entrypoint writes is what the contract's record types read back, whole (issue 21 item 2)
    from edgeasr_entrypoint.contract import EventRecord, StatusRecord, TranscriptRecord

    assert StatusRecord.from_json(status).problems == () and StatusRecord.from_json(status).to_json() == status
    assert all(TranscriptRecord.from_json(t).to_json() == t for t in _read(out / "transcripts.jsonl"))
    assert all(EventRecord.from_json(e).to_json() == e for e in _read(out / "events.jsonl"))
    names = [e["event"] for e in _read(out / "events.jsonl")]
    assert names[:7] == ["container_start", "load_start", "load_end", "model_info", "warmup_start", "warmup_end",
                         "inference_start"]
    assert names[-2:] == ["inference_end", "container_end"]
    ev = _read(out / "events.jsonl")
    assert all(a["t_ns"] <= b["t_ns"] and a["mono_ns"] <= b["mono_ns"] for a, b in zip(ev, ev[1:]))


def test_bad_job_spec_gives_error_status_and_exit_2(tmp_path, adapter):
    job = _job(tmp_path, [], contract_version=99)
    assert entry.main(["x", str(job)]) == 2
    status = json.loads((job.parent / "status.json").read_text())
    assert status["status"] == "error" and "contract_version is 99" in status["error"]


def test_backend_load_failure_is_an_error_record(tmp_path, monkeypatch, adapter):
    def boom(job):
        raise OSError("model.bin is truncated")
    adapter.load = boom
    job = _job(tmp_path, [])
    assert entry.main(["x", str(job)]) == 1
    status = json.loads((job.parent / "status.json").read_text())
    assert status["error"] == "OSError: model.bin is truncated"


def test_audio_is_resampled_to_16k_mono(tmp_path):
    write_tone(tmp_path / "a.wav", seconds=2.0, sr=44100, channels=2)
    audio = load_audio(str(tmp_path / "a.wav"))
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 32000) <= 2


def test_unreadable_audio_raises_audio_error(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError):
        load_audio(str(tmp_path / "x.wav"))


def test_conditions_run_in_one_container_with_seeded_noise(tmp_path, adapter):
    """A sweep job: conditions in order, noise mixed in memory, the same noise for the same seed key."""
    import shutil

    from helpers import ROOT

    for name in ("harvard-01-01.flac", "harvard-01-02.flac"):
        shutil.copy(ROOT / "data" / "default" / name, tmp_path / name)
    seen = []

    class Recording(ScriptedModel):
        def transcribe(self, audio):
            seen.append(audio.copy())
            return "text"

    adapter.load = Recording
    utts = [{"id": "a", "audio": str(tmp_path / "harvard-01-01.flac")},
            {"id": "b", "audio": str(tmp_path / "harvard-01-02.flac")}]
    conds = [{"key": "k-clean", "noise": {"type": "clean", "snr_db": None}, "seed_key": "clean"},
             {"key": "k-w10", "noise": {"type": "white", "snr_db": 10.0}, "seed_key": "white", "ids": ["a"]},
             {"key": "k-w10-r1", "noise": {"type": "white", "snr_db": 10.0}, "seed_key": "white", "ids": ["a"]},
             {"key": "k-babble", "noise": {"type": "babble", "snr_db": 0.0}, "seed_key": "babble"}]
    job = _job(tmp_path, utts, warmup=0, conditions=conds)
    assert entry.main(["x", str(job)]) == 0
    tr = _read(job.parent / "transcripts.jsonl")
    assert [(t["condition"], t["id"]) for t in tr] == [("k-clean", "a"), ("k-clean", "b"), ("k-w10", "a"),
                                                       ("k-w10-r1", "a"), ("k-babble", "a"), ("k-babble", "b")]
    from edgeasr_entrypoint.noise import measured_snr_db

    clean_a = seen[0]
    assert measured_snr_db(clean_a, seen[2]) == pytest.approx(10.0, abs=0.01)
    assert np.array_equal(seen[2], seen[3])  # same seed key: the repeat hears the same noise
    assert measured_snr_db(clean_a, seen[4]) == pytest.approx(0.0, abs=0.01)
    ev = _read(job.parent / "events.jsonl")
    ends = [e for e in ev if e["event"] == "condition_end"]
    assert [e["condition"] for e in ends] == ["k-clean", "k-w10", "k-w10-r1", "k-babble"]
    assert all(e["peak_rss_mb"] > 0 for e in ends) and ends[1]["n_ok"] == 1


def test_nan_or_infinite_audio_is_a_per_utterance_error(tmp_path):
    """A float WAV can hold NaN/inf samples; a backend would turn them into garbage text, so it is refused."""
    import soundfile as sf

    data = np.zeros(16000, dtype=np.float32)
    data[100] = np.nan
    data[200] = np.inf
    sf.write(tmp_path / "nan.wav", data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="2 NaN or infinite sample"):
        load_audio(str(tmp_path / "nan.wav"))


def test_warm_up_uses_a_bounded_slice_of_a_long_first_file(tmp_path, adapter):
    """The warm-up needs one decoder window: a 45 s first file is warmed up on its first 30 s only."""
    seen = []

    class Recording(ScriptedModel):
        def transcribe(self, audio):
            seen.append(len(audio))
            return "x"

    adapter.load = Recording
    write_tone(tmp_path / "long.wav", seconds=45.0)
    job = _job(tmp_path, [{"id": "long", "audio": str(tmp_path / "long.wav")}], warmup=1)
    assert entry.main(["x", str(job)]) == 0
    assert seen == [30 * 16000, 45 * 16000]
    warm = next(e for e in _read(tmp_path / "out" / "events.jsonl") if e["event"] == "warmup_start")
    assert warm["audio_s"] == 30.0
def test_loaded_idle_window_follows_warmup_and_precedes_inference(tmp_path, adapter):
    """The model sits loaded and idle for loaded_idle_s between warm-up and inference: the host measures the
    loaded model's idle power in that window."""
    write_tone(tmp_path / "good.wav", seconds=1.0)
    job = _job(tmp_path, [{"id": "g", "audio": str(tmp_path / "good.wav")}], loaded_idle_s=0.2)
    assert entry.main(["x", str(job)]) == 0
    events = _read(tmp_path / "out" / "events.jsonl")
    names = [e["event"] for e in events]
    i0, i1 = names.index("loaded_idle_start"), names.index("loaded_idle_end")
    assert names.index("warmup_end") < i0 < i1 < names.index("inference_start")
    assert (events[i1]["mono_ns"] - events[i0]["mono_ns"]) / 1e9 == pytest.approx(0.2, abs=0.05)
    job = _job(tmp_path, [{"id": "g", "audio": str(tmp_path / "good.wav")}])  # an old host: no window
    assert entry.main(["x", str(job)]) == 0
    assert "loaded_idle_start" not in [e["event"] for e in _read(tmp_path / "out" / "events.jsonl")][len(names):]


def test_peak_rss_is_per_condition_and_names_the_audio_cache(tmp_path, adapter):
    """A sweep's second condition must not inherit the first one's peak (the peak is reset at each condition
    where Linux allows it), and the harness's decoded audio is reported beside the peak, not hidden in it."""
    write_tone(tmp_path / "a.wav", seconds=2.0)
    hog = []

    class Hungry(ScriptedModel):
        def transcribe(self, audio):
            if not hog:  # the first condition's first call holds 300 MB for a moment
                big = np.ones(300 * 1024 * 1024 // 8)
                hog.append(float(big.sum()))
                del big
            return "text"

    adapter.load = Hungry
    conds = [{"key": "c1", "noise": {"type": "clean", "snr_db": None}}, {"key": "c2", "noise": {"type": "clean",
                                                                                              "snr_db": None}}]
    job = _job(tmp_path, [{"id": "a", "audio": str(tmp_path / "a.wav")}], warmup=0, conditions=conds)
    assert entry.main(["x", str(job)]) == 0
    ends = [e for e in _read(job.parent / "events.jsonl") if e["event"] == "condition_end"]
    assert ends[0]["peak_rss_mb"] - ends[1]["peak_rss_mb"] > 200, ends
    assert ends[1]["peak_rss_scope"] == "condition (peak reset at its start)"
    assert ends[1]["audio_cache_mb"] == pytest.approx(2.0 * 16000 * 4 / 2**20, rel=0.01)
    status = json.loads((job.parent / "status.json").read_text())
    assert status["peak_rss_mb"] >= ends[0]["peak_rss_mb"]  # the process-wide peak survives the resets


def test_the_backends_peak_without_audio_is_taken_at_the_same_instant_as_its_audio(tmp_path, adapter):
    """Regression (issue 22, item 7): peak_rss_excl_audio_mb was the condition's peak less the audio held at its
    end, so a peak that came before the audio cache filled was under-reported (84 against a true 234 MiB). The
    peak is now split at each backend call (the audio held is constant during a call), and each part's peak has
    the audio held during it taken off: the backend's 100 MiB on the first call, with 1 s of audio cached, is not
    reduced by the 60 MiB of audio cached later."""
    write_tone(tmp_path / "a.wav", seconds=1.0)
    write_tone(tmp_path / "b.wav", seconds=1000.0)  # 61 MiB of float32 audio, cached after the first call
    hog = []

    class Hungry(ScriptedModel):
        def transcribe(self, audio):
            if not hog:  # the first call holds 100 MiB for a moment
                big = np.ones(100 * 1024 * 1024 // 8)
                hog.append(float(big.sum()))
                del big
            return "text"

    adapter.load = Hungry
    conds = [{"key": "c1", "noise": {"type": "clean", "snr_db": None}}]
    utts = [{"id": "a", "audio": str(tmp_path / "a.wav")}, {"id": "b", "audio": str(tmp_path / "b.wav")}]
    job = _job(tmp_path, utts, warmup=0, conditions=conds)
    assert entry.main(["x", str(job)]) == 0
    (end,) = [e for e in _read(job.parent / "events.jsonl") if e["event"] == "condition_end"]
    assert end["audio_cache_mb"] == pytest.approx(1001.0 * 16000 * 4 / 2**20, rel=0.01)
    status = json.loads((job.parent / "status.json").read_text())
    # the first call: the loaded model, 1 s of audio and the 100 MiB it held for a moment
    assert end["peak_rss_excl_audio_mb"] == pytest.approx(status["rss_after_load_mb"] + 100, abs=20), end
    old_rule = end["peak_rss_mb"] - end["audio_cache_mb"]  # the 61 MiB cached after that peak taken off it
    assert old_rule < end["peak_rss_excl_audio_mb"] - 20
    assert end["peak_rss_excl_audio_mb"] <= end["peak_rss_mb"]
    assert "each backend call" in end["peak_rss_excl_audio_method"]
    assert status["peak_rss_excl_audio_mb"] >= end["peak_rss_excl_audio_mb"]
    assert status["peak_rss_excl_audio_method"] == end["peak_rss_excl_audio_method"]


def test_audio_preparation_has_its_own_window_outside_the_utterances(tmp_path, adapter):
    """Decoding (and noise mixing) sits in prepare windows, never inside an utterance's window."""
    write_tone(tmp_path / "a.wav", seconds=1.0)
    write_tone(tmp_path / "b.wav", seconds=1.0)
    job = _job(tmp_path, [{"id": "a", "audio": str(tmp_path / "a.wav")}, {"id": "b", "audio": str(tmp_path / "b.wav")}],
               warmup=0)
    assert entry.main(["x", str(job)]) == 0
    names = [e["event"] for e in _read(job.parent / "events.jsonl")]
    body = names[names.index("inference_start") + 1:names.index("inference_end")]
    assert body == ["prepare_start", "prepare_end", "utterance_start", "utterance_end"] * 2


# -- per-condition decode overrides (contract 3) ----------------------------------------------------------


class Tunable(ScriptedModel):
    """An adapter that can change its decode settings in the loaded model, and batches utterances."""

    def __init__(self, job):
        super().__init__(job)
        self.decode = job.decode
        self.log = []  # ("set_decode", beam, batch) and ("batch", n) in call order

    def set_decode(self, decode):
        if decode.temperature > 0.5:
            raise NotImplementedError("this stand-in cannot sample above 0.5")
        self.decode = decode
        self.log.append(("set_decode", decode.beam_size, decode.batch_size))

    def transcribe_batch(self, audios):
        self.log.append(("batch", len(audios), self.decode.beam_size))
        return [f"beam {self.decode.beam_size}" for _ in audios]

    def transcribe(self, audio):
        return self.transcribe_batch([audio])[0]


def _four_utterances(tmp_path):
    for name in ("a", "b", "c", "d"):
        write_tone(tmp_path / f"{name}.wav", seconds=0.3)
    return [{"id": n, "audio": str(tmp_path / f"{n}.wav")} for n in ("a", "b", "c", "d")]


CLEAN = {"type": "clean", "snr_db": None}


def test_condition_decode_overrides_reach_the_model_before_its_utterances(tmp_path, adapter):
    """A condition's overrides are applied by set_decode before its first utterance, the batch size follows
    the condition's (not the job's), condition_start carries the effective settings, and a condition without
    overrides returns the model to the job's settings; warm-up uses the job's settings."""
    models = []

    def load(job):
        models.append(Tunable(job))
        return models[-1]

    adapter.load = load
    conds = [{"key": "base", "noise": CLEAN},
             {"key": "b2", "noise": CLEAN, "decode": {"beam_size": 2, "batch_size": 2}},
             {"key": "b2-again", "noise": CLEAN, "decode": {"beam_size": 2, "batch_size": 2}},
             {"key": "back", "noise": CLEAN}]
    job = _job(tmp_path, _four_utterances(tmp_path), warmup=1, conditions=conds,
               decode={"beam_size": 1, "batch_size": 4})
    assert entry.main(["x", str(job)]) == 0
    log = models[0].log
    assert log == [("batch", 1, 1),  # warm-up: the job's settings
                   ("batch", 4, 1),  # base: the job's batch size 4
                   ("set_decode", 2, 2), ("batch", 2, 2), ("batch", 2, 2),  # b2: told first, batches of 2
                   ("batch", 2, 2), ("batch", 2, 2),  # b2-again: the same settings, not told again
                   ("set_decode", 1, 4), ("batch", 4, 1)]  # back to the job's
    events = _read(job.parent / "events.jsonl")
    starts = {e["condition"]: e["decode"] for e in events if e["event"] == "condition_start"}
    assert starts["base"]["beam_size"] == 1 and starts["base"]["batch_size"] == 4
    assert starts["b2"] == dict(starts["base"], beam_size=2, batch_size=2)
    tr = {(t["condition"], t["id"]): t for t in _read(job.parent / "transcripts.jsonl")}
    assert tr[("b2", "a")]["hypothesis"] == "beam 2" and tr[("b2", "a")]["batch_size"] == 2
    assert tr[("back", "d")]["hypothesis"] == "beam 1"


def test_an_adapter_without_set_decode_fails_only_the_overriding_condition(tmp_path, adapter):
    """ScriptedModel has no set_decode: the condition that overrides a setting gets an error record per
    utterance saying why, and the conditions around it run normally (an override equal to the job's
    settings needs no change and runs)."""
    conds = [{"key": "before", "noise": CLEAN},
             {"key": "beam5", "noise": CLEAN, "decode": {"beam_size": 5}},
             {"key": "same", "noise": CLEAN, "decode": {"beam_size": 1}},
             {"key": "after", "noise": CLEAN}]
    job = _job(tmp_path, _four_utterances(tmp_path)[:2], warmup=0, conditions=conds)
    assert entry.main(["x", str(job)]) == 0
    tr = _read(job.parent / "transcripts.jsonl")
    by_cond: dict = {}
    for t in tr:
        by_cond.setdefault(t["condition"], []).append(t)
    assert [t["status"] for t in by_cond["beam5"]] == ["error", "error"]
    message = by_cond["beam5"][0]["error"]
    assert "beam_size 1 -> 5" in message and "set_decode" in message
    for key in ("before", "same", "after"):
        assert [t["status"] for t in by_cond[key]] == ["ok", "ok"], key
    ends = {e["condition"]: e for e in _read(job.parent / "events.jsonl") if e["event"] == "condition_end"}
    assert ends["beam5"]["n_failed"] == 2 and ends["after"]["n_ok"] == 2
    status = json.loads((job.parent / "status.json").read_text())
    assert status["status"] == "ok" and status["n_failed"] == 2


def test_a_refused_decode_change_leaves_the_model_as_it_was(tmp_path, adapter):
    """set_decode raising NotImplementedError fails that condition with its reason; the model keeps its
    settings, so the next condition with the job's settings is not told anything."""
    models = []

    def load(job):
        models.append(Tunable(job))
        return models[-1]

    adapter.load = load
    conds = [{"key": "hot", "noise": CLEAN, "decode": {"temperature": 0.9}}, {"key": "plain", "noise": CLEAN}]
    job = _job(tmp_path, _four_utterances(tmp_path)[:1], warmup=0, conditions=conds)
    assert entry.main(["x", str(job)]) == 0
    tr = {t["condition"]: t for t in _read(job.parent / "transcripts.jsonl")}
    assert tr["hot"]["status"] == "error" and "cannot sample above 0.5" in tr["hot"]["error"]
    assert "temperature 0.0 -> 0.9" in tr["hot"]["error"]
    assert tr["plain"]["status"] == "ok"
    assert [entry for entry in models[0].log if entry[0] == "set_decode"] == []


@pytest.mark.parametrize("decode, words", [
    ({"threads": 2}, ["threads", "fixed when the model loads"]),
    ({"beam": 2}, ["beam", "beam_size, batch_size, temperature, language"]),
    ({"batch_size": 0}, ["batch_size", "positive integer"]),
    ({"temperature": "hot"}, ["temperature", "non-negative number"]),
])
def test_a_condition_may_override_only_the_in_container_decode_fields(tmp_path, adapter, decode, words):
    """Any other key (or a bad value) in a condition's decode is a malformed job: exit 2, naming the key."""
    job = _job(tmp_path, [], conditions=[{"key": "k", "noise": CLEAN, "decode": decode}])
    assert entry.main(["x", str(job)]) == 2
    error = json.loads((job.parent / "status.json").read_text())["error"]
    assert "job.conditions[0].decode" in error and all(w in error for w in words), error


def test_parse_job_rejects_an_unknown_condition_decode_key():
    from edgeasr_entrypoint.job import JobError, parse_job

    job = {"contract_version": CONTRACT_VERSION, "backend": "b", "model": "/m", "quant": "int8",
           "backend_quant": "int8", "device": "cpu", "utterances": [],
           "conditions": [{"key": "k", "noise": CLEAN, "decode": {"align": True}}]}
    with pytest.raises(JobError, match=r"conditions\[0\]\.decode\.align"):
        parse_job(job)


def test_a_job_in_any_contract_the_image_speaks_is_read_and_one_using_a_newer_feature_is_not():
    """Issue 21 item 2: a minimum contract version per feature. A contract-2 job (conditions, no decode overrides)
    is read by this image; one that says 2 but overrides decoding per condition (3) is refused naming the feature;
    versions outside MIN_CONTRACT_VERSION..CONTRACT_VERSION are refused. A job read and written again is the same."""
    from edgeasr_entrypoint.contract import MIN_CONTRACT_VERSION, Job, JobError

    job = {"contract_version": 2, "backend": "b", "model": "/m", "quant": "int8", "backend_quant": "int8",
           "device": "cpu", "utterances": [{"id": "a", "audio": "/data/a.wav"}],
           "conditions": [{"key": "k", "noise": CLEAN, "seed_key": "k", "ids": ["a"]}]}
    read = Job.from_json(job)
    assert read.contract_version == 2 and read.needs()[0] == 2
    assert Job.from_json(json.loads(json.dumps(read.to_json()))) == read
    with pytest.raises(JobError, match=r"job.contract_version is 2: the job uses per-condition decode overrides "
                                       r"\(job.conditions\[\]\.decode\), which needs entrypoint contract 3; the job says 2"):
        Job.from_json({**job, "conditions": [{**job["conditions"][0], "decode": {"beam_size": 1}}]})
    assert Job.from_json({**job, "contract_version": 3, "conditions": [
        {**job["conditions"][0], "decode": {"beam_size": 1}}]}).needs()[0] == 3
    for version in (MIN_CONTRACT_VERSION - 1, CONTRACT_VERSION + 1):
        with pytest.raises(JobError, match=f"job.contract_version is {version}, this image speaks contract "
                                           f"{MIN_CONTRACT_VERSION} to {CONTRACT_VERSION}"):
            Job.from_json({**job, "contract_version": version})


def test_the_device_the_backend_ran_on_is_reported_and_a_cuda_job_that_ran_on_the_cpu_is_refused(tmp_path, adapter):
    """Issue 25, item 7: the adapter says the device its model really runs on (info()["device_used"]); it goes into
    model_info and status.json, and a job for cuda whose backend ended on the CPU stops right after the load, before
    anything is timed, with both devices named: its figures would not be GPU figures."""
    write_tone(tmp_path / "good.wav", seconds=1.0)
    utts = [{"id": "good", "audio": str(tmp_path / "good.wav")}]

    class OnTheCpu(ScriptedModel):
        def info(self):
            return {**super().info(), "device_used": "cpu"}

    adapter.load = OnTheCpu
    job = _job(tmp_path, utts)
    assert entry.main(["x", str(job)]) == 0
    status = json.loads((job.parent / "status.json").read_text())
    info = next(e for e in _read(job.parent / "events.jsonl") if e["event"] == "model_info")
    assert status["device_used"] == "cpu" and info["device_used"] == "cpu"

    (tmp_path / "cuda").mkdir()
    job = _job(tmp_path / "cuda", utts, device="cuda", backend_quant="int8_float16")
    assert entry.main(["x", str(job)]) == 1
    status = json.loads((job.parent / "status.json").read_text())
    assert status["status"] == "error" and status["device_used"] == "cpu"
    assert "ran on cpu, not on the cuda the job asked for" in status["error"]
    names = [e["event"] for e in _read(job.parent / "events.jsonl")]
    assert "model_info" in names and "warmup_start" not in names and "inference_start" not in names


def test_an_adapter_that_does_not_say_its_device_leaves_device_used_out(tmp_path, adapter):
    """The field is optional (an image of one's own, an older adapter): absent from model_info and status."""
    job = _job(tmp_path, [], device="cuda", backend_quant="int8_float16")
    assert entry.main(["x", str(job)]) == 0
    info = next(e for e in _read(job.parent / "events.jsonl") if e["event"] == "model_info")
    assert "device_used" not in info and "device_used" not in json.loads((job.parent / "status.json").read_text())


def test_a_record_that_breaks_the_contract_is_one_sentence_from_its_type():
    """The record types the host validates against (runner/trust/validate.py) say what is wrong in one sentence."""
    from edgeasr_entrypoint.contract import EventRecord, RecordError, StatusRecord, TranscriptRecord

    with pytest.raises(RecordError, match="utterance_end: duration_s is missing"):
        EventRecord.from_json({"event": "utterance_end", "t_ns": 1, "mono_ns": 1, "id": "a", "processing_s": 0.1})
    with pytest.raises(RecordError, match="inference_start: mono_ns is -1, not a time in nanoseconds"):
        EventRecord.from_json({"event": "inference_start", "t_ns": 1, "mono_ns": -1})
    with pytest.raises(RecordError, match="hypothesis is 3, not text"):
        TranscriptRecord.from_json({"id": "a", "status": "ok", "hypothesis": 3, "duration_s": 1.0,
                                    "processing_s": 0.1})
    with pytest.raises(RecordError, match="processing_s is -1.0, below 0"):
        TranscriptRecord.from_json({"id": "a", "status": "ok", "hypothesis": "x", "duration_s": 1.0,
                                    "processing_s": -1.0})
    status = StatusRecord.from_json({"status": "done", "peak_rss_mb": "big", "n_ok": 1})
    assert status.status == "error" and status.to_json() == {"n_ok": 1, "status": "error"}
    assert status.problems == ("peak_rss_mb is 'big', not a number", "status is 'done', not 'ok' or 'error'")


def test_the_entrypoints_records_are_built_by_the_contracts_types():
    """Issue 21 item 2: the container writes its results and events through the record types the host validates
    against (contract.py), so a record the host would refuse is stopped where it is made, in one sentence."""
    from edgeasr_entrypoint.contract import RecordError, StatusRecord, TranscriptRecord

    ok = TranscriptRecord.ok("a", "k", "hello", duration_s=1.5, processing_s=0.25)
    assert list(ok.to_json().items()) == [("id", "a"), ("condition", "k"), ("status", "ok"), ("error", None),
                                          ("hypothesis", "hello"), ("duration_s", 1.5), ("processing_s", 0.25)]
    batched = TranscriptRecord.ok("a", None, "x", 1.0, 0.5, batch_size=2, latency_s=1.0)
    assert list(batched.to_json())[-2:] == ["batch_size", "latency_s"] and batched.latency_s == 1.0
    failed = TranscriptRecord.failed("b", "k", "RuntimeError: boom", duration_s=2.0, processing_s=0.1)
    assert failed.to_json() == {"id": "b", "condition": "k", "status": "error", "error": "RuntimeError: boom",
                                "hypothesis": None, "duration_s": 2.0, "processing_s": 0.1}
    assert TranscriptRecord.from_json(failed.to_json()) == failed
    with pytest.raises(RecordError, match="hypothesis is None, not text"):
        TranscriptRecord.ok("a", None, None, 1.0, 0.5)
    with pytest.raises(RecordError, match="duration_s is 0.0: seconds of audio must be more than 0"):
        TranscriptRecord.ok("a", None, "x", 0.0, 0.5)
    status = StatusRecord.written({"status": "ok", "error": None, "n_params": "lots", "n_ok": 1})
    assert status.status == "error" and status.problems == ("n_params is 'lots', not a count",)
    assert status.to_json() == {"status": "error", "error": "the status record breaks the contract: n_params is "
                                                            "'lots', not a count", "n_ok": 1}
    assert StatusRecord.from_json(status.to_json()).problems == ()
    fine = {"status": "ok", "error": None, "n_ok": 1}
    assert StatusRecord.written(fine).to_json() == fine


def test_an_event_that_breaks_the_contract_is_refused_where_it_is_emitted(tmp_path, capsys):
    """EventLog.emit builds a checked EventRecord (what the host reads back); a bad field raises RecordError and
    nothing is written, neither to events.jsonl nor to stdout."""
    from edgeasr_entrypoint.contract import EVENT_PREFIX, EventRecord, RecordError
    from edgeasr_entrypoint.events import EventLog

    log = EventLog(tmp_path / "events.jsonl")
    got = log.emit("utterance_end", id="a", condition="k", duration_s=1.0, processing_s=0.5)
    assert isinstance(got, EventRecord) and got.id == "a" and got.condition == "k"
    with pytest.raises(RecordError, match="utterance_end: processing_s is -1, below 0"):
        log.emit("utterance_end", id="b", duration_s=1.0, processing_s=-1)
    log.close()
    lines = _read(tmp_path / "events.jsonl")
    assert lines == [got.to_json()] and EventRecord.from_json(lines[0]) == got
    assert capsys.readouterr().out.count(EVENT_PREFIX) == 1


def test_a_hypothesis_that_is_not_text_is_that_utterances_error_and_the_rest_go_on(tmp_path, adapter):
    """A backend returning something that is not text (None) no longer writes a result the host then refuses:
    that utterance is an error naming why, and the next one still runs."""
    write_tone(tmp_path / "good.wav", seconds=1.0)
    write_tone(tmp_path / "half.wav", seconds=0.5)

    class NoText(ScriptedModel):
        def transcribe(self, audio):
            return None if len(audio) == 8000 else "words"

    adapter.load = NoText
    job = _job(tmp_path, [{"id": "half", "audio": str(tmp_path / "half.wav")},
                          {"id": "good", "audio": str(tmp_path / "good.wav")}])
    assert entry.main(["x", str(job)]) == 0
    tr = {t["id"]: t for t in _read(job.parent / "transcripts.jsonl")}
    assert tr["half"]["status"] == "error" and "hypothesis is None, not text" in tr["half"]["error"]
    assert tr["good"]["status"] == "ok" and tr["good"]["hypothesis"] == "words"
    names = [(e["event"], e.get("id")) for e in _read(job.parent / "events.jsonl")]
    assert ("utterance_error", "half") in names and ("utterance_end", "half") not in names


def test_an_adapter_field_that_breaks_the_contract_fails_the_run_in_one_sentence(tmp_path, adapter):
    """A model's info() with a parameter count that is not a count: the run stops at model_info with the field
    named, no traceback, and status.json holds only what the host can read (its error says why)."""
    from edgeasr_entrypoint.contract import StatusRecord

    class Counted(ScriptedModel):
        def info(self):
            return {**super().info(), "n_params": "lots"}

    adapter.load = Counted
    job = _job(tmp_path, [])
    assert entry.main(["x", str(job)]) == 1
    status = json.loads((job.parent / "status.json").read_text())
    assert status["status"] == "error" and "traceback" not in status and "n_params" not in status
    assert "model_info: n_params is 'lots', not a count" in status["error"]
    assert StatusRecord.from_json(status).problems == ()


def test_a_ctc_weight_is_a_contract_4_feature_and_a_job_without_it_still_reads_in_older_contracts():
    """Issue 21 item 2: decode.ctc_weight has its FEATURES row (4) like every other feature: a job that sets it,
    in job.decode or as a condition's override, needs contract 4 and is refused in 3 naming it; a job that does not
    set it leaves the key out (to_json), so an image before it (whose decode reader refuses unknown keys) reads it."""
    from edgeasr_entrypoint.contract import FEATURES, DecodeOptions, Job, JobError

    feature = "joint CTC/attention weight (job.decode.ctc_weight)"
    assert FEATURES[feature] == 4
    job = {"contract_version": 3, "backend": "espnet", "model": "/m", "quant": "fp32", "backend_quant": "float32",
           "device": "cpu", "utterances": [{"id": "a", "audio": "/data/a.wav"}],
           "conditions": [{"key": "k", "noise": CLEAN, "seed_key": "k", "ids": ["a"]}]}
    plain = Job.from_json(job)
    assert "ctc_weight" not in plain.to_json()["decode"] and plain.needs() == (2, "conditions in one container "
                                                                                   "(job.conditions)")
    assert "ctc_weight" not in DecodeOptions().to_json()
    weighted = {**job, "contract_version": 4, "decode": {"ctc_weight": 0.3}}
    assert Job.from_json(weighted).needs() == (4, feature)
    assert Job.from_json(weighted).to_json()["decode"]["ctc_weight"] == 0.3
    overridden = {**job, "contract_version": 4,
                  "conditions": [{**job["conditions"][0], "decode": {"ctc_weight": 0.5}}]}
    assert Job.from_json(overridden).needs() == (4, feature)
    for bad in (weighted, overridden):
        with pytest.raises(JobError, match=r"job.contract_version is 3: the job uses joint CTC/attention weight "
                                           r"\(job.decode.ctc_weight\), which needs entrypoint contract 4"):
            Job.from_json({**bad, "contract_version": 3})


def test_a_held_start_waits_for_the_hosts_go_before_its_load_and_nothing_before_it_moves(tmp_path, adapter):
    """Contract 5 (issue 26 item 2): with hold_s the container boots and reads its job, then waits between
    hold_start and hold_end for the host's go (GO_FILE in its output folder) and only then loads its model: a
    sweep starts the next container while it finishes the last one, and that one's load is never beside it."""
    import threading
    import time

    from edgeasr_entrypoint.contract import GO_FILE

    loaded = []
    adapter.load = lambda job: loaded.append(time.monotonic_ns()) or ScriptedModel(job)
    write_tone(tmp_path / "good.wav", seconds=1.0)
    job = _job(tmp_path, [{"id": "g", "audio": str(tmp_path / "good.wav")}], hold_s=30)
    said = []

    def go_later():
        time.sleep(0.3)
        said.append(time.monotonic_ns())
        (job.parent / GO_FILE).write_bytes(b"")

    host = threading.Thread(target=go_later)
    host.start()
    assert entry.main(["x", str(job)]) == 0
    host.join()
    events = _read(job.parent / "events.jsonl")
    names = [e["event"] for e in events]
    assert names[:4] == ["container_start", "hold_start", "hold_end", "load_start"]
    assert loaded[0] >= said[0]  # nothing was loaded before the go
    held_s = (events[2]["mono_ns"] - events[1]["mono_ns"]) / 1e9
    assert 0.25 <= held_s < 0.3 + 0.2  # it went within a poll of the go
    job = _job(tmp_path, [{"id": "g", "audio": str(tmp_path / "good.wav")}])  # no hold_s: no hold
    assert entry.main(["x", str(job)]) == 0
    assert "hold_start" not in [e["event"] for e in _read(job.parent / "events.jsonl")][len(names):]


def test_a_held_start_without_a_go_ends_within_hold_s_with_the_reason_and_loads_nothing(tmp_path, adapter):
    loaded = []
    adapter.load = lambda job: loaded.append(job) or ScriptedModel(job)
    write_tone(tmp_path / "good.wav", seconds=1.0)
    job = _job(tmp_path, [{"id": "g", "audio": str(tmp_path / "good.wav")}], hold_s=0.2)
    assert entry.main(["x", str(job)]) == 1
    status = json.loads((job.parent / "status.json").read_text())
    assert status["status"] == "error" and "no go from the host within 0.2 s" in status["error"]
    assert loaded == []
    names = [e["event"] for e in _read(job.parent / "events.jsonl")]
    assert names[:3] == ["container_start", "hold_start", "hold_end"] and "load_start" not in names


def test_a_held_start_is_a_contract_5_feature_and_a_job_without_it_reads_in_older_contracts():
    from edgeasr_entrypoint.contract import FEATURES, Job, JobError

    feature = "a held start (job.hold_s)"
    assert FEATURES[feature] == 5
    job = {"contract_version": 4, "backend": "b", "model": "/m", "quant": "fp32", "backend_quant": "float32",
           "device": "cpu", "utterances": [{"id": "a", "audio": "/data/a.wav"}]}
    assert "hold_s" not in Job.from_json(job).to_json()
    held = {**job, "contract_version": 5, "hold_s": 60}
    assert Job.from_json(held).needs() == (5, feature) and Job.from_json(held).to_json()["hold_s"] == 60
    with pytest.raises(JobError, match=r"the job uses a held start \(job.hold_s\), which needs entrypoint contract 5"):
        Job.from_json({**held, "contract_version": 4})
    for bad in (-1, True, "60", float("inf")):
        with pytest.raises(JobError, match="job.hold_s must be a non-negative number of seconds"):
            Job.from_json({**held, "hold_s": bad})


def test_the_process_ends_at_once_after_its_outputs_without_the_interpreters_teardown(tmp_path):
    """Issue 26 item 2: after container_end and status.json, what the interpreter's teardown does (a loaded model
    freed, its library's threads joined, atexit handlers) was seconds every container of a sweep waited through
    (its exit). The entrypoint, run as a program, flushes and ends there with its exit code; its outputs whole."""
    import os
    import subprocess

    from helpers import ROOT

    (tmp_path / "slow_teardown.py").write_text(
        "import atexit, pathlib\n"
        "atexit.register(lambda: pathlib.Path(%r).write_text('torn down'))\n"
        "class M:\n"
        "    def __init__(self, job): pass\n"
        "    def transcribe(self, audio): return 'words'\n"
        "    def info(self): return {}\n"
        "load = M\n" % str(tmp_path / "teardown-ran"))
    write_tone(tmp_path / "good.wav", seconds=1.0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "containers" / "common"), str(tmp_path)]),
           "EDGEASR_ADAPTER": "slow_teardown", "PYTHONUNBUFFERED": "1"}
    env.pop("EDGEASR_OUT", None)
    job = _job(tmp_path, [{"id": "g", "audio": str(tmp_path / "good.wav")}])
    done = subprocess.run([sys.executable, "-m", "edgeasr_entrypoint", str(job)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "teardown-ran").exists()  # the teardown never ran
    assert json.loads((job.parent / "status.json").read_text())["status"] == "ok"
    assert _read(job.parent / "events.jsonl")[-1]["event"] == "container_end"
    assert done.stdout.splitlines()[-1].startswith("EDGEASR_EVENT ") and "container_end" in done.stdout.splitlines()[-1]
    (job.parent / "job.json").write_text("{}")  # a bad job: its exit code (2) is kept
    done = subprocess.run([sys.executable, "-m", "edgeasr_entrypoint", str(job)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "bad job spec" in done.stderr
