"""Operating points (runner/power) against the fake Orin Nano (tests/fake_jetson.py, the fake nvpmodel and
jetson_clocks) and the fake NVML: checks before the run, apply, read back, clamp detection, observation, and
restore on success, on error and on SIGTERM; refusal without root; the executor's hook; the INA3221 sampler."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fake_clock import ManualClock
from fake_jetson import make_orin_nano
from recorded_engine import RecordedEngine

import runner.power.base as power_base
import runner.power.nvidia as power_nvidia
from runner import execute, plan, power, settings as st
from runner.errors import Interrupted, UserError
from runner.experiment import Condition
from runner.power.base import OperatingPoint, mismatches
from runner.power.jetson import JetsonController, parse_nvpmodel_conf, parse_nvpmodel_query
from runner.settings import PowerSettings
from runner.telemetry.energy import integrate as energy
from runner.telemetry.samplers import ina3221 as ina

HERE = Path(__file__).resolve().parent


def _fake_pynvml():
    spec = importlib.util.spec_from_file_location("edgeasr_tests_fake_pynvml_power", HERE / "telemetry" / "fake_pynvml.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FAKE_NVML = _fake_pynvml()


@pytest.fixture
def board(tmp_path, monkeypatch):
    """The fake Orin Nano in mode 0 (15W), its tools first on PATH, as root."""
    b = make_orin_nano(tmp_path / "board")
    for k, v in b.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FAKE_NVPMODEL_REBOOT_MODES", raising=False)
    monkeypatch.setattr(power_base, "is_root", lambda: True)
    return b


def _nvml(monkeypatch, **gpu):
    fake = FAKE_NVML.FakePynvml([FAKE_NVML.FakeGpu(**gpu)])
    monkeypatch.setattr(power_nvidia, "load_nvml", lambda: fake)
    monkeypatch.setattr(power_base, "is_root", lambda: True)
    monkeypatch.setenv("EDGEASR_SYSFS_ROOT", "/nonexistent-sysfs")  # no Jetson here
    monkeypatch.setenv("EDGEASR_NVPMODEL_CONF", "/nonexistent/nvpmodel.conf")
    return fake


# -- settings ------------------------------------------------------------------------------------------------


def test_power_settings_default_to_leaving_the_device_as_it_is():
    """Every operating-point field is unset by default, so nothing is requested and nothing is checked."""
    assert PowerSettings().requested() == {}
    assert power.problems(PowerSettings()) == []


def test_power_mode_takes_an_id_or_a_name_and_refuses_anything_else():
    """power.mode: an integer id or a name from nvpmodel.conf; '2' from the command line becomes 2."""
    s = st.Settings()
    assert st.apply(s, "power.mode", 2).power.mode == 2
    assert st.apply(s, "power.mode", "MAXN_SUPER").power.mode == "MAXN_SUPER"
    assert st.check("power.mode", "3") == 3
    for bad in (True, -1, 1.5, ""):
        with pytest.raises(st.SettingError):
            st.apply(s, "power.mode", bad)
    with pytest.raises(st.SettingError):
        st.apply(s, "power.gpu_freq_mhz", 0)
    assert st.sweep_axis_problem("power.gpu_freq_mhz") is None
    assert st.sweep_axis_problem("power.strict")


# -- nvpmodel formats ------------------------------------------------------------------------------------------


def test_nvpmodel_conf_and_query_are_parsed_by_name(board):
    """The modes, their GPU ceilings (Hz -> MHz; -1: none) and the default come from the conf's blocks; -q's
    two lines give the name and the id."""
    modes, default = parse_nvpmodel_conf(board.conf.read_text())
    assert default == 0
    assert {m.mode_id: (m.name, m.gpu_max_mhz) for m in modes.values()} == {
        0: ("15W", 612.0), 1: ("25W", 918.0), 2: ("MAXN_SUPER", None), 3: ("7W", 408.0)}
    assert parse_nvpmodel_query("NV Fan Mode:quiet\nNV Power Mode: 7W\n3\n") == (3, "7W")


def test_the_gpu_devfreq_node_is_found_by_name(board, tmp_path):
    """The GPU node is the devfreq entry named like a GPU (17000000.gpu here; .ga10b / .gv11b elsewhere), not
    the first entry (15340000.vic)."""
    ctl = JetsonController()
    assert ctl.gpu_devfreq().name == "17000000.gpu"
    os.rename(ctl.gpu_devfreq(), ctl.gpu_devfreq().with_name("17000000.ga10b"))
    assert ctl.gpu_devfreq().name == "17000000.ga10b"


# -- checks before anything runs ------------------------------------------------------------------------------


def test_unsupported_values_are_refused_naming_the_allowed_ones(board):
    """An unknown mode lists the modes; a clock that is not available lists the available ones; a clock above
    the requested mode's ceiling names the ceiling and the clocks allowed in that mode."""
    [p] = power.problems(PowerSettings(mode="10W"))
    assert "'10W' is not a mode" in p and "0 (15W), 1 (25W), 2 (MAXN_SUPER), 3 (7W)" in p
    [p] = power.problems(PowerSettings(gpu_freq_mhz=700))
    assert "700 MHz is not an available GPU frequency" in p and "306, 408, 510, 612, 714" in p
    [p] = power.problems(PowerSettings(mode=3, gpu_freq_mhz=612))
    assert "above power mode 3 (7W)'s GPU ceiling of 408 MHz" in p and p.endswith("(MHz): 306, 408")
    [p] = power.problems(PowerSettings(gpu_freq_mhz=918))  # the current mode (15W) caps it
    assert "power mode 0 (15W)" in p
    assert power.problems(PowerSettings(mode="7W", gpu_freq_mhz=408, jetson_clocks=False)) == []


