"""The energy block written to summary.json is pinned byte for byte (keys, their order, values).

``energy_golden.json`` was recorded from the dict-building code before the block became a frozen record
(issue 10, item 8): every scenario here must still produce exactly that JSON, so that turning the block
into a record changed no result file. Regenerate it only for an intended schema change:
``PYTHONPATH=. python tests/unit/telemetry/test_energy_block.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner import merge
from runner.results import Summary, UtteranceResult
from runner.telemetry.energy import accounting
from runner.telemetry.samplers.base import Sample

GOLDEN = Path(__file__).resolve().parent / "energy_golden.json"
S = 1_000_000_000
T0 = 1_800_000_000 * S


def _ev(name, t, **kw):
    return {"event": name, "t_ns": T0 + int(t * S), "mono_ns": int(t * S), **kw}


EVENTS = [_ev("container_start", 2.0), _ev("load_start", 2.1), _ev("load_end", 3.0), _ev("warmup_start", 3.0),
          _ev("warmup_end", 3.5), _ev("loaded_idle_start", 3.5), _ev("loaded_idle_end", 3.6),
          _ev("inference_start", 3.6), _ev("prepare_start", 3.6), _ev("prepare_end", 3.8),
          _ev("utterance_start", 3.8, id="a"), _ev("utterance_end", 5.5, id="a", processing_s=1.7),
          _ev("prepare_start", 5.5), _ev("prepare_end", 5.7),
          _ev("utterance_start", 5.7, id="b"), _ev("utterance_end", 7.5, id="b", processing_s=1.8),
          _ev("inference_end", 7.5), _ev("container_end", 7.6)]
NO_INFERENCE = [_ev("container_start", 2.0), _ev("load_start", 2.1), _ev("load_end", 3.0), _ev("container_end", 3.2)]


def _board(step_s=0.1):
    """A Jetson timeline: input rail ramping with the work, a second rail, RAM rising once the model loads."""
    out = []
    for i in range(round(9.0 / step_s) + 1):
        t = i * step_s
        w = 3.0 if t < 2 else 3.0 + 0.7 * (t - 2.0)
        out.append(Sample(t_ns=T0 + int(t * S), mono_ns=int(t * S), power_w={"VDD_IN": w, "VDD_SOC": 0.25 * w},
                          total_w=w, total_kind="input_rail:VDD_IN", mem_used_mib=3000.0 + (250.0 if t > 3 else 0.0)))
    return out


def _gpu(step_s=0.1):
    """An NVML timeline with an energy counter and the run's process (sid 9) beside another user's."""
    out, acc = [], 0.0
    for i in range(round(9.0 / step_s) + 1):
        t = i * step_s
        w = 60.0 if t < 3 else 140.0
        acc += w * step_s if i else 0.0
        procs = [{"gpu": "gpu0", "pid": 9, "sid": 9, "used_mib": 400.0 + (300.0 if 3.5 < t < 6 else 0.0)},
                 {"gpu": "gpu0", "pid": 7, "sid": 7, "used_mib": 5000.0}]
        out.append(Sample(t_ns=T0 + int(t * S), mono_ns=int(t * S), power_w={"gpu0": w}, total_w=w,
                          total_energy_j=acc, total_kind="nvml:sum_of_gpus", mem_used_mib=6000.0 + t,
                          extras={"processes": procs}))
    return out


def _rapl(psys_w=15.0, step_s=0.1):
    """RAPL counters: package 10 W, DRAM 2 W, psys at psys_w."""
    out, psys = [], 0.0
    for i in range(round(9.0 / step_s) + 1):
        t = i * step_s
        psys += psys_w * step_s if i else 0.0
        out.append(Sample(t_ns=T0 + int(t * S), mono_ns=int(t * S), total_w=12.0, total_energy_j=12.0 * t,
                          total_kind="rapl:package+dram", power_w={},
                          energy_j={"package-0": 10.0 * t, "package-0/dram": 2.0 * t, "psys": psys}))
    return out


class _Companion:
    def __init__(self, name, samples):
        self.name, self.samples = name, samples


def _summary(device):
    return Summary(backend="b", model="m", quant="q", device=device, dataset="d", status="ok", audio_s=8.0,
                   n_utterances=2, n_failed=0, telemetry={"sampler": "x"})


def _utts():
    return [UtteranceResult(u, "ok", None, "r", "h", "r", "h", 4.0, 1.7, 0.0, 1.7) for u in ("a", "b")]


def _measured(samples, t0=0.0, t1=2.0):
    base = accounting.measured_baseline(samples, int(t0 * S), int(t1 * S), clock="monotonic")
    return accounting.Baseline(base.power_w, base.source, base.start_ns, base.end_ns, base.reason, base.clock,
                               wall_window_ns=(T0 + int(t0 * S), T0 + int(t1 * S)),
                               cooldown={"waited_s": 1.5, "settled": True})


def _cases():
    """name -> account_energy's inputs, one per shape the energy block takes."""
    board = _board()
    gpu = _gpu()
    return {
        # Jetson: measured baseline, prepare windows, loaded idle, RAM figures, sampler health
        "tegrastats": dict(device="cuda", source="tegrastats", samples=board, events=EVENTS, base=_measured(board),
                           health={"sampler": "tegrastats", "ok": True}),
        # given baseline, no audio-free shortcut: every figure, no memory keys for RAPL, psys consistent
        "rapl_psys": dict(device="cpu", source="rapl", samples=_rapl(), events=EVENTS, base=_measured(_rapl())),
        "rapl_stuck_psys": dict(device="cpu", source="rapl", samples=_rapl(0.0), events=EVENTS,
                                base=accounting.Baseline(3.0, "given")),
        # CUDA host: NVML with its own processes' memory and RAPL beside it (GPU + CPU)
        "nvml_rapl": dict(device="cuda", source="nvml", samples=gpu, events=EVENTS, base=_measured(gpu),
                          owner=accounting.ProcessOwner(session_id=9), companions=[_Companion("rapl", _rapl())],
                          health={"sampler": "nvml"}),
        # the companion cannot measure the inference window: the sum is null with the CPU's reason
        "nvml_sparse_rapl": dict(device="cuda", source="nvml", samples=gpu, events=EVENTS, base=_measured(gpu),
                                 companions=[_Companion("rapl", _rapl(step_s=3.0))]),
        # the GPU cannot: the sum is null with the GPU's reason; no owner: no per-process memory
        "sparse_nvml_rapl": dict(device="cuda", source="nvml", samples=_gpu(step_s=3.0), events=EVENTS,
                                 base=accounting.Baseline(50.0, "given"), companions=[_Companion("rapl", _rapl())]),
        # an idle window on the other clock than the run's windows: no baseline, its reason
        "clock_mismatch": dict(device="cpu", source="tegrastats", samples=board, events=EVENTS,
                               base=accounting.Baseline(3.0, "measured", T0, T0 + 2 * S, clock="wall")),
        # a wall-clock-only timeline (an old log)
        "wall_clock": dict(device="cpu", source="tegrastats",
                           samples=[Sample(t_ns=s.t_ns, power_w=dict(s.power_w), total_w=s.total_w,
                                           total_kind=s.total_kind, mem_used_mib=s.mem_used_mib) for s in board],
                           events=EVENTS, base=accounting.measured_baseline(board, T0, T0 + 2 * S)),
        # the container died before inference: the null block's shape, with its windows and clock
        "no_inference": dict(device="cuda", source="nvml", samples=gpu, events=NO_INFERENCE, base=_measured(gpu),
                             companions=[_Companion("rapl", _rapl())]),
        # no sensor at all
        "unavailable": dict(device="cpu", source="none", samples=[], events=EVENTS, base=None,
                            reason="no power sensor found (rapl: absent)", health={"sampler": "none"}),
        "unavailable_cuda": dict(device="cuda", source="nvml", samples=[], events=EVENTS, base=None,
                                 reason="telemetry turned off (--telemetry none)"),
    }


