"""One run's settings, resolved and validated before any container starts.

Every problem is collected and reported at once (one UserError listing them),
so a person fixes a command line in one go rather than one error per try.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .data import Dataset, load_dataset
from .errors import UserError
from .launch.backends import BACKENDS, Backend, unavailable_reason
from .launch.hardening import Hardening, container_groups, container_ids, host_memory_bytes
from .models import ResolvedModel, resolve_model
from .paths import mount_problem, readable_by
from .platforms import has_nvidia_driver, is_jetson
from .quant import DEVICES, quant_problem, resolve_quant
from .telemetry.select import CHOICES as SAMPLER_CHOICES


@dataclass(frozen=True)
class DecodeSettings:
    """Decoding options passed to the backend; temperature 0 keeps decoding deterministic."""

    beam_size: int = 5
    temperature: float = 0.0
    language: str | None = None
    threads: int = 0  # 0: the backend's default
    batch_size: int = 1
    align: bool = False  # word alignment (whisperx only; its model needs a download)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TelemetrySettings:
    """Which power sampler, how often, and how the idle baseline is obtained."""

    sampler: str = "auto"  # auto | tegrastats | jtop | nvml | rapl | none
    interval_ms: int = 100
    baseline_s: float = 5.0  # idle seconds measured before the run
    baseline_w: float | None = None  # given instead of measured
    loaded_idle_s: float = 2.0  # container up, model loaded, idle: the loaded model's idle power (0: skip)
    cooldown_max_s: float = 30.0  # sweeps: the longest wait for power to settle before the next baseline
    cooldown_tolerance: float = 0.1  # ... back within this share of the previous baseline

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


ENGINES = ("docker", "local")


@dataclass(frozen=True)
class RunSpec:
    backend: Backend
    image: str
    model: ResolvedModel
    quant: str
    backend_quant: str
    device: str
    dataset: Dataset
    out: Path
    decode: DecodeSettings
    warmup: int
    timeout_s: float | None
    allow_download: bool
    mem_limit: str | None
    telemetry: TelemetrySettings = TelemetrySettings()
    engine: str = "docker"
    hardening: Hardening = Hardening()
    hub_cache_dir: Path | None = None  # with --allow-download: the host folder the backend downloads into
    #: The GPUs the run uses (NVML indices or UUIDs), given to the engine as device ids and to NVML;
    #: None: not a CUDA run, or a Jetson (one integrated GPU, served by its runtime).
    gpus: tuple[str, ...] | None = None

    @property
    def mem_limit_text(self) -> str | None:
        """The container's memory limit as a person reads it: the value given, or the default, said so."""
        if self.engine != "docker":
            return self.mem_limit
        limit = self.hardening.engine_kwargs().get("mem_limit")
        return self.mem_limit or (f"{limit / 2**30:.1f}g, the default" if limit else None)


MIN_MEM_LIMIT_BYTES = 6 * 1024 * 1024  # the Docker Engine refuses less


