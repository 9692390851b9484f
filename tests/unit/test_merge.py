"""Merging raw container outputs: timing windows, failures, unreferenced utterances, unavailable reasons."""

import json
from pathlib import Path

import pytest

from runner import merge
from runner.data.dataset import Dataset, Utterance
from runner.results import Summary


def _ds(*utts):
    return Dataset("t", Path("/d"), "manifest", tuple(Utterance(i, Path(f"/d/{i}.flac"), r) for i, r in utts))


def _summary(device="cpu"):
    return Summary(backend="b", model="m", quant="int8", device=device, dataset="t", status="ok", warmup=1)


def _ev(event, mono_s, **kw):
    return {"event": event, "t_ns": int(1e18 + mono_s * 1e9), "mono_ns": int(mono_s * 1e9), **kw}


def test_score_excludes_failures_and_unreferenced_from_wer_and_rtf():
    ds = _ds(("a", "the cat sat"), ("b", "a dog"), ("c", None), ("d", "never seen"))
    transcripts = [
        {"id": "a", "status": "ok", "hypothesis": "The cat sat.", "duration_s": 2.0, "processing_s": 0.2},
        {"id": "b", "status": "ok", "hypothesis": "a frog", "duration_s": 1.0, "processing_s": 0.1},
        {"id": "c", "status": "ok", "hypothesis": "whatever", "duration_s": 1.0, "processing_s": 0.3},
    ]
    utts = merge.merge_utterances(ds, transcripts, "not transcribed: died")
    s = _summary()
    s = merge.score(s, utts)
    assert (s.n_utterances, s.n_failed, s.n_scored, s.n_unreferenced) == (4, 1, 2, 1)
    assert s.wer == pytest.approx(1 / 5)  # one substitution over five reference words
    assert s.rtf == pytest.approx(0.6 / 4.0)
    assert utts[3].status == "error" and utts[3].error == "not transcribed: died"
    assert utts[0].wer == 0.0 and utts[2].wer is None


def test_nothing_transcribed_is_unavailable_with_reason_not_zero():
    ds = _ds(("a", "x"))
    utts = merge.merge_utterances(ds, [{"id": "a", "status": "error", "error": "audio file is empty"}], "")
    s = _summary()
    s = merge.score(s, utts)
    assert s.wer is None and s.rtf is None and s.latency_ms is None
    assert s.unavailable["wer"] == "no utterance was transcribed"
    assert s.unavailable["rtf"] == "no utterance was transcribed"
    assert utts[0].error == "audio file is empty"


def test_no_reference_anywhere_explains_missing_wer():
    utts = merge.merge_utterances(_ds(("a", None)), [{"id": "a", "status": "ok", "hypothesis": "hi",
                                                      "duration_s": 1.0, "processing_s": 0.1}], "")
    s = _summary()
    s = merge.score(s, utts)
    assert s.wer is None and "none of the 1 transcribed utterances has a reference" in s.unavailable["wer"]
    assert s.rtf == pytest.approx(0.1)


def test_windows_come_from_container_events(tmp_path):
    events = [_ev("container_start", 0.0), _ev("load_start", 0.5), _ev("load_end", 2.0),
              _ev("warmup_start", 2.0), _ev("warmup_end", 2.7), _ev("inference_start", 2.7),
              _ev("inference_end", 10.2), _ev("container_end", 10.3)]
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n{\"cut-off")
    (tmp_path / "status.json").write_text(json.dumps({"status": "ok", "peak_rss_mb": 300.0,
                                                      "versions": {"ctranslate2": "4.6.0"}}))
    raw = merge.read_raw(tmp_path)
    s = _summary()
    s = merge.apply_container_facts(s, raw)
    assert s.load_s == pytest.approx(1.5) and s.warmup_s == pytest.approx(0.7)
    assert s.inference_s == pytest.approx(7.5) and s.peak_rss_mib == 300.0
    assert s.versions == {"ctranslate2": "4.6.0"}
    assert "model_size_mb" in s.unavailable  # not reported: unavailable with a reason, not 0