NAMES = tuple(_cases())


def _scenarios():
    """name -> (summary, utterances) after account_energy."""
    out = {}
    for name, c in _cases().items():
        s = _summary(c["device"])
        if c["device"] == "cuda":
            s = s.unavailable_because({"peak_vram_nvml_mib": "no NVML sampler ran"})
        s, utts = merge.account_energy(s, _utts(), c["source"], c["samples"], c["events"], c["base"],
                                       c.get("reason"), 100, c.get("owner"), c.get("health"), c.get("companions", ()))
        out[name] = {"summary": s.to_json(), "utterances": [u.__dict__ for u in utts]}
    return out


@pytest.mark.parametrize("name", NAMES)
def test_energy_block_json_is_unchanged(name):
    """summary.json (its energy block, telemetry health, NVML memory figures) and the utterances' energy are
    exactly what the dict-building code wrote: same keys, same order, same values."""
    golden = json.loads(GOLDEN.read_text())[name]
    now = json.loads(json.dumps(_scenarios()[name]))
    assert now == golden
    assert json.dumps(now["summary"]["energy"]) == json.dumps(golden["summary"]["energy"])  # key order too


def test_golden_covers_every_scenario():
    """The golden file holds every scenario (a new one must be recorded, not silently skipped)."""
    assert set(json.loads(GOLDEN.read_text())) == set(NAMES)