def parse_mem_limit(value: str) -> int:
    """'4g', '512m', '1.5G', '2000000' -> bytes; a UserError for anything else."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", value.lower())
    if not m:
        raise UserError(f"--mem-limit {value!r} is not a size; use a number with k, m or g, e.g. 4g or 512m")
    n = float(m.group(1)) * 1024 ** "_kmgt".index(m.group(2) or "_")
    if n < MIN_MEM_LIMIT_BYTES:
        raise UserError(f"--mem-limit {value!r} is below the engine's minimum of 6m")
    total = host_memory_bytes()
    if total and n > total:
        raise UserError(f"--mem-limit {value!r} is more than this host's memory ({total / 2**30:.1f} GiB)")
    return int(n)


def out_problem(out: Path, option: str = "--out") -> str | None:
    """Why the run folder cannot be written, found before any container starts."""
    if out.exists() and not out.is_dir():
        return f"{option} {out} is a file, not a folder"
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"{option} {out}: {probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{option} {out} is not writable ({probe} does not let this user create files)"
    problem = mount_problem(out / "raw", option)
    if problem:
        return f"{problem}; the output folder is mounted into the backend container"
    return None


def model_problem(model: ResolvedModel) -> str | None:
    """A model folder the container could not, or must not, see."""
    if model.host_dir is None:
        return None
    problem = mount_problem(model.host_dir, "--model")
    if problem:
        return f"{problem}; a backend container may not see it"
    uid, gid = container_ids()
    unreadable = [p for p in (model.host_dir, *model.host_dir.iterdir()) if not readable_by(p, uid, (gid, *container_groups()))]
    if unreadable:
        return (f"--model: {unreadable[0]} is not readable by the container's user (uid {uid}); "
                f"make the folder readable: chmod -R a+rX {model.host_dir}")
    return None


def resolve_gpus(gpus: str | None, device: str, env: dict[str, str] | None = None,
                 jetson: bool | None = None) -> tuple[str, ...] | None:
    """``--gpus 0,GPU-...``; else the host's CUDA_VISIBLE_DEVICES; else GPU 0, the one a backend uses by default.

    Never "all": energy and memory are measured on exactly the GPUs the container gets."""
    jetson = is_jetson() if jetson is None else jetson
    if device != "cuda" or jetson:
        return None
    env = os.environ if env is None else env
    value = gpus if gpus else env.get("CUDA_VISIBLE_DEVICES") or "0"
    return tuple(v.strip() for v in value.split(",") if v.strip()) or ("0",)


def detect_device(requested: str) -> str:
    """`auto` means cuda when an NVIDIA driver node exists, else cpu."""
    if requested != "auto":
        return requested
    return "cuda" if has_nvidia_driver() else "cpu"


def _onnx_exporter(image: str | None, engine: str):
    """The ONNX export runs in the backend's image, so it needs the docker engine (the host has no torch)."""
    if engine != "docker":
        return None

    def export(hf_dir: Path, out_dir: Path) -> Path:
        from .launch.onnx_export import export_onnx

        return export_onnx(hf_dir, out_dir, image)

    return export


