"""NvmlSampler against a FAKE pynvml (tests/unit/telemetry/fake_pynvml.py)."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys

import pytest
from fake_clock import ManualClock

from runner.errors import UserError
from runner.telemetry.energy.integrate import integrate
from runner.telemetry.samplers.nvml import NvmlSampler


@pytest.fixture(autouse=True)
def _no_cuda_visible_devices(monkeypatch):
    """The sampler honours CUDA_VISIBLE_DEVICES: a GPU CI host's own value must not pick the fake's GPUs."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_import_does_not_import_pynvml():
    code = "import sys, runner.telemetry.samplers.nvml; print('pynvml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_constructor_touches_nothing(fake_pynvml):
    fake = fake_pynvml.FakePynvml()
    NvmlSampler(nvml=fake)
    assert fake.calls == []


def test_probe_ok_and_leaves_nvml_shut_down(fake_pynvml):
    fake = fake_pynvml.FakePynvml()
    availability = NvmlSampler(nvml=fake).probe()
    assert availability.ok and availability.reason is None
    assert fake.refcount == 0, "probe must not leave NVML initialised"


@pytest.mark.parametrize(
    "code,words",
    [
        (12, "libnvidia-ml.so.1 not found"),
        (9, "not loaded"),
        (4, "permission"),
    ],
)
def test_probe_explains_init_failures(fake_pynvml, code, words):
    availability = NvmlSampler(nvml=fake_pynvml.FakePynvml(init_error=code)).probe()
    assert not availability.ok
    assert words in availability.reason


def test_probe_without_gpus(fake_pynvml):
    availability = NvmlSampler(nvml=fake_pynvml.FakePynvml(gpus=[])).probe()
    assert not availability.ok and "no NVIDIA GPU" in availability.reason


def test_start_raises_user_error_with_reason(fake_pynvml):
    with pytest.raises(UserError, match="not found"):
        NvmlSampler(nvml=fake_pynvml.FakePynvml(init_error=12)).start()


def test_counter_energy_matches_exact_integral(fake_pynvml):
    clock = ManualClock()
    gpus = [fake_pynvml.FakeGpu(power_mw=120_000), fake_pynvml.FakeGpu(power_mw=30_000)]
    fake = fake_pynvml.FakePynvml(gpus=gpus, clock=clock)
    sampler = NvmlSampler(interval_ms=10, nvml=fake, clock=clock)
    with sampler:
        start_ns = clock.time_ns()
        clock.sleep(0.25)
        end_ns = clock.time_ns()
    assert fake.refcount == 0, "stop must shut NVML down"
    assert len(sampler.samples) == 1 + 25 + 1, "a reading at start, one per 10 ms, one at stop"
    window = integrate(sampler.samples, start_ns, end_ns)
    exact_j = 150.0 * (end_ns - start_ns) / 1e9
    assert window.method == "counter"
    assert window.total_j == pytest.approx(exact_j, rel=0.01)
    assert window.per_channel_j["gpu0"] == pytest.approx(120.0 * (end_ns - start_ns) / 1e9, rel=0.01)
    sample = sampler.samples[-1]
    assert sample.total_w == pytest.approx(150.0)
    assert sample.total_kind == "nvml:sum_of_gpus"
    assert sample.mem_used_mib == pytest.approx(2 * 2048)
    gpu0 = sample.extras["gpus"]["gpu0"]
    assert gpu0 == {"name": "NVIDIA Fake GPU", "uuid": gpus[0].uuid, "util_pct": 50, "mem_used_mib": 2048.0,
                    "sm_clock_mhz": 1410, "temp_c": 60}
    assert [(p["gpu"], p["pid"], p["used_mib"]) for p in sample.extras["processes"]] == [
        ("gpu0", 4242, 900.0), ("gpu1", 4242, 900.0)]


def test_process_memory_unavailable_is_none_with_reason(fake_pynvml):
    """NotSupported, or usedGpuMemory unknown (None, as inside some containers): None, never 0."""
    gpus = [fake_pynvml.FakeGpu(processes=None), fake_pynvml.FakeGpu(processes=[fake_pynvml.ProcessInfo(7, None)])]
    clock = ManualClock()
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=gpus, clock=clock), clock=clock)
    with sampler:
        clock.sleep(0.05)
    sample = sampler.samples[-1]
    (proc,) = sample.extras["processes"]
    assert (proc["gpu"], proc["pid"], proc["used_mib"]) == ("gpu1", 7, None) and {"cgroup", "sid"} <= set(proc)
    assert "gpu0.processes" in sampler.unavailable
    assert sampler.gpus[0]["energy_source"] == "total_energy_counter"