def test_the_block_is_a_frozen_record_and_its_json_is_the_callers():
    """The record cannot be changed, its nested parts neither; to_json() hands out plain dicts, so a caller
    that edits the JSON does not change the record (the summary keeps its own copy)."""
    from dataclasses import FrozenInstanceError

    block = accounting.energy_block("tegrastats", _board(), EVENTS, _measured(_board()), 8.0, 2, 100)
    with pytest.raises(FrozenInstanceError):
        block.total_j = 0.0
    with pytest.raises(TypeError):
        block.per_window["inference"]["total_j"] = 0.0
    with pytest.raises(TypeError):
        block.unavailable["total_j"] = "edited"
    data = block.to_json()
    data["per_window"]["inference"]["total_j"] = 0.0
    data["unavailable"]["x"] = "y"
    assert block.per_window["inference"]["total_j"] > 0 and "x" not in block.unavailable
    assert type(data["per_window"]["inference"]) is dict and data["baseline_window_ns"] == [0, 2 * S]
    assert block.memory.label == "ram" and data["ram_peak_delta_mib"] == block.memory.peak_delta_mib == 250.0


def test_a_block_without_inference_has_no_memory_or_psys_figures():
    """The null shape carries no figures of the measured shape: building one is refused instead of being
    dropped silently by to_json()."""
    from runner.telemetry.energy.record import EnergyBlock, PsysFigure

    with pytest.raises(ValueError, match="no psys or memory"):
        EnergyBlock(source="rapl", psys=PsysFigure(None, "stuck"))


def _row(name, **changes):
    from dataclasses import replace

    from runner.telemetry.samplers import registry

    return replace(registry.sampler_row(name), **changes)


def test_companion_sum_follows_the_sampler_table(monkeypatch):
    """Which companions add up, under which key and with which part named in a null sum's reason, is the
    sampler table's: a board sampler given RAPL as a summed companion gets board + CPU; NVML without a
    combined_key reports RAPL beside it and adds nothing."""
    from runner.telemetry.samplers import registry

    rows = tuple(_row("tegrastats", companions=("rapl",), combined_key="board_plus_cpu") if r.name == "tegrastats"
                 else _row("nvml", combined_key=None) if r.name == "nvml" else r for r in registry.SAMPLERS)
    monkeypatch.setattr(registry, "SAMPLERS", rows)
    board = accounting.energy_block("tegrastats", _board(), EVENTS, _measured(_board()), 8.0, 2, 100)
    cpu = accounting.energy_block("rapl", _rapl(), EVENTS, _measured(_rapl()), 8.0, 2, 100)
    both = accounting.with_companions(board, {"rapl": cpu}).to_json()
    assert both["board_plus_cpu_j"] == pytest.approx(board.total_j + cpu.total_j)
    assert both["board_plus_cpu_scope"] == "board input + CPU package+DRAM" and "gpu_plus_cpu_j" not in both
    sparse = accounting.energy_block("rapl", _rapl(step_s=3.0), EVENTS, accounting.Baseline(3.0, "given"), 8.0, 2,
                                     100)
    missing = accounting.with_companions(board, {"rapl": sparse})
    assert missing.combined.total_j is None and missing.unavailable["board_plus_cpu_j"].startswith("CPU: ")
    gpu = accounting.energy_block("nvml", _gpu(), EVENTS, _measured(_gpu()), 8.0, 2, 100)
    beside = accounting.with_companions(gpu, {"rapl": cpu}).to_json()
    assert beside["companions"]["rapl"]["total_j"] == pytest.approx(cpu.total_j)
    assert not [k for k in beside if k.endswith("_plus_cpu_j")]
    assert board.companions == {} and board.combined is None  # the original record is unchanged


