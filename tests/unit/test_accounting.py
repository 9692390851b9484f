"""Energy accounting from a replayed timeline and container events; sampler selection."""

import csv
import json
from dataclasses import replace

import pytest

from runner.errors import UserError
from runner.telemetry.energy import accounting
from runner.telemetry.samplers.base import NullSampler, Sample
from runner.telemetry.samplers.select import select_sampler

S = 1_000_000_000
T0 = 1_800_000_000 * S


def _timeline(profile, seconds, interval_s=0.1, ram=lambda t: 3000.0):
    """Samples every interval_s of a power profile f(t) in W, t in s from T0."""
    out = []
    n = round(seconds / interval_s) + 1
    for i in range(n):
        t = i * interval_s
        out.append(Sample(t_ns=T0 + int(t * S), power_w={"VDD_IN": profile(t)}, total_w=profile(t),
                          total_kind="input_rail:VDD_IN", mem_used_mib=ram(t)))
    return out


def _block(*args, **kwargs):
    """The energy block as summary.json holds it (the record's JSON)."""
    return accounting.energy_block(*args, **kwargs).to_json()


def _ev(name, t, **kw):
    return {"event": name, "t_ns": T0 + int(t * S), "mono_ns": int(t * S), **kw}


EVENTS = [_ev("container_start", 2.0), _ev("load_start", 2.1), _ev("load_end", 3.0), _ev("warmup_start", 3.0),
          _ev("warmup_end", 3.5), _ev("inference_start", 3.5), _ev("utterance_start", 3.5, id="a"),
          _ev("utterance_end", 5.5, id="a"), _ev("utterance_start", 5.5, id="b"), _ev("utterance_end", 7.5, id="b"),
          _ev("inference_end", 7.5), _ev("container_end", 7.6)]


def test_windows_baseline_and_dynamic_energy_are_exact_for_a_linear_profile():
    # 3 W idle for 2 s, then a ramp: P(t) = 3 + (t - 2) W. Trapezoid is exact for piecewise-linear power.
    samples = _timeline(lambda t: 3.0 if t < 2 else 3.0 + (t - 2.0), 9.0, ram=lambda t: 3000 + (200 if t > 3 else 0))
    base = accounting.measured_baseline(samples, T0, T0 + 2 * S)
    assert base.power_w == pytest.approx(3.0) and base.source == "measured"
    block = _block("tegrastats", samples, EVENTS, base, audio_s=8.0, n_ok=2, interval_ms_requested=100)
    exact = 3.0 * 4.0 + ((5.5 ** 2 - 1.5 ** 2) / 2)  # integral of 3 + (t-2) over [3.5, 7.5]
    assert block["total_j"] == pytest.approx(exact, rel=1e-6)
    assert block["dynamic_j"] == pytest.approx(exact - 3.0 * 4.0, rel=1e-6)
    assert block["j_per_audio_s"] == pytest.approx(exact / 8.0, rel=1e-6)
    assert block["j_per_utterance"] == pytest.approx(exact / 2, rel=1e-6)
    assert block["per_window"]["load"]["total_j"] == pytest.approx(3.0 * 0.9 + (1.0 ** 2 - 0.1 ** 2) / 2, rel=1e-6)
    assert block["peak_w"] == pytest.approx(8.5, rel=1e-3) and block["interval_ms"] == pytest.approx(100.0)
    assert block["ram_peak_delta_mib"] == pytest.approx(200.0)
    assert set(block["unavailable"]) == {"loaded_idle_w", "loaded_idle_uplift_w"}  # these events have none
    per_utt = accounting.utterance_energy(samples, EVENTS, base)
    assert per_utt["a"]["energy_j"] == pytest.approx(3 * 2 + (3.5 ** 2 - 1.5 ** 2) / 2, rel=1e-6)
    assert per_utt["b"]["dynamic_j"] == pytest.approx((5.5 ** 2 - 3.5 ** 2) / 2, rel=1e-6)


def test_missing_baseline_leaves_dynamic_unavailable_not_zero():
    samples = _timeline(lambda t: 5.0, 9.0)
    base = accounting.Baseline(None, "unavailable", reason="the idle baseline was skipped (--baseline-s 0)")
    block = _block("rapl", samples, EVENTS, base, 8.0, 2, 100)
    assert block["total_j"] == pytest.approx(20.0)
    assert block["dynamic_j"] is None and block["baseline_w"] is None
    assert block["unavailable"]["dynamic_j"] == "the idle baseline was skipped (--baseline-s 0)"
    assert "gpu_mem_peak_mib" not in block  # RAPL measures no memory: no GPU memory keys (issue 9, item 15)