def test_power_usage_fallback_without_energy_counter(fake_pynvml):
    """Pre-Volta GPUs answer NotSupported for the energy counter: poll power."""
    clock = ManualClock()
    fake = fake_pynvml.FakePynvml(gpus=[fake_pynvml.FakeGpu(power_mw=80_000, energy_counter=False)], clock=clock)
    sampler = NvmlSampler(interval_ms=10, nvml=fake, clock=clock)
    with sampler:
        start_ns = clock.time_ns()
        clock.sleep(0.2)
        end_ns = clock.time_ns()
    assert all(s.total_energy_j is None for s in sampler.samples)
    assert "not supported" in sampler.unavailable["gpu0.energy_counter"]
    assert sampler.gpus[0]["energy_source"] == "power_usage"
    window = integrate(sampler.samples, start_ns, end_ns)
    assert window.method == "trapezoid"
    assert window.total_j == pytest.approx(80.0 * (end_ns - start_ns) / 1e9, rel=0.001)


def test_counter_only_gpu_derives_power(fake_pynvml):
    """Without a power query, power is the counter's difference over the interval: 50 W in each of the eight
    50 ms intervals (mJ over ns: a unit error would be off by 1000), none for the first reading (it needs
    two) nor for the stop's reading, taken at the same instant as the last tick (no interval)."""
    clock = ManualClock()
    fake = fake_pynvml.FakePynvml(gpus=[fake_pynvml.FakeGpu(power_mw=50_000, power_usage=False)], clock=clock)
    sampler = NvmlSampler(interval_ms=50, nvml=fake, clock=clock)
    with sampler:
        clock.sleep(0.4)
    later = [s.power_w["gpu0"] for s in sampler.samples if "gpu0" in s.power_w]
    assert len(sampler.samples) == 10 and len(later) == 8
    assert later == pytest.approx([50.0] * 8, rel=1e-3)


def test_unsupported_queries_are_none_with_reason_never_zero(fake_pynvml):
    gpu = fake_pynvml.FakeGpu(util_pct=None, sm_clock_mhz=None, temp_c=None, mem_used_bytes=None)
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=[gpu]))
    with sampler:
        pass
    reading = sampler.samples[-1].extras["gpus"]["gpu0"]
    assert reading["util_pct"] is None and reading["sm_clock_mhz"] is None
    assert reading["temp_c"] is None and reading["mem_used_mib"] is None
    assert sampler.samples[-1].mem_used_mib is None
    for key in ("gpu0.utilization", "gpu0.sm_clock", "gpu0.temperature", "gpu0.memory"):
        assert "NotSupported" in sampler.unavailable[key]


def test_no_energy_at_all_is_reported(fake_pynvml):
    gpu = fake_pynvml.FakeGpu(energy_counter=False, power_usage=False)
    clock = ManualClock()
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=[gpu], clock=clock), clock=clock)
    with sampler:
        clock.sleep(0.05)
    assert "neither" in sampler.unavailable["gpu0.energy"]
    assert all(s.total_w is None for s in sampler.samples)
    window = integrate(sampler.samples, sampler.samples[0].t_ns, sampler.samples[-1].t_ns)
    assert window.total_j is None and "no power reading" in window.reason


def test_start_stop_idempotent_and_single_use(fake_pynvml):
    fake = fake_pynvml.FakePynvml()
    sampler = NvmlSampler(interval_ms=10, nvml=fake)
    sampler.start()
    sampler.start()
    assert fake.refcount == 1
    sampler.stop()
    sampler.stop()
    assert fake.refcount == 0
    with pytest.raises(RuntimeError):
        sampler.start()


def test_fake_matches_real_pynvml_signatures_and_codes(fake_pynvml):
    """Keep the fake honest: same names, parameters and error codes as the
    real nvidia-ml-py, when it is installed."""
    if importlib.util.find_spec("pynvml") is None:
        pytest.skip("nvidia-ml-py is not installed")
    import pynvml

    fake = fake_pynvml.FakePynvml()
    for name in fake_pynvml.IMITATED_FUNCTIONS:
        real_params = list(inspect.signature(getattr(pynvml, name)).parameters)
        fake_params = list(inspect.signature(getattr(fake, name)).parameters)
        assert fake_params == real_params, name
    for name in ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_LIBRARY_NOT_FOUND", "NVML_ERROR_DRIVER_NOT_LOADED",
                 "NVML_ERROR_NO_PERMISSION", "NVML_ERROR_UNINITIALIZED", "NVML_CLOCK_SM", "NVML_TEMPERATURE_GPU"):
        assert getattr(fake_pynvml, name) == getattr(pynvml, name), name
    for cls in ("NVMLError_NotSupported", "NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded",
                "NVMLError_NoPermission", "NVMLError_Uninitialized", "NVMLError_GpuIsLost"):
        assert getattr(fake_pynvml, cls)().value == getattr(pynvml, cls)().value, cls
    assert isinstance(fake_pynvml.NVMLError(3), fake_pynvml.NVMLError_NotSupported)