def test_dead_container_marks_windows_unavailable(tmp_path):
    (tmp_path / "events.jsonl").write_text(json.dumps(_ev("load_start", 0.1)) + "\n")
    raw = merge.read_raw(tmp_path)
    s = _summary()
    s = merge.apply_container_facts(s, raw)
    assert s.load_s is None and "stopped early" in s.unavailable["load_s"]
    assert s.unavailable["peak_rss_mib"] == "the container wrote no status record"


def test_container_error_names_the_cause_once_for_run_and_sweep():
    """One classification for single runs and sweeps: timeout, OOM, backend error, exit code, no status."""
    from types import SimpleNamespace

    def run(**kw):
        return SimpleNamespace(**{"timed_out": False, "oom_killed": False, "exit_code": 0, **kw})

    ok = {"status": "ok"}
    assert merge.container_error(run(), ok, None, None) is None
    assert merge.container_error(run(timed_out=True, exit_code=137), None, 4, None) == \
        "timed out after 4 s; the container was killed"
    assert merge.container_error(run(oom_killed=True, exit_code=137), None, None, "60m") == \
        "out of memory: the kernel killed the container (mem_limit 60m)"
    assert merge.container_error(run(exit_code=1), {"status": "error", "error": "OSError: x"}, None, None) == "OSError: x"
    assert merge.container_error(run(exit_code=3), ok, None, None) == "the container exited with code 3"
    assert merge.container_error(run(exit_code=3), None, None, None) == \
        "the container exited with code 3 without a status record"
    assert merge.container_error(run(), None, None, None) == "the container wrote no status record"


def test_rtfx_of_a_zero_rtf_is_null_with_a_reason():
    ds = _ds(("a", "x"))
    utts = merge.merge_utterances(ds, [{"id": "a", "status": "ok", "hypothesis": "x", "duration_s": 1.0,
                                        "processing_s": 0.0}], "")
    s = _summary()
    s = merge.score(s, utts)
    assert s.rtf == 0.0 and s.rtfx is None
    assert "RTF is 0" in s.unavailable["rtfx"]


def test_peak_rss_names_the_harness_audio_and_its_scope():
    """peak_rss_mib is the process's peak (the contract's peak_rss_mb); the harness's decoded audio is reported
    beside it and taken out of peak_rss_excl_audio_mib, and a sweep condition's figure is its own (peak reset at its
    start)."""
    from runner import execute

    s = _summary()
    s = merge.apply_container_facts(s, merge.RawOutputs([], [], {"status": "ok", "peak_rss_mb": 900.0,
                                                             "audio_cache_mb": 100.0}))
    assert (s.peak_rss_mib, s.audio_cache_mib, s.peak_rss_excl_audio_mib) == (900.0, 100.0, 800.0)
    assert s.peak_rss_scope == "process (since start, includes model load)"
    events = [_ev("model_info", 1.0, versions={}), _ev("inference_end", 2.0, peak_rss_mb=500.0, audio_cache_mb=50.0,
                                                          peak_rss_scope="condition (peak reset at its start)")]
    c = _summary()
    c = merge.apply_container_facts(c, merge.RawOutputs(events, [], execute.condition_status(events, None, False)))
    assert c.peak_rss_excl_audio_mib == 450.0 and c.peak_rss_scope == "condition (peak reset at its start)"
    old = _summary()
    old = merge.apply_container_facts(old, merge.RawOutputs([], [], {"status": "ok", "peak_rss_mb": 900.0}))
    assert old.peak_rss_excl_audio_mib is None and "does not report" in old.unavailable["peak_rss_excl_audio_mib"]