def test_nvml_process_memory_is_the_tables_fact(monkeypatch):
    """The per-process GPU memory figure (and the summary's peak_vram_nvml_mib) comes from the row that says its
    samples list the run's processes, not from a sampler name written in the accounting code."""
    from runner.telemetry.samplers import registry

    owner = accounting.ProcessOwner(session_id=9)
    block = accounting.energy_block("nvml", _gpu(), EVENTS, _measured(_gpu()), 8.0, 2, 100, owner)
    assert block.memory.per_process and block.memory.process_peak_mib == 700.0
    s = _summary("cuda")
    s = merge.apply_nvml_vram(s, block)
    assert s.peak_vram_nvml_mib == 700.0
    rows = tuple(_row("nvml", process_memory=False) if r.name == "nvml" else r for r in registry.SAMPLERS)
    monkeypatch.setattr(registry, "SAMPLERS", rows)
    plain = accounting.energy_block("nvml", _gpu(), EVENTS, _measured(_gpu()), 8.0, 2, 100, owner)
    assert "gpu_process_mem_peak_mib" not in plain.to_json() and "gpu_mem_peak_mib" in plain.to_json()
    s = _summary("cuda")
    s = merge.apply_nvml_vram(s, plain)
    assert s.peak_vram_nvml_mib is None and "peak_vram_nvml_mib" not in s.unavailable


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(_scenarios(), indent=2) + "\n")


def test_loaded_idle_is_a_selectable_baseline_recorded_as_such():
    """Issue 22, item 10: ``--baseline loaded-idle`` subtracts the loaded idle (container up, model loaded, idle)
    instead of the host idle; the block says so (``baseline_source: loaded_idle``) and keeps the host idle beside
    it; without a loaded-idle window the baseline is unavailable with the reason, never the host idle instead."""
    from dataclasses import replace

    board = _board()
    host = replace(_measured(board), use="loaded-idle")
    block = accounting.energy_block("tegrastats", board, EVENTS, host, 8.0, 2, 100)
    li = block.per_window["loaded_idle"]
    assert block.baseline_source == "loaded_idle" and block.baseline_w == pytest.approx(li["avg_w"])
    assert block.host_idle_w == pytest.approx(3.0) and block.to_json()["host_idle_w"] == pytest.approx(3.0)
    assert block.loaded_idle_uplift_w == pytest.approx(li["avg_w"] - 3.0)
    inf = block.per_window["inference"]
    assert inf["dynamic_j"] == pytest.approx(inf["total_j"] - li["avg_w"] * inf["duration_s"])
    none = accounting.energy_block("tegrastats", board, [e for e in EVENTS if "loaded_idle" not in e["event"]],
                                   host, 8.0, 2, 100)
    assert none.baseline_w is None and "--baseline loaded-idle" in none.unavailable["baseline_w"]
    assert none.dynamic_j is None