def test_real_pynvml_probe_gives_a_reason_here():
    """On a host without an NVIDIA driver the real module explains itself."""
    if importlib.util.find_spec("pynvml") is None:
        pytest.skip("nvidia-ml-py is not installed")
    availability = NvmlSampler().probe()
    if availability.ok:
        pytest.skip("this host has a working NVIDIA GPU")
    assert availability.reason


def _window_w(sampler):
    s = sampler.samples
    w = integrate(s, s[0].t_ns, s[-1].t_ns)
    return w.total_j / w.duration_s


def test_nvml_samples_only_the_runs_gpu_by_uuid(fake_pynvml):
    """A run on one GPU of two: only that GPU's energy, chosen by UUID (the other's 120 W are someone else's)."""
    clock = ManualClock()
    gpus = [fake_pynvml.FakeGpu(power_mw=120_000), fake_pynvml.FakeGpu(power_mw=30_000)]
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=gpus, clock=clock), devices=[gpus[1].uuid],
                          clock=clock)
    with sampler:
        clock.sleep(0.1)
    assert _window_w(sampler) == pytest.approx(30.0, rel=0.02)
    assert set(sampler.samples[-1].power_w) == {"gpu1"}
    assert [(g["index"], g["uuid"]) for g in sampler.gpus] == [(1, gpus[1].uuid)]


def test_cuda_visible_devices_selects_the_gpus(fake_pynvml, monkeypatch):
    gpus = [fake_pynvml.FakeGpu(power_mw=120_000), fake_pynvml.FakeGpu(power_mw=30_000)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    clock = ManualClock()
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=gpus, clock=clock), clock=clock)
    with sampler:
        clock.sleep(0.05)
    assert [g["index"] for g in sampler.gpus] == [0]
    assert set(sampler.samples[-1].power_w) == {"gpu0"}


def test_unknown_gpu_is_refused_with_a_reason(fake_pynvml):
    availability = NvmlSampler(nvml=fake_pynvml.FakePynvml(), devices=["GPU-nope"]).probe()
    assert not availability.ok and "GPU-nope" in availability.reason and "nvidia-smi -L" in availability.reason


def test_mig_slice_reports_its_parent_gpu_labelled(fake_pynvml):
    """A MIG slice has no power counter: the parent GPU's energy is reported, labelled as the parent's."""
    mig = fake_pynvml.FakeMig()
    gpus = [fake_pynvml.FakeGpu(power_mw=50_000), fake_pynvml.FakeGpu(power_mw=200_000, migs=[mig])]
    clock = ManualClock()
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=gpus, clock=clock), devices=[mig.uuid],
                          clock=clock)
    with sampler:
        clock.sleep(0.1)
    assert _window_w(sampler) == pytest.approx(200.0, rel=0.02)
    (gpu,) = sampler.gpus
    assert gpu["index"] == 1 and gpu["mig_uuid"] == mig.uuid and "parent GPU" in gpu["energy_scope"]
    assert sampler.samples[-1].total_kind == "nvml:mig_parent_gpu"
    assert sampler.samples[-1].mem_used_mib == pytest.approx(1024.0)  # the slice's own memory


def test_nvml_power_is_the_instant_field_not_the_one_second_average(fake_pynvml):
    """Ampere+: nvmlDeviceGetPowerUsage is a 1 s average; the instant field is read where the driver has it."""
    gpu = fake_pynvml.FakeGpu(power_mw=200_000, power_avg_mw=120_000, power_instant_field=True)
    clock = ManualClock()
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=[gpu], clock=clock), clock=clock)
    with sampler:
        clock.sleep(0.03)
    assert sampler.samples[-1].power_w["gpu0"] == pytest.approx(200.0)
    assert "NVML_FI_DEV_POWER_INSTANT" in sampler.gpus[0]["power_source"]