def build_run_spec(*, backend: str, model: str | None, quant: str | None, device: str, data: str, out: str,
                   image: str | None = None, models_dir: Path, beam_size: int = 5, temperature: float = 0.0,
                   language: str | None = None, threads: int | None = None, batch_size: int = 1,
                   warmup: int = 1, timeout_s: float | None = None, allow_download: bool = False,
                   mem_limit: str | None = None, telemetry: str = "auto", interval_ms: int = 100,
                   baseline_s: float = 5.0, baseline_w: float | None = None, engine: str = "docker",
                   align: bool = False, audio_roots: tuple[str, ...] = (), gpus: str | None = None,
                   loaded_idle_s: float = 2.0, cooldown_max_s: float = 30.0) -> RunSpec:
    """Resolve and check every setting; raise one UserError naming all problems.

    model and quant default to the backend's own (its table row): tiny.en int8 for the Whisper
    backends, the bundled en-us model in fp32 for pocketsphinx.
    """
    problems: list[str] = []
    be = BACKENDS.get(backend)
    model = model or (be.default_model if be else "tiny.en")
    quant = quant or (be.default_quant if be else "int8")
    if be is None:
        reason = unavailable_reason(backend)
        problems.append(f"--backend {backend} is not available: {reason}" if reason else
                        f"--backend {backend!r} is unknown; known backends: {', '.join(sorted(BACKENDS))}")
    dev = detect_device(device)
    if dev not in DEVICES:
        problems.append(f"--device {device!r} is unknown; choose one of cpu, cuda, auto")
    elif be is not None:
        if dev not in be.devices:
            problems.append(f"backend {be.name} does not run on {dev}; it runs on {', '.join(be.devices)}")
        else:
            problem = quant_problem(be.library, dev, quant)
            if problem:
                problems.append(f"--quant: {problem}")
    resolved_model = None
    try:
        resolved_model = resolve_model(model, models_dir, allow_download,
                                       be.model_format if be else "ctranslate2", bundled=be.bundled_models if be else (),
                                       onnx_exporter=_onnx_exporter(image or (be.image if be else None), engine))
        problem = model_problem(resolved_model) if engine == "docker" else None
        if problem:
            problems.append(problem)
    except UserError as exc:
        problems.append(f"--model: {exc}")
    dataset = None
    try:
        dataset = load_dataset(data, audio_roots)
    except UserError as exc:
        problems.append(f"--data: {exc}")
    mem_limit_bytes = None
    if mem_limit is not None:
        try:
            mem_limit_bytes = parse_mem_limit(str(mem_limit))
        except UserError as exc:
            problems.append(str(exc))
    if beam_size < 1:
        problems.append(f"--beam-size must be at least 1, got {beam_size}")
    if temperature < 0:
        problems.append(f"--temperature must be >= 0, got {temperature}")
    if threads is not None and threads < 0:
        problems.append(f"--threads must be >= 0, got {threads}")
    if batch_size < 1:
        problems.append(f"--batch-size must be at least 1, got {batch_size}")
    if warmup < 0:
        problems.append(f"--warmup must be >= 0, got {warmup}")
    if timeout_s is not None and timeout_s <= 0:
        problems.append(f"--timeout must be positive, got {timeout_s}")
    if telemetry not in SAMPLER_CHOICES:
        problems.append(f"--telemetry {telemetry!r} is unknown; choose one of {', '.join(SAMPLER_CHOICES)}")
    if interval_ms <= 0:
        problems.append(f"--interval-ms must be positive, got {interval_ms}")
    if baseline_s < 0:
        problems.append(f"--baseline-s must be >= 0, got {baseline_s}")
    if loaded_idle_s < 0:
        problems.append(f"--loaded-idle-s must be >= 0, got {loaded_idle_s}")
    if cooldown_max_s < 0:
        problems.append(f"telemetry.cooldown_max_s must be >= 0, got {cooldown_max_s}")
    if baseline_w is not None and baseline_w < 0:
        problems.append(f"--baseline-w must be >= 0, got {baseline_w}")
    if align and backend != "whisperx":
        problems.append(f"--align is a whisperx option; backend {backend} has no word alignment")
    if gpus and dev != "cuda":
        problems.append(f"--gpus {gpus!r} applies to CUDA runs; this run is on {dev}")
    elif gpus and is_jetson():
        problems.append(f"--gpus {gpus!r} does not apply on a Jetson: it has one integrated GPU; leave it out")
    if engine not in ENGINES:
        problems.append(f"--engine {engine!r} is unknown; choose one of {', '.join(ENGINES)}")
    out_path = Path(out).expanduser().resolve()
    problem = out_problem(out_path)
    if problem:
        problems.append(problem)
    elif (out_path / "summary.json").exists():
        problems.append(f"--out {out} already holds a run (summary.json); choose another folder or remove it")
    if image is None and be is not None and engine == "docker":
        try:  # the backend's image for this platform (jetson-r35 / jetson-r36 on a Jetson)
            image = be.default_image()
        except UserError as exc:
            problems.append(f"{exc}; or name an image with --image")
    if problems:
        if len(problems) == 1:
            raise UserError(problems[0])
        raise UserError(f"{len(problems)} problems with this run:", problems=problems)
    assert be is not None and resolved_model is not None and dataset is not None
    return RunSpec(
        backend=be,
        image=image or be.image,
        model=resolved_model,
        quant=quant,
        backend_quant=resolve_quant(be.library, dev, quant),
        device=dev,
        dataset=dataset,
        out=out_path,
        decode=DecodeSettings(beam_size=beam_size, temperature=temperature, language=language,
                              threads=(os.cpu_count() or 1) if threads is None else threads, batch_size=batch_size,
                              align=align),
        warmup=warmup,
        timeout_s=timeout_s,
        allow_download=allow_download,
        mem_limit=mem_limit,
        telemetry=TelemetrySettings(sampler=telemetry, interval_ms=interval_ms, baseline_s=baseline_s,
                                    baseline_w=baseline_w, loaded_idle_s=loaded_idle_s,
                                    cooldown_max_s=cooldown_max_s),
        engine=engine,
        hardening=Hardening(network=allow_download, mem_limit_bytes=mem_limit_bytes),
        hub_cache_dir=(models_dir / "hub-cache").resolve() if allow_download else None,
        gpus=resolve_gpus(gpus, dev),
    )