def test_a_request_this_host_cannot_take_is_refused_with_a_clear_message(monkeypatch, tmp_path):
    """No Jetson: a power mode is refused (no nvpmodel); no NVIDIA GPU: a power limit is refused (NVML found
    none); a Jetson field and an NVIDIA field together are refused."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("EDGEASR_SYSFS_ROOT", str(tmp_path / "no-sys"))
    monkeypatch.setenv("EDGEASR_NVPMODEL_CONF", str(tmp_path / "nvpmodel.conf"))
    [p] = power.problems(PowerSettings(mode=0))
    assert p.startswith("power.mode needs a Jetson with nvpmodel")
    fake = FAKE_NVML.FakePynvml(init_error=FAKE_NVML.NVML_ERROR_DRIVER_NOT_LOADED)
    monkeypatch.setattr(power_nvidia, "load_nvml", lambda: fake)
    [p] = power.problems(PowerSettings(gpu_power_limit_w=200))
    assert p.startswith("power.gpu_power_limit_w needs an NVIDIA GPU with its driver (NVML)")
    [p] = power.problems(PowerSettings(mode=0, gpu_power_limit_w=200))
    assert "cannot be set together" in p


def test_without_root_the_run_is_refused_in_one_sentence_naming_the_fix(board, monkeypatch):
    """Not root: one sentence that says root is needed and how to get it (sudo -E; with docker compose, whose runner
    runs as the project's owner, EDGEASR_KEEP_ROOT=1), for Jetson and NVIDIA."""
    monkeypatch.setattr(power_base, "is_root", lambda: False)
    [p] = power.problems(PowerSettings(mode=3))
    assert "needs root" in p and "sudo -E edgeasr" in p and p.count(". ") == 0
    assert "EDGEASR_KEEP_ROOT=1 docker compose" in p
    _nvml(monkeypatch)
    monkeypatch.setattr(power_base, "is_root", lambda: False)
    [p] = power.problems(PowerSettings(gpu_freq_mhz=1500))
    assert "locking NVIDIA GPU clocks" in p and "needs root" in p and "sudo -E" in p


def test_build_run_spec_refuses_before_anything_runs(board, monkeypatch, tmp_path):
    """`edgeasr run --power-mode` on a host that cannot take it stops in build_run_spec with the reason."""
    from helpers import write_tone

    from runner.spec import build_run_spec

    models = tmp_path / "models" / "tiny.en"
    models.mkdir(parents=True)
    (models / "model.bin").write_bytes(b"x")
    (models / "config.json").write_text("{}")
    write_tone(tmp_path / "d" / "a.wav")
    s = st.Settings(backend="faster-whisper", model="tiny.en", quant="int8", device="cpu", dataset=str(tmp_path / "d"))
    s = st.apply(s, "power.mode", "10W")
    with pytest.raises(UserError, match="'10W' is not a mode"):
        build_run_spec(s, out=str(tmp_path / "out"), models_dir=tmp_path / "models", engine="local")


# -- apply, read back, observe, restore -----------------------------------------------------------------------


def test_jetson_apply_reads_back_observes_and_restores(board):
    """Mode 3 (7W) and a 408 MHz GPU lock are set, read back without mismatch, settled, observed every 10 ms
    (GPU, CPU, EMC clocks, temperatures, over-current counters), and afterwards mode 0 and its GPU range are
    back, recorded."""
    before = board.gpu_range_hz()
    clock = ManualClock()
    with power.apply_operating_point(PowerSettings(mode=3, gpu_freq_mhz=408, settle_s=1.5), clock=clock,
                                     observe_interval_s=0.01) as window:
        assert board.mode() == 3 and board.gpu_range_hz() == (408000000, 408000000)
        assert window.record.applied["mode_id"] == 3 and window.record.restored is None  # the record so far
        (board.root / "class" / "hwmon" / "hwmon2" / "oc1_event_cnt").write_text("4\n")
        clock.sleep(0.05)
    assert clock.slept_s == [1.5, 0.05] and clock.tickers == 0  # the settle; the observer is stopped
    assert board.mode() == 0 and board.gpu_range_hz() == before
    j = window.record.to_json()
    assert j["controller"] == "jetson" and j["requested"] == {"mode": 3, "gpu_freq_mhz": 408.0}
    assert j["before"]["mode_id"] == 0 and j["applied"]["mode_name"] == "7W" and j["mismatches"] == []
    assert j["applied"]["gpu_min_mhz"] == j["applied"]["gpu_max_mhz"] == 408.0
    assert j["restored"]["mode_id"] == 0 and j["restore_mismatches"] == [] and j["restore_error"] is None
    obs = j["observed"]
    assert obs["n"] == 7 and obs["cpu_mhz"]["median"] == pytest.approx(1497.6) and obs["emc_mhz"]["max"] == 2133.0
    assert obs["temp_c.gpu-thermal"]["min"] == 45.5 and obs["oc_event_deltas"]["soctherm_oc.oc1"] == 4.0
    assert j["facts"]["gpu_devfreq"] == "17000000.gpu" and len(j["facts"]["nvpmodel_conf_sha256"]) == 64
    assert j["facts"]["cpu_online"] == "0-5" and j["facts"]["fan_pwm"] == 90.0


def test_jetson_clocks_is_stored_applied_and_restored(board):
    """jetson_clocks pins the GPU at the mode's ceiling (read back as pinned); its stored clocks come back."""
    before = board.gpu_range_hz()
    with power.apply_operating_point(PowerSettings(jetson_clocks=True, settle_s=0), clock=ManualClock()) as window:
        assert board.gpu_range_hz() == (612000000, 612000000)
    rec = window.record
    assert rec.applied["jetson_clocks"] is True and rec.mismatches == []
    assert board.gpu_range_hz() == before and rec.restored["jetson_clocks"] is False
    calls = board.log.read_text().splitlines()
    order = [c.split()[0] if c == "jetson_clocks" else " ".join(c.split()[:2]) for c in calls if "jetson_clocks" in c]
    assert order == ["jetson_clocks --store", "jetson_clocks", "jetson_clocks --restore"]


def test_devfreq_writes_keep_min_at_or_below_max(board, monkeypatch):
    """Raising the GPU lock above the current ceiling writes max first; lowering writes min first."""
    writes = []
    real = power.jetson._write

    def spy(path, value):
        writes.append((path.name, value))
        real(path, value)

    monkeypatch.setattr(power.jetson, "_write", spy)
    ctl = JetsonController()
    ctl._set_gpu_range(918000000, 918000000)
    ctl._set_gpu_range(306000000, 306000000)
    assert writes == [("max_freq", 918000000), ("min_freq", 918000000), ("min_freq", 306000000),
                      ("max_freq", 306000000)]


def test_a_clamped_request_is_flagged_and_strict_fails_after_restoring(monkeypatch):
    """NVIDIA: a 1980 MHz lock under a power cap that holds the GPU at 1500 MHz is read back as 1500 MHz: the
    mismatch is recorded (and the power-cap reason observed); with power.strict the group fails, and the lock
    is reset before the error propagates."""
    fake = _nvml(monkeypatch, power_cap_mhz=1500)
    gpu = fake.gpus[0]
    with power.apply_operating_point(PowerSettings(gpu_freq_mhz=1980, settle_s=0), clock=ManualClock()) as window:
        assert gpu.locked_gpu_mhz == (1980, 1980)
    rec = window.record
    assert rec.controller == "nvidia" and rec.mismatches == ["power.gpu_freq_mhz: requested 1980 MHz, the GPU runs at 1500 MHz"]
    assert rec.observed["throttle_share"] == {"sw_power_cap": 1.0} and gpu.locked_gpu_mhz is None
    strict = power.apply_operating_point(PowerSettings(gpu_freq_mhz=1980, strict=True, settle_s=0))
    with pytest.raises(UserError, match="power.strict") as err:
        with strict:
            pytest.fail("the body must not run")
    # the record is the window's, returned, not pinned on the exception
    assert gpu.locked_gpu_mhz is None and strict.record.restored is not None and strict.record.mismatches
    assert not hasattr(err.value, "power_record")


def test_a_devfreq_range_below_the_request_is_called_clamped():
    """Jetson read-back: a GPU range under the request is a mismatch that says the power mode clamped it."""
    [m] = mismatches(PowerSettings(gpu_freq_mhz=918), OperatingPoint(gpu_min_mhz=612, gpu_max_mhz=612))
    assert "requested 918 MHz" in m and "clamped by the power mode" in m


def test_nvidia_power_limit_and_memory_clock_are_set_and_restored(monkeypatch):
    """Power limit and memory lock are applied and read back (enforced limit, memory clock); afterwards the
    limit is what it was and the locks are reset. Values outside the GPU's range are refused beforehand."""
    fake = _nvml(monkeypatch)
    gpu = fake.gpus[0]
    with power.apply_operating_point(PowerSettings(gpu_power_limit_w=200, mem_freq_mhz=5001, gpu_freq_mhz=1215,
                                                   settle_s=0), clock=ManualClock()) as window:
        assert gpu.power_limit_mw == 200_000 and gpu.locked_mem_mhz == (5001, 5001)
    rec = window.record
    assert rec.mismatches == [] and rec.applied["gpu_power_limit_w"] == 200.0 and rec.applied["mem_cur_mhz"] == 5001
    assert gpu.power_limit_mw == 300_000 and gpu.locked_mem_mhz is None and gpu.locked_gpu_mhz is None
    assert rec.facts["driver_version"] == "550.54.15" and rec.facts["power_limit_range_w"] == [100.0, 350.0]
    problems = power.problems(PowerSettings(gpu_power_limit_w=500, gpu_freq_mhz=1234, mem_freq_mhz=7000))
    assert any("outside GPU 0's range of 100-350 W" in p for p in problems)
    assert any("1234 MHz is not a supported graphics clock" in p for p in problems)
    assert any("7000 MHz is not a supported memory clock" in p for p in problems)


def test_restore_runs_on_error(board):
    """An exception inside the operating point still restores the mode."""
    with pytest.raises(RuntimeError):
        with power.apply_operating_point(PowerSettings(mode=1, settle_s=0), clock=ManualClock()) as window:
            assert board.mode() == 1
            raise RuntimeError("the container failed")
    assert board.mode() == 0 and window.record.restored["mode_id"] == 0


def test_restore_runs_on_sigterm(board):
    """SIGTERM, turned into KeyboardInterrupt as the CLI does, restores the mode before it propagates."""
    from runner.cli import _sigterm

    old = signal.signal(signal.SIGTERM, _sigterm)
    try:
        with pytest.raises(KeyboardInterrupt) as err:
            with power.apply_operating_point(PowerSettings(mode=3, settle_s=0), clock=ManualClock()) as window:
                assert board.mode() == 3
                os.kill(os.getpid(), signal.SIGTERM)
                pytest.fail("SIGTERM did not interrupt")
        assert isinstance(err.value, Interrupted) and err.value.signal == "SIGTERM"
        assert board.mode() == 0 and window.record.restored["mode_id"] == 0
        assert signal.getsignal(signal.SIGTERM) is _sigterm  # the handler is back after the restore
    finally:
        signal.signal(signal.SIGTERM, old)


def test_a_mode_switch_that_needs_a_reboot_is_refused_with_the_boards_message(board, monkeypatch):
    """nvpmodel asks to reboot for mode 2: we answer no, the mode stays, and the error quotes the board."""
    monkeypatch.setenv("FAKE_NVPMODEL_REBOOT_MODES", "2")
    with pytest.raises(UserError, match=r"needs a reboot \(NVPM WARN: Reboot required"):
        with power.apply_operating_point(PowerSettings(mode=2, settle_s=0)):
            pass
    assert board.mode() == 0


def test_groups_are_ordered_so_that_mode_switches_are_few():
    """Jobs of one mode run together, modes in the order they first appear, the plan's order within."""
    class J:
        def __init__(self, name, mode):
            self.name = name
            self.spec = type("S", (), {"settings": st.apply(st.Settings(), "power.mode", mode) if mode is not None
                                       else st.Settings()})()

    jobs = [J("a", 0), J("b", 3), J("c", 0), J("d", 3), J("e", None)]
    assert [j.name for j in power.order_jobs(jobs)] == ["a", "c", "b", "d", "e"]


# -- the executor's hook --------------------------------------------------------------------------------------


def _engine(check) -> RecordedEngine:
    """The recorded container (tests/recorded_engine.py) that checks, as it starts, that the operating point
    is in force."""
    return RecordedEngine(on_launch=lambda group: check())


def test_execute_group_wraps_the_baseline_and_run_and_records_power_in_every_summary(board, tmp_path):
    """The executor applies spec.settings.power around the group, so the container runs at mode 3; every
    condition's summary.json carries requested / applied / observed / restored; the board is back at mode 0."""
    from helpers import tone_spec

    spec = tone_spec(tmp_path, "sweep", engine="local", power=PowerSettings(mode=3, settle_s=0))
    conds = tuple(plan.PlannedCondition(k, "g", Condition(dataset=str(spec.dataset.path), noise_type="clean",
                                                          snr_db=None, repeat=i), {"type": "clean", "snr_db": None},
                                        "clean", ("a", "b"), result_dir=tmp_path / "conditions" / k)
                  for i, k in enumerate(("kA", "kB")))
    job = plan.GroupJob("g", spec, None, conds, tmp_path / "g")
    seen = []
    result = execute.execute_group(job, list(conds), _engine(lambda: seen.append(board.mode())),
                                   host={}, owner_folder=tmp_path)
    assert seen == [3] and board.mode() == 0
    for k in ("kA", "kB"):
        p = json.loads((tmp_path / "conditions" / k / "summary.json").read_text())["power"]
        assert p["requested"] == {"mode": 3} and p["applied"]["mode_id"] == 3 and p["restored"]["mode_id"] == 0
        assert p["observed"]["n"] >= 1
    assert all(r["status"] == "ok" for r in result.records)


def test_a_refused_operating_point_fails_the_group_with_the_reason_and_the_board_restored(board, tmp_path,
                                                                                      monkeypatch):
    """A mode switch the board refuses (it needs a reboot) ends the group before the container: every
    condition is an error with the board's message, its summary carries the power record, the mode is as it
    was."""
    from helpers import write_tone

    from runner.spec import Settings, TelemetrySettings, build_run_spec

    monkeypatch.setenv("FAKE_NVPMODEL_REBOOT_MODES", "2")
    models = tmp_path / "models" / "tiny.en"
    models.mkdir(parents=True)
    (models / "model.bin").write_bytes(b"x")
    (models / "config.json").write_text("{}")
    write_tone(tmp_path / "d" / "a.wav")
    s = Settings(backend="faster-whisper", model="tiny.en", quant="int8", device="cpu", dataset=str(tmp_path / "d"),
                 telemetry=TelemetrySettings(sampler="none"))
    s = replace(s, power=PowerSettings(mode="MAXN_SUPER", settle_s=0))
    spec = build_run_spec(s, out=str(tmp_path / "sweep"), models_dir=tmp_path / "models", engine="local")
    cond = plan.PlannedCondition("kA", "g", Condition(dataset=str(spec.dataset.path), noise_type="clean", snr_db=None,
                                                      repeat=0), {"type": "clean", "snr_db": None}, "clean", ("a",),
                                 result_dir=tmp_path / "conditions" / "kA")
    job = plan.GroupJob("g", spec, None, (cond,), tmp_path / "g")
    ran = []
    result = execute.execute_group(job, [cond], _engine(lambda: ran.append(1)), host={}, owner_folder=tmp_path)
    assert ran == [] and board.mode() == 0
    [rec] = result.records
    assert rec["status"] == "error" and "needs a reboot" in rec["error"]
    p = json.loads((tmp_path / "conditions" / "kA" / "summary.json").read_text())["power"]
    assert p["requested"] == {"mode": "MAXN_SUPER"} and p["restored"]["mode_id"] == 0


def test_an_interrupted_group_restores_the_mode_and_records_it(board, tmp_path):
    """SIGTERM while the container runs (the CLI's KeyboardInterrupt): the group returns interrupted, the board
    is back in mode 0, and the interrupted condition's summary says what was applied and restored."""
    from helpers import write_tone

    from runner.spec import Settings, TelemetrySettings, build_run_spec

    def interrupting():
        seen.append(board.mode())
        return Interrupted("SIGTERM")

    models = tmp_path / "models" / "tiny.en"
    models.mkdir(parents=True)
    (models / "model.bin").write_bytes(b"x")
    (models / "config.json").write_text("{}")
    write_tone(tmp_path / "d" / "a.wav")
    s = Settings(backend="faster-whisper", model="tiny.en", quant="int8", device="cpu", dataset=str(tmp_path / "d"),
                 telemetry=TelemetrySettings(sampler="none"))
    s = replace(s, power=PowerSettings(mode=1, settle_s=0))
    spec = build_run_spec(s, out=str(tmp_path / "sweep"), models_dir=tmp_path / "models", engine="local")
    cond = plan.PlannedCondition("kA", "g", Condition(dataset=str(spec.dataset.path), noise_type="clean", snr_db=None,
                                                      repeat=0), {"type": "clean", "snr_db": None}, "clean", ("a",),
                                 result_dir=tmp_path / "conditions" / "kA")
    job = plan.GroupJob("g", spec, None, (cond,), tmp_path / "g")
    seen = []
    result = execute.execute_group(job, [cond], RecordedEngine(on_launch=lambda group: interrupting()), host={},
                                   owner_folder=tmp_path)
    assert seen == [1] and board.mode() == 0 and result.interrupted is not None
    # the interruption carries the signal and the power record as fields, the record whole (restored)
    assert result.interrupted.signal == "SIGTERM" and result.interrupted.power is result.power
    assert result.power.applied["mode_id"] == 1 and result.power.restored["mode_id"] == 0
    [rec] = result.records
    assert rec["status"] == "interrupted" and "SIGTERM" in rec["error"]
    p = json.loads((tmp_path / "conditions" / "kA" / "summary.json").read_text())["power"]
    assert p["applied"]["mode_id"] == 1 and p["restored"]["mode_id"] == 0


def test_nothing_requested_on_a_jetson_records_the_mode_found_and_changes_nothing(board):
    """No power setting on a Jetson: the record says the mode and clocks the board was at, and what was
    observed (changed: false); nvpmodel is only queried, never told to switch."""
    with power.apply_operating_point(PowerSettings(), device="cuda", clock=ManualClock()) as window:
        pass
    rec = window.record
    assert rec is not None and rec.changed is False and rec.requested == {}
    assert rec.before["mode_name"] == "15W" and rec.applied == rec.before and rec.restored is None
    assert rec.observed["n"] == 2 and rec.facts["gpu_devfreq"] == "17000000.gpu"
    assert not any(" -m " in line for line in board.log.read_text().splitlines())
    with power.apply_operating_point(PowerSettings()) as nothing:  # no device named: nothing to read for
        assert nothing.record is None
    assert nothing.record is None


def test_execute_group_without_power_writes_no_power_block(tmp_path):
    """A group without an operating point leaves the device alone and its summaries have no power key."""
    calls = []

    def factory(spec):
        calls.append(spec)
        return power.apply_operating_point(spec.settings.power)

    from runner.spec import Settings, TelemetrySettings, build_run_spec
    from helpers import write_tone

    models = tmp_path / "models" / "tiny.en"
    models.mkdir(parents=True)
    (models / "model.bin").write_bytes(b"x")
    (models / "config.json").write_text("{}")
    write_tone(tmp_path / "d" / "a.wav")
    s = Settings(backend="faster-whisper", model="tiny.en", quant="int8", device="cpu", dataset=str(tmp_path / "d"),
                 telemetry=TelemetrySettings(sampler="none"))
    spec = build_run_spec(s, out=str(tmp_path / "sweep"), models_dir=tmp_path / "models", engine="local")
    cond = plan.PlannedCondition("kA", "g", Condition(dataset=str(spec.dataset.path), noise_type="clean", snr_db=None,
                                                      repeat=0), {"type": "clean", "snr_db": None}, "clean", ("a",),
                                 result_dir=tmp_path / "conditions" / "kA")
    job = plan.GroupJob("g", spec, None, (cond,), tmp_path / "g")
    execute.execute_group(job, [cond], _engine(lambda: None), host={}, owner_folder=tmp_path,
                          operating_point=factory)
    assert len(calls) == 1
    assert "power" not in json.loads((tmp_path / "conditions" / "kA" / "summary.json").read_text())


# -- the INA3221 sampler --------------------------------------------------------------------------------------


def test_ina3221_rails_and_the_input_rail_total(board):
    """hwmon rails by label (NC left out), power = mV x mA, the board total is VDD_IN (tegrastats' rule)."""
    (board.hwmon / "in4_label").write_text("NC\n")
    rails = ina.find_rails(board.root)
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    board.set_power(7.5)
    sampler = ina.Ina3221Sampler(root=board.root, interval_ms=20)
    assert sampler.probe().ok
    sampler._open()
    s = sampler._read()
    assert s.total_w == pytest.approx(7.5) and s.total_kind == "input_rail:VDD_IN"
    assert s.power_w["VDD_SOC"] == pytest.approx(2.25) and s.mono_ns is not None


def test_ina3221_iio_layout_of_jetpack_4_and_partial_sum(tmp_path):
    """JetPack 4's iio layout (rail_name_N, in_powerN_input in mW); without an input rail the total is the
    partial sum, labelled as such."""
    dev = tmp_path / "bus" / "i2c" / "devices" / "6-0040" / "iio:device0"
    dev.mkdir(parents=True)
    for n, (name, mw) in enumerate((("GPU", 1000), ("CPU", 2000), ("NC", 5))):
        (dev / f"rail_name_{n}").write_text(name + "\n")
        (dev / f"in_power{n}_input").write_text(f"{mw}\n")
    sampler = ina.Ina3221Sampler(root=tmp_path)
    sampler._open()
    s = sampler._read()
    assert s.total_w == pytest.approx(3.0) and s.total_kind == "partial_sum_of_rails"
    (dev / "rail_name_1").write_text("POM_5V_IN\n")
    sampler._open()
    assert sampler._read().total_kind == "input_rail:POM_5V_IN"


def test_ina3221_without_a_monitor_says_why(tmp_path):
    """No INA3221 anywhere: probe says so (auto goes on to the next sampler)."""
    availability = ina.Ina3221Sampler(root=tmp_path).probe()
    assert not availability.ok and "no INA3221 power monitor" in availability.reason


def test_ina3221_energy_is_within_one_percent_of_a_known_profile(board):
    """A known power profile (5 W for 2 s, 12 W for 3 s, 7 W for 1 s: 53 J) written to the fake rails and read
    every 50 ms by the sampler's own cadence on a clock the test moves integrates to within 1% of its energy."""
    clock = ManualClock()
    sampler = ina.Ina3221Sampler(root=board.root, interval_ms=50, clock=clock)
    profile = [(2.0, 5.0), (3.0, 12.0), (1.0, 7.0)]
    start = clock.monotonic_ns()
    board.set_power(profile[0][1])
    with sampler:
        for seconds, watts in profile:
            board.set_power(watts)
            clock.sleep(seconds)
    assert len(sampler.samples) == 1 + 120 + 1  # start, one per 50 ms of 6 s, stop
    expected = sum(s * w for s, w in profile)
    got = energy.integrate(sampler.samples, start, clock.monotonic_ns(), clock="monotonic")
    assert got.total_j == pytest.approx(expected, rel=0.01) and got.method == "trapezoid"


# -- the experiments ------------------------------------------------------------------------------------------


def test_power_axes_make_one_group_per_operating_point_and_the_experiments_validate(monkeypatch, tmp_path):
    """Both power experiments load; each mode / clock is its own group (its power in the group's settings), and
    planning them is refused once per missing device, nothing started: on a host with a GPU runtime but no
    nvpmodel or NVML, by the power controllers; on this host (no Jetson, no NVIDIA GPU) by the host preflight's
    one sentence about the device."""
    from fake_host import cpu_host, jetson_host

    from runner.experiment import load_experiment

    root = HERE.parents[1]
    modes = load_experiment(str(root / "experiments" / "orin-nano-power-modes.yaml"))
    clocks = load_experiment(str(root / "experiments" / "gpu-frequency-sweep.yaml"))
    assert len(modes.groups) == 16 and len(clocks.groups) == 20
    assert sorted({g.power["mode"] for g in modes.groups}) == ["15W", "25W", "7W", "MAXN_SUPER"]
    assert sorted({g.power["gpu_freq_mhz"] for g in clocks.groups}) == [900, 1200, 1500, 1800, 1980]
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("EDGEASR_SYSFS_ROOT", str(tmp_path / "no-sys"))
    monkeypatch.setenv("EDGEASR_NVPMODEL_CONF", str(tmp_path / "nvpmodel.conf"))
    fake = FAKE_NVML.FakePynvml(init_error=FAKE_NVML.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setattr(power_nvidia, "load_nvml", lambda: fake)
    for exp, needs in ((modes, "power.mode needs a Jetson"), (clocks, "power.gpu_freq_mhz needs an NVIDIA GPU")):
        with pytest.raises(UserError) as err:
            plan.plan_sweep(exp, None, tmp_path / "models", tmp_path / "out", host=jetson_host())
        problems = err.value.problems or [str(err.value).split(": ", 1)[1]]
        assert "nothing was started" in str(err.value) and problems[0].startswith(needs)
        assert len(problems) == len(set(problems)) <= 2
        with pytest.raises(UserError, match=r"device cuda needs an NVIDIA GPU, and this host has none.*nothing was"):
            plan.plan_sweep(exp, None, tmp_path / "models", tmp_path / "out", host=cpu_host())