def test_sparse_samples_flag_the_window_instead_of_guessing():
    samples = _timeline(lambda t: 5.0, 9.0, interval_s=3.0)  # samples at 0, 3, 6, 9 s
    block = _block("tegrastats", samples, EVENTS, accounting.Baseline(4.0, "given"), 8.0, 2, 3000)
    per_utt = accounting.utterance_energy(samples, EVENTS, accounting.Baseline(4.0, "given"))
    assert per_utt["a"]["energy_j"] is None and "at least 2" in per_utt["a"]["energy_unavailable"]
    # the 4 s inference window holds one sample (at 6 s): flagged with the reason, not guessed
    assert block["total_j"] is None and "at least 2" in block["unavailable"]["total_j"]
    assert block["j_per_audio_s"] is None and block["unavailable"]["j_per_audio_s"] == block["unavailable"]["total_j"]


def test_unavailable_block_has_reasons_for_every_figure():
    block = accounting.unavailable_block(None, "no power sensor found")
    assert block.total_j is None and block.n_samples == 0
    assert set(block.unavailable) >= {"total_j", "dynamic_j", "j_per_audio_s", "avg_w", "baseline_w"}


def test_trace_csv_has_one_column_per_channel(tmp_path):
    samples = _timeline(lambda t: 2.0, 0.3)
    accounting.write_trace_csv(tmp_path / "t.csv", samples)
    rows = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert len(rows) == 4 and rows[0]["VDD_IN_w"] == "2.0" and int(rows[1]["t_ns"]) - int(rows[0]["t_ns"]) == S // 10


def test_auto_selection_without_sensors_names_every_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tegrastats on PATH
    sampler, reason = select_sampler("auto", "cpu", 100)
    assert isinstance(sampler, NullSampler)
    assert reason.startswith("no power sensor found (ina3221:") and "tegrastats:" in reason and "rapl:" in reason
    assert "nvml" not in reason  # NVML is only tried for CUDA runs


def test_asked_for_by_name_and_unavailable_stops_before_launch(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="--telemetry tegrastats: .*not found on PATH"):
        select_sampler("tegrastats", "cpu", 100)


def test_none_is_unavailable_with_reason():
    sampler, reason = select_sampler("none", "cpu", 100)
    assert isinstance(sampler, NullSampler) and reason == "telemetry turned off (--telemetry none)"


def test_peak_vram_keeps_torch_and_nvml_figures_apart():
    """torch's allocator peak (tensors, no CUDA context) and NVML's process memory (with it) are different
    figures: both recorded, each under its own name, never one silently standing in for the other."""
    from runner import merge
    from runner.results import Summary

    samples = [Sample(t_ns=T0 + i * S // 10, power_w={"gpu0": 100.0}, total_w=100.0, total_kind="nvml:sum_of_gpus",
                      mem_used_mib=3000.0, extras={"processes": [{"pid": 9, "sid": 9, "used_mib": 500.0 + (
                          300.0 if 30 < i < 60 else 0.0)}]})
               for i in range(90)]
    block = accounting.energy_block("nvml", samples, EVENTS, accounting.Baseline(60.0, "given"), 8.0, 2, 100,
                                    owner=accounting.ProcessOwner(session_id=9))
    assert block.memory.process_peak_mib == 800.0 and block.memory.peak_mib == 3000.0
    raw = merge.RawOutputs([], [], {"status": "ok", "peak_vram_mb": 420.0})
    s = Summary(backend="transformers", model="m", quant="fp16", device="cuda", dataset="d", status="ok")
    s = merge.apply_container_facts(s, raw)
    s = replace(s, energy=block.to_json())
    s = merge.apply_nvml_vram(s, block)
    data = s.to_json()
    assert data["peak_vram_torch_mib"] == 420.0 and data["peak_vram_nvml_mib"] == 800.0
    assert "peak_vram_mb" not in data and data["schema_version"] >= 2
    ct2 = Summary(backend="faster-whisper", model="m", quant="int8", device="cuda", dataset="d", status="ok")
    ct2 = merge.apply_container_facts(ct2, merge.RawOutputs([], [], {"status": "ok"}))
    assert "invisible to torch" in ct2.unavailable["peak_vram_torch_mib"]
    assert "no NVML sampler" in ct2.unavailable["peak_vram_nvml_mib"]