def test_the_backends_peak_without_audio_is_the_containers_own_figure_and_says_how_it_was_taken():
    """Regression (issue 22, item 7): the host took the audio held at the end off a peak that may have come before
    it was cached (84 against a true 234 MiB). An image that splits the peak at each backend call reports the
    figure itself, with its method, and the host keeps it; an older image's figure says what it includes."""
    from runner import execute

    method = "the largest of each backend call's resident peak ... less the audio the harness held during it"
    events = [_ev("model_info", 1.0, versions={}),
              _ev("inference_end", 2.0, peak_rss_mb=300.0, audio_cache_mb=150.0, peak_rss_excl_audio_mb=234.0,
                  peak_rss_excl_audio_method=method, peak_rss_scope="condition (peak reset at its start)")]
    s = _summary()
    s = merge.apply_container_facts(s, merge.RawOutputs(events, [], execute.condition_status(events, None, False)))
    assert s.peak_rss_excl_audio_mib == 234.0 and s.peak_rss_excl_audio_method == method  # not 300 - 150
    old = _summary()
    old = merge.apply_container_facts(old, merge.RawOutputs([], [], {"status": "ok", "peak_rss_mb": 300.0,
                                                                     "audio_cache_mb": 150.0}))
    assert old.peak_rss_excl_audio_mib == 150.0 and "under-reported" in old.peak_rss_excl_audio_method


def test_energy_unavailable_is_said_in_full_once():
    """Issue 14: with no sensor, the full reason (every sensor tried) is in unavailable.energy once; each energy
    field repeats a short line pointing there. A short reason (telemetry turned off) stays as it is."""
    long = ("no power sensor found (ina3221: no INA3221 power monitor under /sys/class/hwmon; tegrastats: not "
            "found; jtop: not installed; rapl: no /sys/class/powercap)")
    assert merge.short_energy_reason(long) == "no power sensor found (see unavailable.energy)"
    off = "telemetry turned off (--telemetry none)"
    assert merge.short_energy_reason(off) == off
    s = _summary()
    s, _ = merge.account_energy(s, [], None, [], [], None, long, 100)
    assert s.unavailable["energy"] == long
    assert set(s.energy["unavailable"].values()) == {"no power sensor found (see unavailable.energy)"}


def test_read_raw_refuses_what_the_image_left_and_reads_the_rest(tmp_path):
    """Issue 20, item 1: a status.json linked to a root-only host file was copied into summary.json. The
    refused file is a problem sentence (the condition fails with it); what is fine is still read."""
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"status": "ok", "versions": {"leak": "x"}}))
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "status.json").symlink_to(secret)
    (raw / "events.jsonl").write_text(json.dumps(_ev("load_start", 0.1)) + "\n")
    got = merge.read_raw(raw)
    assert got.status is None and got.status_refused and len(got.events) == 1
    assert got.problem == "raw/status.json is a symbolic link (left by the image); not read"
    from types import SimpleNamespace

    run = SimpleNamespace(timed_out=False, oom_killed=False, exit_code=0)
    assert merge.container_error(run, None, None, None, status_refused=True) is None  # the problem says it
    assert merge.container_error(SimpleNamespace(timed_out=False, oom_killed=False, exit_code=0,
                                                 limit_exceeded="the container's output folder grew past 1 MiB"),
                                 None, None, None) == \
        "the container's output folder grew past 1 MiB; the container was stopped"


def test_a_transcript_line_or_hypothesis_over_its_limit(tmp_path):
    from runner.settings import LimitsSettings

    limits = LimitsSettings(hypothesis_mib=1 / 1024)  # 1 KiB: a line may be 6 KiB + 64 KiB
    rows = [{"id": "a", "status": "ok", "hypothesis": "h" * 2000, "duration_s": 1.0, "processing_s": 0.1},
            {"id": "b", "status": "ok", "hypothesis": "x" * 100_000}]
    (tmp_path / "transcripts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in (
        _ev("utterance_start", 1.0, id="a", duration_s=1.0), _ev("utterance_end", 1.1, id="a", duration_s=1.0, processing_s=0.1))))
    got = merge.read_raw(tmp_path, limits)
    assert [t["id"] for t in got.transcripts] == ["a"]
    assert got.problem.endswith("transcripts.jsonl:2: a line of more than 70 KiB (limits.hypothesis_mib); not read")
    utts = merge.merge_utterances(_ds(("a", "ref")), got.transcripts, "", max_hypothesis_bytes=limits.hypothesis_bytes)
    assert utts[0].status == "error" and utts[0].hypothesis is None
    assert utts[0].error == "the hypothesis is 1.953 KiB, over the limit of 1 KiB (limits.hypothesis_mib)"


