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
from .models import ResolvedModel, resolve_model
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
    hub_cache_volume: str = "edgeasr-hf-cache"


def detect_device(requested: str) -> str:
    """`auto` means cuda when an NVIDIA driver node exists, else cpu."""
    if requested != "auto":
        return requested
    return "cuda" if Path("/dev/nvidiactl").exists() else "cpu"


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
                   align: bool = False) -> RunSpec:
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
    except UserError as exc:
        problems.append(f"--model: {exc}")
    dataset = None
    try:
        dataset = load_dataset(data)
    except UserError as exc:
        problems.append(f"--data: {exc}")
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
    if baseline_w is not None and baseline_w < 0:
        problems.append(f"--baseline-w must be >= 0, got {baseline_w}")
    if align and backend != "whisperx":
        problems.append(f"--align is a whisperx option; backend {backend} has no word alignment")
    if engine not in ENGINES:
        problems.append(f"--engine {engine!r} is unknown; choose one of {', '.join(ENGINES)}")
    out_path = Path(out).expanduser().resolve()
    if (out_path / "summary.json").exists():
        problems.append(f"--out {out} already holds a run (summary.json); choose another folder or remove it")
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
                                    baseline_w=baseline_w),
        engine=engine,
    )
