"""Run specs are validated before any container starts, with every problem named at once."""

import pytest
from helpers import write_tone

from runner.errors import UserError
from runner.spec import DecodeSettings, Settings, build_run_spec


def _models(tmp_path):
    d = tmp_path / "models" / "tiny.en"
    d.mkdir(parents=True)
    (d / "model.bin").write_bytes(b"x")
    (d / "config.json").write_text("{}")
    return tmp_path / "models"


def test_all_problems_reported_together(tmp_path):
    with pytest.raises(UserError) as exc:
        build_run_spec(Settings(backend="nemo", model="nope", quant="int8", dataset=str(tmp_path / "x"),
                                decode=DecodeSettings(beam_size=0)), out=str(tmp_path / "o"), models_dir=tmp_path)
    text = str(exc.value)
    assert text.startswith("4 problems")
    for fragment in ("--backend 'nemo' is unknown", "--model: unknown model 'nope'",
                     "--data: data path", "--beam-size must be at least 1"):
        assert fragment in text


def test_fp16_on_cpu_refused(tmp_path, root):
    with pytest.raises(UserError, match="quant 'fp16' cannot run with ctranslate2 on cpu; cpu supports: fp32, int8"):
        build_run_spec(Settings(model="tiny.en", quant="fp16", dataset=str(root / "data" / "default")),
                       out=str(tmp_path / "o"), models_dir=_models(tmp_path))


def test_packaged_model_not_installed_says_make_models(tmp_path, root):
    with pytest.raises(UserError, match="not installed.*edgeasr models install"):
        build_run_spec(Settings(model="base", quant="int8", dataset=str(root / "data" / "default")),
                       out=str(tmp_path / "o"), models_dir=tmp_path)


def test_a_hub_name_resolves_to_a_host_download_and_the_container_network_is_a_flag_of_its_own(tmp_path, root):
    """Issue 25, item 8: a hub name that is not installed resolves to a download on the host (no flag), and the
    container stays without network; --container-network (allow_download) alone gives it one, with the hub cache
    mounted for what its library downloads itself."""
    medium = Settings(model="medium", quant="int8", dataset=str(root / "data" / "default"))
    spec = build_run_spec(medium, out=str(tmp_path / "o"), models_dir=tmp_path)
    assert spec.model.source == "hub" and spec.model.container_path == "medium" and spec.model.host_dir is None
    assert not spec.hardening.network and spec.hub_cache_dir is None and not spec.allow_download
    networked = build_run_spec(medium, out=str(tmp_path / "o2"), models_dir=tmp_path, allow_download=True)
    assert networked.hardening.network and networked.hub_cache_dir == (tmp_path / "hub-cache").resolve()


def test_resolved_spec(tmp_path, root):
    write_tone(tmp_path / "d" / "a.wav")
    spec = build_run_spec(Settings(model="tiny.en", quant="int8", dataset=str(tmp_path / "d")),
                          out=str(tmp_path / "o"), models_dir=_models(tmp_path))
    assert spec.backend_quant == "int8" and spec.decode.threads >= 1 and spec.decode.temperature == 0.0
    assert spec.model.container_path == "/models/tiny.en"


def test_existing_run_folder_is_not_overwritten(tmp_path, root):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="already holds a run"):
        build_run_spec(Settings(model="tiny.en", quant="int8", dataset=str(root / "data" / "default")),
                       out=str(tmp_path / "o"), models_dir=_models(tmp_path))


def test_cuda_run_gets_its_gpus_by_id_never_all(monkeypatch):
    """NVML measures exactly the GPUs the container gets: named ones, else CUDA_VISIBLE_DEVICES, else GPU 0."""
    from runner.spec import resolve_gpus

    assert resolve_gpus("0,GPU-abc", "cuda", env={}, jetson=False) == ("0", "GPU-abc")
    assert resolve_gpus(None, "cuda", env={"CUDA_VISIBLE_DEVICES": "MIG-xyz"}, jetson=False) == ("MIG-xyz",)
    assert resolve_gpus(None, "cuda", env={}, jetson=False) == ("0",)
    assert resolve_gpus("0", "cuda", env={}, jetson=True) is None  # one iGPU, served by the nvidia runtime
    assert resolve_gpus(None, "cpu", env={}) is None


def test_docker_engine_requests_the_runs_gpus_by_id(tmp_path):
    from runner.launch import docker_engine

    created = {}

    class Container:
        id = "cafe"
        attrs = {"State": {}}

        def start(self): pass
        def attach(self, **kw): return iter(())
        def wait(self): return {"StatusCode": 0}
        def reload(self): pass
        def remove(self, force): pass

    class Containers:
        def create(self, **kw):
            created.update(kw)
            return Container()

    class Client:
        containers = Containers()

    started = []
    run = docker_engine.run_container(Client(), "img", mounts=[], env={}, log_path=tmp_path / "log", device="cuda",
                                      gpus=("1", "GPU-abc"), on_started=started.append)
    (request,) = created["device_requests"]
    assert request["DeviceIDs"] == ["1", "GPU-abc"] and request["Count"] in (None, 0)
    assert started == ["cafe"] and run.container_id == "cafe"


def test_gpus_on_a_cpu_run_is_refused(tmp_path, root):
    with pytest.raises(UserError, match="--gpus '1' applies to CUDA runs; this run is on cpu"):
        build_run_spec(Settings(model="tiny.en", quant="int8", gpus="1", dataset=str(root / "data" / "default")),
                       out=str(tmp_path / "o"), models_dir=_models(tmp_path))