def test_sweep_conditions_keep_the_torch_vram_figure():
    """A sweep condition is finalized from its events: the torch peak must come with condition_end."""
    from runner import execute

    events = [{"event": "model_info", "versions": {}, "n_params": 1}, {"event": "inference_end", "peak_rss_mb": 9.0,
                                                                        "peak_vram_mb": 420.0}]
    assert execute.condition_status(events, None, False)["peak_vram_mb"] == 420.0


def _batched_events():
    """Two batches of two utterances (transformers --batch-size 2): each utterance's window spans its batch."""
    ev = [_ev("container_start", 2.0), _ev("inference_start", 3.5)]
    for batch, (t0, t1, ids, durs) in enumerate([(3.5, 5.5, ("a", "b"), (3.0, 1.0)),
                                                  (5.5, 7.5, ("c", "d"), (2.0, 2.0))]):
        ev += [_ev("utterance_start", t0 + k * 1e-6, id=u, duration_s=d) for k, (u, d) in enumerate(zip(ids, durs))]
        total = sum(durs)
        ev += [_ev("utterance_end", t1 - 1e-5 + k * 1e-6, id=u, duration_s=d, batch_size=2, latency_s=t1 - t0,
                   processing_s=(t1 - t0) * d / total) for k, (u, d) in enumerate(zip(ids, durs))]
    return ev + [_ev("inference_end", 7.5), _ev("container_end", 7.6)]


def test_batched_utterances_share_batch_energy():
    """Utterances decoded in one batch split the batch's energy by their processing_s share; the per-utterance
    energies add up to the utterance windows' energy instead of counting each batch once per utterance."""
    samples = _timeline(lambda t: 3.0 if t < 2 else 3.0 + (t - 2.0), 9.0)
    base = accounting.Baseline(3.0, "given")
    events = _batched_events()
    per_utt = accounting.utterance_energy(samples, events, base)
    batch1 = 3.0 * 2 + (3.5 ** 2 - 1.5 ** 2) / 2  # integral of 3 + (t - 2) over [3.5, 5.5]
    batch2 = 3.0 * 2 + (5.5 ** 2 - 3.5 ** 2) / 2
    assert per_utt["a"]["energy_j"] == pytest.approx(batch1 * 0.75, rel=1e-4)
    assert per_utt["b"]["energy_j"] == pytest.approx(batch1 * 0.25, rel=1e-4)
    assert per_utt["c"]["energy_j"] == pytest.approx(batch2 * 0.5, rel=1e-4)
    assert per_utt["a"]["dynamic_j"] == pytest.approx((batch1 - 6.0) * 0.75, rel=1e-4)
    assert {u["energy_method"] for u in per_utt.values()} == {"batch_share"}
    # the invariant: per-utterance energies add up to the utterance windows' energy
    assert sum(u["energy_j"] for u in per_utt.values()) == pytest.approx(batch1 + batch2, rel=1e-4)


def test_sequential_utterances_are_measured_on_their_own_window():
    per_utt = accounting.utterance_energy(_timeline(lambda t: 5.0, 9.0), EVENTS, accounting.Baseline(3.0, "given"))
    assert per_utt["a"]["energy_j"] == pytest.approx(10.0) and per_utt["a"]["energy_method"] == "window"


def test_wall_clock_step_does_not_become_energy():
    """A +10 s wall-clock step (NTP) inside the inference window: windows are cut on the monotonic clock that host
    samples and container events share, so 4 s at 5 W stay 20 J instead of becoming 14 s of energy."""
    step = lambda t: 10 * S if t >= 5.0 else 0  # noqa: E731 - the wall clock jumps at 5 s
    samples = [Sample(t_ns=T0 + int(t * S) + step(t), mono_ns=int(t * S), power_w={"VDD_IN": 5.0}, total_w=5.0,
                      total_kind="input_rail:VDD_IN") for t in (i / 10 for i in range(91))]
    events = [{**e, "t_ns": e["t_ns"] + step(e["mono_ns"] / S)} for e in EVENTS]
    base = accounting.measured_baseline(samples, 0, 2 * S, clock="monotonic")
    block = _block("tegrastats", samples, events, base, 8.0, 2, 100)
    assert block["clock"] == "monotonic" and block["total_j"] == pytest.approx(20.0)
    assert block["per_window"]["inference"]["duration_s"] == pytest.approx(4.0)
    assert block["per_window"]["inference"]["wall_start_ns"] == events[5]["t_ns"]  # wall clock kept for display
    assert accounting.utterance_energy(samples, events, base)["b"]["energy_j"] == pytest.approx(10.0)