def test_the_device_the_backend_used_is_recorded_and_a_cuda_run_on_the_cpu_is_an_error():
    """Issue 25, item 7: the summary records the device the backend reports it ran on (status.json, else the
    model_info event); a CUDA run whose backend ran on the CPU is an error naming both (an image that does not
    refuse it itself), so its figures are never averaged as GPU figures; not reported: unavailable, with why."""
    from runner import execute

    s = _summary(device="cuda")
    s = merge.apply_container_facts(s, merge.RawOutputs([], [], {"status": "ok", "device_used": "cpu"}))
    assert s.device_used == "cpu"
    assert merge.device_error(s) == ("the backend ran on cpu, not on the cuda asked for; its figures are not cuda "
                                     "figures (see `edgeasr doctor`: is the GPU visible inside the image?)")
    events = [_ev("model_info", 1.0, versions={}, device_used="cuda")]
    ok = _summary(device="cuda")
    ok = merge.apply_container_facts(ok, merge.RawOutputs(events, [], execute.condition_status(events, None, False)))
    assert ok.device_used == "cuda" and merge.device_error(ok) is None
    old = _summary(device="cuda")
    old = merge.apply_container_facts(old, merge.RawOutputs([], [], {"status": "ok"}))
    assert old.device_used is None and merge.device_error(old) is None
    assert "did not report the device" in old.unavailable["device_used"]


def test_the_summary_is_frozen_and_each_stage_returns_a_new_one():
    """Issue 21 item 2: scoring, the container's facts and energy accounting each return the summary with their
    fields; the one they were given is never edited (a half-merged summary cannot leak into another condition)."""
    import dataclasses

    ds = _ds(("a", "the cat sat"))
    utts = merge.merge_utterances(ds, [{"id": "a", "status": "ok", "hypothesis": "the cat sat", "duration_s": 2.0,
                                        "processing_s": 0.2}], "not transcribed")
    begun = _summary()
    before = begun.to_json()
    scored = merge.score(begun, utts)
    facts = merge.apply_container_facts(scored, merge.RawOutputs([], [], {"status": "ok", "peak_rss_mb": 100.0}))
    done, _ = merge.account_energy(facts, utts, None, [], [], None, "no power sensor found", 100)
    assert begun.to_json() == before and scored.peak_rss_mib is None and facts.energy is None
    assert (done.wer, done.peak_rss_mib, done.unavailable["energy"]) == (0.0, 100.0, "no power sensor found")
    assert "energy" not in facts.unavailable
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.status = "error"  # type: ignore[misc]


def test_a_streamed_conditions_energy_is_shared_over_the_audio_every_stream_delivered(monkeypatch):
    """Regression (issue 23): account_energy divided the condition's energy by one pass of the utterances
    (summary.audio_s), while N streams over sustain_s deliver several times that: J per audio second came out ~6x
    too high. In stream mode the work is every stream's delivered audio and every final (each play)."""
    from runner.telemetry.energy import accounting

    seen = {}

    def fake_block(source, samples, events, base, audio_s, n_ok, interval_ms, owner=None):
        seen.update(audio_s=audio_s, n=n_ok)
        return accounting.unavailable_block(None, "test")

    monkeypatch.setattr(accounting, "energy_block", fake_block)
    summary = Summary(backend="pocketsphinx", model="en-us", quant="fp32", device="cpu", dataset="d", status="ok",
                      n_utterances=2, audio_s=20.0)
    events = [{"event": "stream_start", "stream": 0}, {"event": "stream_start", "stream": 1},
              *({"event": "final", "stream": s, "id": i} for s in (0, 1) for i in ("a", "b", "a")),
              {"event": "stream_end", "stream": 0, "audio_s": 61.5}, {"event": "stream_end", "stream": 1, "audio_s": 60.0}]
    merge.account_energy(summary, [], "rapl", [], events, None, None, 100)
    assert seen == {"audio_s": 121.5, "n": 6}
    merge.account_energy(summary, [], "rapl", [], [], None, None, 100)  # offline: one pass, as before
    assert seen == {"audio_s": 20.0, "n": 2}
    merge.account_energy(summary, [], "rapl", [], events[:-1], None, None, 100)  # a stream that did not end
    assert seen["audio_s"] is None