def test_energy_per_audio_second_counts_the_same_utterances_above_and_below():
    """Regression (issue 22, item 4): energy per audio second and per utterance counted the failed utterances' work
    but divided by the transcribed audio and count: +25 % with one failure in five. One rule now: the numerator is
    the transcribed utterances' work (the failed backend calls' windows left out), over their audio and count."""
    samples = [Sample(t_ns=T0 + i * S // 10, mono_ns=i * S // 10, total_w=10.0, total_kind="input_rail:VDD_IN")
               for i in range(0, 121)]
    events = [_ev("container_start", 0.5), _ev("load_start", 0.6), _ev("load_end", 1.0), _ev("inference_start", 1.0)]
    for i in range(5):  # five calls of 2 s each, one audio second each; the fourth fails
        events.append(_ev("utterance_start", 1.0 + 2 * i, id=f"u{i}"))
        end = "utterance_error" if i == 3 else "utterance_end"
        events.append(_ev(end, 3.0 + 2 * i, id=f"u{i}", **({"processing_s": 2.0} if i != 3 else {})))
    events += [_ev("inference_end", 11.0), _ev("container_end", 11.5)]
    block = accounting.energy_block("tegrastats", samples, events, accounting.Baseline(4.0, "given"), 4.0, 4, 100)
    assert block.total_j == pytest.approx(100.0)  # the whole inference work: 10 s at 10 W, the failure included
    assert block.j_per_audio_s == pytest.approx(80.0 / 4.0)  # not 100 / 4: the same four utterances above and below
    assert block.j_per_utterance == pytest.approx(20.0)
    assert block.dynamic_j_per_audio_s == pytest.approx((80.0 - 4.0 * 8.0) / 4.0)
    assert block.per_window["failed_calls"]["total_j"] == pytest.approx(20.0)
    assert "same utterances" in block.per_audio_rule


def test_a_failed_utterance_without_a_call_is_not_matched_to_an_earlier_conditions_call():
    """Regression (issue 22, item 4): the same utterance ids run in every condition; a condition whose decode
    settings were refused records errors without a backend call. Such an error must not close the call of the same
    id in an earlier condition (which ended well), or the whole span between them would be taken out as failed."""
    samples = [Sample(t_ns=T0 + i * S // 10, mono_ns=i * S // 10, total_w=10.0, total_kind="input_rail:VDD_IN")
               for i in range(0, 121)]
    events = [_ev("container_start", 0.5), _ev("load_start", 0.6), _ev("load_end", 1.0), _ev("inference_start", 1.0),
              _ev("utterance_start", 1.0, id="u0", condition="a"),
              _ev("utterance_end", 3.0, id="u0", condition="a", processing_s=2.0),
              _ev("utterance_start", 3.0, id="u1", condition="a"),
              _ev("utterance_error", 5.0, id="u1", condition="a"),
              _ev("utterance_error", 9.0, id="u0", condition="b"),  # refused: no call
              _ev("inference_end", 11.0), _ev("container_end", 11.5)]
    assert accounting.failed_windows(events, "monotonic") == [(3 * S, 5 * S)]
    block = accounting.energy_block("tegrastats", samples, events, accounting.Baseline(4.0, "given"), 1.0, 1, 100)
    assert block.per_window["failed_calls"]["total_j"] == pytest.approx(20.0)
    assert block.j_per_audio_s == pytest.approx(80.0)


def test_a_conditions_memory_is_its_own_window_not_the_containers_peak():
    """Regression (issue 22, item 1): the sampler's memory figure was the container's peak, so conditions at 2000
    and 6000 MiB in one container both reported 6000 (a batch-size sweep gave every condition the largest batch's
    memory). Memory is a timeline like power: the condition's headline is the peak over its own window, beside
    what was resident at its start and the rise over it, each window's peak (load, the condition, the container)
    and each utterance's, on the sampler's clock and interval."""
    def mem(t):
        if t < 2.5:
            return 1000.0
        if t < 6.0:  # the first condition (a batch of 8) at 6000, freed when it ends
            return 6000.0
        return 2000.0 if t < 9.0 else 1500.0  # the second at 2000
    samples = [Sample(t_ns=T0 + i * S // 10, mono_ns=i * S // 10, power_w={"VDD_IN": 5.0}, total_w=5.0,
                      total_kind="input_rail:VDD_IN", mem_used_mib=mem(i / 10)) for i in range(0, 121)]
    wide = [_ev("container_start", 0.5), _ev("load_start", 0.6), _ev("load_end", 2.0)]
    first = [_ev("inference_start", 2.45, condition="a"), _ev("utterance_start", 2.5, id="u", condition="a"),
             _ev("utterance_end", 5.9, id="u", condition="a", processing_s=3.4),
             _ev("inference_end", 5.9, condition="a")]
    second = [_ev("inference_start", 5.95, condition="b"), _ev("utterance_start", 6.0, id="u", condition="b"),
              _ev("utterance_end", 8.9, id="u", condition="b", processing_s=2.9),
              _ev("inference_end", 8.9, condition="b")]
    end = [_ev("container_end", 11.5)]
    base = accounting.Baseline(4.0, "measured", 0, int(0.4 * S), clock="monotonic")
    a = accounting.energy_block("tegrastats", samples, wide + first + end, base, 4.0, 1, 100).to_json()
    b = accounting.energy_block("tegrastats", samples, wide + second + end, base, 4.0, 1, 100).to_json()
    assert a["ram_peak_mib"] == 6000.0 and b["ram_peak_mib"] == 2000.0  # not 6000 for both
    # resident at its start: the last sample at or before it (the first condition's memory, not yet returned)
    assert b["ram_at_start_mib"] == 6000.0 and b["ram_rise_mib"] == -4000.0
    assert a["ram_at_start_mib"] == 1000.0 and a["ram_rise_mib"] == 5000.0
    assert b["ram_peak_delta_mib"] == 1000.0  # over the idle window's 1000
    windows = b["memory_windows_mib"]
    assert windows["load"] == 1000.0 and windows["inference"] == 2000.0 and windows["container"] == 6000.0
    assert b["memory_clock"] == "monotonic" and b["memory_interval_ms"] == pytest.approx(100.0)
    assert "own window" in b["memory_headline"]
    per_utt = accounting.utterance_memory(samples, wide + second + end)
    assert per_utt == {"u": 2000.0}