def _rapl_timeline(psys_w):
    """package 10 W + DRAM 2 W counters every 0.1 s over 9 s, with a psys counter at psys_w(t) W."""
    out, psys = [], 0.0
    for i in range(91):
        t = i / 10
        psys += psys_w(t) * 0.1 if i else 0.0
        e = {"package-0": 10.0 * t, "package-0/dram": 2.0 * t, "psys": psys}
        out.append(Sample(t_ns=T0 + int(t * S), mono_ns=int(t * S), energy_j=e, total_energy_j=12.0 * t,
                          total_w=12.0, total_kind="rapl:package+dram", power_w={}))
    return out


def test_stuck_psys_is_left_out_and_package_dram_reported():
    samples = _rapl_timeline(lambda t: 0.0)
    events = [{**e, "mono_ns": e["mono_ns"]} for e in EVENTS]
    base = accounting.measured_baseline(samples, 0, 2 * S, clock="monotonic")
    block = _block("rapl", samples, events, base, 8.0, 2, 100)
    assert block["total_j"] == pytest.approx(48.0) and block["total_kind"] == "rapl:package+dram"
    assert block["psys_j"] is None and "did not move" in block["unavailable"]["psys_j"]


def test_psys_that_moves_with_package_and_dram_is_an_extra_figure():
    samples = _rapl_timeline(lambda t: 15.0)
    base = accounting.measured_baseline(samples, 0, 2 * S, clock="monotonic")
    block = _block("rapl", samples, EVENTS, base, 8.0, 2, 100)
    assert block["total_j"] == pytest.approx(48.0)
    assert block["psys_j"] == pytest.approx(60.0, rel=1e-3) and "psys_j" not in block["unavailable"]


def _gpu_samples(procs_at):
    return [Sample(t_ns=T0 + i * S // 10, mono_ns=i * S // 10, power_w={"gpu0": 100.0}, total_w=100.0,
                   total_kind="nvml:sum_of_gpus", mem_used_mib=3000.0, extras={"processes": procs_at(i)})
            for i in range(90)]


def test_gpu_process_memory_counts_only_the_containers_processes():
    """Another user's 5 GB process on the same GPU is not the backend's memory: only processes in the run's
    container (its id in their cgroup) count."""
    ours = {"gpu": "gpu0", "pid": 100, "cgroup": "0::/system.slice/docker-abc123def.scope", "sid": 100}
    theirs = {"gpu": "gpu0", "pid": 200, "used_mib": 5000.0, "cgroup": "0::/user.slice/session-3.scope", "sid": 7}
    samples = _gpu_samples(lambda i: [{**ours, "used_mib": 500.0 + (300.0 if 30 < i < 60 else 0.0)}, theirs])
    owner = accounting.ProcessOwner(container_id="abc123def")
    block = _block("nvml", samples, EVENTS, accounting.Baseline(60.0, "given"), 8.0, 2, 100, owner=owner)
    assert block["gpu_process_mem_peak_mib"] == 800.0
    unknown = _block("nvml", samples, EVENTS, accounting.Baseline(60.0, "given"), 8.0, 2, 100)
    assert unknown["gpu_process_mem_peak_mib"] is None
    assert "cannot tell the run's processes" in unknown["unavailable"]["gpu_process_mem_peak_mib"]


def test_local_engine_processes_are_found_by_session():
    mine = {"gpu": "gpu0", "pid": 300, "used_mib": 700.0, "cgroup": "0::/user.slice", "sid": 4242}
    other = {"gpu": "gpu0", "pid": 301, "used_mib": 900.0, "cgroup": "0::/user.slice", "sid": 1}
    block = _block("nvml", _gpu_samples(lambda i: [mine, other]), EVENTS, accounting.Baseline(60.0, "given"),
                   8.0, 2, 100, owner=accounting.ProcessOwner(session_id=4242))
    assert block["gpu_process_mem_peak_mib"] == 700.0