def test_averaged_power_fallback_is_labelled_and_energy_stays_on_the_counter(fake_pynvml):
    gpu = fake_pynvml.FakeGpu(power_mw=200_000, power_avg_mw=120_000, power_instant_field=False)
    clock = ManualClock()
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=[gpu], clock=clock), clock=clock)
    with sampler:
        clock.sleep(0.1)
    assert sampler.samples[-1].power_w["gpu0"] == pytest.approx(120.0)
    assert "1 s moving average" in sampler.gpus[0]["power_source"]
    assert _window_w(sampler) == pytest.approx(200.0, rel=0.02)  # the counter, not the averaged power


def test_nvml_health_names_the_chosen_gpus_and_unavailable_queries(fake_pynvml):
    gpu = fake_pynvml.FakeGpu(temp_c=None)
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=[gpu]), devices=[gpu.uuid])
    with sampler:
        pass
    health = sampler.health()
    assert health["gpus"][0]["uuid"] == gpu.uuid and health["gpus"][0]["requested"] == gpu.uuid
    assert "NotSupported" in health["unavailable"]["gpu0.temperature"] and health["polling_errors"] == []


def test_two_mig_slices_of_one_gpu_keep_both_slices_memory_and_processes(fake_pynvml):
    """Regression (issue 22, item 8): with two MIG slices of one GPU, only the first slice's memory handle was kept
    (1024 against 4096 MiB), and processes on the second slice were missed. The GPU's energy is counted once; the
    memory is both slices', and each slice's processes are listed."""
    first = fake_pynvml.FakeMig(mem_used_bytes=1024**3, processes=[fake_pynvml.ProcessInfo(11, 512 * 1024**2)])
    second = fake_pynvml.FakeMig(mem_used_bytes=3 * 1024**3, processes=[fake_pynvml.ProcessInfo(12, 2048 * 1024**2)])
    gpu = fake_pynvml.FakeGpu(power_mw=200_000, migs=[first, second])
    clock = ManualClock()
    sampler = NvmlSampler(interval_ms=10, nvml=fake_pynvml.FakePynvml(gpus=[gpu], clock=clock),
                          devices=[first.uuid, second.uuid], clock=clock)
    with sampler:
        clock.sleep(0.1)
    (chosen,) = sampler.gpus  # one GPU: its energy once
    assert chosen["mig_uuids"] == [first.uuid, second.uuid] and second.uuid in chosen["energy_scope"]
    last = sampler.samples[-1]
    assert last.mem_used_mib == pytest.approx(4096.0)
    assert sorted(p["pid"] for p in last.extras["processes"]) == [11, 12]
    assert _window_w(sampler) == pytest.approx(200.0, rel=0.02)


def test_a_failed_nvml_query_makes_health_not_ok_and_names_the_window(fake_pynvml):
    """Regression (issue 22, item 11): a query NVML failed while sampling left ``health.ok: true`` and named no
    window. The reading it belonged to says so, health is not ok, and the accounting names the windows it touched."""
    from runner.telemetry.energy import accounting

    gpu = fake_pynvml.FakeGpu(power_mw=100_000)
    clock = ManualClock()
    fake = fake_pynvml.FakePynvml(gpus=[gpu], clock=clock)
    sampler = NvmlSampler(interval_ms=10_000, nvml=fake, clock=clock)
    sampler.start()
    marks = []
    for i in range(6):
        clock.advance(0.01)
        if i == 3:
            gpu.mem_used_bytes = None  # this reading's memory query fails...
            real = fake.nvmlDeviceGetMemoryInfo
            fake.nvmlDeviceGetMemoryInfo = lambda h, v=None: (_ for _ in ()).throw(fake_pynvml.NVMLError(15))
        sample = sampler.sample_now()
        if i == 3:
            fake.nvmlDeviceGetMemoryInfo = real  # ...and the next ones work again
            gpu.mem_used_bytes = 2 * 1024**3
        marks.append(sample)
    sampler.stop()
    health = sampler.health()
    assert health["ok"] is False and health["n_query_failures"] == 1
    assert "gpu0.memory" in marks[3].extras["failed_queries"][0]
    ev = [{"event": n, "t_ns": s.t_ns, "mono_ns": s.mono_ns} for n, s in
          (("container_start", marks[0]), ("load_start", marks[0]), ("load_end", marks[1]),
           ("inference_start", marks[2]), ("inference_end", marks[4]), ("container_end", marks[5]))]
    block = accounting.energy_block("nvml", sampler.samples, ev, accounting.Baseline(None, "unavailable",
                                                                                    reason="skipped"), 4.0, 2, 10_000)
    named = accounting.health_of_windows({"sampler": "nvml", "ok": True}, block)
    assert named["ok"] is False and "inference" in named["windows_affected"] and "load" not in named["windows_affected"]
    assert "gpu0.memory" in named["windows_affected"]["inference"][0]
