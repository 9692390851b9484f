"""The one host preflight (runner/host/preflight.py): what this host can run, checked before anything is built,
installed or started; run, sweep and the fleet's node report ask it (issue 25, item 7b). Fake hosts: fake_host.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_host import RUNC_ONLY, cpu_host, docker_info, gpu_host, jetson_host

from runner import cli, plan
from runner.errors import UserError
from runner.experiment import load_experiment
from runner.host import platforms, preflight
from runner.host.preflight import GpuRuntime, Request, device_problem
from runner.settings import PowerSettings

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "tests" / "fixtures" / "nv_tegra_release" / "r36.4.0"


def _one_sentence(text: str) -> bool:
    return ". " not in text.rstrip(".") and "\n" not in text


def test_cuda_on_a_host_without_an_nvidia_gpu_is_one_sentence_with_the_reason_and_the_fix():
    """No driver node: the device is missing, said in one sentence naming the node and the way out."""
    problem = device_problem("cuda", cpu_host())
    assert problem.startswith("device cuda needs an NVIDIA GPU, and this host has none")
    assert "/dev/nvidiactl" in problem and "--device cpu" in problem and _one_sentence(problem)
    assert device_problem("cpu", cpu_host()) is None
    assert device_problem("cuda", cpu_host(), fix="set device: cpu").count("set device: cpu") == 1


def test_cuda_needs_a_gpu_runtime_in_the_engine_besides_the_driver():
    """A driver but only runc in the engine: the toolkit is missing (its fix named); the toolkit's hook, the nvidia
    runtime or a CDI spec serve a GPU request on x86; a Jetson needs its nvidia runtime by name."""
    problem = device_problem("cuda", gpu_host(runtime=RUNC_ONLY))
    assert "GPU runtime in the Docker Engine" in problem and "runtimes io.containerd.runc.v2, runc" in problem
    assert "nvidia-ctk runtime configure" in problem and _one_sentence(problem)
    assert device_problem("cuda", gpu_host()) is None
    assert device_problem("cuda", gpu_host(runtime=GpuRuntime(runtimes=("runc",), hook="/usr/bin/h"))) is None
    assert device_problem("cuda", gpu_host(runtime=GpuRuntime(runtimes=("runc",), cdi_specs=("/etc/cdi/n.yaml",)))) \
        is None
    assert device_problem("cuda", gpu_host(engine_name="local", runtime=None)) is None  # no container: no runtime
    assert device_problem("cuda", jetson_host()) is None
    jetson = device_problem("cuda", jetson_host(runtime=GpuRuntime(runtimes=("runc",), hook="/usr/bin/h")))
    assert "its nvidia runtime" in jetson
    assert gpu_host().kind == "cuda" and cpu_host().kind == "cpu" and jetson_host().kind == "jetson"
    assert gpu_host(runtime=RUNC_ONLY).kind == "cpu"  # a node whose engine cannot hand out its GPU runs no CUDA


def test_the_gpu_runtime_is_read_from_docker_info_and_the_cdi_specs(tmp_path):
    """Runtimes and the default come from `docker info`; CDI specs are the files that declare nvidia.com/gpu in
    the engine's CDI folders; the hook is looked up on PATH."""
    (tmp_path / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n")
    (tmp_path / "other.yaml").write_text("kind: vendor.com/fpga\n")
    rt = preflight.gpu_runtime(docker_info("nvidia", cdi_dirs=[str(tmp_path)]), which=lambda _name: None)
    assert rt.nvidia_runtime and rt.runtimes == ("nvidia", "runc") and rt.default_runtime == "runc"
    assert rt.cdi_specs == (str(tmp_path / "nvidia.yaml"),) and rt.hook is None
    assert "runtimes nvidia, runc (default runc)" in rt.describe()


def test_probe_reads_the_platform_driver_and_engine_without_raising(tmp_path, monkeypatch):
    """The probe says how the platform was told (the release file's line), whether the driver node exists, and
    the engine's version and runtimes from the info it is given."""
    monkeypatch.setattr(platforms, "TEGRA_RELEASE", RELEASE)
    monkeypatch.setattr(platforms, "NVIDIA_CTL", tmp_path / "nvidiactl")
    caps = preflight.probe("docker", docker_info("nvidia", default="nvidia"))
    assert caps.platform == "jetson-r36" and "R36" in caps.platform_how and caps.jetson
    assert caps.engine == "20.10.24" and caps.runtime.nvidia_runtime and caps.kind == "jetson"
    monkeypatch.setattr(platforms, "TEGRA_RELEASE", tmp_path / "absent")
    caps = preflight.probe("docker", docker_info())
    assert (caps.platform, caps.jetson, caps.nvidia_driver) == ("x86", False, False)
    assert "not a Jetson" in caps.platform_how and caps.to_json()["kind"] == "cpu"
    (tmp_path / "nvidiactl").touch()
    assert preflight.probe("local").nvidia_driver and preflight.probe("local").runtime is None


def test_a_sweep_of_many_cuda_groups_says_the_missing_gpu_once_and_not_its_clocks():
    """Twenty CUDA groups with locked clocks on a host without a GPU: one sentence, the device's; the clocks are
    not asked about (a missing device is what matters)."""
    clocks = [Request("cuda", PowerSettings(gpu_freq_mhz=f)) for f in (900, 1200, 1500, 1800, 1980)] * 4
    found = preflight.problems(clocks, cpu_host())
    assert len(found) == 1 and found[0].startswith("device cuda needs an NVIDIA GPU")
    with pytest.raises(UserError) as err:
        preflight.refuse(clocks, cpu_host(), "x.yaml")
    assert str(err.value).startswith("x.yaml: device cuda needs") and str(err.value).endswith("nothing was started")
    assert preflight.problems([Request("cpu")], cpu_host()) == []


def test_sweep_refuses_a_cuda_experiment_before_building_or_installing_anything(monkeypatch, capsys):
    """Regression (issue 25, 7b): `edgeasr sweep experiments/gpu-frequency-sweep.yaml` on a host without a GPU
    first built the CUDA image and printed nine lines about the build; now one sentence, nothing started."""
    from runner.images import prepare as prepare_mod

    monkeypatch.setattr(preflight, "probe", lambda *a, **k: cpu_host())
    monkeypatch.setattr(prepare_mod, "prepare", lambda *a, **k: pytest.fail("prepare ran"))
    monkeypatch.setattr(plan, "plan_sweep", lambda *a, **k: pytest.fail("the plan ran"))
    assert cli.main(["sweep", str(ROOT / "experiments" / "gpu-frequency-sweep.yaml"), "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeasr: gpu-frequency-sweep.yaml: device cuda needs an NVIDIA GPU, and this host has none")
    assert "set device: cpu in the experiment" in err and len(err.splitlines()) == 1


def test_run_on_cuda_is_refused_before_any_engine_is_asked_for_an_image(monkeypatch, capsys, tmp_path):
    """Regression (issue 25, 7b): `edgeasr run --device cuda` said to build the CUDA image with `make images`;
    now the run refuses at once with the reason."""
    from runner import run as run_mod  # the run's orchestration (issue 21, item 1): where its engine is made

    monkeypatch.setattr(preflight, "probe", lambda *a, **k: cpu_host())
    monkeypatch.setattr(run_mod, "make_engine", lambda *a, **k: pytest.fail("an engine was made"))
    assert cli.main(["run", "--device", "cuda", "--data", str(ROOT / "data" / "default"),
                     "--models-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edgeasr: ") and "device cuda needs an NVIDIA GPU" in err and "make images" not in err
    assert not (tmp_path / "o").exists()


def test_a_gpu_host_plans_the_cuda_sweep_up_to_its_operating_points(monkeypatch, tmp_path):
    """With a GPU and a runtime, the device passes and the clocks are checked by the power controllers (here NVML
    is absent, so each clock's request says so once)."""
    import runner.power.nvidia as power_nvidia

    monkeypatch.setattr(power_nvidia, "load_nvml", lambda: (_ for _ in ()).throw(ImportError("no pynvml")))
    exp = load_experiment(str(ROOT / "experiments" / "gpu-frequency-sweep.yaml"))
    with pytest.raises(UserError) as err:
        plan.check_host(exp, "docker", gpu_host())
    assert "power.gpu_freq_mhz needs an NVIDIA GPU with its driver (NVML)" in str(err.value)
    assert plan.check_host(load_experiment(str(ROOT / "experiments" / "smoke.yaml")), "docker", cpu_host()) \
        == cpu_host()


def test_the_fleet_node_report_and_plan_check_use_the_host_preflight(monkeypatch):
    """A node's kind and its CUDA sentence come from the host preflight (a driver without a runtime is no CUDA
    node), and the driver's check shows the node's own sentence."""
    import sys
    from types import SimpleNamespace

    from runner.fleet import node

    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(
        get_runtime_context=lambda: SimpleNamespace(get_node_id=lambda: "n1")))
    facts = node.node_facts(gpu_host(runtime=RUNC_ONLY))
    assert facts["kind"] == "cpu" and facts["platform"] == "x86"
    assert node.node_facts(jetson_host())["kind"] == "jetson"
    assert preflight.sampler_probes()["none"] is not None  # every row of the table answers, never raises