def test_sampler_health_reaches_the_summary():
    """Sampler health (chosen GPUs, polling errors, exit reasons) is written to summary.json's telemetry.health."""
    from runner import merge
    from runner.results import Summary

    s = Summary(backend="b", model="m", quant="q", device="cpu", dataset="d", status="ok", telemetry={"sampler": "x"})
    samples = _timeline(lambda t: 5.0, 9.0)
    s, _ = merge.account_energy(s, [], "rapl", samples, EVENTS, accounting.Baseline(3.0, "given"), None, 100,
                         health={"sampler": "rapl", "polling_errors": ["OSError: boom"]})
    assert s.to_json()["telemetry"]["health"]["polling_errors"] == ["OSError: boom"]
    assert s.telemetry["sampler"] == "x"


def test_the_summary_health_names_the_windows_that_lost_readings():
    """Regression (issue 22, item 11): health_of_windows existed, but the summary's telemetry.health still said
    ok true for a run whose inference window lost a reading. The health written with the summary names the window
    (and the container window around it) and is not ok; the windows beside it are not named."""
    from dataclasses import replace

    from runner import merge
    from runner.results import Summary

    s = Summary(backend="b", model="m", quant="q", device="cpu", dataset="d", status="ok", audio_s=8.0,
                n_utterances=2)
    samples = _timeline(lambda t: 5.0, 9.0)
    samples[50] = replace(samples[50], extras={"lost_before": ["OSError: EIO reading the sensor"]})  # t = 5.0 s
    s, _ = merge.account_energy(s, [], "tegrastats", samples, EVENTS, accounting.Baseline(3.0, "given"), None, 100,
                                health={"sampler": "tegrastats", "ok": True})
    health = s.to_json()["telemetry"]["health"]
    assert health["ok"] is False
    assert set(health["windows_affected"]) == {"inference", "container"}
    assert all(f.startswith("lost") for f in health["windows_affected"]["inference"])


def test_tegrastats_arrival_bursts_are_flagged():
    """Lines read in bursts (stamped when Python reads them, not when measured) are counted and flagged."""
    samples = []
    for i in range(40):  # pairs of lines 2 ms apart every 200 ms, instead of one every 100 ms
        t = (i // 2) * 0.2 + (i % 2) * 0.002
        samples.append(Sample(t_ns=T0 + int(t * S), mono_ns=int(t * S), total_w=5.0, total_kind="input_rail:VDD_IN"))
    stats = accounting.arrival_stats(samples, 100)
    assert stats["n_bursty"] == 20 and stats["bursty"] is True
    assert stats["p50_ms"] == pytest.approx(101.0, abs=100) and stats["min_ms"] == pytest.approx(2.0)
    steady = accounting.arrival_stats(_timeline(lambda t: 5.0, 5.0), 100)
    assert steady["bursty"] is False and steady["n_bursty"] == 0 and steady["p95_ms"] == pytest.approx(100.0)
    block = _block("tegrastats", samples, EVENTS, accounting.Baseline(3.0, "given"), 8.0, 2, 100)
    assert block["arrival"]["bursty"] is True


def test_null_energy_figures_carry_their_reason():
    """j_per_utterance with nothing transcribed, dynamic_j_per_audio_s without a baseline: null with a reason."""
    samples = _timeline(lambda t: 5.0, 9.0)
    block = _block("tegrastats", samples, EVENTS, accounting.Baseline(None, "unavailable",
                   reason="the idle baseline was skipped (--baseline-s 0)"), 8.0, 0, 100)
    assert block["j_per_utterance"] is None
    assert "no utterance was transcribed" in block["unavailable"]["j_per_utterance"]
    assert block["dynamic_j_per_audio_s"] is None
    assert block["unavailable"]["dynamic_j_per_audio_s"] == "the idle baseline was skipped (--baseline-s 0)"
    no_audio = _block("tegrastats", samples, EVENTS, accounting.Baseline(3.0, "given"), None, 0, 100)
    assert no_audio["unavailable"]["dynamic_j_per_audio_s"] == "no audio was transcribed"


def test_rapl_runs_carry_no_gpu_memory_keys():
    samples = _rapl_timeline(lambda t: 0.0)
    block = _block("rapl", samples, EVENTS, accounting.Baseline(3.0, "given"), 8.0, 2, 100)
    assert not [k for k in list(block) + list(block["unavailable"]) if k.startswith("gpu_mem")]


def test_every_energy_figure_carries_its_scope():
    b = _block("tegrastats", _timeline(lambda t: 5.0, 9.0), EVENTS, accounting.Baseline(3.0, "given"), 8.0, 2, 100)
    assert b["scope"] == "board input" and b["per_window"]["inference"]["scope"] == "board input"
    r = _block("rapl", _rapl_timeline(lambda t: 0.0), EVENTS, accounting.Baseline(3.0, "given"), 8.0, 2, 100)
    assert r["scope"] == "CPU package+DRAM"
    assert accounting.scope_of("nvml:mig_parent_gpu") == "GPU (MIG slice's parent GPU, all processes on it)"
    assert accounting.scope_of("partial_sum_of_rails") == "board rails (partial sum)"


def test_gpu_and_cpu_energy_are_both_reported_on_a_cuda_host():
    """NVML and RAPL run together on an x86 CUDA host: GPU and CPU energy side by side, each with its scope,
    and their sum labelled as GPU + CPU package+DRAM."""
    from runner import merge
    from runner.results import Summary

    class Companion:
        name = "rapl"
        samples = _rapl_timeline(lambda t: 0.0)

        def health(self):
            return {"sampler": "rapl", "ok": True}

    gpu = [Sample(t_ns=T0 + i * S // 10, mono_ns=i * S // 10, power_w={"gpu0": 100.0}, total_w=100.0,
                  total_kind="nvml:sum_of_gpus") for i in range(91)]
    s = Summary(backend="b", model="m", quant="q", device="cuda", dataset="d", status="ok", audio_s=8.0,
                n_utterances=2)
    base = accounting.measured_baseline(gpu, 0, 2 * S, clock="monotonic")
    s, _ = merge.account_energy(s, [], "nvml", gpu, EVENTS, base, None, 100, companions=[Companion()])
    assert s.energy["scope"] == "GPU (all processes on it)" and s.energy["total_j"] == pytest.approx(400.0)
    cpu = s.energy["companions"]["rapl"]
    assert cpu["scope"] == "CPU package+DRAM" and cpu["total_j"] == pytest.approx(48.0)
    assert cpu["baseline_w"] == pytest.approx(12.0)  # measured over the same idle window
    assert s.energy["gpu_plus_cpu_j"] == pytest.approx(448.0)


def test_auto_selection_on_cuda_adds_rapl_beside_nvml(monkeypatch):
    from runner.telemetry.samplers import select
    from runner.telemetry.samplers.base import Availability

    class Fake(NullSampler):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def probe(self):
            return Availability.yes() if self.name in ("nvml", "rapl") else Availability.no("absent")

    monkeypatch.setattr(select, "make_sampler", lambda name, interval_ms, devices=None, clock=None: Fake(name))
    sampler, reason = select.select_sampler("auto", "cuda", 100)
    assert reason is None and sampler.name == "nvml" and [c.name for c in sampler.companions] == ["rapl"]
    cpu_only, _ = select.select_sampler("auto", "cpu", 100)
    assert cpu_only.name == "rapl" and list(cpu_only.companions) == []


def test_loaded_idle_window_shows_the_context_uplift():
    """Container up, model loaded, idle: its power beside the host idle baseline shows what the loaded model
    (CUDA context, pinned memory) costs while doing nothing."""
    samples = _timeline(lambda t: 8.0 if 3.6 <= t <= 4.4 else 3.0, 9.0)
    events = EVENTS[:5] + [_ev("loaded_idle_start", 3.7), _ev("loaded_idle_end", 4.3)] + EVENTS[5:]
    block = _block("tegrastats", samples, events, accounting.Baseline(3.0, "given"), 8.0, 2, 100)
    assert block["loaded_idle_w"] == pytest.approx(8.0) and block["loaded_idle_uplift_w"] == pytest.approx(5.0)
    old = _block("tegrastats", samples, EVENTS, accounting.Baseline(3.0, "given"), 8.0, 2, 100)
    assert old["loaded_idle_w"] is None and "no loaded-idle window" in old["unavailable"]["loaded_idle_w"]


def test_inference_energy_excludes_audio_preparation():
    """Decoding and noise mixing (prepare windows) sit inside the inference window but not in RTF: the headline
    inference energy leaves them out and reports them as their own window."""
    prep = [(3.5, 4.0), (5.5, 6.0)]
    power = lambda t: 20.0 if any(a <= t < b for a, b in prep) else 5.0  # noqa: E731
    samples, acc = [], 0.0
    for i in range(91):
        t = i / 10
        if i:
            acc += sum(power((i - 1) / 10 + k / 1000) for k in range(100)) / 1000  # exact for this step profile
        samples.append(Sample(t_ns=T0 + int(t * S), mono_ns=int(t * S), total_w=power(t), total_energy_j=acc,
                              total_kind="input_rail:VDD_IN"))
    events = EVENTS[:5] + [_ev("inference_start", 3.5), _ev("prepare_start", 3.5), _ev("prepare_end", 4.0),
                           _ev("utterance_start", 4.0, id="a"), _ev("utterance_end", 5.5, id="a"),
                           _ev("prepare_start", 5.5), _ev("prepare_end", 6.0), _ev("utterance_start", 6.0, id="b"),
                           _ev("utterance_end", 7.5, id="b"), _ev("inference_end", 7.5), _ev("container_end", 7.6)]
    block = _block("tegrastats", samples, events, accounting.Baseline(5.0, "given"), 8.0, 2, 100)
    assert block["total_j"] == pytest.approx(15.0, rel=1e-6) and block["dynamic_j"] == pytest.approx(0.0, abs=1e-6)
    assert block["per_window"]["prepare"]["total_j"] == pytest.approx(20.0, rel=1e-6)
    assert block["per_window"]["prepare"]["n_windows"] == 2
    assert block["per_window"]["inference"]["total_j"] == pytest.approx(35.0, rel=1e-6)  # the raw window
    assert block["inference_method"] == "inference window minus 2 prepare window(s)"
    assert block["avg_w"] == pytest.approx(5.0)


def test_per_rail_energy_leaves_out_the_prepare_windows_too():
    prep = [(3.5, 4.0)]
    samples = []
    for i in range(91):
        t = i / 10
        w = {"VDD_IN": 20.0 if 3.5 <= t < 4.0 else 5.0, "VDD_SOC": 1.0}
        samples.append(Sample(t_ns=T0 + int(t * S), mono_ns=int(t * S), power_w=w, total_w=w["VDD_IN"],
                              total_kind="input_rail:VDD_IN"))
    events = EVENTS[:5] + [_ev("inference_start", 3.5), _ev("prepare_start", prep[0][0]),
                           _ev("prepare_end", prep[0][1]), _ev("inference_end", 7.5), _ev("container_end", 7.6)]
    block = _block("tegrastats", samples, events, accounting.Baseline(5.0, "given"), 8.0, 1, 100)
    assert block["per_rail"]["VDD_SOC"] == pytest.approx(3.5, rel=1e-6)  # 1 W over the 3.5 s of work
    assert block["per_rail"]["VDD_IN"] == pytest.approx(block["total_j"], rel=1e-6)


def test_sweep_conditions_keep_the_loaded_idle_window():
    from runner import execute

    events = [{"event": "loaded_idle_start"}, {"event": "loaded_idle_end"}, {"event": "condition_start", "condition": "k"}]
    assert [e["event"] for e in execute.condition_events(events, "k")] == ["loaded_idle_start", "loaded_idle_end",
                                                                           "inference_start"]


def test_a_windows_figures_above_the_baseline_are_built_once_not_patched_in():
    """Issue 21 item 2: a per-window block is WindowEnergy.to_json_above (its figures, then dynamic_j, then why it is
    missing where the window had energy but no baseline), the keys in the order summaries always stored them."""
    from runner.telemetry.energy.integrate import WindowEnergy

    w = WindowEnergy(0, 2_000_000_000, 10.0, 5.0, 6.0, 20, 100.0)
    plain = w.to_json()
    above = w.to_json_above(3.0, "no idle baseline")
    assert list(above) == [*plain, "dynamic_j"] and above["dynamic_j"] == pytest.approx(4.0)
    missing = w.to_json_above(None, "the idle baseline was skipped (--baseline-s 0)")
    assert list(missing) == [*plain, "dynamic_j", "unavailable"] and missing["dynamic_j"] is None
    assert missing["unavailable"] == {"dynamic_j": "the idle baseline was skipped (--baseline-s 0)"}
    unmeasured = WindowEnergy(0, 1, None, None, None, 0, None, reason="no samples").to_json_above(None, "x")
    assert unmeasured["dynamic_j"] is None and "unavailable" not in unmeasured
    assert w.to_json() == plain  # nothing was edited in place
